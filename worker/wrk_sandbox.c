/* wrk_sandbox.c: namespaces, mounts and the task init of sandboxed exec tasks.
 *
 * N.B. the init and the command are clones of a possibly multi-threaded worker:
 * they make system calls only (no malloc, no stdio, no locks, no libc call
 * that reaches other threads, as setuid does) until execve.
 */
#include "worker/wrk_sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define NS_FLAGS (CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS)
#define STACK_SIZE (256 * 1024)
#define STATUS_FD 3 /* the status pipe's write end in the init */

/* Records on the status pipe, init -> worker: {kind, a, b}. */
enum { REC_READY = 1, REC_FAILED, REC_EXIT };

/* Set-up steps, named in errors. */
enum step {
    STEP_NONE, STEP_PDEATHSIG, STEP_FDS, STEP_PRIVATE, STEP_TASKDIR, STEP_TMPFS, STEP_STATEDIR,
    STEP_BIND, STEP_PROC, STEP_LOOPBACK, STEP_CHDIR, STEP_AFFINITY, STEP_COUNT
};
static const char *const step_names[STEP_COUNT] = {
    [STEP_NONE] = "?",
    [STEP_PDEATHSIG] = "parent-death signal",
    [STEP_FDS] = "standard streams",
    [STEP_PRIVATE] = "mount propagation",
    [STEP_TASKDIR] = "task directory",
    [STEP_TMPFS] = "private /tmp",
    [STEP_STATEDIR] = "tmpfs over state_dir",
    [STEP_BIND] = "bind mount of the task directory",
    [STEP_PROC] = "mount /proc",
    [STEP_LOOPBACK] = "loopback up",
    [STEP_CHDIR] = "chdir",
    [STEP_AFFINITY] = "CPU affinity",
};

static const char *const mode_names[WRK_SANDBOX_MODE_COUNT] = {"namespaces", "off", "unavailable"};

const char *wrk_sandbox_mode_name(enum wrk_sandbox_mode m)
{
    return (unsigned)m < WRK_SANDBOX_MODE_COUNT ? mode_names[m] : "?";
}

struct child_args {
    const struct wrk_sandbox *sb;
    char *const *argv, *const *envp;
    const char *cwd;
    const cpu_set_t *cpus;    /* NULL: the worker's CPUs */
    int out_w, err_w;
    int status_w;             /* pipe write end: records */
    int alive_r;              /* EOF when the worker has died */
    bool probe;               /* set up, then exit 0 */
};

static char *stack_get(void)
{
    static char *stack;
    if (stack == NULL) {
        void *s = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK,
                       -1, 0);
        stack = s == MAP_FAILED ? NULL : s;
    }
    return stack;
}

/* ---- in the child: system calls only ---- */

/* N.B. the init and the command run on stacks of their own, which ASan does
 * not know: under `make asan` its check before each _Noreturn call (_exit)
 * would print a warning into the task's stderr. Their entry functions are
 * not instrumented. */
#define NOT_SANITIZED __attribute__((no_sanitize("address", "undefined")))

static void put_rec(int fd, int kind, int a, int b)
{
    int32_t rec[3] = {kind, a, b};
    ssize_t n;
    do
        n = write(fd, rec, sizeof rec);
    while (n < 0 && errno == EINTR);
}

static _Noreturn void fail(const struct child_args *a, enum step s)
{
    put_rec(a->status_w, REC_FAILED, s, errno);
    _exit(126);
}

static void write_str(int fd, const char *s)
{
    if (write(fd, s, strlen(s)) < 0) { /* nothing to do about it */
    }
}

static int mkdir_p(const char *path)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static int tmpfs_on(const char *dir, const char *opts, bool if_exists)
{
    struct stat st;
    if (if_exists && (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)))
        return 0;
    return mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, opts);
}

static int loopback_up(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, "lo", 3);
    int rc = ioctl(s, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        rc = ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    int e = errno;
    close(s);
    errno = e;
    return rc;
}

static void noop_handler(int sig)
{
    (void)sig;
}

/* setup: everything before the command, in the new namespaces, as root. */
static void setup(const struct child_args *a)
{
    const struct wrk_sandbox *sb = a->sb;
    setpgid(0, 0);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
        fail(a, STEP_PDEATHSIG);
    /* The worker may have died before the prctl: then its end of alive is closed. */
    struct pollfd pf = {.fd = a->alive_r, .events = POLLIN};
    if (poll(&pf, 1, 0) > 0 && (pf.revents & (POLLHUP | POLLIN)))
        _exit(126);
    /* Handled, not default: an init ignores signals it has no handler for. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = noop_handler;
    sigfillset(&sa.sa_mask);
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &sa, NULL);
    if (!a->probe) {
        int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(a->out_w, 1) < 0 || dup2(a->err_w, 2) < 0)
            fail(a, STEP_FDS);
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        fail(a, STEP_PRIVATE);
    int dirfd = -1;
    if (!a->probe && (dirfd = open(a->cwd, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
        fail(a, STEP_TASKDIR);
    char opts[64];
    snprintf(opts, sizeof opts, "mode=1777,size=%llu", (unsigned long long)sb->tmp_size);
    if (tmpfs_on("/tmp", opts, false) != 0 || tmpfs_on("/var/tmp", opts, true) != 0 ||
        tmpfs_on("/dev/shm", opts, true) != 0)
        fail(a, STEP_TMPFS);
    if (!a->probe) {
        /* Only the task's own directory stays visible under state_dir. */
        if (mkdir_p(sb->state_dir) != 0 ||
            mount("tmpfs", sb->state_dir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=65536") != 0)
            fail(a, STEP_STATEDIR);
        char src[64];
        snprintf(src, sizeof src, "/proc/self/fd/%d", dirfd);
        if (mkdir_p(a->cwd) != 0 || mount(src, a->cwd, NULL, MS_BIND, NULL) != 0)
            fail(a, STEP_BIND);
        close(dirfd);
    }
    if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
        fail(a, STEP_PROC);
    if (loopback_up() != 0)
        fail(a, STEP_LOOPBACK);
    if (!a->probe && chdir(a->cwd) != 0)
        fail(a, STEP_CHDIR);
    if (a->cpus && sched_setaffinity(0, sizeof *a->cpus, a->cpus) != 0) /* the init and all after it */
        fail(a, STEP_AFFINITY);
}

const char *wrk_sandbox_drop_ids(uid_t uid, gid_t gid)
{
    /* N.B. not glibc's setgroups/setresgid/setresuid: those first make every
     * other thread of the process change too (nptl's setxid broadcast), and
     * in a clone of a multi-threaded worker that list of threads is the
     * worker's: the broadcast waits for a thread that is not there, or for a
     * lock another worker thread held at the clone, for ever (a task that
     * hung RUNNING). Here there is one thread, and the system calls suffice. */
    if (syscall(SYS_setgroups, 1, &gid) != 0)
        return "setgroups";
    if (syscall(SYS_setresgid, gid, gid, gid) != 0)
        return "setgid";
    if (syscall(SYS_setresuid, uid, uid, uid) != 0)
        return "setuid";
    return NULL;
}

/* exec_sh: run a file execve refused as not a binary (ENOEXEC: a script
 * without #!) with /bin/sh, as execvp does. */
static void exec_sh(const char *path, char *const argv[], char *const envp[])
{
    size_t argc = 0;
    while (argv[argc])
        argc++;
    if (argc > 4096)
        return;
    char *sh[argc + 2];
    sh[0] = "/bin/sh";
    sh[1] = (char *)path;
    for (size_t i = 1; i <= argc; i++)
        sh[i + 1] = argv[i];
    execve("/bin/sh", sh, envp);
}

/* exec_task_path: execve file, looked up (when it has no '/') in the PATH of
 * envp, not the worker's as execvpe would (a task's --env PATH=... decides
 * where its command is found, and the worker's own PATH may hold directories
 * the exec user cannot read). As glibc's execvp: a file that is not a binary
 * runs with /bin/sh; the search goes on past ENOENT, ENOTDIR, EACCES,
 * ESTALE, ENODEV and ETIMEDOUT and stops at any other error; errno is then
 * EACCES if a file was found but could not be executed, else the last
 * failure (ENOENT; ENAMETOOLONG for a name too long for any entry). Only
 * system calls and stack buffers: safe in a clone of the worker. Returns
 * only on failure. */
static void exec_task_path(const char *file, char *const argv[], char *const envp[])
{
    if (strchr(file, '/') != NULL) {
        execve(file, argv, envp);
        if (errno == ENOEXEC)
            exec_sh(file, argv, envp);
        return;
    }
    const char *path = "/usr/bin:/bin";
    for (size_t i = 0; envp[i]; i++)
        if (strncmp(envp[i], "PATH=", 5) == 0) {
            path = envp[i] + 5;
            break;
        }
    size_t flen = strlen(file);
    bool denied = false;
    int last = ENOENT;
    for (const char *p = path;; p++) {
        const char *end = strchr(p, ':');
        size_t dlen = end ? (size_t)(end - p) : strlen(p);
        size_t n = dlen ? dlen : 1; /* an empty entry: the current directory */
        char full[4096];
        if (n + 1 + flen + 1 <= sizeof full) {
            memcpy(full, dlen ? p : ".", n);
            full[n] = '/';
            memcpy(full + n + 1, file, flen + 1);
            execve(full, argv, envp);
            if (errno == ENOEXEC) {
                exec_sh(full, argv, envp);
                return;
            }
            if (errno == EACCES)
                denied = true;
            else if (errno != ENOENT && errno != ENOTDIR && errno != ESTALE && errno != ENODEV &&
                     errno != ETIMEDOUT)
                return; /* a real failure of the file found: said as it is */
        } else {
            last = ENAMETOOLONG;
        }
        if (end == NULL)
            break;
        p = end;
    }
    errno = denied ? EACCES : last;
}

/* command: the grandchild; becomes the task's program. It shares the init's
 * memory until execve (command_main): stack and system calls only. */
NOT_SANITIZED static _Noreturn void command(const struct child_args *a)
{
    const struct wrk_sandbox *sb = a->sb;
    setpgid(0, 0); /* signals reach it through the init, once */
    close(STATUS_FD);
    const char *what = NULL;
    struct rlimit as = {sb->mem ? sb->mem : RLIM_INFINITY, sb->mem ? sb->mem : RLIM_INFINITY};
    struct rlimit np = {sb->procs, sb->procs}, nf = {sb->files, sb->files};
    struct rlimit cpu = {sb->cpu ? sb->cpu : RLIM_INFINITY, sb->cpu ? sb->cpu : RLIM_INFINITY};
    if ((what = wrk_sandbox_drop_ids(sb->uid, sb->gid)) != NULL)
        ;
    else if (setrlimit(RLIMIT_AS, &as) != 0 || setrlimit(RLIMIT_NPROC, &np) != 0 ||
             setrlimit(RLIMIT_NOFILE, &nf) != 0 || setrlimit(RLIMIT_CPU, &cpu) != 0)
        what = "setrlimit";
    else if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        what = "no_new_privs";
    if (what) {
        const char *why = strerror(errno);
        write_str(2, "moat: sandbox: ");
        write_str(2, what);
        write_str(2, ": ");
        write_str(2, why);
        write_str(2, "\n");
        _exit(127);
    }
    /* as posix_spawn's POSIX_SPAWN_SETSIGDEF: no handler of the worker's (on
     * the init's memory) may run between the unblock and the execve */
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction old;
        if (sig != SIGKILL && sig != SIGSTOP && sigaction(sig, NULL, &old) == 0 &&
            old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN)
            sigaction(sig, &dfl, NULL);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    exec_task_path(a->argv[0], a->argv, a->envp);
    int e = errno;
    const char *why = strerror(e);
    write_str(2, "moat: cannot execute ");
    write_str(2, a->argv[0]);
    write_str(2, ": ");
    write_str(2, why);
    write_str(2, "\n");
    /* as a POSIX shell: 127 not found, 126 found but not executable */
    _exit(e == ENOENT || e == ENOTDIR || e == ENAMETOOLONG ? 127 : 126);
}

/* command_main: the command's clone entry. It is cloned CLONE_VM |
 * CLONE_VFORK, as posix_spawn(3) clones its child: it runs on the init's
 * memory (the init waits) until its execve, so no page tables of the init's
 * copy of the worker are copied again for it (N.B. its ru_maxrss still starts
 * at the init's peak: Linux counts the memory before execve). */
NOT_SANITIZED static int command_main(void *arg)
{
    command(arg);
}

/* init_main: PID 1 of the task's namespace. */
NOT_SANITIZED static int init_main(void *arg)
{
    const struct child_args *a = arg;
    setup(a);
    if (a->probe)
        _exit(0);
    /* Keep 0-2 and the status pipe; drop every other descriptor of the worker. */
    if (a->status_w == STATUS_FD ? fcntl(STATUS_FD, F_SETFD, FD_CLOEXEC) != 0
                                 : dup3(a->status_w, STATUS_FD, O_CLOEXEC) < 0)
        fail(a, STEP_FDS);
    close_range(STATUS_FD + 1, ~0U, 0);
    struct child_args me = *a;
    me.status_w = STATUS_FD;
    put_rec(STATUS_FD, REC_READY, 0, 0);
    void *stack = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    pid_t cmd = stack == MAP_FAILED ? -1
                                    : clone(command_main, (char *)stack + STACK_SIZE,
                                            CLONE_VM | CLONE_VFORK | SIGCHLD, &me);
    if (cmd < 0) {
        write_str(2, "moat: sandbox: cannot start the command (clone failed)\n");
        put_rec(STATUS_FD, REC_EXIT, 127 << 8, 0);
        _exit(0);
    }
    munmap(stack, STACK_SIZE); /* the command has exec'd (or exited) by now */
    sigset_t all;
    sigfillset(&all);
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&all, &si);
        if (sig < 0)
            continue;
        if (sig != SIGCHLD) {
            kill(-1, sig); /* every process of the namespace but this one */
            continue;
        }
        int st;
        pid_t pid;
        while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
            if (pid == cmd) {
                put_rec(STATUS_FD, REC_EXIT, st, 0);
                _exit(0); /* the namespace's other processes die with their init */
            }
        }
    }
}

/* ---- in the worker ---- */

static pid_t clone_init(struct child_args *a, int *status_r, struct err *err)
{
    char *stack = stack_get();
    if (stack == NULL)
        return err_set(err, errno, "sandbox: stack: %s", strerror(errno));
    int st[2] = {-1, -1}, alive[2] = {-1, -1};
    if (pipe2(st, O_CLOEXEC) != 0 || pipe2(alive, O_CLOEXEC) != 0) {
        err_set(err, errno, "sandbox: pipe: %s", strerror(errno));
        goto fail;
    }
    a->status_w = st[1];
    a->alive_r = alive[0];
    /* Block every signal across clone so no worker handler runs in the child. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = clone(init_main, stack + STACK_SIZE, NS_FLAGS | SIGCHLD, a);
    int clone_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        err_set(err, clone_errno, "sandbox: clone: %s", strerror(clone_errno));
        goto fail;
    }
    close(st[1]);
    close(alive[0]);
    st[1] = alive[0] = -1;
    int32_t rec[3];
    ssize_t n;
    do
        n = read(st[0], rec, sizeof rec);
    while (n < 0 && errno == EINTR);
    close(alive[1]); /* the child has set its parent-death signal, or died */
    alive[1] = -1;
    if (n != (ssize_t)sizeof rec || rec[0] != REC_READY) {
        int status;
        waitpid(pid, &status, 0);
        if (n == (ssize_t)sizeof rec && rec[0] == REC_FAILED)
            err_set(err, rec[2] ? rec[2] : EIO, "sandbox: %s: %s",
                    step_names[(unsigned)rec[1] < STEP_COUNT ? rec[1] : 0], strerror(rec[2]));
        else if (a->probe && n == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
            pid = 0; /* the probe went through */
        else
            err_set(err, EIO, "sandbox: the task's init died during set-up");
        if (pid != 0)
            goto fail;
    }
    *status_r = st[0];
    return pid;
fail:
    for (int i = 0; i < 2; i++) {
        if (st[i] >= 0) close(st[i]);
        if (alive[i] >= 0) close(alive[i]);
    }
    return -1;
}

int wrk_sandbox_probe(const struct wrk_sandbox *sb, struct err *err)
{
    struct child_args a = {.sb = sb, .probe = true};
    int fd = -1;
    pid_t pid = clone_init(&a, &fd, err);
    if (pid < 0)
        return -1;
    close(fd);
    return 0;
}

pid_t wrk_sandbox_spawn(const struct wrk_sandbox *sb, char *const argv[], char *const envp[],
                        const char *cwd, const cpu_set_t *cpus, int out_w, int err_w, int *status_fd,
                        struct err *err)
{
    size_t n = strlen(sb->state_dir);
    if (strncmp(cwd, sb->state_dir, n) != 0 || cwd[n] != '/')
        return err_set(err, EINVAL, "sandbox: task directory %s is not under %s", cwd, sb->state_dir);
    struct child_args a = {.sb = sb, .argv = argv, .envp = envp, .cwd = cwd, .cpus = cpus,
                           .out_w = out_w, .err_w = err_w};
    pid_t pid = clone_init(&a, status_fd, err);
    if (pid < 0)
        return -1;
    setpgid(pid, pid);
    fcntl(*status_fd, F_SETFL, O_NONBLOCK);
    return pid;
}

bool wrk_sandbox_status_read(int status_fd, int *status)
{
    int32_t rec[3];
    for (;;) {
        ssize_t n = read(status_fd, rec, sizeof rec);
        if (n < 0 && errno == EINTR)
            continue;
        if (n != (ssize_t)sizeof rec)
            return false;
        if (rec[0] == REC_EXIT) {
            *status = rec[1];
            return true;
        }
    }
}

/* name_in: whether v ("NAME=...") names a variable that list (NULL-terminated) has. */
static bool name_in(const char *v, char *const list[])
{
    size_t n = strcspn(v, "=") + 1;
    for (size_t i = 0; list && list[i]; i++)
        if (strncmp(list[i], v, n) == 0)
            return true;
    return false;
}

char **wrk_sandbox_envp(char *const task_env[], const char *home)
{
    static const char *const fixed[] = {"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "TMPDIR=/tmp"};
    size_t n = 0, bytes = strlen(home) + 6;
    for (size_t i = 0; task_env && task_env[i]; i++) {
        n++;
        bytes += strlen(task_env[i]) + 1;
    }
    size_t slots = n + 4 + 1;
    char **v = malloc(slots * sizeof *v + bytes);
    if (v == NULL)
        return NULL;
    char *s = (char *)(v + slots);
    size_t k = 0;
    for (size_t i = 0; task_env && task_env[i]; i++) {
        v[k++] = s;
        s = stpcpy(s, task_env[i]) + 1;
    }
    for (size_t i = 0; i < 3; i++) /* the task's own (--env PATH=...) win */
        if (!name_in(fixed[i], task_env))
            v[k++] = (char *)fixed[i];
    if (!name_in("HOME=", task_env)) {
        v[k++] = s;
        s += sprintf(s, "HOME=%s", home) + 1;
    }
    v[k] = NULL;
    return v;
}

int wrk_sandbox_init(struct wrk_sandbox *sb, const struct wrk_cfg *cfg, uint64_t node_mem,
                     struct err *err)
{
    memset(sb, 0, sizeof *sb);
    if (strcmp(cfg->exec_sandbox, "off") == 0) {
        sb->mode = WRK_SANDBOX_OFF;
        return 0;
    }
    if (strcmp(cfg->exec_sandbox, "required") != 0)
        return err_set(err, EINVAL, "exec_sandbox: '%.32s', expected \"required\" or \"off\"",
                       cfg->exec_sandbox);
    struct passwd *pw = getpwnam(cfg->exec_user);
    if (pw == NULL)
        return err_set(err, EINVAL, "exec_user: no user '%.64s' on this node", cfg->exec_user);
    if (pw->pw_uid == 0)
        return err_set(err, EINVAL, "exec_user: '%.64s' is root; name an unprivileged user",
                       cfg->exec_user);
    snprintf(sb->user, sizeof sb->user, "%.63s", cfg->exec_user);
    sb->uid = pw->pw_uid;
    sb->gid = pw->pw_gid;
    if (realpath(cfg->state_dir, sb->state_dir) == NULL)
        return err_set(err, errno, "state_dir %s: %s", cfg->state_dir, strerror(errno));
    sb->mem = cfg->exec_mem_limit ? cfg->exec_mem_limit : node_mem;
    sb->procs = (uint64_t)cfg->exec_max_procs;
    sb->files = (uint64_t)cfg->exec_max_files;
    sb->cpu = (uint64_t)(cfg->exec_cpu_limit + 0.999);
    sb->tmp_size = cfg->exec_tmp_size;
    struct err e = {0};
    if (wrk_sandbox_probe(sb, &e) != 0) {
        sb->mode = WRK_SANDBOX_UNAVAILABLE;
        snprintf(sb->why, sizeof sb->why, "%s", e.msg);
        return 0;
    }
    sb->mode = WRK_SANDBOX_NAMESPACES;
    return 0;
}
