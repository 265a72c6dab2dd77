/*
 * hop_thumb_grab.c - seeks and decodes the frames thumbnails need. At most
 * two decoded frames are kept at a time (the one handed out and the one
 * decoded past it, or the candidate being compared in "auto"), so that
 * memory is bounded even for an 8K source.
 *
 * Accurate seeking decodes from a keyframe to the frame on screen at the
 * position; the frames in between are only needed as references. Frames
 * that no other frame refers to, and that cannot be the one on screen
 * (a later frame that is not after the position has been read already),
 * are not decoded at all (the decoder's skip_frame, per packet), which
 * leaves every decoded frame's pixels as they are.
 */
#include "worker/thumbnail/hop_thumb.h"

#include <errno.h>
#include <math.h>

/* Decode errors tolerated while draining before giving up on the rest. */
#define MAX_DRAIN_ERRORS 64

/* Forgets what the packets since the last seek said, and the frames held. */
static void reset_reading(struct hop_thumb_input *in)
{
	avcodec_flush_buffers(in->dec);
	in->draining = false;
	in->packets = 0;
	in->nseen = 0;
	in->last_key = AV_NOPTS_VALUE;
	in->one_key_sent = false;
	in->keyed = false;
	av_frame_unref(in->ahead);
	av_frame_unref(in->held);
}

/*
 * True when the frame of a packet with timestamp pts cannot be the one on
 * screen at in->target: a packet read before it (in decode order) has a
 * later timestamp that is not after the target, so that frame, or one
 * after it, will be shown instead. Only such frames may be skipped.
 */
static bool never_shown(const struct hop_thumb_input *in, int64_t pts)
{
	if (!in->skip_nonref || pts == AV_NOPTS_VALUE ||
	    in->target == AV_NOPTS_VALUE || pts >= in->target)
		return false;
	for (unsigned i = 0; i < in->nseen && i < HOP_THUMB_SEEN; i++) {
		int64_t q = in->seen[i];

		if (q > pts && q <= in->target)
			return true;
	}
	return false;
}

/* Sends a packet of the stream to the decoder, letting it drop the frame
 * when nothing refers to it and it will not be shown. */
static void send_packet(struct hop_thumb_input *in, AVPacket *pkt)
{
	in->dec->skip_frame =
	    never_shown(in, pkt->pts) ? AVDISCARD_NONREF : AVDISCARD_DEFAULT;
	if (pkt->pts != AV_NOPTS_VALUE)
		in->seen[in->nseen++ % HOP_THUMB_SEEN] = pkt->pts;
	if ((pkt->flags & AV_PKT_FLAG_KEY) && pkt->pts != AV_NOPTS_VALUE) {
		if (in->last_key != AV_NOPTS_VALUE && pkt->pts > in->last_key &&
		    pkt->pts - in->last_key > in->gop)
			in->gop = pkt->pts - in->last_key;
		in->last_key = pkt->pts;
	}
	avcodec_send_packet(in->dec, pkt);
}

/*
 * Reads packets of the chosen stream and decodes until a frame comes out
 * into f. A packet that fails to decode is skipped; a read error ends the
 * file like EOF does (a truncated file) and is remembered. Returns 0,
 * AVERROR_EOF once the decoder is drained, or AVERROR_EXIT on timeout.
 */
static int next_frame(struct hop_thumb_input *in, AVFrame *f)
{
	int drain_errors = 0;
	int ret;

	for (;;) {
		if (hop_thumb_input_expired(in))
			return AVERROR_EXIT;
		ret = avcodec_receive_frame(in->dec, f);
		if (ret == 0) {
			in->decoded++;
			return 0;
		}
		if (ret == AVERROR_EOF)
			return AVERROR_EOF;
		if (in->draining) {
			if (ret == AVERROR(EAGAIN) ||
			    ++drain_errors > MAX_DRAIN_ERRORS)
				return AVERROR_EOF;
			continue;
		}
		ret = av_read_frame(in->fmt, in->pkt);
		in->consumed = true;
		if (ret == AVERROR_EXIT)
			return ret;
		if (ret < 0) {
			if (ret != AVERROR_EOF)
				in->read_error = true;
			in->draining = true;
			avcodec_send_packet(in->dec, NULL);
			continue;
		}
		if (in->pkt->stream_index == in->index) {
			bool key = in->pkt->flags & AV_PKT_FLAG_KEY;
			bool first = !in->keyed;

			in->packets++;
			if (in->from_key && !in->keyed && !key) {
				av_packet_unref(in->pkt);
				continue;
			}
			in->keyed |= key;
			send_packet(in, in->pkt);
			/* Keyframe-only picking wants this keyframe's frame
			 * alone: drain it out rather than decode the frames
			 * after it that the decoder's reordering delay would
			 * otherwise take before giving it. */
			if (in->one_key && first && key) {
				in->one_key_sent = true;
				in->draining = true;
				avcodec_send_packet(in->dec, NULL);
			}
		}
		av_packet_unref(in->pkt);
	}
}

/*
 * Moves the demuxer to the keyframe at or before ts and resets the decoder.
 * When that fails it falls back to the start of the file. Returns 0 or an
 * AVERROR; a failure before anything was read is not one, since the file
 * is still at its start.
 */
static int seek_to(struct hop_thumb_input *in, int64_t ts)
{
	int ret;

	reset_reading(in);
	ret = av_seek_frame(in->fmt, in->index, ts, AVSEEK_FLAG_BACKWARD);
	if (ret < 0 && ts > in->start)
		ret = av_seek_frame(in->fmt, in->index, in->start,
				    AVSEEK_FLAG_BACKWARD);
	if (ret < 0)
		ret = av_seek_frame(in->fmt, -1, 0, AVSEEK_FLAG_BYTE);
	if (ret < 0 && !in->consumed)
		ret = 0;
	return ret;
}

/*
 * Decodes from where the demuxer is to the frame on screen at target (or,
 * in keyframe mode, the first frame) and leaves it in out; the frame
 * decoded past it, if any, waits in in->ahead. *reached says
 * the frame was found before the end of the file; *overshot that the very
 * first frame was already past target, i.e. the seek landed too late.
 * Returns 0, AVERROR_EOF when no frame came, or another AVERROR.
 */
static int decode_to(struct hop_thumb_input *in, int64_t target, int seek,
		     AVFrame *out, bool *reached, bool *overshot)
{
	bool have = false;
	int64_t pts;
	int ret;

	*reached = *overshot = false;
	for (;;) {
		ret = next_frame(in, in->frame);
		if (ret == AVERROR_EOF)
			break;
		if (ret < 0)
			return ret;
		pts = in->frame->best_effort_timestamp;
		if (have && pts != AV_NOPTS_VALUE && pts > target) {
			/* The frame held is the one on screen at target. */
			av_frame_move_ref(in->ahead, in->frame);
			*reached = true;
			break;
		}
		if (!have && pts != AV_NOPTS_VALUE && pts > target)
			*overshot = true;
		av_frame_unref(out);
		av_frame_move_ref(out, in->frame);
		have = true;
		if (seek == HOP_THUMB_SEEK_KEYFRAME || pts == AV_NOPTS_VALUE ||
		    pts >= target) {
			*reached = true;
			break;
		}
	}
	return have ? 0 : AVERROR_EOF;
}

/* Moves the demuxer to byte 0 and resets the decoder. Returns 0 or an
 * AVERROR. */
static int rewind_bytes(struct hop_thumb_input *in)
{
	reset_reading(in);
	return av_seek_frame(in->fmt, -1, 0, AVSEEK_FLAG_BYTE);
}

/*
 * The timestamp of the last indexed keyframe before ts whose data starts
 * inside the file, or AV_NOPTS_VALUE. A file cut short keeps an index
 * that points past its end (MP4 with the index first): this is where the
 * last frames that remain can be decoded from.
 */
static int64_t last_key_in_file(const struct hop_thumb_input *in, int64_t ts)
{
	int64_t size = avio_size(in->fmt->pb);
	int i = av_index_search_timestamp(in->st, ts - 1, AVSEEK_FLAG_BACKWARD);

	for (; size > 0 && i >= 0; i--) {
		const AVIndexEntry *e = avformat_index_get_entry(in->st, i);

		if (e && (e->flags & AVINDEX_KEYFRAME) && e->pos < size)
			return e->timestamp < ts ? e->timestamp
						 : AV_NOPTS_VALUE;
	}
	return AV_NOPTS_VALUE;
}

/*
 * Decodes the cover art, which the demuxer holds as one packet rather than
 * in the stream, into out; its time is the start. Returns 0 or
 * AVERROR(ENODATA) when it does not decode.
 */
static int grab_cover(struct hop_thumb_input *in, AVFrame *out, double *at)
{
	int ret;

	reset_reading(in);
	in->packets = 1;
	ret = avcodec_send_packet(in->dec, &in->st->attached_pic);
	if (ret == AVERROR(ENOMEM))
		return ret;
	avcodec_send_packet(in->dec, NULL);
	ret = avcodec_receive_frame(in->dec, out);
	if (ret == AVERROR(ENOMEM))
		return ret;
	if (ret < 0)
		return AVERROR(ENODATA);
	/* One picture, one time: every spot gets the same frame. */
	out->pts = out->best_effort_timestamp = in->start;
	*at = 0;
	return 0;
}

/*
 * The lowres level to decode at for seek mode `seek`: reduced only where
 * no frame will be predicted from a reduced one (keyframe mode, whose
 * frame is decoded alone, or a codec of keyframes only).
 */
static int lowres_for(const struct hop_thumb_input *in, int seek)
{
	return seek == HOP_THUMB_SEEK_KEYFRAME || in->intra_only ? in->lowres_ok
								 : 0;
}

/*
 * True when the frame the keyframe shortcut gave cannot be trusted to be
 * whole: a field of an interlaced frame may come in a packet of its own,
 * and a damaged keyframe is better decoded the usual way.
 */
static bool partial_key(const AVFrame *f)
{
	return f->interlaced_frame || (f->flags & AV_FRAME_FLAG_CORRUPT) ||
	       f->decode_error_flags;
}

int hop_thumb_grab(struct hop_thumb_input *in, double pos, int seek,
		   AVFrame *out, double *at, bool *clamped)
{
	double tb = av_q2d(in->st->time_base);
	double limit = in->duration > 0 ? in->duration + 1 : 1e9;
	bool reached = false, overshot = false, bytes = false, shortcut = true;
	bool from_key = true;
	int64_t target, ts, back = 0, pts;
	int ret, packets = 0;

	*clamped = false;
	av_frame_unref(out);
	if (in->cover)
		return grab_cover(in, out, at);
	/* Past the end, the answer is the last frame, not the last keyframe. */
	if (in->duration > 0 && pos >= in->duration)
		seek = HOP_THUMB_SEEK_ACCURATE;
	target = in->start + llround(fmin(pos, limit) / tb);
	ts = target;
	in->target = target;
	in->skip_nonref = seek == HOP_THUMB_SEEK_ACCURATE && in->nonref_exact;

	/*
	 * Demuxers without an index (MPEG-TS, some AVI) seek by bisection and
	 * can land after the keyframe that precedes target, or after the last
	 * one: then the first frame is past target, or packets come but no
	 * frame. Seek again 1, 4, 16... s earlier, then to the start, and
	 * last to byte 0 where the demuxer allows it.
	 *
	 * A file cut short after a whole index has no packet at all where the
	 * index says: go back to the last keyframe whose data is in the file
	 * (or 1, 4, 16... s back without an index) and decode to the end, so
	 * that the answer is the last frame that decodes, as past the end.
	 */
	for (;;) {
		int64_t next;
		bool late, gap;

		ret = hop_thumb_input_set_lowres(in, lowres_for(in, seek));
		if (ret < 0)
			return ret;
		in->one_key = shortcut && seek == HOP_THUMB_SEEK_KEYFRAME;
		in->from_key = from_key;
		ret = bytes ? rewind_bytes(in) : seek_to(in, ts);
		if (hop_thumb_input_expired(in))
			return AVERROR_EXIT;
		if (ret == AVERROR(ENOMEM))
			return ret;
		/* A demuxer that cannot seek there (a damaged index) has no
		 * data there, whatever errno it picked (often EPERM, a bare
		 * -1): the same verdict as reading nothing. */
		if (ret < 0)
			ret = AVERROR_EOF;
		else
			ret = decode_to(in, target, seek, out, &reached,
					&overshot);
		/* Counted over every attempt: a last rewind that reads nothing
		 * does not make undecodable packets a file that ends early. */
		packets += in->packets;
		if (hop_thumb_input_expired(in))
			return AVERROR_EXIT;
		if (ret < 0 && ret != AVERROR_EOF)
			return ret;
		/* The keyframe alone gave nothing usable: decode it the usual
		 * way, from the same place. */
		if (in->one_key_sent &&
		    (ret == AVERROR_EOF || partial_key(out))) {
			av_frame_unref(out);
			shortcut = false;
			continue;
		}
		/* No packet flagged a keyframe even from the first byte (or
		 * the start, where the file cannot seek by bytes): the demuxer
		 * does not flag them; decode what comes. */
		if (ret == AVERROR_EOF && from_key && !in->keyed &&
		    in->packets > 0 &&
		    (bytes || (ts <= in->start && (in->fmt->iformat->flags &
						   AVFMT_NO_BYTE_SEEK)))) {
			from_key = false;
			continue;
		}
		late = overshot || (ret == AVERROR_EOF && in->packets > 0);
		gap = ret == AVERROR_EOF && in->packets == 0;
		if ((!late && !gap) || bytes)
			break;
		if (ts <= in->start) {
			bytes = !(in->fmt->iformat->flags & AVFMT_NO_BYTE_SEEK);
			if (!bytes)
				break;
			continue;
		}
		if (gap) {
			seek = HOP_THUMB_SEEK_ACCURATE;
			in->skip_nonref = in->nonref_exact;
		}
		back = back ? back * 4 : llround(1 / tb);
		next = gap ? last_key_in_file(in, ts) : AV_NOPTS_VALUE;
		if (next == AV_NOPTS_VALUE)
			next = target - back < ts ? target - back : ts - 1;
		ts = next > in->start ? next : in->start;
	}
	in->one_key = false;
	in->from_key = false;
	if (ret == AVERROR_EOF)
		return packets ? AVERROR(ENODATA) : AVERROR_EOF;
	/* Where decoding stands, for hop_thumb_grab_next. In keyframe mode
	 * the frames after the keyframe were not looked at. */
	if (seek == HOP_THUMB_SEEK_ACCURATE && av_frame_ref(in->held, out) < 0)
		reset_reading(in);
	if (seek != HOP_THUMB_SEEK_ACCURATE)
		av_frame_unref(in->ahead);
	pts = out->best_effort_timestamp;
	*at = pts != AV_NOPTS_VALUE ? (pts - in->start) * tb : pos;
	if (*at < 0)
		*at = 0;
	/* The file ended before the position, and the last frame's time on
	 * screen (which includes the very end, "100%") does not cover it. */
	*clamped = !reached && pos > *at + in->frame_time + 1e-3;
	return 0;
}

/*
 * True when decoding on from the frame held is no more work than seeking
 * for target: the keyframe a seek would land on is not after that frame,
 * or the file ended after it. That needs an index of the whole file, as
 * MP4, Matroska with cues or AVI with idx1 have from the start. An index
 * the demuxer builds as it reads or bisects (MPEG-TS, Matroska without
 * cues) knows nothing past what was read: then decoding goes on only as
 * far as the longest keyframe interval seen so far (at least the time
 * since the last keyframe), which no seek could do better than.
 */
static bool forward_is_cheaper(const struct hop_thumb_input *in, int64_t target)
{
	int64_t at = in->held->best_effort_timestamp, span = in->gop;
	int i;

	if (!in->held->buf[0] || at == AV_NOPTS_VALUE || at > target)
		return false;
	/* The file ended after the frame held: it is the last one. */
	if (in->draining && !in->ahead->buf[0])
		return true;
	i = av_index_search_timestamp(in->st, target, AVSEEK_FLAG_BACKWARD);
	if (i >= 0 &&
	    avformat_index_get_entries_count(in->st) == in->index_at_open)
		return avformat_index_get_entry(in->st, i)->timestamp <= at;
	if (in->last_key != AV_NOPTS_VALUE && at - in->last_key > span)
		span = at - in->last_key;
	return target - at <= span;
}

int hop_thumb_grab_next(struct hop_thumb_input *in, double pos, int seek,
			AVFrame *out, double *at, bool *clamped)
{
	double tb = av_q2d(in->st->time_base);
	int64_t target, pts;
	bool reached = false;
	int ret;

	if (in->duration > 0 && pos >= in->duration)
		seek = HOP_THUMB_SEEK_ACCURATE;
	target = in->start + llround(pos / tb);
	if (in->cover || seek != HOP_THUMB_SEEK_ACCURATE ||
	    !forward_is_cheaper(in, target))
		return hop_thumb_grab(in, pos, seek, out, at, clamped);

	in->target = target;
	for (;;) {
		pts = in->held->best_effort_timestamp;
		if (pts == AV_NOPTS_VALUE || pts >= target) {
			reached = true;
			break;
		}
		if (!in->ahead->buf[0]) {
			ret = next_frame(in, in->ahead);
			if (ret == AVERROR_EOF)
				break;
			if (ret < 0)
				return ret;
		}
		pts = in->ahead->best_effort_timestamp;
		if (pts != AV_NOPTS_VALUE && pts > target) {
			reached = true;
			break;
		}
		av_frame_unref(in->held);
		av_frame_move_ref(in->held, in->ahead);
	}
	av_frame_unref(out);
	ret = av_frame_ref(out, in->held);
	if (ret < 0)
		return ret;
	pts = out->best_effort_timestamp;
	*at = pts != AV_NOPTS_VALUE ? (pts - in->start) * tb : pos;
	if (*at < 0)
		*at = 0;
	*clamped = !reached && pos > *at + in->frame_time + 1e-3;
	return 0;
}

/*
 * The timestamp of the index's keyframe at or before pos, so that spots
 * sharing a keyframe are decoded once; AV_NOPTS_VALUE without an index.
 */
static int64_t indexed_keyframe(const struct hop_thumb_input *in, double pos)
{
	int64_t ts = in->start + llround(pos / av_q2d(in->st->time_base));
	int i = av_index_search_timestamp(in->st, ts, AVSEEK_FLAG_BACKWARD);
	const AVIndexEntry *e =
	    i >= 0 ? avformat_index_get_entry(in->st, i) : NULL;

	return e ? e->timestamp : AV_NOPTS_VALUE;
}

static bool seen_before(int64_t *seen, int *nseen, int64_t ts)
{
	if (ts == AV_NOPTS_VALUE)
		return false;
	for (int j = 0; j < *nseen; j++)
		if (seen[j] == ts)
			return true;
	seen[(*nseen)++] = ts;
	return false;
}

int hop_thumb_grab_auto(struct hop_thumb_input *in, AVFrame *out, double *at)
{
	/* Fractions of the duration, or seconds when it is unknown. */
	static const double spots[] = {0.15, 0.3, 0.45, 0.6, 0.75};
	static const double secs[] = {0, 1, 3, 6, 10};
	int64_t keys[5], frames[5];
	int nkeys = 0, nframes = 0, ret = AVERROR(ENODATA), last_err = ret;
	double best = -1;
	AVFrame *cand = av_frame_alloc();

	if (!cand)
		return AVERROR(ENOMEM);
	av_frame_unref(out);
	if (in->cover) {
		av_frame_free(&cand);
		return grab_cover(in, out, at);
	}
	for (int i = 0; i < 5; i++) {
		double pos =
		    in->duration > 0 ? in->duration * spots[i] : secs[i];
		double cat, score;
		bool clamped;

		/* Short clips map several spots to one keyframe. */
		if (seen_before(keys, &nkeys, indexed_keyframe(in, pos)))
			continue;
		ret = hop_thumb_grab(in, pos, HOP_THUMB_SEEK_KEYFRAME, cand,
				     &cat, &clamped);
		if (ret == AVERROR_EXIT || ret == AVERROR(ENOMEM))
			goto out;
		if (ret < 0) {
			last_err = ret;
			continue;
		}
		if (seen_before(frames, &nframes, cand->best_effort_timestamp))
			continue;
		score = fmax(hop_thumb_score(cand), 0);
		if (score > best) {
			best = score;
			*at = cat;
			av_frame_unref(out);
			av_frame_move_ref(out, cand);
		}
		av_frame_unref(cand);
	}
	ret = best >= 0 ? 0 : last_err;
out:
	av_frame_free(&cand);
	return ret;
}
