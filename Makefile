# cnos — one Makefile for every program, the shared library and the test tiers.
#
#   make                 build every program into build/bin/
#   make check           unit, integration, e2e and fuzz tiers (tests/run); TIERS= picks some
#   make check SANITIZE=1  the same, built with ASan + UBSan
#   make fuzz            build the libFuzzer targets (clang) into build/fuzz/
#   make fuzz-check      only the fuzz tier: replay every corpus, then fuzz each target for FUZZ_SECONDS
#   make bench           benchmarks against baselines run side by side (tests/bench)
#   make demo            boot a measured UKI in QEMU + OVMF + swtpm and compare with the prediction
#   make image           the node image (mkosi + images/assemble) into build/images/, every variant
#   make cluster         the main job: image (if stale) + `cnos cluster create` of one attested node
#   make repro           build the image twice and compare every output byte for byte

BUILD ?= build
CC ?= cc
SANITIZE ?=
FUZZ_SECONDS ?= 10
TIERS ?= unit integration e2e fuzz

PKGS := libssl libcrypto json-c libprotobuf-c tss2-esys tss2-mu tss2-tctildr tss2-rc libcryptsetup libcurl blkid
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS := $(shell pkg-config --libs $(PKGS)) -lpthread

WARN := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wformat-security -Wmissing-prototypes \
	-Wstrict-prototypes -Wvla -Wimplicit-fallthrough -Wno-unused-parameter -Wno-missing-field-initializers -Wno-format-truncation
HARDEN := -fstack-protector-strong -fstack-clash-protection -fcf-protection -fPIE \
	-D_FORTIFY_SOURCE=2 -fno-strict-aliasing -fno-delete-null-pointer-checks
OPT := -O2 -g

ifneq ($(SANITIZE),)
OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
HARDEN := $(filter-out -D_FORTIFY_SOURCE=2,$(HARDEN))
SAN_LDFLAGS := -fsanitize=address,undefined
endif

GEN := $(BUILD)/gen
CFLAGS_ALL := -std=gnu11 -D_GNU_SOURCE $(OPT) -ffile-prefix-map=$(CURDIR)=. $(WARN) $(HARDEN) -Ilib -I$(GEN) -MMD -MP $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS_ALL := -pie -Wl,-z,relro,-z,now -Wl,-z,noexecstack -Wl,--as-needed $(SAN_LDFLAGS) $(LDFLAGS)

# A change of flags (e.g. SANITIZE=1) rebuilds everything.
FLAGS_STAMP := $(BUILD)/.flags
$(shell mkdir -p $(BUILD) && echo '$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL)' > $(BUILD)/.flags.new && \
	(cmp -s $(BUILD)/.flags.new $(FLAGS_STAMP) || mv $(BUILD)/.flags.new $(FLAGS_STAMP)); rm -f $(BUILD)/.flags.new)

LIB_SRCS := $(shell find lib -name '*.c' | sort)
# The wire contract: lib/protocol/join.proto, compiled by protoc-c at build time.
PROTO_C := $(GEN)/join.pb-c.c
PROTO_H := $(GEN)/join.pb-c.h
PROTO_OBJ := $(BUILD)/obj/gen/join.pb-c.o
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o) $(PROTO_OBJ)
LIBCNOS := $(BUILD)/libcnos.a

# Programs: NAME:FOLDER. Each folder's main.c holds main(); its other files also go into an
# archive that the unit tests link against.
PROGRAMS := cnos-measure:measurement cnos:cli cnos-bootstrapper:bootstrapper cnos-joind:joinservice

prog_name = $(word 1,$(subst :, ,$1))
prog_dir = $(word 2,$(subst :, ,$1))
BINS := $(foreach p,$(PROGRAMS),$(BUILD)/bin/$(call prog_name,$p))
PROG_ARCHIVES := $(foreach p,$(PROGRAMS),$(BUILD)/$(call prog_dir,$p).a)

UNIT_SRCS := $(sort $(wildcard tests/unit/test-*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
# C integration tests (tests/integration/itest-*.c): cmocka binaries that drive real parts (swtpm),
# run by the tests/integration/*.sh script that starts those parts.
ITEST_SRCS := $(sort $(wildcard tests/integration/itest-*.c))
ITEST_BINS := $(ITEST_SRCS:tests/integration/%.c=$(BUILD)/tests/%)
BENCH_SRCS := $(sort $(wildcard tests/bench/*.c))
BENCH_BINS := $(BENCH_SRCS:tests/bench/%.c=$(BUILD)/bench/%)

.PHONY: all check unit fuzz fuzz-check bench demo image repro cluster clean
all: $(BINS)

$(BUILD)/obj/%.o: %.c $(FLAGS_STAMP) | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(PROTO_C) $(PROTO_H) &: lib/protocol/join.proto
	@mkdir -p $(GEN)
	protoc-c --c_out=$(GEN) -Ilib/protocol $<

# Generated code: compiled with the same hardening, without the project's stricter warnings.
$(PROTO_OBJ): $(PROTO_C) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -Werror -Wmissing-prototypes -Wshadow,$(CFLAGS_ALL)) -c $< -o $@

$(LIBCNOS): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

define PROGRAM_RULES
$(BUILD)/$(call prog_dir,$1).a: $$(patsubst %.c,$(BUILD)/obj/%.o,$$(filter-out $(call prog_dir,$1)/main.c,$$(wildcard $(call prog_dir,$1)/*.c)))
	@rm -f $$@
	ar rcs $$@ $$^
$(BUILD)/bin/$(call prog_name,$1): $(BUILD)/obj/$(call prog_dir,$1)/main.o $(BUILD)/$(call prog_dir,$1).a $(LIBCNOS)
	@mkdir -p $$(dir $$@)
	$(CC) $(LDFLAGS_ALL) -o $$@ $$^ $(PKG_LIBS)
endef
$(foreach p,$(PROGRAMS),$(eval $(call PROGRAM_RULES,$p)))

$(BUILD)/tests/test-%: $(BUILD)/obj/tests/unit/test-%.o $(PROG_ARCHIVES) $(LIBCNOS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(PROG_ARCHIVES) $(LIBCNOS) $(PKG_LIBS) -lcmocka

$(BUILD)/tests/itest-%: $(BUILD)/obj/tests/integration/itest-%.o $(PROG_ARCHIVES) $(LIBCNOS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(PROG_ARCHIVES) $(LIBCNOS) $(PKG_LIBS) -lcmocka

$(BUILD)/bench/%: $(BUILD)/obj/tests/bench/%.o $(PROG_ARCHIVES) $(LIBCNOS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(PROG_ARCHIVES) $(LIBCNOS) $(PKG_LIBS)

$(BUILD)/obj/tests/%.o: tests/%.c $(FLAGS_STAMP) | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Imeasurement -Itests -DTESTDATA='"$(abspath ../shared/testdata)"' -c $< -o $@

# The kubelet STAND-IN (tests/e2e/kubelet-standin): not kubelet; the e2e tests deliver it as the
# hash-pinned "kubelet" component because no kubelet binary can be downloaded here.
STANDIN := $(BUILD)/tests/cnos-kubelet-standin
$(STANDIN): tests/e2e/kubelet-standin/kubelet-standin.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -MMD -MP,$(CFLAGS_ALL)) $(LDFLAGS_ALL) -o $@ $< $(shell pkg-config --libs libcrypto)

# A test tool: decrypts a state-disk image file in user space (no device-mapper on the test hosts),
# for the e2e tests that look inside what a node wrote (tests/e2e/statedisk-read).
STATEDISK_READ := $(BUILD)/tests/cnos-statedisk-read
$(STATEDISK_READ): $(BUILD)/obj/tests/e2e/statedisk-read/statedisk-read.o $(LIBCNOS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIBCNOS) $(PKG_LIBS)

unit: $(UNIT_BINS) $(ITEST_BINS) $(STANDIN) $(STATEDISK_READ)

check: all unit $(if $(filter fuzz,$(TIERS)),fuzz)
	BUILD=$(BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) tests/run $(TIERS)

# --- fuzzing (clang + libFuzzer) ------------------------------------------------------------
FUZZ_CC ?= clang
FUZZ_CFLAGS := -std=gnu11 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer -Ilib -I$(GEN) -Imeasurement \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all $(PKG_CFLAGS)
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz-*.c))
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_LIB_SRCS := $(LIB_SRCS) $(filter-out %/main.c,$(foreach p,$(PROGRAMS),$(wildcard $(call prog_dir,$p)/*.c)))
# Everything the targets link is compiled once with clang's instrumentation into one archive.
FUZZ_OBJS := $(FUZZ_LIB_SRCS:%.c=$(BUILD)/fuzzobj/%.o) $(BUILD)/fuzzobj/gen/join.pb-c.o
FUZZ_LIB := $(BUILD)/libcnos-fuzz.a
FUZZ_INSTR := $(filter-out -fsanitize=fuzzer%,$(FUZZ_CFLAGS)) -fsanitize=fuzzer-no-link

$(BUILD)/fuzzobj/gen/%.o: $(GEN)/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_INSTR) -c $< -o $@

$(BUILD)/fuzzobj/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_INSTR) -c $< -o $@

$(FUZZ_LIB): $(FUZZ_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_LIB) $(PKG_LIBS)

fuzz: $(FUZZ_BINS)

fuzz-check: fuzz
	BUILD=$(BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) tests/run fuzz

bench: all $(BENCH_BINS)
	BUILD=$(BUILD) tests/bench/run

# The README's main job for now: boot a measured UKI and compare prediction with the TPM.
demo: all
	BUILD=$(BUILD) tests/e2e/demo

IMAGE_VARIANTS ?= qemu azure gcp aws
image: all
	BUILD=$(BUILD) images/build $(IMAGE_VARIANTS)

repro: all
	BUILD=$(BUILD) images/repro $(IMAGE_VARIANTS)

# One worker by default (WORKERS=N for more): each node is a QEMU VM under TCG here, minutes apiece.
WORKERS ?= 1
CLUSTER_DIR ?= $(BUILD)/cluster
cluster: all $(STANDIN)
	BUILD=$(BUILD) images/build --if-stale $(IMAGE_VARIANTS)
	$(BUILD)/bin/cnos cluster create --provider qemu --workers $(WORKERS) --dir $(CLUSTER_DIR)
	@echo "cluster up: $(BUILD)/bin/cnos cluster status --dir $(CLUSTER_DIR); stop it with: $(BUILD)/bin/cnos cluster destroy --dir $(CLUSTER_DIR)"

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# Keep intermediate objects (tests, fuzz) instead of deleting them after each link.
.SECONDARY:
