/* wrk_objects.c: verified, content-addressed artifact cache of a worker. */
#include "worker/wrk_objects.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shared/log.h"

bool wrk_objects_name_valid(const char *sha)
{
    if (sha == NULL)
        return false;
    size_t n = 0;
    for (; sha[n]; n++)
        if (!((sha[n] >= '0' && sha[n] <= '9') || (sha[n] >= 'a' && sha[n] <= 'f')))
            return false;
    return n == 64;
}

char *wrk_objects_path(const char *dir, const char *sha, char *out, size_t cap)
{
    snprintf(out, cap, "%.400s/%.64s", dir, sha);
    return out;
}

int wrk_objects_sweep(const char *dir, struct err *err)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return err_set(err, errno, "%s: %s", dir, strerror(errno));
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len > 5 && strcmp(de->d_name + len - 5, ".part") == 0 &&
            unlinkat(dirfd(d), de->d_name, 0) == 0)
            n++;
    }
    closedir(d);
    return n;
}

bool wrk_objects_have(const char *dir, const char *sha)
{
    char p[600];
    return access(wrk_objects_path(dir, sha, p, sizeof p), R_OK) == 0;
}

int wrk_fetch_begin(struct wrk_fetch *f, const char *dir, const char *sha, uint64_t total,
                    const char *tag, struct err *err)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    snprintf(f->sha, sizeof f->sha, "%.64s", sha);
    f->total = total;
    wrk_objects_path(dir, sha, f->path, sizeof f->path);
    snprintf(f->tmp, sizeof f->tmp, "%.560s.%.30s.part", f->path, tag);
    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (f->fd < 0 && errno == ENOENT && mkdir(dir, 0700) == 0) {
        /* the cache directory was removed under the worker (a clean-up) */
        log_warn("wrk", "object cache %s was missing; made again", dir);
        f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    }
    if (f->fd < 0)
        return err_set(err, errno, "object %.16s...: %s: %s", sha, f->tmp, strerror(errno));
    if ((f->hs = sha256_new(err)) == NULL) {
        close(f->fd);
        f->fd = -1;
        unlink(f->tmp);
        return err_prefix(err, "object %.16s...", sha);
    }
    return 0;
}

int wrk_fetch_chunk(struct wrk_fetch *f, const void *data, size_t len, uint64_t off, struct err *err)
{
    if (f->fd < 0 || off != f->off || f->off + len > f->total)
        return err_set(err, EPROTO, "object %.16s...: chunk at %llu of %zu bytes does not follow %llu/%llu",
                       f->sha, (unsigned long long)off, len, (unsigned long long)f->off,
                       (unsigned long long)f->total);
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(f->fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return err_set(err, w < 0 ? errno : ENOSPC, "object %.16s...: write: %s", f->sha,
                           w < 0 ? strerror(errno) : "short write");
        p += w;
        left -= (size_t)w;
    }
    if (sha256_update(f->hs, data, len, err) != 0)
        return err_prefix(err, "object %.16s...", f->sha);
    f->off += len;
    return 0;
}

bool wrk_fetch_done(const struct wrk_fetch *f)
{
    return f->fd >= 0 && f->off == f->total;
}

static void *store_thread(void *arg)
{
    struct wrk_fetch *f = arg;
    int rc = 1;
    if (fsync(f->fd) != 0 || rename(f->tmp, f->path) != 0)
        rc = -(errno ? errno : EIO);
    __atomic_store_n(&f->done, rc, __ATOMIC_RELEASE);
    return NULL;
}

int wrk_fetch_finish(struct wrk_fetch *f, struct err *err)
{
    unsigned char d[SHA256_BYTES];
    char hex[65];
    int rc = sha256_final(f->hs, d, err);
    sha256_free(f->hs);
    f->hs = NULL;
    if (rc != 0) {
        close(f->fd);
        f->fd = -1;
        unlink(f->tmp);
        return err_prefix(err, "object %.16s...", f->sha);
    }
    sha256_hex(d, hex);
    if (strcmp(hex, f->sha) != 0) {
        close(f->fd);
        f->fd = -1;
        unlink(f->tmp);
        return err_set(err, EBADMSG, "object %.16s...: received bytes hash to %.16s...; refused", f->sha, hex);
    }
    f->done = 0;
    f->finishing = true;
    rc = pthread_create(&f->thread, NULL, store_thread, f);
    if (rc != 0) { /* no thread: store it here */
        f->finishing = false;
        store_thread(f);
        f->finishing = true;
        f->thread = pthread_self();
        f->done = f->done ? f->done : 1;
    }
    return 0;
}

int wrk_fetch_poll(struct wrk_fetch *f, struct err *err)
{
    if (!f->finishing)
        return err_set(err, EINVAL, "object %.16s...: not being stored", f->sha);
    int done = __atomic_load_n(&f->done, __ATOMIC_ACQUIRE);
    if (done == 0)
        return 0;
    if (!pthread_equal(f->thread, pthread_self()))
        pthread_join(f->thread, NULL);
    f->finishing = false;
    close(f->fd);
    f->fd = -1;
    if (done < 0) {
        unlink(f->tmp);
        return err_set(err, -done, "object %.16s...: %s", f->sha, strerror(-done));
    }
    return 1;
}

bool wrk_fetch_busy(const struct wrk_fetch *f, const char *sha)
{
    return (f->fd >= 0 || f->finishing) && strcmp(f->sha, sha) == 0;
}

void wrk_fetch_abort(struct wrk_fetch *f)
{
    if (f == NULL)
        return;
    sha256_free(f->hs);
    f->hs = NULL;
    if (f->fd < 0)
        return;
    if (f->finishing) {
        if (!pthread_equal(f->thread, pthread_self()))
            pthread_join(f->thread, NULL);
        f->finishing = false;
    }
    close(f->fd);
    f->fd = -1;
    unlink(f->tmp);
}
