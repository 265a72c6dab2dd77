/* word_count.c - a hopper worker in C, stream mode, on worker/hop_worker.h.
 *
 * The payload is a string (count its words), {"text": "..."} (count those)
 * or {"path": "..."} (count the words in that file); the result is
 * {"words": N}. Anything else is a permanent failure. Words are runs of
 * anything but ASCII whitespace, as in every example.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "worker/hop_worker.h"

static const char not_countable[] = "payload must be a string, or an object "
				    "with a \"text\" or \"path\" string";

struct counter {
	json_int_t words;
	bool in_word;
};

static void count(struct counter *c, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		bool space = isspace((unsigned char)p[i]);
		if (!space && !c->in_word)
			c->words++;
		c->in_word = !space;
	}
}

/* Returns 0, or -errno when the file cannot be read. */
static int count_file(struct counter *c, const char *path)
{
	char chunk[65536];
	size_t n;
	FILE *f = fopen(path, "rb");

	if (!f)
		return -errno;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		count(c, chunk, n);
	int rc = ferror(f) ? -EIO : 0;
	fclose(f);
	return rc;
}

static int word_count(const char *id, int attempt, json_t *payload,
		      json_t **result, char **error, bool *retry, void *arg)
{
	struct counter c = {0};
	json_t *text = json_object_get(payload, "text");
	json_t *path = json_object_get(payload, "path");
	int rc;

	(void)id, (void)attempt, (void)arg;
	if (json_is_string(payload))
		text = payload;
	if (json_is_string(text)) {
		count(&c, json_string_value(text), json_string_length(text));
	} else if (json_is_string(path)) {
		rc = count_file(&c, json_string_value(path));
		if (rc) {
			*retry = false;
			return hop_worker_fail(error, "cannot read %s: %s",
					       json_string_value(path),
					       strerror(-rc));
		}
	} else {
		*retry = false;
		return hop_worker_fail(error, "%s", not_countable);
	}
	*result = json_pack("{s:I}", "words", c.words);
	return 0;
}

int main(void)
{
	return hop_worker_run(word_count, NULL) ? 1 : 0;
}
