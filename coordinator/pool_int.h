/* pool_int.h - what pool.c, stream.c and execmode.c share. Not for other
 * modules. */
#ifndef HOP_POOL_INT_H
#define HOP_POOL_INT_H

#include "buf.h"
#include "pool.h"
#include "spawn.h"
#include "spawner.h"
#include "stats.h"

enum worker_state {
	W_DOWN,	   /* no process */
	W_UP,	   /* running, takes items */
	W_CLOSING, /* stdin closed, waiting for it to exit */
	W_KILLING, /* signalled, waiting for it to exit */
};

struct worker {
	struct hop_pool *pool;
	int index;
	enum worker_state state;
	struct hop_child child;
	struct hop_buf wbuf;	  /* bytes waiting for the worker's stdin */
	bool wwatch;		  /* waiting for stdin to become writable */
	struct hop_lines out;	  /* stream mode: answer lines */
	struct hop_buf collected; /* exec mode: the whole stdout */
	bool out_too_long;
	struct hop_lines err;
	bool out_open, err_open;
	struct hop_queue inflight; /* items sent, in order */
	int64_t deadline;	   /* for the head of inflight; 0: none */
	int64_t started;	   /* when the process started */
	int crashes;		   /* exits we did not ask for, in a row */
	uint64_t restart_timer;
	uint64_t kill_timer;
	uint64_t pipe_timer; /* exec mode: when to read a child's pipes */
	uint64_t eof_timer;  /* stream mode: stdout closed, process running */
	bool sigkilled;
	char *reason;	    /* why we are killing it, for the head item */
	int item_fd;	    /* exec mode: the slot's WORK_ITEM_FILE, or -1 */
	size_t item_len;    /* bytes now in that file */
	bool spawning;	    /* exec mode: a start is on a spawner thread */
	bool answered;	    /* stream mode: this process gave an answer */
	char last_err[256]; /* the last line this process wrote to stderr */
};

/* A process group that outlived its worker: SIGTERM was sent, SIGKILL
 * follows at kill_at if anything of it remains. */
struct leftover {
	pid_t pgid;
	int worker;
	int64_t kill_at;
};

struct hop_pool {
	struct hop_loop *loop;
	struct hop_pool_config cfg;
	struct hop_pool_events ev;
	struct worker *w;
	size_t inflight;
	bool draining;
	bool killing;
	int target;	    /* workers wanted, see hop_pool_resize */
	bool answered;	    /* some worker has answered */
	int start_failures; /* ends before any answer, see start_failed */
	uint64_t tick;
	struct hop_spawner
	    *spawner;	       /* exec mode: starts processes off the loop */
	struct leftover *left; /* groups whose worker has exited */
	int nleft, capleft;
	uint64_t left_timer; /* looks at them every TICK_MS while any */
};

/* pool.c */

/* Settles a stream worker whose process has exited and been reaped, with
 * status as from waitpid: the item in hand fails (its error names the
 * worker, the status and the last line the worker wrote to stderr), or goes
 * back unattempted when the worker looks unable to start (see start_failed
 * in pool.h); the items queued behind go back unattempted, and a restart is
 * scheduled when the pool still wants the worker. */
void pool_worker_gone(struct worker *w, int status);
/* Appends ": LINE" to the failed item's error, LINE being the last line the
 * worker wrote to stderr while it held the item; nothing when it wrote none.
 * The worker's own words are most often the reason. */
void pool_add_stderr_reason(struct hop_item *it);
/* Reaps the worker's process if it has exited, setting *status as waitpid
 * does, and ends its process group: SIGTERM at once to what remains of it,
 * SIGKILL kill_ms later to what still does, so that nothing a worker started
 * outlives it. Returns false while the process runs. */
bool pool_reap(struct worker *w, int *status);
void pool_finish(struct worker *w, struct hop_item *it);
void pool_return_all(struct worker *w);
/* Stops a worker that broke the contract or ran out of time, for the
 * reason fmt gives: SIGTERM to its group (SIGKILL after kill_ms), the item
 * in hand fails with that reason, the items behind it go back unattempted.
 * Nothing when it is already stopping or down. */
void pool_kill_worker(struct worker *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int pool_watch_child(struct worker *w);
void pool_want_write(struct worker *w);
/* Logs the lines waiting on the worker's stderr, keeps them with the item
 * in hand, and remembers the last one (last_err). */
void pool_drain_stderr(struct worker *w);
/* Forgets the worker's process: closes its descriptors (their epoll
 * registrations go with them), cancels its kill and EOF timers and empties
 * its buffers. The process must be reaped already, or never started. */
void pool_release_child(struct worker *w);

/* stream.c */
/* Starts the slot's persistent worker and watches its pipes and exit; the
 * worker is UP and has answered nothing yet. Returns 0, or -errno with a
 * message naming the command in err. */
int stream_start(struct worker *w, char *err, size_t errlen);
void stream_send(struct worker *w, struct hop_item *it);
/* Reads and handles the answer lines waiting on the worker's stdout. A
 * line that breaks the contract stops the worker; EOF while the process
 * still runs means it closed its stdout and can answer nothing more: unless
 * it exits within EOF_GRACE_MS (then its exit says why), it is stopped and
 * the item in hand fails with that reason. */
void stream_read(struct worker *w);

/* execmode.c */
int exec_check(struct hop_pool *pool, char *err, size_t errlen);
void exec_run(struct worker *w, struct hop_item *it);
void exec_read(struct worker *w);
/* Settles the slot's process, reaped with status (as from waitpid), once
 * its output is read: exit 0 gives the result, 75 a retry, 65 a permanent
 * failure, anything else a failed attempt whose error ends with the last
 * line the process wrote to stderr. Then the slot takes its next item. */
void exec_exited(struct worker *w, int status);
void exec_abort(struct worker *w);
void exec_unqueue(struct worker *w);

#endif
