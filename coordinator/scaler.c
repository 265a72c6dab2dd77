/* scaler.c - the autoscaler's decisions (see scaler.h). */
#include "scaler.h"

#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* How long throughput is smoothed over. */
#define TPUT_TAU_MS 2000
/* How long a ceiling found by saturation holds before a step above it is
 * tried again (the machine's load may have changed). */
#define CEILING_MS 120000
/* A step up must add at least this share of what its workers would add if
 * throughput grew in proportion, or it was waste. Beside K other CPU-bound
 * processes, workers past the cores still add K / (n + K) each, by taking
 * the cores' time from the other jobs: at a half, a pool on a busy 2-CPU
 * machine grew to 6 and 11 CPU-bound workers; at three quarters it holds
 * at 2 or 3 beside up to 9 such processes (tests/unit/test_scaler.c). */
#define GAIN_MIN 0.75
/* A level's throughput is compared with a later one's only this long. */
#define LEVEL_VALID_MS 60000

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static double ewma(double old, double x, int64_t dt_ms, int64_t tau_ms)
{
	return old + (1 - exp(-(double)dt_ms / (double)tau_ms)) * (x - old);
}

int hop_scaler_init(struct hop_scaler *s, const struct hop_scaler_config *cfg)
{
	if (cfg->max < 1 || cfg->min < 0 || cfg->min > cfg->max ||
	    !(cfg->utilization > 0 && cfg->utilization <= 1) ||
	    cfg->drain_ms <= 0 || cfg->window_ms < 0)
		return -EINVAL;
	memset(s, 0, sizeof(*s));
	s->cfg = *cfg;
	s->target = cfg->min;
	s->cap = cfg->max;
	s->limit = cfg->max;
	s->min0 = cfg->min;
	s->level_tput = calloc((size_t)cfg->max + 1, sizeof(double));
	s->level_at = calloc((size_t)cfg->max + 1, sizeof(int64_t));
	if (!s->level_tput || !s->level_at) {
		hop_scaler_free(s);
		return -ENOMEM;
	}
	return 0;
}

void hop_scaler_free(struct hop_scaler *s)
{
	free(s->level_tput);
	free(s->level_at);
	s->level_tput = NULL;
	s->level_at = NULL;
}

/* Time for newly started workers to get going, and for measuring a level:
 * a few service times, within sane bounds. */
static int64_t warm_ms(const struct hop_scaler *s)
{
	return clamp64((int64_t)(s->service * 2000), 1000, 5000);
}

static int64_t measure_ms(const struct hop_scaler *s)
{
	return clamp64((int64_t)(s->service * 10000), 1000, 10000);
}

static void set_target(struct hop_scaler *s, int64_t now, int n)
{
	if (n > s->target)
		s->ups++;
	else
		s->downs++;
	s->target = n;
	s->changed_ms = now;
	s->meas_ms = 0;
	s->meas_done = 0;
	s->level_done = false;
	s->suspect = false;
	s->low_since = 0;
}

/* Counts arrivals into one-second buckets and returns the median of the
 * last HOP_SCALER_RATE_SECONDS complete and current ones. */
static double arrival_rate(struct hop_scaler *s, int64_t now, int64_t n)
{
	enum { N = HOP_SCALER_RATE_SECONDS };
	int64_t sec = now / 1000;
	double v[N];

	for (int64_t k = s->arr_sec + 1; k <= sec && k <= s->arr_sec + N; k++)
		s->arr[k % N] = 0;
	s->arr_sec = sec;
	s->arr[sec % N] += n;
	for (int i = 0; i < N; i++)
		v[i] = (double)s->arr[i];
	/* Insertion sort of eight numbers. */
	for (int i = 1; i < N; i++)
		for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
			double t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return (v[N / 2 - 1] + v[N / 2]) / 2;
}

static int64_t slice_ms(const struct hop_scaler *s)
{
	int64_t ms = s->cfg.window_ms / HOP_SCALER_SLICES;
	return ms > 0 ? ms : 1;
}

/* Keeps the most demand asked for in each slice of the window. */
static void record_want(struct hop_scaler *s, int64_t now, int want)
{
	enum { N = HOP_SCALER_SLICES };
	int64_t k = now / slice_ms(s);

	for (int64_t j = s->want_slice + 1; j <= k && j <= s->want_slice + N;
	     j++)
		s->want_max[j % N] = 0;
	if (k != s->want_slice)
		s->want_max[k % N] = want;
	else if (want > s->want_max[k % N])
		s->want_max[k % N] = want;
	s->want_slice = k;
}

/* The most demand asked for within the window, at least min. */
static int window_max(const struct hop_scaler *s)
{
	int m = s->cfg.min;
	for (int i = 0; i < HOP_SCALER_SLICES; i++)
		if (s->want_max[i] > m)
			m = s->want_max[i];
	return m;
}

/* Measures the level's throughput while it is the bottleneck, and after a
 * step up compares it with the level the step came from. */
static void measure(struct hop_scaler *s, const struct hop_scaler_input *in,
		    int64_t dt, uint64_t dc)
{
	int n = s->target;
	/* Items wait and the workers are there: the pool is what limits.
	 * (A worker between two items is not busy at the instant of a tick,
	 * so busy is only checked loosely.) Ticks that do not qualify are
	 * left out of the measurement, not reset it. */
	bool saturated_pool =
	    n > 0 && in->workers == n && in->busy * 2 >= n &&
	    (in->waiting > 0 || (in->unknown && in->inflight >= n));

	if (!saturated_pool || in->now_ms - s->changed_ms < warm_ms(s))
		return;
	s->meas_ms += dt;
	s->meas_done += dc;
	if (s->meas_ms < measure_ms(s))
		return;
	double tput = (double)s->meas_done * 1000 / (double)s->meas_ms;
	s->level_tput[n] = tput;
	s->level_at[n] = in->now_ms;
	s->meas_ms = 0;
	s->meas_done = 0;
	s->level_done = true;

	int p = s->from;
	if (p <= 0 || p >= n || s->level_tput[p] <= 0 ||
	    in->now_ms - s->level_at[p] > LEVEL_VALID_MS) {
		s->from = 0;
		return;
	}
	double per = s->level_tput[p] / p;
	double extra = (tput - s->level_tput[p]) / per;
	if (extra >= GAIN_MIN * (n - p)) {
		s->from = 0;
		s->suspect = false;
		return;
	}
	/* One poor measurement may be the machine's other load: measure the
	 * level once more before believing it. */
	if (!s->suspect) {
		s->suspect = true;
		s->level_done = false;
		return;
	}
	s->from = 0;
	s->suspect = false;
	int ceiling = p + (extra > 0 ? (int)floor(extra + 0.5) : 0);
	if (ceiling < s->cfg.min)
		ceiling = s->cfg.min;
	s->ceiling = ceiling;
	s->ceiling_until = in->now_ms + CEILING_MS;
	snprintf(s->note, sizeof(s->note),
		 "saturated: %d workers gave %.1f items/s, %d gave %.1f: "
		 "holding at %d",
		 p, s->level_tput[p], n, tput, ceiling);
}

int hop_scaler_tick(struct hop_scaler *s, const struct hop_scaler_input *in)
{
	int64_t now = in->now_ms;
	int64_t waiting = in->waiting;
	int64_t seen = waiting + in->inflight + (int64_t)in->completed;

	s->why[0] = s->note[0] = '\0';
	if (!s->primed) {
		s->primed = true;
		s->last_ms = s->changed_ms = now;
		s->completed = in->completed;
		s->service_sum = in->service_seconds;
		s->seen = seen;
		s->arr_sec = now / 1000;
		s->want_slice = now / slice_ms(s);
		return s->target;
	}
	int64_t dt = now - s->last_ms;
	if (dt <= 0)
		return s->target;
	uint64_t dc = in->completed - s->completed;
	double ds = in->service_seconds - s->service_sum;
	s->last_ms = now;
	s->completed = in->completed;
	s->service_sum = in->service_seconds;

	/* Service time per item, weighted by how many finished. */
	if (dc > 0) {
		double per = ds / (double)dc;
		double w = s->service > 0 ? 1 - pow(0.85, (double)dc) : 1;
		s->service += w * (per - s->service);
	}
	s->throughput = ewma(s->throughput, (double)dc * 1000 / (double)dt, dt,
			     TPUT_TAU_MS);
	s->held = ewma(s->held, in->blocked ? 1 : 0, dt, TPUT_TAU_MS);
	int64_t arrived = seen - s->seen;
	s->seen = seen;
	s->arrivals = arrival_rate(s, now, arrived > 0 ? arrived : 0);
	if (s->ceiling && now >= s->ceiling_until)
		s->ceiling = 0;
	measure(s, in, dt, dc);

	/* What the demand asks for. Held back by the next stage, neither the
	 * backlog nor the arrivals can go faster than that one takes them:
	 * what counts then is keeping pace with what this stage finishes. */
	double need;
	int64_t work = waiting + in->inflight;
	double rate = (1 - s->held) * s->arrivals + s->held * s->throughput;
	if (s->service > 0)
		need = (1 - s->held) * (double)work * s->service * 1000 /
			   (double)s->cfg.drain_ms +
		       rate * s->service / s->cfg.utilization;
	else
		need = work > 0 ? (s->target > 1 ? s->target : 1) : 0;
	if (in->unknown && s->held < 0.5 && in->workers > 0 &&
	    in->busy >= in->workers && need < in->workers / s->cfg.utilization)
		need = in->workers / s->cfg.utilization;
	if (work > 0 && need < 1)
		need = 1;
	s->need = need;
	/* A tenth of a worker's demand is noise (the tail of a smoothed rate).
	 */
	int want = need >= s->cfg.max ? s->cfg.max : (int)ceil(need - 0.1);
	if (want < s->cfg.min)
		want = s->cfg.min;
	s->want = want;

	int before = s->target;
	char heldtxt[64] = "";
	if (s->held >= 0.05)
		snprintf(heldtxt, sizeof(heldtxt),
			 ", held back %.0f%% of the time by what follows",
			 s->held * 100);
	record_want(s, now, want);
	if (s->ceiling && s->target > s->ceiling) {
		/* More workers than help: back to the ceiling now, not after
		 * the window: this is waste, not a dip in demand. */
		set_target(s, now, want < s->ceiling ? want : s->ceiling);
	} else if (want > s->target) {
		s->low_since = 0;
		/* The next step waits for this level's measurement (and for
		 * its second when it looked poor), or, when the pool is not
		 * what limits (arrivals are), a few measuring periods. */
		bool settled =
		    !s->suspect &&
		    (s->level_done ||
		     now - s->changed_ms >=
			 warm_ms(s) + (s->from ? 4 : 2) * measure_ms(s));
		int step = s->target * 2 > s->target + 1 ? s->target * 2
							 : s->target + 1;
		int next = want < step ? want : step;
		if (s->ceiling && next > s->ceiling)
			next = s->ceiling > s->target ? s->ceiling : s->target;
		if (s->target < s->cfg.min)
			next = want;
		if (next > s->cap)
			next = s->cap;
		if (next > s->target &&
		    (settled || s->target == 0 || s->target < s->cfg.min)) {
			s->from = s->level_tput[s->target] > 0 &&
					  now - s->level_at[s->target] <=
					      LEVEL_VALID_MS
				      ? s->target
				      : 0;
			set_target(s, now, next);
		}
	} else if (want < s->target) {
		if (!s->low_since)
			s->low_since = now;
		int highest = window_max(s);
		if (now - s->low_since >= s->cfg.window_ms &&
		    highest < s->target) {
			set_target(s, now, highest);
			/* Still lower than the new target: no need to wait a
			 * whole window again for the next step. */
			s->low_since = now - s->cfg.window_ms;
		}
	} else {
		s->low_since = 0;
	}
	if (s->target != before)
		snprintf(s->why, sizeof(s->why),
			 "%d -> %d workers: %lld waiting, %lld in flight, "
			 "%.1f arriving/s, %.0f ms per item, %.1f done/s, "
			 "demand %.1f%s%s%s%s",
			 before, s->target, (long long)in->waiting,
			 (long long)in->inflight, s->arrivals,
			 s->service * 1000, s->throughput, need, heldtxt,
			 s->target == s->cap && want > s->cap
			     ? ", capped by the shared budget"
			     : "",
			 s->note[0] ? "; " : "", s->note);
	return s->target;
}

int hop_scaler_cap(struct hop_scaler *s, int64_t now_ms, int cap)
{
	if (cap < s->cfg.min)
		cap = s->cfg.min;
	if (cap > s->cfg.max)
		cap = s->cfg.max;
	s->cap = cap;
	s->why[0] = '\0';
	if (s->target > cap) {
		int before = s->target;
		set_target(s, now_ms, cap);
		snprintf(s->why, sizeof(s->why),
			 "%d -> %d workers: their share of the budget the "
			 "stages share (demand here %.1f)",
			 before, cap, s->need);
	}
	return s->target;
}

int hop_scaler_set_max(struct hop_scaler *s, int64_t now_ms, int max)
{
	if (max < 1)
		return -ERANGE;
	if (max > s->limit) {
		/* Above the max it started with: the level arrays grow, the
		 * new levels not measured yet. */
		double *t =
		    realloc(s->level_tput, (size_t)(max + 1) * sizeof(*t));
		if (!t)
			return -ENOMEM;
		s->level_tput = t;
		int64_t *a =
		    realloc(s->level_at, (size_t)(max + 1) * sizeof(*a));
		if (!a)
			return -ENOMEM;
		s->level_at = a;
		for (int i = s->limit + 1; i <= max; i++) {
			t[i] = 0;
			a[i] = 0;
		}
		s->limit = max;
	}
	bool capped = s->cap < s->cfg.max;
	s->cfg.max = max;
	s->cfg.min = s->min0 < max ? s->min0 : max;
	if (!capped || s->cap > max)
		s->cap = max;
	if (s->ceiling > max)
		s->ceiling = 0;
	s->why[0] = '\0';
	if (s->target > max) {
		int before = s->target;
		set_target(s, now_ms, max);
		snprintf(s->why, sizeof(s->why),
			 "%d -> %d workers: the maximum was set to %d", before,
			 max, max);
	}
	return 0;
}

/* A cgroup v2 "cpu.max" ("max 100000" or "QUOTA PERIOD"), or v1's quota
 * and period files: the CPUs the quota allows, rounded up; 0 for none. */
static int cgroup_cpus(void)
{
	long long quota = -1, period = 0;
	FILE *f = fopen("/sys/fs/cgroup/cpu.max", "r");

	if (f) {
		char q[32];
		if (fscanf(f, "%31s %lld", q, &period) == 2 &&
		    strcmp(q, "max") != 0)
			quota = atoll(q);
		fclose(f);
	} else if ((f = fopen("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "r"))) {
		if (fscanf(f, "%lld", &quota) != 1)
			quota = -1;
		fclose(f);
		f = fopen("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "r");
		if (f) {
			if (fscanf(f, "%lld", &period) != 1)
				period = 0;
			fclose(f);
		}
	}
	if (quota <= 0 || period <= 0)
		return 0;
	return (int)((quota + period - 1) / period);
}

int hop_cpus_available(void)
{
	cpu_set_t set;
	int n = sched_getaffinity(0, sizeof(set), &set) == 0
		    ? CPU_COUNT(&set)
		    : (int)sysconf(_SC_NPROCESSORS_ONLN);
	int q = cgroup_cpus();
	if (q > 0 && q < n)
		n = q;
	return n > 0 ? n : 1;
}
