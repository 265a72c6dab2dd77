/* echo_worker.c - the trivial persistent worker of the benchmarks: what a
 * user writes first in C. It reads a line, answers it with stdio and
 * flushes, one item at a time. No JSON library: the envelope starts with
 * {"id":"...", which is all it needs.
 */
#include <stdio.h>
#include <string.h>

int main(void)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	while ((n = getline(&line, &cap, stdin)) > 0) {
		char *id = strstr(line, "\"id\":\"");
		if (!id)
			continue;
		id += 6;
		char *end = strchr(id, '"');
		if (!end)
			continue;
		printf("{\"id\":\"%.*s\",\"ok\":true,\"result\":null}\n",
		       (int)(end - id), id);
		fflush(stdout);
	}
	return 0;
}
