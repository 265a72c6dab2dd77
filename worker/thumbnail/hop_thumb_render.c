/*
 * hop_thumb_render.c - turns a decoded frame of any pixel format (10-bit,
 * 4:2:2, RGB, interlaced...) into the 8-bit RGB24 picture a person sees:
 * display aspect from the sample aspect ratio, rotation from the display
 * matrix, one field of an interlaced frame.
 */
#include "worker/thumbnail/hop_thumb.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include <libavutil/mem.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

/* SWS_ACCURATE_RND with full chroma interpolation shifts colours in
 * FFmpeg 5.1 (about 28 dB against the source): plain bicubic is closer. */
#define SWS_FLAGS SWS_BICUBIC

bool hop_thumb_fit(int w, int h, AVRational sar, int rotation, int req_w,
		   int req_h, int *out_w, int *out_h)
{
	double dw = w > 0 ? w : 1, dh = h > 0 ? h : 1, ow, oh, k = 1;

	if (sar.num > 0 && sar.den > 0)
		dw = dw * sar.num / sar.den;
	if (rotation == 90 || rotation == 270) {
		double t = dw;

		dw = dh;
		dh = t;
	}
	if (req_w > 0 && req_h > 0)
		k = fmin(req_w / dw, req_h / dh);
	else if (req_w > 0)
		k = req_w / dw;
	else if (req_h > 0)
		k = req_h / dh;
	ow = dw * k;
	oh = dh * k;
	/* A huge size asked for, or an absurd aspect ratio, must not cost
	 * gigabytes or break an encoder: shrink both sides by one factor so
	 * that the aspect stays what it is. */
	k = fmin(1, fmin(HOP_THUMB_MAX_SIDE / ow, HOP_THUMB_MAX_SIDE / oh));
	k = fmin(k, sqrt(HOP_THUMB_MAX_PIXELS / (ow * oh)));
	ow *= k;
	oh *= k;
	*out_w = ow < 1 ? 1 : (int)fmin(lround(ow), HOP_THUMB_MAX_SIDE);
	*out_h = oh < 1 ? 1 : (int)fmin(lround(oh), HOP_THUMB_MAX_SIDE);
	return k < 1 || ow < 0.5 || oh < 0.5;
}

/* The swscale matrix for a frame's colour space; unspecified is BT.601,
 * as FFmpeg's own scale filter assumes. */
static int sws_matrix(enum AVColorSpace cs)
{
	switch (cs) {
	case AVCOL_SPC_BT709:
		return SWS_CS_ITU709;
	case AVCOL_SPC_FCC:
		return SWS_CS_FCC;
	case AVCOL_SPC_SMPTE240M:
		return SWS_CS_SMPTE240M;
	case AVCOL_SPC_BT2020_NCL:
	case AVCOL_SPC_BT2020_CL:
		return SWS_CS_BT2020;
	default:
		return SWS_CS_ITU601;
	}
}

static bool full_range(const AVFrame *f)
{
	switch (f->format) {
	case AV_PIX_FMT_YUVJ420P:
	case AV_PIX_FMT_YUVJ422P:
	case AV_PIX_FMT_YUVJ444P:
	case AV_PIX_FMT_YUVJ440P:
	case AV_PIX_FMT_YUVJ411P:
		return true;
	default:
		return f->color_range == AVCOL_RANGE_JPEG;
	}
}

/*
 * Scales f to w x h RGB24 at dst. An interlaced frame is read as its first
 * field only (every other line, through doubled line sizes): a field has no
 * combing, and a thumbnail does not need the vertical detail.
 */
static int scale_rgb(const AVFrame *f, uint8_t *dst, int stride, int w, int h)
{
	const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(f->format);
	const uint8_t *src[4] = {f->data[0], f->data[1], f->data[2],
				 f->data[3]};
	int lines[4] = {f->linesize[0], f->linesize[1], f->linesize[2],
			f->linesize[3]};
	int src_h = f->height;
	struct SwsContext *sws;
	int ret;

	if (!d || f->width <= 0 || f->height <= 0)
		return AVERROR(EINVAL);
	if (f->interlaced_frame && f->height >= 4 &&
	    !(d->flags & (AV_PIX_FMT_FLAG_PAL | AV_PIX_FMT_FLAG_HWACCEL |
			  AV_PIX_FMT_FLAG_BITSTREAM))) {
		int field = f->top_field_first ? 0 : 1;

		for (int i = 0; i < 4; i++) {
			if (src[i] && field)
				src[i] += lines[i];
			lines[i] *= 2;
		}
		src_h = (f->height + 1 - field) / 2;
	}

	sws = sws_getContext(f->width, src_h, f->format, w, h, AV_PIX_FMT_RGB24,
			     SWS_FLAGS, NULL, NULL, NULL);
	if (!sws)
		return AVERROR(EINVAL);
	sws_setColorspaceDetails(
	    sws, sws_getCoefficients(sws_matrix(f->colorspace)), full_range(f),
	    sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16);
	ret = sws_scale(sws, src, lines, 0, src_h, &dst, &stride);
	sws_freeContext(sws);
	return ret == h ? 0 : AVERROR(EINVAL);
}

/*
 * Copies the sw x sh RGB24 picture at src into dst turned clockwise by
 * rotation (90, 180 or 270) degrees.
 */
static void rotate_rgb(const uint8_t *src, int src_stride, int sw, int sh,
		       int rotation, uint8_t *dst, int dst_stride)
{
	int dw = rotation == 180 ? sw : sh;
	int dh = rotation == 180 ? sh : sw;

	for (int y = 0; y < dh; y++) {
		uint8_t *row = dst + (size_t)y * dst_stride;

		for (int x = 0; x < dw; x++) {
			int sx, sy;

			if (rotation == 90) {
				sx = y;
				sy = sh - 1 - x;
			} else if (rotation == 270) {
				sx = sw - 1 - y;
				sy = x;
			} else {
				sx = sw - 1 - x;
				sy = sh - 1 - y;
			}
			memcpy(row + 3 * x,
			       src + (size_t)sy * src_stride + 3 * sx, 3);
		}
	}
}

int hop_thumb_render(const AVFrame *f, int rotation, uint8_t *dst, int stride,
		     int w, int h)
{
	bool quarter = rotation == 90 || rotation == 270;
	int sw = quarter ? h : w, sh = quarter ? w : h;
	uint8_t *tmp;
	int ret;

	if (rotation == 0)
		return scale_rgb(f, dst, stride, w, h);
	tmp = av_malloc((size_t)sw * sh * 3 + HOP_THUMB_PAD);
	if (!tmp)
		return AVERROR(ENOMEM);
	ret = scale_rgb(f, tmp, sw * 3, sw, sh);
	if (ret == 0)
		rotate_rgb(tmp, sw * 3, sw, sh, rotation, dst, stride);
	av_free(tmp);
	return ret;
}

double hop_thumb_score(const AVFrame *f)
{
	enum { W = 64, H = 36, BINS = 32 };
	uint8_t gray[W * H];
	uint8_t *dst[4] = {gray, NULL, NULL, NULL};
	int dst_lines[4] = {W, 0, 0, 0};
	struct SwsContext *sws;
	double sum = 0, sq = 0, mean, sd, entropy = 0;
	int hist[BINS] = {0};
	int ret;

	if (f->width <= 0 || f->height <= 0)
		return -1;
	sws = sws_getContext(f->width, f->height, f->format, W, H,
			     AV_PIX_FMT_GRAY8, SWS_AREA, NULL, NULL, NULL);
	if (!sws)
		return -1;
	ret = sws_scale(sws, (const uint8_t *const *)f->data, f->linesize, 0,
			f->height, dst, dst_lines);
	sws_freeContext(sws);
	if (ret != H)
		return -1;

	for (int i = 0; i < W * H; i++) {
		sum += gray[i];
		sq += (double)gray[i] * gray[i];
		hist[gray[i] * BINS / 256]++;
	}
	mean = sum / (W * H);
	sd = sqrt(fmax(sq / (W * H) - mean * mean, 0));
	for (int i = 0; i < BINS; i++) {
		if (hist[i]) {
			double p = hist[i] / (double)(W * H);

			entropy -= p * log2(p);
		}
	}
	/* Black, white or flat: below every picture with content. */
	if (mean < 24 || mean > 235 || sd < 12)
		return entropy / 100;
	return 1 + entropy + sd / 64;
}
