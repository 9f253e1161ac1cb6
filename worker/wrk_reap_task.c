/* wrk_reap_task.c: the per-task reaper (see wrk_reap_task.h and wrk_reap.h).
 * Every system call here is raw (wrk_rawsys.h): this code shares the reaper
 * service's memory, and with it the service's errno. */
#include "worker/wrk_reap_task.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "worker/wrk_rawsys.h"
#include "worker/wrk_reap.h"

#define KSIGSET 8 /* bytes of the kernel's sigset_t: signals 1..64 */

static _Noreturn void die(int code)
{
    for (;;)
        rawsys1(SYS_exit_group, code);
}

static uint64_t sigbit(int sig) { return 1ull << (sig - 1); }

/* say: "moat: " and the parts (NULL ones skipped) as one line on stderr
 * (the task's), cut at 600 bytes. */
static void say(const char *a, const char *b, const char *c, const char *d)
{
    char line[600];
    size_t n = 0;
    const char *parts[] = {"moat: ", a, b, c, d};
    for (int i = 0; i < 5; i++)
        for (const char *s = parts[i]; s && *s && n < sizeof line - 1; s++)
            line[n++] = *s;
    line[n++] = '\n';
    rawsys3(SYS_write, 2, line, n);
}

/* why: what execve(2) said, in glibc's words (strerror(3) may translate,
 * and so allocate; strerrordesc_np is glibc >= 2.32 only). */
static const char *why(int errnum)
{
    switch (errnum) {
    case ENOENT: return "No such file or directory";
    case EACCES: return "Permission denied";
    case ENOEXEC: return "Exec format error";
    case E2BIG: return "Argument list too long";
    case ENOMEM: return "Cannot allocate memory";
    case ENOTDIR: return "Not a directory";
    case EISDIR: return "Is a directory";
    case ELOOP: return "Too many levels of symbolic links";
    case ENAMETOOLONG: return "File name too long";
    case ETXTBSY: return "Text file busy";
    case EPERM: return "Operation not permitted";
    case EIO: return "Input/output error";
    case EMFILE: return "Too many open files";
    case ENFILE: return "Too many open files in system";
    case EAGAIN: return "Resource temporarily unavailable";
    case ELIBBAD: return "Accessing a corrupted shared library";
    case EINVAL: return "Invalid argument";
    case EFAULT: return "Bad address";
    default: return "error";
    }
}

/* fmt_int: v in decimal at out (room for 12); returns the end. */
static char *fmt_int(char *out, long v)
{
    char tmp[24];
    int n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) > 0);
    while (n > 0)
        *out++ = tmp[--n];
    *out = '\0';
    return out;
}

/* report: how setup went, to the service: two int32 on the gate. */
static void report(int gate, int stage, int errnum)
{
    int32_t st[2] = {stage, errnum};
    rawsys6(SYS_sendto, gate, (long)st, sizeof st, MSG_NOSIGNAL, 0, 0);
}

/* exec_in: execve dir/file (dir empty: file as it is). Returns -errno. On
 * ENOEXEC (no #!), /bin/sh runs it, as execvp(3) does; argv[-1] is spare. */
static long exec_in(const char *dir, size_t dlen, const char *file, char **argv, char **envp)
{
    char path[4096];
    const char *p = file;
    if (dir) {
        size_t flen = strlen(file);
        if (dlen == 0) { /* an empty PATH entry: the current directory */
            dir = ".";
            dlen = 1;
        }
        if (dlen + 1 + flen + 1 > sizeof path)
            return -ENAMETOOLONG;
        memcpy(path, dir, dlen);
        path[dlen] = '/';
        memcpy(path + dlen + 1, file, flen + 1);
        p = path;
    }
    long r = rawsys3(SYS_execve, p, argv, envp);
    if (r == -ENOEXEC) {
        char **sh = argv - 1, *arg0 = argv[0];
        sh[0] = "/bin/sh";
        sh[1] = (char *)p;
        r = rawsys3(SYS_execve, "/bin/sh", sh, envp);
        argv[0] = arg0; /* for the next PATH entry */
    }
    return r;
}

/* spawn_child: CMD's process until execve (clone with CLONE_VM | CLONE_VFORK:
 * the reaper sleeps meanwhile): SIGKILL should its reaper die before it (not
 * in the normal course: see wrk_reap.h, Limits), the signal mask emptied,
 * argv[0] looked for
 * in PATH as execvpe(3) does (EACCES remembered, ENOENT and the like go on,
 * anything else stops). Records why it failed and exits as a POSIX shell does:
 * 127 when not found, 126 when found but not executable. */
static int spawn_child(void *arg)
{
    struct wrk_reap_slot *s = arg;
    uint64_t none = 0;
    rawsys2(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL);
    if (rawsys0(SYS_getppid) != s->tid)
        die(127); /* the reaper died first */
    rawsys4(SYS_rt_sigprocmask, SIG_SETMASK, &none, 0, KSIGSET);
    const char *file = s->argv[0];
    long r;
    if (strchr(file, '/')) {
        r = exec_in(NULL, 0, file, s->argv, s->envp);
    } else {
        bool eacces = false;
        r = -ENOENT;
        for (const char *p = s->path;;) {
            const char *end = strchr(p, ':');
            size_t dlen = end ? (size_t)(end - p) : strlen(p);
            r = exec_in(p, dlen, file, s->argv, s->envp);
            if (r == -EACCES)
                eacces = true;
            else if (r != -ENOENT && r != -ENOTDIR && r != -ESTALE && r != -ENODEV &&
                     r != -ETIMEDOUT && r != -ENAMETOOLONG)
                break;
            if (end == NULL) {
                r = eacces ? -EACCES : -ENOENT;
                break;
            }
            p = end + 1;
        }
    }
    s->exec_errno = (int)-r;
    die(r == -ENOENT || r == -ENOTDIR || r == -ENAMETOOLONG ? 127 : 126);
}

/* ppid_of: the parent pid in /proc/PID/stat (proc(5): the fourth field,
 * after the command in parentheses, which may hold anything); -1 when gone. */
static long ppid_of(const char *pid)
{
    char path[64] = "/proc/", buf[512];
    size_t n = strlen(pid);
    if (n > 20)
        return -1;
    memcpy(path + 6, pid, n);
    memcpy(path + 6 + n, "/stat", 6);
    long fd = rawsys4(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    long got = rawsys3(SYS_read, fd, buf, sizeof buf - 1);
    rawsys1(SYS_close, fd);
    if (got <= 0)
        return -1;
    buf[got] = '\0';
    const char *close_paren = strrchr(buf, ')');
    if (close_paren == NULL || close_paren[1] != ' ' || close_paren[2] == '\0' ||
        close_paren[3] != ' ')
        return -1;
    long v = 0;
    for (const char *c = close_paren + 4; *c >= '0' && *c <= '9'; c++)
        v = v * 10 + (*c - '0');
    return v;
}

/* kill_children: SIGKILL every child of this process (alive or not yet
 * reaped), found in /proc; how many there were. Safe from pid reuse: a
 * child's pid stays its own until this process reaps it. */
static int kill_children(long self)
{
    long dir = rawsys4(SYS_openat, AT_FDCWD, "/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (dir < 0)
        return 0;
    char buf[8192];
    int n = 0;
    long got;
    while ((got = rawsys3(SYS_getdents64, dir, buf, sizeof buf)) > 0) {
        for (long off = 0; off < got;) {
            /* struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, name */
            unsigned short reclen;
            memcpy(&reclen, buf + off + 16, sizeof reclen);
            const char *name = buf + off + 19;
            off += reclen;
            if (name[0] < '1' || name[0] > '9')
                continue;
            long pid = 0;
            bool digits = true;
            for (const char *c = name; *c; c++) {
                digits = digits && *c >= '0' && *c <= '9';
                pid = pid * 10 + (*c - '0');
            }
            if (!digits || pid == self || ppid_of(name) != self)
                continue;
            rawsys2(SYS_kill, pid, SIGKILL);
            n++;
        }
    }
    rawsys1(SYS_close, dir);
    return n;
}

/* kill_task: SIGKILL every process of the task but this one, which is its
 * process tree: this being a subreaper, the children of a killed process
 * become this one's, and the next round kills them. */
static void kill_task(void)
{
    long self = rawsys0(SYS_getpid);
    int st;
    while (kill_children(self) > 0) {
        if (rawsys4(SYS_wait4, -1, &st, __WALL, 0) < 0) /* __WALL: clone children too */
            break;
        while (rawsys4(SYS_wait4, -1, &st, WNOHANG | __WALL, 0) > 0)
            ;
    }
}

/* has_children: whether this process still has a child, from
 * /proc/self/task/PID/children (proc(5); CONFIG_PROC_CHILDREN): one small read,
 * where the common case (CMD left nothing behind) needs no scan of /proc.
 * True when the file cannot be read, so that the scan decides. */
static bool has_children(void)
{
    char path[64] = "/proc/self/task/", c;
    char *end = fmt_int(path + strlen(path), rawsys0(SYS_getpid));
    memcpy(end, "/children", 10);
    long fd = rawsys4(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return true;
    long n = rawsys3(SYS_read, fd, &c, 1);
    rawsys1(SYS_close, fd);
    return n != 0;
}

int wrk_reap_task_run(void *arg)
{
    struct wrk_reap_slot *s = arg;
    /* Every catchable signal blocked and taken with sigtimedwait: one the task
     * sends its own group (kill -USR2 0, kill -QUIT 0) is for CMD, and must
     * not end the reaper while CMD runs on. A worker that died before the
     * parent-death signal was asked for is seen in getppid(). */
    uint64_t set = ~(sigbit(SIGKILL) | sigbit(SIGSTOP) | sigbit(SIGSEGV) | sigbit(SIGBUS) |
                     sigbit(SIGFPE) | sigbit(SIGILL));
    rawsys4(SYS_rt_sigprocmask, SIG_BLOCK, &set, 0, KSIGSET);
    for (int sig = 1; sig <= 64; sig++)
        if (s->handled & sigbit(sig)) {
            /* the kernel's struct sigaction: handler, flags, restorer, mask */
            struct { void *handler; unsigned long flags; void *restorer; uint64_t mask; } dfl = {0};
            rawsys4(SYS_rt_sigaction, sig, &dfl, 0, KSIGSET);
        }
    rawsys1(SYS_close, s->service_fds[0]);
    rawsys1(SYS_close, s->service_fds[1]);
    rawsys2(SYS_setpgid, 0, 0);
    /* its own name in ps and /proc/PID/comm (the command line is the
     * service's: the same memory) */
    rawsys2(SYS_prctl, PR_SET_NAME, "moat-reaper");
    if (rawsys2(SYS_prctl, PR_SET_PDEATHSIG, SIGUSR1) != 0 || rawsys0(SYS_getppid) != s->worker)
        die(127); /* the worker is gone already */
    long r;
    if (s->pinned && (r = rawsys3(SYS_sched_setaffinity, 0, sizeof s->cpus, &s->cpus)) != 0) {
        report(s->gate, WRK_REAP_AFFINITY, (int)-r);
        die(127);
    }
    /* the received descriptors are above 2: the service's 0-2 are open */
    long devnull = rawsys4(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY | O_CLOEXEC, 0);
    if ((r = devnull) < 0 || (r = rawsys3(SYS_dup3, devnull, 0, 0)) < 0 ||
        (r = rawsys3(SYS_dup3, s->out_w, 1, 0)) < 0 || (r = rawsys3(SYS_dup3, s->err_w, 2, 0)) < 0 ||
        (r = rawsys1(SYS_chdir, s->cwd)) < 0 ||
        (r = rawsys2(SYS_prctl, PR_SET_CHILD_SUBREAPER, 1)) < 0) {
        report(s->gate, WRK_REAP_SETUP, (int)-r);
        die(127);
    }
    rawsys1(SYS_close, devnull);
    rawsys1(SYS_close, s->out_w);
    rawsys1(SYS_close, s->err_w);
    report(s->gate, WRK_REAP_STARTED, 0);
    char go;
    while ((r = rawsys6(SYS_recvfrom, s->gate, (long)&go, 1, 0, 0, 0)) == -EINTR)
        ;
    rawsys1(SYS_close, s->gate);
    if (r != 1) {
        say("the reaper service ended before the task started", NULL, NULL, NULL);
        die(127);
    }
    if (rawsys0(SYS_getppid) != s->worker)
        die(137);
    /* CMD in the task's process group (the subreaper mark is not inherited);
     * a SIGKILL of the group after kill_grace ends CMD and the reaper together */
    s->exec_errno = 0;
    long cmd = clone(spawn_child, s->spawn_stack_top,
                     CLONE_VM | CLONE_VFORK | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD, s,
                     &s->spawn_tid, NULL, &s->spawn_tid);
    if (cmd < 0) {
        say("cannot execute ", s->cmd, ": cannot start a process", NULL);
        die(127);
    }
    if (s->exec_errno) /* it has ended with 127 or 126, reaped below */
        say("cannot execute ", s->cmd, ": ", why(s->exec_errno));
    int status = 0;
    bool ended = false, worker_gone = false;
    while (!ended && !worker_gone) {
        siginfo_t si;
        long sig = rawsys4(SYS_rt_sigtimedwait, &set, &si, 0, KSIGSET);
        if (sig == SIGUSR1 && rawsys0(SYS_getppid) != s->worker) {
            worker_gone = true; /* the parent-death signal (a task's own SIGUSR1 is for CMD) */
        } else if (sig == SIGCHLD) {
            long pid;
            int st;
            while ((pid = rawsys4(SYS_wait4, -1, &st, WNOHANG, 0)) > 0)
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
        die(137);
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        uint64_t one = sigbit(sig);
        rawsys4(SYS_rt_sigprocmask, SIG_UNBLOCK, &one, 0, KSIGSET);
        rawsys2(SYS_kill, rawsys0(SYS_getpid), sig); /* its default action: as CMD ended */
    }
    die(WIFEXITED(status) ? WEXITSTATUS(status) : 127);
}
