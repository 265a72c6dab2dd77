/* Unit tests for driver.c: specs split into name and target, labels
 * never carry a password, and the registries' shared code finds, builds
 * and lists drivers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/driver.h"

static void label_is(const char *spec, const char *want)
{
	char *got = hop_driver_label(spec);
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void test_label_masks_password(void **state)
{
	label_is("postgres://hop:s3cret@db:5432/q",
		 "postgres://hop:***@db:5432/q");
	label_is("postgres://u:a@h/d", "postgres://u:***@h/d");
	label_is("postgres://u:p@ss@h/d", "postgres://u:***@h/d");
	label_is("postgres://u:pw@h/d?x=a@b", "postgres://u:***@h/d?x=a@b");
}

static void test_label_keeps_the_rest(void **state)
{
	label_is("postgres://hop@db/q", "postgres://hop@db/q");
	label_is("postgres://db/q", "postgres://db/q");
	label_is("jsonl:items.jsonl", "jsonl:items.jsonl");
	label_is("dir:a:b@c", "dir:a:b@c");
}

static void test_spec_names(void **state)
{
	char *name, *target, err[128];
	assert_int_equal(hop_driver_spec("postgresql://h/d", &name, &target,
					 err, sizeof(err)),
			 0);
	assert_string_equal(name, "postgres");
	assert_string_equal(target, "postgresql://h/d");
	free(name);
	free(target);
	assert_int_equal(
	    hop_driver_spec("dir:in", &name, &target, err, sizeof(err)), 0);
	assert_string_equal(name, "dir");
	assert_string_equal(target, "in");
	free(name);
	free(target);
	assert_int_not_equal(
	    hop_driver_spec(":x", &name, &target, err, sizeof(err)), 0);
}

/* A registry of two drivers over one context, as sources/registry.c and
 * sinks/registry.c describe theirs. */
struct fake_ctx {
	char *path;
	int64_t depth;
};

static const struct hop_option fake_options[] = {
    {"path", HOP_OPT_STR, NULL, offsetof(struct fake_ctx, path), "a path"},
    {"depth", HOP_OPT_INT, "3", offsetof(struct fake_ctx, depth), "how deep",
     .min = "1", .max = "9"},
    {0},
};

static bool fake_entry(size_t i, struct hop_driver_desc *d)
{
	static const char *const names[] = {"alpha", "beta"};
	static const char *const forms[] = {"alpha:PATH", NULL};
	if (i >= 2)
		return false;
	*d = (struct hop_driver_desc){names + i,    names[i],
				      "a fake",	    forms[i],
				      fake_options, sizeof(struct fake_ctx)};
	return true;
}

static const struct hop_registry fake = {"source", fake_entry};

static void test_registry_builds_a_driver(void **state)
{
	struct hop_driver_desc d;
	char err[256], *label;
	void *ctx;

	assert_int_equal(hop_driver_new(&fake, "beta:some/where", &d, &ctx,
					&label, err, sizeof(err)),
			 0);
	assert_string_equal(d.name, "beta");
	assert_string_equal(label, "beta:some/where");
	struct fake_ctx *c = ctx;
	assert_string_equal(c->path, "some/where");
	assert_int_equal(c->depth, 3);
	hop_driver_free_ctx(d.options, ctx);
	free(label);
}

static void test_registry_names_the_nearest(void **state)
{
	struct hop_driver_desc d;
	char err[256], *label;
	void *ctx;

	assert_int_equal(hop_driver_new(&fake, "alhpa:x", &d, &ctx, &label, err,
					sizeof(err)),
			 -EINVAL);
	assert_null(ctx);
	assert_null(label);
	assert_string_equal(err,
			    "unknown source 'alhpa'; did you mean 'alpha'?");
	assert_true(hop_driver_find(&fake, "alpha", &d));
	assert_false(hop_driver_find(&fake, "gamma", &d));
}

static void test_registry_lists_forms(void **state)
{
	char buf[64];
	hop_driver_forms(&fake, buf, sizeof(buf));
	/* A driver without forms is named by its name. */
	assert_string_equal(buf, "alpha:PATH, beta");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_label_masks_password),
	    cmocka_unit_test(test_label_keeps_the_rest),
	    cmocka_unit_test(test_spec_names),
	    cmocka_unit_test(test_registry_builds_a_driver),
	    cmocka_unit_test(test_registry_names_the_nearest),
	    cmocka_unit_test(test_registry_lists_forms),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
