/* stats.c - the run's counters: the duration histogram and recent errors. */
#include "stats.h"

#include <stdarg.h>
#include <stdio.h>
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
