# worker/thumbnail/thumbnail.mk - hopper-thumbnail, the FFmpeg thumbnail
# worker. Included by the top Makefile, which defines BUILD, CC, the
# project's HOP_CFLAGS and HOP_LDFLAGS, the $(BUILD)/%.o pattern rule and the
# phony `workers` target.

HOPT_PKGS   := libavformat libavcodec libswscale libavutil jansson
HOPT_CFLAGS = $(shell pkg-config --cflags $(HOPT_PKGS) 2>/dev/null)
HOPT_LIBS   = $(shell pkg-config --libs $(HOPT_PKGS) 2>/dev/null)
HOPT_SRC    := $(wildcard worker/thumbnail/*.c)
HOPT_OBJ    := $(HOPT_SRC:%.c=$(BUILD)/%.o)
HOPT_BIN    := $(BUILD)/hopper-thumbnail

workers: $(HOPT_BIN)

$(HOPT_OBJ): HOP_CFLAGS += $(HOPT_CFLAGS)

$(HOPT_BIN): $(HOPT_OBJ)
	@mkdir -p $(@D)
	$(CC) $(HOP_LDFLAGS) $(LDFLAGS) -o $@ $^ $(HOPT_LIBS) -lm
