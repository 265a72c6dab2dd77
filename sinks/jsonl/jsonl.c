/* jsonl.c - the jsonl sink: one JSON line per finished item, to stdout or a
 * file.
 *
 * Lines are gathered in memory and written out by flush, which the
 * coordinator calls once per turn of its loop, so a burst of results costs
 * one write. With fsync on, flush also syncs the file before the items are
 * acknowledged. A failed flush drops what it held: those items are not
 * acknowledged and will be written again.
 *
 * A file never keeps half a line. A write that fails part way (a full
 * disk) is cut back to where the flush began, which is the end of a whole
 * line, and a file whose last line has no newline (a run killed in the
 * middle of a write) has that torn tail cut at open, with a warning. A
 * pipe or a terminal cannot be cut: after a failed write the next flush
 * starts with a newline, so that the line after the fragment still parses.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "coordinator/buf.h"
#include "coordinator/log.h"
#include "sinks/sink.h"

struct jsonl_sink {
	char *path;
	bool fsync;
	bool dead;

	const char *name;
	int fd;
	bool regular;
	off_t good;	  /* a file: the end of its last whole line */
	bool cut_pending; /* a file: a failed write is not cut back yet */
	bool mid_line;	  /* a pipe: a failed write stopped inside a line */
	struct hop_buf out;
};

static const struct hop_option jsonl_options[] = {
    {"path", HOP_OPT_STR, "-", offsetof(struct jsonl_sink, path),
     "file to append to, - for stdout"},
    {"fsync", HOP_OPT_BOOL, "true", offsetof(struct jsonl_sink, fsync),
     "sync a file to disk before its items are acknowledged"},
    {"dead", HOP_OPT_BOOL, "true", offsetof(struct jsonl_sink, dead),
     "write dead items too, with ok false and the error"},
    {NULL},
};

/* Returns the offset just past the last newline before end (0 when there
 * is none), or -errno. */
static off_t last_line_end(int fd, off_t end)
{
	char buf[65536];

	while (end > 0) {
		off_t from =
		    end > (off_t)sizeof(buf) ? end - (off_t)sizeof(buf) : 0;
		ssize_t n = pread(fd, buf, (size_t)(end - from), from);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		for (ssize_t i = n; i > 0; i--)
			if (buf[i - 1] == '\n')
				return from + i;
		end = from;
	}
	return 0;
}

/* A file whose last line has no newline was cut short by a run that was
 * killed while writing: the items on that line were never acknowledged.
 * Cuts the torn tail, so that the next line starts a line of its own, and
 * says so. Returns 0 or -errno. */
static int cut_torn_tail(struct hop_sink *sink)
{
	struct jsonl_sink *c = sink->ctx;
	struct stat st;

	if (fstat(c->fd, &st) < 0)
		return -errno;
	off_t keep = last_line_end(c->fd, st.st_size);
	if (keep < 0)
		return (int)keep;
	if (keep < st.st_size) {
		if (ftruncate(c->fd, keep) < 0)
			return -errno;
		sink->repairs++;
		hop_log(HOP_WARN,
			"jsonl sink: %s: cut a torn last line of %lld "
			"byte(s) that a stopped run left (its items were not "
			"acknowledged and are done again)",
			c->name, (long long)(st.st_size - keep));
	}
	c->good = keep;
	return 0;
}

static int jsonl_open(struct hop_sink *sink)
{
	struct jsonl_sink *c = sink->ctx;
	struct stat st;
	int rc;

	if (strcmp(c->path, "-") == 0) {
		/* Not inherited: a worker holding it would keep a reader of our
		 * stdout from seeing its end. */
		c->fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 0);
		c->name = "stdout";
	} else {
		/* A file is opened for reading too, to find its last line;
		 * anything else (a fifo, a device) as it always was. */
		bool file = stat(c->path, &st) < 0 || S_ISREG(st.st_mode);
		int flags = O_CREAT | O_APPEND | O_CLOEXEC;
		c->fd = open(c->path, flags | (file ? O_RDWR : O_WRONLY), 0666);
		c->name = c->path;
	}
	if (c->fd < 0) {
		rc = -errno;
		snprintf(sink->error, sizeof(sink->error), "jsonl sink: %s: %s",
			 c->name, strerror(-rc));
		return rc;
	}
	c->regular = fstat(c->fd, &st) == 0 && S_ISREG(st.st_mode);
	if (c->regular && (rc = cut_torn_tail(sink)) < 0) {
		snprintf(sink->error, sizeof(sink->error),
			 "jsonl sink: %s: cannot cut its torn last line: %s",
			 c->name, strerror(-rc));
		close(c->fd);
		c->fd = -1;
		return rc;
	}
	return 0;
}

static enum hop_sink_status jsonl_write(struct hop_sink *sink,
					struct hop_item *it)
{
	struct jsonl_sink *c = sink->ctx;
	struct hop_buf *b = &c->out;
	int rc;

	if (!it->ok && !c->dead)
		return HOP_SINK_OK;
	rc = hop_buf_append(b, "{\"id\":", 6) ||
	     hop_buf_append_json_str(b, it->id);
	if (it->ok)
		rc = rc || hop_buf_append(b, ",\"ok\":true,\"result\":", 20) ||
		     hop_buf_append(b, it->result, strlen(it->result));
	else
		rc = rc || hop_buf_append(b, ",\"ok\":false,\"error\":", 20) ||
		     hop_buf_append_json_str(b,
					     it->error ? it->error : "failed");
	rc = rc || hop_buf_append(b, ",\"attempts\":", 12) ||
	     hop_buf_append_int(b, it->attempt) || hop_buf_append(b, "}\n", 2);
	if (rc) {
		snprintf(sink->error, sizeof(sink->error),
			 "jsonl sink: out of memory");
		return HOP_SINK_RETRY;
	}
	return HOP_SINK_OK;
}

/* Writes len bytes; returns 0 or -errno, with what got out in *done. */
static int write_all(int fd, const char *p, size_t len, size_t *done)
{
	*done = 0;
	while (*done < len) {
		ssize_t n = write(fd, p + *done, len - *done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		*done += (size_t)n;
	}
	return 0;
}

/* After a failed write: a file is cut back to its last whole line (or
 * marked to be, when even that fails); a pipe remembers a broken line. */
static void undo_write(struct hop_sink *sink, bool wrote, char last)
{
	struct jsonl_sink *c = sink->ctx;

	if (!c->regular) {
		if (wrote && last != '\n')
			c->mid_line = true;
		return;
	}
	if (!wrote && !c->cut_pending)
		return;
	c->cut_pending = ftruncate(c->fd, c->good) < 0;
	if (!c->cut_pending)
		sink->repairs++;
}

static enum hop_sink_status jsonl_flush(struct hop_sink *sink)
{
	struct jsonl_sink *c = sink->ctx;
	const char *p = hop_buf_head(&c->out);
	size_t len = hop_buf_len(&c->out), done = 0;
	int rc = 0;

	if (len == 0 && !c->cut_pending)
		return HOP_SINK_OK;
	if (c->cut_pending) {
		/* Nothing is written after a fragment that is still there. */
		if (ftruncate(c->fd, c->good) < 0) {
			rc = -errno;
			goto failed;
		}
		c->cut_pending = false;
		sink->repairs++;
	} else if (c->regular && (c->good = lseek(c->fd, 0, SEEK_END)) < 0) {
		rc = -errno;
		goto failed;
	}
	if (c->mid_line) {
		if ((rc = write_all(c->fd, "\n", 1, &done)))
			goto failed;
		c->mid_line = false;
	}
	rc = write_all(c->fd, p, len, &done);
	if (!rc && c->regular && c->fsync && fdatasync(c->fd) < 0)
		rc = -errno;
	if (!rc) {
		hop_buf_reset(&c->out);
		return HOP_SINK_OK;
	}
failed:
	undo_write(sink, done > 0, done > 0 ? p[done - 1] : '\n');
	hop_buf_reset(&c->out);
	snprintf(sink->error, sizeof(sink->error), "jsonl sink: %s: %s%s",
		 c->name, strerror(-rc),
		 c->cut_pending ? " (and cutting back the partial write failed)"
		 : c->regular	? ""
		 : done > 0	? " (a partial line may have reached it)"
				: "");
	return HOP_SINK_RETRY;
}

static void jsonl_close(struct hop_sink *sink)
{
	struct jsonl_sink *c = sink->ctx;
	if (c->fd >= 0) {
		jsonl_flush(sink);
		close(c->fd);
	}
	hop_buf_free(&c->out);
}

const struct hop_sink_ops hop_sink_jsonl = {
    .name = "jsonl",
    .summary = "one JSON line per finished item, to a file or stdout",
    .options = jsonl_options,
    .ctx_size = sizeof(struct jsonl_sink),
    .open = jsonl_open,
    .write = jsonl_write,
    .flush = jsonl_flush,
    .close = jsonl_close,
};
