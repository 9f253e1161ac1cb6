/* bench_cublas.h: cuBLAS as the GEMM reference of benchmark rows (kernels/krn_bench.h).
 *
 * krn_bench_run puts "ref", "ref_time_ms" and "pct_of_ref" in each GEMM row;
 * on the cuda backend the reference is cuBLAS (cublasGemmStridedBatchedEx,
 * fp32 accumulation, default math: no TF32 for f32). The kernels library
 * never links cuBLAS; the programs that report against it do: bench-kernels
 * and the worker's bench task (worker/wrk_bench.c). Built with KRN_TEST_CUBLAS
 * (CUDA builds) it is real; otherwise both calls are no-ops.
 * Thread-safety: one installation per process, from one thread.
 */
#ifndef MOAT_BENCH_CUBLAS_H
#define MOAT_BENCH_CUBLAS_H

#include <stdbool.h>

#include "kernels/krn.h"

/* bench_cublas_install: create a cuBLAS handle and make it the GEMM reference
 * for rows on be (a "cuda" backend; other backends: no-op, false). Returns
 * true when installed. A failure (no device, cuBLAS error) leaves rows without
 * a reference and returns false; never fatal. */
bool bench_cublas_install(krn_backend_t *be);

/* bench_cublas_remove: clear the reference and destroy the handle (no-op when
 * none is installed). */
void bench_cublas_remove(void);

#endif
