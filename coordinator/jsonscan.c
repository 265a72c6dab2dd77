/* jsonscan.c - a recursive-descent JSON validator that keeps spans. */
#include "jsonscan.h"

#include <string.h>

#define MAX_DEPTH 512

struct cur {
	const char *p, *end;
	int depth;
};

static void ws(struct cur *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' ||
				 *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

static bool hex4(const char *p)
{
	for (int i = 0; i < 4; i++) {
		char h = p[i];
		if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') ||
		      (h >= 'A' && h <= 'F')))
			return false;
	}
	return true;
}

/* One UTF-8 sequence starting at a byte >= 0x80: overlongs, surrogates
 * and values past U+10FFFF are refused, as jansson refuses them. */
static bool utf8_seq(struct cur *c)
{
	const unsigned char *p = (const unsigned char *)c->p;
	size_t left = (size_t)(c->end - c->p);
	unsigned char b = p[0];
	int n;
	unsigned cp;

	if (b >= 0xc2 && b <= 0xdf)
		n = 1, cp = b & 0x1f;
	else if (b >= 0xe0 && b <= 0xef)
		n = 2, cp = b & 0x0f;
	else if (b >= 0xf0 && b <= 0xf4)
		n = 3, cp = b & 0x07;
	else
		return false;
	if (left < (size_t)n + 1)
		return false;
	for (int i = 1; i <= n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return false;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
		return false;
	c->p += n + 1;
	return true;
}

/* A byte that stands for itself in a string: printable ASCII but the
 * quote and the backslash. */
static inline bool plain(unsigned char ch)
{
	return ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\';
}

static bool string(struct cur *c)
{
	c->p++; /* the opening quote */
	while (c->p < c->end) {
		unsigned char ch = (unsigned char)*c->p;
		if (plain(ch)) {
			c->p++;
			while (c->p < c->end && plain((unsigned char)*c->p))
				c->p++;
			continue;
		}
		if (ch == '"') {
			c->p++;
			return true;
		}
		if (ch < 0x20)
			return false;
		if (ch == '\\') {
			if (c->end - c->p < 2)
				return false;
			char e = c->p[1];
			if (e == 'u') {
				if (c->end - c->p < 6 || !hex4(c->p + 2))
					return false;
				c->p += 6;
			} else if (strchr("\"\\/bfnrt", e) && e) {
				c->p += 2;
			} else {
				return false;
			}
		} else if (ch >= 0x80) {
			if (!utf8_seq(c))
				return false;
		} else {
			c->p++;
		}
	}
	return false;
}

static bool digits(struct cur *c)
{
	const char *s = c->p;
	while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
		c->p++;
	return c->p > s;
}

static bool number(struct cur *c)
{
	if (*c->p == '-')
		c->p++;
	if (c->p < c->end && *c->p == '0')
		c->p++;
	else if (!digits(c))
		return false;
	if (c->p < c->end && *c->p == '.') {
		c->p++;
		if (!digits(c))
			return false;
	}
	if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
		c->p++;
		if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
			c->p++;
		if (!digits(c))
			return false;
	}
	return true;
}

static bool literal(struct cur *c, const char *word)
{
	size_t n = strlen(word);
	if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
		return false;
	c->p += n;
	return true;
}

static bool value(struct cur *c);

/* Parses an object; when m is given, records up to max members in it.
 * With want (want->key, want->klen), stops at the first member whose raw
 * key is that: fills want's value and answers its index. */
static int object(struct cur *c, struct hop_json_member *m, int max,
		  struct hop_json_member *want)
{
	int n = 0;
	c->p++;
	ws(c);
	if (c->p < c->end && *c->p == '}') {
		c->p++;
		return 0;
	}
	for (;;) {
		ws(c);
		if (c->p >= c->end || *c->p != '"')
			return -1;
		const char *k = c->p;
		if (!string(c))
			return -1;
		size_t klen = (size_t)(c->p - k) - 2;
		ws(c);
		if (c->p >= c->end || *c->p != ':')
			return -1;
		c->p++;
		ws(c);
		const char *v = c->p;
		if (!value(c))
			return -1;
		if (m && n < max)
			m[n] = (struct hop_json_member){k + 1, klen, v,
							(size_t)(c->p - v)};
		if (want && want->klen == klen &&
		    memcmp(want->key, k + 1, klen) == 0) {
			want->key = k + 1;
			want->val = v;
			want->vlen = (size_t)(c->p - v);
			return n;
		}
		n++;
		ws(c);
		if (c->p < c->end && *c->p == ',') {
			c->p++;
			continue;
		}
		if (c->p < c->end && *c->p == '}') {
			c->p++;
			return n;
		}
		return -1;
	}
}

static bool array(struct cur *c)
{
	c->p++;
	ws(c);
	if (c->p < c->end && *c->p == ']') {
		c->p++;
		return true;
	}
	for (;;) {
		ws(c);
		if (!value(c))
			return false;
		ws(c);
		if (c->p < c->end && *c->p == ',') {
			c->p++;
			continue;
		}
		if (c->p < c->end && *c->p == ']') {
			c->p++;
			return true;
		}
		return false;
	}
}

static bool value(struct cur *c)
{
	if (c->p >= c->end)
		return false;
	bool ok;
	switch (*c->p) {
	case '"':
		return string(c);
	case '{':
	case '[':
		if (++c->depth > MAX_DEPTH)
			return false;
		ok = *c->p == '{' ? object(c, NULL, 0, NULL) >= 0 : array(c);
		c->depth--;
		return ok;
	case 't':
		return literal(c, "true");
	case 'f':
		return literal(c, "false");
	case 'n':
		return literal(c, "null");
	default:
		return (*c->p == '-' || (*c->p >= '0' && *c->p <= '9')) &&
		       number(c);
	}
}

bool hop_json_valid(const char *text, size_t len)
{
	struct cur c = {text, text + len, 0};
	ws(&c);
	if (!value(&c))
		return false;
	ws(&c);
	return c.p == c.end;
}

int hop_json_members(const char *text, size_t len, struct hop_json_member *m,
		     int max)
{
	struct cur c = {text, text + len, 1};
	ws(&c);
	if (c.p >= c.end || *c.p != '{')
		return -1;
	int n = object(&c, m, max, NULL);
	if (n < 0)
		return -1;
	ws(&c);
	return c.p == c.end ? n : -1;
}

int hop_json_find(const char *text, size_t len, struct hop_json_member *m)
{
	struct cur c = {text, text + len, 1};
	struct hop_json_member want = *m;
	ws(&c);
	if (c.p >= c.end || *c.p != '{')
		return -1;
	int n = object(&c, NULL, 0, &want);
	if (n < 0)
		return -1;
	if (want.val) {
		*m = want;
		return 1;
	}
	ws(&c);
	return c.p == c.end ? 0 : -1;
}

const struct hop_json_member *hop_json_get(const struct hop_json_member *m,
					   int n, const char *key)
{
	size_t klen = strlen(key);
	for (int i = 0; i < n; i++)
		if (m[i].klen == klen && memcmp(m[i].key, key, klen) == 0)
			return &m[i];
	return NULL;
}

bool hop_json_plain_string(const char *val, size_t vlen)
{
	return vlen >= 2 && val[0] == '"' && !memchr(val, '\\', vlen);
}
