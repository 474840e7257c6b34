/* layout.c - the RAFT prompt layout (see retrieve.h). */
#include "retrieve/retrieve.h"

char *rl_raft_prompt(const char *const *docs, int n_docs, const char *question) {
    rl_buf b = {0};
    for (int i = 0; i < n_docs; i++) {
        rl_buf_puts(&b, "<DOCUMENT>");
        rl_buf_puts(&b, docs[i]);
        rl_buf_puts(&b, "</DOCUMENT>\n");
    }
    rl_buf_puts(&b, question);
    return rl_buf_take(&b);
}
