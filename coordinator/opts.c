/* opts.c - option tables. */
#include "opts.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "suggest.h"

static const char *const type_names[] = {
    "text", "an integer", "true or false", "a size (like 64K or 16M)",
    "a number of seconds (like 0.5, 30s or 5m)"};

bool hop_opts_key_equal(const char *a, const char *b)
{
	for (; *a && *b; a++, b++)
		if (*a != *b && !(strchr("-_", *a) && strchr("-_", *b)))
			return false;
	return *a == *b;
}

const struct hop_option *hop_opts_find(const struct hop_option *t,
				       const char *key)
{
	for (; t->key; t++)
		if (hop_opts_key_equal(t->key, key))
			return t;
	return NULL;
}

int hop_parse_seconds(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || errno || !isfinite(v) || v < 0)
		return -EINVAL;
	if (strcmp(end, "ms") == 0)
		v /= 1000;
	else if (strcmp(end, "m") == 0)
		v *= 60;
	else if (strcmp(end, "h") == 0)
		v *= 3600;
	else if (*end && strcmp(end, "s") != 0)
		return -EINVAL;
	*out = v;
	return 0;
}

int hop_parse_size(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (end == s || errno || v < 0)
		return -EINVAL;
	int shift = 0;
	if (*end == 'K' || *end == 'k')
		shift = 10;
	else if (*end == 'M' || *end == 'm')
		shift = 20;
	else if (*end == 'G' || *end == 'g')
		shift = 30;
	if (shift) {
		end++;
		if (*end == 'i')
			end++;
		if (*end == 'B')
			end++;
	}
	if (*end || v > (INT64_MAX >> shift))
		return -EINVAL;
	*out = (int64_t)v << shift;
	return 0;
}

static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"true", "yes", "1", "on"};
	static const char *const no[] = {"false", "no", "0", "off"};
	for (int i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0)
			return *out = true, 0;
		if (strcasecmp(s, no[i]) == 0)
			return *out = false, 0;
	}
	return -EINVAL;
}

/* Parses text as a number of the option's type, into *i (INT, SIZE) or *d
 * (SECONDS). Returns 0 or -EINVAL. */
static int parse_number(enum hop_opt_type type, const char *s, int64_t *i,
			double *d)
{
	char *end;
	switch (type) {
	case HOP_OPT_INT:
		errno = 0;
		long long v = strtoll(s, &end, 10);
		if (end == s || *end || errno)
			return -EINVAL;
		*i = v;
		return 0;
	case HOP_OPT_SIZE:
		return hop_parse_size(s, i);
	case HOP_OPT_SECONDS:
		return hop_parse_seconds(s, d);
	default:
		return -EINVAL;
	}
}

/* Compares a parsed value with a bound written in the table. Returns <0, 0
 * or >0 as the value is below, at or above it. A bound that does not parse
 * is a bug in the table and counts as no bound. */
static int compare(const struct hop_option *o, int64_t i, double d,
		   const char *bound)
{
	int64_t bi = 0;
	double bd = 0;
	if (parse_number(o->type, bound, &bi, &bd))
		return 0;
	if (o->type == HOP_OPT_SECONDS)
		return d < bd ? -1 : d > bd;
	return i < bi ? -1 : i > bi;
}

/* True when value is one of the option's '|'-separated choices. */
static bool is_choice(const char *choices, const char *value)
{
	size_t n = strlen(value);
	for (const char *p = choices; *p;) {
		size_t k = strcspn(p, "|");
		if (k == n && strncmp(p, value, n) == 0)
			return true;
		p += k + (p[k] == '|');
	}
	return false;
}

/* Writes the values an option accepts, for messages and --help: "0..4096",
 * "at least 1", "stream, exec". Empty when any value of its type goes. */
static void describe_range(const struct hop_option *o, char *buf, size_t n)
{
	if (o->choices) {
		size_t k = 0;
		for (const char *p = o->choices; *p && k + 3 < n; p++) {
			if (*p == '|') {
				buf[k++] = ',';
				buf[k++] = ' ';
			} else {
				buf[k++] = *p;
			}
		}
		if (n)
			buf[k < n ? k : n - 1] = '\0';
		return;
	}
	if (o->min && o->max)
		snprintf(buf, n, "%s..%s", o->min, o->max);
	else if (o->min)
		snprintf(buf, n, "at least %s", o->min);
	else if (o->max)
		snprintf(buf, n, "at most %s", o->max);
	else if (n)
		buf[0] = '\0';
}

/* Checks a parsed number against the option's bounds. */
static int check_range(const struct hop_option *o, const char *value, int64_t i,
		       double d, char *err, size_t errlen)
{
	if ((!o->min || compare(o, i, d, o->min) >= 0) &&
	    (!o->max || compare(o, i, d, o->max) <= 0))
		return 0;
	char range[128];
	describe_range(o, range, sizeof(range));
	snprintf(err, errlen, "option '%s': %s is out of range (%s)", o->key,
		 value, range);
	return -ERANGE;
}

static int set_one(const struct hop_option *o, void *ctx, const char *value,
		   char *err, size_t errlen)
{
	char *field = (char *)ctx + o->offset;
	int64_t i = 0;
	double d = 0;
	bool b;

	switch (o->type) {
	case HOP_OPT_STR: {
		if (o->choices && !is_choice(o->choices, value)) {
			char list[256];
			describe_range(o, list, sizeof(list));
			snprintf(err, errlen,
				 "option '%s': '%s' is not one of %s", o->key,
				 value, list);
			return -EINVAL;
		}
		char *dup = strdup(value);
		if (!dup)
			return -ENOMEM;
		free(*(char **)field);
		*(char **)field = dup;
		return 0;
	}
	case HOP_OPT_BOOL:
		if (parse_bool(value, &b))
			break;
		*(bool *)field = b;
		return 0;
	case HOP_OPT_INT:
	case HOP_OPT_SIZE:
	case HOP_OPT_SECONDS:
		if (parse_number(o->type, value, &i, &d))
			break;
		if (check_range(o, value, i, d, err, errlen))
			return -EINVAL;
		if (o->type == HOP_OPT_SECONDS)
			*(double *)field = d;
		else
			*(int64_t *)field = i;
		return 0;
	}
	snprintf(err, errlen, "option '%s': '%s' is not %s", o->key, value,
		 type_names[o->type]);
	return -EINVAL;
}

/* Names an unknown key: with the option it is nearest to, if one is near
 * ("did you mean 'glob'?"), else with the list of them all. */
static void unknown_key(const struct hop_option *t, const char *key, char *err,
			size_t errlen)
{
	struct hop_suggest s;
	char near[64];
	hop_suggest_init(&s, key);
	for (const struct hop_option *o = t; o->key; o++)
		hop_suggest_offer(&s, o->key);
	if (hop_suggest_spelled(&s, near, sizeof(near))) {
		snprintf(err, errlen, "unknown option '%s'; did you mean '%s'?",
			 key, near);
		return;
	}
	int n = snprintf(err, errlen, "unknown option '%s' (known:", key);
	for (const struct hop_option *o = t;
	     o->key && n > 0 && (size_t)n < errlen; o++)
		n += snprintf(err + n, errlen - (size_t)n, "%s %s",
			      o == t ? "" : ",", o->key);
	if (n > 0 && (size_t)n < errlen)
		snprintf(err + n, errlen - (size_t)n, ")");
}

int hop_opts_set(const struct hop_option *t, void *ctx, const char *key,
		 const char *value, char *err, size_t errlen)
{
	const struct hop_option *o = hop_opts_find(t, key);
	if (!o) {
		unknown_key(t, key, err, errlen);
		return -EINVAL;
	}
	return set_one(o, ctx, value, err, errlen);
}

int hop_opts_set_json(const struct hop_option *t, void *ctx, const char *key,
		      json_t *value, char *err, size_t errlen)
{
	const struct hop_option *o = hop_opts_find(t, key);
	char text[64];

	if (!o) {
		unknown_key(t, key, err, errlen);
		return -EINVAL;
	}
	if (json_is_string(value))
		return set_one(o, ctx, json_string_value(value), err, errlen);
	bool ok = false;
	switch (o->type) {
	case HOP_OPT_BOOL:
		if (json_is_boolean(value)) {
			*(bool *)((char *)ctx + o->offset) =
			    json_is_true(value);
			return 0;
		}
		break;
	case HOP_OPT_INT:
	case HOP_OPT_SIZE:
		ok = json_is_integer(value);
		if (ok)
			snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT,
				 json_integer_value(value));
		break;
	case HOP_OPT_SECONDS:
		ok = json_is_number(value);
		if (ok)
			snprintf(text, sizeof(text), "%.17g",
				 json_number_value(value));
		break;
	case HOP_OPT_STR:
		if (o->json_array && json_is_array(value)) {
			char *t = json_dumps(value, JSON_COMPACT);
			int rc = t ? set_one(o, ctx, t, err, errlen) : -ENOMEM;
			free(t);
			return rc;
		}
		break;
	}
	if (!ok) {
		snprintf(err, errlen, "option '%s' must be %s", o->key,
			 o->type == HOP_OPT_STR ? "a string"
						: type_names[o->type]);
		return -EINVAL;
	}
	return set_one(o, ctx, text, err, errlen);
}

int hop_opts_defaults(const struct hop_option *t, void *ctx, char *err,
		      size_t errlen)
{
	for (; t->key; t++) {
		if (!t->def)
			continue;
		int rc = set_one(t, ctx, t->def, err, errlen);
		if (rc)
			return rc;
	}
	return 0;
}

void hop_opts_free(const struct hop_option *t, void *ctx)
{
	for (; t->key; t++) {
		if (t->type != HOP_OPT_STR)
			continue;
		char **p = (char **)((char *)ctx + t->offset);
		free(*p);
		*p = NULL;
	}
}

const char *hop_opts_type_word(enum hop_opt_type type)
{
	static const char *const words[] = {"text", "integer", "true/false",
					    "size", "seconds"};
	return words[type];
}

void hop_opts_range(const struct hop_option *o, char *buf, size_t n)
{
	describe_range(o, buf, n);
}

/* Writes a number of seconds with the largest unit that keeps it whole. */
static void seconds_words(double d, char *buf, size_t n)
{
	if (d == 0)
		snprintf(buf, n, "0");
	else if (d < 1)
		snprintf(buf, n, "%g ms", d * 1000);
	else if (fmod(d, 3600) == 0)
		snprintf(buf, n, "%g h", d / 3600);
	else if (fmod(d, 60) == 0)
		snprintf(buf, n, "%g min", d / 60);
	else
		snprintf(buf, n, "%g s", d);
}

void hop_opts_default_words(const struct hop_option *o, char *buf, size_t n)
{
	int64_t i = 0;
	double d = 0;
	bool b;

	if (o->def_words || !o->def) {
		snprintf(buf, n, "%s", o->def_words ? o->def_words : "");
		return;
	}
	snprintf(buf, n, "%s", o->def);
	if (o->type == HOP_OPT_BOOL && parse_bool(o->def, &b) == 0)
		snprintf(buf, n, "%s", b ? "on" : "off");
	else if (o->type == HOP_OPT_SECONDS &&
		 parse_number(o->type, o->def, &i, &d) == 0)
		seconds_words(d, buf, n);
	else if (o->type == HOP_OPT_SIZE &&
		 parse_number(o->type, o->def, &i, &d) == 0) {
		static const char *const units[] = {"bytes", "KiB", "MiB",
						    "GiB"};
		int u = 0;
		while (u < 3 && i && i % 1024 == 0) {
			i /= 1024;
			u++;
		}
		snprintf(buf, n, "%lld %s", (long long)i, units[u]);
	}
}

void hop_opts_help_range(FILE *out, const struct hop_option *o)
{
	char range[128];
	if (o->type == HOP_OPT_STR)
		return; /* the help text names the choices in words */
	describe_range(o, range, sizeof(range));
	if (range[0])
		fprintf(out, " (%s)", range);
}

void hop_opts_help(FILE *out, const struct hop_option *t, const char *indent)
{
	for (; t->key; t++) {
		char left[64];
		snprintf(left, sizeof(left), "%s=%s", t->key,
			 t->type == HOP_OPT_STR	      ? "TEXT"
			 : t->type == HOP_OPT_BOOL    ? "BOOL"
			 : t->type == HOP_OPT_SIZE    ? "BYTES"
			 : t->type == HOP_OPT_SECONDS ? "SECS"
						      : "N");
		char def[96], range[128];
		hop_opts_default_words(t, def, sizeof(def));
		if (t->type == HOP_OPT_STR)
			range[0] = '\0'; /* the help names the choices */
		else
			describe_range(t, range, sizeof(range));
		fprintf(out, "%s%-22s %s", indent, left, t->help);
		if (def[0] || range[0])
			fprintf(out, " (%s%s%s%s)", def[0] ? "default: " : "",
				def, def[0] && range[0] ? "; " : "", range);
		fputc('\n', out);
	}
}
