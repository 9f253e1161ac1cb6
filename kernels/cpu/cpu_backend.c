/* cpu_backend.c: the "cpu" backend's handle, threads and its row/elementwise ops.
 *
 * GEMM is in cpu_gemm.c (OpenBLAS), attention in cpu_attn.c (tiled, fused).
 * The handle owns a persistent pool of threads - 1 workers (cpu_parallel), the
 * only threading layer: OpenBLAS is kept at 1 thread and cpu_gemm splits each
 * GEMM over the pool. (Two layers - OpenBLAS's pthreads for GEMM and per-op
 * pthread_create for the rest - cost 13-17% of cycles in OpenBLAS's sched_yield
 * spin with 2 threads: bench/results/infer-cpu-2026-11-29.md.) The row ops
 * here are memory-bound; they split rows over the pool only when a call moves
 * enough data for a wake-up (~1 us while the workers spin) to pay.
 */
#include "kernels/cpu/cpu.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Elements below which a row op runs on the calling thread only. */
#define CPU_PAR_MIN (1 << 13)
/* Polls of the generation word before a worker sleeps in futex_wait: a few
 * hundred microseconds, longer than the gap between two ops of a forward pass. */
#define CPU_POOL_SPIN 20000

struct cpu_pool {
    int n;                    /* threads including the caller */
    pthread_t *th;            /* [n - 1] */
    int *tids;                /* [n - 1] thread ids 1..n-1, pthread_create arguments */
    void (*fn)(void *, int, int);
    void *ctx;
    int nrun;                 /* threads taking part in the current call */
    uint32_t gen;             /* futex word: bumped once per call */
    int sleepers;             /* workers in (or entering) futex_wait */
    int pending;              /* workers that have not finished the current call */
    int stop;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void futex_wait(uint32_t *addr, uint32_t val)
{
    syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake_all(uint32_t *addr)
{
    syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

struct pool_arg {
    struct cpu_pool *p;
    int tid;
};

static void *pool_main(void *arg)
{
    struct cpu_pool *p = ((struct pool_arg *)arg)->p;
    int tid = ((struct pool_arg *)arg)->tid;
    free(arg);
    uint32_t seen = 0;
    for (;;) {
        uint32_t g;
        int spins = 0;
        while ((g = __atomic_load_n(&p->gen, __ATOMIC_ACQUIRE)) == seen) {
            if (spins++ < CPU_POOL_SPIN) {
                cpu_relax();
                continue;
            }
            /* N.B. Dekker pair with cpu_pool_run: sleepers is raised before gen
             * is read again (both seq_cst), so either the caller sees a sleeper
             * and wakes it, or futex_wait sees the new gen and returns. */
            __atomic_add_fetch(&p->sleepers, 1, __ATOMIC_SEQ_CST);
            if (__atomic_load_n(&p->gen, __ATOMIC_SEQ_CST) == seen)
                futex_wait(&p->gen, seen);
            __atomic_sub_fetch(&p->sleepers, 1, __ATOMIC_SEQ_CST);
            spins = 0;
        }
        seen = g;
        if (__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE))
            return NULL;
        if (tid < p->nrun)
            p->fn(p->ctx, tid, p->nrun);
        __atomic_sub_fetch(&p->pending, 1, __ATOMIC_RELEASE);
    }
}

static void cpu_pool_destroy(struct cpu_pool *p)
{
    if (p == NULL)
        return;
    __atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
    __atomic_add_fetch(&p->gen, 1, __ATOMIC_SEQ_CST);
    futex_wake_all(&p->gen);
    for (int i = 0; i < p->n - 1; i++)
        pthread_join(p->th[i], NULL);
    free(p->th);
    free(p);
}

/* A pool of n - 1 workers, or NULL (the caller then runs every share itself). */
static struct cpu_pool *cpu_pool_create(int n)
{
    if (n < 2)
        return NULL;
    struct cpu_pool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->th = calloc((size_t)n, sizeof *p->th);
    if (p->th == NULL) {
        free(p);
        return NULL;
    }
    p->n = 1;
    for (int i = 1; i < n; i++) {
        struct pool_arg *a = malloc(sizeof *a);
        if (a == NULL)
            break;
        *a = (struct pool_arg){p, i};
        if (pthread_create(&p->th[i - 1], NULL, pool_main, a) != 0) {
            free(a);
            break;
        }
        p->n++;
    }
    if (p->n == 1) {
        cpu_pool_destroy(p);
        return NULL;
    }
    return p;
}

void cpu_parallel(struct cpu_backend *cb, int nthreads,
                  void (*fn)(void *ctx, int tid, int nthreads), void *ctx)
{
    struct cpu_pool *p = cb->pool;
    if (nthreads <= 1 || p == NULL) {
        for (int i = 0; i < (nthreads > 1 ? nthreads : 1); i++)
            fn(ctx, i, nthreads > 1 ? nthreads : 1);
        return;
    }
    if (nthreads > p->n)
        nthreads = p->n;
    p->fn = fn;
    p->ctx = ctx;
    p->nrun = nthreads;
    __atomic_store_n(&p->pending, p->n - 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&p->gen, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&p->sleepers, __ATOMIC_SEQ_CST) > 0)
        futex_wake_all(&p->gen);
    fn(ctx, 0, nthreads);
    for (int spins = 0; __atomic_load_n(&p->pending, __ATOMIC_ACQUIRE) != 0; spins++) {
        if (spins < CPU_POOL_SPIN)
            cpu_relax();
        else
            sched_yield(); /* a worker lost its core to another process */
    }
}

int cpu_scratch_reserve(struct cpu_backend *cb, size_t n, struct err *err)
{
    if (n <= cb->gemm_scratch_len)
        return 0;
    void *p = NULL;
    if (posix_memalign(&p, 64, n * sizeof(float)) != 0)
        return err_set(err, ENOMEM, "cpu: scratch of %zu floats: out of memory", n);
    free(cb->gemm_scratch);
    cb->gemm_scratch = p;
    cb->gemm_scratch_len = n;
    return 0;
}

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static int cpu_threads_set(krn_backend_t *be, int threads, struct err *err)
{
    struct cpu_backend *cb = (struct cpu_backend *)be;
    int n = threads > 0 ? threads : online_cpus();
    if (n != cb->threads) {
        void *p = NULL;
        if (posix_memalign(&p, 64, (size_t)n * CPU_ATTN_SCRATCH * sizeof(float)) != 0)
            return err_set(err, ENOMEM, "cpu: attention scratch for %d threads", n);
        free(cb->attn_scratch);
        cb->attn_scratch = p;
        cpu_pool_destroy(cb->pool);
        cb->pool = cpu_pool_create(n); /* NULL: every share runs on the caller */
        cb->threads = n;
    }
    /* One threading layer: OpenBLAS runs on the calling thread, and cpu_gemm
     * splits each GEMM over the backend's pool, so no OpenBLAS worker spins in
     * sched_yield while the pool runs the other ops. */
    openblas_set_num_threads(1);
    return 0;
}

void krn_cpu_process_init(char **argv)
{
    const char *v = getenv("OPENBLAS_NUM_THREADS");
    if (v != NULL && strcmp(v, "1") == 0)
        return;
    if (setenv("OPENBLAS_NUM_THREADS", "1", 1) == 0)
        execv("/proc/self/exe", argv);
    fprintf(stderr, "moat: cannot re-execute with OPENBLAS_NUM_THREADS=1 (%s); OpenBLAS's "
                    "threads may slow the first GEMMs\n", strerror(errno));
}

static void cpu_destroy(krn_backend_t *be)
{
    struct cpu_backend *cb = (struct cpu_backend *)be;
    cpu_pool_destroy(cb->pool);
    free(cb->attn_scratch);
    free(cb->gemm_scratch);
    free(cb);
}

static int cpu_sync(krn_backend_t *be, struct err *err)
{
    (void)be;
    (void)err;
    return 0;
}

static int cpu_info(const krn_backend_t *be, struct krn_device_info *out, struct err *err)
{
    (void)err;
    krn_host_info(((const struct cpu_backend *)be)->threads, out);
    return 0;
}

/* ---- row ops: a context per op and a worker that takes rows [lo, hi) ---- */

struct rows_ctx {
    int64_t rows, cols;
    float eps;
    const float *x, *x2, *gamma, *beta;
    const int32_t *ids;
    int64_t vocab;
    float *y;
    void (*row_fn)(struct rows_ctx *c, int64_t lo, int64_t hi);
};

static void rows_worker(void *p, int tid, int n)
{
    struct rows_ctx *c = p;
    int64_t per = (c->rows + n - 1) / n, lo = tid * per, hi = lo + per;
    if (hi > c->rows)
        hi = c->rows;
    if (lo < hi)
        c->row_fn(c, lo, hi);
}

static void rows_run(struct cpu_backend *cb, struct rows_ctx *c)
{
    int n = c->rows * c->cols >= CPU_PAR_MIN ? cb->threads : 1;
    if (n > c->rows)
        n = (int)c->rows;
    cpu_parallel(cb, n, rows_worker, c);
}

/* LayerNorm: two passes (mean, then centred variance) for accuracy. */
static void ln_rows(struct rows_ctx *c, int64_t lo, int64_t hi)
{
    for (int64_t r = lo; r < hi; r++) {
        const float *x = c->x + r * c->cols;
        float *y = c->y + r * c->cols;
        float mean = 0, var = 0;
        for (int64_t i = 0; i < c->cols; i++)
            mean += x[i];
        mean /= (float)c->cols;
        for (int64_t i = 0; i < c->cols; i++)
            var += (x[i] - mean) * (x[i] - mean);
        float inv = 1.0f / sqrtf(var / (float)c->cols + c->eps);
        for (int64_t i = 0; i < c->cols; i++)
            y[i] = (x[i] - mean) * inv * c->gamma[i] + c->beta[i];
    }
}

static int cpu_layernorm(krn_backend_t *be, int64_t rows, int64_t cols, float eps,
                         const float *x, const float *gamma, const float *beta, float *y,
                         struct err *err)
{
    (void)err;
    struct rows_ctx c = {.rows = rows, .cols = cols, .eps = eps, .x = x, .gamma = gamma,
                         .beta = beta, .y = y, .row_fn = ln_rows};
    rows_run((struct cpu_backend *)be, &c);
    return 0;
}

/* Elementwise ops run as one "row" per 4096 elements. */
#define CPU_CHUNK 4096

static void gelu_rows(struct rows_ctx *c, int64_t lo, int64_t hi)
{
    int64_t n = c->cols, end = hi * CPU_CHUNK < n ? hi * CPU_CHUNK : n;
    if (end > lo * CPU_CHUNK)
        cpu_gelu_run(c->x + lo * CPU_CHUNK, c->y + lo * CPU_CHUNK, end - lo * CPU_CHUNK);
}

static int cpu_gelu(krn_backend_t *be, int64_t n, const float *x, float *y, struct err *err)
{
    (void)err;
    struct rows_ctx c = {.rows = (n + CPU_CHUNK - 1) / CPU_CHUNK, .cols = n, .x = x, .y = y,
                         .row_fn = gelu_rows};
    struct cpu_backend *cb = (struct cpu_backend *)be;
    int nt = n >= CPU_PAR_MIN ? cb->threads : 1;
    cpu_parallel(cb, nt > c.rows ? (int)c.rows : nt, rows_worker, &c);
    return 0;
}

static void add_rows(struct rows_ctx *c, int64_t lo, int64_t hi)
{
    int64_t n = c->cols, end = hi * CPU_CHUNK < n ? hi * CPU_CHUNK : n;
    for (int64_t i = lo * CPU_CHUNK; i < end; i++)
        c->y[i] = c->x[i] + c->x2[i];
}

static int cpu_add(krn_backend_t *be, int64_t n, const float *a, const float *b, float *y,
                   struct err *err)
{
    (void)err;
    struct rows_ctx c = {.rows = (n + CPU_CHUNK - 1) / CPU_CHUNK, .cols = n, .x = a, .x2 = b,
                         .y = y, .row_fn = add_rows};
    struct cpu_backend *cb = (struct cpu_backend *)be;
    int nt = n >= CPU_PAR_MIN ? cb->threads : 1;
    cpu_parallel(cb, nt > c.rows ? (int)c.rows : nt, rows_worker, &c);
    return 0;
}

static void softmax_rows(struct rows_ctx *c, int64_t lo, int64_t hi)
{
    for (int64_t r = lo; r < hi; r++) {
        const float *x = c->x + r * c->cols;
        float *y = c->y + r * c->cols;
        float mx = -INFINITY, sum = 0;
        for (int64_t i = 0; i < c->cols; i++)
            mx = x[i] > mx ? x[i] : mx;
        for (int64_t i = 0; i < c->cols; i++) {
            y[i] = expf(x[i] - mx);
            sum += y[i];
        }
        float inv = 1.0f / sum;
        for (int64_t i = 0; i < c->cols; i++)
            y[i] *= inv;
    }
}

static int cpu_softmax(krn_backend_t *be, int64_t rows, int64_t cols, const float *x,
                       float *y, struct err *err)
{
    (void)err;
    struct rows_ctx c = {.rows = rows, .cols = cols, .x = x, .y = y, .row_fn = softmax_rows};
    rows_run((struct cpu_backend *)be, &c);
    return 0;
}

static void emb_rows(struct rows_ctx *c, int64_t lo, int64_t hi)
{
    for (int64_t r = lo; r < hi; r++) {
        int32_t id = c->ids[r];
        float *y = c->y + r * c->cols;
        if (id >= 0 && id < c->vocab)
            memcpy(y, c->x + (int64_t)id * c->cols, (size_t)c->cols * sizeof(float));
        else
            memset(y, 0, (size_t)c->cols * sizeof(float));
    }
}

static int cpu_embedding(krn_backend_t *be, int64_t n, int64_t dim, int64_t vocab,
                         const int32_t *ids, const float *table, float *out, struct err *err)
{
    (void)err;
    struct rows_ctx c = {.rows = n, .cols = dim, .vocab = vocab, .ids = ids, .x = table,
                         .y = out, .row_fn = emb_rows};
    rows_run((struct cpu_backend *)be, &c);
    return 0;
}

/* Mean pooling: one "row" per sequence b; x viewed as [B, T*D]. */
struct pool_ctx {
    int64_t B, T, D;
    const float *x;
    const int32_t *mask;
    float *out;
};

static void pool_worker(void *p, int tid, int n)
{
    struct pool_ctx *c = p;
    for (int64_t b = tid; b < c->B; b += n) {
        float *o = c->out + b * c->D;
        memset(o, 0, (size_t)c->D * sizeof(float));
        float cnt = 0;
        for (int64_t t = 0; t < c->T; t++) {
            if (c->mask != NULL && c->mask[b * c->T + t] == 0)
                continue;
            cnt += 1;
            const float *x = c->x + (b * c->T + t) * c->D;
            for (int64_t d = 0; d < c->D; d++)
                o[d] += x[d];
        }
        float inv = 1.0f / (cnt > 1e-9f ? cnt : 1e-9f);
        for (int64_t d = 0; d < c->D; d++)
            o[d] *= inv;
    }
}

static int cpu_mean_pool(krn_backend_t *be, int64_t B, int64_t T, int64_t D, const float *x,
                         const int32_t *mask, float *out, struct err *err)
{
    (void)err;
    struct cpu_backend *cb = (struct cpu_backend *)be;
    struct pool_ctx c = {B, T, D, x, mask, out};
    int nt = B * T * D >= CPU_PAR_MIN ? cb->threads : 1;
    cpu_parallel(cb, nt > B ? (int)B : nt, pool_worker, &c);
    return 0;
}

static void l2_rows(struct rows_ctx *c, int64_t lo, int64_t hi)
{
    for (int64_t r = lo; r < hi; r++) {
        const float *x = c->x + r * c->cols;
        float *y = c->y + r * c->cols;
        float ss = 0;
        for (int64_t i = 0; i < c->cols; i++)
            ss += x[i] * x[i];
        float nrm = sqrtf(ss);
        float inv = 1.0f / (nrm > c->eps ? nrm : c->eps);
        for (int64_t i = 0; i < c->cols; i++)
            y[i] = x[i] * inv;
    }
}

static int cpu_l2_normalize(krn_backend_t *be, int64_t rows, int64_t cols, float eps,
                            const float *x, float *y, struct err *err)
{
    (void)err;
    struct rows_ctx c = {.rows = rows, .cols = cols, .eps = eps, .x = x, .y = y,
                         .row_fn = l2_rows};
    rows_run((struct cpu_backend *)be, &c);
    return 0;
}

static const struct krn_backend_ops cpu_ops = {
    .name = "cpu",
    .destroy = cpu_destroy,
    .threads_set = cpu_threads_set,
    .sync = cpu_sync,
    .info = cpu_info,
    .mem_alloc = krn_host_mem_alloc,
    .mem_free = krn_host_mem_free,
    .mem_upload = krn_host_mem_copy,
    .mem_download = krn_host_mem_copy,
    .mem_zero = krn_host_mem_zero,
    .gemm = cpu_gemm,
    .attention = cpu_attention,
    .layernorm = cpu_layernorm,
    .gelu = cpu_gelu,
    .softmax = cpu_softmax,
    .add = cpu_add,
    .embedding = cpu_embedding,
    .mean_pool = cpu_mean_pool,
    .l2_normalize = cpu_l2_normalize,
};

krn_backend_t *krn_cpu_backend_create(int threads, struct err *err)
{
    struct cpu_backend *cb = calloc(1, sizeof *cb);
    if (cb == NULL) {
        err_set(err, ENOMEM, "backend cpu: out of host memory");
        return NULL;
    }
    cb->base.ops = &cpu_ops;
    if (cpu_threads_set(&cb->base, threads, err) != 0) {
        free(cb);
        return NULL;
    }
    return &cb->base;
}
