/* report.c - report.json and report.html (see report.h).
 *
 * The page is plain HTML with a small inline style sheet; charts are SVG elements written
 * here: axes with "nice" ticks (1, 2 or 5 times a power of ten), a polyline per series, a
 * legend. Nothing is fetched and nothing runs, so the file opens offline and can be mailed.
 * Deliberately not here: interactivity, zoom, log scales. */
#include "eval/report.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- escaping ------------------------------------------------------------------------------- */

void rl_html_escape(rl_buf *b, const char *s) {
    if (!s) return;
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        int l = rl_utf8_seq_len((const unsigned char *)s + i, n - i);
        if (l <= 0 || (c < 0x20 && c != '\n' && c != '\t' && c != '\r') || c == 0x7f) {
            rl_buf_puts(b, "\xEF\xBF\xBD"); /* U+FFFD: invalid UTF-8 or a control character */
            i++;
            continue;
        }
        switch (c) {
        case '&': rl_buf_puts(b, "&amp;"); break;
        case '<': rl_buf_puts(b, "&lt;"); break;
        case '>': rl_buf_puts(b, "&gt;"); break;
        case '"': rl_buf_puts(b, "&quot;"); break;
        case '\'': rl_buf_puts(b, "&#39;"); break;
        default: rl_buf_append(b, s + i, (size_t)l);
        }
        i += (size_t)l;
    }
}

static void esc(rl_buf *b, const char *s) { rl_html_escape(b, s); }

/* ---- reading the report object defensively ------------------------------------------------- */

static const char *jstr(const json_t *o, const char *key) {
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A number, or NAN when absent or not a number. */
static double jnum(const json_t *o, const char *key) {
    const json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static void put_num(rl_buf *b, double x, const char *fmt) {
    if (isfinite(x)) rl_buf_printf(b, fmt, x);
    else rl_buf_puts(b, "&#8211;"); /* an en dash */
}

/* ---- charts --------------------------------------------------------------------------------- */

static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};
#define N_COLORS (sizeof palette / sizeof palette[0])

typedef struct series {
    const char *name;
    int n;
    double *x, *y; /* NAN y: a gap (not drawn) */
    int dashed;
} series;

enum { W = 680, H = 320, ML = 64, MR = 170, MT = 34, MB = 52 };

/* A tick step of 1, 2 or 5 times a power of ten giving about `want` ticks over range. */
static double nice_step(double range, int want) {
    double raw = range / want, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

static void tick_label(char *out, size_t cap, double v, double step) {
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    snprintf(out, cap, "%.*f", dec > 6 ? 6 : dec, fabs(v) < step * 1e-6 ? 0.0 : v);
}

static void chart_open(rl_buf *b, const char *id, const char *cls, const char *title) {
    rl_buf_printf(b, "<figure class=\"chart\"><svg xmlns=\"http://www.w3.org/2000/svg\" id=\"%s\" class=\"%s\" width=\"%d\" height=\"%d\" "
                     "viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"",
                  id, cls, W, H, W, H);
    esc(b, title);
    rl_buf_puts(b, "\"><title>");
    esc(b, title);
    rl_buf_printf(b, "</title><rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#fff\"/>", W, H);
    rl_buf_printf(b, "<text x=\"%d\" y=\"20\" class=\"ctitle\">", ML);
    esc(b, title);
    rl_buf_puts(b, "</text>");
}

/* Axes, grid and labels for [x0,x1] x [y0,y1]; returns through the mapping parameters. */
static void axes(rl_buf *b, double x0, double x1, double y0, double y1, const char *xlabel, const char *ylabel, int x_ticks) {
    int pw = W - ML - MR, ph = H - MT - MB;
    rl_buf_printf(b, "<g class=\"axes\"><line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>", ML, MT + ph, ML + pw, MT + ph);
    rl_buf_printf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>", ML, MT, ML, MT + ph);
    double ys = nice_step(y1 - y0, 5);
    char lab[32];
    /* ticks counted in integers: adding a step to a huge value may not change it */
    double ystart = ceil(y0 / ys - 1e-9) * ys;
    for (int t = 0; t <= 20; t++) {
        double v = ystart + t * ys;
        if (v > y1 + ys * 1e-9) break;
        double py = MT + ph - (v - y0) / (y1 - y0) * ph;
        tick_label(lab, sizeof lab, v, ys);
        rl_buf_printf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>", ML, py, ML + pw, py);
        rl_buf_printf(b, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" class=\"tick\">%s</text>", ML - 6, py + 4, lab);
    }
    if (x_ticks) {
        double xs = nice_step(x1 - x0, 6);
        if (x_ticks == 2 && xs < 1) xs = 1; /* integer axes (steps, k) */
        double xstart = ceil(x0 / xs - 1e-9) * xs;
        for (int t = 0; t <= 20; t++) {
            double v = xstart + t * xs;
            if (v > x1 + xs * 1e-9) break;
            double px = ML + (v - x0) / (x1 - x0) * pw;
            tick_label(lab, sizeof lab, v, xs);
            rl_buf_printf(b, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#333\"/>", px, MT + ph, px, MT + ph + 4);
            rl_buf_printf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" class=\"tick\">%s</text>", px, MT + ph + 17, lab);
        }
    }
    rl_buf_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" class=\"axis-label\">", ML + pw / 2, H - 10);
    esc(b, xlabel);
    rl_buf_printf(b, "</text><text x=\"14\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 14 %d)\" class=\"axis-label\">", MT + ph / 2,
                  MT + ph / 2);
    esc(b, ylabel);
    rl_buf_puts(b, "</text></g>");
}

static void legend(rl_buf *b, int i, const char *name, const char *color, int dashed) {
    int x = W - MR + 14, y = MT + 8 + 20 * i;
    rl_buf_printf(b, "<g class=\"legend\"><line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"3\"%s/>", x, y, x + 22, y,
                  color, dashed ? " stroke-dasharray=\"6 4\"" : "");
    rl_buf_printf(b, "<text x=\"%d\" y=\"%d\" class=\"tick\">", x + 28, y + 4);
    esc(b, name);
    rl_buf_puts(b, "</text></g>");
}

/* A line chart of the series; y_zero: the y axis starts at 0 (rates); returns 0 when there is
 * nothing to draw (then nothing is written). */
static int line_chart(rl_buf *b, const char *id, const char *title, const char *xlabel, const char *ylabel, const series *s, int ns,
                      int y_zero, double y_max_cap) {
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    int points = 0;
    for (int i = 0; i < ns; i++)
        for (int k = 0; k < s[i].n; k++) {
            if (!isfinite(s[i].x[k]) || !isfinite(s[i].y[k])) continue;
            x0 = fmin(x0, s[i].x[k]), x1 = fmax(x1, s[i].x[k]);
            y0 = fmin(y0, s[i].y[k]), y1 = fmax(y1, s[i].y[k]);
            points++;
        }
    if (!points || !isfinite(x1 - x0) || !isfinite(y1 - y0)) return 0; /* nothing, or a range no axis can show */
    if (y_zero) y0 = fmin(y0, 0);
    if (y_max_cap > 0 && y1 <= y_max_cap) y1 = fmax(y1, y_max_cap);
    if (x1 - x0 <= 1e-9 * fmax(1, fabs(x0))) x0 -= fmax(1, fabs(x0) * 0.1), x1 += fmax(1, fabs(x1) * 0.1);
    if (y1 - y0 <= 1e-9 * fmax(1, fabs(y0))) y0 -= fmax(0.5, fabs(y0) * 0.1), y1 += fmax(0.5, fabs(y1) * 0.1);
    if (!y_zero) { /* a little room around the data */
        double pad = (y1 - y0) * 0.05;
        y0 -= pad, y1 += pad;
    }
    int pw = W - ML - MR, ph = H - MT - MB;
    chart_open(b, id, "line-chart", title);
    axes(b, x0, x1, y0, y1, xlabel, ylabel, 2);
    for (int i = 0; i < ns; i++) {
        const char *color = palette[i % N_COLORS];
        rl_buf_printf(b, "<g class=\"series\" data-name=\"");
        esc(b, s[i].name);
        rl_buf_puts(b, "\">");
        /* one polyline per run of finite points (a NAN is a gap) */
        int open = 0, drawn = 0;
        for (int k = 0; k <= s[i].n; k++) {
            int ok = k < s[i].n && isfinite(s[i].x[k]) && isfinite(s[i].y[k]);
            if (ok && !open) {
                rl_buf_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"", color,
                              s[i].dashed ? " stroke-dasharray=\"6 4\"" : "");
                open = 1;
            }
            if (ok) {
                rl_buf_printf(b, "%s%.1f,%.1f", drawn++ ? " " : "", ML + (s[i].x[k] - x0) / (x1 - x0) * pw, MT + ph - (s[i].y[k] - y0) / (y1 - y0) * ph);
            } else if (open) {
                rl_buf_puts(b, "\"/>");
                open = 0, drawn = 0;
            }
        }
        if (s[i].n <= 40) /* markers where there are few points (the k sweep) */
            for (int k = 0; k < s[i].n; k++)
                if (isfinite(s[i].x[k]) && isfinite(s[i].y[k]))
                    rl_buf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>", ML + (s[i].x[k] - x0) / (x1 - x0) * pw,
                                  MT + ph - (s[i].y[k] - y0) / (y1 - y0) * ph, color);
        rl_buf_puts(b, "</g>");
        legend(b, i, s[i].name, color, s[i].dashed);
    }
    rl_buf_puts(b, "</svg></figure>\n");
    return 1;
}

/* Grouped bars: groups (modes) x bars (models), values in [0,1]; v[g * nbars + m], NAN = none. */
static void bar_chart(rl_buf *b, const char *id, const char *title, const char *ylabel, const char *const *groups, int ng,
                      const char *const *bars, int nb, const double *v) {
    chart_open(b, id, "bar-chart", title);
    axes(b, 0, 1, 0, 1, "mode", ylabel, 0);
    int pw = W - ML - MR, ph = H - MT - MB;
    double gw = (double)pw / ng, bw = gw * 0.8 / nb;
    for (int g = 0; g < ng; g++) {
        double gx = ML + g * gw + gw * 0.1;
        for (int m = 0; m < nb; m++) {
            double x = v[g * nb + m];
            if (!isfinite(x)) continue;
            x = fmin(fmax(x, 0), 1);
            double h = x * ph;
            rl_buf_printf(b, "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>", gx + m * bw,
                          MT + ph - h, bw * 0.9, h, palette[m % N_COLORS]);
            esc(b, bars[m]);
            rl_buf_puts(b, " ");
            esc(b, groups[g]);
            rl_buf_printf(b, ": %.3f</title></rect>", x);
        }
        rl_buf_printf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" class=\"tick\">", ML + g * gw + gw / 2, MT + ph + 17);
        esc(b, groups[g]);
        rl_buf_puts(b, "</text>");
    }
    for (int m = 0; m < nb; m++) {
        int x = W - MR + 14, y = MT + 8 + 20 * m;
        rl_buf_printf(b, "<g class=\"legend\"><rect x=\"%d\" y=\"%d\" width=\"14\" height=\"10\" fill=\"%s\"/><text x=\"%d\" y=\"%d\" class=\"tick\">", x,
                      y - 5, palette[m % N_COLORS], x + 20, y + 4);
        esc(b, bars[m]);
        rl_buf_puts(b, "</text></g>");
    }
    rl_buf_puts(b, "</svg></figure>\n");
}

/* ---- sections -------------------------------------------------------------------------------- */

static const char *const answer_keys[] = {"em", "f1", "numeric_match", "citation_validity", "refusal_rate"};
static const char *const answer_heads[] = {"EM", "F1", "numeric match", "citation validity", "refusal rate"};

/* Distinct strings of a key over an array of objects, in first-seen order (at most max). */
static int distinct(const json_t *arr, const char *key, const char **out, int max) {
    int n = 0;
    size_t i;
    const json_t *e;
    json_array_foreach(arr, i, e) {
        const char *s = jstr(e, key);
        if (!s) continue;
        int seen = 0;
        for (int k = 0; k < n && !seen; k++) seen = strcmp(out[k], s) == 0;
        if (!seen && n < max) out[n++] = s;
    }
    return n;
}

static void section_metrics(rl_buf *b, const json_t *rows) {
    if (!json_is_array(rows) || json_array_size(rows) == 0) return;
    rl_buf_puts(b, "<section id=\"metrics\"><h2>Answers by model and mode</h2>\n<table id=\"metrics-table\"><thead><tr><th>model</th><th>mode</th>"
                   "<th>k</th><th>n</th>");
    for (int k = 0; k < 5; k++) rl_buf_printf(b, "<th>%s</th>", answer_heads[k]);
    rl_buf_puts(b, "<th>tokens/s</th></tr></thead><tbody>\n");
    size_t i;
    const json_t *r;
    json_array_foreach(rows, i, r) {
        if (!json_is_object(r)) continue;
        rl_buf_puts(b, "<tr class=\"metrics-row\" data-model=\"");
        esc(b, jstr(r, "model"));
        rl_buf_puts(b, "\" data-mode=\"");
        esc(b, jstr(r, "mode"));
        rl_buf_puts(b, "\"><td>");
        esc(b, jstr(r, "model"));
        rl_buf_puts(b, "</td><td>");
        esc(b, jstr(r, "mode"));
        rl_buf_puts(b, "</td><td class=\"num\">");
        double k = jnum(r, "k");
        if (isfinite(k) && k > 0) rl_buf_printf(b, "%.0f", k);
        rl_buf_puts(b, "</td><td class=\"num\">");
        put_num(b, jnum(r, "n"), "%.0f");
        rl_buf_puts(b, "</td>");
        for (int m = 0; m < 5; m++) {
            rl_buf_puts(b, "<td class=\"num\">");
            put_num(b, jnum(r, answer_keys[m]), "%.3f");
            rl_buf_puts(b, "</td>");
        }
        rl_buf_puts(b, "<td class=\"num\">");
        put_num(b, jnum(r, "tokens_per_s"), "%.1f");
        rl_buf_puts(b, "</td></tr>\n");
    }
    rl_buf_puts(b, "</tbody></table>\n");
    /* F1 as bars: modes x models */
    const char *modes[16], *models[16];
    int nm = distinct(rows, "mode", modes, 16), nb = distinct(rows, "model", models, 16);
    if (nm && nb) {
        double *v = malloc(sizeof(double) * (size_t)(nm * nb));
        for (int k = 0; k < nm * nb; k++) v[k] = NAN;
        json_array_foreach(rows, i, r) {
            const char *mo = jstr(r, "mode"), *md = jstr(r, "model");
            for (int g = 0; g < nm; g++)
                for (int m = 0; m < nb; m++)
                    if (mo && md && strcmp(mo, modes[g]) == 0 && strcmp(md, models[m]) == 0) v[g * nb + m] = jnum(r, "f1");
        }
        bar_chart(b, "chart-metrics", "Token F1 by mode and model", "token F1", modes, nm, models, nb, v);
        free(v);
    }
    rl_buf_puts(b, "</section>\n");
}

static void section_retrieval(rl_buf *b, const json_t *rows) {
    if (!json_is_array(rows) || json_array_size(rows) == 0) return;
    static const char *const keys[] = {"recall@1", "recall@3", "recall@5", "mrr", "ndcg@10"};
    rl_buf_puts(b, "<section id=\"retrieval\"><h2>Retrieval</h2>\n<p>Is the oracle document among the retrieved ones (documents ranked by "
                   "their best chunk).</p>\n<table id=\"retrieval-table\"><thead><tr><th>ranking</th><th>n</th>");
    for (int k = 0; k < 5; k++) rl_buf_printf(b, "<th>%s</th>", keys[k]);
    rl_buf_puts(b, "</tr></thead><tbody>\n");
    size_t i;
    const json_t *r;
    json_array_foreach(rows, i, r) {
        if (!json_is_object(r)) continue;
        rl_buf_puts(b, "<tr class=\"retrieval-row\"><td>");
        esc(b, jstr(r, "ranking"));
        rl_buf_puts(b, "</td><td class=\"num\">");
        put_num(b, jnum(r, "n"), "%.0f");
        rl_buf_puts(b, "</td>");
        for (int k = 0; k < 5; k++) {
            rl_buf_puts(b, "<td class=\"num\">");
            put_num(b, jnum(r, keys[k]), "%.3f");
            rl_buf_puts(b, "</td>");
        }
        rl_buf_puts(b, "</tr>\n");
    }
    rl_buf_puts(b, "</tbody></table></section>\n");
}

/* k_sweep: [{"k", "recall@k", "rag": {model: metrics}}] */
static void section_k_sweep(rl_buf *b, const json_t *sweep) {
    if (!json_is_array(sweep) || json_array_size(sweep) == 0) return;
    size_t nk = json_array_size(sweep);
    if (nk > 1000) nk = 1000;
    const char *models[16];
    int nm = 0;
    for (size_t i = 0; i < nk; i++) {
        const char *key;
        const json_t *v;
        json_t *rag = json_object_get(json_array_get(sweep, i), "rag");
        if (!json_is_object(rag)) continue;
        json_object_foreach(rag, key, v) {
            int seen = 0;
            for (int m = 0; m < nm && !seen; m++) seen = strcmp(models[m], key) == 0;
            if (!seen && nm < 16) models[nm++] = key;
        }
    }
    series s[17];
    double *buf = malloc(sizeof(double) * nk * (size_t)(2 * (nm + 1)));
    int ns = 0;
    for (int m = 0; m <= nm; m++) {
        series *e = &s[ns];
        e->x = buf + (size_t)ns * 2 * nk, e->y = e->x + nk, e->n = (int)nk, e->dashed = m == nm;
        e->name = m < nm ? models[m] : "recall@k (retrieval)";
        int any = 0;
        for (size_t i = 0; i < nk; i++) {
            const json_t *pt = json_array_get(sweep, i);
            e->x[i] = jnum(pt, "k");
            e->y[i] = m < nm ? jnum(json_object_get(json_object_get(pt, "rag"), models[m]), "f1") : jnum(pt, "recall@k");
            any |= isfinite(e->y[i]);
        }
        if (any) ns++;
    }
    rl_buf_puts(b, "<section id=\"k-sweep\"><h2>k sweep</h2>\n<p>The rag mode with the top-k retrieved chunks, for each k: token F1 of "
                   "each model, and recall@k of the oracle document (dashed).</p>\n");
    line_chart(b, "chart-k-sweep", "rag token F1 and recall@k by k", "k (retrieved chunks)", "F1 / recall", s, ns, 1, 1.0);
    rl_buf_puts(b, "<table id=\"k-sweep-table\"><thead><tr><th>k</th><th>recall@k</th>");
    for (int m = 0; m < nm; m++) {
        rl_buf_puts(b, "<th>");
        esc(b, models[m]);
        rl_buf_puts(b, " EM</th><th>");
        esc(b, models[m]);
        rl_buf_puts(b, " F1</th>");
    }
    rl_buf_puts(b, "</tr></thead><tbody>\n");
    for (size_t i = 0; i < nk; i++) {
        const json_t *pt = json_array_get(sweep, i);
        rl_buf_puts(b, "<tr class=\"k-sweep-row\"><td class=\"num\">");
        put_num(b, jnum(pt, "k"), "%.0f");
        rl_buf_puts(b, "</td><td class=\"num\">");
        put_num(b, jnum(pt, "recall@k"), "%.3f");
        rl_buf_puts(b, "</td>");
        for (int m = 0; m < nm; m++) {
            const json_t *mm = json_object_get(json_object_get(pt, "rag"), models[m]);
            rl_buf_puts(b, "<td class=\"num\">");
            put_num(b, jnum(mm, "em"), "%.3f");
            rl_buf_puts(b, "</td><td class=\"num\">");
            put_num(b, jnum(mm, "f1"), "%.3f");
            rl_buf_puts(b, "</td>");
        }
        rl_buf_puts(b, "</tr>\n");
    }
    rl_buf_puts(b, "</tbody></table></section>\n");
    free(buf);
}

/* Points [[x, y], ...] of a curve into a series (caller frees x). */
static void curve_series(series *s, const json_t *pts, const char *name, int dashed) {
    size_t n = json_is_array(pts) ? json_array_size(pts) : 0;
    s->name = name, s->dashed = dashed, s->n = (int)n;
    s->x = malloc(sizeof(double) * (2 * n + 1));
    s->y = s->x + n;
    for (size_t i = 0; i < n; i++) {
        const json_t *p = json_array_get(pts, i);
        const json_t *x = json_array_get(p, 0), *y = json_array_get(p, 1);
        s->x[i] = json_is_number(x) ? json_number_value(x) : NAN;
        s->y[i] = json_is_number(y) ? json_number_value(y) : NAN;
    }
}

static void section_loss(rl_buf *b, const json_t *curves) {
    if (!json_is_array(curves) || json_array_size(curves) == 0) return;
    rl_buf_puts(b, "<section id=\"loss\"><h2>Training</h2>\n<p>Training loss per optimizer step and validation loss, from each trained "
                   "model's train_log.jsonl.</p>\n");
    size_t i;
    const json_t *c;
    json_array_foreach(curves, i, c) {
        if (i >= 16) break;
        series s[2];
        curve_series(&s[0], json_object_get(c, "train"), "training loss", 0);
        curve_series(&s[1], json_object_get(c, "eval"), "validation loss", 1);
        char id[32], title[200];
        snprintf(id, sizeof id, "chart-loss-%zu", i);
        snprintf(title, sizeof title, "loss of %s", jstr(c, "model") ? jstr(c, "model") : "?");
        if (!line_chart(b, id, title, "step", "loss", s, 2, 0, 0)) {
            rl_buf_puts(b, "<p>No loss values in ");
            esc(b, jstr(c, "log"));
            rl_buf_puts(b, ".</p>\n");
        } else if (jstr(c, "log")) {
            rl_buf_puts(b, "<p class=\"src\">from ");
            esc(b, jstr(c, "log"));
            rl_buf_puts(b, "</p>\n");
        }
        free(s[0].x), free(s[1].x);
    }
    rl_buf_puts(b, "</section>\n");
}

static void section_samples(rl_buf *b, const json_t *samples) {
    if (!json_is_array(samples) || json_array_size(samples) == 0) return;
    rl_buf_puts(b, "<section id=\"samples\"><h2>Sample of questions</h2>\n");
    size_t i;
    const json_t *r;
    json_array_foreach(samples, i, r) {
        if (!json_is_object(r)) continue;
        rl_buf_puts(b, "<article class=\"sample\"><h3>");
        esc(b, jstr(r, "question"));
        rl_buf_puts(b, "</h3>\n<p class=\"meta\">model <b>");
        esc(b, jstr(r, "model"));
        rl_buf_puts(b, "</b>, mode <b>");
        esc(b, jstr(r, "mode"));
        rl_buf_puts(b, "</b>");
        double k = jnum(r, "k");
        if (isfinite(k) && k > 0) rl_buf_printf(b, ", k %.0f", k);
        rl_buf_puts(b, ", EM ");
        put_num(b, jnum(r, "em"), "%.0f");
        rl_buf_puts(b, ", F1 ");
        put_num(b, jnum(r, "f1"), "%.2f");
        rl_buf_puts(b, ", citations valid ");
        put_num(b, jnum(r, "citation_valid"), "%.0f");
        rl_buf_puts(b, "</p>\n<dl><dt>gold answer</dt><dd class=\"gold\">");
        esc(b, jstr(r, "gold"));
        rl_buf_puts(b, "</dd><dt>final answer</dt><dd class=\"final\">");
        esc(b, jstr(r, "final_answer"));
        rl_buf_puts(b, "</dd></dl>\n<details><summary>whole reply</summary><pre class=\"generated\">");
        esc(b, jstr(r, "generated"));
        rl_buf_puts(b, "</pre></details>\n");
        const json_t *quotes = json_object_get(r, "quotes");
        if (json_is_array(quotes) && json_array_size(quotes)) {
            rl_buf_puts(b, "<p>quotes:</p><ul class=\"quotes\">");
            size_t q;
            const json_t *e;
            json_array_foreach(quotes, q, e) {
                rl_buf_puts(b, "<li><q>");
                esc(b, json_string_value(e));
                rl_buf_puts(b, "</q></li>");
            }
            rl_buf_puts(b, "</ul>\n");
        }
        const json_t *docs = json_object_get(r, "documents");
        if (json_is_array(docs) && json_array_size(docs)) {
            rl_buf_printf(b, "<details class=\"docs\"><summary>%zu documents seen</summary><ol>", json_array_size(docs));
            size_t d;
            const json_t *e;
            json_array_foreach(docs, d, e) {
                rl_buf_puts(b, "<li><span class=\"doc\">");
                esc(b, jstr(e, "doc"));
                rl_buf_puts(b, "</span><pre>");
                esc(b, jstr(e, "text"));
                rl_buf_puts(b, "</pre></li>");
            }
            rl_buf_puts(b, "</ol></details>\n");
        }
        rl_buf_puts(b, "</article>\n");
    }
    rl_buf_puts(b, "</section>\n");
}

static const char *style =
    "body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1000px;padding:0 1em;color:#222}"
    "h1{margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}"
    "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ddd;padding:.3em .6em}th{background:#f4f4f4}"
    "td.num{text-align:right;font-variant-numeric:tabular-nums}.meta,.src{color:#666;font-size:.9em}"
    "svg text{font:12px system-ui,sans-serif;fill:#222}svg .ctitle{font-size:14px;font-weight:600}figure{margin:1em 0}"
    "pre{white-space:pre-wrap;background:#f8f8f8;padding:.5em;border-radius:4px;max-height:20em;overflow:auto}"
    "article.sample{border:1px solid #e2e2e2;border-radius:6px;padding:.2em 1em;margin:1em 0}dt{font-weight:600}"
    ".doc{font-family:monospace;color:#555}";

rl_status rl_report_html(const json_t *report, char **html, rl_error *err) {
    *html = NULL;
    if (!json_is_object(report)) return rl_fail(err, RL_EINVAL, "report: not a JSON object");
    rl_buf b = {0};
    rl_buf_puts(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>raftlm report</title><style>");
    rl_buf_puts(&b, style);
    rl_buf_puts(&b, "</style></head><body>\n<h1>raftlm report</h1>\n<p class=\"meta\">");
    if (jstr(report, "created")) {
        rl_buf_puts(&b, "created ");
        esc(&b, jstr(report, "created"));
        rl_buf_puts(&b, " &#183; ");
    }
    if (jstr(report, "config_file")) {
        rl_buf_puts(&b, "config ");
        esc(&b, jstr(report, "config_file"));
        rl_buf_puts(&b, " &#183; ");
    }
    put_num(&b, jnum(report, "n_questions"), "%.0f");
    rl_buf_puts(&b, " questions from ");
    esc(&b, jstr(report, "questions"));
    rl_buf_puts(&b, "</p>\n");
    const json_t *models = json_object_get(report, "models");
    if (json_is_array(models) && json_array_size(models)) {
        rl_buf_puts(&b, "<table id=\"models-table\"><thead><tr><th>model</th><th>weights</th><th>adapter</th></tr></thead><tbody>\n");
        size_t i;
        const json_t *m;
        json_array_foreach(models, i, m) {
            rl_buf_puts(&b, "<tr><td>");
            esc(&b, jstr(m, "name"));
            rl_buf_puts(&b, "</td><td>");
            esc(&b, jstr(m, "model"));
            rl_buf_puts(&b, "</td><td>");
            esc(&b, jstr(m, "lora"));
            rl_buf_puts(&b, "</td></tr>\n");
        }
        rl_buf_puts(&b, "</tbody></table>\n");
    }
    section_metrics(&b, json_object_get(report, "metrics"));
    section_retrieval(&b, json_object_get(report, "retrieval"));
    section_k_sweep(&b, json_object_get(report, "k_sweep"));
    section_loss(&b, json_object_get(report, "train_curves"));
    section_samples(&b, json_object_get(report, "samples"));
    const json_t *cfg = json_object_get(report, "config");
    if (cfg) {
        char *text = json_dumps(cfg, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        rl_buf_puts(&b, "<section id=\"config\"><h2>Configuration</h2>\n<p>The resolved configuration (every key, defaults filled in, "
                        "paths resolved).</p><pre>");
        esc(&b, text);
        rl_buf_puts(&b, "</pre></section>\n");
        free(text);
    }
    rl_buf_puts(&b, "</body></html>\n");
    *html = rl_buf_take(&b);
    return RL_OK;
}

rl_status rl_report_write(const char *dir, const json_t *report, rl_error *err) {
    char *html;
    rl_status s = rl_report_html(report, &html, err);
    if (s) return s;
    char *json = json_dumps(report, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!json) {
        free(html);
        return rl_fail(err, RL_EINTERNAL, "report: cannot serialize the report");
    }
    char *jp = rl_path_join(dir, "report.json"), *hp = rl_path_join(dir, "report.html");
    s = rl_mkdir_p(dir, err);
    if (!s) s = rl_file_write_atomic(jp, json, strlen(json), err);
    if (!s) s = rl_file_write_atomic(hp, html, strlen(html), err);
    free(jp), free(hp), free(json), free(html);
    return s;
}

/* ---- train_log.jsonl -------------------------------------------------------------------------- */

/* Keeps at most max of the points (evenly spaced indexes, the last one always). */
static json_t *thin(json_t *pts, int max) {
    size_t n = json_array_size(pts);
    if (max <= 1 || n <= (size_t)max) return pts;
    json_t *out = json_array();
    for (int i = 0; i < max; i++) json_array_append(out, json_array_get(pts, (size_t)((double)i * (n - 1) / (max - 1) + 0.5)));
    json_decref(pts);
    return out;
}

rl_status rl_report_train_log(const char *path, int max_points, json_t **curve, int *skipped, rl_error *err) {
    *curve = NULL;
    if (skipped) *skipped = 0;
    char *text;
    size_t len;
    rl_status s = rl_file_read(path, 256u << 20, &text, &len, err);
    if (s) return s;
    json_t *train = json_array(), *eval = json_array();
    int bad = 0;
    for (char *p = text; p < text + len;) {
        char *nl = memchr(p, '\n', (size_t)(text + len - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(text + len - p);
        size_t k = 0;
        while (k < n && isspace((unsigned char)p[k])) k++;
        if (k < n) {
            json_t *o = json_loadb(p, n, 0, NULL);
            double step = jnum(o, "step"), loss = jnum(o, "loss"), el = jnum(o, "eval_loss");
            if (!json_is_object(o) || !isfinite(step) || (!isfinite(loss) && !isfinite(el))) bad++;
            if (isfinite(step) && isfinite(loss)) json_array_append_new(train, json_pack("[f, f]", step, loss));
            if (isfinite(step) && isfinite(el)) json_array_append_new(eval, json_pack("[f, f]", step, el));
            json_decref(o);
        }
        p += n + 1;
    }
    free(text);
    *curve = json_object();
    json_object_set_new(*curve, "train", thin(train, max_points));
    json_object_set_new(*curve, "eval", thin(eval, max_points));
    if (skipped) *skipped = bad;
    return RL_OK;
}
