/* loop.c - the training run: epochs of shuffled examples cut into micro-batches, gradient
 * accumulation with the loss normalised over the target tokens of the whole accumulated batch,
 * clipping, AdamW with a schedule, evaluation on a validation split, train_log.jsonl, and
 * checkpoints from which a killed run resumes exactly.
 *
 * Exact resume: a checkpoint holds the weights (PEFT adapter or model.safetensors, F32), the
 * AdamW moments and step count, and the data cursor (epoch, index in that epoch's order). The
 * order of an epoch is a pure function of (seed, epoch), and nothing else is random (LoRA dropout
 * is not implemented), so a resumed run repeats the uninterrupted run's arithmetic exactly.
 * A checkpoint folder is written as checkpoint-N.tmp and renamed into place when complete.
 */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/train.h"

static void epoch_order(size_t *order, size_t n, uint64_t seed, int epoch) {
    for (size_t i = 0; i < n; i++) order[i] = i;
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + (uint64_t)epoch * 0xbf58476d1ce4e5b9ull + 1;
    for (size_t i = n; i > 1; i--) {
        s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
        size_t j = (size_t)((s * 0x2545f4914f6cdd1dull) >> 33) % i;
        size_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
}

/* Micro-batches in one epoch (packing makes it depend on the order). */
static size_t epoch_micro_batches(const rl_dataset *ds, size_t *order, uint64_t seed, int epoch, int B, int T,
                                  int packed) {
    epoch_order(order, ds->n, seed, epoch);
    rl_batch b = {0};
    size_t n = 0;
    for (size_t i = 0; i < ds->n; n++) i = rl_batch_build(&b, ds, order, ds->n, i, B, T, packed);
    rl_batch_free(&b);
    return n;
}

rl_status rl_eval_loss(rl_model *m, rl_acts *a, const rl_dataset *ds, int B, int T, int packed, float *loss,
                       rl_error *err) {
    int dropout = m->lora ? m->lora->dropout_active : 0; // evaluation runs without dropout
    if (m->lora) m->lora->dropout_active = 0;
    size_t *order = rl_xmalloc((ds->n ? ds->n : 1) * sizeof *order);
    for (size_t i = 0; i < ds->n; i++) order[i] = i;
    rl_batch b = {0};
    double sum = 0;
    long valid = 0;
    rl_status s = RL_OK;
    for (size_t i = 0; i < ds->n && !s;) {
        i = rl_batch_build(&b, ds, order, ds->n, i, B, T, packed);
        float l;
        s = rl_model_forward(m, a, b.tokens, b.targets, b.pos, b.seg, b.B, b.T, &l, err);
        sum += (double)l * a->n_valid;
        valid += a->n_valid;
    }
    *loss = valid ? (float)(sum / valid) : NAN;
    if (m->lora) m->lora->dropout_active = dropout;
    rl_batch_free(&b);
    free(order);
    return s;
}

/* ---- checkpoints -------------------------------------------------------------------------- */

typedef struct {
    int step, epoch;
    size_t index;
} cursor;

static rl_status save_checkpoint(rl_trainer *tr, const rl_train_opts *o, const cursor *c, rl_error *err) {
    char *final = rl_xasprintf("%s/checkpoint-%d", o->output_dir, c->step);
    char *tmp = rl_xasprintf("%s.tmp", final);
    rl_status s = rl_remove_tree(tmp, err); // a leftover from a kill
    if (!s) s = rl_mkdir_p(tmp, err);
    if (!s) s = tr->lora ? rl_lora_save_peft(tr->m->lora, &tr->m->cfg, tmp, o->base_model, err)
                         : rl_model_save_hf(tr->m, tmp, err);
    if (!s) {
        rl_buf b = {0};
        uint64_t hdr[2] = {0x5241464f50544d31ull, tr->opt.n}; // "RAFOPTM1", count
        rl_buf_append(&b, hdr, sizeof hdr);
        rl_buf_append(&b, tr->opt.m, tr->opt.n * sizeof(float));
        rl_buf_append(&b, tr->opt.v, tr->opt.n * sizeof(float));
        char *p = rl_path_join(tmp, "optimizer.bin");
        s = rl_file_write_atomic(p, b.data, b.len, err);
        free(p);
        rl_buf_free(&b);
    }
    if (!s) {
        char *js = rl_xasprintf("{\"step\": %d, \"epoch\": %d, \"index\": %zu, \"adam_t\": %lld, \"lora\": %s}\n", c->step,
                                c->epoch, c->index, (long long)tr->opt.t, tr->lora ? "true" : "false");
        char *p = rl_path_join(tmp, "trainer_state.json");
        s = rl_file_write_atomic(p, js, strlen(js), err);
        free(p);
        free(js);
    }
    if (!s && rename(tmp, final) != 0) s = rl_fail(err, RL_EIO, "cannot rename %s into place", tmp);
    free(tmp);
    free(final);
    return s;
}

static int newest_checkpoint(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int best = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        int n;
        char tail;
        if (sscanf(e->d_name, "checkpoint-%d%c", &n, &tail) == 1 && n > best) best = n;
    }
    closedir(d);
    return best;
}

rl_status rl_train_clear_checkpoints(const char *output_dir, rl_error *err) {
    DIR *d = opendir(output_dir);
    rl_status s = RL_OK;
    for (struct dirent *e; d && !s && (e = readdir(d));) {
        int n;
        if (sscanf(e->d_name, "checkpoint-%d", &n) != 1) continue; /* finished ones and .tmp leftovers */
        char *ck = rl_path_join(output_dir, e->d_name);
        s = rl_remove_tree(ck, err);
        free(ck);
    }
    if (d) closedir(d);
    return s;
}

static rl_status load_checkpoint(rl_trainer *tr, const rl_train_opts *o, int step, cursor *c, rl_error *err) {
    char *dir = rl_xasprintf("%s/checkpoint-%d", o->output_dir, step);
    char *p = rl_path_join(dir, "trainer_state.json"), *text = NULL, *opt = NULL;
    size_t len = 0, olen = 0;
    rl_status s = rl_file_read(p, 1 << 16, &text, &len, err);
    free(p);
    json_t *js = s ? NULL : json_loadb(text, len, 0, NULL);
    if (!s && (!js || !json_is_integer(json_object_get(js, "step")) || !json_is_integer(json_object_get(js, "adam_t"))))
        s = rl_fail(err, RL_EFORMAT, "%s/trainer_state.json is damaged", dir);
    if (!s && json_is_true(json_object_get(js, "lora")) != tr->lora)
        s = rl_fail(err, RL_EINVAL, "%s was written by a %s run; this run is %s", dir, tr->lora ? "full" : "LoRA",
                    tr->lora ? "LoRA" : "full");
    if (!s) {
        c->step = (int)json_integer_value(json_object_get(js, "step"));
        c->epoch = (int)json_integer_value(json_object_get(js, "epoch"));
        c->index = (size_t)json_integer_value(json_object_get(js, "index"));
        tr->opt.t = json_integer_value(json_object_get(js, "adam_t"));
    }
    if (!s) {
        p = rl_path_join(dir, "optimizer.bin");
        s = rl_file_read(p, 0, &opt, &olen, err);
        free(p);
        if (!s && olen != 16 + 2 * tr->opt.n * sizeof(float))
            s = rl_fail(err, RL_EFORMAT, "%s/optimizer.bin has %zu bytes, expected %zu", dir, olen,
                        16 + 2 * tr->opt.n * sizeof(float));
        if (!s) {
            memcpy(tr->opt.m, opt + 16, tr->opt.n * sizeof(float));
            memcpy(tr->opt.v, opt + 16 + tr->opt.n * sizeof(float), tr->opt.n * sizeof(float));
        }
    }
    if (!s && tr->lora) {
        rl_lora lo;
        if (!(s = rl_lora_load_peft(&lo, &tr->m->cfg, dir, err))) {
            if (lo.n != tr->m->lora->n || lo.r != tr->m->lora->r || lo.targets != tr->m->lora->targets)
                s = rl_fail(err, RL_EINVAL, "%s: the adapter's rank or modules differ from this run's", dir);
            else memcpy(tr->m->lora->mem, lo.mem, lo.n * sizeof(float));
            rl_lora_free(&lo);
        }
    } else if (!s) {
        rl_model mm;
        if (!(s = rl_model_load_hf(&mm, dir, err))) {
            if (mm.w.n != tr->m->w.n) s = rl_fail(err, RL_EINVAL, "%s: the model's shape differs from this run's", dir);
            else memcpy(tr->m->w.mem, mm.w.mem, mm.w.n * sizeof(float));
            rl_model_free(&mm);
        }
    }
    json_decref(js);
    free(text);
    free(opt);
    free(dir);
    return s;
}

/* Keeps the lines of train_log.jsonl up to `step` (a resumed run rewrites what follows). */
static void truncate_log(const char *path, int step) {
    char *text = NULL;
    size_t len = 0;
    if (rl_file_read(path, 0, &text, &len, NULL)) return;
    rl_buf keep = {0};
    for (char *p = text; p < text + len;) {
        char *nl = memchr(p, '\n', (size_t)(text + len - p));
        size_t ll = nl ? (size_t)(nl - p) + 1 : (size_t)(text + len - p);
        int s = -1;
        if (sscanf(p, "{\"step\": %d", &s) == 1 && s <= step) rl_buf_append(&keep, p, ll);
        p += ll;
    }
    rl_file_write_atomic(path, keep.data ? keep.data : "", keep.len, NULL);
    rl_buf_free(&keep);
    free(text);
}

/* ---- the run ------------------------------------------------------------------------------ */

rl_status rl_train_run(rl_model *m, const rl_dataset *train, const rl_dataset *val, const rl_train_opts *o,
                       rl_train_result *res, rl_error *err) {
    memset(res, 0, sizeof *res);
    res->first_eval_loss = res->eval_loss = NAN;
    int B = o->micro_batch_size, T = o->sequence_len, GA = o->gradient_accumulation_steps;
    if (B <= 0 || T <= 1 || GA <= 0) return rl_fail(err, RL_EINVAL, "micro_batch_size, sequence_len and gradient_accumulation_steps must be positive");
    if (!train->n) return rl_fail(err, RL_EINVAL, "the training set is empty");
    if (o->lora && !m->lora) return rl_fail(err, RL_EINVAL, "LoRA training needs adapters attached to the model");
    rl_status s = rl_mkdir_p(o->output_dir, err);
    if (s) return s;
    size_t *order = rl_xmalloc(train->n * sizeof *order);
    size_t per_epoch = epoch_micro_batches(train, order, o->seed, 0, B, T, o->sample_packing);
    int steps_per_epoch = (int)((per_epoch + GA - 1) / GA);
    int total = o->max_steps > 0 ? o->max_steps : steps_per_epoch * (o->num_epochs > 0 ? o->num_epochs : 1);
    rl_acts a;
    rl_trainer tr;
    if ((s = rl_acts_init_ex(&a, m, B, T, RL_ACTS_CHUNKED_LOGITS | (o->gradient_checkpointing ? RL_ACTS_CHECKPOINT : 0), err))) {
        free(order);
        return s;
    }
    if ((s = rl_trainer_init(&tr, m, o->lora, o->weight_decay, o->max_grad_norm, err))) {
        rl_acts_free(&a);
        free(order);
        return s;
    }
    if (o->adam_beta1 > 0) tr.opt.beta1 = o->adam_beta1;
    if (o->adam_beta2 > 0) tr.opt.beta2 = o->adam_beta2;
    if (o->adam_epsilon > 0) tr.opt.eps = o->adam_epsilon;
    cursor c = {0};
    char *log_path = rl_path_join(o->output_dir, "train_log.jsonl");
    if (o->resume) {
        int ck = newest_checkpoint(o->output_dir);
        if (ck >= 0) {
            if ((s = load_checkpoint(&tr, o, ck, &c, err))) goto done;
            rl_info("resuming from %s/checkpoint-%d", o->output_dir, ck);
            truncate_log(log_path, c.step);
        }
    } else {
        remove(log_path);
    }
    FILE *log = fopen(log_path, "a");
    if (!log) {
        s = rl_fail(err, RL_EIO, "cannot open %s", log_path);
        goto done;
    }
    epoch_order(order, train->n, o->seed, c.epoch);
    rl_batch *mb = rl_xcalloc((size_t)GA, sizeof *mb);
    int start_step = c.step;
    if (val && val->n && c.step == 0) {
        if ((s = rl_eval_loss(m, &a, val, B, T, o->sample_packing, &res->first_eval_loss, err))) goto close;
        fprintf(log, "{\"step\": 0, \"eval_loss\": %.6f}\n", res->first_eval_loss);
        res->eval_loss = res->first_eval_loss;
    }
    rl_progress prog;
    rl_progress_start(&prog, "train", "steps", total);
    rl_progress_add(&prog, c.step);
    while (c.step < total && !s) {
        double t0 = rl_now();
        int n_mb = 0;
        long valid = 0, tokens = 0;
        for (; n_mb < GA; n_mb++) { // gather the accumulated batch first: its target count scales the loss
            if (c.index >= train->n) {
                c.epoch++;
                c.index = 0;
                epoch_order(order, train->n, o->seed, c.epoch);
            }
            c.index = rl_batch_build(&mb[n_mb], train, order, train->n, c.index, B, T, o->sample_packing);
            valid += mb[n_mb].n_valid;
            tokens += (long)mb[n_mb].B * mb[n_mb].T;
        }
        rl_trainer_zero_grad(&tr);
        double loss_sum = 0;
        for (int k = 0; k < n_mb && !s; k++) {
            float l;
            if (m->lora) { // a fresh dropout mask per micro-batch, a function of (seed, step, k) only
                m->lora->dropout_active = 1;
                m->lora->dropout_seed = o->seed * 0x9e3779b97f4a7c15ull + (uint64_t)c.step * GA + (uint64_t)k + 1;
            }
            s = rl_model_forward(m, &a, mb[k].tokens, mb[k].targets, mb[k].pos, mb[k].seg, mb[k].B, mb[k].T, &l, err);
            if (s) break;
            loss_sum += (double)l * a.n_valid;
            if (a.n_valid) rl_trainer_backward(&tr, &a, 1.0f / (float)(valid ? valid : 1));
        }
        if (m->lora) m->lora->dropout_active = 0;
        if (s) break;
        float lr = rl_sched_lr(o->lr_scheduler, o->learning_rate, c.step, o->warmup_steps, total);
        double norm = rl_trainer_step(&tr, lr);
        c.step++;
        float loss = valid ? (float)(loss_sum / valid) : 0.0f;
        if (c.step == start_step + 1 && start_step == 0) res->first_loss = loss;
        res->last_loss = loss;
        double dt = rl_now() - t0;
        fprintf(log, "{\"step\": %d, \"epoch\": %.4f, \"loss\": %.6f, \"lr\": %.6g, \"grad_norm\": %.6f, \"tokens_per_s\": %.1f}\n",
                c.step, c.epoch + (double)c.index / (double)train->n, loss, lr, norm, dt > 0 ? tokens / dt : 0.0);
        fflush(log);
        rl_progress_add(&prog, 1);
        rl_debug("step %d/%d loss %.4f lr %.3g grad norm %.3f", c.step, total, loss, lr, norm);
        int last = c.step == total;
        if (val && val->n && ((o->eval_steps > 0 && c.step % o->eval_steps == 0) || last)) {
            if ((s = rl_eval_loss(m, &a, val, B, T, o->sample_packing, &res->eval_loss, err))) break;
            fprintf(log, "{\"step\": %d, \"eval_loss\": %.6f}\n", c.step, res->eval_loss);
            fflush(log);
        }
        if (o->save_steps > 0 && c.step % o->save_steps == 0 && !last) s = save_checkpoint(&tr, o, &c, err);
        if (o->stop_after > 0 && c.step - start_step >= o->stop_after) break; // tests: a "kill"
    }
    rl_progress_finish(&prog);
    res->steps = c.step;
    if (!s && c.step == total) { // the result: an adapter or a model in output_dir
        s = o->lora ? rl_lora_save_peft(m->lora, &m->cfg, o->output_dir, o->base_model, err) : rl_model_save_hf(m, o->output_dir, err);
        if (!s) rl_info("trained %d steps; last loss %.4f, eval loss %.4f; wrote %s", c.step, res->last_loss,
                        res->eval_loss, o->output_dir);
    }
close:
    for (int k = 0; k < GA; k++) rl_batch_free(&mb[k]);
    free(mb);
    fclose(log);
done:
    free(log_path);
    rl_trainer_free(&tr);
    rl_acts_free(&a);
    free(order);
    return s;
}
