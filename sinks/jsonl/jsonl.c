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
 * Nor is stdout when it is a file: the shell opened it (perhaps for
 * writing only) and what it held before is the user's, so a torn last
 * line there is followed by a newline, not cut.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coordinator/buf.h"
#include "coordinator/fsutil.h"
#include "coordinator/linefile.h"
#include "coordinator/log.h"
#include "sinks/sink.h"
#include "sources/exec/proto.h"

struct jsonl_sink {
	char *path;
	bool fsync;
	bool dead;

	const char *name;
	struct hop_linefile file;
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

/* Takes over a copy of stdout. Whoever opened it (the shell's > or >>)
 * owns what it holds: a torn last line there is not cut, as a file the
 * sink opens would have it, but followed by a newline. */
static int jsonl_open_stdout(struct hop_sink *sink)
{
	struct jsonl_sink *c = sink->ctx;
	bool torn;
	int fd, rc;

	c->name = "stdout";
	/* Not inherited: a worker holding it would keep a reader of our
	 * stdout from seeing its end. */
	fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 0);
	if (fd < 0 || (rc = hop_linefile_adopt(&c->file, fd, &torn)) < 0) {
		rc = fd < 0 ? -errno : rc;
		c->file.fd = -1;
		snprintf(sink->error, sizeof(sink->error), "jsonl sink: %s: %s",
			 c->name, strerror(-rc));
		return rc;
	}
	if (torn)
		hop_log(HOP_WARN,
			"jsonl sink: stdout is a file whose last line has no "
			"newline: it is left as it is, and the results start "
			"on a line of their own");
	return 0;
}

static int jsonl_open(struct hop_sink *sink)
{
	struct jsonl_sink *c = sink->ctx;
	off_t cut;
	int fd, rc;

	if (strcmp(c->path, "-") == 0)
		return jsonl_open_stdout(sink);
	fd = hop_linefile_open(c->path);
	c->name = c->path;
	if (fd == -ENOENT) {
		/* Its folder is made, as the dir sink makes its own. */
		char *dir = strdup(c->path),
		     *slash = dir ? strrchr(dir, '/') : NULL;
		if (slash && slash != dir) {
			*slash = '\0';
			rc = hop_mkdirs(dir);
			fd = rc ? rc : hop_linefile_open(c->path);
		}
		free(dir);
	}
	if (fd < 0) {
		c->file.fd = -1;
		snprintf(sink->error, sizeof(sink->error), "jsonl sink: %s: %s",
			 c->name, strerror(-fd));
		return fd;
	}
	if ((rc = hop_linefile_init(&c->file, fd, &cut)) < 0) {
		snprintf(sink->error, sizeof(sink->error),
			 "jsonl sink: %s: cannot cut its torn last line: %s",
			 c->name, strerror(-rc));
		return rc;
	}
	if (cut > 0) {
		sink->repairs++;
		hop_log(HOP_WARN,
			"jsonl sink: %s: cut a torn last line of %lld "
			"byte(s) that a stopped run left (its items were not "
			"acknowledged and are done again)",
			c->name, (long long)cut);
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
	rc = hop_exec_put_record(b, it->id, it->ok, it->result, it->error,
				 it->dead_stage, it->attempt);
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
	struct hop_linefile *f = &c->file;
	uint64_t cuts = f->cuts;
	int rc;

	rc = hop_linefile_append(f, hop_buf_head(&c->out), hop_buf_len(&c->out),
				 c->fsync);
	sink->repairs += f->cuts - cuts;
	hop_buf_reset(&c->out);
	if (!rc)
		return HOP_SINK_OK;
	snprintf(sink->error, sizeof(sink->error), "jsonl sink: %s: %s%s",
		 c->name, strerror(-rc),
		 f->cut_pending ? " (and cutting back the partial write failed)"
		 : f->mid_line	? " (a partial line may have reached it)"
				: "");
	return HOP_SINK_RETRY;
}

static void jsonl_close(struct hop_sink *sink)
{
	struct jsonl_sink *c = sink->ctx;
	if (c->file.fd >= 0) {
		jsonl_flush(sink);
		hop_linefile_close(&c->file);
	}
	hop_buf_free(&c->out);
}

const struct hop_sink_ops hop_sink_jsonl = {
    .name = "jsonl",
    .forms = "jsonl:FILE, jsonl:-",
    .summary = "one JSON line per finished item, to a file or stdout",
    .options = jsonl_options,
    .ctx_size = sizeof(struct jsonl_sink),
    .open = jsonl_open,
    .write = jsonl_write,
    .flush = jsonl_flush,
    .close = jsonl_close,
};
