/* journal.h - a run's journal: the ids of the items it finished, so that
 * the same command run again skips them (GNU parallel's --joblog with
 * --resume and --resume-failed).
 *
 * The journal is a file of JSON lines, appended to and never rewritten.
 * Each run first appends a header naming its source,
 *   {"journal": 1, "source": "jsonl:/data/in.jsonl", "run": "2026-...Z"}
 * and then one line per finished item, done or dead:
 *   {"id": "17", "outcome": "done", "attempts": 1}
 *   {"id": "18", "outcome": "dead", "attempts": 3, "error": "..."}
 * An item's latest line is its outcome. Ids are the source's, so a journal
 * refuses a source other than the one it was started with.
 *
 * Lines are written when the run's sink has made the items' results
 * durable, and synced to disk before the items are acknowledged at their
 * source: a crash in between repeats an item (at least once), never skips
 * one whose result was not written.
 */
#ifndef HOP_JOURNAL_H
#define HOP_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "item.h"

struct hop_journal;

/* Opens (or creates) the journal at path for a run of source, a name that
 * says which source the ids belong to. Reads what earlier runs recorded,
 * cutting a torn last line that a killed run left (with a warning), and
 * appends this run's header. With resume_failed, items recorded dead are
 * not skipped. Returns the journal, or NULL with a message in err: the
 * file cannot be read or written, a complete line is not a journal line
 * (naming the file and line), or it records another source. */
struct hop_journal *hop_journal_open(const char *path, const char *source,
				     bool resume_failed, char *err,
				     size_t errlen);

/* Returns true when id is recorded done, or dead and dead items are not
 * being retried: the run skips it. */
bool hop_journal_skip(const struct hop_journal *j, const char *id);

/* Returns true when id's latest outcome in the journal is dead. */
bool hop_journal_dead(const struct hop_journal *j, const char *id);

/* Items earlier runs recorded done, and dead (latest outcome of each). */
size_t hop_journal_done_count(const struct hop_journal *j);
size_t hop_journal_dead_count(const struct hop_journal *j);

/* Adds it's outcome (done when it->ok, else dead, with its error) to the
 * lines waiting for the next hop_journal_sync. Returns 0 or -ENOMEM. */
int hop_journal_add(struct hop_journal *j, const struct hop_item *it);

/* Appends the waiting lines and syncs them to disk (fdatasync). Returns 0
 * (also when nothing waits) or -errno, with a message in the journal's
 * error; a failed write is cut back so that no torn line stays. */
int hop_journal_sync(struct hop_journal *j);

/* The latest error of hop_journal_sync, for the log. */
const char *hop_journal_error(const struct hop_journal *j);

/* Syncs what waits and closes the journal; NULL is ignored. Returns what
 * the last sync returned. */
int hop_journal_close(struct hop_journal *j);

#endif
