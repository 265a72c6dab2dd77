/*
 * hop_thumb_input.c - opens a file, decides whether it is a video at all,
 * and opens the decoder of its best video stream. Every read goes through an
 * interrupt callback bound to the item's deadline, so that a file which
 * never ends (or a slow disk) cannot hold the worker.
 */
#include "worker/thumbnail/hop_thumb.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include <libavutil/avstring.h>
#include <libavutil/display.h>
#include <libavutil/time.h>

/* The largest frame the decoder may allocate: 8K with room to spare. */
#define MAX_PIXELS (7680LL * 4320 * 2)

static int interrupt_cb(void *opaque)
{
	return hop_thumb_input_expired(opaque);
}

bool hop_thumb_input_expired(const struct hop_thumb_input *in)
{
	return av_gettime_relative() > in->deadline;
}

/* True for demuxers of single pictures: image2 and the *_pipe family. */
static bool is_still_image(const AVFormatContext *fmt)
{
	const char *name = fmt->iformat->name;
	size_t n = strlen(name);

	return !strcmp(name, "image2") ||
	       (n > 5 && !strcmp(name + n - 5, "_pipe"));
}

/* The clockwise rotation a player applies, rounded to a quarter turn. */
static int stream_rotation(const AVStream *st)
{
	const uint8_t *m =
	    av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, NULL);
	double theta;
	int r;

	if (!m)
		return 0;
	theta = -av_display_rotation_get((const int32_t *)m);
	if (!isfinite(theta))
		return 0;
	r = (int)lround(theta / 90.0) * 90;
	r %= 360;
	return r < 0 ? r + 360 : r;
}

/*
 * Picks the video stream to decode: the largest one that is not cover art
 * and has a decoder; failing that, the largest cover art (an attached
 * picture, as in an MP3 or M4A), with *cover set. Returns its index, or -1
 * (with *why saying which of "no video", "audio only" or "no decoder"
 * applies).
 */
static int pick_stream(AVFormatContext *fmt, const char **why,
		       const char **codec, bool *cover)
{
	int best = -1, pic = -1;
	int64_t best_area = -1, pic_area = -1;
	bool audio = false;

	*why = "no video stream";
	*cover = false;
	for (unsigned i = 0; i < fmt->nb_streams; i++) {
		const AVCodecParameters *par = fmt->streams[i]->codecpar;
		int64_t area = (int64_t)par->width * par->height;
		bool attached =
		    fmt->streams[i]->disposition & AV_DISPOSITION_ATTACHED_PIC;

		if (par->codec_type == AVMEDIA_TYPE_AUDIO)
			audio = true;
		if (par->codec_type != AVMEDIA_TYPE_VIDEO)
			continue;
		if (!avcodec_find_decoder(par->codec_id)) {
			if (!attached) {
				*why = "no decoder for the video codec";
				*codec = avcodec_get_name(par->codec_id);
			}
			continue;
		}
		if (attached && area > pic_area &&
		    fmt->streams[i]->attached_pic.size > 0) {
			pic = (int)i;
			pic_area = area;
		} else if (!attached && area > best_area) {
			best = (int)i;
			best_area = area;
		}
	}
	if (best < 0 && pic >= 0 && !strcmp(*why, "no video stream")) {
		*cover = true;
		return pic;
	}
	if (best < 0 && audio && !strcmp(*why, "no video stream"))
		*why = "no video stream (audio only)";
	return best;
}

/*
 * True when every picture of an HEVC stream is of temporal sub-layer 0, so
 * that its sub-layer non-reference pictures (TRAIL_N, RASL_N...), which
 * only a higher sub-layer could refer to, are referred to by none. Read
 * from the hvcC record (MP4, Matroska) or the SPS of Annex B extradata
 * (MPEG-TS); false when neither says.
 */
static bool hevc_one_sub_layer(const AVCodecParameters *par)
{
	const uint8_t *x = par->extradata;
	int n = par->extradata_size, seen = 0;

	if (!x || n < 4)
		return false;
	if (x[0] == 1 && n >= 23)
		return ((x[21] >> 3) & 7) == 1; /* numTemporalLayers */
	for (int i = 0; i + 4 < n; i++) {
		if (x[i] || x[i + 1] || x[i + 2] != 1)
			continue;
		/* NAL header: type in bits 1-6 of its first byte. An SPS
		 * starts with its VPS id (4 bits), max_sub_layers - 1 (3). */
		if (((x[i + 3] >> 1) & 0x3f) == 33 && i + 5 < n) {
			if ((x[i + 5] >> 1) & 7)
				return false;
			seen++;
		}
	}
	return seen > 0;
}

/*
 * True when skip_frame=AVDISCARD_NONREF drops exactly the frames that no
 * other frame refers to: H.264 by nal_ref_idc, MPEG-2 and MPEG-4 part 2
 * by B-frames (never references there), HEVC by NAL type when it has a
 * single temporal sub-layer.
 */
static bool nonref_exact(const AVCodecParameters *par)
{
	switch (par->codec_id) {
	case AV_CODEC_ID_H264:
	case AV_CODEC_ID_MPEG2VIDEO:
	case AV_CODEC_ID_MPEG4:
		return true;
	case AV_CODEC_ID_HEVC:
		return hevc_one_sub_layer(par);
	default:
		return false;
	}
}

static void read_timing(struct hop_thumb_input *in)
{
	AVStream *st = in->st;
	AVRational fr = av_guess_frame_rate(in->fmt, st, NULL);

	in->start = st->start_time != AV_NOPTS_VALUE ? st->start_time : 0;
	/* The video's own duration first: an audio track may run longer. */
	in->duration = -1;
	if (st->duration != AV_NOPTS_VALUE && st->duration > 0)
		in->duration = st->duration * av_q2d(st->time_base);
	else if (in->fmt->duration != AV_NOPTS_VALUE && in->fmt->duration > 0)
		in->duration = in->fmt->duration / (double)AV_TIME_BASE;
	in->frame_time = fr.num > 0 && fr.den > 0 ? av_q2d(av_inv_q(fr)) : 0.04;
	if (in->frame_time <= 0 || in->frame_time > 10)
		in->frame_time = 0.04;
}

/*
 * Opens the decoder of the chosen stream at lowres `level` (0: full size)
 * into in->dec. Returns 0 or a negative AVERROR with e filled when e is
 * not NULL.
 */
static int open_decoder(struct hop_thumb_input *in, int level,
			struct hop_thumb_err *e)
{
	const AVCodec *codec = avcodec_find_decoder(in->st->codecpar->codec_id);
	int ret;

	in->dec = avcodec_alloc_context3(codec);
	if (!in->dec)
		return AVERROR(ENOMEM);
	ret = avcodec_parameters_to_context(in->dec, in->st->codecpar);
	if (ret < 0)
		goto out_err;
	/* One thread: the pool scales by processes, and frame threads would
	 * hold several frames (memory) before returning the first. */
	in->dec->thread_count = 1;
	in->dec->max_pixels = MAX_PIXELS;
	in->dec->pkt_timebase = in->st->time_base;
	in->dec->lowres = level;
	ret = avcodec_open2(in->dec, codec, NULL);
	if (ret < 0)
		goto out_err;
	in->lowres = level;
	return 0;

out_err:
	if (e)
		hop_thumb_err_set(e, "%s: cannot open the %s decoder: %s",
				  in->path, codec->name, av_err2str(ret));
	avcodec_free_context(&in->dec);
	return ret;
}

void hop_thumb_input_allow_lowres(struct hop_thumb_input *in, int req_w,
				  int req_h)
{
	const AVCodecParameters *par = in->st->codecpar;
	const AVCodec *codec = avcodec_find_decoder(par->codec_id);
	bool quarter = in->rotation == 90 || in->rotation == 270;
	int ow, oh, level = 0;

	in->lowres_ok = 0;
	if (!codec || codec->max_lowres <= 0 || in->cover || par->width <= 0 ||
	    par->height <= 0 || (req_w <= 0 && req_h <= 0))
		return;
	hop_thumb_fit(par->width, par->height, par->sample_aspect_ratio,
		      in->rotation, req_w, req_h, &ow, &oh);
	/* The rows the thumbnail needs, in the stored orientation (the
	 * sample aspect ratio stretches columns only). The frame decoded
	 * keeps twice them: at 1/8 a block is its mean alone, and the scale
	 * down from twice the size is as sharp as from the whole frame. */
	if (quarter)
		oh = ow;
	while (level < codec->max_lowres && level < 3 &&
	       (par->height >> (level + 1)) >= 2 * oh &&
	       (par->width >> (level + 1)) >= 16)
		level++;
	in->lowres_ok = level;
}

int hop_thumb_input_set_lowres(struct hop_thumb_input *in, int level)
{
	AVCodecContext *old = in->dec;
	int ret;

	if (level == in->lowres)
		return 0;
	in->dec = NULL;
	ret = open_decoder(in, level, NULL);
	if (ret < 0) {
		in->dec = old;
		return ret;
	}
	avcodec_free_context(&old);
	in->draining = false;
	return 0;
}

void hop_thumb_input_full_size(const struct hop_thumb_input *in,
			       const AVFrame *f, int *w, int *h)
{
	const AVCodecParameters *par = in->st->codecpar;

	*w = f->width;
	*h = f->height;
	if (in->lowres > 0 && par->width > 0 && par->height > 0) {
		*w = par->width;
		*h = par->height;
	}
}

int hop_thumb_input_open(struct hop_thumb_input *in, const char *path,
			 int64_t deadline, struct hop_thumb_err *e)
{
	const char *why = NULL, *codec = "?";
	AVDictionary *opts = NULL;
	struct stat sb;
	char *url;
	int ret;

	memset(in, 0, sizeof(*in));
	in->path = path;
	in->deadline = deadline;
	in->index = -1;

	if (stat(path, &sb) < 0) {
		ret = AVERROR(errno);
		hop_thumb_err_set(e, "%s: %s", path, strerror(errno));
		return ret;
	}
	if (S_ISDIR(sb.st_mode) || !S_ISREG(sb.st_mode)) {
		hop_thumb_err_set(e, "%s: not a regular file", path);
		return AVERROR(EINVAL);
	}
	if (sb.st_size == 0) {
		hop_thumb_err_set(e, "%s: empty file (0 bytes)", path);
		return AVERROR_INVALIDDATA;
	}

	in->fmt = avformat_alloc_context();
	if (!in->fmt) {
		ret = AVERROR(ENOMEM);
		goto out_nomem;
	}
	in->fmt->interrupt_callback.callback = interrupt_cb;
	in->fmt->interrupt_callback.opaque = in;
	/* A path is a local file, never a URL: "file:" makes a name such as
	 * "concat:x" literal, and the whitelist keeps what the file refers
	 * to (a playlist's entries) local too. */
	url = av_asprintf("file:%s", path);
	if (!url) {
		ret = AVERROR(ENOMEM);
		goto out_nomem;
	}
	av_dict_set(&opts, "protocol_whitelist", "file", 0);
	ret = avformat_open_input(&in->fmt, url, NULL, &opts);
	av_dict_free(&opts);
	av_free(url);
	if (ret < 0) {
		/* avformat_open_input freed the context. */
		if (ret == AVERROR_EXIT)
			hop_thumb_err_set(e, "%s: timed out opening", path);
		else
			hop_thumb_err_set(e,
					  "%s: not a readable media file "
					  "(%s)",
					  path, av_err2str(ret));
		goto out_close;
	}
	if (is_still_image(in->fmt)) {
		hop_thumb_err_set(e, "%s: a still image (%s), not a video",
				  path, in->fmt->iformat->name);
		ret = AVERROR_INVALIDDATA;
		goto out_close;
	}
	ret = avformat_find_stream_info(in->fmt, NULL);
	if (ret == AVERROR_EXIT || hop_thumb_input_expired(in)) {
		hop_thumb_err_set(e, "%s: timed out probing", path);
		ret = AVERROR_EXIT;
		goto out_close;
	}
	/* Other failures here still leave streams that may decode. */

	in->index = pick_stream(in->fmt, &why, &codec, &in->cover);
	if (in->index < 0) {
		if (!strcmp(why, "no decoder for the video codec"))
			hop_thumb_err_set(e, "%s: %s (%s)", path, why, codec);
		else
			hop_thumb_err_set(e, "%s: %s", path, why);
		ret = AVERROR_STREAM_NOT_FOUND;
		goto out_close;
	}
	in->st = in->fmt->streams[in->index];
	for (unsigned i = 0; i < in->fmt->nb_streams; i++)
		if ((int)i != in->index)
			in->fmt->streams[i]->discard = AVDISCARD_ALL;
	in->index_at_open = avformat_index_get_entries_count(in->st);
	in->rotation = stream_rotation(in->st);
	read_timing(in);

	{
		const AVCodecDescriptor *d =
		    avcodec_descriptor_get(in->st->codecpar->codec_id);

		in->intra_only = d && (d->props & AV_CODEC_PROP_INTRA_ONLY);
		in->nonref_exact = nonref_exact(in->st->codecpar);
	}
	ret = open_decoder(in, 0, e);
	if (ret == AVERROR(ENOMEM))
		goto out_nomem;
	if (ret < 0)
		goto out_close;
	in->pkt = av_packet_alloc();
	in->frame = av_frame_alloc();
	in->held = av_frame_alloc();
	in->ahead = av_frame_alloc();
	in->target = AV_NOPTS_VALUE;
	in->last_key = AV_NOPTS_VALUE;
	if (!in->pkt || !in->frame || !in->held || !in->ahead) {
		ret = AVERROR(ENOMEM);
		goto out_nomem;
	}
	return 0;

out_nomem:
	hop_thumb_err_set(e, "%s: out of memory", path);
	e->retry = true;
out_close:
	hop_thumb_input_close(in);
	return ret;
}

bool hop_thumb_input_cut(const struct hop_thumb_input *in)
{
	int64_t size = avio_size(in->fmt->pb);
	int n = avformat_index_get_entries_count(in->st);
	const AVIndexEntry *e =
	    n > 0 ? avformat_index_get_entry(in->st, n - 1) : NULL;

	return in->read_error || (e && size > 0 && e->pos >= size);
}

void hop_thumb_input_close(struct hop_thumb_input *in)
{
	av_frame_free(&in->ahead);
	av_frame_free(&in->held);
	av_frame_free(&in->frame);
	av_packet_free(&in->pkt);
	avcodec_free_context(&in->dec);
	avformat_close_input(&in->fmt);
	in->st = NULL;
}
