/* jsonl.c - the jsonl source: each line of a file or of stdin is an item.
 *
 * The input is streamed: only the lines the coordinator asks for are read,
 * so a file of millions of lines runs in constant memory. A line that is not
 * JSON, or is longer than the line limit, becomes an item that is dead at
 * once with an error naming the file and line; blank lines are skipped.
 * Acknowledging needs no bookkeeping, so there is no ack; dead items go to
 * the optional dead-letter file as well as to the sink.
 *
 * A file read by its path can hand its plain lines to a reduce with no
 * item made of them (fetch_lines): the run keeps their line numbers and
 * offsets, and reads the lines again (reread) only should they die.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "coordinator/buf.h"
#include "coordinator/jsonscan.h"
#include "coordinator/linefile.h"
#include "coordinator/log.h"
#include "coordinator/loop.h"
#include "sources/jsonl/deadfile.h"
#include "sources/source.h"

struct jsonl_src {
	char *path;   /* "-" for stdin */
	char *id_key; /* field holding the item's id; NULL: the line number */
	char *dead;   /* dead-letter file, or NULL */

	const char *name; /* for messages: the path, or "stdin" */
	int fd;
	bool pollable;	 /* a pipe or terminal: wait for it with the loop */
	bool rereadable; /* a file by its path: lines can be read again */
	dev_t dev;	 /* which file, to read lines again from it */
	ino_t ino;
	bool watching;
	struct hop_lines lines;
	long lineno;
	struct hop_linefile dead_file; /* the dead-letter file, when dead */
	bool dead_open;
	struct hop_jsonl_dead deadfile; /* hopper dead's reading of it */
};

static const struct hop_option jsonl_options[] = {
    {"path", HOP_OPT_STR, "-", offsetof(struct jsonl_src, path),
     "file to read, - for stdin"},
    {"id", HOP_OPT_STR, NULL, offsetof(struct jsonl_src, id_key),
     "field of each line that holds the item's id (default: the line number)"},
    {"dead", HOP_OPT_STR, NULL, offsetof(struct jsonl_src, dead),
     "append dead items here as JSON lines"},
    {NULL},
};

static void jsonl_readable(struct hop_loop *loop, int fd, uint32_t ev,
			   void *arg)
{
	struct hop_source *src = arg;
	struct jsonl_src *c = src->ctx;

	/* Stop listening until fetch runs dry again, so that a full pipe does
	 * not wake the loop over and over. */
	hop_loop_unwatch(loop, fd);
	c->watching = false;
	hop_source_wake(src);
}

/* Opens the dead-letter file, cutting a torn last line that a killed run
 * left. Returns 0 or -errno with a message in src->error. */
static int open_dead(struct hop_source *src)
{
	struct jsonl_src *c = src->ctx;
	int fd = hop_linefile_open(c->dead), rc;
	off_t cut;

	if (fd < 0) {
		snprintf(src->error, sizeof(src->error),
			 "jsonl source: dead-letter file %s: %s", c->dead,
			 strerror(-fd));
		return fd;
	}
	if ((rc = hop_linefile_init(&c->dead_file, fd, &cut)) < 0) {
		snprintf(src->error, sizeof(src->error),
			 "jsonl source: dead-letter file %s: cannot cut its "
			 "torn last line: %s",
			 c->dead, strerror(-rc));
		return rc;
	}
	if (cut > 0)
		hop_log(HOP_WARN,
			"jsonl source: dead-letter file %s: cut a torn last "
			"line of %lld byte(s) that a stopped run left",
			c->dead, (long long)cut);
	c->dead_open = true;
	return 0;
}

static int jsonl_open(struct hop_source *src)
{
	struct jsonl_src *c = src->ctx;
	struct stat st;
	int rc;

	if (strcmp(c->path, "-") == 0) {
		c->fd = dup(STDIN_FILENO);
		c->name = "stdin";
	} else {
		c->fd = open(c->path, O_RDONLY | O_CLOEXEC);
		c->name = c->path;
	}
	if (c->fd < 0 || fstat(c->fd, &st) < 0) {
		snprintf(src->error, sizeof(src->error), "jsonl source: %s: %s",
			 c->name, strerror(errno));
		if (c->fd >= 0)
			close(c->fd);
		c->fd = -1;
		return -errno;
	}
	if (S_ISDIR(st.st_mode)) {
		snprintf(src->error, sizeof(src->error),
			 "jsonl source: %s: is a directory", c->name);
		close(c->fd);
		c->fd = -1;
		return -EISDIR;
	}
	c->pollable = !S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode);
	c->rereadable = S_ISREG(st.st_mode) && strcmp(c->path, "-") != 0;
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	if (c->pollable)
		fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
	hop_lines_init(&c->lines, src->max_line);
	if (c->dead && (rc = open_dead(src)) < 0) {
		close(c->fd);
		c->fd = -1;
		return rc;
	}
	return 0;
}

/* Writes n, not negative, in decimal at the end of buf, which holds 24
 * bytes; returns where its digits start. No printf: it runs per line. */
static char *line_number(char buf[24], long n)
{
	char *p = buf + 24;
	do {
		*--p = (char)('0' + n % 10);
		n /= 10;
	} while (n > 0);
	return p;
}

/* Builds the item's id from its line: the configured field. Returns NULL
 * (and fills err) when the field is missing. */
static char *line_id(struct jsonl_src *c, const char *line, size_t len,
		     char *err, size_t errlen)
{
	struct hop_json_member m[64];
	char num[32];

	int n = hop_json_members(line, len, m, 64);
	const struct hop_json_member *f =
	    n > 0 ? hop_json_get(m, n > 64 ? 64 : n, c->id_key) : NULL;
	if (f && f->vlen > 2 && hop_json_plain_string(f->val, f->vlen))
		return strndup(f->val + 1, f->vlen - 2);
	if (f && (f->val[0] == '"' || f->val[0] == '-' ||
		  (f->val[0] >= '0' && f->val[0] <= '9'))) {
		json_t *v = json_loadb(f->val, f->vlen, JSON_DECODE_ANY, NULL);
		char *id = NULL;
		if (json_is_string(v) && json_string_length(v) > 0)
			id = strdup(json_string_value(v));
		else if (json_is_integer(v) &&
			 snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
				  json_integer_value(v)) > 0)
			id = strdup(num);
		json_decref(v);
		if (id)
			return id;
	}
	snprintf(err, errlen,
		 "%s:%ld: no string or integer '%s' field for the id", c->name,
		 c->lineno, c->id_key);
	return NULL;
}

/* Makes an item that is dead on arrival, id'd by its line number. */
static struct hop_item *invalid_item(struct jsonl_src *c, const char *why)
{
	char num[32];
	snprintf(num, sizeof(num), "%ld", c->lineno);
	struct hop_item *it = hop_item_new(strdup(num), strdup("null"), 4);
	if (!it)
		return NULL;
	it->invalid = true;
	hop_item_fail(it, false, "%s", why);
	return it;
}

static struct hop_item *line_item(struct jsonl_src *c, char *line, size_t len)
{
	json_error_t jerr;
	char why[512];

	if (!hop_json_valid(line, len)) {
		/* The slow path, for jansson's words on what is wrong. */
		json_t *v = json_loadb(line, len, JSON_DECODE_ANY, &jerr);
		json_decref(v);
		snprintf(why, sizeof(why), "%s:%ld: not JSON: %s (column %d)",
			 c->name, c->lineno, v ? "invalid text" : jerr.text,
			 v ? 0 : jerr.column);
		return invalid_item(c, why);
	}
	bool cr = memchr(line, '\r', len) != NULL;
	if (!c->id_key && !cr) {
		/* The usual case: one allocation, id and payload in it. */
		char num[24], *id = line_number(num, c->lineno);
		return hop_item_new_block(id, (size_t)(num + 24 - id), line,
					  len, 0);
	}
	why[0] = '\0';
	char *id;
	if (c->id_key) {
		id = line_id(c, line, len, why, sizeof(why));
	} else {
		char num[24], *n = line_number(num, c->lineno);
		id = strndup(n, (size_t)(num + 24 - n));
	}
	if (!id)
		return why[0] ? invalid_item(c, why) : NULL;
	if (cr) {
		/* A bare CR is JSON white space, but a line-based worker may
		 * take it for a line end: such a payload is passed on
		 * compacted. */
		json_t *v = json_loadb(line, len, JSON_DECODE_ANY, NULL);
		char *compact = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		json_decref(v);
		if (compact)
			return hop_item_new(id, compact, strlen(compact));
	}
	struct hop_item *it = hop_item_new_block(id, strlen(id), line, len, 0);
	free(id);
	return it;
}

/* Whether line (not blank) goes to take as it is: JSON, no CR, the id
 * its line number. */
static bool plain_line(const struct jsonl_src *c, const char *line, size_t len)
{
	return !c->id_key && hop_json_valid(line, len) &&
	       !memchr(line, '\r', len);
}

/* fetch, and fetch_lines when take is not NULL (source.h). */
static int fetch_some(struct hop_source *src, struct hop_queue *out, size_t max,
		      bool (*take)(void *arg, int64_t line, uint64_t off,
				   const char *text, size_t len),
		      void *arg, size_t *taken)
{
	struct jsonl_src *c = src->ctx;
	char *line, why[256];
	size_t len, got = 0;

	if (take && !c->rereadable)
		take = NULL;
	while (got < max && c->fd >= 0) {
		struct hop_item *it = NULL;
		enum hop_line_status st =
		    hop_lines_next(&c->lines, c->fd, &line, &len);
		switch (st) {
		case HOP_LINE_OK:
			c->lineno++;
			if (strspn(line, " \t") == len) {
				hop_log(HOP_WARN, "%s:%ld: blank line skipped",
					c->name, c->lineno);
				continue;
			}
			if (take && plain_line(c, line, len) &&
			    take(arg, c->lineno,
				 hop_lines_offset(&c->lines, line), line,
				 len)) {
				got++;
				(*taken)++;
				continue;
			}
			it = line_item(c, line, len);
			break;
		case HOP_LINE_TOOLONG:
			c->lineno++;
			snprintf(why, sizeof(why),
				 "%s:%ld: line over the %zu-byte limit",
				 c->name, c->lineno, c->lines.max);
			it = invalid_item(c, why);
			break;
		case HOP_LINE_AGAIN:
			if (c->pollable && !c->watching &&
			    hop_loop_watch(src->loop, c->fd, EPOLLIN,
					   jsonl_readable, src) == 0)
				c->watching = true;
			return 0;
		case HOP_LINE_EOF:
			close(c->fd);
			c->fd = -1;
			return 0;
		case HOP_LINE_ERROR:
			snprintf(src->error, sizeof(src->error),
				 "jsonl source: %s: %s", c->name,
				 strerror(errno));
			return -errno;
		}
		if (!it)
			return -ENOMEM;
		hop_queue_push(out, it);
		got++;
		if (take)
			break; /* the run takes it before the next line */
	}
	return 0;
}

static int jsonl_fetch(struct hop_source *src, struct hop_queue *out,
		       size_t max)
{
	return fetch_some(src, out, max, NULL, NULL, NULL);
}

static int jsonl_fetch_lines(struct hop_source *src, struct hop_queue *out,
			     size_t max,
			     bool (*take)(void *arg, int64_t line, uint64_t off,
					  const char *text, size_t len),
			     void *arg, size_t *taken)
{
	*taken = 0;
	return fetch_some(src, out, max, take, arg, taken);
}

/* Reads again, from the file by its path, n lines that fetch_lines took
 * from line first on, at offset off. */
static int jsonl_reread(struct hop_source *src, int64_t first, int64_t n,
			uint64_t off,
			void (*each)(void *arg, int64_t line, const char *text,
				     size_t len),
			void *arg)
{
	struct jsonl_src *c = src->ctx;
	struct hop_lines lines;
	struct stat st;
	char *line;
	size_t len;
	int rc = 0;
	int fd = open(c->path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0) {
		rc = -errno;
		snprintf(src->error, sizeof(src->error),
			 "jsonl source: %s: cannot read line %lld again: %s",
			 c->name, (long long)first, strerror(errno));
		if (fd >= 0)
			close(fd);
		return rc;
	}
	if (st.st_dev != c->dev || st.st_ino != c->ino ||
	    (uint64_t)st.st_size < off || lseek(fd, (off_t)off, SEEK_SET) < 0) {
		snprintf(src->error, sizeof(src->error),
			 "jsonl source: %s: cannot read line %lld again: the "
			 "file was replaced or cut since it was read",
			 c->name, (long long)first);
		close(fd);
		return -ESTALE;
	}
	hop_lines_init(&lines, c->lines.max);
	for (int64_t i = 0; i < n; i++) {
		enum hop_line_status ls =
		    hop_lines_next(&lines, fd, &line, &len);
		if (ls != HOP_LINE_OK) {
			rc = ls == HOP_LINE_ERROR ? -errno : -ESTALE;
			snprintf(src->error, sizeof(src->error),
				 "jsonl source: %s: cannot read line %lld "
				 "again: %s",
				 c->name, (long long)(first + i),
				 ls == HOP_LINE_ERROR ? strerror(errno)
						      : "the file changed");
			break;
		}
		each(arg, first + i, line, len);
	}
	hop_lines_free(&lines);
	close(fd);
	return rc;
}

/* The dead letter's line for record, newline included, in *line (to
 * free): the record as it is, with "died" (now, ISO 8601 UTC, as hopper
 * dead list shows it) first when the record is an object without one.
 * Returns its length, or 0 when memory ran out. */
static size_t dead_line(const char *record, char **line)
{
	size_t len = strlen(record);
	json_t *r = json_loadb(record, len, 0, NULL);
	bool stamp = record[0] == '{' && json_is_object(r) &&
		     !json_object_get(r, "died");
	char when[32] = "";
	int n;

	json_decref(r);
	if (stamp) {
		time_t now = time(NULL);
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	/* The object's other members keep their bytes: "{" then the rest. */
	if (!stamp) {
		n = asprintf(line, "%s\n", record);
	} else {
		bool empty = record[1 + strspn(record + 1, " \t")] == '}';
		n = asprintf(line, "{\"died\":\"%s\"%s%s\n", when,
			     empty ? "" : ",", record + 1);
	}
	if (n < 0) {
		*line = NULL;
		return 0;
	}
	return (size_t)n;
}

/* Appends the record as one line, stamped with when it died, and syncs
 * it. A write that fails (a full disk) is cut back, so the file never
 * keeps half a line, and answers -EAGAIN: the item is not dead yet, and
 * the coordinator holds it and asks again. */
static int jsonl_dead(struct hop_source *src, struct hop_item *it,
		      const char *record)
{
	struct jsonl_src *c = src->ctx;
	char *line;
	size_t len;
	int rc;

	if (!c->dead_open)
		return 0;
	if (!(len = dead_line(record, &line))) {
		rc = -ENOMEM;
		goto failed;
	}
	rc = hop_linefile_append(&c->dead_file, line, len, true);
	free(line);
	if (!rc)
		return 0;
	if (c->dead_file.cut_pending)
		hop_log(HOP_WARN,
			"jsonl source: dead-letter file %s: cannot cut back a "
			"partial line (it is cut before the next write)",
			c->dead);
failed:
	snprintf(src->error, sizeof(src->error),
		 "jsonl source: dead-letter file %s: %s", c->dead,
		 strerror(-rc));
	return -EAGAIN;
}

static int jsonl_release(struct hop_source *src, struct hop_item *it)
{
	struct jsonl_src *c = src->ctx;
	/* A stream cannot be rewound; say what a rerun must cover. */
	hop_log_ev(HOP_WARN, -1, it->id,
		   "%s: item not finished before shutdown", c->name);
	return 0;
}

static bool jsonl_exhausted(struct hop_source *src)
{
	struct jsonl_src *c = src->ctx;
	return c->fd < 0;
}

static int64_t jsonl_depth(struct hop_source *src)
{
	return -1;
}

/* Files larger than this are not counted: the count would hold the loop
 * up for too long. */
#define COUNT_MAX_BYTES ((off_t)1 << 30)

/* Counts the lines that are not blank, as fetch will see them, reading the
 * file with pread so that fetch's position stays where it is. Only a
 * regular file can be counted; a pipe has no total. */
static int64_t jsonl_total(struct hop_source *src)
{
	struct jsonl_src *c = src->ctx;
	struct stat st;
	char buf[65536];
	int64_t lines = 0;
	bool blank = true;
	off_t off = 0;
	ssize_t n;

	if (c->fd < 0 || c->pollable || fstat(c->fd, &st) < 0 ||
	    !S_ISREG(st.st_mode) || st.st_size > COUNT_MAX_BYTES)
		return -1;
	while ((n = pread(c->fd, buf, sizeof(buf), off)) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			char ch = buf[i];
			if (ch == '\n') {
				lines += !blank;
				blank = true;
			} else if (ch != ' ' && ch != '\t') {
				blank = false;
			}
		}
		off += n;
	}
	if (n < 0)
		return -1;
	return lines + !blank;
}

static void jsonl_close(struct hop_source *src)
{
	struct jsonl_src *c = src->ctx;
	if (c->fd >= 0) {
		hop_loop_unwatch(src->loop, c->fd);
		close(c->fd);
		c->fd = -1;
	}
	if (c->dead_open)
		hop_linefile_close(&c->dead_file);
	c->dead_open = false;
	hop_lines_free(&c->lines);
}

/* ---- dead letters, for hopper dead (deadfile.h) ---- */

static int jsonl_dead_open(struct hop_source *src)
{
	struct jsonl_src *c = src->ctx;
	return hop_jsonl_dead_open(&c->deadfile, c->dead, src->error,
				   sizeof(src->error));
}

static int jsonl_dead_list(struct hop_source *src, hop_dead_each_fn each,
			   void *arg)
{
	struct jsonl_src *c = src->ctx;
	return hop_jsonl_dead_list(&c->deadfile, each, arg);
}

static int jsonl_dead_retry(struct hop_source *src, const char *id, FILE *out)
{
	struct jsonl_src *c = src->ctx;
	return hop_jsonl_dead_retry(&c->deadfile, id, out, src->error,
				    sizeof(src->error));
}

static int jsonl_dead_discard(struct hop_source *src, const char *id)
{
	struct jsonl_src *c = src->ctx;
	return hop_jsonl_dead_discard(&c->deadfile, id, src->error,
				      sizeof(src->error));
}

static void jsonl_dead_close(struct hop_source *src)
{
	struct jsonl_src *c = src->ctx;
	hop_jsonl_dead_close(&c->deadfile);
}

const struct hop_source_ops hop_src_jsonl = {
    .name = "jsonl",
    .forms = "jsonl:FILE, jsonl:-",
    .summary = "JSON lines from a file or stdin, one item per line",
    .options = jsonl_options,
    .ctx_size = sizeof(struct jsonl_src),
    .open = jsonl_open,
    .fetch = jsonl_fetch,
    .fetch_lines = jsonl_fetch_lines,
    .reread = jsonl_reread,
    .ack = NULL, /* nothing to forget */
    .dead = jsonl_dead,
    .dead_place = "the -S dead=FILE; retry writes the payloads as JSON "
		  "lines to --to FILE (- for stdout), a new input to run; both "
		  "take the lines out of the dead file",
    .dead_open = jsonl_dead_open,
    .dead_list = jsonl_dead_list,
    .dead_retry = jsonl_dead_retry,
    .dead_discard = jsonl_dead_discard,
    .dead_close = jsonl_dead_close,
    .release = jsonl_release,
    .depth = jsonl_depth,
    .total = jsonl_total,
    .exhausted = jsonl_exhausted,
    .close = jsonl_close,
};
