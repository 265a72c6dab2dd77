/*
 * hop_thumb_job.c - one work item: open the video, grab the frame(s) the
 * options ask for, render and write them, and describe what was done.
 * Everything the item allocates is released before it returns, so that the
 * worker's memory stays flat over any number of items.
 */
#include "worker/thumbnail/hop_thumb.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/mem.h>
#include <libavutil/pixdesc.h>
#include <libavutil/time.h>

struct job {
	const struct hop_thumb_opts *o;
	const char *path;
	struct hop_thumb_err *e;
	struct hop_thumb_input in;
	AVFrame *frame;
	char *stem;	  /* "<out>/<basename without extension>" */
	const char *name; /* the basename part of stem */
	int w, h;	  /* of each thumbnail, fixed by the first frame */
	int src_w, src_h; /* of the first frame decoded */
	uint8_t *rgb;	  /* w * h * 3, one thumbnail */
	json_t *files;
	json_t *positions;
	json_t *notes; /* sentences for a person: what was done differently */
	int made;      /* thumbnails made, with count or sheet */
	bool clamped;  /* a position was past the last frame */
	bool cut;      /* the file ends before its declared duration */
	int lowres;    /* the most reduced decoding a frame used, 0: none */
};

/* "<dir>/clip" from dir and "/videos/clip.mp4". */
static char *make_stem(const char *dir, const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	const char *dot = strrchr(base, '.');
	int n = dot && dot != base ? (int)(dot - base) : (int)strlen(base);
	size_t dl = strlen(dir);
	char *s;

	while (dl > 1 && dir[dl - 1] == '/')
		dl--;
	if (asprintf(&s, "%.*s/%.*s", (int)dl, dir, n, base) < 0)
		return NULL;
	return s;
}

/* Fills e from an error of the grab functions. */
static int grab_failed(struct job *j, int ret)
{
	if (ret == AVERROR_EXIT)
		hop_thumb_err_set(j->e, "%s: timed out after %d s", j->path,
				  j->o->timeout);
	else if (ret == AVERROR(ENODATA))
		hop_thumb_err_set(
		    j->e, "%s: no decodable video frame%s", j->path,
		    hop_thumb_input_cut(&j->in) ? " (file truncated or "
						  "unreadable)"
						: "");
	else if (ret == AVERROR_EOF)
		hop_thumb_err_set(j->e, "%s: no video data where expected: %s",
				  j->path,
				  hop_thumb_input_cut(&j->in)
				      ? "the file ends early (truncated?)"
				      : "the index points to none (damaged?)");
	else if (ret == AVERROR(ENOMEM))
		hop_thumb_err_set(j->e, "%s: out of memory", j->path);
	else
		hop_thumb_err_set(j->e, "%s: cannot seek or read: %s", j->path,
				  av_err2str(ret));
	j->e->retry = ret == AVERROR(ENOMEM);
	return ret;
}

/* Adds a sentence to the result's "notes". */
static void note(struct job *j, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void note(struct job *j, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	json_array_append_new(j->notes, json_string(buf));
}

/* Fixes the thumbnail size from the first frame and allocates for it. */
static int set_geometry(struct job *j)
{
	AVRational sar =
	    av_guess_sample_aspect_ratio(j->in.fmt, j->in.st, j->frame);

	/* A frame decoded at a reduced resolution has the source's shape:
	 * the size is that of the source. */
	hop_thumb_input_full_size(&j->in, j->frame, &j->src_w, &j->src_h);
	if (hop_thumb_fit(j->src_w, j->src_h, sar, j->in.rotation, j->o->width,
			  j->o->height, &j->w, &j->h)) {
		double a = j->src_w *
			   (sar.num > 0 && sar.den > 0 ? av_q2d(sar) : 1.0) /
			   j->src_h;

		if (j->in.rotation == 90 || j->in.rotation == 270)
			a = 1 / a;
		note(j,
		     "the size asked for at a display aspect of %.4g:%.4g "
		     "exceeds %d pixels a side or %lld in all, or falls under "
		     "one pixel: made %dx%d, the aspect kept",
		     a >= 1 ? a : 1, a >= 1 ? 1 : 1 / a, HOP_THUMB_MAX_SIDE,
		     HOP_THUMB_MAX_PIXELS, j->w, j->h);
	}
	j->rgb = av_malloc((size_t)j->w * j->h * 3 + HOP_THUMB_PAD);
	if (!j->rgb) {
		hop_thumb_err_set(j->e, "%s: out of memory", j->path);
		j->e->retry = true;
		return AVERROR(ENOMEM);
	}
	return 0;
}

static int render(struct job *j, uint8_t *dst, int stride)
{
	int ret =
	    hop_thumb_render(j->frame, j->in.rotation, dst, stride, j->w, j->h);

	if (ret < 0)
		hop_thumb_err_set(j->e,
				  "%s: cannot convert the frame (%dx%d "
				  "%s): %s",
				  j->path, j->frame->width, j->frame->height,
				  av_get_pix_fmt_name(j->frame->format)
				      ? av_get_pix_fmt_name(j->frame->format)
				      : "?",
				  av_err2str(ret));
	return ret;
}

/* Writes the w x h image at rgb to "<stem><suffix>.<ext>", listed in files. */
static int write_image(struct job *j, const uint8_t *rgb, int stride, int w,
		       int h, const char *suffix)
{
	char *path;
	int ret;

	if (asprintf(&path, "%s%s.%s", j->stem, suffix,
		     hop_thumb_format_ext(j->o->format)) < 0)
		return AVERROR(ENOMEM);
	ret = hop_thumb_image_write(rgb, stride, w, h, j->o->format,
				    j->o->quality, path, j->e);
	if (ret == 0)
		json_array_append_new(j->files, json_string(path));
	free(path);
	return ret;
}

static double rounded(double s)
{
	return round(s * 1000) / 1000;
}

/*
 * Notes, once per item, a position inside the declared duration that
 * gave the last frame: the file ends before its index says it does.
 */
static void note_if_cut(struct job *j, double pos, double at, bool clamped)
{
	if (!clamped || j->cut || j->in.duration <= 0 || pos >= j->in.duration)
		return;
	j->cut = true;
	note(j,
	     "the file ends early (truncated?): nothing decodes after %.3f s "
	     "of the %.3f s it declares, so later positions show that last "
	     "frame",
	     at, j->in.duration);
}

/* The single thumbnail at the position option. */
static int run_single(struct job *j)
{
	const struct hop_thumb_pos *p = &j->o->position;
	double pos = p->value, at = 0;
	int ret;

	if (p->kind == HOP_THUMB_POS_AUTO) {
		ret = hop_thumb_grab_auto(&j->in, j->frame, &at);
	} else {
		if (p->kind == HOP_THUMB_POS_PERCENT) {
			if (j->in.duration <= 0) {
				hop_thumb_err_set(j->e,
						  "%s: duration unknown, "
						  "cannot place %g%%",
						  j->path, p->value);
				return AVERROR(EINVAL);
			}
			pos = j->in.duration * p->value / 100;
		}
		ret = hop_thumb_grab(&j->in, pos, j->o->seek, j->frame, &at,
				     &j->clamped);
	}
	if (ret < 0)
		return grab_failed(j, ret);
	j->lowres = j->in.lowres;
	note_if_cut(j, pos, at, j->clamped);
	json_array_append_new(j->positions, json_real(rounded(at)));
	ret = set_geometry(j);
	if (ret == 0)
		ret = render(j, j->rgb, j->w * 3);
	if (ret == 0)
		ret = write_image(j, j->rgb, j->w * 3, j->w, j->h, "");
	return ret;
}

/* Allocates the sheet for count tiles of the thumbnail size. */
static int init_sheet(struct job *j, struct hop_thumb_sheet *sheet)
{
	int ret =
	    hop_thumb_sheet_init(sheet, j->o->count, j->o->columns, j->w, j->h);

	if (ret == -ENOMEM) {
		hop_thumb_err_set(j->e, "%s: out of memory", j->path);
		j->e->retry = true;
	} else if (ret < 0) {
		hop_thumb_err_set(j->e,
				  "%s: a sheet of %d tiles of %dx%d is too "
				  "large",
				  j->path, j->o->count, j->w, j->h);
	}
	return ret;
}

/* Writes the sheet image "<stem>.sheet.<ext>" and its index "<stem>.vtt". */
static int write_sheet(struct job *j, const struct hop_thumb_sheet *sheet,
		       const int64_t *cue_ms)
{
	char *image = NULL, *vtt = NULL;
	int ret;

	ret = write_image(j, sheet->rgb, sheet->width * 3, sheet->width,
			  sheet->height, ".sheet");
	if (ret < 0)
		return ret;
	if (asprintf(&image, "%s.sheet.%s", j->name,
		     hop_thumb_format_ext(j->o->format)) < 0)
		image = NULL;
	if (asprintf(&vtt, "%s.vtt", j->stem) < 0)
		vtt = NULL;
	if (!image || !vtt) {
		ret = AVERROR(ENOMEM);
		hop_thumb_err_set(j->e, "%s: out of memory", j->path);
		j->e->retry = true;
		goto out_free;
	}
	ret = hop_thumb_vtt_write(sheet, cue_ms, image, vtt);
	if (ret < 0) {
		hop_thumb_err_set(j->e, "%s: cannot write: %s", vtt,
				  strerror(-ret));
		j->e->retry = true;
		goto out_free;
	}
	json_array_append_new(j->files, json_string(vtt));
out_free:
	free(vtt);
	free(image);
	return ret;
}

/* Renders the frame in hand as thumbnail number k (from 0): a sheet's tile,
 * or the file "<stem>-<k+1>". */
static int emit_thumb(struct job *j, struct hop_thumb_sheet *sheet, int k)
{
	char suffix[16];
	int ret;

	if (j->o->sheet)
		return render(j, hop_thumb_sheet_tile(sheet, k),
			      sheet->width * 3);
	snprintf(suffix, sizeof(suffix), "-%03d", k + 1);
	ret = render(j, j->rgb, j->w * 3);
	if (ret == 0)
		ret = write_image(j, j->rgb, j->w * 3, j->w, j->h, suffix);
	return ret;
}

/*
 * count thumbnails at the middles of count equal stretches of the video,
 * as separate files or tiled into a sheet with its WebVTT index.
 *
 * A spot that shows the same frame as the spot before it (a clip shorter
 * than its tiles, the frozen end of a truncated file), or whose cue would
 * round to an empty one, does not get a thumbnail of its own: the one
 * before covers its stretch too, so every thumbnail is a distinct frame
 * and every WebVTT cue ends after it starts.
 */
static int run_many(struct job *j, hop_thumb_progress_fn progress, void *ctx)
{
	struct hop_thumb_sheet sheet = {0};
	int n = j->o->count, k = 0;
	double d = j->in.duration;
	int64_t last_pts = AV_NOPTS_VALUE, end_ms, *cue_ms = NULL;
	int ret = 0;

	if (d <= 0) {
		hop_thumb_err_set(j->e,
				  "%s: duration unknown, cannot space "
				  "%d thumbnails",
				  j->path, n);
		return AVERROR(EINVAL);
	}
	cue_ms = calloc((size_t)n + 1, sizeof(*cue_ms));
	if (!cue_ms) {
		hop_thumb_err_set(j->e, "%s: out of memory", j->path);
		j->e->retry = true;
		return AVERROR(ENOMEM);
	}
	end_ms = llround(d * 1000) > 0 ? llround(d * 1000) : 1;
	for (int i = 0; i < n; i++) {
		int64_t from = llround(d * 1000.0 * i / n), pts;
		double at;
		bool clamped;

		if (i > 0 && progress)
			progress(ctx, (double)i / n);
		ret = hop_thumb_grab_next(&j->in, d * (i + 0.5) / n, j->o->seek,
					  j->frame, &at, &clamped);
		if (ret < 0) {
			ret = grab_failed(j, ret);
			goto out;
		}
		note_if_cut(j, d * (i + 0.5) / n, at, clamped);
		j->clamped |= clamped;
		if (j->in.lowres > j->lowres)
			j->lowres = j->in.lowres;
		pts = j->frame->best_effort_timestamp;
		if (k > 0 && ((pts != AV_NOPTS_VALUE && pts == last_pts) ||
			      from <= cue_ms[k - 1] || from >= end_ms)) {
			av_frame_unref(j->frame);
			continue;
		}
		cue_ms[k] = from;
		last_pts = pts;
		json_array_append_new(j->positions, json_real(rounded(at)));
		if (k == 0) {
			ret = set_geometry(j);
			if (ret == 0 && j->o->sheet)
				ret = init_sheet(j, &sheet);
			if (ret < 0)
				goto out;
		}
		ret = emit_thumb(j, &sheet, k);
		if (ret < 0)
			goto out;
		k++;
		av_frame_unref(j->frame);
	}
	cue_ms[k] = end_ms;
	j->made = k;
	if (k < n)
		note(j,
		     "%d thumbnails asked, %d made: %d spots show the same "
		     "frame as the spot before and share its thumbnail%s",
		     n, k, n - k, j->o->sheet ? " and WebVTT cue" : "");
	if (j->o->sheet) {
		ret = hop_thumb_sheet_shrink(&sheet, k, j->o->columns);
		if (ret < 0) {
			hop_thumb_err_set(j->e, "%s: out of memory", j->path);
			j->e->retry = true;
			goto out;
		}
		ret = write_sheet(j, &sheet, cue_ms);
	}
out:
	free(cue_ms);
	hop_thumb_sheet_free(&sheet);
	return ret;
}

static json_t *make_result(struct job *j, int64_t t0)
{
	const AVCodecParameters *par = j->in.st->codecpar;
	json_t *r = json_object();

	if (!r)
		return NULL;
	json_object_set(r, "files", j->files);
	json_object_set_new(r, "width", json_integer(j->w));
	json_object_set_new(r, "height", json_integer(j->h));
	json_object_set(r, "position", json_array_get(j->positions, 0));
	if (j->o->count > 1 || j->o->sheet) {
		json_object_set(r, "positions", j->positions);
		json_object_set_new(r, "count", json_integer(j->made));
	}
	json_object_set_new(r, "clamped", json_boolean(j->clamped));
	json_object_set_new(r, "duration",
			    j->in.duration > 0
				? json_real(rounded(j->in.duration))
				: json_null());
	json_object_set_new(r, "codec",
			    json_string(avcodec_get_name(par->codec_id)));
	json_object_set_new(r, "container",
			    json_string(j->in.fmt->iformat->name));
	json_object_set_new(r, "source_width", json_integer(j->src_w));
	json_object_set_new(r, "source_height", json_integer(j->src_h));
	json_object_set_new(r, "rotation", json_integer(j->in.rotation));
	if (j->in.cover)
		json_object_set_new(r, "cover_art", json_true());
	json_object_set_new(r, "frames_decoded", json_integer(j->in.decoded));
	if (j->lowres > 0)
		json_object_set_new(r, "decode_scale",
				    json_real(1.0 / (1 << j->lowres)));
	json_object_set_new(r, "ms",
			    json_integer((av_gettime_relative() - t0) / 1000));
	if (json_array_size(j->notes))
		json_object_set(r, "notes", j->notes);
	return r;
}

/* Checks what does not need the file: an output folder and an encoder. */
static int check_output(const struct hop_thumb_opts *o, const char *path,
			struct hop_thumb_err *e)
{
	int ret;

	if (!o->out || !*o->out) {
		hop_thumb_err_set(e,
				  "%s: no output directory (--out or "
				  "payload \"out\")",
				  path);
		return AVERROR(EINVAL);
	}
	if (!hop_thumb_format_available(o->format)) {
		hop_thumb_err_set(e, "%s: this FFmpeg build cannot write %s",
				  path, hop_thumb_format_ext(o->format));
		return AVERROR_ENCODER_NOT_FOUND;
	}
	ret = hop_thumb_mkdirs(o->out);
	if (ret < 0) {
		hop_thumb_err_set(e, "%s: cannot create %s: %s", path, o->out,
				  strerror(-ret));
		e->retry = ret == -ENOSPC || ret == -EIO || ret == -ENOMEM;
	}
	return ret;
}

int hop_thumb_job_run(const struct hop_thumb_opts *o, const char *path,
		      const char *name, hop_thumb_progress_fn progress,
		      void *ctx, json_t **result, struct hop_thumb_err *e)
{
	int64_t t0 = av_gettime_relative();
	struct job j = {.o = o, .path = path, .e = e};
	int ret;

	*result = NULL;
	e->msg[0] = '\0';
	e->retry = false;
	ret = check_output(o, path, e);
	if (ret < 0)
		return ret;
	ret = hop_thumb_input_open(&j.in, path,
				   t0 + (int64_t)o->timeout * 1000000, e);
	if (ret < 0)
		return ret;

	j.stem = make_stem(o->out, name && *name ? name : path);
	j.frame = av_frame_alloc();
	j.files = json_array();
	j.positions = json_array();
	j.notes = json_array();
	if (!j.stem || !j.frame || !j.files || !j.positions || !j.notes) {
		ret = AVERROR(ENOMEM);
		goto out_nomem;
	}
	j.name = strrchr(j.stem, '/') + 1;
	hop_thumb_input_allow_lowres(&j.in, o->width, o->height);

	if (j.in.cover)
		note(&j, "audio with cover art and no other video: the "
			 "thumbnail is the cover");
	if (o->count == 1 && !o->sheet)
		ret = run_single(&j);
	else
		ret = run_many(&j, progress, ctx);
	if (ret < 0) {
		if (!e->msg[0])
			hop_thumb_err_set(e, "%s: %s", path, av_err2str(ret));
		goto out_free;
	}
	*result = make_result(&j, t0);
	if (*result)
		goto out_free;
	ret = AVERROR(ENOMEM);
out_nomem:
	hop_thumb_err_set(e, "%s: out of memory", path);
	e->retry = true;
out_free:
	json_decref(j.notes);
	json_decref(j.positions);
	json_decref(j.files);
	av_freep(&j.rgb);
	av_frame_free(&j.frame);
	free(j.stem);
	hop_thumb_input_close(&j.in);
	return ret;
}
