/* jsonscan.h - a validating JSON scanner for the hot path.
 *
 * Every item crosses JSON twice (its source line, the worker's answer);
 * building a tree for each with jansson cost more than everything else the
 * coordinator does per item. This scanner checks that a text is valid JSON
 * (RFC 8259, UTF-8 included) and walks the members of a top-level object
 * without allocating; values come back as spans of the original text.
 */
#ifndef HOP_JSONSCAN_H
#define HOP_JSONSCAN_H

#include <stdbool.h>
#include <stddef.h>

/* True when text holds exactly one JSON value, with optional white space
 * around it. */
bool hop_json_valid(const char *text, size_t len);

struct hop_json_member {
	const char *key; /* the key's raw text, quotes excluded */
	size_t klen;
	const char *val; /* the value's raw text */
	size_t vlen;
};

/* Splits a top-level JSON object into members. Returns the number of
 * members (at most max are stored), or -1 when text is not one valid JSON
 * object. Keys with escapes are compared by their raw text. */
int hop_json_members(const char *text, size_t len, struct hop_json_member *m,
		     int max);

/* Finds the first member of the top-level object in text whose raw key
 * (quotes excluded) is m->key, m->klen bytes, m->val NULL. Returns 1 with
 * m filled (m->key then points into text), 0 when the object has no such
 * member, -1 when text is not one valid JSON object. What follows the
 * member found is not read: for a text known to be valid, a key near the
 * start costs only the bytes before it. */
int hop_json_find(const char *text, size_t len, struct hop_json_member *m);

/* Finds key among members; NULL when absent. */
const struct hop_json_member *hop_json_get(const struct hop_json_member *m,
					   int n, const char *key);

/* For a string value's span: true when it has no escapes, so its content
 * is val+1 .. val+vlen-1 as it stands. */
bool hop_json_plain_string(const char *val, size_t vlen);

#endif
