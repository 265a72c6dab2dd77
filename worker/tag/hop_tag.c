/*
 * hop_tag.c - hopper-tag, a stream-mode worker (worker/PROTOCOL.md) that
 * describes one frame of a video by measuring its pixels: the name of its
 * dominant colour, its brightness, its sharpness (the variance of a
 * Laplacian of its luma), and its motion (how much its luma differs from
 * the frame a moment before). It writes the frame as a small JPEG.
 *
 * Decoding, seeking, scaling and JPEG encoding are the thumbnail worker's
 * modules (worker/thumbnail/hop_thumb.h); the envelope loop is the C
 * helper's (worker/hop_worker.h). What is new here is the measuring.
 *
 *   hopper-tag --out DIR [--width W] [--height H] [--gap S] [--timeout S]
 *
 * Payload: {"path": VIDEO, "time": SECONDS, ...}. The result is the payload
 * with "frame" (the JPEG's path), "at" (the time of the frame decoded) and
 * "tags" added, so that what came before (a probe, an index) goes on.
 */
#include "worker/hop_worker.h"
#include "worker/thumbnail/hop_thumb.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/log.h>
#include <libavutil/mem.h>
#include <libavutil/time.h>

struct tag_opts {
	const char *out;
	int width, height; /* the box the frame is fitted in */
	double gap;	   /* seconds between the frame and the one before it */
	int timeout;
};

/* The palette a pixel's name comes from: achromatic names first (by
 * value and saturation), then hue ranges in degrees. */
enum tag_colour {
	TAG_BLACK,
	TAG_WHITE,
	TAG_GRAY,
	TAG_RED,
	TAG_ORANGE,
	TAG_YELLOW,
	TAG_GREEN,
	TAG_CYAN,
	TAG_BLUE,
	TAG_PURPLE,
	TAG_PINK,
	TAG_NCOLOURS,
};

static const char *const tag_colour_names[TAG_NCOLOURS] = {
    "black", "white", "gray", "red",	"orange", "yellow",
    "green", "cyan",  "blue", "purple", "pink",
};

/* Upper hue bounds (degrees, exclusive) of the chromatic names, in order;
 * red wraps around and takes what is left. */
static const struct {
	double below;
	enum tag_colour c;
} tag_hues[] = {
    {15, TAG_RED},     {40, TAG_ORANGE}, {70, TAG_YELLOW},
    {165, TAG_GREEN},  {200, TAG_CYAN},	 {260, TAG_BLUE},
    {290, TAG_PURPLE}, {340, TAG_PINK},	 {361, TAG_RED},
};

/* The palette name of one RGB pixel. */
static enum tag_colour tag_name_pixel(const uint8_t *p)
{
	int r = p[0], g = p[1], b = p[2];
	int max = r > g ? (r > b ? r : b) : (g > b ? g : b);
	int min = r < g ? (r < b ? r : b) : (g < b ? g : b);
	double v = max / 255.0, s = max ? (double)(max - min) / max : 0, h;
	size_t i;

	if (v < 0.16)
		return TAG_BLACK;
	if (s < 0.18)
		return v > 0.82 ? TAG_WHITE : TAG_GRAY;
	if (max == r)
		h = 60.0 * fmod((double)(g - b) / (max - min) + 6, 6);
	else if (max == g)
		h = 60.0 * ((double)(b - r) / (max - min) + 2);
	else
		h = 60.0 * ((double)(r - g) / (max - min) + 4);
	for (i = 0; i < sizeof(tag_hues) / sizeof(tag_hues[0]); i++)
		if (h < tag_hues[i].below)
			return tag_hues[i].c;
	return TAG_RED;
}

/* The measures of one w x h RGB24 image (rows w * 3 bytes apart). */
struct tag_measures {
	int counts[TAG_NCOLOURS];
	double brightness; /* mean luma, 0..1 */
	double sharpness;  /* variance of the 4-neighbour Laplacian of luma */
	double motion;	   /* mean absolute luma change, 0..1; 0 alone */
};

/* Fills luma (w * h bytes, BT.601 weights) from an RGB24 image. */
static void tag_luma(const uint8_t *rgb, int w, int h, uint8_t *luma)
{
	for (long i = 0; i < (long)w * h; i++) {
		const uint8_t *p = rgb + i * 3;

		luma[i] =
		    (uint8_t)((299 * p[0] + 587 * p[1] + 114 * p[2] + 500) /
			      1000);
	}
}

/*
 * Measures the image rgb (w x h) into m; prev_luma, when not NULL, is the
 * luma of the frame a moment before, at the same size, for motion. luma is
 * scratch of w * h bytes and holds this image's luma on return.
 */
static void tag_measure(const uint8_t *rgb, int w, int h,
			const uint8_t *prev_luma, uint8_t *luma,
			struct tag_measures *m)
{
	double sum = 0, lsum = 0, lsq = 0, diff = 0;
	long n = (long)w * h, nl = 0;

	memset(m, 0, sizeof(*m));
	tag_luma(rgb, w, h, luma);
	for (long i = 0; i < n; i++) {
		m->counts[tag_name_pixel(rgb + i * 3)]++;
		sum += luma[i];
		if (prev_luma)
			diff += abs((int)luma[i] - (int)prev_luma[i]);
	}
	for (int y = 1; y < h - 1; y++) {
		for (int x = 1; x < w - 1; x++) {
			const uint8_t *c = luma + (long)y * w + x;
			double l = 4.0 * c[0] - c[-1] - c[1] - c[-w] - c[w];

			lsum += l;
			lsq += l * l;
			nl++;
		}
	}
	m->brightness = n ? sum / n / 255.0 : 0;
	m->motion = prev_luma && n ? diff / n / 255.0 : 0;
	m->sharpness = nl ? lsq / nl - (lsum / nl) * (lsum / nl) : 0;
}

static double rounded(double v, double unit)
{
	return round(v / unit) * unit;
}

/* The "tags" object of the measures: the dominant colour, the three most
 * common colours with their shares, and the numbers. */
static json_t *tag_json(const struct tag_measures *m, long pixels,
			double detail)
{
	json_t *t = json_object(), *shares = json_object();
	bool used[TAG_NCOLOURS] = {false};
	int top = 0;

	if (!t || !shares)
		goto out_nomem;
	for (int k = 0; k < 3; k++) {
		int best = -1;

		for (int c = 0; c < TAG_NCOLOURS; c++)
			if (!used[c] &&
			    (best < 0 || m->counts[c] > m->counts[best]))
				best = c;
		if (best < 0 || m->counts[best] == 0)
			break;
		used[best] = true;
		if (k == 0)
			top = best;
		json_object_set_new(
		    shares, tag_colour_names[best],
		    json_real(
			rounded((double)m->counts[best] / pixels, 0.001)));
	}
	json_object_set_new(t, "colour", json_string(tag_colour_names[top]));
	json_object_set_new(t, "colours", shares);
	json_object_set_new(t, "brightness",
			    json_real(rounded(m->brightness, 0.001)));
	json_object_set_new(t, "sharpness",
			    json_real(rounded(m->sharpness, 0.1)));
	json_object_set_new(t, "motion", json_real(rounded(m->motion, 0.0001)));
	json_object_set_new(t, "detail", json_real(rounded(detail, 0.001)));
	return t;
out_nomem:
	json_decref(shares);
	json_decref(t);
	return NULL;
}

/* One item's state, released by tag_item_free. */
struct tag_item {
	const struct tag_opts *o;
	const char *path;
	struct hop_thumb_input in;
	AVFrame *prev, *cur;
	uint8_t *rgb, *luma, *prev_luma;
	int w, h;
	char *jpeg;
};

static void tag_item_free(struct tag_item *t)
{
	free(t->jpeg);
	av_freep(&t->prev_luma);
	av_freep(&t->luma);
	av_freep(&t->rgb);
	av_frame_free(&t->cur);
	av_frame_free(&t->prev);
	hop_thumb_input_close(&t->in);
}

/* "<out>/<basename of name without extension>-<ms>.jpg". */
static char *tag_jpeg_path(const char *out, const char *name, double at)
{
	const char *slash = strrchr(name, '/');
	const char *base = slash ? slash + 1 : name;
	const char *dot = strrchr(base, '.');
	int n = dot && dot != base ? (int)(dot - base) : (int)strlen(base);
	char *s;

	if (asprintf(&s, "%s/%.*s-%06lld.jpg", out, n, base,
		     (long long)llround(at * 1000)) < 0)
		return NULL;
	return s;
}

/* A grab error in words, "<path>: <reason>"; sets *retry. */
static int tag_grab_failed(struct tag_item *t, int ret, char **error,
			   bool *retry)
{
	*retry = ret == AVERROR(ENOMEM);
	if (ret == AVERROR_EXIT)
		return hop_worker_fail(error, "%s: timed out after %d s",
				       t->path, t->o->timeout);
	if (ret == AVERROR(ENODATA))
		return hop_worker_fail(error, "%s: no decodable video frame",
				       t->path);
	if (ret == AVERROR_EOF)
		return hop_worker_fail(
		    error, "%s: no video data where expected", t->path);
	return hop_worker_fail(error, "%s: cannot seek or read: %s", t->path,
			       av_err2str(ret));
}

/* Renders frame f at the item's size into t->rgb. */
static int tag_render(struct tag_item *t, const AVFrame *f)
{
	return hop_thumb_render(f, t->in.rotation, t->rgb, t->w * 3, t->w,
				t->h);
}

/* Decodes the frame before (when there is room for one) and the frame at
 * `time`, and sizes the item from the latter. */
static int tag_grab(struct tag_item *t, double time, double *at, char **error,
		    bool *retry)
{
	double before = time - t->o->gap, at0;
	bool clamped;
	int ret = 0;

	if (before >= 0) {
		ret = hop_thumb_grab(&t->in, before, HOP_THUMB_SEEK_ACCURATE,
				     t->prev, &at0, &clamped);
		if (ret == 0)
			ret = hop_thumb_grab_next(&t->in, time,
						  HOP_THUMB_SEEK_ACCURATE,
						  t->cur, at, &clamped);
	} else {
		ret = hop_thumb_grab(&t->in, time, HOP_THUMB_SEEK_ACCURATE,
				     t->cur, at, &clamped);
	}
	if (ret < 0)
		return tag_grab_failed(t, ret, error, retry);
	hop_thumb_fit(t->cur->width, t->cur->height,
		      av_guess_sample_aspect_ratio(t->in.fmt, t->in.st, t->cur),
		      t->in.rotation, t->o->width, t->o->height, &t->w, &t->h);
	t->rgb = av_malloc((size_t)t->w * t->h * 3 + HOP_THUMB_PAD);
	t->luma = av_malloc((size_t)t->w * t->h);
	t->prev_luma = av_malloc((size_t)t->w * t->h);
	if (!t->rgb || !t->luma || !t->prev_luma) {
		*retry = true;
		return hop_worker_fail(error, "%s: out of memory", t->path);
	}
	/* The frame before only counts when it is another frame. */
	if (before >= 0 && at0 < *at) {
		if (tag_render(t, t->prev) < 0)
			goto out_render;
		tag_luma(t->rgb, t->w, t->h, t->prev_luma);
	} else {
		av_freep(&t->prev_luma);
	}
	if (tag_render(t, t->cur) < 0)
		goto out_render;
	return 0;
out_render:
	*retry = false;
	return hop_worker_fail(error, "%s: cannot convert a frame at %.3f s",
			       t->path, time);
}

static int tag_handle(const char *id, int attempt, json_t *payload,
		      json_t **result, char **error, bool *retry, void *arg)
{
	const struct tag_opts *o = arg;
	struct tag_item t = {.o = o};
	struct hop_thumb_err e = {{0}};
	struct tag_measures m;
	json_t *tags, *res;
	const char *name;
	double time, at = 0;
	int ret;

	*retry = false;
	if (!json_is_object(payload) ||
	    !json_is_string(json_object_get(payload, "path")) ||
	    !json_is_number(json_object_get(payload, "time")))
		return hop_worker_fail(error,
				       "item %s: the payload must be an "
				       "object with a string \"path\" "
				       "and a number \"time\"",
				       id);
	t.path = json_string_value(json_object_get(payload, "path"));
	time = json_number_value(json_object_get(payload, "time"));
	name = json_is_string(json_object_get(payload, "name"))
		   ? json_string_value(json_object_get(payload, "name"))
		   : t.path;
	if (time < 0 || !isfinite(time))
		return hop_worker_fail(error,
				       "item %s: time %g is not a "
				       "time in the video",
				       id, time);

	ret = hop_thumb_input_open(
	    &t.in, t.path,
	    av_gettime_relative() + (int64_t)o->timeout * 1000000, &e);
	if (ret < 0) {
		*retry = e.retry;
		return hop_worker_fail(error, "%s", e.msg);
	}
	t.prev = av_frame_alloc();
	t.cur = av_frame_alloc();
	if (!t.prev || !t.cur) {
		*retry = true;
		ret = hop_worker_fail(error, "%s: out of memory", t.path);
		goto out;
	}
	ret = tag_grab(&t, time, &at, error, retry);
	if (ret)
		goto out;
	tag_measure(t.rgb, t.w, t.h, t.prev_luma, t.luma, &m);
	t.jpeg = tag_jpeg_path(o->out, name, time);
	if (!t.jpeg) {
		*retry = true;
		ret = hop_worker_fail(error, "%s: out of memory", t.path);
		goto out;
	}
	ret = hop_thumb_image_write(t.rgb, t.w * 3, t.w, t.h, HOP_THUMB_JPEG,
				    80, t.jpeg, &e);
	if (ret < 0) {
		*retry = e.retry;
		ret = hop_worker_fail(error, "%s", e.msg);
		goto out;
	}
	tags = tag_json(&m, (long)t.w * t.h, hop_thumb_score(t.cur));
	res = json_deep_copy(payload);
	if (!tags || !res) {
		json_decref(tags);
		json_decref(res);
		*retry = true;
		ret = hop_worker_fail(error, "%s: out of memory", t.path);
		goto out;
	}
	json_object_set_new(res, "frame", json_string(t.jpeg));
	json_object_set_new(res, "at", json_real(rounded(at, 0.001)));
	json_object_set_new(res, "width", json_integer(t.w));
	json_object_set_new(res, "height", json_integer(t.h));
	json_object_set_new(res, "tags", tags);
	*result = res;
	ret = 0;
out:
	tag_item_free(&t);
	return ret;
}

static void usage(FILE *f)
{
	fputs("usage: hopper-tag --out DIR [--width W] [--height H] "
	      "[--gap SECONDS] [--timeout SECONDS]\n"
	      "  A stream-mode hopper worker: for each payload {\"path\": "
	      "VIDEO, \"time\": SECONDS}\n"
	      "  it writes the frame at that time to DIR as a JPEG that fits "
	      "W x H (320x240) and\n"
	      "  answers its tags: dominant colour, brightness, sharpness, "
	      "and motion against\n"
	      "  the frame GAP seconds before (0.2).\n",
	      f);
}

/* Parses a number option into *v within [lo, hi]; 0 or -EINVAL. */
static int parse_num(const char *opt, const char *s, double lo, double hi,
		     double *v)
{
	char *end;

	errno = 0;
	*v = strtod(s, &end);
	if (errno || end == s || *end || !(*v >= lo && *v <= hi)) {
		fprintf(stderr, "hopper-tag: %s %s: not a number in %g..%g\n",
			opt, s, lo, hi);
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"out", required_argument, NULL, 'o'},
	    {"width", required_argument, NULL, 'w'},
	    {"height", required_argument, NULL, 'H'},
	    {"gap", required_argument, NULL, 'g'},
	    {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct tag_opts o = {
	    .width = 320, .height = 240, .gap = 0.2, .timeout = 60};
	double v;
	int c, ret;

	while ((c = getopt_long(argc, argv, "o:w:H:g:t:h", longopts, NULL)) !=
	       -1) {
		switch (c) {
		case 'o':
			o.out = optarg;
			break;
		case 'w':
			if (parse_num("--width", optarg, 8, 4096, &v))
				return 2;
			o.width = (int)v;
			break;
		case 'H':
			if (parse_num("--height", optarg, 8, 4096, &v))
				return 2;
			o.height = (int)v;
			break;
		case 'g':
			if (parse_num("--gap", optarg, 0.01, 10, &v))
				return 2;
			o.gap = v;
			break;
		case 't':
			if (parse_num("--timeout", optarg, 1, 86400, &v))
				return 2;
			o.timeout = (int)v;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!o.out || optind != argc) {
		usage(stderr);
		return 2;
	}
	ret = hop_thumb_mkdirs(o.out);
	if (ret < 0) {
		fprintf(stderr, "hopper-tag: cannot create %s: %s\n", o.out,
			strerror(-ret));
		return 1;
	}
	av_log_set_level(AV_LOG_QUIET);
	return hop_worker_run(tag_handle, &o) == 0 ? 0 : 1;
}
