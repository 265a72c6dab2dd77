/* suggest.h - "did you mean": the nearest of some names to a misspelling.
 *
 * One measure for every name a person types (a command, a flag, a pipeline
 * key, a driver or its option): the optimal string alignment distance, in
 * which a swap of two neighbours ("wrokers") costs one edit as a missing,
 * extra or wrong letter does, and '-' and '_' are one letter. A name is
 * suggested, as cargo and git do, only when it is close: at most a third of
 * the typed word's letters (and at least one) differ.
 */
#ifndef HOP_SUGGEST_H
#define HOP_SUGGEST_H

#include <stddef.h>

struct hop_suggest {
	const char *word; /* as typed, borrowed */
	const char *best; /* borrowed from the caller's candidates */
	size_t dist;
};

/* Starts a search for the name nearest to word. */
void hop_suggest_init(struct hop_suggest *s, const char *word);

/* Offers one candidate; the first of equally near ones is kept. */
void hop_suggest_offer(struct hop_suggest *s, const char *candidate);

/* Returns the nearest candidate offered if it is close enough, else NULL. */
const char *hop_suggest_best(const struct hop_suggest *s);

/* Like hop_suggest_best, but writes the name into buf spelled as the word
 * was: with '-' for '_' when the word used dashes ("min-wokers" gives
 * "min-workers"). Returns buf, or NULL when nothing is close enough. */
const char *hop_suggest_spelled(const struct hop_suggest *s, char *buf,
				size_t n);

/* The edit distance between a and b ('-' and '_' alike, a swap of two
 * neighbours one edit), or SIZE_MAX for words longer than 64 bytes. */
size_t hop_suggest_distance(const char *a, const char *b);

#endif
