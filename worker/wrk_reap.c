/* wrk_reap.c: the reaper of unsandboxed exec tasks (see wrk_reap.h). */
#include "worker/wrk_reap.h"

#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "worker/wrk_proctab.h"

extern char **environ;

/* kill_task: SIGKILL every process of the task but this one, which is its
 * process tree (this being a subreaper, an orphan of the task is reparented
 * here, not to init), and reap them. */
static void kill_task(void)
{
    pid_t self = getpid();
    for (int round = 0; round < 4; round++) { /* a fork racing the scan: look again */
        struct wrk_proctab tab;
        wrk_proctab_read(&tab);
        size_t n = wrk_proctab_kill_tree(&tab, self, 0);
        wrk_proctab_free(&tab);
        if (n == 0)
            break;
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
    }
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}

/* has_children: whether this process still has a child, from
 * /proc/self/task/PID/children (proc(5); CONFIG_PROC_CHILDREN): one small read,
 * where the common case (CMD left nothing behind) needs no scan of /proc.
 * True when the file cannot be read, so that the scan decides. */
static bool has_children(void)
{
    char path[64], c;
    snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)getpid());
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return true;
    size_t n = fread(&c, 1, 1, f);
    fclose(f);
    return n == 1;
}

/* spawn_sh: start /bin/sh FILE ARG... for cmd = {FILE, ARG..., NULL}, FILE
 * found as posix_spawnp found it (in PATH when it has no '/'). Returns
 * posix_spawn's error, ENOEXEC when the file is not found again. */
static int spawn_sh(pid_t *pid, const posix_spawnattr_t *attr, char *const cmd[])
{
    char found[4096];
    const char *file = cmd[0];
    if (strchr(file, '/') == NULL) {
        const char *path = getenv("PATH");
        file = NULL;
        for (const char *p = path ? path : "/usr/bin:/bin"; p && !file;) {
            const char *end = strchr(p, ':');
            int dlen = end ? (int)(end - p) : (int)strlen(p);
            int n = snprintf(found, sizeof found, "%.*s/%s", dlen ? dlen : 1, dlen ? p : ".", cmd[0]);
            if (n > 0 && (size_t)n < sizeof found && access(found, X_OK) == 0)
                file = found;
            p = end ? end + 1 : NULL;
        }
        if (file == NULL)
            return ENOEXEC;
    }
    size_t argc = 0;
    while (cmd[argc])
        argc++;
    char **sh = calloc(argc + 2, sizeof *sh);
    if (sh == NULL)
        return ENOMEM;
    sh[0] = "/bin/sh";
    sh[1] = (char *)file;
    for (size_t i = 1; i < argc; i++)
        sh[i + 1] = cmd[i];
    int rc = posix_spawn(pid, "/bin/sh", NULL, attr, sh, environ);
    free(sh);
    return rc;
}

int wrk_reap_main(int argc, char **argv)
{
    if (argc < 3 || strcmp(argv[0], "--reap") != 0 || strcmp(argv[1], "--") != 0) {
        fprintf(stderr, "usage: moat-reap --reap -- CMD [ARG...]\n");
        return 2;
    }
    pid_t worker = getppid();
    /* Every catchable signal blocked and taken with sigwaitinfo: one the task
     * sends its own group (kill -USR2 0, kill -QUIT 0) is for CMD, and must
     * not end the reaper while CMD runs on. N.B. the worker's spawn set
     * PDEATHSIG to SIGKILL: it becomes SIGUSR1, which the reaper acts on, and
     * a worker that died in between is seen in getppid(). */
    sigset_t set, old;
    sigfillset(&set);
    sigdelset(&set, SIGKILL);
    sigdelset(&set, SIGSTOP);
    sigdelset(&set, SIGSEGV);
    sigdelset(&set, SIGBUS);
    sigdelset(&set, SIGFPE);
    sigdelset(&set, SIGILL);
    sigprocmask(SIG_BLOCK, &set, &old);
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0 || prctl(PR_SET_PDEATHSIG, SIGUSR1) != 0) {
        fprintf(stderr, "moat: reaper: prctl: %s\n", strerror(errno));
        return 127;
    }
    if (getppid() != worker)
        return 127; /* the worker is gone already */
    /* CMD in the task's process group with the signal mask the worker gave
     * (posix_spawn: vfork speed, which matters at a thousand tasks a second;
     * the subreaper mark is not inherited). A SIGKILL of the group after
     * kill_grace ends CMD and the reaper together. */
    posix_spawnattr_t attr;
    sigset_t all;
    sigfillset(&all);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setsigmask(&attr, &old);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t cmd;
    int rc = posix_spawnp(&cmd, argv[2], NULL, &attr, argv + 2, environ);
    if (rc == ENOEXEC) /* a script without #!: /bin/sh runs it, as execvp does */
        rc = spawn_sh(&cmd, &attr, argv + 2);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        fprintf(stderr, "moat: cannot execute %s: %s\n", argv[2], strerror(rc));
        return 127;
    }
    int status = 0;
    bool ended = false, worker_gone = false;
    while (!ended && !worker_gone) {
        siginfo_t si;
        int sig = sigwaitinfo(&set, &si);
        if (sig == SIGUSR1 && getppid() != worker) {
            worker_gone = true; /* the parent-death signal (a task's own SIGUSR1 is for CMD) */
        } else if (sig == SIGCHLD) {
            pid_t pid;
            int st;
            while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
                if (pid == cmd) {
                    status = st;
                    ended = true;
                }
        } /* anything else sent to the group (SIGTERM on cancel...) reached CMD itself */
    }
    /* CMD's leftovers were reparented here when their parents ended */
    if (worker_gone || has_children())
        kill_task();
    if (worker_gone)
        _exit(137);
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        signal(sig, SIG_DFL);
        sigset_t one;
        sigemptyset(&one);
        sigaddset(&one, sig);
        sigprocmask(SIG_UNBLOCK, &one, NULL);
        raise(sig);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 127;
}
