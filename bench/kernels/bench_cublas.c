/* bench_cublas.c: cuBLAS GEMM as the reference of benchmark rows (see bench_cublas.h). */
#include "bench/kernels/bench_cublas.h"

#include <errno.h>
#include <string.h>

#include "kernels/krn_bench.h"

#ifdef KRN_TEST_CUBLAS
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <dlfcn.h>

/* cuBLAS is loaded on first use (dlopen), not linked: libcublas and the
 * libcublasLt it pulls in add ~150 MiB of resident memory to every process that
 * loads them, and the worker (and each of its rank processes) would pay that
 * for a reference only bench tasks on a GPU use. */
static struct {
    void *lib;
    cublasHandle_t handle;
    cublasStatus_t (*create)(cublasHandle_t *);
    cublasStatus_t (*destroy)(cublasHandle_t);
    cublasStatus_t (*set_stream)(cublasHandle_t, cudaStream_t);
    const char *(*status_name)(cublasStatus_t);
    cublasStatus_t (*gemm)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                           const void *, const void *, cudaDataType_t, int, long long int,
                           const void *, cudaDataType_t, int, long long int, const void *, void *,
                           cudaDataType_t, int, long long int, int, cublasComputeType_t,
                           cublasGemmAlgo_t);
} cb;

/* load: dlopen libcublas (its soname for this CUDA, then the link name, then
 * the CUDA_HOME it was built against) and resolve the five calls. */
static bool load(void)
{
    if (cb.lib != NULL)
        return true;
    static const char *const names[] = {"libcublas.so." KRN_CUBLAS_MAJOR, "libcublas.so",
                                        KRN_CUDA_LIBDIR "/libcublas.so." KRN_CUBLAS_MAJOR};
    for (size_t i = 0; i < sizeof names / sizeof names[0] && cb.lib == NULL; i++)
        cb.lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (cb.lib == NULL)
        return false;
    *(void **)&cb.create = dlsym(cb.lib, "cublasCreate_v2");
    *(void **)&cb.destroy = dlsym(cb.lib, "cublasDestroy_v2");
    *(void **)&cb.set_stream = dlsym(cb.lib, "cublasSetStream_v2");
    *(void **)&cb.status_name = dlsym(cb.lib, "cublasGetStatusName");
    *(void **)&cb.gemm = dlsym(cb.lib, "cublasGemmStridedBatchedEx");
    if (!cb.create || !cb.destroy || !cb.set_stream || !cb.status_name || !cb.gemm) {
        dlclose(cb.lib);
        memset(&cb, 0, sizeof cb);
        return false;
    }
    return true;
}

/* Row-major C = op(A) op(B) computed as column-major C^T = op(B)^T op(A)^T. */
static int cublas_gemm(void *ctx, krn_backend_t *be, const struct krn_gemm_args *g,
                       const krn_buf_t *a, const krn_buf_t *b, krn_buf_t *c, struct err *err)
{
    cublasHandle_t h = ctx;
    cb.set_stream(h, (cudaStream_t)krn_backend_cuda_stream(be));
    static const cudaDataType_t ty[] = {CUDA_R_32F, CUDA_R_16BF, CUDA_R_16F};
    float alpha = g->alpha, beta = g->beta;
    int64_t lda = g->lda ? g->lda : (g->trans_a ? g->M : g->K);
    int64_t ldb = g->ldb ? g->ldb : (g->trans_b ? g->K : g->N), ldc = g->ldc ? g->ldc : g->N;
    cublasStatus_t st = cb.gemm(
        h, g->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, g->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
        (int)g->N, (int)g->M, (int)g->K, &alpha, krn_buf_ptr((krn_buf_t *)b), ty[g->dtype_ab],
        (int)ldb, g->stride_b, krn_buf_ptr((krn_buf_t *)a), ty[g->dtype_ab], (int)lda,
        g->stride_a, &beta, krn_buf_ptr(c), ty[g->dtype_c], (int)ldc, g->stride_c,
        (int)(g->batch ? g->batch : 1), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (st != CUBLAS_STATUS_SUCCESS)
        return err_set(err, EIO, "cublasGemmStridedBatchedEx: %s", cb.status_name(st));
    return 0;
}

static struct krn_bench_ref ref = {"cublas", "cuda", cublas_gemm, NULL};

bool bench_cublas_loadable(void)
{
    return load();
}

bool bench_cublas_install(krn_backend_t *be)
{
    if (be == NULL || strcmp(krn_backend_name(be), "cuda") != 0 || !load())
        return false;
    if (cb.handle == NULL && cb.create(&cb.handle) != CUBLAS_STATUS_SUCCESS) {
        cb.handle = NULL;
        return false;
    }
    ref.ctx = cb.handle;
    krn_bench_ref_set(&ref);
    return true;
}

void bench_cublas_remove(void)
{
    krn_bench_ref_set(NULL);
    if (cb.handle != NULL)
        cb.destroy(cb.handle);
    cb.handle = NULL;
}
#else
bool bench_cublas_loadable(void)
{
    return false;
}

bool bench_cublas_install(krn_backend_t *be)
{
    (void)be;
    return false;
}

void bench_cublas_remove(void)
{
}
#endif
