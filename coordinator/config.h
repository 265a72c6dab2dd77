/* config.h - a run's settings, from a pipeline file and the command line.
 *
 * The run options are one table (config.c) that gives the command-line
 * flags, the pipeline file's keys and --help alike. Precedence: defaults,
 * then the pipeline file, then flags. Strings in a pipeline file may use
 * ${VAR} and ${VAR:-default}.
 */
#ifndef HOP_CONFIG_H
#define HOP_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "sinks/sink.h"
#include "sources/source.h"

/* Where an output goes: a stage (an index in hop_config.stages) or a sink
 * (an index in hop_config.sinks). */
struct hop_target {
	bool sink;
	int index;
};

/* The targets of one port: every output on it goes to each of them (more
 * than one: a copier). */
struct hop_route {
	char *port; /* NULL: every output that no other route takes */
	int nto;
	struct hop_target *to;
};

/* One stage of a pipeline: a worker command with its own pool. A pipeline
 * file without "stages" has one, made from its top-level keys. Fields as in
 * struct hop_config, for this stage. */
struct hop_stage_config {
	char *name;    /* "main" for the one stage of a file without stages */
	int line, col; /* where the file names it; 0 when it does not */
	char **argv;   /* NULL-terminated worker command */
	char *shell_command; /* "command" as a string, run by sh -c */
	char *mode;
	bool exec_mode;
	int64_t workers, min_workers, max_workers;
	bool autoscale;
	int64_t prefetch;
	int64_t attempts;
	double timeout, backoff, backoff_max;
	int64_t shards; /* 1, or N for a sharder: N pools, one key in one */
	char *key;	/* sharder: a JSON pointer into the payload, for the
			   outputs that carry no "key" of their own */
	int64_t queue;	/* the most items waiting at the stage's input */
	/* Where its outputs go. No route with a NULL port and no route for an
	 * output's port: the output is unmapped. */
	int nroutes;
	struct hop_route *routes;
	bool drop_unmapped; /* unmapped outputs are dropped, not an error */
	bool dead_alone;    /* a dead item here does not fail its root: it is
			       written to the sink as failed, the tree goes on */
	/* Neither workers nor max_workers was given (by the stage, the top
	 * of the file or a flag): it autoscales from min_workers to
	 * max_workers, hop_config.shared_workers, and the stages that share
	 * run that many workers together at most. */
	bool shared;
	/* A join (gather.h): it gathers each root's parts into one item;
	 * without a command that item goes straight on. NULL for none. */
	struct hop_join_config *join;
	/* A reduce: no command; it folds its items into a result per key.
	 * NULL for none. */
	struct hop_reduce_config *reduce;
	/* A durable edge into the stage ("via"): what the stages before it
	 * write to (a Kafka topic, a PostgreSQL queue table) and what it
	 * reads from. Made as the file is read, then taken into the graph as
	 * the sink and source named "NAME.via" (NULL from then on). via says
	 * that the stage has one. */
	struct hop_source *via_source;
	struct hop_sink *via_sink;
	bool via;
};

struct hop_config {
	/* Set through the option table. */
	char *pipeline;
	char *source_spec;
	char *sink_spec;
	char *mode;
	int64_t workers;
	int64_t min_workers; /* -1 unset; set either to autoscale */
	int64_t max_workers;
	double scale_window;
	int64_t shared_workers; /* -1 unset; after load: the budget of the
				   shared stages, 0 when none shares */
	double drain_target;
	int64_t utilization; /* percent */
	char *trace;
	int64_t prefetch;
	int64_t attempts;
	double timeout;
	double backoff;
	double backoff_max;
	double grace;
	double kill_timeout;
	bool watch;
	int64_t max_line;
	char *log_format;
	char *log_level;
	char *listen;		/* HTTP address, NULL for none */
	char *admin_token_file; /* the console's actions need its token */
	bool private_reads; /* --private: reading the console needs it too */
	bool progress;
	char *halt;	    /* never, or (now|soon),fail=(N|P%) */
	char *journal;	    /* the run journal, NULL for none */
	char *stage;	    /* --stage: the stages to run, "a,b"; NULL: all */
	bool resume_failed; /* with a journal: retry the items it has dead */

	/* Built from the above. */
	struct hop_source *source; /* owned */
	struct hop_sink *sink;	   /* owned */
	char **argv;		   /* owned, NULL-terminated worker command */
	char *shell_command; /* owned: "command" as a string, run by sh -c */
	bool exec_mode;
	bool autoscale;	   /* min_workers or max_workers was set */
	bool halt_now;	   /* --halt now,...: stop in-flight work too */
	int64_t halt_fail; /* --halt ...,fail=N: failed attempts; 0: never */
	double halt_pct;   /* --halt ...,fail=P%: percent of attempts */

	/* The graph (hopper run and validate): at least one stage. sources[0]
	 * is source and sinks[0] is sink; each source feeds the targets of
	 * source_routes[i] (port NULL). Names: "main" for the one source or
	 * sink of a file that does not name them. */
	int nstages;
	struct hop_stage_config *stages; /* owned */
	int nsources;
	struct hop_source **sources;	 /* owned; [0] is the same as source */
	char **source_names;		 /* owned */
	struct hop_route *source_routes; /* owned, nsources of them */
	/* For each source, the sink that writes the same durable edge in
	 * this run (a stage's via whose writers run here too), or -1. */
	int *source_edge; /* owned */
	int nsinks;
	struct hop_sink **sinks; /* owned; [0] is the same as sink */
	char **sink_names;	 /* owned */
	bool staged; /* the file has "stages" (even one): not today's form */
};

/* Fills cfg from the arguments of `hopper run` (or `validate`, which takes
 * the pipeline file as its only operand). Returns 0, or -EINVAL with a
 * message in err naming the flag, or the file, line, column and key. */
int hop_config_load(struct hop_config *cfg, int argc, char **argv,
		    bool validate_only, char *err, size_t errlen);

/* Like hop_config_load, for commands that need only the source (hopper
 * dead): the same flags and pipeline file, without a worker command. */
int hop_config_load_source(struct hop_config *cfg, int argc, char **argv,
			   char *err, size_t errlen);

void hop_config_free(struct hop_config *cfg);

/* Names the worker command for logs: the shell command line when the
 * pipeline file gave one as a string, else the program (the first stage's
 * when the file has stages). */
const char *hop_config_command(const struct hop_config *cfg);

/* Writes the run options, as flags, for --help. */
void hop_config_help(FILE *out);

/* Writes every key of a pipeline file with its type, bounds, default and
 * meaning, from the same table as hop_config_help: hopper help pipeline. */
void hop_config_help_pipeline(FILE *out);

#endif
