/* execmode.c - the exec protocol: one process per item.
 *
 * The payload goes to the process's stdin and into the file named by
 * WORK_ITEM_FILE (a JSON string payload as its raw text, anything else as
 * compact JSON); HOPPER_ITEM_ID and HOPPER_ATTEMPT name the item. Its whole
 * stdout is the result, JSON when it parses and a string otherwise. Exit 0 is
 * success, 75 (EX_TEMPFAIL) asks for a retry, 65 (EX_DATAERR) is a permanent
 * failure, and any other exit or a signal is a failed attempt.
 */
#include "pool_int.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "loop.h"

#define EXIT_TEMPFAIL 75
#define EXIT_DATAERR 65

int exec_check(struct hop_pool *pool, char *err, size_t errlen)
{
	const char *cmd = pool->cfg.argv[0];
	if (strchr(cmd, '/')) {
		if (access(cmd, X_OK) == 0)
			return 0;
		snprintf(err, errlen, "cannot run '%s': %s", cmd,
			 strerror(errno));
		return -errno;
	}
	const char *path = getenv("PATH");
	char *dirs = strdup(path ? path : "/usr/bin:/bin");
	char *save = NULL, full[4096];
	int rc = -ENOENT;
	for (char *d = strtok_r(dirs, ":", &save); d;
	     d = strtok_r(NULL, ":", &save)) {
		snprintf(full, sizeof(full), "%s/%s", *d ? d : ".", cmd);
		if (access(full, X_OK) == 0) {
			rc = 0;
			break;
		}
	}
	free(dirs);
	if (rc)
		snprintf(err, errlen, "cannot run '%s': not found in PATH",
			 cmd);
	return rc;
}

/* The bytes a worker sees: a JSON string's text, else the JSON itself.
 * Returns a malloc'd buffer and its length in *n, or NULL. */
static char *payload_bytes(const struct hop_item *it, size_t *n)
{
	json_t *v =
	    json_loadb(it->payload, it->payload_len, JSON_DECODE_ANY, NULL);
	char *p = NULL;

	if (json_is_string(v)) {
		*n = json_string_length(v);
		p = malloc(*n + 1);
		if (p)
			memcpy(p, json_string_value(v), *n + 1);
	} else if (v) {
		/* Sources may keep the text as it came; workers get it compact.
		 */
		p = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		*n = p ? strlen(p) : 0;
	}
	json_decref(v);
	return p;
}

/* Rewrites the slot's payload file in place: one file per slot, kept open,
 * so that an item costs no file creation, rename or unlink. */
static int write_item_file(struct worker *w, const char *path,
			   const char *bytes, size_t n)
{
	if (w->item_fd < 0) {
		w->item_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (w->item_fd < 0)
			return -errno;
	}
	/* Truncating costs an inode update; only a shorter payload needs it. */
	if (n < w->item_len && ftruncate(w->item_fd, (off_t)n) < 0)
		return -errno;
	w->item_len = n;
	for (size_t off = 0; off < n;) {
		ssize_t k =
		    pwrite(w->item_fd, bytes + off, n - off, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		off += (size_t)k;
	}
	return 0;
}

/* The spawner's answer: the process for the slot's item has started (or
 * could not). */
static void exec_spawned(void *arg, int rc, struct hop_child *child,
			 const char *err)
{
	struct worker *w = arg;
	struct hop_item *it = w->inflight.head;

	w->spawning = false;
	if (rc) {
		hop_buf_reset(&w->wbuf);
		hop_item_fail(it, true, "worker %d: %s", w->index, err);
		pool_finish(w, it);
		return;
	}
	w->child = *child;
	w->started = hop_now_ms();
	w->pool->cfg.stats->worker_starts++;
	w->out_too_long = false;
	hop_buf_reset(&w->collected);
	pool_watch_child(w);
	pool_want_write(w);
}

void exec_abort(struct worker *w)
{
	hop_spawner_cancel(w->pool->spawner, w);
	hop_buf_reset(&w->wbuf);
	w->spawning = false;
	w->state = w->pool->draining || w->pool->killing ? W_DOWN : W_UP;
}

void exec_run(struct worker *w, struct hop_item *it)
{
	struct hop_pool *pool = w->pool;
	char file[4096];
	char *env[4] = {NULL};
	size_t n;
	int rc;

	hop_queue_push(&w->inflight, it);
	char *bytes = payload_bytes(it, &n);
	snprintf(file, sizeof(file), "%s/item-%d", pool->cfg.tmpdir, w->index);
	if (!bytes || (rc = write_item_file(w, file, bytes, n)) != 0) {
		hop_item_fail(it, true, "cannot write %s: %s", file,
			      bytes ? strerror(-rc) : "out of memory");
		goto out_finish;
	}
	if (asprintf(&env[0], "HOPPER_ITEM_ID=%s", it->id) < 0 ||
	    asprintf(&env[1], "HOPPER_ATTEMPT=%d", it->attempt) < 0 ||
	    asprintf(&env[2], "WORK_ITEM_FILE=%s", file) < 0) {
		hop_item_fail(it, true, "out of memory");
		goto out_finish;
	}
	if (hop_spawner_start(pool->spawner, pool->cfg.argv, env, exec_spawned,
			      w)) {
		hop_item_fail(it, true, "worker %d: out of memory", w->index);
		goto out_finish;
	}
	/* Written to the process's stdin once it has started. */
	hop_buf_append(&w->wbuf, bytes, n);
	w->spawning = true;
	w->deadline =
	    pool->cfg.timeout_ms ? hop_now_ms() + pool->cfg.timeout_ms : 0;
	goto out_free;

out_finish:
	pool_finish(w, it);
out_free:
	for (int i = 0; i < 3; i++)
		free(env[i]);
	free(bytes);
}

void exec_read(struct worker *w)
{
	struct hop_buf *b = &w->collected;

	while (w->out_open) {
		if (hop_buf_reserve(b, 65536))
			return;
		ssize_t n =
		    read(w->child.out, b->data + b->end, b->cap - b->end - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			hop_loop_unwatch(w->pool->loop, w->child.out);
			w->out_open = false;
			return;
		}
		b->end += (size_t)n;
		if (hop_buf_len(b) > w->pool->cfg.max_line &&
		    !w->out_too_long) {
			w->out_too_long = true;
			hop_buf_reset(b);
			pool_kill_worker(
			    w,
			    "worker %d wrote more than %zu bytes to stdout "
			    "(--max-line)",
			    w->index, w->pool->cfg.max_line);
		}
		if (w->out_too_long)
			hop_buf_reset(b);
	}
}

/* Turns what the process printed into the item's result. */
static void take_stdout(struct worker *w, struct hop_item *it)
{
	struct hop_buf *b = &w->collected;
	size_t n = hop_buf_len(b);
	char *p = hop_buf_head(b);

	while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r'))
		n--;
	json_t *v = n ? json_loadb(p, n, JSON_DECODE_ANY, NULL) : NULL;
	if (!v)
		v = json_stringn(p, n);
	if (!v) /* not UTF-8: keep what can be said about it */
		v = json_string("(stdout was not UTF-8 text)");
	it->result = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	it->ok = it->result != NULL;
	json_decref(v);
}

void exec_exited(struct worker *w, int status)
{
	struct hop_pool *pool = w->pool;
	struct hop_item *it = w->inflight.head;
	char how[128];

	if (it && w->state == W_UP) {
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			take_stdout(w, it);
		} else if (WIFEXITED(status) &&
			   WEXITSTATUS(status) == EXIT_TEMPFAIL) {
			hop_item_fail(it, true,
				      "worker %d exited with status 75 "
				      "(EX_TEMPFAIL: retry asked)",
				      w->index);
		} else if (WIFEXITED(status) &&
			   WEXITSTATUS(status) == EXIT_DATAERR) {
			hop_item_fail(it, false,
				      "worker %d exited with status 65 "
				      "(EX_DATAERR: permanent failure)",
				      w->index);
		} else {
			hop_describe_status(status, how, sizeof(how));
			hop_item_fail(it, true, "worker %d %s", w->index, how);
		}
		if (!it->ok && it->stderr_tail) {
			/* Say why in the worker's own words when it left some.
			 */
			size_t len = strlen(it->stderr_tail);
			const char *last = it->stderr_tail + len - 1;
			while (last > it->stderr_tail && last[-1] != '\n')
				last--;
			char *e = NULL;
			if (asprintf(&e, "%s: %.*s", it->error,
				     (int)(len - 1 -
					   (size_t)(last - it->stderr_tail)),
				     last) >= 0) {
				free(it->error);
				it->error = e;
			}
		}
		hop_log_ev(it->ok ? HOP_DEBUG : HOP_WARN, w->index, it->id,
			   "%s", it->ok ? "done" : it->error);
	}
	pool_release_child(w);
	w->state = pool->draining || pool->killing ? W_DOWN : W_UP;
	if (it && w->inflight.head == it)
		pool_finish(w, it);
	else
		pool->ev.changed(pool->ev.arg);
}
