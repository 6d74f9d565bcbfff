/* Run a command as the child of this small process and write, to the file
 * named first, what wait4 says of that child alone: its CPU time (user and
 * system, in microseconds), its peak RSS (KiB) and its exit status.
 *
 * The measuring harness (measure.py) cannot fork the command itself: Linux
 * keeps the peak RSS of the memory a process replaces at exec, so a child
 * forked from a 40 MiB Python process reports at least 40 MiB. Forked from
 * this program, it starts from about 1 MiB.
 */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s RESULT COMMAND [ARG...]\n", argv[0]);
        return 2;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 2;
    }
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        perror(argv[2]);
        _exit(127);
    }
    int status;
    struct rusage usage;
    if (wait4(pid, &status, 0, &usage) < 0) {
        perror("wait4");
        return 2;
    }
    FILE *out = fopen(argv[1], "w");
    if (out == NULL) {
        perror(argv[1]);
        return 2;
    }
    fprintf(out, "%ld %ld %ld %d\n",
            (long)usage.ru_utime.tv_sec * 1000000L + (long)usage.ru_utime.tv_usec,
            (long)usage.ru_stime.tv_sec * 1000000L + (long)usage.ru_stime.tv_usec,
            usage.ru_maxrss,
            WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    return fclose(out) == 0 ? 0 : 2;
}
