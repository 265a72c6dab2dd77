/* sha256.h - SHA-256 (FIPS 180-4), for names that must not collide.
 *
 * Small and unhurried: it hashes ids, not files. The dir sink names a
 * result whose id is too long for a file name by the id's hash.
 */
#ifndef HOP_SHA256_H
#define HOP_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define HOP_SHA256_LEN 32

/* Writes the SHA-256 digest of the len bytes at data to out. */
void hop_sha256(const void *data, size_t len, uint8_t out[HOP_SHA256_LEN]);

/* Writes the digest as 64 lowercase hex digits and a NUL to out. */
void hop_sha256_hex(const void *data, size_t len,
		    char out[2 * HOP_SHA256_LEN + 1]);

#endif
