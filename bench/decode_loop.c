/* decode_loop.c - the limit no framework can beat: open each video, seek to
 * the keyframe before POS and decode up to the frame at POS (accurate) or
 * just the first frame there (keyframe). No scaling, no encoding, no
 * output: the time this takes is the decoding a thumbnail cannot avoid.
 *
 * refs P1,P2,...: the floor of an exact sprite sheet with tiles at those
 * positions (in order): the decoder skips every frame no other frame
 * refers to, decodes forward from tile to tile, and seeks only when the
 * next tile's keyframe (from the index) is past the last frame decoded.
 * It decodes less than any exact sheet can: a tile that is not a
 * reference is skipped too.
 *
 * usage: decode_loop accurate|keyframe POS FILE...
 *        decode_loop refs P1,P2,... FILE...; prints seconds taken.
 */
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Opens path's best video stream and its decoder, on one thread, skipping
 * the frames skip says; returns the stream's index, or -1. */
static int open_video(const char *path, AVFormatContext **fmt,
		      AVCodecContext **dec, enum AVDiscard skip)
{
	const AVCodec *codec = NULL;
	int si;

	if (avformat_open_input(fmt, path, NULL, NULL) < 0 ||
	    avformat_find_stream_info(*fmt, NULL) < 0 ||
	    (si = av_find_best_stream(*fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec,
				      0)) < 0 ||
	    !(*dec = avcodec_alloc_context3(codec)))
		return -1;
	avcodec_parameters_to_context(*dec, (*fmt)->streams[si]->codecpar);
	(*dec)->thread_count = 1;
	(*dec)->skip_frame = skip;
	return avcodec_open2(*dec, codec, NULL) < 0 ? -1 : si;
}

/* Decodes path to the frame at each of pos[0..n) in turn (to the first
 * frame there, unless accurate), skipping the frames skip says. */
static int decode(const char *path, const double *pos, int n,
		  enum AVDiscard skip, int accurate)
{
	AVFormatContext *fmt = NULL;
	AVCodecContext *dec = NULL;
	AVPacket *pkt = av_packet_alloc();
	AVFrame *frame = av_frame_alloc();
	int rc = -1, i = 0;
	int64_t at = INT64_MIN; /* the last frame decoded */

	int si = open_video(path, &fmt, &dec, skip);
	if (si < 0)
		goto out;
	AVStream *st = fmt->streams[si];
	for (; i < n; i++) {
		int64_t target = (int64_t)(pos[i] / av_q2d(st->time_base));
		if (at >= target)
			continue;
		int k =
		    av_index_search_timestamp(st, target, AVSEEK_FLAG_BACKWARD);
		const AVIndexEntry *e =
		    k >= 0 ? avformat_index_get_entry(st, k) : NULL;
		if (at == INT64_MIN || (e && e->timestamp > at)) {
			av_seek_frame(fmt, si, target, AVSEEK_FLAG_BACKWARD);
			avcodec_flush_buffers(dec);
		}
		int done = 0;
		while (!done && av_read_frame(fmt, pkt) >= 0) {
			if (pkt->stream_index == si &&
			    avcodec_send_packet(dec, pkt) >= 0) {
				while (avcodec_receive_frame(dec, frame) >= 0) {
					at = frame->best_effort_timestamp;
					done = !accurate || at >= target;
					av_frame_unref(frame);
					if (done)
						break;
				}
			}
			av_packet_unref(pkt);
		}
		if (!done)
			break;
	}
	rc = i == n ? 0 : -1;
out:
	av_frame_free(&frame);
	av_packet_free(&pkt);
	avcodec_free_context(&dec);
	avformat_close_input(&fmt);
	return rc;
}

int main(int argc, char **argv)
{
	struct timespec t0, t1;
	double pos[1024];
	int n = 0;

	if (argc < 4) {
		fprintf(stderr,
			"usage: decode_loop accurate|keyframe POS FILE...\n"
			"       decode_loop refs P1,P2,... FILE...\n");
		return 2;
	}
	av_log_set_level(AV_LOG_QUIET);
	int refs = strcmp(argv[1], "refs") == 0;
	int accurate = strcmp(argv[1], "accurate") == 0;
	for (char *p = argv[2], *end; n < 1024 && *p; p = end) {
		pos[n++] = strtod(p, &end);
		if (end == p)
			return 2;
		if (*end == ',')
			end++;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 3; i < argc; i++)
		if (refs ? decode(argv[i], pos, n, AVDISCARD_NONREF, 1)
			 : decode(argv[i], pos, 1, AVDISCARD_DEFAULT, accurate))
			fprintf(stderr, "%s: no frame\n", argv[i]);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%.6f\n", (double)(t1.tv_sec - t0.tv_sec) +
			     (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	return 0;
}
