/* dir.c - the dir sink: one result file per item, ID.json in a folder.
 *
 * Each result is written to a temporary name, synced (unless fsync is off)
 * and renamed into place, so a reader never sees half a file; flush syncs
 * the folder once for the renames since the last one, so the names are
 * durable too before the coordinator acknowledges the items. Ids map to
 * names one to one (name.h). A write that may work later (a read-only or
 * full folder) is answered with RETRY and the coordinator holds the result
 * until it does; one that never can (a name the file system refuses) with
 * FAIL.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/fsutil.h"
#include "coordinator/log.h"
#include "sinks/dir/name.h"
#include "sinks/sink.h"

struct dir_sink {
	char *path;
	bool fsync;
	char *ext;

	bool renamed; /* files renamed in since the folder was last synced */
};

static const struct hop_option dir_options[] = {
    {"path", HOP_OPT_STR, NULL, offsetof(struct dir_sink, path),
     "folder to write result files into (created if missing)"},
    {"fsync", HOP_OPT_BOOL, "true", offsetof(struct dir_sink, fsync),
     "sync each file to disk before its item is acknowledged"},
    {"ext", HOP_OPT_STR, ".json", offsetof(struct dir_sink, ext),
     "ending added to the file name made of the id (at most 32 bytes)"},
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

static int dir_check(struct hop_sink *sink, const char **key)
{
	struct dir_sink *c = sink->ctx;

	if (!c->path) {
		snprintf(sink->error, sizeof(sink->error),
			 "dir sink: no folder given (dir:PATH)");
		*key = "path";
		return -EINVAL;
	}
	if (strlen(c->ext) > HOP_DIR_EXT_MAX || strchr(c->ext, '/')) {
		snprintf(sink->error, sizeof(sink->error),
			 "dir sink: ext '%.40s' must be at most %d bytes with "
			 "no '/'",
			 c->ext, HOP_DIR_EXT_MAX);
		*key = "ext";
		return -EINVAL;
	}
	return 0;
}

static int dir_open(struct hop_sink *sink)
{
	struct dir_sink *c = sink->ctx;
	const char *key;
	int rc = dir_check(sink, &key);

	if (rc)
		return rc;
	rc = hop_mkdirs(c->path);
	if (rc)
		snprintf(sink->error, sizeof(sink->error), "dir sink: %s: %s",
			 c->path, strerror(-rc));
	else
		remove_stale_temps(c->path);
	return rc;
}

/* Errors that no later attempt can mend: the file system refuses the name
 * itself. Anything else (full, read-only, no permission, I/O) is the
 * folder's weather and may pass. */
static bool never_works(int err)
{
	return err == ENAMETOOLONG || err == EILSEQ || err == EINVAL;
}

static enum hop_sink_status dir_write(struct hop_sink *sink,
				      struct hop_item *it)
{
	struct dir_sink *c = sink->ctx;
	char name[HOP_DIR_NAME_MAX + 1], *path;

	if (!it->ok)
		return HOP_SINK_OK; /* dead items live in the source's dead
				       letter */
	hop_dir_name(name, it->id);
	if (asprintf(&path, "%s/%s%s", c->path, name, c->ext) < 0) {
		snprintf(sink->error, sizeof(sink->error),
			 "dir sink: out of memory");
		return HOP_SINK_RETRY;
	}
	size_t len = strlen(it->result);
	it->result[len] = '\n'; /* the result owns room for its NUL */
	int rc = hop_write_file(path, it->result, len + 1, c->fsync);
	if (rc == -ENOENT && hop_mkdirs(c->path) == 0) /* the folder went */
		rc = hop_write_file(path, it->result, len + 1, c->fsync);
	it->result[len] = '\0';
	if (rc)
		snprintf(sink->error, sizeof(sink->error), "dir sink: %s: %s",
			 path, strerror(-rc));
	free(path);
	if (!rc)
		c->renamed = true;
	return !rc		  ? HOP_SINK_OK
	       : never_works(-rc) ? HOP_SINK_FAIL
				  : HOP_SINK_RETRY;
}

/* Syncs the folder, which makes the renames since the last flush durable:
 * one fsync for a batch of results rather than one per file. */
static enum hop_sink_status dir_flush(struct hop_sink *sink)
{
	struct dir_sink *c = sink->ctx;
	int rc = 0;

	if (!c->fsync || !c->renamed)
		return HOP_SINK_OK;
	int fd = open(c->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		rc = -errno;
	if (fd >= 0)
		close(fd);
	if (rc) {
		snprintf(sink->error, sizeof(sink->error),
			 "dir sink: syncing %s: %s", c->path, strerror(-rc));
		return HOP_SINK_RETRY;
	}
	c->renamed = false;
	return HOP_SINK_OK;
}

static void dir_close(struct hop_sink *sink)
{
}

const struct hop_sink_ops hop_sink_dir = {
    .name = "dir",
    .forms = "dir:FOLDER",
    .summary = "one result file per item in a folder, written atomically",
    .options = dir_options,
    .ctx_size = sizeof(struct dir_sink),
    .check = dir_check,
    .open = dir_open,
    .write = dir_write,
    .flush = dir_flush,
    .close = dir_close,
};
