/* utf8.h - telling well-formed UTF-8 from other bytes in C strings.
 *
 * JSON, and so every id and payload hopper hands a worker, is UTF-8; file
 * names and ids from outside are bytes. Well-formed means RFC 3629: no
 * overlong forms, no surrogates, nothing past U+10FFFF.
 */
#ifndef HOP_UTF8_H
#define HOP_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Returns the length (1 to 4) of the well-formed UTF-8 character that
 * starts at p, or 0 when the bytes there are not one. p is NUL-terminated:
 * a NUL ends a sequence early, so it is never read past. */
size_t hop_utf8_len(const unsigned char *p);

/* True when the whole of s is well-formed UTF-8. */
bool hop_utf8_valid(const char *s);

#endif
