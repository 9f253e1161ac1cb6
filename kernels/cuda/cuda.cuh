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

struct cuda_backend {
    struct krn_backend base; /* first member */
    int dev;
    cudaStream_t stream;
    int cc_major, cc_minor, sms;
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

/* Ops implemented in their own files. */
int cuda_gemm(krn_backend_t *be, const struct krn_gemm_args *g, const void *a, const void *b,
              const float *bias, void *c, struct err *err);
int cuda_attention(krn_backend_t *be, const struct krn_attn_args *t, const void *q,
                   const void *k, const void *v, const int32_t *mask, void *o,
                   struct err *err);

#endif
