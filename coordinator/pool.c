/* pool.c - worker slots: capacity, deadlines, killing and restarting.
 *
 * A slot's life is the table below, one row per state and one column per
 * event. The protocol itself, what is written to a worker and what its
 * output means, lives in stream.c and execmode.c (struct hop_worker_ops);
 * this file decides when a worker starts and stops and what happens to the
 * items it held.
 */
#include "pool_int.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"

#define TICK_MS 100
#define RESTART_MIN_MS 1000
#define RESTART_MAX_MS 30000

static void restart(struct hop_loop *loop, void *arg);
static bool start_slot(struct worker *w);

/* Where each event takes a slot; an event left out of a state's row is
 * not expected there (S_BUG). A stream slot goes DOWN -> IDLE <-> BUSY ->
 * (RETIRING | STOPPING) -> DOWN, and through BACKOFF back to IDLE when the
 * pool still wants it; an exec slot goes IDLE <-> BUSY, STOPPING -> IDLE
 * after a kill, and DOWN when the pool drains or shrinks. */
/* clang-format off */
static const enum slot_state slot_next[S_NSTATES][E_NEVENTS] = {
	[S_DOWN] = {
		[E_STARTED]  = S_IDLE,     /* started, or (exec) opened */
		[E_RETRY]    = S_BACKOFF,  /* could not start: later */
		[E_EMPTY]    = S_DOWN,     /* exec: let go, item settled */
		[E_SIGNAL]   = S_STOPPING, /* exec: let go, process killed */
	},
	[S_BACKOFF] = {
		[E_STARTED]  = S_IDLE,     /* the restart worked */
		[E_RETRY]    = S_BACKOFF,  /* it failed again */
		[E_CANCEL]   = S_DOWN,     /* not wanted any more */
	},
	[S_IDLE] = {
		[E_TAKE]     = S_BUSY,
		[E_CLOSE]    = S_RETIRING, /* above the target, or draining */
		[E_SIGNAL]   = S_STOPPING,
		[E_EXITED]   = S_DOWN,     /* stream: exited unasked */
		[E_DROP]     = S_DOWN,     /* exec: above target, draining */
	},
	[S_BUSY] = {
		[E_TAKE]     = S_BUSY,
		[E_EMPTY]    = S_IDLE,
		[E_SIGNAL]   = S_STOPPING, /* timed out, broke the contract */
		[E_EXITED]   = S_DOWN,     /* stream: crashed with items */
		[E_RAN]      = S_BUSY,     /* exec: its item is settled next */
		[E_DROP]     = S_DOWN,     /* exec: start cancelled, draining */
	},
	[S_RETIRING] = {
		[E_EMPTY]    = S_RETIRING, /* answered all: exits next */
		[E_SIGNAL]   = S_STOPPING,
		[E_EXITED]   = S_DOWN,
	},
	[S_STOPPING] = {
		[E_EMPTY]    = S_STOPPING, /* its items failed or went back */
		[E_SIGNAL]   = S_STOPPING,
		[E_EXITED]   = S_DOWN,
		[E_RAN]      = S_IDLE,     /* exec: killed, the slot goes on */
	},
};
/* clang-format on */

static const char *const state_names[S_NSTATES] = {
    "bug", "down", "backoff", "idle", "busy", "retiring", "stopping",
};

static const char *const event_names[E_NEVENTS] = {
    "started", "retry",	 "cancel", "take", "empty",
    "close",   "signal", "exited", "ran",  "drop",
};

const char *pool_slot_state_name(enum slot_state s)
{
	return s < S_NSTATES ? state_names[s] : "?";
}

const char *pool_slot_event_name(enum slot_event e)
{
	return e < E_NEVENTS ? event_names[e] : "?";
}

enum slot_state pool_slot_next(enum slot_state s, enum slot_event e)
{
	if (s >= S_NSTATES || e >= E_NEVENTS)
		return S_BUG;
	return slot_next[s][e];
}

void pool_slot_event(struct worker *w, enum slot_event e)
{
	enum slot_state next = pool_slot_next(w->state, e);

	if (next == S_BUG) {
		hop_log_ev(HOP_ERROR, w->index, NULL,
			   "bug: worker %d got event '%s' in state '%s', "
			   "which does not expect it; the state is kept",
			   w->index, pool_slot_event_name(e),
			   pool_slot_state_name(w->state));
		return;
	}
	w->state = next;
}

/* A slot of its own allocation, down. */
static struct worker *new_slot(struct hop_pool *pool, int i)
{
	struct worker *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->pool = pool;
	w->index = i;
	w->state = S_DOWN;
	w->item_fd = -1;
	w->child = (struct hop_child){
	    .pid = -1, .pidfd = -1, .in = -1, .out = -1, .err = -1};
	return w;
}

struct hop_pool *hop_pool_new(struct hop_loop *loop,
			      const struct hop_pool_config *cfg,
			      const struct hop_pool_events *ev)
{
	struct hop_pool *pool = calloc(1, sizeof(*pool));
	if (!pool)
		return NULL;
	pool->w =
	    calloc(cfg->size > 0 ? (size_t)cfg->size : 1, sizeof(*pool->w));
	if (!pool->w) {
		free(pool);
		return NULL;
	}
	pool->loop = loop;
	pool->ops = cfg->exec_mode ? &hop_worker_exec : &hop_worker_stream;
	pool->cfg = *cfg;
	pool->ev = *ev;
	pool->target = cfg->start;
	for (int i = 0; i < cfg->size; i++) {
		if (!(pool->w[i] = new_slot(pool, i))) {
			for (int j = 0; j < i; j++)
				free(pool->w[j]);
			free(pool->w);
			free(pool);
			return NULL;
		}
	}
	return pool;
}

int hop_pool_grow(struct hop_pool *pool, int n)
{
	if (n <= pool->cfg.size)
		return 0;
	if (n > HOP_POOL_MAX_SLOTS)
		return -ERANGE;
	struct worker **w = realloc(pool->w, (size_t)n * sizeof(*w));
	if (!w)
		return -ENOMEM;
	pool->w = w;
	/* Only the pointers moved: every slot, and what the loop or a
	 * spawner thread holds of it, stays where it was. */
	for (int i = pool->cfg.size; i < n; i++) {
		if (!(w[i] = new_slot(pool, i)))
			return -ENOMEM;
		pool->cfg.size = i + 1;
	}
	return 0;
}

/* Every TICK_MS while groups outlive their workers: forgets the ones that
 * are gone, and sends SIGKILL to those whose time is up. */
static void watch_leftovers(struct hop_loop *loop, void *arg)
{
	struct hop_pool *pool = arg;
	int64_t now = hop_now_ms();
	int kept = 0;

	pool->left_timer = 0;
	for (int i = 0; i < pool->nleft; i++) {
		struct leftover *l = &pool->left[i];
		if (!hop_group_alive(l->pgid))
			continue;
		if (now >= l->kill_at) {
			hop_log_ev(HOP_WARN, l->worker, NULL,
				   "processes left by worker %d ignored "
				   "SIGTERM for %.1f s: sending SIGKILL to "
				   "process group %d",
				   l->worker, (double)pool->cfg.kill_ms / 1000,
				   (int)l->pgid);
			kill(-l->pgid, SIGKILL);
			continue;
		}
		pool->left[kept++] = *l;
	}
	bool changed = kept != pool->nleft;
	pool->nleft = kept;
	if (pool->nleft)
		pool->left_timer =
		    hop_loop_after(loop, TICK_MS, watch_leftovers, pool);
	if (changed)
		pool->ev.changed(pool->ev.arg);
}

/* Follows a group that outlived worker w: it got SIGTERM, and gets
 * SIGKILL kill_ms from now if it lingers. */
static void follow_leftover(struct worker *w, pid_t pgid)
{
	struct hop_pool *pool = w->pool;

	if (pool->nleft == pool->capleft) {
		int cap = pool->capleft ? pool->capleft * 2 : 4;
		struct leftover *l =
		    realloc(pool->left, sizeof(*l) * (size_t)cap);
		if (!l) { /* cannot follow it: make sure it ends */
			kill(-pgid, SIGKILL);
			return;
		}
		pool->left = l;
		pool->capleft = cap;
	}
	hop_log_ev(HOP_WARN, w->index, NULL,
		   "worker %d exited and left processes in its group %d: "
		   "sent SIGTERM, SIGKILL in %.1f s if they stay",
		   w->index, (int)pgid, (double)pool->cfg.kill_ms / 1000);
	pool->left[pool->nleft++] = (struct leftover){
	    .pgid = pgid,
	    .worker = w->index,
	    .kill_at = hop_now_ms() + pool->cfg.kill_ms,
	};
	if (!pool->left_timer)
		pool->left_timer =
		    hop_loop_after(pool->loop, TICK_MS, watch_leftovers, pool);
}

bool pool_reap(struct worker *w, int *status)
{
	pid_t pgid = w->child.pid;
	bool lingering;

	if (!hop_child_reap_group(&w->child, status, &lingering))
		return false;
	if (lingering)
		follow_leftover(w, pgid);
	return true;
}

/* Kills w, whose head item passed its deadline, saying what it waited
 * for. An exec process has its whole timeout to exit; a stream worker's
 * deadline is the timeout after the last line it wrote (an answer, a
 * progress or an emit line) or, before any, after the item reached it:
 * the error says so, and how long the worker had the item in all when
 * its lines kept it alive for longer than one timeout. */
static void time_out(struct hop_pool *pool, struct worker *w, int64_t now)
{
	const struct hop_item *it = w->inflight.head;
	double limit = (double)pool->cfg.timeout_ms / 1000;
	double held = (double)(now - it->started_ms) / 1000;

	pool->cfg.stats->timeouts++;
	if (strcmp(pool->ops->name, "exec") == 0) {
		pool_kill_worker(w,
				 "worker %d timed out after %.1f s: the "
				 "process for item '%.100s' did not exit",
				 w->index, limit, it->id);
		return;
	}
	/* The deadline's clock last started at deadline - timeout. */
	if (w->deadline - pool->cfg.timeout_ms > it->started_ms + TICK_MS)
		pool_kill_worker(w,
				 "worker %d timed out after %.1f s since its "
				 "last line (an answer, progress or emit), "
				 "holding item '%.100s' for %.1f s",
				 w->index, limit, it->id, held);
	else
		pool_kill_worker(w,
				 "worker %d timed out after %.1f s with no "
				 "answer, progress or emit for item '%.100s'",
				 w->index, limit, it->id);
}

static void tick(struct hop_loop *loop, void *arg)
{
	struct hop_pool *pool = arg;
	int64_t now = hop_now_ms();

	pool->tick = hop_loop_after(loop, TICK_MS, tick, pool);
	for (int i = 0; i < pool->cfg.size; i++) {
		struct worker *w = pool->w[i];
		if (!slot_up(w->state) || !w->inflight.head || !w->deadline ||
		    now < w->deadline)
			continue;
		time_out(pool, w, now);
	}
}

int pool_check_command(struct hop_pool *pool, char *err, size_t errlen)
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

int hop_pool_start(struct hop_pool *pool, char *err, size_t errlen)
{
	int rc = pool->ops->begin(pool, err, errlen);
	if (rc)
		return rc;
	if (pool->cfg.timeout_ms > 0)
		pool->tick = hop_loop_after(pool->loop, TICK_MS, tick, pool);
	return 0;
}

size_t hop_pool_capacity(const struct hop_pool *pool)
{
	size_t n = 0;
	if (pool->draining || pool->killing)
		return 0;
	for (int i = 0; i < pool->cfg.size; i++) {
		const struct worker *w = pool->w[i];
		size_t per = pool->ops->window(&pool->cfg);
		if (slot_up(w->state) && w->inflight.len < per)
			n += per - w->inflight.len;
	}
	return n;
}

size_t hop_pool_inflight(const struct hop_pool *pool)
{
	return pool->inflight;
}

int hop_pool_alive(const struct hop_pool *pool)
{
	int n = 0;
	for (int i = 0; i < pool->cfg.size; i++)
		if (pool->w[i]->child.pid > 0)
			n++;
	return n;
}

bool hop_pool_stopped(const struct hop_pool *pool)
{
	return hop_pool_alive(pool) == 0 && pool->nleft == 0;
}

/* Counts against the target: running or starting, or coming back from a
 * crash. Not the ones retiring or being killed. */
static bool active(const struct worker *w)
{
	return slot_up(w->state) || w->state == S_BACKOFF;
}

int hop_pool_workers(const struct hop_pool *pool)
{
	int n = 0;
	for (int i = 0; i < pool->cfg.size; i++)
		n += active(pool->w[i]);
	return n;
}

int hop_pool_size(const struct hop_pool *pool)
{
	return pool->cfg.size;
}

void hop_pool_slot(const struct hop_pool *pool, int i,
		   struct hop_pool_slot *out)
{
	static const char *const names[S_NSTATES] = {
	    [S_BUG] = "?",
	    [S_DOWN] = "down",
	    [S_BACKOFF] = "backoff",
	    [S_IDLE] = "idle",
	    [S_BUSY] = "busy",
	    [S_RETIRING] = "retiring",
	    [S_STOPPING] = "stopping",
	};
	const struct worker *w = pool->w[i];
	*out = (struct hop_pool_slot){
	    .state = names[w->state],
	    .pid = w->state == S_DOWN || w->state == S_BACKOFF
		       ? 0
		       : (int)w->child.pid,
	    .item = w->inflight.head,
	    .held = (int)w->inflight.len,
	};
}

int hop_pool_busy(const struct hop_pool *pool)
{
	int n = 0;
	for (int i = 0; i < pool->cfg.size; i++)
		n += pool->w[i]->inflight.head != NULL;
	return n;
}

void pool_close_stdin(struct worker *w)
{
	hop_loop_unwatch(w->pool->loop, w->child.in);
	close(w->child.in);
	w->child.in = -1;
	pool_slot_event(w, E_CLOSE);
}

/* Retires workers beyond the target that hold nothing: a pending restart
 * first, then idle workers. */
static void retire_idle(struct hop_pool *pool)
{
	int extra = hop_pool_workers(pool) - pool->target;

	for (int i = pool->cfg.size - 1; i >= 0 && extra > 0; i--) {
		struct worker *w = pool->w[i];
		if (w->state == S_BACKOFF) {
			hop_loop_cancel(pool->loop, w->restart_timer);
			w->restart_timer = 0;
			pool_slot_event(w, E_CANCEL);
			extra--;
		}
	}
	for (int i = pool->cfg.size - 1; i >= 0 && extra > 0; i--) {
		struct worker *w = pool->w[i];
		if (!slot_up(w->state) || w->inflight.head || w->spawning)
			continue;
		if (pool->ops->retire(w, false))
			extra--;
	}
}

void hop_pool_resize(struct hop_pool *pool, int n)
{
	if (n < 0)
		n = 0;
	if (n > pool->cfg.size)
		n = pool->cfg.size;
	pool->target = n;
	if (pool->draining || pool->killing)
		return;
	int have = hop_pool_workers(pool);
	for (int i = 0; i < pool->cfg.size && have < n; i++) {
		struct worker *w = pool->w[i];
		if (w->state != S_DOWN)
			continue;
		have++;
		start_slot(w);
	}
	retire_idle(pool);
	pool->ev.changed(pool->ev.arg);
}

int hop_pool_submit(struct hop_pool *pool, struct hop_item *it)
{
	struct worker *best = NULL;
	size_t per = pool->ops->window(&pool->cfg);

	if (pool->draining || pool->killing)
		return -EBUSY;
	/* The least loaded worker, so that a prefetch window fills evenly. */
	for (int i = 0; i < pool->cfg.size; i++) {
		struct worker *w = pool->w[i];
		if (!slot_up(w->state) || w->inflight.len >= per)
			continue;
		if (!best || w->inflight.len < best->inflight.len)
			best = w;
		if (best->inflight.len == 0)
			break;
	}
	if (!best)
		return -EBUSY;
	it->attempt++;
	it->started_ms = hop_loop_now(pool->loop);
	hop_item_reset_outcome(it);
	pool->inflight++;
	pool_slot_event(best, E_TAKE);
	pool->ops->send(best, it);
	return 0;
}

/* Hands the head item's outcome to the coordinator. */
void pool_finish(struct worker *w, struct hop_item *it)
{
	struct hop_pool *pool = w->pool;
	int64_t now = hop_loop_now(pool->loop);

	hop_queue_remove(&w->inflight, it);
	pool->inflight--;
	if (!w->inflight.head)
		pool_slot_event(w, E_EMPTY);
	hop_stats_duration(pool->cfg.stats,
			   (double)(now - it->started_ms) / 1000);
	w->deadline = w->inflight.head && pool->cfg.timeout_ms
			  ? now + pool->cfg.timeout_ms
			  : 0;
	if (it->ok)
		w->crashes = 0;
	pool->ev.done(pool->ev.arg, it);
	bool retired = pool->draining && !w->inflight.head &&
		       slot_up(w->state) && pool->ops->retire(w, true);
	if (!retired && !w->inflight.head)
		retire_idle(pool);
	pool->ev.changed(pool->ev.arg);
}

void pool_return_all(struct worker *w)
{
	struct hop_pool *pool = w->pool;
	struct hop_item *it;

	if (!w->inflight.head) {
		w->deadline = 0;
		return;
	}
	while ((it = hop_queue_pop(&w->inflight))) {
		pool->inflight--;
		it->attempt--;
		hop_item_reset_outcome(it); /* what it emitted does not count */
		pool->ev.returned(pool->ev.arg, it);
	}
	w->deadline = 0;
	pool_slot_event(w, E_EMPTY);
}

static void sigkill_timer(struct hop_loop *loop, void *arg)
{
	struct worker *w = arg;
	w->kill_timer = 0;
	if (w->child.pid > 0) {
		hop_log_ev(HOP_WARN, w->index, NULL,
			   "worker ignored SIGTERM for %.1f s: sending SIGKILL",
			   (double)w->pool->cfg.kill_ms / 1000);
		hop_child_signal(&w->child, SIGKILL);
		w->sigkilled = true;
	}
}

/* Signals the worker's group to stop; SIGKILL follows if it lingers. */
static void stop_process(struct worker *w)
{
	pool_slot_event(w, E_SIGNAL);
	hop_child_signal(&w->child, SIGTERM);
	if (!w->kill_timer)
		w->kill_timer = hop_loop_after(
		    w->pool->loop, w->pool->cfg.kill_ms, sigkill_timer, w);
}

static bool ended_on_its_own(int status)
{
	if (WIFEXITED(status))
		return true;
	if (!WIFSIGNALED(status))
		return false;
	switch (WTERMSIG(status)) {
	case SIGSEGV:
	case SIGABRT:
	case SIGBUS:
	case SIGILL:
	case SIGFPE:
	case SIGSYS:
	case SIGTRAP:
		return true;
	default:
		return false;
	}
}

/* Called as a stream worker ends unasked, with its wait status. When it
 * ended on its own (an exit status, or a signal of its own making such as
 * SIGSEGV: not one sent from outside, like SIGKILL) before its first answer,
 * and no worker of the pool ever answered, it most likely cannot start at
 * all (a mistyped script name) and says nothing of the item it held. Tells
 * the run, and returns true while the items it held should go back
 * unattempted: for the first HOP_POOL_START_TRIES such ends in a row. */
static bool failed_start(struct worker *w, int status, const char *how)
{
	struct hop_pool *pool = w->pool;
	char why[1100];

	if (w->answered || pool->answered || !ended_on_its_own(status))
		return false;
	pool->start_failures++;
	snprintf(why, sizeof(why), "%s before its first answer", how);
	bool back = pool->start_failures <= HOP_POOL_START_TRIES;
	if (back && w->inflight.head)
		hop_log_ev(HOP_WARN, w->index, w->inflight.head->id,
			   "no worker has answered yet: the item goes back "
			   "unattempted");
	pool->ev.start_failed(pool->ev.arg, pool->start_failures, why,
			      w->last_err);
	return back;
}

void pool_kill_worker(struct worker *w, const char *fmt, ...)
{
	char why[1024];
	va_list ap;

	if (w->state == S_STOPPING || w->state == S_DOWN ||
	    w->state == S_BACKOFF)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	w->crashes++;
	struct hop_item *head = w->inflight.head;
	if (w->spawning)
		w->pool->ops->abort(w);
	if (w->child.pid > 0)
		stop_process(w);
	/* With an item in hand, the run logs its failure, this cause in it. */
	hop_log_ev(head ? HOP_DEBUG : HOP_ERROR, w->index,
		   head ? head->id : NULL, "%s", why);
	if (head) {
		hop_item_fail(head, true, "%s", why);
		pool_finish(w, head);
	}
	pool_return_all(w);
	w->pool->ev.changed(w->pool->ev.arg);
}

void pool_drain_stderr(struct worker *w)
{
	char *line;
	size_t len;

	while (w->err_open) {
		enum hop_line_status st =
		    hop_lines_next(&w->err, w->child.err, &line, &len);
		if (st == HOP_LINE_AGAIN)
			return;
		if (st == HOP_LINE_EOF || st == HOP_LINE_ERROR) {
			hop_loop_unwatch(w->pool->loop, w->child.err);
			w->err_open = false;
			return;
		}
		if (st == HOP_LINE_TOOLONG) {
			line = "(stderr line over the limit, dropped)";
			len = strlen(line);
		}
		struct hop_item *it = w->inflight.head;
		hop_log_ev(HOP_INFO, w->index, it ? it->id : NULL,
			   "stderr: %.*s", (int)(len > 1000 ? 1000 : len),
			   line);
		snprintf(w->last_err, sizeof(w->last_err), "%.*s",
			 (int)(len < sizeof(w->last_err)
				   ? len
				   : sizeof(w->last_err) - 1),
			 line);
		if (it)
			hop_item_add_stderr(it, line, len);
	}
}

static void on_in(struct hop_loop *loop, int fd, uint32_t events, void *arg);

static void flush_in(struct hop_loop *loop, void *arg)
{
	struct worker *w = arg;
	if (w->child.in < 0) {
		hop_buf_reset(&w->wbuf);
		return;
	}
	int rc = hop_buf_flush_fd(&w->wbuf, w->child.in);
	if (rc == -EAGAIN) {
		if (!w->wwatch &&
		    hop_loop_watch(loop, w->child.in, EPOLLOUT, on_in, w) == 0)
			w->wwatch = true;
		return;
	}
	if (w->wwatch) {
		hop_loop_unwatch(loop, w->child.in);
		w->wwatch = false;
	}
	/* An error (EPIPE) means the worker is gone: its pidfd will say so. */
	if (rc)
		hop_buf_reset(&w->wbuf);
	if (w->pool->ops->written)
		w->pool->ops->written(w);
}

static void on_in(struct hop_loop *loop, int fd, uint32_t events, void *arg)
{
	flush_in(loop, arg);
}

void pool_want_write(struct worker *w)
{
	hop_loop_soon(w->pool->loop, flush_in, w);
}

/* Forgets the child's descriptors and buffers. */
void pool_release_child(struct worker *w)
{
	struct hop_loop *loop = w->pool->loop;
	/* These descriptors are ours alone: closing them ends their epoll
	 * registrations, so no EPOLL_CTL_DEL is spent on them. */
	hop_loop_forget(loop, w->child.pidfd);
	hop_loop_forget(loop, w->child.out);
	hop_loop_forget(loop, w->child.err);
	hop_loop_forget(loop, w->child.in);
	hop_child_close(&w->child);
	hop_loop_cancel(loop, w->kill_timer);
	w->kill_timer = 0;
	hop_loop_cancel(loop, w->eof_timer);
	w->eof_timer = 0;
	hop_buf_reset(&w->wbuf);
	hop_buf_reset(&w->collected);
	if (w->pool->ops->released)
		w->pool->ops->released(w);
	w->out_open = w->err_open = w->wwatch = false;
}

void pool_add_stderr_reason(struct hop_item *it)
{
	if (!it->stderr_tail || !it->stderr_tail[0])
		return;
	size_t len = strlen(it->stderr_tail);
	const char *end = it->stderr_tail + len;
	while (end > it->stderr_tail && end[-1] == '\n')
		end--;
	const char *last = end;
	while (last > it->stderr_tail && last[-1] != '\n')
		last--;
	char *e = NULL;
	if (last < end &&
	    asprintf(&e, "%s: %.*s", it->error ? it->error : "failed",
		     (int)(end - last), last) >= 0) {
		free(it->error);
		it->error = e;
	}
}

void pool_worker_gone(struct worker *w, int status)
{
	struct hop_pool *pool = w->pool;
	char how[128];
	bool asked = w->state == S_RETIRING || w->state == S_STOPPING;

	hop_describe_status(status, how, sizeof(how));
	struct hop_item *head = w->inflight.head;
	char msg[256];
	snprintf(msg, sizeof(msg), "worker %d %s", w->index, how);
	if (head) {
		w->crashes++;
		/* The run logs the item's failure, this cause within it. */
		hop_log_ev(HOP_DEBUG, w->index, head->id,
			   "%s while handling the item", msg);
		if (!failed_start(w, status, msg)) {
			hop_item_fail(head, true, "%s while handling the item",
				      msg);
			pool_add_stderr_reason(head);
			pool_finish(w, head);
		}
		pool_return_all(w);
	} else if (!asked) {
		w->crashes++;
		hop_log_ev(HOP_ERROR, w->index, NULL, "%s", msg);
		failed_start(w, status, msg);
	} else {
		hop_log_ev(HOP_DEBUG, w->index, NULL, "worker %d %s", w->index,
			   how);
	}
	pool_release_child(w);
	pool_slot_event(w, E_EXITED);
	if (!pool->draining && !pool->killing &&
	    hop_pool_workers(pool) < pool->target) {
		int shift =
		    w->crashes > 5 ? 5 : (w->crashes > 0 ? w->crashes - 1 : 0);
		/* A worker that may not start at all is tried again soon:
		 * the few tries before the run gives up are quick. */
		if (!pool->answered &&
		    pool->start_failures <= HOP_POOL_START_TRIES)
			shift = 0;
		int64_t gap = (int64_t)RESTART_MIN_MS << shift;
		if (gap > RESTART_MAX_MS)
			gap = RESTART_MAX_MS;
		int64_t wait = w->started + gap - hop_now_ms();
		if (wait > 0)
			hop_log_ev(HOP_INFO, w->index, NULL,
				   "restarting worker in %.1f s",
				   (double)wait / 1000);
		w->restart_timer = hop_loop_after(pool->loop, wait, restart, w);
		pool_slot_event(w, E_RETRY);
	}
	pool->ev.changed(pool->ev.arg);
}

/* Brings a DOWN slot up. Returns true when it is; when its process could
 * not start, tries again later, backing off. */
static bool start_slot(struct worker *w)
{
	char err[512];

	if (w->pool->ops->start(w, err, sizeof(err)) == 0)
		return true;
	w->crashes++;
	int64_t gap = w->crashes > 5
			  ? RESTART_MAX_MS
			  : (int64_t)RESTART_MIN_MS << (w->crashes - 1);
	hop_log_ev(HOP_ERROR, w->index, NULL, "%s; trying again in %.0f s", err,
		   (double)gap / 1000);
	w->restart_timer = hop_loop_after(w->pool->loop, gap, restart, w);
	pool_slot_event(w, E_RETRY);
	return false;
}

static void restart(struct hop_loop *loop, void *arg)
{
	struct worker *w = arg;

	w->restart_timer = 0;
	if (w->pool->draining || w->pool->killing) {
		pool_slot_event(w, E_CANCEL);
		return;
	}
	if (start_slot(w))
		w->pool->ev.changed(w->pool->ev.arg);
}

void hop_pool_unqueue(struct hop_pool *pool)
{
	if (!pool->ops->unqueue)
		return;
	for (int i = 0; i < pool->cfg.size; i++)
		pool->ops->unqueue(pool->w[i]);
	pool->ev.changed(pool->ev.arg);
}

void hop_pool_drain(struct hop_pool *pool)
{
	pool->draining = true;
	for (int i = 0; i < pool->cfg.size; i++) {
		struct worker *w = pool->w[i];
		hop_loop_cancel(pool->loop, w->restart_timer);
		w->restart_timer = 0;
		if (w->state == S_BACKOFF)
			pool_slot_event(w, E_CANCEL);
		if (slot_up(w->state) && !w->inflight.head)
			pool->ops->retire(w, true);
		if (slot_up(w->state) && w->child.pid <= 0 && !w->spawning)
			pool_slot_event(w, E_DROP);
	}
	pool->ev.changed(pool->ev.arg);
}

void hop_pool_kill(struct hop_pool *pool)
{
	pool->killing = true;
	hop_loop_cancel(pool->loop, pool->tick);
	pool->tick = 0;
	for (int i = 0; i < pool->cfg.size; i++) {
		struct worker *w = pool->w[i];
		hop_loop_cancel(pool->loop, w->restart_timer);
		w->restart_timer = 0;
		if (w->state == S_BACKOFF)
			pool_slot_event(w, E_CANCEL);
		if (w->spawning)
			pool->ops->abort(w);
		pool_return_all(w);
		if (w->child.pid > 0)
			stop_process(w);
		else if (w->state != S_DOWN)
			pool_slot_event(w, E_DROP);
	}
	pool->ev.changed(pool->ev.arg);
}

void hop_pool_destroy(struct hop_pool *pool)
{
	if (!pool)
		return;
	pool->killing = true;
	hop_loop_cancel(pool->loop, pool->tick);
	/* Children started by the spawner after this point are killed by it. */
	hop_spawner_free(pool->spawner);
	pool->spawner = NULL;
	for (int i = 0; i < pool->cfg.size; i++) {
		struct worker *w = pool->w[i];
		hop_loop_cancel(pool->loop, w->restart_timer);
		pool_return_all(w);
		if (w->child.pid > 0) {
			hop_child_signal(&w->child, SIGKILL);
			waitpid(w->child.pid, NULL, 0);
			w->child.pid = -1;
		}
		pool_release_child(w);
		hop_lines_free(&w->out);
		hop_lines_free(&w->err);
		hop_buf_free(&w->collected);
		hop_buf_free(&w->wbuf);
		free(w->reason);
		if (w->item_fd >= 0)
			close(w->item_fd);
		if (pool->ops->remove_files)
			pool->ops->remove_files(w);
		free(w);
	}
	/* Groups left by workers that are gone: hopper leaves none behind. */
	hop_loop_cancel(pool->loop, pool->left_timer);
	for (int i = 0; i < pool->nleft; i++)
		kill(-pool->left[i].pgid, SIGKILL);
	free(pool->left);
	free(pool->w);
	free(pool);
}
