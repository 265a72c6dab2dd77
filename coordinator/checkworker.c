/* checkworker.c - `hopper check-worker`: a worker's first test.
 *
 * It starts the worker as a run would, sends it a few sample items (plain
 * text, unicode, a nested object, a 1 MB payload, one that a worker will
 * probably refuse, and a file as the dir source gives it) with the ids that
 * sources make ("1", "2", ... as a jsonl source numbers its lines, and a
 * file name), and reads what comes back, line by line, saying in plain
 * words what breaks the contract and how to mend it: no answer (or answers
 * that only arrive when stdin closes: stdout not flushed, or stdin read in
 * blocks), a line that is not JSON (noise on stdout), the wrong id (a
 * number for a string id included), no "ok", two answers to one item, not
 * exiting on EOF; and for a worker that emits outputs, an emit for another
 * item, after the answer, or with a port or key that is not a string. It
 * says how many outputs each item gave. It runs on its own, without the
 * event loop, because it speaks to one worker at a time.
 */
#include "checkworker.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "answer.h"
#include "buf.h"
#include "fsutil.h"
#include "loop.h"
#include "opts.h"
#include "spawn.h"
#include "spool.h"
#include "suggest.h"

/* What a check keeps of an item's emits in memory. */
#define CHECK_EMIT_MEM (1024 * 1024)

struct sample {
	const char *name;
	const char *id;	     /* as a source would make it */
	const char *payload; /* JSON; NULL: the 1 MB payload */
	bool may_fail;
};

/* The ids are the ones real runs send: a jsonl source numbers its lines
 * ("1", "2", ...), a dir source names the file. A worker that turns "1"
 * into 1, or gives ids a meaning, fails here rather than on every item of
 * its first run. */
static const struct sample samples[] = {
    {"plain text payload", "1", "\"hello world\"", false},
    {"unicode payload", "2",
     "{\"text\":\"h\\u00e9llo w\\u00f6rld \\u65e5\\u672c\\u8a9e "
     "\\ud83d\\ude80 \\\"quoted\\\" tab\\tend\"}",
     false},
    {"nested object payload", "3",
     "{\"text\":\"a b "
     "c\",\"n\":3,\"list\":[1,2.5,null,true],\"deep\":{\"x\":{}}}",
     false},
    {"1 MB payload", "4", NULL, false},
    {"an item that should fail (payload null)", "5", "null", true},
    {"a file as the dir source gives it (id \"clip 7.mp4\")", "clip 7.mp4",
     "\"/data/inbox/processing/clip 7.mp4\"", true},
};

struct check {
	char **argv;
	bool exec;
	double timeout;
	int problems;
	struct hop_child child;
	struct hop_lines out, err;
	bool out_eof, err_eof;
	char last_stderr[512];
};

/* The outputs one item gave: how many, and on which ports. */
struct outputs {
	uint64_t n;
	bool keyed;
	char ports[256]; /* "a, b": the distinct ports, as far as they fit */
};

static void add_output(struct outputs *o, const char *port, const char *key)
{
	o->n++;
	o->keyed |= key != NULL;
	if (!port)
		return;
	/* Ports are few: a search of the short list is enough. */
	size_t plen = strlen(port), have = strlen(o->ports);
	for (const char *p = o->ports; *p;) {
		const char *end = strstr(p, ", ");
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (n == plen && !memcmp(p, port, n))
			return;
		p += n + (end ? 2 : 0);
	}
	if (have + plen + 3 < sizeof(o->ports))
		snprintf(o->ports + have, sizeof(o->ports) - have, "%s%s",
			 have ? ", " : "", port);
}

/* Says what the outputs are: "1 output (its result)", "3 outputs (ports
 * sms, email)", "no output (dropped)". */
static void describe_outputs(const struct outputs *o, bool drop, char *buf,
			     size_t size)
{
	if (drop)
		snprintf(buf, size, "no output (dropped)");
	else if (!o->n)
		snprintf(buf, size, "1 output (its result)");
	else
		snprintf(buf, size, "%llu output%s%s%s%s%s",
			 (unsigned long long)o->n, o->n == 1 ? "" : "s",
			 o->ports[0] ? " (ports " : "", o->ports,
			 o->ports[0] ? ")" : "", o->keyed ? ", with keys" : "");
}

static char *big_payload(void)
{
	struct hop_buf b = {0};
	hop_buf_append(&b, "\"", 1);
	while (hop_buf_len(&b) < 1024 * 1024)
		hop_buf_append(&b, "lorem ipsum dolor sit amet ", 27);
	hop_buf_append(&b, "\"", 2);
	return b.data;
}

static void problem(struct check *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void problem(struct check *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("  FAIL ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	c->problems++;
}

static void drain_stderr(struct check *c)
{
	char *line;
	size_t len;
	while (!c->err_eof) {
		enum hop_line_status st =
		    hop_lines_next(&c->err, c->child.err, &line, &len);
		if (st == HOP_LINE_AGAIN)
			return;
		if (st != HOP_LINE_OK && st != HOP_LINE_TOOLONG) {
			c->err_eof = true;
			return;
		}
		if (st == HOP_LINE_OK)
			snprintf(c->last_stderr, sizeof(c->last_stderr), "%.*s",
				 (int)len, line);
	}
}

/* Waits up to ms for a stdout line while feeding pending stdin bytes.
 * Returns 1 with a line, 0 on timeout, -1 at EOF of stdout. */
static int next_line(struct check *c, struct hop_buf *pending, int64_t ms,
		     char **line, size_t *len)
{
	int64_t end = hop_now_ms() + ms;
	for (;;) {
		if (!c->out_eof) {
			enum hop_line_status st =
			    hop_lines_next(&c->out, c->child.out, line, len);
			if (st == HOP_LINE_OK)
				return 1;
			if (st == HOP_LINE_TOOLONG) {
				*line = "(a line over 16 MiB)";
				*len = strlen(*line);
				return 1;
			}
			if (st == HOP_LINE_EOF || st == HOP_LINE_ERROR)
				c->out_eof = true;
		}
		drain_stderr(c);
		if (c->out_eof)
			return -1;
		if (pending && c->child.in >= 0 && hop_buf_len(pending) > 0 &&
		    hop_buf_flush_fd(pending, c->child.in) != -EAGAIN &&
		    hop_buf_len(pending) > 0)
			hop_buf_reset(pending); /* EPIPE: it is gone */
		int64_t left = end - hop_now_ms();
		if (left <= 0)
			return 0;
		struct pollfd p[3] = {
		    {c->child.out, POLLIN, 0},
		    {c->child.err, c->err_eof ? 0 : POLLIN, 0},
		    {pending && hop_buf_len(pending) ? c->child.in : -1,
		     POLLOUT, 0}};
		poll(p, 3, (int)(left > 200 ? 200 : left));
	}
}

/* Reports a worker that gave no answer in time. Closing its stdin tells
 * the two usual causes from a hung worker: a worker that holds its answers
 * in an unflushed stdout buffer, or one that reads stdin in blocks and has
 * not yet seen the line it was sent, answers as soon as its input ends. What
 * was seen cannot tell those two apart, so both are named with their cures. */
static void silent_until_eof(struct check *c, const struct sample *s)
{
	char *line;
	size_t len;
	int lines = 0;

	close(c->child.in);
	c->child.in = -1;
	/* Until its stdout ends (a worker exits at EOF), or as long as an
	 * answer may take, and at least 5 s on a busy machine. */
	int64_t wait = (int64_t)(c->timeout * 1000);
	int64_t end = hop_now_ms() + (wait > 5000 ? wait : 5000);
	int64_t left;
	while ((left = end - hop_now_ms()) > 0 &&
	       next_line(c, NULL, left, &line, &len) == 1)
		lines++;
	if (!lines) {
		problem(c,
			"%s: no answer within %.0f s (nor when stdin was "
			"closed)%s%s",
			s->name, c->timeout,
			c->last_stderr[0] ? "; last stderr line: " : "",
			c->last_stderr);
		return;
	}
	problem(c,
		"%s: no answer within %.0f s, then %d line%s as soon as "
		"stdin was closed. Either\n"
		"       - the worker does not flush stdout after each answer "
		"(Python: print(..., flush=True); C: fflush(stdout); Go: "
		"Flush the bufio.Writer; awk: fflush()), or\n"
		"       - it reads stdin in blocks and waits for a block to "
		"fill before it handles the line it was sent (mawk: run it "
		"with -W interactive; Python 3: `for line in sys.stdin` or "
		"sys.stdin.readline(), not sys.stdin.read(N), "
		"sys.stdin.buffer.read(N) or readlines(); C: getline or "
		"fgets, not fread)",
		s->name, c->timeout, lines, lines == 1 ? "" : "s");
}

/* Prints how a final answer went: done, with its outputs, or a clean
 * failure (which should say why). */
static void report_final(struct check *c, const struct sample *s,
			 const struct hop_answer *a, int64_t ms, int progress,
			 const struct outputs *o)
{
	bool ok = a->kind == HOP_ANSWER_OK;
	char outs[400];
	if (!ok && !a->text) {
		problem(c,
			"%s: a failure should carry an \"error\" string "
			"saying why",
			s->name);
		return;
	}
	if (!ok && !s->may_fail)
		printf("  note %s: the worker refused it: %s\n", s->name,
		       a->text);
	describe_outputs(o, a->drop, outs, sizeof(outs));
	printf("  ok   %s: %s in %lld ms%s%s%s\n", s->name,
	       ok ? "answered ok" : "failed cleanly", (long long)ms,
	       progress ? " (with progress lines)" : "", ok ? ": " : "",
	       ok ? outs : "");
	if (ok && a->drop && o->n)
		printf("  note %s: %llu emitted output%s, then a drop: a drop "
		       "discards them\n",
		       s->name, (unsigned long long)o->n, o->n == 1 ? "" : "s");
	if (!ok && o->n)
		printf("       %llu emitted output%s discarded: they count "
		       "only when the answer is ok\n",
		       (unsigned long long)o->n, o->n == 1 ? "" : "s");
	if (!ok && s->may_fail)
		printf("       error \"%s\", retry %s\n", a->text,
		       a->retry ? "true (will be retried)"
				: "false (permanent)");
}

/* Reads lines until the answer for id; checks each one. Returns true when a
 * well-formed final answer arrived. */
static bool await_answer(struct check *c, const struct sample *s,
			 const char *id, struct hop_buf *pending)
{
	int64_t t0 = hop_now_ms();
	char *line;
	size_t len;
	int progress = 0;
	struct outputs o = {0};

	for (;;) {
		int r = next_line(c, pending, (int64_t)(c->timeout * 1000),
				  &line, &len);
		if (r == 0) {
			silent_until_eof(c, s);
			return false;
		}
		if (r < 0) {
			int status = 0;
			waitpid(c->child.pid, &status, 0);
			c->child.pid = -1;
			char how[128];
			hop_describe_status(status, how, sizeof(how));
			problem(c, "%s: the worker %s before answering%s%s",
				s->name, how,
				c->last_stderr[0] ? "; last stderr line: " : "",
				c->last_stderr);
			return false;
		}
		struct hop_answer a;
		int shown = (int)(len > 100 ? 100 : len);
		switch (hop_answer_read(line, len, id, &a)) {
		case HOP_ANSWER_NOT_OBJECT:
			problem(c,
				"%s: wrote '%.*s' to stdout, which is not a "
				"JSON object: stdout carries only answer "
				"lines; write logs to stderr",
				s->name, shown, line);
			break;
		case HOP_ANSWER_NUMBER_ID:
			problem(c,
				"%s: answered with id %s, a number, for item "
				"\"%s\": ids are strings; copy the id from the "
				"input line as it is (a JSON parser that "
				"turns \"1\" into 1 fails every item of a "
				"jsonl source)",
				s->name, id, id);
			break;
		case HOP_ANSWER_NO_ID:
			problem(c, "%s: answer has no string \"id\": '%.*s'",
				s->name, shown, line);
			break;
		case HOP_ANSWER_OTHER_ID:
			problem(c,
				"%s: %s with id '%s' for item '%s': copy "
				"the id from the input line%s",
				s->name, a.emits ? "emitted" : "answered",
				a.text ? a.text : "?", id,
				a.emits ? "; an emit carries the id of the "
					  "item it is an output of"
					: "");
			break;
		case HOP_ANSWER_EMIT:
			add_output(&o, a.port, a.key);
			hop_answer_free(&a);
			continue;
		case HOP_ANSWER_BAD_EMIT:
			problem(c, "%s: a bad emit line: %s: '%.*s'", s->name,
				a.text ? a.text : "?", shown, line);
			break;
		case HOP_ANSWER_PROGRESS:
			progress++;
			continue;
		case HOP_ANSWER_NO_OK:
			problem(c, "%s: answer has no boolean \"ok\": '%.*s'",
				s->name, shown, line);
			break;
		case HOP_ANSWER_OK:
		case HOP_ANSWER_FAILED:
			report_final(c, s, &a, hop_now_ms() - t0, progress, &o);
			hop_answer_free(&a);
			return true;
		}
		hop_answer_free(&a);
		return false;
	}
}

/* Names the line a worker wrote after an item's answer, before the next
 * item was sent: an emit there is an output of no item. */
static void after_answer(struct check *c, const struct sample *s,
			 const char *line, size_t len)
{
	struct hop_answer a;
	int shown = (int)(len > 100 ? 100 : len);

	hop_answer_read(line, len, s->id, &a);
	if (a.emits)
		problem(c,
			"%s: emitted after its final answer: '%.*s'; emit an "
			"item's outputs before its answer, which ends the item",
			s->name, shown, line);
	else
		problem(c,
			"%s: wrote another line after its answer: '%.*s'; "
			"send exactly one final answer per item",
			s->name, shown, line);
	hop_answer_free(&a);
}

static int check_stream(struct check *c)
{
	char err[512], *line;
	size_t len;

	if (hop_spawn(c->argv, NULL, &c->child, err, sizeof(err))) {
		problem(c, "%s", err);
		return 1;
	}
	hop_lines_init(&c->out, 16 << 20);
	hop_lines_init(&c->err, 64 << 10);
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		const struct sample *s = &samples[i];
		struct hop_buf env = {0};
		char *big = s->payload ? NULL : big_payload();
		hop_buf_appendf(
		    &env, "{\"id\":\"%s\",\"attempt\":1,\"payload\":", s->id);
		hop_buf_append(&env, s->payload ? s->payload : big,
			       strlen(s->payload ? s->payload : big));
		hop_buf_append(&env, "}\n", 2);
		free(big);
		bool ok = await_answer(c, s, s->id, &env);
		hop_buf_free(&env);
		if (!ok)
			break;
		/* A second answer to the same item would shift every later one.
		 */
		if (next_line(c, NULL, 150, &line, &len) == 1) {
			after_answer(c, s, line, len);
			break;
		}
	}
	if (c->child.in >= 0) {
		close(c->child.in);
		c->child.in = -1;
	}
	if (c->child.pid > 0) {
		int status = 0;
		int64_t end = hop_now_ms() + 5000;
		while (!hop_child_reap(&c->child, &status) &&
		       hop_now_ms() < end) {
			next_line(c, NULL, 100, &line, &len);
		}
		if (c->child.pid > 0) {
			problem(c, "the worker did not exit within 5 s of EOF "
				   "on stdin: "
				   "a worker must exit when its input ends");
			hop_child_signal(&c->child, SIGKILL);
			waitpid(c->child.pid, NULL, 0);
		} else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			char how[128];
			hop_describe_status(status, how, sizeof(how));
			printf("  note on EOF the worker %s (0 is expected)\n",
			       how);
		} else {
			printf("  ok   exits on EOF\n");
		}
	}
	hop_lines_free(&c->out);
	hop_lines_free(&c->err);
	hop_child_close(&c->child);
	return c->problems ? 1 : 0;
}

/* Reads the exec worker's HOPPER_EMIT file, if it made one: its outputs.
 * Returns false when a line is not an emit (a problem is counted). */
static bool exec_outputs(struct check *c, const struct sample *s,
			 const char *path, const char *dir, struct outputs *o,
			 bool *drop)
{
	char err[512];
	struct hop_spool *sp = NULL;
	struct hop_emit e;

	*drop = false;
	int rc = hop_answer_emit_file(path, dir, CHECK_EMIT_MEM, &sp, err,
				      sizeof(err));
	if (rc < 0) {
		problem(c, "%s: its HOPPER_EMIT file, %s%s", s->name, err,
			rc == -EINVAL ? " (each line: {\"emit\": PAYLOAD, "
					"\"port\"?: STRING, \"key\"?: STRING})"
				      : "");
		return false;
	}
	*drop = rc == 1 && !sp;
	while (sp && hop_spool_next(sp, &e) == 1) {
		add_output(o, e.port, e.key);
		hop_emit_clear(&e);
	}
	hop_spool_free(sp);
	return true;
}

static void exec_one(struct check *c, const struct sample *s, const char *dir)
{
	char err[512], file[600], emit[600], outs[400], *env[5] = {NULL};
	struct outputs o = {0};
	bool drop = false;
	char *big = s->payload ? NULL : big_payload();
	const char *pl = s->payload ? s->payload : big;
	json_t *v = json_loads(pl, JSON_DECODE_ANY, NULL);
	char *bytes =
	    json_is_string(v) ? strdup(json_string_value(v)) : strdup(pl);
	json_decref(v);
	free(big);

	snprintf(file, sizeof(file), "%s/item", dir);
	snprintf(emit, sizeof(emit), "%s/emit", dir);
	unlink(emit);
	hop_write_file(file, bytes, strlen(bytes), false);
	asprintf(&env[0], "HOPPER_ITEM_ID=%s", s->id);
	asprintf(&env[1], "HOPPER_ATTEMPT=1");
	asprintf(&env[2], "WORK_ITEM_FILE=%s", file);
	asprintf(&env[3], "HOPPER_EMIT=%s", emit);
	int64_t t0 = hop_now_ms();
	if (hop_spawn(c->argv, env, &c->child, err, sizeof(err))) {
		problem(c, "%s", err);
		goto out;
	}
	struct hop_buf in = {0}, out = {0};
	hop_buf_append(&in, bytes, strlen(bytes));
	int status = 0;
	bool done = false;
	while (!done && hop_now_ms() - t0 < (int64_t)(c->timeout * 1000)) {
		if (c->child.in >= 0 &&
		    hop_buf_flush_fd(&in, c->child.in) != -EAGAIN) {
			close(c->child.in);
			c->child.in = -1;
		}
		char chunk[65536];
		ssize_t r;
		while ((r = read(c->child.out, chunk, sizeof(chunk))) > 0)
			hop_buf_append(&out, chunk, (size_t)r);
		drain_stderr(c);
		done = hop_child_reap(&c->child, &status);
		if (!done)
			poll(&(struct pollfd){c->child.pidfd, POLLIN, 0}, 1,
			     50);
	}
	if (!done) {
		problem(c, "%s: still running after %.0f s", s->name,
			c->timeout);
		hop_child_signal(&c->child, SIGKILL);
		waitpid(c->child.pid, NULL, 0);
	} else {
		char chunk[65536];
		ssize_t r;
		while ((r = read(c->child.out, chunk, sizeof(chunk))) > 0)
			hop_buf_append(&out, chunk, (size_t)r);
		int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		json_t *res = json_loadb(hop_buf_head(&out), hop_buf_len(&out),
					 JSON_DECODE_ANY, NULL);
		if (code == 0 && exec_outputs(c, s, emit, dir, &o, &drop)) {
			describe_outputs(&o, drop, outs, sizeof(outs));
			printf("  ok   %s: exit 0 in %lld ms, %s\n", s->name,
			       (long long)(hop_now_ms() - t0),
			       o.n || drop ? outs
			       : res	   ? "stdout is JSON: 1 output"
					   : "stdout is text (kept as a "
					     "string): 1 output");
		} else if (code == 0)
			; /* a bad HOPPER_EMIT file, counted */
		else if (code == 65 || code == 75)
			printf("  %s %s: exit %d (%s)%s%s\n",
			       s->may_fail ? "ok  " : "note", s->name, code,
			       code == 65 ? "permanent failure" : "retry",
			       c->last_stderr[0] ? "; stderr: " : "",
			       c->last_stderr);
		else {
			char how[128];
			hop_describe_status(status, how, sizeof(how));
			problem(c,
				"%s: the worker %s; exit 0 means done, 75 "
				"retry, 65 "
				"permanent failure; anything else is a failed "
				"attempt%s%s",
				s->name, how,
				c->last_stderr[0] ? "; stderr: " : "",
				c->last_stderr);
		}
		json_decref(res);
	}
	hop_buf_free(&in);
	hop_buf_free(&out);
	hop_child_close(&c->child);
out:
	for (int i = 0; i < 4; i++)
		free(env[i]);
	free(bytes);
	unlink(file);
	unlink(emit);
}

static int check_exec(struct check *c)
{
	char dir[] = "/tmp/hopper-check.XXXXXX";
	if (!mkdtemp(dir)) {
		problem(c, "cannot make a temporary folder: %s",
			strerror(errno));
		return 1;
	}
	hop_lines_init(&c->err, 64 << 10);
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		c->last_stderr[0] = '\0';
		c->err_eof = false;
		exec_one(c, &samples[i], dir);
	}
	hop_lines_free(&c->err);
	rmdir(dir);
	return c->problems ? 1 : 0;
}

static const char check_usage[] =
    "usage: hopper check-worker [--mode stream|exec] [--timeout SECS] -- "
    "WORKER [ARGS...]\n";

/* Says why argument a is not understood, as hopper run does: a word that is
 * not a flag is the worker command without its "--"; a flag may be a typo. */
static void bad_argument(const char *a)
{
	static const char *const flags[] = {"mode", "timeout", "help"};
	struct hop_suggest s;

	if (a[0] != '-' || !a[1]) {
		fprintf(stderr,
			"hopper: unexpected '%s': the worker command goes "
			"after -- (hopper check-worker -- %s ...)\n",
			a, a);
		return;
	}
	hop_suggest_init(&s, a + 1 + (a[1] == '-'));
	for (size_t i = 0; i < sizeof(flags) / sizeof(*flags); i++)
		hop_suggest_offer(&s, flags[i]);
	if (hop_suggest_best(&s))
		fprintf(stderr,
			"hopper: unknown flag '%s'; did you mean '--%s'?\n", a,
			hop_suggest_best(&s));
	else
		fprintf(stderr, "hopper: unknown flag '%s'\n%s", a,
			check_usage);
}

int hop_check_worker(int argc, char **argv)
{
	struct check c = {.timeout = 10};
	int i;

	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < argc && strcmp(argv[i], "--"); i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(check_usage, stdout);
			return 0;
		} else if (!strcmp(argv[i], "--mode") && i + 1 < argc) {
			c.exec = !strcmp(argv[++i], "exec");
			if (!c.exec && strcmp(argv[i], "stream")) {
				fprintf(stderr,
					"hopper: --mode is stream or exec\n");
				return 2;
			}
		} else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
			if (hop_parse_seconds(argv[++i], &c.timeout) ||
			    c.timeout <= 0) {
				fprintf(
				    stderr,
				    "hopper: --timeout '%s' is not a number of "
				    "seconds\n",
				    argv[i]);
				return 2;
			}
		} else if (!strcmp(argv[i], "--mode") ||
			   !strcmp(argv[i], "--timeout")) {
			fprintf(stderr, "hopper: flag '%s' needs a value\n",
				argv[i]);
			return 2;
		} else {
			bad_argument(argv[i]);
			return 2;
		}
	}
	if (i + 1 >= argc) {
		fprintf(stderr, "hopper: no worker command: put it after -- "
				"(for example: -- python3 worker.py)\n");
		return 2;
	}
	c.argv = argv + i + 1;
	printf("checking %s (%s mode) against worker protocol 1\n", c.argv[0],
	       c.exec ? "exec" : "stream");
	int rc = c.exec ? check_exec(&c) : check_stream(&c);
	if (rc)
		printf("%d problem%s: see worker/PROTOCOL.md\n", c.problems,
		       c.problems == 1 ? "" : "s");
	else
		printf("the worker keeps the contract\n");
	return rc;
}
