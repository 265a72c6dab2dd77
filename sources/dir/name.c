/* name.c - escaping file names into UTF-8 ids and back (see name.h). */
#include "name.h"

#include <stdlib.h>
#include <string.h>

/* Returns the length of the valid UTF-8 sequence at p (1 to 4), or 0 when
 * the bytes there are not one. */
static size_t utf8_len(const unsigned char *p)
{
	unsigned char c = p[0];
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		/* E0 needs A0..BF (no overlong), ED 80..9F (no surrogate). */
		unsigned char lo = c == 0xe0 ? 0xa0 : 0x80;
		unsigned char hi = c == 0xed ? 0x9f : 0xbf;
		if (p[1] < lo || p[1] > hi || (p[2] & 0xc0) != 0x80)
			return 0;
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		/* F0 needs 90..BF (no overlong), F4 80..8F (<= U+10FFFF). */
		unsigned char lo = c == 0xf0 ? 0x90 : 0x80;
		unsigned char hi = c == 0xf4 ? 0x8f : 0xbf;
		if (p[1] < lo || p[1] > hi || (p[2] & 0xc0) != 0x80 ||
		    (p[3] & 0xc0) != 0x80)
			return 0;
		return 4;
	}
	return 0;
}

bool hop_src_dir_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		size_t n = utf8_len(p);
		if (!n)
			return false;
		p += n;
	}
	return true;
}

char *hop_src_dir_escape(const char *raw)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)raw;
	char *out = malloc(3 * strlen(raw) + 1), *o = out;

	if (!out)
		return NULL;
	while (*p) {
		size_t n = *p == '%' ? 0 : utf8_len(p);
		if (n) {
			memcpy(o, p, n);
			o += n;
			p += n;
			continue;
		}
		*o++ = '%';
		*o++ = hex[*p >> 4];
		*o++ = hex[*p & 15];
		p++;
	}
	*o = '\0';
	return out;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

char *hop_src_dir_unescape(const char *esc)
{
	char *out = malloc(strlen(esc) + 1), *o = out;

	if (!out)
		return NULL;
	for (const char *p = esc; *p; p++) {
		if (*p != '%') {
			*o++ = *p;
			continue;
		}
		int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);
		int c = hi < 0 || lo < 0 ? 0 : hi * 16 + lo;
		if (c == 0 || c == '/') {
			free(out);
			return NULL;
		}
		*o++ = (char)c;
		p += 2;
	}
	*o = '\0';
	return out;
}

const char *hop_src_dir_shown(const char *s, char **tmp)
{
	*tmp = NULL;
	if (hop_src_dir_utf8(s))
		return s;
	*tmp = hop_src_dir_escape(s);
	return *tmp ? *tmp : "?";
}

bool hop_src_dir_is_report(const char *name)
{
	size_t n = strlen(name), k = strlen(HOP_SRC_DIR_REPORT);
	return n > k && strcmp(name + n - k, HOP_SRC_DIR_REPORT) == 0;
}
