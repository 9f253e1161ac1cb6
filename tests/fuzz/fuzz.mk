# tests/fuzz/fuzz.mk: libFuzzer targets (clang -fsanitize=fuzzer,address,undefined)
# for the message decoder, the config loader, the safetensors header parser and
# the artifact manifest parser. Each starts from its committed seed corpus
# tests/fuzz/corpus/<target>/ (new inputs go to build-fuzz/corpus-<target>/, so
# the committed corpus only changes by hand).
#   make fuzz-check            each target for FUZZ_CHECK_TIME s (20); fails on any crash
#   make fuzz FUZZ_TIME=600    each target for FUZZ_TIME s
# A crash leaves its input in build-fuzz/crash-<target>-*; reproduce it with
#   build-fuzz/fuzz_<target> FILE
# and add the input under tests/fuzz/corpus/<target>/ with the fix.

FUZZ_CC         ?= clang
FUZZ_BUILD      ?= build-fuzz
FUZZ_TIME       ?= 600
FUZZ_CHECK_TIME ?= 20
FUZZ_TARGETS    := proto cfg safetensors manifest
FUZZ_SAN        := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS     := -std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -MMD -MP -I. $(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_LIB_SRC    := $(wildcard shared/*.c) worker/wrk_cfg.c controller/ctl_cfg.c
FUZZ_LIB_OBJ    := $(FUZZ_LIB_SRC:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_BINS       := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)

# header dependencies (-MMD): a struct that grows in a header must rebuild
# every target that embeds it (a stale fuzz_cfg.o overflowed ctl_cfg once)
-include $(shell find $(FUZZ_BUILD) -name '*.d' 2>/dev/null)

.PHONY: fuzz fuzz-check fuzz-build
fuzz-build: $(FUZZ_BINS)

$(FUZZ_BUILD)/%.o: %.c
	@command -v $(FUZZ_CC) >/dev/null || { echo "fuzz: $(FUZZ_CC) not found (scripts/install-deps.sh installs clang)"; exit 1; }
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/tests/fuzz/fuzz_%.o $(FUZZ_LIB_OBJ)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(DEP_LIBS)

# fuzz_run T SECONDS: one target from its seeds; non-zero on a crash, leak or timeout
define fuzz_run
	@mkdir -p $(FUZZ_BUILD)/corpus-$(1)
	@echo "== fuzz $(1): $(2) s"
	@LSAN_OPTIONS=suppressions=tests/fuzz/lsan.supp $(FUZZ_BUILD)/fuzz_$(1) -max_total_time=$(2) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	  -artifact_prefix=$(FUZZ_BUILD)/crash-$(1)- $(FUZZ_BUILD)/corpus-$(1) tests/fuzz/corpus/$(1) \
	  >$(FUZZ_BUILD)/fuzz-$(1).log 2>&1 \
	  || { tail -n 40 $(FUZZ_BUILD)/fuzz-$(1).log; echo "fuzz $(1): FAILED (log: $(FUZZ_BUILD)/fuzz-$(1).log)"; exit 1; }
	@grep -E "stat::number_of_executed_units|Done" $(FUZZ_BUILD)/fuzz-$(1).log | tail -n 2

endef

fuzz-check: $(FUZZ_BINS)
	$(foreach t,$(FUZZ_TARGETS),$(call fuzz_run,$(t),$(FUZZ_CHECK_TIME)))

fuzz: $(FUZZ_BINS)
	$(foreach t,$(FUZZ_TARGETS),$(call fuzz_run,$(t),$(FUZZ_TIME)))
