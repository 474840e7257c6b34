/* temporary */
#include "tokenizer/tok_internal.h"
rl_status tok_gguf_load(rl_tokenizer *t, const uint8_t *data, size_t size, rl_error *err) { return rl_fail(err, RL_EUNSUPPORTED, "todo"); }
void tok_chat_detect_default(rl_tokenizer *t) {}
