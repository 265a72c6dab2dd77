/* Unit tests for pool.c: the worker slot's table (every state and event,
 * the next state the table gives, and that an event a state does not
 * expect is refused, logged as a bug, the state kept), then real worker
 * processes in both modes whose emits arrive in it->emits, in order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coordinator/loop.h"
#include "coordinator/pool_int.h"
#include "coordinator/spool.h"

/* Every transition the slot's life allows, written out again here so that
 * a change to pool.c's table is a change made twice; every pair not listed
 * must be refused. */
static const struct {
	enum slot_state from;
	enum slot_event ev;
	enum slot_state to;
} allowed[] = {
    {S_DOWN, E_STARTED, S_IDLE},
    {S_DOWN, E_RETRY, S_BACKOFF},
    {S_DOWN, E_EMPTY, S_DOWN},
    {S_DOWN, E_SIGNAL, S_STOPPING},
    {S_BACKOFF, E_STARTED, S_IDLE},
    {S_BACKOFF, E_RETRY, S_BACKOFF},
    {S_BACKOFF, E_CANCEL, S_DOWN},
    {S_IDLE, E_TAKE, S_BUSY},
    {S_IDLE, E_CLOSE, S_RETIRING},
    {S_IDLE, E_SIGNAL, S_STOPPING},
    {S_IDLE, E_EXITED, S_DOWN},
    {S_IDLE, E_DROP, S_DOWN},
    {S_BUSY, E_TAKE, S_BUSY},
    {S_BUSY, E_EMPTY, S_IDLE},
    {S_BUSY, E_SIGNAL, S_STOPPING},
    {S_BUSY, E_EXITED, S_DOWN},
    {S_BUSY, E_RAN, S_BUSY},
    {S_BUSY, E_DROP, S_DOWN},
    {S_RETIRING, E_EMPTY, S_RETIRING},
    {S_RETIRING, E_SIGNAL, S_STOPPING},
    {S_RETIRING, E_EXITED, S_DOWN},
    {S_STOPPING, E_EMPTY, S_STOPPING},
    {S_STOPPING, E_SIGNAL, S_STOPPING},
    {S_STOPPING, E_EXITED, S_DOWN},
    {S_STOPPING, E_RAN, S_IDLE},
};

static enum slot_state wanted(enum slot_state s, enum slot_event e)
{
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		if (allowed[i].from == s && allowed[i].ev == e)
			return allowed[i].to;
	return S_BUG;
}

static void every_pair_has_its_next_state(void **state)
{
	(void)state;
	for (int s = 0; s < S_NSTATES; s++)
		for (int e = 0; e < E_NEVENTS; e++) {
			enum slot_state got = pool_slot_next(s, e);
			if (got != wanted(s, e))
				fail_msg("%s + %s: got %s, want %s",
					 pool_slot_state_name(s),
					 pool_slot_event_name(e),
					 pool_slot_state_name(got),
					 pool_slot_state_name(wanted(s, e)));
		}
}

static void out_of_range_is_refused(void **state)
{
	(void)state;
	assert_int_equal(pool_slot_next(S_NSTATES, E_TAKE), S_BUG);
	assert_int_equal(pool_slot_next(S_IDLE, E_NEVENTS), S_BUG);
	for (int e = 0; e < E_NEVENTS; e++)
		assert_int_equal(pool_slot_next(S_BUG, e), S_BUG);
}

/* An unexpected event leaves the slot where it was; an expected one moves
 * it. */
static void event_moves_or_keeps_the_slot(void **state)
{
	struct worker w;

	(void)state;
	memset(&w, 0, sizeof(w));
	w.state = S_DOWN;
	pool_slot_event(&w, E_TAKE); /* a bug: logged, state kept */
	assert_int_equal(w.state, S_DOWN);
	pool_slot_event(&w, E_STARTED);
	assert_int_equal(w.state, S_IDLE);
	pool_slot_event(&w, E_TAKE);
	assert_int_equal(w.state, S_BUSY);
	pool_slot_event(&w, E_EMPTY);
	assert_int_equal(w.state, S_IDLE);
	pool_slot_event(&w, E_CLOSE);
	assert_int_equal(w.state, S_RETIRING);
	pool_slot_event(&w, E_TAKE); /* a retiring worker takes nothing */
	assert_int_equal(w.state, S_RETIRING);
	pool_slot_event(&w, E_EXITED);
	assert_int_equal(w.state, S_DOWN);
	pool_slot_event(&w, E_RETRY);
	assert_int_equal(w.state, S_BACKOFF);
	pool_slot_event(&w, E_CANCEL);
	assert_int_equal(w.state, S_DOWN);
}

/* Only IDLE and BUSY take items, and every state has a way back down. */
static void up_states_and_ways_down(void **state)
{
	(void)state;
	for (int s = S_DOWN; s < S_NSTATES; s++) {
		assert_int_equal(slot_up(s), s == S_IDLE || s == S_BUSY);
		bool down = s == S_DOWN;
		for (int e = 0; e < E_NEVENTS && !down; e++) {
			enum slot_state n = pool_slot_next(s, e);
			down = n == S_DOWN ||
			       pool_slot_next(n, E_EXITED) == S_DOWN ||
			       pool_slot_next(n, E_CANCEL) == S_DOWN;
		}
		if (!down)
			fail_msg("%s has no way down", pool_slot_state_name(s));
	}
}

/* Every name is set, so that a bug's log line says what happened. */
static void names(void **state)
{
	(void)state;
	for (int s = 0; s < S_NSTATES; s++)
		assert_string_not_equal(pool_slot_state_name(s), "?");
	for (int e = 0; e < E_NEVENTS; e++)
		assert_string_not_equal(pool_slot_event_name(e), "?");
	assert_string_equal(pool_slot_state_name(S_NSTATES), "?");
	assert_string_equal(pool_slot_event_name(E_NEVENTS), "?");
}

/* A stream worker in sh: for the payload "drop" it emits, then drops; for
 * "fail" it emits, then fails; for "none" it answers with a result and
 * emits nothing; for anything else it emits three outputs naming the item,
 * on ports p0..p2 with a key, then answers ok. */
static const char stream_sh[] =
    "while IFS= read -r line; do\n"
    "  id=${line#*\\\"id\\\":\\\"}; id=${id%%\\\"*}\n"
    "  case $line in\n"
    "  *'\"payload\":\"drop\"'*) printf "
    "'{\"id\":\"%s\",\"emit\":1}\\n{\"id\":\"%s\",\"ok\":true,\"drop\":true}"
    "\\n' "
    "\"$id\" \"$id\";;\n"
    "  *'\"payload\":\"fail\"'*) printf "
    "'{\"id\":\"%s\",\"emit\":1}\\n{\"id\":\"%s\",\"ok\":false}\\n' "
    "\"$id\" \"$id\";;\n"
    "  *'\"payload\":\"none\"'*) printf "
    "'{\"id\":\"%s\",\"ok\":true,\"result\":\"r\"}\\n' \"$id\";;\n"
    "  *) for i in 0 1 2; do printf "
    "'{\"id\":\"%s\",\"emit\":{\"of\":\"%s\",\"n\":%d},\"port\":\"p%d\","
    "\"key\":\"k\"}\\n' \"$id\" \"$id\" $i $i; done\n"
    "     printf '{\"id\":\"%s\",\"ok\":true}\\n' \"$id\";;\n"
    "  esac\n"
    "done\n";

/* The same in exec mode, through HOPPER_EMIT; "bad" writes a port that is
 * not a string on its second line. */
static const char exec_sh[] =
    "case $(cat) in\n"
    "drop) : > \"$HOPPER_EMIT\";;\n"
    "fail) echo '{\"emit\":1}' > \"$HOPPER_EMIT\"; exit 75;;\n"
    "none) echo '\"r\"';;\n"
    "bad) printf '{\"emit\":1}\\n{\"emit\":2,\"port\":7}\\n' > "
    "\"$HOPPER_EMIT\";;\n"
    "*) for i in 0 1 2; do printf "
    "'{\"emit\":{\"of\":\"%s\",\"n\":%d},\"port\":\"p%d\",\"key\":\"k\"}\\n' "
    "\"$HOPPER_ITEM_ID\" $i $i >> \"$HOPPER_EMIT\"; done; echo ignored;;\n"
    "esac\n";

struct emit_run {
	struct hop_loop *loop;
	struct hop_pool *pool;
	struct hop_queue todo, done;
	size_t want;
	bool timed_out;
};

static void emit_run_feed(void *arg)
{
	struct emit_run *r = arg;
	struct hop_item *it;

	while (hop_pool_capacity(r->pool) > 0 && (it = hop_queue_pop(&r->todo)))
		assert_int_equal(hop_pool_submit(r->pool, it), 0);
}

static void emit_run_done(void *arg, struct hop_item *it)
{
	struct emit_run *r = arg;

	hop_queue_push(&r->done, it);
	if (r->done.len == r->want)
		hop_loop_stop(r->loop);
}

static void emit_run_returned(void *arg, struct hop_item *it)
{
	fail_msg("item %s returned unattempted", it->id);
}

static void emit_run_start_failed(void *arg, int n, const char *why,
				  const char *line)
{
	fail_msg("the worker could not start: %s %s", why, line);
}

static void emit_run_timeout(struct hop_loop *loop, void *arg)
{
	struct emit_run *r = arg;
	r->timed_out = true;
	hop_loop_stop(loop);
}

/* Entries in dir, other than . and .. */
static int dir_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

/* The item's emits, as "port:key:payload|..." */
static char *emits_text(struct hop_item *it)
{
	static char buf[4096];
	struct hop_emit e;
	size_t n = 0;

	buf[0] = '\0';
	while (hop_spool_next(it->emits, &e) == 1) {
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s:%s:%s|",
				      e.port ? e.port : "-",
				      e.key ? e.key : "-", e.payload);
		hop_emit_clear(&e);
	}
	return buf;
}

/* Runs the payloads through a one-slot pool with the worker script, then
 * checks every outcome: a splitter's three outputs, in order, with their
 * ports and keys; a drop; a plain result; a failure's emits discarded. */
static void emits_arrive_in_order(bool exec_mode)
{
	static const char *payloads[] = {"a",	 "drop", "b", "none", "c",
					 "fail", "d",	 "e", "f",    "bad"};
	size_t n = sizeof(payloads) / sizeof(payloads[0]) - !exec_mode;
	char tmpdir[] = "/tmp/test_pool.XXXXXX";
	char *argv[] = {"sh", "-c", (char *)(exec_mode ? exec_sh : stream_sh),
			NULL};
	struct hop_stats stats = {0};
	struct emit_run r = {.want = n};
	char err[512], want[512];

	assert_non_null(mkdtemp(tmpdir));
	r.loop = hop_loop_new();
	assert_non_null(r.loop);
	struct hop_pool_config cfg = {
	    .argv = argv,
	    .exec_mode = exec_mode,
	    .size = 1,
	    .start = 1,
	    .prefetch = 4,
	    .kill_ms = 1000,
	    .max_line = 1 << 20,
	    .tmpdir = tmpdir,
	    .stats = &stats,
	};
	struct hop_pool_events ev = {emit_run_done, emit_run_returned,
				     emit_run_feed, emit_run_start_failed, &r};
	r.pool = hop_pool_new(r.loop, &cfg, &ev);
	assert_non_null(r.pool);
	for (size_t i = 0; i < n; i++) {
		char id[8], payload[16];
		snprintf(id, sizeof(id), "%zu", i);
		snprintf(payload, sizeof(payload), "\"%s\"", payloads[i]);
		hop_queue_push(
		    &r.todo,
		    hop_item_new(strdup(id), strdup(payload), strlen(payload)));
	}
	assert_int_equal(hop_pool_start(r.pool, err, sizeof(err)), 0);
	emit_run_feed(&r);
	/* A bound that stops a hung test, never reached otherwise. */
	uint64_t guard = hop_loop_after(r.loop, 120000, emit_run_timeout, &r);
	hop_loop_run(r.loop);
	hop_loop_cancel(r.loop, guard);
	assert_false(r.timed_out);

	struct hop_item *it;
	while ((it = hop_queue_pop(&r.done)) != NULL) {
		const char *p = payloads[atoi(it->id)];
		if (!strcmp(p, "drop")) {
			assert_true(it->ok);
			assert_true(it->drop);
			assert_null(it->emits);
		} else if (!strcmp(p, "none")) {
			assert_true(it->ok);
			assert_false(it->drop);
			assert_null(it->emits);
			assert_string_equal(it->result, "\"r\"");
		} else if (!strcmp(p, "fail")) {
			assert_false(it->ok);
			assert_null(it->emits); /* a failure outputs nothing */
		} else if (!strcmp(p, "bad")) {
			assert_false(it->ok);
			assert_false(it->retry);
			assert_non_null(strstr(it->error, "HOPPER_EMIT file"));
			assert_non_null(strstr(
			    it->error, "line 2: \"port\" must be a string"));
			assert_null(it->emits);
		} else {
			assert_true(it->ok);
			assert_false(it->drop);
			assert_non_null(it->emits);
			assert_int_equal(hop_spool_count(it->emits), 3);
			snprintf(want, sizeof(want),
				 "p0:k:{\"of\":\"%s\",\"n\":0}|"
				 "p1:k:{\"of\":\"%s\",\"n\":1}|"
				 "p2:k:{\"of\":\"%s\",\"n\":2}|",
				 it->id, it->id, it->id);
			assert_string_equal(emits_text(it), want);
		}
		hop_item_free(it);
	}
	hop_pool_destroy(r.pool);
	/* The slot's payload and emit files went with the pool. */
	assert_int_equal(dir_entries(tmpdir), 0);
	rmdir(tmpdir);
	hop_loop_free(r.loop);
}

static void stream_emits_arrive_in_order(void **state)
{
	emits_arrive_in_order(false);
}

static void exec_emits_arrive_in_order(void **state)
{
	emits_arrive_in_order(true);
}

static void no_feed(void *arg)
{
}

/* A pool grows while a worker runs: the running slot stays where it is
 * (the loop holds it), the new ones come up down and start on a resize,
 * and a grow past the cap or below the size changes nothing. */
static void grows_without_moving_a_slot(void **state)
{
	char tmpdir[] = "/tmp/test_pool.XXXXXX";
	char *argv[] = {"sh", "-c", "while read -r l; do :; done", NULL};
	struct hop_stats stats = {0};
	char err[512];

	assert_non_null(mkdtemp(tmpdir));
	struct hop_loop *loop = hop_loop_new();
	assert_non_null(loop);
	struct hop_pool_config cfg = {
	    .argv = argv,
	    .size = 1,
	    .start = 1,
	    .prefetch = 1,
	    .kill_ms = 1000,
	    .max_line = 1 << 20,
	    .tmpdir = tmpdir,
	    .stats = &stats,
	};
	struct hop_pool_events ev = {emit_run_done, emit_run_returned, no_feed,
				     emit_run_start_failed, NULL};
	struct hop_pool *pool = hop_pool_new(loop, &cfg, &ev);
	assert_non_null(pool);
	assert_int_equal(hop_pool_start(pool, err, sizeof(err)), 0);
	assert_int_equal(hop_pool_workers(pool), 1);
	struct worker *first = pool->w[0];
	pid_t pid = first->child.pid;

	assert_int_equal(hop_pool_grow(pool, 3), 0);
	assert_int_equal(hop_pool_size(pool), 3);
	assert_ptr_equal(pool->w[0], first);
	assert_int_equal(first->child.pid, pid);
	assert_int_equal(pool->w[2]->index, 2);
	assert_int_equal(pool->w[2]->state, S_DOWN);
	assert_int_equal(hop_pool_workers(pool), 1);
	hop_pool_resize(pool, 3);
	assert_int_equal(hop_pool_workers(pool), 3);

	assert_int_equal(hop_pool_grow(pool, 2), 0);
	assert_int_equal(hop_pool_size(pool), 3);
	assert_int_equal(hop_pool_grow(pool, HOP_POOL_MAX_SLOTS + 1), -ERANGE);
	assert_int_equal(hop_pool_size(pool), 3);
	hop_pool_destroy(pool);
	assert_int_equal(dir_entries(tmpdir), 0);
	rmdir(tmpdir);
	hop_loop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(every_pair_has_its_next_state),
	    cmocka_unit_test(out_of_range_is_refused),
	    cmocka_unit_test(event_moves_or_keeps_the_slot),
	    cmocka_unit_test(up_states_and_ways_down),
	    cmocka_unit_test(names),
	    cmocka_unit_test(stream_emits_arrive_in_order),
	    cmocka_unit_test(exec_emits_arrive_in_order),
	    cmocka_unit_test(grows_without_moving_a_slot),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
