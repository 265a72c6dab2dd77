/* main.c - the hopper command: run, validate, check-worker, help. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkworker.h"
#include "config.h"
#include "dead.h"
#include "driver.h"
#include "graph.h"
#include "log.h"
#include "run.h"
#include "suggest.h"

/* Read by jemalloc when it is the allocator (see the Makefile): memory
 * freed goes back to the system after a second rather than ten, so that
 * the coordinator's footprint follows its Kafka read-ahead down again.
 * MALLOC_CONF in the environment still has the last word. */
const char *malloc_conf = "dirty_decay_ms:1000,muzzy_decay_ms:0";

#define HOP_VERSION "0.1.0"

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "hopper %s: run a worker over every item of a queue.\n"
	    "\n"
	    "usage:\n"
	    "  hopper run [OPTIONS] -- WORKER [ARGS...]\n"
	    "  hopper run -f PIPELINE.json|.yaml [OPTIONS]\n"
	    "  hopper validate PIPELINE.json|.yaml\n"
	    "  hopper graph PIPELINE.json|.yaml [--format text|dot|mermaid]\n"
	    "  hopper check-worker [--mode exec] [--timeout SECS] -- WORKER "
	    "[ARGS...]\n",
	    HOP_VERSION);
	/* The drivers' own commands. */
	for (size_t i = 0; hop_source_registry[i]; i++) {
		const struct hop_command *c = hop_source_registry[i]->commands;
		for (; c && c->name; c++)
			fprintf(out, "  hopper %s %s\n", c->name, c->usage);
	}
	fprintf(
	    out,
	    "  hopper dead list|retry|discard [ID...|--all] -s SOURCE | -f "
	    "PIPELINE.json\n"
	    "  hopper help [run|pipeline|sources|sinks|dead]\n"
	    "\n"
	    "example:\n"
	    "  hopper run --source jsonl:items.jsonl --sink jsonl:- -- "
	    "python3 worker/examples/python/word_count.py\n"
	    "  hopper run --source dir:videos --sink dir:results --watch -- "
	    "./my-worker\n"
	    "\n"
	    "The worker contract is in worker/PROTOCOL.md.\n");
}

static void help_run(FILE *out)
{
	fprintf(out,
		"usage: hopper run [OPTIONS] -- WORKER [ARGS...]\n"
		"       hopper run -f PIPELINE.json [OPTIONS] [-- WORKER "
		"[ARGS...]]\n\n"
		"examples:\n"
		"  # each line of items.jsonl through 4 workers, results to a "
		"file\n"
		"  hopper run -s jsonl:items.jsonl -o jsonl:results.jsonl -j 4 "
		"-- python3 worker.py\n"
		"  # every .mp4 in inbox/, and new ones as they arrive, a "
		"process per file\n"
		"  hopper run -s dir:inbox -S glob='*.mp4' -o dir:results "
		"--watch -m exec -- ./convert.sh\n"
		"  # a pipeline file, with one setting changed on the command "
		"line\n"
		"  hopper run -f pipelines/word_count.json -j 1\n"
		"  # a PostgreSQL queue, 0 to 8 workers as the backlog "
		"needs\n"
		"  hopper run -s postgres://localhost/app -S table=jobs "
		"--min-workers 0 \\\n"
		"      --max-workers 8 --watch -- ./my-worker\n"
		"  # lines from stdin, a minute per item, two attempts\n"
		"  cat urls.jsonl | hopper run -s jsonl:- -t 1m --attempts 2 "
		"-- ./fetch.py\n\n"
		"options:\n");
	hop_config_help(out);
	fprintf(out,
		"\nexit status: 0 all done (or a --watch run drained by a "
		"signal), 3 some items dead, 4 --halt stopped the run,\n"
		"130/143 a finite run stopped by SIGINT/SIGTERM with items "
		"not done, 2 usage or pipeline error,\n1 could not run (or "
		"a dead letter could not be written)\n");
}

static bool wants_help(int argc, char **argv)
{
	for (int i = 0; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return true;
	return false;
}

static int cmd_run(int argc, char **argv, bool validate)
{
	struct hop_config cfg;
	char err[1024];

	if (wants_help(argc, argv)) {
		help_run(stdout);
		return 0;
	}
	if (hop_config_load(&cfg, argc, argv, validate, err, sizeof(err))) {
		fprintf(stderr, "hopper: %s\n", err);
		hop_config_free(&cfg);
		return HOP_EXIT_USAGE;
	}
	hop_log_setup(strcmp(cfg.log_format, "json") == 0,
		      (enum hop_log_level)hop_log_level_parse(cfg.log_level));
	int code;
	if (validate) {
		if (!cfg.pipeline) {
			fprintf(stderr,
				"hopper: validate needs a pipeline file\n");
			code = HOP_EXIT_USAGE;
		} else if (!cfg.staged) {
			printf("%s: ok: %s -> %s, %ld %s worker(s): %s\n",
			       cfg.pipeline, cfg.source->label, cfg.sink->label,
			       (long)cfg.workers, cfg.mode,
			       hop_config_command(&cfg));
			code = 0;
		} else {
			printf("%s: ok: %d stage%s, %d source%s, %d sink%s\n",
			       cfg.pipeline, cfg.nstages,
			       cfg.nstages == 1 ? "" : "s", cfg.nsources,
			       cfg.nsources == 1 ? "" : "s", cfg.nsinks,
			       cfg.nsinks == 1 ? "" : "s");
			hop_graph_print(stdout, &cfg, HOP_GRAPH_TEXT);
			code = 0;
		}
	} else {
		code = hop_run(&cfg);
	}
	hop_config_free(&cfg);
	return code;
}

static void help_graph(FILE *out)
{
	fprintf(
	    out,
	    "usage: hopper graph PIPELINE.json|.yaml [--format "
	    "text|dot|mermaid] [OPTIONS]\n\n"
	    "Prints the pipeline's graph: its sources, its stages (mode, "
	    "workers, shards),\n"
	    "its sinks and where items go between them, a port on the "
	    "edges of a\n"
	    "splitter. The file is checked as hopper validate checks it; "
	    "run options\n"
	    "(-j 2, -m exec) apply as they would to a run.\n\n"
	    "  --format text     one line per source, stage and sink, and "
	    "the edges\n"
	    "                    under each stage (the default)\n"
	    "  --format dot      Graphviz: hopper graph p.json --format dot "
	    "| dot -Tsvg\n"
	    "  --format mermaid  a Mermaid flowchart, for Markdown\n");
}

/* hopper graph FILE [--format F] [run options]: the --format flag is the
 * command's own; the rest load the file as validate does. */
static int cmd_graph(int argc, char **argv)
{
	enum hop_graph_format format = HOP_GRAPH_TEXT;
	struct hop_config cfg;
	char err[1024];
	char **rest = calloc((size_t)argc + 1, sizeof(char *));
	int n = 0, code = HOP_EXIT_USAGE;

	if (wants_help(argc, argv)) {
		help_graph(stdout);
		free(rest);
		return 0;
	}
	if (!rest)
		return 1;
	for (int i = 0; i < argc; i++) {
		const char *name = NULL;
		if (!strncmp(argv[i], "--format=", 9))
			name = argv[i] + 9;
		else if (!strcmp(argv[i], "--format") && i + 1 < argc)
			name = argv[++i];
		else if (!strcmp(argv[i], "--format")) {
			fprintf(stderr, "hopper: flag '--format' needs a "
					"value: text, dot or mermaid\n");
			goto out;
		}
		if (!name) {
			rest[n++] = argv[i];
		} else if (hop_graph_format_parse(name, &format)) {
			fprintf(stderr,
				"hopper: --format %s: not text, dot or "
				"mermaid\n",
				name);
			goto out;
		}
	}
	if (hop_config_load(&cfg, n, rest, true, err, sizeof(err))) {
		fprintf(stderr, "hopper: %s\n", err);
		hop_config_free(&cfg);
		goto out;
	}
	if (!cfg.pipeline) {
		fprintf(stderr, "hopper: graph needs a pipeline file (hopper "
				"graph PIPELINE.json)\n");
	} else {
		hop_graph_print(stdout, &cfg, format);
		code = 0;
	}
	hop_config_free(&cfg);
out:
	free(rest);
	return code;
}

static int cmd_version(int argc, char **argv)
{
	printf("hopper %s\n", HOP_VERSION);
	return 0;
}

/* The topics of hopper help. */
static const char *const topics[] = {"run", "pipeline", "sources", "sinks",
				     "dead"};

static int cmd_help(int argc, char **argv)
{
	if (argc == 0) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[0], "sources"))
		hop_driver_help(stdout, &hop_source_drivers);
	else if (!strcmp(argv[0], "sinks"))
		hop_driver_help(stdout, &hop_sink_drivers);
	else if (!strcmp(argv[0], "run"))
		help_run(stdout);
	else if (!strcmp(argv[0], "pipeline"))
		hop_config_help_pipeline(stdout);
	else if (!strcmp(argv[0], "dead"))
		return hop_dead_command(1, (char *[]){"--help", NULL});
	else {
		struct hop_suggest s;
		hop_suggest_init(&s, argv[0]);
		for (size_t i = 0; i < sizeof(topics) / sizeof(*topics); i++)
			hop_suggest_offer(&s, topics[i]);
		const char *near = hop_suggest_best(&s);
		fprintf(stderr, "hopper: no help on '%s'", argv[0]);
		if (near)
			fprintf(stderr, "; did you mean 'hopper help %s'?\n",
				near);
		else
			fprintf(stderr,
				" (topics: run, pipeline, sources, sinks, "
				"dead)\n");
		return HOP_EXIT_USAGE;
	}
	return 0;
}

static int cmd_run_only(int argc, char **argv)
{
	return cmd_run(argc, argv, false);
}

static int cmd_validate(int argc, char **argv)
{
	return cmd_run(argc, argv, true);
}

/* The commands, by name; hidden ones are not offered as suggestions. */
static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	bool hidden;
} commands[] = {
    {"run", cmd_run_only},
    {"validate", cmd_validate},
    {"graph", cmd_graph},
    {"check-worker", hop_check_worker},
    {"dead", hop_dead_command},
    {"version", cmd_version},
    {"--version", cmd_version, true},
    {"help", cmd_help},
    {"--help", cmd_help, true},
    {"-h", cmd_help, true},
};

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return HOP_EXIT_USAGE;
	}
	const char *cmd = argv[1];
	struct hop_suggest s;
	hop_suggest_init(&s, cmd);
	for (size_t i = 0; i < sizeof(commands) / sizeof(*commands); i++) {
		if (!strcmp(cmd, commands[i].name))
			return commands[i].fn(argc - 2, argv + 2);
		if (!commands[i].hidden)
			hop_suggest_offer(&s, commands[i].name);
	}
	const struct hop_command *dc = hop_source_command(cmd);
	if (dc)
		return dc->run(argc - 2, argv + 2);
	for (size_t i = 0; hop_source_registry[i]; i++) {
		const struct hop_command *c = hop_source_registry[i]->commands;
		for (; c && c->name; c++)
			hop_suggest_offer(&s, c->name);
	}
	const char *near = hop_suggest_best(&s);
	if (near) {
		/* As git and cargo do: the likely command, not the manual. */
		fprintf(stderr,
			"hopper: unknown command '%s'; did you mean "
			"'hopper %s'?\n",
			cmd, near);
		return HOP_EXIT_USAGE;
	}
	fprintf(stderr, "hopper: unknown command '%s'\n\n", cmd);
	usage(stderr);
	return HOP_EXIT_USAGE;
}
