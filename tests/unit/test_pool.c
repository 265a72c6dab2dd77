/* Unit tests for the worker slot's table in pool.c: every state and event,
 * the next state the table gives, and that an event a state does not
 * expect is refused (logged as a bug, the state kept). No process runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "coordinator/pool_int.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(every_pair_has_its_next_state),
	    cmocka_unit_test(out_of_range_is_refused),
	    cmocka_unit_test(event_moves_or_keeps_the_slot),
	    cmocka_unit_test(up_states_and_ways_down),
	    cmocka_unit_test(names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
