/* console.h - the web console's state and answers, served by http.c.
 *
 * What the page at / reads and does: the run's stages as a graph with
 * their gauges, each worker's item, depth and throughput over the last
 * minutes (a ring sampled every second on the run's loop), the recent
 * failed attempts, the run's configuration, and a source's dead letters a
 * page at a time. The actions: retry or discard a dead letter (the same
 * hop_dead_apply as hopper dead), pause or resume a stage, set its most
 * workers.
 *
 * Dead letters live in a folder, a table or a topic: reading them may
 * take long, and a network place may block. So those jobs run one after
 * the other on a thread of the console's own, each on a second instance
 * of the source made from the run's options and never opened for a run
 * (the dead_* operations' contract), and come back to the loop through
 * an eventfd; the loop never waits for them, and /healthz answers
 * meanwhile. Nothing else runs off the loop.
 */
#ifndef HOP_CONSOLE_H
#define HOP_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>

#include "dead.h"
#include "item.h"

struct hop_loop;
struct hop_http_view;
struct hop_console;
struct hop_console_job;

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

/* Stops the thread (the job under way finishes; those waiting are
 * answered 503), hands every job not yet handed back to its callback, and
 * frees the console. NULL is ignored. */
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

/* A dead-letter job: list a page, retry or discard. */
enum hop_console_job_kind { HOP_JOB_LIST, HOP_JOB_RETRY, HOP_JOB_DISCARD };

/* Called on the loop once the job is done, with the arg given. */
typedef void (*hop_console_done_fn)(void *arg);

/* Queues a job on the source named source (NULL: the first) for the
 * dead letter id (retry, discard) or the page of limit from offset
 * (list). Returns the job, whose done is called once it is over; or NULL
 * with *status and *body (malloc'd JSON) set when it is refused at once:
 * no such source, no dead letters there, or not while the run goes on. */
struct hop_console_job *hop_console_dead(struct hop_console *k,
					 enum hop_console_job_kind kind,
					 const char *source, const char *id,
					 size_t offset, size_t limit,
					 hop_console_done_fn done, void *arg,
					 unsigned *status, char **body);

/* A finished job's answer: its status, and its body (taken over by the
 * caller). */
unsigned hop_console_job_answer(struct hop_console_job *job, char **body);

/* Frees a job that is done (after its done callback). NULL is ignored. */
void hop_console_job_free(struct hop_console_job *job);

#endif
