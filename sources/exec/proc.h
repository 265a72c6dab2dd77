/* proc.h - one long-lived program that an exec source or sink speaks to,
 * supervised on the event loop.
 *
 * The program's stdout is read line by line and each line handed to the
 * owner with its number (counted from 1 in each incarnation); its stderr is
 * logged line by line and the last lines kept for the message that reports
 * its end. What the owner sends goes into a buffer that is written as the
 * pipe takes it. When the program ends before it was asked to, the owner
 * hears it (exited) and the program is started again after a wait that
 * doubles from RESTART_FIRST_MS to RESTART_MAX_MS, back to the first once
 * an incarnation lived long; then the owner hears started. Stopping closes
 * its stdin (its sign to exit), then after a grace sends SIGTERM and then
 * SIGKILL to its process group, as workers are stopped.
 */
#ifndef HOP_EXEC_PROC_H
#define HOP_EXEC_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coordinator/buf.h"
#include "coordinator/spawn.h"

struct hop_loop;
struct hop_proc;

struct hop_proc_ops {
	/* One line of stdout, NUL-terminated, valid during the call. */
	void (*line)(struct hop_proc *p, char *line, size_t len, long lineno);
	/* A line over the limit was dropped. */
	void (*too_long)(struct hop_proc *p, long lineno);
	/* A new incarnation is up (not called for the first start, which
	 * hop_proc_start reports). */
	void (*started)(struct hop_proc *p);
	/* The program ended on its own (why: "exited with status 1" and its
	 * stderr's last lines). Returns true to have it started again after
	 * the wait, false to leave it ended. */
	bool (*exited)(struct hop_proc *p, int status, const char *why);
};

struct hop_proc {
	/* Set by the owner before hop_proc_start. */
	struct hop_loop *loop;
	char **argv;
	const char *name; /* "exec source 'redis.py'", for messages */
	/* What hopper offers beyond protocol 1, space-separated, given to
	 * the program as HOPPER_FEATURES; NULL: nothing (set empty). */
	const char *features;
	size_t max_line;
	const struct hop_proc_ops *ops;
	void *arg;

	/* Read by the owner. */
	unsigned incarnation; /* 1 for the first start */
	bool up;	      /* running, pipes open */
	int status;	      /* the last incarnation's wait status */
	int64_t restart_due;  /* a restart is waiting, due then; else 0 */

	struct hop_child child;
	struct hop_lines out, err;
	struct hop_buf in;
	long lineno;
	bool paused;   /* the owner stopped reading stdout */
	bool out_open; /* stdout watched, not at EOF */
	bool in_watch; /* waiting for stdin to take more */
	bool stopping; /* no restart */
	int64_t started_ms;
	int64_t backoff_ms;
	uint64_t restart_timer;
	uint64_t eof_timer; /* stdout ended while it runs */
	char tail[4][200];  /* the last stderr lines, a ring */
	int ntail;
};

/* Starts the program for the first time. Returns 0, or -errno with err
 * naming the program and why (a command that cannot be run). */
int hop_proc_start(struct hop_proc *p, char *err, size_t errlen);

/* Appends n bytes for the program's stdin and writes what the pipe takes
 * now. Dropped when the program is not up (it will not see them). Returns
 * 0 or -ENOMEM. */
int hop_proc_send(struct hop_proc *p, const char *s, size_t n);
/* Writes what waits in p->in (appended directly by the owner). */
void hop_proc_flush(struct hop_proc *p);

/* Stops (or starts again) reading the program's stdout: a paused program
 * fills its pipe and waits. Resuming reads what is there at once. */
void hop_proc_pause(struct hop_proc *p, bool pause);

/* Waits up to timeout_ms for the program's pipes and exit, handling what
 * comes as the loop would: for a driver answering without the loop (a
 * sink's wait at the end of a run) and for the checks. Returns false when
 * nothing happened in that time. */
bool hop_proc_poll(struct hop_proc *p, int timeout_ms);

/* Ends the program for good: closes its stdin, gives it grace_ms to exit
 * (reading its stdout meanwhile), then SIGTERM, then SIGKILL, and reaps
 * it. Returns its wait status, or -1 when it was not running. */
int hop_proc_stop(struct hop_proc *p, int64_t grace_ms);

/* The last stderr lines, joined with " | ", into buf. */
void hop_proc_tail(const struct hop_proc *p, char *buf, size_t n);

#endif
