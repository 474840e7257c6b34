/* reader_internal.h - shared by the document readers inside src/retrieve (not public). */
#ifndef RL_READER_INTERNAL_H
#define RL_READER_INTERNAL_H

#include "retrieve/retrieve.h"

/* Builds a document's text and headings. */
typedef struct doc_builder {
    rl_buf text;
    rl_heading *headings;
    size_t n_headings, cap_headings;
} doc_builder;

void doc_builder_heading(doc_builder *b, size_t start, int level, const char *title, size_t title_len);
/* Moves the builder's content into a new document of list (key and title are copied). */
void doc_list_push(rl_doc_list *list, doc_builder *b, const char *key, const char *title);

/* Makes raw bytes into clean UTF-8 text with \n line ends: strips a BOM, converts UTF-16 (with
 * BOM) and non-UTF-8 bytes (read as Windows-1252, with a note in *note), replaces other control
 * characters. Binary data (NUL bytes, many control characters) is RL_EFORMAT. Caller frees. */
rl_status text_normalize(const char *data, size_t len, char **out, size_t *out_len, const char **note, rl_error *err);

rl_status read_html(const char *data, size_t len, rl_doc_list *out, rl_error *err);
rl_status read_pdf(const char *data, size_t len, rl_doc_list *out, rl_error *err);
rl_status read_jsonl(const char *data, size_t len, rl_doc_list *out, rl_error *err);

#endif
