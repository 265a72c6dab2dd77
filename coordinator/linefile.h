/* linefile.h - an append-only file of lines that never keeps half a line.
 *
 * The jsonl sink, the run journal and the jsonl source's dead-letter file
 * all append JSON lines that a later reader parses one by one, and all
 * promise the same thing: a line is either wholly in the file or not at
 * all. A write that fails part way (a full disk, a file size limit) is cut
 * back (ftruncate) to the end of the last whole line before the caller
 * hears of the failure, and a file whose last line has no newline, left by
 * a run killed in the middle of a write, has that torn tail cut when it is
 * taken over. When even the cut fails, it is tried again before the next
 * write, so that nothing is ever appended onto a fragment.
 *
 * A pipe, a terminal or a device cannot be cut. After a failed write that
 * stopped inside a line, the next write starts with a newline, so that the
 * line after the fragment still parses. So does the first write to a file
 * that was only lent (stdout) and ends inside a line: what was there
 * before is not ours to cut.
 */
#ifndef HOP_LINEFILE_H
#define HOP_LINEFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct hop_linefile {
	int fd;		  /* owned; -1 once closed */
	bool regular;	  /* a regular file: synced, and cut back */
	off_t good;	  /* a file: the end of its last whole line */
	bool cut_pending; /* a file: a failed write is not cut back yet */
	bool mid_line;	  /* not a file: a failed write stopped in a line */
	uint64_t cuts;	  /* failed writes cut back since it was taken over */
};

/* Opens path to append lines to, creating it (mode 0666, less the umask)
 * when it does not exist. A regular file is opened for reading too, so that
 * hop_linefile_init can find its last line; anything else (a fifo, a
 * device) for writing only. The descriptor is close-on-exec. Returns the
 * descriptor, or -errno. */
int hop_linefile_open(const char *path);

/* Takes over fd, a descriptor opened with O_APPEND (from hop_linefile_open,
 * or any other, such as a copy of stdout): lf owns it from now on, also
 * when this fails. A regular file whose last line has no newline has that
 * torn tail cut, and the number of bytes cut is put in *cut (0 when the
 * file was whole, or is not a regular file), for the caller to say so in
 * its own words. Returns 0, or -errno with fd closed and lf->fd -1. */
int hop_linefile_init(struct hop_linefile *lf, int fd, off_t *cut);

/* Takes over fd, a descriptor of a file the caller did not open itself
 * (a copy of stdout, which the shell may have opened write-only): what the
 * file holds already is someone else's and is never cut. When it is a
 * regular file whose last byte is not a newline, *torn is set and the
 * first line appended starts with one, so that the lines after it parse.
 * Returns 0, or -errno with fd closed and lf->fd -1. */
int hop_linefile_adopt(struct hop_linefile *lf, int fd, bool *torn);

/* Appends the len bytes at p, which should end with a newline, and with
 * sync makes them durable (fdatasync) before returning; a file that is not
 * regular is never synced. A cut that failed after an earlier write is
 * done first, and a write after a broken line of a pipe starts with a
 * newline. Returns 0 once all of it is written (and synced), or -errno: a
 * regular file is then cut back to where it ended before the call, or,
 * when that cut fails too, lf->cut_pending is set and nothing more is
 * written before it succeeds. Each cut that succeeds counts in lf->cuts. */
int hop_linefile_append(struct hop_linefile *lf, const char *p, size_t len,
			bool sync);

/* Closes the descriptor; a closed or never opened lf (fd -1) is ignored. */
void hop_linefile_close(struct hop_linefile *lf);

#endif
