/* wrk_exec.c: fork/exec of exec tasks, output capture, process-group kill. */
#include "worker/wrk_exec.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* The child reports a failure through a close-on-exec pipe: stage and errno. */
enum { STAGE_SETUP = 1, STAGE_EXEC = 2 };

static void child_fail(int fd, int stage, int e)
{
    int msg[2] = {stage, e};
    ssize_t w = write(fd, msg, sizeof msg);
    (void)w;
    _exit(127);
}

int wrk_exec_start(struct wrk_proc *p, char *const argv[], char *const envp[], const char *cwd,
                   size_t cap, bool *launch_error, struct err *err)
{
    memset(p, 0, sizeof *p);
    p->out_fd = p->err_fd = -1;
    p->cap = cap;
    *launch_error = true;
    if (mkdir(cwd, 0700) != 0 && errno != EEXIST)
        return err_set(err, errno, "task directory %s: %s", cwd, strerror(errno));
    int out[2] = {-1, -1}, er[2] = {-1, -1}, rep[2] = {-1, -1};
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(er, O_CLOEXEC) != 0 || pipe2(rep, O_CLOEXEC) != 0) {
        err_set(err, errno, "pipe: %s", strerror(errno));
        goto fail;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        err_set(err, errno, "fork: %s", strerror(errno));
        goto fail;
    }
    if (pid == 0) {
        /* Child: only async-signal-safe calls from here on (the worker has threads). */
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(out[1], 1) < 0 || dup2(er[1], 2) < 0)
            child_fail(rep[1], STAGE_SETUP, errno);
        if (chdir(cwd) != 0)
            child_fail(rep[1], STAGE_SETUP, errno);
        execvpe(argv[0], argv, envp);
        child_fail(rep[1], STAGE_EXEC, errno);
    }
    setpgid(pid, pid); /* also in the parent, so a kill right away reaches the group */
    close(out[1]);
    close(er[1]);
    close(rep[1]);
    int msg[2];
    ssize_t n;
    do
        n = read(rep[0], msg, sizeof msg);
    while (n < 0 && errno == EINTR);
    close(rep[0]);
    p->pid = pid;
    p->out_fd = out[0];
    p->err_fd = er[0];
    fcntl(p->out_fd, F_SETFL, O_NONBLOCK);
    fcntl(p->err_fd, F_SETFL, O_NONBLOCK);
    if (n == (ssize_t)sizeof msg && msg[0] == STAGE_SETUP) {
        int status;
        waitpid(pid, &status, 0);
        wrk_exec_release(p);
        return err_set(err, msg[1], "task setup in %s: %s", cwd, strerror(msg[1]));
    }
    *launch_error = false;
    if (n == (ssize_t)sizeof msg && msg[0] == STAGE_EXEC) {
        char line[300];
        int len = snprintf(line, sizeof line, "moat: cannot execute %s: %s\n", argv[0],
                           strerror(msg[1]));
        struct wrk_buf *b = &p->err;
        b->data = malloc((size_t)len + 1);
        if (b->data) {
            memcpy(b->data, line, (size_t)len);
            b->len = (size_t)len;
            b->cap_alloc = (size_t)len + 1;
        }
    }
    return 0;
fail:
    for (int i = 0; i < 2; i++) {
        if (out[i] >= 0) close(out[i]);
        if (er[i] >= 0) close(er[i]);
        if (rep[i] >= 0) close(rep[i]);
    }
    return -1;
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

void wrk_exec_reaped(struct wrk_proc *p, int status)
{
    p->exited = true;
    p->status = status;
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
    int rc = nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    if (rc != 0 && errno != ENOENT)
        return err_set(err, rc > 0 ? rc : errno, "remove %s: %s", path, strerror(rc > 0 ? rc : errno));
    return 0;
}
