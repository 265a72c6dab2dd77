/* gather.c - join groups and reduce accumulators (gather.h). */
#include "gather.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonscan.h"
#include "gstore.h"
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
    {"by", HOP_OPT_STR, NULL, JOFF(by),
     "join by key: a JSON pointer to the key in each part (\"/video\"), "
     "or \"key\" for the key the part was emitted with; without it, each "
     "source item's parts are joined"},
    {"count", HOP_OPT_STR, NULL, JOFF(count),
     "by key: a JSON pointer to the number of parts of the group "
     "(\"/total\"), carried by any of its parts"},
    {"end", HOP_OPT_STR, NULL, JOFF(end),
     "by key: a JSON pointer to the end marker (\"/last\"): the part where "
     "it is there and not false or null is the last; needs seq"},
    {"seq", HOP_OPT_STR, NULL, JOFF(seq),
     "by key with end: a JSON pointer to each part's number, 0 first; the "
     "group is complete once the last part and every number before it "
     "came"},
    {"remember", HOP_OPT_INT, "100000", JOFF(remember),
     "by key: how many closed groups' keys are kept, so that a part that "
     "comes after its group is known to be late",
     .min = "0"},
    {"state", HOP_OPT_STR, NULL, JOFF(state),
     "by key: a PostgreSQL URL where the groups are kept, so that each "
     "part's source item is acknowledged once the part is stored, and "
     "groups outlive the coordinator and are shared by several"},
    {"state_table", HOP_OPT_STR, NULL, JOFF(state_table),
     "with state: the table of the parts (and TABLE_groups of the groups)",
     .def_words = "hopper_join_STAGE"},
    {NULL},
};

/* The reduce options as read, before the op is known. */
struct reduce_extra {
	char *op;
	char *field;
	char *by;
	int64_t every;
	double interval;
	double grace;
	char *time;
	int64_t batch;
	bool merge;
	char *state;
	char *state_table;
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
     "a result each this many seconds (a tumbling time window, aligned to "
     "the epoch); 0: none; needs grace",
     .min = "0"},
    {"grace", HOP_OPT_SECONDS, NULL, ROFF(grace),
     "a time window: how long it stays open past its end for items that "
     "come late; an item for a window already closed goes to the stage's "
     "port late",
     .min = "0", .def_words = "none: required with interval"},
    {"time", HOP_OPT_STR, NULL, ROFF(time),
     "a time window: a JSON pointer to an item's event time, in seconds "
     "since the epoch (\"/ts\"); without it, the time the item came"},
    {"batch", HOP_OPT_INT, "100", ROFF(batch),
     "a reducer worker (a command, no op): the most items it gets at once",
     .min = "1"},
    {"merge", HOP_OPT_BOOL, "false", ROFF(merge),
     "a reducer worker that merges two accumulators ({\"merge\": [a, "
     "b]}): its batches run side by side, as a tree"},
    {"state", HOP_OPT_STR, NULL, ROFF(state),
     "a built-in op: a PostgreSQL URL where the accumulators are kept, so "
     "that each item's source item is acknowledged once it is counted "
     "there, each item counts once across runs, and results outlive the "
     "coordinator"},
    {"state_table", HOP_OPT_STR, NULL, ROFF(state_table),
     "with state: the table of the accumulators (and TABLE_seen, "
     "TABLE_windows)",
     .def_words = "hopper_reduce_STAGE"},
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
	free(c->time);
	free(c->buckets);
	free(c->state);
	free(c->state_table);
	free(c);
}

static bool is_pointer(const char *p);

/* A join by key needs a key, and one way to know a group's size. */
static int join_by_key_check(const struct hop_join_config *c, char *msg,
			     size_t n)
{
	const char *bad = NULL;

	if (!c->by) {
		bool keyed = c->count || c->end || c->seq || c->state;
		if (keyed)
			snprintf(msg, n,
				 "join: '%s' is for a join by key: give 'by' "
				 "too (\"/video\", or \"key\")",
				 c->count ? "count"
				 : c->end ? "end"
				 : c->seq ? "seq"
					  : "state");
		return keyed ? -EINVAL : 0;
	}
	if (c->state) {
		char why[300];
		if (hop_gstore_check(c->state, c->state_table, why,
				     sizeof(why))) {
			snprintf(msg, n, "join: %s", why);
			return -EINVAL;
		}
	}
	if (c->state_table && !c->state) {
		snprintf(msg, n, "join: 'state_table' goes with 'state'");
		return -EINVAL;
	}
	if (strcmp(c->by, "key") && !is_pointer(c->by))
		bad = c->by;
	else if (c->count && !is_pointer(c->count))
		bad = c->count;
	else if (c->end && !is_pointer(c->end))
		bad = c->end;
	else if (c->seq && !is_pointer(c->seq))
		bad = c->seq;
	if (bad) {
		snprintf(msg, n,
			 "join: '%s' is not a JSON pointer: one starts with "
			 "'/' (\"/video\", \"/total\")%s",
			 bad,
			 bad == c->by ? "; or \"key\", the emitted key" : "");
		return -EINVAL;
	}
	if (!c->count == !c->end) {
		snprintf(msg, n,
			 "join: by key, a group needs its size: 'count' (a "
			 "JSON pointer to the number of parts) or 'end' (to "
			 "the last part's marker, with 'seq'), one of them");
		return -EINVAL;
	}
	if (c->end && !c->seq) {
		snprintf(
		    msg, n,
		    "join: 'end' needs 'seq', a JSON pointer to each "
		    "part's number (0 first): parts may come in any order");
		return -EINVAL;
	}
	if (c->seq && !c->end) {
		snprintf(msg, n, "join: 'seq' goes with 'end'");
		return -EINVAL;
	}
	return 0;
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
	if (join_by_key_check(c, msg, n)) {
		hop_join_config_free(c);
		return -EINVAL;
	}
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
	bool grace_given = false, batch_given = false;
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
		grace_given |= strcmp(k, "grace") == 0;
		batch_given |=
		    strcmp(k, "batch") == 0 || strcmp(k, "merge") == 0;
		if (hop_opts_set_json(hop_reduce_options, &ex, k, e, why,
				      sizeof(why))) {
			snprintf(msg, n, "reduce: %s%s", why,
				 hop_opts_find(hop_reduce_options, k)
				     ? ""
				     : " (its keys: op, field, by, buckets, "
				       "every, interval, grace, time, batch, "
				       "merge, state, state_table)");
			goto out;
		}
	}
	for (size_t i = 0; ex.op && i < sizeof(ops) / sizeof(*ops); i++)
		if (strcmp(ex.op, ops[i]) == 0)
			c->op = (enum hop_reduce_op)i;
	if (ex.op && c->op != HOP_REDUCE_COUNT && !ex.field) {
		snprintf(msg, n,
			 "reduce: '%s' needs a 'field', the JSON pointer to "
			 "the value (\"/size\")",
			 ex.op);
		goto out;
	}
	const char *bad = ex.field && !is_pointer(ex.field) ? ex.field
			  : ex.by && !is_pointer(ex.by)	    ? ex.by
			  : ex.time && !is_pointer(ex.time) ? ex.time
							    : NULL;
	if (bad) {
		snprintf(msg, n,
			 "reduce: '%s' is not a JSON pointer: one starts with "
			 "'/' (\"/codec\", \"/video/height\")",
			 bad);
		goto out;
	}
	if (ex.interval > 0 && !grace_given) {
		snprintf(msg, n,
			 "reduce: a time window ('interval') needs 'grace': "
			 "how long a window stays open past its end for items "
			 "that come late (\"grace\": \"5s\", or 0)");
		goto out;
	}
	if ((grace_given || ex.time) && !ex.interval) {
		snprintf(msg, n,
			 "reduce: '%s' is for a time window: give 'interval' "
			 "too",
			 ex.time ? "time" : "grace");
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
	if (ex.state) {
		char why[300];
		if (hop_gstore_check(ex.state, ex.state_table, why,
				     sizeof(why))) {
			snprintf(msg, n, "reduce: %s", why);
			goto out;
		}
		if (ex.every) {
			snprintf(msg, n,
				 "reduce: 'every' (a count window) cannot be "
				 "kept in 'state': which items fall in which "
				 "window would depend on their order across "
				 "runs; use 'interval', or no window");
			goto out;
		}
	} else if (ex.state_table) {
		snprintf(msg, n, "reduce: 'state_table' goes with 'state'");
		goto out;
	}
	c->op_name = ex.op;
	c->field = ex.field;
	c->by = ex.by;
	c->time = ex.time;
	c->state = ex.state;
	c->state_table = ex.state_table;
	ex.op = ex.field = ex.by = ex.time = NULL;
	ex.state = ex.state_table = NULL;
	c->every = ex.every;
	c->interval = ex.interval;
	c->grace = ex.grace;
	c->batch = ex.batch;
	c->merge = ex.merge;
	c->batch_given = batch_given;
	*out = c;
	c = NULL;
	rc = 0;
out:
	hop_opts_free(hop_reduce_options, &ex);
	hop_reduce_config_free(c);
	return rc;
}

int hop_reduce_check(const struct hop_reduce_config *c, bool worker, char *msg,
		     size_t n)
{
	if (worker && c->op_name) {
		snprintf(msg, n,
			 "a reduce with 'op' computes its results itself: it "
			 "takes no 'command' (a reducer worker is a 'command' "
			 "with a reduce that has no 'op')");
		return -EINVAL;
	}
	if (!worker && !c->op_name) {
		snprintf(msg, n,
			 "reduce: no 'op' (count, sum, min, max, mean or "
			 "histogram), and no 'command' (a reducer worker)");
		return -EINVAL;
	}
	if (!worker && c->batch_given) {
		snprintf(msg, n,
			 "reduce: 'batch' and 'merge' are for a reducer "
			 "worker (a 'command', no 'op')");
		return -EINVAL;
	}
	if (worker && c->nbuckets) {
		snprintf(msg, n, "reduce: 'buckets' is for op histogram only");
		return -EINVAL;
	}
	if (worker && c->state) {
		snprintf(msg, n,
			 "reduce: 'state' keeps a built-in op's accumulators "
			 "(an 'op'); a reducer worker's are its own");
		return -EINVAL;
	}
	return 0;
}

/* JSON pointers over the raw text. */

/* The raw span of the value at ptr in text, walking objects with the
 * scanner and arrays by index. Returns 1 and sets *val, *vlen when found,
 * 0 when absent, -1 when a segment needs unescaping the scanner's raw keys
 * cannot compare (the caller falls back to jansson). */
static int pointer_span(const char *text, size_t len, const char *ptr,
			const char **val, size_t *vlen)
{
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
		struct hop_json_member hit = {seg, slen, NULL, 0};
		if (hop_json_find(text, len, &hit) <= 0)
			return 0;
		if (memchr(hit.key, '\\', hit.klen))
			return -1;
		text = hit.val;
		len = hit.vlen;
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

/* Whether a part with id died on its way to g. */
static bool died_already(const struct hop_group *g, const char *id)
{
	size_t i;
	json_t *e;

	json_array_foreach(g->errors, i, e)
	{
		const char *d = json_string_value(json_object_get(e, "id"));
		if (d && strcmp(d, id) == 0)
			return true;
	}
	return false;
}

int hop_group_add_seq(struct hop_group *g, struct hop_item *part, int64_t seq)
{
	if (g->errors && died_already(g, part->id))
		return 1;
	size_t cap = g->cap;
	int rc = hop_group_add(g, part);
	if (rc)
		return rc;
	if (g->cap != cap || !g->seqs) {
		int64_t *s = realloc(g->seqs, g->cap * sizeof(*s));
		if (!s) {
			g->nparts--;
			return -ENOMEM;
		}
		g->seqs = s;
	}
	g->seqs[g->nparts - 1] = seq;
	return 0;
}

bool hop_group_has(const struct hop_group *g, const char *id)
{
	for (size_t i = 0; i < g->nparts; i++)
		if (strcmp(g->parts[i]->id, id) == 0)
			return true;
	return g->errors && died_already(g, id);
}

bool hop_group_complete(const struct hop_group *g)
{
	return g->expected >= 0 &&
	       (int64_t)(g->nparts + g->ndead) >= g->expected;
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

/* A part of a group by key, with its number, for sorting. */
struct numbered {
	int64_t seq;
	struct hop_item *part;
};

static int numbered_cmp(const void *x, const void *y)
{
	const struct numbered *a = x, *b = y;
	if (a->seq != b->seq)
		return a->seq < b->seq ? -1 : 1;
	return hop_id_cmp(a->part->id, b->part->id);
}

/* Orders g's parts: by number when the join numbers them, else by id. */
static int sort_parts(struct hop_group *g)
{
	if (!g->seqs || g->nparts < 2) {
		qsort(g->parts, g->nparts, sizeof(*g->parts), part_cmp);
		return 0;
	}
	struct numbered *v = calloc(g->nparts, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < g->nparts; i++)
		v[i] = (struct numbered){g->seqs[i], g->parts[i]};
	qsort(v, g->nparts, sizeof(*v), numbered_cmp);
	for (size_t i = 0; i < g->nparts; i++) {
		g->seqs[i] = v[i].seq;
		g->parts[i] = v[i].part;
	}
	free(v);
	return 0;
}

char *hop_group_payload(struct hop_group *g, bool partial)
{
	json_t *o = json_object();
	json_t *parts = json_array();
	char *s = NULL;

	if (!o || !parts || sort_parts(g))
		goto out;
	for (size_t i = 0; i < g->nparts; i++) {
		struct hop_item *p = g->parts[i];
		json_t *v = json_loadb(p->payload, p->payload_len,
				       JSON_DECODE_ANY, NULL);
		json_array_append_new(parts, v ? v : json_null());
	}
	if (g->key) {
		json_object_set_new(o, "key", json_string(g->key));
	} else {
		json_t *rp = json_loadb(g->root->payload, g->root->payload_len,
					JSON_DECODE_ANY, NULL);
		json_object_set_new(o, "id", json_string(g->root->id));
		json_object_set_new(o, "root", rp ? rp : json_null());
	}
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
	free(g->seqs);
	free(g->key);
	json_decref(g->errors);
	free(g);
}

/* A whole number in text (a JSON number with no fraction), or -1. */
static int64_t whole(const char *text)
{
	char *end;
	double x;

	if (!text || !*text)
		return -1;
	x = strtod(text, &end);
	if (*end || x < 0 || x != floor(x) || x > 9e15)
		return -1;
	return (int64_t)x;
}

/* The text at ptr, or NULL with *missing; -ENOMEM in *rc. */
static char *field(const char *payload, size_t len, const char *ptr,
		   bool *missing, int *rc)
{
	char *s = hop_json_pointer_text(payload, len, ptr, missing);
	if (!s && !*missing)
		*rc = -ENOMEM;
	return s;
}

int hop_part_info(const struct hop_join_config *j, const char *payload,
		  size_t len, const char *emitted_key,
		  struct hop_part_info *info, char *msg, size_t n)
{
	bool missing = false;
	int rc = 0;
	char *t;

	*info = (struct hop_part_info){NULL, -1, -1, false};
	if (strcmp(j->by, "key") == 0) {
		if (!emitted_key) {
			snprintf(msg, n,
				 "no key: the join is by the key a part was "
				 "emitted with, and this one was emitted "
				 "without one");
			return -EINVAL;
		}
		info->key = strdup(emitted_key);
		if (!info->key)
			return -ENOMEM;
	} else {
		info->key = field(payload, len, j->by, &missing, &rc);
		if (!info->key) {
			if (!rc)
				snprintf(msg, n, "no key at %s (join 'by')",
					 j->by);
			return rc ? rc : -EINVAL;
		}
	}
	const char *ptr = j->count ? j->count : j->seq;
	t = field(payload, len, ptr, &missing, &rc);
	if (t || rc) {
		int64_t x = whole(t);
		if (x < 0 && !rc)
			snprintf(msg, n,
				 "the value at %s (join '%s') is %.40s, not a "
				 "whole number",
				 ptr, j->count ? "count" : "seq", t);
		free(t);
		if (rc || x < 0)
			goto bad;
		if (j->count)
			info->count = x;
		else
			info->seq = x;
	} else if (j->seq) {
		snprintf(msg, n, "no number at %s (join 'seq')", j->seq);
		goto bad;
	}
	if (j->end) {
		t = field(payload, len, j->end, &missing, &rc);
		if (rc)
			goto bad;
		info->last = t && strcmp(t, "false") && strcmp(t, "null");
		free(t);
	}
	return 0;
bad:
	free(info->key);
	info->key = NULL;
	return rc ? rc : -EINVAL;
}

/* A text map: chained buckets, doubled when full. */

struct strnode {
	struct strnode *next;
	void *val;
	uint64_t hash;
	char key[];
};

struct hop_strmap {
	struct strnode **b;
	size_t nb, n;
};

static uint64_t hash_text(const char *k, size_t len);

struct hop_strmap *hop_strmap_new(void)
{
	struct hop_strmap *m = calloc(1, sizeof(*m));
	if (m && !(m->b = calloc(m->nb = 64, sizeof(*m->b)))) {
		free(m);
		return NULL;
	}
	return m;
}

static struct strnode **slot(const struct hop_strmap *m, const char *key,
			     uint64_t h)
{
	struct strnode **p = &m->b[h & (m->nb - 1)];
	while (*p && ((*p)->hash != h || strcmp((*p)->key, key)))
		p = &(*p)->next;
	return p;
}

void *hop_strmap_get(const struct hop_strmap *m, const char *key)
{
	struct strnode *e = *slot(m, key, hash_text(key, strlen(key)));
	return e ? e->val : NULL;
}

static int rehash(struct hop_strmap *m)
{
	size_t nb = m->nb * 2;
	struct strnode **b = calloc(nb, sizeof(*b));
	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < m->nb; i++) {
		struct strnode *e, *next;
		for (e = m->b[i]; e; e = next) {
			next = e->next;
			e->next = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
		}
	}
	free(m->b);
	m->b = b;
	m->nb = nb;
	return 0;
}

int hop_strmap_put(struct hop_strmap *m, const char *key, void *val)
{
	size_t len = strlen(key);
	uint64_t h = hash_text(key, len);
	struct strnode **p = slot(m, key, h);

	if (*p) {
		(*p)->val = val;
		return 0;
	}
	struct strnode *e = malloc(sizeof(*e) + len + 1);
	if (!e)
		return -ENOMEM;
	e->next = NULL;
	e->val = val;
	e->hash = h;
	memcpy(e->key, key, len + 1);
	*p = e;
	if (++m->n > m->nb)
		rehash(m); /* a failure only makes the chains longer */
	return 0;
}

void *hop_strmap_del(struct hop_strmap *m, const char *key)
{
	struct strnode **p = slot(m, key, hash_text(key, strlen(key)));
	struct strnode *e = *p;
	void *val;

	if (!e)
		return NULL;
	*p = e->next;
	val = e->val;
	free(e);
	m->n--;
	return val;
}

size_t hop_strmap_len(const struct hop_strmap *m)
{
	return m->n;
}

void hop_strmap_free(struct hop_strmap *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nb; i++) {
		struct strnode *e, *next;
		for (e = m->b[i]; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(m->b);
	free(m);
}

/* Closed keys: a ring of the last cap, and a map to find them. */

struct hop_keyring {
	struct hop_strmap *map;
	char **ring;
	size_t cap, head, n;
};

struct hop_keyring *hop_keyring_new(size_t cap)
{
	struct hop_keyring *k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	k->cap = cap;
	k->map = hop_strmap_new();
	k->ring = cap ? calloc(cap, sizeof(char *)) : NULL;
	if (!k->map || (cap && !k->ring)) {
		hop_keyring_free(k);
		return NULL;
	}
	return k;
}

bool hop_keyring_has(const struct hop_keyring *k, const char *key)
{
	return k->cap && hop_strmap_get(k->map, key);
}

int hop_keyring_add(struct hop_keyring *k, const char *key)
{
	if (!k->cap || hop_strmap_get(k->map, key))
		return 0;
	char *copy = strdup(key);
	if (!copy || hop_strmap_put(k->map, key, copy)) {
		free(copy);
		return -ENOMEM;
	}
	if (k->n == k->cap) { /* forget the oldest */
		char *old = k->ring[k->head];
		hop_strmap_del(k->map, old);
		free(old);
		k->n--;
		k->head = (k->head + 1) % k->cap;
	}
	k->ring[(k->head + k->n++) % k->cap] = copy;
	return 0;
}

void hop_keyring_free(struct hop_keyring *k)
{
	if (!k)
		return;
	for (size_t i = 0; i < k->n; i++)
		free(k->ring[(k->head + i) % k->cap]);
	free(k->ring);
	hop_strmap_free(k->map);
	free(k);
}

/* Tumbling windows. */

/* floor(a / b) for b > 0, for negative a too. */
static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0)) ? q - 1 : q;
}

void hop_tumbler_init(struct hop_tumbler *t, int64_t size_ms, int64_t grace_ms)
{
	t->size_ms = size_ms > 0 ? size_ms : 1;
	t->grace_ms = grace_ms > 0 ? grace_ms : 0;
	t->closed = INT64_MIN;
}

int64_t hop_tumbler_advance(struct hop_tumbler *t, int64_t now_ms)
{
	/* Window w closes at (w + 1) * size + grace: the windows below the
	 * one that holds now - grace are over. */
	int64_t open = floor_div(now_ms - t->grace_ms, t->size_ms);
	if (open > t->closed)
		t->closed = open;
	return t->closed;
}

bool hop_tumbler_place(const struct hop_tumbler *t, int64_t t_ms, int64_t *w)
{
	*w = floor_div(t_ms, t->size_ms);
	return *w >= t->closed;
}

int64_t hop_tumbler_close_at(const struct hop_tumbler *t, int64_t w)
{
	return (w + 1) * t->size_ms + t->grace_ms;
}

/* Reduce accumulators: an open-addressing table of keys, and the keys in
 * the order they came, for results in a stable order. */

struct acc {
	char *key;
	size_t klen;
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
	/* by and field when each is one plain member name ("/codec"), found
	 * straight away: the name, or NULL. */
	const char *by_name, *field_name;
	size_t by_len, field_len;
};

/* The member name of ptr when it is "/NAME" with nothing to unescape or
 * walk further, else NULL. */
static const char *plain_name(const char *ptr, size_t *len)
{
	if (!ptr || ptr[0] != '/' || strpbrk(ptr + 1, "/~\\"))
		return NULL;
	*len = strlen(ptr + 1);
	return ptr + 1;
}

struct hop_reducer *hop_reducer_new(const struct hop_reduce_config *c)
{
	struct hop_reducer *rd = calloc(1, sizeof(*rd));
	if (!rd)
		return NULL;
	rd->cfg = c;
	rd->by_name = plain_name(c->by, &rd->by_len);
	rd->field_name = plain_name(c->field, &rd->field_len);
	return rd;
}

/* pointer_span, for ptr whose plain member name is name (NULL: none). */
static int member_span(const char *text, size_t len, const char *ptr,
		       const char *name, size_t nlen, const char **val,
		       size_t *vlen)
{
	if (!name)
		return pointer_span(text, len, ptr, val, vlen);
	struct hop_json_member m = {name, nlen, NULL, 0};
	if (hop_json_find(text, len, &m) <= 0)
		return 0;
	*val = m.val;
	*vlen = m.vlen;
	return 1;
}

static uint64_t hash_text(const char *k, size_t len)
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
	uint64_t h = hash_text(key, len);

	if ((rd->n + 1) * 4 > rd->nslots * 3 && grow(rd))
		return NULL;
	size_t s = h & (rd->nslots - 1);
	for (; rd->slots[s]; s = (s + 1) & (rd->nslots - 1)) {
		struct acc *a = &rd->accs[rd->slots[s] - 1];
		if (a->hash == h && a->klen == len &&
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
			  .klen = len,
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
	int rc = member_span(payload, len, rd->cfg->by, rd->by_name, rd->by_len,
			     &v, &vlen);
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
		rc = member_span(payload, len, c->field, rd->field_name,
				 rd->field_len, &v, &vlen);
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

/* A JSON number's value, or 0. */
static double num_of(const json_t *v)
{
	return json_is_number(v) ? json_number_value(v) : 0;
}

int hop_reducer_merge(struct hop_reducer *rd, const char *json)
{
	const struct hop_reduce_config *c = rd->cfg;
	json_error_t e;
	json_t *o = json_loads(json, 0, &e), *v;
	const char *key = "";
	int rc = -EINVAL;

	if (!json_is_object(o))
		goto out;
	if (c->by && !(key = json_string_value(json_object_get(o, "key"))))
		goto out;
	struct acc *a = find(rd, key, strlen(key));
	if (!a) {
		rc = -ENOMEM;
		goto out;
	}
	uint64_t count = (uint64_t)num_of(json_object_get(o, "count"));
	a->count += count;
	rd->items += count;
	v = json_object_get(o, "value");
	switch (c->op) {
	case HOP_REDUCE_COUNT:
		break;
	case HOP_REDUCE_SUM:
		a->sum += num_of(v);
		break;
	case HOP_REDUCE_MEAN:
		a->sum += num_of(json_object_get(o, "sum"));
		break;
	case HOP_REDUCE_MIN:
	case HOP_REDUCE_MAX:
		if (count && num_of(v) < a->min)
			a->min = num_of(v);
		if (count && num_of(v) > a->max)
			a->max = num_of(v);
		break;
	case HOP_REDUCE_HISTOGRAM: {
		json_t *counts = json_object_get(o, "counts"), *x;
		const char *name;
		size_t i;
		if (c->nbuckets) {
			json_array_foreach(counts, i,
					   x) if (i <= (size_t)c->nbuckets)
			    a->bins[i] += (uint64_t)num_of(x);
			break;
		}
		if (!a->by_value && !(a->by_value = json_object())) {
			rc = -ENOMEM;
			goto out;
		}
		json_object_foreach(counts, name, x)
		{
			json_t *had = json_object_get(a->by_value, name);
			json_object_set_new(
			    a->by_value, name,
			    json_integer((had ? json_integer_value(had) : 0) +
					 (json_int_t)num_of(x)));
		}
		break;
	}
	}
	rc = 0;
out:
	json_decref(o);
	return rc;
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
