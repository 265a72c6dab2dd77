# worker/tag/tag.mk - hopper-tag, the demo's frame tagging worker. Included
# by the top Makefile after worker/worker.mk and worker/thumbnail/thumbnail.mk:
# it links the C helper's library and the thumbnail worker's decoding,
# scaling and encoding modules (all but that worker's main and job).

HOPTAG_SRC := worker/tag/hop_tag.c
HOPTAG_OBJ := $(HOPTAG_SRC:%.c=$(BUILD)/%.o)
HOPTAG_BIN := $(BUILD)/hopper-tag
HOPTAG_THUMB_OBJ := $(patsubst %,$(BUILD)/worker/thumbnail/hop_thumb_%.o,\
	opts input grab render image)

workers: $(HOPTAG_BIN)

$(HOPTAG_OBJ): HOP_CFLAGS += $(HOPT_CFLAGS)

$(HOPTAG_BIN): $(HOPTAG_OBJ) $(HOPTAG_THUMB_OBJ) $(HOPW_LIB)
	@mkdir -p $(@D)
	$(CC) $(HOP_LDFLAGS) $(LDFLAGS) -o $@ $^ $(HOPT_LIBS) -lm
