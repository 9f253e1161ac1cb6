/* krn_stream.c: the host's measured memory bandwidth (STREAM triad), the
 * reference that bench rows of memory-bound ops on "cpu"/"ref" quote as peak.
 *
 * A CPU has no spec-sheet bandwidth that a process can read, and a VM's share of
 * it is whatever the host gives it; so, as McCalpin's STREAM does, we measure
 * a[i] = b[i] + s * c[i] over arrays well beyond the last-level cache and take
 * the best of a few passes. Each thread first-touches and then sweeps its own
 * contiguous slice (so pages sit on its NUMA node), between barriers that the
 * timer brackets. Bytes counted per element: 24 (two reads, one write; STREAM's
 * convention, which does not count the write-allocate read).
 */
#include "kernels/krn_bench.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The set-once host bandwidth that krn_bench_run quotes (krn_bench_host_gbps_set). */
static struct {
    int threads;
    double gbps;
} host_bw;

void krn_bench_host_gbps_set(int threads, double gbps)
{
    host_bw.threads = gbps > 0 ? threads : 0;
    host_bw.gbps = gbps > 0 ? gbps : 0;
}

double krn_bench_host_gbps(int threads)
{
    return host_bw.gbps > 0 && host_bw.threads == threads ? host_bw.gbps : 0;
}

/* count_cpus: CPUs in a sysfs cpu list ("0-3,8,10-11"); 0 when unparsable. */
static long count_cpus(const char *list)
{
    long n = 0;
    for (const char *p = list; *p != '\0' && *p != '\n';) {
        char *end;
        long lo = strtol(p, &end, 10), hi = lo;
        if (end == p)
            return 0;
        if (*end == '-') {
            p = end + 1;
            hi = strtol(p, &end, 10);
            if (end == p || hi < lo)
                return 0;
        }
        n += hi - lo + 1;
        p = *end == ',' ? end + 1 : end;
    }
    return n;
}

static bool read_line(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    bool ok = fgets(buf, (int)n, f) != NULL;
    fclose(f);
    return ok;
}

/* llc_bytes: total last-level cache of the machine from cpu0's highest cache
 * level in sysfs: its size times the number of such caches (online CPUs /
 * CPUs sharing one). 0 when sysfs does not say. */
static size_t llc_bytes(void)
{
    char path[96], buf[256];
    int best = -1, best_level = 0;
    for (int i = 0; i < 16; i++) {
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
        if (!read_line(path, buf, sizeof buf))
            break;
        if (atoi(buf) > best_level) {
            best_level = atoi(buf);
            best = i;
        }
    }
    if (best < 0)
        return 0;
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", best);
    if (!read_line(path, buf, sizeof buf))
        return 0;
    char *end;
    unsigned long long size = strtoull(buf, &end, 10);
    if (*end == 'K')
        size <<= 10;
    else if (*end == 'M')
        size <<= 20;
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/shared_cpu_list", best);
    long sharing = read_line(path, buf, sizeof buf) ? count_cpus(buf) : 0;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    long caches = sharing > 0 && online > 0 ? (online + sharing - 1) / sharing : 1;
    return (size_t)size * (size_t)caches;
}

size_t krn_bench_stream_bytes(void)
{
    size_t llc = llc_bytes();
    size_t bytes = llc > 0 ? 4 * llc : (size_t)256 << 20;
    if (bytes < (size_t)32 << 20)
        bytes = (size_t)32 << 20;
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    size_t cap = pages > 0 && psz > 0 ? (size_t)pages * (size_t)psz / 16 : 0;
    return cap > 0 && bytes > cap ? cap : bytes;
}

struct triad {
    double *a, *b, *c;
    size_t n;
    int threads, passes; /* passes = 1 warm-up + reps timed */
    double *secs;        /* [passes], written by thread 0 */
    pthread_barrier_t bar;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int go; /* 0 wait, 1 run, -1 abort (a thread could not be started) */
};

struct triad_arg {
    struct triad *t;
    int id;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* triad_thread: wait for the go, first-touch the slice, then per pass: barrier,
 * sweep, barrier; thread 0 times between the barriers. */
static void *triad_thread(void *p)
{
    const struct triad_arg *arg = p;
    struct triad *t = arg->t;
    pthread_mutex_lock(&t->mu);
    while (t->go == 0)
        pthread_cond_wait(&t->cv, &t->mu);
    int go = t->go;
    pthread_mutex_unlock(&t->mu);
    if (go < 0)
        return NULL;
    /* slices of whole 64-byte lines */
    size_t per = (t->n / 8 + (size_t)t->threads - 1) / (size_t)t->threads * 8;
    size_t lo = per * (size_t)arg->id, hi = lo + per;
    lo = lo < t->n ? lo : t->n;
    hi = hi < t->n ? hi : t->n;
    double *restrict a = t->a, *restrict b = t->b, *restrict c = t->c;
    const double s = 3.0;
    for (size_t i = lo; i < hi; i++) {
        a[i] = 0.0;
        b[i] = 2.0;
        c[i] = 0.5;
    }
    for (int r = 0; r < t->passes; r++) {
        pthread_barrier_wait(&t->bar);
        double t0 = arg->id == 0 ? now_s() : 0;
        for (size_t i = lo; i < hi; i++)
            a[i] = b[i] + s * c[i];
        pthread_barrier_wait(&t->bar);
        if (arg->id == 0)
            t->secs[r] = now_s() - t0;
    }
    return NULL;
}

int krn_bench_stream_triad(int threads, size_t array_bytes, int reps, double *gbps,
                           struct err *err)
{
    if (gbps == NULL)
        return err_set(err, EINVAL, "stream triad: gbps is NULL");
    if (threads < 0 || threads > 4096)
        return err_set(err, EINVAL, "stream triad: threads %d (0..4096)", threads);
    if (reps < 0 || reps > 100)
        return err_set(err, EINVAL, "stream triad: reps %d (0..100)", reps);
    if (array_bytes != 0 && array_bytes < 4096)
        return err_set(err, EINVAL, "stream triad: %zu bytes per array (0 or >= 4096)",
                       array_bytes);
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    if (reps == 0)
        reps = 5;
    if (array_bytes == 0)
        array_bytes = krn_bench_stream_bytes();
    struct triad t = {.n = array_bytes / sizeof(double) / 8 * 8, .threads = threads,
                      .passes = reps + 1};
    struct triad_arg *args = calloc((size_t)threads, sizeof *args);
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    t.secs = calloc((size_t)t.passes, sizeof *t.secs);
    /* N.B. malloc, not calloc: untouched pages, so each thread's first touch places them */
    t.a = malloc(t.n * sizeof(double));
    t.b = malloc(t.n * sizeof(double));
    t.c = malloc(t.n * sizeof(double));
    int rc = -1;
    if (args == NULL || th == NULL || t.secs == NULL || t.a == NULL || t.b == NULL || t.c == NULL) {
        err_set(err, ENOMEM, "stream triad: 3 arrays of %zu bytes", array_bytes);
        goto out_free;
    }
    pthread_barrier_init(&t.bar, NULL, (unsigned)threads);
    pthread_mutex_init(&t.mu, NULL);
    pthread_cond_init(&t.cv, NULL);
    int started = 1, e = 0;
    for (; started < threads; started++) {
        args[started] = (struct triad_arg){&t, started};
        if ((e = pthread_create(&th[started], NULL, triad_thread, &args[started])) != 0)
            break;
    }
    pthread_mutex_lock(&t.mu);
    t.go = started == threads ? 1 : -1;
    pthread_cond_broadcast(&t.cv);
    pthread_mutex_unlock(&t.mu);
    if (t.go > 0) {
        args[0] = (struct triad_arg){&t, 0};
        triad_thread(&args[0]);
    }
    for (int i = 1; i < started; i++)
        pthread_join(th[i], NULL);
    if (t.go < 0) {
        err_set(err, e, "stream triad: starting thread %d of %d: %s", started + 1, threads,
                strerror(e));
        goto out_sync;
    }
    for (size_t i = 0; i < t.n; i++) { /* validate: every element written, exactly */
        if (t.a[i] != 3.5) {
            err_set(err, EIO, "stream triad: a[%zu] = %g, expected 3.5", i, t.a[i]);
            goto out_sync;
        }
    }
    double best = t.secs[1];
    for (int r = 2; r < t.passes; r++)
        best = t.secs[r] < best ? t.secs[r] : best;
    *gbps = best > 0 ? 3.0 * sizeof(double) * (double)t.n / best / 1e9 : 0;
    if (*gbps <= 0) {
        err_set(err, EIO, "stream triad: pass took no measurable time");
        goto out_sync;
    }
    rc = 0;
out_sync:
    pthread_cond_destroy(&t.cv);
    pthread_mutex_destroy(&t.mu);
    pthread_barrier_destroy(&t.bar);
out_free:
    free(t.a), free(t.b), free(t.c);
    free(t.secs), free(th), free(args);
    return rc;
}
