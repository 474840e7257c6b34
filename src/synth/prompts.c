/* prompts.c - the teachers' default prompts and their placeholders (shared by the openai and
 * local teachers). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "synth/synth_internal.h"

/* ---- prompts ---------------------------------------------------------------------------- */

const char *const syn_default_question_prompt =
    "Here is a passage from the document \"{title}\" (section: {heading}):\n"
    "<passage>\n{chunk}\n</passage>\n\n"
    "Write {n} different questions that a colleague might ask and that this passage answers with an exact fact "
    "(a number, a date, an amount, a name). Each question must make sense on its own, without the passage. "
    "Reply with only a JSON array of {n} strings.";

const char *const syn_default_answer_prompt =
    "Answer the question using only this passage from the document \"{title}\" (section: {heading}):\n"
    "<passage>\n{chunk}\n</passage>\n\n"
    "Question: {question}\n\n"
    "Explain your reasoning in one or two sentences. Copy the exact sentences you rely on between ##begin_quote## and "
    "##end_quote##. End with a line \"<ANSWER>: \" followed by the short final answer.";

const char *const syn_teacher_system_prompt = "You are a careful assistant who writes training data from company documents. Follow the format exactly.";

/* Replaces {chunk}, {heading}, {title}, {n} and {question}. */
char *syn_prompt_fill(const char *tpl, const rl_teacher_task *t) {
    rl_buf b = {0};
    for (const char *p = tpl; *p;) {
        if (*p == '{') {
            const char *e = strchr(p, '}');
            if (e) {
                size_t n = (size_t)(e - p - 1);
                const char *v = NULL;
                char num[16];
                if (n == 5 && !strncmp(p + 1, "chunk", 5)) v = t->chunk_text;
                else if (n == 7 && !strncmp(p + 1, "heading", 7)) v = t->heading && t->heading[0] ? t->heading : "-";
                else if (n == 5 && !strncmp(p + 1, "title", 5)) v = t->doc_title && t->doc_title[0] ? t->doc_title : "-";
                else if (n == 8 && !strncmp(p + 1, "question", 8)) v = t->question ? t->question : "";
                else if (n == 1 && p[1] == 'n') snprintf(num, sizeof num, "%d", t->n_questions), v = num;
                if (v) {
                    rl_buf_puts(&b, v);
                    p = e + 1;
                    continue;
                }
            }
        }
        rl_buf_putc(&b, *p++);
    }
    return rl_buf_take(&b);
}

