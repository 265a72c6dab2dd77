/* exec.c - the exec sink: results to a long-lived program in any language
 * (sources/PROTOCOL.md).
 *
 * Each finished item goes to the program's stdin as the line the jsonl
 * sink writes ({"id", "ok", "result" or "error", "attempts"}), and the
 * program answers each record, in the order they came, on its stdout:
 * {"ok": id} once the record is safe in its store, or {"fail": id,
 * "retry": bool, "error": "..."}. As the kafka sink does, writes are
 * counted in generations, one per flush; a flush answers PENDING and is
 * answered once every record written before it has its answer, so an item
 * is acknowledged at its source only when the program said its record is
 * safe.
 *
 * A flush with a "fail" that may pass ("retry": true) answers RETRY: the
 * coordinator holds its items and writes them again after a backoff,
 * without costing them an attempt. A "fail" with "retry": false answers
 * FAIL, and so fails its item for good, only when the record was alone in
 * its flush; among others it answers RETRY, and the coordinator writes the
 * held items again one first, which comes to the refused one alone. The
 * others of such a flush are written again too: a sink program must take
 * a record twice (an upsert).
 *
 * The program's end, or a line that breaks the contract (after which its
 * answers cannot be trusted to line up), loses every unanswered record:
 * their flushes answer RETRY and the program is started again (proc.h);
 * meanwhile writes answer RETRY. The coordinator then writes those items
 * again to the new incarnation: at least once.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/buf.h"
#include "coordinator/log.h"
#include "coordinator/loop.h"
#include "sinks/sink.h"
#include "sources/exec/proc.h"
#include "sources/exec/proto.h"

#define NGEN 9 /* more than the flushes the sink lets wait */
#define MAX_FLUSHES 8
/* The longest wait for the program's answers when the run ends. */
#define END_WAIT_MS 30000

struct gen {
	size_t n;     /* records written to it */
	size_t out;   /* records not answered yet */
	bool retry;   /* a record failed for now, or was lost */
	bool refused; /* a record failed for good */
	char error[300];
};

/* A record waiting for its answer, in the order written. */
struct pend {
	struct pend *next;
	int gen;
	char id[];
};

struct exec_sink {
	char *command;
	bool dead;
	double grace;

	struct hop_sink *sink;
	char **argv;
	char name[160];
	struct hop_proc proc;
	struct gen gen[NGEN];
	int cur, oldest, pending;
	struct pend *head, *tail;
	char down[400]; /* why the program is not running */
	bool broken;	/* broke the contract: its lines are not read */
};

static const struct hop_option exec_options[] = {
    {"command", HOP_OPT_STR, NULL, offsetof(struct exec_sink, command),
     "the program: a shell command line, or (in a pipeline file) an array "
     "of its arguments",
     .json_array = true},
    {"dead", HOP_OPT_BOOL, "true", offsetof(struct exec_sink, dead),
     "write dead items too, with ok false and the error"},
    {"grace", HOP_OPT_SECONDS, "5", offsetof(struct exec_sink, grace),
     "time the program has to exit once its stdin closes at the end",
     .min = "0"},
    {NULL},
};

static void gen_error(struct gen *g, const char *fmt, const char *a,
		      const char *b)
{
	if (!g->error[0])
		snprintf(g->error, sizeof(g->error), fmt, a, b);
}

/* The status of an answered generation; resets it for reuse. */
static enum hop_sink_status take_status(struct exec_sink *c, struct gen *g)
{
	enum hop_sink_status st = HOP_SINK_OK;
	if (g->refused && g->n == 1 && !g->retry)
		st = HOP_SINK_FAIL;
	else if (g->refused || g->retry)
		st = HOP_SINK_RETRY;
	if (st != HOP_SINK_OK)
		snprintf(c->sink->error, sizeof(c->sink->error), "%s",
			 g->error);
	*g = (struct gen){0};
	return st;
}

/* Answers, in order, every waiting flush whose records all have their
 * answers. */
static void answer(struct hop_loop *loop, void *arg)
{
	struct exec_sink *c = arg;
	while (c->pending && c->gen[c->oldest].out == 0) {
		enum hop_sink_status st = take_status(c, &c->gen[c->oldest]);
		c->oldest = (c->oldest + 1) % NGEN;
		c->pending--;
		hop_sink_flushed(c->sink, st);
	}
}

static void answer_if_done(struct exec_sink *c)
{
	if (c->pending && c->gen[c->oldest].out == 0)
		hop_loop_soon(c->sink->loop, answer, c);
}

/* Every record not answered yet is lost: its flush answers RETRY. */
static void lose_all(struct exec_sink *c, const char *why)
{
	struct pend *p;
	while ((p = c->head)) {
		c->head = p->next;
		free(p);
	}
	c->tail = NULL;
	for (int i = 0; i < NGEN; i++) {
		struct gen *g = &c->gen[i];
		if (!g->out)
			continue;
		g->out = 0;
		g->retry = true;
		gen_error(
		    g,
		    "%.119s: %.120s: its unconfirmed records are written again",
		    c->name, why);
	}
	answer_if_done(c);
}

/* The program broke the contract: its answers cannot be trusted to line up
 * with the records any more. It is stopped, and started again. */
static void breach(struct exec_sink *c)
{
	c->broken = true;
	hop_child_signal(&c->proc.child, SIGKILL);
}

static void on_started(struct hop_proc *p)
{
	struct exec_sink *c = p->arg;
	c->broken = false;
}

static void on_line(struct hop_proc *p, char *line, size_t len, long lineno)
{
	struct exec_sink *c = p->arg;
	struct hop_exec_sink_answer a;
	int shown = (int)(len > 120 ? 120 : len);

	if (c->broken)
		return;
	if (hop_exec_sink_read(line, len, &a) == HOP_EXEC_SINK_BAD) {
		hop_log(HOP_ERROR, "%s: line %ld: %s: '%.*s'; stopping it",
			c->name, lineno, a.why, shown, line);
		breach(c);
		return;
	}
	struct pend *head = c->head;
	if (!head || strcmp(head->id, a.id)) {
		hop_log(HOP_ERROR,
			"%s: line %ld: an answer for record '%.100s' while "
			"%s%.100s%s is the oldest waiting (answers come in the "
			"order of the records); stopping it",
			c->name, lineno, a.id, head ? "'" : "",
			head ? head->id : "none", head ? "'" : "");
		hop_exec_sink_answer_free(&a);
		breach(c);
		return;
	}
	struct gen *g = &c->gen[head->gen];
	if (a.kind == HOP_EXEC_SINK_FAIL) {
		char what[200];
		snprintf(what, sizeof(what), "record '%.100s' refused%s", a.id,
			 a.retry ? " for now" : " for good");
		if (a.retry)
			g->retry = true;
		else
			g->refused = true;
		bool fresh = !g->error[0];
		gen_error(g, "%.119s: %.120s", c->name, what);
		size_t used = strlen(g->error);
		if (fresh && a.error && used + 3 < sizeof(g->error))
			snprintf(g->error + used, sizeof(g->error) - used,
				 ": %s", a.error);
		hop_log(HOP_WARN, "%s: line %ld: %s: %s", c->name, lineno, what,
			a.error ? a.error : "no error given");
	}
	c->head = head->next;
	if (!c->head)
		c->tail = NULL;
	free(head);
	g->out--;
	hop_exec_sink_answer_free(&a);
	answer_if_done(c);
}

static void on_too_long(struct hop_proc *p, long lineno)
{
	struct exec_sink *c = p->arg;
	if (c->broken)
		return;
	hop_log(HOP_ERROR,
		"%s: line %ld: over the %zu-byte line limit; "
		"stopping it",
		c->name, lineno, p->max_line);
	breach(c);
}

static bool on_exited(struct hop_proc *p, int status, const char *why)
{
	struct exec_sink *c = p->arg;
	snprintf(c->down, sizeof(c->down), "%s", why);
	lose_all(c, why);
	return true;
}

static const struct hop_proc_ops exec_proc_ops = {
    .line = on_line,
    .too_long = on_too_long,
    .started = on_started,
    .exited = on_exited,
};

static int exec_check(struct hop_sink *sink, const char **key)
{
	struct exec_sink *c = sink->ctx;
	int rc = hop_exec_check(c->command, "exec sink", sink->error,
				sizeof(sink->error));
	*key = rc ? "command" : NULL;
	return rc;
}

static int exec_open(struct hop_sink *sink)
{
	struct exec_sink *c = sink->ctx;
	const char *key;
	char err[300];
	int rc;

	c->sink = sink;
	if ((rc = exec_check(sink, &key)))
		return rc;
	if (!(c->argv = hop_exec_argv(c->command, err, sizeof(err)))) {
		snprintf(sink->error, sizeof(sink->error), "exec sink: %s",
			 err);
		return -ENOMEM;
	}
	hop_exec_name(c->name, sizeof(c->name), "exec sink", c->argv,
		      c->command);
	c->proc = (struct hop_proc){
	    .loop = sink->loop,
	    .argv = c->argv,
	    .name = c->name,
	    .max_line = 1 << 20,
	    .ops = &exec_proc_ops,
	    .arg = c,
	};
	if ((rc = hop_proc_start(&c->proc, err, sizeof(err)))) {
		snprintf(sink->error, sizeof(sink->error), "%s: %s", c->name,
			 err);
		hop_exec_argv_free(c->argv);
		c->argv = NULL;
		return rc;
	}
	return 0;
}

static void push_soon(struct hop_loop *loop, void *arg)
{
	struct exec_sink *c = arg;
	hop_proc_flush(&c->proc);
}

static enum hop_sink_status exec_write(struct hop_sink *sink,
				       struct hop_item *it)
{
	struct exec_sink *c = sink->ctx;
	size_t idlen = strlen(it->id);

	if (!it->ok && !c->dead)
		return HOP_SINK_OK;
	if (!c->proc.up) {
		snprintf(sink->error, sizeof(sink->error),
			 "%s is not running (%.300s)", c->name, c->down);
		return HOP_SINK_RETRY;
	}
	struct pend *p = malloc(sizeof(*p) + idlen + 1);
	if (!p || hop_exec_put_record(&c->proc.in, it->id, it->ok, it->result,
				      it->error, it->dead_stage, it->attempt)) {
		free(p);
		snprintf(sink->error, sizeof(sink->error), "%s: out of memory",
			 c->name);
		return HOP_SINK_RETRY;
	}
	memcpy(p->id, it->id, idlen + 1);
	p->gen = c->cur;
	p->next = NULL;
	if (c->tail)
		c->tail->next = p;
	else
		c->head = p;
	c->tail = p;
	c->gen[c->cur].n++;
	c->gen[c->cur].out++;
	hop_loop_soon(sink->loop, push_soon, c);
	return HOP_SINK_OK;
}

static enum hop_sink_status exec_flush(struct hop_sink *sink)
{
	struct exec_sink *c = sink->ctx;
	struct gen *g = &c->gen[c->cur];

	hop_proc_flush(&c->proc);
	if (!c->pending && g->out == 0)
		return take_status(c, g);
	if (!c->pending)
		c->oldest = c->cur;
	c->pending++;
	c->cur = (c->cur + 1) % NGEN; /* free: NGEN > max_flushes */
	answer_if_done(c);
	return HOP_SINK_PENDING;
}

static void exec_wait(struct hop_sink *sink)
{
	struct exec_sink *c = sink->ctx;
	int64_t end = hop_now_ms() + END_WAIT_MS;

	while (c->pending && c->gen[c->oldest].out && c->proc.up &&
	       hop_now_ms() < end)
		hop_proc_poll(&c->proc, 100);
	if (c->pending && c->gen[c->oldest].out) {
		/* The run ends without the program's word: not stored. */
		struct gen *g = &c->gen[c->oldest];
		g->out = 0;
		g->retry = true;
		gen_error(g, "%.119s: %.120s", c->name,
			  "no answer for its records as the run ended");
	}
	answer(sink->loop, c);
}

static void exec_close(struct hop_sink *sink)
{
	struct exec_sink *c = sink->ctx;
	struct pend *p;

	if (!c->argv)
		return;
	int status = hop_proc_stop(&c->proc, (int64_t)(c->grace * 1000));
	if (status > 0) {
		char how[80];
		hop_describe_status(status, how, sizeof(how));
		hop_log(HOP_WARN, "%s: %s at the end of the run", c->name, how);
	}
	while ((p = c->head)) {
		c->head = p->next;
		free(p);
	}
	hop_exec_argv_free(c->argv);
	c->argv = NULL;
}

const struct hop_sink_ops hop_sink_exec = {
    .name = "exec",
    .forms = "exec:COMMAND",
    .summary = "results to a program in any language, as JSON lines on its "
	       "stdin, acknowledged once it answers ok (sources/PROTOCOL.md)",
    .options = exec_options,
    .ctx_size = sizeof(struct exec_sink),
    .check = exec_check,
    .open = exec_open,
    .write = exec_write,
    .flush = exec_flush,
    .wait = exec_wait,
    .max_flushes = MAX_FLUSHES,
    .close = exec_close,
};
