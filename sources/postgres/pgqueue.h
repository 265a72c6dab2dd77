/* pgqueue.h - the PostgreSQL queue's schema and `hopper pg init`.
 *
 * A queue is one table: id, an optional unique key, the payload (jsonb),
 * state (ready, running, done, dead), attempts, run_at, lease_until, the
 * holder, last_error, the result and timestamps, with two partial indexes
 * (rows due by run_at, rows held by lease_until) that keep claiming fast
 * however many rows are done or in flight, and a trigger that
 * NOTIFYs on insert so that idle coordinators wake at once.
 */
#ifndef HOP_PGQUEUE_H
#define HOP_PGQUEUE_H

#include <stdbool.h>
#include <stddef.h>

/* True when name is an identifier hopper accepts for a table or column:
 * letters, digits and underscores, not starting with a digit, at most 63
 * bytes, optionally "schema.name". Anything else is refused by name, never
 * spliced into SQL; accepted names are still quoted. */
bool hop_pg_valid_ident(const char *name);

/* Writes name, a valid identifier, quoted ("schema"."table") into buf.
 * Returns 0 or -ENOSPC. */
int hop_pg_quote(char *buf, size_t n, const char *name);

/* The first line of a libpq message (they end in newlines and may go on
 * with details), in buf. */
const char *hop_pg_first_line(const char *msg, char *buf, size_t n);

/* Copies msg into buf with every password that the conninfo ci holds (as
 * written, and as libpq decodes it) replaced by "***": libpq quotes the
 * offending part of a malformed conninfo, password and all. Returns buf. */
const char *hop_pg_redact(const char *ci, const char *msg, char *buf, size_t n);

/* A libpq notice processor (PQsetNoticeProcessor) that logs the notice
 * as a warning of arg, a driver's name: libpq would print it raw. */
void hop_pg_notice(void *arg, const char *msg);

/* Writes the SQL that creates the queue table (and its index, function and
 * trigger) into buf. Returns 0, or -EINVAL when table is not a valid
 * identifier, or -ENOSPC when buf is too small. */
int hop_pg_schema_sql(const char *table, char *buf, size_t n);

/* `hopper pg ARGS`: init URL [--table NAME]. Returns the exit code. */
int hop_pg_command(int argc, char **argv);

#endif
