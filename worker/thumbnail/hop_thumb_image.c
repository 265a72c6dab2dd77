/*
 * hop_thumb_image.c - encodes an RGB24 picture with libavcodec's image
 * encoders (mjpeg, png, libwebp) and writes files so that a reader sees
 * either nothing or the whole file: a temp name in the same folder, then
 * rename(2).
 */
#include "worker/thumbnail/hop_thumb.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavutil/opt.h>
#include <libswscale/swscale.h>

struct format_info {
	const char *name, *ext, *encoder;
	enum AVPixelFormat pix_fmt;
};

static const struct format_info formats[] = {
    [HOP_THUMB_JPEG] = {"jpeg", "jpg", "mjpeg", AV_PIX_FMT_YUVJ420P},
    [HOP_THUMB_PNG] = {"png", "png", "png", AV_PIX_FMT_RGB24},
    [HOP_THUMB_WEBP] = {"webp", "webp", "libwebp", AV_PIX_FMT_YUV420P},
};

const char *hop_thumb_format_ext(int format)
{
	return formats[format].ext;
}

int hop_thumb_format_parse(const char *s)
{
	if (!strcmp(s, "jpeg") || !strcmp(s, "jpg"))
		return HOP_THUMB_JPEG;
	if (!strcmp(s, "png"))
		return HOP_THUMB_PNG;
	if (!strcmp(s, "webp"))
		return HOP_THUMB_WEBP;
	return -EINVAL;
}

bool hop_thumb_format_available(int format)
{
	return avcodec_find_encoder_by_name(formats[format].encoder) != NULL;
}

int hop_thumb_mkdirs(const char *dir)
{
	char *p, *copy = strdup(dir);
	int ret = 0;

	if (!copy)
		return -ENOMEM;
	for (p = copy + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;

		*p = '\0';
		if (mkdir(copy, 0755) < 0 && errno != EEXIST) {
			ret = -errno;
			break;
		}
		*p = c;
		if (c == '\0')
			break;
	}
	free(copy);
	return ret;
}

int hop_thumb_file_write(const char *path, const void *data, size_t len)
{
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;
	int dirlen = slash ? (int)(slash - path) + 1 : 0;
	const char *p = data;
	char *tmp;
	int fd, ret = 0;

	if (asprintf(&tmp, "%.*s.%s.tmp-%ld", dirlen, path, name,
		     (long)getpid()) < 0)
		return -ENOMEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		ret = -errno;
		goto out_free;
	}
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			break;
		}
		p += n;
		len -= (size_t)n;
	}
	if (close(fd) < 0 && ret == 0)
		ret = -errno;
	if (ret == 0 && rename(tmp, path) < 0)
		ret = -errno;
	if (ret < 0)
		unlink(tmp);
out_free:
	free(tmp);
	return ret;
}

/* Converts the RGB24 picture into a new frame of the encoder's format. */
static AVFrame *to_frame(const uint8_t *rgb, int stride, int w, int h,
			 enum AVPixelFormat pix_fmt)
{
	AVFrame *f = av_frame_alloc();
	struct SwsContext *sws = NULL;
	const uint8_t *src[4] = {rgb, NULL, NULL, NULL};
	int lines[4] = {stride, 0, 0, 0};

	if (!f)
		return NULL;
	f->width = w;
	f->height = h;
	f->format = pix_fmt;
	if (av_frame_get_buffer(f, 0) < 0)
		goto out_free;
	sws = sws_getContext(w, h, AV_PIX_FMT_RGB24, w, h, pix_fmt,
			     SWS_BICUBIC | SWS_ACCURATE_RND, NULL, NULL, NULL);
	if (!sws)
		goto out_free;
	if (sws_scale(sws, src, lines, 0, h, f->data, f->linesize) != h)
		goto out_free;
	sws_freeContext(sws);
	return f;

out_free:
	sws_freeContext(sws);
	av_frame_free(&f);
	return NULL;
}

/* Opens the encoder for format at w x h with quality 1..100. */
static int open_encoder(AVCodecContext **out, int format, int quality, int w,
			int h)
{
	const struct format_info *fi = &formats[format];
	const AVCodec *codec = avcodec_find_encoder_by_name(fi->encoder);
	AVDictionary *dict = NULL;
	AVCodecContext *c;
	int ret;

	if (!codec)
		return AVERROR_ENCODER_NOT_FOUND;
	c = avcodec_alloc_context3(codec);
	if (!c)
		return AVERROR(ENOMEM);
	c->width = w;
	c->height = h;
	c->pix_fmt = fi->pix_fmt;
	c->time_base = (AVRational){1, 25};
	c->thread_count = 1;
	if (format == HOP_THUMB_JPEG) {
		/* 100 -> qscale 2 (best) ... 1 -> 31 (worst), like -q:v. */
		c->flags |= AV_CODEC_FLAG_QSCALE;
		c->global_quality =
		    FF_QP2LAMBDA * (2 + (100 - quality) * 29 / 99);
		c->color_range = AVCOL_RANGE_JPEG;
	} else if (format == HOP_THUMB_WEBP) {
		char q[16];

		snprintf(q, sizeof(q), "%d", quality);
		av_dict_set(&dict, "quality", q, 0);
	}
	ret = avcodec_open2(c, codec, &dict);
	av_dict_free(&dict);
	if (ret < 0) {
		avcodec_free_context(&c);
		return ret;
	}
	*out = c;
	return 0;
}

int hop_thumb_image_write(const uint8_t *rgb, int stride, int w, int h,
			  int format, int quality, const char *path,
			  struct hop_thumb_err *e)
{
	AVCodecContext *enc = NULL;
	AVFrame *frame = NULL;
	AVPacket *pkt = NULL;
	int ret;

	ret = open_encoder(&enc, format, quality, w, h);
	if (ret < 0) {
		hop_thumb_err_set(e, "%s: cannot open the %s encoder: %s", path,
				  formats[format].encoder, av_err2str(ret));
		return ret;
	}
	frame = to_frame(rgb, stride, w, h, enc->pix_fmt);
	pkt = av_packet_alloc();
	if (!frame || !pkt) {
		ret = AVERROR(ENOMEM);
		hop_thumb_err_set(e, "%s: out of memory", path);
		e->retry = true;
		goto out_free;
	}
	frame->quality = enc->global_quality;
	frame->pts = 0;
	ret = avcodec_send_frame(enc, frame);
	if (ret >= 0)
		ret = avcodec_send_frame(enc, NULL);
	if (ret >= 0)
		ret = avcodec_receive_packet(enc, pkt);
	if (ret < 0) {
		hop_thumb_err_set(e, "%s: encoding failed: %s", path,
				  av_err2str(ret));
		goto out_free;
	}
	ret = hop_thumb_file_write(path, pkt->data, (size_t)pkt->size);
	if (ret < 0) {
		hop_thumb_err_set(e, "%s: cannot write: %s", path,
				  strerror(-ret));
		/* A full disk or a lost mount may come back. */
		e->retry = true;
	}
out_free:
	av_packet_free(&pkt);
	av_frame_free(&frame);
	avcodec_free_context(&enc);
	return ret;
}
