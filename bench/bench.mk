# Benchmark helpers, built into $(BUILD)/bench/ with the project's flags
# (HOP_CFLAGS) and the user's CFLAGS, -O2 -g unless set.
BENCH_BIN := $(BUILD)/bench/echo_worker $(BUILD)/bench/driver \
             $(BUILD)/bench/exec_echo $(BUILD)/bench/spawn_ceiling \
             $(BUILD)/bench/split_worker $(BUILD)/bench/echo_batch \
             $(BUILD)/bench/chain_floor

$(BUILD)/bench/%: bench/%.c
	@mkdir -p $(@D)
	$(CC) $(HOP_CFLAGS) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(HOP_LDFLAGS) $(LDFLAGS) -lpthread

bench-bin: $(BENCH_BIN)
.PHONY: bench-bin

# The decoding ceiling links FFmpeg's libraries.
AV_PKGS := libavformat libavcodec libavutil
$(BUILD)/bench/decode_loop: bench/decode_loop.c
	@mkdir -p $(@D)
	$(CC) $(HOP_CFLAGS) $(shell pkg-config --cflags $(AV_PKGS)) $(CPPFLAGS) $(CFLAGS) \
		-o $@ $< $(HOP_LDFLAGS) $(LDFLAGS) $(shell pkg-config --libs $(AV_PKGS))

bench-bin: $(BUILD)/bench/decode_loop
