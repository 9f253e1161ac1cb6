/* wrk_exec.c: fork/exec of exec tasks, output capture, process-group kill. */
#include "worker/wrk_exec.h"

#include "worker/wrk_reap.h"
#include "worker/wrk_reaper.h"
#include "worker/wrk_sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* The child runs on its own stack in the parent's memory (CLONE_VM | CLONE_VFORK,
 * as posix_spawn does): no page tables are copied and the parent sleeps until the
 * child has called execve or died, so the child reports a failure by writing into
 * this struct. N.B. the child may only make system calls: no malloc, no stdio. */
enum { STAGE_NONE, STAGE_SETUP, STAGE_AFFINITY, STAGE_EXEC };

struct spawn_args {
    char *const *argv, *const *envp;
    const char *cwd;
    const cpu_set_t *cpus; /* NULL: the worker's */
    int out_w, err_w;
    pid_t parent;
    sigset_t mask;      /* the worker's mask, restored to empty in the child */
    int stage, errnum;  /* written by the child on failure */
};

#define SPAWN_STACK (256 * 1024)

static int spawn_child(void *arg)
{
    struct spawn_args *a = arg;
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != a->parent)
        _exit(127); /* the worker died between clone and prctl */
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    if (a->cpus && sched_setaffinity(0, sizeof *a->cpus, a->cpus) != 0) {
        a->stage = STAGE_AFFINITY;
        a->errnum = errno;
        _exit(127);
    }
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(a->out_w, 1) < 0 || dup2(a->err_w, 2) < 0 ||
        chdir(a->cwd) != 0) {
        a->stage = STAGE_SETUP;
        a->errnum = errno;
        _exit(127);
    }
    sigprocmask(SIG_SETMASK, &none, NULL);
    execvpe(a->argv[0], a->argv, a->envp);
    a->stage = STAGE_EXEC;
    a->errnum = errno;
    /* as a POSIX shell: 127 not found, 126 found but not executable */
    _exit(a->errnum == ENOENT || a->errnum == ENOTDIR || a->errnum == ENAMETOOLONG ? 127 : 126);
}

/* pipes_close: whichever ends of out and er are open; all -1 after. */
static void pipes_close(int out[2], int er[2])
{
    for (int i = 0; i < 2; i++) {
        if (out[i] >= 0)
            close(out[i]);
        if (er[i] >= 0)
            close(er[i]);
        out[i] = er[i] = -1;
    }
}

/* launch_begin: *p emptied for a task whose streams keep at most cap bytes,
 * *launch_error true until the task runs, cwd made (0700) and the stdout and
 * stderr pipes made (close-on-exec). 0, or -1 with err and nothing open. */
static int launch_begin(struct wrk_proc *p, size_t cap, bool *launch_error, const char *cwd,
                        int out[2], int er[2], struct err *err)
{
    memset(p, 0, sizeof *p);
    p->out_fd = p->err_fd = p->status_fd = -1;
    p->cap = cap;
    *launch_error = true;
    out[0] = out[1] = er[0] = er[1] = -1;
    if (mkdir(cwd, 0700) != 0 && errno != EEXIST)
        return err_set(err, errno, "task directory %s: %s", cwd, strerror(errno));
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(er, O_CLOEXEC) != 0) {
        err_set(err, errno, "pipe: %s", strerror(errno));
        pipes_close(out, er);
        return -1;
    }
    return 0;
}

/* launch_adopt: pid runs with the pipes' write ends: those are closed here
 * and the read ends become p's, non-blocking. */
static void launch_adopt(struct wrk_proc *p, pid_t pid, int out[2], int er[2])
{
    close(out[1]);
    close(er[1]);
    p->pid = pid;
    p->out_fd = out[0];
    p->err_fd = er[0];
    fcntl(p->out_fd, F_SETFL, O_NONBLOCK);
    fcntl(p->err_fd, F_SETFL, O_NONBLOCK);
}

/* setup_failed: the task's first process, p->pid, could not set itself up
 * (pinning to cpus when affinity, else its descriptors or directory) with
 * errnum and exits: it is waited for and p released. Returns -1 with err. */
static int setup_failed(struct wrk_proc *p, bool affinity, int errnum, const cpu_set_t *cpus,
                        const char *cwd, struct err *err)
{
    int status;
    waitpid(p->pid, &status, 0);
    wrk_exec_release(p);
    p->pid = 0;
    if (affinity)
        return err_set(err, errnum, "task setup: pinning to its %d CPUs (cpu_bind): %s",
                       cpus ? CPU_COUNT(cpus) : 0, strerror(errnum));
    return err_set(err, errnum, "task setup in %s: %s", cwd, strerror(errnum));
}

int wrk_exec_start(struct wrk_proc *p, char *const argv[], char *const envp[], const char *cwd,
                   const cpu_set_t *cpus, size_t cap, bool *launch_error, struct err *err)
{
    static char *stack;
    int out[2], er[2];
    if (launch_begin(p, cap, launch_error, cwd, out, er, err) != 0)
        return -1;
    if (stack == NULL) {
        stack = mmap(NULL, SPAWN_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK,
                     -1, 0);
        if (stack == MAP_FAILED) {
            stack = NULL;
            pipes_close(out, er);
            return err_set(err, errno, "spawn stack: %s", strerror(errno));
        }
    }
    struct spawn_args a = {.argv = argv, .envp = envp, .cwd = cwd, .cpus = cpus, .out_w = out[1],
                           .err_w = er[1], .parent = getpid()};
    /* Block every signal across clone so no handler runs on the child's stack. */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &a.mask);
    pid_t pid = clone(spawn_child, stack + SPAWN_STACK, CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
    int clone_errno = errno;
    pthread_sigmask(SIG_SETMASK, &a.mask, NULL);
    if (pid < 0) {
        pipes_close(out, er);
        return err_set(err, clone_errno, "clone: %s", strerror(clone_errno));
    }
    setpgid(pid, pid); /* also in the parent, so a kill right away reaches the group */
    launch_adopt(p, pid, out, er);
    if (a.stage == STAGE_SETUP || a.stage == STAGE_AFFINITY)
        return setup_failed(p, a.stage == STAGE_AFFINITY, a.errnum, cpus, cwd, err);
    *launch_error = false;
    if (a.stage == STAGE_EXEC) {
        char line[300];
        int len = snprintf(line, sizeof line, "moat: cannot execute %s: %s\n", argv[0],
                           strerror(a.errnum));
        struct wrk_buf *b = &p->err;
        b->data = malloc((size_t)len + 1);
        if (b->data) {
            memcpy(b->data, line, (size_t)len);
            b->len = (size_t)len;
            b->cap_alloc = (size_t)len + 1;
        }
    }
    return 0;
}

int wrk_exec_start_reaped(struct wrk_proc *p, struct wrk_reaper *r, char *const argv[],
                          char *const envp[], const char *cwd, const cpu_set_t *cpus, size_t cap,
                          bool *launch_error, struct err *err)
{
    int out[2], er[2];
    if (argv == NULL || argv[0] == NULL) {
        *launch_error = true;
        return err_set(err, EINVAL, "argv: empty");
    }
    if (launch_begin(p, cap, launch_error, cwd, out, er, err) != 0)
        return -1;
    int stage = WRK_REAP_STARTED, errnum = 0;
    pid_t pid = wrk_reaper_launch(r, argv, envp, cwd, cpus, out[1], er[1], &stage, &errnum, err);
    if (pid < 0) {
        pipes_close(out, er);
        return -1;
    }
    launch_adopt(p, pid, out, er);
    p->reaped = true;
    if (stage != WRK_REAP_STARTED)
        return setup_failed(p, stage == WRK_REAP_AFFINITY, errnum, cpus, cwd, err);
    *launch_error = false;
    return 0;
}

int wrk_exec_start_sandboxed(struct wrk_proc *p, const struct wrk_sandbox *sb, char *const argv[],
                             char *const envp[], const char *cwd, const cpu_set_t *cpus, size_t cap,
                             bool *launch_error, struct err *err)
{
    int out[2], er[2];
    if (argv == NULL || argv[0] == NULL) { /* the sandboxed child would look up NULL */
        *launch_error = true;
        return err_set(err, EINVAL, "argv: empty");
    }
    if (launch_begin(p, cap, launch_error, cwd, out, er, err) != 0)
        return -1;
    int status_fd;
    pid_t pid = -1;
    if (chown(cwd, sb->uid, sb->gid) != 0)
        err_set(err, errno, "task directory %s: chown to %s: %s", cwd, sb->user, strerror(errno));
    else
        pid = wrk_sandbox_spawn(sb, argv, envp, cwd, cpus, out[1], er[1], &status_fd, err);
    if (pid < 0) {
        pipes_close(out, er);
        return -1;
    }
    launch_adopt(p, pid, out, er);
    p->sandboxed = true;
    p->status_fd = status_fd;
    *launch_error = false;
    return 0;
}

static void buf_add(struct wrk_proc *p, struct wrk_buf *b, const char *data, size_t n)
{
    size_t room = b->len < p->cap ? p->cap - b->len : 0;
    size_t take = n < room ? n : room;
    if (take < n)
        p->truncated = true;
    if (take == 0)
        return;
    if (b->len + take > b->cap_alloc) {
        size_t c = b->cap_alloc ? b->cap_alloc : 4096;
        while (c < b->len + take)
            c *= 2;
        if (c > p->cap)
            c = p->cap;
        char *d = realloc(b->data, c);
        if (d == NULL) {
            p->truncated = true;
            return;
        }
        b->data = d;
        b->cap_alloc = c;
    }
    memcpy(b->data + b->len, data, take);
    b->len += take;
}

void wrk_exec_drain(struct wrk_proc *p, int fd)
{
    if (fd < 0)
        return;
    struct wrk_buf *b = fd == p->out_fd ? &p->out : &p->err;
    char chunk[65536];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n > 0) {
            buf_add(p, b, chunk, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        close(fd); /* EOF or error */
        if (fd == p->out_fd)
            p->out_fd = -1;
        else
            p->err_fd = -1;
        return;
    }
}

void wrk_exec_signal(const struct wrk_proc *p, int sig)
{
    if (p->pid > 0)
        kill(-p->pid, sig);
}

uint64_t wrk_exec_rss(const struct wrk_proctab *tab, const struct wrk_proc *p)
{
    if (p->pid <= 0 || p->exited)
        return 0;
    pid_t *tree;
    size_t n = wrk_proctab_tree(tab, p->pid, &tree);
    uint64_t total = 0;
    for (size_t i = p->reaped || p->sandboxed ? 1 : 0; i < n; i++) /* tree[0] is the root */
        total += wrk_proctab_rss(tree[i]);
    free(tree);
    return total;
}

void wrk_exec_kill(const struct wrk_proc *p, const struct wrk_proctab *tab)
{
    if (p->pid <= 0)
        return;
    struct wrk_proctab own;
    if (tab == NULL) {
        wrk_proctab_read(&own);
        tab = &own;
    }
    /* its descendants (pidfd-checked, deepest first), then the group, which
     * holds the first process (not reaped yet: its pid cannot be reused) */
    if (!p->exited)
        wrk_proctab_kill_tree(tab, p->pid, 0);
    kill(-p->pid, SIGKILL);
    if (tab == &own)
        wrk_proctab_free(&own);
}

void wrk_exec_reaped(struct wrk_proc *p, int status, const struct rusage *ru)
{
    p->exited = true;
    p->status = status;
    if (ru != NULL) {
        p->cpu_time = (double)ru->ru_utime.tv_sec + (double)ru->ru_utime.tv_usec / 1e6 +
                      (double)ru->ru_stime.tv_sec + (double)ru->ru_stime.tv_usec / 1e6;
        p->max_rss = !p->sandboxed && ru->ru_maxrss > 0 ? (uint64_t)ru->ru_maxrss * 1024 : 0; /* KiB */
    }
    if (p->sandboxed && p->status_fd >= 0) {
        wrk_sandbox_status_read(p->status_fd, &p->status);
        close(p->status_fd);
        p->status_fd = -1;
    }
    wrk_exec_drain(p, p->out_fd);
    wrk_exec_drain(p, p->err_fd);
    if (p->out_fd >= 0) {
        close(p->out_fd);
        p->out_fd = -1;
    }
    if (p->err_fd >= 0) {
        close(p->err_fd);
        p->err_fd = -1;
    }
}

void wrk_exec_release(struct wrk_proc *p)
{
    if (p->out_fd >= 0)
        close(p->out_fd);
    if (p->err_fd >= 0)
        close(p->err_fd);
    p->out_fd = p->err_fd = -1;
    if (p->sandboxed && p->status_fd >= 0)
        close(p->status_fd);
    p->status_fd = -1;
    free(p->out.data);
    free(p->err.data);
    memset(&p->out, 0, sizeof p->out);
    memset(&p->err, 0, sizeof p->err);
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) != 0 ? errno : 0;
}

int wrk_exec_remove_tree(const char *path, struct err *err)
{
    if (rmdir(path) == 0 || errno == ENOENT)
        return 0; /* the common case: the task left nothing behind */
    int rc = nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    if (rc != 0 && errno != ENOENT)
        return err_set(err, rc > 0 ? rc : errno, "remove %s: %s", path, strerror(rc > 0 ? rc : errno));
    return 0;
}
