/* split_worker.c - the splitter of the stages benchmark: for each item it
 * emits N children (argv[1], 1000000 by default), each {"id":ID,"emit":K},
 * then answers ok. Stream mode; stdio buffers the emits, the answer is
 * flushed. No JSON library: the envelope starts with {"id":"...".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	long count = argc > 1 ? strtol(argv[1], NULL, 10) : 1000000;
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
		int len = (int)(end - id);
		for (long k = 0; k < count; k++)
			printf("{\"id\":\"%.*s\",\"emit\":%ld}\n", len, id, k);
		printf("{\"id\":\"%.*s\",\"ok\":true,\"result\":null}\n", len,
		       id);
		fflush(stdout);
	}
	return 0;
}
