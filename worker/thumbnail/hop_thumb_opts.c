/*
 * hop_thumb_opts.c - the worker's options, declared once as a table from
 * which the command line parser, the payload override and --help all come.
 * A command line option --name is the payload key "name".
 */
#include "worker/thumbnail/hop_thumb.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/parseutils.h>

enum opt_type {
	OPT_STR,
	OPT_INT,
	OPT_BOOL,
	OPT_FORMAT,
	OPT_SEEK,
	OPT_POSITION,
};

struct opt {
	const char *name;
	enum opt_type type;
	size_t offset;
	int min, max; /* for OPT_INT */
	const char *arg;
	const char *help;
};

#define OFF(f) offsetof(struct hop_thumb_opts, f)

static const struct opt opts[] = {
    {"out", OPT_STR, OFF(out), 0, 0, "DIR",
     "directory the images go to (created if missing)"},
    {"width", OPT_INT, OFF(width), 0, HOP_THUMB_MAX_SIDE, "N",
     "thumbnail width; aspect kept (0: from height or source)"},
    {"height", OPT_INT, OFF(height), 0, HOP_THUMB_MAX_SIDE, "N",
     "thumbnail height; with width, the box it fits in"},
    {"format", OPT_FORMAT, OFF(format), 0, 0, "FMT",
     "jpeg, png or webp (default jpeg)"},
    {"quality", OPT_INT, OFF(quality), 1, 100, "Q",
     "1..100 for jpeg and webp (default 85)"},
    {"position", OPT_POSITION, OFF(position), 0, 0, "POS",
     "seconds, [hh:]mm:ss, a percentage \"10%\" or auto (default auto)"},
    {"seek", OPT_SEEK, OFF(seek), 0, 0, "MODE",
     "accurate (exact frame) or keyframe (fastest) (default accurate)"},
    {"count", OPT_INT, OFF(count), 1, HOP_THUMB_MAX_COUNT, "N",
     "N thumbnails evenly spaced over the video (default 1)"},
    {"sheet", OPT_BOOL, OFF(sheet), 0, 0, NULL,
     "tile the thumbnails into one sprite sheet plus a WebVTT index"},
    {"columns", OPT_INT, OFF(columns), 0, 1000, "N",
     "sprite sheet columns (0: about square)"},
    {"timeout", OPT_INT, OFF(timeout), 1, 86400, "S",
     "seconds one item may take before it fails (default 120)"},
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

void hop_thumb_opts_init(struct hop_thumb_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->format = HOP_THUMB_JPEG;
	o->quality = 85;
	o->position.kind = HOP_THUMB_POS_AUTO;
	o->seek = HOP_THUMB_SEEK_ACCURATE;
	o->count = 1;
	o->timeout = 120;
}

int hop_thumb_pos_parse(struct hop_thumb_pos *p, const char *s)
{
	size_t n = strlen(s);
	char *end;
	int64_t us;

	if (strcmp(s, "auto") == 0) {
		p->kind = HOP_THUMB_POS_AUTO;
		p->value = 0;
		return 0;
	}
	if (n > 1 && s[n - 1] == '%') {
		double v = strtod(s, &end);

		if (end != s + n - 1 || !isfinite(v) || v < 0 || v > 100)
			return -EINVAL;
		p->kind = HOP_THUMB_POS_PERCENT;
		p->value = v;
		return 0;
	}
	/* Seconds, or [-][HH:]MM:SS[.m...] as FFmpeg's -ss takes it. */
	if (n == 0 || av_parse_time(&us, s, 1) < 0 || us < 0)
		return -EINVAL;
	p->kind = HOP_THUMB_POS_SECONDS;
	p->value = us / 1e6;
	return 0;
}

static int parse_int(const char *s, int min, int max, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

static bool parse_bool(const char *s, bool *out)
{
	if (!strcmp(s, "true") || !strcmp(s, "1") || !strcmp(s, "yes")) {
		*out = true;
		return true;
	}
	if (!strcmp(s, "false") || !strcmp(s, "0") || !strcmp(s, "no")) {
		*out = false;
		return true;
	}
	return false;
}

/*
 * Stores the text value s of option d into o. Returns 0 or -EINVAL; -ENOMEM
 * when a copy fails.
 */
static int set_text(struct hop_thumb_opts *o, const struct opt *d,
		    const char *s)
{
	char *base = (char *)o + d->offset;
	int v;

	switch (d->type) {
	case OPT_STR: {
		char *copy = strdup(s);

		if (!copy)
			return -ENOMEM;
		free(*(char **)base);
		*(char **)base = copy;
		return 0;
	}
	case OPT_INT:
		return parse_int(s, d->min, d->max, (int *)base);
	case OPT_BOOL:
		return parse_bool(s, (bool *)base) ? 0 : -EINVAL;
	case OPT_FORMAT:
		v = hop_thumb_format_parse(s);
		if (v < 0)
			return v;
		*(int *)base = v;
		return 0;
	case OPT_SEEK:
		if (!strcmp(s, "accurate"))
			*(int *)base = HOP_THUMB_SEEK_ACCURATE;
		else if (!strcmp(s, "keyframe"))
			*(int *)base = HOP_THUMB_SEEK_KEYFRAME;
		else
			return -EINVAL;
		return 0;
	case OPT_POSITION:
		return hop_thumb_pos_parse((struct hop_thumb_pos *)base, s);
	}
	return -EINVAL;
}

static const struct opt *find_opt(const char *name)
{
	for (size_t i = 0; i < NOPTS; i++)
		if (!strcmp(opts[i].name, name))
			return &opts[i];
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: hopper-thumbnail [OPTION]...\n"
		   "A hopper stream-mode worker: reads {\"id\", \"payload\"} "
		   "lines on stdin, where the payload\nis a video's path or "
		   "{\"path\": ..., option: value...}; writes one result "
		   "line each.\n\nOptions (payload keys override them):\n");
	for (size_t i = 0; i < NOPTS; i++) {
		char left[40];

		snprintf(left, sizeof(left), "--%s%s%s", opts[i].name,
			 opts[i].arg ? " " : "",
			 opts[i].arg ? opts[i].arg : "");
		fprintf(f, "  %-20s %s\n", left, opts[i].help);
	}
	fprintf(f, "  %-20s %s\n", "--verbose", "FFmpeg's errors to stderr");
	fprintf(f, "  %-20s %s\n", "--help", "this text");
}

int hop_thumb_opts_parse_argv(struct hop_thumb_opts *o, int argc, char **argv)
{
	struct option longopts[NOPTS + 3];
	int c, idx, ret;

	for (size_t i = 0; i < NOPTS; i++) {
		longopts[i].name = opts[i].name;
		longopts[i].has_arg = opts[i].type == OPT_BOOL
					  ? optional_argument
					  : required_argument;
		longopts[i].flag = NULL;
		longopts[i].val = 0;
	}
	longopts[NOPTS] = (struct option){"help", no_argument, NULL, 'h'};
	longopts[NOPTS + 1] =
	    (struct option){"verbose", no_argument, NULL, 'v'};
	longopts[NOPTS + 2] = (struct option){NULL, 0, NULL, 0};

	optind = 1;
	while ((c = getopt_long(argc, argv, "hv", longopts, &idx)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return 1;
		}
		if (c == 'v') {
			av_log_set_level(AV_LOG_ERROR);
			continue;
		}
		if (c != 0) {
			usage(stderr);
			return -EINVAL;
		}
		ret = set_text(o, &opts[idx], optarg ? optarg : "true");
		if (ret < 0) {
			fprintf(stderr,
				"hopper-thumbnail: --%s: bad value '%s'\n",
				opts[idx].name, optarg ? optarg : "");
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "hopper-thumbnail: unexpected argument '%s'\n",
			argv[optind]);
		return -EINVAL;
	}
	return 0;
}

/* Renders a JSON scalar as the text the command line would have given. */
static int json_text(json_t *v, char *buf, size_t n)
{
	if (json_is_string(v))
		snprintf(buf, n, "%s", json_string_value(v));
	else if (json_is_integer(v))
		snprintf(buf, n, "%" JSON_INTEGER_FORMAT,
			 json_integer_value(v));
	else if (json_is_real(v) &&
		 json_real_value(v) == floor(json_real_value(v)) &&
		 fabs(json_real_value(v)) < 1e15)
		snprintf(buf, n, "%.0f", json_real_value(v)); /* 3.0 is 3 */
	else if (json_is_real(v))
		snprintf(buf, n, "%.6f", json_real_value(v));
	else if (json_is_boolean(v))
		snprintf(buf, n, "%s", json_is_true(v) ? "true" : "false");
	else
		return -EINVAL;
	return 0;
}

int hop_thumb_opts_apply_json(struct hop_thumb_opts *o, json_t *obj,
			      struct hop_thumb_err *e)
{
	const char *key;
	json_t *v;
	bool size_seen = false;

	json_object_foreach(obj, key, v)
	{
		const struct opt *d;
		char text[512];
		int ret;

		if (!strcmp(key, "path") || !strcmp(key, "name"))
			continue;
		d = find_opt(key);
		if (!d) {
			fprintf(stderr,
				"hopper-thumbnail: payload key '%s' "
				"ignored (unknown)\n",
				key);
			continue;
		}
		/* Width and height are one setting: a payload that sets one
		 * of them drops both of the command line's. */
		if ((d->offset == OFF(width) || d->offset == OFF(height)) &&
		    !size_seen) {
			o->width = o->height = 0;
			size_seen = true;
		}
		if (json_text(v, text, sizeof(text)) < 0 ||
		    strlen(text) >= sizeof(text) - 1) {
			hop_thumb_err_set(e, "payload: \"%s\" has a bad type",
					  key);
			return -EINVAL;
		}
		ret = set_text(o, d, text);
		if (ret == -ENOMEM) {
			hop_thumb_err_set(e, "out of memory");
			e->retry = true;
			return ret;
		}
		if (ret < 0) {
			hop_thumb_err_set(e, "payload: \"%s\": bad value '%s'",
					  key, text);
			return ret;
		}
	}
	return 0;
}

int hop_thumb_opts_copy(struct hop_thumb_opts *dst,
			const struct hop_thumb_opts *src)
{
	*dst = *src;
	dst->out = NULL;
	if (src->out) {
		dst->out = strdup(src->out);
		if (!dst->out)
			return -ENOMEM;
	}
	return 0;
}

void hop_thumb_opts_free(struct hop_thumb_opts *o)
{
	free(o->out);
	o->out = NULL;
}

void hop_thumb_err_set(struct hop_thumb_err *e, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	/* A truncated message may end inside a UTF-8 sequence: cut it back
	 * to the last whole character so that it stays a JSON string. */
	n = strlen(e->msg);
	if (n == sizeof(e->msg) - 1) {
		size_t i = n;

		while (i > 0 && ((unsigned char)e->msg[i - 1] & 0xC0) == 0x80)
			i--;
		if (i > 0 && ((unsigned char)e->msg[i - 1] & 0x80))
			i--;
		e->msg[i] = '\0';
	}
}
