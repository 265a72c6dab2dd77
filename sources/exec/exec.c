/* exec.c - the exec source: items from a long-lived program in any
 * language, as JSON lines on its stdout (sources/PROTOCOL.md).
 *
 * The program writes {"id", "payload"} lines, {"depth": N} lines for the
 * autoscaler and {"end": true} once a finite source has given everything.
 * hopper writes on its stdin what became of each item (ack, nack with the
 * time it is due again, dead with the dead-letter record, release when a
 * run stops before it finished) and credit: {"credit": N} lines grant N
 * more items that the program may have outstanding, the first one at
 * start. The program keeps its own store and schedule; hopper keeps
 * nothing between runs.
 *
 * Credit bounds memory: what hopper holds of the program's (items read and
 * not yet finished) plus the credit not yet used never passes the credit
 * option. An item that comes beyond its credit is held, alone, and the
 * program's stdout is no longer read until credit returns: the program
 * blocks on a full pipe, nothing is dropped, and a warning names it once.
 *
 * A program whose first lines include {"hello": {"ack_lists": true}}
 * (offered in HOPPER_FEATURES) takes its acknowledgements in lists: the
 * acks of a turn of the loop gather into one {"ack": [ids]} line, written
 * before any other line so that the order stays as if each had its own.
 * Nothing is acknowledged sooner or later than it would be line by line:
 * the list goes out in the same turn, with the credit the acks give back.
 *
 * A program that ends before its {"end": true} is started again after a
 * wait that grows (proc.h). The items it gave that hopper had not handed
 * to a worker yet are dropped: the program redelivers what it has not
 * seen acknowledged (at least once). The items already at work finish,
 * and their acknowledgements go to the new incarnation: ids are the
 * program's, whatever incarnation gave them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/buf.h"
#include "coordinator/log.h"
#include "coordinator/loop.h"
#include "sources/exec/check.h"
#include "sources/exec/proc.h"
#include "sources/exec/proto.h"
#include "sources/source.h"

struct exec_src {
	char *command;
	int64_t credit;
	double grace;

	struct hop_source *src;
	char **argv;
	char name[160]; /* "exec source 'redis_list.py'" */
	struct hop_proc proc;
	struct hop_queue ready; /* read, not fetched yet */
	int64_t granted;	/* credit granted to this incarnation */
	int64_t taken;		/* items taken from this incarnation */
	int64_t in_hopper; /* items read, of any incarnation, not finished */
	int64_t depth;	   /* as the program last said, or -1 */
	bool ended;
	bool releasing;	     /* the run stops: no more credit */
	bool warned;	     /* about an item beyond its credit */
	bool holding;	     /* held holds an item beyond the credit */
	bool ack_lists;	     /* this incarnation said it takes {"ack": [ids]} */
	struct hop_buf acks; /* ids acknowledged, not yet written */
	size_t listed;	     /* how many ids acks holds */
	struct hop_buf held;
	long held_lineno;
	uint64_t bad_lines;
};

static const struct hop_option exec_options[] = {
    {"command", HOP_OPT_STR, NULL, offsetof(struct exec_src, command),
     "the program: a shell command line, or (in a pipeline file) an array "
     "of its arguments",
     .json_array = true},
    {"credit", HOP_OPT_INT, "10000", offsetof(struct exec_src, credit),
     "items the program may have outstanding (given and not finished)",
     .min = "1", .max = "1000000"},
    {"grace", HOP_OPT_SECONDS, "5", offsetof(struct exec_src, grace),
     "time the program has to exit once its stdin closes at the end",
     .min = "0"},
    {NULL},
};

/* Past this much unwritten to its stdin, the program gets no more credit:
 * one that never reads its stdin cannot make hopper's memory grow. */
#define IN_LIMIT (1 << 20)

/* The most ids in one {"ack": [...]} line, so that a line stays short
 * enough for a program's reader. */
#define ACK_LIST_MAX 1024
#define FEATURES "ack_lists"

static void on_line(struct hop_proc *p, char *line, size_t len, long lineno);

/* Writes the acknowledgements gathered into one line to the program's
 * buffer: before any other line, so that the order is kept. */
static int put_acks(struct exec_src *c)
{
	c->listed = 0;
	return hop_exec_put_ack_list(&c->proc.in, &c->acks);
}

/* Takes the item that waited beyond its credit, if there is credit now,
 * and reads the program's stdout again. */
static void unhold(struct exec_src *c)
{
	if (!c->holding || c->taken >= c->granted)
		return;
	c->holding = false;
	on_line(&c->proc, hop_buf_head(&c->held), hop_buf_len(&c->held),
		c->held_lineno);
	hop_buf_reset(&c->held);
	hop_proc_pause(&c->proc, false);
}

/* Grants the credit that finished items gave back, and writes what waits
 * for the program's stdin. */
static void settle(struct hop_loop *loop, void *arg)
{
	struct exec_src *c = arg;
	int64_t more = c->credit - c->in_hopper - (c->granted - c->taken);

	if (!c->proc.up)
		return;
	if (put_acks(c))
		hop_log(HOP_ERROR,
			"%s: out of memory writing acknowledgements: the "
			"program gives those items again",
			c->name);
	if (more > 0 && !c->releasing && hop_buf_len(&c->proc.in) < IN_LIMIT &&
	    hop_exec_put_credit(&c->proc.in, more) == 0)
		c->granted += more;
	hop_proc_flush(&c->proc);
	unhold(c);
}

static void settle_soon(struct exec_src *c)
{
	hop_loop_soon(c->src->loop, settle, c);
}

/* An item beyond the credit: kept, and stdout no longer read. */
static void hold(struct exec_src *c, const char *line, size_t len, long lineno)
{
	hop_buf_reset(&c->held);
	if (hop_buf_append(&c->held, line, len)) {
		hop_log(HOP_ERROR,
			"%s: line %ld: out of memory holding an item back: "
			"the line is lost until the program gives it again",
			c->name, lineno);
		return;
	}
	c->holding = true;
	c->held_lineno = lineno;
	hop_proc_pause(&c->proc, true);
	if (!c->warned)
		hop_log(HOP_WARN,
			"%s: line %ld: an item beyond its credit (%lld "
			"outstanding at most): its stdout is not read until "
			"items finish. A source program waits for {\"credit\": "
			"N} lines (sources/PROTOCOL.md); this is said once",
			c->name, lineno, (long long)c->credit);
	c->warned = true;
}

static void take_item(struct exec_src *c, const struct hop_exec_src_line *l)
{
	struct hop_item *it =
	    hop_item_new_block(l->id, l->id_len, l->payload, l->payload_len, 0);
	if (!it) {
		hop_log(HOP_ERROR,
			"%s: out of memory: item '%.*s' is dropped until the "
			"program gives it again",
			c->name, (int)l->id_len, l->id);
		return;
	}
	it->attempt = l->attempts;
	c->taken++;
	c->in_hopper++;
	bool was_empty = !c->ready.head;
	hop_queue_push(&c->ready, it);
	if (was_empty)
		hop_source_wake(c->src);
}

static void on_line(struct hop_proc *p, char *line, size_t len, long lineno)
{
	struct exec_src *c = p->arg;
	struct hop_exec_src_line l;

	switch (hop_exec_src_read(line, len, &l)) {
	case HOP_EXEC_ITEM:
		if (c->taken >= c->granted)
			hold(c, line, len, lineno);
		else
			take_item(c, &l);
		break;
	case HOP_EXEC_DEPTH:
		c->depth = l.depth;
		break;
	case HOP_EXEC_HELLO:
		c->ack_lists = l.ack_lists;
		hop_log(HOP_DEBUG, "%s: hello: acknowledgements %s", c->name,
			l.ack_lists ? "in lists" : "one a line");
		break;
	case HOP_EXEC_END:
		c->ended = true;
		hop_source_wake(c->src);
		break;
	case HOP_EXEC_BAD:
		c->bad_lines++;
		hop_log(HOP_ERROR, "%s: line %ld: %s (ignored): '%.*s'",
			c->name, lineno, l.why, (int)(len > 120 ? 120 : len),
			line);
		break;
	}
	free(l.owned);
}

static void on_too_long(struct hop_proc *p, long lineno)
{
	struct exec_src *c = p->arg;
	c->bad_lines++;
	hop_log(HOP_ERROR,
		"%s: line %ld: over the %zu-byte line limit (--max-line); "
		"ignored",
		c->name, lineno, p->max_line);
}

static void on_started(struct hop_proc *p)
{
	settle(p->loop, p->arg);
}

static bool on_exited(struct hop_proc *p, int status, const char *why)
{
	struct exec_src *c = p->arg;
	struct hop_item *it;
	size_t dropped = 0;

	/* What it gave and no worker has: it gives them again. */
	while ((it = hop_queue_pop(&c->ready))) {
		hop_item_free(it);
		c->in_hopper--;
		dropped++;
	}
	c->holding = false;
	hop_buf_reset(&c->held);
	/* The acks not written went with it; the next incarnation says
	 * afresh what it takes. */
	hop_buf_reset(&c->acks);
	c->listed = 0;
	c->ack_lists = false;
	c->granted = c->taken = 0;
	hop_source_wake(c->src);
	if (c->ended) {
		if (status != 0)
			hop_log(HOP_WARN, "%s: %s after its end", c->name, why);
		return false;
	}
	if (status == 0)
		hop_log(HOP_WARN,
			"%s: exited with status 0 before its {\"end\": true}: "
			"a finite source says it when it has given everything "
			"and heard each item's fate; it is started again",
			c->name);
	if (dropped)
		hop_log(HOP_WARN,
			"%s: %zu item(s) it gave were not at work yet: "
			"dropped, for the program to give again",
			c->name, dropped);
	return true;
}

static const struct hop_proc_ops exec_proc_ops = {
    .line = on_line,
    .too_long = on_too_long,
    .started = on_started,
    .exited = on_exited,
};

static int exec_check(struct hop_source *src, const char **key)
{
	struct exec_src *c = src->ctx;
	int rc = hop_exec_check(c->command, "exec source", src->error,
				sizeof(src->error));
	if (rc)
		*key = "command";
	return rc;
}

static int exec_open(struct hop_source *src)
{
	struct exec_src *c = src->ctx;
	const char *key;
	char err[300];
	int rc;

	c->src = src;
	c->depth = -1;
	if ((rc = exec_check(src, &key)))
		return rc;
	c->argv = hop_exec_argv(c->command, err, sizeof(err));
	if (!c->argv) {
		snprintf(src->error, sizeof(src->error), "exec source: %s",
			 err);
		return -ENOMEM;
	}
	hop_exec_name(c->name, sizeof(c->name), "exec source", c->argv,
		      c->command);
	c->proc = (struct hop_proc){
	    .loop = src->loop,
	    .argv = c->argv,
	    .name = c->name,
	    .features = FEATURES,
	    .max_line = src->max_line ? src->max_line : 16 << 20,
	    .ops = &exec_proc_ops,
	    .arg = c,
	};
	if ((rc = hop_proc_start(&c->proc, err, sizeof(err)))) {
		snprintf(src->error, sizeof(src->error), "%s: %s", c->name,
			 err);
		hop_exec_argv_free(c->argv);
		c->argv = NULL;
		return rc;
	}
	settle(src->loop, c);
	return 0;
}

static int exec_fetch(struct hop_source *src, struct hop_queue *out, size_t max)
{
	struct exec_src *c = src->ctx;
	struct hop_item *it;
	while (max-- > 0 && (it = hop_queue_pop(&c->ready)))
		hop_queue_push(out, it);
	return 0;
}

/* Ends hopper's part in an item with line, already in the program's
 * buffer or not (rc), and returns what the op returns. */
static int finished(struct exec_src *c, struct hop_item *it, int rc)
{
	c->in_hopper--;
	settle_soon(c);
	if (rc) {
		snprintf(c->src->error, sizeof(c->src->error),
			 "%s: out of memory: item %s is not told to the "
			 "program, which gives it again",
			 c->name, it->id);
		return -ENOMEM;
	}
	return 0;
}

static int exec_ack(struct hop_source *src, struct hop_item *it)
{
	struct exec_src *c = src->ctx;
	int rc = 0;

	if (!c->proc.up)
		return finished(c, it, 0);
	if (!c->ack_lists)
		return finished(c, it, hop_exec_put_ack(&c->proc.in, it->id));
	rc = hop_exec_ack_list_add(&c->acks, it->id);
	if (!rc && ++c->listed >= ACK_LIST_MAX)
		rc = put_acks(c);
	/* settle, soon, writes the list */
	return finished(c, it, rc);
}

static int exec_nack(struct hop_source *src, struct hop_item *it,
		     int64_t delay_ms)
{
	struct exec_src *c = src->ctx;
	return finished(c, it,
			c->proc.up ? put_acks(c) ||
					 hop_exec_put_nack(&c->proc.in, it->id,
							   it->attempt,
							   delay_ms, it->error)
				   : 0);
}

/* The dead-letter record goes to the program, whose store keeps it: the
 * item is dead for hopper once the line is handed over. A program that
 * ends before reading it has not seen the item finish, and gives it
 * again (at least once). */
static int exec_dead(struct hop_source *src, struct hop_item *it,
		     const char *record)
{
	struct exec_src *c = src->ctx;
	return finished(c, it,
			c->proc.up ? put_acks(c) ||
					 hop_exec_put_dead(&c->proc.in, it->id,
							   it->error, record)
				   : 0);
}

static int exec_release(struct hop_source *src, struct hop_item *it)
{
	struct exec_src *c = src->ctx;
	/* Only a run that stops hands items back: what more the program
	 * gave would only be handed back too. */
	c->releasing = true;
	return finished(c, it,
			c->proc.up ? put_acks(c) || hop_exec_put_release(
							&c->proc.in, it->id)
				   : 0);
}

static int64_t exec_depth(struct hop_source *src)
{
	struct exec_src *c = src->ctx;
	if (c->depth < 0)
		return c->ready.len ? (int64_t)c->ready.len : -1;
	return c->depth + (int64_t)c->ready.len;
}

static bool exec_exhausted(struct hop_source *src)
{
	struct exec_src *c = src->ctx;
	return c->ended && !c->ready.head && !c->holding;
}

static bool exec_ready(struct hop_source *src, char *why, size_t n)
{
	struct exec_src *c = src->ctx;
	if (c->proc.up || c->ended)
		return true;
	int64_t left = c->proc.restart_due - hop_now_ms();
	snprintf(why, n, "%s is not running: started again in %.1f s", c->name,
		 left > 0 ? (double)left / 1000 : 0.0);
	return false;
}

static void exec_close(struct hop_source *src)
{
	struct exec_src *c = src->ctx;
	struct hop_item *it;

	if (!c->argv)
		return;
	/* What no worker took goes back too, said as the run's other
	 * unfinished items are; hop_proc_stop writes the last lines before
	 * the end of input. */
	if (c->proc.up)
		put_acks(c);
	while ((it = hop_queue_pop(&c->ready))) {
		if (c->proc.up)
			hop_exec_put_release(&c->proc.in, it->id);
		hop_item_free(it);
	}
	int status = hop_proc_stop(&c->proc, (int64_t)(c->grace * 1000));
	if (status > 0) {
		char how[80];
		hop_describe_status(status, how, sizeof(how));
		hop_log(HOP_WARN, "%s: %s at the end of the run", c->name, how);
	}
	if (c->bad_lines)
		hop_log(HOP_WARN, "%s: %llu line(s) broke the contract",
			c->name, (unsigned long long)c->bad_lines);
	hop_buf_free(&c->held);
	hop_buf_free(&c->acks);
	hop_exec_argv_free(c->argv);
	c->argv = NULL;
}

static const struct hop_command exec_commands[] = {
    {"check-source", "[--timeout SECS] -- COMMAND [ARGS...]",
     hop_exec_check_source},
    {"check-sink", "[--timeout SECS] -- COMMAND [ARGS...]",
     hop_exec_check_sink},
    {NULL},
};

const struct hop_source_ops hop_src_exec = {
    .name = "exec",
    .forms = "exec:COMMAND",
    .summary = "items from a program in any language, as JSON lines on its "
	       "stdout (sources/PROTOCOL.md)",
    .options = exec_options,
    .ctx_size = sizeof(struct exec_src),
    .check = exec_check,
    .open = exec_open,
    .fetch = exec_fetch,
    .ack = exec_ack,
    .nack = exec_nack,
    .dead = exec_dead,
    .release = exec_release,
    .depth = exec_depth,
    .exhausted = exec_exhausted,
    .ready = exec_ready,
    .close = exec_close,
    .commands = exec_commands,
};
