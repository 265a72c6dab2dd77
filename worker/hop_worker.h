/* hop_worker.h - a tiny helper for hopper workers written in C.
 *
 * It speaks the stream mode of the worker contract (worker/PROTOCOL.md) so
 * that a C worker is one handler function: hop_worker_run() reads one
 * envelope line at a time from stdin, calls the handler with the item's id,
 * attempt and payload, writes the answer line to stdout and flushes it
 * (see hop_worker_batch_answers() for quick handlers), and returns when
 * stdin ends. Lines may be of any length. Link with
 * libhopworker.a and jansson (pkg-config jansson).
 *
 * A handler that gives an item several outputs (a splitter) emits each
 * with hop_worker_emit() before it returns; one that gives none (a filter)
 * calls hop_worker_drop(). A handler that does neither has one output, its
 * result, as before.
 *
 * Everything here writes to stdout, so it belongs to one thread: call these
 * functions from the thread that called hop_worker_run(), and write nothing
 * else to stdout (logs go to stderr).
 */
#ifndef HOP_WORKER_H
#define HOP_WORKER_H

#include <jansson.h>
#include <stdbool.h>

/* Handles one item. id is the item's id and attempt its 1-based attempt
 * number; payload is the item's JSON value (json_null() when the envelope
 * had none). All three are borrowed and valid only during the call. JSON
 * strings may hold NUL bytes: json_string_length() gives their length.
 *
 * On success the handler returns 0 and may set *result to a new reference,
 * which hop_worker_run() takes over (left NULL, the result is null).
 *
 * On failure it returns any other value, sets *error to a malloc'd message
 * that hop_worker_run() takes over and frees (hop_worker_fail() makes one),
 * and leaves *retry true (its value on entry) when another attempt may
 * succeed, or sets it false when none can, as for a payload it will never
 * accept. A *result set on failure is released and not sent. */
typedef int (*hop_worker_fn)(const char *id, int attempt, json_t *payload,
			     json_t **result, char **error, bool *retry,
			     void *arg);

/* Runs the stream loop: for each envelope line on stdin, calls fn(..., arg)
 * and writes its answer line, flushed. Returns 0 when stdin reaches EOF (the
 * coordinator's "exit now"), -EPROTO after telling stderr when a line is not
 * an envelope with a string "id", or -errno when reading stdin or writing
 * stdout fails (-ENOMEM when memory runs out). */
int hop_worker_run(hop_worker_fn fn, void *arg);

/* With on true, hop_worker_run() writes the answers to the envelopes it
 * has already read together: an answer is flushed only once no whole
 * envelope is left in what was read from stdin, so never while the worker
 * waits for input, and at --prefetch N above 1 a batch of answers costs
 * one system call rather than one each. Progress and emit lines are still
 * flushed at once, and take any held answers with them. Use it only for
 * handlers that return quickly: a held answer waits for the handler of
 * the next item, and its item's deadline keeps running meanwhile. Off by
 * default; call it before hop_worker_run(). */
void hop_worker_batch_answers(bool on);

/* Tells the coordinator that the item id is still being worked on and how
 * far along it is (fraction in 0..1, clamped), which extends the item's
 * deadline. Call it only from inside the handler, with the id it was given.
 * Returns 0 or -errno when stdout cannot be written. */
int hop_worker_progress(const char *id, double fraction);

/* Emits one output of the item id: payload (borrowed; NULL for null), on
 * port and with key when they are not NULL (both UTF-8 strings). Outputs
 * keep the order of the calls, and count only when the handler then
 * returns 0: on a failure the coordinator discards them. A port names
 * where the output goes (a splitter's "to" map); a key picks the shard of
 * a sharded stage after this one. Call it only from inside the handler,
 * with the id it was given; it also extends the item's deadline, as a
 * progress line does. Returns 0, -EINVAL when port or key is not UTF-8,
 * -ENOMEM when the line cannot be made, or -errno when stdout cannot be
 * written. */
int hop_worker_emit(const char *id, json_t *payload, const char *port,
		    const char *key);

/* Says that the item in hand has no output at all (a filter that lets it
 * go no further): when the handler then returns 0, its answer carries
 * "drop": true, *result is not sent, and whatever it emitted is discarded.
 * Call it only from inside the handler; it holds for that item alone. */
void hop_worker_drop(void);

/* Formats a failure message for a handler: sets *error to a malloc'd string
 * made from fmt and its arguments (or to NULL if memory runs out, which
 * hop_worker_run() answers with a generic message) and returns -1, so that a
 * handler can end with `return hop_worker_fail(error, "...", ...);`. */
int hop_worker_fail(char **error, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
