/* Unit tests for opts.c: one table parses text and JSON and names errors. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/opts.h"

struct ctx {
	char *name;
	int64_t n;
	bool flag;
	int64_t size;
	double secs;
};

static const struct hop_option table[] = {
    {"name", HOP_OPT_STR, "anon", offsetof(struct ctx, name), "a name"},
    {"n", HOP_OPT_INT, "3", offsetof(struct ctx, n), "a count"},
    {"flag", HOP_OPT_BOOL, "false", offsetof(struct ctx, flag), "a flag"},
    {"size", HOP_OPT_SIZE, "16M", offsetof(struct ctx, size), "a size"},
    {"secs", HOP_OPT_SECONDS, "1.5", offsetof(struct ctx, secs), "a time"},
    {NULL},
};

static void defaults_then_text(void **state)
{
	struct ctx c = {0};
	char err[256];
	assert_int_equal(hop_opts_defaults(table, &c, err, sizeof(err)), 0);
	assert_string_equal(c.name, "anon");
	assert_int_equal(c.n, 3);
	assert_int_equal(c.size, 16 << 20);
	assert_true(c.secs == 1.5);
	assert_int_equal(
	    hop_opts_set(table, &c, "secs", "250ms", err, sizeof(err)), 0);
	assert_true(c.secs == 0.25);
	assert_int_equal(
	    hop_opts_set(table, &c, "secs", "2m", err, sizeof(err)), 0);
	assert_true(c.secs == 120);
	assert_int_equal(
	    hop_opts_set(table, &c, "flag", "yes", err, sizeof(err)), 0);
	assert_true(c.flag);
	assert_int_equal(hop_opts_set(table, &c, "name", "x", err, sizeof(err)),
			 0);
	assert_string_equal(c.name, "x");
	hop_opts_free(table, &c);
	assert_null(c.name);
}

static void errors_name_the_key(void **state)
{
	struct ctx c = {0};
	char err[256];
	hop_opts_defaults(table, &c, err, sizeof(err));
	assert_int_equal(hop_opts_set(table, &c, "nmae", "1", err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "unknown option 'nmae'; did you mean 'name'?");
	assert_int_equal(
	    hop_opts_set(table, &c, "colour", "1", err, sizeof(err)), -EINVAL);
	assert_string_equal(
	    err, "unknown option 'colour' (known: name, n, flag, size, secs)");
	assert_int_equal(hop_opts_set(table, &c, "n", "1x", err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "option 'n': '1x' is not an integer");
	assert_int_equal(
	    hop_opts_set(table, &c, "size", "-1", err, sizeof(err)), -EINVAL);
	assert_int_equal(
	    hop_opts_set(table, &c, "secs", "soon", err, sizeof(err)), -EINVAL);
	hop_opts_free(table, &c);
}

static void dash_and_underscore_are_one_letter(void **state)
{
	static const struct hop_option t[] = {
	    {"max_line", HOP_OPT_SIZE, "1K", 0, "a size"},
	    {NULL},
	};
	int64_t v = 0;
	char err[256];
	assert_true(hop_opts_key_equal("max_line", "max-line"));
	assert_false(hop_opts_key_equal("max_line", "maxline"));
	assert_false(hop_opts_key_equal("max_line", "max_lines"));
	assert_int_equal(
	    hop_opts_set(t, &v, "max-line", "2K", err, sizeof(err)), 0);
	assert_int_equal(v, 2048);
	assert_ptr_equal(hop_opts_find(t, "max-line"), &t[0]);
}

static void json_values(void **state)
{
	struct ctx c = {0};
	char err[256];
	json_t *v;
	hop_opts_defaults(table, &c, err, sizeof(err));
	v = json_integer(7);
	assert_int_equal(hop_opts_set_json(table, &c, "n", v, err, sizeof(err)),
			 0);
	assert_int_equal(c.n, 7);
	assert_int_equal(
	    hop_opts_set_json(table, &c, "secs", v, err, sizeof(err)), 0);
	assert_true(c.secs == 7);
	assert_int_equal(
	    hop_opts_set_json(table, &c, "name", v, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "option 'name' must be a string");
	json_decref(v);
	v = json_string("12");
	assert_int_equal(hop_opts_set_json(table, &c, "n", v, err, sizeof(err)),
			 0);
	assert_int_equal(c.n, 12);
	json_decref(v);
	hop_opts_free(table, &c);
}

/* A text option marked json_array takes an array from a pipeline file as
 * its JSON text; any other text option refuses it. */
static void json_arrays_where_asked(void **state)
{
	struct cmd {
		char *command;
	} c = {0};
	const struct hop_option t[] = {
	    {"command", HOP_OPT_STR, NULL, offsetof(struct cmd, command),
	     "argv", .json_array = true},
	    {NULL},
	};
	char err[256];
	json_t *v = json_pack("[ssi]", "python3", "a b.py", 3);

	assert_int_equal(
	    hop_opts_set_json(t, &c, "command", v, err, sizeof(err)), 0);
	assert_string_equal(c.command, "[\"python3\",\"a b.py\",3]");
	struct ctx plain = {0};
	assert_int_equal(
	    hop_opts_set_json(table, &plain, "name", v, err, sizeof(err)),
	    -EINVAL);
	json_decref(v);
	hop_opts_free(t, &c);
}

struct bounded {
	int64_t n;
	int64_t size;
	double secs;
	char *mode;
};

static const struct hop_option bounded_table[] = {
    {"n", HOP_OPT_INT, "1", offsetof(struct bounded, n), "a count", .min = "1",
     .max = "10"},
    {"size", HOP_OPT_SIZE, "1K", offsetof(struct bounded, size), "a size",
     .min = "1K"},
    {"secs", HOP_OPT_SECONDS, "1", offsetof(struct bounded, secs), "a time",
     .max = "1h"},
    {"mode", HOP_OPT_STR, "a", offsetof(struct bounded, mode), "a or bb",
     .choices = "a|bb"},
    {NULL},
};

static void bounds_are_checked_alike_for_text_and_json(void **state)
{
	struct bounded c = {0};
	char err[256];
	assert_int_equal(hop_opts_defaults(bounded_table, &c, err, sizeof(err)),
			 0);
	assert_int_equal(
	    hop_opts_set(bounded_table, &c, "n", "10", err, sizeof(err)), 0);
	assert_int_equal(c.n, 10);
	assert_int_equal(
	    hop_opts_set(bounded_table, &c, "n", "0", err, sizeof(err)),
	    -EINVAL);
	assert_string_equal(err, "option 'n': 0 is out of range (1..10)");
	assert_int_equal(c.n, 10); /* a refused value changes nothing */
	json_t *v = json_integer(-3);
	assert_int_equal(
	    hop_opts_set_json(bounded_table, &c, "n", v, err, sizeof(err)),
	    -EINVAL);
	assert_string_equal(err, "option 'n': -3 is out of range (1..10)");
	json_decref(v);
	assert_int_equal(
	    hop_opts_set(bounded_table, &c, "size", "1023", err, sizeof(err)),
	    -EINVAL);
	assert_string_equal(
	    err, "option 'size': 1023 is out of range (at least 1K)");
	assert_int_equal(
	    hop_opts_set(bounded_table, &c, "secs", "61m", err, sizeof(err)),
	    -EINVAL);
	assert_string_equal(err,
			    "option 'secs': 61m is out of range (at most 1h)");
	assert_int_equal(
	    hop_opts_set(bounded_table, &c, "secs", "60m", err, sizeof(err)),
	    0);
	assert_true(c.secs == 3600);
	hop_opts_free(bounded_table, &c);
}

static void choices_are_whole_words(void **state)
{
	struct bounded c = {0};
	char err[256];
	hop_opts_defaults(bounded_table, &c, err, sizeof(err));
	assert_int_equal(
	    hop_opts_set(bounded_table, &c, "mode", "bb", err, sizeof(err)), 0);
	assert_string_equal(c.mode, "bb");
	const char *bad[] = {"b", "", "a|bb", "bbb", "A"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(hop_opts_set(bounded_table, &c, "mode", bad[i],
					      err, sizeof(err)),
				 -EINVAL);
		assert_non_null(strstr(err, "is not one of a, bb"));
	}
	assert_string_equal(c.mode, "bb");
	hop_opts_free(bounded_table, &c);
}

static void a_default_out_of_range_is_refused(void **state)
{
	static const struct hop_option t[] = {
	    {"n", HOP_OPT_INT, "-1", 0, "a count", .min = "0"},
	    {NULL},
	};
	int64_t n = 0;
	char err[256];
	assert_int_equal(hop_opts_defaults(t, &n, err, sizeof(err)), -EINVAL);
}

static void help_shows_the_bounds(void **state)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	hop_opts_help(f, bounded_table, "");
	fclose(f);
	assert_non_null(strstr(text, "a count (default: 1; 1..10)\n"));
	assert_non_null(strstr(text, "a size (default: 1 KiB; at least 1K)\n"));
	assert_non_null(strstr(text, "a time (default: 1 s; at most 1h)\n"));
	assert_non_null(strstr(text, "a or bb (default: a)\n"));
	free(text);
}

static void defaults_in_words(void **state)
{
	static const struct hop_option t[] = {
	    {"a", HOP_OPT_SECONDS, "300"},
	    {"b", HOP_OPT_SECONDS, "250ms"},
	    {"c", HOP_OPT_SECONDS, "90"},
	    {"d", HOP_OPT_SECONDS, "2h"},
	    {"e", HOP_OPT_SIZE, "16M"},
	    {"f", HOP_OPT_SIZE, "1000"},
	    {"g", HOP_OPT_BOOL, "false"},
	    {"h", HOP_OPT_INT, "-1", .def_words = "the broker's"},
	    {"i", HOP_OPT_STR, NULL},
	};
	static const char *const want[] = {
	    "5 min",	  "250 ms", "90 s",	    "2 h", "16 MiB",
	    "1000 bytes", "off",    "the broker's", ""};
	char buf[64];
	for (size_t k = 0; k < sizeof(t) / sizeof(*t); k++) {
		hop_opts_default_words(&t[k], buf, sizeof(buf));
		assert_string_equal(buf, want[k]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(defaults_then_text),
	    cmocka_unit_test(errors_name_the_key),
	    cmocka_unit_test(dash_and_underscore_are_one_letter),
	    cmocka_unit_test(json_values),
	    cmocka_unit_test(json_arrays_where_asked),
	    cmocka_unit_test(bounds_are_checked_alike_for_text_and_json),
	    cmocka_unit_test(choices_are_whole_words),
	    cmocka_unit_test(a_default_out_of_range_is_refused),
	    cmocka_unit_test(help_shows_the_bounds),
	    cmocka_unit_test(defaults_in_words),
	};
	return cmocka_run_group_tests_name("opts", tests, NULL, NULL);
}
