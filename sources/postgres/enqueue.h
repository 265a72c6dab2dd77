/* enqueue.h - `hopper enqueue`: JSON lines into a PostgreSQL queue. */
#ifndef HOP_ENQUEUE_H
#define HOP_ENQUEUE_H

/* `hopper enqueue ARGS`. Returns the exit code: 0, 65 when bad lines made
 * the load be abandoned, 2 for usage, 1 otherwise. */
int hop_enqueue_command(int argc, char **argv);

#endif
