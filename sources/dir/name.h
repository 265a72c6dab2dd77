/* name.h - file names as the dir source shows them: ids that are UTF-8.
 *
 * A file name is bytes; an item's id, and everything the worker reads, is
 * JSON and so UTF-8. The dir source names an item by its file name with '%'
 * and every byte that is not part of valid UTF-8 written as %XX (two upper
 * case hex digits). A name of valid UTF-8 without '%', nearly every name, is
 * its own id. The escape is one to one, so two files never share an id, and
 * the bytes come back with unescape (Python: urllib.parse.unquote_to_bytes).
 */
#ifndef HOP_SRC_DIR_NAME_H
#define HOP_SRC_DIR_NAME_H

#include <stdbool.h>

/* What a dead letter's report adds to its file's name in failed/. */
#define HOP_SRC_DIR_REPORT ".error.json"

/* True for a name that ends in HOP_SRC_DIR_REPORT: a report, never an item
 * of the input folder. */
bool hop_src_dir_is_report(const char *name);

/* Returns the escaped form of raw (malloc'd), or NULL when memory ran out. */
char *hop_src_dir_escape(const char *raw);

/* Returns the bytes an escaped name stands for (malloc'd), or NULL when esc
 * is not one that hop_src_dir_escape makes (a '%' without two hex digits, or
 * an escape of NUL or '/') or memory ran out. */
char *hop_src_dir_unescape(const char *esc);

/* Returns s itself when it is valid UTF-8, else its escaped form (malloc'd
 * into *tmp, which the caller frees): a file name or path fit for a log line
 * or a JSON string. Never NULL: "?" when memory ran out. */
const char *hop_src_dir_shown(const char *s, char **tmp);

#endif
