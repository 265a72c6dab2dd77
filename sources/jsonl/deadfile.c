/* deadfile.c - a jsonl source's dead-letter file (see deadfile.h). */
#include "sources/jsonl/deadfile.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/buf.h"
#include "coordinator/fsutil.h"

int hop_jsonl_dead_open(struct hop_jsonl_dead *d, const char *path, char *err,
			size_t errlen)
{
	*d = (struct hop_jsonl_dead){.path = path};
	if (!path) {
		snprintf(err, errlen,
			 "jsonl source: no dead-letter file: give the one "
			 "the run wrote with -S dead=FILE");
		return -EINVAL;
	}
	FILE *f = fopen(path, "re");
	if (!f && errno == ENOENT)
		return 0; /* nothing has died yet */
	if (!f) {
		int rc = -errno;
		snprintf(err, errlen, "jsonl source: dead-letter file %s: %s",
			 path, strerror(errno));
		return rc;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int rc = 0;
	while (!rc && (len = getline(&line, &cap, f)) >= 0) {
		if (len && line[len - 1] == '\n')
			line[--len] = '\0';
		if (strspn(line, " \t") == (size_t)len)
			continue;
		char **v = realloc(d->lines, (d->n + 1) * sizeof(*v));
		if (!v || !(v[d->n] = strdup(line))) {
			if (v)
				d->lines = v;
			rc = -ENOMEM;
			break;
		}
		d->lines = v;
		d->n++;
	}
	free(line);
	fclose(f);
	if (rc)
		hop_jsonl_dead_close(d);
	return rc;
}

/* The record of line i, parsed (NULL when it is not a JSON object). */
static json_t *record(const struct hop_jsonl_dead *d, size_t i)
{
	json_t *r = d->lines[i] ? json_loads(d->lines[i], 0, NULL) : NULL;
	if (r && !json_is_object(r)) {
		json_decref(r);
		r = NULL;
	}
	return r;
}

static const char *id_of(json_t *r)
{
	return json_string_value(json_object_get(r, "id"));
}

int hop_jsonl_dead_list(struct hop_jsonl_dead *d, hop_dead_each_fn each,
			void *arg)
{
	int rc = 0;
	for (size_t i = 0; i < d->n && !rc; i++) {
		json_t *r = record(d, i);
		if (!r || !id_of(r)) {
			json_decref(r);
			continue;
		}
		json_t *p = json_object_get(r, "payload");
		char *payload =
		    p ? json_dumps(p, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
		json_t *a = json_object_get(r, "attempts");
		struct hop_dead_letter l = {
		    .id = id_of(r),
		    .item = id_of(r),
		    .error = json_string_value(json_object_get(r, "error")),
		    .attempts = json_is_integer(a) ? json_integer_value(a) : -1,
		    .when = json_string_value(json_object_get(r, "died")),
		    .payload = payload,
		    .record = d->lines[i],
		};
		rc = each(arg, &l);
		free(payload);
		json_decref(r);
	}
	return rc;
}

/* Rewrites the file with the lines still in it. */
static int rewrite(struct hop_jsonl_dead *d, char *err, size_t errlen)
{
	struct hop_buf b = {0};
	int rc = 0;
	for (size_t i = 0; i < d->n && !rc; i++)
		if (d->lines[i])
			rc = hop_buf_appendf(&b, "%s\n", d->lines[i]);
	if (!rc)
		rc = hop_write_file(d->path, b.data ? b.data : "",
				    hop_buf_len(&b), true);
	hop_buf_free(&b);
	if (rc)
		snprintf(err, errlen, "jsonl source: dead-letter file %s: %s",
			 d->path, strerror(-rc));
	return rc;
}

/* Takes out the lines of id, writing their payloads to out first when
 * out is set. */
static int take(struct hop_jsonl_dead *d, const char *id, bool retry, FILE *out,
		char *err, size_t errlen)
{
	bool *hit = calloc(d->n + 1, sizeof(*hit));
	size_t hits = 0;
	int rc = 0;

	if (!hit)
		return -ENOMEM;
	for (size_t i = 0; i < d->n && !rc; i++) {
		json_t *r = record(d, i);
		const char *rid = id_of(r);
		if (rid && !strcmp(rid, id)) {
			json_t *p = json_object_get(r, "payload");
			if (retry && (!p || json_is_null(p))) {
				snprintf(err, errlen,
					 "its payload was not JSON, and was "
					 "not kept");
				rc = -EINVAL;
			}
			hit[i] = true;
			hits++;
		}
		json_decref(r);
	}
	if (!rc && !hits) {
		snprintf(err, errlen, "no dead letter %s in %s", id, d->path);
		rc = -ENOENT;
	}
	if (!rc && retry && !out) {
		snprintf(err, errlen,
			 "a stream cannot take it back: give --to FILE (or "
			 "- for stdout) for its payload");
		rc = -EINVAL;
	}
	for (size_t i = 0; i < d->n && !rc && retry; i++) {
		json_t *r = hit[i] ? record(d, i) : NULL;
		char *s = r ? json_dumps(json_object_get(r, "payload"),
					 JSON_COMPACT | JSON_ENCODE_ANY)
			    : NULL;
		if (r && (!s || fprintf(out, "%s\n", s) < 0 || fflush(out))) {
			snprintf(err, errlen, "cannot write its payload: %s",
				 strerror(errno));
			rc = -EIO;
		}
		free(s);
		json_decref(r);
	}
	if (!rc) {
		char **kept = malloc((d->n + 1) * sizeof(*kept));
		if (!kept) {
			free(hit);
			return -ENOMEM;
		}
		for (size_t i = 0; i < d->n; i++) {
			kept[i] = d->lines[i];
			if (hit[i])
				d->lines[i] = NULL;
		}
		rc = rewrite(d, err, errlen);
		for (size_t i = 0; i < d->n; i++) {
			if (rc)
				d->lines[i] = kept[i]; /* as it was */
			else if (hit[i])
				free(kept[i]);
		}
		free(kept);
	}
	free(hit);
	return rc;
}

int hop_jsonl_dead_retry(struct hop_jsonl_dead *d, const char *id, FILE *out,
			 char *err, size_t errlen)
{
	return take(d, id, true, out, err, errlen);
}

int hop_jsonl_dead_discard(struct hop_jsonl_dead *d, const char *id, char *err,
			   size_t errlen)
{
	return take(d, id, false, NULL, err, errlen);
}

void hop_jsonl_dead_close(struct hop_jsonl_dead *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->lines[i]);
	free(d->lines);
	d->lines = NULL;
	d->n = 0;
}
