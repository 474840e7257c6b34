/* figures.c - figures in text (digit runs such as 484085, EUR 524,410, 2025-11-30) and random
 * ones of the same shape: the counterfactual copies of RAFT examples and of pretraining passages,
 * whose figures a model can only get right by reading them, never by recalling them. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "synth/synth_internal.h"

char *rl_figure_replace(const char *text, const char *from, const char *to, int *n) {
    rl_buf b = {0};
    size_t len = strlen(from);
    const char *p = text;
    for (const char *q; len && (q = strstr(p, from));) {
        int whole = (q == text || !isalnum((unsigned char)q[-1]) || !isalnum((unsigned char)from[0])) &&
                    (!isalnum((unsigned char)q[len]) || !isalnum((unsigned char)from[len - 1]));
        for (; p < q; p++) rl_buf_putc(&b, *p);
        rl_buf_puts(&b, whole ? to : from);
        if (whole) (*n)++;
        p = q + len;
    }
    rl_buf_puts(&b, p);
    return rl_buf_take(&b);
}

static int is_iso_date(const char *s) {
    static const char shape[] = "dddd-dd-dd";
    for (int i = 0; i < 10; i++)
        if (shape[i] == 'd' ? s[i] < '0' || s[i] > '9' : s[i] != '-') return 0;
    return !isalnum((unsigned char)s[10]);
}

/* A run's leading digit stays non-zero (or zero), so lengths and formats hold. An ISO date stays a
 * real date within five years of the original, so it reads (and tokenizes) like the real ones. */
char *rl_figure_random(const char *fig, uint64_t *rng) {
    if (is_iso_date(fig) && atoi(fig) >= 1005 && atoi(fig) <= 9994) {
        int year = atoi(fig);
        for (int attempt = 0; attempt < 8; attempt++) {
            char *s = rl_xasprintf("%04d-%02d-%02d%s", year - 5 + (int)(rl_splitmix(rng) % 11), 1 + (int)(rl_splitmix(rng) % 12),
                                   1 + (int)(rl_splitmix(rng) % 28), fig + 10);
            if (strcmp(s, fig) != 0) return s;
            free(s);
        }
    }
    char *s = rl_xstrdup(fig);
    for (int attempt = 0; attempt < 8 && strcmp(s, fig) == 0; attempt++)
        for (char *p = s; *p; p++) {
            if (*p < '0' || *p > '9') continue;
            int lead = p == s || p[-1] < '0' || p[-1] > '9';
            if (lead && fig[p - s] == '0') continue;
            *p = (char)(lead ? '1' + rl_splitmix(rng) % 9 : '0' + rl_splitmix(rng) % 10);
        }
    return s;
}

/* the length of the figure at text (digits, and one of , . - between digits), 0 when none starts
 * there; a digit glued to a letter before it ("x86", "H2O") is part of a name, not a figure */
static size_t figure_at(const char *text, size_t at, size_t len) {
    if (!isdigit((unsigned char)text[at]) || (at > 0 && isalnum((unsigned char)text[at - 1]))) return 0;
    size_t e = at;
    while (e < len && (isdigit((unsigned char)text[e]) ||
                       (strchr(",.-", text[e]) && e + 1 < len && isdigit((unsigned char)text[e + 1]) && isdigit((unsigned char)text[e - 1]))))
        e++;
    return e < len && isalpha((unsigned char)text[e]) ? 0 : e - at; /* "2nd", "30x" */
}

char *rl_figures_randomize(const char *text, size_t len, uint64_t *rng) {
    struct { char *from, *to; } *map = NULL;
    size_t n_map = 0, cap = 0;
    rl_buf b = {0};
    for (size_t i = 0; i < len;) {
        size_t n = figure_at(text, i, len);
        if (!n) {
            rl_buf_putc(&b, text[i++]);
            continue;
        }
        char *fig = rl_xasprintf("%.*s", (int)n, text + i);
        size_t k = 0;
        while (k < n_map && strcmp(map[k].from, fig) != 0) k++;
        if (k == n_map) {
            if (n_map == cap) map = rl_xrealloc(map, (cap = cap ? 2 * cap : 16) * sizeof *map);
            map[n_map].from = fig;
            map[n_map++].to = rl_figure_random(fig, rng);
        } else
            free(fig);
        rl_buf_puts(&b, map[k].to);
        i += n;
    }
    for (size_t k = 0; k < n_map; k++) free(map[k].from), free(map[k].to);
    free(map);
    return rl_buf_take(&b);
}
