/* journal.c - the run journal: finished ids, appended and synced, read
 * back by the next run to skip them. See journal.h for the format. */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "linefile.h"
#include "log.h"

enum outcome { NONE, DONE, DEAD };

/* One id's latest outcome, in an open-addressed table. */
struct slot {
	char *id; /* owned; NULL for an empty slot */
	unsigned char outcome;
};

struct hop_journal {
	char *path;
	struct hop_linefile file;
	bool resume_failed;
	struct slot *slots;
	size_t cap, used; /* cap a power of two, at most half used */
	size_t done, dead;
	struct hop_buf out; /* lines waiting for the next sync */
	char error[512];
};

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static struct slot *find(const struct hop_journal *j, const char *id)
{
	size_t i = (size_t)hash(id) & (j->cap - 1);
	while (j->slots[i].id && strcmp(j->slots[i].id, id) != 0)
		i = (i + 1) & (j->cap - 1);
	return &j->slots[i];
}

static int grow(struct hop_journal *j)
{
	struct hop_journal old = *j;
	j->cap = old.cap ? old.cap * 2 : 1024;
	j->slots = calloc(j->cap, sizeof(*j->slots));
	if (!j->slots) {
		*j = old;
		return -ENOMEM;
	}
	for (size_t i = 0; i < old.cap; i++)
		if (old.slots[i].id)
			*find(j, old.slots[i].id) = old.slots[i];
	free(old.slots);
	return 0;
}

/* Records id's latest outcome, keeping the counts of each. */
static int remember(struct hop_journal *j, const char *id, enum outcome o)
{
	if ((j->used + 1) * 2 > j->cap && grow(j))
		return -ENOMEM;
	struct slot *s = find(j, id);
	if (!s->id) {
		if (!(s->id = strdup(id)))
			return -ENOMEM;
		j->used++;
	}
	j->done -= s->outcome == DONE;
	j->dead -= s->outcome == DEAD;
	s->outcome = (unsigned char)o;
	j->done += o == DONE;
	j->dead += o == DEAD;
	return 0;
}

/* Reads one whole line of the journal. Returns 0, or -EINVAL with a
 * message in err naming the line. */
static int read_line(struct hop_journal *j, const char *line, long lineno,
		     const char *source, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *v = json_loads(line, 0, &jerr);
	const char *id, *outcome, *src;
	int rc = -EINVAL;

	if (!json_is_object(v)) {
		snprintf(err, errlen, "journal %s:%ld: not a journal line (%s)",
			 j->path, lineno, v ? "not an object" : jerr.text);
		goto out;
	}
	if ((src = json_string_value(json_object_get(v, "source")))) {
		if (strcmp(src, source) != 0) {
			snprintf(err, errlen,
				 "journal %s records the source %s, not %s: "
				 "its ids are that source's; give this run "
				 "a journal of its own (or remove this one "
				 "to start over)",
				 j->path, src, source);
			goto out;
		}
		rc = 0;
		goto out;
	}
	id = json_string_value(json_object_get(v, "id"));
	outcome = json_string_value(json_object_get(v, "outcome"));
	if (!id || !outcome ||
	    (strcmp(outcome, "done") != 0 && strcmp(outcome, "dead") != 0)) {
		snprintf(err, errlen,
			 "journal %s:%ld: not a journal line (it needs a "
			 "string id and an outcome of done or dead)",
			 j->path, lineno);
		goto out;
	}
	rc = remember(j, id, strcmp(outcome, "done") == 0 ? DONE : DEAD);
	if (rc)
		snprintf(err, errlen, "journal %s: out of memory", j->path);
out:
	json_decref(v);
	return rc;
}

/* Reads what earlier runs recorded in fd, up to the last whole line, into
 * j. Returns 0 or -errno with a message in err. */
static int read_journal(struct hop_journal *j, int fd, const char *source,
			char *err, size_t errlen)
{
	FILE *f = fdopen(dup(fd), "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	long lineno = 0;
	int rc = 0;

	if (!f) {
		snprintf(err, errlen, "journal %s: %s", j->path,
			 strerror(errno));
		return -errno;
	}
	while ((n = getline(&line, &cap, f)) > 0) {
		if (line[n - 1] != '\n')
			break; /* a torn last line: hop_linefile_init cuts it */
		lineno++;
		if (n == 1)
			continue;
		if ((rc = read_line(j, line, lineno, source, err, errlen)))
			break;
	}
	if (!rc && ferror(f)) {
		rc = -EIO;
		snprintf(err, errlen, "journal %s: cannot read it", j->path);
	}
	free(line);
	fclose(f);
	return rc;
}

/* Takes over fd, cutting a torn last line that a killed run left: its
 * items were never acknowledged, so they are done again. Returns 0 or
 * -errno with a message in err; fd is closed on failure. */
static int take_file(struct hop_journal *j, int fd, char *err, size_t errlen)
{
	off_t cut;
	int rc = hop_linefile_init(&j->file, fd, &cut);

	if (rc < 0) {
		snprintf(err, errlen,
			 "journal %s: cannot cut its torn last line: %s",
			 j->path, strerror(-rc));
		return rc;
	}
	if (cut > 0)
		hop_log(HOP_WARN,
			"journal %s: cut a torn last line of %lld byte(s) that "
			"a stopped run left (its items are done again)",
			j->path, (long long)cut);
	return 0;
}

static int append_header(struct hop_journal *j, const char *source)
{
	char when[32];
	time_t now = time(NULL);
	struct tm tm;
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
	if (hop_buf_append(&j->out, "{\"journal\": 1, \"source\": ", 25) ||
	    hop_buf_append_json_str(&j->out, source) ||
	    hop_buf_appendf(&j->out, ", \"run\": \"%s\"}\n", when))
		return -ENOMEM;
	return hop_journal_sync(j);
}

/* Closes j's file and frees all it holds, whether it was opened whole or
 * only in part. */
static void free_journal(struct hop_journal *j)
{
	hop_linefile_close(&j->file);
	for (size_t i = 0; i < j->cap; i++)
		free(j->slots[i].id);
	free(j->slots);
	free(j->path);
	hop_buf_free(&j->out);
	free(j);
}

struct hop_journal *hop_journal_open(const char *path, const char *source,
				     bool resume_failed, char *err,
				     size_t errlen)
{
	struct hop_journal *j = calloc(1, sizeof(*j));
	int fd;

	if (!j) {
		snprintf(err, errlen, "journal %s: out of memory", path);
		return NULL;
	}
	j->file.fd = -1;
	if (!(j->path = strdup(path))) {
		snprintf(err, errlen, "journal %s: out of memory", path);
		goto out_free;
	}
	j->resume_failed = resume_failed;
	fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
	if (fd < 0) {
		snprintf(err, errlen, "journal %s: %s", path, strerror(errno));
		goto out_free;
	}
	if (grow(j)) {
		snprintf(err, errlen, "journal %s: out of memory", path);
		goto out_close_fd;
	}
	if (read_journal(j, fd, source, err, errlen))
		goto out_close_fd;
	/* j->file owns fd from here on, and has closed it if this fails. */
	if (take_file(j, fd, err, errlen))
		goto out_free;
	if (append_header(j, source)) {
		snprintf(err, errlen, "%s", j->error);
		goto out_free;
	}
	return j;

out_close_fd:
	close(fd);
out_free:
	free_journal(j);
	return NULL;
}

bool hop_journal_skip(const struct hop_journal *j, const char *id)
{
	const struct slot *s = find(j, id);
	return s->outcome == DONE || (s->outcome == DEAD && !j->resume_failed);
}

bool hop_journal_dead(const struct hop_journal *j, const char *id)
{
	return find(j, id)->outcome == DEAD;
}

size_t hop_journal_done_count(const struct hop_journal *j)
{
	return j->done;
}

size_t hop_journal_dead_count(const struct hop_journal *j)
{
	return j->dead;
}

int hop_journal_add(struct hop_journal *j, const struct hop_item *it)
{
	size_t mark = hop_buf_len(&j->out);
	bool ok =
	    hop_buf_append(&j->out, "{\"id\": ", 7) == 0 &&
	    hop_buf_append_json_str(&j->out, it->id) == 0 &&
	    hop_buf_appendf(&j->out, ", \"outcome\": \"%s\", \"attempts\": %d",
			    it->ok ? "done" : "dead", it->attempt) == 0;
	if (ok && !it->ok && it->error)
		ok = hop_buf_append(&j->out, ", \"error\": ", 11) == 0 &&
		     hop_buf_append_json_str(&j->out, it->error) == 0;
	if (ok)
		ok = hop_buf_append(&j->out, "}\n", 2) == 0;
	if (!ok) {
		/* Drop the part of the line that was made. */
		j->out.end = j->out.start + mark;
		return -ENOMEM;
	}
	return 0;
}

int hop_journal_sync(struct hop_journal *j)
{
	/* No torn line stays: the next run reads whole lines. */
	int rc = hop_linefile_append(&j->file, hop_buf_head(&j->out),
				     hop_buf_len(&j->out), true);

	if (rc) {
		snprintf(j->error, sizeof(j->error),
			 "journal %s: cannot record finished items: %s",
			 j->path, strerror(-rc));
		if (j->file.cut_pending)
			hop_log(HOP_WARN,
				"journal %s: cannot cut a failed write back "
				"(it is cut before the next write)",
				j->path);
	}
	hop_buf_reset(&j->out);
	return rc;
}

const char *hop_journal_error(const struct hop_journal *j)
{
	return j->error;
}

int hop_journal_close(struct hop_journal *j)
{
	if (!j)
		return 0;
	int rc = hop_journal_sync(j);
	free_journal(j);
	return rc;
}
