/* stream.c - the stream protocol: persistent workers, one JSON line in and
 * one JSON line out per item, in order.
 *
 * Anything a worker writes that breaks the contract (a line that is not
 * JSON, an answer for another item, no "ok") fails the item in hand with an
 * error naming the worker, and the worker is replaced: after such a line
 * nothing it says can be trusted to line up with the items queued behind.
 * A line is read by answer.c, the reader check-worker uses too.
 *
 * Emit lines for the item in hand go to its spool (it->emits), in order;
 * they count only when its answer is ok. An emit shows the worker alive,
 * as progress does, and extends the item's deadline.
 */
#include "pool_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "answer.h"
#include "log.h"
#include "loop.h"
#include "spool.h"

/* From EOF on a worker's stdout to stopping it, unless it exits first. A
 * process closes its descriptors a moment before its exit can be seen;
 * a second is ample even on a loaded machine, and nothing next to the
 * --timeout an item would otherwise wait out. */
#define EOF_GRACE_MS 1000

static void stream_read(struct worker *w);

/* The worker's exit: what it wrote before exiting is read first. */
static void on_pidfd(struct hop_loop *loop, int fd, uint32_t events, void *arg)
{
	struct worker *w = arg;
	int status = 0;

	if (!pool_reap(w, &status))
		return;
	/* Whatever it wrote before exiting is still in the pipes. */
	w->out.drained = w->err.drained = false;
	if (w->out_open)
		stream_read(w);
	pool_drain_stderr(w);
	pool_worker_gone(w, status);
}

static void on_out(struct hop_loop *loop, int fd, uint32_t events, void *arg)
{
	struct worker *w = arg;
	w->out.drained = false;
	stream_read(w);
}

static void on_err(struct hop_loop *loop, int fd, uint32_t events, void *arg)
{
	struct worker *w = arg;
	w->err.drained = false;
	pool_drain_stderr(w);
}

/* Watches the new process's exit, stdout and stderr. Returns 0, or
 * -ENOMEM. */
static int watch_child(struct worker *w)
{
	struct hop_loop *loop = w->pool->loop;
	struct hop_buf keep = w->err.buf;

	hop_lines_init(&w->err, 64 * 1024);
	w->err.buf = keep;
	hop_buf_reset(&w->err.buf);
	w->err.edge = true;
	w->out_open = w->err_open = true;
	w->wwatch = false;
	w->sigkilled = false;
	if (hop_loop_watch(loop, w->child.pidfd, EPOLLIN, on_pidfd, w) ||
	    hop_loop_watch(loop, w->child.out, EPOLLIN, on_out, w) ||
	    hop_loop_watch(loop, w->child.err, EPOLLIN, on_err, w))
		return -ENOMEM;
	return 0;
}

/* Starts the slot's persistent worker and watches its pipes and exit; the
 * worker is UP and has answered nothing yet. Returns 0, or -errno with a
 * message naming the command in err. */
static int stream_start(struct worker *w, char *err, size_t errlen)
{
	char index[32];
	snprintf(index, sizeof(index), "HOPPER_WORKER=%d", w->index);
	char *env[] = {index, "HOPPER_PROTOCOL=1", NULL};

	int rc = hop_spawn(w->pool->cfg.argv, env, &w->child, err, errlen);
	if (rc)
		return rc;
	hop_lines_init(&w->out, w->pool->cfg.max_line);
	w->out.edge = true;
	if (watch_child(w)) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	pool_slot_event(w, E_STARTED);
	w->answered = false;
	w->last_err[0] = '\0';
	w->started = hop_now_ms();
	w->pool->cfg.stats->worker_starts++;
	if (w->crashes > 0)
		w->pool->cfg.stats->worker_restarts++;
	hop_log_ev(HOP_DEBUG, w->index, NULL, "worker %d started (pid %d)",
		   w->index, (int)w->child.pid);
	return 0;
}

static void stream_send(struct worker *w, struct hop_item *it)
{
	struct hop_buf *b = &w->wbuf;

	hop_buf_append(b, "{\"id\":", 6);
	hop_buf_append_json_str(b, it->id);
	hop_buf_append(b, ",\"attempt\":", 11);
	hop_buf_append_int(b, it->attempt);
	hop_buf_append(b, ",\"payload\":", 11);
	hop_buf_append(b, it->payload, it->payload_len);
	hop_buf_append(b, "}\n", 2);
	if (!w->inflight.head && w->pool->cfg.timeout_ms)
		w->deadline =
		    hop_loop_now(w->pool->loop) + w->pool->cfg.timeout_ms;
	hop_queue_push(&w->inflight, it);
	pool_want_write(w);
}

/* Keeps one emitted output of the item in hand. A spool that cannot keep
 * it (memory, the disk) fails the item now, not the worker: the item stays
 * in hand until its answer, which then cannot make it ok, and may be
 * retried. */
static void keep_emit(struct worker *w, struct hop_item *it,
		      const struct hop_answer *a)
{
	struct hop_emit e = {(char *)a->result, a->result_len, a->port, a->key};
	int rc = -ENOMEM;

	if (it->error) /* lost an output already */
		return;
	if (!it->emits)
		it->emits =
		    hop_spool_new(w->pool->cfg.tmpdir, HOP_EMIT_MEM_LIMIT);
	if (it->emits && (rc = hop_spool_add(it->emits, &e)) == 0)
		return;
	hop_item_fail(it, true,
		      "cannot keep the outputs worker %d emitted in %s: %s",
		      w->index, w->pool->cfg.tmpdir, strerror(-rc));
}

/* The final ok answer: the item's outputs are its emits, its result or
 * none (drop). An item that lost an output stays failed. */
static void take_ok(struct hop_item *it, const struct hop_answer *a)
{
	if (it->error)
		return;
	it->result = strndup(a->result, a->result_len);
	it->ok = it->result != NULL;
	it->drop = a->drop;
	if (it->drop) {
		/* No output at all, whatever was emitted before. */
		hop_spool_free(it->emits);
		it->emits = NULL;
	}
}

/* Handles one line from the worker's stdout. */
static void stream_line(struct worker *w, char *line, size_t len)
{
	struct hop_item *it = w->inflight.head;
	struct hop_answer a;
	int shown = (int)(len > 120 ? 120 : len);

	if (!it) {
		hop_log_ev(
		    HOP_WARN, w->index, NULL,
		    "worker %d wrote to stdout with no item in hand (ignored): "
		    "'%.*s'",
		    w->index, shown, line);
		return;
	}
	switch (hop_answer_read(line, len, it->id, &a)) {
	case HOP_ANSWER_NOT_OBJECT:
		pool_kill_worker(
		    w,
		    "worker %d wrote a line that is not a JSON object "
		    "('%.*s'): only answer lines may go to stdout",
		    w->index, shown, line);
		break;
	case HOP_ANSWER_NO_ID:
		pool_kill_worker(
		    w, "worker %d answered without a string \"id\": '%.*s'",
		    w->index, shown, line);
		break;
	case HOP_ANSWER_NUMBER_ID:
		pool_kill_worker(w,
				 "worker %d answered with the id of item "
				 "'%.100s' as a number: ids are strings, to be "
				 "copied as they come",
				 w->index, it->id);
		break;
	case HOP_ANSWER_OTHER_ID:
		pool_kill_worker(
		    w,
		    "worker %d %s for item '%.100s' while handling "
		    "item '%.100s'",
		    w->index, a.emits ? "emitted" : "answered",
		    a.text ? a.text : "?", it->id);
		break;
	case HOP_ANSWER_EMIT:
		w->answered = w->pool->answered = true;
		if (w->pool->cfg.timeout_ms)
			w->deadline = hop_now_ms() + w->pool->cfg.timeout_ms;
		keep_emit(w, it, &a);
		break;
	case HOP_ANSWER_BAD_EMIT:
		pool_kill_worker(w,
				 "worker %d wrote a bad emit line for item "
				 "'%.100s': %s: '%.*s'",
				 w->index, it->id, a.text ? a.text : "?", shown,
				 line);
		break;
	case HOP_ANSWER_PROGRESS:
		w->answered = w->pool->answered = true;
		if (w->pool->cfg.timeout_ms)
			w->deadline = hop_now_ms() + w->pool->cfg.timeout_ms;
		break;
	case HOP_ANSWER_NO_OK:
		pool_kill_worker(w,
				 "worker %d: answer has no boolean \"ok\" (nor "
				 "\"progress\"): '%.*s'",
				 w->index, shown, line);
		break;
	case HOP_ANSWER_OK:
		w->answered = w->pool->answered = true;
		take_ok(it, &a);
		pool_finish(w, it);
		break;
	case HOP_ANSWER_FAILED:
		w->answered = w->pool->answered = true;
		hop_item_fail(
		    it, a.retry, "%s",
		    a.text ? a.text
			   : "the worker reported a failure and gave no error");
		pool_finish(w, it);
		break;
	}
	hop_answer_free(&a);
}

/* A worker that closed its stdout and still runs a while later. */
static void stdout_closed(struct hop_loop *loop, void *arg)
{
	struct worker *w = arg;

	w->eof_timer = 0;
	if (w->child.pid > 0)
		pool_kill_worker(
		    w,
		    "worker %d closed its stdout and kept running: "
		    "it can answer nothing more",
		    w->index);
}

/* Stdout is at its end. A process that exits closes it a moment before it
 * can be reaped: give the exit a little time to show, so that a crash is
 * reported as the crash it is. */
static void stdout_ended(struct worker *w)
{
	hop_loop_unwatch(w->pool->loop, w->child.out);
	w->out_open = false;
	if (w->child.pid <= 0 || w->eof_timer)
		return;
	if (slot_up(w->state) || (w->state == S_RETIRING && w->inflight.head))
		w->eof_timer = hop_loop_after(w->pool->loop, EOF_GRACE_MS,
					      stdout_closed, w);
}

/* Reads and handles the answer lines waiting on the worker's stdout. A
 * line that breaks the contract stops the worker; EOF while the process
 * still runs means it closed its stdout and can answer nothing more: unless
 * it exits within EOF_GRACE_MS (then its exit says why), it is stopped and
 * the item in hand fails with that reason. */
static void stream_read(struct worker *w)
{
	char *line;
	size_t len;

	while (w->out_open) {
		enum hop_line_status st =
		    hop_lines_next(&w->out, w->child.out, &line, &len);
		switch (st) {
		case HOP_LINE_OK:
			if (slot_up(w->state) || w->state == S_RETIRING)
				stream_line(w, line, len);
			break;
		case HOP_LINE_AGAIN:
			return;
		case HOP_LINE_TOOLONG:
			pool_kill_worker(
			    w,
			    "worker %d wrote a line over the %zu-byte limit "
			    "(--max-line)",
			    w->index, w->out.max);
			break;
		case HOP_LINE_EOF:
		case HOP_LINE_ERROR:
			stdout_ended(w);
			return;
		}
	}
}

static size_t stream_window(const struct hop_pool_config *cfg)
{
	return (size_t)cfg->prefetch;
}

/* Starts the first workers. With none to start, the command is still
 * checked now. */
static int stream_begin(struct hop_pool *pool, char *err, size_t errlen)
{
	int rc = pool->target ? 0 : pool_check_command(pool, err, errlen);
	for (int i = 0; i < pool->target && !rc; i++)
		rc = stream_start(pool->w[i], err, errlen);
	return rc;
}

/* EOF on stdin: the worker exits once it has answered what it holds. */
static bool stream_retire(struct worker *w, bool drain)
{
	if (w->child.in < 0)
		return false;
	if (!drain)
		hop_log_ev(HOP_DEBUG, w->index, NULL, "retiring idle worker %d",
			   w->index);
	pool_close_stdin(w);
	return true;
}

/* A persistent worker's buffers go with it. */
static void stream_released(struct worker *w)
{
	hop_lines_free(&w->out);
	hop_lines_free(&w->err);
	hop_buf_free(&w->collected);
}

const struct hop_worker_ops hop_worker_stream = {
    .name = "stream",
    .window = stream_window,
    .begin = stream_begin,
    .start = stream_start,
    .send = stream_send,
    .retire = stream_retire,
    .released = stream_released,
};
