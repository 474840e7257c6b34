/* report.h - the evaluation report: report.json and a self-contained report.html drawn from it.
 *
 * The report's data is one JSON object (the schema is in docs/eval-and-run.md): the resolved
 * configuration, the training and validation loss curves of the trained models, the metrics
 * by model and mode, the retrieval metrics, the k sweep, and a sample of questions with the
 * model's answer, its quotes and the documents it saw. The HTML page is rendered from that
 * object alone (so the two cannot disagree): tables, and charts as inline SVG (line charts
 * for the loss curves and the k sweep, a bar chart of the metrics), no script, no external
 * resource. Every piece of text is HTML-escaped: documents and model outputs are hostile. */
#ifndef RL_REPORT_H
#define RL_REPORT_H

#include <jansson.h>

#include "core/core.h"

/* Renders the report object as an HTML page. Fields of the wrong type are left out, never
 * trusted. Caller frees *html. */
rl_status rl_report_html(const json_t *report, char **html, rl_error *err);

/* Writes <dir>/report.json and <dir>/report.html, each atomically. */
rl_status rl_report_write(const char *dir, const json_t *report, rl_error *err);

/* Reads a train_log.jsonl (lines {"step", "loss", ...} and {"step", "eval_loss"}) into
 * {"train": [[step, loss], ...], "eval": [[step, eval_loss], ...]} (caller decrefs); lines
 * that are not such objects are skipped and counted in *skipped. At most max_points per
 * series are kept (evenly thinned, the last point always kept). */
rl_status rl_report_train_log(const char *path, int max_points, json_t **curve, int *skipped, rl_error *err);

/* Appends s HTML-escaped (& < > " ' become entities; invalid UTF-8 becomes U+FFFD). */
void rl_html_escape(rl_buf *b, const char *s);

#endif
