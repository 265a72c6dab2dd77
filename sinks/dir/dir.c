/* dir.c - the dir sink: one result file per item, ID.json in a folder.
 *
 * Each result is written to a temporary name, synced (unless fsync is off)
 * and renamed into place, so a reader never sees half a file and the write
 * is durable before the coordinator acknowledges the item. A failed write
 * (a read-only or full folder) is answered with RETRY: the item stays
 * unacknowledged and is tried again later.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/fsutil.h"
#include "coordinator/log.h"
#include "sinks/sink.h"

struct dir_sink {
	char *path;
	bool fsync;
	char *ext;
};

static const struct hop_option dir_options[] = {
    {"path", HOP_OPT_STR, NULL, offsetof(struct dir_sink, path),
     "folder to write result files into (created if missing)"},
    {"fsync", HOP_OPT_BOOL, "true", offsetof(struct dir_sink, fsync),
     "sync each file to disk before its item is acknowledged"},
    {"ext", HOP_OPT_STR, ".json", offsetof(struct dir_sink, ext),
     "ending added to the item's id to name its file"},
    {NULL},
};

/* Removes the temporary files that a killed writer left (".NAME.PID.tmp",
 * see hop_write_file) when that process is gone. */
static void remove_stale_temps(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	if (!d)
		return;
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (e->d_name[0] != '.' || len < 6 ||
		    strcmp(e->d_name + len - 4, ".tmp") != 0)
			continue;
		const char *dot = e->d_name + len - 4;
		const char *p = dot;
		while (p > e->d_name && p[-1] >= '0' && p[-1] <= '9')
			p--;
		if (p == dot || p[-1] != '.')
			continue;
		pid_t pid = (pid_t)atol(p);
		if (pid > 0 && (kill(pid, 0) == 0 || errno == EPERM))
			continue; /* its writer is still alive */
		if (unlinkat(dirfd(d), e->d_name, 0) == 0)
			n++;
	}
	closedir(d);
	if (n)
		hop_log(HOP_INFO,
			"dir sink: removed %d temporary file(s) a "
			"stopped run left in %s",
			n, path);
}

static int dir_open(struct hop_sink *sink)
{
	struct dir_sink *c = sink->ctx;
	if (!c->path) {
		snprintf(sink->error, sizeof(sink->error),
			 "dir sink: no folder given (dir:PATH)");
		return -EINVAL;
	}
	int rc = hop_mkdirs(c->path);
	if (rc)
		snprintf(sink->error, sizeof(sink->error), "dir sink: %s: %s",
			 c->path, strerror(-rc));
	else
		remove_stale_temps(c->path);
	return rc;
}

/* Makes a file name of an id: no slashes, no leading dot. */
static void safe_name(char *dst, size_t n, const char *id)
{
	size_t i = 0;
	for (; id[i] && i + 1 < n; i++)
		dst[i] = id[i] == '/' ? '_' : id[i];
	dst[i] = '\0';
	if (dst[0] == '.')
		dst[0] = '_';
}

static enum hop_sink_status dir_write(struct hop_sink *sink,
				      struct hop_item *it)
{
	struct dir_sink *c = sink->ctx;
	char name[256], *path;

	if (!it->ok)
		return HOP_SINK_OK; /* dead items live in the source's dead
				       letter */
	safe_name(name, sizeof(name), it->id);
	if (asprintf(&path, "%s/%s%s", c->path, name, c->ext) < 0)
		return HOP_SINK_RETRY;
	size_t len = strlen(it->result);
	it->result[len] = '\n'; /* the result owns room for its NUL */
	int rc = hop_write_file(path, it->result, len + 1, c->fsync);
	it->result[len] = '\0';
	if (rc)
		snprintf(sink->error, sizeof(sink->error), "dir sink: %s: %s",
			 path, strerror(-rc));
	free(path);
	return rc ? HOP_SINK_RETRY : HOP_SINK_OK;
}

static enum hop_sink_status dir_flush(struct hop_sink *sink)
{
	return HOP_SINK_OK; /* every write was durable on its own */
}

static void dir_close(struct hop_sink *sink)
{
}

const struct hop_sink_ops hop_sink_dir = {
    .name = "dir",
    .summary = "one result file per item in a folder, written atomically",
    .options = dir_options,
    .ctx_size = sizeof(struct dir_sink),
    .open = dir_open,
    .write = dir_write,
    .flush = dir_flush,
    .close = dir_close,
};
