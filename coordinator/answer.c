/* answer.c - a stream worker's stdout line, read one way everywhere. */
#include "answer.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "jsonscan.h"

/* Members read from an answer; the rest are ignored, as the contract lets
 * the answer grow. */
#define MAX_MEMBERS 16

/* Decodes a JSON string value's span; NULL when it is not a string. */
static char *string_value(const struct hop_json_member *m)
{
	if (!m || m->vlen < 2 || m->val[0] != '"')
		return NULL;
	if (hop_json_plain_string(m->val, m->vlen))
		return strndup(m->val + 1, m->vlen - 2);
	json_t *v = json_loadb(m->val, m->vlen, JSON_DECODE_ANY, NULL);
	char *s = json_is_string(v) ? strdup(json_string_value(v)) : NULL;
	json_decref(v);
	return s;
}

static bool is_literal(const struct hop_json_member *m, const char *word)
{
	return m && m->vlen == strlen(word) &&
	       memcmp(m->val, word, m->vlen) == 0;
}

/* True when the string value's content is want. */
static bool same_id(const struct hop_json_member *id, const char *want)
{
	size_t n = strlen(want);
	if (hop_json_plain_string(id->val, id->vlen))
		return id->vlen - 2 == n && memcmp(id->val + 1, want, n) == 0;
	char *s = string_value(id);
	bool same = s && strcmp(s, want) == 0;
	free(s);
	return same;
}

/* True when a number value reads as want: 1 or 1.0 for "1". */
static bool same_number(const struct hop_json_member *id, const char *want)
{
	char *end;
	if (id->val[0] != '-' && (id->val[0] < '0' || id->val[0] > '9'))
		return false;
	double got = strtod(id->val, &end);
	if (end != id->val + id->vlen)
		return false;
	if (!*want || want[strspn(want, "0123456789.eE+-")])
		return false; /* not "0x1A", " 1" or "inf" */
	double w = strtod(want, &end);
	return !*end && got == w;
}

enum hop_answer_kind hop_answer_read(const char *line, size_t len,
				     const char *want, struct hop_answer *a)
{
	struct hop_json_member m[MAX_MEMBERS];

	memset(a, 0, sizeof(*a));
	int n = hop_json_members(line, len, m, MAX_MEMBERS);
	if (n < 0)
		return a->kind = HOP_ANSWER_NOT_OBJECT;
	if (n > MAX_MEMBERS)
		n = MAX_MEMBERS;
	const struct hop_json_member *id = hop_json_get(m, n, "id");
	if (id && same_number(id, want))
		return a->kind = HOP_ANSWER_NUMBER_ID;
	if (!id || id->val[0] != '"')
		return a->kind = HOP_ANSWER_NO_ID;
	if (!same_id(id, want)) {
		a->text = string_value(id);
		return a->kind = HOP_ANSWER_OTHER_ID;
	}
	const struct hop_json_member *ok = hop_json_get(m, n, "ok");
	if (!ok && hop_json_get(m, n, "progress"))
		return a->kind = HOP_ANSWER_PROGRESS;
	if (is_literal(ok, "true")) {
		const struct hop_json_member *res =
		    hop_json_get(m, n, "result");
		a->result = res ? res->val : "null";
		a->result_len = res ? res->vlen : 4;
		return a->kind = HOP_ANSWER_OK;
	}
	if (!is_literal(ok, "false"))
		return a->kind = HOP_ANSWER_NO_OK;
	a->retry = !is_literal(hop_json_get(m, n, "retry"), "false");
	a->text = string_value(hop_json_get(m, n, "error"));
	return a->kind = HOP_ANSWER_FAILED;
}

void hop_answer_free(struct hop_answer *a)
{
	free(a->text);
	a->text = NULL;
}
