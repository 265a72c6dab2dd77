/* dir.c - the dir source: each file in a folder is an item.
 *
 * A file is claimed by renaming it into this coordinator's own holder folder
 * under processing (claims.h), which is atomic, so two coordinators on one
 * folder never take the same file, and each recovers only what coordinators
 * that are gone left behind: at start-up, and every few seconds with watch
 * on. In the holder folder a file is named by its id: its name, escaped to
 * UTF-8 where it is not (name.h), so that the path given to the worker is
 * valid JSON and opens the file. On ack it moves to done under its own name
 * (or is deleted); a dead item moves to failed with a NAME.error.json beside
 * it saying why, and its error names it there. With watch on, new files are
 * picked up through inotify as soon as they are closed after writing or
 * moved in; a folder that vanishes is reported and waited for. The payload
 * is the claimed file's absolute path, as a JSON string, or with
 * payload=object, {"path": ..., "name": ID}.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <jansson.h>
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
#include "coordinator/utf8.h"
#include "sources/source.h"

#include "claims.h"
#include "failed.h"
#include "name.h"

/* How often a watching source looks for claims that a coordinator which is
 * gone left behind. */
#define SWEEP_MS 5000

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
	uint64_t sweep_timer;
	struct hop_src_dir_holder holder;
	/* processing's name when it lies in the input folder, else NULL */
	const char *processing_name;
	struct name *head, *tail;
	/* Files that could not be claimed because one of the same name is
	 * still in our hands: queued again when that one leaves. */
	struct name *deferred;
	int64_t queued;
	int64_t total; /* files found at open */
};

static const struct hop_option dir_options[] = {
    {"path", HOP_OPT_STR, NULL, offsetof(struct dir_src, path),
     "folder whose files are the items"},
    {"glob", HOP_OPT_STR, "*", offsetof(struct dir_src, glob),
     "only files whose names match this pattern"},
    {"processing", HOP_OPT_STR, NULL, offsetof(struct dir_src, processing),
     "where claimed files wait, in a locked folder per coordinator "
     "(default PATH/processing)"},
    {"done", HOP_OPT_STR, NULL, offsetof(struct dir_src, done),
     "where finished files go (default PATH/done)"},
    {"failed", HOP_OPT_STR, NULL, offsetof(struct dir_src, failed),
     "where dead files go, with NAME.error.json (default PATH/failed)"},
    {"keep_done", HOP_OPT_BOOL, "true", offsetof(struct dir_src, keep_done),
     "keep finished files in done; false deletes them"},
    {"payload", HOP_OPT_STR, "path", offsetof(struct dir_src, payload),
     "path: the file's path as a string; object: {\"path\", \"name\": ID}"},
    {NULL},
};

static char *join(const char *dir, const char *name)
{
	char *p;
	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

static void append_name(struct dir_src *c, struct name *e)
{
	e->next = NULL;
	if (c->tail)
		c->tail->next = e;
	else
		c->head = e;
	c->tail = e;
	c->queued++;
}

static void push_name(struct dir_src *c, const char *s)
{
	size_t n = strlen(s) + 1;
	struct name *e = malloc(sizeof(*e) + n);
	if (!e)
		return;
	memcpy(e->s, s, n);
	append_name(c, e);
}

static void free_names(struct name *e)
{
	while (e) {
		struct name *next = e->next;
		free(e);
		e = next;
	}
}

/* True when name is one the glob asks for, report or not. */
static bool matches(struct dir_src *c, const char *name)
{
	return name[0] != '.' && fnmatch(c->glob, name, FNM_PERIOD) == 0;
}

/* A report is never an item, even when it is moved back into the input
 * folder with its file (mv failed/x inbox/): taking it would make a dead
 * letter of a dead letter. */
static bool wanted(struct dir_src *c, const char *name)
{
	return matches(c, name) && !hop_src_dir_is_report(name);
}

/* Says, once per scan or arrival, which reports were passed over: a person
 * who moved failed/ back wonders where they went. */
static void log_skipped(struct dir_src *c, const struct hop_buf *names, int n)
{
	if (n)
		hop_log(HOP_WARN,
			"dir source: %d dead-letter report(s) in %s skipped, "
			"never taken as items (hopper dead retry moves a dead "
			"file back and removes its report): %.*s",
			n, c->path, (int)hop_buf_len(names),
			hop_buf_head(names));
}

/* Adds a skipped report's name to the list of the first few. */
static void note_skipped(struct hop_buf *names, int n, const char *name)
{
	char *tmp;
	if (n == 10)
		hop_buf_appendf(names, ", ...");
	if (n >= 10)
		return;
	hop_buf_appendf(names, "%s%s", n ? ", " : "",
			hop_src_dir_shown(name, &tmp));
	free(tmp);
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
	int count = 0, skipped = 0;
	struct hop_buf names = {0};
	for (int i = 0; i < n; i++) {
		struct stat st;
		const char *name = list[i]->d_name;
		char *p = join(dir, name);
		if (p && matches(c, name) && stat(p, &st) == 0 &&
		    S_ISREG(st.st_mode)) {
			if (hop_src_dir_is_report(name)) {
				note_skipped(&names, skipped++, name);
			} else {
				push_name(c, name);
				count++;
			}
		}
		free(p);
		free(list[i]);
	}
	free(list);
	log_skipped(c, &names, skipped);
	hop_buf_free(&names);
	return count;
}

/* Moves what coordinators that are gone left in processing back into the
 * input folder, where it will be claimed again; at open (start) also what
 * an older version left in processing itself. */
static void recover(struct hop_source *src, bool start)
{
	struct dir_src *c = src->ctx;
	int n =
	    hop_src_dir_recover(c->processing, c->path, c->holder.dir, start);
	if (n)
		hop_log(HOP_WARN,
			"dir source: recovered %d item(s) %s left in %s", n,
			start ? "a previous run" : "a coordinator that is gone",
			c->processing);
}

static void dir_sweep(struct hop_loop *loop, void *arg)
{
	struct hop_source *src = arg;
	struct dir_src *c = src->ctx;

	/* The files moved back reach us, and any other watcher, through
	 * inotify like any file moved in. */
	recover(src, false);
	c->sweep_timer = hop_loop_after(loop, SWEEP_MS, dir_sweep, src);
}

static void dir_inotify(struct hop_loop *loop, int fd, uint32_t ev, void *arg);
static void dir_retry(struct hop_loop *loop, void *arg);

static int start_watch(struct hop_source *src)
{
	struct dir_src *c = src->ctx;
	if (inotify_add_watch(c->ino, c->path,
			      IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE |
				  IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR) <
	    0)
		return -errno;
	return 0;
}

/* Makes our holder folder when we have none (processing was removed under
 * us and has been made again). Returns 0 or -errno, logged. */
static int ensure_holder(struct hop_source *src)
{
	struct dir_src *c = src->ctx;
	if (c->holder.dir)
		return 0;
	int rc = hop_src_dir_hold(&c->holder, c->processing, src->error,
				  sizeof(src->error));
	if (rc)
		hop_log(HOP_ERROR, "%s", src->error);
	return rc;
}

/* Our holder folder was removed under us (with processing, or with the
 * whole input folder): let go of its lock, whose open file would otherwise
 * keep a removed input folder from being reported, and make another in a
 * second, when the removal is over. */
static void holder_gone(struct hop_source *src)
{
	struct dir_src *c = src->ctx;
	hop_src_dir_unhold(&c->holder);
	if (!c->retry_timer)
		c->retry_timer =
		    hop_loop_after(src->loop, 1000, dir_retry, src);
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
	hop_loop_cancel(src->loop, c->retry_timer);
	c->retry_timer = hop_loop_after(src->loop, 1000, dir_retry, src);
}

static void dir_retry(struct hop_loop *loop, void *arg)
{
	struct hop_source *src = arg;
	struct dir_src *c = src->ctx;

	c->retry_timer = 0;
	if (hop_mkdirs(c->processing) || hop_mkdirs(c->done) ||
	    hop_mkdirs(c->failed) || (c->ino >= 0 && start_watch(src)) ||
	    ensure_holder(src)) {
		c->retry_timer = hop_loop_after(loop, 1000, dir_retry, src);
		return;
	}
	if (c->gone)
		hop_log(HOP_INFO, "dir source: input folder %s is back",
			c->path);
	c->gone = false;
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
			} else if (e->mask & IN_DELETE) {
				if (c->processing_name && e->len &&
				    !strcmp(e->name, c->processing_name))
					holder_gone(src);
			} else if (e->len && wanted(c, e->name)) {
				push_name(c, e->name);
				woke = true;
			} else if (e->len && matches(c, e->name)) {
				struct hop_buf name = {0};
				note_skipped(&name, 0, e->name);
				log_skipped(c, &name, 1);
				hop_buf_free(&name);
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

static int dir_check(struct hop_source *src, const char **key)
{
	struct dir_src *c = src->ctx;

	if (strcmp(c->payload, "path") && strcmp(c->payload, "object")) {
		snprintf(src->error, sizeof(src->error),
			 "dir source: payload '%s': expected path or object",
			 c->payload);
		*key = "payload";
		return -EINVAL;
	}
	if (!c->path) {
		snprintf(src->error, sizeof(src->error),
			 "dir source: no folder given (dir:PATH)");
		*key = "path";
		return -EINVAL;
	}
	return 0;
}

static int dir_open(struct hop_source *src)
{
	struct dir_src *c = src->ctx;
	const char *key;
	struct stat st;
	int rc;

	c->ino = -1;
	c->holder.lock_fd = -1;
	if ((rc = dir_check(src, &key)))
		return rc;
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
	size_t len = strlen(c->path);
	if (!strncmp(c->processing, c->path, len) &&
	    c->processing[len] == '/' && !strchr(c->processing + len + 1, '/'))
		c->processing_name = c->processing + len + 1;

	if ((rc = hop_src_dir_hold(&c->holder, c->processing, src->error,
				   sizeof(src->error))))
		return rc;
	if (!hop_utf8_valid(c->holder.dir)) {
		char *shown;
		snprintf(src->error, sizeof(src->error),
			 "dir source: %s: a path that is not UTF-8 cannot be "
			 "given to workers in JSON; choose another with -S "
			 "processing=FOLDER",
			 hop_src_dir_shown(c->processing, &shown));
		free(shown);
		rc = -EINVAL;
		goto out_unhold;
	}
	recover(src, true);
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
			goto out_unhold;
		}
		c->sweep_timer =
		    hop_loop_after(src->loop, SWEEP_MS, dir_sweep, src);
	}
	if ((rc = scan(src, c->path)) < 0) {
		snprintf(src->error, sizeof(src->error), "dir source: %s: %s",
			 c->path, strerror(-rc));
		goto out_unhold;
	}
	c->total = c->queued;
	return 0;

out_unhold:
	hop_loop_cancel(src->loop, c->sweep_timer);
	c->sweep_timer = 0;
	hop_src_dir_unhold(&c->holder);
	return rc;
}

/* Writes the payload for the file at path (UTF-8) into b, NUL-terminated.
 * Returns 0 or -ENOMEM, with b freed. */
static int make_payload(struct dir_src *c, const char *path, const char *id,
			struct hop_buf *b)
{
	int rc = 0;
	if (c->payload[0] == 'o') {
		rc |= hop_buf_append(b, "{\"path\":", 8);
		rc |= hop_buf_append_json_str(b, path);
		rc |= hop_buf_append(b, ",\"name\":", 8);
		rc |= hop_buf_append_json_str(b, id);
		rc |= hop_buf_append(b, "}", 1);
	} else {
		rc |= hop_buf_append_json_str(b, path);
	}
	rc |= hop_buf_append(b, "", 1);
	if (rc)
		hop_buf_free(b);
	return rc ? -ENOMEM : 0;
}

/* Claims the file named raw into our holder folder and returns its item,
 * or NULL when it is gone (taken by another coordinator), deferred, or
 * cannot be claimed (logged). */
static struct hop_item *claim(struct hop_source *src, struct name *e)
{
	struct dir_src *c = src->ctx;
	struct hop_item *it = NULL;
	char *id = hop_src_dir_escape(e->s);
	char *from = join(c->path, e->s);
	char *to = NULL, *shown = NULL, *raw = strdup(e->s);
	struct hop_buf payload = {0};
	int rc;

	if (!id || !from || !raw)
		goto out;
	if (!(to = join(c->holder.dir, id)))
		goto out;
	rc = hop_src_dir_move(from, to);
	if (rc == -ENOENT && access(c->holder.dir, F_OK) < 0) {
		/* Not the file but our holder folder is gone. */
		holder_gone(src);
		append_name(c, e);
		e = NULL;
		goto out;
	}
	if (rc == -EEXIST) {
		/* Its namesake is in our hands: claim it when that leaves. */
		hop_log(HOP_INFO,
			"dir source: %s waits until the file of that name "
			"in hand is finished",
			hop_src_dir_shown(from, &shown));
		e->next = c->deferred;
		c->deferred = e;
		e = NULL;
		goto out;
	}
	/* ENOENT: claimed by another coordinator, or removed. */
	if (rc && rc != -ENOENT)
		hop_log(HOP_ERROR, "dir source: cannot claim %s: %s",
			hop_src_dir_shown(from, &shown), strerror(-rc));
	if (rc)
		goto out;
	/* to is UTF-8: the holder folder's path is (dir_open) and so is id. */
	if (make_payload(c, to, id, &payload))
		goto out;
	it = hop_item_new(id, payload.data, payload.end - 1);
	id = NULL; /* the item's now, or freed */
	if (it) {
		it->src_data = raw;
		raw = NULL;
	}
out:
	free(e);
	free(shown);
	free(raw);
	free(id);
	free(from);
	free(to);
	return it;
}

static int dir_fetch(struct hop_source *src, struct hop_queue *out, size_t max)
{
	struct dir_src *c = src->ctx;
	size_t got = 0;

	/* Without a holder folder (being made again) claims wait. */
	while (got < max && c->head && c->holder.dir) {
		struct name *e = c->head;
		c->head = e->next;
		if (!c->head)
			c->tail = NULL;
		c->queued--;
		struct hop_item *it = claim(src, e);
		if (it) {
			hop_queue_push(out, it);
			got++;
		}
	}
	return 0;
}

/* The file named raw left our hands: a namesake that waited for it may now
 * be claimed. */
static void undefer(struct hop_source *src, const char *raw)
{
	struct dir_src *c = src->ctx;

	for (struct name **p = &c->deferred; *p; p = &(*p)->next) {
		if (strcmp((*p)->s, raw))
			continue;
		struct name *e = *p;
		*p = e->next;
		append_name(c, e);
		hop_source_wake(src);
		return;
	}
}

/* Where a claimed file is shown once it is in dest: a path for people and
 * JSON (malloc'd), or NULL when memory ran out. */
static char *shown_in(const char *dest, const char *raw)
{
	char *path = join(dest, raw), *tmp, *out;
	if (!path)
		return NULL;
	out = strdup(hop_src_dir_shown(path, &tmp));
	free(tmp);
	free(path);
	return out;
}

/* Moves the claimed file from our holder folder into dest under its own
 * name (or deletes it). */
static int move_claimed(struct hop_source *src, struct hop_item *it,
			const char *dest)
{
	struct dir_src *c = src->ctx;
	char *raw = it->src_data;
	/* No holder folder: it was removed, and the file with it. */
	char *from = c->holder.dir ? join(c->holder.dir, it->id) : NULL;
	char *to = dest ? join(dest, raw) : NULL;
	int rc = 0;

	if (!c->holder.dir)
		rc = -ENOENT;
	else if (!from || (dest && !to))
		rc = -ENOMEM;
	else if (!dest)
		rc = unlink(from) ? -errno : 0;
	else if (dest == c->path) /* never over a new file of that name */
		rc = hop_src_dir_move(from, to);
	else
		rc = rename(from, to) ? -errno : 0;
	if (rc == -ENOENT && !from)
		snprintf(src->error, sizeof(src->error),
			 "dir source: %s: removed from %s while in hand",
			 it->id, c->processing);
	else if (rc && from) {
		char *shown;
		snprintf(src->error, sizeof(src->error),
			 "dir source: %s %s: %s",
			 dest ? "cannot move" : "cannot delete",
			 hop_src_dir_shown(from, &shown),
			 rc == -EEXIST ? "a new file of that name is in the "
					 "input folder; left in processing"
				       : strerror(-rc));
		free(shown);
	}
	free(from);
	free(to);
	undefer(src, raw);
	free(raw);
	it->src_data = NULL;
	return rc;
}

static int dir_ack(struct hop_source *src, struct hop_item *it)
{
	struct dir_src *c = src->ctx;
	return move_claimed(src, it, c->keep_done ? c->done : NULL);
}

/* Returns s with every from replaced by to (malloc'd), or NULL when from is
 * not in s or memory ran out. */
static char *replaced(const char *s, const char *from, const char *to)
{
	size_t nf = strlen(from), nt = strlen(to), n = 0;
	const char *p, *q;
	struct hop_buf b = {0};

	for (p = s; (q = strstr(p, from)); p = q + nf)
		n++;
	if (!n || hop_buf_reserve(&b, strlen(s) + n * nt + 1))
		return NULL;
	for (p = s; (q = strstr(p, from)); p = q + nf) {
		hop_buf_append(&b, p, (size_t)(q - p));
		hop_buf_append(&b, to, nt);
	}
	hop_buf_append(&b, p, strlen(p) + 1);
	return b.data;
}

static void replace_in(char **field, const char *from, const char *to)
{
	char *s = *field ? replaced(*field, from, to) : NULL;
	if (s) {
		free(*field);
		*field = s;
	}
}

/* The item is about to be declared dead: what its worker said about the
 * claimed path, and the payload, are made to name the file in failed, where
 * it is about to go, so that the log, the sink and the report all point at
 * it where it will be. */
static void dir_dying(struct hop_source *src, struct hop_item *it)
{
	struct dir_src *c = src->ctx;
	char *claimed = c->holder.dir ? join(c->holder.dir, it->id) : NULL;
	char *file = shown_in(c->failed, it->src_data);
	struct hop_buf payload = {0};

	if (!claimed || !file)
		goto out;
	replace_in(&it->error, claimed, file);
	replace_in(&it->stderr_tail, claimed, file);
	if (!make_payload(c, file, it->id, &payload)) {
		free(it->payload);
		it->payload = payload.data;
		it->payload_len = payload.end - 1;
	}
out:
	free(claimed);
	free(file);
}

static int dir_dead(struct hop_source *src, struct hop_item *it,
		    const char *record)
{
	struct dir_src *c = src->ctx;
	char *file = shown_in(c->failed, it->src_data), *text = NULL, *path;
	json_t *rec = json_loads(record, 0, NULL);

	/* The report says where the file is: beside it, in failed. */
	if (rec && file && json_is_object(rec) &&
	    !json_object_set_new(rec, "file", json_string(file)))
		text = json_dumps(rec, JSON_COMPACT);
	json_decref(rec);
	free(file);
	if (asprintf(&path, "%s/%s" HOP_SRC_DIR_REPORT, c->failed,
		     (const char *)it->src_data) < 0) {
		free(text);
		return -ENOMEM;
	}
	if (text)
		record = text;
	int rc = hop_write_file(path, record, strlen(record), true);
	if (rc) {
		char *shown;
		snprintf(src->error, sizeof(src->error), "dir source: %s: %s",
			 hop_src_dir_shown(path, &shown), strerror(-rc));
		free(shown);
	}
	free(text);
	free(path);
	/* No report, no move: the file stays claimed, and the coordinator
	 * holds the item and asks again (a full disk may empty). */
	if (rc)
		return -EAGAIN;
	return move_claimed(src, it, c->failed);
}

static int dir_release(struct hop_source *src, struct hop_item *it)
{
	struct dir_src *c = src->ctx;
	return move_claimed(src, it, c->path);
}

static bool dir_exhausted(struct hop_source *src)
{
	struct dir_src *c = src->ctx;
	return !src->watch && !c->head && !c->deferred;
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
	hop_loop_cancel(src->loop, c->sweep_timer);
	c->sweep_timer = 0;
	if (c->ino >= 0) {
		hop_loop_unwatch(src->loop, c->ino);
		close(c->ino);
		c->ino = -1;
	}
	free_names(c->head);
	free_names(c->deferred);
	c->head = c->tail = c->deferred = NULL;
	hop_src_dir_unhold(&c->holder);
}

/* ---- dead letters, for hopper dead ---- */

/* Finds the folders as open does, without making any of them. */
static int dir_dead_open(struct hop_source *src)
{
	struct dir_src *c = src->ctx;
	int rc;

	if (!c->path) {
		snprintf(src->error, sizeof(src->error),
			 "dir source: no folder given (dir:PATH)");
		return -EINVAL;
	}
	char *abs = realpath(c->path, NULL);
	if (!abs) {
		rc = -errno;
		snprintf(src->error, sizeof(src->error), "dir source: %s: %s",
			 c->path, strerror(errno));
		return rc;
	}
	free(c->path);
	c->path = abs;
	return set_default(&c->failed, c->path, "failed");
}

static int dir_dead_list(struct hop_source *src, hop_dead_each_fn each,
			 void *arg)
{
	struct dir_src *c = src->ctx;
	return hop_src_dir_failed_list(c->failed, each, arg, src->error,
				       sizeof(src->error));
}

static int dir_dead_page(struct hop_source *src, size_t offset, size_t limit,
			 hop_dead_each_fn each, void *arg, size_t *total)
{
	struct dir_src *c = src->ctx;
	return hop_src_dir_failed_page(c->failed, offset, limit, each, arg,
				       total, src->error, sizeof(src->error));
}

static int dir_dead_retry(struct hop_source *src, const char *id, FILE *out)
{
	struct dir_src *c = src->ctx;
	return hop_src_dir_failed_retry(c->failed, c->path, id, src->error,
					sizeof(src->error));
}

static int dir_dead_discard(struct hop_source *src, const char *id)
{
	struct dir_src *c = src->ctx;
	return hop_src_dir_failed_discard(c->failed, id, src->error,
					  sizeof(src->error));
}

static void dir_dead_close(struct hop_source *src)
{
}

/* A finite run scanned its folder once, at open: a file retried into it
 * meanwhile is queued here, counted in the total, and claimed as any. A
 * watched run sees it arrive through inotify. */
static void dir_dead_retried(struct hop_source *src, const char *id)
{
	struct dir_src *c = src->ctx;
	char *raw = hop_src_dir_unescape(id), *path;
	struct stat st;

	if (src->watch || !raw || !wanted(c, raw)) {
		free(raw);
		return;
	}
	path = join(c->path, raw);
	if (path && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
		push_name(c, raw);
		c->total++;
		hop_source_wake(src);
	}
	free(path);
	free(raw);
}

const struct hop_source_ops hop_src_dir = {
    .name = "dir",
    .forms = "dir:FOLDER",
    .summary = "files in a folder, claimed by rename; coordinators can "
	       "share one (--watch: new files too)",
    .options = dir_options,
    .ctx_size = sizeof(struct dir_src),
    .check = dir_check,
    .open = dir_open,
    .fetch = dir_fetch,
    .ack = dir_ack,
    .dead = dir_dead,
    .dying = dir_dying,
    .release = dir_release,
    .depth = dir_depth,
    .total = dir_total,
    .exhausted = dir_exhausted,
    .close = dir_close,
    .dead_place = "FOLDER/failed/ and the NAME.error.json reports; retry "
		  "moves a file back into FOLDER, then removes its report; "
		  "discard deletes both",
    .dead_open = dir_dead_open,
    .dead_list = dir_dead_list,
    .dead_page = dir_dead_page,
    .dead_retry = dir_dead_retry,
    .dead_discard = dir_dead_discard,
    .dead_close = dir_dead_close,
    .dead_live = true,
    .dead_retried = dir_dead_retried,
};
