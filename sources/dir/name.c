/* name.c - escaping file names into UTF-8 ids and back (see name.h). */
#include "name.h"

#include <stdlib.h>
#include <string.h>

#include "coordinator/utf8.h"

char *hop_src_dir_escape(const char *raw)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)raw;
	char *out = malloc(3 * strlen(raw) + 1), *o = out;

	if (!out)
		return NULL;
	while (*p) {
		size_t n = *p == '%' ? 0 : hop_utf8_len(p);
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
	if (hop_utf8_valid(s))
		return s;
	*tmp = hop_src_dir_escape(s);
	return *tmp ? *tmp : "?";
}

bool hop_src_dir_is_report(const char *name)
{
	size_t n = strlen(name), k = strlen(HOP_SRC_DIR_REPORT);
	return n > k && strcmp(name + n - k, HOP_SRC_DIR_REPORT) == 0;
}
