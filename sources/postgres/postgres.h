/* postgres.h - what the postgres sink needs of the postgres source.
 *
 * When a run's sink writes to the database its source's queue lives in, the
 * sink joins the source: each acknowledgement then runs the sink's INSERT
 * in the same statement that marks the rows done, so that a result and its
 * acknowledgement are one commit and a row is never done without its
 * result, nor its result written twice.
 */
#ifndef HOP_SOURCES_POSTGRES_H
#define HOP_SOURCES_POSTGRES_H

struct hop_source;

/* insert is an INSERT ... SELECT over d(id, key, result), the rows the
 * acknowledgement finished. Returns 0, or -EINVAL when src is not a
 * postgres source whose url is url (the same database). */
int hop_pg_source_join(struct hop_source *src, const char *url,
		       const char *insert);

#endif
