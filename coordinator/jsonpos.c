/* jsonpos.c - a position-keeping JSON scanner for error messages, and
 * environment expansion. The scanner trusts its input: jansson has already
 * parsed the same text. */
#include "jsonpos.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "opts.h"

struct scan {
	const char *p;
	int line, col;
};

static void advance(struct scan *s)
{
	if (*s->p == '\n') {
		s->line++;
		s->col = 1;
	} else {
		s->col++;
	}
	s->p++;
}

static void skip_ws(struct scan *s)
{
	while (*s->p && isspace((unsigned char)*s->p))
		advance(s);
}

/* Skips a string, copying up to n-1 bytes of its raw text into out. */
static void skip_string(struct scan *s, char *out, size_t n)
{
	size_t k = 0;
	advance(s); /* the opening quote */
	while (*s->p && *s->p != '"') {
		if (*s->p == '\\' && s->p[1]) {
			if (out && k + 1 < n)
				out[k++] = s->p[1];
			advance(s);
		} else if (out && k + 1 < n) {
			out[k++] = *s->p;
		}
		advance(s);
	}
	if (*s->p)
		advance(s);
	if (out)
		out[k] = '\0';
}

static void skip_value(struct scan *s);

static void skip_container(struct scan *s, char close)
{
	advance(s);
	for (;;) {
		skip_ws(s);
		if (!*s->p || *s->p == close) {
			if (*s->p)
				advance(s);
			return;
		}
		if (*s->p == ',' || *s->p == ':') {
			advance(s);
			continue;
		}
		skip_value(s);
	}
}

static void skip_value(struct scan *s)
{
	skip_ws(s);
	if (*s->p == '"')
		skip_string(s, NULL, 0);
	else if (*s->p == '{')
		skip_container(s, '}');
	else if (*s->p == '[')
		skip_container(s, ']');
	else
		while (*s->p && !strchr(",}] \t\r\n", *s->p))
			advance(s);
}

/* Finds the key at path; with value, the position of its value instead. */
static int locate(const char *text, const char *const *path, int depth,
		  bool value, int *line, int *col)
{
	struct scan s = {.p = text, .line = 1, .col = 1};
	char key[256];

	for (int d = 0; d < depth; d++) {
		skip_ws(&s);
		if (*s.p != '{')
			return -ENOENT;
		advance(&s);
		bool found = false;
		while (!found) {
			skip_ws(&s);
			if (*s.p != '"')
				return -ENOENT;
			int kl = s.line, kc = s.col;
			skip_string(&s, key, sizeof(key));
			skip_ws(&s);
			if (*s.p == ':')
				advance(&s);
			if (hop_opts_key_equal(key, path[d])) {
				found = true;
				skip_ws(&s);
				*line = value && d == depth - 1 ? s.line : kl;
				*col = value && d == depth - 1 ? s.col : kc;
				break;
			}
			skip_value(&s);
			skip_ws(&s);
			if (*s.p != ',')
				return -ENOENT;
			advance(&s);
		}
	}
	return 0;
}

int hop_json_locate(const char *text, const char *const *path, int depth,
		    int *line, int *col)
{
	return locate(text, path, depth, false, line, col);
}

int hop_json_locate_value(const char *text, const char *const *path, int depth,
			  int *line, int *col)
{
	return locate(text, path, depth, true, line, col);
}

char *hop_expand_env(const char *in, char *err, size_t errlen)
{
	struct hop_buf b = {0};

	for (const char *p = in; *p;) {
		if (p[0] == '$' && p[1] == '$') {
			hop_buf_append(&b, "$", 1);
			p += 2;
			continue;
		}
		if (p[0] != '$' || p[1] != '{') {
			hop_buf_append(&b, p++, 1);
			continue;
		}
		const char *end = strchr(p, '}');
		if (!end) {
			snprintf(err, errlen, "unclosed ${ in '%s'", in);
			goto err_free;
		}
		const char *name = p + 2;
		const char *dflt = strstr(name, ":-");
		size_t nlen =
		    (size_t)((dflt && dflt < end ? dflt : end) - name);
		if (nlen == 0 || nlen > 200) {
			snprintf(err, errlen, "bad variable reference in '%s'",
				 in);
			goto err_free;
		}
		char var[201];
		memcpy(var, name, nlen);
		var[nlen] = '\0';
		const char *val = getenv(var);
		if (val && !*val && dflt && dflt < end)
			val = NULL; /* ${X:-d} also replaces an empty value */
		if (val)
			hop_buf_append(&b, val, strlen(val));
		else if (dflt && dflt < end)
			hop_buf_append(&b, dflt + 2, (size_t)(end - dflt - 2));
		else {
			snprintf(err, errlen,
				 "environment variable %s is not set "
				 "(use ${%s:-default} for a default)",
				 var, var);
			goto err_free;
		}
		p = end + 1;
	}
	hop_buf_append(&b, "", 1);
	return b.data;

err_free:
	hop_buf_free(&b);
	return NULL;
}
