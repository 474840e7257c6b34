/* test_chunk.c - chunking invariants on generated documents: no chunk over the limit, every
 * non-space byte in some chunk, cuts only between words (except inside a word longer than a
 * chunk), overlap honoured within sections, headings start chunks; plus the readers' heading
 * detection. */
#include "test.h"

#include <ctype.h>

#include "retrieve/retrieve.h"

static unsigned rng_state = 12345;
static unsigned rnd(unsigned n) {
    rng_state = rng_state * 1103515245u + 12345u;
    return (rng_state >> 8) % n;
}

static const char *const vocab[] = {"the", "budget", "for", "2025", "is", "EUR", "1,250.00", "approved", "by", "Dr.", "Müller",
                                    "on", "March", "15,", "warranty", "lasts", "24", "months", "café", "naïve", "日本語",
                                    "😀", "v3.2.1", "(see", "section", "4.2)", "uptime", "99.95%", "and", "internationalization"};

/* A random Markdown document with headings, paragraphs, sentences and the odd giant word. */
static char *random_markdown(size_t target) {
    rl_buf b = {0};
    while (b.len < target) {
        unsigned r = rnd(100);
        if (r < 8) rl_buf_printf(&b, "\n%.*s Heading %u\n\n", (int)(1 + rnd(3)), "###", rnd(1000));
        else if (r < 10) {
            for (unsigned k = 0, n = 200 + rnd(3000); k < n; k++) rl_buf_putc(&b, (char)('a' + rnd(26)));
            rl_buf_putc(&b, ' ');
        } else {
            unsigned words = 5 + rnd(40);
            for (unsigned w = 0; w < words; w++) rl_buf_printf(&b, "%s%s", vocab[rnd(sizeof vocab / sizeof *vocab)], w + 1 < words ? (rnd(10) ? " " : "\t") : "");
            rl_buf_puts(&b, rnd(3) ? ". " : ".\n\n");
        }
    }
    return rl_buf_take(&b);
}

static int space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

static void check_invariants(const rl_doc *d, const rl_chunk_opts *o, rl_chunk *ch, size_t n) {
    CHECK(n > 0);
    unsigned char *covered = rl_xcalloc(d->len + 1, 1);
    for (size_t i = 0; i < n; i++) {
        size_t tok = o->count ? o->count(o->count_ctx, d->text + ch[i].start, ch[i].end - ch[i].start)
                              : rl_estimate_tokens(NULL, d->text + ch[i].start, ch[i].end - ch[i].start);
        CHECK_MSG(tok <= (size_t)o->size, "chunk %zu has %zu tokens > %d", i, tok, o->size);
        CHECK_EQ_INT(ch[i].n_tokens, tok);
        CHECK(ch[i].start < ch[i].end && ch[i].end <= d->len);
        CHECK(!space(d->text[ch[i].start]) && !space(d->text[ch[i].end - 1]));
        /* cuts between words, unless the word alone is longer than a chunk */
        int start_ok = ch[i].start == 0 || space(d->text[ch[i].start - 1]);
        int end_ok = ch[i].end == d->len || space(d->text[ch[i].end]);
        if (!start_ok || !end_ok) {
            size_t ws = ch[i].start, we = ch[i].end;
            if (!start_ok) { while (ws > 0 && !space(d->text[ws - 1])) ws--; }
            if (!end_ok) { while (we < d->len && !space(d->text[we])) we++; }
            size_t wl = !start_ok ? ch[i].start : ch[i].end;
            while (wl > 0 && !space(d->text[wl - 1])) wl--;
            size_t wr = wl;
            while (wr < d->len && !space(d->text[wr])) wr++;
            CHECK_MSG(rl_estimate_tokens(NULL, d->text + wl, wr - wl) > (size_t)o->size || o->count,
                      "chunk %zu cuts inside a short word", i);
            /* never inside a UTF-8 character */
            CHECK(((unsigned char)d->text[ch[i].start] & 0xC0) != 0x80);
        }
        if (i > 0) {
            CHECK_MSG(ch[i].start > ch[i - 1].start, "chunks out of order");
            if (ch[i].start < ch[i - 1].end) { /* overlap: whole words, at most `overlap` tokens */
                size_t ov = rl_estimate_tokens(NULL, d->text + ch[i].start, ch[i - 1].end - ch[i].start);
                if (!o->count) CHECK_MSG(ov <= (size_t)o->overlap, "overlap %zu > %d", ov, o->overlap);
                CHECK(o->overlap > 0);
            }
        }
        for (size_t k = ch[i].start; k < ch[i].end; k++) covered[k] = 1;
    }
    for (size_t k = 0; k < d->len; k++)
        if (!space(d->text[k]) && !covered[k]) {
            CHECK_MSG(0, "byte %zu ('%c') is in no chunk", k, d->text[k]);
            break;
        }
    free(covered);
}

static rl_doc doc_from(const char *path, const char *text) {
    rl_doc_list l;
    rl_error err;
    RL_ASSERT(rl_read_document(path, text, strlen(text), &l, &err) == RL_OK);
    RL_ASSERT(l.n == 1);
    rl_doc d = l.docs[0];
    free(l.docs);
    free(l.warning);
    return d;
}

static void doc_free(rl_doc *d) {
    rl_doc_list l = {.docs = rl_xmalloc(sizeof *d), .n = 1};
    l.docs[0] = *d;
    rl_doc_list_free(&l);
}

TEST(chunk_invariants_random_documents) {
    const int sizes[][2] = {{16, 0}, {32, 8}, {64, 16}, {256, 32}, {512, 100}, {100, 99}};
    for (int round = 0; round < 30; round++) {
        char *text = random_markdown(2000 + rnd(40000));
        rl_doc d = doc_from("r.md", text);
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
            rl_chunk_opts o = {.size = sizes[s][0], .overlap = sizes[s][1]};
            rl_chunk *ch;
            size_t n;
            rl_error err;
            CHECK_OK(rl_chunk_document(&d, &o, &ch, &n, &err));
            check_invariants(&d, &o, ch, n);
            rl_chunks_free(ch, n);
        }
        doc_free(&d);
        free(text);
    }
}

/* A counter that is not additive over words (like BPE merging across a space): bytes / 3. */
static size_t bytes_over_3(void *ctx, const char *s, size_t n) { return (n + 2) / 3; }

TEST(chunk_with_non_additive_counter_stays_under_limit) {
    for (int round = 0; round < 10; round++) {
        char *text = random_markdown(20000);
        rl_doc d = doc_from("r.md", text);
        rl_chunk_opts o = {.size = 50, .overlap = 10, .count = bytes_over_3};
        rl_chunk *ch;
        size_t n;
        rl_error err;
        CHECK_OK(rl_chunk_document(&d, &o, &ch, &n, &err));
        check_invariants(&d, &o, ch, n);
        rl_chunks_free(ch, n);
        doc_free(&d);
        free(text);
    }
}

TEST(chunk_overlap_is_used_within_a_section) {
    rl_buf b = {0};
    for (int i = 0; i < 400; i++) rl_buf_printf(&b, "word%d ", i);
    rl_doc d = doc_from("a.txt", b.data);
    rl_chunk_opts o = {.size = 40, .overlap = 10};
    rl_chunk *ch;
    size_t n;
    rl_error err;
    CHECK_OK(rl_chunk_document(&d, &o, &ch, &n, &err));
    CHECK(n > 10);
    for (size_t i = 1; i < n; i++) {
        CHECK_MSG(ch[i].start < ch[i - 1].end, "chunks %zu and %zu do not overlap", i - 1, i);
        size_t ov = rl_estimate_tokens(NULL, d.text + ch[i].start, ch[i - 1].end - ch[i].start);
        CHECK_MSG(ov >= 8 && ov <= 10, "overlap %zu tokens, want 8..10", ov);
    }
    rl_chunks_free(ch, n);
    doc_free(&d);
    rl_buf_free(&b);
}

TEST(chunk_headings_start_chunks_and_give_paths) {
    const char *md = "# Handbook\n\nIntro text.\n\n## Travel\n\nThe daily meal allowance is EUR 45.00. "
                     "More words here to make the section longer than one tiny chunk of text.\n\n"
                     "### Hotels\n\nHotels up to EUR 150 per night in most cities of the region.\n\n"
                     "## Leave\n\nEmployees get 30 days of paid leave per year.\n";
    rl_doc d = doc_from("h.md", md);
    CHECK_EQ_INT(d.n_headings, 4);
    CHECK_EQ_STR(d.title, "Handbook");
    rl_chunk_opts o = {.size = 24, .overlap = 4};
    rl_chunk *ch;
    size_t n;
    rl_error err;
    CHECK_OK(rl_chunk_document(&d, &o, &ch, &n, &err));
    check_invariants(&d, &o, ch, n);
    int saw_hotels = 0, saw_leave = 0;
    for (size_t i = 0; i < n; i++) {
        char *t = rl_xstrndup(d.text + ch[i].start, ch[i].end - ch[i].start);
        if (strstr(t, "Hotels up to")) {
            CHECK_EQ_STR(ch[i].heading, "Handbook > Travel > Hotels");
            saw_hotels = 1;
        }
        if (strncmp(t, "## Leave", 8) == 0) {
            CHECK_EQ_STR(ch[i].heading, "Handbook > Leave");
            saw_leave = 1;
        }
        /* a chunk never ends with a dangling heading line */
        CHECK(!(strstr(t, "## Leave") && !strstr(t, "30 days")));
        free(t);
    }
    CHECK(saw_hotels && saw_leave);
    rl_chunks_free(ch, n);
    doc_free(&d);
}

TEST(chunk_small_sections_are_merged) {
    rl_doc d = doc_from("s.md", "# A\n\none.\n\n## B\n\ntwo.\n\n## C\n\nthree.\n");
    rl_chunk_opts o = {.size = 256, .overlap = 32};
    rl_chunk *ch;
    size_t n;
    rl_error err;
    CHECK_OK(rl_chunk_document(&d, &o, &ch, &n, &err));
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_STR(ch[0].heading, "A");
    rl_chunks_free(ch, n);
    doc_free(&d);
}

TEST(chunk_giant_word_is_split_on_characters) {
    rl_buf b = {0};
    rl_buf_puts(&b, "start ");
    for (int i = 0; i < 100000; i++) rl_buf_puts(&b, i % 7 ? "x" : "é");
    rl_buf_puts(&b, " end");
    rl_doc d = doc_from("g.txt", b.data);
    rl_chunk_opts o = {.size = 64, .overlap = 8};
    rl_chunk *ch;
    size_t n;
    rl_error err;
    CHECK_OK(rl_chunk_document(&d, &o, &ch, &n, &err));
    check_invariants(&d, &o, ch, n);
    CHECK(n > 100);
    rl_chunks_free(ch, n);
    doc_free(&d);
    rl_buf_free(&b);
}

TEST(chunk_estimate_is_documented_behaviour) {
    CHECK_EQ_INT(rl_estimate_tokens(NULL, "hello", 5), 1);
    CHECK_EQ_INT(rl_estimate_tokens(NULL, "internationalization", 20), 4);
    CHECK_EQ_INT(rl_estimate_tokens(NULL, "1,250.00", 8), 5); /* 1 , 250 . 00 */
    CHECK_EQ_INT(rl_estimate_tokens(NULL, "日本語", strlen("日本語")), 3);
    CHECK_EQ_INT(rl_estimate_tokens(NULL, "  \n\t ", 5), 0);
    const char *s = "The budget is EUR 1,250.00.";
    CHECK_EQ_INT(rl_estimate_tokens(NULL, s, strlen(s)), 1 + 1 + 1 + 1 + 5 + 1);
}

TEST(reader_markdown_headings) {
    const char *md = "Title\n=====\n\nText.\n\n```\n# not a heading\n```\n\nSub\n---\n\n#### Deep ####\n\n#hashtag is not a heading\n";
    rl_doc d = doc_from("x.md", md);
    CHECK_EQ_INT(d.n_headings, 3);
    if (d.n_headings == 3) {
        CHECK_EQ_STR(d.headings[0].title, "Title");
        CHECK_EQ_INT(d.headings[0].level, 1);
        CHECK_EQ_STR(d.headings[1].title, "Sub");
        CHECK_EQ_INT(d.headings[1].level, 2);
        CHECK_EQ_STR(d.headings[2].title, "Deep");
        CHECK_EQ_INT(d.headings[2].level, 4);
    }
    doc_free(&d);
}

TEST(reader_rst_headings) {
    const char *rst = "=========\nHandbook\n=========\n\nIntro.\n\nTravel\n======\n\nText.\n\nMeals\n-----\n\nEUR 45.\n\nLeave\n======\n\n30 days.\n";
    rl_doc d = doc_from("x.rst", rst);
    CHECK_EQ_INT(d.n_headings, 4);
    if (d.n_headings == 4) {
        CHECK_EQ_STR(d.headings[0].title, "Handbook");
        CHECK_EQ_INT(d.headings[0].level, 1);
        CHECK_EQ_STR(d.headings[1].title, "Travel");
        CHECK_EQ_INT(d.headings[1].level, 2);
        CHECK_EQ_STR(d.headings[2].title, "Meals");
        CHECK_EQ_INT(d.headings[2].level, 3);
        CHECK_EQ_INT(d.headings[3].level, 2);
    }
    rl_chunk_opts o = {.size = 8, .overlap = 0};
    rl_chunk *ch;
    size_t n;
    rl_error err;
    CHECK_OK(rl_chunk_document(&d, &o, &ch, &n, &err));
    int found = 0;
    for (size_t i = 0; i < n; i++)
        if (strstr(ch[i].heading, "Meals")) {
            found = 1;
            CHECK_EQ_STR(ch[i].heading, "Handbook > Travel > Meals");
        }
    CHECK(found);
    rl_chunks_free(ch, n);
    doc_free(&d);
}

TEST(reader_html_drops_scripts_keeps_structure) {
    const char *html = "<!DOCTYPE html><html><head><title> Price  list </title><style>body{color:red}</style>"
                       "<script>var secret = 'SCRIPTTEXT';</script></head><body><nav>Home</nav>"
                       "<h1>Products</h1><p>The AR-700X costs <b>EUR&nbsp;48,900</b>.</p>"
                       "<table><tr><th>Model</th><th>Price</th></tr><tr><td>AR-90</td><td>EUR 9,900</td></tr></table>"
                       "<h2>Notes</h2><ul><li>one</li><li>two</li></ul><script>alert('x')</script><p>caf&eacute; &#1; end</p></body></html>";
    rl_doc d = doc_from("p.html", html);
    CHECK_EQ_STR(d.title, "Price list");
    CHECK(strstr(d.text, "SCRIPTTEXT") == NULL);
    CHECK(strstr(d.text, "color:red") == NULL);
    CHECK(strstr(d.text, "alert") == NULL);
    CHECK_CONTAINS(d.text, "The AR-700X costs EUR\xc2\xa0" "48,900.");
    CHECK_CONTAINS(d.text, "AR-90 | EUR 9,900");
    CHECK_CONTAINS(d.text, "- one\n- two");
    CHECK_CONTAINS(d.text, "café");
    CHECK_EQ_INT(d.n_headings, 2);
    if (d.n_headings == 2) {
        CHECK_EQ_STR(d.headings[0].title, "Products");
        CHECK_EQ_STR(d.headings[1].title, "Notes");
        CHECK(strncmp(d.text + d.headings[1].start, "Notes", 5) == 0);
    }
    for (size_t i = 0; i < d.len; i++) CHECK((unsigned char)d.text[i] >= 0x20 || d.text[i] == '\n' || d.text[i] == '\t');
    doc_free(&d);
}

/* A minimal but valid one-page PDF with a text layer (offsets computed for the xref). */
static char *make_pdf(const char *line1, const char *line2, size_t *len) {
    rl_buf b = {0};
    size_t off[6];
    char *content = t_fmt("BT /F1 12 Tf 72 720 Td (%s) Tj 0 -16 Td (%s) Tj ET", line1, line2);
    rl_buf_puts(&b, "%PDF-1.4\n");
    off[1] = b.len;
    rl_buf_puts(&b, "1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n");
    off[2] = b.len;
    rl_buf_puts(&b, "2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n");
    off[3] = b.len;
    rl_buf_puts(&b, "3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
                    "/Resources << /Font << /F1 5 0 R >> >> >> endobj\n");
    off[4] = b.len;
    rl_buf_printf(&b, "4 0 obj << /Length %zu >> stream\n%s\nendstream endobj\n", strlen(content), content);
    off[5] = b.len;
    rl_buf_puts(&b, "5 0 obj << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> endobj\n");
    size_t xref = b.len;
    rl_buf_puts(&b, "xref\n0 6\n0000000000 65535 f \n");
    for (int i = 1; i < 6; i++) rl_buf_printf(&b, "%010zu 00000 n \n", off[i]);
    rl_buf_printf(&b, "trailer << /Size 6 /Root 1 0 R >>\nstartxref\n%zu\n%%%%EOF\n", xref);
    free(content);
    *len = b.len;
    return rl_buf_take(&b);
}

TEST(reader_pdf_text) {
    size_t len;
    char *pdf = make_pdf("The warranty lasts 24 months.", "Support: +49 30 1234 567", &len);
    rl_doc_list l;
    rl_error err;
    CHECK_OK(rl_read_document("w.pdf", pdf, len, &l, &err));
    CHECK_EQ_INT(l.n, 1);
    if (l.n) {
        CHECK_CONTAINS(l.docs[0].text, "The warranty lasts 24 months.");
        CHECK_CONTAINS(l.docs[0].text, "+49 30 1234 567");
    }
    rl_doc_list_free(&l);
    /* damaged PDFs are errors, not crashes */
    CHECK_EQ_INT(rl_read_document("bad.pdf", pdf, len / 2, &l, &err), RL_EFORMAT);
    CHECK_EQ_INT(rl_read_document("bad.pdf", "%PDF-1.4 garbage", 16, &l, &err), RL_EFORMAT);
    CHECK_EQ_INT(rl_read_document("bad.pdf", "hello", 5, &l, &err), RL_EFORMAT);
    free(pdf);
}

TEST(reader_jsonl_records) {
    const char *jl = "{\"id\": \"faq-1\", \"title\": \"Masks\", \"text\": \"Wear a mask indoors.\"}\n"
                     "not json\n"
                     "{\"text\": 5}\n"
                     "\n"
                     "{\"id\": 7, \"text\": \"Second record.\"}\n"
                     "{\"text\": \"No id here.\"}\n"
                     "{\"id\": \"faq-1\", \"text\": \"Duplicate id.\"}\n";
    rl_doc_list l;
    rl_error err;
    CHECK_OK(rl_read_document("f.jsonl", jl, strlen(jl), &l, &err));
    CHECK_EQ_INT(l.n, 4);
    if (l.n == 4) {
        CHECK_EQ_STR(l.docs[0].key, "faq-1");
        CHECK_EQ_STR(l.docs[0].title, "Masks");
        CHECK_EQ_STR(l.docs[1].key, "7");
        CHECK_EQ_STR(l.docs[2].key, "line 6");
        CHECK(strcmp(l.docs[3].key, "faq-1") != 0);
    }
    CHECK_CONTAINS(l.warning, "2 bad line(s) skipped (first: line 2: invalid JSON");
    rl_doc_list_free(&l);
    CHECK_EQ_INT(rl_read_document("f.jsonl", "{\"a\":1}\n[1]\n", 12, &l, &err), RL_EFORMAT);
    CHECK_CONTAINS(err.msg, "no usable line");
}

TEST(reader_encodings_and_binary) {
    rl_doc_list l;
    rl_error err;
    /* Windows-1252: "café – 5 €" */
    const char latin[] = "caf\xe9 \x96 5 \x80\r\nnext line";
    CHECK_OK(rl_read_document("l.txt", latin, sizeof latin - 1, &l, &err));
    CHECK_EQ_STR(l.docs[0].text, "café – 5 €\nnext line");
    CHECK_CONTAINS(l.warning, "Windows-1252");
    rl_doc_list_free(&l);
    /* UTF-16 LE with BOM */
    const char u16[] = "\xff\xfeh\0i\0 \0\xac\x20";
    CHECK_OK(rl_read_document("u.txt", u16, sizeof u16 - 1, &l, &err));
    CHECK_EQ_STR(l.docs[0].text, "hi €");
    rl_doc_list_free(&l);
    /* UTF-8 BOM is dropped */
    CHECK_OK(rl_read_document("b.md", "\xef\xbb\xbf# T\n", 7, &l, &err));
    CHECK_EQ_STR(l.docs[0].text, "# T\n");
    rl_doc_list_free(&l);
    CHECK_EQ_INT(rl_read_document("z.txt", "ab\0cd", 5, &l, &err), RL_EFORMAT);
    CHECK_CONTAINS(err.msg, "binary");
    CHECK_EQ_INT(rl_read_document("e.txt", "", 0, &l, &err), RL_EFORMAT);
    CHECK_CONTAINS(err.msg, "empty");
    CHECK_EQ_INT(rl_read_document("w.txt", " \n\n\t ", 5, &l, &err), RL_EFORMAT);
    char ctl[64];
    for (int i = 0; i < 64; i++) ctl[i] = (char)(1 + i % 8);
    CHECK_EQ_INT(rl_read_document("c.txt", ctl, 64, &l, &err), RL_EFORMAT);
    /* a Latin-1 page where libxml2 hands back a broken sequence ("&" then "ä"): the text is still
     * valid UTF-8, the bad byte a '?' (found by fuzz/fuzz_ingest.c) */
    CHECK_OK(rl_read_document("a.html", "`&\xe4" "f", 4, &l, &err));
    CHECK(rl_utf8_valid(l.docs[0].text, l.docs[0].len));
    CHECK_EQ_STR(l.docs[0].text, "`&?f");
    rl_doc_list_free(&l);
}
