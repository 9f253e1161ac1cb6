/* lockfile.c: the state directory's lock (see lockfile.h).
 * Invariant: a live handle's fd holds the flock; the file's content is the
 * holder's pid or, briefly after the lock is taken, empty. */
#include "shared/lockfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOCKFILE_PATH_MAX 4096

struct lockfile {
    int fd;
};

/* mkdirs: mkdir -p of path; the last component gets mode 0700. */
static int mkdirs(const char *path, struct err *err)
{
    char p[LOCKFILE_PATH_MAX];
    snprintf(p, sizeof p, "%s", path);
    for (char *c = p + 1; *c; c++) {
        if (*c != '/')
            continue;
        *c = '\0';
        (void)mkdir(p, 0755); /* an error shows at the last mkdir or the open */
        *c = '/';
    }
    if (mkdir(p, 0700) != 0 && errno != EEXIST)
        return err_set(err, errno, "%s: %s", path, strerror(errno));
    return 0;
}

/* holder_pid: the pid written in fd's file, 0 if there is none. */
static long holder_pid(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *end;
    long pid = strtol(buf, &end, 10);
    return pid > 0 && end != buf && (*end == '\n' || *end == '\0') ? pid : 0;
}

lockfile_t *lockfile_acquire(const char *dir, const char *name, long *holder, struct err *err)
{
    if (holder)
        *holder = 0;
    if (dir == NULL || *dir == '\0' || name == NULL || *name == '\0' || strchr(name, '/')) {
        err_set(err, EINVAL, "lock file: bad directory or name");
        return NULL;
    }
    char path[LOCKFILE_PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) {
        err_set(err, ENAMETOOLONG, "%s/%s: path too long", dir, name);
        return NULL;
    }
    if (mkdirs(dir, err) != 0)
        return NULL;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        err_set(err, errno, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno == EAGAIN ? EWOULDBLOCK : errno;
        long pid = e == EWOULDBLOCK ? holder_pid(fd) : 0;
        if (holder)
            *holder = pid;
        if (e == EWOULDBLOCK)
            err_set(err, e, "%s: locked by another process (pid %ld)", path, pid);
        else
            err_set(err, e, "%s: flock: %s", path, strerror(e));
        close(fd);
        return NULL;
    }
    lockfile_t *l = malloc(sizeof *l);
    if (l == NULL) {
        close(fd);
        err_set(err, ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    l->fd = fd;
    char pid[24];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    /* the pid is a hint for messages: a failure to write it leaves the lock good */
    if (ftruncate(fd, 0) == 0)
        (void)!pwrite(fd, pid, (size_t)len, 0);
    return l;
}

void lockfile_release(lockfile_t *lock)
{
    if (lock == NULL)
        return;
    close(lock->fd); /* drops the flock: the description's only descriptor */
    free(lock);
}

lockfile_t *lockfile_state_dir(const char *dir, const char *daemon, struct err *err)
{
    char name[64];
    snprintf(name, sizeof name, "%s.lock", daemon);
    long holder = 0;
    lockfile_t *lock = lockfile_acquire(dir, name, &holder, err);
    if (lock != NULL)
        return lock;
    if (err->code != EWOULDBLOCK) {
        err_prefix(err, "state_dir");
        return NULL;
    }
    char who[32] = "";
    if (holder > 0)
        snprintf(who, sizeof who, " (pid %ld)", holder);
    err_set(err, EWOULDBLOCK, "state_dir %s is in use by another %s%s", dir, daemon, who);
    return NULL;
}
