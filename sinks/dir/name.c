/* name.c - ids to file names, one to one (see name.h). */
#include "name.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "coordinator/sha256.h"

/* Returns the length of the well-formed UTF-8 character at p (RFC 3629: no
 * overlong forms, no surrogates, nothing past U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *p)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if (p[0] == 0xe0)
		lo = 0xa0;
	else if (p[0] == 0xed)
		hi = 0x9f;
	else if (p[0] == 0xf0)
		lo = 0x90;
	else if (p[0] == 0xf4)
		hi = 0x8f;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

static bool must_escape(unsigned char c, bool first)
{
	return c == '%' || c == '/' || c < 0x20 || c == 0x7f ||
	       (first && c == '.');
}

size_t hop_dir_name(char dst[HOP_DIR_NAME_MAX + 1], const char *id)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)id;
	size_t len = 0, cut = 0;

	if (!*p) {
		strcpy(dst, "%");
		return 1;
	}
	while (*p) {
		size_t n = must_escape(*p, p == (const unsigned char *)id)
			       ? 0
			       : utf8_len(p);
		size_t out = n ? n : 3;
		if (len + out > HOP_DIR_NAME_MAX)
			goto hashed;
		if (n) {
			memcpy(dst + len, p, n);
		} else {
			dst[len] = '%';
			dst[len + 1] = hex[*p >> 4];
			dst[len + 2] = hex[*p & 15];
			n = 1;
		}
		len += out;
		if (len <= HOP_DIR_NAME_PREFIX)
			cut = len;
		p += n;
	}
	dst[len] = '\0';
	return len;

hashed:
	/* cut ends a whole escape or character within the prefix. */
	memcpy(dst + cut, "%%", 2);
	hop_sha256_hex(id, strlen(id), dst + cut + 2);
	return cut + 2 + 2 * HOP_SHA256_LEN;
}
