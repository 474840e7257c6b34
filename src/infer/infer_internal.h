/* infer_internal.h - what the files of src/infer share (not a public header). */
#ifndef RL_INFER_INTERNAL_H
#define RL_INFER_INTERNAL_H

#include "infer/infer.h"

/* One matrix (rows, cols) = (out, in) of the model: a Q8_0 copy, or the float32 original
 * (borrowed from the model) when it cannot be quantized. */
typedef struct rl_qmat {
    int rows, cols;
    rl_block_q8_0 *q8; /* (rows, cols / 32) blocks, owned; NULL when f32 is used */
    const float *f32;  /* (rows, cols), borrowed */
} rl_qmat;

struct rl_qmodel {
    rl_wtype type;
    int n_layers;
    rl_qmat (*layers)[RL_MOD_COUNT]; /* (L, RL_MOD_COUNT) */
    rl_qmat lm_head;
    rl_q8_0_dot_fn dot;
    const char *kernel;
};

#endif
