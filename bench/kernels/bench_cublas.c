/* bench_cublas.c: cuBLAS GEMM as the reference of benchmark rows (see bench_cublas.h). */
#include "bench/kernels/bench_cublas.h"

#include <errno.h>
#include <string.h>

#include "kernels/krn_bench.h"

#ifdef KRN_TEST_CUBLAS
#include <cublas_v2.h>
#include <cuda_runtime.h>

static cublasHandle_t handle;

/* Row-major C = op(A) op(B) computed as column-major C^T = op(B)^T op(A)^T. */
static int cublas_gemm(void *ctx, krn_backend_t *be, const struct krn_gemm_args *g,
                       const krn_buf_t *a, const krn_buf_t *b, krn_buf_t *c, struct err *err)
{
    cublasHandle_t h = ctx;
    cublasSetStream(h, (cudaStream_t)krn_backend_cuda_stream(be));
    static const cudaDataType_t ty[] = {CUDA_R_32F, CUDA_R_16BF, CUDA_R_16F};
    float alpha = g->alpha, beta = g->beta;
    int64_t lda = g->lda ? g->lda : (g->trans_a ? g->M : g->K);
    int64_t ldb = g->ldb ? g->ldb : (g->trans_b ? g->K : g->N), ldc = g->ldc ? g->ldc : g->N;
    cublasStatus_t st = cublasGemmStridedBatchedEx(
        h, g->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, g->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
        (int)g->N, (int)g->M, (int)g->K, &alpha, krn_buf_ptr((krn_buf_t *)b), ty[g->dtype_ab],
        (int)ldb, g->stride_b, krn_buf_ptr((krn_buf_t *)a), ty[g->dtype_ab], (int)lda,
        g->stride_a, &beta, krn_buf_ptr(c), ty[g->dtype_c], (int)ldc, g->stride_c,
        (int)(g->batch ? g->batch : 1), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (st != CUBLAS_STATUS_SUCCESS)
        return err_set(err, EIO, "cublasGemmStridedBatchedEx: %s", cublasGetStatusName(st));
    return 0;
}

static struct krn_bench_ref ref = {"cublas", "cuda", cublas_gemm, NULL};

bool bench_cublas_install(krn_backend_t *be)
{
    if (be == NULL || strcmp(krn_backend_name(be), "cuda") != 0)
        return false;
    if (handle == NULL && cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS) {
        handle = NULL;
        return false;
    }
    ref.ctx = handle;
    krn_bench_ref_set(&ref);
    return true;
}

void bench_cublas_remove(void)
{
    krn_bench_ref_set(NULL);
    if (handle != NULL)
        cublasDestroy(handle);
    handle = NULL;
}
#else
bool bench_cublas_install(krn_backend_t *be)
{
    (void)be;
    return false;
}

void bench_cublas_remove(void)
{
}
#endif
