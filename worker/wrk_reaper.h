/* wrk_reaper.h: the worker's handle on its reaper service, moat-reap
 * (wrk_reap.h), which starts every unsandboxed exec task under a reaper of
 * its own. Started on the first launch; started again on the next launch
 * after it ended (the worker reaps it: wrk_reaper_ended).
 * Thread-safety: one per worker, used from the worker's loop only.
 */
#ifndef MOAT_WRK_REAPER_H
#define MOAT_WRK_REAPER_H

#include <sched.h>
#include <stdbool.h>
#include <sys/types.h>

#include "shared/err.h"

struct wrk_reaper {
    char path[640]; /* bin/moat-reap */
    pid_t pid;      /* the service; 0 when none runs */
    int sock;       /* the worker's end of its socket; -1 when none */
    int reply_ms;   /* how long a launch waits for the answer (10,000) */
};

/* wrk_reaper_init: a handle for the service at path (no process yet). */
void wrk_reaper_init(struct wrk_reaper *r, const char *path);

/* wrk_reaper_launch: have the service start argv (argv[0] searched in envp's
 * PATH) with environment envp in directory cwd (which must exist), its stdout
 * and stderr the pipe write ends out_w and err_w (still the caller's to
 * close), pinned to cpus when not NULL. Starts the service first when none
 * runs (a service that ended since the last launch: once more).
 * Returns the task reaper's pid, a child of this process and its process
 * group leader, with *stage WRK_REAP_STARTED; or its pid with *stage
 * WRK_REAP_SETUP or WRK_REAP_AFFINITY and *errnum when its setup failed (it
 * exits 127 and the caller waits for it); or -1 with err when the service
 * could not be started or failed (a launch error; no task process is left
 * running). Blocks for one round trip (tens of microseconds), at most
 * r->reply_ms (then the service is killed and another started next time).
 */
pid_t wrk_reaper_launch(struct wrk_reaper *r, char *const argv[], char *const envp[], const char *cwd,
                        const cpu_set_t *cpus, int out_w, int err_w, int *stage, int *errnum,
                        struct err *err);

/* wrk_reaper_ended: whether pid, which the worker just reaped with status, was
 * the service; if so the handle forgets it (logged) and the next launch starts
 * another. */
bool wrk_reaper_ended(struct wrk_reaper *r, pid_t pid, int status);

/* wrk_reaper_stop: close the socket (the service sees EOF and exits; a task
 * it started runs on under its own reaper). */
void wrk_reaper_stop(struct wrk_reaper *r);

#endif
