/* tok_chat.c - chat templates: the family of a tokenizer_config.json / GGUF chat_template is
 * detected from its marker tokens and rendered by a built-in renderer that writes what the Jinja
 * template writes for plain system/user/assistant conversations (no tools, no images).
 *
 * This is deliberately not a Jinja interpreter: the families small models use are few and
 * fixed, and a renderer per family is short and exact. A template we cannot place is an error
 * naming the model and the `chat_template:` override; the default system prompt that some ChatML
 * templates carry (Qwen2.5, SmolLM2) is read from the template text. */
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    rl_chat_family family;
} family_names[] = {
    {"chatml", RL_CHAT_CHATML},    {"qwen", RL_CHAT_CHATML},    {"smollm", RL_CHAT_CHATML},
    {"llama3", RL_CHAT_LLAMA3},    {"llama-3", RL_CHAT_LLAMA3}, {"llama3.1", RL_CHAT_LLAMA31},
    {"llama3.2", RL_CHAT_LLAMA31}, {"llama2", RL_CHAT_LLAMA2},  {"llama-2", RL_CHAT_LLAMA2},
    {"mistral", RL_CHAT_MISTRAL},  {"zephyr", RL_CHAT_ZEPHYR},  {"tinyllama", RL_CHAT_ZEPHYR},
    {"gemma", RL_CHAT_GEMMA},      {"phi3", RL_CHAT_PHI3},      {"phi-3", RL_CHAT_PHI3},
};

rl_chat_family rl_chat_family_parse(const char *name) {
    if (!name) return RL_CHAT_UNKNOWN;
    for (size_t i = 0; i < sizeof family_names / sizeof *family_names; i++)
        if (strcasecmp(name, family_names[i].name) == 0) return family_names[i].family;
    return RL_CHAT_UNKNOWN;
}

const char *rl_chat_family_name(rl_chat_family f) {
    switch (f) {
    case RL_CHAT_CHATML: return "chatml";
    case RL_CHAT_LLAMA3: return "llama3";
    case RL_CHAT_LLAMA2: return "llama2";
    case RL_CHAT_MISTRAL: return "mistral";
    case RL_CHAT_ZEPHYR: return "zephyr";
    case RL_CHAT_GEMMA: return "gemma";
    case RL_CHAT_PHI3: return "phi3";
    case RL_CHAT_LLAMA31: return "llama3.1";
    default: return "unknown";
    }
}

rl_chat_family rl_chat_detect(const char *t) {
    if (!t) return RL_CHAT_UNKNOWN;
    if (strstr(t, "<|im_start|>")) return RL_CHAT_CHATML;
    if (strstr(t, "<|start_header_id|>")) {
        /* Llama 3.1+ add a dated system header (tool blocks are not reproduced) */
        if (strstr(t, "Cutting Knowledge Date")) return RL_CHAT_LLAMA31;
        return RL_CHAT_LLAMA3;
    }
    if (strstr(t, "<start_of_turn>")) return RL_CHAT_GEMMA;
    if (strstr(t, "<|user|>") && strstr(t, "<|end|>")) return RL_CHAT_PHI3;
    if (strstr(t, "<|user|>")) return RL_CHAT_ZEPHYR;
    if (strstr(t, "<<SYS>>")) return RL_CHAT_LLAMA2;
    if (strstr(t, "[INST]")) return RL_CHAT_MISTRAL;
    return RL_CHAT_UNKNOWN;
}

/* ChatML's default system prompt: '<|im_start|>system\n<literal><|im_end|>' in the template */
static char *chatml_default_system(const char *t) {
    const char *key = "<|im_start|>system\\n";
    for (const char *p = strstr(t, key); p; p = strstr(p + 1, key)) {
        const char *s = p + strlen(key), *e = strstr(s, "<|im_end|>");
        if (!e) return NULL;
        if (e == s || memchr(s, '\'', (size_t)(e - s)) || memchr(s, '"', (size_t)(e - s)) ||
            memchr(s, '{', (size_t)(e - s)))
            continue;
        return rl_xstrndup(s, (size_t)(e - s));
    }
    return NULL;
}

/* what a renderer needs to know beyond the family, read from the template text */
typedef struct chat_style {
    rl_chat_family family;
    const char *system;
    int bos, gen_always, think;
} chat_style;

static int family_writes_bos(rl_chat_family f) {
    return f == RL_CHAT_LLAMA3 || f == RL_CHAT_LLAMA31 || f == RL_CHAT_LLAMA2 || f == RL_CHAT_MISTRAL ||
           f == RL_CHAT_GEMMA;
}

static void style_of(const char *tmpl, chat_style *cs, char **system) {
    cs->family = rl_chat_detect(tmpl);
    *system = NULL;
    cs->bos = tmpl ? strstr(tmpl, "bos_token") != NULL : family_writes_bos(cs->family);
    cs->gen_always = tmpl && cs->family == RL_CHAT_LLAMA3 && !strstr(tmpl, "add_generation_prompt");
    cs->think = tmpl && cs->family == RL_CHAT_CHATML && strstr(tmpl, "reasoning_content") != NULL;
    if (tmpl && cs->family == RL_CHAT_CHATML) *system = chatml_default_system(tmpl);
    cs->system = *system;
}

void tok_chat_detect_default(rl_tokenizer *t) {
    chat_style cs;
    free(t->chat_system);
    style_of(t->chat_template, &cs, &t->chat_system);
    t->chat_family = cs.family;
    t->chat_bos = cs.bos;
    t->chat_gen_always = cs.gen_always;
    t->chat_think = cs.think;
}

rl_status rl_tok_set_chat_template(rl_tokenizer *t, const char *s, rl_error *err) {
    if (!s || !*s) return rl_fail(err, RL_EINVAL, "empty chat template");
    rl_chat_family f = rl_chat_family_parse(s);
    if (f != RL_CHAT_UNKNOWN) {
        t->chat_family = f;
        free(t->chat_system);
        t->chat_system = NULL;
        t->chat_bos = family_writes_bos(f);
        t->chat_gen_always = t->chat_think = 0;
        return RL_OK;
    }
    f = rl_chat_detect(s);
    if (f == RL_CHAT_UNKNOWN)
        return rl_fail(err, RL_EUNSUPPORTED,
                       "chat template \"%.60s%s\" is neither a known family (chatml, llama3, llama3.1, llama2, "
                       "mistral, zephyr, gemma, phi3) nor a template of one",
                       s, strlen(s) > 60 ? "..." : "");
    free(t->chat_template);
    t->chat_template = rl_xstrdup(s);
    tok_chat_detect_default(t);
    return RL_OK;
}

rl_chat_family rl_tok_chat_family(const rl_tokenizer *t) { return t->chat_family; }

/* Python's str.strip() on ASCII whitespace, which is what the templates' trim/strip do here */
static void put_trimmed(rl_buf *b, const char *s) {
    size_t n = strlen(s), i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r')) i++;
    while (n > i && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\t' || s[n - 1] == '\r')) n--;
    rl_buf_append(b, s + i, n - i);
}

static rl_status render(const chat_style *cs, const char *bos, const char *eos, const rl_chat_msg *m, size_t n, int gen,
                        char **out, rl_error *err) {
    rl_chat_family f = cs->family;
    const char *def_system = cs->system;
    rl_buf b = {0};
    if (!cs->bos) bos = NULL;
    if (cs->gen_always) gen = 1;
    if (!bos) bos = "";
    if (!eos) eos = "";
    for (size_t i = 0; i < n; i++)
        if (!m[i].role || !m[i].content) return rl_fail(err, RL_EINVAL, "chat message %zu has no role or content", i);
    switch (f) {
    case RL_CHAT_CHATML:
        if (def_system && (n == 0 || strcmp(m[0].role, "system") != 0))
            rl_buf_printf(&b, "<|im_start|>system\n%s<|im_end|>\n", def_system);
        for (size_t i = 0; i < n; i++) {
            /* Qwen3: the final assistant turn after the last user turn carries an empty think block */
            int last_user = 1;
            for (size_t k = i + 1; k < n; k++)
                if (strcmp(m[k].role, "user") == 0) last_user = 0;
            if (cs->think && i + 1 == n && i > 0 && strcmp(m[i].role, "assistant") == 0 && last_user) {
                const char *c = m[i].content;
                while (*c == '\n') c++;
                rl_buf_printf(&b, "<|im_start|>assistant\n<think>\n\n</think>\n\n%s<|im_end|>\n", c);
            } else rl_buf_printf(&b, "<|im_start|>%s\n%s<|im_end|>\n", m[i].role, m[i].content);
        }
        if (gen) rl_buf_puts(&b, "<|im_start|>assistant\n");
        break;
    case RL_CHAT_LLAMA3:
        for (size_t i = 0; i < n; i++) {
            if (i == 0) rl_buf_puts(&b, bos);
            rl_buf_printf(&b, "<|start_header_id|>%s<|end_header_id|>\n\n", m[i].role);
            put_trimmed(&b, m[i].content);
            rl_buf_puts(&b, "<|eot_id|>");
        }
        if (gen) rl_buf_puts(&b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    case RL_CHAT_LLAMA31: {
        /* the date is the template's default (transformers would put today's date when it
         * defines strftime_now; a fixed one keeps training data reproducible) */
        size_t i = 0;
        rl_buf_puts(&b, bos);
        rl_buf_puts(&b, "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
                        "Today Date: 26 Jul 2024\n\n");
        if (n > 0 && strcmp(m[0].role, "system") == 0) put_trimmed(&b, m[0].content), i = 1;
        rl_buf_puts(&b, "<|eot_id|>");
        for (; i < n; i++) {
            rl_buf_printf(&b, "<|start_header_id|>%s<|end_header_id|>\n\n", m[i].role);
            put_trimmed(&b, m[i].content);
            rl_buf_puts(&b, "<|eot_id|>");
        }
        if (gen) rl_buf_puts(&b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    }
    case RL_CHAT_LLAMA2:
    case RL_CHAT_MISTRAL: {
        size_t i = 0;
        const char *system = NULL;
        if (n > 0 && strcmp(m[0].role, "system") == 0) system = m[0].content, i = 1;
        int expect_user = 1;
        if (f == RL_CHAT_MISTRAL) rl_buf_puts(&b, bos);
        for (size_t k = i; k < n; k++) {
            int user = strcmp(m[k].role, "user") == 0;
            if (user != expect_user || (!user && strcmp(m[k].role, "assistant") != 0)) {
                rl_buf_free(&b);
                return rl_fail(err, RL_EINVAL,
                               "%s chat: roles must alternate user/assistant/user/... (message %zu is %s)",
                               rl_chat_family_name(f), k, m[k].role);
            }
            expect_user = !expect_user;
            if (f == RL_CHAT_LLAMA2) {
                if (user) {
                    rl_buf_printf(&b, "%s[INST] ", bos);
                    if (k == i && system) { /* content.strip() of "<<SYS>>..." + content */
                        rl_buf_printf(&b, "<<SYS>>\n%s\n<</SYS>>\n\n", system);
                        size_t at = b.len;
                        rl_buf_puts(&b, m[k].content);
                        while (b.len > at && strchr(" \n\t\r", b.data[b.len - 1])) b.len--;
                        b.data[b.len] = 0;
                    } else put_trimmed(&b, m[k].content);
                    rl_buf_puts(&b, " [/INST]");
                } else {
                    rl_buf_putc(&b, ' ');
                    put_trimmed(&b, m[k].content);
                    rl_buf_printf(&b, " %s", eos);
                }
            } else {
                if (user) {
                    rl_buf_puts(&b, "[INST] ");
                    if (k == i && system) rl_buf_printf(&b, "%s\n\n", system);
                    rl_buf_printf(&b, "%s [/INST]", m[k].content);
                } else rl_buf_printf(&b, "%s%s", m[k].content, eos);
            }
        }
        break;
    }
    case RL_CHAT_ZEPHYR:
        for (size_t i = 0; i < n; i++) rl_buf_printf(&b, "<|%s|>\n%s%s\n", m[i].role, m[i].content, eos);
        if (gen) rl_buf_puts(&b, "<|assistant|>\n");
        break;
    case RL_CHAT_GEMMA: {
        rl_buf_puts(&b, bos);
        const char *system = NULL;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(m[i].role, "system") == 0) {
                system = m[i].content; /* Gemma has no system turn: it goes before the first user text */
                continue;
            }
            const char *role = strcmp(m[i].role, "assistant") == 0 ? "model" : m[i].role;
            rl_buf_printf(&b, "<start_of_turn>%s\n", role);
            if (system) {
                rl_buf_printf(&b, "%s\n\n", system);
                system = NULL;
            }
            put_trimmed(&b, m[i].content);
            rl_buf_puts(&b, "<end_of_turn>\n");
        }
        if (gen) rl_buf_puts(&b, "<start_of_turn>model\n");
        break;
    }
    case RL_CHAT_PHI3:
        rl_buf_puts(&b, bos);
        for (size_t i = 0; i < n; i++) rl_buf_printf(&b, "<|%s|>\n%s<|end|>\n", m[i].role, m[i].content);
        if (gen) rl_buf_puts(&b, "<|assistant|>\n");
        else rl_buf_puts(&b, eos);
        break;
    default: return rl_fail(err, RL_EUNSUPPORTED, "unknown chat template family");
    }
    *out = rl_buf_take(&b);
    return RL_OK;
}

rl_status rl_chat_render(rl_chat_family family, const char *bos, const char *eos, const rl_chat_msg *msgs, size_t n,
                         int add_generation_prompt, char **out, rl_error *err) {
    *out = NULL;
    chat_style cs = {family, NULL, family_writes_bos(family), 0, 0};
    return render(&cs, bos, eos, msgs, n, add_generation_prompt, out, err);
}

rl_status rl_chat_render_template(const char *tmpl, const char *bos, const char *eos, const rl_chat_msg *msgs, size_t n,
                                  int add_generation_prompt, char **out, rl_error *err) {
    *out = NULL;
    if (!tmpl) return rl_fail(err, RL_EINVAL, "no chat template");
    chat_style cs;
    char *system;
    style_of(tmpl, &cs, &system);
    if (cs.family == RL_CHAT_UNKNOWN) {
        free(system);
        return rl_fail(err, RL_EUNSUPPORTED,
                       "chat template not recognised; set `chat_template:` to one of chatml, llama3, "
                       "llama3.1, llama2, mistral, zephyr, gemma, phi3");
    }
    rl_status st = render(&cs, bos, eos, msgs, n, add_generation_prompt, out, err);
    free(system);
    return st;
}

rl_status rl_tok_chat_render(const rl_tokenizer *t, const rl_chat_msg *msgs, size_t n, int add_generation_prompt,
                             char **out, rl_error *err) {
    *out = NULL;
    if (t->chat_family == RL_CHAT_UNKNOWN)
        return rl_fail(err, RL_EUNSUPPORTED,
                       "model %s: %s; set `chat_template:` in raftlm.yaml to one of chatml, llama3, llama3.1, llama2, "
                       "mistral, zephyr, gemma, phi3",
                       t->name ? t->name : "?",
                       t->chat_template ? "its chat template is not one raftlm can render" : "it has no chat template");
    chat_style cs = {t->chat_family, t->chat_system, t->chat_bos, t->chat_gen_always, t->chat_think};
    return render(&cs, t->bos_str, t->eos_str, msgs, n, add_generation_prompt, out, err);
}
