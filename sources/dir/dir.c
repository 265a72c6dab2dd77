/* dir.c - the dir source: each file in a folder is an item.
 *
 * A file is claimed by renaming it into the processing folder, which is
 * atomic, so two coordinators on one folder never take the same file. On ack
 * it moves to done (or is deleted); a dead item moves to failed with a
 * NAME.error.json beside it saying why. Whatever a crashed run left in
 * processing is moved back at start-up and done again. With watch on, new
 * files are picked up through inotify as soon as they are closed after
 * writing or moved in; a folder that vanishes is reported and waited for.
 * The payload is the claimed file's absolute path, as a JSON string, or
 * with payload=object, {"path": ..., "name": ...}.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "coordinator/buf.h"
#include "coordinator/fsutil.h"
#include "coordinator/log.h"
#include "coordinator/loop.h"
#include "sources/source.h"

struct name {
	struct name *next;
	char s[];
};

struct dir_src {
	char *path;
	char *glob;
	char *processing;
	char *done;
	char *failed;
	bool keep_done;
	char *payload; /* "path" or "object" */

	int ino;   /* inotify fd in watch mode, else -1 */
	bool gone; /* the input folder vanished; waiting for it */
	uint64_t retry_timer;
	struct name *head, *tail;
	int64_t queued;
	int64_t total; /* files found at open */
};

static const struct hop_option dir_options[] = {
    {"path", HOP_OPT_STR, NULL, offsetof(struct dir_src, path),
     "folder whose files are the items"},
    {"glob", HOP_OPT_STR, "*", offsetof(struct dir_src, glob),
     "only files whose names match this pattern"},
    {"processing", HOP_OPT_STR, NULL, offsetof(struct dir_src, processing),
     "where claimed files wait (default PATH/processing)"},
    {"done", HOP_OPT_STR, NULL, offsetof(struct dir_src, done),
     "where finished files go (default PATH/done)"},
    {"failed", HOP_OPT_STR, NULL, offsetof(struct dir_src, failed),
     "where dead files go, with NAME.error.json (default PATH/failed)"},
    {"keep_done", HOP_OPT_BOOL, "true", offsetof(struct dir_src, keep_done),
     "keep finished files in done; false deletes them"},
    {"payload", HOP_OPT_STR, "path", offsetof(struct dir_src, payload),
     "path: the file's path as a string; object: {\"path\", \"name\"}"},
    {NULL},
};

static char *join(const char *dir, const char *name)
{
	char *p;
	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

static void push_name(struct dir_src *c, const char *s)
{
	size_t n = strlen(s) + 1;
	struct name *e = malloc(sizeof(*e) + n);
	if (!e)
		return;
	memcpy(e->s, s, n);
	e->next = NULL;
	if (c->tail)
		c->tail->next = e;
	else
		c->head = e;
	c->tail = e;
	c->queued++;
}

static bool wanted(struct dir_src *c, const char *name)
{
	return name[0] != '.' && fnmatch(c->glob, name, FNM_PERIOD) == 0;
}

/* Queues every regular file of dir that matches, in name order. Returns
 * the number queued or -errno. */
static int scan(struct hop_source *src, const char *dir)
{
	struct dir_src *c = src->ctx;
	struct dirent **list;
	int n = scandir(dir, &list, NULL, alphasort);
	if (n < 0)
		return -errno;
	int count = 0;
	for (int i = 0; i < n; i++) {
		struct stat st;
		char *p = join(dir, list[i]->d_name);
		if (p && wanted(c, list[i]->d_name) && stat(p, &st) == 0 &&
		    S_ISREG(st.st_mode)) {
			push_name(c, list[i]->d_name);
			count++;
		}
		free(p);
		free(list[i]);
	}
	free(list);
	return count;
}

/* Moves whatever a previous run left in processing back into the input
 * folder, where it will be claimed again. */
static void recover(struct hop_source *src)
{
	struct dir_src *c = src->ctx;
	DIR *d = opendir(c->processing);
	struct dirent *e;
	int n = 0;

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char *from = join(c->processing, e->d_name);
		char *to = join(c->path, e->d_name);
		if (from && to && rename(from, to) == 0)
			n++;
		else if (from && to)
			hop_log(HOP_ERROR, "dir source: cannot recover %s: %s",
				from, strerror(errno));
		free(from);
		free(to);
	}
	closedir(d);
	if (n)
		hop_log(HOP_WARN,
			"dir source: recovered %d item(s) a previous run left "
			"in %s",
			n, c->processing);
}

static void dir_inotify(struct hop_loop *loop, int fd, uint32_t ev, void *arg);
static void dir_retry(struct hop_loop *loop, void *arg);

static int start_watch(struct hop_source *src)
{
	struct dir_src *c = src->ctx;
	if (inotify_add_watch(c->ino, c->path,
			      IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE_SELF |
				  IN_MOVE_SELF | IN_ONLYDIR) < 0)
		return -errno;
	return 0;
}

static void folder_gone(struct hop_source *src)
{
	struct dir_src *c = src->ctx;
	if (c->gone)
		return;
	c->gone = true;
	hop_log(
	    HOP_ERROR,
	    "dir source: input folder %s vanished; waiting for it to return",
	    c->path);
	c->retry_timer = hop_loop_after(src->loop, 1000, dir_retry, src);
}

static void dir_retry(struct hop_loop *loop, void *arg)
{
	struct hop_source *src = arg;
	struct dir_src *c = src->ctx;

	c->retry_timer = 0;
	if (hop_mkdirs(c->processing) || hop_mkdirs(c->done) ||
	    hop_mkdirs(c->failed) || start_watch(src)) {
		c->retry_timer = hop_loop_after(loop, 1000, dir_retry, src);
		return;
	}
	c->gone = false;
	hop_log(HOP_INFO, "dir source: input folder %s is back", c->path);
	scan(src, c->path);
	hop_source_wake(src);
}

static void dir_inotify(struct hop_loop *loop, int fd, uint32_t ev, void *arg)
{
	struct hop_source *src = arg;
	struct dir_src *c = src->ctx;
	char buf[8192]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	bool woke = false;

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *e = (struct inotify_event *)p;
			p += sizeof(*e) + e->len;
			if (e->mask & IN_Q_OVERFLOW) {
				scan(src, c->path);
				woke = true;
			} else if (e->mask & (IN_DELETE_SELF | IN_MOVE_SELF |
					      IN_IGNORED)) {
				if (e->mask & IN_MOVE_SELF)
					inotify_rm_watch(fd, e->wd);
				folder_gone(src);
			} else if (e->len && wanted(c, e->name)) {
				push_name(c, e->name);
				woke = true;
			}
		}
	}
	if (woke)
		hop_source_wake(src);
}

static int set_default(char **field, const char *base, const char *name)
{
	if (*field)
		return 0;
	*field = join(base, name);
	return *field ? 0 : -ENOMEM;
}

static int dir_open(struct hop_source *src)
{
	struct dir_src *c = src->ctx;
	struct stat st;
	int rc;

	c->ino = -1;
	if (strcmp(c->payload, "path") && strcmp(c->payload, "object")) {
		snprintf(src->error, sizeof(src->error),
			 "dir source: payload '%s': expected path or object",
			 c->payload);
		return -EINVAL;
	}
	if (!c->path) {
		snprintf(src->error, sizeof(src->error),
			 "dir source: no folder given (dir:PATH)");
		return -EINVAL;
	}
	if (stat(c->path, &st) < 0 || !S_ISDIR(st.st_mode)) {
		rc = errno ? -errno : -ENOTDIR;
		snprintf(src->error, sizeof(src->error), "dir source: %s: %s",
			 c->path, strerror(-rc));
		return rc;
	}
	char *abs = realpath(c->path, NULL);
	if (!abs)
		return -errno;
	free(c->path);
	c->path = abs;
	if ((rc = set_default(&c->processing, c->path, "processing")) ||
	    (rc = set_default(&c->done, c->path, "done")) ||
	    (rc = set_default(&c->failed, c->path, "failed")))
		return rc;
	const char *bad = NULL;
	if (hop_mkdirs(c->processing))
		bad = c->processing;
	else if (hop_mkdirs(c->done))
		bad = c->done;
	else if (hop_mkdirs(c->failed))
		bad = c->failed;
	if (bad) {
		rc = -errno;
		snprintf(src->error, sizeof(src->error), "dir source: %s: %s",
			 bad, strerror(errno));
		return rc;
	}
	abs = realpath(c->processing, NULL);
	if (!abs)
		return -errno;
	free(c->processing);
	c->processing = abs;

	recover(src);
	if (src->watch) {
		/* Watch before scanning so that no file slips between the two.
		 */
		c->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		if (c->ino < 0 || start_watch(src) ||
		    hop_loop_watch(src->loop, c->ino, EPOLLIN, dir_inotify,
				   src)) {
			rc = -errno;
			snprintf(src->error, sizeof(src->error),
				 "dir source: cannot watch %s: %s", c->path,
				 strerror(errno));
			return rc;
		}
	}
	if ((rc = scan(src, c->path)) < 0) {
		snprintf(src->error, sizeof(src->error), "dir source: %s: %s",
			 c->path, strerror(-rc));
		return rc;
	}
	c->total = c->queued;
	return 0;
}

static int dir_fetch(struct hop_source *src, struct hop_queue *out, size_t max)
{
	struct dir_src *c = src->ctx;
	size_t got = 0;

	while (got < max && c->head) {
		struct name *e = c->head;
		c->head = e->next;
		if (!c->head)
			c->tail = NULL;
		c->queued--;

		char *from = join(c->path, e->s);
		char *to = join(c->processing, e->s);
		struct hop_buf payload = {0};
		if (!from || !to)
			goto next;
		if (rename(from, to) < 0) {
			/* Gone already: claimed by another coordinator, or
			 * removed. */
			if (errno != ENOENT)
				hop_log(HOP_ERROR,
					"dir source: cannot claim %s: %s", from,
					strerror(errno));
			goto next;
		}
		if (c->payload[0] == 'o') {
			hop_buf_append(&payload, "{\"path\":", 8);
			hop_buf_append_json_str(&payload, to);
			hop_buf_append(&payload, ",\"name\":", 8);
			hop_buf_append_json_str(&payload, e->s);
			hop_buf_append(&payload, "}", 1);
		} else {
			hop_buf_append_json_str(&payload, to);
		}
		hop_buf_append(&payload, "", 1);
		struct hop_item *it =
		    hop_item_new(strdup(e->s), payload.data, payload.end - 1);
		if (it) {
			it->src_data = strdup(e->s);
			hop_queue_push(out, it);
			got++;
		}
	next:
		free(from);
		free(to);
		free(e);
	}
	return 0;
}

/* Moves the claimed file from processing into dest (or deletes it). */
static int move_claimed(struct hop_source *src, struct hop_item *it,
			const char *dest)
{
	struct dir_src *c = src->ctx;
	const char *name = it->src_data;
	char *from = join(c->processing, name);
	char *to = dest ? join(dest, name) : NULL;
	int rc = 0;

	if (!from || (dest && !to))
		rc = -ENOMEM;
	else if (dest ? rename(from, to) : unlink(from)) {
		rc = -errno;
		snprintf(src->error, sizeof(src->error),
			 "dir source: %s %s: %s",
			 dest ? "cannot move" : "cannot delete", from,
			 strerror(errno));
	}
	free(from);
	free(to);
	free(it->src_data);
	it->src_data = NULL;
	return rc;
}

static int dir_ack(struct hop_source *src, struct hop_item *it)
{
	struct dir_src *c = src->ctx;
	return move_claimed(src, it, c->keep_done ? c->done : NULL);
}

static int dir_dead(struct hop_source *src, struct hop_item *it,
		    const char *record)
{
	struct dir_src *c = src->ctx;
	char *path;

	if (asprintf(&path, "%s/%s.error.json", c->failed,
		     (const char *)it->src_data) < 0)
		return -ENOMEM;
	int rc = hop_write_file(path, record, strlen(record), true);
	if (rc)
		snprintf(src->error, sizeof(src->error), "dir source: %s: %s",
			 path, strerror(-rc));
	free(path);
	int rc2 = move_claimed(src, it, c->failed);
	return rc ? rc : rc2;
}

static int dir_release(struct hop_source *src, struct hop_item *it)
{
	struct dir_src *c = src->ctx;
	return move_claimed(src, it, c->path);
}

static bool dir_exhausted(struct hop_source *src)
{
	struct dir_src *c = src->ctx;
	return !src->watch && !c->head;
}

static int64_t dir_depth(struct hop_source *src)
{
	struct dir_src *c = src->ctx;
	return c->queued;
}

/* A finite run takes the files that were there at open, no more. */
static int64_t dir_total(struct hop_source *src)
{
	struct dir_src *c = src->ctx;
	return src->watch ? -1 : c->total;
}

static void dir_close(struct hop_source *src)
{
	struct dir_src *c = src->ctx;
	hop_loop_cancel(src->loop, c->retry_timer);
	if (c->ino >= 0) {
		hop_loop_unwatch(src->loop, c->ino);
		close(c->ino);
		c->ino = -1;
	}
	while (c->head) {
		struct name *e = c->head;
		c->head = e->next;
		free(e);
	}
	c->tail = NULL;
}

const struct hop_source_ops hop_src_dir = {
    .name = "dir",
    .summary = "files in a folder, claimed by rename (--watch: new ones too)",
    .options = dir_options,
    .ctx_size = sizeof(struct dir_src),
    .open = dir_open,
    .fetch = dir_fetch,
    .ack = dir_ack,
    .dead = dir_dead,
    .release = dir_release,
    .depth = dir_depth,
    .total = dir_total,
    .exhausted = dir_exhausted,
    .close = dir_close,
};
