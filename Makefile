# hopper: build, test, demo, bench, lint.
#
#   make            build everything into build/
#   make test       install what is missing, lint, then unit, integration and
#                   fault tests, then the same again under ASan and UBSan,
#                   then compose.yaml end to end under podman
#   make demo       the main job, end to end
#   make bench      benchmarks that print ratios against peers (BENCH=postgres: one)
#
# SANITIZE=address,undefined builds into build/san/ with the sanitizers on.
# WERROR=1 (CI) turns warnings into errors. CFLAGS, CPPFLAGS and LDFLAGS are
# the user's: the flags hopper needs (HOP_CFLAGS, HOP_LDFLAGS) are added to
# them, never replaced by them.

SANITIZE ?=
ifeq ($(SANITIZE),)
BUILD ?= build
else
BUILD ?= build/san
endif

CC      ?= cc
PKGS    := jansson libpq rdkafka libmicrohttpd
CFLAGS  ?= -O2 -g
# Required by the sources (C11 with GNU extensions, header dependencies,
# includes from the top folder) and the warnings the project keeps at zero.
# Recursive, so that the worker fragments' additions stay lazy too.
HOP_CFLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wstrict-prototypes \
             -Wno-unused-parameter -Wno-missing-field-initializers -MMD -MP -I.
HOP_LDFLAGS =
ifneq ($(WERROR),)
HOP_CFLAGS += -Werror
endif
ifneq ($(SANITIZE),)
HOP_CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
HOP_LDFLAGS += -fsanitize=$(SANITIZE)
endif

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

# The coordinator's allocator. librdkafka's threads allocate every message
# and the coordinator's thread frees it: glibc's malloc makes that thread
# wait on the other arena's lock, jemalloc does not (bench/kafka.py, topic
# to topic: about a fifth faster). MALLOC= links glibc's; the sanitizers
# bring their own.
MALLOC ?= jemalloc
ifneq ($(SANITIZE),)
MALLOC :=
endif
MALLOC_LIBS = $(if $(MALLOC),$(shell pkg-config --libs $(MALLOC)))

# The coordinator's own modules, then one folder per source and sink driver.
CORE_SRC := $(filter-out coordinator/main.c,$(wildcard coordinator/*.c)) \
            $(wildcard sources/*.c sources/*/*.c) \
            $(wildcard sinks/*.c sinks/*/*.c)
CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/%.o)
MAIN_OBJ := $(BUILD)/coordinator/main.o

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

HOPPER   := $(BUILD)/hopper

.PHONY: all workers deps test check unit integration harness-test compose-test demo bench lint format clean
all: $(HOPPER) workers

# Each worker fragment below adds its binaries as prerequisites of this.
workers:

$(HOPPER): $(MAIN_OBJ) $(BUILD)/libhopper.a
	$(CC) $(HOP_LDFLAGS) $(LDFLAGS) -o $@ $^ $(MALLOC_LIBS) $(PKG_LIBS) -lm -lpthread

$(BUILD)/libhopper.a: $(CORE_OBJ)
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(HOP_CFLAGS) $(PKG_CFLAGS) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libhopper.a
	@mkdir -p $(@D)
	$(CC) $(HOP_CFLAGS) $(PKG_CFLAGS) $(shell pkg-config --cflags cmocka) \
		$(CPPFLAGS) $(CFLAGS) -o $@ $< $(BUILD)/libhopper.a \
		$(HOP_LDFLAGS) $(LDFLAGS) $(PKG_LIBS) $(shell pkg-config --libs cmocka) -lm

# Workers: the C helper, the examples and the thumbnail worker bring their
# own rules, each in its folder.
-include worker/worker.mk
-include worker/thumbnail/thumbnail.mk
include bench/bench.mk

# Installs what a fresh Debian machine lacks (as root); a no-op otherwise.
deps:
	@bash tests/deps.sh

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

# librdkafka's mock cluster, for Kafka faults a real broker cannot make.
KAFKA_MOCK := $(BUILD)/tests/kafka_mock
$(KAFKA_MOCK): tests/kafkamock/kafka_mock.c
	@mkdir -p $(@D)
	$(CC) $(HOP_CFLAGS) $(shell pkg-config --cflags rdkafka) $(CPPFLAGS) \
		$(CFLAGS) -o $@ $< $(HOP_LDFLAGS) $(LDFLAGS) \
		$(shell pkg-config --libs rdkafka)

integration: all workers $(KAFKA_MOCK)
	HOPPER=$(abspath $(HOPPER)) HOPPER_BUILD=$(abspath $(BUILD)) \
		bash tests/integration/run.sh

# The real PostgreSQL and Kafka servers that driver tests will use, tested
# on their own (the first Kafka start downloads its jars through Maven).
harness-test:
	bash tests/harness/run.sh

# compose.yaml end to end with podman and local stand-ins for the official
# images (no Docker engine or registry needed), three coordinators sharing
# one queue, and deploy/kubernetes/ checked. As root; the first run builds
# images for several minutes, later ones reuse them.
compose-test: $(HOPPER)
	HOPPER=$(abspath $(HOPPER)) bash tests/compose/run.sh

# One pass of every test against one build.
check: unit integration

test: deps
	$(MAKE) lint
	$(MAKE) WERROR=1 check
	$(MAKE) WERROR=1 SANITIZE=address,undefined check
	$(MAKE) compose-test

demo: deps
	$(MAKE) all workers
	bash pipelines/demo.sh

bench: deps
	$(MAKE) all bench-bin
	HOPPER=$(abspath $(HOPPER)) HOPPER_BUILD=$(abspath $(BUILD)) bash bench/run.sh $(BENCH)

lint:
	shellcheck $(shell git ls-files '*.sh') .ci/run
	clang-format --dry-run --Werror $(shell git ls-files '*.c' '*.h')

format:
	clang-format -i $(shell git ls-files '*.c' '*.h')

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
