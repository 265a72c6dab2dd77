/* checkworker.h - `hopper check-worker`: tries a worker against the
 * contract with a handful of sample items and says in plain words what is
 * wrong. */
#ifndef HOP_CHECKWORKER_H
#define HOP_CHECKWORKER_H

/* Runs the check for `hopper check-worker ARGS`; returns the exit code:
 * 0 when the worker keeps the contract, 1 when it breaks it, 2 for usage. */
int hop_check_worker(int argc, char **argv);

#endif
