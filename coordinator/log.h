/* log.h - one line per event on stderr, as text or as JSON.
 *
 * Every line carries a level and a message; the worker index and item id are
 * added when the event concerns them, so that a person reading the log can
 * tell which worker did what to which item.
 */
#ifndef HOP_LOG_H
#define HOP_LOG_H

#include <stdbool.h>

enum hop_log_level { HOP_DEBUG, HOP_INFO, HOP_WARN, HOP_ERROR };

/* Selects the output format (json or text) and the lowest level written. */
void hop_log_setup(bool json, enum hop_log_level min);

/* Writes one event. worker < 0 and item == NULL leave those fields out. */
void hop_log_ev(enum hop_log_level lvl, int worker, const char *item,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define hop_log(lvl, ...) hop_log_ev((lvl), -1, NULL, __VA_ARGS__)

/* Keeps line (one terminal line, the progress line) at the bottom of
 * stderr: each log line clears it, is written, and draws it again. NULL
 * clears it for good. Safe from any thread, as logging is. */
void hop_log_status(const char *line);

/* Parses "debug", "info", "warn" or "error"; returns -1 for anything else. */
int hop_log_level_parse(const char *s);

#endif
