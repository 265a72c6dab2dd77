/* execmode.c - the exec protocol: one process per item.
 *
 * The payload goes to the process's stdin and into the file named by
 * WORK_ITEM_FILE (a JSON string payload as its raw text, anything else as
 * compact JSON); HOPPER_ITEM_ID and HOPPER_ATTEMPT name the item. Its whole
 * stdout is the result, JSON when it parses and a string otherwise. Exit 0 is
 * success, 75 (EX_TEMPFAIL) asks for a retry, 65 (EX_DATAERR) is a permanent
 * failure, and any other exit or a signal is a failed attempt.
 *
 * HOPPER_EMIT names a file that does not exist when the process starts. A
 * worker that creates it gives its outputs there, one emit line each, and
 * its stdout is not an output; an empty file is a drop. A line that is not
 * an emit fails the item for good: running it again writes the same file.
 *
 * A slot holds the running item and the one after it. The next item's start
 * is handed to the spawner as soon as there is a process to follow, with
 * that process's pidfd to wait on: the spawner starts it the moment the
 * one before exits, while the loop is still reading what that one left.
 */
#include "pool_int.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "answer.h"
#include "fsutil.h"
#include "log.h"
#include "loop.h"
#include "spool.h"

#define EXIT_TEMPFAIL 75
#define EXIT_DATAERR 65
/* A process's stdout and stderr are read as it runs only once it has run
 * this long; before, at its exit. Most items end sooner, and spare the loop
 * two wake-ups each (their output, then the end of it). The cost: stderr
 * lines are logged up to this late, and a process that fills a pipe (64 KiB)
 * sooner waits up to this long for it to be read. */
#define PIPE_WATCH_MS 10

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

/* Opens the slot's payload file once; the spawner rewrites it in place for
 * each item, so that an item costs no file creation, rename or unlink. */
static int open_item_file(struct worker *w, const char *path)
{
	if (w->item_fd >= 0)
		return 0;
	w->item_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	w->item_len = SIZE_MAX; /* whatever a run before left there */
	return w->item_fd < 0 ? -errno : 0;
}

/* The path of the slot's HOPPER_EMIT file number which (0 or 1). */
static void emit_path(const struct worker *w, int which, char *path,
		      size_t size)
{
	snprintf(path, size, "%s/emit-%d.%d", w->pool->cfg.tmpdir, w->index,
		 which);
}

static void exec_spawned(void *arg, int rc, struct hop_child *child,
			 const char *err);
static void exec_read(struct worker *w);
static void exec_exited(struct worker *w, int status);

/* Asks the spawner to start the process for it, once the process that
 * wait_fd belongs to has exited (or at once when wait_fd is -1). Returns 0,
 * or fails the item (unfinished) and returns -errno. */
static int start_item(struct worker *w, struct hop_item *it, int wait_fd)
{
	struct hop_pool *pool = w->pool;
	char file[4096], emit[4096];
	char *env[5] = {NULL};
	size_t n = 0;
	int rc = -ENOMEM;

	char *bytes = payload_bytes(it, &n);
	snprintf(file, sizeof(file), "%s/item-%d", pool->cfg.tmpdir, w->index);
	/* The other file than the running process's, which may not be read
	 * yet; this one was read, but a start cancelled since may have left
	 * it. */
	w->emit_next = !w->emit_run;
	emit_path(w, w->emit_next, emit, sizeof(emit));
	unlink(emit);
	if (!bytes || asprintf(&env[0], "HOPPER_ITEM_ID=%s", it->id) < 0 ||
	    asprintf(&env[1], "HOPPER_ATTEMPT=%d", it->attempt) < 0 ||
	    asprintf(&env[2], "WORK_ITEM_FILE=%s", file) < 0 ||
	    asprintf(&env[3], "HOPPER_EMIT=%s", emit) < 0) {
		hop_item_fail(it, true, "worker %d: out of memory", w->index);
		goto out_free;
	}
	if ((rc = open_item_file(w, file)) != 0) {
		hop_item_fail(it, true, "cannot write %s: %s", file,
			      strerror(-rc));
		goto out_free;
	}
	struct hop_spawn_args args = {
	    .argv = pool->cfg.argv,
	    .env_extra = env,
	    .input = bytes,
	    .input_len = n,
	    .file_fd = w->item_fd,
	    .file_len = w->item_len,
	    .file_path = file,
	    .wait_fd = wait_fd,
	    .key = (unsigned)w->index,
	};
	rc = hop_spawner_start(pool->spawner, &args, exec_spawned, w);
	if (rc) {
		hop_item_fail(it, true, "worker %d: %s", w->index,
			      strerror(-rc));
		goto out_free;
	}
	w->item_len = n; /* once the spawner has written it */
	w->spawning = true;

out_free:
	for (int i = 0; i < 4; i++)
		free(env[i]);
	free(bytes);
	return rc;
}

/* Starts what the slot holds and has not asked for yet: its first item
 * when nothing runs, else the item after the running one, to follow it as
 * soon as it exits. At most one start per slot is ever asked for. */
static void start_pending(struct worker *w)
{
	struct hop_item *it;

	while (!w->spawning && (it = w->inflight.head) != NULL) {
		if (w->child.pid > 0) {
			struct hop_item *next = it->next;
			if (!next)
				return;
			if (start_item(w, next, w->child.pidfd) == 0) {
				/* The spawner tells of the exit, once it has
				 * started the next: the loop need not wake for
				 * it as well, and compete with that start. */
				hop_loop_unwatch(w->pool->loop, w->child.pidfd);
				return;
			}
			/* Failed before it started: say so now, and leave
			 * the running item's deadline be. */
			int64_t deadline = w->deadline;
			pool_finish(w, next);
			w->deadline = deadline;
			continue;
		}
		it->started_ms = hop_now_ms();
		w->deadline = w->pool->cfg.timeout_ms
				  ? it->started_ms + w->pool->cfg.timeout_ms
				  : 0;
		if (start_item(w, it, -1) == 0)
			return;
		pool_finish(w, it);
	}
}

/* The process has exited and is reaped: take what it left in its pipes
 * and settle its item. */
static void settle_exit(struct worker *w, int status)
{
	w->err.drained = false;
	if (w->out_open)
		exec_read(w);
	pool_drain_stderr(w);
	exec_exited(w, status);
}

static void on_out(struct hop_loop *loop, int fd, uint32_t events, void *arg)
{
	exec_read(arg);
}

static void on_err(struct hop_loop *loop, int fd, uint32_t events, void *arg)
{
	struct worker *w = arg;
	w->err.drained = false;
	pool_drain_stderr(w);
}

/* The process runs on: read its pipes as they fill from now on. */
static void watch_pipes(struct hop_loop *loop, void *arg)
{
	struct worker *w = arg;

	w->pipe_timer = 0;
	if (w->out_open)
		hop_loop_watch(loop, w->child.out, EPOLLIN, on_out, w);
	if (w->err_open)
		hop_loop_watch(loop, w->child.err, EPOLLIN, on_err, w);
}

/* Takes a started child into the slot. Its exit is watched here only when
 * no start waits on it (see start_pending); its pipes from PIPE_WATCH_MS
 * on. */
static void take_child(struct worker *w, const struct hop_child *child)
{
	struct hop_buf keep = w->err.buf;

	w->child = *child;
	w->started = hop_now_ms();
	w->pool->cfg.stats->worker_starts++;
	hop_lines_init(&w->err, 64 * 1024);
	w->err.buf = keep; /* reused across items */
	hop_buf_reset(&w->err.buf);
	w->err.edge = true;
	w->out_open = w->err_open = true;
	w->out_too_long = w->wwatch = w->sigkilled = false;
	hop_buf_reset(&w->collected);
	hop_buf_reset(&w->wbuf);
	w->pipe_timer =
	    hop_loop_after(w->pool->loop, PIPE_WATCH_MS, watch_pipes, w);
}

/* The process before this one has exited (the spawner waited for it
 * before starting the next): settle it now, as its pidfd would have. */
static void reap_now(struct worker *w)
{
	int status = 127 << 8; /* a failed attempt, should waitpid fail */

	if (!pool_reap(w, &status)) { /* it has exited: cannot happen */
		waitpid(w->child.pid, &status, 0);
		w->child.pid = -1;
	}
	settle_exit(w, status);
}

/* The loop's watch on a process's exit, when no start waits on it. */
static void on_exit_fd(struct hop_loop *loop, int fd, uint32_t events,
		       void *arg)
{
	struct worker *w = arg;
	int status = 0;

	if (pool_reap(w, &status))
		settle_exit(w, status);
}

/* The spawner's answer: the process for the slot's next item has started
 * (or could not). */
static void exec_spawned(void *arg, int rc, struct hop_child *child,
			 const char *err)
{
	struct worker *w = arg;

	if (w->child.pid > 0)
		reap_now(w);
	w->spawning = false;
	struct hop_item *it = w->inflight.head;
	/* Settling the process before may have killed the slot (its output
	 * was over the limit) and handed this item back: drop the new one. */
	if (!it) {
		if (rc == 0) {
			hop_child_signal(child, SIGKILL);
			waitpid(child->pid, NULL, 0);
			hop_child_close(child);
		}
		return;
	}
	if (rc) {
		w->item_len = SIZE_MAX;
		hop_item_fail(it, true, "worker %d: %s", w->index, err);
		pool_finish(w, it);
		start_pending(w);
		return;
	}
	take_child(w, child);
	w->emit_run = w->emit_next;
	if (w->child.in >= 0) {
		/* The pipe took only part of the payload: the loop writes the
		 * rest. */
		size_t n;
		char *bytes = payload_bytes(it, &n);
		if (bytes && n > w->child.in_done)
			hop_buf_append(&w->wbuf, bytes + w->child.in_done,
				       n - w->child.in_done);
		free(bytes);
		pool_want_write(w);
	}
	start_pending(w);
	if (!w->spawning) /* nothing follows it: the loop watches its exit */
		hop_loop_watch(w->pool->loop, w->child.pidfd, EPOLLIN,
			       on_exit_fd, w);
}

/* Cancels the slot's start on the spawner; the items stay with the slot. */
static void exec_abort(struct worker *w)
{
	hop_spawner_cancel(w->pool->spawner, w);
	/* Nothing follows the running process now: watch for its exit. */
	if (w->child.pid > 0)
		hop_loop_watch(w->pool->loop, w->child.pidfd, EPOLLIN,
			       on_exit_fd, w);
	/* A cancelled start may or may not have rewritten the file. */
	w->item_len = SIZE_MAX;
	w->spawning = false;
	/* Nothing runs for the slot's items now; the pool lets it go. */
	if (w->pool->draining || w->pool->killing)
		pool_slot_event(w, E_DROP);
}

/* Hands back the item queued behind the running one, whose start waits
 * for that one's exit: at a signal it is not in flight yet. Its start is
 * cancelled (a process it may just have got is killed before it can do
 * anything of note) and it returns to the run unattempted. */
static void exec_unqueue(struct worker *w)
{
	struct hop_pool *pool = w->pool;
	struct hop_item *next =
	    w->inflight.head ? w->inflight.head->next : NULL;

	if (!next || !w->spawning || w->child.pid <= 0)
		return;
	exec_abort(w);
	hop_queue_remove(&w->inflight, next);
	pool->inflight--;
	next->attempt--;
	pool->ev.returned(pool->ev.arg, next);
}

static void exec_run(struct worker *w, struct hop_item *it)
{
	hop_queue_push(&w->inflight, it);
	start_pending(w);
}

/* Collects the process's stdout, its result; more than max_line bytes
 * stops it. */
static void exec_read(struct worker *w)
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

/* Takes what an exit-0 process left in its HOPPER_EMIT file: its outputs,
 * or a drop when it is empty. A line that is not an emit fails the item
 * for good; a file that cannot be read, for this attempt. */
static void take_emits(struct worker *w, struct hop_item *it, const char *path)
{
	char err[512];
	struct hop_spool *s = NULL;
	int rc = hop_answer_emit_file(path, w->pool->cfg.tmpdir,
				      HOP_EMIT_MEM_LIMIT, &s, err, sizeof(err));

	if (rc == 1) {
		it->emits = s;
		it->drop = s == NULL;
	} else if (rc == -EINVAL) {
		hop_item_fail(it, false, "worker %d: its HOPPER_EMIT file, %s",
			      w->index, err);
	} else if (rc < 0) {
		hop_item_fail(it, true, "worker %d: %s", w->index, err);
	}
}

/* Takes the child's descriptors out of epoll before they are closed. Closing
 * alone is not enough here: a process that a spawner thread is starting at
 * this moment holds copies of every descriptor until its execve, and while
 * a copy lives its registration stays and, level-triggered on an exited
 * pidfd or a pipe at EOF, wakes the loop again and again for nothing. */
static void unwatch_child(struct worker *w)
{
	struct hop_loop *loop = w->pool->loop;

	hop_loop_cancel(loop, w->pipe_timer);
	w->pipe_timer = 0;
	hop_loop_unwatch(loop, w->child.pidfd);
	hop_loop_unwatch(loop, w->child.out);
	hop_loop_unwatch(loop, w->child.err);
	hop_loop_unwatch(loop, w->child.in);
}

/* Settles the slot's process, reaped with status (as from waitpid), once
 * its output is read: exit 0 gives the result, 75 a retry, 65 a permanent
 * failure, anything else a failed attempt whose error ends with the last
 * line the process wrote to stderr. Then the slot takes its next item. */
static void exec_exited(struct worker *w, int status)
{
	struct hop_pool *pool = w->pool;
	struct hop_item *it = w->inflight.head;
	char how[128], emit[4096];

	emit_path(w, w->emit_run, emit, sizeof(emit));
	if (it && slot_up(w->state)) {
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			take_stdout(w, it);
			if (it->ok)
				take_emits(w, it, emit);
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
		if (!it->ok)
			pool_add_stderr_reason(it);
		/* A failure is logged once, by the run, with what comes of
		 * it (a retry, or a dead item). */
		hop_log_ev(HOP_DEBUG, w->index, it->id, "%s",
			   it->ok ? "done" : it->error);
	}
	unlink(emit);
	unwatch_child(w);
	pool_release_child(w);
	bool finish = it && w->inflight.head == it;
	bool more = w->inflight.len > (finish ? 1u : 0u);
	pool_slot_event(w, (pool->draining || pool->killing) && !more ? E_EXITED
								      : E_RAN);
	if (!finish) {
		pool->ev.changed(pool->ev.arg);
		return;
	}
	/* The next item's process starts as this one exits: its time
	 * counts from now, not from when it was queued behind. */
	if (it->next)
		it->next->started_ms = hop_now_ms();
	pool_finish(w, it);
}

/* The running item and the one to start as it exits. */
static size_t exec_window(const struct hop_pool_config *cfg)
{
	return 2;
}

/* Checks the command and starts the spawner threads; the first slots take
 * items from now on. */
static int exec_begin(struct hop_pool *pool, char *err, size_t errlen)
{
	int rc = pool_check_command(pool, err, errlen);
	if (rc)
		return rc;
	pool->spawner = hop_spawner_new(pool->loop, pool->cfg.size < 2 ? 1 : 2);
	if (!pool->spawner) {
		snprintf(err, errlen, "cannot start spawner threads: %s",
			 strerror(errno));
		return -errno;
	}
	for (int i = 0; i < pool->target; i++)
		pool_slot_event(pool->w[i], E_STARTED);
	return 0;
}

/* A slot runs a process per item: up, it takes items. */
static int exec_start(struct worker *w, char *err, size_t errlen)
{
	pool_slot_event(w, E_STARTED);
	return 0;
}

/* An idle slot has no process: above the target it is simply down; at a
 * drain the pool settles it. */
static bool exec_retire(struct worker *w, bool drain)
{
	if (drain)
		return false;
	pool_slot_event(w, E_DROP);
	return true;
}

/* The payload is all there is. */
static void exec_written(struct worker *w)
{
	close(w->child.in);
	w->child.in = -1;
}

/* The slot's payload file and its two HOPPER_EMIT files. */
static void exec_remove_files(struct worker *w)
{
	char path[4096];

	if (!w->pool->cfg.tmpdir)
		return;
	snprintf(path, sizeof(path), "%s/item-%d", w->pool->cfg.tmpdir,
		 w->index);
	unlink(path);
	for (int i = 0; i < 2; i++) {
		emit_path(w, i, path, sizeof(path));
		unlink(path);
	}
}

const struct hop_worker_ops hop_worker_exec = {
    .name = "exec",
    .window = exec_window,
    .begin = exec_begin,
    .start = exec_start,
    .send = exec_run,
    .retire = exec_retire,
    .written = exec_written,
    .abort = exec_abort,
    .unqueue = exec_unqueue,
    .remove_files = exec_remove_files,
};
