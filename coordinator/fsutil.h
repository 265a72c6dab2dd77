/* fsutil.h - small file-system helpers shared by drivers. */
#ifndef HOP_FSUTIL_H
#define HOP_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>

/* Creates path and any missing parents (mode 0777 less umask). Returns 0 or
 * -errno; an existing folder is not an error. */
int hop_mkdirs(const char *path);

/* Writes data to path atomically: to a temporary name beside it, flushed to
 * disk when sync is set, then renamed over path. A reader sees the old file
 * or the whole new one, never a part. Returns 0 or -errno; on failure no
 * temporary file is left behind. */
int hop_write_file(const char *path, const void *data, size_t len, bool sync);

#endif
