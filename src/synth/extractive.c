/* extractive.c - the offline teacher: questions a person would ask about the facts a chunk
 * states, with answers quoted from it. No model, fully deterministic.
 *
 * The chunk is cut into units: sentences of paragraphs, list items, "Key: value" lines and
 * table rows (with their header). In each unit a figure is located (an amount, a percentage,
 * a date, a duration or other quantity, a version, a model number) and a few sentence shapes
 * are turned into questions:
 *   "The daily meal allowance is EUR 45.00."        -> "What is the daily meal allowance?"
 *   "For day trips, the allowance is EUR 22.50."     -> "What is the allowance for day trips?"
 *   "The AR-90 costs EUR 9,900."                     -> "How much does the AR-90 cost?"
 *   "The warranty lasts 24 months."                  -> "How long does the warranty last?"
 *   "The AR-700X has a payload of 1,500 kg."         -> "What payload does the AR-700X have?"
 *   "Acme was founded on 2012-05-04."                -> "When was Acme founded?"
 *   "Launched: 2022-09-20" (under "AR-700X Atlas")   -> "When was the AR-700X Atlas launched?"
 *   table "Item | Limit" row "Hotel, Germany | EUR 150.00" -> "What is the limit for hotel, Germany?"
 * The answer is the figure itself; the quote is the whole unit, verbatim.
 * Deliberately not attempted: facts without a figure (definitions, names only), which a
 * template cannot phrase reliably; an LLM teacher covers those. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "synth/synth.h"

enum { FIG_NONE, FIG_NUMBER, FIG_MODEL, FIG_VERSION, FIG_TIME, FIG_QUANTITY, FIG_DATE, FIG_PERCENT, FIG_MONEY };

static const char *const months[] = {"January", "February", "March", "April", "May", "June", "July", "August", "September",
                                     "October", "November", "December", "Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug",
                                     "Sep", "Sept", "Oct", "Nov", "Dec", NULL};
static const char *const currencies[] = {"EUR ", "USD ", "GBP ", "CHF ", "€", "$", "£", NULL};
/* longest first where one is a prefix of another */
static const char *const units[] = {
    "business hours", "business hour", "business days", "business day", "working days", "working day", "calendar days",
    "calendar day", "calendar months", "calendar month", "calendar years", "hours", "hour", "minutes", "minute",
    "seconds", "second", "days", "day", "weeks", "week", "months", "month", "years", "year", "kg", "km/h", "km", "mm", "cm",
    "m/s", "m²", "m2", "m", "kWh", "Wh", "kW", "W", "V", "Ah", "mAh", "GB", "TB", "MB", "ms", "employees", "people", "staff",
    "robots", "units", "pallets", "nights", "night", "sites", "offices", "customers", "times", "degrees", "°C", "h", "min",
    "percent", "per cent", "dB", "lux", "t", "tonnes", "kilograms", "metres", "meters", "kilometres", NULL};

static int word_start(const char *s, size_t i) { return i == 0 || !isalnum((unsigned char)s[i - 1]); }

static size_t match_word(const char *s, size_t i, const char *w) {
    size_t n = strlen(w);
    if (strncmp(s + i, w, n) != 0) return 0;
    if (isalnum((unsigned char)w[n - 1]) && isalnum((unsigned char)s[i + n])) return 0;
    return n;
}

/* digits with , and . inside ("1,250.00", "99.95", "2025") */
static size_t number_len(const char *s, size_t i) {
    size_t k = i;
    if (!isdigit((unsigned char)s[k])) return 0;
    while (isdigit((unsigned char)s[k]) || ((s[k] == ',' || s[k] == '.') && isdigit((unsigned char)s[k + 1]))) k++;
    return k - i;
}

static size_t skip_spaces(const char *s, size_t i) {
    while (s[i] == ' ') i++;
    return i;
}

/* A figure starting exactly at i: its kind and end. */
static int figure_at(const char *s, size_t i, size_t *end) {
    if (!word_start(s, i) && !(i > 0 && (unsigned char)s[i] >= 0x80)) return FIG_NONE;
    size_t n;
    for (int c = 0; currencies[c]; c++) {
        size_t cl = strlen(currencies[c]);
        if (strncmp(s + i, currencies[c], cl) == 0 && (n = number_len(s, i + cl)) > 0) {
            size_t e = i + cl + n;
            if (match_word(s, e, " million")) e += 8;
            else if (match_word(s, e, " billion")) e += 8;
            *end = e;
            return FIG_MONEY;
        }
    }
    for (int m = 0; months[m]; m++) {
        size_t ml = match_word(s, i, months[m]);
        if (!ml) continue;
        size_t k = skip_spaces(s, i + ml);
        size_t d = number_len(s, k);
        if (d > 0 && d <= 2 && s[k + d] == ',' && s[k + d + 1] == ' ' && number_len(s, k + d + 2) == 4) {
            *end = k + d + 6;
            return FIG_DATE;
        }
        if (d == 4) {
            *end = k + 4;
            return FIG_DATE;
        }
        if (d > 0 && d <= 2 && !isdigit((unsigned char)s[k + d])) { /* "April 12" */
            *end = k + d;
            return FIG_DATE;
        }
        return FIG_NONE;
    }
    if (s[i] == 'v' && isdigit((unsigned char)s[i + 1]) && (n = number_len(s, i + 1)) > 0 && memchr(s + i + 1, '.', n)) {
        *end = i + 1 + n;
        return FIG_VERSION;
    }
    if (s[i] == 'Q' && s[i + 1] >= '1' && s[i + 1] <= '4' && s[i + 2] == ' ' && number_len(s, i + 3) == 4) {
        *end = i + 7;
        return FIG_DATE;
    }
    if (strncmp(s + i, "FY", 2) == 0 && number_len(s, i + 2) == 4) {
        *end = i + 6;
        return FIG_DATE;
    }
    /* model numbers and other identifiers: AR-700X, PL-2025-07, ISO 9001 is a number */
    if (isupper((unsigned char)s[i])) {
        size_t k = i;
        while (isupper((unsigned char)s[k])) k++;
        if (k - i <= 5 && s[k] == '-' && isalnum((unsigned char)s[k + 1])) {
            size_t e = k;
            int digits = 0;
            while (s[e] == '-' && isalnum((unsigned char)s[e + 1])) {
                e++;
                while (isalnum((unsigned char)s[e])) digits += isdigit((unsigned char)s[e]) != 0, e++;
            }
            if (digits) {
                *end = e;
                return FIG_MODEL;
            }
        }
        return FIG_NONE;
    }
    if ((n = number_len(s, i)) == 0) return FIG_NONE;
    size_t e = i + n;
    /* ISO date 2025-03-15 */
    if (n == 4 && s[e] == '-' && number_len(s, e + 1) == 2 && s[e + 3] == '-' && number_len(s, e + 4) == 2) {
        *end = e + 6;
        return FIG_DATE;
    }
    if (n <= 2 && s[e] == ':' && number_len(s, e + 1) == 2) {
        *end = e + 3;
        return FIG_TIME;
    }
    if (s[e] == '%') {
        *end = e + 1;
        return FIG_PERCENT;
    }
    size_t k = skip_spaces(s, e);
    if (k <= e + 1) {
        for (int c = 0; c < 4; c++) { /* 1,250.00 EUR */
            size_t cl = strlen(currencies[c]) - 1;
            if (strncmp(s + k, currencies[c], cl) == 0 && !isalnum((unsigned char)s[k + cl])) {
                *end = k + cl;
                return FIG_MONEY;
            }
        }
        if (s[k] == '%' || match_word(s, k, "percent")) {
            *end = s[k] == '%' ? k + 1 : k + 7;
            return FIG_PERCENT;
        }
        for (int m = 0; months[m] && n <= 2; m++) { /* 15 March 2025 */
            size_t ml = match_word(s, k, months[m]);
            if (ml && s[k + ml] == ' ' && number_len(s, k + ml + 1) == 4) {
                *end = k + ml + 5;
                return FIG_DATE;
            }
        }
        for (int u = 0; units[u]; u++) {
            size_t ul = match_word(s, k, units[u]);
            if (ul) {
                *end = k + ul;
                return FIG_QUANTITY;
            }
        }
    }
    *end = e;
    return FIG_NUMBER;
}

/* ---- units of a chunk ------------------------------------------------------------------- */

static int count_words(const char *s);

typedef struct unit {
    char *text;   /* verbatim */
    char *header; /* table rows: the header line */
    int kind;     /* 0 sentence, 1 list item, 2 key-value line, 3 table row */
} unit;

typedef struct unit_list {
    unit *u;
    int n, cap;
} unit_list;

static void add_unit(unit_list *l, const char *s, size_t n, int kind, const char *header) {
    while (n && isspace((unsigned char)*s)) s++, n--;
    while (n && isspace((unsigned char)s[n - 1])) n--;
    if (n < 8 || n > 600) return;
    if (l->n == l->cap) l->cap = l->cap ? 2 * l->cap : 32, l->u = rl_xrealloc(l->u, (size_t)l->cap * sizeof *l->u);
    unit *u = &l->u[l->n++];
    u->text = rl_xstrndup(s, n);
    u->header = header ? rl_xstrdup(header) : NULL;
    u->kind = kind;
}

static const char *const abbreviations[] = {"e.g.", "i.e.", "Dr.", "Mr.", "Ms.", "Mrs.", "No.", "approx.", "incl.", "etc.", "vs.",
                                            "St.", "Prof.", "Inc.", "Ltd.", "Co.", "Nr.", "ca.", "resp.", "Fig.", "Sec.", NULL};

static int ends_with_abbreviation(const char *s, size_t end) {
    for (int a = 0; abbreviations[a]; a++) {
        size_t n = strlen(abbreviations[a]);
        if (end + 1 >= n && strncmp(s + end + 1 - n, abbreviations[a], n) == 0 && (end + 1 == n || !isalpha((unsigned char)s[end - n])))
            return 1;
    }
    /* a single capital letter: "J. Smith" */
    return end >= 1 && isupper((unsigned char)s[end - 1]) && (end == 1 || s[end - 2] == ' ');
}

static void split_sentences(unit_list *l, const char *p, size_t n) {
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if ((c == '.' || c == '!' || c == '?') && i + 1 < n && isspace((unsigned char)p[i + 1])) {
            size_t k = i + 1;
            while (k < n && isspace((unsigned char)p[k])) k++;
            if (k < n && (isupper((unsigned char)p[k]) || p[k] == '"' || p[k] == '(') && !(c == '.' && ends_with_abbreviation(p, i))) {
                add_unit(l, p + start, i + 1 - start, 0, NULL);
                start = k;
                i = k - 1;
            }
        }
    }
    add_unit(l, p + start, n - start, 0, NULL);
}

static int is_table_line(const char *s, size_t n) {
    int bars = 0;
    for (size_t i = 0; i < n; i++) bars += s[i] == '|';
    return bars >= 1 && (s[0] == '|' || memmem(s, n, " | ", 3) != NULL);
}

static int is_separator_line(const char *s, size_t n) {
    int dash = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '-') dash = 1;
        else if (!strchr("|: \t", s[i])) return 0;
    }
    return dash;
}

/* "Key: value" with a short key that starts with a capital letter. */
static int is_key_value(const char *s, size_t n) {
    const char *colon = memchr(s, ':', n);
    if (!colon || colon == s || colon[1] != ' ' || !isupper((unsigned char)s[0])) return 0;
    int words = 1;
    for (const char *p = s; p < colon; p++) {
        if (*p == ' ') words++;
        if (!isalnum((unsigned char)*p) && !strchr(" -/()&'", *p) && (unsigned char)*p < 0x80) return 0;
    }
    return words <= 5;
}

static void make_units(const char *text, unit_list *l) {
    size_t n = strlen(text), i = 0;
    rl_buf para = {0};
    char *header = NULL;
    int prev_table = 0;
    while (i <= n) {
        const char *nl = memchr(text + i, '\n', n - i);
        size_t e = nl ? (size_t)(nl - text) : n;
        const char *s = text + i;
        size_t len = e - i;
        size_t k = 0;
        while (k < len && isspace((unsigned char)s[k])) k++;
        int blank = k == len;
        int heading = !blank && s[k] == '#';
        int list = !blank && ((s[k] == '-' || s[k] == '*' || s[k] == '+') && k + 1 < len && s[k + 1] == ' ');
        int table = !blank && is_table_line(s + k, len - k);
        int kv = !blank && !table && is_key_value(s + k, len - k);
        int rule = !blank && !table && len - k >= 3 && strspn(s + k, "-=*_~#+. ") == len - k;
        if (rule) { /* "SUMMARY\n-------": the short paragraph above is a heading */
            if (para.len && count_words(para.data) <= 6) rl_buf_clear(&para);
            blank = 1;
        }
        if (blank || heading || list || table || kv || (para.len && isupper((unsigned char)s[k]) && 0)) {
            if (para.len) split_sentences(l, para.data, para.len);
            rl_buf_clear(&para);
        }
        if (table) {
            if (is_separator_line(s + k, len - k)) {
            } else if (!prev_table) {
                free(header);
                header = rl_xstrndup(s + k, len - k);
            } else {
                add_unit(l, s + k, len - k, 3, header);
            }
        } else if (list) {
            const char *item = s + k + 2;
            size_t il = len - k - 2;
            if (is_key_value(item, il)) add_unit(l, item, il, 2, NULL);
            else split_sentences(l, item, il);
        } else if (kv) {
            add_unit(l, s + k, len - k, 2, NULL);
        } else if (!blank && !heading) {
            if (para.len) rl_buf_putc(&para, ' ');
            rl_buf_append(&para, s + k, len - k);
        }
        prev_table = table;
        if (!nl) break;
        i = e + 1;
    }
    if (para.len) split_sentences(l, para.data, para.len);
    rl_buf_free(&para);
    free(header);
}

/* ---- phrasing --------------------------------------------------------------------------- */

static const char *const lowercase_first[] = {"The", "A", "An", "Each", "Every", "All", "Our", "Any", "Its", "Their", "Your",
                                              "For", "In", "On", "At", "During", "From", "After", "Before", "Since", "Under",
                                              "With", "Without", "Per", "Within", "Until", "By", "To", "Of", "If", "When", NULL};
static const char *const pronouns[] = {"It", "This", "That", "These", "Those", "They", "He", "She", "We", "You", "I", "There",
                                       "Here", "Which", "What", NULL};

static int first_word_in(const char *s, const char *const *list) {
    for (int i = 0; list[i]; i++) {
        size_t n = strlen(list[i]);
        if (strncmp(s, list[i], n) == 0 && (s[n] == ' ' || s[n] == 0 || s[n] == ',')) return 1;
    }
    return 0;
}

/* Removes Markdown emphasis and code marks, collapses spaces, trims. */
static char *clean_phrase(const char *s, size_t n) {
    rl_buf b = {0};
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '*' || c == '`' || (c == '_' && (i == 0 || s[i - 1] == ' ' || i + 1 == n || s[i + 1] == ' '))) continue;
        if (isspace((unsigned char)c)) {
            if (b.len && b.data[b.len - 1] != ' ') rl_buf_putc(&b, ' ');
            continue;
        }
        rl_buf_putc(&b, c);
    }
    while (b.len && (b.data[b.len - 1] == ' ' || b.data[b.len - 1] == ',' || b.data[b.len - 1] == ':')) b.data[--b.len] = 0;
    char *out = rl_buf_take(&b);
    char *p = out;
    while (*p == ' ' || *p == '-') p++;
    memmove(out, p, strlen(p) + 1);
    return out;
}

/* The chunk being phrased: a first word that the chunk also uses in lower case is a common
 * word ("Standard payment terms"), one it never lowers is a name ("Acme", "FleetHub"). */
static __thread const char *g_chunk_for_case;

static int used_in_lower_case(const char *word, size_t n) {
    const char *text = g_chunk_for_case;
    if (!text || n < 2) return 0;
    char low[64];
    if (n >= sizeof low) return 0;
    for (size_t i = 0; i < n; i++) low[i] = (char)tolower((unsigned char)word[i]);
    low[n] = 0;
    for (const char *p = strstr(text, low); p; p = strstr(p + 1, low))
        if ((p == text || !isalnum((unsigned char)p[-1])) && !isalnum((unsigned char)p[n])) return 1;
    return 0;
}

/* Whether the chunk writes this capitalized word in the middle of a sentence ("... with Acme"):
 * then it is a name. */
static int capitalized_mid_sentence(const char *word, size_t n) {
    const char *text = g_chunk_for_case;
    if (!text || n < 2 || n >= 64) return 0;
    char w[64];
    memcpy(w, word, n);
    w[n] = 0;
    for (const char *p = strstr(text, w); p; p = strstr(p + 1, w)) {
        if (isalnum((unsigned char)p[n]) || p < text + 2) continue;
        if (p[-1] == ' ' && islower((unsigned char)p[-2])) return 1;
        if (p[-1] == ' ' && p >= text + 3 && p[-2] == ',' ) return 1;
    }
    return 0;
}

static void lower_first(char *s) {
    size_t n = 0;
    while (isalpha((unsigned char)s[n])) n++;
    int camel = 0;
    for (size_t i = 1; i < n; i++) camel |= isupper((unsigned char)s[i]) != 0;
    if (first_word_in(s, lowercase_first) ||
        (n > 1 && !camel && (used_in_lower_case(s, n) || !capitalized_mid_sentence(s, n))))
        s[0] = (char)tolower((unsigned char)s[0]);
}

static int count_words(const char *s) {
    int w = 0, in = 0;
    for (; *s; s++) {
        if (*s == ' ') in = 0;
        else if (!in) in = 1, w++;
    }
    return w;
}

/* "For day trips, the allowance" -> "the allowance for day trips" (the lead clause moves
 * behind); returns NULL when the subject is unusable. */
static char *subject_phrase(const char *s, size_t n) {
    char *subj = clean_phrase(s, n);
    if (!subj[0] || first_word_in(subj, pronouns) || strchr(subj, '(') || strchr(subj, '"') || strchr(subj, ';')) {
        free(subj);
        return NULL;
    }
    char *comma = strrchr(subj, ',');
    if (comma && first_word_in(subj, lowercase_first) && !first_word_in(subj, (const char *const[]){"The", "A", "An", NULL})) {
        char *head = clean_phrase(comma + 1, strlen(comma + 1));
        *comma = 0;
        char *lead = rl_xstrdup(subj);
        lower_first(lead);
        lower_first(head);
        char *joined = head[0] && !first_word_in(head, pronouns) ? rl_xasprintf("%s %s", head, lead) : NULL;
        free(head);
        free(lead);
        free(subj);
        subj = joined;
        if (!subj) return NULL;
    } else if (count_words(subj) >= 2) { /* one word is a name ("Acme") */
        lower_first(subj);
    }
    int w = count_words(subj);
    if ((w < 2 && !isupper((unsigned char)subj[0])) || w > 16 || strchr(subj, ',') != NULL) { /* one word: a name ("Acme") */
        free(subj);
        return NULL;
    }
    return subj;
}

typedef struct candidate {
    char *question, *answer, *quote;
    int score, order;
} candidate;

typedef struct cand_list {
    candidate *c;
    int n, cap;
} cand_list;

static void add_candidate(cand_list *l, char *question, const char *answer, size_t answer_len, const char *quote, int score, int order) {
    char *a = rl_xstrndup(answer, answer_len);
    /* a question that gives its own answer away is useless */
    if (!question || strstr(question, a) || strlen(question) < 12) {
        free(question);
        free(a);
        return;
    }
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->c[i].question, question) == 0) {
            free(question);
            free(a);
            return;
        }
    if (l->n == l->cap) l->cap = l->cap ? 2 * l->cap : 16, l->c = rl_xrealloc(l->c, (size_t)l->cap * sizeof *l->c);
    l->c[l->n++] = (candidate){question, a, rl_xstrdup(quote), score, order};
}

/* Headings that name no thing: a question needs the heading above them. */
static const char *const generic_topics[] = {"specifications", "technical specifications", "key specifications", "overview",
                                             "quick reference", "summary", "key facts", "details", "notes", "facts", "facts and figures",
                                             "options and accessories", "options", "accessories", "service and warranty", "contacts",
                                             "key figures", "at a glance", "general", "introduction", "scope", "purpose", NULL};

static int generic_topic(const char *t, size_t n) {
    while (n && (isdigit((unsigned char)*t) || *t == '.' || *t == ' ')) t++, n--; /* "5.1 " */
    for (int i = 0; generic_topics[i]; i++)
        if (strlen(generic_topics[i]) == n && strncasecmp(t, generic_topics[i], n) == 0) return 1;
    return 0;
}

/* The most specific heading of the path that names something (or the title); caller frees. */
static char *topic_of(const char *heading, const char *title) {
    if (heading && heading[0]) {
        const char *parts[32];
        size_t lens[32];
        int n = 0;
        const char *p = heading;
        while (n < 32) {
            const char *sep = strstr(p, " > ");
            parts[n] = p;
            lens[n++] = sep ? (size_t)(sep - p) : strlen(p);
            if (!sep) break;
            p = sep + 3;
        }
        for (int i = n - 1; i >= 0; i--)
            if (!generic_topic(parts[i], lens[i])) return rl_xstrndup(parts[i], lens[i]);
    }
    return title && title[0] && !generic_topic(title, strlen(title)) ? rl_xstrdup(title) : NULL;
}

static int fig_score(int kind) {
    switch (kind) {
    case FIG_MONEY: case FIG_PERCENT: case FIG_DATE: case FIG_QUANTITY: return 3;
    case FIG_VERSION: case FIG_TIME: return 2;
    case FIG_MODEL: case FIG_NUMBER: return 1;
    }
    return 0;
}

/* Words that may stand between a copula and its figure. */
static const char *const fillers[] = {"currently ", "only ", "approximately ", "about ", "exactly ", "set at ", "set to ", "fixed at ",
                                      "limited to ", "capped at ", "now ", "typically ", "usually ", "a flat ", "a maximum of ",
                                      "a minimum of ", "at least ", "at most ", "up to ", "just ", "roughly ", "around ", NULL};

static size_t skip_fillers(const char *s, size_t i) {
    for (int again = 1; again;) {
        again = 0;
        while (s[i] == '*' || s[i] == '`') i++, again = 1;
        for (int f = 0; fillers[f]; f++) {
            size_t n = strlen(fillers[f]);
            if (strncmp(s + i, fillers[f], n) == 0) i += n, again = 1;
        }
    }
    return i;
}

/* Keys of memos and minutes: a question about them needs context a template does not have. */
static const char *const memo_keys[] = {"Date", "From", "To", "Cc", "Subject", "Re", "Status", "Title", "Decision", "Incident",
                                        "Effective", "Owner", "Author", "Note", "Notes", "Attendees", "Present", "Prepared by",
                                        "Approved by", "Location", "Time", "Version", "Document", "Reference", "Ref", "Page",
                                        "Last updated", "Updated", "Valid from", "Classification", "Proposal", "Result", "Outcome", "Vote",
                                        "Action", "Actions", "Agenda", "Minutes", "Last update", "Next review", "Review date", NULL};
/* Words that make a key an attribute ("the travel budget") rather than a thing that costs. */
static const char *const attribute_words[] = {"price", "budget", "allowance", "limit", "rate", "fee", "mileage", "salary", "cost",
                                              "costs", "revenue", "amount", "total", "opex", "capex", "spend", "threshold",
                                              "subsidy", "bonus", "deposit", "discount", "surcharge", "charge", "value", NULL};

static int word_in_list(const char *s, const char *const *list) {
    for (int i = 0; list[i]; i++)
        if (strcasecmp(s, list[i]) == 0) return 1;
    return 0;
}

static int has_identifier_word(const char *s) {
    static const char *const ids[] = {"number", "room", "code", "id", "model", "phone", "extension", "part", "sku", NULL};
    for (int i = 0; ids[i]; i++)
        if (strcasestr(s, ids[i])) return 1;
    return 0;
}

static int has_attribute_word(const char *s) {
    for (int i = 0; attribute_words[i]; i++) {
        const char *p = strcasestr(s, attribute_words[i]);
        size_t n = strlen(attribute_words[i]);
        if (p && (p == s || !isalpha((unsigned char)p[-1])) && !isalpha((unsigned char)p[n])) return 1;
    }
    return 0;
}

typedef struct verb_rule {
    const char *verb;     /* " costs " */
    const char *question; /* printf: %s = subject */
} verb_rule;

static const verb_rule verb_rules[] = {
    {" costs ", "How much does %s cost?"},   {" cost ", "How much do %s cost?"},
    {" lasts ", "How long does %s last?"},   {" last ", "How long do %s last?"},
    {" takes ", "How long does %s take?"},   {" weighs ", "How much does %s weigh?"},
    {" weigh ", "How much do %s weigh?"},    {" totals ", "What does %s total?"},
    {" totalled ", "What did %s total?"},    {" totaled ", "What did %s total?"},
    {" amounts to ", "What does %s amount to?"}, {" employs ", "How many people does %s employ?"},
    {" reached ", "What did %s reach?"},     {" expires after ", "When does %s expire?"},
};

static int split_cells(char *line, char **cells, int max) {
    int n = 0;
    char *p = line;
    if (*p == '|') p++;
    while (n < max) {
        char *bar = strchr(p, '|');
        if (bar) *bar = 0;
        cells[n++] = p;
        if (!bar) break;
        p = bar + 1;
        if (!*p) break;
    }
    return n;
}

/* Column headers that name a date: "Launched" reads as "launch date". */
static const char *const date_headers[][2] = {{"since", "start date"},      {"launched", "launch date"}, {"released", "release date"},
                                              {"founded", "founding date"}, {"opened", "opening date"}, {"member since", "start date"},
                                              {"start", "start date"},      {"date", "date"},           {"effective", "effective date"},
                                              {"due", "due date"},          {"deadline", "deadline"}};
/* Top-left cells of tables whose columns are the things and whose rows are the attributes. */
static const char *const transposed_corners[] = {"", "plan", "tier", "feature", "level", "model", "product", "specification", "spec",
                                                 "parameter", "package", "edition", NULL};
/* Column headers that say nothing by themselves. */
static const char *const generic_headers[] = {"value", "values", "details", "detail", "description", "figure", "data",
                                              "specification", "setting", NULL};
/* Top-left cells of "attribute | value" tables. */
static const char *const attribute_corners[] = {"", "parameter", "property", "attribute", "characteristic", "specification", "spec",
                                                "feature", "item", "key", NULL};

static void table_candidates(cand_list *l, const unit *u, const char *topic, int order) {
    char *cells[16], *heads[16];
    char *row = rl_xstrdup(u->text), *hdr = rl_xstrdup(u->header);
    int nc = split_cells(row, cells, 16), nh = split_cells(hdr, heads, 16);
    size_t fe;
    char *c0[16] = {0}, *h[16] = {0};
    if (nc != nh || nc < 2) goto out;
    for (int c = 0; c < nc; c++) {
        c0[c] = clean_phrase(cells[c], strlen(cells[c]));
        h[c] = clean_phrase(heads[c], strlen(heads[c]));
        for (size_t i = 0; h[c][i]; i++)
            if (figure_at(h[c], i, &fe) != FIG_NONE && figure_at(h[c], i, &fe) != FIG_MODEL) goto out; /* a data row, not a header */
    }
    int first_kind = c0[0][0] ? figure_at(c0[0], 0, &fe) : FIG_NUMBER;
    if (!c0[0][0] || (first_kind != FIG_NONE && first_kind != FIG_MODEL)) goto out;
    char corner[64];
    snprintf(corner, sizeof corner, "%s", h[0]);
    for (char *p = corner; *p; p++) *p = (char)tolower((unsigned char)*p);
    /* transposed when most column headers are names (models, plans) rather than attributes */
    int names = 0;
    for (int c = 1; c < nc; c++) {
        size_t w = 0;
        while (isalpha((unsigned char)h[c][w])) w++;
        names += figure_at(h[c], 0, &fe) == FIG_MODEL || (isupper((unsigned char)h[c][0]) && !used_in_lower_case(h[c], w));
    }
    int transposed = nc >= 3 && word_in_list(corner, transposed_corners) && 2 * names >= nc - 1;
    if (nc >= 3 && 2 * names >= nc - 1 && !transposed) goto out; /* columns named after things, rows unclear: skip */
    for (int c = 1; c < nc; c++) {
        int kind = figure_at(c0[c], 0, &fe);
        if (kind == FIG_NONE || !h[c][0] || count_words(h[c]) > 5) continue;
        char *q = NULL;
        char *attr = rl_xstrdup(transposed ? c0[0] : h[c]);
        char *thing = rl_xstrdup(transposed ? h[c] : c0[0]);
        if (islower((unsigned char)attr[1])) attr[0] = (char)tolower((unsigned char)attr[0]);
        for (size_t d = 0; d < sizeof date_headers / sizeof *date_headers; d++)
            if (strcasecmp(attr, date_headers[d][0]) == 0) {
                free(attr);
                attr = rl_xstrdup(date_headers[d][1]);
            }
        if (first_word_in(thing, lowercase_first)) thing[0] = (char)tolower((unsigned char)thing[0]);
        static const char *const categories[] = {"plan", "tier", "level", "package", "edition", NULL};
        if (transposed && word_in_list(corner, categories)) q = rl_xasprintf("What is the %s for the %s %s?", attr, thing, corner);
        else if (transposed) q = rl_xasprintf("What is the %s of the %s?", attr, thing);
        else if (word_in_list(attr, generic_headers) && word_in_list(corner, attribute_corners))
            q = topic ? rl_xasprintf("What is the %c%s of the %s?", tolower((unsigned char)thing[0]), thing + 1, topic) : NULL;
        else {
            size_t al = strlen(attr);
            int plural = al > 3 && attr[al - 1] == 's' && !strchr("sui", attr[al - 2]);
            q = rl_xasprintf("What %s the %s for %s?", plural ? "are" : "is", attr, thing);
        }
        /* the whole cell is the answer ("EUR 9,900", "4 business hours") */
        if (q) add_candidate(l, q, c0[c], strlen(c0[c]), u->text, 3 + fig_score(kind), order * 16 + c);
        free(attr);
        free(thing);
    }
out:
    for (int c = 0; c < 16; c++) free(c0[c]), free(h[c]);
    free(row);
    free(hdr);
}

static const char *const identifier_words[] = {"extension", "ext.", "ext", "room", "no.", "number", "version", "model", "part",
                                               "line", "floor", "building", "phone", "fax", "policy", "ticket", "case", "section",
                                               "page", "step", "level", "tier", "gate", "site", "zip", "code", NULL};
static const char *const year_words[] = {"in", "since", "of", "for", "until", "from", "by", "before", "after", "during", "year",
                                         "end", "early", "late", "mid", NULL};

/* The echo question: the sentence with its figure replaced by a question phrase, e.g.
 * "Employees complete the training within how many days of joining?" */
static void echo_candidate(cand_list *l, const char *s, const char *topic, int order) {
    size_t len = strlen(s);
    int figures = 0;
    for (size_t i = 0; s[i]; i++) {
        size_t fe;
        if (figure_at(s, i, &fe) != FIG_NONE) figures++, i = fe - 1;
    }
    if (figures >= 4) return; /* a table or timeline flattened into a line, not a sentence */
    if (first_word_in(s, pronouns) || !isupper((unsigned char)s[0]) || count_words(s) > 40 || strstr(s, "...") || strstr(s, ". .") ||
        (len && s[len - 1] == ':')) /* a sentence that introduces a list */
        return;
    for (size_t i = 0; s[i]; i++) {
        size_t fe;
        int kind = figure_at(s, i, &fe);
        if (kind == FIG_NONE) continue;
        size_t fs = i;
        size_t ps = fs;
        while (ps > 0 && (s[ps - 1] == '*' || s[ps - 1] == '`')) ps--; /* markdown emphasis */
        if (kind == FIG_MODEL || kind == FIG_VERSION || (ps > 0 && s[ps - 1] == '(')) { /* names; asides in brackets */
            i = fe - 1; /* the loop adds one */
            continue;
        }
        int depth = 0;
        for (size_t k = 0; k < ps; k++) depth += s[k] == '(' ? 1 : s[k] == ')' ? -1 : 0;
        if (depth > 0) { /* an aside in brackets */
            i = fe - 1; /* the loop adds one */
            continue;
        }
        size_t se = fe;
        while (s[se] == '*' || s[se] == '`') se++;
        char *prefix = clean_phrase(s, ps);
        /* "Examples: more than ..." and "And on ..." start a question badly */
        static const char *const leads[] = {"And ", "But ", "So ", "Also ", "Then ", "Thus ", NULL};
        for (int l = 0; leads[l]; l++)
            if (strncmp(prefix, leads[l], strlen(leads[l])) == 0) {
                memmove(prefix, prefix + strlen(leads[l]), strlen(prefix + strlen(leads[l])) + 1);
                prefix[0] = (char)toupper((unsigned char)prefix[0]);
            }
        char *label = strstr(prefix, ": ");
        if (label && label - prefix < 24 && count_words(label + 2) >= 3) {
            memmove(prefix, label + 2, strlen(label + 2) + 1);
            prefix[0] = (char)toupper((unsigned char)prefix[0]);
        }
        int colon = ps > 0 && s[ps - 1 - (s[ps - 1] == ' ')] == ':';
        if (count_words(prefix) < 3) {
            free(prefix);
            return;
        }
        size_t answer_end = fe;
        const char *wh;
        char whbuf[64];
        int n_digits = (int)number_len(s, fs);
        const char *last = strrchr(prefix, ' ');
        last = last ? last + 1 : prefix;
        if (kind == FIG_NUMBER) {
            int dots = 0;
            for (size_t k = fs; k < fe; k++) dots += s[k] == '.';
            int acronym = last[0] && isupper((unsigned char)last[0]) && (isupper((unsigned char)last[1]) || strchr(last, '/'));
            if (dots >= 2 || acronym || word_in_list(last, identifier_words)) { /* v3.2.1, ISO 27001, extension 2140 */
                free(prefix);
                i = fe - 1; /* the loop adds one */
                continue;
            }
            if (n_digits == 4 && (s[fs] == '1' || s[fs] == '2') && fe == fs + 4 && word_in_list(last, year_words)) kind = FIG_DATE;
        }
        if (kind == FIG_MONEY) wh = "what amount";
        else if (kind == FIG_PERCENT) wh = "what percentage";
        else if (kind == FIG_TIME) wh = "what time";
        else if (kind == FIG_DATE) {
            int has_month = 0;
            for (int m = 0; months[m]; m++) has_month |= strstr(s + fs, months[m]) == s + fs;
            if (fe - fs == 4 || (s[fs] == 'F' && s[fs + 1] == 'Y')) wh = "what year";
            else if (has_month && fe - fs <= 15 && !strchr(s + fs, ',')) wh = "what month";
            else if (strcmp(last, "in") == 0) {
                prefix[strlen(prefix) - 2] = 0; /* "in 2025-03-11" -> "on what date" */
                wh = "on what date";
            } else wh = "what date";
        } else if (kind == FIG_QUANTITY) {
            size_t k = fs;
            while (isdigit((unsigned char)s[k]) || s[k] == ',' || s[k] == '.') k++;
            k = skip_spaces(s, k);
            /* "1 business day" asks "how many business days" */
            int plural = s[fe - 1] == 's' || !isalpha((unsigned char)s[fe - 1]) || fe - k <= 2 || !islower((unsigned char)s[k]);
            snprintf(whbuf, sizeof whbuf, "how many %.*s%s", (int)(fe - k), s + k, plural ? "" : "s");
            wh = whbuf;
        } else {
            /* a bare number: "how many <next word>" when a noun follows */
            size_t k = skip_spaces(s, se), w = k;
            while (isalpha((unsigned char)s[w])) w++;
            if (w - k < 3 || w - k > 20 || isupper((unsigned char)s[k])) { /* "429 Too Many Requests" is a name */
                free(prefix);
                return;
            }
            snprintf(whbuf, sizeof whbuf, "how many %.*s", (int)(w - k), s + k);
            wh = whbuf;
            answer_end = fs + number_len(s, fs);
            se = w;
        }
        /* the question ends where the sentence's next clause starts */
        size_t sl = strlen(s);
        for (size_t k = se; k < sl; k++)
            if (s[k] == ';' || (s[k] == ' ' && (s[k + 1] == '-' || !strncmp(s + k + 1, "\xe2\x80\x94", 3) || !strncmp(s + k + 1, "\xe2\x80\x93", 3)) && s[k + 2] != '-')) {
                sl = k;
                break;
            }
        while (sl > se && strchr(". !:*`_", s[sl - 1])) sl--; /* "...2025-11-30.*": emphasis ends it too */
        char *suffix = clean_phrase(s + se, sl > se ? sl - se : 0);
        char *q;
        if (colon) {
            /* "Minimum call-out accounting: 30 minutes" */
            if (count_words(prefix) > 8) q = NULL;
            else {
                lower_first(prefix);
                q = rl_xasprintf("What is the %s?", first_word_in(prefix, (const char *const[]){"the", NULL}) ? prefix + 4 : prefix);
            }
        } else {
            q = rl_xasprintf("%s %s%s%s?", prefix, wh, suffix[0] && suffix[0] != ',' ? " " : "", suffix);
        }
        free(prefix);
        free(suffix);
        if (q) add_candidate(l, q, s + fs, answer_end - fs, s, 1 + fig_score(kind), order);
        (void)topic;
        return;
    }
}

static void sentence_candidates(cand_list *l, const unit *u, const char *topic, int order) {
    const char *s = u->text;
    size_t fe;
    int kind;
    /* "Key: value" */
    if (u->kind == 2) {
        const char *colon = strchr(s, ':');
        size_t v = skip_fillers(s, skip_spaces(s, (size_t)(colon - s) + 1));
        if ((kind = figure_at(s, v, &fe)) == FIG_NONE) return;
        char *key = clean_phrase(s, (size_t)(colon - s));
        if (!key[0] || word_in_list(key, memo_keys) || strstr(key, " not ") || strstr(key, " do ") || strstr(key, " is ") ||
            strstr(key, " are ") || strstr(key, " will ") || (kind == FIG_MODEL && !has_identifier_word(key))) {
            free(key);
            return;
        }
        size_t w1 = 0;
        while (isalpha((unsigned char)key[w1])) w1++;
        if (w1 > 3 && key[w1] == ' ' && strncmp(key + w1 - 2, "ed", 2) == 0) { /* "Approved as proposed" */
            free(key);
            return;
        }
        size_t kl = strlen(key);
        char *q = NULL;
        char *lk = rl_xstrdup(key);
        if (!(isupper((unsigned char)lk[0]) && isupper((unsigned char)lk[1]))) lk[0] = (char)tolower((unsigned char)lk[0]);
        int words = count_words(key);
        if (kind == FIG_DATE && words == 1 && kl > 3 && strcmp(key + kl - 2, "ed") == 0) {
            if (topic) q = rl_xasprintf("When was the %s %s?", topic, lk);
        } else if (kind == FIG_DATE && words >= 2 && !strcasestr(key, "date") && !strcasestr(key, "deadline")) {
            q = rl_xasprintf("When was the %s?", lk);
        } else if (kind == FIG_MONEY && !has_attribute_word(lk)) {
            if (topic && (strcasestr(topic, "price") || strcasestr(topic, "option") || strcasestr(topic, "accessor")))
                q = rl_xasprintf("How much does the %s cost?", lk);
            else q = rl_xasprintf("What is the amount for %s?", lk);
        } else if (words <= 2 && topic) {
            q = rl_xasprintf("What is the %s of the %s?", lk, topic);
        } else if (words >= 3 || (words == 2 && topic == NULL && 0)) {
            q = rl_xasprintf("What is the %s?", lk);
        } else if (words == 2 && topic) {
            q = rl_xasprintf("What is the %s of the %s?", lk, topic);
        }
        free(lk);
        free(key);
        if (q) add_candidate(l, q, s + v, fe - v, s, 2 + fig_score(kind), order);
        return;
    }
    /* table rows: "What is the <column> for <first cell>?" */
    if (u->kind == 3 && u->header) {
        table_candidates(l, u, topic, order);
        return;
    }
    /* verbs with an object figure */
    for (size_t r = 0; r < sizeof verb_rules / sizeof *verb_rules; r++) {
        const char *at = strstr(s, verb_rules[r].verb);
        if (!at) continue;
        size_t v = skip_fillers(s, (size_t)(at - s) + strlen(verb_rules[r].verb));
        if ((kind = figure_at(s, v, &fe)) == FIG_NONE || kind == FIG_MODEL) continue;
        char *subj = subject_phrase(s, (size_t)(at - s));
        if (!subj) continue;
        char *q = rl_xasprintf(verb_rules[r].question, subj);
        free(subj);
        add_candidate(l, q, s + v, fe - v, s, 4 + fig_score(kind), order);
        return;
    }
    /* "<S> has/have a <noun> of <F>" */
    const char *has = strstr(s, " has a ");
    if (!has) has = strstr(s, " have a ");
    if (has) {
        size_t k = (size_t)(has - s) + (has[2] == 'a' && has[3] == 's' ? 7 : 8);
        const char *of = strstr(s + k, " of ");
        if (of && of - (s + k) < 40) {
            size_t v = skip_fillers(s, (size_t)(of - s) + 4);
            if ((kind = figure_at(s, v, &fe)) != FIG_NONE && kind != FIG_MODEL) {
                char *noun = clean_phrase(s + k, (size_t)(of - (s + k)));
                char *subj = subject_phrase(s, (size_t)(has - s));
                if (subj && noun[0] && count_words(noun) <= 4) {
                    char *q = rl_xasprintf("What %s %s %s have?", noun, has[2] == 'a' && has[3] == 's' ? "does" : "do", subj);
                    add_candidate(l, q, s + v, fe - v, s, 4 + fig_score(kind), order);
                    free(subj);
                    free(noun);
                    return;
                }
                free(subj);
                free(noun);
            }
        }
    }
    /* copulas: "<S> is <F>", "<S> was <participle> on <date>" */
    static const char *const copulas[] = {" is ", " are ", " was ", " were ", " will be ", NULL};
    for (int c = 0; copulas[c]; c++) {
        const char *at = strstr(s, copulas[c]);
        if (!at) continue;
        size_t after = (size_t)(at - s) + strlen(copulas[c]);
        size_t v = skip_fillers(s, after);
        char verb[16];
        snprintf(verb, sizeof verb, "%.*s", (int)strlen(copulas[c]) - 2, copulas[c] + 1);
        if ((kind = figure_at(s, v, &fe)) != FIG_NONE && kind != FIG_MODEL) {
            char *subj = subject_phrase(s, (size_t)(at - s));
            if (!subj) return;
            if (count_words(subj) <= 2) { /* "the target" says too little: whose? */
                if (!topic) {
                    free(subj);
                    return;
                }
                char *longer = rl_xasprintf("%s of the %s", subj, topic);
                free(subj);
                subj = longer;
            }
            char *q = strcmp(verb, "will be") == 0 ? rl_xasprintf("What will %s be?", subj) : rl_xasprintf("What %s %s?", verb, subj);
            free(subj);
            add_candidate(l, q, s + v, fe - v, s, 3 + fig_score(kind), order);
            return;
        }
        /* passive with a date: "Acme was founded on 2012-05-04" */
        if (c == 2 || c == 3) {
            size_t p = after;
            while (isalpha((unsigned char)s[p])) p++;
            if (p > after + 3 && strncmp(s + p - 2, "ed", 2) == 0) {
                size_t k = p;
                if (strncmp(s + k, " on ", 4) == 0 || strncmp(s + k, " in ", 4) == 0) k += 4;
                else continue;
                if ((kind = figure_at(s, k, &fe)) == FIG_DATE) {
                    char *subj = subject_phrase(s, (size_t)(at - s));
                    if (!subj) return;
                    char *q = rl_xasprintf("When %s %s %.*s?", verb, subj, (int)(p - after), s + after);
                    free(subj);
                    add_candidate(l, q, s + k, fe - k, s, 4 + fig_score(kind), order);
                    return;
                }
            }
        }
    }
    if (u->kind <= 1) echo_candidate(l, s, topic, order);
}

static int cmp_candidates(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    if (x->score != y->score) return y->score - x->score;
    return x->order - y->order;
}

int rl_extract_qa(const char *chunk_text, const char *heading, const char *doc_title, int max, rl_qa **out) {
    *out = NULL;
    unit_list units = {0};
    make_units(chunk_text, &units);
    cand_list cands = {0};
    char *topic = topic_of(heading, doc_title);
    char *topic_clean = topic ? clean_phrase(topic, strlen(topic)) : NULL;
    if (topic_clean) { /* "AR-90 Scout – Product Specification": the thing, not the subtitle */
        char *dash = strstr(topic_clean, " \xe2\x80\x93 ");
        if (!dash) dash = strstr(topic_clean, " - ");
        if (dash && dash > topic_clean) *dash = 0;
    }
    free(topic);
    g_chunk_for_case = chunk_text;
    /* numbered headings ("5.1 Domestic trips") read badly inside a question */
    if (topic_clean) {
        char *p = topic_clean;
        while (*p && (isdigit((unsigned char)*p) || *p == '.')) p++;
        if (p != topic_clean && *p == ' ') memmove(topic_clean, p + 1, strlen(p + 1) + 1);
    }
    for (int i = 0; i < units.n; i++) sentence_candidates(&cands, &units.u[i], topic_clean, i);
    if (cands.n) qsort(cands.c, (size_t)cands.n, sizeof *cands.c, cmp_candidates);
    /* one question per quote first, so the questions cover different facts */
    rl_qa *qa = rl_xcalloc((size_t)(max > 0 ? max : 1), sizeof *qa);
    int n = 0;
    for (int pass = 0; pass < 2 && n < max; pass++)
        for (int i = 0; i < cands.n && n < max; i++) {
            if (!cands.c[i].question) continue;
            int used = 0;
            for (int k = 0; k < n; k++) used |= strcmp(qa[k].quote, cands.c[i].quote) == 0;
            if (used && pass == 0) continue;
            qa[n].question = cands.c[i].question;
            qa[n].answer = cands.c[i].answer;
            qa[n].quote = cands.c[i].quote;
            cands.c[i].question = cands.c[i].answer = cands.c[i].quote = NULL;
            n++;
        }
    for (int i = 0; i < cands.n; i++) free(cands.c[i].question), free(cands.c[i].answer), free(cands.c[i].quote);
    free(cands.c);
    for (int i = 0; i < units.n; i++) free(units.u[i].text), free(units.u[i].header);
    free(units.u);
    free(topic_clean);
    g_chunk_for_case = NULL;
    if (n == 0) {
        free(qa);
        qa = NULL;
    }
    *out = qa;
    return n;
}

void rl_qa_free(rl_qa *qa, int n) {
    for (int i = 0; i < n; i++) free(qa[i].question), free(qa[i].answer), free(qa[i].quote);
    free(qa);
}

/* The reasoning is the quote alone: a small student's training budget is counted in tokens, and
 * template words around the quote ("The document ... answers this. It says:", "So the answer
 * is ...") cost tokens in every example while teaching nothing the quote does not. */
char *rl_cot_answer(const char *quote, const char *answer) {
    return rl_xasprintf("##Reason: ##begin_quote##%s##end_quote##\n<ANSWER>: %s", quote, answer);
}

/* ---- as a teacher ------------------------------------------------------------------------- */

typedef struct extractive {
    rl_teacher base;
    rl_teacher_task **done;
    int n_done, cap_done;
} extractive;

static rl_status ex_submit(rl_teacher *t, rl_teacher_task *task, rl_error *err) {
    extractive *x = (extractive *)t;
    task->status = RL_OK;
    if (task->kind == RL_TASK_QUESTIONS) {
        rl_qa *qa;
        int n = rl_extract_qa(task->chunk_text, task->heading, task->doc_title, task->n_questions, &qa);
        task->n_out = n;
        task->questions = rl_xcalloc((size_t)(n ? n : 1), sizeof(char *));
        task->hints = rl_xcalloc((size_t)(n ? n : 1), sizeof(char *));
        for (int i = 0; i < n; i++) {
            task->questions[i] = rl_xstrdup(qa[i].question);
            /* the hint carries the quote and the answer to the answer step: "quote\x1fanswer" */
            task->hints[i] = rl_xasprintf("%s\x1f%s", qa[i].quote, qa[i].answer);
        }
        rl_qa_free(qa, n);
    } else {
        const char *sep = task->hint ? strchr(task->hint, '\x1f') : NULL;
        if (!sep) {
            task->status = RL_EINVAL;
            task->error = rl_xstrdup("the extractive teacher only answers its own questions");
        } else {
            char *quote = rl_xstrndup(task->hint, (size_t)(sep - task->hint));
            task->answer = rl_cot_answer(quote, sep + 1);
            free(quote);
        }
    }
    if (x->n_done == x->cap_done) x->cap_done = x->cap_done ? 2 * x->cap_done : 64, x->done = rl_xrealloc(x->done, (size_t)x->cap_done * sizeof *x->done);
    x->done[x->n_done++] = task;
    (void)err;
    return RL_OK;
}

static int ex_poll(rl_teacher *t, rl_teacher_task **done, int max) {
    extractive *x = (extractive *)t;
    int n = x->n_done < max ? x->n_done : max;
    memcpy(done, x->done, (size_t)n * sizeof *done);
    memmove(x->done, x->done + n, (size_t)(x->n_done - n) * sizeof *x->done);
    x->n_done -= n;
    return n;
}

static int ex_capacity(rl_teacher *t) { return 256; }

static void ex_free(rl_teacher *t) {
    extractive *x = (extractive *)t;
    free(x->done);
    free(x);
}

static const rl_teacher_vt extractive_vt = {"extractive", ex_submit, ex_poll, ex_capacity, ex_free};

rl_teacher *rl_teacher_extractive_new(void) {
    extractive *x = rl_xcalloc(1, sizeof *x);
    x->base.vt = &extractive_vt;
    /* bump the version whenever the phrasing changes, so old questions are not mixed in */
    snprintf(x->base.fingerprint, sizeof x->base.fingerprint, "extractive-v4");
    return &x->base;
}

void rl_teacher_free(rl_teacher *t) {
    if (t) t->vt->free(t);
}

void rl_teacher_task_clear(rl_teacher_task *task) {
    for (int i = 0; i < task->n_out; i++) {
        if (task->questions) free(task->questions[i]);
        if (task->hints) free(task->hints[i]);
    }
    free(task->questions);
    free(task->hints);
    free(task->answer);
    free(task->error);
    task->questions = task->hints = NULL;
    task->answer = task->error = NULL;
    task->n_out = 0;
}
