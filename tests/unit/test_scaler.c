/* Unit tests for scaler.c on a fake clock: a simulated queue and pool, with
 * arrivals that step, burst, ramp and saw, service times that change, and
 * workers that are CPU-bound (sharing a few cores) or I/O-bound.
 *
 * The simulated pool behaves as the real one does: a worker takes
 * START_MS to start, takes one item at a time, and a lower target retires
 * idle workers only (busy ones when they finish their item).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/scaler.h"

#define STEP_MS 10
#define TICK_MS 250
#define START_MS 100
#define MAXW 64

enum { DOWN, STARTING, UP };

struct sim {
	struct hop_scaler sc;
	int64_t now;
	int cores; /* 0: I/O-bound, items take service_ms of wall time */
	double service_ms; /* the work in one item */
	double (*rate)(int64_t now);
	double acc;
	int64_t stall_from, stall_to; /* the machine is busy elsewhere */
	int (*others)(int64_t now);   /* other jobs' CPU-bound processes */
	struct {
		int state;
		int64_t up_at;
		bool busy;
		double left;
		int64_t began;
	} w[MAXW];
	int64_t waiting;
	uint64_t completed;
	double service_sum;
	int target;
	int max_target;
	int64_t last_change;
	int turns; /* changes of direction: up then down, or down then up */
	int dir;
};

static int count(const struct sim *s, int state, bool busy_only)
{
	int n = 0;
	for (int i = 0; i < MAXW; i++)
		if (s->w[i].state == state && (!busy_only || s->w[i].busy))
			n++;
	return n;
}

static int live(const struct sim *s)
{
	return count(s, STARTING, false) + count(s, UP, false);
}

/* Starts or retires workers toward the target; only idle ones retire. */
static void apply(struct sim *s)
{
	for (int i = 0; i < MAXW && live(s) < s->target; i++)
		if (s->w[i].state == DOWN) {
			s->w[i].state = STARTING;
			s->w[i].up_at = s->now + START_MS;
		}
	for (int i = 0; i < MAXW && live(s) > s->target; i++)
		if (s->w[i].state == STARTING ||
		    (s->w[i].state == UP && !s->w[i].busy))
			s->w[i].state = DOWN;
}

static void sim_init(struct sim *s, int min, int max, int cores,
		     double service_ms, double (*rate)(int64_t))
{
	struct hop_scaler_config cfg = {.min = min,
					.max = max,
					.window_ms = 30000,
					.drain_ms = 10000,
					.utilization = 0.8};
	memset(s, 0, sizeof(*s));
	assert_int_equal(hop_scaler_init(&s->sc, &cfg), 0);
	s->cores = cores;
	s->service_ms = service_ms;
	s->rate = rate;
	s->target = min;
	apply(s);
}

static void dispatch(struct sim *s, int64_t at)
{
	for (int i = 0; i < MAXW; i++)
		if (s->w[i].state == UP && !s->w[i].busy && s->waiting > 0) {
			s->waiting--;
			s->w[i].busy = true;
			s->w[i].left = s->service_ms;
			s->w[i].began = at;
		}
}

/* Runs the simulation until `until` ms. */
static void sim_run(struct sim *s, int64_t until)
{
	for (; s->now < until; s->now += STEP_MS) {
		s->acc += s->rate(s->now) * STEP_MS / 1000;
		while (s->acc >= 1) {
			s->waiting++;
			s->acc -= 1;
		}
		for (int i = 0; i < MAXW; i++)
			if (s->w[i].state == STARTING &&
			    s->now >= s->w[i].up_at)
				s->w[i].state = UP;
		dispatch(s, s->now);
		/* The cores are shared fairly among every process that wants
		 * one, this pool's and other jobs'. */
		int busy = count(s, UP, true);
		int runnable = busy + (s->others ? s->others(s->now) : 0);
		double speed = s->cores && runnable > s->cores
				   ? (double)s->cores / runnable
				   : 1;
		if (s->now >= s->stall_from && s->now < s->stall_to)
			speed *= 0.3;
		for (int i = 0; i < MAXW; i++) {
			if (!s->w[i].busy)
				continue;
			s->w[i].left -= STEP_MS * speed;
			if (s->w[i].left <= 0) {
				s->w[i].busy = false;
				s->completed++;
				s->service_sum +=
				    (double)(s->now + STEP_MS - s->w[i].began) /
				    1000;
			}
		}
		/* A worker that answered gets the next item at once. */
		dispatch(s, s->now + STEP_MS);
		if (s->now % TICK_MS == 0) {
			struct hop_scaler_input in = {
			    .now_ms = s->now,
			    .waiting = s->waiting,
			    .inflight = count(s, UP, true),
			    .workers = live(s),
			    .busy = count(s, UP, true),
			    .completed = s->completed,
			    .service_seconds = s->service_sum,
			};
			int t = hop_scaler_tick(&s->sc, &in);
			/* The bounds are never crossed. */
			assert_true(t >= s->sc.cfg.min && t <= s->sc.cfg.max);
			if (t != s->target) {
				int dir = t > s->target ? 1 : -1;
				if (s->dir && dir != s->dir)
					s->turns++;
				s->dir = dir;
				s->last_change = s->now;
				if (getenv("SCALER_DEBUG"))
					print_message("%6lld %s\n",
						      (long long)s->now,
						      s->sc.why);
			}
			s->target = t;
			if (t > s->max_target)
				s->max_target = t;
		}
		apply(s);
	}
}

static bool drained(const struct sim *s)
{
	return s->waiting == 0 && count(s, UP, true) == 0;
}

/* A burst of 500 items of 50 ms into a quiet queue. */
static int64_t burst_at;
static double burst_rate(int64_t now)
{
	return now == burst_at ? 500.0 * 1000 / STEP_MS : 0;
}

static void burst_scales_up_within_a_second_then_back_after_window(void **st)
{
	struct sim s;
	burst_at = 10000;
	sim_init(&s, 1, 16, 0, 50, burst_rate);
	sim_run(&s, burst_at);
	assert_int_equal(s.target, 1);
	assert_int_equal(s.sc.ups + s.sc.downs, 0);

	/* Up within about a second of the depth rising. */
	while (s.target == 1 && s.now < burst_at + 5000)
		sim_run(&s, s.now + STEP_MS);
	assert_true(s.target > 1);
	assert_true(s.now - burst_at <= 1000);

	/* Drained well within the 10 s drain target plus the ramp. */
	while (!drained(&s) && s.now < burst_at + 30000)
		sim_run(&s, s.now + STEP_MS);
	int64_t drain = s.now - burst_at;
	print_message("burst: %d workers at most, drained in %lld ms\n",
		      s.max_target, (long long)drain);
	assert_true(drained(&s));
	/* 500 x 50 ms drained within the 10 s target (plus the ramp up):
	 * that takes 3 workers. */
	assert_true(drain <= 11000);
	assert_true(s.max_target >= 3);

	/* Down only after the 30 s window of lower demand, then to min. */
	sim_run(&s, burst_at + 30000);
	assert_int_equal(s.sc.downs, 0);
	sim_run(&s, burst_at + 45000);
	assert_int_equal(s.target, 1);
	assert_true(s.sc.downs >= 1 && s.sc.downs <= 3);
	assert_true(s.sc.ups <= 4);
	hop_scaler_free(&s.sc);
}

/* A steady 40 items/s of 50 ms: 2 workers' worth at full use, 2.5 at 80%. */
static double steady_rate(int64_t now)
{
	return 40;
}

static void step_settles_without_flapping(void **st)
{
	struct sim s;
	sim_init(&s, 1, 16, 0, 50, steady_rate);
	sim_run(&s, 60000);
	uint64_t events = s.sc.ups + s.sc.downs;
	int settled = s.target;
	sim_run(&s, 180000);
	print_message("step: %d workers, %llu events by 60 s\n", s.target,
		      (unsigned long long)events);
	assert_true(settled >= 3 && settled <= 4);
	assert_int_equal(s.target, settled);
	assert_int_equal(s.sc.ups + s.sc.downs, events); /* no flapping */
	assert_true(events <= 4);
	assert_true(s.waiting < 20); /* keeps up */
	hop_scaler_free(&s.sc);
}

/* Arrivals ramp from 0 to 100/s over 60 s, then hold. */
static double ramp_rate(int64_t now)
{
	return now < 60000 ? 100.0 * (double)now / 60000 : 100;
}

static void ramp_only_goes_up(void **st)
{
	struct sim s;
	sim_init(&s, 1, 16, 0, 50, ramp_rate);
	sim_run(&s, 90000);
	print_message("ramp: %d workers, %llu ups\n", s.target,
		      (unsigned long long)s.sc.ups);
	assert_int_equal(s.sc.downs, 0);
	/* 100/s x 50 ms at 80% is 6.25 workers. */
	assert_true(s.target >= 7 && s.target <= 9);
	assert_true(s.waiting < 50);
	hop_scaler_free(&s.sc);
}

/* 10 s at 80/s, 10 s at 10/s, over and over: the dips are shorter than
 * the window, so the pool stays sized for the peaks. */
static double saw_rate(int64_t now)
{
	return (now / 10000) % 2 == 0 ? 80 : 10;
}

static void sawtooth_does_not_flap(void **st)
{
	struct sim s;
	sim_init(&s, 1, 16, 0, 50, saw_rate);
	sim_run(&s, 120000);
	print_message("sawtooth: %d workers, %llu ups, %llu downs\n", s.target,
		      (unsigned long long)s.sc.ups,
		      (unsigned long long)s.sc.downs);
	assert_true(s.turns <= 1); /* no up-down-up */
	assert_true(s.sc.ups <= 4 && s.sc.downs <= 4);
	assert_true(s.target >= 4);
	hop_scaler_free(&s.sc);
}

/* 30/s whose service time grows from 20 ms to 100 ms at 60 s. */
static double thirty(int64_t now)
{
	return 30;
}

static void service_time_change_is_followed(void **st)
{
	struct sim s;
	sim_init(&s, 1, 16, 0, 20, thirty);
	sim_run(&s, 60000);
	int before = s.target;
	s.service_ms = 100;
	sim_run(&s, 120000);
	print_message("service 20 -> 100 ms: %d -> %d workers\n", before,
		      s.target);
	assert_true(before <= 2);
	/* 30/s x 100 ms at 80% is 3.75 workers. */
	assert_true(s.target >= 4 && s.target <= 6);
	assert_true(s.waiting < 30);
	hop_scaler_free(&s.sc);
}

/* A deep backlog of CPU-bound items on 2 cores: more than 2 workers only
 * share the cores, so the scaler holds near 2 whatever max allows. */
static double none(int64_t now)
{
	return 0;
}

static void cpu_bound_settles_near_the_cores(void **st)
{
	struct sim s;
	sim_init(&s, 1, 16, 2, 50, none);
	s.waiting = 20000;
	sim_run(&s, 60000);
	print_message("cpu-bound: %d workers (max %d seen), %llu ups, %llu "
		      "downs\n",
		      s.target, s.max_target, (unsigned long long)s.sc.ups,
		      (unsigned long long)s.sc.downs);
	assert_true(s.target >= 2 && s.target <= 3);
	assert_true(s.max_target <= 4);
	assert_true(s.sc.ups + s.sc.downs <= 4);
	hop_scaler_free(&s.sc);
}

/* Other jobs on the machine run CPU-bound processes too, and the cores are
 * shared per process: a step from p to n workers beside K such processes
 * adds K / (n + K) of a worker each, taken from the other jobs. That is
 * contention, not capacity, and the pool stays near the cores. When the
 * other load comes and goes, a level measured while it was there and the
 * next one measured while it was not can look like a gain: the pool may
 * then hold one step higher, but it does not grow past it. */
static int other_jobs;
static int64_t other_period; /* 0: the other load holds */
static int others(int64_t now)
{
	return other_period && (now / other_period) % 2 ? 0 : other_jobs;
}

static void cpu_bound_stays_near_the_cores_beside_other_jobs(void **st)
{
	static const struct {
		int jobs;
		int64_t period;
	} loads[] = {{2, 0},	{4, 0},	   {6, 0},   {8, 0},	{9, 0},
		     {2, 1500}, {5, 1500}, {8, 700}, {8, 5000}, {12, 3000}};

	for (size_t i = 0; i < sizeof(loads) / sizeof(loads[0]); i++) {
		struct sim s;
		other_jobs = loads[i].jobs;
		other_period = loads[i].period;
		sim_init(&s, 1, 16, 2, 50, none);
		s.others = others;
		s.waiting = 200000;
		sim_run(&s, 120000);
		print_message("cpu-bound beside %d other processes, %s: %d "
			      "workers, %d at most\n",
			      other_jobs,
			      other_period ? "coming and going" : "held",
			      s.target, s.max_target);
		if (other_period) {
			assert_true(s.target <= 4 && s.max_target <= 8);
		} else {
			assert_true(s.target <= 3 && s.max_target <= 4);
		}
		assert_true(s.target >= 1);
		assert_true(s.sc.ups + s.sc.downs <= 4);
		hop_scaler_free(&s.sc);
	}
}

static void io_bound_goes_to_max(void **st)
{
	struct sim s;
	sim_init(&s, 1, 16, 0, 50, none);
	s.waiting = 20000;
	sim_run(&s, 30000);
	print_message("io-bound: %d workers, %llu ups\n", s.target,
		      (unsigned long long)s.sc.ups);
	assert_int_equal(s.target, 16);
	assert_int_equal(s.sc.downs, 0);
	hop_scaler_free(&s.sc);
}

/* The machine's other load slows every worker for a while, just as a step
 * up is being measured: that step looks like waste once, not twice, so
 * no ceiling is set. */
static void one_poor_measurement_sets_no_ceiling(void **st)
{
	struct sim s;
	sim_init(&s, 1, 16, 0, 50, none);
	s.waiting = 20000;
	s.stall_from = 4500;
	s.stall_to = 5500;
	sim_run(&s, 40000);
	print_message("io-bound, stalled at 4.5-5.5 s: %d workers, %llu ups, "
		      "%llu downs\n",
		      s.target, (unsigned long long)s.sc.ups,
		      (unsigned long long)s.sc.downs);
	assert_int_equal(s.target, 16);
	assert_int_equal(s.sc.downs, 0);
	hop_scaler_free(&s.sc);
}

/* min 0: nothing runs while idle; the first item starts a worker. */
static double one_at_5s(int64_t now)
{
	return now == 5000 ? 1000.0 / STEP_MS : 0;
}

static void scales_to_zero_and_back(void **st)
{
	struct sim s;
	sim_init(&s, 0, 4, 0, 50, one_at_5s);
	sim_run(&s, 5000);
	assert_int_equal(s.target, 0);
	assert_int_equal(live(&s), 0);
	sim_run(&s, 5000 + TICK_MS + STEP_MS);
	assert_int_equal(s.target, 1);
	sim_run(&s, 6000);
	assert_int_equal(s.completed, 1);
	sim_run(&s, 5000 + 29000);
	assert_int_equal(s.target, 1);
	sim_run(&s, 5000 + 32000);
	assert_int_equal(s.target, 0);
	assert_int_equal(live(&s), 0);
	hop_scaler_free(&s.sc);
}

static void bad_bounds_are_refused(void **st)
{
	struct hop_scaler s;
	struct hop_scaler_config c = {.min = 3,
				      .max = 2,
				      .window_ms = 1,
				      .drain_ms = 1,
				      .utilization = 0.8};
	assert_int_equal(hop_scaler_init(&s, &c), -EINVAL);
	c.min = 0;
	c.max = 0;
	assert_int_equal(hop_scaler_init(&s, &c), -EINVAL);
	c.max = 2;
	c.utilization = 1.5;
	assert_int_equal(hop_scaler_init(&s, &c), -EINVAL);
	assert_true(hop_cpus_available() >= 1);
}

/* A most set while the run goes on: the target drops to it at once,
 * demand never lifts it above, and it may go back up, past the first max
 * too. */
static void max_set_mid_run_bounds_the_target(void **st)
{
	struct sim s;
	sim_init(&s, 2, 16, 0, 50, none);
	s.waiting = 100000;
	sim_run(&s, 20000);
	assert_int_equal(s.target, 16);
	assert_int_equal(hop_scaler_set_max(&s.sc, s.now, 3), 0);
	assert_int_equal(s.sc.target, 3);
	assert_non_null(strstr(s.sc.why, "maximum was set to 3"));
	s.target = 3;
	s.max_target = 0;
	sim_run(&s, 30000);
	assert_int_equal(s.max_target, 3);
	/* Below the min, the min follows it down; back up, it returns. */
	assert_int_equal(hop_scaler_set_max(&s.sc, s.now, 1), 0);
	assert_int_equal(s.sc.cfg.min, 1);
	assert_int_equal(hop_scaler_set_max(&s.sc, s.now, 0), -ERANGE);
	/* Above the first max: the levels grow with it. */
	assert_int_equal(hop_scaler_set_max(&s.sc, s.now, 24), 0);
	assert_int_equal(s.sc.limit, 24);
	assert_int_equal(s.sc.level_at[24], 0);
	assert_int_equal(hop_scaler_set_max(&s.sc, s.now, 16), 0);
	assert_int_equal(s.sc.cfg.min, 2);
	sim_run(&s, 50000);
	assert_int_equal(s.target, 16);
	hop_scaler_free(&s.sc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
		burst_scales_up_within_a_second_then_back_after_window),
	    cmocka_unit_test(step_settles_without_flapping),
	    cmocka_unit_test(ramp_only_goes_up),
	    cmocka_unit_test(sawtooth_does_not_flap),
	    cmocka_unit_test(service_time_change_is_followed),
	    cmocka_unit_test(cpu_bound_settles_near_the_cores),
	    cmocka_unit_test(cpu_bound_stays_near_the_cores_beside_other_jobs),
	    cmocka_unit_test(io_bound_goes_to_max),
	    cmocka_unit_test(one_poor_measurement_sets_no_ceiling),
	    cmocka_unit_test(scales_to_zero_and_back),
	    cmocka_unit_test(bad_bounds_are_refused),
	    cmocka_unit_test(max_set_mid_run_bounds_the_target),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
