/* cuda_attn.cu: the cuda backend's fused attention forward: two variants
 * promoted from kernels/dev/attention.cu (numbers kept), selection, self-check.
 *   attn_kernel1  FlashAttention-2 loop order on CUDA cores, fp32 math; any dtype
 *                 and stride: the f32 path, the fallback, and the self-check reference
 *   attn_kernel2  FlashAttention-2 on mma.sync tensor cores (cuda_attn.cuh),
 *                 bf16/f16 q/k/v, ld multiples of 8, 16-byte aligned bases
 * Selection: attn_kernel2 when enabled and the call fits it, else attn_kernel1.
 * Safety net (cuda_attn_init): attn_kernel2 runs at backend creation for
 * D = 32, 64, 128, bf16 and f16, with a key-padding mask (one sequence with a
 * single valid key, one with none), causal and not, T = 77 (a partial tile),
 * against attn_kernel1; outside atol 1e-2 + rtol 2e-2 (P is rounded to 16 bits
 * before P.V) or non-finite, it is disabled for the handle's lifetime.
 *
 * attn_kernel1: one block = 32 queries of one (b, h); 4 threads ("a quad") per query, each
 * holding D/4 interleaved dims of q and of the unnormalised output in registers.
 * K/V stream through shared memory in tiles of 32 keys (converted to f32), and
 * every key updates the running max m, sum l and output o (online softmax,
 * Milakov & Gimelshein 2018; Dao 2023). No [T, T] matrix exists anywhere:
 * memory is O(T*D) per head (the inputs) plus 2*32*D floats of smem per block.
 */
#include "kernels/cuda/cuda_attn.cuh"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ATT_BQ 32 /* queries per block */
#define ATT_BK 32 /* keys per smem tile */

/* grid = (ceil(T/32), H, B); block = 128 threads = 32 queries x 4 lanes.
 * q, k, v, o: [B, T, H, D] with token strides ld_*; mask: int32 [B, T] or NULL. */
template <int D>
__global__ void __launch_bounds__(128) attn_kernel1(struct krn_attn_args t, const void *q,
                                                    const void *k, const void *v,
                                                    const int32_t *mask, void *o)
{
    __shared__ float Ks[ATT_BK][D];
    __shared__ float Vs[ATT_BK][D];
    __shared__ int valid[ATT_BK];
    constexpr int DP = D / 4; /* dims per lane: part + 4*i */
    int64_t b = blockIdx.z, h = blockIdx.y;
    int row = threadIdx.x / 4, part = threadIdx.x % 4;
    int64_t qi = (int64_t)blockIdx.x * ATT_BQ + row;
    unsigned quad = 0xfu << ((threadIdx.x % 32) & ~3u);
    bool active = qi < t.T;
    float qr[DP], acc[DP];
    for (int i = 0; i < DP; i++) {
        qr[i] = active ? krn_dload(q, t.dtype, (b * t.T + qi) * t.ld_q + h * D + part + 4 * i) *
                             t.scale
                       : 0.0f;
        acc[i] = 0;
    }
    float m = -INFINITY, l = 0;
    int64_t q_last = (int64_t)blockIdx.x * ATT_BQ + ATT_BQ - 1;
    int64_t kend = t.causal ? min(t.T, q_last + 1) : t.T;
    for (int64_t k0 = 0; k0 < kend; k0 += ATT_BK) {
        for (int e = threadIdx.x; e < ATT_BK * D; e += blockDim.x) {
            int j = e / D, d = e % D;
            int64_t kj = k0 + j;
            bool in = kj < t.T;
            Ks[j][d] = in ? krn_dload(k, t.dtype, (b * t.T + kj) * t.ld_k + h * D + d) : 0.0f;
            Vs[j][d] = in ? krn_dload(v, t.dtype, (b * t.T + kj) * t.ld_v + h * D + d) : 0.0f;
        }
        if (threadIdx.x < ATT_BK) {
            int64_t kj = k0 + threadIdx.x;
            valid[threadIdx.x] = kj < t.T && (mask == NULL || mask[b * t.T + kj] != 0);
        }
        __syncthreads();
        if (active) {
            int nk = (int)min((int64_t)ATT_BK, kend - k0);
            for (int j = 0; j < nk; j++) {
                if (!valid[j] || (t.causal && k0 + j > qi))
                    continue; /* uniform across the quad */
                float s = 0;
#pragma unroll
                for (int i = 0; i < DP; i++)
                    s += qr[i] * Ks[j][part + 4 * i];
                s += __shfl_xor_sync(quad, s, 1);
                s += __shfl_xor_sync(quad, s, 2);
                float mn = fmaxf(m, s);
                float corr = m == -INFINITY ? 0.0f : __expf(m - mn);
                float p = __expf(s - mn);
                l = l * corr + p;
#pragma unroll
                for (int i = 0; i < DP; i++)
                    acc[i] = acc[i] * corr + p * Vs[j][part + 4 * i];
                m = mn;
            }
        }
        __syncthreads();
    }
    if (active) {
        float inv = l > 0 ? 1.0f / l : 0.0f;
        for (int i = 0; i < DP; i++)
            krn_dstore(o, t.dtype_o, (b * t.T + qi) * t.ld_o + h * D + part + 4 * i, acc[i] * inv);
    }
}

const char *const cuda_attn_variant_names[CU_ATTN_COUNT] = {"attn_kernel1", "attn_kernel2"};

static bool attn_fits(const struct cuda_backend *cb, int v, const struct krn_attn_args *t,
                      const void *q, const void *k, const void *vv)
{
    if (v == CU_ATTN_K1)
        return true;
    return v == CU_ATTN_K2 && cb->attn_v[v].runnable && t->dtype != KRN_DTYPE_F32 &&
           t->ld_q % 8 == 0 && t->ld_k % 8 == 0 && t->ld_v % 8 == 0 &&
           ((uintptr_t)q & 15) == 0 && ((uintptr_t)k & 15) == 0 && ((uintptr_t)vv & 15) == 0;
}

template <typename T>
static void attn2_launch(dim3 grid, cudaStream_t st, const struct krn_attn_args *t, const void *q,
                         const void *k, const void *v, const int32_t *mask, void *o)
{
    switch (t->D) {
    case 32:
        attn_kernel2<T, 32><<<grid, 128, a2_smem_bytes(32), st>>>(
            *t, (const T *)q, (const T *)k, (const T *)v, mask, o);
        break;
    case 64:
        attn_kernel2<T, 64><<<grid, 128, a2_smem_bytes(64), st>>>(
            *t, (const T *)q, (const T *)k, (const T *)v, mask, o);
        break;
    default:
        attn_kernel2<T, 128><<<grid, 128, a2_smem_bytes(128), st>>>(
            *t, (const T *)q, (const T *)k, (const T *)v, mask, o);
        break;
    }
}

static int attn_launch(struct cuda_backend *cb, int v, const struct krn_attn_args *t,
                       const void *q, const void *k, const void *vv, const int32_t *mask, void *o,
                       struct err *err)
{
    if (v == CU_ATTN_K2) {
        dim3 grid((unsigned)((t->T + A2_BQ - 1) / A2_BQ), (unsigned)t->H, (unsigned)t->B);
        if (t->dtype == KRN_DTYPE_BF16)
            attn2_launch<__nv_bfloat16>(grid, cb->stream, t, q, k, vv, mask, o);
        else
            attn2_launch<__half>(grid, cb->stream, t, q, k, vv, mask, o);
        CUDA_LAUNCHED("attn_kernel2", err);
        return 0;
    }
    dim3 grid((unsigned)((t->T + ATT_BQ - 1) / ATT_BQ), (unsigned)t->H, (unsigned)t->B);
    switch (t->D) {
    case 32: attn_kernel1<32><<<grid, 128, 0, cb->stream>>>(*t, q, k, vv, mask, o); break;
    case 64: attn_kernel1<64><<<grid, 128, 0, cb->stream>>>(*t, q, k, vv, mask, o); break;
    default: attn_kernel1<128><<<grid, 128, 0, cb->stream>>>(*t, q, k, vv, mask, o); break;
    }
    CUDA_LAUNCHED("attn_kernel1", err);
    return 0;
}

int cuda_attention(krn_backend_t *be, const struct krn_attn_args *t, const void *q,
                   const void *k, const void *v, const int32_t *mask, void *o,
                   struct err *err)
{
    struct cuda_backend *cb = cuda_of(be);
    if (t->D != 32 && t->D != 64 && t->D != 128)
        return err_set(err, ENOTSUP, "attention: head dim %lld (cuda supports 32, 64, 128)",
                       (long long)t->D);
    if (t->H > 65535 || t->B > 65535)
        return err_set(err, ENOTSUP, "attention: B or H > 65535 on cuda");
    int var;
    if (cb->attn_force >= 0) {
        var = cb->attn_force;
        if (!attn_fits(cb, var, t, q, k, v))
            return err_set(err, ENOTSUP, "attention: forced %s cannot take dtype %s, ld %lld/%lld/%lld",
                           cuda_attn_variant_names[var], krn_dtype_names[t->dtype],
                           (long long)t->ld_q, (long long)t->ld_k, (long long)t->ld_v);
    } else {
        var = cb->attn_v[CU_ATTN_K2].enabled && attn_fits(cb, CU_ATTN_K2, t, q, k, v) ? CU_ATTN_K2
                                                                                      : CU_ATTN_K1;
    }
    CUDA_TRY(cudaSetDevice(cb->dev), err);
    return attn_launch(cb, var, t, q, k, v, mask, o, err);
}

/* ---- safety net ---- */

static float attn_check_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (float)(((*s * 2685821657736338717ull) >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

int cuda_attn_init(struct cuda_backend *cb, struct err *err)
{
    static const char *const notes[CU_ATTN_COUNT] = {
        "any dtype and stride, fp32 on CUDA cores: reference for kernel 2",
        "bf16/f16, ld multiple of 8 (FlashAttention-2 on mma.sync)"};
    for (int v = 0; v < CU_ATTN_COUNT; v++) {
        memset(&cb->attn_v[v], 0, sizeof cb->attn_v[v]);
        snprintf(cb->attn_v[v].note, sizeof cb->attn_v[v].note, "%s", notes[v]);
    }
    cb->attn_force = -1;
    cb->attn_v[CU_ATTN_K1].runnable = cb->attn_v[CU_ATTN_K1].enabled = true;
    struct cuda_variant *cv = &cb->attn_v[CU_ATTN_K2];
    cv->runnable = cb->cc_major >= 8;
    if (!cv->runnable)
        return 0;
#define A2_ATTR(T, D)                                                                          \
    CUDA_TRY(cudaFuncSetAttribute(attn_kernel2<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize, \
                                  a2_smem_bytes(D)),                                           \
             err)
    A2_ATTR(__nv_bfloat16, 32);
    A2_ATTR(__nv_bfloat16, 64);
    A2_ATTR(__nv_bfloat16, 128);
    A2_ATTR(__half, 32);
    A2_ATTR(__half, 64);
    A2_ATTR(__half, 128);
#undef A2_ATTR
    /* B = 4 sequences of T = 77 (a full tile and a partial one), H = 2: sequence 0
     * all keys valid, 1 every third key masked, 2 only key 40 valid (with causal,
     * rows before 40 see no key), 3 no valid key (every row must be 0) */
    const int B = 4, T = 77, H = 2, DM = 128;
    size_t n = (size_t)B * T * H * DM;
    float *h = (float *)malloc(n * 3 * 4 + 2 * n * 4);
    uint16_t *h16 = (uint16_t *)malloc(n * 3 * 2);
    int32_t hm[4 * 77];
    if (h == NULL || h16 == NULL) {
        free(h), free(h16);
        return err_set(err, ENOMEM, "attention self-check: host memory");
    }
    for (int i = 0; i < B * T; i++) {
        int b = i / T, j = i % T;
        hm[i] = b == 0 ? 1 : b == 1 ? (j % 3 != 0) : b == 2 ? (j == 40) : 0;
    }
    uint64_t seed = 0x2545f4914f6cdd1dull;
    for (size_t i = 0; i < 3 * n; i++)
        h[i] = attn_check_rand(&seed) * 2.0f; /* logits up to ~|scale D|: a peaked softmax */
    char *dev = NULL;
    CUDA_TRY(cudaMalloc(&dev, n * 3 * 2 + 2 * n * 4 + sizeof hm), err);
    char *dq = dev, *dk = dq + n * 2, *dv = dk + n * 2, *o1 = dv + n * 2, *o2 = o1 + n * 4;
    int32_t *dm = (int32_t *)(o2 + n * 4);
    float *r1 = h + 3 * n, *r2 = r1 + n;
    double worst = 0;
    int rc = 0;
    cudaError_t e = cudaMemcpyAsync(dm, hm, sizeof hm, cudaMemcpyHostToDevice, cb->stream);
    if (e != cudaSuccess)
        rc = cuda_fail(err, e, "cudaMemcpyAsync (attention self-check)");
    for (int dt = KRN_DTYPE_BF16; dt <= KRN_DTYPE_F16 && rc == 0; dt++) {
        if (dt == KRN_DTYPE_BF16)
            krn_f32_to_bf16(h, h16, 3 * n);
        else
            krn_f32_to_f16(h, h16, 3 * n);
        if ((e = cudaMemcpyAsync(dq, h16, 3 * n * 2, cudaMemcpyHostToDevice, cb->stream)) !=
            cudaSuccess) {
            rc = cuda_fail(err, e, "cudaMemcpyAsync (attention self-check)");
            break;
        }
        for (int D = 32; D <= 128 && rc == 0; D *= 2)
            for (int causal = 0; causal < 2 && rc == 0; causal++) {
                struct krn_attn_args t = {};
                t.B = B, t.T = T, t.H = H, t.D = D;
                t.ld_q = t.ld_k = t.ld_v = t.ld_o = H * D;
                t.scale = 1.0f / sqrtf((float)D);
                t.causal = causal != 0;
                t.dtype = (enum krn_dtype)dt;
                t.dtype_o = KRN_DTYPE_F32;
                rc = attn_launch(cb, CU_ATTN_K2, &t, dq, dk, dv, dm, o1, err);
                if (rc == 0)
                    rc = attn_launch(cb, CU_ATTN_K1, &t, dq, dk, dv, dm, o2, err);
                size_t no = (size_t)B * T * H * D;
                if (rc == 0 && (e = cudaMemcpyAsync(r1, o1, no * 4, cudaMemcpyDeviceToHost,
                                                    cb->stream)) == cudaSuccess)
                    e = cudaMemcpyAsync(r2, o2, no * 4, cudaMemcpyDeviceToHost, cb->stream);
                if (rc == 0 && e == cudaSuccess)
                    e = cudaStreamSynchronize(cb->stream);
                if (rc == 0 && e != cudaSuccess)
                    rc = cuda_fail(err, e, "attention self-check (a kernel faulted)");
                for (size_t i = 0; rc == 0 && i < no; i++) {
                    double d = fabs((double)r1[i] - r2[i]) / (1e-2 + 2e-2 * fabs((double)r2[i]));
                    if (!isfinite(r1[i]) || !isfinite(d))
                        d = INFINITY;
                    worst = d > worst ? d : worst;
                }
            }
    }
    cudaFree(dev);
    free(h), free(h16);
    cv->checked = rc == 0;
    cv->check_err = worst;
    cv->enabled = rc == 0 && worst <= 1.0;
    if (rc == 0 && !cv->enabled)
        snprintf(cv->note, sizeof cv->note, "disabled: self-check error %.3g x tolerance vs "
                 "attn_kernel1", worst);
    return rc;
}
