/* Unit tests for budget.c: the sharing itself, then a chain of three
 * autoscaled stages on a fake clock, capped at their shares as the run
 * does (run.c's share_budget, then each scaler's tick).
 *
 * The simulated chain behaves as the run does: items arrive at the first
 * stage's queue; a stage's finished item goes into the next stage's
 * bounded queue, or, when that is full, waits in the stage, which then
 * takes no new item until it has gone on. A worker takes START_MS to
 * start and holds one item at a time; a lower target retires idle workers
 * only, and a worker that finishes above the target retires instead of
 * taking the next item (as pool_finish does).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/budget.h"
#include "coordinator/scaler.h"

/* The sharing. */

static void ask(struct hop_budget_ask *a, int want, double need, int busy)
{
	*a = (struct hop_budget_ask){.min = 1,
				     .want = want,
				     .keep = want,
				     .busy = busy,
				     .work = need > 0,
				     .need = need};
}

static void wants_that_fit_are_granted(void **st)
{
	struct hop_budget_ask a[3];
	ask(&a[0], 1, 0.6, 1);
	ask(&a[1], 4, 3.3, 2);
	ask(&a[2], 2, 1.2, 0);
	assert_int_equal(hop_budget_share(8, a, 3), 7);
	assert_int_equal(a[0].grant, 1);
	assert_int_equal(a[1].grant, 4);
	assert_int_equal(a[2].grant, 2);
}

static void short_budget_follows_demand(void **st)
{
	/* Demand 1 : 5 : 1, each asking for the whole budget. */
	struct hop_budget_ask a[3];
	ask(&a[0], 8, 2.5, 1);
	ask(&a[1], 8, 12.5, 1);
	ask(&a[2], 8, 2.5, 1);
	assert_int_equal(hop_budget_share(8, a, 3), 8);
	assert_int_equal(a[0].grant, 1);
	assert_int_equal(a[1].grant, 6);
	assert_int_equal(a[2].grant, 1);

	/* 1 : 1: halves; 3 : 1 of 8: 6 and 2. */
	ask(&a[0], 8, 10, 0);
	ask(&a[1], 8, 10, 0);
	hop_budget_share(8, a, 2);
	assert_int_equal(a[0].grant, 4);
	assert_int_equal(a[1].grant, 4);
	ask(&a[0], 8, 30, 0);
	ask(&a[1], 8, 10, 0);
	hop_budget_share(8, a, 2);
	assert_int_equal(a[0].grant, 6);
	assert_int_equal(a[1].grant, 2);
}

static void busy_workers_are_not_taken(void **st)
{
	/* The first pool's demand fell, but five of its workers hold items:
	 * the second gets the rest now, and more as those finish. */
	struct hop_budget_ask a[2];
	ask(&a[0], 1, 0.5, 5);
	ask(&a[1], 8, 20, 2);
	assert_int_equal(hop_budget_share(8, a, 2), 8);
	assert_int_equal(a[0].grant, 5);
	assert_int_equal(a[1].grant, 3);
	a[0].busy = 1;
	hop_budget_share(8, a, 2);
	assert_int_equal(a[0].grant, 1);
	assert_int_equal(a[1].grant, 7);
}

static void a_pool_with_work_gets_one(void **st)
{
	/* Little demand, none measured yet, or a scaler that has not seen
	 * the work: still one worker. */
	struct hop_budget_ask a[3];
	ask(&a[0], 8, 100, 0);
	ask(&a[1], 0, 0, 0);
	a[1].min = 0;
	a[1].work = true;
	ask(&a[2], 0, 0, 0);
	a[2].min = 0;
	assert_int_equal(hop_budget_share(4, a, 3), 4);
	assert_int_equal(a[0].grant, 3);
	assert_int_equal(a[1].grant, 1);
	assert_int_equal(a[2].grant, 0);

	/* More pools with work than the budget: one each all the same. */
	for (int i = 0; i < 3; i++)
		ask(&a[i], 2, 5, 0);
	assert_int_equal(hop_budget_share(2, a, 3), 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(a[i].grant, 1);
}

static void what_is_left_lets_pools_keep_their_window(void **st)
{
	struct hop_budget_ask a[2];
	ask(&a[0], 1, 0.5, 0);
	a[0].keep = 4; /* waiting out its scale-down window */
	ask(&a[1], 3, 2.5, 0);
	hop_budget_share(8, a, 2);
	assert_int_equal(a[0].grant, 4);
	assert_int_equal(a[1].grant, 3);
	/* Wants come first: the window's surplus goes when needed. */
	a[1].want = 6;
	a[1].need = 6;
	hop_budget_share(8, a, 2);
	assert_int_equal(a[0].grant, 2);
	assert_int_equal(a[1].grant, 6);
}

/* A chain of three stages on a fake clock. */

#define STEP_MS 10
#define TICK_MS 250
#define START_MS 100
#define MAXW 16
#define NST 3
#define QUEUE 20 /* the later stages' queues */

enum { DOWN, STARTING, UP };

struct wk {
	int state;
	int64_t up_at;
	bool busy;
	double left;
	int64_t began;
};

struct stg {
	struct hop_scaler sc;
	double service_ms;
	struct wk w[MAXW];
	int64_t queue;	 /* waiting for a worker */
	int64_t routing; /* finished, waiting for room in the next queue */
	uint64_t completed;
	double service_sum;
	int target;
};

struct chain {
	struct stg s[NST];
	int budget;
	double rate; /* arrivals per second at the first stage */
	double acc;
	int64_t now;
	uint64_t arrived, done;
	int most_live; /* the most workers alive at once, all stages */
};

static int count(const struct stg *g, int state, bool busy_only)
{
	int n = 0;
	for (int i = 0; i < MAXW; i++)
		if (g->w[i].state == state && (!busy_only || g->w[i].busy))
			n++;
	return n;
}

static int live(const struct stg *g)
{
	return count(g, STARTING, false) + count(g, UP, false);
}

static void apply(struct chain *c, struct stg *g)
{
	for (int i = 0; i < MAXW && live(g) < g->target; i++)
		if (g->w[i].state == DOWN) {
			g->w[i].state = STARTING;
			g->w[i].up_at = c->now + START_MS;
		}
	for (int i = 0; i < MAXW && live(g) > g->target; i++)
		if (g->w[i].state == STARTING ||
		    (g->w[i].state == UP && !g->w[i].busy))
			g->w[i].state = DOWN;
}

static void chain_init(struct chain *c, int budget, double rate)
{
	static const double service[NST] = {20, 100, 20};
	struct hop_scaler_config cfg = {.min = 1,
					.max = budget,
					.window_ms = 30000,
					.drain_ms = 10000,
					.utilization = 0.8};
	memset(c, 0, sizeof(*c));
	c->budget = budget;
	c->rate = rate;
	for (int k = 0; k < NST; k++) {
		assert_int_equal(hop_scaler_init(&c->s[k].sc, &cfg), 0);
		c->s[k].service_ms = service[k];
		c->s[k].target = 1;
		apply(c, &c->s[k]);
	}
}

static void chain_free(struct chain *c)
{
	for (int k = 0; k < NST; k++)
		hop_scaler_free(&c->s[k].sc);
}

/* Hands on what waits in the stages, the last first (as the run's pump
 * does): into the next queue while it has room, out of the last. */
static void route(struct chain *c)
{
	for (int k = NST - 1; k >= 0; k--) {
		struct stg *g = &c->s[k];
		while (g->routing > 0) {
			if (k + 1 < NST) {
				if (c->s[k + 1].queue >= QUEUE)
					break;
				c->s[k + 1].queue++;
			} else {
				c->done++;
			}
			g->routing--;
		}
	}
}

static void dispatch(struct chain *c, int64_t at)
{
	for (int k = 0; k < NST; k++) {
		struct stg *g = &c->s[k];
		for (int i = 0; i < MAXW && !g->routing && g->queue > 0; i++)
			if (g->w[i].state == UP && !g->w[i].busy) {
				g->queue--;
				g->w[i].busy = true;
				g->w[i].left = g->service_ms;
				g->w[i].began = at;
			}
	}
}

/* What run.c's share_budget does at a tick: each stage's ask from its
 * scaler and pool, the shares, each scaler capped at its share. */
static void share(struct chain *c)
{
	struct hop_budget_ask a[NST];
	for (int k = 0; k < NST; k++) {
		struct stg *g = &c->s[k];
		a[k] = (struct hop_budget_ask){
		    .min = g->sc.cfg.min,
		    .want = g->sc.want,
		    .keep = g->sc.target,
		    .busy = count(g, UP, true),
		    .work = g->queue + count(g, UP, true) > 0,
		    .need = g->sc.need,
		};
	}
	hop_budget_share(c->budget, a, NST);
	for (int k = 0; k < NST; k++)
		c->s[k].target =
		    hop_scaler_cap(&c->s[k].sc, c->now, a[k].grant);
}

static void tick(struct chain *c)
{
	share(c);
	int sum = 0;
	for (int k = 0; k < NST; k++) {
		struct stg *g = &c->s[k];
		struct hop_scaler_input in = {
		    .now_ms = c->now,
		    .waiting = g->queue,
		    .inflight = count(g, UP, true),
		    .workers = live(g),
		    .busy = count(g, UP, true),
		    .completed = g->completed,
		    .service_seconds = g->service_sum,
		    .blocked = g->routing > 0 ||
			       (k + 1 < NST && 2 * c->s[k + 1].queue >= QUEUE),
		};
		g->target = hop_scaler_tick(&g->sc, &in);
		if (getenv("BUDGET_DEBUG") && g->sc.why[0])
			print_message("%6lld stage %d: %s\n", (long long)c->now,
				      k, g->sc.why);
		/* A stage with work has a worker. */
		if (g->queue + g->routing + count(g, UP, true) > 0)
			assert_true(g->target >= 1);
		sum += g->target;
	}
	if (getenv("BUDGET_DEBUG") && c->now % 5000 == 0)
		for (int k = 0; k < NST; k++)
			print_message(
			    "%6lld   [%d] t=%d want=%d cap=%d need=%.2f "
			    "held=%.2f tput=%.1f arr=%.1f q=%lld r=%lld\n",
			    (long long)c->now, k, c->s[k].target,
			    c->s[k].sc.want, c->s[k].sc.cap, c->s[k].sc.need,
			    c->s[k].sc.held, c->s[k].sc.throughput,
			    c->s[k].sc.arrivals, (long long)c->s[k].queue,
			    (long long)c->s[k].routing);
	/* The targets together never pass the budget. */
	assert_true(sum <= c->budget);
}

static void chain_run(struct chain *c, int64_t until)
{
	for (; c->now < until; c->now += STEP_MS) {
		c->acc += c->rate * STEP_MS / 1000;
		for (; c->acc >= 1; c->acc -= 1) {
			c->s[0].queue++;
			c->arrived++;
		}
		for (int k = 0; k < NST; k++)
			for (int i = 0; i < MAXW; i++)
				if (c->s[k].w[i].state == STARTING &&
				    c->now >= c->s[k].w[i].up_at)
					c->s[k].w[i].state = UP;
		route(c);
		dispatch(c, c->now);
		for (int k = 0; k < NST; k++) {
			struct stg *g = &c->s[k];
			for (int i = 0; i < MAXW; i++) {
				struct wk *w = &g->w[i];
				if (!w->busy || (w->left -= STEP_MS) > 0)
					continue;
				w->busy = false;
				g->completed++;
				g->service_sum +=
				    (double)(c->now + STEP_MS - w->began) /
				    1000;
				g->routing++;
				if (live(g) > g->target)
					w->state = DOWN;
			}
		}
		route(c);
		dispatch(c, c->now + STEP_MS);
		if (c->now % TICK_MS == 0)
			tick(c);
		int all = 0;
		for (int k = 0; k < NST; k++) {
			apply(c, &c->s[k]);
			all += live(&c->s[k]);
		}
		/* Nor do the workers alive: busy ones were never taken. */
		assert_true(all <= c->budget);
		if (all > c->most_live)
			c->most_live = all;
	}
}

static void middle_stage_five_times_slower_gets_most(void **st)
{
	/* 100 items/s asks for 2.5, 12.5 and 2.5 workers: far more than 8. */
	struct chain c;
	chain_init(&c, 8, 100);
	chain_run(&c, 30000);
	int most[NST] = {0};
	for (int64_t t = c.now; t < 120000; t += TICK_MS) {
		chain_run(&c, t + TICK_MS);
		/* From then on, the middle stage has most of the workers. */
		assert_true(c.s[1].target > c.s[0].target);
		assert_true(c.s[1].target > c.s[2].target);
		assert_true(c.s[1].target * 2 > c.budget);
		assert_true(c.s[0].target <= 2);
		for (int k = 0; k < NST; k++)
			if (c.s[k].target > most[k])
				most[k] = c.s[k].target;
	}
	print_message("chain at 100/s, budget 8: %d, %d, %d workers (most %d, "
		      "%d, %d); %llu of %llu items done\n",
		      c.s[0].target, c.s[1].target, c.s[2].target, most[0],
		      most[1], most[2], (unsigned long long)c.done,
		      (unsigned long long)c.arrived);
	assert_true(c.s[1].target >= 5);
	assert_true(c.most_live <= 8);
	/* The first stage waits on the second, and knows it. */
	assert_true(c.s[0].sc.held > 0.5);
	/* The middle stage is what limits: about its workers' 10 items/s
	 * each went through. */
	double tput = (double)c.done / (double)(c.now / 1000);
	assert_true(tput >= 40);
	chain_free(&c);
}

static void wants_that_fit_are_met_in_full(void **st)
{
	/* 20 items/s asks for 0.5, 2.5 and 0.5 workers: 5 fit in 8. */
	struct chain c;
	chain_init(&c, 8, 20);
	chain_run(&c, 60000);
	uint64_t done = c.done;
	for (int64_t t = c.now; t < 120000; t += TICK_MS) {
		chain_run(&c, t + TICK_MS);
		for (int k = 0; k < NST; k++)
			assert_true(c.s[k].sc.cap >= c.s[k].sc.want);
	}
	print_message("chain at 20/s, budget 8: %d, %d, %d workers\n",
		      c.s[0].target, c.s[1].target, c.s[2].target);
	assert_int_equal(c.s[0].target, 1);
	assert_true(c.s[1].target >= 3 && c.s[1].target <= 4);
	assert_int_equal(c.s[2].target, 1);
	/* It keeps up: what arrived in the last minute went through. */
	assert_true(c.done - done >= 20 * 60 - 40);
	assert_true(c.s[0].queue + c.s[1].queue < 20);
	chain_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(wants_that_fit_are_granted),
	    cmocka_unit_test(short_budget_follows_demand),
	    cmocka_unit_test(busy_workers_are_not_taken),
	    cmocka_unit_test(a_pool_with_work_gets_one),
	    cmocka_unit_test(what_is_left_lets_pools_keep_their_window),
	    cmocka_unit_test(middle_stage_five_times_slower_gets_most),
	    cmocka_unit_test(wants_that_fit_are_met_in_full),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
