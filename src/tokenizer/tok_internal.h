/* tok_internal.h - what the files of src/tokenizer share; nothing outside the folder includes it.
 *
 * One rl_tokenizer holds every kind: a vocabulary (pieces in one pool, a hash map piece -> id),
 * optional merges (a hash map (left id, right id) -> (rank, merged id)), added tokens, and the
 * pipeline read from tokenizer.json (normalizers, pre-tokenizers, post-processor, decoder).
 * Loaders (tok_json.c, tok_gguf.c, tok_llama2c.c) fill it; tok_core.c finishes it
 * (tok_finish: maps, decode table) and runs the pipeline; tok_bpe.c / tok_wordpiece.c /
 * tok_llama2c.c are the models. */
#ifndef RL_TOK_INTERNAL_H
#define RL_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizer/tokenizer.h"

/* token attributes */
enum {
    TOK_NORMAL = 0,
    TOK_CONTROL = 1, /* special: <s>, </s>, <|im_end|> ... */
    TOK_BYTE = 2,    /* <0xXX> byte-fallback piece */
    TOK_UNKNOWN = 3, /* <unk> */
    TOK_USER = 4,    /* added, not special */
    TOK_UNUSED = 5,  /* a hole in the id space */
};

/* ---- hash maps ---- */
typedef struct tok_strmap { /* piece -> id; slots hold id+1, 0 = empty */
    uint32_t *slots;
    size_t mask;
} tok_strmap;

typedef struct tok_pairmap { /* (a,b) -> (rank, id) */
    uint64_t *keys;          /* (a << 32 | b) + 1, 0 = empty */
    int32_t *rank, *id;
    size_t mask;
} tok_pairmap;

/* ---- added tokens ---- */
typedef struct tok_added {
    int32_t id;
    char *content;
    size_t len;
    char *norm; /* normalized content (when normalized && a normalizer exists) */
    size_t norm_len;
    int special, lstrip, rstrip, normalized, single_word;
} tok_added;

/* ---- normalizers ---- */
enum {
    NORM_NFC,
    NORM_NFD,
    NORM_NFKC,
    NORM_NFKD,
    NORM_PREPEND,
    NORM_REPLACE,
    NORM_LOWER,
    NORM_STRIP_ACCENTS,
    NORM_STRIP,
    NORM_BERT,
    NORM_PRECOMPILED
};
typedef struct tok_norm {
    int type;
    char *a, *b; /* Prepend: a; Replace: a (literal) -> b */
    size_t alen, blen;
    pcre2_code *re;                                    /* Replace with a Regex pattern */
    int left, right;                                   /* Strip */
    int clean_text, chinese, lowercase, strip_accents; /* Bert (strip_accents: -1 = unset) */
} tok_norm;

/* ---- pre-tokenizers ---- */
enum {
    PRE_SPLIT,
    PRE_BYTELEVEL,
    PRE_METASPACE,
    PRE_WHITESPACE,
    PRE_WHITESPACE_SPLIT,
    PRE_BERT,
    PRE_PUNCT,
    PRE_DIGITS,
    PRE_REPLACE
};
enum { SPLIT_ISOLATED, SPLIT_REMOVED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS };
typedef struct tok_pre {
    int type;
    pcre2_code *re; /* Split, ByteLevel (use_regex), Whitespace, Bert, Punct, Digits, Replace(regex) */
    int behavior, invert;
    int add_prefix_space, use_regex;
    char *rep; /* Metaspace replacement / Replace content */
    size_t rep_len;
    char *lit; /* Replace literal pattern */
    size_t lit_len;
    int prepend_scheme; /* 0 always, 1 first, 2 never */
} tok_pre;

/* ---- post-processor ---- */
typedef struct tok_tmpl_item {
    int32_t id; /* special token id, or -1 for the sequence $A */
} tok_tmpl_item;

/* ---- decoder ---- */
enum { DEC_RAW, DEC_BYTELEVEL, DEC_SPM, DEC_WORDPIECE };

struct rl_tokenizer {
    rl_tok_kind kind;
    int32_t n_vocab;
    char *pool; /* all pieces back to back, each NUL-terminated */
    size_t pool_len, pool_cap;
    uint32_t *off, *len; /* (n_vocab) */
    float *score;        /* (n_vocab), NULL unless the kind uses scores */
    uint8_t *attr;       /* (n_vocab) */
    tok_strmap map;
    tok_pairmap merges;
    int32_t n_merges;
    int max_piece_len;

    int32_t bos, eos, unk, pad;
    int32_t stop[8];
    int n_stop;
    int32_t byte_id[256]; /* <0xXX> ids (byte fallback), -1 when absent */
    int32_t bl_id[256];   /* byte-level: id of the piece for byte b, -1 when absent */

    /* model options */
    int bytelevel; /* initial symbols are bytes mapped through bytes_to_unicode */
    int byte_fallback, fuse_unk, ignore_merges;
    char *wp_prefix; /* WordPiece continuing_subword_prefix ("##") */
    int wp_max_chars;
    int spm_add_space; /* GGUF llama: prepend U+2581 */
    int wpm;           /* GGUF bert: llama.cpp's WPM instead of WordPiece */
    /* no piece holds U+2581 after another character, so BPE never merges across the start of
     * a U+2581 run and a long word can be cut there (SentencePiece's split_by_whitespace) */
    int spm_cut_ok;

    /* pipeline (tokenizer.json, GGUF gpt2) */
    tok_norm *norms;
    int n_norms;
    tok_pre *pres;
    int n_pres;
    tok_added *added;
    int n_added;
    /* added-token matching, [0] raw text (normalized=false or no normalizer), [1] normalized
     * text: indexes into added sorted by (first byte, length desc), with per-first-byte starts */
    int32_t *aidx[2];
    int32_t abeg[2][257];
    int has_normalizer;
    tok_tmpl_item *tmpl; /* post-processor single template; NULL = none */
    int n_tmpl;

    /* decoding */
    char *dec_pool;
    uint32_t *dec_off, *dec_len; /* decoded bytes of each id */
    int dec_mode;                /* DEC_RAW, DEC_BYTELEVEL, DEC_SPM, DEC_WORDPIECE */
    int dec_strip_first;         /* strip one leading space of the output (SentencePiece) */
    int dec_strip_after_bos;     /* llama2.c: also after BOS */
    int dec_cleanup;             /* WordPiece cleanup */

    /* chat */
    char *chat_template;
    rl_chat_family chat_family;
    char *chat_system;   /* the template's default system prompt (ChatML: Qwen2.5, SmolLM2) */
    int chat_bos;        /* the template writes bos_token */
    int chat_gen_always; /* the template opens the assistant turn unconditionally (early Llama 3) */
    int chat_think;      /* Qwen3: a final assistant turn gets an empty <think></think> block */
    char *name;          /* for messages: the file or folder loaded */
    char *src_json, *src_config; /* the tokenizer.json / tokenizer_config.json read (rl_tok_save_hf copies them) */
    char *bos_str, *eos_str;
};

/* tok_core.c */
#define TOK_MAX_PIECE (1u << 16) /* bytes; real pieces are far shorter */
rl_tokenizer *tok_new(void);
/* Appends a piece to the vocabulary at id (growing the id space); returns 0, -1 when the id
 * already holds a piece, -2 when the piece is longer than TOK_MAX_PIECE or the pool is full. */
int tok_set_piece(rl_tokenizer *t, int32_t id, const char *s, size_t n, uint8_t attr);
void tok_reserve_ids(rl_tokenizer *t, int32_t n);
int32_t tok_lookup(const rl_tokenizer *t, const char *s, size_t n);
int tok_add_merge(rl_tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t id); /* -1: duplicate */
int tok_merge_get(const rl_tokenizer *t, int32_t a, int32_t b, int32_t *rank, int32_t *id);
/* Builds the maps and the decode table; checks ids (bos/eos/unk in range). */
rl_status tok_finish(rl_tokenizer *t, rl_error *err);
rl_status tok_build_strmap(rl_tokenizer *t, rl_error *err);

/* byte-level alphabet: byte -> code point and back (-1 when not in the alphabet) */
uint32_t tok_byte_to_cp(int b);
int tok_cp_to_byte(uint32_t cp);

/* scratch for one encode call */
/* per-call cache of short pre-tokens already encoded (words repeat a lot in real text) */
typedef struct tok_cache {
    uint32_t *slot; /* entry index + 1, 0 = empty */
    size_t mask;
    uint32_t *woff, *wlen, *ioff, *ilen; /* word bytes in words, ids in ids */
    size_t n, cap;
    rl_buf words;
    int32_t *ids;
    size_t n_ids, cap_ids;
} tok_cache;

typedef struct tok_scratch {
    struct tok_sym *sym;
    size_t sym_cap;
    uint64_t *heap;
    size_t heap_cap;
    rl_buf tmp;
    tok_cache cache;
} tok_scratch;
void tok_scratch_free(tok_scratch *s);

typedef struct tok_ids {
    int32_t *v;
    size_t n, cap;
} tok_ids;
void tok_ids_push(tok_ids *a, int32_t id);

/* tok_bpe.c: encodes one pre-token (raw UTF-8) with the BPE model. */
void tok_bpe_word(const rl_tokenizer *t, const char *w, size_t n, tok_scratch *s, tok_ids *out);
/* tok_llama2c.c: SentencePiece by scores (GGUF llama) for one fragment. */
void tok_spm_word(const rl_tokenizer *t, const char *w, size_t n, tok_scratch *s, tok_ids *out);
/* tok_wordpiece.c */
void tok_wordpiece_word(const rl_tokenizer *t, const char *w, size_t n, tok_ids *out);
/* llama.cpp's WPM for GGUF "bert" vocabularies: a whole text fragment (no special tokens) */
void tok_wpm_text(const rl_tokenizer *t, const char *s, size_t n, tok_ids *out);
/* tok_llama2c.c */
rl_status tok_llama2c_load(rl_tokenizer *t, const uint8_t *data, size_t size, rl_error *err);
void tok_llama2c_encode(const rl_tokenizer *t, const char *text, size_t len, int add_special, tok_scratch *s,
                        tok_ids *out);
/* tok_json.c */
rl_status tok_json_load(rl_tokenizer *t, const char *json, size_t len, rl_error *err);
rl_status tok_json_read_config(rl_tokenizer *t, const char *json, size_t len, rl_error *err);
/* tok_gguf.c */
rl_status tok_gguf_load(rl_tokenizer *t, const uint8_t *data, size_t size, rl_error *err);
/* tok_pipeline.c */
rl_status tok_pipeline_encode(const rl_tokenizer *t, const char *text, size_t len, int add_special, tok_scratch *s,
                              tok_ids *out, rl_error *err);
/* Compiles a tokenizer.json regex for PCRE2 (UTF, UCP, JIT), rewritten the way the reference
 * reads it (\s as White_Space, (?i:...) folding ASCII only). */
pcre2_code *tok_regex_compile(const char *pattern, size_t len, int literal, rl_error *err);
rl_status tok_normalize(const rl_tokenizer *t, const char *in, size_t n, rl_buf *out, rl_error *err);
void tok_pre_free(tok_pre *p);
void tok_norm_free(tok_norm *n);
/* tok_chat.c */
void tok_chat_detect_default(rl_tokenizer *t);
/* tok_pipeline.c: builds aidx/abeg from added (after the normalizers are known) */
rl_status tok_added_index(rl_tokenizer *t, rl_error *err);

/* UTF-8 helpers */
static inline int tok_u8len(unsigned char c) { return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }
/* Appends cp as UTF-8. */
void tok_put_cp(rl_buf *b, uint32_t cp);
/* Copies text to out, replacing invalid UTF-8 with U+FFFD (as TextDecoder does). */
void tok_sanitize_utf8(const char *s, size_t n, rl_buf *out);

#endif
