/* failed.h - the dir source's dead letters, for hopper dead.
 *
 * A dead file lies in the failed folder under its own name, with its
 * report NAME.error.json beside it. It is listed under its id (name.h),
 * with the report's error and attempts; retry moves it back into the input
 * folder, never over a file of that name, and then removes its report;
 * discard deletes the file, then its report. A report without its file is
 * not a dead letter, and a file without a report is one whose error is
 * unknown.
 */
#ifndef HOP_SRC_DIR_FAILED_H
#define HOP_SRC_DIR_FAILED_H

#include <stddef.h>

#include "sources/source.h"

/* Calls each for every dead file in failed, in name order. Returns 0, the
 * first non-zero return of each, or -errno with a message in err. */
int hop_src_dir_failed_list(const char *failed, hop_dead_each_fn each,
			    void *arg, char *err, size_t errlen);

/* Calls each for the dead files of failed from the offset'th, at most
 * limit of them, reading only their reports, and sets *total to how many
 * there are. Returns as hop_src_dir_failed_list. */
int hop_src_dir_failed_page(const char *failed, size_t offset, size_t limit,
			    hop_dead_each_fn each, void *arg, size_t *total,
			    char *err, size_t errlen);

/* Moves the dead file whose id is id from failed back into inbox and
 * removes its report. Returns 0, -ENOENT when there is no such file, or
 * another -errno (-EEXIST: inbox has a file of that name), with err. */
int hop_src_dir_failed_retry(const char *failed, const char *inbox,
			     const char *id, char *err, size_t errlen);

/* Deletes the dead file whose id is id and its report. Returns as retry. */
int hop_src_dir_failed_discard(const char *failed, const char *id, char *err,
			       size_t errlen);

#endif
