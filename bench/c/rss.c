/*
 * Runs a program and prints its peak resident set size (ru_maxrss, KiB) on
 * stderr as "RSS=<kib>", like `/usr/bin/time -f %M`. A small C parent keeps
 * the pre-exec copy of the child small (Linux carries the high-water mark
 * across exec, so forking from Python would report Python's size).
 * Usage: rss PROGRAM [ARGS...]; exits with the program's status.
 */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: rss PROGRAM [ARGS...]\n");
		return 2;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return 2;
	}
	if (pid == 0) {
		execvp(argv[1], argv + 1);
		perror("exec");
		_exit(127);
	}
	int status;
	struct rusage ru;
	if (wait4(pid, &status, 0, &ru) < 0) {
		perror("wait4");
		return 2;
	}
	fprintf(stderr, "RSS=%ld\n", ru.ru_maxrss);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
