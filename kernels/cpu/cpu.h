/* cpu.h: private state of the "cpu" backend, shared by its files.
 *
 * One cpu_backend per handle. threads drives OpenBLAS (process-wide) and
 * cpu_parallel(). Scratch is owned by the handle: attention tiles are sized at
 * creation (per thread, for D <= 128); the GEMM conversion buffer grows on the
 * first call with a larger shape and is reused. Thread-safety: one handle per
 * thread (the scratch is not locked).
 */
#ifndef MOAT_KRN_CPU_H
#define MOAT_KRN_CPU_H

#include "kernels/krn_impl.h"

/* Attention tile sizes: queries per block, keys per block, max head dim. */
#define CPU_ATTN_BQ 64
#define CPU_ATTN_BK 64
#define CPU_ATTN_DMAX 128
/* floats of attention scratch per thread: Q [BQ, D], K^T [D, BK], V [BK, D],
 * S/P [BQ, BK], O [BQ, D], m [BQ], l [BQ], valid [BK] */
#define CPU_ATTN_SCRATCH                                                                       \
    (3 * CPU_ATTN_BQ * CPU_ATTN_DMAX + 2 * CPU_ATTN_BK * CPU_ATTN_DMAX +                      \
     CPU_ATTN_BQ * CPU_ATTN_BK + 2 * CPU_ATTN_BQ + CPU_ATTN_BK + 64)

struct cpu_pool;

struct cpu_backend {
    struct krn_backend base; /* first member */
    int threads;
    struct cpu_pool *pool;   /* threads - 1 persistent workers; NULL when threads == 1 */
    float *attn_scratch;     /* threads * CPU_ATTN_SCRATCH floats, 64-byte aligned */
    float *gemm_scratch;     /* f32 copies of bf16/f16 operands */
    size_t gemm_scratch_len; /* floats */
};

/* cpu_parallel: run fn(ctx, tid, nthreads) for tid < nthreads on the handle's
 * pool (the caller is thread 0) and wait for all. nthreads is clamped to the
 * pool's size. The pool's workers spin for a few hundred microseconds after a
 * call (the next op of a forward pass follows within microseconds), then sleep
 * on a futex. With no pool (1 thread, or pthread_create failed) every share
 * runs on the caller, one after another. OpenBLAS is kept at 1 thread so that
 * this pool is the only threading layer. */
void cpu_parallel(struct cpu_backend *cb, int nthreads,
                  void (*fn)(void *ctx, int tid, int nthreads), void *ctx);

/* cpu_scratch_reserve: grow the GEMM scratch to at least n floats. ENOMEM. */
int cpu_scratch_reserve(struct cpu_backend *cb, size_t n, struct err *err);

/* cpu_gelu_run: y[i] = 0.5 x (1 + erf(x / sqrt 2)) for i < n, vectorised
 * (cpu_gelu.c: Cody's rational erf, 4e-7 relative); y may equal x. */
void cpu_gelu_run(const float *x, float *y, int64_t n);

int cpu_gemm(krn_backend_t *be, const struct krn_gemm_args *g, const void *a, const void *b,
             const float *bias, void *c, struct err *err);
int cpu_attention(krn_backend_t *be, const struct krn_attn_args *t, const void *q,
                  const void *k, const void *v, const int32_t *mask, void *o,
                  struct err *err);

#endif
