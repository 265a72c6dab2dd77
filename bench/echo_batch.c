/* echo_batch.c - the echo worker of bench/echo_worker.c, answering in
 * batches: it reads what its stdin holds, answers every whole line in it,
 * and writes those answers with one write before it reads again. An answer
 * is never held while the worker waits for input (the contract's rule), but
 * when the coordinator has sent several items at once (prefetch > 1) their
 * answers go back in one system call rather than one each. With one item
 * at a time (prefetch 1, or Benthos's `subprocess`) it does what
 * echo_worker does: one read and one write per item.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IN_SIZE (1 << 16)

static char in[IN_SIZE], *out;
static size_t out_len, out_cap;

static int put(const char *s, size_t n)
{
	if (out_len + n > out_cap) {
		size_t cap = out_cap ? out_cap * 2 : IN_SIZE;
		while (cap < out_len + n)
			cap *= 2;
		char *p = realloc(out, cap);
		if (!p)
			return -1;
		out = p;
		out_cap = cap;
	}
	memcpy(out + out_len, s, n);
	out_len += n;
	return 0;
}

static int flush_out(void)
{
	for (size_t o = 0; o < out_len;) {
		ssize_t k = write(1, out + o, out_len - o);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		o += (size_t)k;
	}
	out_len = 0;
	return 0;
}

/* Answers one envelope line (without its newline). */
static int answer(const char *line, size_t len)
{
	static const char key[] = "\"id\":\"";
	const char *id = memmem(line, len, key, sizeof(key) - 1);
	if (!id)
		return 0;
	id += sizeof(key) - 1;
	const char *end = memchr(id, '"', (size_t)(line + len - id));
	if (!end)
		return 0;
	return put("{\"id\":\"", 7) || put(id, (size_t)(end - id)) ||
		       put("\",\"ok\":true,\"result\":null}\n", 27)
		   ? -1
		   : 0;
}

int main(void)
{
	size_t have = 0;

	for (;;) {
		if (have == sizeof(in)) /* a line longer than the buffer */
			return 1;
		ssize_t n = read(0, in + have, sizeof(in) - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
		size_t start = 0;
		char *nl;
		while ((nl = memchr(in + start, '\n', have - start))) {
			if (answer(in + start, (size_t)(nl - (in + start))))
				return 1;
			start = (size_t)(nl - in) + 1;
		}
		memmove(in, in + start, have - start);
		have -= start;
		/* Nothing whole is left to answer: send what is ready before
		 * waiting for more. */
		if (flush_out())
			return 1;
	}
	return flush_out() ? 1 : 0;
}
