/* name.c - ids to file names, one to one (see name.h). */
#include "name.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "coordinator/sha256.h"
#include "coordinator/utf8.h"

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
			       : hop_utf8_len(p);
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
