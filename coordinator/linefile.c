/* linefile.c - an append-only file of lines that never keeps half a line
 * (see linefile.h). */
#include "coordinator/linefile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

int hop_linefile_open(const char *path)
{
	struct stat st;
	bool file = stat(path, &st) < 0 || S_ISREG(st.st_mode);
	int flags = O_CREAT | O_APPEND | O_CLOEXEC;
	int fd = open(path, flags | (file ? O_RDWR : O_WRONLY), 0666);
	return fd < 0 ? -errno : fd;
}

/* Returns the offset just past the last newline before end (0 when there
 * is none), or -errno. */
static off_t last_line_end(int fd, off_t end)
{
	char buf[65536];

	while (end > 0) {
		off_t from =
		    end > (off_t)sizeof(buf) ? end - (off_t)sizeof(buf) : 0;
		ssize_t n = pread(fd, buf, (size_t)(end - from), from);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		for (ssize_t i = n; i > 0; i--)
			if (buf[i - 1] == '\n')
				return from + i;
		end = from;
	}
	return 0;
}

int hop_linefile_init(struct hop_linefile *lf, int fd, off_t *cut)
{
	struct stat st;
	off_t keep;
	int rc;

	*lf = (struct hop_linefile){.fd = fd};
	*cut = 0;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out_close;
	}
	lf->regular = S_ISREG(st.st_mode);
	if (!lf->regular)
		return 0;
	if ((keep = last_line_end(fd, st.st_size)) < 0) {
		rc = (int)keep;
		goto out_close;
	}
	if (keep < st.st_size && ftruncate(fd, keep) < 0) {
		rc = -errno;
		goto out_close;
	}
	*cut = st.st_size - keep;
	lf->good = keep;
	return 0;

out_close:
	close(fd);
	lf->fd = -1;
	return rc;
}

/* Reads the byte at offset at of fd into *c, through a descriptor of its
 * own for reading when fd was opened for writing only. Returns 0 or
 * -errno. */
static int byte_at(int fd, off_t at, char *c)
{
	char path[64];
	ssize_t n;
	int rfd, rc = 0;

	while ((n = pread(fd, c, 1, at)) < 0 && errno == EINTR)
		;
	if (n == 1)
		return 0;
	if (n == 0 || errno != EBADF)
		return n == 0 ? -EIO : -errno;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	rfd = open(path, O_RDONLY | O_CLOEXEC);
	if (rfd < 0)
		return -errno;
	while ((n = pread(rfd, c, 1, at)) < 0 && errno == EINTR)
		;
	if (n != 1)
		rc = n == 0 ? -EIO : -errno;
	close(rfd);
	return rc;
}

int hop_linefile_adopt(struct hop_linefile *lf, int fd, bool *torn)
{
	struct stat st;
	char last = '\n';

	*lf = (struct hop_linefile){.fd = fd};
	*torn = false;
	if (fstat(fd, &st) < 0) {
		int rc = -errno;
		close(fd);
		lf->fd = -1;
		return rc;
	}
	lf->regular = S_ISREG(st.st_mode);
	if (!lf->regular || st.st_size == 0)
		return 0;
	/* Unreadable even so: a newline too many is better than a line
	 * glued to someone else's. */
	if (byte_at(fd, st.st_size - 1, &last) < 0)
		last = 0;
	*torn = lf->mid_line = last != '\n';
	lf->good = st.st_size;
	return 0;
}

/* Writes len bytes; returns 0 or -errno, with what got out in *done. */
static int write_all(int fd, const char *p, size_t len, size_t *done)
{
	*done = 0;
	while (*done < len) {
		ssize_t n = write(fd, p + *done, len - *done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		*done += (size_t)n;
	}
	return 0;
}

/* After a failed write: a file is cut back to its last whole line (or
 * marked to be, when even that fails); a pipe remembers a broken line. */
static void undo_write(struct hop_linefile *lf, bool wrote, char last)
{
	if (!lf->regular) {
		if (wrote && last != '\n')
			lf->mid_line = true;
		return;
	}
	if (!wrote && !lf->cut_pending)
		return;
	lf->cut_pending = ftruncate(lf->fd, lf->good) < 0;
	if (!lf->cut_pending)
		lf->cuts++;
}

int hop_linefile_append(struct hop_linefile *lf, const char *p, size_t len,
			bool sync)
{
	size_t done = 0;
	int rc;

	if (len == 0 && !lf->cut_pending)
		return 0;
	if (lf->cut_pending) {
		/* Nothing is written after a fragment that is still there. */
		if (ftruncate(lf->fd, lf->good) < 0)
			return -errno;
		lf->cut_pending = false;
		lf->cuts++;
	} else if (lf->regular) {
		/* Another writer may have appended whole lines since. */
		off_t end = lseek(lf->fd, 0, SEEK_END);
		if (end < 0)
			return -errno;
		lf->good = end;
	}
	if (lf->mid_line) {
		if ((rc = write_all(lf->fd, "\n", 1, &done)))
			goto failed;
		lf->mid_line = false;
		if (lf->regular)
			lf->good++; /* a failed write is not cut back past it */
	}
	rc = write_all(lf->fd, p, len, &done);
	if (!rc && lf->regular && sync && fdatasync(lf->fd) < 0)
		rc = -errno;
	if (!rc) {
		if (lf->regular)
			lf->good += (off_t)len;
		return 0;
	}
failed:
	undo_write(lf, done > 0, done > 0 ? p[done - 1] : '\n');
	return rc;
}

void hop_linefile_close(struct hop_linefile *lf)
{
	if (lf->fd >= 0)
		close(lf->fd);
	lf->fd = -1;
}
