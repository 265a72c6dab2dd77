/* progress.c - the progress line: rate, time left, outcomes, stages. */
#include "progress.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"

#define PROGRESS_MS 250
/* The rate is an exponential average over about this many seconds. */
#define RATE_WINDOW_S 5.0

struct hop_progress {
	struct hop_loop *loop;
	const struct hop_stats *stats;
	void (*refresh)(void *arg);
	hop_stats_stages_fn *stages;
	void *arg;
	uint64_t timer;
	struct hop_rate rate;
};

static void eta(char *buf, size_t n, double secs)
{
	long s = (long)(secs + 0.5);
	if (s >= 3600)
		snprintf(buf, n, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60,
			 s % 60);
	else
		snprintf(buf, n, "%ld:%02ld", s / 60, s % 60);
}

int64_t hop_progress_remaining(const struct hop_stats *s)
{
	int64_t finished = (int64_t)(s->done + s->dead);
	if (s->total >= 0)
		return s->total > finished ? s->total - finished : 0;
	return s->depth >= 0 ? s->depth + s->inflight : -1;
}

double hop_progress_eta(char *buf, size_t n, int64_t remaining, double rate)
{
	snprintf(buf, n, "--");
	if (remaining < 0 || (rate <= 0 && remaining > 0))
		return -1;
	double secs = remaining == 0 ? 0 : (double)remaining / rate;
	eta(buf, n, secs);
	return secs;
}

void hop_rate_init(struct hop_rate *r, int64_t now_ms)
{
	*r = (struct hop_rate){.last_ms = now_ms, .rate = -1};
}

double hop_rate_update(struct hop_rate *r, const struct hop_stats *s,
		       int64_t now_ms)
{
	uint64_t finished = s->done + s->dead;
	double dt = (double)(now_ms - r->last_ms) / 1000;
	if (dt > 0) {
		double inst = (double)(finished - r->last_finished) / dt;
		double age = (double)(now_ms - s->started_ms) / 1000;
		if (r->rate < 0 || age < RATE_WINDOW_S)
			/* Early on, the mean since the start is steadier. */
			r->rate = age > 0 ? (double)finished / age : inst;
		else
			r->rate +=
			    (inst - r->rate) * (1 - exp(-dt / RATE_WINDOW_S));
		r->last_ms = now_ms;
		r->last_finished = finished;
	}
	return r->rate;
}

/* Appends a segment for each stage (a sharder's shards summed: they are
 * side by side) to buf, which holds len of its n bytes. */
static void stage_segments(char *buf, size_t n, size_t len,
			   const struct hop_stats_stage *st, int nstages)
{
	for (int i = 0; i < nstages && len < n;) {
		uint64_t done = 0;
		int64_t waiting = 0;
		int busy = 0, live = 0, k = i;
		for (; k < nstages && k < i + st[i].shards; k++) {
			const struct hop_stats *s = st[k].stats;
			done += s->done;
			waiting = waiting < 0 || s->depth < 0
				      ? -1
				      : waiting + s->depth;
			busy += s->workers_busy;
			live += s->workers;
		}
		char w[32] = "?";
		if (waiting >= 0)
			snprintf(w, sizeof(w), "%lld", (long long)waiting);
		int wrote = snprintf(buf + len, n - len,
				     " | %s: %llu done, %s waiting, %d/%d busy",
				     st[i].name, (unsigned long long)done, w,
				     busy, live);
		if (wrote < 0)
			break;
		len += (size_t)wrote;
		i = k;
	}
}

void hop_progress_format(char *buf, size_t n, const struct hop_stats *s,
			 double rate, const struct hop_stats_stage *stages,
			 int nstages, int width)
{
	uint64_t finished = s->done + s->dead;
	char where[96], speed[32], left[48] = "";

	/* The most telling first: a narrow terminal cuts the tail. */
	if (s->total >= 0) {
		uint64_t total = (uint64_t)s->total;
		snprintf(where, sizeof(where), "%llu/%llu (%d%%)",
			 (unsigned long long)finished,
			 (unsigned long long)total,
			 total ? (int)(finished * 100 / total) : 100);
	} else if (s->depth >= 0) {
		snprintf(where, sizeof(where), "%llu finished | %lld waiting",
			 (unsigned long long)finished, (long long)s->depth);
	} else {
		snprintf(where, sizeof(where), "%llu finished",
			 (unsigned long long)finished);
	}
	if (rate >= 0)
		snprintf(speed, sizeof(speed), "%.1f/s", rate);
	else
		snprintf(speed, sizeof(speed), "--/s");
	int64_t remaining = hop_progress_remaining(s);
	if (remaining >= 0) {
		char t[32];
		hop_progress_eta(t, sizeof(t), remaining, rate);
		snprintf(left, sizeof(left), " | ETA %s", t);
	}
	snprintf(buf, n,
		 "hopper %s | %s%s | %d worker%s | %llu done, %llu dead, "
		 "%llu retried",
		 where, speed, left, s->workers, s->workers == 1 ? "" : "s",
		 (unsigned long long)s->done, (unsigned long long)s->dead,
		 (unsigned long long)s->retries);
	if (nstages > 1)
		stage_segments(buf, n, strlen(buf), stages, nstages);
	/* A wrapped line cannot be redrawn with a carriage return. */
	if (width > 1 && strlen(buf) >= (size_t)width)
		buf[width - 1] = '\0';
}

static int columns(void)
{
	struct winsize ws;
	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return 80;
}

static void tick(struct hop_loop *loop, void *arg)
{
	struct hop_progress *p = arg;
	char line[1024];
	const struct hop_stats_stage *stages = NULL;

	p->refresh(p->arg);
	int n = p->stages(p->arg, &stages);
	double rate = hop_rate_update(&p->rate, p->stats, hop_now_ms());
	hop_progress_format(line, sizeof(line), p->stats, rate, stages, n,
			    columns());
	hop_log_status(line);
	p->timer = hop_loop_after(loop, PROGRESS_MS, tick, p);
}

struct hop_progress *hop_progress_start(struct hop_loop *loop,
					const struct hop_stats *stats,
					void (*refresh)(void *arg),
					hop_stats_stages_fn *stages, void *arg)
{
	struct hop_progress *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	*p = (struct hop_progress){.loop = loop,
				   .stats = stats,
				   .refresh = refresh,
				   .stages = stages,
				   .arg = arg};
	hop_rate_init(&p->rate, hop_now_ms());
	p->timer = hop_loop_after(loop, PROGRESS_MS, tick, p);
	if (!p->timer) {
		free(p);
		return NULL;
	}
	return p;
}

void hop_progress_stop(struct hop_progress *p)
{
	if (!p)
		return;
	hop_loop_cancel(p->loop, p->timer);
	hop_log_status(NULL);
	free(p);
}
