/* temporary */
#include "tokenizer/tok_internal.h"
void tok_chat_detect_default(rl_tokenizer *t) {}
rl_status rl_tok_chat_render(const rl_tokenizer *tok, const rl_chat_msg *msgs, size_t n, int add_generation_prompt,
                             char **out, rl_error *err) { return rl_fail(err, RL_EUNSUPPORTED, "todo"); }
rl_status rl_tok_set_chat_template(rl_tokenizer *tok, const char *name_or_template, rl_error *err) { return rl_fail(err, RL_EUNSUPPORTED, "todo"); }
