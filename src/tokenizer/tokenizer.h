/* tokenizer.h - the public door of src/tokenizer: text <-> token ids, exactly as the reference
 * implementations do it, for the vocabularies small models ship with.
 *
 * Formats (rl_tok_load detects them from the path and the first bytes):
 *   - Hugging Face tokenizer.json (or a folder holding one; tokenizer_config.json beside it is read
 *     for bos/eos and the chat template): byte-level BPE (GPT-2, Llama 3, Qwen2/3, SmolLM2),
 *     SentencePiece-style BPE (Llama 2, Mistral, TinyLlama: byte_fallback, U+2581) and WordPiece
 *     (BERT family). Ids match @huggingface/tokenizers on the same file.
 *   - GGUF vocabularies (tokenizer.ggml.model "gpt2", "llama" or "bert"); ids match llama.cpp.
 *   - llama2.c tokenizer.bin (ids match llama2.c's encode()).
 *
 * Conventions: every call that can fail returns rl_status and fills err (may be NULL). A loaded
 * tokenizer is immutable, so one rl_tokenizer may be shared by many threads for encode/decode.
 * Text is UTF-8; for tokenizer.json and GGUF vocabularies, invalid UTF-8 in the input is first
 * replaced by U+FFFD (as a JavaScript or Python string would hold it); llama2.c vocabularies take
 * raw bytes. */
#ifndef RL_TOKENIZER_H
#define RL_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

typedef struct rl_tokenizer rl_tokenizer;

typedef enum rl_tok_kind {
    RL_TOK_LLAMA2C,    /* llama2.c tokenizer.bin: score-ordered merges over bytes/characters */
    RL_TOK_BPE_BYTES,  /* byte-level BPE (GPT-2 style), merges by rank */
    RL_TOK_BPE_SPM,    /* SentencePiece-style BPE from tokenizer.json (U+2581, byte_fallback) */
    RL_TOK_SPM_SCORES, /* SentencePiece-style BPE by piece scores (GGUF "llama") */
    RL_TOK_WORDPIECE,  /* BERT WordPiece */
} rl_tok_kind;

/* Loads path: a tokenizer.json, a folder holding one, a .gguf file or a llama2.c tokenizer.bin.
 * On success *out owns everything; free it with rl_tok_free. */
rl_status rl_tok_load(rl_tokenizer **out, const char *path, rl_error *err);
/* The same from memory; format is detected from the content ("GGUF" magic, '{' for JSON, else
 * llama2.c). The data is copied; used by the fuzzers and tests. */
rl_status rl_tok_load_memory(rl_tokenizer **out, const void *data, size_t len, rl_error *err);
void rl_tok_free(rl_tokenizer *tok);

rl_tok_kind rl_tok_kind_of(const rl_tokenizer *tok);

/* Writes the tokenizer into folder dir as Hugging Face tokenizer.json + tokenizer_config.json
 * (atomically; dir is created), so that a model folder carries its tokenizer. A tokenizer read
 * from tokenizer.json is copied as it was; llama2.c and GGUF "llama" vocabularies become a
 * SentencePiece-style BPE tokenizer.json that gives the same ids. GGUF "gpt2"/"bert"
 * vocabularies: RL_EUNSUPPORTED. */
rl_status rl_tok_save_hf(const rl_tokenizer *tok, const char *dir, rl_error *err);
const char *rl_tok_kind_name(rl_tok_kind kind);
/* Number of ids (largest id + 1). */
int rl_tok_vocab_size(const rl_tokenizer *tok);
int rl_tok_bos(const rl_tokenizer *tok); /* -1 if none */
int rl_tok_eos(const rl_tokenizer *tok); /* -1 if none */
/* The ids a generator should stop at: EOS and the end-of-turn tokens of the chat formats
 * (<|eot_id|>, <|im_end|>, <end_of_turn>, ...); returns how many were written (at most cap). */
int rl_tok_stop_ids(const rl_tokenizer *tok, int32_t *out, int cap);
/* Whether id is a special (control) token: BOS/EOS/PAD, <|im_start|>, ... */
int rl_tok_is_special(const rl_tokenizer *tok, int id);
/* The piece of an id as stored in the vocabulary (not decoded; e.g. "Ġthe", "▁the"); NULL when
 * out of range. *len receives its length when len is not NULL. */
const char *rl_tok_piece(const rl_tokenizer *tok, int id, size_t *len);
/* Id of a piece written exactly as in the vocabulary, or -1. */
int rl_tok_find(const rl_tokenizer *tok, const char *piece, size_t len);

/* Encodes text (len bytes; it need not be NUL-terminated). add_special adds what the file says
 * to add: tokenizer.json's post-processor (BOS/EOS, [CLS]/[SEP]), GGUF's add_bos_token /
 * add_eos_token, BOS for llama2.c (as its run.c encodes prompts). Special tokens written in the
 * text are always recognised, as Hugging Face does. *ids is malloc'ed, the caller frees it. */
rl_status rl_tok_encode(const rl_tokenizer *tok, const char *text, size_t len, int add_special, int32_t **ids,
                        size_t *n_ids, rl_error *err);
/* Encodes text without special tokens and gives, for each token, the byte offset in text where
 * it starts (*offsets has n + 1 entries; the last is len), so that text can be cut at token
 * boundaries (the chunker). Offsets come from decoding, so they exist only where the tokenizer
 * is lossless on this text: when decode(encode(text)) != text (a normalizer changed it, e.g. NFC,
 * lower-casing, or a legacy U+2581 after a special token) the call is RL_EUNSUPPORTED. An offset
 * may fall inside a multi-byte character when a byte-level token holds part of one. Both arrays
 * are malloc'ed; the caller frees them. */
rl_status rl_tok_encode_offsets(const rl_tokenizer *tok, const char *text, size_t len, int32_t **ids, size_t **offsets,
                                size_t *n_ids, rl_error *err);
/* Number of tokens text encodes to without special tokens (the chunker's measure). */
rl_status rl_tok_count(const rl_tokenizer *tok, const char *text, size_t len, size_t *count, rl_error *err);

/* Decodes ids back to text: the exact bytes (byte-level and byte-fallback vocabularies are
 * lossless, so decode(encode(s)) == s for those). skip_special leaves special tokens out.
 * Out-of-range ids are an RL_EINVAL error. *text is malloc'ed and NUL-terminated (the
 * terminator is not counted in *len); the caller frees it. */
rl_status rl_tok_decode(const rl_tokenizer *tok, const int32_t *ids, size_t n, int skip_special, char **text,
                        size_t *len, rl_error *err);

/* Streaming decoder for generation: feed ids one at a time, get text that is always whole UTF-8
 * characters (bytes of a character split across tokens are held back until it is complete; a
 * sequence that can never become valid comes out as U+FFFD). Same text as rl_tok_decode, except
 * WordPiece's cleanup of " ." and the like, which needs the next token and is not done here. */
typedef struct rl_tok_stream rl_tok_stream;
rl_tok_stream *rl_tok_stream_new(const rl_tokenizer *tok, int skip_special);
/* Appends the newly completed text to out. */
rl_status rl_tok_stream_push(rl_tok_stream *st, int32_t id, rl_buf *out, rl_error *err);
/* Appends what is still held back (as U+FFFD) and resets the stream. */
void rl_tok_stream_flush(rl_tok_stream *st, rl_buf *out);
void rl_tok_stream_free(rl_tok_stream *st);

/* ---- training ---------------------------------------------------------------------------- */

/* Trains a byte-level BPE vocabulary of at most vocab_size ids (<s>, </s>, the 256 bytes, then
 * merges by frequency; ties to the smaller pair of ids) on n texts and writes it as a
 * tokenizer.json that rl_tok_load reads: Qwen2's pre-tokenizer (single digits), ByteLevel.
 * Deterministic for the same texts. *json is malloc'ed, the caller frees it. */
rl_status rl_tok_train_bpe(const char *const *texts, const size_t *lens, size_t n, int vocab_size, char **json,
                           rl_error *err);
/* The pre-tokenizer regex of those files: Qwen2's (llama.cpp's tokenizer.ggml.pre "qwen2"). */
extern const char rl_tok_qwen2_regex[];

/* ---- chat templates ------------------------------------------------------------------------ */

typedef enum rl_chat_family {
    RL_CHAT_UNKNOWN = 0,
    RL_CHAT_CHATML,  /* Qwen, SmolLM2: <|im_start|>role\n...<|im_end|>\n */
    RL_CHAT_LLAMA3,  /* <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|> */
    RL_CHAT_LLAMA2,  /* Llama 2: <s>[INST] <<SYS>>\n...\n<</SYS>>\n\n... [/INST] answer </s> */
    RL_CHAT_MISTRAL, /* Mistral v0.1: <s>[INST] ... [/INST]answer</s> */
    RL_CHAT_ZEPHYR,  /* <|user|>\n...</s>\n */
    RL_CHAT_GEMMA,   /* <start_of_turn>user\n...<end_of_turn>\n */
    RL_CHAT_PHI3,    /* <|user|>\n...<|end|>\n */
    RL_CHAT_LLAMA31, /* Llama 3.1 / 3.2: Llama 3 with a dated system header ("26 Jul 2024") */
} rl_chat_family;

typedef struct rl_chat_msg {
    const char *role; /* "system", "user", "assistant" */
    const char *content;
} rl_chat_msg;

/* Detects the family of a Jinja chat_template string (RL_CHAT_UNKNOWN when it cannot tell). */
rl_chat_family rl_chat_detect(const char *jinja_template);
/* Family from a name: "chatml", "llama3", "llama3.1", "llama2", "mistral", "zephyr", "gemma", "phi3";
 * RL_CHAT_UNKNOWN for anything else. */
rl_chat_family rl_chat_family_parse(const char *name);
const char *rl_chat_family_name(rl_chat_family family);
/* The family of the tokenizer's own chat template (from tokenizer_config.json or GGUF), or the
 * one set with rl_tok_set_chat_template. */
rl_chat_family rl_tok_chat_family(const rl_tokenizer *tok);
/* Overrides the template: a family name (see rl_chat_family_parse) or a Jinja template string
 * whose family is detected. An unknown one is RL_EUNSUPPORTED with a message. */
rl_status rl_tok_set_chat_template(rl_tokenizer *tok, const char *name_or_template, rl_error *err);
/* Renders messages as the model's chat template does (BOS included where the template writes
 * it; encode the result with add_special = 0). add_generation_prompt opens the assistant turn.
 * An unknown template is RL_EUNSUPPORTED naming the model and the `chat_template:` override.
 * *out is malloc'ed; the caller frees it. */
rl_status rl_tok_chat_render(const rl_tokenizer *tok, const rl_chat_msg *msgs, size_t n, int add_generation_prompt,
                             char **out, rl_error *err);
/* The same for a Jinja chat_template string (family, default system prompt and BOS use read
 * from it) and explicit bos/eos strings (either may be NULL or ""). */
rl_status rl_chat_render_template(const char *jinja_template, const char *bos, const char *eos, const rl_chat_msg *msgs,
                                  size_t n, int add_generation_prompt, char **out, rl_error *err);
/* The same for an explicit family and bos/eos strings, without template details (no default
 * system prompt; BOS written by the families whose templates write it). */
rl_status rl_chat_render(rl_chat_family family, const char *bos, const char *eos, const rl_chat_msg *msgs, size_t n,
                         int add_generation_prompt, char **out, rl_error *err);

#endif
