/* source.h - the seam every source driver plugs into.
 *
 * A driver is one folder under sources/ holding one const struct
 * hop_source_ops named hop_src_<folder>, listed once in sources/registry.c.
 * Its options are a table (see coordinator/opts.h) over its context struct,
 * which the core allocates (ctx_size bytes, zeroed, defaults applied) and
 * hands to every callback as src->ctx. The first option is the target that
 * "name:TARGET" on the command line sets.
 *
 * Ownership: fetch creates items and hands them to the coordinator. ack,
 * dead and release end the source's part in an item: they free whatever the
 * source hung on it->src_data and set it to NULL; the coordinator frees the
 * item itself afterwards.
 */
#ifndef HOP_SOURCE_H
#define HOP_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "coordinator/item.h"
#include "coordinator/opts.h"

struct hop_loop;
struct hop_registry;
struct hop_source;

/* One dead letter as a source shows it to hopper dead (coordinator/dead.h).
 * The strings are the source's, valid during the call that passes it. */
struct hop_dead_letter {
	const char *id;	     /* its name in the dead-letter place: what
				retry and discard take */
	const char *item;    /* the item's id when it died */
	const char *error;   /* why it died */
	int64_t attempts;    /* attempts made, or -1 when unknown */
	const char *when;    /* when it died, ISO 8601 UTC, or NULL */
	const char *payload; /* the payload as JSON text, or NULL */
	const char *record;  /* the whole dead-letter record (JSON), or NULL */
};

/* Called once per dead letter by dead_list; a non-zero return stops the
 * listing and is returned by it. */
typedef int (*hop_dead_each_fn)(void *arg, const struct hop_dead_letter *d);

/* A command that a driver adds to hopper (hopper pg, hopper enqueue), for
 * what its place needs outside a run. */
struct hop_command {
	const char *name;
	const char *usage; /* the arguments, for hopper's usage */
	/* Runs "hopper NAME ARGS" with the arguments after NAME. Returns the
	 * exit code. */
	int (*run)(int argc, char **argv);
};

struct hop_source_ops {
	const char *name;
	const char *summary;
	const char *forms; /* how a spec names it, for --help: "dir:FOLDER" */
	const struct hop_option *options;
	size_t ctx_size;

	/* Optional. Refuses what open would refuse about the options alone
	 * (names, choices, durations, combinations), touching nothing outside
	 * the process: no connection, no file. Returns 0, or -EINVAL with
	 * src->error naming the driver and why, and *key the option at fault
	 * (left NULL when no one option is). hopper validate calls it; open
	 * calls it first, so that a run refuses the same options. */
	int (*check)(struct hop_source *src, const char **key);
	/* Prepares the source: opens files, recovers what a crashed run left,
	 * registers fds with src->loop. Returns 0 or -errno, with a message in
	 * src->error. */
	int (*open)(struct hop_source *src);
	/* Moves up to max ready items onto out without blocking. Returns 0 or
	 * -errno; fewer items than asked (or none) is not an error: the source
	 * calls hop_source_wake when it may have more. */
	int (*fetch)(struct hop_source *src, struct hop_queue *out, size_t max);
	/* Optional, for a source that reads a file it can read again (jsonl):
	 * fetch, but a plain line (one fetch would make an item of as it is,
	 * its id its line number, its payload its text, nothing on
	 * src_data) may go to take instead, with its line number and its
	 * offset in the file, and no item is made of it; when take returns
	 * false, fetch_lines makes the item fetch would have and puts it on
	 * out. Returns (0 or -errno, as fetch) after the first item it puts
	 * on out, so that lines keep their order, or after max lines in all;
	 * *taken says how many went to take. Such a line is acknowledged
	 * with no call (the source has no ack), handed back with release on
	 * a stand-in item holding its id and the payload null, and read
	 * again with reread for its dead letter. */
	int (*fetch_lines)(struct hop_source *src, struct hop_queue *out,
			   size_t max,
			   bool (*take)(void *arg, int64_t line, uint64_t off,
					const char *text, size_t len),
			   void *arg, size_t *taken);
	/* With fetch_lines: reads again the n lines from line first, which
	 * starts at offset off, that fetch_lines gave take, calling each
	 * with each one's number and text. Returns 0, or -errno with
	 * src->error saying why (the file is gone or changed). */
	int (*reread)(struct hop_source *src, int64_t first, int64_t n,
		      uint64_t off,
		      void (*each)(void *arg, int64_t line, const char *text,
				   size_t len),
		      void *arg);
	/* The item's result is safe in the sink: forget the item for good.
	 * NULL when there is nothing to do (a file read once): a reduce then
	 * ends the items behind its result with no call each. */
	int (*ack)(struct hop_source *src, struct hop_item *it);
	/* The item failed for good: put it in the dead-letter place with record
	 * (a JSON object: id, error, attempts, stderr). Returns 0 once it is
	 * there; HOP_SOURCE_PENDING when it is on its way, and the source
	 * calls hop_source_dead_done when it knows, at the latest in close;
	 * -EAGAIN when the place cannot take it now but may later (a full
	 * disk) and the item is still the source's, as before the call: the
	 * coordinator holds it, takes no new items meanwhile, and calls dead
	 * again (or release when the run stops); or another -errno (src->error
	 * says why) when it cannot be put there: the item then stays
	 * unacknowledged, and the next run gets it again. An item is dead only
	 * once its dead letter is written. */
	int (*dead)(struct hop_source *src, struct hop_item *it,
		    const char *record);
	/* Optional, for exactly once. The source's transaction, which a sink
	 * joins so that its writes commit together with the source's
	 * acknowledgements and dead letters (sinks/sink.h), when the source
	 * runs one (an option of the source's says so) and kind names its
	 * type ("kafka": struct hop_kafka_txn, sources/kafka/kafka.h); else
	 * NULL, with src->error saying why when it runs none. It may be
	 * called before open (sinks open first): the source then makes its
	 * transaction at once. The sink holds a reference that it gives back
	 * in its close; the transaction outlives the source's close until
	 * then. A source that runs one acknowledges an item for good only when
	 * the transaction that holds its outputs commits: it hands out no
	 * new items while a transaction's items finish and it commits, and
	 * when a transaction aborts it takes its items again from where the
	 * last commit left them, so that those still in flight no longer
	 * count. */
	void *(*transaction)(struct hop_source *src, const char *kind);
	/* Optional. The item is about to be declared dead: before its error
	 * is logged and it goes to the sink and then to dead, the source may
	 * reword it->error, it->stderr_tail and it->payload so that they name
	 * the item where the dead-letter place will keep it (the dir source's
	 * file leaves processing for failed). */
	void (*dying)(struct hop_source *src, struct hop_item *it);
	/* Optional. The source is being freed, opened or not (after close when
	 * it was): lets go of what it made outside open, such as a
	 * transaction a sink joined before the source was opened. */
	void (*forget)(struct hop_source *src);
	/* The run stops before the item finished: hand it back so that the next
	 * run gets it again. Not a failed attempt. */
	int (*release)(struct hop_source *src, struct hop_item *it);
	/* Optional. The item failed and may be tried again after delay_ms
	 * (it->error says why): a source that keeps its own schedule (a
	 * database) takes it back here and delivers it again when it is due;
	 * the coordinator then frees it. When NULL, the coordinator holds the
	 * item and retries it itself. */
	int (*nack)(struct hop_source *src, struct hop_item *it,
		    int64_t delay_ms);
	/* Items ready to be fetched, or -1 when unknown. */
	int64_t (*depth)(struct hop_source *src);
	/* True when a finite source has given every item it will ever give. */
	bool (*exhausted)(struct hop_source *src);
	/* Optional. How many items a finite source gives in all, for the
	 * progress line, or -1 when it cannot tell cheaply. */
	int64_t (*total)(struct hop_source *src);
	/* Optional. False, with the reason in why, while the source cannot
	 * deliver (its server is out of reach); NULL means always ready. */
	bool (*ready)(struct hop_source *src, char *why, size_t n);
	void (*close)(struct hop_source *src);

	/* Optional: the driver can carry a durable edge into a stage (the
	 * stage's "via"), as this source and the sink driver of the same name.
	 * Settings as "key=value", each list ending with NULL, applied when
	 * the edge is made: edge_fixed keep an item's id and payload whole
	 * across the edge, and a pipeline file may not change them;
	 * edge_defaults it may. "%s" in a value stands for the stage's name.
	 * A driver without edge_fixed cannot carry an edge. */
	const char *const *edge_fixed;
	const char *const *edge_defaults;

	/* Optional, with the dead_* operations: where the dead letters are and
	 * what retry and discard do to them, for hopper dead --help. */
	const char *dead_place;
	/* Optional, ending with an entry whose name is NULL: the commands
	 * the driver adds to hopper. */
	const struct hop_command *commands;
	/* Optional, all or none: the dead-letter place as a person manages it
	 * (hopper dead), with no run going on. The source is never opened for
	 * these: dead_open connects to the place and reads what it needs,
	 * dead_close lets go of all of it. Each returns 0 or -errno with
	 * src->error naming the item (or the place) and why. */
	int (*dead_open)(struct hop_source *src);
	/* Calls each for every dead letter, in the order the place keeps
	 * them (by name in a folder, by offset in a topic, oldest first in a
	 * table or a file). */
	int (*dead_list)(struct hop_source *src, hop_dead_each_fn each,
			 void *arg);
	/* Optional. Calls each for the dead letters from the offset'th (in
	 * dead_list's order) to at most limit of them, reading no more of
	 * the place than it must, and sets *total to how many there are. A
	 * console's page; without it the page is cut from dead_list. */
	int (*dead_page)(struct hop_source *src, size_t offset, size_t limit,
			 hop_dead_each_fn each, void *arg, size_t *total);
	/* Puts the dead letter named id back where the source's items come
	 * from, to be done again from its first attempt, and takes it out of
	 * the dead-letter place. A source that cannot take items back (a
	 * stream) writes the payload, as a JSON line, to out instead. -ENOENT
	 * when there is no such dead letter. */
	int (*dead_retry)(struct hop_source *src, const char *id, FILE *out);
	/* Takes the dead letter named id out of the dead-letter place for
	 * good. -ENOENT when there is no such dead letter. */
	int (*dead_discard)(struct hop_source *src, const char *id);
	void (*dead_close)(struct hop_source *src);
	/* True when the dead_* operations may run, on another instance of
	 * the source made from the same options, while a run has this one
	 * open (the console): the place is not a file the run appends to,
	 * and a retried item reaches the running source as a new one would. */
	bool dead_live;
	/* Optional, with dead_live. The dead letter named id was just retried
	 * (dead_retry, on another instance) while this one runs: a source that
	 * looks for items only when it opens (a finite folder) takes it into
	 * this run, as a new item; the others find it as they find any. */
	void (*dead_retried)(struct hop_source *src, const char *id);
};

struct hop_source {
	const struct hop_source_ops *ops;
	void *ctx;
	struct hop_loop *loop;
	char *label;	 /* "dir:videos" for messages */
	bool watch;	 /* keep running and wait for new items */
	size_t max_line; /* longest item a line-based source accepts */
	char error[512]; /* why the last call failed */

	/* Set by the coordinator, both called with wake_arg: on_wake tells it
	 * that fetch may now return more; on_dead_done that a dead letter
	 * left pending was written (ok) or could not be (src->error says
	 * why, naming the item id). */
	void (*on_wake)(void *arg);
	void (*on_dead_done)(void *arg, const char *id, bool ok);
	void *wake_arg;
};

/* What dead returns when the dead letter is on its way. */
#define HOP_SOURCE_PENDING 1

/* Looks a driver up by name; NULL when there is none. */
const struct hop_source_ops *hop_source_find(const char *name);
/* The registry, ending with NULL, for --help. */
extern const struct hop_source_ops *const hop_source_registry[];
/* The same, for the code sources and sinks share (coordinator/driver.h). */
extern const struct hop_registry hop_source_drivers;

/* Returns a source for spec ("name:target" or "scheme://..."), with its
 * context allocated and defaults set, or NULL with a message in err. */
struct hop_source *hop_source_new(const char *spec, char *err, size_t errlen);
/* Sets one option from text; same returns as hop_opts_set. */
int hop_source_set(struct hop_source *src, const char *key, const char *value,
		   char *err, size_t errlen);
/* Runs the driver's check, if it has one: 0, or -EINVAL with src->error
 * and *key as the check op says. */
int hop_source_check(struct hop_source *src, const char **key);
/* Finds the command called name among the drivers'; NULL when none is. */
const struct hop_command *hop_source_command(const char *name);
/* Closes (if opened) and frees the source. */
void hop_source_free(struct hop_source *src);

static inline void hop_source_wake(struct hop_source *src)
{
	if (src->on_wake)
		src->on_wake(src->wake_arg);
}

/* Reports the end of a dead letter that dead left pending: written (ok), or
 * not, with the reason in src->error, the item staying unacknowledged. */
static inline void hop_source_dead_done(struct hop_source *src, const char *id,
					bool ok)
{
	if (src->on_dead_done)
		src->on_dead_done(src->wake_arg, id, ok);
}

#endif
