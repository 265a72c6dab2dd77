/* log.c - event lines on stderr. */
#include "log.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static bool log_json;
static enum hop_log_level log_min = HOP_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* The status line under the log, and the lock that keeps log lines and its
 * redraws from interleaving (sources may log from their own threads). */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char status_line[512];

/* Writes one line to stderr, above the status line when there is one. */
static void emit(const char *line)
{
	pthread_mutex_lock(&log_mu);
	if (status_line[0])
		fprintf(stderr, "\r\033[K%s\n%s", line, status_line);
	else
		fprintf(stderr, "%s\n", line);
	pthread_mutex_unlock(&log_mu);
}

void hop_log_status(const char *line)
{
	pthread_mutex_lock(&log_mu);
	if (line)
		fprintf(stderr, "\r%s\033[K", line);
	else if (status_line[0])
		fputs("\r\033[K", stderr);
	snprintf(status_line, sizeof(status_line), "%s", line ? line : "");
	pthread_mutex_unlock(&log_mu);
}

void hop_log_setup(bool json, enum hop_log_level min)
{
	log_json = json;
	log_min = min;
}

int hop_log_level_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	return -1;
}

static void log_json_line(enum hop_log_level lvl, const struct timespec *ts,
			  int worker, const char *item, const char *msg)
{
	char when[64];
	struct tm tm;

	gmtime_r(&ts->tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + strlen(when), sizeof(when) - strlen(when), ".%03ldZ",
		 ts->tv_nsec / 1000000);

	json_t *o = json_object();
	json_object_set_new(o, "ts", json_string(when));
	json_object_set_new(o, "level", json_string(level_names[lvl]));
	if (worker >= 0)
		json_object_set_new(o, "worker", json_integer(worker));
	if (item)
		json_object_set_new(o, "item", json_string(item));
	json_object_set_new(o, "msg", json_string(msg));
	char *line = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
	if (line) {
		emit(line);
		free(line);
	}
	json_decref(o);
}

void hop_log_ev(enum hop_log_level lvl, int worker, const char *item,
		const char *fmt, ...)
{
	char msg[2048];
	struct timespec ts;
	va_list ap;

	if (lvl < log_min)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	clock_gettime(CLOCK_REALTIME, &ts);

	if (log_json) {
		log_json_line(lvl, &ts, worker, item, msg);
		return;
	}
	char when[32];
	struct tm tm;
	localtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%H:%M:%S", &tm);

	char where[160] = "";
	if (worker >= 0 && item)
		snprintf(where, sizeof(where), " worker=%d item=%.100s", worker,
			 item);
	else if (worker >= 0)
		snprintf(where, sizeof(where), " worker=%d", worker);
	else if (item)
		snprintf(where, sizeof(where), " item=%.100s", item);
	char line[2400];
	snprintf(line, sizeof(line), "%s.%03ld %-5s%s %s", when,
		 ts.tv_nsec / 1000000, level_names[lvl], where, msg);
	emit(line);
}
