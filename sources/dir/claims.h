/* claims.h - who holds which claimed files of a dir source.
 *
 * Several coordinators may share one input folder. Each one claims files by
 * renaming them into a holder folder of its own, processing/HOST-PID-XXXXXX,
 * which holds a .lock file that its coordinator keeps locked (flock(2)) for
 * as long as it runs. The kernel drops the lock when the process dies, however
 * it dies, so a lock that can be taken marks a holder that is gone: its files
 * go back to the input folder, to be claimed again. A live holder's files are
 * never touched by another coordinator.
 */
#ifndef HOP_SRC_DIR_CLAIMS_H
#define HOP_SRC_DIR_CLAIMS_H

#include <stdbool.h>
#include <stddef.h>

struct hop_src_dir_holder {
	char *dir;   /* our holder folder (absolute), or NULL */
	int lock_fd; /* dir/.lock, locked while we run; -1 when none */
};

/* Makes and locks a holder folder of our own under processing; it becomes
 * visible to other coordinators only once locked. Returns 0 or -errno with
 * a message in err. */
int hop_src_dir_hold(struct hop_src_dir_holder *h, const char *processing,
		     char *err, size_t errlen);

/* Removes our holder folder when it holds nothing more, and drops the lock.
 * A folder that still holds files keeps its .lock file, so that the next
 * coordinator on the folder recovers them. */
void hop_src_dir_unhold(struct hop_src_dir_holder *h);

/* Moves the files of every holder folder under processing whose lock can be
 * taken (its coordinator is gone) back into inbox under their own names,
 * then removes those folders. With loose set, files lying in processing
 * itself (the layout of versions before holder folders) go back too. own is
 * our own holder folder, skipped. Returns the number of files moved back;
 * a file that cannot be moved is logged and left where it is. */
int hop_src_dir_recover(const char *processing, const char *inbox,
			const char *own, bool loose);

/* Renames from to to, failing with -EEXIST rather than replacing a file
 * that is already there (where the file system can tell). Returns 0 or
 * -errno. */
int hop_src_dir_move(const char *from, const char *to);

#endif
