/* check.c - `hopper check-source` and `hopper check-sink`.
 *
 * Each starts the program as a run would (proc.h), speaks the contract to
 * it (sources/PROTOCOL.md) and reads what comes back with the readers the
 * drivers use (proto.h), saying line by line what is right and what
 * breaks the contract. A source gets a credit of CHECK_CREDIT items, must
 * not give more until it gets more credit, and sees an ack, a nack and a
 * dead letter, and when its hello asks for acknowledgements in lists it
 * gets its acks that way, the first alone and the next round's together;
 * a sink gets two records, a result and a dead item, and
 * must answer each in order. Both must exit once their stdin closes.
 * No event loop runs: the check polls the one program itself.
 */
#include "sources/exec/check.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "coordinator/buf.h"
#include "coordinator/loop.h"
#include "coordinator/opts.h"
#include "sources/exec/proc.h"
#include "sources/exec/proto.h"

#define CHECK_CREDIT 3
/* How long a source is watched for items beyond its credit. */
#define QUIET_MS 1000

struct check {
	struct hop_proc p;
	double timeout;
	int problems;
	bool closing; /* its stdin is closed: an exit is expected */
	/* a source */
	int64_t granted;
	int items;
	char ids[2 * CHECK_CREDIT][64];
	bool ack_lists; /* its hello asked for {"ack": [ids]} */
	bool ended;
	char nacked[64];
	/* a sink */
	const char *expect[2];
	int answers;
};

static void problem(struct check *c, long lineno, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void problem(struct check *c, long lineno, const char *fmt, ...)
{
	va_list ap;
	c->problems++;
	if (lineno > 0)
		printf("  FAIL line %ld: ", lineno);
	else
		printf("  FAIL ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static int shown(size_t len)
{
	return (int)(len > 100 ? 100 : len);
}

static void source_line(struct hop_proc *p, char *line, size_t len, long lineno)
{
	struct check *c = p->arg;
	struct hop_exec_src_line l;

	switch (hop_exec_src_read(line, len, &l)) {
	case HOP_EXEC_ITEM:
		c->items++;
		if (c->items > c->granted) {
			problem(c, lineno,
				"item '%.*s' is item %d, beyond the credit of "
				"%lld: a source gives no more than it was "
				"granted by {\"credit\": N} lines",
				(int)l.id_len, l.id, c->items,
				(long long)c->granted);
			break;
		}
		if (c->items <= 2 * CHECK_CREDIT)
			snprintf(c->ids[c->items - 1], sizeof(c->ids[0]),
				 "%.*s", (int)l.id_len, l.id);
		printf("  ok   line %ld: item '%.*s', a payload of %zu "
		       "byte%s%s\n",
		       lineno, (int)l.id_len, l.id, l.payload_len,
		       l.payload_len == 1 ? "" : "s",
		       l.attempts ? ", attempts made before" : "");
		if (c->nacked[0] && strlen(c->nacked) == l.id_len &&
		    !memcmp(c->nacked, l.id, l.id_len))
			printf("  note line %ld: the nacked item came back\n",
			       lineno);
		break;
	case HOP_EXEC_DEPTH:
		printf("  ok   line %ld: depth %lld\n", lineno,
		       (long long)l.depth);
		break;
	case HOP_EXEC_HELLO:
		c->ack_lists = l.ack_lists;
		printf("  ok   line %ld: hello: acknowledgements %s\n", lineno,
		       l.ack_lists ? "in lists ({\"ack\": [ids]})"
				   : "one a line");
		if (c->items)
			printf("  note line %ld: the hello comes after items: "
			       "their acks may have come one a line\n",
			       lineno);
		break;
	case HOP_EXEC_END:
		c->ended = true;
		printf("  ok   line %ld: end\n", lineno);
		break;
	case HOP_EXEC_BAD:
		problem(c, lineno, "%s: '%.*s'", l.why, shown(len), line);
		break;
	}
	free(l.owned);
	fflush(stdout);
}

static void too_long(struct hop_proc *p, long lineno)
{
	problem(p->arg, lineno, "over the %zu-byte line limit", p->max_line);
}

static bool exited(struct hop_proc *p, int status, const char *why)
{
	struct check *c = p->arg;
	if (c->closing) {
		if (status == 0)
			printf("  ok   exits once its stdin closes\n");
		else
			problem(c, 0, "%s once its stdin closed (0 expected)",
				why);
	} else {
		problem(c, 0, "%s before its stdin closed", why);
	}
	return false;
}

/* Polls until done(c) or ms pass. Returns done(c). */
static bool wait_for(struct check *c, int64_t ms, bool (*done)(struct check *))
{
	int64_t end = hop_now_ms() + ms;
	while (!done(c) && c->p.up && hop_now_ms() < end)
		hop_proc_poll(&c->p, 50);
	return done(c);
}

static bool credit_used(struct check *c)
{
	return c->items >= c->granted || c->ended;
}

static bool never(struct check *c)
{
	return false;
}

static void send(struct check *c, struct hop_buf *b, const char *what)
{
	printf("  sent %.*s", (int)hop_buf_len(b), hop_buf_head(b));
	if (what)
		printf("       (%s)\n", what);
	hop_proc_send(&c->p, hop_buf_head(b), hop_buf_len(b));
	hop_buf_reset(b);
	fflush(stdout);
}

/* Closes the program's stdin and waits for its exit. */
static void finish(struct check *c)
{
	int64_t ms = (int64_t)(c->timeout * 1000);
	c->closing = true;
	if (c->p.up) {
		hop_proc_flush(&c->p);
		close(c->p.child.in);
		c->p.child.in = -1;
		wait_for(c, ms, never);
		if (c->p.up)
			problem(c, 0,
				"still running %.1f s after its stdin closed: "
				"a program exits at the end of its input",
				c->timeout);
	}
	hop_proc_stop(&c->p, 0);
}

static int run_source(struct check *c)
{
	struct hop_buf b = {0};
	int64_t ms = (int64_t)(c->timeout * 1000);

	hop_exec_put_credit(&b, CHECK_CREDIT);
	c->granted = CHECK_CREDIT;
	send(c, &b, NULL);
	if (!wait_for(c, ms, credit_used) && c->items == 0 && c->p.up)
		problem(c, 0,
			"no item and no {\"end\": true} within %.1f s: does "
			"it flush stdout after each line?",
			c->timeout);
	/* A while longer, for items beyond the credit. */
	wait_for(c, QUIET_MS, never);
	if (c->items >= 1) {
		if (c->ack_lists) {
			struct hop_buf list = {0};
			hop_exec_ack_list_add(&list, c->ids[0]);
			hop_exec_put_ack_list(&b, &list);
			hop_buf_free(&list);
		} else {
			hop_exec_put_ack(&b, c->ids[0]);
		}
		send(c, &b, "done: the program forgets it");
	}
	if (c->items >= 2) {
		hop_exec_put_nack(&b, c->ids[1], 1, 500, "checking a nack");
		snprintf(c->nacked, sizeof(c->nacked), "%s", c->ids[1]);
		send(c, &b, "failed: the program gives it again when due");
	}
	if (c->items >= 3) {
		hop_exec_put_dead(&b, c->ids[2], "checking a dead letter",
				  "{\"error\":\"checking a dead letter\"}");
		send(c, &b, "dead: the program keeps the record");
	}
	if (c->items >= 1 && c->p.up) {
		int64_t more =
		    c->items < CHECK_CREDIT ? c->items : CHECK_CREDIT;
		hop_exec_put_credit(&b, more);
		c->granted += more;
		send(c, &b, NULL);
		wait_for(c, QUIET_MS + 500, never);
	}
	if (c->ack_lists && c->items > CHECK_CREDIT && c->p.up) {
		/* The second round's items, acknowledged in one line. */
		struct hop_buf list = {0};
		int last =
		    c->items < 2 * CHECK_CREDIT ? c->items : 2 * CHECK_CREDIT;
		for (int k = CHECK_CREDIT; k < last; k++)
			hop_exec_ack_list_add(&list, c->ids[k]);
		hop_exec_put_ack_list(&b, &list);
		hop_buf_free(&list);
		send(c, &b, "done, together: the program forgets them");
		wait_for(c, QUIET_MS, never);
	}
	hop_buf_free(&b);
	finish(c);
	return c->problems ? 1 : 0;
}

static void sink_line(struct hop_proc *p, char *line, size_t len, long lineno)
{
	struct check *c = p->arg;
	struct hop_exec_sink_answer a;

	if (hop_exec_sink_read(line, len, &a) == HOP_EXEC_SINK_BAD) {
		problem(c, lineno, "%s: '%.*s'", a.why, shown(len), line);
		return;
	}
	const char *want = c->answers < 2 ? c->expect[c->answers] : NULL;
	if (!want) {
		problem(c, lineno,
			"an answer for '%s' with no record waiting for one",
			a.id);
	} else if (strcmp(a.id, want)) {
		problem(c, lineno,
			"an answer for '%s' while record '%s' waits: one "
			"answer per record, in the order they came",
			a.id, want);
		c->answers++;
	} else if (a.kind == HOP_EXEC_SINK_OK) {
		printf("  ok   line %ld: record '%s' is safe\n", lineno, a.id);
		c->answers++;
	} else {
		printf("  ok   line %ld: record '%s' refused, %s: %s\n", lineno,
		       a.id, a.retry ? "to be tried again" : "for good",
		       a.error ? a.error : "(no error given)");
		c->answers++;
	}
	hop_exec_sink_answer_free(&a);
	fflush(stdout);
}

static bool answered(struct check *c)
{
	return c->answers >= 2;
}

static int run_sink(struct check *c)
{
	struct hop_buf b = {0};

	c->expect[0] = "1";
	c->expect[1] = "check-2";
	hop_exec_put_record(&b, "1", true,
			    "{\"words\":3,\"text\":\"h\\u00e9llo\"}", NULL,
			    NULL, 1);
	send(c, &b, "a result");
	hop_exec_put_record(&b, "check-2", false, NULL,
			    "worker 0 exited with status 1", NULL, 3);
	send(c, &b, "a dead item, as sinks see them");
	if (!wait_for(c, (int64_t)(c->timeout * 1000), answered) && c->p.up)
		problem(c, 0,
			"%d answer%s of 2 within %.1f s: a sink answers each "
			"record with {\"ok\": id} or {\"fail\": id, ...} and "
			"flushes stdout",
			c->answers, c->answers == 1 ? "" : "s", c->timeout);
	hop_buf_free(&b);
	finish(c);
	return c->problems ? 1 : 0;
}

static int check_main(int argc, char **argv, bool source)
{
	const char *cmd = source ? "check-source" : "check-sink";
	struct check c = {.timeout = 10};
	char err[300], name[160];
	int i;

	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < argc && strcmp(argv[i], "--"); i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: hopper %s [--timeout SECS] -- COMMAND "
			       "[ARGS...]\n",
			       cmd);
			return 0;
		}
		if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
			if (hop_parse_seconds(argv[++i], &c.timeout) ||
			    c.timeout <= 0) {
				fprintf(stderr,
					"hopper: --timeout '%s' is not a "
					"number of seconds\n",
					argv[i]);
				return 2;
			}
			continue;
		}
		fprintf(stderr,
			"hopper: unexpected '%s' (hopper %s [--timeout SECS] "
			"-- COMMAND [ARGS...])\n",
			argv[i], cmd);
		return 2;
	}
	if (i + 1 >= argc) {
		fprintf(stderr,
			"hopper: no command: put it after -- (for example: "
			"hopper %s -- python3 %s.py)\n",
			cmd, source ? "source" : "sink");
		return 2;
	}
	struct hop_loop *loop = hop_loop_new();
	if (!loop) {
		fprintf(stderr, "hopper: %s\n", strerror(errno));
		return 1;
	}
	static const struct hop_proc_ops src_ops = {
	    .line = source_line, .too_long = too_long, .exited = exited};
	static const struct hop_proc_ops sink_ops = {
	    .line = sink_line, .too_long = too_long, .exited = exited};
	hop_exec_name(name, sizeof(name), source ? "source" : "sink",
		      argv + i + 1, NULL);
	c.p = (struct hop_proc){
	    .loop = loop,
	    .argv = argv + i + 1,
	    .name = name,
	    .features = source ? "ack_lists" : NULL,
	    .max_line = 16 << 20,
	    .ops = source ? &src_ops : &sink_ops,
	    .arg = &c,
	};
	printf("checking the %s against the exec %s protocol 1\n", name,
	       source ? "source" : "sink");
	if (hop_proc_start(&c.p, err, sizeof(err))) {
		printf("  FAIL %s\n", err);
		hop_loop_free(loop);
		return 1;
	}
	int rc = source ? run_source(&c) : run_sink(&c);
	hop_loop_free(loop);
	if (rc)
		printf("%d problem%s: see sources/PROTOCOL.md\n", c.problems,
		       c.problems == 1 ? "" : "s");
	else
		printf("the %s program keeps the contract\n",
		       source ? "source" : "sink");
	return rc;
}

int hop_exec_check_source(int argc, char **argv)
{
	return check_main(argc, argv, true);
}

int hop_exec_check_sink(int argc, char **argv)
{
	return check_main(argc, argv, false);
}
