/* bench_cublas.h: cuBLAS as the GEMM reference of benchmark rows (kernels/krn_bench.h).
 *
 * krn_bench_run puts "ref", "ref_time_ms" and "pct_of_ref" in each GEMM row;
 * on the cuda backend the reference is cuBLAS (cublasGemmStridedBatchedEx,
 * fp32 accumulation, default math: no TF32 for f32). Nothing links cuBLAS:
 * it is dlopen'ed on the first install, so the worker and its rank processes
 * do not carry its ~150 MiB unless a bench task on a GPU asks for it. Used by
 * bench-kernels and the worker's bench task (worker/wrk_bench.c). Built with
 * KRN_TEST_CUBLAS (CUDA builds) it is real; otherwise both calls are no-ops.
 * Thread-safety: one installation per process, from one thread.
 */
#ifndef MOAT_BENCH_CUBLAS_H
#define MOAT_BENCH_CUBLAS_H

#include <stdbool.h>

#include "kernels/krn.h"

/* bench_cublas_install: load cuBLAS, create a handle and make it the GEMM
 * reference for rows on be (a "cuda" backend; other backends: no-op, false).
 * Returns true when installed. A failure (no libcublas found, no device, a
 * cuBLAS error) leaves rows without a reference and returns false; never
 * fatal. */
bool bench_cublas_install(krn_backend_t *be);

/* bench_cublas_loadable: whether libcublas could be loaded and its five calls
 * resolved (loads it; needs no GPU). false in builds without CUDA. */
bool bench_cublas_loadable(void);

/* bench_cublas_remove: clear the reference and destroy the handle (no-op when
 * none is installed). */
void bench_cublas_remove(void);

#endif
