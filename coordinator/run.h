/* run.h - one run of a pipeline: source -> workers -> sink, with retries,
 * dead letters and graceful shutdown. */
#ifndef HOP_RUN_H
#define HOP_RUN_H

#include "config.h"

/* Exit codes of `hopper run`. */
enum {
	HOP_EXIT_OK = 0,
	HOP_EXIT_FAILURE = 1,	    /* could not start, a source/sink broke, or
				       workers kept failing at start-up */
	HOP_EXIT_USAGE = 2,	    /* bad flags or pipeline file */
	HOP_EXIT_DEAD = 3,	    /* a finite run finished with dead items */
	HOP_EXIT_HALTED = 4,	    /* --halt stopped the run */
	HOP_EXIT_INTERRUPTED = 130, /* SIGINT stopped a finite run with items
				       not done, or a second SIGINT cut a
				       drain short */
	/* 128 + SIGTERM (143): SIGTERM stopped a finite run with items not
	 * done. A watched run drained by a signal exits 0. */
};

/* Runs cfg to completion (a finite source) or until SIGTERM/SIGINT, and
 * returns the exit code. The source and sink in cfg are opened and closed
 * here; cfg keeps owning them. */
int hop_run(struct hop_config *cfg);

#endif
