/* temporary */
#include "tokenizer/tok_internal.h"
rl_status tok_pipeline_encode(const rl_tokenizer *t, const char *text, size_t len, int add_special,
                              tok_scratch *s, tok_ids *out, rl_error *err) { return rl_fail(err, RL_EUNSUPPORTED, "todo"); }
rl_status tok_json_load(rl_tokenizer *t, const char *json, size_t len, rl_error *err) { return rl_fail(err, RL_EUNSUPPORTED, "todo"); }
rl_status tok_json_read_config(rl_tokenizer *t, const char *json, size_t len, rl_error *err) { return RL_OK; }
rl_status tok_gguf_load(rl_tokenizer *t, const uint8_t *data, size_t size, rl_error *err) { return rl_fail(err, RL_EUNSUPPORTED, "todo"); }
void tok_pre_free(tok_pre *p) {}
void tok_norm_free(tok_norm *n) {}
void tok_chat_detect_default(rl_tokenizer *t) {}
