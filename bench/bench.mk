# Benchmark helpers, built into $(BUILD)/bench/.
BENCH_BIN := $(BUILD)/bench/echo_worker $(BUILD)/bench/driver \
             $(BUILD)/bench/exec_echo $(BUILD)/bench/spawn_ceiling

$(BUILD)/bench/%: bench/%.c
	@mkdir -p $(@D)
	$(CC) -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -o $@ $< -lpthread

bench-bin: $(BENCH_BIN)
.PHONY: bench-bin

# The decoding ceiling links FFmpeg's libraries.
AV_PKGS := libavformat libavcodec libavutil
$(BUILD)/bench/decode_loop: bench/decode_loop.c
	@mkdir -p $(@D)
	$(CC) -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra $(shell pkg-config --cflags $(AV_PKGS)) \
		-o $@ $< $(shell pkg-config --libs $(AV_PKGS))

bench-bin: $(BUILD)/bench/decode_loop
