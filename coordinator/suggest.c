/* suggest.c - "did you mean". */
#include "suggest.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define MAXLEN 64

static bool same(char a, char b)
{
	return a == b || ((a == '-' || a == '_') && (b == '-' || b == '_'));
}

static size_t min3(size_t a, size_t b, size_t c)
{
	size_t m = a < b ? a : b;
	return m < c ? m : c;
}

size_t hop_suggest_distance(const char *a, const char *b)
{
	size_t n = strlen(a), m = strlen(b);
	/* d[i][j]: the distance between a's first i letters and b's first j. */
	size_t d[MAXLEN + 1][MAXLEN + 1];

	if (n > MAXLEN || m > MAXLEN)
		return SIZE_MAX;
	for (size_t i = 0; i <= n; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= m; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= n; i++) {
		for (size_t j = 1; j <= m; j++) {
			size_t cost = same(a[i - 1], b[j - 1]) ? 0 : 1;
			d[i][j] = min3(d[i - 1][j] + 1, d[i][j - 1] + 1,
				       d[i - 1][j - 1] + cost);
			if (i > 1 && j > 1 && same(a[i - 1], b[j - 2]) &&
			    same(a[i - 2], b[j - 1]) &&
			    d[i - 2][j - 2] + 1 < d[i][j])
				d[i][j] = d[i - 2][j - 2] + 1;
		}
	}
	return d[n][m];
}

void hop_suggest_init(struct hop_suggest *s, const char *word)
{
	*s = (struct hop_suggest){word, NULL, SIZE_MAX};
}

void hop_suggest_offer(struct hop_suggest *s, const char *candidate)
{
	size_t dist = hop_suggest_distance(s->word, candidate);
	if (dist < s->dist) {
		s->best = candidate;
		s->dist = dist;
	}
}

const char *hop_suggest_best(const struct hop_suggest *s)
{
	size_t limit = strlen(s->word) / 3;
	if (limit < 1)
		limit = 1;
	return s->best && s->dist > 0 && s->dist <= limit ? s->best : NULL;
}

const char *hop_suggest_spelled(const struct hop_suggest *s, char *buf,
				size_t n)
{
	const char *best = hop_suggest_best(s);
	if (!best || n == 0)
		return NULL;
	bool dashes = strchr(s->word, '-') && !strchr(s->word, '_');
	snprintf(buf, n, "%s", best);
	for (char *p = buf; dashes && *p; p++)
		if (*p == '_')
			*p = '-';
	return buf;
}
