/* krn_bench.h: hooks into krn_bench_run for programs that link a reference the
 * library must not depend on (cuBLAS in bench-kernels and the GPU tests).
 * Private to kernels/, bench/ and tests/. Thread-safety: set once at start-up.
 */
#ifndef MOAT_KRN_BENCH_H
#define MOAT_KRN_BENCH_H

#include "kernels/krn.h"

/* A reference GEMM on the same backend's buffers (device pointers on cuda),
 * same semantics as krn_gemm without epilogue. Returns 0, or -1 with *err. */
struct krn_bench_ref {
    const char *name; /* "cublas" */
    const char *backend; /* the backend it applies to: "cuda" */
    int (*gemm)(void *ctx, krn_backend_t *be, const struct krn_gemm_args *g, const krn_buf_t *a,
                const krn_buf_t *b, krn_buf_t *c, struct err *err);
    void *ctx;
};

/* krn_bench_ref_set: use ref for GEMM rows on ref->backend (NULL clears).
 * Borrowed: ref must stay valid while krn_bench_run may be called. */
void krn_bench_ref_set(const struct krn_bench_ref *ref);

#endif
