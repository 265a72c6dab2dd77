/* exec_echo.c - the exec-mode worker of the benchmarks: copies its stdin
 * (or its first argument, as xargs and parallel pass items) to stdout. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char buf[4096];
	ssize_t n;
	if (argc > 1) {
		puts(argv[1]);
		return 0;
	}
	while ((n = read(0, buf, sizeof(buf))) > 0)
		if (write(1, buf, (size_t)n) != n)
			return 1;
	return 0;
}
