# raftlm - build, test, benchmark.
#   make            build/raftlm
#   make deps       install the Debian packages the project needs (scripts/deps.txt)
#   make test       build and run every test; the last line is "N passed, N failed"
#   make asan       the tests under AddressSanitizer + UBSan (build-asan/)
#   make bench      benchmarks (docs/benchmarks.md says what they measure)
#   make bench-serve the server under load (stories260K) and decoding tokens/s
#   make bench-decode decoding tokens/s per weight type, SmolLM2-135M-shaped model
#   make bench-ppl  stories260K perplexity per GGUF weight type
#   make bench-gemm our AVX-512 SGEMM (float32, bf16) against OpenBLAS on the engine's shapes
#   make bench-ann  the vector index side by side with hnswlib and FAISS (minutes; needs
#                   python3-hnswlib python3-faiss python3-numpy)
#   make fuzz       libFuzzer on the vector index loader (clang; FUZZ_SECONDS, default 60)
#   make demo       the whole pipeline on the example project (examples/acme): train, eval, export
#   make fuzz       libFuzzer targets (clang) in build-fuzz/: fuzz/*.c, e.g.
#                   build-fuzz/fuzz_tok_json -max_total_time=60 tests/fixtures/tokenizer/wordpiece

BUILD   ?= build
CC      ?= cc
PKGS    := yaml-0.1 sqlite3 libxml-2.0 poppler-glib jansson libcrypto libpcre2-8 libutf8proc libcurl libmicrohttpd openblas
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -pthread -MMD -MP
# pkg-config runs once, after the packages are installed (a fresh machine has none yet), and its
# answers are kept beside the deps stamp; these are expanded lazily, when a recipe runs.
CFLAGS  += -Isrc $(shell cat $(BUILD)/.pkg-cflags 2>/dev/null)
LDLIBS   = $(shell cat $(BUILD)/.pkg-libs 2>/dev/null) -lm -pthread

LIB_SRC  := $(filter-out src/cli/main.c,$(wildcard src/*/*.c))
TEST_SRC := $(wildcard tests/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)
DEPS_OK  := $(BUILD)/.deps-ok

.PHONY: all deps test asan bench bench-tokenizer bench-teacher bench-ann bench-serve bench-decode bench-ppl bench-gemm demo clean fuzz
all: $(BUILD)/raftlm

# Every build checks the packages first and installs what is missing (once per deps.txt change).
$(DEPS_OK): scripts/deps.txt scripts/deps.sh
	@scripts/deps.sh
	@mkdir -p $(BUILD)
	@pkg-config --cflags $(PKGS) > $(BUILD)/.pkg-cflags
	@pkg-config --libs $(PKGS) > $(BUILD)/.pkg-libs
	@touch $@
deps:
	@scripts/deps.sh
# a package removed since the stamp was made: check again (dpkg-query, a few ms)
ifneq ($(filter-out deps clean,$(MAKECMDGOALS)$(if $(MAKECMDGOALS),,all)),)
ifneq ($(shell scripts/deps.sh --check >/dev/null 2>&1 || echo missing),)
.PHONY: $(DEPS_OK)
endif
endif

$(BUILD)/%.o: %.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libraftlm.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/raftlm: $(BUILD)/src/cli/main.o $(BUILD)/libraftlm.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/raftlm-tests: $(TEST_OBJ) $(BUILD)/libraftlm.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

# the builds of test and demo compile on every core (`make -jN` for the others)
JOBS    := $(shell nproc 2>/dev/null || echo 2)

test:
	@$(MAKE) --no-print-directory -j$(JOBS) $(BUILD)/raftlm $(BUILD)/raftlm-tests
	@RAFTLM_BIN=$(abspath $(BUILD)/raftlm) $(BUILD)/raftlm-tests

asan:
	@$(MAKE) --no-print-directory BUILD=build-asan OPT="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=undefined,float-cast-overflow" \
		LDFLAGS="-fsanitize=address,undefined" test

bench: $(BUILD)/raftlm
	@bench/ingest.sh $(BUILD)/raftlm

# tokenizer encode MB/s per kind (bench/tokenizer.sh; docs/benchmarks.md)
bench: bench-tokenizer
bench-tokenizer: $(BUILD)/tokenizer-bench
	@bench/tokenizer.sh $(BUILD)
$(BUILD)/tokenizer-bench: $(BUILD)/bench/tokenizer_bench.o $(BUILD)/libraftlm.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

# teacher throughput against a local server that answers in 1 s (docs/benchmarks.md)
bench: bench-teacher
bench-teacher: $(BUILD)/teacher-bench
	@$(BUILD)/teacher-bench examples/acme/docs 64 1.0
$(BUILD)/teacher-bench: $(BUILD)/bench/teacher_bench.o $(BUILD)/tests/fake_openai.o $(BUILD)/libraftlm.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

# the server under load on loopback, and single-stream decoding speed (docs/benchmarks.md)
SERVE_MODEL ?= ../shared/models/stories260K/stories260K.bin
SERVE_TOK   ?= ../shared/models/stories260K/tok512.bin
bench: bench-serve
bench-serve: $(BUILD)/serve-bench
	@$(BUILD)/serve-bench $(SERVE_MODEL) $(SERVE_TOK) 8 25 64 2
$(BUILD)/serve-bench: $(BUILD)/bench/serve_bench.o $(BUILD)/libraftlm.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

# decoding tokens/s per weight type on a SmolLM2-135M-shaped model (docs/benchmarks.md)
bench: bench-decode
bench-decode: $(BUILD)/decode-bench
	@$(BUILD)/decode-bench
# perplexity per weight type, as llama-perplexity computes it (docs/benchmarks.md)
bench: bench-ppl
bench-ppl: $(BUILD)/ppl-bench $(BUILD)/raftlm
	@bench/ppl.sh $(BUILD)
$(BUILD)/ppl-bench: $(BUILD)/bench/ppl_bench.o $(BUILD)/libraftlm.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@
$(BUILD)/decode-bench: $(BUILD)/bench/decode_bench.o $(BUILD)/libraftlm.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

# rl_sgemm's implementations on the training engine's shapes (docs/benchmarks.md)
bench: bench-gemm
bench-gemm: $(BUILD)/gemm-bench
	@$(BUILD)/gemm-bench 2 5
$(BUILD)/gemm-bench: $(BUILD)/bench/gemm_bench.o $(BUILD)/libraftlm.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

# vector index side by side with hnswlib and FAISS (bench/ann.sh; docs/benchmarks.md)
bench-ann: $(BUILD)/raftlm
	@bench/ann.sh $(BUILD)/raftlm


demo:
	@$(MAKE) --no-print-directory -j$(JOBS) $(BUILD)/raftlm
	@scripts/demo.sh $(BUILD)/raftlm

# libFuzzer: the library again with clang and coverage, then one binary per fuzz/*.c
fuzz:
	@$(MAKE) --no-print-directory BUILD=build-fuzz CC=clang \
		OPT="-O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined" \
		build-fuzz/libraftlm.a
	@mkdir -p build-fuzz/tok/qwen3 build-fuzz/tok/mistral
	@for t in qwen3 mistral; do xz -dc tests/fixtures/tokenizer/$$t/tokenizer.json.xz > build-fuzz/tok/$$t/tokenizer.json; done
	@for f in $(wildcard fuzz/*.c); do n=$$(basename $$f .c); echo "fuzz: build-fuzz/$$n"; \
		clang -std=c11 -D_GNU_SOURCE -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Isrc $$(cat build-fuzz/.pkg-cflags) \
			$$f build-fuzz/libraftlm.a $$(cat build-fuzz/.pkg-libs) -lm -pthread -o build-fuzz/$$n || exit 1; done

clean:
	rm -rf build build-asan build-fuzz

-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(BUILD)/src/cli/main.d $(BUILD)/bench/tokenizer_bench.d $(BUILD)/bench/serve_bench.d $(BUILD)/bench/decode_bench.d $(BUILD)/bench/ppl_bench.d $(BUILD)/bench/gemm_bench.d
