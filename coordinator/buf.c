/* buf.c - growable buffers and the line reader. */
#include "buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void hop_buf_free(struct hop_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->start = b->end = b->cap = 0;
}

int hop_buf_reserve(struct hop_buf *b, size_t n)
{
	if (b->start == b->end)
		b->start = b->end = 0;
	if (b->cap - b->end >= n)
		return 0;
	/* Slide the live bytes down before growing when that frees enough. */
	if (b->start > 0 && b->cap - (b->end - b->start) >= n &&
	    b->start >= b->cap / 2) {
		memmove(b->data, b->data + b->start, b->end - b->start);
		b->end -= b->start;
		b->start = 0;
		return 0;
	}
	size_t cap = b->cap ? b->cap : 4096;
	while (cap - b->end < n)
		cap *= 2;
	char *p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int hop_buf_append(struct hop_buf *b, const void *p, size_t n)
{
	int rc = hop_buf_reserve(b, n);
	if (rc)
		return rc;
	if (n) /* p may be NULL for nothing: an empty ${VAR:-} */
		memcpy(b->data + b->end, p, n);
	b->end += n;
	return 0;
}

int hop_buf_appendf(struct hop_buf *b, const char *fmt, ...)
{
	va_list ap;
	char small[256];

	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n < sizeof(small))
		return hop_buf_append(b, small, (size_t)n);
	int rc = hop_buf_reserve(b, (size_t)n + 1);
	if (rc)
		return rc;
	va_start(ap, fmt);
	vsnprintf(b->data + b->end, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->end += (size_t)n;
	return 0;
}

int hop_buf_append_int(struct hop_buf *b, long long v)
{
	char tmp[24], *p = tmp + sizeof(tmp);
	unsigned long long u =
	    v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	return hop_buf_append(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

int hop_buf_append_json_str(struct hop_buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	int rc = hop_buf_reserve(b, strlen(s) + 2);
	if (rc)
		return rc;
	b->data[b->end++] = '"';
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		const char *esc = NULL;
		char u[7];
		switch (*p) {
		case '"':
			esc = "\\\"";
			break;
		case '\\':
			esc = "\\\\";
			break;
		case '\n':
			esc = "\\n";
			break;
		case '\r':
			esc = "\\r";
			break;
		case '\t':
			esc = "\\t";
			break;
		default:
			if (*p < 0x20) {
				memcpy(u, "\\u00", 4);
				u[4] = hex[*p >> 4];
				u[5] = hex[*p & 15];
				u[6] = 0;
				esc = u;
			}
		}
		if (esc)
			rc = hop_buf_append(b, esc, strlen(esc));
		else
			rc = hop_buf_append(b, p, 1);
		if (rc)
			return rc;
	}
	return hop_buf_append(b, "\"", 1);
}

void hop_buf_consume(struct hop_buf *b, size_t n)
{
	b->start += n;
	if (b->start >= b->end)
		b->start = b->end = 0;
}

int hop_buf_flush_fd(struct hop_buf *b, int fd)
{
	while (hop_buf_len(b) > 0) {
		ssize_t n = write(fd, hop_buf_head(b), hop_buf_len(b));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? -EAGAIN : -errno;
		}
		hop_buf_consume(b, (size_t)n);
	}
	return 0;
}

void hop_lines_init(struct hop_lines *r, size_t max)
{
	memset(r, 0, sizeof(*r));
	r->max = max;
}

void hop_lines_free(struct hop_lines *r)
{
	hop_buf_free(&r->buf);
}

/* Looks for a complete line in the buffer without reading. */
static enum hop_line_status lines_take(struct hop_lines *r, char **line,
				       size_t *len, bool *found)
{
	struct hop_buf *b = &r->buf;
	char *head = hop_buf_head(b);
	size_t have = hop_buf_len(b);
	char *nl = have > r->scanned
		       ? memchr(head + r->scanned, '\n', have - r->scanned)
		       : NULL;

	*found = false;
	if (!nl) {
		r->scanned = have;
		if (have > r->max) {
			/* Over the limit with no end in sight: drop what we
			 * hold. */
			hop_buf_reset(b);
			r->scanned = 0;
			if (!r->skipping) {
				r->skipping = true;
				*found = true;
				return HOP_LINE_TOOLONG;
			}
		}
		return HOP_LINE_AGAIN;
	}
	size_t n = (size_t)(nl - head);
	r->scanned = 0;
	if (r->skipping || n > r->max) {
		bool was_skipping = r->skipping;
		r->skipping = false;
		hop_buf_consume(b, n + 1);
		if (!was_skipping) {
			*found = true;
			return HOP_LINE_TOOLONG;
		}
		return lines_take(r, line, len, found);
	}
	*nl = '\0';
	*line = head;
	*len = n;
	if (n > 0 && head[n - 1] == '\r')
		head[--*len] = '\0';
	/* The line stays readable until the next call consumes it. */
	b->start += n + 1;
	*found = true;
	return HOP_LINE_OK;
}

enum hop_line_status hop_lines_next(struct hop_lines *r, int fd, char **line,
				    size_t *len)
{
	struct hop_buf *b = &r->buf;
	bool found;

	if (b->start == b->end)
		b->start = b->end = 0;
	for (;;) {
		enum hop_line_status st = lines_take(r, line, len, &found);
		if (found)
			return st;
		if (r->eof) {
			if (hop_buf_len(b) > 0 && !r->skipping) {
				/* A final line with no newline. */
				if (hop_buf_reserve(b, 1))
					return HOP_LINE_ERROR;
				b->data[b->end] = '\0';
				*line = hop_buf_head(b);
				*len = hop_buf_len(b);
				b->start = b->end;
				r->scanned = 0;
				return HOP_LINE_OK;
			}
			return HOP_LINE_EOF;
		}
		if (r->edge && r->drained)
			return HOP_LINE_AGAIN;
		if (hop_buf_reserve(b, 65536))
			return HOP_LINE_ERROR;
		size_t room = b->cap - b->end - 1;
		ssize_t n = read(fd, b->data + b->end, room);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return HOP_LINE_AGAIN;
			return HOP_LINE_ERROR;
		}
		if (n == 0)
			r->eof = true;
		r->drained = (size_t)n < room;
		b->end += (size_t)n;
		r->nread += (uint64_t)n;
	}
}
