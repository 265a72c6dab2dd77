/* opts.h - option tables: one declaration gives parsing and --help.
 *
 * A driver (or the run command) declares its options as a table of
 * {key, type, default, offset, help}, each naming a field of its context
 * struct by offsetof, and optionally the values it accepts: a minimum and a
 * maximum for numbers, a list of choices for text. The same table parses
 * "key=value" text from the command line, values from a pipeline file, fills
 * defaults, writes --help, and frees the strings it set. Unknown keys and
 * values out of range are rejected by name, in that one place, whichever way
 * the value came in.
 */
#ifndef HOP_OPTS_H
#define HOP_OPTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum hop_opt_type {
	HOP_OPT_STR,	 /* char *, owned by the context */
	HOP_OPT_INT,	 /* int64_t */
	HOP_OPT_BOOL,	 /* bool: true/false, yes/no, 1/0, on/off */
	HOP_OPT_SIZE,	 /* int64_t bytes; text may end in K, M or G */
	HOP_OPT_SECONDS, /* double; text may end in ms, s, m or h */
};

struct hop_option {
	const char *key;
	enum hop_opt_type type;
	const char *def; /* default as text, or NULL for none */
	size_t offset;
	const char *help;
	/* Bounds, inclusive, written as the option's values are ("1K", "5m")
	 * and parsed the same way; NULL for none. Numbers only. */
	const char *min, *max;
	/* Text only: the accepted values separated by '|' ("stream|exec");
	 * NULL for any text. */
	const char *choices;
	/* The default said in words, for --help, when the value alone would
	 * mislead ("one per CPU" for 0, "the broker's" for -1); NULL to say
	 * the value. */
	const char *def_words;
	/* Text only: a JSON array given in a pipeline file is taken as its
	 * compact JSON text, for the driver to read (a command's
	 * arguments). */
	bool json_array;
};

/* True when two keys are the same option: '-' and '_' are one letter, so
 * "backoff-max" (as the flag is spelled) is "backoff_max". */
bool hop_opts_key_equal(const char *a, const char *b);

/* Finds key in the table, spelled with '-' or '_'. The table ends with an
 * entry whose key is NULL. */
const struct hop_option *hop_opts_find(const struct hop_option *t,
				       const char *key);

/* Sets every option that has a default. Returns 0, or -EINVAL with a
 * message in err if a default does not parse (a bug in the table). */
int hop_opts_defaults(const struct hop_option *t, void *ctx, char *err,
		      size_t errlen);

/* Sets key from text. Returns 0, or -EINVAL with a message naming the key
 * (unknown key, a value of the wrong kind, out of range or not one of the
 * choices) in err; the field keeps its value then. */
int hop_opts_set(const struct hop_option *t, void *ctx, const char *key,
		 const char *value, char *err, size_t errlen);

/* Sets key from a JSON value: strings are parsed as text, so "2" and 2 are
 * both accepted for a number. Same returns as hop_opts_set. */
int hop_opts_set_json(const struct hop_option *t, void *ctx, const char *key,
		      json_t *value, char *err, size_t errlen);

/* Frees the strings held by the context's string options. */
void hop_opts_free(const struct hop_option *t, void *ctx);

/* Writes one line per option: key, kind, help, then the default in words
 * and the bounds. */
void hop_opts_help(FILE *out, const struct hop_option *t, const char *indent);

/* Writes " (0..4096)" (the bounds of a number option) for --help; nothing
 * for an option without bounds, or one of text. */
void hop_opts_help_range(FILE *out, const struct hop_option *o);

/* Names the option's type in a word or two for help: "integer", "seconds". */
const char *hop_opts_type_word(enum hop_opt_type type);

/* Writes the option's default as a person reads it: def_words when the
 * table has them, else its value with a unit ("5 min", "16 MiB", "on");
 * empty when it has no default. */
void hop_opts_default_words(const struct hop_option *o, char *buf, size_t n);

/* Writes the values the option accepts: "0..4096", "at least 1",
 * "stream, exec"; empty when any value of its type goes. */
void hop_opts_range(const struct hop_option *o, char *buf, size_t n);

/* Parses a number of seconds with an optional unit (ms, s, m, h). */
int hop_parse_seconds(const char *s, double *out);
/* Parses a byte count with an optional K, M or G suffix (powers of 1024). */
int hop_parse_size(const char *s, int64_t *out);

#endif
