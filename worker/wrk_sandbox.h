/* wrk_sandbox.h: the exec sandbox: namespaces, an unprivileged user, limits.
 *
 * An exec task in the sandbox is the grandchild of a small init that the worker
 * clones (fork-style: CLONE_VM cannot be used, the init outlives the clone call)
 * into new network, mount, PID, IPC and UTS namespaces:
 *
 *   moat-worker --clone(CLONE_NEW*)--> init: PID 1 of the task's namespace, root,
 *        |                              PR_SET_PDEATHSIG SIGKILL, its own process group
 *        |                            --vfork--> command: exec_user, own process group,
 *        +-- status pipe <-- init                no_new_privs, rlimits, scrubbed env
 *
 * (The command is cloned CLONE_VM | CLONE_VFORK, as posix_spawn does: no page
 * tables of the init's memory, a copy of the worker's, are copied for it.)
 * Before the command starts the init makes mount propagation private, mounts
 * tmpfs on /tmp, /var/tmp and /dev/shm, covers state_dir with a tmpfs that holds
 * only the task's own directory (a bind mount of <state_dir>/tasks/J.I.A, which
 * the worker chowns to exec_user), mounts a /proc of the new PID namespace and
 * brings loopback up (the namespace's only interface). It then forwards every
 * signal it gets (SIGTERM from a cancel or a time limit) to all processes of the
 * namespace, reaps them, and when the command exits writes its wait status to the
 * status pipe and exits: the PID namespace, and whatever the command left in it,
 * dies with its init. So the kill semantics of the unsandboxed path hold: a signal
 * to the task's process group (the init's) reaches every process of the task
 * once; SIGKILL ends the init and with it the namespace; the worker's death kills
 * the init (PR_SET_PDEATHSIG).
 *
 * Limits: RLIMIT_AS (exec_mem_limit), RLIMIT_NPROC (exec_max_procs: N.B. the
 * kernel counts every process of exec_user on the node, all tasks together),
 * RLIMIT_NOFILE (exec_max_files), RLIMIT_CPU (exec_cpu_limit).
 * Thread-safety: wrk_sandbox_init/probe once at start; spawn from the worker's loop.
 */
#ifndef MOAT_WRK_SANDBOX_H
#define MOAT_WRK_SANDBOX_H

#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "shared/err.h"
#include "worker/wrk_cfg.h"

enum wrk_sandbox_mode {
    WRK_SANDBOX_NAMESPACES,  /* exec tasks run sandboxed */
    WRK_SANDBOX_OFF,         /* configured off: exec tasks run as the worker's user, unconfined */
    WRK_SANDBOX_UNAVAILABLE, /* required but the probe failed: exec tasks are refused */
    WRK_SANDBOX_MODE_COUNT
};

struct wrk_sandbox {
    enum wrk_sandbox_mode mode;
    char why[ERR_MSG_MAX];    /* UNAVAILABLE: what the probe found */
    char user[64];
    uid_t uid;
    gid_t gid;
    uint64_t mem;             /* RLIMIT_AS bytes; 0 = none */
    uint64_t procs, files;    /* RLIMIT_NPROC, RLIMIT_NOFILE */
    uint64_t cpu;             /* RLIMIT_CPU seconds; 0 = none */
    uint64_t tmp_size;        /* bytes of each private tmpfs */
    char state_dir[PATH_MAX]; /* absolute, no trailing '/' */
};

/* wrk_sandbox_mode_name: "namespaces", "off", "unavailable" (the REGISTER field). */
const char *wrk_sandbox_mode_name(enum wrk_sandbox_mode m);

/* wrk_sandbox_init: fill *sb from the configuration: resolve exec_user to a uid
 * and gid (here, not in the child), state_dir to an absolute path (it must
 * exist), the limits (exec_mem_limit 0: node_mem); then, unless exec_sandbox is
 * "off", probe (wrk_sandbox_probe) and set mode NAMESPACES or UNAVAILABLE with
 * the reason in sb->why. Call before any thread starts.
 * EINVAL: a bad exec_sandbox value or an unknown exec_user (a configuration
 * error: the worker should not start); ENOENT: state_dir missing. */
int wrk_sandbox_init(struct wrk_sandbox *sb, const struct wrk_cfg *cfg, uint64_t node_mem,
                     struct err *err);

/* wrk_sandbox_probe: can this process create the namespaces and mounts a task
 * needs? Clones a child that does the set-up steps and exits. 0, or -1 with err
 * naming the step that failed (EPERM, ENOSYS, ...). */
int wrk_sandbox_probe(const struct wrk_sandbox *sb, struct err *err);

/* wrk_sandbox_drop_ids: in a process cloned from the (multi-threaded)
 * worker, become uid and gid with gid as the only supplementary group, by
 * the raw system calls (see the .c). NULL on success, else the step that
 * failed ("setgroups", "setgid", "setuid") with errno set. Async-signal-safe. */
const char *wrk_sandbox_drop_ids(uid_t uid, gid_t gid);

/* wrk_sandbox_envp: the scrubbed environment of a task: the task's own
 * variables (the DISPATCH's env: MOAT_* and the job's --env; the binding's
 * CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER, wrk_bind.h), then PATH=/usr/bin:/bin,
 * HOME=home, LANG=C.UTF-8, TMPDIR=/tmp unless the task's own name them; none
 * of the worker's. One allocation: caller frees with free(). NULL: ENOMEM. */
char **wrk_sandbox_envp(char *const task_env[], const char *home);

/* wrk_sandbox_spawn: start argv (PATH searched) in the sandbox with environment
 * envp, in directory cwd (an existing directory under sb->state_dir), pinned to
 * the CPUs of cpus when not NULL (wrk_bind.h), stdout and
 * stderr to out_w and err_w (the caller closes its copies). Returns the init's
 * pid, which is also the task's process group, with *status_fd the read end of
 * the status pipe (non-blocking, close-on-exec: read it with
 * wrk_sandbox_status_read() once the init is reaped); or -1 with err when the
 * sandbox could not be set up (a launch error: the node is at fault). A command
 * that cannot be executed is not an error here: it exits 127 (not found) or
 * 126 (not executable) with the reason on its stderr. */
pid_t wrk_sandbox_spawn(const struct wrk_sandbox *sb, char *const argv[], char *const envp[],
                        const char *cwd, const cpu_set_t *cpus, int out_w, int err_w, int *status_fd,
                        struct err *err);

/* wrk_sandbox_status_read: the command's wait status as the init reported it
 * before exiting. false when there is none (the init was killed: its own status
 * stands). */
bool wrk_sandbox_status_read(int status_fd, int *status);

#endif
