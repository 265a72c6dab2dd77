/*
 * hop_thumb_sheet.c - a sprite sheet: N tiles in a grid, row by row, and the
 * WebVTT file that maps each stretch of the video to its tile (the form
 * players use for seek-bar previews).
 */
#include "worker/thumbnail/hop_thumb.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/mem.h>

int hop_thumb_sheet_init(struct hop_thumb_sheet *s, int count, int columns,
			 int tile_w, int tile_h)
{
	memset(s, 0, sizeof(*s));
	if (count < 1 || tile_w < 1 || tile_h < 1)
		return -EINVAL;
	if (columns <= 0)
		columns = (int)ceil(sqrt(count));
	if (columns > count)
		columns = count;
	s->count = count;
	s->columns = columns;
	s->rows = (count + columns - 1) / columns;
	s->tile_w = tile_w;
	s->tile_h = tile_h;
	if ((int64_t)columns * tile_w > HOP_THUMB_MAX_SIDE ||
	    (int64_t)s->rows * tile_h > HOP_THUMB_MAX_SIDE ||
	    (int64_t)columns * tile_w * s->rows * tile_h > HOP_THUMB_MAX_PIXELS)
		return -EINVAL;
	s->width = columns * tile_w;
	s->height = s->rows * tile_h;
	s->rgb = av_mallocz((size_t)s->width * s->height * 3 + HOP_THUMB_PAD);
	return s->rgb ? 0 : -ENOMEM;
}

void hop_thumb_sheet_free(struct hop_thumb_sheet *s)
{
	av_freep(&s->rgb);
}

uint8_t *hop_thumb_sheet_tile(const struct hop_thumb_sheet *s, int i)
{
	int x = (i % s->columns) * s->tile_w;
	int y = (i / s->columns) * s->tile_h;

	return s->rgb + ((size_t)y * s->width + x) * 3;
}

/*
 * Moves the first `count` tiles of s into a sheet laid out for that many
 * (with the same columns request) and frees the old one. Returns 0 or
 * -ENOMEM, leaving s as it was on failure.
 */
int hop_thumb_sheet_shrink(struct hop_thumb_sheet *s, int count, int columns)
{
	struct hop_thumb_sheet t;
	int ret;

	if (count >= s->count)
		return 0;
	ret = hop_thumb_sheet_init(&t, count, columns, s->tile_w, s->tile_h);
	if (ret < 0)
		return ret;
	for (int i = 0; i < count; i++) {
		const uint8_t *from = hop_thumb_sheet_tile(s, i);
		uint8_t *to = hop_thumb_sheet_tile(&t, i);

		for (int y = 0; y < s->tile_h; y++)
			memcpy(to + (size_t)y * t.width * 3,
			       from + (size_t)y * s->width * 3,
			       (size_t)s->tile_w * 3);
	}
	hop_thumb_sheet_free(s);
	*s = t;
	return 0;
}

/* Formats ms as the WebVTT timestamp hh:mm:ss.ttt. */
static void vtt_time(char *buf, size_t n, int64_t ms)
{
	snprintf(buf, n, "%02lld:%02lld:%02lld.%03lld",
		 (long long)(ms / 3600000), (long long)(ms / 60000 % 60),
		 (long long)(ms / 1000 % 60), (long long)(ms % 1000));
}

int hop_thumb_vtt_write(const struct hop_thumb_sheet *s, const int64_t *cue_ms,
			const char *image_name, const char *path)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	int ret;

	if (!f)
		return -ENOMEM;
	fputs("WEBVTT\n", f);
	for (int i = 0; i < s->count; i++) {
		char a[32], b[32];

		vtt_time(a, sizeof(a), cue_ms[i]);
		vtt_time(b, sizeof(b), cue_ms[i + 1]);
		fprintf(f, "\n%s --> %s\n%s#xywh=%d,%d,%d,%d\n", a, b,
			image_name, (i % s->columns) * s->tile_w,
			(i / s->columns) * s->tile_h, s->tile_w, s->tile_h);
	}
	if (fclose(f) != 0) {
		free(text);
		return -ENOMEM;
	}
	ret = hop_thumb_file_write(path, text, len);
	free(text);
	return ret;
}
