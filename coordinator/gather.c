/* gather.c - join groups and reduce accumulators (gather.h). */
#include "gather.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonscan.h"
#include "opts.h"

/* Options. */

#define JOFF(f) offsetof(struct hop_join_config, f)

const struct hop_option hop_join_options[] = {
    {"on_part_dead", HOP_OPT_STR, "fail", JOFF(on_part_dead),
     "a part that dies: fail dead-letters the group's root with every "
     "part's error; collect hands the group on with the errors in it",
     .choices = "fail|collect"},
    {"timeout", HOP_OPT_SECONDS, "0", JOFF(timeout),
     "the longest a group waits from its first part; 0 for no limit",
     .min = "0", .def_words = "none"},
    {"on_timeout", HOP_OPT_STR, "fail", JOFF(on_timeout),
     "a group past its timeout: fail dead-letters its root; partial hands "
     "on what came, with \"missing\": true, and drops the late parts",
     .choices = "fail|partial"},
    {"max_parts", HOP_OPT_INT, "1000000", JOFF(max_parts),
     "the most parts the stage holds at once; a part past it fails its "
     "group, with an error that says so",
     .min = "1"},
    {NULL},
};

/* The reduce options as read, before the op is known. */
struct reduce_extra {
	char *op;
	char *field;
	char *by;
	int64_t every;
	double interval;
};

#define ROFF(f) offsetof(struct reduce_extra, f)

const struct hop_option hop_reduce_options[] = {
    {"op", HOP_OPT_STR, NULL, ROFF(op),
     "what to compute per key: count, sum, min, max, mean (kept as sum and "
     "count) or histogram (a count per bucket of buckets, or per value)",
     .choices = "count|sum|min|max|mean|histogram"},
    {"field", HOP_OPT_STR, NULL, ROFF(field),
     "a JSON pointer to the value (\"/size\"); all but count need one"},
    {"by", HOP_OPT_STR, NULL, ROFF(by),
     "a JSON pointer to the key (\"/codec\"); without it, one result"},
    {"every", HOP_OPT_INT, "0", ROFF(every),
     "a result each this many items (a count window); 0: once, when "
     "everything upstream has finished",
     .min = "0"},
    {"interval", HOP_OPT_SECONDS, "0", ROFF(interval),
     "a result each this many seconds (a time window); 0: none", .min = "0"},
    {NULL},
};

void hop_join_config_free(struct hop_join_config *c)
{
	if (!c)
		return;
	hop_opts_free(hop_join_options, c);
	free(c);
}

void hop_reduce_config_free(struct hop_reduce_config *c)
{
	if (!c)
		return;
	free(c->op_name);
	free(c->field);
	free(c->by);
	free(c->buckets);
	free(c);
}

int hop_join_parse(json_t *v, struct hop_join_config **out, char *msg, size_t n)
{
	struct hop_join_config *c = calloc(1, sizeof(*c));
	const char *k;
	json_t *e;

	*out = NULL;
	if (!c || hop_opts_defaults(hop_join_options, c, msg, n)) {
		hop_join_config_free(c);
		return c ? -EINVAL : -ENOMEM;
	}
	if (!json_is_true(v) && !json_is_object(v)) {
		snprintf(msg, n,
			 "'join' must be true or an object ({\"on_part_dead\": "
			 "\"collect\", \"timeout\": \"5m\"})");
		hop_join_config_free(c);
		return -EINVAL;
	}
	if (json_is_object(v))
		json_object_foreach(v, k, e)
		{
			char why[300];
			if (hop_opts_set_json(hop_join_options, c, k, e, why,
					      sizeof(why))) {
				snprintf(msg, n, "join: %s", why);
				hop_join_config_free(c);
				return -EINVAL;
			}
		}
	c->collect = strcmp(c->on_part_dead, "collect") == 0;
	c->partial = strcmp(c->on_timeout, "partial") == 0;
	*out = c;
	return 0;
}

static int parse_buckets(json_t *v, struct hop_reduce_config *c, char *msg,
			 size_t n)
{
	size_t i, len = json_is_array(v) ? json_array_size(v) : 0;
	json_t *e;

	if (!len) {
		snprintf(msg, n,
			 "reduce: 'buckets' must be a list of numbers, the "
			 "edges in ascending order ([1, 10, 100])");
		return -EINVAL;
	}
	c->buckets = calloc(len, sizeof(double));
	if (!c->buckets)
		return -ENOMEM;
	json_array_foreach(v, i, e)
	{
		if (!json_is_number(e) ||
		    (i > 0 && json_number_value(e) <= c->buckets[i - 1])) {
			snprintf(msg, n,
				 "reduce: bucket %zu is %s: the edges must be "
				 "numbers in ascending order",
				 i,
				 json_is_number(e) ? "not above the one before"
						   : "not a number");
			return -EINVAL;
		}
		c->buckets[i] = json_number_value(e);
	}
	c->nbuckets = (int)len;
	return 0;
}

static bool is_pointer(const char *p)
{
	return p && p[0] == '/';
}

int hop_reduce_parse(json_t *v, struct hop_reduce_config **out, char *msg,
		     size_t n)
{
	static const char *const ops[] = {"count", "sum",  "min",
					  "max",   "mean", "histogram"};
	struct hop_reduce_config *c = calloc(1, sizeof(*c));
	struct reduce_extra ex = {0};
	const char *k;
	json_t *e;
	int rc = -EINVAL;

	*out = NULL;
	if (!c)
		return -ENOMEM;
	if (hop_opts_defaults(hop_reduce_options, &ex, msg, n))
		goto out;
	if (!json_is_object(v)) {
		snprintf(msg, n,
			 "'reduce' must be an object ({\"op\": \"count\", "
			 "\"by\": \"/codec\"})");
		goto out;
	}
	json_object_foreach(v, k, e)
	{
		char why[300];
		if (strcmp(k, "buckets") == 0) {
			if ((rc = parse_buckets(e, c, msg, n)))
				goto out;
			rc = -EINVAL;
			continue;
		}
		if (hop_opts_set_json(hop_reduce_options, &ex, k, e, why,
				      sizeof(why))) {
			snprintf(msg, n, "reduce: %s%s", why,
				 hop_opts_find(hop_reduce_options, k)
				     ? ""
				     : " (its keys: op, field, by, buckets, "
				       "every, interval)");
			goto out;
		}
	}
	if (!ex.op) {
		snprintf(msg, n,
			 "reduce: no 'op' (count, sum, min, max, mean or "
			 "histogram)");
		goto out;
	}
	for (size_t i = 0; i < sizeof(ops) / sizeof(*ops); i++)
		if (strcmp(ex.op, ops[i]) == 0)
			c->op = (enum hop_reduce_op)i;
	if (c->op != HOP_REDUCE_COUNT && !ex.field) {
		snprintf(msg, n,
			 "reduce: '%s' needs a 'field', the JSON pointer to "
			 "the value (\"/size\")",
			 ex.op);
		goto out;
	}
	if ((ex.field && !is_pointer(ex.field)) ||
	    (ex.by && !is_pointer(ex.by))) {
		snprintf(msg, n,
			 "reduce: '%s' is not a JSON pointer: one starts with "
			 "'/' (\"/codec\", \"/video/height\")",
			 ex.field && !is_pointer(ex.field) ? ex.field : ex.by);
		goto out;
	}
	if (c->nbuckets && c->op != HOP_REDUCE_HISTOGRAM) {
		snprintf(msg, n, "reduce: 'buckets' is for op histogram only");
		goto out;
	}
	if (ex.every && ex.interval) {
		snprintf(msg, n,
			 "reduce: 'every' (a count window) and 'interval' (a "
			 "time window) cannot both be set");
		goto out;
	}
	c->op_name = ex.op;
	c->field = ex.field;
	c->by = ex.by;
	ex.op = ex.field = ex.by = NULL;
	c->every = ex.every;
	c->interval = ex.interval;
	*out = c;
	c = NULL;
	rc = 0;
out:
	hop_opts_free(hop_reduce_options, &ex);
	hop_reduce_config_free(c);
	return rc;
}

/* JSON pointers over the raw text. */

/* The raw span of the value at ptr in text, walking objects with the
 * scanner and arrays by index. Returns 1 and sets *val, *vlen when found,
 * 0 when absent, -1 when a segment needs unescaping the scanner's raw keys
 * cannot compare (the caller falls back to jansson). */
static int pointer_span(const char *text, size_t len, const char *ptr,
			const char **val, size_t *vlen)
{
	struct hop_json_member m[64];

	while (ptr && *ptr == '/') {
		const char *seg = ptr + 1;
		const char *end = strchr(seg, '/');
		size_t slen = end ? (size_t)(end - seg) : strlen(seg);
		if (memchr(seg, '~', slen))
			return -1;
		while (len && (*text == ' ' || *text == '\t' || *text == '\n' ||
			       *text == '\r'))
			text++, len--;
		if (len && *text == '[')
			return -1;
		int k = hop_json_members(text, len, m, 64);
		if (k < 0)
			return 0;
		if (k > 64)
			return -1;
		const struct hop_json_member *hit = NULL;
		for (int i = 0; i < k && !hit; i++)
			if (m[i].klen == slen &&
			    memcmp(m[i].key, seg, slen) == 0)
				hit = &m[i];
		if (!hit)
			return 0;
		if (memchr(hit->key, '\\', hit->klen))
			return -1;
		text = hit->val;
		len = hit->vlen;
		ptr = end;
	}
	*val = text;
	*vlen = len;
	return 1;
}

/* The same through jansson: slower, complete. */
static char *pointer_text_slow(const char *text, size_t len, const char *ptr,
			       bool *missing)
{
	json_t *root = json_loadb(text, len, JSON_DECODE_ANY, NULL);
	json_t *v = root;
	char part[256];

	while (v && ptr && *ptr == '/') {
		const char *end = strchr(ptr + 1, '/');
		size_t n = end ? (size_t)(end - ptr - 1) : strlen(ptr + 1);
		size_t k = 0;
		for (size_t i = 0; i < n && k + 1 < sizeof(part); i++) {
			char c = ptr[1 + i];
			if (c == '~' && i + 1 < n && ptr[2 + i] == '1')
				c = '/', i++;
			else if (c == '~' && i + 1 < n && ptr[2 + i] == '0')
				c = '~', i++;
			part[k++] = c;
		}
		part[k] = '\0';
		if (json_is_object(v))
			v = json_object_get(v, part);
		else if (json_is_array(v) && k > 0 && k < 10 &&
			 strspn(part, "0123456789") == k)
			v = json_array_get(v, (size_t)atol(part));
		else
			v = NULL;
		ptr = end;
	}
	char *s = NULL;
	*missing = !v;
	if (v)
		s = json_is_string(v)
			? strdup(json_string_value(v))
			: json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(root);
	return s;
}

char *hop_json_pointer_text(const char *text, size_t len, const char *ptr,
			    bool *missing)
{
	const char *v;
	size_t vlen;
	int rc = pointer_span(text, len, ptr, &v, &vlen);

	*missing = false;
	if (rc == 0) {
		*missing = true;
		return NULL;
	}
	if (rc < 0 || (vlen && v[0] == '"' && !hop_json_plain_string(v, vlen)))
		return pointer_text_slow(text, len, ptr, missing);
	if (vlen >= 2 && v[0] == '"')
		return strndup(v + 1, vlen - 2);
	if (vlen && (v[0] == '{' || v[0] == '['))
		return pointer_text_slow(text, len, ptr, missing);
	return strndup(v, vlen);
}

/* Join groups. */

int hop_group_add(struct hop_group *g, struct hop_item *part)
{
	for (size_t i = 0; i < g->nparts; i++)
		if (strcmp(g->parts[i]->id, part->id) == 0)
			return 1;
	if (g->nparts == g->cap) {
		size_t cap = g->cap ? 2 * g->cap : 8;
		struct hop_item **p = realloc(g->parts, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		g->parts = p;
		g->cap = cap;
	}
	g->parts[g->nparts++] = part;
	return 0;
}

void hop_group_error(struct hop_group *g, const char *id, const char *stage,
		     const char *error)
{
	json_t *e = json_pack("{s:s, s:s, s:s}", "id", id, "stage", stage,
			      "error", error ? error : "failed");
	if (!g->errors)
		g->errors = json_array();
	if (e && g->errors)
		json_array_append_new(g->errors, e);
	else
		json_decref(e);
}

int hop_id_cmp(const char *a, const char *b)
{
	while (*a && *b) {
		if (*a >= '0' && *a <= '9' && *b >= '0' && *b <= '9') {
			const char *ea = a, *eb = b;
			while (*a == '0')
				a++;
			while (*b == '0')
				b++;
			for (ea = a; *ea >= '0' && *ea <= '9'; ea++)
				;
			for (eb = b; *eb >= '0' && *eb <= '9'; eb++)
				;
			if (ea - a != eb - b)
				return ea - a < eb - b ? -1 : 1;
			int c = strncmp(a, b, (size_t)(ea - a));
			if (c)
				return c;
			a = ea;
			b = eb;
			continue;
		}
		if (*a != *b)
			return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
		a++;
		b++;
	}
	return *a ? 1 : *b ? -1 : 0;
}

static int part_cmp(const void *x, const void *y)
{
	const struct hop_item *a = *(struct hop_item *const *)x;
	const struct hop_item *b = *(struct hop_item *const *)y;
	return hop_id_cmp(a->id, b->id);
}

char *hop_group_payload(struct hop_group *g, bool partial)
{
	json_t *o = json_object();
	json_t *parts = json_array();
	char *s = NULL;

	if (!o || !parts)
		goto out;
	qsort(g->parts, g->nparts, sizeof(*g->parts), part_cmp);
	for (size_t i = 0; i < g->nparts; i++) {
		struct hop_item *p = g->parts[i];
		json_t *v = json_loadb(p->payload, p->payload_len,
				       JSON_DECODE_ANY, NULL);
		json_array_append_new(parts, v ? v : json_null());
	}
	json_t *rp = json_loadb(g->root->payload, g->root->payload_len,
				JSON_DECODE_ANY, NULL);
	json_object_set_new(o, "id", json_string(g->root->id));
	json_object_set_new(o, "root", rp ? rp : json_null());
	json_object_set(o, "parts", parts);
	if (g->errors && json_array_size(g->errors))
		json_object_set(o, "errors", g->errors);
	if (partial)
		json_object_set_new(o, "missing", json_true());
	s = json_dumps(o, JSON_COMPACT);
out:
	json_decref(parts);
	json_decref(o);
	return s;
}

void hop_group_free(struct hop_group *g)
{
	if (!g)
		return;
	free(g->parts);
	json_decref(g->errors);
	free(g);
}

/* Reduce accumulators: an open-addressing table of keys, and the keys in
 * the order they came, for results in a stable order. */

struct acc {
	char *key;
	uint64_t hash;
	uint64_t count;	  /* items folded in */
	double sum;	  /* sum and mean */
	double min, max;  /* min and max */
	uint64_t *bins;	  /* histogram with buckets: nbuckets + 1 */
	json_t *by_value; /* histogram without: {value: count} */
};

struct hop_reducer {
	const struct hop_reduce_config *cfg;
	struct acc *accs; /* in the order the keys came */
	size_t n, cap;
	uint32_t *slots; /* index + 1 into accs, 0 for empty */
	size_t nslots;
	uint64_t items;
};

struct hop_reducer *hop_reducer_new(const struct hop_reduce_config *c)
{
	struct hop_reducer *rd = calloc(1, sizeof(*rd));
	if (rd)
		rd->cfg = c;
	return rd;
}

static uint64_t hash_key(const char *k, size_t len)
{
	uint64_t h = 14695981039346656037ULL;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)k[i]) * 1099511628211ULL;
	return h;
}

static int grow(struct hop_reducer *rd)
{
	size_t ns = rd->nslots ? 2 * rd->nslots : 64;
	uint32_t *slots = calloc(ns, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < rd->n; i++) {
		size_t s = rd->accs[i].hash & (ns - 1);
		while (slots[s])
			s = (s + 1) & (ns - 1);
		slots[s] = (uint32_t)i + 1;
	}
	free(rd->slots);
	rd->slots = slots;
	rd->nslots = ns;
	return 0;
}

/* The accumulator of key (len bytes), made when new; NULL when memory ran
 * out. */
static struct acc *find(struct hop_reducer *rd, const char *key, size_t len)
{
	uint64_t h = hash_key(key, len);

	if ((rd->n + 1) * 4 > rd->nslots * 3 && grow(rd))
		return NULL;
	size_t s = h & (rd->nslots - 1);
	for (; rd->slots[s]; s = (s + 1) & (rd->nslots - 1)) {
		struct acc *a = &rd->accs[rd->slots[s] - 1];
		if (a->hash == h && strlen(a->key) == len &&
		    memcmp(a->key, key, len) == 0)
			return a;
	}
	if (rd->n == rd->cap) {
		size_t cap = rd->cap ? 2 * rd->cap : 16;
		struct acc *p = realloc(rd->accs, cap * sizeof(*p));
		if (!p)
			return NULL;
		rd->accs = p;
		rd->cap = cap;
	}
	struct acc *a = &rd->accs[rd->n];
	*a = (struct acc){.key = strndup(key, len),
			  .hash = h,
			  .min = INFINITY,
			  .max = -INFINITY};
	if (!a->key)
		return NULL;
	if (rd->cfg->op == HOP_REDUCE_HISTOGRAM && rd->cfg->nbuckets) {
		a->bins =
		    calloc((size_t)rd->cfg->nbuckets + 1, sizeof(*a->bins));
		if (!a->bins) {
			free(a->key);
			return NULL;
		}
	}
	rd->slots[s] = (uint32_t)++rd->n;
	return a;
}

/* The key's text: a string's content, anything else as JSON; "" with no
 * by. Sets *owned when it had to be copied. */
static int key_of(const struct hop_reducer *rd, const char *payload, size_t len,
		  const char **key, size_t *klen, char **owned, char *msg,
		  size_t n)
{
	const char *v;
	size_t vlen;
	bool missing;

	*owned = NULL;
	if (!rd->cfg->by) {
		*key = "";
		*klen = 0;
		return 0;
	}
	int rc = pointer_span(payload, len, rd->cfg->by, &v, &vlen);
	if (rc > 0 && vlen >= 2 && v[0] == '"' &&
	    hop_json_plain_string(v, vlen)) {
		*key = v + 1;
		*klen = vlen - 2;
		return 0;
	}
	if (rc > 0 && vlen && v[0] != '"' && v[0] != '{' && v[0] != '[') {
		*key = v;
		*klen = vlen;
		return 0;
	}
	*owned = rc == 0 ? NULL
			 : hop_json_pointer_text(payload, len, rd->cfg->by,
						 &missing);
	if (rc == 0 || (!*owned && missing)) {
		snprintf(msg, n, "no key at %s (\"by\")", rd->cfg->by);
		return -EINVAL;
	}
	if (!*owned)
		return -ENOMEM;
	*key = *owned;
	*klen = strlen(*owned);
	return 0;
}

int hop_reducer_add(struct hop_reducer *rd, const char *payload, size_t len,
		    char *msg, size_t n)
{
	const struct hop_reduce_config *c = rd->cfg;
	const char *key, *v = NULL;
	size_t klen, vlen = 0;
	char *owned, *vtext = NULL;
	double x = 0;
	int rc;

	if (c->op != HOP_REDUCE_COUNT) {
		rc = pointer_span(payload, len, c->field, &v, &vlen);
		if (rc < 0) {
			bool missing;
			vtext = hop_json_pointer_text(payload, len, c->field,
						      &missing);
			if (!vtext && !missing)
				return -ENOMEM;
			rc = vtext ? 1 : 0;
			v = vtext;
			vlen = vtext ? strlen(vtext) : 0;
		}
		if (rc == 0) {
			snprintf(msg, n, "no value at %s (\"field\")",
				 c->field);
			return -EINVAL;
		}
		bool numeric = false;
		if (vlen && vlen < 64 && v[0] != '"') {
			char buf[64], *end;
			memcpy(buf, v, vlen);
			buf[vlen] = '\0';
			x = strtod(buf, &end);
			numeric = end != buf && *end == '\0' && isfinite(x);
		}
		bool by_value = c->op == HOP_REDUCE_HISTOGRAM && !c->nbuckets;
		if (!numeric && !by_value) {
			snprintf(msg, n,
				 "the value at %s (\"field\") is %.*s, not a "
				 "number",
				 c->field, (int)(vlen > 60 ? 60 : vlen), v);
			free(vtext);
			return -EINVAL;
		}
	}
	if ((rc = key_of(rd, payload, len, &key, &klen, &owned, msg, n))) {
		free(vtext);
		return rc;
	}
	struct acc *a = find(rd, key, klen);
	free(owned);
	if (!a) {
		free(vtext);
		return -ENOMEM;
	}
	a->count++;
	rd->items++;
	switch (c->op) {
	case HOP_REDUCE_COUNT:
		break;
	case HOP_REDUCE_SUM:
	case HOP_REDUCE_MEAN:
		a->sum += x;
		break;
	case HOP_REDUCE_MIN:
	case HOP_REDUCE_MAX:
		if (x < a->min)
			a->min = x;
		if (x > a->max)
			a->max = x;
		break;
	case HOP_REDUCE_HISTOGRAM:
		if (c->nbuckets) {
			int b = 0;
			while (b < c->nbuckets && x >= c->buckets[b])
				b++;
			a->bins[b]++;
		} else {
			/* A count per value: a string's content, else its
			 * JSON. */
			char *name =
			    vlen >= 2 && v[0] == '"'
				? hop_json_pointer_text(payload, len, c->field,
							&(bool){false})
				: strndup(v, vlen);
			if (!a->by_value)
				a->by_value = json_object();
			if (!name || !a->by_value) {
				free(name);
				free(vtext);
				return -ENOMEM;
			}
			json_t *cnt = json_object_get(a->by_value, name);
			json_object_set_new(
			    a->by_value, name,
			    json_integer(cnt ? json_integer_value(cnt) + 1
					     : 1));
			free(name);
		}
		break;
	}
	free(vtext);
	return 0;
}

uint64_t hop_reducer_items(const struct hop_reducer *rd)
{
	return rd->items;
}

size_t hop_reducer_keys(const struct hop_reducer *rd)
{
	return rd->n;
}

/* A double as JSON: an integer when it is one. */
static json_t *number(double x)
{
	if (x == floor(x) && fabs(x) < 9e15)
		return json_integer((json_int_t)x);
	return json_real(x);
}

int hop_reducer_result(const struct hop_reducer *rd, size_t i, char **id,
		       char **json)
{
	const struct hop_reduce_config *c = rd->cfg;
	const struct acc *a = &rd->accs[i];
	json_t *o = json_object();

	*id = NULL;
	*json = NULL;
	if (!o)
		return -ENOMEM;
	if (c->by)
		json_object_set_new(o, "key", json_string(a->key));
	json_object_set_new(o, "op", json_string(c->op_name));
	if (c->field)
		json_object_set_new(o, "field", json_string(c->field));
	json_object_set_new(o, "count", json_integer((json_int_t)a->count));
	switch (c->op) {
	case HOP_REDUCE_COUNT:
		json_object_set_new(o, "value",
				    json_integer((json_int_t)a->count));
		break;
	case HOP_REDUCE_SUM:
		json_object_set_new(o, "value", number(a->sum));
		break;
	case HOP_REDUCE_MEAN:
		json_object_set_new(o, "sum", number(a->sum));
		json_object_set_new(o, "value", number(a->sum / a->count));
		break;
	case HOP_REDUCE_MIN:
		json_object_set_new(o, "value", number(a->min));
		break;
	case HOP_REDUCE_MAX:
		json_object_set_new(o, "value", number(a->max));
		break;
	case HOP_REDUCE_HISTOGRAM:
		if (c->nbuckets) {
			json_t *edges = json_array(), *counts = json_array();
			for (int b = 0; b < c->nbuckets; b++)
				json_array_append_new(edges,
						      number(c->buckets[b]));
			for (int b = 0; b <= c->nbuckets; b++)
				json_array_append_new(
				    counts,
				    json_integer((json_int_t)a->bins[b]));
			json_object_set_new(o, "buckets", edges);
			json_object_set_new(o, "counts", counts);
		} else {
			json_object_set_new(o, "counts",
					    a->by_value
						? json_incref(a->by_value)
						: json_object());
		}
		break;
	}
	*json = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	*id = strdup(c->by ? a->key : "all");
	if (!*json || !*id) {
		free(*json);
		free(*id);
		*json = *id = NULL;
		return -ENOMEM;
	}
	return 0;
}

void hop_reducer_clear(struct hop_reducer *rd)
{
	for (size_t i = 0; i < rd->n; i++) {
		free(rd->accs[i].key);
		free(rd->accs[i].bins);
		json_decref(rd->accs[i].by_value);
	}
	rd->n = 0;
	rd->items = 0;
	if (rd->slots)
		memset(rd->slots, 0, rd->nslots * sizeof(*rd->slots));
}

void hop_reducer_free(struct hop_reducer *rd)
{
	if (!rd)
		return;
	hop_reducer_clear(rd);
	free(rd->accs);
	free(rd->slots);
	free(rd);
}
