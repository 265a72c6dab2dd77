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
	char *listen; /* HTTP address, NULL for none */
	bool progress;
	char *halt;	    /* never, or (now|soon),fail=(N|P%) */
	char *journal;	    /* the run journal, NULL for none */
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
 * pipeline file gave one as a string, else the program. */
const char *hop_config_command(const struct hop_config *cfg);

/* Writes the run options, as flags, for --help. */
void hop_config_help(FILE *out);

/* Writes every key of a pipeline file with its type, bounds, default and
 * meaning, from the same table as hop_config_help: hopper help pipeline. */
void hop_config_help_pipeline(FILE *out);

#endif
