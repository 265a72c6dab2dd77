/* buf.h - growable byte buffers and a line reader for pipes.
 *
 * A hop_buf holds bytes between a read offset and a write offset; appending
 * grows it, consuming moves the read offset, and the space is reclaimed when
 * the buffer empties or compacts. A hop_lines reads newline-terminated lines
 * from a non-blocking fd with a limit on the length of one line: a longer
 * line is discarded as it streams past, never held whole.
 */
#ifndef HOP_BUF_H
#define HOP_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct hop_buf {
	char *data;
	size_t start; /* first unconsumed byte */
	size_t end;   /* one past the last byte */
	size_t cap;
};

void hop_buf_free(struct hop_buf *b);
/* Appends n bytes; returns 0 or -ENOMEM. */
int hop_buf_append(struct hop_buf *b, const void *p, size_t n);
int hop_buf_appendf(struct hop_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends the decimal digits of v. */
int hop_buf_append_int(struct hop_buf *b, long long v);
/* Appends s as a JSON string literal, quotes included. */
int hop_buf_append_json_str(struct hop_buf *b, const char *s);
static inline size_t hop_buf_len(const struct hop_buf *b)
{
	return b->end - b->start;
}
static inline char *hop_buf_head(const struct hop_buf *b)
{
	return b->data + b->start;
}
void hop_buf_consume(struct hop_buf *b, size_t n);
static inline void hop_buf_reset(struct hop_buf *b)
{
	b->start = b->end = 0;
}
/* Ensures room for n more bytes at the end; returns 0 or -ENOMEM. */
int hop_buf_reserve(struct hop_buf *b, size_t n);

/* Writes as much of b to fd as the fd takes without blocking. Returns 0 when
 * b is empty afterwards, -EAGAIN when bytes remain, or another -errno. */
int hop_buf_flush_fd(struct hop_buf *b, int fd);

enum hop_line_status {
	HOP_LINE_OK,	  /* *line holds one line without its newline */
	HOP_LINE_AGAIN,	  /* nothing complete yet: wait for the fd */
	HOP_LINE_TOOLONG, /* a line over the limit was dropped */
	HOP_LINE_EOF,	/* end of input; a final unterminated line came first */
	HOP_LINE_ERROR, /* read failed; errno is set */
};

struct hop_lines {
	struct hop_buf buf;
	size_t max;	/* longest line accepted, newline excluded */
	size_t scanned; /* bytes of buf already known to hold no newline */
	bool skipping;	/* dropping the rest of an over-long line */
	bool eof;
	/* For an fd watched by the loop: after a short read, wait for the
	 * loop to say it is readable (the owner clears drained) instead of
	 * spending a read on EAGAIN. */
	bool edge;
	bool drained;
	uint64_t nread; /* bytes read from the fd in all */
};

void hop_lines_init(struct hop_lines *r, size_t max);
void hop_lines_free(struct hop_lines *r);

/* Where in the input line (a line hop_lines_next just returned) starts:
 * its offset from the first byte read. */
static inline uint64_t hop_lines_offset(const struct hop_lines *r,
					const char *line)
{
	return r->nread - (uint64_t)(r->buf.end - (size_t)(line - r->buf.data));
}

/* Returns the next line from fd, reading when the buffer holds no complete
 * line. *line points into the reader's buffer and stays valid until the next
 * call. A last line without a newline is returned before HOP_LINE_EOF. */
enum hop_line_status hop_lines_next(struct hop_lines *r, int fd, char **line,
				    size_t *len);

#endif
