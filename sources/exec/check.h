/* check.h - `hopper check-source` and `hopper check-sink`: an exec source
 * or sink program's first test, in the manner of check-worker. */
#ifndef HOP_EXEC_CHECK_H
#define HOP_EXEC_CHECK_H

/* Each runs "hopper check-... [--timeout SECS] -- COMMAND [ARGS...]" with
 * the arguments after the command's name. Returns the exit code: 0 when
 * the program keeps the contract, 1 when it broke it, 2 for bad
 * arguments. */
int hop_exec_check_source(int argc, char **argv);
int hop_exec_check_sink(int argc, char **argv);

#endif
