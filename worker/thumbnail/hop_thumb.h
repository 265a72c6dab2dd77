/*
 * hop_thumb.h - the thumbnail worker's modules and the types they share.
 *
 * The worker is one persistent process (stream mode of worker/PROTOCOL.md):
 * hop_thumb_main reads envelopes, hop_thumb_job turns one payload into files
 * and a result, and the job uses the modules below, each in its own file:
 *
 *   hop_thumb_opts    option table: command line defaults, payload overrides
 *   hop_thumb_input   open and probe a file, pick the video stream, decoder
 *   hop_thumb_grab    seek and decode the frame at a position; "auto"
 *   hop_thumb_render  scale, deinterlace and rotate a frame into RGB24
 *   hop_thumb_image   encode RGB24 to JPEG/PNG/WebP, write temp + rename
 *   hop_thumb_sheet   sprite sheet layout and its WebVTT index
 *
 * Functions named for an action return 0 or a negative AVERROR (which is
 * -errno for errno values). Those that can fail for a reason a person must
 * read also fill a struct hop_thumb_err with it.
 */
#ifndef HOP_THUMB_H
#define HOP_THUMB_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>

#define HOP_THUMB_MAX_COUNT 1000
/* WebP's limit on a side. */
#define HOP_THUMB_MAX_SIDE 16383
/* The most pixels one image (thumbnail or sheet) may have: 8K UHD, about
 * 100 MB as RGB24. */
#define HOP_THUMB_MAX_PIXELS (7680LL * 4320)

/* Packet timestamps remembered for skipping frames: past any decoder's
 * reordering depth (16 for H.264). */
#define HOP_THUMB_SEEN 32

/* Bytes allocated past every RGB24 buffer: swscale's SIMD input readers
 * load 16 bytes at a time and may run past the last pixel. */
#define HOP_THUMB_PAD 64

enum hop_thumb_format {
	HOP_THUMB_JPEG,
	HOP_THUMB_PNG,
	HOP_THUMB_WEBP,
};

enum hop_thumb_seek {
	HOP_THUMB_SEEK_ACCURATE,
	HOP_THUMB_SEEK_KEYFRAME,
};

enum hop_thumb_pos_kind {
	HOP_THUMB_POS_AUTO,
	HOP_THUMB_POS_SECONDS,
	HOP_THUMB_POS_PERCENT,
};

struct hop_thumb_pos {
	enum hop_thumb_pos_kind kind;
	double value; /* seconds, or percent of the duration */
};

/*
 * The options of one item. The command line fills the defaults; a payload
 * object overrides them field by field (width and height as one pair).
 * `out` is owned by the struct: hop_thumb_opts_copy duplicates it and
 * hop_thumb_opts_free releases it.
 */
struct hop_thumb_opts {
	char *out;
	int width;  /* 0: from height or the source */
	int height; /* 0: from width or the source */
	int format; /* enum hop_thumb_format */
	int quality;
	struct hop_thumb_pos position;
	int seek; /* enum hop_thumb_seek */
	int count;
	bool sheet;
	int columns; /* sprite sheet columns, 0: about square */
	int timeout; /* seconds one item may take */
};

/* An error for a person: "<file>: <reason>", and whether a retry can help. */
struct hop_thumb_err {
	char msg[PATH_MAX + 1024]; /* a path and a reason */
	bool retry;
};

/* Sets e->msg from a printf format, keeping the text valid UTF-8. */
void hop_thumb_err_set(struct hop_thumb_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- hop_thumb_opts.c ---- */

/* Fills o with the built-in defaults. */
void hop_thumb_opts_init(struct hop_thumb_opts *o);

/*
 * Parses argv into o (which holds the defaults). Returns 0, 1 when --help
 * was printed, or -EINVAL with a message on stderr.
 */
int hop_thumb_opts_parse_argv(struct hop_thumb_opts *o, int argc, char **argv);

/*
 * Overrides o with the keys of a payload object (every key but "path" and
 * "name", which name the file rather than set an option).
 * Unknown keys are reported on stderr and ignored, so that payloads can grow.
 * Returns 0 or -EINVAL with the reason in e.
 */
int hop_thumb_opts_apply_json(struct hop_thumb_opts *o, json_t *obj,
			      struct hop_thumb_err *e);

/* Deep copy (dst is overwritten, not freed). Returns 0 or -ENOMEM. */
int hop_thumb_opts_copy(struct hop_thumb_opts *dst,
			const struct hop_thumb_opts *src);
void hop_thumb_opts_free(struct hop_thumb_opts *o);

/* Parses "auto", "12.5", "01:02:03.5" or "10%". Returns 0 or -EINVAL. */
int hop_thumb_pos_parse(struct hop_thumb_pos *p, const char *s);

/* ---- hop_thumb_input.c ---- */

/*
 * An open video file: its demuxer, the chosen video stream and its decoder.
 * Everything in it is owned by it and released by hop_thumb_input_close.
 */
struct hop_thumb_input {
	const char *path; /* borrowed */
	AVFormatContext *fmt;
	AVCodecContext *dec;
	AVStream *st; /* owned by fmt */
	int index;
	AVPacket *pkt;
	AVFrame *frame;	   /* scratch frame for decoding */
	int64_t deadline;  /* av_gettime_relative() limit, interrupts I/O */
	int64_t start;	   /* first timestamp, in st->time_base */
	double duration;   /* seconds; < 0 when unknown */
	double frame_time; /* seconds per frame, an estimate */
	int rotation;	   /* clockwise display rotation: 0, 90, 180, 270 */
	bool draining;	   /* the decoder was sent its end of stream */
	bool consumed;	   /* packets were read since the open */
	int packets;	   /* of the stream, read since the last seek */
	int decoded;	   /* frames the decoder gave, since the open */
	int index_at_open; /* entries in the stream's index after probing */
	bool read_error;   /* a read failed before the end of the file */
	bool cover;	   /* st is cover art: the file has no other video */
	/* Where decoding stands between the spots of one item: the frame
	 * last handed out and the one decoded past it (either may be empty),
	 * the spot being decoded for, the timestamps of the packets read
	 * since the last seek, which say which frames cannot be shown, and
	 * the keyframe intervals read, for files without a whole index. */
	AVFrame *held, *ahead;
	int64_t target;
	bool skip_nonref;
	unsigned nseen;
	int64_t seen[HOP_THUMB_SEEN];
	int64_t last_key; /* the last keyframe packet read since the seek */
	int64_t gop;	  /* the longest keyframe interval read, or 0 */
	/* Keyframe-only picking: the keyframe packet a seek lands on is
	 * decoded alone and drained out (one_key; one_key_sent once done),
	 * and the decoder may run at a reduced resolution: lowres is the
	 * level it was opened with, lowres_ok the one allowed for the
	 * thumbnail size (0: full size). */
	bool one_key, one_key_sent;
	/* After a seek, packets before the first keyframe packet are not
	 * decoded (from_key): a decoder started elsewhere makes up what it
	 * lacks (HEVC paints it grey). keyed once one was sent. */
	bool from_key, keyed;
	int lowres, lowres_ok;
	bool intra_only; /* every frame of the codec is a keyframe */
	/* The decoder's skip_frame=AVDISCARD_NONREF drops only frames that
	 * no other frame refers to. */
	bool nonref_exact;
};

/*
 * Opens path, rejects what is not a video (empty, not media, a still image,
 * audio only without cover art, no decoder) and opens the decoder of the
 * best video stream, or of the cover art when that is all the video there
 * is (in->cover).
 * `deadline` bounds every read. On failure in is left empty and e says why.
 */
int hop_thumb_input_open(struct hop_thumb_input *in, const char *path,
			 int64_t deadline, struct hop_thumb_err *e);
void hop_thumb_input_close(struct hop_thumb_input *in);

/*
 * True when the file is cut short: a read failed before its end, or its
 * index points past its last byte.
 */
bool hop_thumb_input_cut(const struct hop_thumb_input *in);

/*
 * Allows decoding at a reduced resolution (lowres, 1/2, 1/4 or 1/8 a
 * side, where the codec has it: MPEG-1/2/4, H.263, MJPEG...) when the
 * thumbnail asked for (req_w x req_h, 0 = unset, as hop_thumb_fit takes
 * them) is at most half the reduced frame a side. It is used only where no
 * frame is predicted from a reduced one: keyframe-only picking, or a
 * codec whose every frame is a keyframe; accurate seeking in other codecs
 * decodes at full size, so its frames stay exact.
 */
void hop_thumb_input_allow_lowres(struct hop_thumb_input *in, int req_w,
				  int req_h);

/*
 * Reopens the decoder at lowres level `level` when it is not at it
 * already. Returns 0 or a negative AVERROR.
 */
int hop_thumb_input_set_lowres(struct hop_thumb_input *in, int level);

/* The stored size of the source's frames at full resolution. */
void hop_thumb_input_full_size(const struct hop_thumb_input *in,
			       const AVFrame *f, int *w, int *h);

/* True once the item's deadline has passed. */
bool hop_thumb_input_expired(const struct hop_thumb_input *in);

/* ---- hop_thumb_grab.c ---- */

/*
 * Decodes into out the frame shown at `pos` seconds from the start (for
 * cover art, the picture, whatever pos is): with
 * HOP_THUMB_SEEK_KEYFRAME the keyframe at or before it, with ACCURATE the
 * last frame whose timestamp is not after it. A position at or past the
 * end gives the last frame, in both modes; *clamped is set when it was past
 * the last frame's time on screen. *at is the chosen frame's time.
 * Returns 0, AVERROR(ENODATA) when packets came but no frame decoded,
 * AVERROR_EOF when the file had no packet there (it ends early),
 * AVERROR_EXIT on timeout, or another AVERROR from the demuxer.
 */
int hop_thumb_grab(struct hop_thumb_input *in, double pos, int seek,
		   AVFrame *out, double *at, bool *clamped);

/*
 * As hop_thumb_grab, for the spots of one item in ascending order: when
 * the keyframe before pos is not after the frame the last call gave (or,
 * without an index of the whole file, pos is within the longest keyframe
 * interval read), it decodes on from there instead of seeking back, so
 * that spots denser than the keyframes cost one pass. The frames are the
 * same as hop_thumb_grab's.
 */
int hop_thumb_grab_next(struct hop_thumb_input *in, double pos, int seek,
			AVFrame *out, double *at, bool *clamped);

/*
 * Picks a representative frame, not a black or flat one, among a few
 * keyframes spread over the file. Same returns as hop_thumb_grab.
 */
int hop_thumb_grab_auto(struct hop_thumb_input *in, AVFrame *out, double *at);

/* ---- hop_thumb_render.c ---- */

/*
 * Computes the output size of a w x h source with sample aspect sar shown
 * rotated by `rotation`: req_w and/or req_h (0 = unset) with the display
 * aspect kept; both set fits inside that box. When that size exceeds
 * HOP_THUMB_MAX_SIDE on a side or HOP_THUMB_MAX_PIXELS in all, both sides
 * shrink by one factor, so the aspect is kept; a side under one pixel is
 * made one. Returns true when either limit changed the size.
 */
bool hop_thumb_fit(int w, int h, AVRational sar, int rotation, int req_w,
		   int req_h, int *out_w, int *out_h);

/*
 * Draws frame f, turned by `rotation` degrees clockwise, into the w x h
 * RGB24 rectangle at dst (rows `stride` bytes apart). Interlaced frames are
 * reduced to their first field. Returns 0 or a negative AVERROR.
 */
int hop_thumb_render(const AVFrame *f, int rotation, uint8_t *dst, int stride,
		     int w, int h);

/*
 * Scores how representative f is: higher is better; a black, white or flat
 * picture scores below any other. Returns a score >= 0, or < 0 on error.
 */
double hop_thumb_score(const AVFrame *f);

/* ---- hop_thumb_image.c ---- */

/* File name extension of a format, without the dot. */
const char *hop_thumb_format_ext(int format);

/* Parses "jpeg"/"jpg", "png" or "webp". Returns the format or -EINVAL. */
int hop_thumb_format_parse(const char *s);

/* True when this FFmpeg build has the encoder the format needs. */
bool hop_thumb_format_available(int format);

/*
 * Encodes the w x h RGB24 image at rgb (rows `stride` bytes apart) and
 * writes it to path through a temp file and a rename. quality is 1..100
 * (ignored for PNG). Returns 0 or a negative AVERROR with e filled.
 */
int hop_thumb_image_write(const uint8_t *rgb, int stride, int w, int h,
			  int format, int quality, const char *path,
			  struct hop_thumb_err *e);

/*
 * Writes len bytes to path through "<dir>/.<name>.tmp-<pid>" and a rename,
 * so that a reader never sees half a file. Returns 0 or -errno.
 */
int hop_thumb_file_write(const char *path, const void *data, size_t len);

/* Creates dir and its parents (mkdir -p). Returns 0 or -errno. */
int hop_thumb_mkdirs(const char *dir);

/* ---- hop_thumb_sheet.c ---- */

struct hop_thumb_sheet {
	int count, columns, rows;
	int tile_w, tile_h;
	int width, height; /* of the whole sheet */
	uint8_t *rgb;	   /* width * height * 3, owned */
};

/*
 * Lays out count tiles of tile_w x tile_h in `columns` columns (0: about
 * square) and allocates the sheet, black. Returns 0, -EINVAL when the sheet
 * would exceed HOP_THUMB_MAX_SIDE or HOP_THUMB_MAX_PIXELS, or -ENOMEM.
 */
int hop_thumb_sheet_init(struct hop_thumb_sheet *s, int count, int columns,
			 int tile_w, int tile_h);
void hop_thumb_sheet_free(struct hop_thumb_sheet *s);

/* Where tile i starts in s->rgb. */
uint8_t *hop_thumb_sheet_tile(const struct hop_thumb_sheet *s, int i);

/*
 * Moves the first `count` tiles into a sheet laid out for that many, with
 * the same `columns` request. Returns 0 or -ENOMEM (s unchanged).
 */
int hop_thumb_sheet_shrink(struct hop_thumb_sheet *s, int count, int columns);

/*
 * Writes the WebVTT index of the sheet to path: tile i covers
 * [cue_ms[i], cue_ms[i+1]) milliseconds (s->count + 1 strictly increasing
 * values, so consecutive cues share their boundary and none is empty), and
 * each cue's text is "<image_name>#xywh=x,y,w,h". Returns 0 or -errno.
 */
int hop_thumb_vtt_write(const struct hop_thumb_sheet *s, const int64_t *cue_ms,
			const char *image_name, const char *path);

/* ---- hop_thumb_job.c ---- */

/* Called between thumbnails with the fraction done, for progress lines. */
typedef void (*hop_thumb_progress_fn)(void *ctx, double done);

/*
 * Makes the thumbnails of the video at path with options o. Output files
 * are named after the basename of `name` (the file's original name, e.g.
 * from the dir source's object payload) or, when it is NULL, of path.
 * On success *result is a new JSON object owned by the caller; on failure
 * e says why ("<path>: <reason>") and whether to retry. Returns 0 or a
 * negative AVERROR.
 */
int hop_thumb_job_run(const struct hop_thumb_opts *o, const char *path,
		      const char *name, hop_thumb_progress_fn progress,
		      void *ctx, json_t **result, struct hop_thumb_err *e);

#endif
