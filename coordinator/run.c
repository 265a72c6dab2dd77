/* run.c - the coordinator's run: claim, dispatch, retry, write, acknowledge.
 *
 * The life of an item: fetched from the source into `ready`; handed to a
 * worker; its outcome either schedules a retry (a timer, after backoff with
 * jitter) or finishes it. A finished item, done or dead, is written to the
 * sink and waits in `written` until the sink's next flush says it is safe;
 * only then is it acknowledged (or dead-lettered) at its source. Nothing is
 * acknowledged that is not durable, so a crash at any point repeats work but
 * never loses it.
 *
 * A sink that cannot write for now (a full or read-only disk, a lost
 * server: a write or a flush answered RETRY) is an outage, not the items'
 * fault: the finished items are held, results intact, in the order they
 * finished, and written again after a backoff; meanwhile the run takes no
 * new items, so what is held is at most what was in flight. A source that
 * cannot record a dead letter for now (its dead answered -EAGAIN) is the
 * same: the item is held, not counted dead, and dead is tried again. An
 * item's attempts are for its worker only.
 *
 * Shutdown: the first SIGTERM or SIGINT stops claiming and hands waiting
 * items back to the source; in-flight items get `grace` to finish, then
 * their workers are killed and the items handed back too. A second SIGINT
 * skips the grace. Either way every item is acknowledged, dead or back at
 * its source when hopper exits: held items go back too. A finite run so
 * stopped with items not done exits 128 + the signal (130, 143).
 */
#include "run.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <limits.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "http.h"
#include "journal.h"
#include "log.h"
#include "loop.h"
#include "pool.h"
#include "scaler.h"
#include "progress.h"
#include "stage.h"
#include "stats.h"

enum phase { RUNNING, DRAINING, STOPPING };

/* Flushes a sink may have waiting for their answers at once, at most. */
#define MAX_FLUSHES 8

/* How results are batched between sink flushes. */
#define FLUSH_MS 5
#define FLUSH_BATCH 1024

/* The wait before writing held items again: doubled after each try that
 * fails, from the first to the most. */
#define HELD_FIRST_MS 100
#define HELD_MAX_MS 5000
/* How often a long outage is told again in the log. */
#define OUTAGE_REMIND_MS 60000

/* How often the autoscaler decides and the gauges are read. */
#define SCALE_TICK_MS 250

/* A place the run writes to that cannot take writes for now. */
struct outage {
	const char *what; /* "sink", "dead-letter place" */
	int64_t since;	  /* when it went out; 0 while it works */
	int64_t reminded; /* when the log last said it still was */
	uint64_t items;	  /* items held since it went out */
	char error[512];  /* its latest error */
};

struct run {
	struct hop_config *cfg;
	struct hop_loop *loop;
	struct hop_source *src;
	struct hop_sink *sink;
	/* The run's one stage: its pool, its queues (ready: claimed, waiting
	 * for a worker; waiting: failed, waiting for their retry), its
	 * scaler, its counts. */
	struct hop_stage stage, *st;
	struct hop_stage_config main_stage; /* when the config has none */
	struct hop_queue written; /* in the sink, waiting for a flush */
	/* Finished, but the sink could not take them (held), or it did and
	 * the source could not record their dead letters (held_dead). */
	struct hop_queue held, held_dead;
	struct outage sink_out, dead_out;
	uint64_t held_timer;
	int64_t held_wait_ms;
	bool held_probed; /* the sink took one held item: write the rest */
	/* Flushes the sink has not answered yet, oldest first: one at a
	 * time, or up to the sink's max_flushes. */
	struct hop_queue flushing[MAX_FLUSHES];
	int fhead, nflush;
	enum phase phase;
	int sigfd;
	int sigints;
	bool signalled;
	int first_signal; /* the signal that stopped the run, for its exit */
	uint64_t grace_timer;
	uint64_t flush_timer;
	uint64_t stop_timer;
	bool source_failed;
	int64_t t0;
	struct hop_stats stats;
	uint64_t scale_timer;
	FILE *trace;
	struct hop_http *http;
	struct hop_progress *progress;
	/* Attempts that ended, and failed, for --halt; the exit code of a
	 * halt once one is asked for (0: none), and why. */
	int64_t attempts_ended, attempts_failed;
	int halt_code;
	bool halt_now;
	char halt_why[1024];
	/* The run journal (--journal), the items it let this run skip, and
	 * whether recording in it failed. */
	struct hop_journal *journal;
	uint64_t skipped, skipped_dead;
	bool journal_failed;
};

static void pump(struct hop_loop *loop, void *arg);
static void release_waiting(struct run *r);
static void wake_scaler(struct run *r);
static void settle_now(struct hop_loop *loop, void *arg);

static void schedule(struct run *r)
{
	hop_loop_soon(r->loop, pump, r);
}

/* A source or sink call failed: log it (about item, when there is one),
 * count it and keep it for /status. */
static void source_error(struct run *r, const char *item)
{
	r->stats.source_errors++;
	hop_stats_error(&r->stats, "%s", r->src->error);
	hop_log_ev(HOP_ERROR, -1, item, "%s", r->src->error);
}

static void sink_error(struct run *r, const char *item)
{
	r->stats.sink_errors++;
	hop_stats_error(&r->stats, "%s", r->sink->error);
	hop_log_ev(HOP_ERROR, -1, item, "%s", r->sink->error);
}

static void retry_held(struct hop_loop *loop, void *arg);

static bool out(const struct run *r)
{
	return r->sink_out.since || r->dead_out.since;
}

/* Tries the held items again after the current wait, doubled each time. */
static void arm_held(struct run *r)
{
	if (r->held_timer || !out(r))
		return;
	r->held_timer = hop_loop_after(r->loop, r->held_wait_ms, retry_held, r);
	r->held_wait_ms *= 2;
	if (r->held_wait_ms > HELD_MAX_MS)
		r->held_wait_ms = HELD_MAX_MS;
}

/* A write to o failed and may work later: the first failure of an outage
 * says so, once, with the error and what the run does meanwhile. */
static void outage_begin(struct run *r, struct outage *o, const char *error)
{
	snprintf(o->error, sizeof(o->error), "%s", error);
	if (o->since)
		return;
	o->since = o->reminded = hop_now_ms();
	o->items = 0;
	hop_stats_error(&r->stats, "the %s is out: %s", o->what, error);
	hop_log(HOP_ERROR,
		"the %s is out: %s; holding finished items (not failed, not "
		"dead) and taking no new ones until it is back",
		o->what, error);
	arm_held(r);
}

/* o took every held item: say how long it was out and go on. */
static void outage_end(struct run *r, struct outage *o)
{
	if (!o->since)
		return;
	hop_log(HOP_INFO,
		"the %s is back after %.1f s: %llu held item(s) "
		"written; taking new items again",
		o->what, (double)(hop_now_ms() - o->since) / 1000,
		(unsigned long long)o->items);
	o->since = 0;
	if (!out(r)) {
		r->held_wait_ms = HELD_FIRST_MS;
		hop_loop_cancel(r->loop, r->held_timer);
		r->held_timer = 0;
	}
	schedule(r);
}

/* A long outage is told again now and then, so that a run that waits for
 * it is seen to. */
static void outage_remind(struct run *r, struct outage *o, size_t held)
{
	int64_t now = hop_now_ms();
	if (!o->since || now - o->reminded < OUTAGE_REMIND_MS)
		return;
	o->reminded = now;
	hop_log(HOP_WARN,
		"the %s is still out after %.0f s (%s): %zu item(s) held; "
		"the run waits for it (SIGTERM hands them back to the source)",
		o->what, (double)(now - o->since) / 1000, o->error, held);
}

/* Puts every item of front before those of q. */
static void queue_prepend(struct hop_queue *q, struct hop_queue *front)
{
	if (!front->head)
		return;
	front->tail->next = q->head;
	if (!q->tail)
		q->tail = front->tail;
	q->head = front->head;
	q->len += front->len;
	*front = (struct hop_queue){0};
}

static void hold(struct run *r, struct outage *o, struct hop_queue *q,
		 struct hop_item *it)
{
	hop_queue_push(q, it);
	o->items++;
}

/* The dead letter's record: what a person needs to see why it died. */
static char *dead_record(const struct hop_item *it)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_string(it->id));
	json_object_set_new(o, "error",
			    json_string(it->error ? it->error : "failed"));
	json_object_set_new(o, "attempts", json_integer(it->attempt));
	json_object_set_new(o, "permanent", json_boolean(!it->retry));
	if (it->stderr_tail)
		json_object_set_new(o, "stderr", json_string(it->stderr_tail));
	json_t *p =
	    json_loadb(it->payload, it->payload_len, JSON_DECODE_ANY, NULL);
	json_object_set_new(o, "payload", p ? p : json_null());
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

/* Writes a finished item to the sink, or holds it while the sink is out. */
static void finish_item(struct run *r, struct hop_item *it);

static int64_t backoff_ms(const struct run *r, int attempt)
{
	double d = r->cfg->backoff * 1000;
	for (int i = 1; i < attempt && d < r->cfg->backoff_max * 1000; i++)
		d *= 2;
	if (d > r->cfg->backoff_max * 1000)
		d = r->cfg->backoff_max * 1000;
	/* Equal jitter: between half and all of the delay. */
	return (int64_t)(d / 2 + d / 2 * ((double)random() / RAND_MAX));
}

static void retry_due(struct hop_loop *loop, void *arg);

struct retry_timer {
	struct run *r;
	struct hop_item *it;
};

static void fail_item(struct run *r, struct hop_item *it)
{
	if (it->retry && it->attempt < r->cfg->attempts &&
	    r->phase == RUNNING) {
		int64_t wait = backoff_ms(r, it->attempt);
		hop_log_ev(HOP_WARN, -1, it->id,
			   "attempt %d of %ld failed: %s; retrying in %.1f s",
			   it->attempt, (long)r->cfg->attempts, it->error,
			   (double)wait / 1000);
		r->stats.retries++;
		r->st->stats.retries++;
		if (r->src->ops->nack) {
			/* The source keeps the schedule (and survives us). */
			if (r->src->ops->nack(r->src, it, wait))
				source_error(r, it->id);
			hop_item_free(it);
			return;
		}
		struct retry_timer *t = malloc(sizeof(*t));
		if (t) {
			*t = (struct retry_timer){r, it};
			hop_queue_push(&r->st->waiting, it);
			it->timer = hop_loop_after(r->loop, wait, retry_due, t);
			return;
		}
	}
	if (it->retry && it->attempt < r->cfg->attempts) {
		/* Shutting down: not dead, just not finished. */
		r->stats.released++;
		if (r->src->ops->release(r->src, it))
			source_error(r, it->id);
		hop_item_free(it);
		return;
	}
	if (r->src->ops->dying)
		r->src->ops->dying(r->src, it);
	hop_log_ev(HOP_ERROR, -1, it->id, "dead after %d attempt%s: %s",
		   it->attempt, it->attempt == 1 ? "" : "s", it->error);
	hop_stats_error(&r->stats, "item %.60s dead after %d attempt%s: %s",
			it->id, it->attempt, it->attempt == 1 ? "" : "s",
			it->error);
	finish_item(r, it);
}

/* The sink answered st (OK or FAIL) to it's write. FAIL can never work
 * for this item: a result fails it for good; a dead item goes on to its
 * source's dead letter, which still records it. */
static void after_write(struct run *r, struct hop_item *it,
			enum hop_sink_status st)
{
	if (st == HOP_SINK_FAIL && it->ok) {
		sink_error(r, it->id);
		hop_item_fail(it, false, "%s", r->sink->error);
		fail_item(r, it);
		return;
	}
	if (st == HOP_SINK_FAIL)
		sink_error(r, it->id);
	hop_queue_push(&r->written, it);
	/* Flush in batches: at most FLUSH_MS after the first unflushed item,
	 * or at once when many wait. */
	if (r->written.len >= FLUSH_BATCH)
		hop_loop_soon(r->loop, settle_now, r);
	else if (!r->flush_timer)
		r->flush_timer =
		    hop_loop_after(r->loop, FLUSH_MS, settle_now, r);
}

static void finish_item(struct run *r, struct hop_item *it)
{
	if (r->sink_out.since) { /* in order, behind what is held */
		hold(r, &r->sink_out, &r->held, it);
		return;
	}
	enum hop_sink_status st = r->sink->ops->write(r->sink, it);
	if (st == HOP_SINK_RETRY) {
		r->stats.sink_errors++;
		outage_begin(r, &r->sink_out, r->sink->error);
		hold(r, &r->sink_out, &r->held, it);
		return;
	}
	after_write(r, it, st);
}

static void retry_due(struct hop_loop *loop, void *arg)
{
	struct retry_timer *t = arg;
	struct run *r = t->r;
	struct hop_item *it = t->it;

	free(t);
	it->timer = 0;
	hop_queue_remove(&r->st->waiting, it);
	hop_queue_push(&r->st->ready, it);
	schedule(r);
}

/* The percentage form of --halt is judged once this many attempts ended. */
#define HALT_MIN_ATTEMPTS 10

/* Stops the run that a halt asked for: nothing more is claimed, waiting
 * items go back to the source, and in-flight items either finish (soon) or
 * are stopped and handed back too (now). Runs from the loop, never from
 * inside a pool callback. */
static void halt_run(struct hop_loop *loop, void *arg)
{
	struct run *r = arg;

	if (r->phase != RUNNING)
		return;
	r->phase = DRAINING;
	hop_log(HOP_ERROR, "%s", r->halt_why);
	hop_stats_error(&r->stats, "%s", r->halt_why);
	hop_pool_unqueue(r->st->pool);
	release_waiting(r);
	if (r->halt_now)
		hop_pool_kill(r->st->pool);
	schedule(r);
}

/* Asks for a halt with exit code code; the first one asked for wins. */
static void request_halt(struct run *r, int code, bool now, const char *fmt,
			 ...) __attribute__((format(printf, 4, 5)));
static void request_halt(struct run *r, int code, bool now, const char *fmt,
			 ...)
{
	va_list ap;

	if (r->halt_code || r->phase != RUNNING)
		return;
	r->halt_code = code;
	r->halt_now = now;
	va_start(ap, fmt);
	vsnprintf(r->halt_why, sizeof(r->halt_why), fmt, ap);
	va_end(ap);
	hop_loop_soon(r->loop, halt_run, r);
}

/* Counts an attempt that ended, and halts when --halt says so. */
static void count_attempt(struct run *r, bool ok)
{
	const struct hop_config *cfg = r->cfg;

	r->attempts_ended++;
	r->attempts_failed += !ok;
	if (ok || (!cfg->halt_fail && !cfg->halt_pct))
		return;
	bool hit = cfg->halt_pct
		       ? r->attempts_ended >= HALT_MIN_ATTEMPTS &&
			     (double)r->attempts_failed * 100 >=
				 cfg->halt_pct * (double)r->attempts_ended
		       : r->attempts_failed >= cfg->halt_fail;
	if (hit)
		request_halt(r, HOP_EXIT_HALTED, cfg->halt_now,
			     "--halt %s: %lld of %lld attempts failed; "
			     "stopping (%s)",
			     cfg->halt, (long long)r->attempts_failed,
			     (long long)r->attempts_ended,
			     cfg->halt_now ? "items in flight are handed back"
					   : "items in flight may finish");
}

/* pool callbacks */
static void on_start_failed(void *arg, int in_a_row, const char *why,
			    const char *stderr_line)
{
	struct run *r = arg;
	char said[400] = "";

	count_attempt(r, false);
	if (in_a_row != HOP_POOL_START_TRIES)
		return;
	if (stderr_line[0])
		snprintf(said, sizeof(said), " (its last line on stderr: %s)",
			 stderr_line);
	else
		snprintf(said, sizeof(said), " (it wrote nothing to stderr)");
	if (r->cfg->watch) {
		hop_log(HOP_ERROR,
			"%s%s, %d times in a row, and no worker has answered "
			"yet: restarting it with backoff",
			why, said, in_a_row);
		return;
	}
	request_halt(r, HOP_EXIT_FAILURE, true,
		     "%s%s, %d times in a row, and no worker has answered yet: "
		     "stopping the run; every item goes back to its source",
		     why, said, in_a_row);
}

static void on_done(void *arg, struct hop_item *it)
{
	struct run *r = arg;
	count_attempt(r, it->ok);
	if (r->st->cold_since) {
		r->stats.cold_start_ms = hop_now_ms() - r->st->cold_since;
		hop_log_ev(HOP_INFO, -1, it->id,
			   "cold start: %lld ms from starting the first worker "
			   "to its first answer",
			   (long long)r->stats.cold_start_ms);
		r->st->cold_since = 0;
	}
	if (it->ok)
		finish_item(r, it);
	else
		fail_item(r, it);
}

static void on_returned(void *arg, struct hop_item *it)
{
	struct run *r = arg;
	if (r->phase == RUNNING) {
		hop_queue_push(&r->st->ready, it);
	} else {
		r->stats.released++;
		if (r->src->ops->release(r->src, it))
			source_error(r, it->id);
		hop_item_free(it);
	}
	schedule(r);
}

static void on_changed(void *arg)
{
	schedule(arg);
}

static void on_wake(void *arg)
{
	schedule(arg);
}

/* Recording in the journal failed: what is done is in the sink, but a
 * rerun would not know it. The run stops rather than go on unrecorded. */
static void journal_broke(struct run *r)
{
	const char *why = hop_journal_error(r->journal);
	if (r->journal_failed)
		return;
	r->journal_failed = true;
	hop_stats_error(&r->stats, "%s", why);
	if (r->phase == RUNNING)
		request_halt(r, HOP_EXIT_FAILURE, false,
			     "%s: stopping the run (its results are in the "
			     "sink; a rerun does again what the journal "
			     "missed)",
			     why);
	else
		hop_log(HOP_ERROR, "%s", why);
}

static void journal_add(struct run *r, const struct hop_item *it)
{
	if (r->journal && hop_journal_add(r->journal, it))
		hop_log_ev(HOP_ERROR, -1, it->id,
			   "out of memory: not recorded in the journal");
}

/* Writes what was added to the journal and syncs it to disk. */
static void journal_sync(struct run *r)
{
	if (r->journal && hop_journal_sync(r->journal))
		journal_broke(r);
}

static void on_dead_done(void *arg, const char *id, bool ok)
{
	struct run *r = arg;
	if (ok) {
		r->stats.dead++;
		return;
	}
	r->stats.dead_unwritten++;
	source_error(r, id);
}

/* Hands a dead item to its source's dead-letter place and frees it.
 * Returns false, with the item still the caller's, when the place cannot
 * take it for now (-EAGAIN): then it is not dead, and is held. */
static bool record_dead(struct run *r, struct hop_item *it)
{
	char *rec = dead_record(it);
	int rc = r->src->ops->dead(r->src, it, rec ? rec : "{}");
	free(rec);
	if (rc == -EAGAIN) {
		r->stats.source_errors++;
		outage_begin(r, &r->dead_out, r->src->error);
		return false;
	}
	/* Dead only once the dead letter is written: a pending one counts
	 * in on_dead_done. */
	if (rc >= 0)
		journal_add(r, it);
	if (rc == 0) {
		r->stats.dead++;
	} else if (rc < 0) {
		r->stats.dead_unwritten++;
		source_error(r, it->id);
	}
	hop_item_free(it);
	return true;
}

/* Settles the items of the flush the sink answered with st: acknowledged
 * (or dead-lettered) at their source when it went well; held when the sink
 * may take them later; failed when it never will. */
static void settle_flushed(struct run *r, struct hop_queue *q,
			   enum hop_sink_status st)
{
	struct hop_item *it;
	if (st == HOP_SINK_RETRY && q->head) {
		r->stats.sink_errors++;
		outage_begin(r, &r->sink_out, r->sink->error);
		r->sink_out.items += q->len;
		queue_prepend(&r->held, q); /* they finished first */
		return;
	}
	if (st != HOP_SINK_OK && q->head) {
		r->stats.sink_errors++;
		hop_stats_error(&r->stats, "%s", r->sink->error);
	}
	/* Their results are durable: the journal says so before the source
	 * hears it. */
	for (it = q->head; st == HOP_SINK_OK && r->journal && it; it = it->next)
		if (it->ok)
			journal_add(r, it);
	journal_sync(r);
	while ((it = hop_queue_pop(q))) {
		if (st != HOP_SINK_OK && it->ok) {
			hop_item_fail(it, false, "%s", r->sink->error);
			fail_item(r, it);
		} else if (it->ok) {
			if (r->src->ops->ack(r->src, it))
				source_error(r, it->id);
			r->stats.done++;
			hop_item_free(it);
		} else if (r->dead_out.since || !record_dead(r, it)) {
			hold(r, &r->dead_out, &r->held_dead, it);
		}
	}
	journal_sync(r); /* the dead among them */
	if (st != HOP_SINK_OK || !r->sink_out.since)
		return;
	if (!r->held.head) {
		outage_end(r, &r->sink_out);
	} else {
		/* The sink took what was tried: the rest goes at once. */
		r->held_probed = true;
		r->held_wait_ms = HELD_FIRST_MS;
		hop_loop_cancel(r->loop, r->held_timer);
		r->held_timer = hop_loop_after(r->loop, 0, retry_held, r);
	}
}

/* Flushes the sink and settles everything written since the last flush,
 * unless as many flushes as the sink takes are waiting for their answers:
 * then what was written since goes with the next one. */
static void settle(struct run *r)
{
	int most = r->sink->ops->max_flushes;
	if (most < 1)
		most = 1;
	if (most > MAX_FLUSHES)
		most = MAX_FLUSHES;
	if (r->nflush >= most || !r->written.head)
		return;
	int k = (r->fhead + r->nflush) % MAX_FLUSHES;
	r->flushing[k] = r->written;
	r->written = (struct hop_queue){0};
	r->nflush++;
	enum hop_sink_status st = r->sink->ops->flush(r->sink);
	if (st != HOP_SINK_PENDING) {
		/* Answered at once: only ever with nothing else pending. */
		r->nflush--;
		settle_flushed(r, &r->flushing[k], st);
	}
}

/* The sink answers its pending flushes in the order they were made. */
static void on_flushed(void *arg, enum hop_sink_status st)
{
	struct run *r = arg;
	if (r->nflush == 0)
		return;
	struct hop_queue *q = &r->flushing[r->fhead];
	r->fhead = (r->fhead + 1) % MAX_FLUSHES;
	r->nflush--;
	settle_flushed(r, q, st);
	settle(r);
	schedule(r);
}

/* Settles everything before the run ends, waiting for the sink. */
static void settle_all(struct run *r)
{
	for (int i = 0; i < 100 && (r->nflush || r->written.head); i++) {
		if (r->nflush && !r->sink->ops->wait)
			break;
		if (r->nflush)
			r->sink->ops->wait(r->sink);
		else
			settle(r);
	}
}

static void settle_now(struct hop_loop *loop, void *arg)
{
	struct run *r = arg;
	hop_loop_cancel(loop, r->flush_timer);
	r->flush_timer = 0;
	settle(r);
	schedule(r);
}

/* The held items' turn: dead letters to their source, in order, as far as
 * it goes; then results to the sink, in order: the first alone, and the
 * rest once a flush took it. A sink that cannot write any item makes one
 * try per wait; one that refuses a single item for good (FAIL) is not
 * kept from the others by it. */
static void retry_held(struct hop_loop *loop, void *arg)
{
	struct run *r = arg;
	struct hop_item *it;
	size_t most = r->held_probed ? (size_t)-1 : 1;

	r->held_timer = 0;
	outage_remind(r, &r->dead_out, r->held_dead.len);
	outage_remind(r, &r->sink_out, r->held.len);
	while ((it = hop_queue_pop(&r->held_dead))) {
		if (!record_dead(r, it)) {
			struct hop_queue one = {it, it, 1};
			it->next = NULL;
			queue_prepend(&r->held_dead, &one);
			break;
		}
	}
	journal_sync(r);
	if (!r->held_dead.head)
		outage_end(r, &r->dead_out);
	r->held_probed = false;
	while (r->held.head && r->written.len < most) {
		it = r->held.head;
		enum hop_sink_status st = r->sink->ops->write(r->sink, it);
		if (st == HOP_SINK_RETRY) {
			r->stats.sink_errors++;
			snprintf(r->sink_out.error, sizeof(r->sink_out.error),
				 "%s", r->sink->error);
			break;
		}
		hop_queue_pop(&r->held);
		after_write(r, it, st);
	}
	if (r->written.head)
		settle_now(loop, r); /* the flush says whether it is back */
	else if (!r->held.head && !r->nflush)
		outage_end(r, &r->sink_out);
	arm_held(r);
}

static bool finished(struct run *r)
{
	bool idle = !r->st->ready.head && !r->st->waiting.head &&
		    !r->written.head && !r->nflush &&
		    hop_pool_inflight(r->st->pool) == 0;
	if (r->phase != RUNNING)
		return idle; /* what is held goes back to the source */
	return idle && !r->held.head && !r->held_dead.head &&
	       r->src->ops->exhausted(r->src);
}

static void stop_timer(struct hop_loop *loop, void *arg)
{
	struct run *r = arg;
	r->stop_timer = 0;
	hop_loop_stop(loop);
}

/* All work is settled: let the workers go and end the loop once they are
 * gone (or after kill_timeout and a little more, whatever they do). */
static void wind_down(struct run *r)
{
	if (r->phase == STOPPING)
		return;
	r->phase = STOPPING;
	hop_pool_drain(r->st->pool);
	r->stop_timer = hop_loop_after(
	    r->loop, (int64_t)(r->cfg->kill_timeout * 1000) + 2000, stop_timer,
	    r);
}

/* An item the journal records as finished by an earlier run: done at its
 * source, and not run again. */
static void skip_item(struct run *r, struct hop_item *it)
{
	if (hop_journal_dead(r->journal, it->id))
		r->skipped_dead++;
	else
		r->skipped++;
	if (r->src->ops->ack(r->src, it))
		source_error(r, it->id);
	if (r->stats.total > 0)
		r->stats.total--; /* the progress line counts what is run */
	hop_item_free(it);
}

static void pump(struct hop_loop *loop, void *arg)
{
	struct run *r = arg;

	/* A halt asked for stops claiming at once; halt_run does the rest. */
	if (r->phase == RUNNING && !r->source_failed && !out(r) &&
	    !r->halt_code) {
		size_t cap = hop_pool_capacity(r->st->pool);
		/* Autoscaled, one item is fetched ahead even with no free
		 * worker: that is how work shows when the source cannot
		 * tell its depth, and how the first item wakes a pool of
		 * none. */
		if (r->cfg->autoscale && r->st->ready.len == 0 && cap == 0)
			cap = 1;
		if (cap > r->st->ready.len) {
			size_t had = r->st->ready.len;
			int rc = r->src->ops->fetch(r->src, &r->st->ready,
						    cap - r->st->ready.len);
			r->stats.fetched += r->st->ready.len - had;
			if (rc) {
				source_error(r, NULL);
				r->source_failed = true;
			}
		}
		bool skipped = false;
		while (r->st->ready.head && !out(r)) {
			struct hop_item *it = r->st->ready.head;
			if (r->journal &&
			    hop_journal_skip(r->journal, it->id)) {
				hop_queue_pop(&r->st->ready);
				skip_item(r, it);
				skipped = true;
				continue;
			}
			if (it->invalid) {
				hop_queue_pop(&r->st->ready);
				if (r->src->ops->dying)
					r->src->ops->dying(r->src, it);
				hop_log_ev(HOP_ERROR, -1, it->id, "dead: %s",
					   it->error);
				finish_item(r, it);
				continue;
			}
			if (hop_pool_capacity(r->st->pool) == 0)
				break;
			hop_queue_pop(&r->st->ready);
			hop_pool_submit(r->st->pool, it);
		}
		if (skipped)
			schedule(r); /* fetch what the skipped made room for */
		wake_scaler(r);
	}
	if (r->phase != RUNNING)
		settle(r);
	if (r->phase == STOPPING) {
		if (hop_pool_stopped(r->st->pool))
			hop_loop_stop(loop);
	} else if (finished(r) ||
		   (r->source_failed && !hop_pool_inflight(r->st->pool) &&
		    !r->st->waiting.head && !r->written.head && !r->nflush)) {
		wind_down(r);
		if (hop_pool_stopped(r->st->pool))
			hop_loop_stop(loop);
	}
}

/* Hands every item not in a worker's hands back to the source. */
static void release_waiting(struct run *r)
{
	struct hop_item *it;
	while ((it = hop_queue_pop(&r->st->waiting))) {
		free(hop_loop_cancel(r->loop, it->timer));
		hop_queue_push(&r->st->ready, it);
	}
	while ((it = hop_queue_pop(&r->st->ready))) {
		r->stats.released++;
		if (r->src->ops->release(r->src, it))
			source_error(r, it->id);
		hop_item_free(it);
	}
}

static void grace_over(struct hop_loop *loop, void *arg)
{
	struct run *r = arg;
	r->grace_timer = 0;
	if (hop_pool_inflight(r->st->pool) > 0)
		hop_log(HOP_WARN,
			"grace of %.0f s is over: stopping %zu item(s) "
			"still in flight and handing them back",
			r->cfg->grace, hop_pool_inflight(r->st->pool));
	hop_pool_kill(r->st->pool);
	schedule(r);
}

static void on_signal(struct hop_loop *loop, int fd, uint32_t events, void *arg)
{
	struct run *r = arg;
	struct signalfd_siginfo si;

	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGINT)
			r->sigints++;
		bool first = !r->signalled;
		r->signalled = true;
		if (first)
			r->first_signal = (int)si.ssi_signo;
		if (r->phase == DRAINING && first && !r->halt_now) {
			/* Halting soon: a signal bounds the wait with grace. */
			r->grace_timer = hop_loop_after(
			    loop, (int64_t)(r->cfg->grace * 1000), grace_over,
			    r);
		} else if (r->phase == RUNNING) {
			r->phase = DRAINING;
			hop_pool_unqueue(r->st->pool);
			hop_log(
			    HOP_INFO,
			    "%s: stopping; %zu item(s) in flight get %.0f s "
			    "to finish",
			    strsignal((int)si.ssi_signo),
			    hop_pool_inflight(r->st->pool), r->cfg->grace);
			release_waiting(r);
			r->grace_timer = hop_loop_after(
			    loop, (int64_t)(r->cfg->grace * 1000), grace_over,
			    r);
		} else if (si.ssi_signo == SIGINT && r->sigints >= 2) {
			hop_log(HOP_WARN, "second interrupt: stopping now");
			hop_loop_cancel(loop, r->grace_timer);
			r->grace_timer = 0;
			grace_over(loop, r);
		}
	}
	schedule(r);
}

static int setup_signals(struct run *r)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	r->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (r->sigfd < 0)
		return -errno;
	return hop_loop_watch(r->loop, r->sigfd, EPOLLIN, on_signal, r);
}

/* Brings the gauges of the run's stats up to date, for the endpoints and
 * the progress line. */
static void refresh_stats(void *arg)
{
	struct run *r = arg;
	int64_t depth = r->src->ops->depth(r->src);

	/* What waits for a worker: at the source, or claimed. */
	r->stats.depth = depth < 0 ? -1 : depth + (int64_t)r->st->ready.len;
	r->stats.sink_repairs = r->sink->repairs;
	r->stats.held = (int64_t)(r->held.len + r->held_dead.len);
	struct hop_stats *ss = &r->st->stats;
	ss->depth = r->stats.depth;
	if (r->st->pool) {
		ss->inflight = (int64_t)hop_pool_inflight(r->st->pool);
		ss->workers = hop_pool_workers(r->st->pool);
		ss->workers_busy = hop_pool_busy(r->st->pool);
	}
	const struct hop_stats *all[] = {ss};
	hop_stats_sum_pools(&r->stats, all, 1);
	r->stats.inflight = ss->inflight;
	r->stats.workers = ss->workers;
	r->stats.workers_busy = ss->workers_busy;
}

/* Ready means the run takes work: it is not stopping, its source is open
 * and reachable, and its pool can run items (workers are live, or may be
 * started). */
static bool run_ready(void *arg, char *why, size_t n)
{
	struct run *r = arg;
	if (r->phase == DRAINING && r->halt_code) {
		snprintf(why, n, "halted: %s", r->halt_why);
		return false;
	}
	if (r->phase == DRAINING) {
		snprintf(why, n, "draining: stopping after a signal");
		return false;
	}
	if (r->phase == STOPPING) {
		snprintf(why, n, "stopping: the run is over");
		return false;
	}
	if (r->source_failed) {
		snprintf(why, n, "the source failed: %s", r->src->error);
		return false;
	}
	if (!r->st->pool) {
		snprintf(why, n, "starting");
		return false;
	}
	if (r->sink_out.since) {
		snprintf(why, n, "the sink is out: %s (%zu item(s) held)",
			 r->sink_out.error, r->held.len);
		return false;
	}
	if (r->dead_out.since) {
		snprintf(why, n,
			 "the dead-letter place is out: %s (%zu item(s) held)",
			 r->dead_out.error, r->held_dead.len);
		return false;
	}
	if (r->src->ops->ready && !r->src->ops->ready(r->src, why, n))
		return false;
	return true;
}

/* The progress line (a finite run on a terminal) and the source's total. */
static void start_reporting(struct run *r)
{
	struct hop_config *cfg = r->cfg;
	bool progress = cfg->progress && !cfg->watch &&
			strcmp(cfg->log_format, "json") != 0 &&
			isatty(STDERR_FILENO);
	if (r->src->ops->total && !cfg->watch && (progress || r->http))
		r->stats.total = r->src->ops->total(r->src);
	if (progress)
		r->progress =
		    hop_progress_start(r->loop, &r->stats, refresh_stats, r);
}

/* Every SCALE_TICK_MS: the gauges, the autoscaler's decision, a trace row. */
static void scale_tick(struct hop_loop *loop, void *arg)
{
	struct run *r = arg;
	int64_t now = hop_now_ms();

	hop_loop_cancel(loop, r->scale_timer);
	r->scale_timer = hop_loop_after(loop, SCALE_TICK_MS, scale_tick, r);
	refresh_stats(r);
	/* While the sink is out no item is handed out: none waits for a
	 * worker. */
	bool none = out(r);
	struct hop_scaler_input in = {
	    .now_ms = now,
	    .waiting = none		     ? 0
		       : r->stats.depth >= 0 ? r->stats.depth
					     : (int64_t)r->st->ready.len,
	    .unknown =
		!none && r->stats.depth < 0 && !r->src->ops->exhausted(r->src),
	    .inflight = r->st->stats.inflight,
	    .workers = r->st->stats.workers,
	    .busy = r->st->stats.workers_busy,
	    .completed = r->st->stats.duration_count,
	    .service_seconds = r->st->stats.duration_sum,
	};
	if (r->cfg->autoscale && r->phase == RUNNING) {
		int before = r->st->scaler.target;
		int target = hop_scaler_tick(&r->st->scaler, &in);
		if (target != before) {
			hop_log(HOP_INFO, "scale %s", r->st->scaler.why);
			hop_pool_resize(r->st->pool, target);
		}
		if (!before && target && !r->st->cold_since)
			r->st->cold_since = now;
		r->stats.workers_desired = target;
		r->stats.scale_ups = r->st->scaler.ups;
		r->stats.scale_downs = r->st->scaler.downs;
	}
	if (r->trace)
		fprintf(r->trace, "%.3f,%lld,%lld,%d,%d,%d,%llu,%llu,%.1f\n",
			(double)(now - r->t0) / 1000, (long long)r->stats.depth,
			(long long)in.inflight, in.workers, in.busy,
			r->stats.workers_desired,
			(unsigned long long)r->stats.done,
			(unsigned long long)r->stats.dead,
			r->cfg->autoscale ? r->st->scaler.throughput : 0.0);
}

/* With no worker running, work that arrives asks for one at once. */
static void wake_scaler(struct run *r)
{
	if (r->cfg->autoscale && r->phase == RUNNING && r->st->ready.len &&
	    hop_pool_workers(r->st->pool) == 0 && r->st->scaler.target == 0)
		hop_loop_soon(r->loop, scale_tick, r);
}

static int start_scaling(struct run *r)
{
	struct hop_config *cfg = r->cfg;
	if (cfg->autoscale) {
		struct hop_scaler_config sc = {
		    .min = (int)cfg->min_workers,
		    .max = (int)cfg->max_workers,
		    .window_ms = (int64_t)(cfg->scale_window * 1000),
		    .drain_ms = (int64_t)(cfg->drain_target * 1000),
		    .utilization = (double)cfg->utilization / 100,
		};
		if (hop_scaler_init(&r->st->scaler, &sc)) {
			hop_log(HOP_ERROR, "cannot start the autoscaler");
			return -1;
		}
		r->st->scaler_on = true;
		r->stats.workers_desired = r->st->scaler.target;
	}
	if (cfg->trace) {
		r->trace = fopen(cfg->trace, "w");
		if (!r->trace) {
			hop_log(HOP_ERROR, "cannot write the trace %s: %s",
				cfg->trace, strerror(errno));
			return -1;
		}
		setvbuf(r->trace, NULL, _IOLBF, 0);
		fprintf(r->trace, "t,depth,inflight,workers,busy,desired,done,"
				  "dead,throughput\n");
	}
	scale_tick(r->loop, r);
	return 0;
}

/* Names the run's source for its journal: its label, with a file's path
 * made absolute, so that the same file is the same source from any
 * folder. */
static char *journal_source(const struct hop_source *src)
{
	const char *colon = strchr(src->label, ':');
	char path[PATH_MAX], *name = NULL;

	if (colon && !strstr(src->label, "://") && realpath(colon + 1, path) &&
	    asprintf(&name, "%.*s:%s", (int)(colon - src->label), src->label,
		     path) >= 0)
		return name;
	return strdup(src->label);
}

/* Opens the journal that --journal names, and says what earlier runs
 * recorded in it. Returns 0 or -1 (logged). */
static int open_journal(struct run *r)
{
	struct hop_config *cfg = r->cfg;
	char err[1024];
	char *source = journal_source(r->src);

	if (!source) {
		hop_log(HOP_ERROR, "journal %s: out of memory", cfg->journal);
		return -1;
	}
	r->journal = hop_journal_open(cfg->journal, source, cfg->resume_failed,
				      err, sizeof(err));
	free(source);
	if (!r->journal) {
		hop_log(HOP_ERROR, "%s", err);
		return -1;
	}
	size_t done = hop_journal_done_count(r->journal);
	size_t dead = hop_journal_dead_count(r->journal);
	if (done || dead)
		hop_log(HOP_INFO,
			"journal %s: earlier runs finished %zu item(s) done "
			"and %zu dead; this run skips %s",
			cfg->journal, done, dead,
			cfg->resume_failed ? "those done and runs the dead "
					     "again"
					   : "them (--resume-failed runs the "
					     "dead again)");
	return 0;
}

static void summary(struct run *r)
{
	double secs = (double)(hop_now_ms() - r->t0) / 1000;
	hop_log(HOP_INFO,
		"finished: %ld done, %ld dead, %ld retried, %ld handed "
		"back, in %.2f s (%.1f items/s)",
		(long)r->stats.done, (long)r->stats.dead,
		(long)r->stats.retries, (long)r->stats.released, secs,
		secs > 0 ? (double)(r->stats.done + r->stats.dead) / secs
			 : 0.0);
	if (r->stats.dead_unwritten)
		hop_log(HOP_ERROR,
			"%ld item(s) failed for good but their dead letters "
			"could not be written: they stay unacknowledged at "
			"the source, and the next run takes them again",
			(long)r->stats.dead_unwritten);
	if (r->skipped || r->skipped_dead)
		hop_log(HOP_INFO,
			"skipped %llu item(s) that the journal %s records as "
			"finished by an earlier run (%llu done, %llu dead)",
			(unsigned long long)(r->skipped + r->skipped_dead),
			r->cfg->journal, (unsigned long long)r->skipped,
			(unsigned long long)r->skipped_dead);
}

/* The one stage of a config that names none: its top-level settings. */
static const struct hop_stage_config *main_stage(struct run *r)
{
	const struct hop_config *c = r->cfg;
	r->main_stage = (struct hop_stage_config){
	    .name = "main",
	    .argv = c->argv,
	    .shell_command = c->shell_command,
	    .mode = c->mode,
	    .exec_mode = c->exec_mode,
	    .workers = c->workers,
	    .min_workers = c->min_workers,
	    .max_workers = c->max_workers,
	    .autoscale = c->autoscale,
	    .prefetch = c->prefetch,
	    .attempts = c->attempts,
	    .timeout = c->timeout,
	    .backoff = c->backoff,
	    .backoff_max = c->backoff_max,
	    .shards = 1,
	};
	return &r->main_stage;
}

int hop_run(struct hop_config *cfg)
{
	struct run r = {.cfg = cfg,
			.src = cfg->source,
			.sink = cfg->sink,
			.sink_out = {.what = "sink"},
			.dead_out = {.what = "dead-letter place"},
			.held_wait_ms = HELD_FIRST_MS,
			.sigfd = -1,
			.stats = {.depth = -1, .total = -1}};
	char err[512];
	int code = HOP_EXIT_FAILURE;

	srandom((unsigned)getpid() ^ (unsigned)hop_now_ms());
	r.loop = hop_loop_new();
	if (!r.loop || setup_signals(&r)) {
		hop_log(HOP_ERROR, "cannot set up the event loop: %s",
			strerror(errno));
		goto out_loop;
	}
	if (cfg->listen) {
		struct hop_http_view view = {&r.stats, cfg, refresh_stats,
					     run_ready, &r};
		r.http = hop_http_start(r.loop, cfg->listen, &view, err,
					sizeof(err));
		if (!r.http) {
			hop_log(HOP_ERROR, "%s", err);
			goto out_loop;
		}
	}
	r.src->loop = r.sink->loop = r.loop;
	r.src->watch = cfg->watch;
	r.src->max_line = (size_t)cfg->max_line;
	r.src->on_wake = on_wake;
	r.src->on_dead_done = on_dead_done;
	r.src->wake_arg = &r;
	r.st = &r.stage;
	const struct hop_stage_config *sc =
	    cfg->nstages ? &cfg->stages[0] : main_stage(&r);
	if (hop_stage_init(r.st, sc, 0, 0, err, sizeof(err))) {
		hop_log(HOP_ERROR, "%s", err);
		goto out_loop;
	}
	if (cfg->journal && open_journal(&r))
		goto out_tmp;
	struct hop_pool_events ev = {on_done, on_returned, on_changed,
				     on_start_failed, &r};
	if (hop_stage_start(r.st, r.loop, &ev,
			    (int64_t)(cfg->kill_timeout * 1000),
			    (size_t)cfg->max_line, err, sizeof(err))) {
		hop_log(HOP_ERROR, "%s", err);
		goto out_pool;
	}
	r.sink->source = r.src;
	r.sink->on_flushed = on_flushed;
	r.sink->flushed_arg = &r;
	if (r.sink->ops->open(r.sink)) {
		hop_log(HOP_ERROR, "%s", r.sink->error);
		goto out_pool;
	}
	if (r.src->ops->open(r.src)) {
		hop_log(HOP_ERROR, "%s", r.src->error);
		goto out_sink;
	}
	if (cfg->autoscale)
		hop_log(HOP_INFO,
			"running: %s -> %s, %ld to %ld %s workers, "
			"autoscaled: %s",
			r.src->label, r.sink->label, (long)cfg->min_workers,
			(long)cfg->max_workers, cfg->mode,
			hop_config_command(cfg));
	else
		hop_log(HOP_INFO, "running: %s -> %s, %ld %s worker(s): %s",
			r.src->label, r.sink->label, (long)cfg->workers,
			cfg->mode, hop_config_command(cfg));
	r.t0 = r.stats.started_ms = hop_now_ms();
	r.stats.workers_desired = (int)cfg->workers;
	start_reporting(&r);
	schedule(&r);
	if (start_scaling(&r) == 0)
		hop_loop_run(r.loop);
	else
		r.source_failed = true;
	hop_loop_cancel(r.loop, r.scale_timer);
	if (r.trace)
		fclose(r.trace);
	hop_progress_stop(r.progress);
	r.progress = NULL;

	/* Whatever is still held goes back to the source, never lost. */
	hop_loop_cancel(r.loop, r.grace_timer);
	hop_loop_cancel(r.loop, r.stop_timer);
	hop_loop_cancel(r.loop, r.flush_timer);
	hop_stage_stop(r.st);
	settle_all(&r);
	hop_loop_cancel(r.loop, r.held_timer);
	r.held_timer = 0;
	/* Results the sink never confirmed, and dead letters their source
	 * could not record: not acknowledged, so back. */
	struct hop_item *it;
	if (r.held.head || r.held_dead.head)
		hop_log(HOP_WARN,
			"handing %zu held item(s) back to the source: %s",
			r.held.len + r.held_dead.len,
			r.sink_out.since ? r.sink_out.error : r.dead_out.error);
	queue_prepend(&r.st->ready, &r.held_dead);
	queue_prepend(&r.st->ready, &r.held);
	for (int k = 0; k < MAX_FLUSHES; k++)
		while ((it = hop_queue_pop(&r.flushing[k])))
			hop_queue_push(&r.st->ready, it);
	while ((it = hop_queue_pop(&r.written)))
		hop_queue_push(&r.st->ready, it);
	release_waiting(&r);
	/* A finite run that a signal stopped with items not done says so,
	 * as a shell expects (128 + the signal), so that `hopper run ... &&
	 * next` does not go on; one that had finished everything anyway
	 * ends as if no signal had come. A watched run never finishes: a
	 * signal is how it ends, and drained it exits 0. */
	bool cut_short =
	    r.signalled && !cfg->watch &&
	    (r.stats.released > 0 || !r.src->ops->exhausted(r.src));
	/* Closing reports the dead letters still on their way: they count. */
	r.src->ops->close(r.src);
	journal_sync(&r);
	hop_journal_close(r.journal);
	r.journal = NULL;
	summary(&r);
	if (r.sigints >= 2)
		code = HOP_EXIT_INTERRUPTED;
	else if (r.source_failed || r.journal_failed ||
		 (r.stats.dead_unwritten > 0 && !cfg->watch && !cut_short))
		code = HOP_EXIT_FAILURE;
	else if (r.halt_code)
		code = r.halt_code;
	else if (cut_short)
		code = 128 + r.first_signal;
	else if ((r.stats.dead > 0 || r.skipped_dead > 0) && !cfg->watch)
		code = HOP_EXIT_DEAD;
	else
		code = HOP_EXIT_OK;
out_sink:
	r.sink->ops->close(r.sink);
out_pool:
	hop_stage_stop(r.st);
out_tmp:
	hop_journal_close(r.journal);
	hop_stage_free(r.st);
out_loop:
	hop_http_stop(r.http);
	if (r.sigfd >= 0)
		close(r.sigfd);
	hop_loop_free(r.loop);
	return code;
}
