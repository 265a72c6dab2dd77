/* spool.c - the outputs of one attempt, in memory and then in a file.
 *
 * Each output is one record: a header of three 32-bit lengths (payload,
 * port + 1, key + 1; 0 for no port or key), then the bytes. Records go to
 * one memory block while it stays within the spool's budget; the first
 * that does not fit, and every one after it, goes to an unlinked file in
 * the spool's folder through a small write buffer, so the order is kept:
 * the memory block is read first, then the file. The block, the write
 * buffer and the read buffer together never exceed mem_limit.
 */
#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The file's write and read buffers: an eighth of the budget each, at most
 * this, so that the memory block keeps three quarters of it. */
#define IO_MAX (64 * 1024)
#define IO_MIN 64

struct rec_head {
	uint32_t payload_len;
	uint32_t port_len; /* + 1; 0: none */
	uint32_t key_len;  /* + 1; 0: none */
};

struct hop_spool {
	char *dir;
	size_t limit;
	size_t io_size;

	char *mem; /* records kept in memory */
	size_t mem_len, mem_cap, mem_pos;

	int fd; /* -1 until the first record that does not fit */
	char *wbuf;
	size_t wlen;
	off_t file_end; /* bytes written to the file (wbuf not included) */
	char *rbuf;
	size_t rlen, rpos;
	off_t file_pos; /* the file's next byte for rbuf */

	uint64_t count, taken;
	int err; /* a disk error sticks: the outputs are lost */
};

struct hop_spool *hop_spool_new(const char *dir, size_t mem_limit)
{
	struct hop_spool *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->dir = strdup(dir ? dir : "/tmp");
	if (!s->dir) {
		free(s);
		return NULL;
	}
	s->limit = mem_limit;
	s->io_size = mem_limit / 8 < IO_MAX ? mem_limit / 8 : IO_MAX;
	if (s->io_size < IO_MIN)
		s->io_size = IO_MIN;
	s->fd = -1;
	return s;
}

static size_t rec_size(const struct hop_emit *e)
{
	return sizeof(struct rec_head) + e->payload_len +
	       (e->port ? strlen(e->port) : 0) + (e->key ? strlen(e->key) : 0);
}

static void rec_write(char *p, const struct hop_emit *e)
{
	struct rec_head h = {
	    .payload_len = (uint32_t)e->payload_len,
	    .port_len = e->port ? (uint32_t)strlen(e->port) + 1 : 0,
	    .key_len = e->key ? (uint32_t)strlen(e->key) + 1 : 0,
	};
	memcpy(p, &h, sizeof(h));
	p += sizeof(h);
	memcpy(p, e->payload, e->payload_len);
	p += e->payload_len;
	if (h.port_len)
		memcpy(p, e->port, h.port_len - 1);
	p += h.port_len ? h.port_len - 1 : 0;
	if (h.key_len)
		memcpy(p, e->key, h.key_len - 1);
}

/* What the memory block may grow to: the budget less the file's buffers,
 * which it may come to need. */
static size_t mem_budget(const struct hop_spool *s)
{
	return s->limit > 2 * s->io_size ? s->limit - 2 * s->io_size : 0;
}

/* Keeps the record in the memory block when it fits the budget. Returns
 * 1 when kept, 0 when it does not fit, or -ENOMEM. */
static int add_mem(struct hop_spool *s, const struct hop_emit *e, size_t n)
{
	if (s->fd >= 0 || s->mem_len + n > mem_budget(s))
		return 0;
	if (s->mem_len + n > s->mem_cap) {
		size_t cap = s->mem_cap ? s->mem_cap : 256;
		while (cap < s->mem_len + n)
			cap *= 2;
		if (cap > mem_budget(s))
			cap = mem_budget(s);
		char *p = realloc(s->mem, cap);
		if (!p)
			return -ENOMEM;
		s->mem = p;
		s->mem_cap = cap;
	}
	rec_write(s->mem + s->mem_len, e);
	s->mem_len += n;
	return 1;
}

/* Opens the spool's file: unlinked from the start where the file system
 * allows it, else made and unlinked at once. */
static int open_file(struct hop_spool *s)
{
	s->fd = open(s->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (s->fd < 0) {
		char path[PATH_MAX];
		if (snprintf(path, sizeof(path), "%s/spool.XXXXXX", s->dir) >=
		    (int)sizeof(path))
			return -ENAMETOOLONG;
		s->fd = mkostemp(path, O_CLOEXEC);
		if (s->fd < 0)
			return -errno;
		unlink(path);
	}
	s->wbuf = malloc(s->io_size);
	return s->wbuf ? 0 : -ENOMEM;
}

static int write_all(struct hop_spool *s, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = pwrite(s->fd, p, n, s->file_end);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
		s->file_end += w;
	}
	return 0;
}

static int flush(struct hop_spool *s)
{
	int rc = s->wlen ? write_all(s, s->wbuf, s->wlen) : 0;
	s->wlen = 0;
	return rc;
}

/* Appends the record to the file, through the write buffer when it fits
 * there, else straight after what the buffer held. */
static int add_file(struct hop_spool *s, const struct hop_emit *e, size_t n)
{
	int rc;

	if (s->fd < 0 && (rc = open_file(s)) != 0)
		return rc;
	if (s->wlen + n > s->io_size && (rc = flush(s)) != 0)
		return rc;
	if (n <= s->io_size) {
		rec_write(s->wbuf + s->wlen, e);
		s->wlen += n;
		return 0;
	}
	char *p = malloc(n); /* the caller's record's size, briefly */
	if (!p)
		return -ENOMEM;
	rec_write(p, e);
	rc = write_all(s, p, n);
	free(p);
	return rc;
}

int hop_spool_add(struct hop_spool *s, const struct hop_emit *e)
{
	if (s->err)
		return s->err;
	if (e->payload_len > UINT32_MAX - 1 ||
	    (e->port && strlen(e->port) >= UINT32_MAX) ||
	    (e->key && strlen(e->key) >= UINT32_MAX))
		return -EFBIG;
	size_t n = rec_size(e);
	int rc = add_mem(s, e, n);
	if (rc == 0)
		rc = add_file(s, e, n);
	else if (rc == 1)
		rc = 0;
	if (rc)
		s->err = rc;
	else
		s->count++;
	return rc;
}

uint64_t hop_spool_count(const struct hop_spool *s)
{
	return s->count;
}

uint64_t hop_spool_left(const struct hop_spool *s)
{
	return s->count - s->taken;
}

size_t hop_spool_mem(const struct hop_spool *s)
{
	return s->mem_cap + (s->wbuf ? s->io_size : 0) +
	       (s->rbuf ? s->io_size : 0);
}

bool hop_spool_spilled(const struct hop_spool *s)
{
	return s->fd >= 0;
}

/* Copies n bytes of the file's records into p, through the read buffer.
 * Returns 0, or -errno (-EIO for a file shorter than its records). */
static int file_read(struct hop_spool *s, char *p, size_t n)
{
	int rc;

	if (s->wlen && (rc = flush(s)) != 0)
		return rc;
	if (!s->rbuf && !(s->rbuf = malloc(s->io_size)))
		return -ENOMEM;
	while (n > 0) {
		if (s->rpos == s->rlen) {
			ssize_t r =
			    pread(s->fd, s->rbuf, s->io_size, s->file_pos);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				return -errno;
			if (r == 0)
				return -EIO;
			s->rlen = (size_t)r;
			s->rpos = 0;
			s->file_pos += r;
		}
		size_t k = s->rlen - s->rpos;
		if (k > n)
			k = n;
		memcpy(p, s->rbuf + s->rpos, k);
		s->rpos += k;
		p += k;
		n -= k;
	}
	return 0;
}

/* Reads n bytes of the next record, from memory or the file. */
static int take(struct hop_spool *s, char *p, size_t n, bool from_mem)
{
	if (!from_mem)
		return file_read(s, p, n);
	memcpy(p, s->mem + s->mem_pos, n);
	s->mem_pos += n;
	return 0;
}

/* Reads a string of len bytes (len from the header, + 1; 0: none) into a
 * new allocation at *out. */
static int take_str(struct hop_spool *s, uint32_t len, bool from_mem,
		    char **out)
{
	*out = NULL;
	if (!len)
		return 0;
	if (!(*out = malloc(len)))
		return -ENOMEM;
	(*out)[len - 1] = '\0';
	return take(s, *out, len - 1, from_mem);
}

int hop_spool_next(struct hop_spool *s, struct hop_emit *e)
{
	struct rec_head h;
	int rc;

	memset(e, 0, sizeof(*e));
	if (s->err)
		return s->err;
	if (s->taken == s->count)
		return 0;
	bool from_mem = s->mem_pos < s->mem_len;
	if ((rc = take(s, (char *)&h, sizeof(h), from_mem)) != 0)
		goto out_err;
	rc = -ENOMEM;
	if (!(e->payload = malloc((size_t)h.payload_len + 1)))
		goto out_err;
	e->payload[h.payload_len] = '\0';
	e->payload_len = h.payload_len;
	if ((rc = take(s, e->payload, h.payload_len, from_mem)) != 0 ||
	    (rc = take_str(s, h.port_len, from_mem, &e->port)) != 0 ||
	    (rc = take_str(s, h.key_len, from_mem, &e->key)) != 0)
		goto out_err;
	s->taken++;
	/* The memory block is done with once read through. */
	if (from_mem && s->mem_pos == s->mem_len) {
		free(s->mem);
		s->mem = NULL;
		s->mem_len = s->mem_cap = s->mem_pos = 0;
	}
	return 1;

out_err:
	hop_emit_clear(e);
	s->err = rc;
	return rc;
}

void hop_emit_clear(struct hop_emit *e)
{
	free(e->payload);
	free(e->port);
	free(e->key);
	memset(e, 0, sizeof(*e));
}

void hop_spool_free(struct hop_spool *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	free(s->mem);
	free(s->wbuf);
	free(s->rbuf);
	free(s->dir);
	free(s);
}
