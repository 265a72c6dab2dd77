/* stats.c - the run's counters: the duration histogram and recent errors. */
#include "stats.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

const double hop_stats_bounds[HOP_STATS_BUCKETS] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
};

void hop_stats_duration(struct hop_stats *s, double seconds)
{
	for (int i = 0; i < HOP_STATS_BUCKETS; i++)
		if (seconds <= hop_stats_bounds[i])
			s->duration_le[i]++;
	s->duration_count++;
	s->duration_sum += seconds;
}

void hop_stats_error(struct hop_stats *s, const char *fmt, ...)
{
	struct timespec ts;
	unsigned k = s->errors_next++ % HOP_STATS_ERRORS;
	va_list ap;

	clock_gettime(CLOCK_REALTIME, &ts);
	s->errors[k].at_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	va_start(ap, fmt);
	vsnprintf(s->errors[k].text, sizeof(s->errors[k].text), fmt, ap);
	va_end(ap);
}

void hop_stats_sum_pools(struct hop_stats *to,
			 const struct hop_stats *const *from, int n)
{
	to->worker_starts = to->worker_restarts = to->timeouts = 0;
	to->duration_count = 0;
	to->duration_sum = 0;
	memset(to->duration_le, 0, sizeof(to->duration_le));
	for (int i = 0; i < n; i++) {
		const struct hop_stats *s = from[i];
		to->worker_starts += s->worker_starts;
		to->worker_restarts += s->worker_restarts;
		to->timeouts += s->timeouts;
		to->duration_count += s->duration_count;
		to->duration_sum += s->duration_sum;
		for (int b = 0; b < HOP_STATS_BUCKETS; b++)
			to->duration_le[b] += s->duration_le[b];
	}
}
