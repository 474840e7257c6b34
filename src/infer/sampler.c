/* sampler.c - logits -> next token (see infer.h for the order of the steps).
 *
 * How: the candidates are the ids whose logit is finite after bias and penalties. Greedy is a
 * plain argmax (the lowest id wins ties, like rl_sample and llama2.c). Otherwise the candidates
 * are sorted by logit (ties by id, so the order and hence the draw is deterministic) only when
 * top-k or top-p needs an order; min-p needs only the maximum. The draw walks the kept
 * candidates with one uniform number from xoshiro256**.
 *
 * Not done: typical-p, mirostat, DRY, grammar constraints. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "infer/infer.h"

struct rl_sampler {
    rl_sampler_params p;
    rl_logit_bias *bias;
    int V;
    uint64_t rng[4];
    int32_t *hist; /* every accepted token */
    size_t n_hist, cap_hist;
    int *counts;   /* (V) scratch, all zero between calls */
    float *raw;    /* (V) copy of the raw logits for logprobs */
    int *idx;      /* (V) candidates */
    float *prob;   /* (V) their weights */
};

rl_sampler_params rl_sampler_defaults(void) {
    rl_sampler_params p = {0};
    p.temperature = 1.0f;
    p.top_p = 1.0f;
    p.repeat_penalty = 1.0f;
    p.penalty_last_n = 64;
    return p;
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro_next(uint64_t s[4]) {
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static double uniform01(uint64_t s[4]) { return (double)(xoshiro_next(s) >> 11) * 0x1.0p-53; }

void rl_sampler_reset(rl_sampler *s) {
    uint64_t x = s->p.seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
    s->n_hist = 0;
}

rl_status rl_sampler_new(rl_sampler **out, const rl_sampler_params *p, int V, rl_error *err) {
    *out = NULL;
    if (V <= 0) return rl_fail(err, RL_EINVAL, "sampler: vocabulary size %d", V);
    if (!(p->temperature >= 0.0f) || !isfinite(p->temperature))
        return rl_fail(err, RL_EINVAL, "temperature must be >= 0, got %g", (double)p->temperature);
    if (p->top_k < 0) return rl_fail(err, RL_EINVAL, "top_k must be >= 0, got %d", p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f)) return rl_fail(err, RL_EINVAL, "top_p must be in (0, 1], got %g", (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f)) return rl_fail(err, RL_EINVAL, "min_p must be in [0, 1], got %g", (double)p->min_p);
    if (!(p->repeat_penalty > 0.0f) || !isfinite(p->repeat_penalty))
        return rl_fail(err, RL_EINVAL, "repeat_penalty must be > 0, got %g", (double)p->repeat_penalty);
    if (!isfinite(p->presence_penalty) || !isfinite(p->frequency_penalty) || fabsf(p->presence_penalty) > 2.0f ||
        fabsf(p->frequency_penalty) > 2.0f)
        return rl_fail(err, RL_EINVAL, "presence_penalty and frequency_penalty must be in [-2, 2]");
    if (p->penalty_last_n < -1) return rl_fail(err, RL_EINVAL, "penalty_last_n must be >= -1");
    if (p->n_probs < 0 || p->n_probs > RL_MAX_TOP_LOGPROBS)
        return rl_fail(err, RL_EINVAL, "the number of top logprobs must be in [0, %d], got %d", RL_MAX_TOP_LOGPROBS, p->n_probs);
    if (p->n_bias < 0 || (p->n_bias > 0 && !p->bias)) return rl_fail(err, RL_EINVAL, "logit bias list");
    for (int i = 0; i < p->n_bias; i++) {
        if (p->bias[i].token < 0 || p->bias[i].token >= V)
            return rl_fail(err, RL_EINVAL, "logit_bias: token %d is outside the vocabulary (%d)", p->bias[i].token, V);
        if (!(p->bias[i].bias >= -100.0f && p->bias[i].bias <= 100.0f))
            return rl_fail(err, RL_EINVAL, "logit_bias: the bias of token %d must be in [-100, 100]", p->bias[i].token);
    }
    rl_sampler *s = calloc(1, sizeof *s);
    if (!s) return rl_fail(err, RL_ENOMEM, "sampler");
    s->p = *p;
    s->V = V;
    if (p->n_bias) {
        s->bias = malloc((size_t)p->n_bias * sizeof *s->bias);
        if (s->bias) memcpy(s->bias, p->bias, (size_t)p->n_bias * sizeof *s->bias);
        s->p.bias = s->bias;
    }
    s->counts = calloc((size_t)V, sizeof *s->counts);
    s->raw = malloc((size_t)V * sizeof *s->raw);
    s->idx = malloc((size_t)V * sizeof *s->idx);
    s->prob = malloc((size_t)V * sizeof *s->prob);
    if ((p->n_bias && !s->bias) || !s->counts || !s->raw || !s->idx || !s->prob) {
        rl_sampler_free(s);
        return rl_fail(err, RL_ENOMEM, "sampler scratch for %d ids", V);
    }
    rl_sampler_reset(s);
    *out = s;
    return RL_OK;
}

void rl_sampler_free(rl_sampler *s) {
    if (!s) return;
    free(s->bias);
    free(s->hist);
    free(s->counts);
    free(s->raw);
    free(s->idx);
    free(s->prob);
    free(s);
}

void rl_sampler_accept(rl_sampler *s, int32_t token) {
    if (s->n_hist == s->cap_hist) {
        size_t cap = s->cap_hist ? 2 * s->cap_hist : 256;
        int32_t *h = realloc(s->hist, cap * sizeof *h);
        if (!h) return; /* the penalties then see a shorter history; not worth failing a request */
        s->hist = h;
        s->cap_hist = cap;
    }
    s->hist[s->n_hist++] = token;
}

static void apply_penalties(rl_sampler *s, float *logits) {
    const rl_sampler_params *p = &s->p;
    if (p->repeat_penalty == 1.0f && p->presence_penalty == 0.0f && p->frequency_penalty == 0.0f) return;
    size_t n = p->penalty_last_n < 0 ? s->n_hist : (size_t)p->penalty_last_n;
    if (n > s->n_hist) n = s->n_hist;
    const int32_t *w = s->hist + (s->n_hist - n);
    for (size_t i = 0; i < n; i++)
        if (w[i] >= 0 && w[i] < s->V) s->counts[w[i]]++;
    for (size_t i = 0; i < n; i++) {
        int t = w[i];
        if (t < 0 || t >= s->V || s->counts[t] == 0) continue; // done already
        float l = logits[t];
        if (p->repeat_penalty != 1.0f) l = l > 0.0f ? l / p->repeat_penalty : l * p->repeat_penalty;
        l -= (float)s->counts[t] * p->frequency_penalty + p->presence_penalty;
        logits[t] = l;
        s->counts[t] = 0;
    }
}

/* logprobs of the raw distribution: chosen and the n most likely */
static void logprobs(const rl_sampler *s, const float *raw, int32_t tok, rl_token_prob *chosen, rl_token_prob *top) {
    int V = s->V;
    float mx = -INFINITY;
    for (int i = 0; i < V; i++)
        if (raw[i] > mx) mx = raw[i];
    double sum = 0.0;
    for (int i = 0; i < V; i++) sum += exp((double)(raw[i] - mx));
    float lse = mx + (float)log(sum);
    if (chosen) chosen->token = tok, chosen->logprob = raw[tok] - lse;
    int n = s->p.n_probs < V ? s->p.n_probs : V;
    if (!top || n <= 0) return;
    int k = 0; // insertion into a sorted list of n (n <= 20)
    for (int i = 0; i < V; i++) {
        float l = raw[i];
        if (k == n && !(l > top[n - 1].logprob)) continue;
        int j = k < n ? k++ : n - 1;
        while (j > 0 && top[j - 1].logprob < l) top[j] = top[j - 1], j--;
        top[j].token = i;
        top[j].logprob = l;
    }
    for (int j = 0; j < k; j++) top[j].logprob -= lse;
}

static int cmp_desc(const void *a, const void *b, void *ctx) {
    const float *logits = ctx;
    int ia = *(const int *)a, ib = *(const int *)b;
    float la = logits[ia], lb = logits[ib];
    if (la != lb) return la > lb ? -1 : 1;
    return ia < ib ? -1 : ia > ib;
}

int32_t rl_sampler_sample(rl_sampler *s, float *logits, rl_token_prob *chosen, rl_token_prob *top) {
    const rl_sampler_params *p = &s->p;
    int V = s->V, want_lp = chosen || (top && p->n_probs > 0);
    if (want_lp) memcpy(s->raw, logits, (size_t)V * sizeof(float));
    for (int i = 0; i < p->n_bias; i++)
        logits[p->bias[i].token] = p->bias[i].bias <= -100.0f ? -INFINITY : logits[p->bias[i].token] + p->bias[i].bias;
    apply_penalties(s, logits);
    int32_t tok = -1;
    if (p->temperature <= 0.0f) {
        for (int i = 0; i < V; i++)
            if (!isnan(logits[i]) && (tok < 0 || logits[i] > logits[tok])) tok = i;
        if (tok < 0) tok = 0;
    } else {
        int n = 0;
        float mx = -INFINITY;
        for (int i = 0; i < V; i++)
            if (logits[i] > -INFINITY && !isnan(logits[i])) {
                s->idx[n++] = i;
                if (logits[i] > mx) mx = logits[i];
            }
        if (n == 0) { // everything banned: fall back to the raw argmax rather than failing
            tok = 0;
            goto done;
        }
        int sorted = 0;
        if ((p->top_k > 0 && p->top_k < n) || p->top_p < 1.0f) {
            qsort_r(s->idx, (size_t)n, sizeof *s->idx, cmp_desc, logits);
            sorted = 1;
            if (p->top_k > 0 && p->top_k < n) n = p->top_k;
        }
        double sum = 0.0;
        for (int j = 0; j < n; j++) sum += (s->prob[j] = expf((logits[s->idx[j]] - mx) / p->temperature));
        if (sorted && p->top_p < 1.0f) {
            double cum = 0.0, lim = p->top_p * sum;
            int keep = n;
            for (int j = 0; j < n; j++) {
                cum += s->prob[j];
                if (cum >= lim) {
                    keep = j + 1;
                    break;
                }
            }
            n = keep;
            sum = cum;
        }
        if (p->min_p > 0.0f) { // relative to the most likely, whose weight is exp(0) = 1
            int m = 0;
            sum = 0.0;
            for (int j = 0; j < n; j++)
                if (s->prob[j] >= p->min_p) s->idx[m] = s->idx[j], sum += (s->prob[m] = s->prob[j]), m++;
            n = m; // the maximum always survives (weight 1 >= min_p)
        }
        double u = uniform01(s->rng) * sum, cdf = 0.0;
        tok = s->idx[n - 1];
        for (int j = 0; j < n; j++) {
            cdf += s->prob[j];
            if (u < cdf) {
                tok = s->idx[j];
                break;
            }
        }
    }
done:
    if (want_lp) logprobs(s, s->raw, tok, chosen, top);
    return tok;
}
