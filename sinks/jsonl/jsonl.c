/* jsonl.c - the jsonl sink: one JSON line per finished item, to stdout or a
 * file.
 *
 * Lines are gathered in memory and written out by flush, which the
 * coordinator calls once per turn of its loop, so a burst of results costs
 * one write. With fsync on, flush also syncs the file before the items are
 * acknowledged. A failed flush drops what it held: those items are not
 * acknowledged and will be written again when they are retried.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "coordinator/buf.h"
#include "sinks/sink.h"

struct jsonl_sink {
	char *path;
	bool fsync;
	bool dead;

	const char *name;
	int fd;
	bool regular;
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

static int jsonl_open(struct hop_sink *sink)
{
	struct jsonl_sink *c = sink->ctx;
	struct stat st;

	if (strcmp(c->path, "-") == 0) {
		c->fd = dup(STDOUT_FILENO);
		c->name = "stdout";
	} else {
		c->fd = open(c->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
			     0666);
		c->name = c->path;
	}
	if (c->fd < 0) {
		snprintf(sink->error, sizeof(sink->error), "jsonl sink: %s: %s",
			 c->name, strerror(errno));
		return -errno;
	}
	c->regular = fstat(c->fd, &st) == 0 && S_ISREG(st.st_mode);
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

static enum hop_sink_status jsonl_flush(struct hop_sink *sink)
{
	struct jsonl_sink *c = sink->ctx;
	int rc = 0;

	while (hop_buf_len(&c->out) > 0) {
		ssize_t n =
		    write(c->fd, hop_buf_head(&c->out), hop_buf_len(&c->out));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		hop_buf_consume(&c->out, (size_t)n);
	}
	if (!rc && c->regular && c->fsync && fdatasync(c->fd) < 0)
		rc = -errno;
	if (rc) {
		hop_buf_reset(&c->out);
		snprintf(sink->error, sizeof(sink->error), "jsonl sink: %s: %s",
			 c->name, strerror(-rc));
		return HOP_SINK_RETRY;
	}
	return HOP_SINK_OK;
}

static void jsonl_close(struct hop_sink *sink)
{
	struct jsonl_sink *c = sink->ctx;
	jsonl_flush(sink);
	close(c->fd);
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
