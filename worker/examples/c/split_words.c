/* split_words.c - a hopper worker in C that emits: a splitter and a filter,
 * on worker/hop_worker.h.
 *
 * The payload is a string or {"text": "..."}; each word becomes one output,
 * {"word": W, "n": I} (I from 0), on the port "number" when the word is all
 * ASCII digits and "word" otherwise, with the word as its key (a sharded
 * stage after it sees every copy of a word in one shard). Text with no
 * words is dropped. Anything else is a permanent failure. Words are runs of
 * anything but ASCII whitespace, as in every example.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "worker/hop_worker.h"

static const char not_text[] =
    "payload must be a string, or an object with a \"text\" string";

/* Emits the word p[0..n) as output number i. Returns 0 or -errno. */
static int emit_word(const char *id, const char *p, size_t n, json_int_t i)
{
	char *word = strndup(p, n);
	bool digits = n > 0;

	if (!word)
		return -ENOMEM;
	for (size_t k = 0; k < n; k++)
		digits &= p[k] >= '0' && p[k] <= '9';
	json_t *out = json_pack("{s:s%, s:I}", "word", p, n, "n", i);
	int rc =
	    out ? hop_worker_emit(id, out, digits ? "number" : "word", word)
		: -ENOMEM;
	json_decref(out);
	free(word);
	return rc;
}

static int split_words(const char *id, int attempt, json_t *payload,
		       json_t **result, char **error, bool *retry, void *arg)
{
	json_t *text = json_is_string(payload)
			   ? payload
			   : json_object_get(payload, "text");
	json_int_t words = 0;

	(void)attempt, (void)result, (void)arg;
	if (!json_is_string(text)) {
		*retry = false;
		return hop_worker_fail(error, "%s", not_text);
	}
	const char *p = json_string_value(text);
	size_t len = json_string_length(text);
	for (size_t i = 0; i < len;) {
		while (i < len && isspace((unsigned char)p[i]))
			i++;
		size_t start = i;
		while (i < len && !isspace((unsigned char)p[i]))
			i++;
		if (i == start)
			break;
		int rc = emit_word(id, p + start, i - start, words++);
		if (rc)
			return hop_worker_fail(error, "cannot emit: %s",
					       strerror(-rc));
	}
	if (words == 0)
		hop_worker_drop();
	return 0;
}

int main(void)
{
	return hop_worker_run(split_words, NULL) ? 1 : 0;
}
