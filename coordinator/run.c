/* run.c - the coordinator's run: claim, dispatch, route, retry, write,
 * acknowledge.
 *
 * A run is a graph: sources feed stages, a stage's outputs go to other
 * stages or to sinks (config.h). The life of an item: fetched from a source
 * (a root) into its first stage's `ready`; handed to a worker; its outcome
 * either schedules a retry in the same stage (a timer, after backoff with
 * jitter) or finishes it there. A finished item's outputs (its result, or
 * what it emitted) go where the stage's routes say: into the next stages'
 * queues, or to sinks, where they wait in `written` until the sink's next
 * flush says they are safe. A root is acknowledged at its source only when
 * every item of its tree has been written or dropped (a count per root, as
 * Storm's acker), dead-lettered when one of them died (unless that stage
 * lets the tree go on), and handed back when the run stopped before its
 * tree was done. Nothing is acknowledged that is not durable, so a crash at
 * any point repeats a tree but never loses it.
 *
 * Memory is bounded: each stage's queue holds at most its `queue` items; a
 * stage whose outputs cannot all go on yet takes no new item; outputs wait
 * in their item's spool (memory, then a file); the sources are read only
 * as far as the first stages have room.
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

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "budget.h"
#include "gather.h"
#include "http.h"
#include "journal.h"
#include "gstore.h"
#include "log.h"
#include "loop.h"
#include "pool.h"
#include "progress.h"
#include "scaler.h"
#include "spool.h"
#include "stage.h"
#include "stats.h"

enum phase { RUNNING, DRAINING, STOPPING };

/* What a root's source hears once its tree is done. */
enum fate { FATE_ACK, FATE_DEAD, FATE_RELEASE };

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
/* A join with "state": how often it looks for groups to hand on (taken
 * over, overdue), and forgets old done ones. */
#define STORE_SWEEP_MS 1000
#define STORE_PRUNE_MS 30000
/* How long what a join or reduce would keep in an unreachable store waits
 * for it before going back to its sources. */
#define STORE_PATIENCE_MS 30000
/* A reduce with "state": the done windows' rows kept, so that an item
 * for one of them is known to be late. */
#define STORE_WINDOWS_KEPT 10000

/* A stage's queue when its config does not bound it. */
#define QUEUE_DEFAULT 1000

/* A place the run writes to that cannot take writes for now. */
struct outage {
	const char *what; /* "sink", "dead-letter place" */
	int64_t since;	  /* when it went out; 0 while it works */
	int64_t reminded; /* when the log last said it still was */
	uint64_t items;	  /* items held since it went out */
	char error[512];  /* its latest error */
};

struct run;

/* A sink and what waits for it. */
struct outlet {
	struct hop_sink *sink;
	struct run *r;
	struct hop_queue written; /* in the sink, waiting for a flush */
	/* Finished, but the sink could not take them for now. */
	struct hop_queue held;
	struct outage out;
	bool held_probed; /* the sink took one held item: write the rest */
	/* Flushes the sink has not answered yet, oldest first: one at a
	 * time, or up to the sink's max_flushes. */
	struct hop_queue flushing[MAX_FLUSHES];
	int fhead, nflush;
	uint64_t flush_timer;
	uint64_t stored; /* good results its flushes made durable */
};

/* A source and what waits for it. */
struct feed {
	struct hop_source *src;
	struct run *r;
	const struct hop_route *route; /* where its items go */
	/* Dead roots whose dead letters the source cannot record for now. */
	struct hop_queue held_dead;
	struct outage dead_out;
	bool failed;
	/* The reading end of a durable edge whose writing end runs here too:
	 * the outlet that writes it, and the items taken from the source. */
	struct outlet *edge;
	uint64_t taken;
};

/* What a stage's item hands on: its result, or one of its emits. */
struct output {
	const char *id;
	const char *payload;
	size_t payload_len;
	const char *port;
	const char *key;
};

struct run {
	struct hop_config *cfg;
	struct hop_loop *loop;
	/* The graph: a stage per shard, in config order (the shards of one
	 * stage side by side: first[i] is the config stage i's first). */
	struct hop_stage *stages;
	int nstages;
	int *first;
	struct hop_stage_config main_stage; /* when the config has none */
	struct hop_route main_route;	    /* the source's, then */
	struct hop_target main_target;
	struct hop_route main_out; /* the main stage's: to the sink */
	struct hop_target main_sink;
	struct feed *feeds;
	int nfeeds;
	struct outlet *outlets;
	int noutlets;
	/* Roots whose trees are done and written: acknowledged once the
	 * journal has them. */
	struct hop_queue acking;
	uint64_t held_timer;
	int64_t held_wait_ms;
	enum phase phase;
	int sigfd;
	int sigints;
	bool signalled;
	int first_signal; /* the signal that stopped the run, for its exit */
	uint64_t grace_timer;
	uint64_t stop_timer;
	int64_t t0;
	struct hop_stats stats;
	struct hop_stats_stage *views; /* the stages, as reports show them */
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
	/* Joins with "state": the sweep's timer, and the groups that died
	 * (kept in their stores, no source item dead-lettered). */
	uint64_t sweep_timer;
	uint64_t groups_dead;
	bool store_failed; /* a store never took what it had to */
};

static void pump(struct hop_loop *loop, void *arg);
static void release_waiting(struct run *r);
static void release_gathered(struct run *r);
static void reduce_out(struct run *r, struct hop_stage *st);
static void reduce_emit(struct run *r, struct hop_stage *st,
			struct hop_item *anchor, const char *id,
			const char *json);
static void wake_scaler(struct run *r);
static void settle_now(struct hop_loop *loop, void *arg);
static void finish_item(struct run *r, struct outlet *o, struct hop_item *it);
static void fail_item(struct run *r, struct hop_stage *st, struct hop_item *it);

static void schedule(struct run *r)
{
	hop_loop_soon(r->loop, pump, r);
}

static struct hop_item *root_of(struct hop_item *it)
{
	return it->root ? it->root : it;
}

static struct feed *feed_of(struct run *r, const struct hop_item *it)
{
	int16_t i = (it->root ? it->root : it)->feed;
	return i >= 0 ? &r->feeds[i] : NULL; /* a reduce's window: none */
}

static struct hop_stage *stage_of(struct run *r, const struct hop_item *it)
{
	return it->stage >= 0 ? &r->stages[it->stage] : NULL;
}

/* A source or sink call failed: log it (about item, when there is one),
 * count it and keep it for /status. */
static void source_error(struct run *r, struct feed *f, const char *item)
{
	r->stats.source_errors++;
	hop_stats_error(&r->stats, "%s", f->src->error);
	hop_log_ev(HOP_ERROR, -1, item, "%s", f->src->error);
}

static void sink_error(struct run *r, struct outlet *o, const char *item)
{
	r->stats.sink_errors++;
	hop_stats_error(&r->stats, "%s", o->sink->error);
	hop_log_ev(HOP_ERROR, -1, item, "%s", o->sink->error);
}

static void retry_held(struct hop_loop *loop, void *arg);

static bool out(const struct run *r)
{
	for (int i = 0; i < r->noutlets; i++)
		if (r->outlets[i].out.since)
			return true;
	for (int i = 0; i < r->nfeeds; i++)
		if (r->feeds[i].dead_out.since)
			return true;
	return false;
}

static size_t held_count(const struct run *r)
{
	size_t n = 0;
	for (int i = 0; i < r->noutlets; i++)
		n += r->outlets[i].held.len;
	for (int i = 0; i < r->nfeeds; i++)
		n += r->feeds[i].held_dead.len;
	return n;
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
static void outage_remind(struct outage *o, size_t held)
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

static void hold(struct outage *o, struct hop_queue *q, struct hop_item *it)
{
	hop_queue_push(q, it);
	o->items++;
}

/* The dead letter's record: what a person needs to see why it died. With
 * stages, the stage its tree died in too. */
static char *dead_record(const struct run *r, const struct hop_item *it)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_string(it->id));
	if (r->cfg->staged && it->died_in > 0 && it->died_in <= r->nstages)
		json_object_set_new(
		    o, "stage",
		    json_string(r->stages[it->died_in - 1].cfg->name));
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

/* Lineage. */

/* One item of root's tree is no longer at work or unwritten: when it was
 * the last, the root's source hears its fate (acknowledgements wait in
 * acking for the journal). */
static void record_dead_root(struct run *r, struct hop_item *root);

static void check_groups(struct run *r, struct hop_item *root);
static void window_done(struct run *r, struct hop_item *anchor);
static void forget_groups(struct run *r, struct hop_item *root);

static void unpend(struct run *r, struct hop_item *root)
{
	if (--root->pending > 0) {
		if (root->groups)
			check_groups(r, root);
		return;
	}
	forget_groups(r, root);
	if (root->feed < 0) {
		window_done(r, root);
		return;
	}
	struct feed *f = &r->feeds[root->feed];
	switch ((enum fate)root->fate) {
	case FATE_ACK:
		root->ok = true;
		hop_queue_push(&r->acking, root);
		schedule(r);
		break;
	case FATE_DEAD:
		record_dead_root(r, root);
		break;
	case FATE_RELEASE:
		r->stats.released++;
		if (f->src->ops->release(f->src, root))
			source_error(r, f, root->id);
		hop_item_free(root);
		break;
	}
}

/* it's part of its tree ended: a descendant is freed, a root waits for the
 * rest of its tree. */
static void end_work(struct run *r, struct hop_item *it)
{
	struct hop_item *root = root_of(it);
	if (it != root)
		hop_item_free(it);
	unpend(r, root);
}

/* it will not be finished in this run: its root goes back to its source
 * once the rest of its tree is over (a dead tree stays dead). */
static void release_work(struct run *r, struct hop_item *it)
{
	struct hop_item *root = root_of(it);
	if (root->fate == FATE_ACK)
		root->fate = FATE_RELEASE;
	end_work(r, it);
}

static void journal_add(struct run *r, const struct hop_item *it);
static void journal_sync(struct run *r);

/* The roots whose trees are written: in the journal first, then
 * acknowledged at their sources. */
static void ack_roots(struct run *r)
{
	struct hop_item *it;
	if (!r->acking.head)
		return;
	for (it = r->acking.head; r->journal && it; it = it->next)
		journal_add(r, it);
	journal_sync(r);
	while ((it = hop_queue_pop(&r->acking))) {
		struct feed *f = &r->feeds[it->feed];
		if (f->src->ops->ack && f->src->ops->ack(f->src, it))
			source_error(r, f, it->id);
		r->stats.done++;
		hop_item_free(it);
	}
}

static int64_t backoff_ms(const struct hop_stage_config *c, int attempt)
{
	double d = c->backoff * 1000;
	for (int i = 1; i < attempt && d < c->backoff_max * 1000; i++)
		d *= 2;
	if (d > c->backoff_max * 1000)
		d = c->backoff_max * 1000;
	/* Equal jitter: between half and all of the delay. */
	return (int64_t)(d / 2 + d / 2 * ((double)random() / RAND_MAX));
}

static void retry_due(struct hop_loop *loop, void *arg);

struct retry_timer {
	struct run *r;
	struct hop_item *it;
};

/* The outlet a stage's dead items are written to as failed: the first sink
 * its routes reach, else the run's first. */
static struct outlet *dead_outlet(struct run *r, const struct hop_stage *st)
{
	if (st)
		for (int i = 0; i < st->cfg->nroutes; i++)
			for (int k = 0; k < st->cfg->routes[i].nto; k++)
				if (st->cfg->routes[i].to[k].sink)
					return &r->outlets[st->cfg->routes[i]
							       .to[k]
							       .index];
	return &r->outlets[0];
}

static bool collects(const struct run *r, const struct hop_stage *st);
static void note_part_dead(struct run *r, struct hop_stage *st,
			   struct hop_item *it);

/* it failed for good in st: written to the sink as failed; its root dies
 * with it, unless st lets the rest of the tree go on (or a join after it
 * collects the errors of its parts). */
static void item_dead(struct run *r, struct hop_stage *st, struct hop_item *it)
{
	struct hop_item *root = root_of(it);
	const char *stage = st ? st->name : "";

	if (st)
		note_part_dead(r, st, it);

	if (it == root) {
		struct feed *f = &r->feeds[it->feed];
		if (f->src->ops->dying)
			f->src->ops->dying(f->src, it);
		root->fate = FATE_DEAD;
		root->died_in = st ? (int16_t)(st->index + 1) : 0;
	} else if (!st || !(st->cfg->dead_alone || collects(r, st))) {
		if (root->fate != FATE_DEAD) {
			/* The root may still be at work in its first stage:
			 * only its dead letter's words change. */
			char *why = NULL;
			root->fate = FATE_DEAD;
			if (asprintf(&why, "stage %s, item %s: %s", stage,
				     it->id,
				     it->error ? it->error : "failed") >= 0) {
				free(root->error);
				root->error = why;
			}
			root->attempt = it->attempt;
			root->retry = it->retry;
			root->died_in = st ? (int16_t)(st->index + 1) : 0;
			if (it->stderr_tail && !root->stderr_tail)
				root->stderr_tail = strdup(it->stderr_tail);
		}
	}
	if (r->nstages > 1 && st)
		hop_log_ev(HOP_ERROR, -1, it->id,
			   "stage %s: dead after %d attempt%s: %s", stage,
			   it->attempt, it->attempt == 1 ? "" : "s", it->error);
	else
		hop_log_ev(HOP_ERROR, -1, it->id, "dead after %d attempt%s: %s",
			   it->attempt, it->attempt == 1 ? "" : "s", it->error);
	hop_stats_error(&r->stats, "item %.60s dead after %d attempt%s: %s",
			it->id, it->attempt, it->attempt == 1 ? "" : "s",
			it->error);
	if (st)
		st->stats.dead++;
	it->ok = false;
	if (st && r->cfg->staged)
		it->dead_stage = st->cfg->name;
	finish_item(r, dead_outlet(r, st), it);
}

static void fail_item(struct run *r, struct hop_stage *st, struct hop_item *it)
{
	const struct hop_stage_config *c = st ? st->cfg : NULL;
	int64_t attempts = c ? c->attempts : 1;

	hop_http_failure(r->http, st ? st->name : NULL, it,
			 !(c && it->retry && it->attempt < attempts));
	if (c && it->retry && it->attempt < attempts && r->phase == RUNNING) {
		int64_t wait = backoff_ms(c, it->attempt);
		hop_log_ev(HOP_WARN, -1, it->id,
			   "attempt %d of %ld failed: %s; retrying in %.1f s",
			   it->attempt, (long)attempts, it->error,
			   (double)wait / 1000);
		r->stats.retries++;
		st->stats.retries++;
		struct feed *f = feed_of(r, it);
		if (!it->root && f->src->ops->nack) {
			/* The source keeps the schedule (and survives us). */
			if (f->src->ops->nack(f->src, it, wait))
				source_error(r, f, it->id);
			hop_item_free(it);
			return;
		}
		struct retry_timer *t = malloc(sizeof(*t));
		if (t) {
			*t = (struct retry_timer){r, it};
			hop_queue_push(&st->waiting, it);
			it->timer = hop_loop_after(r->loop, wait, retry_due, t);
			return;
		}
	}
	if (it->retry && it->attempt < attempts) {
		/* Shutting down: not dead, just not finished. */
		release_work(r, it);
		return;
	}
	item_dead(r, st, it);
}

/* The sink answered st (OK or FAIL) to it's write. FAIL can never work
 * for this item: a result fails it for good; a dead item goes on to its
 * source's dead letter, which still records it. */
static void after_write(struct run *r, struct outlet *o, struct hop_item *it,
			enum hop_sink_status st)
{
	if (st == HOP_SINK_FAIL && it->ok) {
		sink_error(r, o, it->id);
		hop_item_fail(it, false, "%s", o->sink->error);
		fail_item(r, stage_of(r, it), it);
		return;
	}
	if (st == HOP_SINK_FAIL)
		sink_error(r, o, it->id);
	hop_queue_push(&o->written, it);
	/* Flush in batches: at most FLUSH_MS after the first unflushed item,
	 * or at once when many wait. */
	if (o->written.len >= FLUSH_BATCH)
		hop_loop_soon(r->loop, settle_now, o);
	else if (!o->flush_timer)
		o->flush_timer =
		    hop_loop_after(r->loop, FLUSH_MS, settle_now, o);
}

/* Writes a finished item to the sink, or holds it while the sink is out. */
static void finish_item(struct run *r, struct outlet *o, struct hop_item *it)
{
	if (o->out.since) { /* in order, behind what is held */
		hold(&o->out, &o->held, it);
		return;
	}
	enum hop_sink_status st = o->sink->ops->write(o->sink, it);
	if (st == HOP_SINK_RETRY) {
		r->stats.sink_errors++;
		outage_begin(r, &o->out, o->sink->error);
		hold(&o->out, &o->held, it);
		return;
	}
	after_write(r, o, it, st);
}

static void retry_due(struct hop_loop *loop, void *arg)
{
	struct retry_timer *t = arg;
	struct run *r = t->r;
	struct hop_item *it = t->it;
	struct hop_stage *st = stage_of(r, it);

	free(t);
	it->timer = 0;
	hop_queue_remove(&st->waiting, it);
	hop_queue_push(&st->ready, it);
	schedule(r);
}

/* Routing. */

static const struct hop_stage_config *stage_config(const struct run *r, int i)
{
	return r->cfg->nstages ? &r->cfg->stages[i] : &r->main_stage;
}

static int64_t queue_bound(const struct hop_stage *st)
{
	return st->cfg->queue > 0 ? st->cfg->queue : QUEUE_DEFAULT;
}

/* The route an output on port takes: the port's own, else the one for
 * every other output; NULL when there is none. */
static const struct hop_route *route_for(const struct hop_route *routes, int n,
					 const char *port)
{
	const struct hop_route *any = NULL;
	for (int i = 0; i < n; i++) {
		if (!routes[i].port)
			any = &routes[i];
		else if (port && strcmp(routes[i].port, port) == 0)
			return &routes[i];
	}
	return any;
}

/* The text of the value at a JSON pointer ("/user/id") in payload: a
 * string as it is, anything else as compact JSON; "" when there is none.
 * Returns a string to free, or NULL when memory ran out. */
static char *pointer_text(const char *payload, size_t len, const char *ptr)
{
	bool missing;
	char *s = hop_json_pointer_text(payload, len, ptr, &missing);
	return s || !missing ? s : strdup("");
}

/* The stage of config stage i that output o goes to: for a sharder, the
 * shard its key hashes to (FNV-1a), so that one key is always in one. */
static struct hop_stage *target_stage(struct run *r, int i,
				      const struct output *o)
{
	const struct hop_stage_config *c = stage_config(r, i);
	if (c->shards <= 1)
		return &r->stages[r->first[i]];
	char *owned = NULL;
	const char *key = o->key;
	if (!key)
		key = owned = pointer_text(o->payload, o->payload_len, c->key);
	uint64_t h = 14695981039346656037ULL;
	for (const char *p = key ? key : ""; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	free(owned);
	return &r->stages[r->first[i] + (int)(h % (uint64_t)c->shards)];
}

/* Whether every place of rt can take o now: a stage's queue has room, a
 * sink is not out. */
static bool has_room(struct run *r, const struct hop_route *rt,
		     const struct output *o)
{
	for (int k = 0; k < rt->nto; k++) {
		const struct hop_target *t = &rt->to[k];
		if (t->sink) {
			if (r->outlets[t->index].out.since)
				return false;
			continue;
		}
		struct hop_stage *ns = target_stage(r, t->index, o);
		if ((int64_t)ns->ready.len >= queue_bound(ns))
			return false;
	}
	return true;
}

/* A new item of root's tree carrying o on: to a sink as an ok result, to
 * a stage as its payload. NULL when memory ran out. */
static struct hop_item *child(struct hop_item *root, const struct output *o,
			      bool to_sink)
{
	char *id = strdup(o->id);
	char *body =
	    to_sink ? strdup("null") : strndup(o->payload, o->payload_len);
	struct hop_item *c =
	    hop_item_new(id, body, to_sink ? 4 : o->payload_len);
	if (!c)
		return NULL;
	c->root = root;
	c->feed = root->feed;
	c->fate = FATE_ACK;
	if (to_sink) {
		c->ok = true;
		c->result = strndup(o->payload, o->payload_len);
		c->key = o->key ? strdup(o->key) : NULL;
		if (!c->result || (o->key && !c->key)) {
			hop_item_free(c);
			return NULL;
		}
	}
	return c;
}

static void join_part(struct run *r, struct hop_stage *st, struct hop_item *it,
		      const char *key);
static void reduce_item(struct run *r, struct hop_stage *st,
			struct hop_item *it);

/* Puts it in stage ns's queue, or its join group, or its reduce. key is
 * the one it was emitted with, if any. */
static void enter(struct run *r, struct hop_stage *ns, struct hop_item *it,
		  const char *key)
{
	it->stage = (int16_t)ns->index;
	if (ns->cfg->join)
		join_part(r, ns, it, key);
	else if (ns->cfg->reduce)
		reduce_item(r, ns, it);
	else
		hop_queue_push(&ns->ready, it);
}

/* Sends output o of it (which ran in st; NULL for a root from a source) to
 * every place of rt. The item itself carries o on when o is its only
 * output, to one place, and it may (a root never leaves its first stage
 * but for a sink: its payload is its dead letter's). Returns true when it
 * did so; otherwise it is the caller's still. */
static bool deliver(struct run *r, struct hop_stage *st, struct hop_item *it,
		    const struct hop_route *rt, const struct output *o,
		    bool only)
{
	struct hop_item *root = root_of(it);
	bool reuse = only && rt->nto == 1 && (it->root || rt->to[0].sink);

	for (int k = 0; k < rt->nto; k++) {
		const struct hop_target *t = &rt->to[k];
		struct hop_item *c = it;
		if (!reuse) {
			c = child(root, o, t->sink);
			if (!c) {
				hop_log_ev(HOP_ERROR, -1, o->id,
					   "out of memory: the item goes back "
					   "to its source");
				if (root->fate == FATE_ACK)
					root->fate = FATE_RELEASE;
				continue;
			}
			root->pending++;
		}
		if (t->sink) {
			c->stage = st ? (int16_t)st->index : -1;
			/* Its record shows the attempts that made it. */
			c->attempt = it->attempt;
			finish_item(r, &r->outlets[t->index], c);
			continue;
		}
		if (c == it) { /* its result is the next stage's payload */
			free(c->payload);
			c->payload = c->result ? c->result : strdup("null");
			c->payload_len = strlen(c->payload);
			c->result = NULL;
			hop_item_reset_outcome(c);
			c->attempt = 0; /* the attempts are the stage's own */
		}
		enter(r, target_stage(r, t->index, o), c, o->key);
	}
	return reuse;
}

/* An output that no route of st takes: dropped when st says so, else an
 * item of its own that is dead at once, with the error. */
static void unmapped(struct run *r, struct hop_stage *st, struct hop_item *it,
		     const struct output *o)
{
	struct hop_item *root = root_of(it);

	if (st->cfg->drop_unmapped) {
		st->stats.dropped++;
		r->stats.dropped++;
		return;
	}
	struct hop_item *c = child(root, o, false);
	if (!c) {
		if (root->fate == FATE_ACK)
			root->fate = FATE_RELEASE;
		return;
	}
	root->pending++;
	c->stage = (int16_t)st->index;
	c->attempt = it->attempt;
	hop_item_fail(c, false,
		      "stage %s: no route for %s%s%s (its \"to\" names no "
		      "such port, and no \"*\"; \"unmapped\": \"drop\" drops "
		      "such outputs)",
		      st->name, o->port ? "port '" : "outputs without a port",
		      o->port ? o->port : "", o->port ? "'" : "");
	item_dead(r, st, c);
}

/* Hands on it's outputs, as far as their places have room: the result, or
 * what it emitted, or nothing (drop). Returns true when all went (it is
 * carried on, or ended), false when it must wait for room (then it is
 * still the caller's, and st->peek may hold its next output). */
static bool hand_on(struct run *r, struct hop_stage *st, struct hop_item *it)
{
	const struct hop_stage_config *c = st->cfg;
	uint64_t n = it->emits ? hop_spool_count(it->emits) : 0;

	if (it->drop) {
		st->stats.dropped++;
		r->stats.dropped++;
		end_work(r, it);
		return true;
	}
	if (n == 0) {
		struct output o = {it->id, it->result ? it->result : "null",
				   it->result ? strlen(it->result) : 4, NULL,
				   NULL};
		const struct hop_route *rt =
		    route_for(c->routes, c->nroutes, NULL);
		if (!rt) {
			unmapped(r, st, it, &o);
		} else {
			if (!has_room(r, rt, &o))
				return false;
			if (deliver(r, st, it, rt, &o, true))
				return true;
		}
		end_work(r, it);
		return true;
	}
	if (r->outlets[0].sink->joined) {
		hop_item_fail(it, false,
			      "the postgres sink is joined to its source and "
			      "writes one result per item: with emits, set "
			      "the sink's join=false");
		fail_item(r, st, it);
		return true;
	}
	for (;;) {
		if (!st->peeked) {
			uint64_t index = n - hop_spool_left(it->emits);
			int rc = hop_spool_next(it->emits, &st->peek);
			if (rc == 0)
				break;
			if (rc < 0) {
				hop_item_fail(it, true,
					      "stage %s: cannot read back its "
					      "outputs: %s",
					      st->name, strerror(-rc));
				fail_item(r, st, it);
				return true;
			}
			/* One output keeps the item's id: a router's item
			 * is still the same item. */
			free(st->peek_id);
			if ((n == 1
				 ? asprintf(&st->peek_id, "%s", it->id)
				 : asprintf(&st->peek_id, "%s/%llu", it->id,
					    (unsigned long long)index)) < 0) {
				st->peek_id = NULL;
				hop_emit_clear(&st->peek);
				hop_item_fail(it, true, "out of memory");
				fail_item(r, st, it);
				return true;
			}
			st->peeked = true;
		}
		struct output o = {st->peek_id, st->peek.payload,
				   st->peek.payload_len, st->peek.port,
				   st->peek.key};
		const struct hop_route *rt =
		    route_for(c->routes, c->nroutes, o.port);
		if (!rt) {
			unmapped(r, st, it, &o);
		} else {
			if (!has_room(r, rt, &o))
				return false;
			deliver(r, st, it, rt, &o, false);
		}
		hop_emit_clear(&st->peek);
		st->peeked = false;
	}
	end_work(r, it);
	return true;
}

/* Hands on what st's finished items output, oldest first, as far as the
 * places have room. */
static void route_more(struct run *r, struct hop_stage *st)
{
	struct hop_item *it;
	while ((it = hop_queue_pop(&st->routing))) {
		if (!hand_on(r, st, it)) {
			struct hop_queue one = {it, it, 1};
			it->next = NULL;
			queue_prepend(&st->routing, &one);
			return;
		}
	}
}

/* Join and reduce (gather.h). */

/* The config index of run stage st. */
static int config_index(const struct run *r, const struct hop_stage *st)
{
	int i = 0;
	while (r->first[i + 1] <= st->index)
		i++;
	return i;
}

/* Whether config stage i can be reached from st's outputs. Past the 64th
 * stage, every stage may be. */
static bool reaches(const struct hop_stage *st, int i)
{
	return i >= 64 || (st->reach >> i & 1);
}

/* Whether a join after st collects the errors of its dead parts, so that
 * one dying in st does not fail its root. */
static bool collects(const struct run *r, const struct hop_stage *st)
{
	for (int i = 0; i < r->cfg->nstages; i++)
		if (r->cfg->stages[i].join && r->cfg->stages[i].join->collect &&
		    reaches(st, i))
			return true;
	return false;
}

static void group_due(struct hop_loop *loop, void *arg);

/* g opens at join stage st: one of its open groups, its deadline set. */
static void group_open(struct run *r, struct hop_stage *st, struct hop_group *g)
{
	g->stage = st->index;
	g->run = r;
	g->next = st->groups;
	if (st->groups)
		st->groups->prev = g;
	st->groups = g;
	st->ngroups++;
	if (st->cfg->join->timeout > 0)
		g->timer = hop_loop_after(
		    r->loop, (int64_t)(st->cfg->join->timeout * 1000),
		    group_due, g);
}

/* root's group at join stage st, made when it has none yet; NULL when
 * memory ran out. */
static struct hop_group *group_at(struct run *r, struct hop_stage *st,
				  struct hop_item *root)
{
	struct hop_group *g;
	for (g = root->groups; g; g = g->next_of_root)
		if (g->stage == st->index)
			return g;
	if (!(g = calloc(1, sizeof(*g))))
		return NULL;
	g->root = root;
	g->next_of_root = root->groups;
	root->groups = g;
	group_open(r, st, g);
	return g;
}

/* g is over (handed on, failed or handed back): out of its stage's open
 * groups, its timer stopped. It stays on its root until the root ends, so
 * that parts coming later are known to be late. */
static void group_close(struct run *r, struct hop_group *g)
{
	struct hop_stage *st = &r->stages[g->stage];
	if (g->done)
		return;
	g->done = true;
	hop_loop_cancel(r->loop, g->timer);
	g->timer = 0;
	if (g->prev)
		g->prev->next = g->next;
	else
		st->groups = g->next;
	if (g->next)
		g->next->prev = g->prev;
	g->prev = g->next = NULL;
	st->ngroups--;
	st->parts -= g->nparts;
}

static void forget_groups(struct run *r, struct hop_item *root)
{
	struct hop_group *g;
	while ((g = root->groups)) {
		root->groups = g->next_of_root;
		group_close(r, g);
		hop_group_free(g);
	}
}

/* Ends g's parts: released (back to the source with their root), or ended
 * as done with. */
static void end_parts(struct run *r, struct hop_group *g, bool release)
{
	size_t n = g->nparts;
	g->nparts = 0;
	for (size_t i = 0; i < n; i++) {
		if (release)
			release_work(r, g->parts[i]);
		else
			end_work(r, g->parts[i]);
	}
}

/* Writes the first 20 of the n dead parts in errors (the group's
 * {"id", "stage", "error"} objects) to f, "; and N more" for the rest. */
static void part_errors(FILE *f, json_t *errors, size_t n)
{
	for (size_t i = 0; i < n && i < 20; i++) {
		json_t *e = json_array_get(errors, i);
		fprintf(f, "%s %s (stage %s): %s", i ? ";" : "",
			json_string_value(json_object_get(e, "id")),
			json_string_value(json_object_get(e, "stage")),
			json_string_value(json_object_get(e, "error")));
	}
	if (n > 20)
		fprintf(f, "; and %zu more", n - 20);
}

/* Says in root's dead letter what became of each part that died. */
static void name_dead_parts(struct hop_stage *st, struct hop_group *g)
{
	struct hop_item *root = g->root;
	size_t n = g->errors ? json_array_size(g->errors) : 0;
	char *why = NULL;
	size_t len = 0;
	FILE *f;

	if (n < 2 || !(f = open_memstream(&why, &len)))
		return;
	fprintf(f, "join %s: %zu parts died:", st->name, n);
	part_errors(f, g->errors, n);
	if (fclose(f) == 0) {
		free(root->error);
		root->error = why;
	} else {
		free(why);
	}
}

/* c, a joined item, goes to join stage st's workers, or straight on when
 * it has none. */
static void group_out(struct run *r, struct hop_stage *st, struct hop_item *c)
{
	c->stage = (int16_t)st->index;
	if (!hop_stage_bare(st)) {
		hop_queue_push(&st->ready, c);
		schedule(r);
		return;
	}
	/* No worker: the joined payload is the stage's output. */
	c->result = c->payload;
	c->payload = strdup("null");
	c->payload_len = 4;
	c->ok = true;
	c->attempt = 1;
	st->stats.done++;
	if (st->routing.head || !hand_on(r, st, c))
		hop_queue_push(&st->routing, c);
	schedule(r);
}

/* g is complete (or its time is up, and partial says so): one item, made
 * of its parts, goes to the stage's workers, or straight on when it has
 * none. A dead root's group only ends its parts. */
static void group_done(struct run *r, struct hop_group *g, bool partial)
{
	struct hop_stage *st = &r->stages[g->stage];
	struct hop_item *root = g->root;

	group_close(r, g);
	if (root->fate != FATE_ACK) {
		if (root->fate == FATE_DEAD)
			name_dead_parts(st, g);
		end_parts(r, g, root->fate == FATE_RELEASE);
		return;
	}
	char *payload = hop_group_payload(g, partial);
	struct output o = {root->id, payload, payload ? strlen(payload) : 0,
			   NULL, NULL};
	struct hop_item *c = payload ? child(root, &o, false) : NULL;
	free(payload);
	if (!c) {
		hop_log_ev(HOP_ERROR, -1, root->id,
			   "stage %s: out of memory joining the group: it "
			   "goes back to its source",
			   st->name);
		root->fate = FATE_RELEASE;
		end_parts(r, g, true);
		return;
	}
	root->pending++;
	end_parts(r, g, false);
	group_out(r, st, c);
}

/* A group is complete when nothing else of its root's tree is on its way:
 * every item the root still waits for is a part in one of its groups, or
 * a hold of a reduce window. */
static void check_groups(struct run *r, struct hop_item *root)
{
	uint64_t gathered = root->holds;
	struct hop_group *g;
	bool open = false;

	for (g = root->groups; g; g = g->next_of_root)
		if (!g->done) {
			gathered += g->nparts;
			open = true;
		}
	if (!open || root->pending != gathered)
		return;
	/* Held while its groups end: the last part of a dead root's group
	 * would free the root, and its groups with it, under this loop. */
	root->pending++;
	for (;;) {
		for (g = root->groups; g && g->done; g = g->next_of_root)
			;
		if (!g)
			break;
		group_done(r, g, false);
	}
	unpend(r, root);
}

static void key_group_due(struct run *r, struct hop_group *g);

static void group_due(struct hop_loop *loop, void *arg)
{
	struct hop_group *g = arg;
	struct run *r = g->run;
	struct hop_stage *st = &r->stages[g->stage];
	const struct hop_join_config *j = st->cfg->join;
	struct hop_item *root = g->root;

	g->timer = 0;
	if (g->done)
		return;
	if (g->key) {
		key_group_due(r, g);
		return;
	}
	hop_log_ev(HOP_WARN, -1, root->id,
		   "stage %s: the group is not complete after %.1f s, with "
		   "%zu part(s) in and %lu item(s) of its tree still at work: "
		   "%s",
		   st->name, j->timeout, g->nparts,
		   (unsigned long)(root->pending - g->nparts - root->holds),
		   j->partial ? "handing on what came (\"missing\": true)"
			      : "its root is dead");
	if (!j->partial && root->fate == FATE_ACK) {
		char *why = NULL;
		root->fate = FATE_DEAD;
		root->died_in = (int16_t)(st->index + 1);
		if (asprintf(&why,
			     "stage %s: join timed out after %.1f s with %zu "
			     "part(s) in; the rest of the tree was still at "
			     "work",
			     st->name, j->timeout, g->nparts) >= 0) {
			free(root->error);
			root->error = why;
		}
		root->retry = false;
		if (!root->attempt)
			root->attempt = 1;
		st->stats.dead++;
	}
	root->pending++; /* as in check_groups */
	group_done(r, g, true);
	unpend(r, root);
	schedule(r);
}

static void join_key_part(struct run *r, struct hop_stage *st,
			  struct hop_item *it, const char *key);

/* Fails part it for good: join stage st holds max_parts parts already,
 * and group (its name) cannot take it. */
static void refuse_part(struct hop_stage *st, struct hop_item *it,
			const char *group)
{
	hop_item_fail(it, false,
		      "stage %s: the join holds %zu parts, its max_parts: "
		      "group %s cannot take more (raise max_parts, or give "
		      "the join a timeout)",
		      st->name, st->parts, group);
	if (!it->attempt)
		it->attempt = 1;
}

/* it fails for good at join or reduce stage st, which runs no attempt of
 * its own (its first counts as one): why says what is wrong with it. */
static void gather_dead(struct run *r, struct hop_stage *st,
			struct hop_item *it, const char *why)
{
	hop_item_fail(it, false, "stage %s: %s", st->name, why);
	if (!it->attempt)
		it->attempt = 1;
	item_dead(r, st, it);
}

/* Ends part it that its group did not take: rc 1, a copy of a part it
 * has (dropped), or below 0, no memory (handed back to its source).
 * Returns false, doing nothing, when the group took it (rc 0). */
static bool not_added(struct run *r, struct hop_stage *st, struct hop_item *it,
		      int rc)
{
	if (rc == 1) {
		st->stats.duplicates++;
		hop_log_ev(HOP_DEBUG, -1, it->id,
			   "stage %s: a part came twice: the copy is dropped",
			   st->name);
		end_work(r, it);
		return true;
	}
	if (rc < 0) {
		hop_log_ev(HOP_ERROR, -1, it->id,
			   "stage %s: out of memory: the item goes back to "
			   "its source",
			   st->name);
		release_work(r, it);
		return true;
	}
	return false;
}

/* it reached join stage st: into its root's group there, or its key's. */
static void join_part(struct run *r, struct hop_stage *st, struct hop_item *it,
		      const char *key)
{
	struct hop_item *root = root_of(it);
	const struct hop_join_config *j = st->cfg->join;

	if (r->phase != RUNNING) {
		release_work(r, it);
		return;
	}
	if (j->by) {
		join_key_part(r, st, it, key);
		return;
	}
	if (root->fate != FATE_ACK) { /* a dead tree gathers nothing */
		end_work(r, it);
		return;
	}
	struct hop_group *g = group_at(r, st, root);
	if (g && g->done) {
		st->stats.late++;
		hop_log_ev(HOP_WARN, -1, it->id,
			   "stage %s: a part came after its group was handed "
			   "on: dropped",
			   st->name);
		end_work(r, it);
		return;
	}
	if (g && (int64_t)st->parts >= j->max_parts) {
		refuse_part(st, it, root->id);
		item_dead(r, st, it);
		return;
	}
	if (not_added(r, st, it, g ? hop_group_add(g, it) : -ENOMEM))
		return;
	st->parts++;
	check_groups(r, root);
}

static void key_part_dead(struct run *r, struct hop_stage *st,
			  struct hop_item *it, const char *stage,
			  const char *error);

/* A part died in st: the groups of its root at the joins after st keep
 * its error; at a join by key, the group its payload names counts it. */
static void note_part_dead(struct run *r, struct hop_stage *st,
			   struct hop_item *it)
{
	struct hop_item *root = root_of(it);
	for (int i = 0; i < r->cfg->nstages; i++) {
		if (!r->cfg->stages[i].join || !reaches(st, i))
			continue;
		if (r->cfg->stages[i].join->by) {
			key_part_dead(r, &r->stages[r->first[i]], it, st->name,
				      it->error);
			continue;
		}
		if (root->fate != FATE_ACK || it == root)
			continue;
		struct hop_group *g =
		    group_at(r, &r->stages[r->first[i]], root);
		if (g && !g->done)
			hop_group_error(g, it->id, st->name, it->error);
	}
}

/* The roots behind one reduce result (or one joined item of a join by
 * key), and the stage that made it. */
struct window {
	struct hop_item **roots;
	size_t n;
	int stage;
	const char *what; /* "its reduce result": for the roots' error */
	struct fold_window *folds; /* a reducer worker's, freed with it */
	struct hop_held held;	   /* more roots, kept in short */
	char *store_key;	   /* a group of a join with "state": its key */
	/* A window of a reduce with "state": its number. */
	bool store_window;
	int64_t win;
};

static bool upstream_done(const struct run *r, const struct hop_stage *st);

/* Join by key (gather.h): parts from any tree meet in the group of their
 * key. A part in a group keeps its root waiting (a hold, as a reduce's);
 * when the group closes, the roots of its parts wait for the joined item
 * instead, a child of an anchor of the run's own, as a reduce window's
 * result (window_done). */

/* The open group of key at join stage st, made when there is none yet;
 * NULL when memory ran out. */
static struct hop_group *key_group(struct run *r, struct hop_stage *st,
				   const char *key)
{
	struct hop_group *g = hop_strmap_get(st->keyed, key);

	if (g)
		return g;
	g = calloc(1, sizeof(*g));
	if (!g || !(g->key = strdup(key)) ||
	    hop_strmap_put(st->keyed, key, g)) {
		hop_group_free(g);
		return NULL;
	}
	g->expected = -1;
	group_open(r, st, g);
	return g;
}

/* What part id (of g) says of its group's size: the first count wins, and
 * a part that says otherwise is told of in the log. */
static void key_group_learn(struct hop_stage *st, struct hop_group *g,
			    const struct hop_part_info *pi, const char *id)
{
	int64_t n = pi->count >= 0 ? pi->count : pi->last ? pi->seq + 1 : -1;

	if (n < 0)
		return;
	if (g->expected < 0) {
		g->expected = n;
		return;
	}
	if (g->expected != n)
		hop_log_ev(HOP_WARN, -1, id,
			   "stage %s: the part says group %s has %lld "
			   "part(s); an earlier one said %lld, which holds",
			   st->name, g->key, (long long)n,
			   (long long)g->expected);
}

/* Why g failed, for the dead letters of its roots: its dead parts. */
static char *key_group_why(const struct hop_stage *st,
			   const struct hop_group *g)
{
	size_t n = g->errors ? json_array_size(g->errors) : 0;
	char *why = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&why, &len);

	if (!f)
		return NULL;
	fprintf(f, "join %s, key %s: %zu part(s) died:", st->name, g->key, n);
	part_errors(f, g->errors, n);
	if (fclose(f)) {
		free(why);
		return NULL;
	}
	return why;
}

/* g is over: closed, forgotten by key, and its key kept to know late
 * parts. */
static void key_group_close(struct run *r, struct hop_group *g)
{
	struct hop_stage *st = &r->stages[g->stage];

	group_close(r, g);
	hop_strmap_del(st->keyed, g->key);
	if (hop_keyring_add(st->closed, g->key))
		hop_log(HOP_WARN,
			"stage %s: out of memory remembering closed group %s: "
			"a part that comes later opens it again",
			st->name, g->key);
}

/* The run stops: g's parts go back to their sources, with their roots. */
static void key_group_release(struct run *r, struct hop_group *g)
{
	size_t n = g->nparts;

	key_group_close(r, g);
	g->nparts = 0;
	for (size_t i = 0; i < n; i++) {
		root_of(g->parts[i])->holds--;
		release_work(r, g->parts[i]);
	}
	hop_group_free(g);
}

/* g is complete, or will never be: its parts' roots now wait for one
 * joined item (partial: with "missing": true), or, when why is given or a
 * part died and the join does not collect, are dead-lettered with why. */
static void key_group_done(struct run *r, struct hop_group *g, bool partial,
			   const char *why)
{
	struct hop_stage *st = &r->stages[g->stage];
	bool fail = why || (g->ndead && !st->cfg->join->collect);
	struct window *w = calloc(1, sizeof(*w));
	struct hop_item *anchor = NULL;
	char *payload = NULL, *name = NULL, *reason = NULL;

	key_group_close(r, g);
	if (w && (w->roots = calloc(g->nparts + 1, sizeof(*w->roots))) &&
	    asprintf(&name, "%s#%s", st->name, g->key) >= 0)
		anchor = hop_item_new(name, strdup("null"), 4);
	if (anchor && !fail)
		payload = hop_group_payload(g, partial);
	else if (anchor)
		reason = why ? strdup(why) : key_group_why(st, g);
	if (!anchor || (!fail && !payload)) {
		hop_log(HOP_ERROR,
			"stage %s: out of memory joining group %s: its parts "
			"go back to their sources",
			st->name, g->key);
		if (w)
			free(w->roots);
		free(w);
		hop_item_free(anchor);
		key_group_release(r, g);
		return;
	}
	*w = (struct window){w->roots, g->nparts, st->index, "its joined item",
			     NULL};
	anchor->feed = -1;
	anchor->pending = 1;
	anchor->fate = FATE_ACK;
	anchor->src_data = w;
	anchor->stage = (int16_t)st->index;
	/* Each part's place in its root's pending passes to the window. */
	for (size_t i = 0; i < g->nparts; i++) {
		struct hop_item *p = g->parts[i], *root = root_of(p);
		w->roots[i] = root;
		if (p != root)
			hop_item_free(p);
		if (!fail || root->fate != FATE_ACK)
			continue;
		root->fate = FATE_DEAD;
		root->died_in = (int16_t)(st->index + 1);
		root->retry = false;
		if (!root->attempt)
			root->attempt = 1;
		free(root->error);
		root->error = strdup(reason ? reason : "join failed");
	}
	g->nparts = 0;
	if (!fail) {
		struct output o = {g->key, payload, strlen(payload), NULL,
				   NULL};
		struct hop_item *c = child(anchor, &o, false);
		if (c) {
			anchor->pending++;
			group_out(r, st, c);
		} else {
			anchor->fate = FATE_RELEASE;
		}
	} else {
		st->stats.dead++;
	}
	free(payload);
	free(reason);
	hop_group_free(g);
	unpend(r, anchor);
	schedule(r);
}

static void key_group_check(struct run *r, struct hop_group *g)
{
	if (hop_group_complete(g))
		key_group_done(r, g, false, NULL);
}

/* g's size for a message, in of: its number, or unknown. */
static void group_size(const struct hop_group *g, char of[32],
		       const char *unknown)
{
	if (g->expected >= 0)
		snprintf(of, 32, "%lld", (long long)g->expected);
	else
		snprintf(of, 32, "%s", unknown);
}

static void key_group_due(struct run *r, struct hop_group *g)
{
	struct hop_stage *st = &r->stages[g->stage];
	const struct hop_join_config *j = st->cfg->join;
	char *why = NULL, of[32];

	group_size(g, of, "?");
	hop_log(HOP_WARN,
		"stage %s: group %s is not complete after %.1f s, with %zu "
		"of %s part(s) in: %s",
		st->name, g->key, j->timeout, g->nparts + g->ndead, of,
		j->partial ? "handing on what came (\"missing\": true)"
			   : "its parts' source items are dead");
	if (j->partial) {
		key_group_done(r, g, true, NULL);
		return;
	}
	if (asprintf(&why,
		     "stage %s: join timed out after %.1f s: group %s had %zu "
		     "of %s part(s)",
		     st->name, j->timeout, g->key, g->nparts + g->ndead,
		     of) < 0)
		why = NULL;
	key_group_done(r, g, false, why ? why : "join timed out");
	free(why);
}

/* A join by key with "state" (gstore.h): each part goes to the store,
 * and its source item ends as soon as it is stored; the store says when
 * a group is complete and this run's to hand on. Handing on loads the
 * group's parts and writes the joined item as a child of an anchor of
 * the run's own, as key_group_done does; when the anchor is over,
 * window_done tells the store. A group this run cannot load or write
 * stays the run's in the store and is tried again at the next sweep. */

static void store_group_emit(struct run *r, struct hop_stage *st,
			     const char *key);

/* st's store failed (msg): logged once until it answers again. Returns
 * whether the store has been out of reach for STORE_PATIENCE_MS. */
static bool store_down(struct hop_stage *st, const char *msg)
{
	int64_t now = hop_now_ms();

	if (!st->store_down_ms) {
		st->store_down_ms = now;
		hop_log(HOP_ERROR,
			"%s: what stage %s would keep there waits for it, up "
			"to %d s, then goes back to its sources",
			msg, st->name, STORE_PATIENCE_MS / 1000);
	}
	return now - st->store_down_ms >= STORE_PATIENCE_MS;
}

static void store_up(struct hop_stage *st)
{
	if (!st->store_down_ms)
		return;
	st->store_down_ms = 0;
	hop_log(HOP_INFO, "stage %s: its state store answers again", st->name);
}

/* Parts on their way to a join's store, stored together once the loop's
 * turn is over (or STORE_BATCH of them are waiting): one transaction and
 * one round trip for many. items[i] is the part's item, NULL for a part
 * that died on the way (recorded, its item dead-lettered already); the
 * strings of parts[i] are the batch's, but an item's payload. */
struct store_batch {
	struct hop_gstore_part *parts;
	struct hop_item **items;
	size_t n, cap;
};

#define STORE_BATCH 256

static void store_flush(struct run *r, struct hop_stage *st);

static void store_flush_soon(struct hop_loop *loop, void *arg)
{
	struct hop_stage *st = arg;
	(void)loop;
	store_flush(st->run, st);
}

/* Frees the strings of part p (not its payload, an item's). */
static void part_free(struct hop_gstore_part *p)
{
	free((char *)p->key);
	free((char *)p->id);
	free((char *)p->stage);
	free((char *)p->error);
	*p = (struct hop_gstore_part){0};
}

/* Dead part record p (whose strings it takes) waits for st's store: its
 * item is dead-lettered already, so it cannot go back to a source. */
static void dead_wait_push(struct run *r, struct hop_stage *st,
			   struct hop_gstore_part *p)
{
	if (st->ndead_wait == st->dead_wait_cap) {
		size_t cap = st->dead_wait_cap ? 2 * st->dead_wait_cap : 16;
		struct hop_gstore_part *n =
		    realloc(st->dead_wait, cap * sizeof(*n));
		if (!n) {
			hop_log_ev(HOP_ERROR, -1, p->id,
				   "stage %s: out of memory: the record of "
				   "this dead part of group %s is lost; the "
				   "group waits for its timeout",
				   st->name, p->key);
			r->store_failed = true;
			part_free(p);
			return;
		}
		st->dead_wait = n;
		st->dead_wait_cap = cap;
	}
	st->dead_wait[st->ndead_wait++] = *p;
	*p = (struct hop_gstore_part){0};
	st->parts++;
}

/* The dead part records that wait for st's store, which will not take
 * them (STORE_PATIENCE_MS passed, or the run stops): named, and the run
 * ends non-zero. Their groups stay open, for their timeout or by hand. */
static void dead_wait_drop(struct run *r, struct hop_stage *st)
{
	if (!st->ndead_wait)
		return;
	hop_log(HOP_ERROR,
		"stage %s: %zu dead part(s) were never recorded in its state "
		"store (the first: %s of group %s): their groups stay open",
		st->name, st->ndead_wait, st->dead_wait[0].id,
		st->dead_wait[0].key);
	r->store_failed = true;
	for (size_t i = 0; i < st->ndead_wait; i++)
		part_free(&st->dead_wait[i]);
	st->parts -= st->ndead_wait;
	st->ndead_wait = 0;
	schedule(r);
}

/* it waits for the store while the server is away: tried again by the
 * sweep, or, past STORE_PATIENCE_MS, back to its source. A part that
 * died (it NULL) leaves its record p waiting instead. */
static void store_defer(struct run *r, struct hop_stage *st,
			struct hop_item *it, struct hop_gstore_part *p)
{
	if (!it) {
		dead_wait_push(r, st, p);
		return;
	}
	if (store_down(st, "")) {
		release_work(r, it);
		return;
	}
	hop_queue_push(&st->store_wait, it);
	st->parts++;
}

/* st's batch, with room for one more part; NULL when memory ran out. */
static struct store_batch *batch_room(struct hop_stage *st)
{
	struct store_batch *b = st->batch;

	if (!b && !(b = st->batch = calloc(1, sizeof(*b))))
		return NULL;
	if (b->n == b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 64;
		struct hop_gstore_part *p = realloc(b->parts, cap * sizeof(*p));
		if (p)
			b->parts = p;
		struct hop_item **items =
		    p ? realloc(b->items, cap * sizeof(*items)) : NULL;
		if (!items)
			return NULL;
		b->items = items;
		b->cap = cap;
	}
	return b;
}

/* A part was queued in st's batch: stored once the loop's turn is over,
 * or now when the batch is full. */
static void batch_queued(struct run *r, struct hop_stage *st)
{
	if (st->batch->n >= STORE_BATCH)
		store_flush(r, st);
	else
		hop_loop_soon(r->loop, store_flush_soon, st);
}

/* Queues dead part record p (whose strings it takes) for st's store. */
static void store_queue_record(struct run *r, struct hop_stage *st,
			       struct hop_gstore_part *p)
{
	struct store_batch *b = batch_room(st);

	if (!b) {
		dead_wait_push(r, st, p);
		return;
	}
	b->parts[b->n] = *p;
	b->items[b->n++] = NULL;
	*p = (struct hop_gstore_part){0};
	batch_queued(r, st);
}

/* The store's record of part it of group pi->key (whose key it takes):
 * dead with error (in stage) when error is given, else its payload; it
 * NULL for a part that died (id given). The strings are its own but the
 * payload, and id is NULL when memory ran out. */
static struct hop_gstore_part part_record(struct hop_part_info *pi,
					  struct hop_item *it, const char *id,
					  const char *stage, const char *error)
{
	struct hop_gstore_part p = {.key = pi->key,
				    .id = strdup(id),
				    .seq = pi->seq,
				    .expected = pi->count >= 0 ? pi->count
						: pi->last     ? pi->seq + 1
							       : -1,
				    .payload = error ? NULL : it->payload,
				    .len = error ? 0 : it->payload_len,
				    .stage = error ? strdup(stage) : NULL,
				    .error = error ? strdup(error) : NULL};
	pi->key = NULL;
	return p;
}

/* Queues part it of group pi->key (whose key it takes) for st's store:
 * dead with error (in stage) when error is given, else its payload; it
 * NULL for a part that died (id given). key: the one it was emitted
 * with, kept on it should it have to wait. */
static void store_queue(struct run *r, struct hop_stage *st,
			struct hop_item *it, const char *id,
			struct hop_part_info *pi, const char *stage,
			const char *error, const char *key)
{
	struct store_batch *b = batch_room(st);

	if (!b)
		goto nomem;
	struct hop_gstore_part *p = &b->parts[b->n];
	*p = part_record(pi, it, id, stage, error);
	b->items[b->n++] = it;
	if (!p->id || (error && (!p->stage || !p->error)) ||
	    (it && key && !it->key && !(it->key = strdup(key)))) {
		b->n--;
		part_free(&b->parts[b->n]);
		goto nomem;
	}
	if (it)
		st->parts++;
	batch_queued(r, st);
	return;
nomem:
	free(pi->key);
	pi->key = NULL;
	hop_log_ev(HOP_ERROR, -1, id,
		   "stage %s: out of memory: the part goes back to its source",
		   st->name);
	if (it)
		release_work(r, it);
}

/* Stores the parts queued for st's store, in one transaction; each part's
 * item ends, or, when the store failed, waits for it (store_defer). */
static void store_flush(struct run *r, struct hop_stage *st)
{
	struct store_batch *stb = st->batch, one;
	struct store_batch *b = &one;
	char msg[512];
	int *verdicts;
	size_t n;

	if (!stb || !(n = stb->n))
		return;
	/* Taken whole: what ending its items sets off may queue more. */
	one = *stb;
	*stb = (struct store_batch){0};
	int rc = (verdicts = calloc(n, sizeof(*verdicts)))
		     ? hop_gstore_add(st->gstore, b->parts, n, verdicts, msg,
				      sizeof(msg))
		     : -ENOMEM;
	if (rc == -ENOMEM)
		snprintf(msg, sizeof(msg), "out of memory");
	if (rc)
		store_down(st, msg);
	else
		store_up(st);
	for (size_t i = 0; i < n; i++) {
		struct hop_item *it = b->items[i];
		struct hop_gstore_part *p = &b->parts[i];
		if (it)
			st->parts--;
		if (rc) {
			store_defer(r, st, it, p);
		} else if (verdicts[i] == HOP_GSTORE_LATE && it) {
			st->stats.late++;
			hop_log_ev(HOP_WARN, -1, p->id,
				   "stage %s: a part of group %s came after "
				   "the group was over: dropped",
				   st->name, p->key);
		}
		if (!rc && it)
			end_work(r, it);
	}
	/* Then the groups these parts completed. */
	for (size_t i = 0; !rc && i < n; i++)
		if (verdicts[i] == HOP_GSTORE_COMPLETE)
			store_group_emit(r, st, b->parts[i].key);
	for (size_t i = 0; i < n; i++)
		part_free(&b->parts[i]);
	free(verdicts);
	free(one.parts);
	free(one.items);
}

/* The run stops: the parts queued for the store go back to their
 * sources. */
static void store_batch_drop(struct run *r, struct hop_stage *st)
{
	struct store_batch *b = st->batch;

	for (size_t i = 0; b && i < b->n; i++) {
		part_free(&b->parts[i]);
		if (b->items[i]) {
			st->parts--;
			release_work(r, b->items[i]);
		}
	}
	if (b)
		b->n = 0;
}

static void store_batch_free(struct store_batch *b)
{
	if (!b)
		return;
	free(b->parts);
	free(b->items);
	free(b);
}

/* Why a group of the store that this run hands on cannot be joined: it
 * timed out (not complete) without "partial", or a part died and the
 * join does not collect. NULL when it can. */
static char *store_group_why(const struct hop_stage *st,
			     const struct hop_group *g, bool overdue)
{
	const struct hop_join_config *j = st->cfg->join;
	char *why = NULL;

	if (overdue && !j->partial) {
		char of[32];
		group_size(g, of, "an unknown number of");
		if (asprintf(&why,
			     "stage %s: join timed out after %.1f s: group "
			     "%s had %zu of %s part(s)",
			     st->name, j->timeout, g->key, g->nparts + g->ndead,
			     of) < 0)
			why = strdup("join timed out");
		return why;
	}
	if (g->ndead && !j->collect)
		return key_group_why(st, g);
	return NULL;
}

/* Frees a group loaded from the store, with its parts. */
static void store_group_free(struct hop_group *g)
{
	for (size_t i = 0; i < g->nparts; i++)
		hop_item_free(g->parts[i]);
	g->nparts = 0;
	hop_group_free(g);
}

/* Hands on group key of st's store, this run's now: its joined item is
 * written (window_done tells the store), or, when it cannot be joined,
 * the group is marked dead in the store, with its parts. */
static void store_group_emit(struct run *r, struct hop_stage *st,
			     const char *key)
{
	struct hop_group *g;
	struct window *w = NULL;
	struct hop_item *anchor = NULL, *c = NULL;
	char msg[512], *why = NULL, *payload = NULL, *name = NULL;
	bool overdue;

	if (hop_strmap_get(st->emitting, key))
		return; /* being written */
	if (!(g = calloc(1, sizeof(*g))) || !(g->key = strdup(key))) {
		snprintf(msg, sizeof(msg), "out of memory");
		goto retry;
	}
	g->run = r;
	g->stage = st->index;
	g->expected = -1;
	if (hop_gstore_load(st->gstore, g, msg, sizeof(msg)))
		goto retry;
	overdue = !hop_group_complete(g);
	if ((why = store_group_why(st, g, overdue))) {
		hop_log(HOP_ERROR, "%s: the group stays in %s, marked dead",
			why, hop_gstore_table(st->gstore));
		if (hop_gstore_finish(st->gstore, key, why, msg, sizeof(msg)))
			goto retry;
		st->stats.dead++;
		r->groups_dead++;
		free(why);
		store_group_free(g);
		return;
	}
	if (overdue)
		hop_log(HOP_WARN,
			"stage %s: group %s is not complete after %.1f s: "
			"handing on what came (\"missing\": true)",
			st->name, key, st->cfg->join->timeout);
	snprintf(msg, sizeof(msg), "out of memory");
	if (!(w = calloc(1, sizeof(*w))) || !(w->store_key = strdup(key)) ||
	    asprintf(&name, "%s#%s", st->name, key) < 0 ||
	    !(anchor = hop_item_new(name, strdup("null"), 4)) ||
	    !(payload = hop_group_payload(g, overdue)) ||
	    hop_strmap_put(st->emitting, key, st))
		goto retry;
	w->stage = st->index;
	w->what = "its joined item";
	anchor->feed = -1;
	anchor->pending = 1;
	anchor->fate = FATE_ACK;
	anchor->src_data = w;
	anchor->stage = (int16_t)st->index;
	struct output o = {g->key, payload, strlen(payload), NULL, NULL};
	if ((c = child(anchor, &o, false))) {
		anchor->pending++;
		group_out(r, st, c);
	} else {
		anchor->fate = FATE_RELEASE;
	}
	free(payload);
	store_group_free(g);
	unpend(r, anchor);
	schedule(r);
	return;
retry:
	hop_log(HOP_ERROR,
		"stage %s: cannot hand on group %s now: %s: it stays this "
		"run's in %s, tried again in a second",
		st->name, key, msg,
		st->gstore ? hop_gstore_table(st->gstore) : "the store");
	if (w)
		free(w->store_key);
	free(w);
	if (anchor)
		anchor->src_data = NULL;
	hop_item_free(anchor);
	free(payload);
	free(why);
	if (g)
		store_group_free(g);
}

/* The store hears how the item(s) written for a group of join st, or a
 * window (win) of reduce st, ended (window_done). */
static void store_over(struct run *r, struct hop_stage *st, const char *key,
		       int64_t win, const struct hop_item *anchor)
{
	bool group = st->cfg->join != NULL;
	char msg[512], wkey[24], *why = NULL;

	if (!group) {
		snprintf(wkey, sizeof(wkey), "%lld", (long long)win);
		key = wkey;
	}
	hop_strmap_del(st->emitting, key);
	if (anchor->fate == FATE_RELEASE)
		return; /* still the run's: the next sweep, or another's */
	if (anchor->fate == FATE_DEAD) {
		if (asprintf(&why,
			     "stage %s: %s %s's %s could not be written: %s",
			     st->name, group ? "group" : "window", key,
			     group ? "joined item" : "results",
			     anchor->error ? anchor->error : "failed") < 0)
			why = NULL;
		hop_log(HOP_ERROR, "%s: the %s stays in %s, marked dead",
			why ? why : "a result could not be written",
			group ? "group" : "window",
			hop_gstore_table(st->gstore));
		st->stats.dead++;
		r->groups_dead++;
	}
	const char *error = anchor->fate == FATE_DEAD
				? (why ? why : "could not be written")
				: NULL;
	if (group
		? hop_gstore_finish(st->gstore, key, error, msg, sizeof(msg))
		: hop_gstore_finish_window(st->gstore, win, st->tumbler != NULL,
					   error, msg, sizeof(msg)))
		hop_log(HOP_ERROR,
			"stage %s: %s %s is written but the store did not "
			"hear it: %s: it will be written again",
			st->name, group ? "group" : "window", key, msg);
	free(why);
}

struct sweep {
	struct run *r;
	struct hop_stage *st;
};

static bool store_window_emit(struct run *r, struct hop_stage *st, int64_t win,
			      bool *claimed);

static void sweep_one(const char *key, void *arg)
{
	struct sweep *s = arg;
	if (s->st->cfg->join)
		store_group_emit(s->r, s->st, key);
	else
		store_window_emit(s->r, s->st, strtoll(key, NULL, 10),
				  &(bool){true});
}

/* Hands on the groups (or a reduce's windows) of st's store that are the
 * run's to hand on now (hop_gstore_claim), and now and then forgets old
 * done ones. */
static void store_sweep(struct run *r, struct hop_stage *st)
{
	const struct hop_join_config *j = st->cfg->join;
	struct sweep s = {r, st};
	char msg[512];

	if (hop_gstore_claim(st->gstore,
			     j		   ? j->timeout
			     : st->tumbler ? 1
					   : 0,
			     sweep_one, &s, msg, sizeof(msg)) < 0)
		store_down(st, msg);
	if (hop_now_ms() < st->prune_ms)
		return;
	st->prune_ms = hop_now_ms() + STORE_PRUNE_MS;
	if (hop_gstore_prune(st->gstore, j ? j->remember : STORE_WINDOWS_KEPT,
			     msg, sizeof(msg)))
		hop_log(HOP_WARN, "stage %s: %s", st->name, msg);
}

static void store_tallies(struct run *r, struct hop_stage *st);
static void store_emit_due(struct run *r, struct hop_stage *st);
static void join_key_part(struct run *r, struct hop_stage *st,
			  struct hop_item *it, const char *key);

/* The parts of join st that wait for its store try again, the first
 * reaching for it and the rest only if it answers; past
 * STORE_PATIENCE_MS they go back to their sources. */
static void store_retry(struct run *r, struct hop_stage *st)
{
	struct hop_queue q = st->store_wait;
	struct hop_item *it;
	bool give_up = st->store_down_ms &&
		       hop_now_ms() - st->store_down_ms >= STORE_PATIENCE_MS;

	if (!q.head && !st->ndead_wait)
		return;
	st->store_wait = (struct hop_queue){0};
	if (give_up) {
		if (q.head)
			hop_log(HOP_ERROR,
				"stage %s: its state store is out of reach "
				"still: %zu part(s) go back to their sources",
				st->name, st->parts - st->ndead_wait);
		st->store_down_ms = 0;
		dead_wait_drop(r, st);
	}
	st->store_trying = !give_up;
	/* Taken whole: a failed try puts them back. */
	struct hop_gstore_part *dead = st->dead_wait;
	size_t ndead = st->ndead_wait;
	st->dead_wait = NULL;
	st->ndead_wait = st->dead_wait_cap = 0;
	st->parts -= ndead;
	for (size_t i = 0; i < ndead; i++)
		store_queue_record(r, st, &dead[i]);
	free(dead);
	while ((it = hop_queue_pop(&q))) {
		st->parts--;
		if (give_up)
			release_work(r, it);
		else
			join_key_part(r, st, it, it->key);
	}
	store_flush(r, st);
	st->store_trying = false;
	schedule(r); /* the run may be over now */
}

static void sweep_tick(struct hop_loop *loop, void *arg)
{
	struct run *r = arg;
	(void)loop;
	r->sweep_timer = 0;
	for (int i = 0; i < r->nstages && r->phase == RUNNING; i++) {
		struct hop_stage *st = &r->stages[i];
		if (!st->gstore)
			continue;
		if (st->cfg->reduce) {
			store_tallies(r, st);
			store_emit_due(r, st);
		} else {
			store_retry(r, st);
		}
		store_sweep(r, st);
	}
	if (r->phase == RUNNING)
		r->sweep_timer =
		    hop_loop_after(r->loop, STORE_SWEEP_MS, sweep_tick, r);
}

/* it reached join stage st, a join by key (key: the one it was emitted
 * with): into its key's group, or dead when it names none. */
static void join_key_part(struct run *r, struct hop_stage *st,
			  struct hop_item *it, const char *key)
{
	const struct hop_join_config *j = st->cfg->join;
	struct hop_item *root = root_of(it);
	struct hop_part_info pi;
	struct hop_group *g;
	char msg[400];
	int rc;

	if (root->fate == FATE_RELEASE) {
		release_work(r, it);
		return;
	}
	rc = hop_part_info(j, it->payload, it->payload_len, key, &pi, msg,
			   sizeof(msg));
	if (rc == -EINVAL) {
		gather_dead(r, st, it, msg);
		return;
	}
	if (st->gstore) {
		/* Its tree died elsewhere: stored as a finished part. */
		const char *dead = root->fate != FATE_DEAD ? NULL
				   : root->error	   ? root->error
						 : "its source item is dead";
		if (rc) {
			release_work(r, it);
		} else if (st->store_down_ms && !st->store_trying &&
			   (!key || it->key || (it->key = strdup(key)))) {
			/* While the store is out of reach, parts wait for
			 * the sweep's try (with the key they were emitted
			 * with) rather than each trying on its own. */
			free(pi.key);
			store_defer(r, st, it, NULL);
		} else {
			store_queue(r, st, it, it->id, &pi, st->name, dead,
				    key);
		}
		return;
	}
	if (!rc && hop_keyring_has(st->closed, pi.key)) {
		st->stats.late++;
		hop_log_ev(HOP_WARN, -1, it->id,
			   "stage %s: a part of group %s came after the group "
			   "was over: dropped",
			   st->name, pi.key);
		free(pi.key);
		end_work(r, it);
		return;
	}
	g = rc ? NULL : key_group(r, st, pi.key);
	if (g && root->fate == FATE_DEAD) {
		/* Its tree died elsewhere: a finished part, not a missing
		 * one. */
		if (!hop_group_has(g, it->id)) {
			hop_group_error(g, it->id, st->name,
					root->error
					    ? root->error
					    : "its source item is dead");
			g->ndead++;
			key_group_learn(st, g, &pi, it->id);
		}
		free(pi.key);
		end_work(r, it);
		key_group_check(r, g);
		return;
	}
	if (g && (int64_t)st->parts >= j->max_parts) {
		refuse_part(st, it, g->key);
		hop_group_error(g, it->id, st->name, it->error);
		g->ndead++;
		key_group_learn(st, g, &pi, it->id);
		free(pi.key);
		item_dead(r, st, it);
		key_group_check(r, g);
		return;
	}
	rc = g ? hop_group_add_seq(g, it, pi.seq) : -ENOMEM;
	if (not_added(r, st, it, rc)) {
		free(pi.key);
		return;
	}
	st->parts++;
	root->holds++; /* waiting in a group: gathered, not at work */
	key_group_learn(st, g, &pi, it->id);
	free(pi.key);
	key_group_check(r, g);
}

/* it died in stage: when its payload names a group of join by key st
 * (the payload it died with, read with the join's pointers), that group
 * counts it as a finished part, with its error. */
static void key_part_dead(struct run *r, struct hop_stage *st,
			  struct hop_item *it, const char *stage,
			  const char *error)
{
	struct hop_part_info pi;
	struct hop_group *g;
	char msg[400];

	if (r->phase != RUNNING ||
	    hop_part_info(st->cfg->join, it->payload, it->payload_len, NULL,
			  &pi, msg, sizeof(msg)))
		return;
	if (st->gstore) {
		error = error ? error : "failed";
		if (st->store_down_ms && !st->store_trying) {
			/* The store is out of reach: the record waits for
			 * the sweep's try, as parts do. */
			struct hop_gstore_part p =
			    part_record(&pi, NULL, it->id, stage, error);
			if (p.id && p.stage && p.error) {
				dead_wait_push(r, st, &p);
			} else {
				part_free(&p);
				hop_log_ev(HOP_ERROR, -1, it->id,
					   "stage %s: out of memory: this "
					   "dead part is not recorded; its "
					   "group waits for its timeout",
					   st->name);
				r->store_failed = true;
			}
		} else {
			store_queue(r, st, NULL, it->id, &pi, stage, error,
				    NULL);
		}
		return;
	}
	if (hop_keyring_has(st->closed, pi.key) ||
	    !(g = key_group(r, st, pi.key)) || hop_group_has(g, it->id)) {
		free(pi.key);
		return;
	}
	hop_group_error(g, it->id, stage, error);
	g->ndead++;
	key_group_learn(st, g, &pi, it->id);
	free(pi.key);
	key_group_check(r, g);
}

/* A finite run's upstream of st, a join with "state", is over: the
 * groups it leaves open wait in the store for a later run. */
static void store_left_open(struct hop_stage *st)
{
	char *keys[5], msg[512], list[400] = "";
	size_t nkeys = 0, len = 0;
	int64_t open = hop_gstore_open_groups(st->gstore, keys, 5, &nkeys, msg,
					      sizeof(msg));

	if (open < 0) {
		hop_log(HOP_ERROR, "stage %s: %s", st->name, msg);
		return;
	}
	for (size_t i = 0; i < nkeys; i++) {
		if (len < sizeof(list))
			len += (size_t)snprintf(list + len, sizeof(list) - len,
						"%s%s", i ? ", " : "", keys[i]);
		free(keys[i]);
	}
	if (open > 0)
		hop_log(HOP_WARN,
			"stage %s: %lld group(s) stay open in %s for a later "
			"run (the oldest: %s%s)",
			st->name, (long long)open, hop_gstore_table(st->gstore),
			list, open > (int64_t)nkeys ? ", ..." : "");
}

/* Joins by key whose upstream is over: a group still open now never will
 * be complete. A finite run names each and dead-letters its parts' source
 * items, so that it ends, and ends non-zero. */
static void joins_due(struct run *r)
{
	for (int i = 0; i < r->nstages; i++) {
		struct hop_stage *st = &r->stages[i];
		struct hop_group *g;
		if (st->gstore && st->cfg->join && !st->store_swept &&
		    !r->cfg->watch && upstream_done(r, st)) {
			st->store_swept = true;
			store_sweep(r, st);
			store_left_open(st);
			continue;
		}
		if (!st->cfg->join || !st->cfg->join->by || !st->ngroups ||
		    r->cfg->watch || !upstream_done(r, st))
			continue;
		while ((g = st->groups)) {
			char *why = NULL, of[32];
			group_size(g, of, "an unknown number of");
			if (asprintf(&why,
				     "stage %s: group %s is not complete at "
				     "the end of the input: %zu of %s part(s) "
				     "came",
				     st->name, g->key, g->nparts + g->ndead,
				     of) < 0)
				why = NULL;
			hop_log(HOP_ERROR, "%s",
				why ? why : "a group is not complete");
			key_group_done(r, g, false, why ? why : "incomplete");
			free(why);
		}
	}
}

/* Holds root (one of its pending) until st's open window's result is
 * written: once per root and window, and a root's items often come in a
 * row. Returns 0 or -ENOMEM. */
static int hold_root(struct hop_stage *st, struct hop_item *root)
{
	if (st->nholds && st->holds[st->nholds - 1] == root)
		return 0;
	if (st->nholds == st->holds_cap) {
		size_t cap = st->holds_cap ? 2 * st->holds_cap : 1024;
		struct hop_item **h = realloc(st->holds, cap * sizeof(*h));
		if (!h)
			return -ENOMEM;
		st->holds = h;
		st->holds_cap = cap;
	}
	st->holds[st->nholds++] = root;
	root->pending++;
	root->holds++;
	return 0;
}

/* Roots held in short. A root folded into a built-in reduce whose tree
 * has nothing else at work or unwritten waits for the window's result as
 * a record: its id, its payload (for its dead letter, should the result
 * never be written), its attempts and its source; the item is freed. A
 * million items behind one result so keep a few dozen bytes each rather
 * than an item's few hundred, and the run makes no new page for each.
 * Only a root its source keeps nothing on (src_data NULL: its ack, dead
 * and release read the id and the payload) is kept so; the others stay
 * whole in st->holds. */
struct held_chunk {
	struct held_chunk *next;
	size_t used, cap;
	char data[];
};

/* A record's head, then its id and its payload, each with its NUL; the
 * records follow each other with no padding, their heads read with
 * memcpy. */
struct held_rec {
	uint32_t payload_len;
	uint16_t id_len;
	uint8_t attempt;
	uint8_t feed;
};

#define HELD_CHUNK_MIN 4096
#define HELD_CHUNK_MAX ((size_t)1 << 20)

static size_t held_size(const struct held_rec *rec)
{
	return sizeof(*rec) + rec->id_len + 1 + rec->payload_len + 1;
}

/* Whether root, whose item st folded in and holds, can wait for st's
 * result as a record: nothing else of its tree waits, its source keeps
 * nothing on it, it fits a record's head, and st is not a time window
 * (whose panes keep their roots whole). */
static bool heldable(const struct hop_stage *st, const struct hop_item *root)
{
	return !st->tumbler && root->feed >= 0 && root->feed <= UINT8_MAX &&
	       root->pending == 1 && root->holds == 1 &&
	       root->fate == FATE_ACK && !root->groups && !root->src_data &&
	       root->attempt >= 0 && root->attempt <= UINT8_MAX &&
	       root->payload_len < UINT32_MAX;
}

/* Appends root's record to h. Returns 0, -E2BIG for an id too long for a
 * record, or -ENOMEM. */
static int held_add(struct hop_held *h, const struct hop_item *root)
{
	size_t id_len = strlen(root->id);
	if (id_len > UINT16_MAX)
		return -E2BIG;
	struct held_rec rec = {(uint32_t)root->payload_len, (uint16_t)id_len,
			       (uint8_t)root->attempt, (uint8_t)root->feed};
	size_t need = held_size(&rec);
	struct held_chunk *c = h->tail;

	if (!c || c->cap - c->used < need) {
		size_t cap = c ? 2 * c->cap : HELD_CHUNK_MIN;
		if (cap > HELD_CHUNK_MAX)
			cap = HELD_CHUNK_MAX;
		if (cap < need)
			cap = need;
		if (!(c = malloc(sizeof(*c) + cap)))
			return -ENOMEM;
		c->cap = cap;
		c->next = NULL;
		c->used = 0;
		if (h->tail)
			h->tail->next = c;
		else
			h->head = c;
		h->tail = c;
	}
	char *p = c->data + c->used;
	memcpy(p, &rec, sizeof(rec));
	memcpy(p + sizeof(rec), root->id, id_len + 1);
	memcpy(p + sizeof(rec) + id_len + 1, root->payload, root->payload_len);
	p[sizeof(rec) + id_len + 1 + root->payload_len] = '\0';
	c->used += need;
	h->n++;
	return 0;
}

/* The root of the record at p, in t: a stand-in item for its source's
 * ops, made once (zeroed, ok, fate FATE_ACK, one_block) for all the
 * records; its head in *rec. */
static void held_root(const char *p, struct hop_item *t, struct held_rec *rec)
{
	memcpy(rec, p, sizeof(*rec));
	t->id = (char *)p + sizeof(*rec);
	t->payload = t->id + rec->id_len + 1;
	t->payload_len = rec->payload_len;
	t->attempt = rec->attempt;
	t->feed = rec->feed;
}

/* Visits every record of h in order: its head in rec and the stand-in t
 * (held_root), from chunk c at p. */
#define HELD_EACH(h, c, p, t, rec)                                             \
	for (struct held_chunk *c = (h)->head; c; c = c->next)                 \
		for (const char *p = c->data;                                  \
		     p < c->data + c->used &&                                  \
		     (held_root(p, &(t), &(rec)), true);                       \
		     p += held_size(&(rec)))

static void held_free(struct hop_held *h)
{
	struct held_chunk *c, *next;
	for (c = h->head; c; c = next) {
		next = c->next;
		free(c);
	}
	free(h->ranges);
	*h = (struct hop_held){0};
}

/* Lines a reduce folded in with no item made of them (the source's
 * fetch_lines): n lines of one feed from line first on, the first at
 * offset off in its file. Their ids are their line numbers; their
 * payloads are read again (reread) only for dead letters. */
struct held_range {
	int64_t first, n;
	uint64_t off;
	int feed;
};

/* Makes sure line (of feed, at off) can be added to h with no allocation
 * (held_range_add). Returns 0 or -ENOMEM. */
static int held_range_room(struct hop_held *h, int feed, int64_t line)
{
	struct held_range *last =
	    h->nranges ? &h->ranges[h->nranges - 1] : NULL;
	if ((last && last->feed == feed && last->first + last->n == line) ||
	    h->nranges < h->ranges_cap)
		return 0;
	size_t cap = h->ranges_cap ? 2 * h->ranges_cap : 16;
	struct held_range *rs = realloc(h->ranges, cap * sizeof(*rs));
	if (!rs)
		return -ENOMEM;
	h->ranges = rs;
	h->ranges_cap = cap;
	return 0;
}

/* Adds line (of feed, at off) to h, which has room (held_range_room). */
static void held_range_add(struct hop_held *h, int feed, int64_t line,
			   uint64_t off)
{
	struct held_range *last =
	    h->nranges ? &h->ranges[h->nranges - 1] : NULL;
	if (last && last->feed == feed && last->first + last->n == line)
		last->n++;
	else
		h->ranges[h->nranges++] =
		    (struct held_range){line, 1, off, feed};
	h->n++;
}

/* A root kept in short dies: a whole item again, id and payload copied,
 * with why, as its dead letter may have to wait. When memory runs out it
 * goes back to its source instead. */
static void held_dead(struct run *r, const struct hop_stage *st,
		      struct hop_item *t, size_t id_len, const char *why)
{
	struct hop_item *it =
	    hop_item_new_block(t->id, id_len, t->payload, t->payload_len, 0);
	struct feed *f = &r->feeds[t->feed];

	if (it && !(it->error = strdup(why))) {
		hop_item_free(it);
		it = NULL;
	}
	if (it) {
		it->feed = t->feed;
		it->attempt = t->attempt ? t->attempt : 1;
		it->fate = FATE_DEAD;
		it->died_in = (int16_t)(st->index + 1);
		record_dead_root(r, it);
		return;
	}
	hop_log_ev(HOP_ERROR, -1, t->id,
		   "out of memory making its dead letter: handed back to its "
		   "source");
	r->stats.released++;
	if (f->src->ops->release(f->src, t))
		source_error(r, f, t->id);
}

/* The stand-in root of line n of a range (held_range), its id in num:
 * the payload null, the text being in the source's file only. */
static void range_root(struct hop_item *t, int feed, int64_t n, char num[24])
{
	snprintf(num, 24, "%lld", (long long)n);
	t->id = num;
	t->payload = (char *)"null";
	t->payload_len = 4;
	t->attempt = 0;
	t->feed = (int16_t)feed;
}

/* The lines of a range read again for their dead letters. */
struct reread_dead {
	struct run *r;
	const struct hop_stage *st;
	const char *why;
	int feed;
	int64_t next; /* the first line not read again yet */
};

static void reread_each(void *arg, int64_t line, const char *text, size_t len)
{
	struct reread_dead *d = arg;
	struct hop_item t = {.ok = true, .fate = FATE_ACK, .one_block = true};
	char num[24];

	range_root(&t, d->feed, line, num);
	t.payload = (char *)text;
	t.payload_len = len;
	held_dead(d->r, d->st, &t, strlen(num), d->why);
	d->next = line + 1;
}

/* Root t of feed f (a stand-in, its id id_len bytes), held by st, ends
 * with fate, as unpend would end it whole. */
static void held_one(struct run *r, struct feed *f, const struct hop_stage *st,
		     struct hop_item *t, size_t id_len, enum fate fate,
		     const char *why)
{
	switch (fate) {
	case FATE_ACK:
		if (f->src->ops->ack && f->src->ops->ack(f->src, t))
			source_error(r, f, t->id);
		r->stats.done++;
		break;
	case FATE_DEAD:
		held_dead(r, st, t, id_len, why);
		break;
	case FATE_RELEASE:
		r->stats.released++;
		if (f->src->ops->release(f->src, t))
			source_error(r, f, t->id);
		break;
	}
}

/* The lines of range g hear fate, as held_end's records do. For their
 * dead letters their text is read again from the source's file; a line
 * that cannot be (the file is gone or changed) dies with the payload
 * null, the source's error saying why. */
static void range_end(struct run *r, const struct held_range *g, enum fate fate,
		      const struct hop_stage *st, const char *why)
{
	struct hop_item t = {.ok = true, .fate = FATE_ACK, .one_block = true};
	struct feed *f = &r->feeds[g->feed];
	int64_t from = g->first, end = g->first + g->n;
	char num[24];

	if (fate == FATE_ACK && !f->src->ops->ack) {
		r->stats.done += (uint64_t)g->n;
		return;
	}
	if (fate == FATE_DEAD) {
		struct reread_dead d = {r, st, why, g->feed, g->first};
		if (f->src->ops->reread(f->src, g->first, g->n, g->off,
					reread_each, &d))
			source_error(r, f, NULL);
		from = d.next;
	}
	for (int64_t n = from; n < end; n++) {
		range_root(&t, g->feed, n, num);
		held_one(r, f, st, &t, strlen(num), fate, why);
	}
}

/* The window (or stage) holding h ended with fate, for st: its roots are
 * acknowledged (once the journal has them), handed back, or dead with
 * why, as unpend would end them whole. Empties h. */
static void held_end(struct run *r, struct hop_held *h, enum fate fate,
		     const struct hop_stage *st, const char *why)
{
	struct hop_item t = {.ok = true, .fate = FATE_ACK, .one_block = true};
	struct held_rec rec;
	char num[24];

	if (!h->n)
		return;
	if (fate == FATE_ACK && r->journal) {
		HELD_EACH(h, c, p, t, rec)
		{
			journal_add(r, &t);
		}
		for (size_t i = 0; i < h->nranges; i++) {
			const struct held_range *g = &h->ranges[i];
			for (int64_t n = g->first; n < g->first + g->n; n++) {
				range_root(&t, g->feed, n, num);
				journal_add(r, &t);
			}
		}
		journal_sync(r);
	}
	HELD_EACH(h, c, p, t, rec)
	{
		held_one(r, &r->feeds[t.feed], st, &t, rec.id_len, fate, why);
	}
	for (size_t i = 0; i < h->nranges; i++)
		range_end(r, &h->ranges[i], fate, st, why);
	held_free(h);
}

/* A reducer worker (gather.h): a reduce stage with a command folds its
 * items through its workers. Per key and window, items wait in a batch;
 * a batch goes to a worker as {"key", "acc", "items"} and the answer is
 * the key's new accumulator. Without merge, one batch per key is at a
 * worker at a time, each from the last accumulator; with merge, batches
 * start from null side by side and their accumulators meet in pairs
 * ({"merge": [a, b]}), a tree. Batches and results are children of the
 * window's anchor: the roots behind the window wait for its results, as
 * a built-in reduce's do (window_done). */

/* Payloads waiting to go to a worker together: at most a batch. */
struct chunk {
	struct chunk *next;
	char *text; /* comma separated */
	size_t len, cap, n;
};

/* One key's fold in one window. */
struct fold {
	char *key; /* "" with no by */
	char *acc; /* without merge: the accumulator, NULL before any */
	struct chunk *head, *tail; /* the payloads waiting, in batches */
	size_t nitems;
	char **accs; /* with merge: accumulators waiting for a partner */
	size_t naccs, accs_cap;
	int inflight; /* batches and merges at a worker */
	uint64_t sent;
	struct fold_window *fw;
};

/* The folds of one window of a reducer worker stage. */
struct fold_window {
	struct hop_item *anchor; /* its src_data is the struct window */
	struct hop_strmap *by_key;
	struct fold **folds; /* in the order keys came */
	size_t n, cap;
	uint64_t number, items;
	bool closed; /* no more items: send what is left, then the results */
};

/* Forgets the payloads waiting in f. */
static void fold_drop_items(struct fold *f)
{
	struct chunk *c, *next;
	for (c = f->head; c; c = next) {
		next = c->next;
		free(c->text);
		free(c);
	}
	f->head = f->tail = NULL;
	f->nitems = 0;
}

static void fold_window_free(struct fold_window *fw)
{
	if (!fw)
		return;
	for (size_t i = 0; i < fw->n; i++) {
		struct fold *f = fw->folds[i];
		free(f->key);
		free(f->acc);
		fold_drop_items(f);
		for (size_t k = 0; k < f->naccs; k++)
			free(f->accs[k]);
		free(f->accs);
		free(f);
	}
	free(fw->folds);
	hop_strmap_free(fw->by_key);
	free(fw);
}

/* The window st's items go into now, opened when there is none. NULL
 * when memory ran out. */
static struct fold_window *fold_window(struct run *r, struct hop_stage *st)
{
	struct fold_window *fw = st->folding;
	struct window *w = NULL;
	char *name = NULL;

	if (fw)
		return fw;
	fw = calloc(1, sizeof(*fw));
	w = calloc(1, sizeof(*w));
	if (!fw || !w || !(fw->by_key = hop_strmap_new()) ||
	    asprintf(&name, "%s#%llu", st->name,
		     (unsigned long long)st->windows) < 0 ||
	    !(fw->anchor = hop_item_new(name, strdup("null"), 4))) {
		fold_window_free(fw);
		free(w);
		return NULL;
	}
	*w = (struct window){NULL, 0, st->index, "its reduce result", fw};
	fw->number = st->windows++;
	fw->anchor->feed = -1;
	fw->anchor->pending = 1; /* until the window closes */
	fw->anchor->fate = FATE_ACK;
	fw->anchor->src_data = w;
	fw->anchor->stage = (int16_t)st->index;
	st->folding = fw;
	return fw;
}

static struct fold *fold_of(struct fold_window *fw, const char *key)
{
	struct fold *f = hop_strmap_get(fw->by_key, key);

	if (f)
		return f;
	if (fw->n == fw->cap) {
		size_t cap = fw->cap ? 2 * fw->cap : 16;
		struct fold **p = realloc(fw->folds, cap * sizeof(*p));
		if (!p)
			return NULL;
		fw->folds = p;
		fw->cap = cap;
	}
	f = calloc(1, sizeof(*f));
	if (!f || !(f->key = strdup(key)) ||
	    hop_strmap_put(fw->by_key, key, f)) {
		if (f)
			free(f->key);
		free(f);
		return NULL;
	}
	f->fw = fw;
	fw->folds[fw->n++] = f;
	return f;
}

/* Appends text (len bytes) to f's waiting items, batch to a chunk. */
static int fold_append(struct fold *f, const char *text, size_t len,
		       int64_t batch)
{
	struct chunk *c = f->tail;

	if (!c || (int64_t)c->n >= batch) {
		if (!(c = calloc(1, sizeof(*c))))
			return -ENOMEM;
		if (f->tail)
			f->tail->next = c;
		else
			f->head = c;
		f->tail = c;
	}
	if (c->len + len + 2 > c->cap) {
		size_t cap = c->cap ? c->cap : 256;
		while (cap < c->len + len + 2)
			cap *= 2;
		char *p = realloc(c->text, cap);
		if (!p)
			return -ENOMEM;
		c->text = p;
		c->cap = cap;
	}
	if (c->n)
		c->text[c->len++] = ',';
	memcpy(c->text + c->len, text, len);
	c->len += len;
	c->text[c->len] = '\0';
	c->n++;
	f->nitems++;
	return 0;
}

/* The key as a JSON string, for a batch's payload. */
static char *json_text(const char *s)
{
	json_t *v = json_string(s);
	char *t = v ? json_dumps(v, JSON_ENCODE_ANY) : NULL;
	json_decref(v);
	return t;
}

/* Hands one item of f's to st's workers: payload, made by the caller,
 * taken. Returns 0 or -ENOMEM (payload freed). */
static int fold_submit(struct run *r, struct hop_stage *st, struct fold *f,
		       char *payload, const char *what)
{
	struct hop_item *anchor = f->fw->anchor;
	char *id = NULL;
	struct hop_item *c = NULL;

	if (asprintf(&id, "%s/%s/%s%llu", anchor->id, *f->key ? f->key : "all",
		     what, (unsigned long long)f->sent++) >= 0)
		c = hop_item_new(id, payload, strlen(payload));
	else
		free(payload);
	if (!c)
		return -ENOMEM;
	c->root = anchor;
	c->feed = -1;
	c->fate = FATE_ACK;
	c->stage = (int16_t)st->index;
	c->src_data = f;
	anchor->pending++;
	f->inflight++;
	hop_queue_push(&st->ready, c);
	schedule(r);
	return 0;
}

/* Sends f's oldest chunk of waiting items as one batch. */
static int fold_send_batch(struct run *r, struct hop_stage *st, struct fold *f)
{
	const struct hop_reduce_config *c = st->cfg->reduce;
	char *key = c->by ? json_text(f->key) : NULL;
	char *payload = NULL;
	const char *acc = !c->merge && f->acc ? f->acc : "null";
	struct chunk *ch = f->head;

	if ((c->by && !key) ||
	    asprintf(&payload, "{%s%s%s\"acc\":%s,\"items\":[%s]}",
		     key ? "\"key\":" : "", key ? key : "", key ? "," : "", acc,
		     ch->text) < 0) {
		free(key);
		return -ENOMEM;
	}
	free(key);
	f->head = ch->next;
	if (!f->head)
		f->tail = NULL;
	f->nitems -= ch->n;
	free(ch->text);
	free(ch);
	return fold_submit(r, st, f, payload, "");
}

/* Sends two of f's accumulators to be merged. */
static int fold_send_merge(struct run *r, struct hop_stage *st, struct fold *f)
{
	char *a = f->accs[--f->naccs], *b = f->accs[--f->naccs];
	char *payload = NULL;
	int rc = asprintf(&payload, "{\"merge\":[%s,%s]}", b, a);

	free(a);
	free(b);
	if (rc < 0)
		return -ENOMEM;
	return fold_submit(r, st, f, payload, "m");
}

/* Whether every fold of fw has its one accumulator, nothing waiting. */
static bool fold_window_settled(const struct fold_window *fw, bool merge)
{
	for (size_t i = 0; i < fw->n; i++) {
		const struct fold *f = fw->folds[i];
		if (f->nitems || f->inflight || (merge && f->naccs > 1))
			return false;
	}
	return true;
}

/* The closed window fw is settled: one result per key, its accumulator,
 * handed on as the stage's outputs. */
static void fold_window_out(struct run *r, struct hop_stage *st,
			    struct fold_window *fw)
{
	const struct hop_reduce_config *c = st->cfg->reduce;
	bool windowed = c->every || c->interval;
	struct hop_item *anchor = fw->anchor;

	for (size_t i = 0; i < fw->n; i++) {
		struct fold *f = fw->folds[i];
		const char *acc = c->merge ? (f->naccs ? f->accs[0] : "null")
					   : (f->acc ? f->acc : "null");
		const char *key = *f->key ? f->key : "all";
		char *id = NULL;
		if ((windowed ? asprintf(&id, "%s@%llu", key,
					 (unsigned long long)fw->number)
			      : asprintf(&id, "%s", key)) < 0)
			id = NULL;
		reduce_emit(r, st, anchor, id, acc);
		free(id);
	}
}

/* Sends what f can send now: merges of pairs, full batches (one at a time
 * without merge), and, once its window is closed, the rest. Then, when
 * its closed window is settled, its results. */
static void fold_progress(struct run *r, struct hop_stage *st, struct fold *f)
{
	const struct hop_reduce_config *c = st->cfg->reduce;
	struct fold_window *fw = f->fw;
	int rc = 0;

	if (fw->anchor->fate != FATE_ACK) {
		fold_drop_items(f); /* nothing of it will be written */
		return;
	}
	while (!rc && c->merge && f->naccs >= 2)
		rc = fold_send_merge(r, st, f);
	while (!rc && f->head &&
	       ((int64_t)f->head->n >= c->batch || fw->closed) &&
	       (c->merge || !f->inflight))
		rc = fold_send_batch(r, st, f);
	if (rc) {
		hop_log(HOP_ERROR,
			"stage %s: out of memory folding key %s: the items "
			"behind it go back to their sources",
			st->name, f->key);
		fw->anchor->fate = FATE_RELEASE;
		return;
	}
	if (fw->closed && !f->inflight && fold_window_settled(fw, c->merge))
		fold_window_out(r, st, fw);
}

/* Closes st's open window: its roots wait for its results, and what
 * waits in its batches goes to the workers. */
static void fold_close(struct run *r, struct hop_stage *st)
{
	struct fold_window *fw = st->folding;
	struct window *w;

	if (!fw)
		return;
	st->folding = NULL;
	w = fw->anchor->src_data;
	w->roots = st->holds;
	w->n = st->nholds;
	st->holds = NULL;
	st->nholds = st->holds_cap = 0;
	fw->closed = true;
	for (size_t i = 0; i < fw->n; i++)
		fold_progress(r, st, fw->folds[i]);
	if (!fw->n)
		fold_window_out(r, st, fw);
	unpend(r, fw->anchor); /* may free fw */
}

/* A worker answered one of st's batches or merges, it. */
static void fold_answer(struct run *r, struct hop_stage *st,
			struct hop_item *it)
{
	struct fold *f = it->src_data;
	char *acc = it->result ? it->result : strdup("null");

	it->result = NULL;
	it->src_data = NULL;
	f->inflight--;
	if (!acc) {
		f->fw->anchor->fate = FATE_RELEASE;
	} else if (st->cfg->reduce->merge) {
		if (f->naccs == f->accs_cap) {
			size_t cap = f->accs_cap ? 2 * f->accs_cap : 4;
			char **p = realloc(f->accs, cap * sizeof(*p));
			if (p) {
				f->accs = p;
				f->accs_cap = cap;
			}
		}
		if (f->naccs < f->accs_cap)
			f->accs[f->naccs++] = acc;
		else {
			free(acc);
			f->fw->anchor->fate = FATE_RELEASE;
		}
	} else {
		free(f->acc);
		f->acc = acc;
	}
	fold_progress(r, st, f);
	end_work(r, it); /* may end the window, f with it */
}

/* it reached reducer worker stage st: into its key's batch. */
static void fold_item(struct run *r, struct hop_stage *st, struct hop_item *it)
{
	const struct hop_reduce_config *c = st->cfg->reduce;
	struct fold_window *fw = fold_window(r, st);
	struct fold *f = NULL;
	char *key = NULL;
	bool missing = false;

	if (fw && c->by) {
		key = hop_json_pointer_text(it->payload, it->payload_len, c->by,
					    &missing);
		if (!key && missing) {
			char why[300];
			snprintf(why, sizeof(why), "no key at %s (\"by\")",
				 c->by);
			gather_dead(r, st, it, why);
			return;
		}
	}
	if (fw && (key || !c->by))
		f = fold_of(fw, key ? key : "");
	free(key);
	if (!f || fold_append(f, it->payload, it->payload_len, c->batch) ||
	    hold_root(st, root_of(it))) {
		hop_log_ev(HOP_ERROR, -1, it->id,
			   "stage %s: out of memory: the item goes back to "
			   "its source",
			   st->name);
		release_work(r, it);
		return;
	}
	st->stats.done++;
	fw->items++;
	end_work(r, it);
	fold_progress(r, st, f);
	if (c->every && fw->items >= (uint64_t)c->every)
		fold_close(r, st);
}

static void fold_abandon(struct run *r, struct hop_stage *st);

/* A reduce with "state" (gstore.h): its accumulators are kept in
 * PostgreSQL, by window and key. It folds items in memory as without,
 * and about once a second (or every TALLY_MAX items, or when a window
 * closes) counts them into the store in one transaction, with their ids,
 * so that an item that comes again after a crash counts once; then their
 * source items are acknowledged. When a window closes (or a finite run's
 * upstream is over), one coordinator takes it and writes its results
 * from the store; window_done tells the store. */

#define TALLY_MAX 10000

/* The items a reduce with "state" folded into a window since it last
 * counted them into the store: their ids and payloads (to fold again
 * those the store had counted already). */
struct tally {
	int64_t win;
	char **ids, **payloads;
	size_t *lens;
	size_t n, cap;
};

/* Window w's number in result ids: its start in s (ms when the
 * interval, size ms, is not whole seconds). */
static uint64_t window_number(int64_t size, int64_t w)
{
	return (uint64_t)(size % 1000 ? w * size : w * (size / 1000));
}

/* Hands on rd's results, one item per key, children of anchor: ids the
 * keys, with "@number" when windowed. Counts the window. */
static void reduce_results(struct run *r, struct hop_stage *st,
			   const struct hop_reducer *rd,
			   struct hop_item *anchor, bool windowed,
			   uint64_t number)
{
	for (size_t i = 0; i < hop_reducer_keys(rd); i++) {
		char *id = NULL, *json = NULL, *wid = NULL;
		bool made =
		    !hop_reducer_result(rd, i, &id, &json) &&
		    (!windowed || asprintf(&wid, "%s@%llu", id,
					   (unsigned long long)number) >= 0);
		reduce_emit(r, st, anchor, made ? (wid ? wid : id) : NULL,
			    json);
		free(id);
		free(wid);
		free(json);
	}
	st->windows++;
}

static struct tally *tally_new(int64_t win)
{
	struct tally *t = calloc(1, sizeof(*t));
	if (t)
		t->win = win;
	return t;
}

static void tally_clear(struct tally *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->ids[i]);
		free(t->payloads[i]);
	}
	t->n = 0;
}

static void tally_free(struct tally *t)
{
	if (!t)
		return;
	tally_clear(t);
	free(t->ids);
	free(t->payloads);
	free(t->lens);
	free(t);
}

/* Notes it, folded in. Returns 0 or -ENOMEM. */
static int tally_add(struct tally *t, const struct hop_item *it)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 256;
		char **ids = realloc(t->ids, cap * sizeof(*ids));
		if (ids)
			t->ids = ids;
		char **pl =
		    ids ? realloc(t->payloads, cap * sizeof(*pl)) : NULL;
		if (pl)
			t->payloads = pl;
		size_t *lens =
		    pl ? realloc(t->lens, cap * sizeof(*lens)) : NULL;
		if (!lens)
			return -ENOMEM;
		t->lens = lens;
		t->cap = cap;
	}
	char *id = strdup(it->id), *payload = malloc(it->payload_len + 1);
	if (!id || !payload) {
		free(id);
		free(payload);
		return -ENOMEM;
	}
	memcpy(payload, it->payload, it->payload_len);
	payload[it->payload_len] = '\0';
	t->ids[t->n] = id;
	t->payloads[t->n] = payload;
	t->lens[t->n++] = it->payload_len;
	return 0;
}

struct refold_arg {
	struct tally *t;
	const struct hop_reduce_config *cfg;
	bool refolded;
};

/* The store had counted some of a tally's items: *rd again, from the
 * others only (hop_gstore_count's refold). */
static int tally_refold(void *arg, const bool *fresh, struct hop_reducer **rd)
{
	struct refold_arg *a = arg;
	struct hop_reducer *nrd = hop_reducer_new(a->cfg);
	char msg[300];

	for (size_t i = 0; nrd && i < a->t->n; i++)
		if (fresh[i] &&
		    hop_reducer_add(nrd, a->t->payloads[i], a->t->lens[i], msg,
				    sizeof(msg)) == -ENOMEM) {
			hop_reducer_free(nrd);
			nrd = NULL;
		}
	if (!nrd)
		return -ENOMEM;
	hop_reducer_free(*rd);
	*rd = nrd;
	a->refolded = true;
	return 0;
}

/* The roots st holds hear fate (FATE_ACK or FATE_RELEASE) now. */
static void holds_end(struct run *r, struct hop_stage *st, enum fate fate)
{
	for (size_t i = 0; i < st->nholds; i++) {
		struct hop_item *h = st->holds[i];
		h->holds--;
		if (fate == FATE_RELEASE)
			release_work(r, h);
		else
			unpend(r, h);
	}
	st->nholds = 0;
	held_end(r, &st->held, fate, st, NULL);
}

/* The time st's window win closes, in seconds since the epoch, for the
 * store: its close with grace, and two sweeps more, so that each
 * coordinator counts what it has first; -1 without time windows. */
static double window_closes(const struct hop_stage *st, int64_t win)
{
	if (!st->tumbler)
		return -1;
	return (double)(hop_tumbler_close_at(st->tumbler, win) +
			2 * STORE_SWEEP_MS) /
	       1000;
}

/* Counts what st folded into its window since it last did into the
 * store, then acknowledges their source items. When the store is out of
 * reach, they wait for the next try (the sweep's) up to
 * STORE_PATIENCE_MS, or, when final (the window closes), go back to
 * their sources. */
static void store_tally(struct run *r, struct hop_stage *st, bool final)
{
	struct tally *t = st->tally;
	struct refold_arg arg = {t, st->cfg->reduce, false};
	char msg[512];
	int rc;

	if (!t || (!t->n && !st->nholds && !st->held.n))
		return;
	rc = t->n ? hop_gstore_count(
			st->gstore, t->win, window_closes(st, t->win),
			(const char *const *)t->ids, t->n, &st->reducer,
			tally_refold, &arg, msg, sizeof(msg))
		  : HOP_GSTORE_WAIT;
	if (rc < 0 && !store_down(st, msg) && !final) {
		/* Kept for the next try: the fold of all of them again. */
		if (arg.refolded) {
			bool *all = malloc(t->n * sizeof(*all));
			for (size_t i = 0; all && i < t->n; i++)
				all[i] = true;
			if (!all || tally_refold(&arg, all, &st->reducer))
				final = true; /* cannot: back they go */
			free(all);
		}
		if (!final)
			return;
	}
	if (rc < 0) {
		hop_log(HOP_ERROR,
			"stage %s: its %zu item(s) go back to their sources: "
			"%s",
			st->name, t->n, msg);
		st->store_down_ms = 0;
		hop_reducer_clear(st->reducer);
		tally_clear(t);
		holds_end(r, st, FATE_RELEASE);
		return;
	}
	store_up(st);
	if (rc == HOP_GSTORE_LATE) {
		st->stats.late += t->n;
		hop_log(HOP_WARN,
			"stage %s: window %lld was handed on already: %zu "
			"item(s) came too late for it, dropped",
			st->name, (long long)t->win, t->n);
	} else if (rc == HOP_GSTORE_COPY) {
		hop_log(HOP_INFO,
			"stage %s: some of %zu item(s) were counted in %s "
			"already (they came again): counted once",
			st->name, t->n, hop_gstore_table(st->gstore));
	}
	hop_reducer_clear(st->reducer);
	tally_clear(t);
	holds_end(r, st, FATE_ACK);
}

/* Notes that this run counted into window win, for its end. */
static void counted_add(struct hop_stage *st, int64_t win)
{
	for (size_t k = 0; k < st->ncounted; k++)
		if (st->counted[k] == win)
			return;
	if (st->ncounted == st->counted_cap) {
		size_t cap = st->counted_cap ? 2 * st->counted_cap : 16;
		int64_t *c = realloc(st->counted, cap * sizeof(*c));
		if (!c)
			return; /* the sweep hands it on, once it closes */
		st->counted = c;
		st->counted_cap = cap;
	}
	st->counted[st->ncounted++] = win;
}

/* Hands on st's window win from the store (*claimed: this run's
 * already, else taken now if open, and *claimed set): one result per key,
 * children of an anchor; window_done tells the store. Returns false when
 * the store failed (try again), true when handed on, or when there was
 * nothing to take. */
static bool store_window_emit(struct run *r, struct hop_stage *st, int64_t win,
			      bool *claimed)
{
	struct hop_reducer *rd = NULL;
	struct window *w = NULL;
	struct hop_item *anchor = NULL;
	char msg[512] = "out of memory", key[24], *name = NULL;
	int rc;

	snprintf(key, sizeof(key), "%lld", (long long)win);
	if (hop_strmap_get(st->emitting, key))
		return true; /* being written */
	if (!*claimed && (rc = hop_gstore_claim_window(st->gstore, win, msg,
						       sizeof(msg))) <= 0) {
		if (rc < 0)
			store_down(st, msg);
		return rc == 0;
	}
	*claimed = true;
	if (!(rd = hop_reducer_new(st->cfg->reduce)) ||
	    hop_gstore_load_window(st->gstore, win, rd, msg, sizeof(msg)) ||
	    !(w = calloc(1, sizeof(*w))) ||
	    asprintf(&name, "%s#%s", st->name, key) < 0 ||
	    !(anchor = hop_item_new(name, strdup("null"), 4)) ||
	    hop_strmap_put(st->emitting, key, st)) {
		hop_log(HOP_ERROR,
			"stage %s: cannot hand on window %s now: %s: it stays "
			"this run's in %s, tried again in a second",
			st->name, key, msg, hop_gstore_table(st->gstore));
		hop_reducer_free(rd);
		free(w);
		hop_item_free(anchor);
		return false;
	}
	*w = (struct window){.stage = st->index,
			     .what = "its reduce result",
			     .store_window = true,
			     .win = win};
	anchor->feed = -1;
	anchor->pending = 1;
	anchor->fate = FATE_ACK;
	anchor->src_data = w;
	anchor->stage = (int16_t)st->index;
	reduce_results(r, st, rd, anchor, st->tumbler != NULL,
		       st->tumbler ? window_number(st->tumbler->size_ms, win)
				   : 0);
	hop_reducer_free(rd);
	unpend(r, anchor);
	schedule(r);
	return true;
}

/* A finite run's input is over and st, a reduce with "state" and no time
 * windows, writes its window once what it folded is counted; while the
 * store is out of reach, the sweep tries again, up to STORE_PATIENCE_MS.
 */
static void store_emit_due(struct run *r, struct hop_stage *st)
{
	if (!st->store_emit_due)
		return;
	if (st->tally->n || st->nholds || st->held.n ||
	    !store_window_emit(r, st, 0, &st->store_claimed)) {
		if (!st->store_down_ms ||
		    hop_now_ms() - st->store_down_ms < STORE_PATIENCE_MS)
			return;
		hop_log(HOP_ERROR,
			"stage %s: its state store is out of reach still: its "
			"results are not written (what was counted stays in "
			"%s for the next run)",
			st->name, hop_gstore_table(st->gstore));
		r->store_failed = true;
	}
	st->store_emit_due = false;
}

/* Time windows (gather.h, hop_tumbler): tumbling windows of a reduce,
 * aligned to the epoch, by event time or arrival, several open at once
 * while grace lasts. An open window is a pane: its own accumulators (or
 * reducer worker's folds) and the roots it holds. To fold an item in, or
 * to write a window, the pane's state is swapped into the stage's, where
 * reduce_fold_in, fold_item, reduce_out and fold_close find it. */

struct time_pane {
	int64_t w; /* starts at w * interval */
	struct hop_reducer *rd;
	struct hop_item **holds;
	size_t nholds, holds_cap;
	struct fold_window *fw;
	struct tally *tally;	/* with "state": what it counted since */
	uint64_t number;	/* in result ids: its start, in s (ms when the
				   interval is not whole seconds) */
	struct time_pane *next; /* in the order of w */
};

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Swaps pane p's state and st's: twice is none. */
static void pane_swap(struct hop_stage *st, struct time_pane *p)
{
	struct hop_reducer *rd = st->reducer;
	struct hop_item **holds = st->holds;
	size_t nholds = st->nholds, cap = st->holds_cap;
	struct fold_window *fw = st->folding;
	uint64_t windows = st->windows;
	struct tally *tally = st->tally;

	st->tally = p->tally;
	p->tally = tally;
	st->reducer = p->rd;
	st->holds = p->holds;
	st->nholds = p->nholds;
	st->holds_cap = p->holds_cap;
	st->folding = p->fw;
	st->windows = p->number;
	p->rd = rd;
	p->holds = holds;
	p->nholds = nholds;
	p->holds_cap = cap;
	p->fw = fw;
	p->number = windows;
}

/* The open pane of window w, made when there is none; NULL when memory
 * ran out. */
static struct time_pane *pane_at(struct hop_stage *st, int64_t w)
{
	struct time_pane **pp = &st->panes, *p;
	int64_t size = st->tumbler->size_ms;

	while (*pp && (*pp)->w < w)
		pp = &(*pp)->next;
	if (*pp && (*pp)->w == w)
		return *pp;
	if (!(p = calloc(1, sizeof(*p))))
		return NULL;
	if ((st->cfg->reduce->op_name &&
	     !(p->rd = hop_reducer_new(st->cfg->reduce))) ||
	    (st->gstore && !(p->tally = tally_new(w)))) {
		hop_reducer_free(p->rd);
		free(p);
		return NULL;
	}
	p->w = w;
	p->number = window_number(size, w);
	p->next = *pp;
	*pp = p;
	return p;
}

static void pane_free(struct time_pane *p)
{
	tally_free(p->tally);
	hop_reducer_free(p->rd);
	free(p->holds);
	free(p);
}

/* The sweep: what st's windows folded since they last counted is counted
 * into the store. */
static void store_tallies(struct run *r, struct hop_stage *st)
{
	if (!st->tumbler) {
		store_tally(r, st, false);
		return;
	}
	for (struct time_pane *p = st->panes; p; p = p->next) {
		pane_swap(st, p);
		size_t before = st->nholds;
		store_tally(r, st, false);
		st->pane_holds -= before - st->nholds;
		counted_add(st, st->tally->win);
		pane_swap(st, p);
	}
}

static void panes_tick(struct hop_loop *loop, void *arg);

/* Closes st's panes below window open (all of them: INT64_MAX), oldest
 * first: their results are written, and their roots wait for them. Then
 * the timer is set for the next pane's close. */
static void panes_close(struct run *r, struct hop_stage *st, int64_t open)
{
	struct time_pane *p;

	while ((p = st->panes) && p->w < open) {
		st->panes = p->next;
		st->pane_holds -= p->nholds;
		pane_swap(st, p);
		if (st->reducer)
			reduce_out(r, st);
		else
			fold_close(r, st);
		pane_swap(st, p);
		pane_free(p);
	}
	hop_loop_cancel(r->loop, st->window_timer);
	st->window_timer = 0;
	if (st->panes && r->phase == RUNNING) {
		int64_t wait =
		    hop_tumbler_close_at(st->tumbler, st->panes->w) - wall_ms();
		st->window_timer = hop_loop_after(r->loop, wait > 0 ? wait : 0,
						  panes_tick, st);
	}
}

static void panes_tick(struct hop_loop *loop, void *arg)
{
	struct hop_stage *st = arg;
	struct run *r = st->run;

	st->window_timer = 0;
	if (r->phase == RUNNING && !st->reduced)
		panes_close(r, st, hop_tumbler_advance(st->tumbler, wall_ms()));
}

/* Whether st's "to" names the port late. */
static bool maps_late(const struct hop_stage *st)
{
	for (int i = 0; i < st->cfg->nroutes; i++)
		if (st->cfg->routes[i].port &&
		    strcmp(st->cfg->routes[i].port, "late") == 0)
			return true;
	return false;
}

/* it came after its window closed: counted, and handed on on the
 * stage's port late, routed as the stage's "to" says; when "to" does not
 * name that port, dropped (never mixed with the results). */
static void window_late(struct run *r, struct hop_stage *st,
			struct hop_item *it, int64_t t)
{
	struct hop_emit e = {it->payload, it->payload_len, (char *)"late",
			     NULL};
	bool mapped = maps_late(st);

	st->stats.late++;
	hop_log_ev(mapped ? HOP_DEBUG : HOP_WARN, -1, it->id,
		   "stage %s: its time, %.3f, is in a window closed already: "
		   "%s",
		   st->name, (double)t / 1000,
		   mapped ? "to port late"
			  : "dropped (the stage's \"to\" has no port late)");
	if (!mapped) {
		st->stats.dropped++;
		r->stats.dropped++;
		end_work(r, it);
		return;
	}
	it->emits = hop_spool_new(st->tmpdir, 1 << 16);
	if (!it->emits || hop_spool_add(it->emits, &e)) {
		hop_log_ev(HOP_ERROR, -1, it->id,
			   "stage %s: out of memory: the item goes back to "
			   "its source",
			   st->name);
		release_work(r, it);
		return;
	}
	it->ok = true;
	if (!it->attempt)
		it->attempt = 1;
	if (st->routing.head || !hand_on(r, st, it))
		hop_queue_push(&st->routing, it);
	schedule(r);
}

/* The time of it for st's windows, in ms: its event time, or now. Returns
 * 0, or -EINVAL with msg saying what is wrong with its time. */
static int item_time(const struct hop_stage *st, const struct hop_item *it,
		     int64_t now, int64_t *t, char *msg, size_t n)
{
	const char *ptr = st->cfg->reduce->time;
	bool missing;
	char *end, *s;
	double x;

	*t = now;
	if (!ptr)
		return 0;
	s = hop_json_pointer_text(it->payload, it->payload_len, ptr, &missing);
	if (!s) {
		snprintf(msg, n, "no time at %s (\"time\")", ptr);
		return -EINVAL;
	}
	x = strtod(s, &end);
	if (end == s || *end || !isfinite(x) || fabs(x) > 9e12) {
		snprintf(msg, n,
			 "the value at %s (\"time\") is %.40s, not a number of "
			 "seconds since the epoch",
			 ptr, s);
		free(s);
		return -EINVAL;
	}
	free(s);
	*t = (int64_t)floor(x * 1000);
	return 0;
}

static void reduce_fold_in(struct run *r, struct hop_stage *st,
			   struct hop_item *it);

/* it reached reduce stage st, which has time windows: into the pane of
 * its time, or to the port late when that window is closed. */
static void window_item(struct run *r, struct hop_stage *st,
			struct hop_item *it)
{
	int64_t now = wall_ms(), t, w;
	struct time_pane *p;
	char msg[300];

	if (item_time(st, it, now, &t, msg, sizeof(msg))) {
		gather_dead(r, st, it, msg);
		return;
	}
	panes_close(r, st, hop_tumbler_advance(st->tumbler, now));
	if (!hop_tumbler_place(st->tumbler, t, &w)) {
		window_late(r, st, it, t);
		return;
	}
	if (!(p = pane_at(st, w))) {
		hop_log_ev(HOP_ERROR, -1, it->id,
			   "stage %s: out of memory: the item goes back to "
			   "its source",
			   st->name);
		release_work(r, it);
		return;
	}
	pane_swap(st, p);
	size_t before = st->nholds;
	if (st->reducer)
		reduce_fold_in(r, st, it);
	else
		fold_item(r, st, it);
	st->pane_holds += st->nholds - before;
	pane_swap(st, p);
	if (!st->window_timer)
		panes_close(r, st, INT64_MIN); /* arms the timer */
}

/* The run stops: the open panes' roots go back to their sources. */
static void panes_release(struct run *r, struct hop_stage *st)
{
	struct time_pane *p;

	while ((p = st->panes)) {
		st->panes = p->next;
		st->pane_holds -= p->nholds;
		for (size_t k = 0; k < p->nholds; k++) {
			p->holds[k]->holds--;
			release_work(r, p->holds[k]);
		}
		p->nholds = 0;
		if (p->fw) {
			pane_swap(st, p);
			fold_abandon(r, st);
			pane_swap(st, p);
		}
		pane_free(p);
	}
}

/* it reached reduce stage st: folded in, and its root held until the
 * result is written. */
static void reduce_item(struct run *r, struct hop_stage *st,
			struct hop_item *it)
{
	if (r->phase != RUNNING) {
		release_work(r, it);
		return;
	}
	if (st->tumbler)
		window_item(r, st, it);
	else if (!st->reducer)
		fold_item(r, st, it);
	else
		reduce_fold_in(r, st, it);
}

/* it is folded into st's accumulators, and its root held until their
 * result is written. */
static void reduce_fold_in(struct run *r, struct hop_stage *st,
			   struct hop_item *it)
{
	struct hop_item *root = root_of(it);
	char msg[400];

	int rc = hop_reducer_add(st->reducer, it->payload, it->payload_len, msg,
				 sizeof(msg));
	if (rc == -EINVAL) {
		gather_dead(r, st, it, msg);
		return;
	}
	if (!rc)
		rc = hold_root(st, root);
	if (rc) {
		hop_log_ev(HOP_ERROR, -1, it->id,
			   "stage %s: out of memory: the item goes back to "
			   "its source",
			   st->name);
		release_work(r, it);
		return;
	}
	if (st->gstore && tally_add(st->tally, it)) {
		/* Folded in but not noted: counted from the reducer all the
		 * same, just not known to the store should it come again. */
		hop_log_ev(HOP_WARN, -1, it->id,
			   "stage %s: out of memory noting the item: should it "
			   "come again it counts again",
			   st->name);
	}
	st->stats.done++;
	end_work(r, it);
	if (st->holds[st->nholds - 1] == root && heldable(st, root) &&
	    !held_add(&st->held, root)) {
		st->nholds--;
		hop_item_free(root);
	}
	if (st->gstore && st->tally->n >= TALLY_MAX && !st->store_down_ms)
		store_tally(r, st, false);
	else if (st->cfg->reduce->every && hop_reducer_items(st->reducer) >=
					       (uint64_t)st->cfg->reduce->every)
		reduce_out(r, st);
}

/* Hands on one result of reduce stage st, with id and json (the result's
 * text), as a child of anchor, the stand-in root of the items behind it.
 * id NULL (memory ran out making it): the anchor will hand those items
 * back instead of acknowledging them. */
static void reduce_emit(struct run *r, struct hop_stage *st,
			struct hop_item *anchor, const char *id,
			const char *json)
{
	struct hop_item *it = NULL;
	if (id) {
		struct output o = {id, json, strlen(json), NULL, NULL};
		it = child(anchor, &o, false);
	}
	if (!it) {
		anchor->fate = FATE_RELEASE;
		return;
	}
	anchor->pending++;
	it->result = it->payload;
	it->payload = strdup("null");
	it->payload_len = 4;
	it->ok = true;
	it->attempt = 1;
	it->stage = (int16_t)st->index;
	if (st->routing.head || !hand_on(r, st, it))
		hop_queue_push(&st->routing, it);
}

/* Writes st's results, one item per key, and starts a new window. The
 * roots it held wait for those items: they are children of one anchor,
 * a root of the run's own whose end (window_done) ends the holds. */
static void reduce_out(struct run *r, struct hop_stage *st)
{
	struct hop_reducer *rd = st->reducer;
	size_t nkeys = hop_reducer_keys(rd);
	struct window *w = calloc(1, sizeof(*w));
	char *name = NULL;
	struct hop_item *anchor = NULL;

	if (st->gstore) {
		/* Counted into the store; handed on from there by the sweep
		 * once every coordinator has counted its share, or now when
		 * the input is over. */
		free(w);
		if (st->tumbler) { /* a pane closes */
			store_tally(r, st, true);
			counted_add(st, st->tally->win);
			return;
		}
		/* The input is over: the run's one window is written once
		 * everything is counted (store_emit_due). */
		store_tally(r, st, false);
		st->store_emit_due = true;
		store_emit_due(r, st);
		return;
	}
	if (!nkeys && !st->nholds && !st->held.n) {
		free(w);
		return;
	}
	if (w && asprintf(&name, "%s#%llu", st->name,
			  (unsigned long long)st->windows) >= 0)
		anchor = hop_item_new(name, strdup("null"), 4);
	if (!anchor) {
		free(w);
		hop_log(HOP_ERROR,
			"stage %s: out of memory writing its results: the "
			"items behind them go back to their sources",
			st->name);
		hop_reducer_clear(rd);
		for (size_t i = 0; i < st->nholds; i++) {
			struct hop_item *h = st->holds[i];
			h->holds--;
			release_work(r, h);
		}
		st->nholds = 0;
		held_end(r, &st->held, FATE_RELEASE, st, NULL);
		return;
	}
	*w = (struct window){st->holds,		  st->nholds, st->index,
			     "its reduce result", NULL,	      st->held};
	st->held = (struct hop_held){0};
	st->holds = NULL;
	st->nholds = st->holds_cap = 0;
	anchor->feed = -1;
	anchor->pending = 1;
	anchor->fate = FATE_ACK;
	anchor->src_data = w;
	anchor->stage = (int16_t)st->index;
	reduce_results(r, st, rd, anchor,
		       st->cfg->reduce->every || st->cfg->reduce->interval,
		       st->windows);
	hop_reducer_clear(rd);
	unpend(r, anchor);
	schedule(r);
}

/* A window's results are written (or not): the roots it held hear it. */
static void window_done(struct run *r, struct hop_item *anchor)
{
	struct window *w = anchor->src_data;
	struct hop_stage *st = &r->stages[w->stage];

	if (w->store_key || w->store_window)
		store_over(r, st, w->store_key, w->win, anchor);
	free(w->store_key);
	for (size_t i = 0; i < w->n; i++) {
		struct hop_item *h = w->roots[i];
		h->holds--;
		if (h->fate == FATE_ACK && anchor->fate == FATE_RELEASE)
			h->fate = FATE_RELEASE;
		if (h->fate == FATE_ACK && anchor->fate == FATE_DEAD) {
			char *why = NULL;
			h->fate = FATE_DEAD;
			h->died_in = (int16_t)(st->index + 1);
			if (asprintf(&why,
				     "stage %s: %s could not be written: %s",
				     st->name, w->what,
				     anchor->error ? anchor->error
						   : "failed") >= 0) {
				free(h->error);
				h->error = why;
			}
			if (!h->attempt)
				h->attempt = 1;
		}
		unpend(r, h);
	}
	if (w->held.n) {
		char *why = NULL;
		if (anchor->fate == FATE_DEAD &&
		    asprintf(&why, "stage %s: %s could not be written: %s",
			     st->name, w->what,
			     anchor->error ? anchor->error : "failed") < 0)
			why = NULL;
		held_end(r, &w->held,
			 anchor->fate == FATE_DEAD && !why
			     ? FATE_RELEASE
			     : (enum fate)anchor->fate,
			 st, why);
		free(why);
	}
	free(w->roots);
	fold_window_free(w->folds);
	free(w);
	anchor->src_data = NULL;
	hop_item_free(anchor);
}

static bool exhausted(const struct run *r);

/* Whether nothing more can reach reduce stage st: the sources are done,
 * and every stage before it is idle. */
static bool upstream_done(const struct run *r, const struct hop_stage *st)
{
	int ci = config_index(r, st);
	if (!exhausted(r))
		return false;
	for (int i = 0; i < r->nstages; i++) {
		const struct hop_stage *s = &r->stages[i];
		if (s == st || !reaches(s, ci))
			continue;
		if (s->ready.head || s->waiting.head || s->routing.head ||
		    s->parts || hop_pool_inflight(s->pool) ||
		    (s->cfg->reduce && !s->reduced))
			return false;
	}
	return true;
}

/* Reduce stages whose upstream is over write their (last) results. */
static void reduce_due(struct run *r)
{
	for (int i = 0; i < r->nstages; i++) {
		struct hop_stage *st = &r->stages[i];
		if (!st->cfg->reduce || st->reduced || !upstream_done(r, st))
			continue;
		if (st->tumbler)
			panes_close(r, st, INT64_MAX);
		else if (st->reducer)
			reduce_out(r, st);
		else
			fold_close(r, st);
		/* With "state": the input is over, so every window this run
		 * counted into is handed on now. */
		for (size_t k = 0; st->tumbler && k < st->ncounted; k++)
			if (!store_window_emit(r, st, st->counted[k],
					       &(bool){false}))
				hop_log(HOP_ERROR,
					"stage %s: window %lld stays in %s, "
					"not written",
					st->name, (long long)st->counted[k],
					hop_gstore_table(st->gstore));
		st->reduced = true;
	}
}

static void key_group_release(struct run *r, struct hop_group *g);

/* The run stops: st's open window will write nothing; its roots are
 * handed back with the other holds. */
static void fold_abandon(struct run *r, struct hop_stage *st)
{
	struct fold_window *fw = st->folding;

	st->folding = NULL;
	fw->closed = true;
	fw->anchor->fate = FATE_RELEASE;
	unpend(r, fw->anchor);
}

/* The run stops: parts in groups and the roots held by reduces go back to
 * their sources (what a window folded in is forgotten with them). */
static void release_gathered(struct run *r)
{
	for (int i = 0; i < r->nstages; i++) {
		struct hop_stage *st = &r->stages[i];
		struct hop_group *g;
		if (st->ngroups)
			hop_log(HOP_WARN,
				"stage %s: %zu group(s) not complete, with "
				"%zu part(s): back to their sources, with "
				"their roots (%s, ...)",
				st->name, st->ngroups, st->parts,
				st->groups->key ? st->groups->key
						: st->groups->root->id);
		while ((g = st->groups)) {
			if (g->key) {
				key_group_release(r, g);
				continue;
			}
			if (g->root->fate == FATE_ACK)
				g->root->fate = FATE_RELEASE;
			group_close(r, g);
			end_parts(r, g, true);
		}
		struct hop_item *it;
		store_batch_drop(r, st);
		while ((it = hop_queue_pop(&st->store_wait))) {
			st->parts--;
			release_work(r, it);
		}
		dead_wait_drop(r, st);
		if (st->reducer)
			hop_reducer_clear(st->reducer);
		if (st->folding)
			fold_abandon(r, st);
		if (st->panes)
			panes_release(r, st);
		size_t n = st->nholds;
		st->nholds = 0;
		for (size_t k = 0; k < n; k++) {
			struct hop_item *h = st->holds[k];
			h->holds--;
			release_work(r, h);
		}
		held_end(r, &st->held, FATE_RELEASE, st, NULL);
		hop_loop_cancel(r->loop, st->window_timer);
		st->window_timer = 0;
	}
}

/* The percentage form of --halt is judged once this many attempts ended. */
#define HALT_MIN_ATTEMPTS 10

static void unqueue_all(struct run *r)
{
	for (int i = 0; i < r->nstages; i++)
		hop_pool_unqueue(r->stages[i].pool);
}

static void kill_all(struct run *r)
{
	for (int i = 0; i < r->nstages; i++)
		hop_pool_kill(r->stages[i].pool);
}

static size_t inflight(const struct run *r)
{
	size_t n = 0;
	for (int i = 0; i < r->nstages; i++)
		if (r->stages[i].pool)
			n += hop_pool_inflight(r->stages[i].pool);
	return n;
}

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
	unqueue_all(r);
	release_waiting(r);
	if (r->halt_now)
		kill_all(r);
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

/* pool callbacks: arg is the stage */
static void on_start_failed(void *arg, int in_a_row, const char *why,
			    const char *stderr_line)
{
	struct hop_stage *st = arg;
	struct run *r = st->run;
	char said[400] = "", stage[120] = "";

	count_attempt(r, false);
	if (in_a_row != HOP_POOL_START_TRIES)
		return;
	if (stderr_line[0])
		snprintf(said, sizeof(said), " (its last line on stderr: %s)",
			 stderr_line);
	else
		snprintf(said, sizeof(said), " (it wrote nothing to stderr)");
	if (r->nstages > 1)
		snprintf(stage, sizeof(stage), "stage %s: ", st->name);
	if (r->cfg->watch) {
		hop_log(HOP_ERROR,
			"%s%s%s, %d times in a row, and no worker has answered "
			"yet: restarting it with backoff",
			stage, why, said, in_a_row);
		return;
	}
	request_halt(r, HOP_EXIT_FAILURE, true,
		     "%s%s%s, %d times in a row, and no worker has answered "
		     "yet: stopping the run; every item goes back to its "
		     "source",
		     stage, why, said, in_a_row);
}

static void on_done(void *arg, struct hop_item *it)
{
	struct hop_stage *st = arg;
	struct run *r = st->run;

	count_attempt(r, it->ok);
	if (st->cold_since) {
		r->stats.cold_start_ms = st->stats.cold_start_ms =
		    hop_now_ms() - st->cold_since;
		hop_log_ev(HOP_INFO, -1, it->id,
			   "cold start: %lld ms from starting the first worker "
			   "to its first answer",
			   (long long)st->stats.cold_start_ms);
		st->cold_since = 0;
	}
	if (it->ok)
		st->stats.done++;
	if (!it->ok)
		fail_item(r, st, it);
	else if (st->cfg->reduce) /* a reducer worker's accumulator */
		fold_answer(r, st, it);
	else if (st->routing.head || !hand_on(r, st, it))
		hop_queue_push(&st->routing, it); /* after what waits */
	schedule(r);
}

static void on_returned(void *arg, struct hop_item *it)
{
	struct hop_stage *st = arg;
	struct run *r = st->run;
	if (r->phase == RUNNING)
		hop_queue_push(&st->ready, it);
	else
		release_work(r, it);
	schedule(r);
}

static void on_changed(void *arg)
{
	struct hop_stage *st = arg;
	schedule(st->run);
}

/* A source's callbacks: arg is its feed. */
static void on_wake(void *arg)
{
	struct feed *f = arg;
	schedule(f->r);
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
	struct feed *f = arg;
	struct run *r = f->r;
	if (ok) {
		r->stats.dead++;
		return;
	}
	r->stats.dead_unwritten++;
	source_error(r, f, id);
}

/* Hands a dead root to its source's dead-letter place and frees it.
 * Returns false, with the item still the caller's, when the place cannot
 * take it for now (-EAGAIN): then it is not dead, and is held. */
static bool record_dead(struct run *r, struct feed *f, struct hop_item *it)
{
	char *rec = dead_record(r, it);
	int rc = f->src->ops->dead(f->src, it, rec ? rec : "{}");
	free(rec);
	if (rc == -EAGAIN) {
		r->stats.source_errors++;
		outage_begin(r, &f->dead_out, f->src->error);
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
		source_error(r, f, it->id);
	}
	hop_item_free(it);
	return true;
}

static void record_dead_root(struct run *r, struct hop_item *root)
{
	struct feed *f = &r->feeds[root->feed];
	root->ok = false;
	if (f->dead_out.since || !record_dead(r, f, root))
		hold(&f->dead_out, &f->held_dead, root);
}

/* Settles the items of the flush the sink answered with st: their part of
 * their trees done when it went well; held when the sink may take them
 * later; failed when it never will. */
static void settle_flushed(struct run *r, struct outlet *o, struct hop_queue *q,
			   enum hop_sink_status st)
{
	struct hop_item *it;
	if (st == HOP_SINK_RETRY && q->head) {
		r->stats.sink_errors++;
		outage_begin(r, &o->out, o->sink->error);
		o->out.items += q->len;
		queue_prepend(&o->held, q); /* they finished first */
		return;
	}
	if (st != HOP_SINK_OK && q->head) {
		r->stats.sink_errors++;
		hop_stats_error(&r->stats, "%s", o->sink->error);
	}
	while ((it = hop_queue_pop(q))) {
		if (st != HOP_SINK_OK && it->ok) {
			hop_item_fail(it, false, "%s", o->sink->error);
			fail_item(r, stage_of(r, it), it);
			continue;
		}
		/* A dead item of a stage that lets its tree go on is dead
		 * here: written to the sink as failed. */
		if (!it->ok && it->root && it->root->fate != FATE_DEAD)
			r->stats.dead++;
		o->stored += it->ok;
		end_work(r, it);
	}
	/* Their results are durable: the journal says so before the
	 * sources hear it. */
	ack_roots(r);
	journal_sync(r); /* the dead among them */
	if (st != HOP_SINK_OK || !o->out.since)
		return;
	if (!o->held.head) {
		outage_end(r, &o->out);
	} else {
		/* The sink took what was tried: the rest goes at once. */
		o->held_probed = true;
		r->held_wait_ms = HELD_FIRST_MS;
		hop_loop_cancel(r->loop, r->held_timer);
		r->held_timer = hop_loop_after(r->loop, 0, retry_held, r);
	}
}

/* Flushes the sink and settles everything written since the last flush,
 * unless as many flushes as the sink takes are waiting for their answers:
 * then what was written since goes with the next one. */
static void settle(struct run *r, struct outlet *o)
{
	int most = o->sink->ops->max_flushes;
	if (most < 1)
		most = 1;
	if (most > MAX_FLUSHES)
		most = MAX_FLUSHES;
	if (o->nflush >= most || !o->written.head)
		return;
	int k = (o->fhead + o->nflush) % MAX_FLUSHES;
	o->flushing[k] = o->written;
	o->written = (struct hop_queue){0};
	o->nflush++;
	enum hop_sink_status st = o->sink->ops->flush(o->sink);
	if (st != HOP_SINK_PENDING) {
		/* Answered at once: only ever with nothing else pending. */
		o->nflush--;
		settle_flushed(r, o, &o->flushing[k], st);
	}
}

/* The sink answers its pending flushes in the order they were made. */
static void on_flushed(void *arg, enum hop_sink_status st)
{
	struct outlet *o = arg;
	struct run *r = o->r;
	if (o->nflush == 0)
		return;
	struct hop_queue *q = &o->flushing[o->fhead];
	o->fhead = (o->fhead + 1) % MAX_FLUSHES;
	o->nflush--;
	settle_flushed(r, o, q, st);
	settle(r, o);
	schedule(r);
}

/* Settles everything before the run ends, waiting for the sinks. */
static void settle_all(struct run *r)
{
	for (int k = 0; k < r->noutlets; k++) {
		struct outlet *o = &r->outlets[k];
		for (int i = 0; i < 100 && (o->nflush || o->written.head);
		     i++) {
			if (o->nflush && !o->sink->ops->wait)
				break;
			if (o->nflush)
				o->sink->ops->wait(o->sink);
			else
				settle(r, o);
		}
	}
}

static void settle_now(struct hop_loop *loop, void *arg)
{
	struct outlet *o = arg;
	struct run *r = o->r;
	hop_loop_cancel(loop, o->flush_timer);
	o->flush_timer = 0;
	settle(r, o);
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

	r->held_timer = 0;
	for (int i = 0; i < r->nfeeds; i++) {
		struct feed *f = &r->feeds[i];
		outage_remind(&f->dead_out, f->held_dead.len);
		while ((it = hop_queue_pop(&f->held_dead))) {
			if (!record_dead(r, f, it)) {
				struct hop_queue one = {it, it, 1};
				it->next = NULL;
				queue_prepend(&f->held_dead, &one);
				break;
			}
		}
		journal_sync(r);
		if (!f->held_dead.head)
			outage_end(r, &f->dead_out);
	}
	for (int i = 0; i < r->noutlets; i++) {
		struct outlet *o = &r->outlets[i];
		size_t most = o->held_probed ? (size_t)-1 : 1;
		outage_remind(&o->out, o->held.len);
		o->held_probed = false;
		while (o->held.head && o->written.len < most) {
			it = o->held.head;
			enum hop_sink_status st =
			    o->sink->ops->write(o->sink, it);
			if (st == HOP_SINK_RETRY) {
				r->stats.sink_errors++;
				snprintf(o->out.error, sizeof(o->out.error),
					 "%s", o->sink->error);
				break;
			}
			hop_queue_pop(&o->held);
			after_write(r, o, it, st);
		}
		if (o->written.head)
			settle_now(loop, o); /* the flush says if it is back */
		else if (!o->held.head && !o->nflush)
			outage_end(r, &o->out);
	}
	arm_held(r);
}

/* Whether every source has given all it will. The reading end of an edge
 * that this run also writes has not while it gave fewer items than were
 * written to it (less those its place already had): what the upstream
 * stages wrote last may not have reached the reader yet. */
static bool exhausted(const struct run *r)
{
	for (int i = 0; i < r->nfeeds; i++) {
		const struct feed *f = &r->feeds[i];
		if (!f->src->ops->exhausted(f->src))
			return false;
		if (f->edge &&
		    f->taken + f->edge->sink->skipped < f->edge->stored)
			return false;
	}
	return true;
}

static bool source_failed(const struct run *r)
{
	for (int i = 0; i < r->nfeeds; i++)
		if (r->feeds[i].failed)
			return true;
	return false;
}

/* Nothing in flight, waiting for a retry or for a flush. */
static bool quiet(const struct run *r)
{
	for (int i = 0; i < r->nstages; i++) {
		const struct hop_stage *st = &r->stages[i];
		if (st->waiting.head || st->routing.head ||
		    hop_pool_inflight(st->pool))
			return false;
	}
	for (int i = 0; i < r->noutlets; i++)
		if (r->outlets[i].written.head || r->outlets[i].nflush)
			return false;
	return !r->acking.head;
}

static bool finished(const struct run *r)
{
	bool idle = quiet(r);
	for (int i = 0; idle && i < r->nstages; i++)
		idle = !r->stages[i].ready.head && !r->stages[i].parts &&
		       !r->stages[i].nholds && !r->stages[i].held.n &&
		       !r->stages[i].pane_holds && !r->stages[i].store_emit_due;
	if (r->phase != RUNNING)
		return idle; /* what is held goes back to the source */
	return idle && !held_count(r) && exhausted(r);
}

static bool stopped(const struct run *r)
{
	for (int i = 0; i < r->nstages; i++)
		if (!hop_pool_stopped(r->stages[i].pool))
			return false;
	return true;
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
	for (int i = 0; i < r->nstages; i++)
		hop_pool_drain(r->stages[i].pool);
	r->stop_timer = hop_loop_after(
	    r->loop, (int64_t)(r->cfg->kill_timeout * 1000) + 2000, stop_timer,
	    r);
}

/* An item the journal records as finished by an earlier run: done at its
 * source, and not run again. */
static void skip_item(struct run *r, struct feed *f, struct hop_item *it)
{
	if (hop_journal_dead(r->journal, it->id))
		r->skipped_dead++;
	else
		r->skipped++;
	if (f->src->ops->ack && f->src->ops->ack(f->src, it))
		source_error(r, f, it->id);
	if (r->stats.total > 0)
		r->stats.total--; /* the progress line counts what is run */
	hop_item_free(it);
}

/* The stage a feed's items go to when it is one (not a sharder): where it
 * fetches only what the workers can take. NULL otherwise. */
static struct hop_stage *feed_stage(struct run *r, const struct feed *f)
{
	const struct hop_route *rt = f->route;
	if (rt->nto != 1 || rt->to[0].sink ||
	    stage_config(r, rt->to[0].index)->shards > 1)
		return NULL;
	return &r->stages[r->first[rt->to[0].index]];
}

/* How many items f may fetch now. */
static size_t feed_room(struct run *r, const struct feed *f)
{
	struct hop_stage *st = feed_stage(r, f);
	if (st && hop_stage_bare(st))
		return (size_t)queue_bound(st); /* it never queues */
	if (st) {
		size_t cap = hop_pool_capacity(st->pool);
		/* Autoscaled, one item is fetched ahead even with no free
		 * worker: that is how work shows when the source cannot
		 * tell its depth, and how the first item wakes a pool of
		 * none. */
		if (st->cfg->autoscale && st->ready.len == 0 && cap == 0)
			cap = 1;
		/* Finished items that cannot go on yet hold their workers'
		 * places: the source waits for them, and never fills more
		 * than the stage's queue. */
		size_t held = st->ready.len + st->routing.len;
		if (cap > (size_t)queue_bound(st))
			cap = (size_t)queue_bound(st);
		return cap > held ? cap - held : 0;
	}
	/* Several places, or shards: as much as the fullest can take. */
	size_t room = SIZE_MAX;
	for (int k = 0; k < f->route->nto; k++) {
		const struct hop_target *t = &f->route->to[k];
		if (t->sink)
			continue;
		const struct hop_stage_config *c = stage_config(r, t->index);
		for (int s = 0; s < c->shards || s < 1; s++) {
			struct hop_stage *ns =
			    &r->stages[r->first[t->index] + s];
			int64_t left = queue_bound(ns) - (int64_t)ns->ready.len;
			if (left < 0)
				left = 0;
			if ((size_t)left < room)
				room = (size_t)left;
		}
	}
	return room == SIZE_MAX ? 64 : room;
}

/* A root from f starts its tree: skipped when the journal has it, dead when
 * the source could not make an item of it, else on to f's places. */
static void take_root(struct run *r, struct feed *f, struct hop_item *it)
{
	f->taken++;
	it->root = NULL;
	it->feed = (int16_t)(f - r->feeds);
	it->pending = 1;
	it->fate = FATE_ACK;
	it->stage = -1;
	if (r->journal && hop_journal_skip(r->journal, it->id)) {
		skip_item(r, f, it);
		return;
	}
	struct output o = {it->id, it->payload, it->payload_len, NULL, NULL};
	const struct hop_route *rt = f->route;
	if (it->invalid) {
		struct hop_stage *st =
		    rt->nto && !rt->to[0].sink
			? &r->stages[r->first[rt->to[0].index]]
			: NULL;
		if (f->src->ops->dying)
			f->src->ops->dying(f->src, it);
		it->fate = FATE_DEAD;
		hop_log_ev(HOP_ERROR, -1, it->id, "dead: %s", it->error);
		finish_item(r, dead_outlet(r, st), it);
		return;
	}
	if (rt->nto == 1 && !rt->to[0].sink) {
		enter(r, target_stage(r, rt->to[0].index, &o), it, NULL);
		return;
	}
	deliver(r, NULL, it, rt, &o, false);
	unpend(r, it);
}

/* The reduce stage that f's lines are folded into with no item made of
 * them (the source's fetch_lines): f's one place, a built-in reduce with
 * no time windows and no "state", not sharded, and the source has no ack
 * to call; not with a journal, whose ids would be looked up per line, nor
 * at the reading end of an edge. NULL otherwise: the items' path. */
static struct hop_stage *fold_stage(struct run *r, const struct feed *f)
{
	const struct hop_source_ops *ops = f->src->ops;
	struct hop_stage *st;

	if (!ops->fetch_lines || !ops->reread || ops->ack || r->journal ||
	    f->edge || f - r->feeds > INT16_MAX || !(st = feed_stage(r, f)))
		return NULL;
	return st->cfg->reduce && st->reducer && !st->tumbler && !st->gstore
		   ? st
		   : NULL;
}

struct fold_lines {
	struct run *r;
	struct hop_stage *st;
	int feed;
};

/* fetch_lines's take: folds line into the stage's accumulators and holds
 * it as a line of a range until their result is written, as
 * reduce_fold_in does an item. False when it cannot (the line has no key
 * or field; no memory): the source makes an item of it, which the reduce
 * takes or kills as ever. */
static bool fold_line(void *arg, int64_t line, uint64_t off, const char *text,
		      size_t len)
{
	struct fold_lines *fl = arg;
	struct hop_stage *st = fl->st;
	char msg[400];

	if (held_range_room(&st->held, fl->feed, line) ||
	    hop_reducer_add(st->reducer, text, len, msg, sizeof(msg)))
		return false;
	held_range_add(&st->held, fl->feed, line, off);
	st->stats.done++;
	if (st->cfg->reduce->every &&
	    hop_reducer_items(st->reducer) >= (uint64_t)st->cfg->reduce->every)
		reduce_out(fl->r, st);
	return true;
}

/* Takes from each source what its first stages can hold now. */
static void claim(struct run *r)
{
	for (int i = 0; i < r->nfeeds; i++) {
		struct feed *f = &r->feeds[i];
		if (f->failed)
			continue;
		size_t room = feed_room(r, f);
		if (!room)
			continue;
		struct hop_queue got = {0};
		struct hop_stage *fs = fold_stage(r, f);
		size_t folded = 0;
		int rc;
		if (fs) {
			struct fold_lines fl = {r, fs, i};
			rc = f->src->ops->fetch_lines(f->src, &got, room,
						      fold_line, &fl, &folded);
		} else {
			rc = f->src->ops->fetch(f->src, &got, room);
		}
		r->stats.fetched += got.len + folded;
		f->taken += folded;
		if (rc) {
			source_error(r, f, NULL);
			f->failed = true;
		}
		uint64_t skipped = r->skipped;
		/* fetch_lines stops at an item, to keep the lines' order. */
		bool full = got.len + folded == room || (fs && got.len);
		struct hop_item *it;
		while ((it = hop_queue_pop(&got)))
			take_root(r, f, it);
		/* Fetch what the skipped made room for, and go on while a
		 * stage with no worker (a reduce, a join) takes all it gets:
		 * no worker's answer will come to ask for more. */
		if (r->skipped != skipped || (full && feed_room(r, f) > 0))
			schedule(r);
	}
}

static void joins_due(struct run *r);

static void pump(struct hop_loop *loop, void *arg)
{
	struct run *r = arg;

	ack_roots(r);
	/* A halt asked for stops claiming at once; halt_run does the rest. */
	if (r->phase == RUNNING && !source_failed(r) && !out(r) &&
	    !r->halt_code) {
		claim(r);
		/* Outputs waiting for room, then items to workers; what the
		 * workers took makes room for more outputs: again, at most
		 * once per stage (the graph has no cycle). */
		for (int pass = 0; pass <= r->nstages; pass++) {
			bool took = false, waits = false;
			for (int i = 0; i < r->nstages; i++)
				route_more(r, &r->stages[i]);
			for (int i = 0; i < r->nstages; i++) {
				struct hop_stage *st = &r->stages[i];
				while (st->ready.head && !st->routing.head &&
				       !st->paused && !out(r) &&
				       hop_pool_capacity(st->pool) > 0) {
					hop_pool_submit(
					    st->pool,
					    hop_queue_pop(&st->ready));
					took = true;
				}
				waits |= st->routing.head != NULL;
			}
			if (!took || !waits)
				break;
		}
		wake_scaler(r);
	} else if (r->phase == RUNNING) {
		for (int i = 0; i < r->nstages; i++)
			route_more(r, &r->stages[i]);
	}
	if (r->phase == RUNNING) {
		reduce_due(r);
		joins_due(r);
	}
	if (r->phase != RUNNING) {
		/* What finishes now goes no further: back to the source. */
		release_waiting(r);
		for (int i = 0; i < r->noutlets; i++)
			settle(r, &r->outlets[i]);
	}
	if (r->phase == STOPPING) {
		if (stopped(r))
			hop_loop_stop(loop);
	} else if (finished(r) || (source_failed(r) && quiet(r))) {
		wind_down(r);
		if (stopped(r))
			hop_loop_stop(loop);
	}
}

/* Hands every item not in a worker's hands back to the source. */
static void release_waiting(struct run *r)
{
	struct hop_item *it;
	for (int i = 0; i < r->nstages; i++) {
		struct hop_stage *st = &r->stages[i];
		while ((it = hop_queue_pop(&st->waiting))) {
			free(hop_loop_cancel(r->loop, it->timer));
			it->timer = 0;
			hop_queue_push(&st->ready, it);
		}
		while ((it = hop_queue_pop(&st->ready)))
			release_work(r, it);
		while ((it = hop_queue_pop(&st->routing)))
			release_work(r, it);
		hop_emit_clear(&st->peek);
		st->peeked = false;
	}
	release_gathered(r);
}

static void grace_over(struct hop_loop *loop, void *arg)
{
	struct run *r = arg;
	r->grace_timer = 0;
	if (inflight(r) > 0)
		hop_log(HOP_WARN,
			"grace of %.0f s is over: stopping %zu item(s) "
			"still in flight and handing them back",
			r->cfg->grace, inflight(r));
	kill_all(r);
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
			unqueue_all(r);
			hop_log(
			    HOP_INFO,
			    "%s: stopping; %zu item(s) in flight get %.0f s "
			    "to finish",
			    strsignal((int)si.ssi_signo), inflight(r),
			    r->cfg->grace);
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

/* Brings the gauges of the run's and the stages' stats up to date, for
 * the endpoints, the progress line and the scalers. */
static void refresh_stats(void *arg)
{
	struct run *r = arg;
	const struct hop_stats *all[r->nstages];
	bool known = true;

	for (int i = 0; i < r->nstages; i++) {
		struct hop_stage *st = &r->stages[i];
		st->stats.depth = (int64_t)st->ready.len;
		st->stats.held = (int64_t)st->routing.len;
		st->stats.groups = (int64_t)st->ngroups;
		st->stats.gathered = (int64_t)(st->parts + st->nholds +
					       st->held.n + st->pane_holds);
	}
	/* What waits at a source waits for its first stage. */
	for (int i = 0; i < r->nfeeds; i++) {
		struct feed *f = &r->feeds[i];
		int64_t d = f->src->ops->depth(f->src);
		struct hop_stage *st = feed_stage(r, f);
		if (d < 0)
			known = false;
		/* A used-up source has nothing left waiting, though while it
		 * reads it may not tell how much it holds (jsonl). */
		if (d < 0 && f->src->ops->exhausted(f->src))
			d = 0;
		if (!st || st->stats.depth < 0)
			continue;
		st->stats.depth = d < 0 ? -1 : st->stats.depth + d;
	}
	r->stats.depth = 0;
	r->stats.inflight = 0;
	r->stats.workers = r->stats.workers_busy = 0;
	for (int i = 0; i < r->nstages; i++) {
		struct hop_stats *ss = &r->stages[i].stats;
		struct hop_pool *pool = r->stages[i].pool;
		all[i] = ss;
		ss->started_ms = r->stats.started_ms;
		if (!r->stages[i].scaler_on)
			ss->workers_desired = hop_stage_workers(&r->stages[i]);
		if (ss->depth >= 0)
			r->stats.depth += ss->depth;
		if (pool) {
			ss->inflight = (int64_t)hop_pool_inflight(pool);
			ss->workers = hop_pool_workers(pool);
			ss->workers_busy = hop_pool_busy(pool);
		}
		r->stats.inflight += ss->inflight;
		r->stats.workers += ss->workers;
		r->stats.workers_busy += ss->workers_busy;
	}
	if (!known)
		r->stats.depth = -1;
	hop_stats_sum_pools(&r->stats, all, r->nstages);
	r->stats.sink_repairs = 0;
	for (int i = 0; i < r->noutlets; i++)
		r->stats.sink_repairs += r->outlets[i].sink->repairs;
	r->stats.held = (int64_t)held_count(r);
}

/* Lists the stages for the reports (hop_stats_stages_fn), made the first
 * time they are asked for once the graph is built. */
static int stage_views(void *arg, const struct hop_stats_stage **list)
{
	struct run *r = arg;
	if (r->nstages && !r->views) {
		r->views = calloc((size_t)r->nstages, sizeof(*r->views));
		for (int i = 0; r->views && i < r->nstages; i++) {
			const struct hop_stage *st = &r->stages[i];
			r->views[i] = (struct hop_stats_stage){
			    .name = st->cfg->name,
			    .shard = st->shard,
			    .shards =
				st->cfg->shards > 1 ? (int)st->cfg->shards : 1,
			    .mode = st->cfg->exec_mode ? "exec" : "stream",
			    .stats = &st->stats};
		}
	}
	*list = r->views;
	return r->views ? r->nstages : 0;
}

/* The console's view of run stage i (hop_http_view.stage). */
static struct hop_stage *stage_at(void *arg, int i)
{
	struct run *r = arg;
	return i >= 0 && i < r->nstages ? &r->stages[i] : NULL;
}

/* The console resumed a stage or gave it workers: hand out what waits. */
static void kick(void *arg)
{
	struct run *r = arg;
	if (r->stages)
		schedule(r);
}

/* Ready means the run takes work: it is not stopping, its sources are open
 * and reachable, and its pools can run items (workers are live, or may be
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
	for (int i = 0; i < r->nfeeds; i++)
		if (r->feeds[i].failed) {
			snprintf(why, n, "the source failed: %s",
				 r->feeds[i].src->error);
			return false;
		}
	if (!r->nstages || !r->stages[r->nstages - 1].pool) {
		snprintf(why, n, "starting");
		return false;
	}
	for (int i = 0; i < r->noutlets; i++) {
		const struct outlet *o = &r->outlets[i];
		if (o->out.since) {
			snprintf(why, n,
				 "the sink is out: %s (%zu item(s) held)",
				 o->out.error, o->held.len);
			return false;
		}
	}
	for (int i = 0; i < r->nfeeds; i++) {
		const struct feed *f = &r->feeds[i];
		if (f->dead_out.since) {
			snprintf(why, n,
				 "the dead-letter place is out: %s (%zu "
				 "item(s) held)",
				 f->dead_out.error, f->held_dead.len);
			return false;
		}
		if (f->src->ops->ready && !f->src->ops->ready(f->src, why, n))
			return false;
	}
	return true;
}

/* The progress line (a finite run on a terminal) and the sources' total. */
static void start_reporting(struct run *r)
{
	struct hop_config *cfg = r->cfg;
	bool progress = cfg->progress && !cfg->watch &&
			strcmp(cfg->log_format, "json") != 0 &&
			isatty(STDERR_FILENO);
	if (!cfg->watch && (progress || r->http)) {
		int64_t total = 0;
		for (int i = 0; i < r->nfeeds && total >= 0; i++) {
			struct hop_source *src = r->feeds[i].src;
			int64_t t = src->ops->total ? src->ops->total(src) : -1;
			total = t < 0 ? -1 : total + t;
		}
		r->stats.total = total;
	}
	if (progress)
		r->progress = hop_progress_start(r->loop, &r->stats,
						 refresh_stats, stage_views, r);
}

/* The trace's columns: the run's, then, when there are several stages,
 * the same for each stage, named "STAGE:column" ("email[2]:depth" for a
 * shard). One stage keeps the columns it always had. */
static void trace_head(struct run *r)
{
	fprintf(r->trace, "t,depth,inflight,workers,busy,desired,done,dead,"
			  "throughput");
	for (int i = 0; r->nstages > 1 && i < r->nstages; i++) {
		const char *n = r->stages[i].name;
		fprintf(r->trace,
			",%s:depth,%s:inflight,%s:workers,%s:busy,%s:desired,"
			"%s:done,%s:dead,%s:throughput",
			n, n, n, n, n, n, n, n);
	}
	fputc('\n', r->trace);
}

/* A row of the trace at now: throughput is the run's, as its scalers
 * measure it; a stage without a scaler shows 0. */
static void trace_row(struct run *r, int64_t now, double throughput)
{
	fprintf(r->trace, "%.3f,%lld,%lld,%d,%d,%d,%llu,%llu,%.1f",
		(double)(now - r->t0) / 1000, (long long)r->stats.depth,
		(long long)r->stats.inflight, r->stats.workers,
		r->stats.workers_busy, r->stats.workers_desired,
		(unsigned long long)r->stats.done,
		(unsigned long long)r->stats.dead, throughput);
	for (int i = 0; r->nstages > 1 && i < r->nstages; i++) {
		const struct hop_stage *st = &r->stages[i];
		const struct hop_stats *s = &st->stats;
		fprintf(r->trace, ",%lld,%lld,%d,%d,%d,%llu,%llu,%.1f",
			(long long)s->depth, (long long)s->inflight, s->workers,
			s->workers_busy, s->workers_desired,
			(unsigned long long)s->done,
			(unsigned long long)s->dead,
			st->scaler_on ? st->scaler.throughput : 0);
	}
	fputc('\n', r->trace);
}

/* Whether st is held back by what follows it: finished items wait for
 * room, or a stage it feeds has its queue half full or more (that one is
 * what limits: more workers here would only wait). */
static bool held_back(struct run *r, const struct hop_stage *st)
{
	if (st->routing.head)
		return true;
	for (int k = 0; k < st->cfg->nroutes; k++) {
		const struct hop_route *rt = &st->cfg->routes[k];
		for (int t = 0; t < rt->nto; t++) {
			int i = rt->to[t].index;
			if (rt->to[t].sink)
				continue;
			for (int s = r->first[i]; s < r->first[i + 1]; s++)
				if (2 * (int64_t)r->stages[s].ready.len >=
				    queue_bound(&r->stages[s]))
					return true;
		}
	}
	return false;
}

/* The stages that leave their size unset share cfg->shared_workers: each
 * one's scaler is capped at its share (budget.h), from what the scalers
 * asked for at the last tick and what the pools hold now. */
static void share_budget(struct run *r, int64_t now)
{
	struct hop_budget_ask ask[r->nstages];
	int n = 0;

	for (int i = 0; i < r->nstages; i++) {
		struct hop_stage *st = &r->stages[i];
		if (!st->scaler_on || !st->cfg->shared)
			continue;
		ask[n++] = (struct hop_budget_ask){
		    .min = st->scaler.cfg.min,
		    .want = st->scaler.want,
		    .keep = st->scaler.target,
		    .busy = st->stats.workers_busy,
		    .work = st->ready.len > 0 || st->stats.depth > 0 ||
			    st->stats.inflight > 0,
		    .need = st->scaler.need,
		};
	}
	if (!n)
		return;
	hop_budget_share((int)r->cfg->shared_workers, ask, n);
	n = 0;
	for (int i = 0; i < r->nstages; i++) {
		struct hop_stage *st = &r->stages[i];
		if (!st->scaler_on || !st->cfg->shared)
			continue;
		int before = st->scaler.target;
		int target = hop_scaler_cap(&st->scaler, now, ask[n++].grant);
		if (target != before) {
			hop_log(HOP_INFO, "stage %s: scale %s", st->name,
				st->scaler.why);
			hop_pool_resize(st->pool, target);
		}
	}
}

/* Every SCALE_TICK_MS: the gauges, each stage's autoscaler, a trace row. */
static void scale_tick(struct hop_loop *loop, void *arg)
{
	struct run *r = arg;
	int64_t now = hop_now_ms();
	double throughput = 0;
	int desired = 0;

	hop_loop_cancel(loop, r->scale_timer);
	r->scale_timer = hop_loop_after(loop, SCALE_TICK_MS, scale_tick, r);
	refresh_stats(r);
	/* While a sink is out no item is handed out: none waits for a
	 * worker. */
	bool none = out(r);
	if (r->phase == RUNNING)
		share_budget(r, now);
	for (int i = 0; i < r->nstages; i++) {
		struct hop_stage *st = &r->stages[i];
		struct hop_stats *ss = &st->stats;
		if (!st->scaler_on) {
			desired += hop_stage_workers(st);
			continue;
		}
		struct hop_scaler_input in = {
		    .now_ms = now,
		    .waiting = none || st->paused ? 0
			       : ss->depth >= 0	  ? ss->depth
						  : (int64_t)st->ready.len,
		    .unknown = !none && ss->depth < 0 && !exhausted(r),
		    .inflight = ss->inflight,
		    .workers = ss->workers,
		    .busy = ss->workers_busy,
		    .completed = ss->duration_count,
		    .service_seconds = ss->duration_sum,
		    .blocked = held_back(r, st),
		};
		if (r->phase == RUNNING) {
			int before = st->scaler.target;
			int target = hop_scaler_tick(&st->scaler, &in);
			if (target != before) {
				if (r->nstages > 1)
					hop_log(HOP_INFO, "stage %s: scale %s",
						st->name, st->scaler.why);
				else
					hop_log(HOP_INFO, "scale %s",
						st->scaler.why);
				hop_pool_resize(st->pool, target);
			}
			if (!before && target && !st->cold_since)
				st->cold_since = now;
			ss->scale_ups = st->scaler.ups;
			ss->scale_downs = st->scaler.downs;
		}
		ss->workers_desired = st->scaler.target;
		desired += st->scaler.target;
		throughput += st->scaler.throughput;
	}
	r->stats.workers_desired = desired;
	r->stats.scale_ups = r->stats.scale_downs = 0;
	for (int i = 0; i < r->nstages; i++) {
		r->stats.scale_ups += r->stages[i].stats.scale_ups;
		r->stats.scale_downs += r->stages[i].stats.scale_downs;
	}
	if (r->trace)
		trace_row(r, now, throughput);
}

/* With no worker running, work that arrives asks for one at once. */
static void wake_scaler(struct run *r)
{
	if (r->phase != RUNNING)
		return;
	for (int i = 0; i < r->nstages; i++) {
		struct hop_stage *st = &r->stages[i];
		if (st->scaler_on && st->ready.len &&
		    hop_pool_workers(st->pool) == 0 && st->scaler.target == 0) {
			hop_loop_soon(r->loop, scale_tick, r);
			return;
		}
	}
}

static int start_scaling(struct run *r)
{
	struct hop_config *cfg = r->cfg;
	for (int i = 0; i < r->nstages; i++) {
		struct hop_stage *st = &r->stages[i];
		if (!st->cfg->autoscale)
			continue;
		struct hop_scaler_config sc = {
		    .min = (int)st->cfg->min_workers,
		    .max = (int)st->cfg->max_workers,
		    .window_ms = (int64_t)(cfg->scale_window * 1000),
		    .drain_ms = (int64_t)(cfg->drain_target * 1000),
		    .utilization = (double)cfg->utilization / 100,
		};
		if (hop_scaler_init(&st->scaler, &sc)) {
			hop_log(HOP_ERROR, "cannot start the autoscaler");
			return -1;
		}
		st->scaler_on = true;
	}
	if (cfg->trace) {
		r->trace = fopen(cfg->trace, "w");
		if (!r->trace) {
			hop_log(HOP_ERROR, "cannot write the trace %s: %s",
				cfg->trace, strerror(errno));
			return -1;
		}
		setvbuf(r->trace, NULL, _IOLBF, 0);
		trace_head(r);
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

	if (r->nfeeds > 1) {
		hop_log(HOP_ERROR,
			"journal %s: a journal records the items of one "
			"source, and this pipeline has %d",
			cfg->journal, r->nfeeds);
		return -1;
	}
	char *source = journal_source(r->feeds[0].src);
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

/* Writes to buf what the stages dropped, for the finished line: "" when
 * nothing was, else ", 5 dropped" and, with several stages, by whom:
 * ", 5 dropped (prefs 3, email 2)" (a sharder's shards summed). */
static void dropped_text(const struct run *r, char *buf, size_t size)
{
	size_t k;
	int ncfg = r->cfg->nstages ? r->cfg->nstages : 1;

	buf[0] = '\0';
	if (!r->stats.dropped)
		return;
	k = (size_t)snprintf(buf, size, ", %llu dropped",
			     (unsigned long long)r->stats.dropped);
	for (int i = 0, shown = 0; r->nstages > 1 && i < ncfg && k < size;
	     i++) {
		uint64_t n = 0;
		for (int s = r->first[i]; s < r->first[i + 1]; s++)
			n += r->stages[s].stats.dropped;
		if (n)
			k += (size_t)snprintf(buf + k, size - k, "%s%s %llu",
					      shown++ ? ", " : " (",
					      stage_config(r, i)->name,
					      (unsigned long long)n);
		if (i == ncfg - 1 && shown && k < size)
			snprintf(buf + k, size - k, ")");
	}
}

static void summary(struct run *r)
{
	double secs = (double)(hop_now_ms() - r->t0) / 1000;
	char dropped[512];

	dropped_text(r, dropped, sizeof(dropped));
	hop_log(HOP_INFO,
		"finished: %ld done, %ld dead, %ld retried, %ld handed "
		"back%s, in %.2f s (%.1f items/s)",
		(long)r->stats.done, (long)r->stats.dead,
		(long)r->stats.retries, (long)r->stats.released, dropped, secs,
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

/* The one stage of a config that names none: its top-level settings, fed
 * by the source and writing to the sink. */
static void main_stage(struct run *r)
{
	const struct hop_config *c = r->cfg;
	r->main_target = (struct hop_target){.sink = false, .index = 0};
	r->main_route = (struct hop_route){.nto = 1, .to = &r->main_target};
	r->main_sink = (struct hop_target){.sink = true, .index = 0};
	r->main_out = (struct hop_route){.nto = 1, .to = &r->main_sink};
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
	    .nroutes = 1,
	    .routes = &r->main_out,
	};
}

/* The config stages that config stage i's outputs can reach (the first
 * 64), memoized in reach with done. */
static uint64_t reach_of(const struct run *r, int i, uint64_t *reach,
			 bool *done)
{
	const struct hop_stage_config *c = stage_config(r, i);
	uint64_t m = 0;

	if (done[i])
		return reach[i];
	for (int k = 0; k < c->nroutes; k++)
		for (int t = 0; t < c->routes[k].nto; t++) {
			const struct hop_target *to = &c->routes[k].to[t];
			if (to->sink)
				continue;
			if (to->index < 64)
				m |= 1ULL << to->index;
			m |= reach_of(r, to->index, reach, done);
		}
	done[i] = true;
	return reach[i] = m;
}

/* Joins and reduces: where each stage's outputs can reach, and what a
 * watched run needs of a reduce. Returns 0, or -1 (logged). */
static int gather_graph(struct run *r, int n)
{
	uint64_t reach[n];
	bool done[n];

	memset(done, 0, sizeof(done));
	for (int i = 0; i < n; i++) {
		const struct hop_stage_config *c = stage_config(r, i);
		uint64_t m = reach_of(r, i, reach, done);
		for (int s = r->first[i]; s < r->first[i + 1]; s++)
			r->stages[s].reach = m;
		if ((c->join || c->reduce) && c->shards > 1) {
			hop_log(HOP_ERROR,
				"stage %s: a %s gathers in one place: it "
				"cannot have shards (shard the stage before "
				"it)",
				c->name, c->join ? "join" : "reduce");
			return -1;
		}
		if (c->reduce && r->cfg->watch && !c->reduce->every &&
		    !c->reduce->interval) {
			hop_log(HOP_ERROR,
				"stage %s: a watched run never ends, so a "
				"reduce needs a window: \"every\" (items) or "
				"\"interval\" (seconds)",
				c->name);
			return -1;
		}
		struct hop_stage *st = &r->stages[r->first[i]];
		bool stored = (c->join && c->join->state) ||
			      (c->reduce && c->reduce->state);
		if (stored && (!(st->emitting = hop_strmap_new()) ||
			       (c->reduce && !c->reduce->interval &&
				!(st->tally = tally_new(0))))) {
			hop_log(HOP_ERROR, "stage %s: out of memory", c->name);
			return -1;
		}
		if (c->join && c->join->by &&
		    (!(st->keyed = hop_strmap_new()) ||
		     !(st->closed =
			   hop_keyring_new((size_t)c->join->remember)))) {
			hop_log(HOP_ERROR, "stage %s: out of memory", c->name);
			return -1;
		}
		if (c->reduce && c->reduce->interval > 0) {
			if (!(st->tumbler = calloc(1, sizeof(*st->tumbler)))) {
				hop_log(HOP_ERROR, "stage %s: out of memory",
					c->name);
				return -1;
			}
			hop_tumbler_init(st->tumbler,
					 (int64_t)(c->reduce->interval * 1000),
					 (int64_t)(c->reduce->grace * 1000));
		}
	}
	return 0;
}

/* Connects the joins with "state" to their stores. Returns 0, or -1
 * (logged). */
static int open_stores(struct run *r)
{
	for (int i = 0; i < r->nstages; i++) {
		struct hop_stage *st = &r->stages[i];
		const struct hop_join_config *j = st->cfg->join;
		const struct hop_reduce_config *rc = st->cfg->reduce;
		const char *url = j ? j->state : rc ? rc->state : NULL;
		const char *named = j	 ? j->state_table
				    : rc ? rc->state_table
					 : NULL;
		char table[80], msg[512];
		if (!url)
			continue;
		if (named) {
			snprintf(table, sizeof(table), "%s", named);
		} else {
			/* hopper_join_STAGE, the name's other bytes as _ */
			int k = snprintf(table, sizeof(table), "hopper_%s_%s",
					 j ? "join" : "reduce", st->cfg->name);
			for (int b = j ? 12 : 14; b < k && table[b]; b++)
				if (!isalnum((unsigned char)table[b]))
					table[b] = '_';
		}
		if (hop_gstore_open(url, table, st->name, !j, &st->gstore, msg,
				    sizeof(msg))) {
			hop_log(HOP_ERROR, "%s", msg);
			return -1;
		}
		hop_log(HOP_INFO, "stage %s: %s kept in %s", st->name,
			j ? "groups" : "accumulators", table);
		if (!r->sweep_timer)
			r->sweep_timer =
			    hop_loop_after(r->loop, 0, sweep_tick, r);
	}
	return 0;
}

/* Makes the run's stages (a shard each), feeds and outlets from the
 * config. Returns 0, or -1 (logged). */
static int build_graph(struct run *r)
{
	struct hop_config *cfg = r->cfg;
	char err[512];
	int n = cfg->nstages ? cfg->nstages : 1;

	if (!cfg->nstages)
		main_stage(r);
	r->first = calloc((size_t)n + 1, sizeof(*r->first));
	if (!r->first)
		return -1;
	for (int i = 0; i < n; i++) {
		int64_t shards = stage_config(r, i)->shards;
		r->first[i + 1] = r->first[i] + (int)(shards > 1 ? shards : 1);
	}
	r->stages = calloc((size_t)r->first[n], sizeof(*r->stages));
	r->nfeeds = cfg->nsources ? cfg->nsources : 1;
	r->feeds = calloc((size_t)r->nfeeds, sizeof(*r->feeds));
	r->noutlets = cfg->nsinks ? cfg->nsinks : 1;
	r->outlets = calloc((size_t)r->noutlets, sizeof(*r->outlets));
	if (!r->stages || !r->feeds || !r->outlets) {
		hop_log(HOP_ERROR, "out of memory");
		return -1;
	}
	for (int i = 0; i < n; i++) {
		const struct hop_stage_config *c = stage_config(r, i);
		for (int s = r->first[i]; s < r->first[i + 1]; s++) {
			struct hop_stage *st = &r->stages[s];
			if (hop_stage_init(st, c, s, s - r->first[i], err,
					   sizeof(err))) {
				hop_log(HOP_ERROR, "%s", err);
				return -1;
			}
			st->run = r;
			r->nstages++;
		}
	}
	if (gather_graph(r, n))
		return -1;
	for (int i = 0; i < r->nfeeds; i++) {
		struct feed *f = &r->feeds[i];
		f->r = r;
		f->src = cfg->nsources ? cfg->sources[i] : cfg->source;
		f->route =
		    cfg->nsources ? &cfg->source_routes[i] : &r->main_route;
		f->dead_out.what = "dead-letter place";
		f->src->loop = r->loop;
		f->src->watch = cfg->watch;
		f->src->max_line = (size_t)cfg->max_line;
		f->src->on_wake = on_wake;
		f->src->on_dead_done = on_dead_done;
		f->src->wake_arg = f;
		if (cfg->source_edge && cfg->source_edge[i] >= 0)
			f->edge = &r->outlets[cfg->source_edge[i]];
	}
	for (int i = 0; i < r->noutlets; i++) {
		struct outlet *o = &r->outlets[i];
		o->r = r;
		o->sink = cfg->nsinks ? cfg->sinks[i] : cfg->sink;
		o->out.what = "sink";
		o->sink->loop = r->loop;
		o->sink->on_flushed = on_flushed;
		o->sink->flushed_arg = o;
		/* A sink may join its source's transactions only when one
		 * source's items go through one stage to it alone. */
		o->sink->source =
		    r->nfeeds == 1 && r->noutlets == 1 && r->nstages == 1
			? r->feeds[0].src
			: NULL;
		o->sink->only_source = r->nfeeds == 1 ? r->feeds[0].src : NULL;
	}
	return 0;
}

static void free_graph(struct run *r)
{
	for (int i = 0; i < r->nstages; i++) {
		tally_free(r->stages[i].tally);
		r->stages[i].tally = NULL;
		store_batch_free(r->stages[i].batch);
		r->stages[i].batch = NULL;
		hop_stage_free(&r->stages[i]);
	}
	free(r->stages);
	free(r->first);
	free(r->feeds);
	free(r->outlets);
	r->stages = NULL;
	r->nstages = 0;
	free(r->views);
	r->views = NULL;
}

/* Says what runs: one stage as it always has, several by name. */
static void say_running(struct run *r)
{
	const struct hop_config *cfg = r->cfg;
	const struct hop_stage_config *c = r->stages[0].cfg;

	if (r->nstages == 1 && r->nfeeds == 1 && r->noutlets == 1) {
		if (c->autoscale)
			hop_log(HOP_INFO,
				"running: %s -> %s, %ld to %ld %s workers, "
				"autoscaled: %s",
				r->feeds[0].src->label,
				r->outlets[0].sink->label, (long)c->min_workers,
				(long)c->max_workers, c->mode,
				hop_config_command(cfg));
		else
			hop_log(
			    HOP_INFO, "running: %s -> %s, %ld %s worker(s): %s",
			    r->feeds[0].src->label, r->outlets[0].sink->label,
			    (long)c->workers, c->mode, hop_config_command(cfg));
		return;
	}
	char list[1024] = "", sharing[512] = "";
	size_t len = 0, slen = 0;
	for (int i = 0; i < r->nstages && len < sizeof(list); i++) {
		const struct hop_stage *st = &r->stages[i];
		const struct hop_stage_config *sc = st->cfg;
		int k;
		/* A stage's own size; the shared ones' budget is said once,
		 * after them all: each alone may not reach it. */
		if (sc->autoscale && sc->shared)
			k = snprintf(list + len, sizeof(list) - len,
				     "%s%s (%s, shared)", i ? ", " : "",
				     st->name, sc->mode);
		else if (sc->autoscale)
			k = snprintf(list + len, sizeof(list) - len,
				     "%s%s (%ld to %ld %s)", i ? ", " : "",
				     st->name, (long)sc->min_workers,
				     (long)sc->max_workers, sc->mode);
		else
			k = snprintf(list + len, sizeof(list) - len,
				     "%s%s (%ld %s)", i ? ", " : "", st->name,
				     (long)sc->workers, sc->mode);
		if (k > 0)
			len += (size_t)k;
		if (sc->autoscale && sc->shared && slen < sizeof(sharing) &&
		    (k = snprintf(sharing + slen, sizeof(sharing) - slen,
				  "%s%s", slen ? ", " : "", st->name)) > 0)
			slen += (size_t)k;
	}
	if (slen && slen < sizeof(sharing))
		snprintf(sharing + slen, sizeof(sharing) - slen,
			 " share %ld worker(s) at most",
			 (long)r->cfg->shared_workers);
	hop_log(HOP_INFO,
		"running: %d source(s), %d stage(s): %s%s%s; %d sink(s)",
		r->nfeeds, r->nstages, list, slen ? "; " : "", sharing,
		r->noutlets);
}

/* After the loop: every item not done goes back to its source, never
 * lost: those in stages, those written but not confirmed, those held. */
static void hand_back(struct run *r)
{
	struct hop_item *it;
	size_t held = held_count(r);
	const char *why = "";

	for (int i = 0; i < r->noutlets; i++)
		if (r->outlets[i].out.since)
			why = r->outlets[i].out.error;
	for (int i = 0; i < r->nfeeds && !why[0]; i++)
		if (r->feeds[i].dead_out.since)
			why = r->feeds[i].dead_out.error;
	if (held)
		hop_log(HOP_WARN,
			"handing %zu held item(s) back to the source: %s", held,
			why);
	release_waiting(r);
	for (int i = 0; i < r->noutlets; i++) {
		struct outlet *o = &r->outlets[i];
		for (int k = 0; k < MAX_FLUSHES; k++)
			while ((it = hop_queue_pop(&o->flushing[k])))
				release_work(r, it);
		while ((it = hop_queue_pop(&o->written)))
			release_work(r, it);
		while ((it = hop_queue_pop(&o->held)))
			release_work(r, it);
	}
	ack_roots(r);
	/* Dead letters their source could not record: not dead, so back. */
	for (int i = 0; i < r->nfeeds; i++) {
		struct feed *f = &r->feeds[i];
		while ((it = hop_queue_pop(&f->held_dead))) {
			r->stats.released++;
			if (f->src->ops->release(f->src, it))
				source_error(r, f, it->id);
			hop_item_free(it);
		}
	}
}

int hop_run(struct hop_config *cfg)
{
	struct run r = {.cfg = cfg,
			.held_wait_ms = HELD_FIRST_MS,
			.sigfd = -1,
			.stats = {.depth = -1, .total = -1}};
	char err[512];
	int code = HOP_EXIT_FAILURE;
	int opened = 0, open_sinks = 0;

	srandom((unsigned)getpid() ^ (unsigned)hop_now_ms());
	r.loop = hop_loop_new();
	if (!r.loop || setup_signals(&r)) {
		hop_log(HOP_ERROR, "cannot set up the event loop: %s",
			strerror(errno));
		goto out_loop;
	}
	if (cfg->listen) {
		struct hop_http_view view = {.stats = &r.stats,
					     .cfg = cfg,
					     .refresh = refresh_stats,
					     .ready = run_ready,
					     .stages = stage_views,
					     .stage = stage_at,
					     .kick = kick,
					     .arg = &r};
		r.http = hop_http_start(r.loop, cfg->listen, &view, err,
					sizeof(err));
		if (!r.http) {
			hop_log(HOP_ERROR, "%s", err);
			goto out_loop;
		}
	}
	if (build_graph(&r))
		goto out_graph;
	if (cfg->journal && open_journal(&r))
		goto out_graph;
	struct hop_pool_events ev = {on_done, on_returned, on_changed,
				     on_start_failed, NULL};
	for (int i = 0; i < r.nstages; i++) {
		ev.arg = &r.stages[i];
		if (hop_stage_start(&r.stages[i], r.loop, &ev,
				    (int64_t)(cfg->kill_timeout * 1000),
				    (size_t)cfg->max_line, err, sizeof(err))) {
			hop_log(HOP_ERROR, "%s", err);
			goto out_pools;
		}
	}
	for (; open_sinks < r.noutlets; open_sinks++) {
		struct hop_sink *sink = r.outlets[open_sinks].sink;
		if (sink->ops->open(sink)) {
			hop_log(HOP_ERROR, "%s", sink->error);
			goto out_sinks;
		}
	}
	for (; opened < r.nfeeds; opened++) {
		struct hop_source *src = r.feeds[opened].src;
		if (src->ops->open(src)) {
			hop_log(HOP_ERROR, "%s", src->error);
			goto out_sources;
		}
	}
	if (open_stores(&r))
		goto out_sources;
	say_running(&r);
	r.t0 = r.stats.started_ms = hop_now_ms();
	start_reporting(&r);
	schedule(&r);
	if (start_scaling(&r) == 0)
		hop_loop_run(r.loop);
	else
		r.feeds[0].failed = true;
	hop_loop_cancel(r.loop, r.scale_timer);
	hop_loop_cancel(r.loop, r.sweep_timer);
	if (r.trace)
		fclose(r.trace);
	hop_progress_stop(r.progress);
	r.progress = NULL;

	/* Whatever is still held goes back to the source, never lost. */
	hop_loop_cancel(r.loop, r.grace_timer);
	hop_loop_cancel(r.loop, r.stop_timer);
	for (int i = 0; i < r.noutlets; i++) {
		hop_loop_cancel(r.loop, r.outlets[i].flush_timer);
		r.outlets[i].flush_timer = 0;
	}
	if (r.phase == RUNNING)
		r.phase = STOPPING; /* what the pools hand back goes back */
	for (int i = 0; i < r.nstages; i++)
		hop_stage_stop(&r.stages[i]);
	settle_all(&r);
	hop_loop_cancel(r.loop, r.held_timer);
	r.held_timer = 0;
	hand_back(&r);
	/* A finite run that a signal stopped with items not done says so,
	 * as a shell expects (128 + the signal), so that `hopper run ... &&
	 * next` does not go on; one that had finished everything anyway
	 * ends as if no signal had come. A watched run never finishes: a
	 * signal is how it ends, and drained it exits 0. */
	bool cut_short = r.signalled && !cfg->watch &&
			 (r.stats.released > 0 || !exhausted(&r));
	/* Closing reports the dead letters still on their way: they count. */
	for (int i = 0; i < r.nfeeds; i++)
		r.feeds[i].src->ops->close(r.feeds[i].src);
	opened = 0;
	journal_sync(&r);
	hop_journal_close(r.journal);
	r.journal = NULL;
	summary(&r);
	if (r.sigints >= 2)
		code = HOP_EXIT_INTERRUPTED;
	else if (source_failed(&r) || r.journal_failed || r.store_failed ||
		 (r.stats.dead_unwritten > 0 && !cfg->watch && !cut_short))
		code = HOP_EXIT_FAILURE;
	else if (r.halt_code)
		code = r.halt_code;
	else if (cut_short)
		code = 128 + r.first_signal;
	else if ((r.stats.dead > 0 || r.skipped_dead > 0 ||
		  r.groups_dead > 0) &&
		 !cfg->watch)
		code = HOP_EXIT_DEAD;
	else
		code = HOP_EXIT_OK;
out_sources:
	while (opened-- > 0)
		r.feeds[opened].src->ops->close(r.feeds[opened].src);
out_sinks:
	while (open_sinks-- > 0)
		r.outlets[open_sinks].sink->ops->close(
		    r.outlets[open_sinks].sink);
out_pools:
	for (int i = 0; i < r.nstages; i++)
		hop_stage_stop(&r.stages[i]);
out_graph:
	hop_journal_close(r.journal);
	free_graph(&r);
out_loop:
	hop_http_stop(r.http);
	if (r.sigfd >= 0)
		close(r.sigfd);
	hop_loop_free(r.loop);
	return code;
}
