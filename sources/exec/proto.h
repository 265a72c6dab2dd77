/* proto.h - the lines an exec source or sink program and hopper exchange,
 * read and written one way everywhere.
 *
 * The exec source and sink drivers and `hopper check-source` /
 * `hopper check-sink` all read a program's lines with these functions, so
 * that a program that passes the check is read the same way by its first
 * run. sources/PROTOCOL.md is the contract in words.
 */
#ifndef HOP_EXEC_PROTO_H
#define HOP_EXEC_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hop_buf;

/* What a source program's stdout line says. */
enum hop_exec_src_kind {
	HOP_EXEC_ITEM,	/* {"id": ..., "payload": ..., "attempts"?: N} */
	HOP_EXEC_DEPTH, /* {"depth": N}: items waiting in the program's
			   store */
	HOP_EXEC_END,	/* {"end": true}: everything has been given */
	HOP_EXEC_HELLO, /* {"hello": {...}}: what the program can take */
	HOP_EXEC_BAD,	/* anything else: why says what is wrong */
};

struct hop_exec_src_line {
	enum hop_exec_src_kind kind;
	/* HOP_EXEC_ITEM: the id as text (a number's digits), owned by the
	 * caller's buffer: id points into idbuf or into the line. */
	const char *id;
	size_t id_len;
	/* The payload's JSON text, a span of the line ("null" when absent),
	 * or compacted into a malloc'd copy when the line held a CR (payload
	 * owned then, see owned). */
	const char *payload;
	size_t payload_len;
	char *owned;
	int attempts; /* attempts made before, 0 when not said */
	int64_t depth;
	bool ack_lists; /* HOP_EXEC_HELLO: takes {"ack": [ids...]} */
	char why[200];	/* HOP_EXEC_BAD: what is wrong */
	char idbuf[64];
};

/* Reads one line of a source program. Returns its kind; for
 * HOP_EXEC_BAD, l->why says what is wrong in words. Frees nothing the
 * caller must not: free(l->owned) after use. */
enum hop_exec_src_kind hop_exec_src_read(char *line, size_t len,
					 struct hop_exec_src_line *l);

/* What a sink program's stdout line says. */
enum hop_exec_sink_kind {
	HOP_EXEC_SINK_OK,   /* {"ok": id}: the record is safe */
	HOP_EXEC_SINK_FAIL, /* {"fail": id, "retry": bool, "error": "..."} */
	HOP_EXEC_SINK_BAD,  /* anything else: why says what */
};

struct hop_exec_sink_answer {
	enum hop_exec_sink_kind kind;
	char *id;    /* malloc'd */
	char *error; /* malloc'd, FAIL only, NULL when not given */
	bool retry;  /* FAIL: "retry" is not false */
	char why[200];
};

enum hop_exec_sink_kind hop_exec_sink_read(const char *line, size_t len,
					   struct hop_exec_sink_answer *a);
void hop_exec_sink_answer_free(struct hop_exec_sink_answer *a);

/* Hopper's lines to a source program, each appended to b with its
 * newline. Return 0 or -ENOMEM. */
int hop_exec_put_credit(struct hop_buf *b, int64_t n);
int hop_exec_put_ack(struct hop_buf *b, const char *id);
/* Acknowledgements in one line, for a program whose hello said
 * "ack_lists": hop_exec_ack_list_add appends an id to list (a buffer of
 * its own, empty at first); hop_exec_put_ack_list writes {"ack": [ids]}
 * to b and empties list (nothing when it is empty). */
int hop_exec_ack_list_add(struct hop_buf *list, const char *id);
int hop_exec_put_ack_list(struct hop_buf *b, struct hop_buf *list);
/* A failed attempt to be tried again in delay_ms, with the attempts made
 * so far. */
int hop_exec_put_nack(struct hop_buf *b, const char *id, int attempts,
		      int64_t delay_ms, const char *error);
/* record: the dead-letter record's JSON text. */
int hop_exec_put_dead(struct hop_buf *b, const char *id, const char *error,
		      const char *record);
int hop_exec_put_release(struct hop_buf *b, const char *id);

/* A record for a sink program, and the jsonl sink's line: {"id", "ok",
 * "result", or "error" and, in a file with stages, the "stage" a dead item
 * died in (stage NULL: none), then "attempts"}. */
int hop_exec_put_record(struct hop_buf *b, const char *id, bool ok,
			const char *result, const char *error,
			const char *stage, int attempts);

/* Turns a command option into an argv: a JSON array of strings (as a
 * pipeline file's "command": [...] arrives) is taken as it is; text with
 * no character the shell would read (quotes, $, |, ; ...) is split at its
 * blanks; other text runs through /bin/sh -c. Returns a NULL-terminated
 * malloc'd vector, or NULL with err saying why. */
char **hop_exec_argv(const char *cmd, char *err, size_t errlen);
void hop_exec_argv_free(char **argv);
/* Checks an exec driver's command: given, and one hop_exec_argv can run.
 * Returns 0, or -EINVAL with error naming who ("exec source") and why. */
int hop_exec_check(const char *cmd, const char *who, char *error,
		   size_t errlen);

/* A short name of a command for messages: its text, cut at 60 bytes. */
void hop_exec_short(const char *cmd, char *out, size_t n);

/* Names a program for messages: "exec source 'python3 src.py'", kind
 * and the command as a person wrote it (the shell line, or argv joined). */
void hop_exec_name(char *out, size_t n, const char *kind, char *const *argv,
		   const char *command);

#endif
