/* gen_corpus.c - writes a synthetic corpus for the ingest benchmark: Markdown, text and HTML
 * files with headings, paragraphs and many figures, TOTAL_MB in all (deterministic).
 * usage: gen_corpus DIR TOTAL_MB */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static unsigned long long state = 88172645463325252ull;
static unsigned rnd(unsigned n) {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    return (unsigned)(state % n);
}

static const char *words[] = {"the", "budget", "policy", "robot", "warranty", "support", "customer", "team", "approved", "annual",
                              "quarter", "release", "firmware", "battery", "capacity", "payload", "office", "manager", "travel",
                              "expense", "limit", "contract", "service", "level", "response", "hours", "invoice", "payment",
                              "within", "days", "of", "for", "and", "is", "to", "in", "each", "per", "all", "must", "be"};
#define NW (sizeof words / sizeof *words)

static void sentence(FILE *f) {
    int n = 8 + (int)rnd(18);
    for (int i = 0; i < n; i++) {
        const char *w = words[rnd(NW)];
        if (i == 0) fprintf(f, "%c%s", w[0] - 32, w + 1);
        else if (rnd(9) == 0) fprintf(f, " EUR %u,%03u.%02u", rnd(900) + 1, rnd(1000), rnd(100));
        else if (rnd(15) == 0) fprintf(f, " %u.%u%%", rnd(100), rnd(100));
        else if (rnd(20) == 0) fprintf(f, " v%u.%u.%u", rnd(9), rnd(20), rnd(30));
        else fprintf(f, " %s", w);
    }
    fputs(". ", f);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: gen_corpus DIR TOTAL_MB\n");
        return 2;
    }
    const char *dir = argv[1];
    long total = atol(argv[2]) * 1000000L, written = 0;
    mkdir(dir, 0777);
    char path[4096];
    for (int file = 0; written < total; file++) {
        snprintf(path, sizeof path, "%s/g%03d", dir, file / 200);
        mkdir(path, 0777);
        const char *ext = file % 10 < 6 ? "md" : file % 10 < 9 ? "txt" : "html";
        snprintf(path, sizeof path, "%s/g%03d/doc%05d.%s", dir, file / 200, file, ext);
        FILE *f = fopen(path, "w");
        if (!f) {
            perror(path);
            return 1;
        }
        int html = strcmp(ext, "html") == 0, md = strcmp(ext, "md") == 0;
        if (html) fprintf(f, "<html><head><title>Document %d</title><style>p{margin:0}</style></head><body>\n", file);
        long target = 5000 + rnd(60000);
        for (int sec = 0; ftell(f) < target; sec++) {
            if (html) fprintf(f, "<h2>Section %d</h2>\n<p>", sec);
            else if (md) fprintf(f, "%s Section %d.%d\n\n", sec % 3 ? "##" : "#", file, sec);
            else fprintf(f, "SECTION %d\n\n", sec);
            int paras = 1 + (int)rnd(4);
            for (int p = 0; p < paras; p++) {
                int sents = 2 + (int)rnd(6);
                for (int s = 0; s < sents; s++) sentence(f);
                fputs(html ? "</p>\n<p>" : "\n\n", f);
            }
            if (html) fputs("</p>\n", f);
        }
        if (html) fputs("</body></html>\n", f);
        written += ftell(f);
        fclose(f);
    }
    printf("%ld bytes\n", written);
    return 0;
}
