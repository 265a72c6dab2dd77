/* driver.c - shared construction of sources and sinks. */
#include "driver.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "suggest.h"

int hop_driver_spec(const char *spec, char **name, char **target, char *err,
		    size_t errlen)
{
	const char *colon = strchr(spec, ':');
	size_t n = colon ? (size_t)(colon - spec) : strlen(spec);

	*name = *target = NULL;
	if (n == 0) {
		snprintf(err, errlen, "'%s': expected NAME or NAME:TARGET",
			 spec);
		return -EINVAL;
	}
	/* libpq takes both spellings of its scheme. */
	if (n == 10 && strncmp(spec, "postgresql", n) == 0)
		n = 8;
	*name = strndup(spec, n);
	if (colon && strncmp(colon, "://", 3) == 0)
		*target = strdup(spec); /* a URL keeps its scheme */
	else if (colon && colon[1])
		*target = strdup(colon + 1);
	if (!*name || (colon && colon[1] && !*target)) {
		free(*name);
		*name = NULL;
		return -ENOMEM;
	}
	return 0;
}

char *hop_driver_label(const char *spec)
{
	/* Room for a password shorter than its mask. */
	char *label = malloc(strlen(spec) + 4);
	if (!label)
		return NULL;
	strcpy(label, spec);
	char *auth = strstr(label, "://");
	if (!auth)
		return label;
	auth += 3;
	/* user:password@host: the last @ before the path ends the userinfo. */
	size_t hostpart = strcspn(auth, "/?#");
	char *at = NULL;
	for (char *p = auth; p < auth + hostpart; p++)
		if (*p == '@')
			at = p;
	char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
	if (!colon)
		return label;
	memmove(colon + 4, at, strlen(at) + 1);
	memcpy(colon + 1, "***", 3);
	return label;
}

void *hop_driver_ctx(const struct hop_option *t, size_t size,
		     const char *target, char *err, size_t errlen)
{
	void *ctx = calloc(1, size);
	if (!ctx) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (hop_opts_defaults(t, ctx, err, errlen))
		goto err_free;
	if (target && t->key &&
	    hop_opts_set(t, ctx, t->key, target, err, errlen))
		goto err_free;
	return ctx;

err_free:
	hop_opts_free(t, ctx);
	free(ctx);
	return NULL;
}

void hop_driver_unknown(const char *kind, const char *spec, const char *name,
			const char *const *names, char *err, size_t errlen)
{
	struct hop_suggest s;
	struct stat st;
	size_t n = strlen(spec);
	bool bare = !strchr(spec, ':');
	const char *fix = NULL;

	/* A bare path: the driver its form points to. */
	if (bare &&
	    (!strcmp(spec, "-") || (n > 6 && !strcmp(spec + n - 6, ".jsonl")) ||
	     (n > 7 && !strcmp(spec + n - 7, ".ndjson"))))
		fix = "jsonl:";
	else if (bare && stat(spec, &st) == 0 && S_ISDIR(st.st_mode))
		fix = "dir:";
	if (fix) {
		snprintf(err, errlen, "unknown %s '%s'; did you mean '%s%s'?",
			 kind, spec, fix, spec);
		return;
	}
	hop_suggest_init(&s, name);
	for (; *names; names++)
		hop_suggest_offer(&s, *names);
	if (hop_suggest_best(&s))
		snprintf(err, errlen, "unknown %s '%s'; did you mean '%s'?",
			 kind, name, hop_suggest_best(&s));
	else
		snprintf(err, errlen, "unknown %s '%s' (see hopper help %ss)",
			 kind, name, kind);
}

bool hop_driver_find(const struct hop_registry *r, const char *name,
		     struct hop_driver_desc *d)
{
	for (size_t i = 0; r->entry(i, d); i++)
		if (strcmp(d->name, name) == 0)
			return true;
	return false;
}

/* Writes why no driver of r is called name. */
static void unknown(const struct hop_registry *r, const char *spec,
		    const char *name, char *err, size_t errlen)
{
	struct hop_driver_desc d;
	size_t n = 0;

	while (r->entry(n, &d))
		n++;
	const char **names = calloc(n + 1, sizeof(*names));
	if (!names) {
		snprintf(err, errlen, "out of memory");
		return;
	}
	for (size_t i = 0; i < n && r->entry(i, &d); i++)
		names[i] = d.name;
	hop_driver_unknown(r->kind, spec, name, names, err, errlen);
	free(names);
}

int hop_driver_new(const struct hop_registry *r, const char *spec,
		   struct hop_driver_desc *d, void **ctx, char **label,
		   char *err, size_t errlen)
{
	char *name, *target;
	int rc = hop_driver_spec(spec, &name, &target, err, errlen);

	*ctx = NULL;
	*label = NULL;
	if (rc)
		return rc;
	rc = -EINVAL;
	if (!hop_driver_find(r, name, d)) {
		unknown(r, spec, name, err, errlen);
		goto out;
	}
	if (!(*label = hop_driver_label(spec))) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	*ctx = hop_driver_ctx(d->options, d->ctx_size, target, err, errlen);
	if (!*ctx) {
		free(*label);
		*label = NULL;
		goto out;
	}
	rc = 0;
out:
	free(name);
	free(target);
	return rc;
}

void hop_driver_free_ctx(const struct hop_option *t, void *ctx)
{
	if (!ctx)
		return;
	hop_opts_free(t, ctx);
	free(ctx);
}

void hop_driver_forms(const struct hop_registry *r, char *buf, size_t n)
{
	struct hop_driver_desc d;
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; r->entry(i, &d) && used < n; i++) {
		int w = snprintf(buf + used, n - used, "%s%s", i ? ", " : "",
				 d.forms ? d.forms : d.name);
		if (w < 0)
			break;
		used += (size_t)w;
	}
}

void hop_driver_help(FILE *out, const struct hop_registry *r)
{
	struct hop_driver_desc d;

	for (size_t i = 0; r->entry(i, &d); i++) {
		fprintf(out, "%s: %s\n", d.name, d.summary);
		hop_opts_help(out, d.options, "    ");
	}
	fprintf(out,
		"\nOn the command line: --%s NAME:TARGET sets the first "
		"option; --%s-opt KEY=VALUE the others.\n",
		r->kind, r->kind);
}
