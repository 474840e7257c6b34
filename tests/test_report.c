/* test_report.c - the report writer (src/eval/report.c): escaping of hostile text, the charts'
 * geometry, train_log.jsonl reading, and the page rendered by headless Chromium (skipped with a
 * message when chromium is not installed). */
#include "test.h"

#include <jansson.h>
#include <math.h>

#include "core/core.h"
#include "eval/report.h"

static const char *hostile = "</script><svg onload=alert(1)><script>alert(2)</script>&amp;\"'";

/* A report as `raftlm eval` writes it, with three models, a k sweep, two loss curves and a
 * sample whose every text field is hostile. */
static json_t *fixture(void) {
    json_t *r = json_object();
    json_object_set_new(r, "created", json_string("2026-01-01T00:00:00Z"));
    json_object_set_new(r, "questions", json_string(hostile));
    json_object_set_new(r, "n_questions", json_integer(4));
    const char *models[] = {"base", "dsf", "raft"}, *modes[] = {"closed_book", "rag", "oracle"};
    json_t *rows = json_array(), *jm = json_array();
    for (int m = 0; m < 3; m++) {
        json_array_append_new(jm, json_pack("{s:s, s:s, s:n}", "name", models[m], "model", hostile, "lora"));
        for (int d = 0; d < 3; d++)
            json_array_append_new(rows, json_pack("{s:s, s:s, s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:f}", "model", models[m], "mode", modes[d], "k",
                                                  d ? 3 : 0, "n", 4, "em", 0.25 * m, "f1", 0.3 * m + 0.1 * d, "numeric_match", 0.5,
                                                  "citation_validity", 0.25, "refusal_rate", 0.0, "tokens_per_s", 123.4));
    }
    json_object_set_new(r, "models", jm);
    json_object_set_new(r, "metrics", rows);
    json_object_set_new(r, "retrieval", json_pack("[{s:s, s:i, s:f, s:f, s:f, s:f, s:f}]", "ranking", "bm25", "n", 4, "recall@1", 0.5,
                                                  "recall@3", 0.75, "recall@5", 1.0, "mrr", 0.6, "ndcg@10", 0.7));
    json_t *sweep = json_array();
    int ks[] = {1, 3, 5};
    for (int i = 0; i < 3; i++) {
        json_t *rag = json_object();
        for (int m = 0; m < 3; m++) json_object_set_new(rag, models[m], json_pack("{s:f, s:f}", "em", 0.1 * i, "f1", 0.5 * m / 2 + 0.1 * i));
        json_array_append_new(sweep, json_pack("{s:i, s:f, s:o}", "k", ks[i], "recall@k", 0.5 + 0.25 * i, "rag", rag));
    }
    json_object_set_new(r, "k_sweep", sweep);
    json_object_set_new(r, "train_curves",
                        json_pack("[{s:s, s:s, s:[[i,f],[i,f],[i,f]], s:[[i,f],[i,f]]}, {s:s, s:[[i,f],[i,f]], s:[]}]", "model", "raft", "log", hostile,
                                  "train", 1, 3.0, 2, 2.5, 3, 2.0, "eval", 0, 3.2, 3, 2.4, "model", "dsf", "train", 1, 4.0, 2, 3.0, "eval"));
    json_object_set_new(r, "samples",
                        json_pack("[{s:s, s:s, s:i, s:s, s:s, s:s, s:s, s:[s], s:[{s:s, s:s}], s:i, s:f, s:i}]", "model", "raft", "mode", "rag", "k", 3,
                                  "question", hostile, "gold", hostile, "generated", hostile, "final_answer", hostile, "quotes", hostile,
                                  "documents", "doc", hostile, "text", hostile, "em", 0, "f1", 0.5, "citation_valid", 1));
    json_object_set_new(r, "config", json_pack("{s:s}", "base_model", hostile));
    return r;
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

TEST(report_html_escape) {
    rl_buf b = {0};
    rl_html_escape(&b, hostile);
    CHECK_EQ_STR(b.data, "&lt;/script&gt;&lt;svg onload=alert(1)&gt;&lt;script&gt;alert(2)&lt;/script&gt;&amp;amp;&quot;&#39;");
    rl_buf_free(&b);
    /* invalid UTF-8 and control characters become U+FFFD; valid UTF-8 stays */
    rl_buf c = {0};
    rl_html_escape(&c, "a\xff" "b\x01" "c\xc3\xa9\xe2\x82");
    CHECK_EQ_STR(c.data, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD" "c\xc3\xa9\xEF\xBF\xBD\xEF\xBF\xBD");
    rl_buf_free(&c);
}

TEST(report_html_hostile_text_stays_text) {
    json_t *r = fixture();
    char *html;
    rl_error err = {0};
    CHECK_OK(rl_report_html(r, &html, &err));
    /* nothing of the hostile text becomes markup: no script at all, the only svg elements are
     * the charts (metrics, k sweep, two loss curves) */
    CHECK(strstr(html, "<script") == NULL);
    CHECK(strstr(html, "onload=alert(1)>") == NULL);
    CHECK_EQ_INT(count(html, "<svg "), 4);
    CHECK(count(html, "&lt;svg onload=alert(1)&gt;") >= 8); /* question, gold, answer, quote, document, config, ... */
    /* self-contained: nothing is fetched */
    CHECK(strstr(html, "src=") == NULL && strstr(html, "href=") == NULL && strstr(html, "url(") == NULL);
    /* the table: one row per model and mode */
    CHECK_EQ_INT(count(html, "<tr class=\"metrics-row\""), 9);
    CHECK(strstr(html, "data-model=\"dsf\" data-mode=\"oracle\"") != NULL);
    free(html);
    /* wrong types are left out, not trusted */
    json_t *bad = json_pack("{s:i, s:s, s:[i, s, n], s:{}, s:[{s:i, s:[s]}]}", "questions", 5, "metrics", "x", "k_sweep", 1, "x", "train_curves",
                            "samples", "question", 3, "documents", "x");
    CHECK_OK(rl_report_html(bad, &html, &err));
    CHECK(strstr(html, "</html>") != NULL);
    free(html);
    json_decref(bad);
    /* numbers no axis can show: huge, flat far from zero, a range that overflows */
    bad = json_pack("{s:[{s:s, s:[[f,f],[f,f]], s:[[f,f]]}, {s:s, s:[[f,f],[f,f]]}]}", "train_curves", "model", "a", "train", 1.0, 1e17, 2.0, 1e17,
                    "eval", 1e300, -1e300, "model", "b", "train", -1.7e308, 1.0, 1.7e308, 2.0);
    CHECK_OK(rl_report_html(bad, &html, &err));
    CHECK(strstr(html, "id=\"chart-loss-0\"") != NULL);
    free(html);
    json_decref(bad);
    CHECK(rl_report_html(json_array(), &html, &err) != RL_OK);
    json_decref(r);
}

/* The points of the first polyline after marker, as pixel coordinates. */
static int polyline_points(const char *html, const char *marker, double *xy, int max) {
    const char *p = strstr(html, marker);
    if (!p || !(p = strstr(p, "<polyline")) || !(p = strstr(p, "points=\""))) return 0;
    p += 8;
    int n = 0;
    while (*p != '"' && n < max) {
        char *end;
        xy[2 * n] = strtod(p, &end);
        if (*end != ',') break;
        xy[2 * n + 1] = strtod(end + 1, &end);
        n++;
        p = end;
        while (*p == ' ') p++;
    }
    return n;
}

TEST(report_chart_geometry) {
    /* the plot area is x 64..510, y 34..268 (W 680, H 320, margins 64/170/34/52) */
    json_t *r = fixture();
    char *html;
    CHECK_OK(rl_report_html(r, &html, NULL));
    double xy[16];
    /* k sweep, model "base": F1 0.0, 0.1, 0.2 at k 1, 3, 5 on a 0..1 axis */
    CHECK_EQ_INT(polyline_points(html, "data-name=\"base\"", xy, 8), 3);
    CHECK(fabs(xy[0] - 64) < 0.06 && fabs(xy[4] - 510) < 0.06 && fabs(xy[2] - 287) < 0.06);
    CHECK(fabs(xy[1] - 268) < 0.06 && fabs(xy[3] - (268 - 0.1 * 234)) < 0.06 && fabs(xy[5] - (268 - 0.2 * 234)) < 0.06);
    /* the loss curve of raft: steps 1..3, loss 3.0..2.0 with eval 3.2 / 2.4 at steps 0 and 3:
     * y spans 2.0..3.2 padded by 5%, x spans 0..3 */
    const char *loss = strstr(html, "id=\"chart-loss-0\"");
    CHECK(loss != NULL);
    CHECK_EQ_INT(polyline_points(loss, "data-name=\"training loss\"", xy, 8), 3);
    double y0 = 2.0 - 0.06, y1 = 3.2 + 0.06;
    CHECK(fabs(xy[0] - (64 + 446.0 / 3)) < 0.06);
    CHECK(fabs(xy[1] - (268 - (3.0 - y0) / (y1 - y0) * 234)) < 0.06);
    CHECK(fabs(xy[5] - (268 - (2.0 - y0) / (y1 - y0) * 234)) < 0.06);
    CHECK_EQ_INT(polyline_points(loss, "data-name=\"validation loss\"", xy, 8), 2);
    /* bars: raft's oracle F1 0.8 is 0.8 of the plot height */
    CHECK_CONTAINS(html, "height=\"187.2\"");
    free(html);
    json_decref(r);
}

TEST(report_train_log) {
    char *dir = t_tmpdir();
    rl_buf log = {0};
    rl_buf_puts(&log, "{\"step\": 0, \"eval_loss\": 5.5}\n");
    for (int i = 1; i <= 100; i++) rl_buf_printf(&log, "{\"step\": %d, \"epoch\": 0.1, \"loss\": %g, \"lr\": 1e-4}\n", i, 5.0 - i * 0.01);
    rl_buf_puts(&log, "not json\n{\"step\": 100, \"eval_loss\": 4.1}\n{\"step\": 101, \"loss\": nan}\n\n[1,2]\n");
    t_write(dir, "train_log.jsonl", log.data, log.len);
    rl_buf_free(&log);
    json_t *c;
    int skipped;
    CHECK_OK(rl_report_train_log(t_fmt("%s/train_log.jsonl", dir), 10, &c, &skipped, NULL));
    CHECK_EQ_INT(skipped, 3);
    json_t *train = json_object_get(c, "train"), *ev = json_object_get(c, "eval");
    CHECK_EQ_INT(json_array_size(train), 10); /* thinned from 100, first and last kept */
    CHECK(json_real_value(json_array_get(json_array_get(train, 0), 0)) == 1);
    CHECK(json_real_value(json_array_get(json_array_get(train, 9), 0)) == 100);
    CHECK(fabs(json_real_value(json_array_get(json_array_get(train, 9), 1)) - 4.0) < 1e-9);
    CHECK_EQ_INT(json_array_size(ev), 2);
    json_decref(c);
    rl_error err = {0};
    CHECK(rl_report_train_log(t_fmt("%s/absent.jsonl", dir), 10, &c, &skipped, &err) != RL_OK);
}

TEST(report_renders_in_headless_chromium) {
    char *out;
    if (t_run("command -v chromium", &out, 1) != 0) {
        free(out);
        SKIP("chromium is not installed (apt-get install chromium): the report is not rendered in a browser");
    }
    free(out);
    char *dir = t_tmpdir();
    json_t *r = fixture();
    rl_error err = {0};
    CHECK_OK(rl_report_write(dir, r, &err));
    json_decref(r);
    /* report.json is the same data */
    json_t *back = json_load_file(t_fmt("%s/report.json", dir), 0, NULL);
    CHECK(back && json_array_size(json_object_get(back, "metrics")) == 9);
    json_decref(back);
    /* the DOM after the browser parsed it: a fresh profile, no network, no GPU, no sandbox (CI
     * runs as root) */
    int rc = t_run(t_fmt("cd %s && timeout 120 chromium --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir=%s/profile "
                         "--dump-dom file://%s/report.html 2>/dev/null",
                         dir, dir, dir),
                   &out, 0);
    CHECK_EQ_INT(rc, 0);
    CHECK_CONTAINS(out, "</html>");
    /* the charts are there with their drawn lines and bars */
    const char *ids[] = {"id=\"chart-metrics\"", "id=\"chart-k-sweep\"", "id=\"chart-loss-0\"", "id=\"chart-loss-1\""};
    for (int i = 0; i < 4; i++) CHECK_CONTAINS(out, ids[i]);
    const char *sweep = strstr(out, "id=\"chart-k-sweep\"");
    CHECK(sweep && count(sweep, "<polyline") >= 4);
    CHECK_EQ_INT(count(out, "<rect class=\"bar\""), 9); /* base closed_book has F1 0: a bar of height 0 */
    /* the table, one row per model and mode, in the order given */
    CHECK_EQ_INT(count(out, "<tr class=\"metrics-row\""), 9);
    CHECK_CONTAINS(out, "<tr class=\"metrics-row\" data-model=\"raft\" data-mode=\"rag\"><td>raft</td><td>rag</td><td class=\"num\">3</td>");
    CHECK_EQ_INT(count(out, "<tr class=\"k-sweep-row\""), 3);
    /* the hostile text is text in the DOM, not elements */
    CHECK(strstr(out, "<script") == NULL);
    CHECK(strstr(out, "<svg onload") == NULL);
    CHECK_CONTAINS(out, "&lt;svg onload=alert(1)&gt;");
    free(out);
    /* and it paints: a screenshot is a PNG */
    rc = t_run(t_fmt("cd %s && timeout 120 chromium --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir=%s/profile "
                     "--window-size=1000,3000 --screenshot=%s/shot.png file://%s/report.html >/dev/null 2>&1",
                     dir, dir, dir, dir),
               &out, 1);
    free(out);
    CHECK_EQ_INT(rc, 0);
    char *png;
    size_t len;
    CHECK_OK(rl_file_read(t_fmt("%s/shot.png", dir), 0, &png, &len, NULL));
    CHECK(len > 10000 && memcmp(png, "\x89PNG", 4) == 0);
    free(png);
}
