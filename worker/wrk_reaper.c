/* wrk_reaper.c: the worker's handle on moat-reap (see wrk_reaper.h). */
#include "worker/wrk_reaper.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shared/log.h"
#include "worker/wrk_proctab.h"
#include "worker/wrk_reap.h"

#define REPLY_TIMEOUT_MS 10000

void wrk_reaper_init(struct wrk_reaper *r, const char *path)
{
    snprintf(r->path, sizeof r->path, "%s", path);
    r->pid = 0;
    r->sock = -1;
    r->reply_ms = REPLY_TIMEOUT_MS;
}

void wrk_reaper_stop(struct wrk_reaper *r)
{
    if (r->sock >= 0)
        close(r->sock);
    r->sock = -1;
}

/* forget: the service is gone or must go: SIGKILL it (the worker reaps it). */
static void forget(struct wrk_reaper *r)
{
    if (r->pid > 0)
        kill(r->pid, SIGKILL);
    wrk_reaper_stop(r);
}

bool wrk_reaper_ended(struct wrk_reaper *r, pid_t pid, int status)
{
    if (pid <= 0 || pid != r->pid)
        return false;
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        log_warn("wrk", "reaper service %s (pid %d) ended (%s %d); the next launch starts another",
                 r->path, (int)pid, WIFSIGNALED(status) ? "signal" : "exit",
                 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    r->pid = 0;
    wrk_reaper_stop(r);
    return true;
}

/* start: moat-reap --serve 3 WORKER_PID, its socket at descriptor 3, stdin
 * /dev/null, stdout and stderr the worker's, no signal blocked or handled. */
static int start(struct wrk_reaper *r, struct err *err)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return err_set(err, errno, "reaper service: socketpair: %s", strerror(errno));
    char pid[24];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    char *argv[] = {r->path, "--serve", "3", pid, NULL}, *envp[] = {NULL};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    if (sv[1] == 3) { /* dup2 onto itself would keep its close-on-exec flag */
        int d = fcntl(sv[1], F_DUPFD_CLOEXEC, 4);
        close(sv[1]);
        sv[1] = d;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, sv[1], 3);
    posix_spawnattr_init(&at);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    /* a process group of its own: a signal to the worker's (^C on a worker
     * in the foreground) is not for it; it dies with the worker */
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
    pid_t child;
    int rc = sv[1] < 0 ? EMFILE : posix_spawn(&child, r->path, &fa, &at, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (sv[1] >= 0)
        close(sv[1]);
    if (rc != 0) {
        close(sv[0]);
        return err_set(err, rc, "reaper service %s: %s", r->path, strerror(rc));
    }
    r->pid = child;
    r->sock = sv[0];
    return 0;
}

/* send_request: the head and body, the pipes' write ends with the first byte.
 * Returns 0, or -1 with errno. */
static int send_request(int sock, const char *msg, size_t len, int out_w, int err_w)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(2 * sizeof(int))];
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov = {.iov_base = (void *)msg, .iov_len = len};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                       .msg_controllen = sizeof ctl.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(2 * sizeof(int));
    int fds[2] = {out_w, err_w};
    memcpy(CMSG_DATA(c), fds, sizeof fds);
    size_t sent = 0;
    while (sent < len) {
        ssize_t n = sent == 0 ? sendmsg(sock, &m, MSG_NOSIGNAL)
                              : send(sock, msg + sent, len - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        sent += (size_t)n;
    }
    return 0;
}

/* recv_reply: the answer, within ms. 0, or -1 with errno (ETIMEDOUT; EPIPE
 * at EOF). */
static int recv_reply(int sock, struct wrk_reap_reply *rep, int ms)
{
    size_t got = 0;
    while (got < sizeof *rep) {
        struct pollfd p = {.fd = sock, .events = POLLIN};
        int k = poll(&p, 1, ms);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            errno = k == 0 ? ETIMEDOUT : errno;
            return -1;
        }
        ssize_t n = recv(sock, (char *)rep + got, sizeof *rep - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            errno = n == 0 ? EPIPE : errno;
            return -1;
        }
        got += (size_t)n;
    }
    return 0;
}

/* encode: head and body of a request, malloc'd into *msg; its length, 0 when
 * too large (E2BIG) or out of memory. */
static size_t encode(char *const argv[], char *const envp[], const char *cwd, const cpu_set_t *cpus,
                     char **msg)
{
    struct wrk_reap_head h = {.magic = WRK_REAP_MAGIC, .pinned = cpus != NULL};
    if (cpus)
        h.cpus = *cpus;
    size_t body = strlen(cwd) + 1;
    for (; argv[h.argc]; h.argc++)
        body += strlen(argv[h.argc]) + 1;
    for (; envp[h.envc]; h.envc++)
        body += strlen(envp[h.envc]) + 1;
    if (body > WRK_REAP_BODY_MAX || (size_t)h.argc + h.envc > WRK_REAP_STRINGS_MAX) {
        errno = E2BIG;
        return 0;
    }
    h.body_len = (uint32_t)body;
    char *m = malloc(sizeof h + body);
    if (m == NULL) {
        errno = ENOMEM;
        return 0;
    }
    memcpy(m, &h, sizeof h);
    char *s = m + sizeof h;
    size_t n = strlen(cwd) + 1;
    memcpy(s, cwd, n);
    s += n;
    for (uint32_t i = 0; i < h.argc; i++, s += n)
        memcpy(s, argv[i], n = strlen(argv[i]) + 1);
    for (uint32_t i = 0; i < h.envc; i++, s += n)
        memcpy(s, envp[i], n = strlen(envp[i]) + 1);
    *msg = m;
    return sizeof h + body;
}

pid_t wrk_reaper_launch(struct wrk_reaper *r, char *const argv[], char *const envp[], const char *cwd,
                        const cpu_set_t *cpus, int out_w, int err_w, int *stage, int *errnum,
                        struct err *err)
{
    char *msg;
    size_t len = encode(argv, envp, cwd, cpus, &msg);
    if (len == 0)
        return err_set(err, errno, "task command and environment: %s", strerror(errno));
    /* A service that ended unseen (its end not reaped yet) fails the send
     * before reading anything: then one more, new service. */
    int rc = -1;
    for (int attempt = 0; attempt < 2 && rc != 0; attempt++) {
        if (r->sock < 0 && start(r, err) != 0) {
            free(msg);
            return -1;
        }
        rc = send_request(r->sock, msg, len, out_w, err_w);
        if (rc != 0) {
            int e = errno;
            forget(r);
            err_set(err, e, "reaper service %s: send: %s", r->path, strerror(e));
            if (e != EPIPE && e != ECONNRESET)
                break;
        }
    }
    free(msg);
    if (rc != 0)
        return -1;
    struct wrk_reap_reply rep;
    if (recv_reply(r->sock, &rep, r->reply_ms) != 0) {
        /* No answer: the service is killed, and a reaper it made never gets
         * its "go" (wrk_reap.h)... unless the answer and the "go" were sent
         * as the wait ran out: then that reaper, the worker's child and so
         * not reaped yet, is killed with all it started. */
        int e = errno;
        if (e == ETIMEDOUT && r->pid > 0) {
            siginfo_t si;
            kill(r->pid, SIGKILL);
            while (waitid(P_PID, (id_t)r->pid, &si, WEXITED | WNOWAIT) != 0 && errno == EINTR)
                ;
            if (recv(r->sock, &rep, sizeof rep, MSG_DONTWAIT) == (ssize_t)sizeof rep && rep.pid > 0) {
                struct wrk_proctab tab;
                wrk_proctab_read(&tab);
                wrk_proctab_kill_tree(&tab, rep.pid, 0);
                wrk_proctab_free(&tab);
                kill(-rep.pid, SIGKILL);
            }
        }
        forget(r);
        return err_set(err, e, "reaper service %s: %s", r->path,
                       e == ETIMEDOUT ? "no answer in time" : strerror(e));
    }
    if (rep.stage == WRK_REAP_SERVICE || rep.pid <= 0)
        return err_set(err, rep.errnum ? rep.errnum : EPROTO, "reaper service %s: launch: %s", r->path,
                       strerror(rep.errnum ? rep.errnum : EPROTO));
    *stage = rep.stage;
    *errnum = rep.errnum;
    return rep.pid;
}
