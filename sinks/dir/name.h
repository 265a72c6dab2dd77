/* name.h - the dir sink's file name for an item's id.
 *
 * One id, one name, and no two ids share one: the name is the id with '%',
 * '/', a leading '.', control bytes and bytes that are not UTF-8 written as
 * %XX (two uppercase hex digits, as in URLs); every other byte is kept, so
 * ordinary ids read unchanged. The empty id is "%". An id whose escaped name
 * would pass HOP_DIR_NAME_MAX bytes is named by the first bytes of that
 * name (at most HOP_DIR_NAME_PREFIX, never half an escape or half a UTF-8
 * character), "%%" and the SHA-256 of the whole id in lowercase hex. An
 * escaped name never holds "%%", so a hashed name never equals one.
 */
#ifndef HOP_DIR_NAME_H
#define HOP_DIR_NAME_H

#include <stddef.h>

/* Longest name made, without the sink's ending: with an ending of at most
 * HOP_DIR_EXT_MAX bytes and hop_write_file's ".NAME.PID.tmp", it stays
 * under NAME_MAX (255). */
#define HOP_DIR_NAME_MAX 200
#define HOP_DIR_NAME_PREFIX 128
#define HOP_DIR_EXT_MAX 32

/* Writes id's file name and a NUL to dst; returns the name's length. */
size_t hop_dir_name(char dst[HOP_DIR_NAME_MAX + 1], const char *id);

#endif
