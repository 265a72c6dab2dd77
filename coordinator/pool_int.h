/* pool_int.h - what pool.c, stream.c and execmode.c share. Not for other
 * modules.
 *
 * pool.c knows the modes only through their tables of operations (struct
 * hop_worker_ops); stream.c and execmode.c call back into pool.c through
 * the pool_* functions below, and into nothing of each other. */
#ifndef HOP_POOL_INT_H
#define HOP_POOL_INT_H

#include "buf.h"
#include "pool.h"
#include "spawn.h"
#include "spawner.h"
#include "stats.h"

/* The life of a worker slot. Every change of state goes through
 * pool_slot_event, and pool.c's slot table (slot_next) lists every
 * transition: an event a state does not expect is logged as a bug. */
enum slot_state {
	S_BUG,	    /* not a state: the table's mark for an unexpected event */
	S_DOWN,	    /* no process, and none wanted */
	S_BACKOFF,  /* no process; a restart timer runs (restart_timer) */
	S_IDLE,	    /* up, takes items, holds none */
	S_BUSY,	    /* up, holds items; in exec mode a start may be on a
		     * spawner thread meanwhile (spawning) */
	S_RETIRING, /* stdin closed: exits once it has answered what it holds */
	S_STOPPING, /* SIGTERM sent to its group, SIGKILL after kill_ms */
	S_NSTATES
};

enum slot_event {
	E_STARTED, /* its process started (exec: the slot opened): takes items
		    */
	E_RETRY,   /* down, and a restart timer was set for it */
	E_CANCEL,  /* its restart timer was cancelled or is not wanted now */
	E_TAKE,	   /* an item was handed to it */
	E_EMPTY,   /* the last item it held finished or went back */
	E_CLOSE,   /* its stdin was closed to retire it */
	E_SIGNAL,  /* SIGTERM was sent to its group */
	E_EXITED,  /* its process was reaped, and the slot goes down */
	E_RAN,	   /* exec: its process was reaped, and the slot goes on */
	E_DROP,	   /* exec: a slot with no process is let go */
	E_NEVENTS
};

/* True when the slot takes items: IDLE or BUSY. */
static inline bool slot_up(enum slot_state s)
{
	return s == S_IDLE || s == S_BUSY;
}

struct worker {
	struct hop_pool *pool;
	int index;
	enum slot_state state;
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
	char *reason;	 /* why we are killing it, for the head item */
	int item_fd;	 /* exec mode: the slot's WORK_ITEM_FILE, or -1 */
	size_t item_len; /* bytes now in that file */
	bool spawning;	 /* exec mode: a start is on a spawner thread */
	/* exec mode: which of the slot's two HOPPER_EMIT files the running
	 * process has, and the one the pending start gets. Two, because a
	 * slot's next process starts as the one before exits, before its
	 * file is read. */
	unsigned char emit_run, emit_next;
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
	const struct hop_worker_ops *ops; /* the mode's, see below */
	struct hop_pool_config cfg;
	struct hop_pool_events ev;
	struct worker **w; /* slots, each allocated once: a slot stays put
			    * while the array grows (hop_pool_grow) */
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

/* The protocol of a mode, as the pool sees it: one table per mode, chosen
 * once by hop_pool_new (hop_worker_stream or hop_worker_exec). The pool
 * decides when a slot comes up, takes items and goes; these say what that
 * means for the mode's processes. Every call runs on the pool's loop. */
struct hop_worker_ops {
	const char *name; /* "stream" or "exec", for messages */
	/* Items a slot holds at most: the prefetch window of a persistent
	 * worker, or the running item and the one to start as it exits. */
	size_t (*window)(const struct hop_pool_config *cfg);
	/* Readies the pool at hop_pool_start: checks the command, starts the
	 * first cfg.start slots. Returns 0, or -errno with a message naming
	 * the command in err; nothing is left running then. */
	int (*begin)(struct hop_pool *pool, char *err, size_t errlen);
	/* Brings a DOWN slot up, to take items: it is UP on return 0.
	 * Returns 0, or -errno with a message in err and the slot still
	 * DOWN, for the pool to try again later. */
	int (*start)(struct worker *w, char *err, size_t errlen);
	/* Hands the slot an item, which the slot owns from now until
	 * pool_finish or pool_return_all. The pool counted the attempt. */
	void (*send)(struct worker *w, struct hop_item *it);
	/* Asks an idle UP slot to go: the pool is above its target, or
	 * (drain) it drains and the slot holds nothing more. Returns true when
	 * the slot is on its way down or down, false when it stays as it is
	 * (a stream worker whose stdin is closed already; an exec slot at a
	 * drain, which the pool settles itself). */
	bool (*retire)(struct worker *w, bool drain);
	/* All of the payload is written (or the write failed): exec closes
	 * stdin, as the payload is all there is. NULL: nothing to do. */
	void (*written)(struct worker *w);
	/* Frees what the slot keeps for its process once that is released;
	 * NULL: the buffers are kept for the next process. */
	void (*released)(struct worker *w);
	/* Cancels a start that is on a spawner thread (w->spawning); the
	 * items stay with the slot. NULL where starts are never pending. */
	void (*abort)(struct worker *w);
	/* Hands back, unattempted, the item that waits behind the running
	 * one and has not started. NULL: the mode queues nothing. */
	void (*unqueue)(struct worker *w);
	/* Removes the files the slot made in the pool's tmpdir, at
	 * hop_pool_destroy once its process is gone. NULL: it made none. */
	void (*remove_files)(struct worker *w);
};

extern const struct hop_worker_ops hop_worker_stream;
extern const struct hop_worker_ops hop_worker_exec;

/* pool.c: what the modes call back. */

/* The state the slot table gives for event e in state s, or S_BUG when
 * the table does not expect e in s. No side effects. */
enum slot_state pool_slot_next(enum slot_state s, enum slot_event e);
/* Moves the slot by event e as the slot table says. An event not expected
 * in the slot's state is logged as a bug, and the state is kept. */
void pool_slot_event(struct worker *w, enum slot_event e);
/* Names for messages and tests: "idle", "take", ... */
const char *pool_slot_state_name(enum slot_state s);
const char *pool_slot_event_name(enum slot_event e);

/* Checks that the pool's command can be run: a path that is executable,
 * or a name found in PATH. Returns 0, or -errno (-ENOENT when not found)
 * with a message naming the command in err. */
int pool_check_command(struct hop_pool *pool, char *err, size_t errlen);
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
/* Takes the item, whose outcome is set, out of the slot and hands it to
 * the run (ev.done), which owns it from then on. Sets the deadline of the
 * next item in hand, and retires the slot when the pool drains or is above
 * its target and the slot holds nothing more. */
void pool_finish(struct worker *w, struct hop_item *it);
/* Hands every item the slot holds back to the run unattempted (ev.returned:
 * their attempt is undone), and clears the slot's deadline. */
void pool_return_all(struct worker *w);
/* Stops a worker that broke the contract or ran out of time, for the
 * reason fmt gives: SIGTERM to its group (SIGKILL after kill_ms), the item
 * in hand fails with that reason, the items behind it go back unattempted.
 * Nothing when it is already stopping or down. */
void pool_kill_worker(struct worker *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Closes a stream worker's stdin, so that it exits once it has answered
 * what it holds; the slot is CLOSING. */
void pool_close_stdin(struct worker *w);
/* Writes the slot's wbuf to the process's stdin soon, on the loop, and as
 * the pipe takes it; ops->written follows the last byte. */
void pool_want_write(struct worker *w);
/* Logs the lines waiting on the worker's stderr, keeps them with the item
 * in hand, and remembers the last one (last_err). */
void pool_drain_stderr(struct worker *w);
/* Forgets the worker's process: closes its descriptors (their epoll
 * registrations go with them), cancels its kill and EOF timers and empties
 * its buffers. The process must be reaped already, or never started. */
void pool_release_child(struct worker *w);

#endif
