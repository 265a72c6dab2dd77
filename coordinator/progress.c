/* progress.c - the progress line: rate, time left, outcomes. */
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
	void *arg;
	uint64_t timer;
	int64_t last_ms;
	uint64_t last_finished;
	double rate; /* items/s, < 0 until measured */
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

void hop_progress_format(char *buf, size_t n, const struct hop_stats *s,
			 double rate, int width)
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
	int64_t remaining = s->total >= 0   ? s->total - (int64_t)finished
			    : s->depth >= 0 ? s->depth + s->inflight
					    : -1;
	if (remaining >= 0) {
		char t[32] = "--";
		if (rate > 0)
			eta(t, sizeof(t), (double)remaining / rate);
		else if (remaining == 0)
			eta(t, sizeof(t), 0);
		snprintf(left, sizeof(left), " | ETA %s", t);
	}
	snprintf(buf, n,
		 "hopper %s | %s%s | %d worker%s | %llu done, %llu dead, "
		 "%llu retried",
		 where, speed, left, s->workers, s->workers == 1 ? "" : "s",
		 (unsigned long long)s->done, (unsigned long long)s->dead,
		 (unsigned long long)s->retries);
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
	const struct hop_stats *s = p->stats;
	int64_t now = hop_now_ms();
	char line[512];

	p->refresh(p->arg);
	uint64_t finished = s->done + s->dead;
	double dt = (double)(now - p->last_ms) / 1000;
	if (dt > 0) {
		double inst = (double)(finished - p->last_finished) / dt;
		double age = (double)(now - s->started_ms) / 1000;
		if (p->rate < 0 || age < RATE_WINDOW_S)
			/* Early on, the mean since the start is steadier. */
			p->rate = age > 0 ? (double)finished / age : inst;
		else
			p->rate +=
			    (inst - p->rate) * (1 - exp(-dt / RATE_WINDOW_S));
	}
	p->last_ms = now;
	p->last_finished = finished;
	hop_progress_format(line, sizeof(line), s, p->rate, columns());
	hop_log_status(line);
	p->timer = hop_loop_after(loop, PROGRESS_MS, tick, p);
}

struct hop_progress *hop_progress_start(struct hop_loop *loop,
					const struct hop_stats *stats,
					void (*refresh)(void *arg), void *arg)
{
	struct hop_progress *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	*p = (struct hop_progress){.loop = loop,
				   .stats = stats,
				   .refresh = refresh,
				   .arg = arg,
				   .last_ms = hop_now_ms(),
				   .rate = -1};
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
