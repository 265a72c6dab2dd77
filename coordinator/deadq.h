/* deadq.h - the console's dead-letter jobs: list a page, retry, discard.
 *
 * Dead letters live in a folder, a table or a topic: reading them may
 * take long, and a network place may block. So these jobs run one after
 * the other on a thread of their own, each on a second instance of the
 * source made from the run's options and never opened for a run (the
 * dead_* operations' contract), and come back to the loop through an
 * eventfd; the loop never waits for them, and /healthz answers meanwhile.
 * Retry and discard are hop_dead_apply, as for hopper dead.
 */
#ifndef HOP_DEADQ_H
#define HOP_DEADQ_H

#include <stddef.h>

#include "config.h"
#include "dead.h"
#include "stats.h"

struct hop_loop;
struct hop_deadq;
struct hop_deadq_job;

enum hop_deadq_kind { HOP_JOB_LIST, HOP_JOB_RETRY, HOP_JOB_DISCARD };

/* Called on the loop once the job is done, with the arg given. */
typedef void (*hop_deadq_done_fn)(void *arg);

/* Makes the queue and its thread for the sources of cfg, which a run on
 * loop serves; stats is the run's, whose total grows when a finite run
 * gets a retried item back. Returns it, or NULL with a message in err. */
struct hop_deadq *hop_deadq_new(struct hop_loop *loop,
				const struct hop_config *cfg,
				struct hop_stats *stats, char *err,
				size_t errlen);

/* Stops the thread (the job under way finishes; those waiting are
 * answered 503), hands every job not yet handed back to its callback, and
 * frees the queue. The run's sources may be closed by then. NULL is
 * ignored. */
void hop_deadq_free(struct hop_deadq *q);

/* Queues a job on the source named source (NULL: the first) for the
 * dead letter id (retry, discard) or the page of limit from offset
 * (list). Returns the job, whose done is called once it is over; or NULL
 * with *status and *body (malloc'd JSON) set when it is refused at once:
 * no such source, no dead letters there, or not while the run goes on. */
struct hop_deadq_job *hop_deadq_submit(struct hop_deadq *q,
				       enum hop_deadq_kind kind,
				       const char *source, const char *id,
				       size_t offset, size_t limit,
				       hop_deadq_done_fn done, void *arg,
				       unsigned *status, char **body);

/* A finished job's answer: its status, and its body (taken over by the
 * caller). */
unsigned hop_deadq_answer(struct hop_deadq_job *job, char **body);

/* Frees a job that is done (after its done callback). NULL is ignored. */
void hop_deadq_job_free(struct hop_deadq_job *job);

#endif
