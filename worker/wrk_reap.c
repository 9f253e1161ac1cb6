/* wrk_reap.c: moat-reap, the reaper service of unsandboxed exec tasks (see
 * wrk_reap.h): requests in, per-task reapers (wrk_reap_task.c) out. libc only. */
#include "worker/wrk_reap.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "worker/wrk_reap_task.h"

int wrk_reap_parse(const struct wrk_reap_head *h, char *body, const char **cwd, char **argv,
                   char **envp)
{
    if (h->magic != WRK_REAP_MAGIC || h->argc == 0 || h->argc > WRK_REAP_STRINGS_MAX ||
        h->envc > WRK_REAP_STRINGS_MAX - h->argc || h->body_len > WRK_REAP_BODY_MAX ||
        h->body_len == 0 || body[h->body_len - 1] != '\0')
        return -1;
    size_t want = 1 + (size_t)h->argc + h->envc, have = 0;
    for (size_t i = 0; i < h->body_len; i++)
        have += body[i] == '\0';
    if (have != want)
        return -1;
    char *s = body;
    *cwd = s;
    s += strlen(s) + 1;
    for (uint32_t i = 0; i < h->argc; i++, s += strlen(s) + 1)
        argv[i] = s;
    argv[h->argc] = NULL;
    for (uint32_t i = 0; i < h->envc; i++, s += strlen(s) + 1) {
        if (strchr(s, '=') == NULL)
            return -1;
        envp[i] = s;
    }
    envp[h->envc] = NULL;
    return (*cwd)[0] && argv[0][0] ? 0 : -1;
}

/* read_full: n bytes from fd, or fewer at EOF; -1 on error. */
static ssize_t read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* recv_head: a request's head and the two descriptors sent with its first
 * byte (fds[] stays -1 where none came). 1 on success, 0 at EOF, -1 when
 * short or failed. */
static int recv_head(int sock, struct wrk_reap_head *h, int fds[2])
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(2 * sizeof(int))];
    } ctl;
    struct iovec iov = {.iov_base = h, .iov_len = sizeof *h};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                       .msg_controllen = sizeof ctl.buf};
    ssize_t n;
    while ((n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
        ;
    if (n <= 0)
        return n == 0 ? 0 : -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof fd, sizeof fd);
            if (i < 2 && fds[i] < 0)
                fds[i] = fd;
            else
                close(fd);
        }
    }
    if ((size_t)n < sizeof *h && read_full(sock, (char *)h + n, sizeof *h - (size_t)n) !=
                                     (ssize_t)(sizeof *h - (size_t)n))
        return -1;
    return 1;
}

/* Regions: the memory a per-task reaper runs in, one per running reaper,
 * reused once the kernel has cleared its slot's tid (the reaper ended) and
 * spawn_tid (CMD's process, which runs on the region's spawn stack until it
 * execs, has exec'd or ended: it may outlive a reaper killed meanwhile).
 * Layout: guard page, reaper stack, guard page, CMD's spawn stack, then the
 * slot, its pointer arrays and a copy of the request's strings. A request too
 * large for a standard region gets one of its own, unmapped when free. */
#define PAGE 4096u
#define REAPER_STACK (64u * 1024)
#define SPAWN_STACK (32u * 1024)
#define REGION_STD (256u * 1024)
#define DATA_OFF (2 * PAGE + REAPER_STACK + SPAWN_STACK)
#define BODY_KEEP (64u * 1024) /* the request buffer kept between requests */

struct region {
    char *base;
    size_t size;
    bool busy;
};
static struct region *regions;
static size_t nregions, cap_regions;
static unsigned long long handled; /* signals this service has a handler for (bit sig - 1) */

static struct wrk_reap_slot *slot_of(const struct region *g)
{
    return (struct wrk_reap_slot *)(void *)(g->base + DATA_OFF);
}

/* region_get: a free region with at least need bytes after DATA_OFF; NULL
 * with errno when none can be made. */
static struct region *region_get(size_t need)
{
    for (size_t i = 0; i < nregions;) { /* the ended reapers' regions are free again */
        struct region *g = &regions[i];
        const struct wrk_reap_slot *s = slot_of(g);
        if (g->busy && __atomic_load_n(&s->tid, __ATOMIC_ACQUIRE) == 0 &&
            __atomic_load_n(&s->spawn_tid, __ATOMIC_ACQUIRE) == 0) {
            g->busy = false;
            if (g->size > REGION_STD) {
                munmap(g->base, g->size);
                regions[i] = regions[--nregions];
                continue;
            }
        }
        i++;
    }
    size_t size = REGION_STD;
    if (DATA_OFF + need > REGION_STD)
        size = (DATA_OFF + need + PAGE - 1) / PAGE * PAGE;
    else
        for (size_t i = 0; i < nregions; i++)
            if (!regions[i].busy && regions[i].size == REGION_STD)
                return &regions[i];
    if (nregions == cap_regions) {
        size_t c = cap_regions ? 2 * cap_regions : 16;
        struct region *v = realloc(regions, c * sizeof *v);
        if (v == NULL)
            return NULL;
        regions = v;
        cap_regions = c;
    }
    char *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    if (mprotect(base, PAGE, PROT_NONE) != 0 ||
        mprotect(base + PAGE + REAPER_STACK, PAGE, PROT_NONE) != 0) {
        int e = errno;
        munmap(base, size);
        errno = e;
        return NULL;
    }
    regions[nregions] = (struct region){.base = base, .size = size};
    return &regions[nregions++];
}

/* fill: the slot of g for request h, its strings copied from body. -1 when
 * the request is malformed. */
static int fill(struct region *g, const struct wrk_reap_head *h, const char *body, pid_t worker,
                int out_w, int err_w, const int gate[2], int sock)
{
    struct wrk_reap_slot *s = slot_of(g);
    memset(s, 0, sizeof *s);
    char **ptrs = (char **)(void *)(g->base + DATA_OFF + (sizeof *s + 15) / 16 * 16);
    size_t nptrs = (size_t)h->argc + h->envc + 3; /* spare, argv, NULL, envp, NULL */
    char *copy = (char *)(ptrs + nptrs);
    memcpy(copy, body, h->body_len);
    const char *cwd;
    if (wrk_reap_parse(h, copy, &cwd, ptrs + 1, ptrs + h->argc + 2) != 0)
        return -1;
    s->worker = worker;
    s->out_w = out_w;
    s->err_w = err_w;
    s->gate = gate[1];
    s->service_fds[0] = sock;
    s->service_fds[1] = gate[0];
    s->pinned = h->pinned == 1;
    s->cpus = h->cpus;
    s->cwd = cwd;
    s->argv = ptrs + 1;
    s->cmd = s->argv[0];
    s->envp = ptrs + h->argc + 2;
    s->path = "/bin:/usr/bin"; /* execvp(3)'s default */
    for (char **e = s->envp; *e; e++)
        if (strncmp(*e, "PATH=", 5) == 0)
            s->path = *e + 5;
    s->stack_top = g->base + PAGE + REAPER_STACK;
    s->spawn_stack_top = g->base + 2 * PAGE + REAPER_STACK + SPAWN_STACK;
    s->handled = handled;
    return 0;
}

/* launch: one request: clone the per-task reaper, wait for its setup,
 * answer; then "go". Returns -1 when the answer cannot be sent. */
static int launch(int sock, pid_t worker, const struct wrk_reap_head *h, const char *body, int fds[2])
{
    struct wrk_reap_reply rep = {0, WRK_REAP_SERVICE, 0};
    int gate[2] = {-1, -1};
    pid_t pid = 0;
    size_t need = (sizeof(struct wrk_reap_slot) + 15) / 16 * 16 +
                  ((size_t)h->argc + h->envc + 3) * sizeof(char *) + h->body_len;
    struct region *g = NULL;
    if (fds[0] < 0 || fds[1] < 0)
        rep.errnum = EBADF;
    else if ((g = region_get(need)) == NULL)
        rep.errnum = errno ? errno : ENOMEM;
    else if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, gate) != 0)
        rep.errnum = errno;
    else if (fill(g, h, body, worker, fds[0], fds[1], gate, sock) != 0)
        rep.errnum = EINVAL;
    else {
        struct wrk_reap_slot *s = slot_of(g);
        /* the copy shares this memory (CLONE_VM), is the worker's child
         * (CLONE_PARENT) and has its own descriptors, signal handlers and
         * mask; the kernel writes its pid into s->tid and clears it when
         * it ends */
        pid = clone(wrk_reap_task_run, s->stack_top,
                    CLONE_VM | CLONE_PARENT | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD, s,
                    &s->tid, NULL, &s->tid);
        if (pid < 0) {
            rep.errnum = errno;
            pid = 0;
        } else {
            int32_t st[2];
            g->busy = true;
            close(gate[1]);
            gate[1] = -1;
            rep.pid = pid;
            if (read_full(gate[0], st, sizeof st) == (ssize_t)sizeof st) {
                rep.stage = st[0];
                rep.errnum = st[1];
            } else {
                rep.stage = WRK_REAP_SETUP; /* it died in setup: the worker reaps it */
                rep.errnum = EPIPE;
            }
        }
    }
    int rc = send(sock, &rep, sizeof rep, MSG_NOSIGNAL) == (ssize_t)sizeof rep ? 0 : -1;
    if (rc == 0 && pid > 0 && rep.stage == WRK_REAP_STARTED)
        (void)!send(gate[0], "g", 1, MSG_NOSIGNAL);
    for (int i = 0; i < 2; i++)
        if (gate[i] >= 0)
            close(gate[i]);
    return rc;
}

/* close_fds: close descriptors first..last (close_range(2), Linux >= 5.9;
 * one by one up to the open-files limit before it). */
static void close_fds(unsigned first, unsigned last)
{
    if (syscall(SYS_close_range, first, last, 0) == 0)
        return;
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536)
        max = 65536;
    for (long fd = first; fd < max && fd <= (long)last; fd++)
        close((int)fd);
}

int wrk_reap_serve(int sock, pid_t worker)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != worker)
        return 1;
    /* Not dumpable: the memory is shared with every task's reaper, which ends
     * with its task's signal, a core-dumping one too; a core of it would hold
     * the other tasks' requests (environments), and before Linux 5.16 a
     * core dump killed every process sharing the memory. (Per memory, so
     * for all the reapers; CMD's execve makes its own, dumpable.) */
    if (prctl(PR_SET_DUMPABLE, 0) != 0)
        return 2;
    /* nothing the worker inherited from its own parent (a shell's stray
     * descriptors) reaches the tasks: all but 0-2 and sock closed */
    if (sock > 3)
        close_fds(3, (unsigned)sock - 1);
    close_fds((unsigned)sock + 1, ~0u);
    /* none in a plain build; a sanitizer's, which no reaper may run */
    for (int sig = 1; sig < NSIG && sig <= 64; sig++) {
        struct sigaction sa;
        if (sigaction(sig, NULL, &sa) == 0 && sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN)
            handled |= 1ull << (sig - 1);
    }
    /* 0-2 open, so that received descriptors land above them (wrk_reap_task.c) */
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
            return 2;
    char *body = NULL;
    size_t body_cap = 0;
    for (;;) {
        struct wrk_reap_head h;
        int fds[2] = {-1, -1};
        int r = recv_head(sock, &h, fds);
        if (r <= 0) {
            free(body);
            return r == 0 ? 0 : 2;
        }
        bool ok = h.magic == WRK_REAP_MAGIC && h.body_len > 0 && h.body_len <= WRK_REAP_BODY_MAX;
        if (ok && h.body_len > body_cap) {
            char *b = realloc(body, h.body_len);
            ok = b != NULL;
            if (ok) {
                body = b;
                body_cap = h.body_len;
            }
        }
        ok = ok && read_full(sock, body, h.body_len) == (ssize_t)h.body_len;
        if (ok)
            r = launch(sock, worker, &h, body, fds);
        for (int i = 0; i < 2; i++)
            if (fds[i] >= 0)
                close(fds[i]);
        if (body_cap > BODY_KEEP) { /* one large request: not kept for ever */
            free(body);
            body = NULL;
            body_cap = 0;
        }
        if (!ok) {
            fprintf(stderr, "moat-reap: malformed request from the worker; service ends\n");
            free(body);
            return 2;
        }
        if (r != 0) {
            free(body);
            return 0; /* the worker is gone */
        }
    }
}
