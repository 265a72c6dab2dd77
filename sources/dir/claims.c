/* claims.c - holder folders for a dir source's claimed files (claims.h). */
#include "claims.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "coordinator/log.h"
#include "name.h"

#define LOCK_NAME ".lock"
/* A holder folder's name while it is being made, before it is locked. */
#define NEW_PREFIX ".new-"

int hop_src_dir_move(const char *from, const char *to)
{
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
		return 0;
	/* NFS and some others cannot promise not to replace: plain rename. */
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	return rename(from, to) < 0 ? -errno : 0;
}

int hop_src_dir_hold(struct hop_src_dir_holder *h, const char *processing,
		     char *err, size_t errlen)
{
	char host[64] = "host", tmp[PATH_MAX], lock[PATH_MAX];
	int rc;

	h->dir = NULL;
	h->lock_fd = -1;
	gethostname(host, sizeof(host) - 1);
	for (char *p = host; *p; p++)
		if (*p == '/' || *p == '.')
			*p = '_';
	if (snprintf(tmp, sizeof(tmp), "%s/" NEW_PREFIX "%s-%d-XXXXXX",
		     processing, host, (int)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	if (!mkdtemp(tmp)) {
		rc = -errno;
		snprintf(err, errlen,
			 "dir source: cannot make a holder folder "
			 "in %s: %s",
			 processing, strerror(errno));
		return rc;
	}
	if (snprintf(lock, sizeof(lock), "%s/" LOCK_NAME, tmp) >=
	    (int)sizeof(lock)) {
		rmdir(tmp);
		return -ENAMETOOLONG;
	}
	h->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (h->lock_fd < 0 || flock(h->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		rc = -errno;
		snprintf(err, errlen, "dir source: cannot lock %s: %s", lock,
			 strerror(errno));
		goto out_remove;
	}
	/* Locked: now other coordinators may see it. */
	const char *slash = strrchr(tmp, '/');
	if (asprintf(&h->dir, "%.*s/%s", (int)(slash - tmp), tmp,
		     slash + 1 + strlen(NEW_PREFIX)) < 0) {
		h->dir = NULL;
		rc = -ENOMEM;
		goto out_remove;
	}
	if (rename(tmp, h->dir) < 0) {
		rc = -errno;
		snprintf(err, errlen, "dir source: cannot rename %s: %s", tmp,
			 strerror(errno));
		goto out_remove;
	}
	return 0;

out_remove:
	free(h->dir);
	h->dir = NULL;
	if (h->lock_fd >= 0)
		close(h->lock_fd);
	h->lock_fd = -1;
	unlink(lock);
	rmdir(tmp);
	return rc;
}

void hop_src_dir_unhold(struct hop_src_dir_holder *h)
{
	char lock[PATH_MAX];

	if (h->dir) {
		/* Only an empty folder gives up its lock file: one that
		 * still holds files is recovered by the next coordinator. */
		DIR *d = opendir(h->dir);
		int left = 0;
		for (struct dirent *e; d && (e = readdir(d));)
			left += strcmp(e->d_name, ".") &&
				strcmp(e->d_name, "..") &&
				strcmp(e->d_name, LOCK_NAME);
		if (d)
			closedir(d);
		if (snprintf(lock, sizeof(lock), "%s/" LOCK_NAME, h->dir) >=
		    (int)sizeof(lock))
			left = 1;
		if (d && !left && unlink(lock) == 0)
			rmdir(h->dir);
	}
	if (h->lock_fd >= 0)
		close(h->lock_fd);
	free(h->dir);
	h->dir = NULL;
	h->lock_fd = -1;
}

/* Moves name from folder back into inbox: under the bytes it stands for when
 * escaped is set (a holder folder names its files by id), else as it is. */
static int move_back(const char *folder, const char *name, const char *inbox,
		     bool escaped)
{
	char *raw = escaped ? hop_src_dir_unescape(name) : NULL;
	char *from = NULL, *to = NULL, *shown = NULL;
	int rc = -ENOMEM;

	if (asprintf(&from, "%s/%s", folder, name) < 0)
		from = NULL;
	else if (asprintf(&to, "%s/%s", inbox, raw ? raw : name) < 0)
		to = NULL;
	if (from && to && (rc = hop_src_dir_move(from, to)) && rc != -ENOENT)
		hop_log(HOP_ERROR, "dir source: cannot recover %s: %s",
			hop_src_dir_shown(from, &shown),
			rc == -EEXIST ? "a file of that name is in the input "
					"folder; left where it is"
				      : strerror(-rc));
	free(shown);
	free(raw);
	free(from);
	free(to);
	return rc;
}

/* Moves every file of folder back into inbox. Returns how many moved; *left
 * counts those that could not. */
static int empty_folder(const char *folder, const char *inbox, bool escaped,
			int *left)
{
	DIR *d = opendir(folder);
	int n = 0;

	if (!d)
		return 0;
	for (struct dirent *e; (e = readdir(d));) {
		char *p;
		struct stat st;
		if (e->d_name[0] == '.')
			continue;
		if (asprintf(&p, "%s/%s", folder, e->d_name) < 0)
			break;
		bool file = lstat(p, &st) == 0 && !S_ISDIR(st.st_mode);
		free(p);
		if (!file)
			continue;
		int rc = move_back(folder, e->d_name, inbox, escaped);
		if (rc == 0)
			n++;
		else if (rc != -ENOENT)
			(*left)++;
	}
	closedir(d);
	return n;
}

/* Recovers one holder folder if its holder is gone. Returns the number of
 * files moved back. */
static int recover_holder(const char *folder, const char *inbox)
{
	char lock[PATH_MAX];
	int n, left = 0;

	if (snprintf(lock, sizeof(lock), "%s/" LOCK_NAME, folder) >=
	    (int)sizeof(lock))
		return 0;
	/* No lock file: not a holder folder, or one that is being given up. */
	int fd = open(lock, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd); /* its coordinator is alive */
		return 0;
	}
	n = empty_folder(folder, inbox, true, &left);
	if (!left && unlink(lock) == 0)
		rmdir(folder);
	close(fd);
	return n;
}

int hop_src_dir_recover(const char *processing, const char *inbox,
			const char *own, bool loose)
{
	DIR *d = opendir(processing);
	int n = 0, left = 0;

	if (!d)
		return 0;
	for (struct dirent *e; (e = readdir(d));) {
		char *p;
		struct stat st;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (asprintf(&p, "%s/%s", processing, e->d_name) < 0)
			break;
		/* A holder folder, or one left half made (.new-) by a
		 * coordinator that died while making it. */
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode) &&
		    (!own || strcmp(p, own)) &&
		    (e->d_name[0] != '.' ||
		     !strncmp(e->d_name, NEW_PREFIX, strlen(NEW_PREFIX))))
			n += recover_holder(p, inbox);
		free(p);
	}
	closedir(d);
	if (loose)
		n += empty_folder(processing, inbox, false, &left);
	return n;
}
