/* log.c - leveled logging to stderr and a terminal progress bar.
 * The progress bar only draws on a terminal, so logs captured to files stay clean. */
#include "core.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

static rl_log_level g_level = RL_LOG_INFO;

void rl_log_set_level(rl_log_level level) { g_level = level; }
rl_log_level rl_log_get_level(void) { return g_level; }

int rl_log_level_parse(const char *name) {
    static const char *names[] = {"debug", "info", "warn", "error", "quiet"};
    for (int i = 0; i < 5; i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

void rl_log(rl_log_level level, const char *fmt, ...) {
    if (level < g_level) return;
    static const char *tags[] = {"debug: ", "", "warning: ", "error: ", ""};
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s%s\n", tags[level], line);
}

double rl_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void rl_progress_start(rl_progress *p, const char *label, const char *unit, double total) {
    memset(p, 0, sizeof *p);
    p->label = label;
    p->unit = unit;
    p->total = total;
    p->t_start = rl_now();
    p->enabled = isatty(STDERR_FILENO) && g_level <= RL_LOG_INFO;
}

static void fmt_duration(char *out, size_t cap, double s) {
    if (s < 0 || s > 1e7) {
        snprintf(out, cap, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(out, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(out, cap, "%ld:%02ld", t / 60, t % 60);
}

static void progress_draw(rl_progress *p, double now) {
    double el = now - p->t_start;
    double rate = el > 0 ? p->done / el : 0;
    char line[256], eta[32] = "";
    int n;
    if (p->total > 0) {
        double frac = p->done / p->total;
        if (frac > 1) frac = 1;
        char bar[26];
        int fill = (int)(frac * 24);
        for (int i = 0; i < 24; i++) bar[i] = i < fill ? '#' : ' ';
        bar[24] = 0;
        fmt_duration(eta, sizeof eta, rate > 0 ? (p->total - p->done) / rate : -1);
        n = snprintf(line, sizeof line, "%s [%s] %.0f/%.0f %s %3.0f%% %.1f %s/s ETA %s", p->label, bar,
                     p->done, p->total, p->unit, frac * 100, rate, p->unit, eta);
    } else {
        n = snprintf(line, sizeof line, "%s %.0f %s %.1f %s/s", p->label, p->done, p->unit, rate, p->unit);
    }
    (void)n;
    fprintf(stderr, "\r\033[K%s", line);
    fflush(stderr);
    p->drawn = 1;
    p->t_last_draw = now;
}

void rl_progress_add(rl_progress *p, double n) {
    p->done += n;
    if (!p->enabled) return;
    double now = rl_now();
    if (now - p->t_last_draw >= 0.1) progress_draw(p, now);
}

void rl_progress_set_total(rl_progress *p, double total) { p->total = total; }

void rl_progress_finish(rl_progress *p) {
    if (p->enabled && p->drawn) {
        fprintf(stderr, "\r\033[K");
        fflush(stderr);
    }
    p->drawn = 0;
}
