/* wrk_reap_task.h: the per-task reaper of unsandboxed exec tasks
 * (wrk_reap.h): the code the reaper service runs in a copy of itself made by
 * clone(2) with CLONE_VM (its memory, not copied: a tenth of a fork's cost)
 * and CLONE_PARENT (the worker is the copy's parent), on a stack of its own.
 * Sharing the service's memory without being its thread, it calls no libc
 * function that allocates, locks, or writes errno or the thread descriptor:
 * system calls go through wrk_rawsys.h, and the only libc calls are clone(3)
 * and string functions (which read only). N.B. clone(3) writes errno when it
 * fails (no process could be made): the service's errno, which the service
 * reads for messages only.
 * Thread-safety: one slot per running reaper, written by the service before
 * the clone and then read by the reaper alone (but for tid, the kernel's).
 */
#ifndef MOAT_WRK_REAP_TASK_H
#define MOAT_WRK_REAP_TASK_H

#include <sched.h>
#include <sys/types.h>

struct wrk_reap_slot {
    /* the service's, before the clone */
    pid_t worker;              /* the reaper's parent; its death ends the task */
    int out_w, err_w;          /* the task's stdout and stderr (the reaper's copies) */
    int gate;                  /* its end of the socket pair to the service (wrk_reap.h) */
    int service_fds[2];        /* the service's socket and end of the gate: the
                                * reaper's copies are closed first, so that it
                                * sees the service's end as the service does */
    int pinned;                /* 1: sched_setaffinity to cpus */
    cpu_set_t cpus;
    const char *cwd;
    const char *cmd;           /* argv[0] as asked, for messages */
    char **argv;               /* argc + 1 entries, NULL-terminated; argv[-1] is spare,
                                * for the /bin/sh fallback */
    char **envp;               /* NULL-terminated */
    const char *path;          /* PATH from envp, or "/bin:/usr/bin" as execvp(3) */
    unsigned long long handled; /* signals (bit sig - 1) the service handles (a
                                 * sanitizer's): the reaper sets them back to
                                 * SIG_DFL, so its own end is by the signal */
    char *stack_top;           /* the reaper's stack, 16-byte aligned */
    char *spawn_stack_top;     /* the stack CMD's process runs on until execve */
    /* the kernel's: the reaper's pid from the clone (CLONE_PARENT_SETTID) until
     * it has ended (CLONE_CHILD_CLEARTID): the service reuses the slot at 0 */
    volatile pid_t tid;
    /* the kernel's: CMD's process from its clone until it has exec'd or
     * ended (CLONE_PARENT_SETTID, CLONE_CHILD_CLEARTID) */
    volatile pid_t spawn_tid;
    /* CMD's process before execve, for the reaper: why it could not be run */
    volatile int exec_errno;
};

/* wrk_reap_task_run: clone(3) entry of a per-task reaper; arg is its struct
 * wrk_reap_slot. Sets up, reports on the gate, waits for "go", runs CMD and
 * reaps the task as wrk_reap.h says. Never returns: ends with CMD's exit
 * code or signal, 127 when CMD was not found or setup failed, 126 when CMD
 * could not be executed, 137 when the
 * worker died. */
int wrk_reap_task_run(void *arg);

#endif
