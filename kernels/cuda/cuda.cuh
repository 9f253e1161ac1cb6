/* cuda.cuh: private state and helpers of the "cuda" backend (nvcc only).
 *
 * One cuda_backend per handle: a device index, one non-blocking stream, and
 * the device's properties read once at creation. Every CUDA runtime error is
 * turned into a struct err where it happens: allocation failure -> ENOMEM,
 * anything else -> EIO with the call and cudaGetErrorName.
 * Thread-safety: one handle per thread; each call sets the device first.
 */
#ifndef MOAT_KRN_CUDA_CUH
#define MOAT_KRN_CUDA_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <errno.h>

extern "C" {
#include "shared/err.h" /* shared/err.h has no C++ guard of its own */
}
#include "kernels/krn_impl.h"

/* Kernel variants (krn.h "kernel variants"); numbers are kernels/dev/ versions. */
enum cuda_gemm_variant {
    CU_GEMM_K3, /* f32 CUDA cores, any layout: the f32 fallback and the reference for K4 */
    CU_GEMM_K4, /* f32 CUDA cores, float4 loads, A row-major, aligned */
    CU_GEMM_K5, /* WMMA bf16/f16, any layout: the reference for K6, K7 and K8 */
    CU_GEMM_K6, /* mma.sync + cp.async pipeline, sm_80+ */
    CU_GEMM_K7, /* TMA + wgmma, warp-specialised, sm_90a, 128x128 tiles */
    CU_GEMM_K8, /* kernel 7 with 128x256 tiles */
    CU_GEMM_COUNT
};
enum cuda_attn_variant {
    CU_ATTN_K1, /* f32 CUDA cores, any dtype/stride: the reference for K2 */
    CU_ATTN_K2, /* FlashAttention-2 forward on mma.sync, bf16/f16 */
    CU_ATTN_COUNT
};

struct cuda_variant {
    bool runnable, checked, enabled;
    double check_err;
    char note[96];
};

struct cuda_backend {
    struct krn_backend base; /* first member */
    int dev;
    cudaStream_t stream;
    int cc_major, cc_minor, sms;
    bool sm90a;       /* this module runs sm_90a code on the device (probed) */
    void *k7_encode;  /* cuTensorMapEncodeTiled, or NULL */
    struct cuda_variant gemm_v[CU_GEMM_COUNT], attn_v[CU_ATTN_COUNT];
    int gemm_force, attn_force; /* forced variant, or -1: automatic selection */
};

static inline struct cuda_backend *cuda_of(krn_backend_t *be)
{
    return (struct cuda_backend *)be;
}

/* cuda_fail: translate rc from call into *err; returns -1. */
static inline int cuda_fail(struct err *err, cudaError_t rc, const char *call)
{
    return err_set(err, rc == cudaErrorMemoryAllocation ? ENOMEM : EIO, "cuda: %s: %s (%s)", call,
                   cudaGetErrorName(rc), cudaGetErrorString(rc));
}

/* CUDA_TRY: return -1 with *err when a runtime call fails. */
#define CUDA_TRY(call, err)                                                                      \
    do {                                                                                         \
        cudaError_t rc_ = (call);                                                                \
        if (rc_ != cudaSuccess)                                                                  \
            return cuda_fail((err), rc_, #call);                                                 \
    } while (0)

/* CUDA_LAUNCHED: check a kernel launch (configuration errors; faults surface at sync). */
#define CUDA_LAUNCHED(name, err)                                                                 \
    do {                                                                                         \
        cudaError_t rc_ = cudaGetLastError();                                                    \
        if (rc_ != cudaSuccess)                                                                  \
            return cuda_fail((err), rc_, "launch " name);                                        \
    } while (0)

/* Element access by dtype on the device. */
__device__ __forceinline__ float krn_dload(const void *p, int dt, int64_t i)
{
    if (dt == KRN_DTYPE_BF16)
        return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    if (dt == KRN_DTYPE_F16)
        return __half2float(((const __half *)p)[i]);
    return ((const float *)p)[i];
}

__device__ __forceinline__ void krn_dstore(void *p, int dt, int64_t i, float v)
{
    if (dt == KRN_DTYPE_BF16)
        ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
    else if (dt == KRN_DTYPE_F16)
        ((__half *)p)[i] = __float2half_rn(v);
    else
        ((float *)p)[i] = v;
}

__device__ __forceinline__ float krn_dgelu(float x)
{
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
}

/* Variant names, indexed by the enums above ("gemm_kernel6", "attn_kernel2"). */
extern const char *const cuda_gemm_variant_names[CU_GEMM_COUNT];
extern const char *const cuda_attn_variant_names[CU_ATTN_COUNT];

/* cuda_gemm_init / cuda_attn_init: at backend creation, after the stream
 * exists: decide which variants the device can run, set their smem limits and
 * run the self-checks (small problems against K5 / attention K1), filling
 * cb->gemm_v / cb->attn_v. EIO/ENOMEM only when the device itself fails; a
 * variant that disagrees is disabled, not an error. */
int cuda_gemm_init(struct cuda_backend *cb, struct err *err);
int cuda_attn_init(struct cuda_backend *cb, struct err *err);

/* Ops implemented in their own files. */
int cuda_gemm(krn_backend_t *be, const struct krn_gemm_args *g, const void *a, const void *b,
              const float *bias, void *c, struct err *err);
int cuda_attention(krn_backend_t *be, const struct krn_attn_args *t, const void *q,
                   const void *k, const void *v, const int32_t *mask, void *o,
                   struct err *err);

#endif
