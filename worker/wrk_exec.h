/* wrk_exec.h: running one exec task as a child process and capturing its output.
 *
 * The child runs in its own process group (so a kill reaches everything it
 * started), dies with the worker (PR_SET_PDEATHSIG), reads /dev/null, and writes
 * stdout and stderr into pipes that the worker drains into buffers of at most
 * cap bytes each; beyond the cap bytes are read and dropped and the result is
 * marked truncated. Failures are told apart: the worker could not set the task
 * up (a launch error: the node is at fault) versus the command could not be
 * executed (exit status 127 not found, 126 not executable, as a shell: the
 * job is at fault).
 * Thread-safety: one wrk_proc per task, used from the worker's loop only.
 */
#ifndef MOAT_WRK_EXEC_H
#define MOAT_WRK_EXEC_H

#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "shared/err.h"
#include "worker/wrk_proctab.h"

struct wrk_buf {
    char *data;
    size_t len, cap_alloc;
};

struct wrk_proc {
    pid_t pid;             /* also the process group id */
    int out_fd, err_fd;    /* -1 once closed */
    struct wrk_buf out, err;
    size_t cap;            /* bytes kept per stream */
    bool truncated;
    bool exited;
    int status;            /* waitpid status once exited */
    bool sandboxed;        /* pid is the task's init (wrk_sandbox.h) */
    bool reaped;           /* pid is the task's reaper (wrk_reap.h), whose memory
                            * is the reaper service's, not the task's */
    int status_fd;         /* sandboxed: the init's status pipe; -1 once closed */
    /* once exited (wrk_exec_reaped): its resource usage, as wait4(2) gives it */
    double cpu_time;       /* user + system CPU seconds of it and all it waited for */
    uint64_t max_rss;      /* bytes: the peak resident memory of its largest process */
};

/* wrk_exec_start: fork and exec argv (argv[argc] == NULL, PATH searched) with
 * environment envp in directory cwd (created if missing), pinned to the CPUs
 * of cpus when not NULL (sched_setaffinity before execve; wrk_bind.h), else
 * on the worker's. On success the caller
 * owns *p and frees it with wrk_exec_release().
 * Errors: the launch failed (fork, pipes, cwd) -> -1 with err and *launch_error
 * true; the command could not be executed -> 0 with the child exiting 127 (not
 * found) or 126 (not executable) and the reason in its stderr. */
int wrk_exec_start(struct wrk_proc *p, char *const argv[], char *const envp[], const char *cwd,
                   const cpu_set_t *cpus, size_t cap, bool *launch_error, struct err *err);

struct wrk_reaper;

/* wrk_exec_start_reaped: like wrk_exec_start(), for an unsandboxed task: the
 * reaper service r starts it under a reaper of its own (wrk_reap.h), which
 * is p->pid (this process's child and the group leader); CMD runs below it
 * and dies with this worker. envp's PATH decides where argv[0] is found.
 * An empty argv is a launch error (EINVAL, "argv: empty"), as below. */
int wrk_exec_start_reaped(struct wrk_proc *p, struct wrk_reaper *r, char *const argv[],
                          char *const envp[], const char *cwd, const cpu_set_t *cpus, size_t cap,
                          bool *launch_error, struct err *err);

struct wrk_sandbox;

/* wrk_exec_start_sandboxed: like wrk_exec_start(), in the sandbox sb
 * (wrk_sandbox.h): cwd (under sb->state_dir) is created and given to the exec
 * user; p->pid is the task's init. A sandbox that cannot be set up is a launch
 * error. */
int wrk_exec_start_sandboxed(struct wrk_proc *p, const struct wrk_sandbox *sb, char *const argv[],
                             char *const envp[], const char *cwd, const cpu_set_t *cpus, size_t cap,
                             bool *launch_error, struct err *err);

/* wrk_exec_drain: read what fd (p->out_fd or p->err_fd) has without blocking; closes
 * it at EOF. */
void wrk_exec_drain(struct wrk_proc *p, int fd);

/* wrk_exec_signal: send sig to the task's whole process group. */
void wrk_exec_signal(const struct wrk_proc *p, int sig);

/* wrk_exec_kill: SIGKILL the task: every process of its tree in tab (read now
 * when tab is NULL), which holds those that left its process group (setsid),
 * and then the group. The group's SIGKILL alone would end an unsandboxed
 * task's reaper (wrk_reap.h) before it could kill such processes. */
void wrk_exec_kill(const struct wrk_proc *p, const struct wrk_proctab *tab);

/* wrk_exec_rss: bytes resident in memory (statm's resident pages, proc(5))
 * summed over the task's first process and all its descendants in tab (so a
 * process that left the task's process group still counts), but for an
 * unsandboxed task's reaper (p->reaped: CMD and below) or a sandboxed task's
 * init (p->sandboxed: the command and below; the init's pages are a copy of
 * the worker's); pages shared between them count once per process, as
 * Slurm's jobacct_gather/linux counts them. 0 when nothing runs. */
uint64_t wrk_exec_rss(const struct wrk_proctab *tab, const struct wrk_proc *p);

/* wrk_exec_reaped: record that p's child exited with status and resource usage
 * ru (wait4(2); NULL: none): drains and closes the pipes (a grandchild that
 * keeps them open does not hold the task). p->cpu_time is ru's user + system
 * time, which counts every process of the task that was waited for (the
 * reaper's or the init's, and theirs: all of them); p->max_rss is ru_maxrss,
 * the largest single process's peak (getrusage(2)), 0 for a sandboxed task:
 * Linux counts in a process's peak the memory it held before its execve,
 * which is the reaper service's (under 1 MiB) for an unsandboxed task and
 * the worker's resident memory at the fork for a rank (tens of MiB at most,
 * less than the shard a rank loads), but for a sandboxed task the init's,
 * a copy of the worker's that outgrows small tasks: those are measured by
 * sampling (wrk_exec_rss) alone. Sandboxed: the command's status as its init
 * reported it replaces the init's own. */
void wrk_exec_reaped(struct wrk_proc *p, int status, const struct rusage *ru);

/* wrk_exec_release: close fds and free buffers. */
void wrk_exec_release(struct wrk_proc *p);

/* wrk_exec_remove_tree: delete directory path and everything under it (no symlink
 * is followed). Best effort; returns -1 with err on the first failure. */
int wrk_exec_remove_tree(const char *path, struct err *err);

#endif
