# worker/worker.mk - the C helper for workers and the examples: word count
# in every language, and the split-words splitter that emits.
# Included by the top Makefile, which defines BUILD, CC, the project's
# HOP_CFLAGS and HOP_LDFLAGS (the user's CFLAGS and LDFLAGS come after them),
# the $(BUILD)/%.o pattern rule and the phony `workers` target.
#
# Only the C parts see those flags (and so the sanitizers under SANITIZE). The Go,
# Rust and Java examples are file targets that depend on their sources, so
# that `make workers` rebuilds them only when those change; the Rust build
# directory (build/cargo) is shared by the plain and the sanitizer builds.

HOPW_JANSSON_CFLAGS = $(shell pkg-config --cflags jansson 2>/dev/null)
HOPW_JANSSON_LIBS   = $(shell pkg-config --libs jansson 2>/dev/null)
HOPW_EXAMPLES       := worker/examples
HOPW_CARGO_DIR      := build/cargo

HOPW_LIB    := $(BUILD)/worker/libhopworker.a
HOPW_C_WC   := $(BUILD)/examples/c/word_count
HOPW_GO_WC  := $(BUILD)/examples/go/word_count
HOPW_RS_WC  := $(BUILD)/examples/rust/word_count
HOPW_JAVA_WC := $(BUILD)/examples/java/WordCount.class
HOPW_C_SPLIT  := $(BUILD)/examples/c/split_words
HOPW_GO_SPLIT := $(BUILD)/examples/go/split_words

workers: $(HOPW_LIB) $(HOPW_C_WC) $(HOPW_GO_WC) $(HOPW_RS_WC) $(HOPW_JAVA_WC) \
	$(HOPW_C_SPLIT) $(HOPW_GO_SPLIT)

$(BUILD)/worker/hop_worker.o $(BUILD)/$(HOPW_EXAMPLES)/c/word_count.o \
$(BUILD)/$(HOPW_EXAMPLES)/c/split_words.o: \
	HOP_CFLAGS += $(HOPW_JANSSON_CFLAGS)

$(HOPW_LIB): $(BUILD)/worker/hop_worker.o
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

$(HOPW_C_WC): $(BUILD)/$(HOPW_EXAMPLES)/c/word_count.o $(HOPW_LIB)
	@mkdir -p $(@D)
	$(CC) $(HOP_LDFLAGS) $(LDFLAGS) -o $@ $^ $(HOPW_JANSSON_LIBS) -lm

$(HOPW_C_SPLIT): $(BUILD)/$(HOPW_EXAMPLES)/c/split_words.o $(HOPW_LIB)
	@mkdir -p $(@D)
	$(CC) $(HOP_LDFLAGS) $(LDFLAGS) -o $@ $^ $(HOPW_JANSSON_LIBS) -lm

# Go: standard library only, so nothing is downloaded; no cgo, so CC and the
# sanitizers stay out of it.
$(HOPW_GO_WC): $(wildcard $(HOPW_EXAMPLES)/go/word_count/*.go) \
               $(HOPW_EXAMPLES)/go/word_count/go.mod
	@mkdir -p $(@D)
	cd $(HOPW_EXAMPLES)/go/word_count && CGO_ENABLED=0 GOTOOLCHAIN=local \
		GOFLAGS=-buildvcs=false go build -o $(abspath $@) .

$(HOPW_GO_SPLIT): $(wildcard $(HOPW_EXAMPLES)/go/split_words/*.go) \
                  $(HOPW_EXAMPLES)/go/split_words/go.mod
	@mkdir -p $(@D)
	cd $(HOPW_EXAMPLES)/go/split_words && CGO_ENABLED=0 GOTOOLCHAIN=local \
		GOFLAGS=-buildvcs=false go build -o $(abspath $@) .

# Rust: the versions in Cargo.lock, nothing newer.
$(HOPW_RS_WC): $(wildcard $(HOPW_EXAMPLES)/rust/word_count/src/*.rs) \
               $(HOPW_EXAMPLES)/rust/word_count/Cargo.toml \
               $(HOPW_EXAMPLES)/rust/word_count/Cargo.lock
	cargo build --release --locked --quiet \
		--manifest-path $(HOPW_EXAMPLES)/rust/word_count/Cargo.toml \
		--target-dir $(HOPW_CARGO_DIR)
	@mkdir -p $(@D)
	cp $(HOPW_CARGO_DIR)/release/word_count $@.tmp && mv -f $@.tmp $@

$(HOPW_JAVA_WC): $(HOPW_EXAMPLES)/java/WordCount.java
	@mkdir -p $(@D)
	javac -Xlint:all -Werror -d $(@D) $<
