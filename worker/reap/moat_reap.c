/* moat_reap.c: moat-reap, the reaper service of unsandboxed exec tasks
 * (worker/wrk_reap.h). A program of its own, on libc alone and small, so that
 * the copy it makes of itself for each task costs little; the worker runs it
 * once as `moat-reap --serve FD WORKER_PID`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/wrk_reap.h"

int main(int argc, char **argv)
{
    char *end1 = NULL, *end2 = NULL;
    long fd = argc == 4 && strcmp(argv[1], "--serve") == 0 ? strtol(argv[2], &end1, 10) : -1;
    long worker = fd >= 0 ? strtol(argv[3], &end2, 10) : 0;
    if (fd < 0 || *end1 || end2 == NULL || *end2 || worker <= 1) {
        fprintf(stderr, "usage: moat-reap --serve FD WORKER_PID (started by moat-worker)\n");
        return 2;
    }
    return wrk_reap_serve((int)fd, (pid_t)worker);
}
