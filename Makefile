# hopper: build, install, test, demo, bench, lint.
#
#   make            build everything into build/ (programs: only hopper and
#                   hopper-thumbnail, not the example workers)
#   make install    hopper, hopper-thumbnail, hopper(1) and the bash
#                   completion under PREFIX (/usr/local), inside DESTDIR if
#                   set; make uninstall removes exactly those files
#   make deps       install the Debian packages that building needs (as root);
#                   deps-demo, deps-test and deps-bench: what each one needs
#   make test       install what is missing, lint, then unit, integration and
#                   fault tests, then the same again under ASan and UBSan,
#                   then compose.yaml end to end under podman
#   make demo       the main job, end to end: videos split into frames,
#                   tagged, joined and counted (pipelines/tagging.json)
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
PKGS    := jansson libpq rdkafka libmicrohttpd yaml-0.1 libcurl
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

# Evaluated when a recipe runs, never while the Makefile is read: before
# `make deps` has installed them, pkg-config would only print errors.
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
MALLOC_LIBS = $(if $(MALLOC),$(shell pkg-config --libs $(MALLOC) 2>/dev/null))

# The coordinator's own modules, then one folder per source and sink driver.
CORE_SRC := $(filter-out coordinator/main.c,$(wildcard coordinator/*.c)) \
            $(wildcard sources/*.c sources/*/*.c) \
            $(wildcard sinks/*.c sinks/*/*.c)
CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/%.o) $(BUILD)/coordinator/console_assets.o
# The console's page, script and style, built into the binary as arrays.
CONSOLE_ASSETS := $(sort $(wildcard coordinator/console/*.html coordinator/console/*.svg \
                   coordinator/console/*.js coordinator/console/*.css))
MAIN_OBJ := $(BUILD)/coordinator/main.o

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

HOPPER   := $(BUILD)/hopper

.PHONY: all workers deps deps-demo deps-test deps-bench test check unit \
	integration harness-test compose-test demo signup bench lint format clean \
	programs demo-programs install uninstall
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

$(BUILD)/coordinator/console_assets.c: $(CONSOLE_ASSETS) coordinator/console/embed.sh
	@mkdir -p $(@D)
	bash coordinator/console/embed.sh $@ $(CONSOLE_ASSETS)

$(BUILD)/coordinator/console_assets.o: $(BUILD)/coordinator/console_assets.c
	$(CC) $(HOP_CFLAGS) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libhopper.a
	@mkdir -p $(@D)
	$(CC) $(HOP_CFLAGS) $(PKG_CFLAGS) $(shell pkg-config --cflags cmocka) \
		$(CPPFLAGS) $(CFLAGS) -o $@ $< $(BUILD)/libhopper.a \
		$(HOP_LDFLAGS) $(LDFLAGS) $(PKG_LIBS) $(shell pkg-config --libs cmocka) -lm

# Workers: the C helper, the examples and the thumbnail worker bring their
# own rules, each in its folder.
-include worker/worker.mk
-include worker/thumbnail/thumbnail.mk
-include worker/tag/tag.mk
include bench/bench.mk

# The two programs that `make install` installs and the demo runs: C only,
# where `all` also builds the example workers in Go, Rust and Java.
programs: $(HOPPER) $(HOPT_BIN)

# What the demo runs besides: the frame tagger.
demo-programs: programs $(HOPTAG_BIN)

# Each of these installs the Debian packages that one purpose needs and the
# machine lacks (as root); a no-op when nothing is missing. Elsewhere they
# name what is missing. deps: building; the others: building and more.
deps:
	@bash tests/deps.sh build
deps-demo:
	@bash tests/deps.sh demo
deps-test:
	@bash tests/deps.sh test
deps-bench:
	@bash tests/deps.sh bench

# A build with a library missing stops here, naming it, rather than at the
# first header the compiler cannot find. Goals that install the packages
# first (demo, test, bench, deps) skip the check, as do those that build
# nothing: their sub-makes check once the packages are in.
HOP_NEED_PKGS = $(PKGS) $(MALLOC) $(HOPT_PKGS) \
                $(if $(filter unit check,$(MAKECMDGOALS)),cmocka)
ifeq ($(filter deps deps-% demo test bench,$(MAKECMDGOALS)),)
ifneq ($(filter-out clean lint format uninstall harness-test,$(or $(MAKECMDGOALS),all)),)
HOP_MISSING := $(sort $(shell pkg-config --exists $(HOP_NEED_PKGS) 2>/dev/null || \
	for p in $(HOP_NEED_PKGS); do pkg-config --exists $$p 2>/dev/null || echo $$p; done))
ifneq ($(HOP_MISSING),)
define HOP_MISSING_MSG
pkg-config finds no $(HOP_MISSING)
  Run `make deps` to install what building needs (Debian and Ubuntu, as
  root), or install these libraries' development packages with your
  system's package manager
endef
$(error $(HOP_MISSING_MSG))
endif
endif
endif

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
# images (no Docker engine or registry needed): the tagging pipeline's
# stages as services, scaled, one container of each killed mid-run and
# every video counted; three coordinators sharing one queue; and
# deploy/kubernetes/ checked. As root; the first run builds images for
# several minutes, later ones reuse them.
compose-test: $(HOPPER)
	HOPPER=$(abspath $(HOPPER)) bash tests/compose/run.sh

# One pass of every test against one build.
check: unit integration

test: deps-test
	$(MAKE) lint
	$(MAKE) WERROR=1 check
	$(MAKE) WERROR=1 SANITIZE=address,undefined check
	$(MAKE) compose-test

# Only what the demo runs: no example workers, so no Go, Rust or Java.
demo: deps-demo
	$(MAKE) demo-programs
	HOPPER=$(abspath $(HOPPER)) HOPPER_BUILD=$(abspath $(BUILD)) \
		bash pipelines/demo.sh

# Burns' sign-up flow, pipelines/signup.json: the messages as files in
# signup-out/, the malformed users in its dead letter. The run's exit status
# 3 says that some users are dead, as the example means them to be.
signup: $(HOPPER)
	rm -rf signup-out
	$(HOPPER) run -f pipelines/signup.json || [ $$? -eq 3 ]
	@for d in welcome email sms; do \
		echo "signup-out/$$d:" $$(ls signup-out/$$d); done
	$(HOPPER) dead list -f pipelines/signup.json

bench: deps-bench
	$(MAKE) programs bench-bin
	HOPPER=$(abspath $(HOPPER)) HOPPER_BUILD=$(abspath $(BUILD)) bash bench/run.sh $(BENCH)

lint:
	shellcheck $(shell git ls-files '*.sh' '*.bash') .ci/run
	clang-format --dry-run --Werror $(shell git ls-files '*.c' '*.h')

format:
	clang-format -i $(shell git ls-files '*.c' '*.h')

clean:
	rm -rf build

# The programs, the manual page and the bash completion, under PREFIX, inside
# DESTDIR when set (a staging folder for packages). uninstall removes exactly
# these files and leaves the folders, which other programs share.
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
MANDIR      ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
INSTALL     ?= install
HOP_INSTALLED := $(DESTDIR)$(BINDIR)/hopper $(DESTDIR)$(BINDIR)/hopper-thumbnail \
                 $(DESTDIR)$(MANDIR)/man1/hopper.1 $(DESTDIR)$(BASHCOMPDIR)/hopper

install: $(HOPPER) $(HOPT_BIN)
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHCOMPDIR)
	$(INSTALL) -m 755 $(HOPPER) $(HOPT_BIN) $(DESTDIR)$(BINDIR)/
	$(INSTALL) -m 644 docs/hopper.1 $(DESTDIR)$(MANDIR)/man1/hopper.1
	$(INSTALL) -m 644 contrib/completion/hopper.bash $(DESTDIR)$(BASHCOMPDIR)/hopper

uninstall:
	rm -f $(HOP_INSTALLED)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
