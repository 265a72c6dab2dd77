/* answer.c - a stream worker's stdout line, read one way everywhere. */
#include "answer.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonscan.h"
#include "spool.h"

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

/* A string member, or none; a bad emit's text names it otherwise. Returns
 * 0, or -1 with a->text set. */
static int emit_string(const struct hop_json_member *m, const char *name,
		       char **out, struct hop_answer *a)
{
	*out = NULL;
	if (!m)
		return 0;
	if (m->val[0] == '"' && (*out = string_value(m)) != NULL)
		return 0;
	if (asprintf(&a->text, "\"%s\" must be a string, not %.*s", name,
		     (int)(m->vlen > 40 ? 40 : m->vlen), m->val) < 0)
		a->text = NULL;
	return -1;
}

/* The members of an emit line: payload, port and key. */
static enum hop_answer_kind read_emit(const struct hop_json_member *m, int n,
				      const struct hop_json_member *emit,
				      struct hop_answer *a)
{
	if (hop_json_get(m, n, "ok")) {
		a->text = strdup("an emit line carries no \"ok\": the answer "
				 "comes on a line of its own");
		return a->kind = HOP_ANSWER_BAD_EMIT;
	}
	if (emit_string(hop_json_get(m, n, "port"), "port", &a->port, a) ||
	    emit_string(hop_json_get(m, n, "key"), "key", &a->key, a)) {
		free(a->port);
		a->port = NULL;
		return a->kind = HOP_ANSWER_BAD_EMIT;
	}
	a->result = emit->val;
	a->result_len = emit->vlen;
	return a->kind = HOP_ANSWER_EMIT;
}

enum hop_answer_kind hop_answer_read_emit(const char *line, size_t len,
					  struct hop_answer *a)
{
	struct hop_json_member m[MAX_MEMBERS];

	memset(a, 0, sizeof(*a));
	int n = hop_json_members(line, len, m, MAX_MEMBERS);
	if (n < 0)
		return a->kind = HOP_ANSWER_NOT_OBJECT;
	if (n > MAX_MEMBERS)
		n = MAX_MEMBERS;
	const struct hop_json_member *emit = hop_json_get(m, n, "emit");
	a->emits = emit != NULL;
	if (!emit) {
		a->text = strdup("no \"emit\" member");
		return a->kind = HOP_ANSWER_BAD_EMIT;
	}
	return read_emit(m, n, emit, a);
}

/* The members of an answer line, each the first of its name (as
 * hop_json_get() would find it), found in one pass over the members rather
 * than one pass per name: every answer of every stage is read here. */
struct answer_members {
	const struct hop_json_member *id, *ok, *emit, *result, *drop, *retry,
	    *error, *progress;
};

static void answer_members(const struct hop_json_member *m, int n,
			   struct answer_members *f)
{
	memset(f, 0, sizeof(*f));
	for (int i = 0; i < n; i++) {
		const char *k = m[i].key;
		const struct hop_json_member **slot = NULL;
		switch (m[i].klen) {
		case 2:
			slot = !memcmp(k, "id", 2)   ? &f->id
			       : !memcmp(k, "ok", 2) ? &f->ok
						     : NULL;
			break;
		case 4:
			slot = !memcmp(k, "emit", 4)   ? &f->emit
			       : !memcmp(k, "drop", 4) ? &f->drop
						       : NULL;
			break;
		case 5:
			slot = !memcmp(k, "retry", 5)	? &f->retry
			       : !memcmp(k, "error", 5) ? &f->error
							: NULL;
			break;
		case 6:
			slot = !memcmp(k, "result", 6) ? &f->result : NULL;
			break;
		case 8:
			slot = !memcmp(k, "progress", 8) ? &f->progress : NULL;
			break;
		}
		if (slot && !*slot)
			*slot = &m[i];
	}
}

enum hop_answer_kind hop_answer_read(const char *line, size_t len,
				     const char *want, struct hop_answer *a)
{
	struct hop_json_member m[MAX_MEMBERS];
	struct answer_members f;

	memset(a, 0, sizeof(*a));
	int n = hop_json_members(line, len, m, MAX_MEMBERS);
	if (n < 0)
		return a->kind = HOP_ANSWER_NOT_OBJECT;
	if (n > MAX_MEMBERS)
		n = MAX_MEMBERS;
	answer_members(m, n, &f);
	a->emits = f.emit != NULL;
	if (f.id && same_number(f.id, want))
		return a->kind = HOP_ANSWER_NUMBER_ID;
	if (!f.id || f.id->val[0] != '"')
		return a->kind = HOP_ANSWER_NO_ID;
	if (!same_id(f.id, want)) {
		a->text = string_value(f.id);
		return a->kind = HOP_ANSWER_OTHER_ID;
	}
	if (f.emit)
		return read_emit(m, n, f.emit, a);
	if (!f.ok && f.progress)
		return a->kind = HOP_ANSWER_PROGRESS;
	if (is_literal(f.ok, "true")) {
		a->result = f.result ? f.result->val : "null";
		a->result_len = f.result ? f.result->vlen : 4;
		a->drop = is_literal(f.drop, "true");
		return a->kind = HOP_ANSWER_OK;
	}
	if (!is_literal(f.ok, "false"))
		return a->kind = HOP_ANSWER_NO_OK;
	a->retry = !is_literal(f.retry, "false");
	a->text = string_value(f.error);
	return a->kind = HOP_ANSWER_FAILED;
}

void hop_answer_free(struct hop_answer *a)
{
	free(a->text);
	free(a->port);
	free(a->key);
	a->text = a->port = a->key = NULL;
}

/* Adds one line of an emit file to the spool, made at the first output. */
static int emit_file_line(const char *line, size_t len, const char *dir,
			  size_t mem_limit, struct hop_spool **out, char *why,
			  size_t whylen)
{
	struct hop_answer a;
	int rc = 0;

	switch (hop_answer_read_emit(line, len, &a)) {
	case HOP_ANSWER_EMIT:
		break;
	case HOP_ANSWER_NOT_OBJECT:
		snprintf(why, whylen, "not a JSON object: '%.*s'",
			 (int)(len > 80 ? 80 : len), line);
		rc = -EINVAL;
		goto out;
	default:
		snprintf(why, whylen, "%s", a.text ? a.text : "not an emit");
		rc = -EINVAL;
		goto out;
	}
	struct hop_emit e = {(char *)a.result, a.result_len, a.port, a.key};
	if (!*out && !(*out = hop_spool_new(dir, mem_limit)))
		rc = -ENOMEM;
	else
		rc = hop_spool_add(*out, &e);
	if (rc)
		snprintf(why, whylen, "cannot keep its outputs in %s: %s", dir,
			 strerror(-rc));
out:
	hop_answer_free(&a);
	return rc;
}

int hop_answer_emit_file(const char *path, const char *dir, size_t mem_limit,
			 struct hop_spool **out, char *err, size_t errlen)
{
	char *line = NULL, why[256];
	size_t cap = 0;
	ssize_t len;
	long no = 0;
	int rc = 0;

	*out = NULL;
	FILE *f = fopen(path, "re");
	if (!f) {
		if (errno == ENOENT)
			return 0;
		rc = -errno;
		snprintf(err, errlen, "cannot read %s: %s", path,
			 strerror(errno));
		return rc;
	}
	while ((len = getline(&line, &cap, f)) >= 0) {
		no++;
		while (len > 0 &&
		       (line[len - 1] == '\n' || line[len - 1] == '\r'))
			len--;
		if (len == 0)
			continue;
		rc = emit_file_line(line, (size_t)len, dir, mem_limit, out, why,
				    sizeof(why));
		if (rc) {
			snprintf(err, errlen, "line %ld: %s", no, why);
			goto out_free;
		}
	}
	if (ferror(f)) {
		rc = -EIO;
		snprintf(err, errlen, "cannot read %s: %s", path,
			 strerror(EIO));
	}
out_free:
	free(line);
	fclose(f);
	if (rc) {
		hop_spool_free(*out);
		*out = NULL;
		return rc;
	}
	return 1;
}
