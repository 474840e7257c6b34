/* reader_html.c - visible text of an HTML page via libxml2's forgiving HTML parser.
 * Scripts, styles and other invisible elements are dropped; block elements become paragraph
 * breaks; h1-h6 become headings; table cells are joined with " | ", one row per line. */
#include "retrieve/reader_internal.h"

#include <libxml/HTMLparser.h>
#include <libxml/tree.h>
#include <string.h>
#include <strings.h>

typedef struct html_ctx {
    doc_builder b;
    int pre;      /* inside <pre>: keep whitespace */
    int pending;  /* 0 none, 1 space, 2 newline, 3 blank line: written before the next text */
    char *title;
} html_ctx;

static int name_in(const char *name, const char *const *list) {
    for (; *list; list++)
        if (strcasecmp(name, *list) == 0) return 1;
    return 0;
}

static const char *const skipped[] = {"script", "style", "noscript", "template", "head", "svg", "canvas", "iframe", "object", "button", "select", NULL};
static const char *const blocks[] = {"p", "div", "section", "article", "main", "header", "footer", "aside", "nav", "ul", "ol", "dl", "table",
                                     "thead", "tbody", "tfoot", "blockquote", "pre", "form", "fieldset", "figure", "figcaption", "address",
                                     "details", "summary", "hr", "body", "html", "center", NULL};
static const char *const lines[] = {"li", "dt", "dd", "tr", "caption", "option", NULL};

static void want_break(html_ctx *c, int level) {
    if (c->b.text.len == 0) return; /* nothing to separate yet */
    if (level > c->pending) c->pending = level;
}

static void flush_pending(html_ctx *c) {
    if (c->b.text.len == 0) {
        c->pending = 0;
        return;
    }
    if (c->pending == 1) rl_buf_putc(&c->b.text, ' ');
    else if (c->pending == 2) rl_buf_putc(&c->b.text, '\n');
    else if (c->pending == 3) rl_buf_puts(&c->b.text, "\n\n");
    c->pending = 0;
}

static void add_text(html_ctx *c, const char *s) {
    for (const char *p = s; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        int space = ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f';
        if (c->pre) {
            if (!space || ch == ' ' || ch == '\t' || ch == '\n') {
                flush_pending(c);
                rl_buf_putc(&c->b.text, ch == '\t' || ch == '\n' ? (char)ch : (char)(space ? ' ' : ch));
            }
            continue;
        }
        if (space) {
            if (c->b.text.len && c->pending == 0) {
                char last = c->b.text.data[c->b.text.len - 1];
                if (last != ' ' && last != '\n') c->pending = 1;
            }
            continue;
        }
        flush_pending(c);
        rl_buf_putc(&c->b.text, (char)ch);
    }
}

static void walk(html_ctx *c, xmlNode *n, int depth) {
    if (depth > 512) return; /* absurdly nested pages: keep what we have */
    for (; n; n = n->next) {
        if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
            if (n->content) add_text(c, (const char *)n->content);
            continue;
        }
        if (n->type != XML_ELEMENT_NODE) continue;
        const char *name = (const char *)n->name;
        if (strcasecmp(name, "title") == 0) {
            if (!c->title) {
                xmlChar *t = xmlNodeGetContent(n);
                if (t) c->title = rl_xstrdup((const char *)t);
                xmlFree(t);
            }
            continue;
        }
        if (name_in(name, skipped)) {
            /* <head> may hold <title>: look inside it for that only */
            if (strcasecmp(name, "head") == 0)
                for (xmlNode *k = n->children; k; k = k->next)
                    if (k->type == XML_ELEMENT_NODE && strcasecmp((const char *)k->name, "title") == 0 && !c->title) {
                        xmlChar *t = xmlNodeGetContent(k);
                        if (t) c->title = rl_xstrdup((const char *)t);
                        xmlFree(t);
                    }
            continue;
        }
        if (name[0] && (name[0] == 'h' || name[0] == 'H') && name[1] >= '1' && name[1] <= '6' && name[2] == 0) {
            want_break(c, 3);
            flush_pending(c);
            size_t start = c->b.text.len;
            walk(c, n->children, depth + 1);
            doc_builder_heading(&c->b, start, name[1] - '0', c->b.text.data ? c->b.text.data + start : "", c->b.text.len - start);
            want_break(c, 3);
            continue;
        }
        if (strcasecmp(name, "br") == 0) {
            want_break(c, 2);
            continue;
        }
        int is_block = name_in(name, blocks), is_line = name_in(name, lines);
        int is_cell = strcasecmp(name, "td") == 0 || strcasecmp(name, "th") == 0;
        int is_pre = strcasecmp(name, "pre") == 0;
        if (is_block) want_break(c, 3);
        else if (is_line) want_break(c, 2);
        else if (is_cell && c->b.text.len && c->b.text.data[c->b.text.len - 1] != '\n' && c->pending < 2) {
            flush_pending(c);
            int first = 1;
            for (xmlNode *s = n->prev; s; s = s->prev)
                if (s->type == XML_ELEMENT_NODE) first = 0;
            if (!first) rl_buf_puts(&c->b.text, " | ");
        }
        if (strcasecmp(name, "li") == 0) {
            flush_pending(c);
            rl_buf_puts(&c->b.text, "- ");
        }
        c->pre += is_pre;
        walk(c, n->children, depth + 1);
        c->pre -= is_pre;
        if (is_block) want_break(c, 3);
        else if (is_line) want_break(c, 2);
    }
}

rl_status read_html(const char *data, size_t len, rl_doc_list *out, rl_error *err) {
    if (len > (size_t)0x7fffffff) return rl_fail(err, RL_EFORMAT, "HTML file too large");
    if (memchr(data, 0, len < 8192 ? len : 8192)) return rl_fail(err, RL_EFORMAT, "binary file (contains NUL bytes)");
    /* Valid UTF-8 is read as UTF-8 whatever the page claims; otherwise libxml2 decides from
     * the <meta charset> (its default is ISO-8859-1). */
    const char *enc = rl_utf8_valid(data, len) ? "UTF-8" : NULL;
    htmlDocPtr doc = htmlReadMemory(data, (int)len, NULL, enc,
                                    HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_NONET | HTML_PARSE_NOIMPLIED);
    if (!doc) return rl_fail(err, RL_EFORMAT, "cannot parse HTML");
    html_ctx c = {0};
    walk(&c, xmlDocGetRootElement(doc) ? doc->children : NULL, 0);
    xmlFreeDoc(doc);
    /* trim trailing whitespace */
    while (c.b.text.len && (c.b.text.data[c.b.text.len - 1] == ' ' || c.b.text.data[c.b.text.len - 1] == '\n')) c.b.text.data[--c.b.text.len] = 0;
    if (!c.b.text.data) rl_buf_puts(&c.b.text, "");
    /* control characters from character references (&#1;) would confuse what comes later */
    for (size_t i = 0; i < c.b.text.len; i++)
        if ((unsigned char)c.b.text.data[i] < 0x20 && c.b.text.data[i] != '\n' && c.b.text.data[i] != '\t') c.b.text.data[i] = ' ';
    /* normalize the title's whitespace */
    if (c.title) {
        char *w = c.title;
        int sp = 0;
        for (char *r = c.title; *r; r++) {
            if (*r == ' ' || *r == '\n' || *r == '\t' || *r == '\r') sp = (w != c.title);
            else {
                if (sp) *w++ = ' ';
                sp = 0;
                *w++ = *r;
            }
        }
        *w = 0;
    }
    doc_list_push(out, &c.b, "", c.title);
    free(c.title);
    return RL_OK;
}
