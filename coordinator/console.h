/* console.h - the web console's state and answers, served by http.c.
 *
 * What the page at / reads and does: the run's stages as a graph with
 * their gauges, each worker's item, depth and throughput over the last
 * minutes (a ring sampled every second on the run's loop), the recent
 * failed attempts, the run's configuration, and a source's dead letters a
 * page at a time (deadq.h). The actions here: pause or resume a stage,
 * set its most workers.
 *
 * The dead letters are read and acted on off the loop (deadq.h);
 * everything here runs on the loop.
 */
#ifndef HOP_CONSOLE_H
#define HOP_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "item.h"

struct hop_loop;
struct hop_http_view;
struct hop_console;

/* A file of the page, built into the binary (console/embed.sh). */
struct hop_console_asset {
	const char *path; /* "/console.js" */
	const char *type; /* its Content-Type */
	const unsigned char *data;
	size_t len;
};
/* Ends with an entry whose path is NULL. */
extern const struct hop_console_asset hop_console_assets[];

/* The asset served at path, or NULL. */
const struct hop_console_asset *hop_console_asset(const char *path);

/* Makes the console for the run that view shows, and starts sampling.
 * token_file, when not NULL, holds the admin token that actions need
 * (surrounding white space ignored). Returns the console, or NULL with a
 * message naming the file in err. */
struct hop_console *hop_console_new(struct hop_loop *loop,
				    const struct hop_http_view *view,
				    const char *token_file, char *err,
				    size_t errlen);

/* Stops sampling and frees the console. NULL is ignored. */
void hop_console_free(struct hop_console *k);

/* True when an admin token was given, so that actions may be allowed. */
bool hop_console_admin(const struct hop_console *k);

/* True when given is the admin token. Compares in constant time. */
bool hop_console_token_ok(const struct hop_console *k, const char *given);

/* The answers, as JSON text (malloc'd; NULL when memory ran out):
 * everything the page shows live; the sampled history; the recent failed
 * attempts. */
char *hop_console_state(struct hop_console *k);
char *hop_console_history(struct hop_console *k);
char *hop_console_failures(struct hop_console *k);

/* Remembers a failed attempt of it in stage for the page: final when it
 * will not be tried again. Copies what it keeps. */
void hop_console_failure(struct hop_console *k, const char *stage,
			 const struct hop_item *it, bool final);

/* Pauses ("pause"), resumes ("resume") or sets the most workers ("max",
 * with value) of the stage called name. Returns an HTTP status, and sets
 * *body to a JSON object saying what was done or why not (malloc'd). */
unsigned hop_console_stage_action(struct hop_console *k, const char *action,
				  const char *name, const char *value,
				  char **body);

/* The first max bytes of s (len bytes), not cutting a UTF-8 character,
 * as a JSON string (null for NULL). */
json_t *hop_console_text(const char *s, size_t len, size_t max);

/* {"key": "formatted text"} as JSON text (malloc'd). */
char *hop_console_message(const char *key, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* o (taken) as compact JSON text (malloc'd); NULL for NULL. */
char *hop_console_dump(json_t *o);

#endif
