/* cmd_tokenize.c - `raftlm tokenize`: text -> token ids (or back) with a model's tokenizer.
 *
 *   raftlm tokenize --model PATH [--no-special] [--json|--pieces|--count] [TEXT]
 *   raftlm tokenize --model PATH --jsonl            one JSON string per stdin line -> one id array
 *   raftlm tokenize --model PATH --decode [IDS]     ids (JSON array or numbers) -> text
 *   raftlm tokenize --model PATH --decode --jsonl   one JSON id array per line -> one JSON string
 *   raftlm tokenize --model PATH --chat [--template NAME] < messages.json
 *
 * PATH is a tokenizer.json, a folder holding one, a .gguf file or a llama2.c tokenizer.bin.
 * Text comes from the argument or, when there is none, from stdin (all of it, as is). */
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "tokenizer/tokenizer.h"

static const char *USAGE =
    "--model PATH [--no-special] [--json|--jsonl|--pieces|--count] [--decode] [--chat [--template NAME]] [TEXT]";

static char *read_stdin(size_t *len) {
    rl_buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) rl_buf_append(&b, chunk, n);
    *len = b.len;
    return rl_buf_take(&b);
}

static void print_ids(const int32_t *ids, size_t n, int json) {
    rl_buf b = {0};
    if (json) rl_buf_putc(&b, '[');
    for (size_t i = 0; i < n; i++) rl_buf_printf(&b, i ? (json ? ",%d" : " %d") : "%d", ids[i]);
    if (json) rl_buf_putc(&b, ']');
    rl_buf_putc(&b, '\n');
    fwrite(b.data, 1, b.len, stdout);
    rl_buf_free(&b);
}

/* "1 2 3", "1,2,3" or "[1, 2, 3]" -> ids */
static int parse_ids(const char *s, int32_t **ids, size_t *n) {
    size_t cap = 16;
    *ids = rl_xmalloc(cap * sizeof **ids);
    *n = 0;
    while (*s) {
        if (strchr(" \t\r\n,[]", *s)) {
            s++;
            continue;
        }
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < INT32_MIN || v > INT32_MAX) return -1;
        if (*n == cap) *ids = rl_xrealloc(*ids, (cap *= 2) * sizeof **ids);
        (*ids)[(*n)++] = (int32_t)v;
        s = end;
    }
    return 0;
}

static int json_string_out(const char *s, size_t n) {
    json_t *j = json_stringn_nocheck(s, n);
    char *d = json_dumps(j, JSON_ENCODE_ANY);
    int ok = d != NULL;
    if (d) printf("%s\n", d);
    free(d);
    json_decref(j);
    return ok;
}

static int run_chat(rl_tokenizer *tok, const char *input, int json, int add_gen) {
    json_error_t je;
    json_t *root = json_loads(input, 0, &je);
    json_t *msgs = json_is_object(root) ? json_object_get(root, "messages") : root;
    if (!json_is_array(msgs)) {
        fprintf(stderr,
                "raftlm: --chat reads a JSON array of {\"role\", \"content\"} (or {\"messages\": [...]}) on stdin\n");
        json_decref(root);
        return 2;
    }
    size_t n = json_array_size(msgs);
    rl_chat_msg *m = rl_xcalloc(n + 1, sizeof *m);
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(msgs, i);
        m[i].role = json_string_value(json_object_get(o, "role"));
        m[i].content = json_string_value(json_object_get(o, "content"));
        if (!m[i].role || !m[i].content) {
            fprintf(stderr, "raftlm: message %zu needs string \"role\" and \"content\"\n", i);
            free(m);
            json_decref(root);
            return 2;
        }
    }
    char *out = NULL;
    rl_error err = {0};
    rl_status st = rl_tok_chat_render(tok, m, n, add_gen, &out, &err);
    int rc = 0;
    if (st) rc = cli_report(&err);
    else if (json) {
        int32_t *ids;
        size_t ni;
        st = rl_tok_encode(tok, out, strlen(out), 0, &ids, &ni, &err);
        if (st) rc = cli_report(&err);
        else {
            print_ids(ids, ni, 1);
            free(ids);
        }
    } else fputs(out, stdout);
    free(out);
    free(m);
    json_decref(root);
    return rc;
}

int cmd_tokenize(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},    {"no-special", no_argument, 0, 'n'},
        {"json", no_argument, 0, 'j'},           {"jsonl", no_argument, 0, 'l'},
        {"decode", no_argument, 0, 'd'},         {"pieces", no_argument, 0, 'p'},
        {"count", no_argument, 0, 'c'},          {"chat", no_argument, 0, 'C'},
        {"template", required_argument, 0, 't'}, {"skip-special", no_argument, 0, 's'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0},
    };
    const char *model = NULL, *tmpl = NULL;
    int no_special = 0, json = 0, jsonl = 0, decode = 0, pieces = 0, count = 0, chat = 0, skip_special = 0, c;
    while ((c = getopt_long(argc, argv, "m:", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'n': no_special = 1; break;
        case 'j': json = 1; break;
        case 'l': jsonl = 1; break;
        case 'd': decode = 1; break;
        case 'p': pieces = 1; break;
        case 'c': count = 1; break;
        case 'C': chat = 1; break;
        case 't': tmpl = optarg; break;
        case 's': skip_special = 1; break;
        case 'h': printf("usage: raftlm tokenize %s\n", USAGE); return 0;
        default: return cli_usage("tokenize", USAGE);
        }
    }
    if (!model) return cli_usage("tokenize", USAGE);
    if (optind + 1 < argc) return cli_usage("tokenize", USAGE);
    rl_tokenizer *tok = NULL;
    rl_error err = {0};
    if (rl_tok_load(&tok, model, &err)) return cli_report(&err);
    if (tmpl && rl_tok_set_chat_template(tok, tmpl, &err)) {
        rl_tok_free(tok);
        return cli_report(&err);
    }
    int rc = 0;
    if (jsonl) {
        char *line = NULL;
        size_t cap = 0;
        ssize_t got;
        long lineno = 0;
        while ((got = getline(&line, &cap, stdin)) > 0) {
            lineno++;
            json_error_t je;
            json_t *v = json_loadb(line, (size_t)got, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
            if (decode) {
                int32_t *ids = NULL;
                size_t n = 0;
                size_t i;
                json_t *x;
                int ok = json_is_array(v);
                if (ok) {
                    ids = rl_xmalloc((json_array_size(v) + 1) * sizeof *ids);
                    json_array_foreach(v, i, x) {
                        if (!json_is_integer(x) || json_integer_value(x) < INT32_MIN ||
                            json_integer_value(x) > INT32_MAX)
                            ok = 0;
                        else ids[n++] = (int32_t)json_integer_value(x);
                    }
                }
                char *text = NULL;
                size_t tl;
                if (!ok) {
                    fprintf(stderr, "raftlm: stdin line %ld: not a JSON array of integers\n", lineno);
                    rc = 1;
                } else if (rl_tok_decode(tok, ids, n, skip_special, &text, &tl, &err)) {
                    fprintf(stderr, "raftlm: stdin line %ld: %s\n", lineno, err.msg);
                    rc = 1;
                } else json_string_out(text, tl);
                free(text);
                free(ids);
            } else if (!json_is_string(v)) {
                fprintf(stderr, "raftlm: stdin line %ld: not a JSON string\n", lineno);
                rc = 1;
            } else {
                int32_t *ids;
                size_t n;
                if (rl_tok_encode(tok, json_string_value(v), json_string_length(v), !no_special, &ids, &n, &err)) {
                    fprintf(stderr, "raftlm: stdin line %ld: %s\n", lineno, err.msg);
                    rc = 1;
                } else {
                    print_ids(ids, n, 1);
                    free(ids);
                }
            }
            json_decref(v);
            if (rc) break;
        }
        free(line);
        rl_tok_free(tok);
        return rc;
    }
    size_t len = 0;
    char *text;
    if (optind < argc) {
        text = rl_xstrdup(argv[optind]);
        len = strlen(text);
    } else text = read_stdin(&len);
    if (chat) {
        rc = run_chat(tok, text, json, 1);
    } else if (decode) {
        int32_t *ids;
        size_t n;
        if (parse_ids(text, &ids, &n) != 0) {
            fprintf(stderr, "raftlm: --decode expects token ids (\"1 2 3\" or [1,2,3])\n");
            rc = 2;
        } else {
            char *out;
            size_t ol;
            if (rl_tok_decode(tok, ids, n, skip_special, &out, &ol, &err)) rc = cli_report(&err);
            else {
                if (json) json_string_out(out, ol);
                else fwrite(out, 1, ol, stdout);
                free(out);
            }
        }
        free(ids);
    } else {
        int32_t *ids;
        size_t n;
        if (rl_tok_encode(tok, text, len, !no_special, &ids, &n, &err)) rc = cli_report(&err);
        else {
            if (count) printf("%zu\n", n);
            else if (pieces) {
                for (size_t i = 0; i < n; i++) {
                    size_t pl;
                    const char *p = rl_tok_piece(tok, ids[i], &pl);
                    printf("%d\t", ids[i]);
                    json_string_out(p ? p : "", p ? pl : 0);
                }
            } else print_ids(ids, n, json);
            free(ids);
        }
    }
    free(text);
    rl_tok_free(tok);
    return rc;
}
