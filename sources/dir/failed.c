/* failed.c - the dir source's dead letters (see failed.h). */
#include "failed.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "claims.h"
#include "name.h"

/* The report of the file name in failed (malloc'd), or NULL. */
static char *report_path(const char *failed, const char *name)
{
	char *p;
	if (asprintf(&p, "%s/%s" HOP_SRC_DIR_REPORT, failed, name) < 0)
		return NULL;
	return p;
}

/* Shows one dead file: the report's error and attempts, and the report's
 * time as when it died. */
static int show(const char *failed, const char *name, hop_dead_each_fn each,
		void *arg)
{
	char *rpath = report_path(failed, name), *id = hop_src_dir_escape(name);
	char when[32], *payload = NULL, *record = NULL;
	struct hop_dead_letter d = {.id = id, .item = id, .attempts = -1};
	struct stat st;
	json_t *rep = NULL;
	int rc = -ENOMEM;

	if (!rpath || !id)
		goto out;
	if (stat(rpath, &st) == 0) {
		struct tm tm;
		gmtime_r(&st.st_mtime, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		d.when = when;
		rep = json_load_file(rpath, 0, NULL);
	}
	if (json_is_object(rep)) {
		json_t *v = json_object_get(rep, "payload");
		d.error = json_string_value(json_object_get(rep, "error"));
		if (json_is_integer(json_object_get(rep, "attempts")))
			d.attempts = json_integer_value(
			    json_object_get(rep, "attempts"));
		if (v)
			d.payload = payload =
			    json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		d.record = record = json_dumps(rep, JSON_COMPACT);
	}
	if (!d.error)
		d.error = d.when ? "the report " HOP_SRC_DIR_REPORT
				   " cannot be read"
				 : "no report " HOP_SRC_DIR_REPORT;
	rc = each(arg, &d);
out:
	json_decref(rep);
	free(payload);
	free(record);
	free(rpath);
	free(id);
	return rc;
}

int hop_src_dir_failed_page(const char *failed, size_t offset, size_t limit,
			    hop_dead_each_fn each, void *arg, size_t *total,
			    char *err, size_t errlen)
{
	struct dirent **list;
	int n = scandir(failed, &list, NULL, alphasort), rc = 0;
	size_t seen = 0;

	*total = 0;
	if (n < 0 && errno == ENOENT)
		return 0; /* nothing has died yet */
	if (n < 0) {
		rc = -errno;
		snprintf(err, errlen, "dir source: %s: %s", failed,
			 strerror(errno));
		return rc;
	}
	for (int i = 0; i < n; i++) {
		const char *name = list[i]->d_name;
		struct stat st;
		char *p;
		if (!rc && name[0] != '.' && !hop_src_dir_is_report(name) &&
		    asprintf(&p, "%s/%s", failed, name) >= 0) {
			if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
				size_t at = seen++;
				/* Only the page's reports are read. */
				if (at >= offset && at - offset < limit)
					rc = show(failed, name, each, arg);
			}
			free(p);
		}
		free(list[i]);
	}
	free(list);
	*total = seen;
	return rc;
}

int hop_src_dir_failed_list(const char *failed, hop_dead_each_fn each,
			    void *arg, char *err, size_t errlen)
{
	size_t total;
	return hop_src_dir_failed_page(failed, 0, SIZE_MAX, each, arg, &total,
				       err, errlen);
}

/* Finds the dead file of id: its raw name and path in failed (malloc'd).
 * Returns 0, -ENOENT or -ENOMEM, with err. */
static int locate(const char *failed, const char *id, char **raw, char **path,
		  char *err, size_t errlen)
{
	struct stat st;

	*path = NULL;
	*raw = hop_src_dir_unescape(id);
	if (!*raw || hop_src_dir_is_report(*raw) || strchr(*raw, '/') ||
	    (*raw)[0] == '.' || asprintf(path, "%s/%s", failed, *raw) < 0 ||
	    stat(*path, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "no dead file %s in %s", id, failed);
		free(*raw);
		free(*path);
		*raw = *path = NULL;
		return -ENOENT;
	}
	return 0;
}

/* Removes the report of the file raw; one already gone will do. */
static int drop_report(const char *failed, const char *raw, char *err,
		       size_t errlen)
{
	char *rpath = report_path(failed, raw), *tmp;
	int rc = 0;

	if (!rpath)
		return -ENOMEM;
	if (unlink(rpath) < 0 && errno != ENOENT) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", hop_src_dir_shown(rpath, &tmp),
			 strerror(errno));
		free(tmp);
	}
	free(rpath);
	return rc;
}

int hop_src_dir_failed_retry(const char *failed, const char *inbox,
			     const char *id, char *err, size_t errlen)
{
	char *raw, *from, *to = NULL, *tmp;
	int rc = locate(failed, id, &raw, &from, err, errlen);

	if (rc)
		return rc;
	if (asprintf(&to, "%s/%s", inbox, raw) < 0) {
		to = NULL;
		rc = -ENOMEM;
		goto out;
	}
	/* The file first: stopped half way, what is left is a report without
	 * its file, which is neither a dead letter nor an item. */
	rc = hop_src_dir_move(from, to);
	if (rc == -EEXIST)
		snprintf(err, errlen, "%s: a file of that name is in %s",
			 hop_src_dir_shown(from, &tmp), inbox);
	else if (rc)
		snprintf(err, errlen, "%s: %s", hop_src_dir_shown(from, &tmp),
			 strerror(-rc));
	else
		tmp = NULL;
	free(tmp);
	if (!rc)
		rc = drop_report(failed, raw, err, errlen);
out:
	free(raw);
	free(from);
	free(to);
	return rc;
}

int hop_src_dir_failed_discard(const char *failed, const char *id, char *err,
			       size_t errlen)
{
	char *raw, *path, *tmp;
	int rc = locate(failed, id, &raw, &path, err, errlen);

	if (rc)
		return rc;
	if (unlink(path) < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", hop_src_dir_shown(path, &tmp),
			 strerror(errno));
		free(tmp);
	} else {
		rc = drop_report(failed, raw, err, errlen);
	}
	free(raw);
	free(path);
	return rc;
}
