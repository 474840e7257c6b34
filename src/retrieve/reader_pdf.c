/* reader_pdf.c - text of a PDF via poppler (poppler-glib), one paragraph break per page.
 * Scanned PDFs without a text layer yield no text and are reported as such. */
#include "retrieve/reader_internal.h"

#include <glib.h>
#include <poppler.h>
#include <string.h>

static void quiet_log(const gchar *domain, GLogLevelFlags level, const gchar *msg, gpointer data) {}

rl_status read_pdf(const char *data, size_t len, rl_doc_list *out, rl_error *err) {
    if (len < 5 || memcmp(data, "%PDF-", 5) != 0) return rl_fail(err, RL_EFORMAT, "not a PDF file (no %%PDF- header)");
    g_log_set_handler("Poppler", G_LOG_LEVEL_MASK, quiet_log, NULL);
    GBytes *bytes = g_bytes_new(data, len);
    GError *gerr = NULL;
    PopplerDocument *pdf = poppler_document_new_from_bytes(bytes, NULL, &gerr);
    if (!pdf) {
        rl_status s = rl_fail(err, RL_EFORMAT, "cannot open PDF: %s", gerr ? gerr->message : "unknown error");
        if (gerr) g_error_free(gerr);
        g_bytes_unref(bytes);
        return s;
    }
    doc_builder b = {0};
    int pages = poppler_document_get_n_pages(pdf);
    for (int i = 0; i < pages; i++) {
        PopplerPage *page = poppler_document_get_page(pdf, i);
        if (!page) continue;
        char *text = poppler_page_get_text(page);
        if (text) {
            char *clean;
            size_t n;
            const char *note;
            if (text_normalize(text, strlen(text), &clean, &n, &note, NULL) == RL_OK) {
                if (b.text.len) rl_buf_puts(&b.text, "\n\n");
                rl_buf_append(&b.text, clean, n);
                free(clean);
            }
            g_free(text);
        }
        g_object_unref(page);
    }
    char *title = poppler_document_get_title(pdf);
    g_object_unref(pdf);
    g_bytes_unref(bytes);
    if (!b.text.data) rl_buf_puts(&b.text, "");
    doc_list_push(out, &b, "", title);
    g_free(title);
    return RL_OK;
}
