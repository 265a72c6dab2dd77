/* yamlpos.c - YAML into a JSON tree, with positions, through libyaml's
 * event parser. */
#include "yamlpos.h"

#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "opts.h"

/* Keys deeper than this are not located: a pipeline file's errors name at
 * most a driver's option (source.glob). */
#define MAX_DEPTH 4

struct place {
	char *path; /* keys joined by '\n' */
	int key_line, key_col, value_line, value_col;
};

struct hop_yaml_pos {
	struct place *v;
	size_t n, cap;
};

struct anchor {
	char *name;
	json_t *value;
};

struct reader {
	yaml_parser_t parser;
	struct hop_yaml_pos *pos;
	struct anchor *anchors;
	size_t nanchors;
	const char *path[MAX_DEPTH];
	int depth;
	char *err;
	size_t errlen;
};

static int fail(struct reader *r, const yaml_mark_t *m, const char *why,
		const char *what)
{
	snprintf(r->err, r->errlen, "%zu:%zu: %s%s", m->line + 1, m->column + 1,
		 why, what ? what : "");
	return -EINVAL;
}

static int note_place(struct reader *r, const yaml_mark_t *key,
		      const yaml_mark_t *value)
{
	struct hop_yaml_pos *p = r->pos;
	size_t len = 0;
	for (int d = 0; d < r->depth; d++)
		len += strlen(r->path[d]) + 1;
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 32;
		struct place *v = realloc(p->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		p->v = v;
		p->cap = cap;
	}
	char *path = malloc(len + 1);
	if (!path)
		return -ENOMEM;
	path[0] = '\0';
	for (int d = 0; d < r->depth; d++) {
		strcat(path, r->path[d]);
		if (d + 1 < r->depth)
			strcat(path, "\n");
	}
	p->v[p->n++] =
	    (struct place){path, (int)key->line + 1, (int)key->column + 1,
			   (int)value->line + 1, (int)value->column + 1};
	return 0;
}

static bool matches(const char *s, const char *pattern)
{
	regex_t re;
	if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB))
		return false;
	bool ok = regexec(&re, s, 0, NULL, 0) == 0;
	regfree(&re);
	return ok;
}

/* A scalar's value: quoted ones are text, plain ones typed as YAML 1.2's
 * core schema types them. */
static json_t *scalar(const yaml_event_t *ev)
{
	const char *s = (const char *)ev->data.scalar.value;
	if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return json_stringn(s, ev->data.scalar.length);
	if (matches(s, "^(|~|null|Null|NULL)$"))
		return json_null();
	if (matches(s, "^(true|True|TRUE)$"))
		return json_true();
	if (matches(s, "^(false|False|FALSE)$"))
		return json_false();
	if (matches(s, "^[-+]?[0-9]+$")) {
		errno = 0;
		long long v = strtoll(s, NULL, 10);
		if (!errno)
			return json_integer(v);
	}
	if (matches(s,
		    "^[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?$"))
		return json_real(strtod(s, NULL));
	return json_stringn(s, ev->data.scalar.length);
}

static int node(struct reader *r, yaml_event_t *ev, json_t **out);

static int next(struct reader *r, yaml_event_t *ev)
{
	if (yaml_parser_parse(&r->parser, ev))
		return 0;
	const char *ctx = r->parser.context;
	/* glob: *.txt is the likeliest way to get here. */
	bool alias = ctx && strstr(ctx, "alias");
	snprintf(r->err, r->errlen, "%zu:%zu: invalid YAML: %s%s%s%s",
		 r->parser.problem_mark.line + 1,
		 r->parser.problem_mark.column + 1,
		 r->parser.problem ? r->parser.problem : "cannot parse",
		 ctx ? " " : "", ctx ? ctx : "",
		 alias ? " (quote a value that starts with *)" : "");
	return -EINVAL;
}

static int mapping(struct reader *r, json_t *obj)
{
	for (;;) {
		yaml_event_t kev, vev;
		json_t *key = NULL, *val = NULL;
		if (next(r, &kev))
			return -EINVAL;
		if (kev.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&kev);
			return 0;
		}
		int rc = node(r, &kev, &key);
		yaml_mark_t kmark = kev.start_mark;
		yaml_event_delete(&kev);
		if (rc)
			return rc;
		if (!json_is_string(key)) {
			json_decref(key);
			return fail(r, &kmark, "a key must be text", NULL);
		}
		const char *k = json_string_value(key);
		if (json_object_get(obj, k)) {
			snprintf(r->err, r->errlen,
				 "%zu:%zu: '%s' is given twice", kmark.line + 1,
				 kmark.column + 1, k);
			rc = -EINVAL;
			json_decref(key);
			return rc;
		}
		if (next(r, &vev)) {
			json_decref(key);
			return -EINVAL;
		}
		bool deep = r->depth < MAX_DEPTH;
		if (deep) {
			r->path[r->depth++] = k;
			rc = note_place(r, &kmark, &vev.start_mark);
		}
		if (!rc)
			rc = node(r, &vev, &val);
		if (deep)
			r->depth--;
		yaml_event_delete(&vev);
		if (!rc && json_object_set_new(obj, k, val))
			rc = -ENOMEM;
		json_decref(key);
		if (rc)
			return rc;
	}
}

static int sequence(struct reader *r, json_t *arr)
{
	for (;;) {
		yaml_event_t ev;
		json_t *v = NULL;
		if (next(r, &ev))
			return -EINVAL;
		if (ev.type == YAML_SEQUENCE_END_EVENT) {
			yaml_event_delete(&ev);
			return 0;
		}
		/* Items have no key: they are not located. */
		int depth = r->depth;
		r->depth = MAX_DEPTH;
		int rc = node(r, &ev, &v);
		r->depth = depth;
		yaml_event_delete(&ev);
		if (rc)
			return rc;
		json_array_append_new(arr, v);
	}
}

static int keep_anchor(struct reader *r, const yaml_char_t *name, json_t *v)
{
	if (!name)
		return 0;
	struct anchor *a =
	    realloc(r->anchors, (r->nanchors + 1) * sizeof(*r->anchors));
	if (!a)
		return -ENOMEM;
	r->anchors = a;
	a[r->nanchors++] =
	    (struct anchor){strdup((const char *)name), json_incref(v)};
	return 0;
}

/* Reads the node that ev starts into *out (a new reference). */
static int node(struct reader *r, yaml_event_t *ev, json_t **out)
{
	int rc;
	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		*out = scalar(ev);
		return keep_anchor(r, ev->data.scalar.anchor, *out);
	case YAML_ALIAS_EVENT:
		for (size_t i = r->nanchors; i-- > 0;)
			if (!strcmp(r->anchors[i].name,
				    (const char *)ev->data.alias.anchor)) {
				*out = json_deep_copy(r->anchors[i].value);
				return 0;
			}
		/* Most often a value that starts with '*' and was meant as
		 * text. */
		snprintf(r->err, r->errlen,
			 "%zu:%zu: no anchor named '%s' (a value that starts "
			 "with * is an alias unless quoted: \"*%s\")",
			 ev->start_mark.line + 1, ev->start_mark.column + 1,
			 (const char *)ev->data.alias.anchor,
			 (const char *)ev->data.alias.anchor);
		return -EINVAL;
	case YAML_MAPPING_START_EVENT:
		*out = json_object();
		rc = mapping(r, *out);
		if (!rc)
			rc =
			    keep_anchor(r, ev->data.mapping_start.anchor, *out);
		break;
	case YAML_SEQUENCE_START_EVENT:
		*out = json_array();
		rc = sequence(r, *out);
		if (!rc)
			rc = keep_anchor(r, ev->data.sequence_start.anchor,
					 *out);
		break;
	default:
		return fail(r, &ev->start_mark, "unexpected YAML", NULL);
	}
	if (rc) {
		json_decref(*out);
		*out = NULL;
	}
	return rc;
}

/* Reads the stream's first document; a second one is refused. */
static int document(struct reader *r, json_t **root)
{
	yaml_event_t ev;
	int rc = 0;

	*root = NULL;
	while (!rc && !(rc = next(r, &ev))) {
		yaml_event_type_t type = ev.type;
		if (type == YAML_STREAM_END_EVENT) {
			yaml_event_delete(&ev);
			break;
		}
		if (type == YAML_DOCUMENT_START_EVENT && *root)
			rc = fail(r, &ev.start_mark,
				  "a pipeline file holds one document", NULL);
		else if (type != YAML_STREAM_START_EVENT &&
			 type != YAML_DOCUMENT_START_EVENT &&
			 type != YAML_DOCUMENT_END_EVENT)
			rc = node(r, &ev, root);
		yaml_event_delete(&ev);
	}
	if (rc) {
		json_decref(*root);
		*root = NULL;
	}
	return rc;
}

json_t *hop_yaml_load(const char *text, size_t len, struct hop_yaml_pos **pos,
		      char *err, size_t errlen)
{
	struct reader r = {.err = err, .errlen = errlen};
	json_t *root = NULL;

	*pos = NULL;
	r.pos = calloc(1, sizeof(*r.pos));
	if (!r.pos || !yaml_parser_initialize(&r.parser)) {
		snprintf(err, errlen, "out of memory");
		free(r.pos);
		return NULL;
	}
	yaml_parser_set_input_string(&r.parser, (const unsigned char *)text,
				     len);
	if (document(&r, &root) == 0 && !root)
		snprintf(err, errlen, "1:1: the file is empty");
	yaml_parser_delete(&r.parser);
	for (size_t i = 0; i < r.nanchors; i++) {
		free(r.anchors[i].name);
		json_decref(r.anchors[i].value);
	}
	free(r.anchors);
	if (!root) {
		hop_yaml_pos_free(r.pos);
		return NULL;
	}
	*pos = r.pos;
	return root;
}

int hop_yaml_locate(const struct hop_yaml_pos *pos, const char *const *path,
		    int depth, bool value, int *line, int *col)
{
	char want[1024] = "";
	size_t n = 0;
	for (int d = 0; d < depth && n < sizeof(want); d++)
		n += (size_t)snprintf(want + n, sizeof(want) - n, "%s%s",
				      d ? "\n" : "", path[d]);
	for (size_t i = 0; pos && i < pos->n; i++) {
		if (!hop_opts_key_equal(pos->v[i].path, want))
			continue;
		*line = value ? pos->v[i].value_line : pos->v[i].key_line;
		*col = value ? pos->v[i].value_col : pos->v[i].key_col;
		return 0;
	}
	return -ENOENT;
}

void hop_yaml_pos_free(struct hop_yaml_pos *pos)
{
	if (!pos)
		return;
	for (size_t i = 0; i < pos->n; i++)
		free(pos->v[i].path);
	free(pos->v);
	free(pos);
}

bool hop_yaml_named(const char *file)
{
	size_t n = strlen(file);
	return (n > 5 && !strcmp(file + n - 5, ".yaml")) ||
	       (n > 4 && !strcmp(file + n - 4, ".yml"));
}
