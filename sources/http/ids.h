/* ids.h - the http source's table of the item ids it knows.
 *
 * A source container lists the same ids again and again until each is
 * deleted, so the source keeps every id it has taken, and what it is doing
 * with it, until a listing started after its deletion proves the server has
 * let it go. An id in the table is never taken a second time.
 */
#ifndef HOP_SOURCES_HTTP_IDS_H
#define HOP_SOURCES_HTTP_IDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum hop_http_state {
	HOP_HTTP_LISTED,   /* listed, waiting for its GET */
	HOP_HTTP_FETCHING, /* its GET is on its way (or waits for a retry) */
	HOP_HTTP_READY,	   /* fetched, waiting for the coordinator */
	HOP_HTTP_HELD,	   /* the coordinator has it */
	HOP_HTTP_ACKING,   /* its DELETE is on its way */
	HOP_HTTP_DYING,	   /* its dead letter is on its way */
	HOP_HTTP_GONE,	   /* deleted, or gone at its GET: kept until a
			      later listing */
	HOP_HTTP_STUCK,	   /* the server refused its DELETE: never again */
};

struct hop_http_id {
	char *id; /* owned */
	enum hop_http_state state;
	uint64_t gone_seq; /* GONE: listings from this one on omit it */
	struct hop_http_id *bucket; /* chain in the table */
	struct hop_http_id *next;   /* link in the list its state keeps */
};

struct hop_http_ids {
	struct hop_http_id **slots;
	size_t nslots;
	size_t n;      /* ids in the table */
	size_t active; /* of those, not GONE nor STUCK */
};

/* Returns the entry of id, or NULL when the table has none. */
struct hop_http_id *hop_http_ids_find(struct hop_http_ids *t, const char *id);

/* Adds id (copied) in state LISTED. Returns the new entry, or NULL when
 * memory ran out. The caller has checked that id is not there. */
struct hop_http_id *hop_http_ids_add(struct hop_http_ids *t, const char *id);

/* Moves e to state s, keeping the count of active ids. */
void hop_http_ids_set(struct hop_http_ids *t, struct hop_http_id *e,
		      enum hop_http_state s);

/* Takes e out of the table and frees it. */
void hop_http_ids_remove(struct hop_http_ids *t, struct hop_http_id *e);

/* Frees every entry and the table. */
void hop_http_ids_free(struct hop_http_ids *t);

#endif
