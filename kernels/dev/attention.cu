/* attention.cu: the CUDA fused attention forward progression, each version kept,
 * validated against a plain reference kernel before it is timed (llm.c dev/cuda style).
 *
 * O = softmax(scale Q K^T [+ causal mask]) V, q/k/v/o [B, T, H, D] bf16 (o f32),
 * FLOPs 4 B H T^2 D (halved when causal), as krn_op_flops counts them.
 *   v0 reference: one warp per query row, exact online softmax in fp32, K/V
 *      straight from global memory (obviously right, slow); the validation truth.
 *   v1 FlashAttention-2 loop order on CUDA cores: a block = 32 queries of one
 *      (b, h), 4 lanes per query, K/V tiles of 32 keys converted to f32 in smem,
 *      online softmax per key (promoted: kernels/cuda/cuda_attn.cu attn_kernel1,
 *      the f32 path and the fallback; copied below).
 *   v2 FlashAttention-2 on tensor cores: 4 warps x 16 query rows, Q fragments
 *      in registers, S = Q K^T and O += P V on mma.sync m16n8k16 (fp32
 *      accumulation), P reused from the S accumulators as A fragments without a
 *      trip through smem, K/V tiles of 64 keys double-buffered with cp.async,
 *      exp2-based online softmax (promoted: attn_kernel2; included from
 *      kernels/cuda/cuda_attn.cuh so that this harness times the production code).
 *   Not yet: 128-query blocks with 8 warps for D = 128, FA-3's wgmma/TMA
 *   pipelining on Hopper (the 497/648 TFLOP/s figures in FIGURES.md).
 * Build: make krn-dev. Run: build/kernels/dev/attention [B T H D causal]
 * Results: none measured yet - no GPU was available when this was written
 * (2026-11); v2 has never run, and the backend self-checks it against v1 before
 * selecting it. tests/gpu/run.sh records rows at B 1, T 16384, hidden 2048
 * (FlashAttention-2 forward on an H100: 324 TFLOP/s at D 64, 370 at D 128).
 */
#include "kernels/cuda/cuda_attn.cuh"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define CK(x)                                                                                   \
    do {                                                                                        \
        cudaError_t e_ = (x);                                                                   \
        if (e_ != cudaSuccess) {                                                                \
            fprintf(stderr, "%s: %s\n", #x, cudaGetErrorName(e_));                              \
            exit(1);                                                                            \
        }                                                                                       \
    } while (0)

/* v0: grid = (T, H, B), block = 32: one warp per query row; lane owns dims lane + 32 i. */
template <int D>
__global__ void attn_kernel0(struct krn_attn_args t, const __nv_bfloat16 *q,
                             const __nv_bfloat16 *k, const __nv_bfloat16 *v, float *o)
{
    int64_t b = blockIdx.z, h = blockIdx.y, i = blockIdx.x;
    int lane = threadIdx.x;
    float qr[D / 32], acc[D / 32];
    for (int d = 0; d < D / 32; d++) {
        qr[d] = __bfloat162float(q[(b * t.T + i) * t.ld_q + h * D + lane + 32 * d]);
        acc[d] = 0;
    }
    float m = -INFINITY, l = 0;
    int64_t jend = t.causal ? i + 1 : t.T;
    for (int64_t j = 0; j < jend; j++) {
        float s = 0;
        for (int d = 0; d < D / 32; d++)
            s += qr[d] * __bfloat162float(k[(b * t.T + j) * t.ld_k + h * D + lane + 32 * d]);
        for (int off = 16; off > 0; off >>= 1)
            s += __shfl_xor_sync(0xffffffffu, s, off);
        s *= t.scale;
        float mn = fmaxf(m, s), corr = expf(m - mn), p = expf(s - mn);
        l = l * corr + p;
        for (int d = 0; d < D / 32; d++)
            acc[d] = acc[d] * corr +
                     p * __bfloat162float(v[(b * t.T + j) * t.ld_v + h * D + lane + 32 * d]);
        m = mn;
    }
    for (int d = 0; d < D / 32; d++)
        o[(b * t.T + i) * t.ld_o + h * D + lane + 32 * d] = acc[d] / l;
}

/* ---- v1: a copy of kernels/cuda/cuda_attn.cu attn_kernel1 ---- */
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


template <int D> static void run_version(int ver, dim3 g0, const struct krn_attn_args &t,
                                         const __nv_bfloat16 *q, const __nv_bfloat16 *k,
                                         const __nv_bfloat16 *v, float *o)
{
    if (ver == 0)
        attn_kernel0<D><<<g0, 32>>>(t, q, k, v, o);
    else if (ver == 1)
        attn_kernel1<D><<<dim3((unsigned)((t.T + ATT_BQ - 1) / ATT_BQ), (unsigned)t.H,
                               (unsigned)t.B), 128>>>(t, q, k, v, NULL, o);
    else
        attn_kernel2<__nv_bfloat16, D><<<dim3((unsigned)((t.T + A2_BQ - 1) / A2_BQ),
                                              (unsigned)t.H, (unsigned)t.B),
                                         128, a2_smem_bytes(D)>>>(t, q, k, v, NULL, o);
}

int main(int argc, char **argv)
{
    int n_dev = 0;
    if (cudaGetDeviceCount(&n_dev) != cudaSuccess || n_dev == 0) {
        printf("attention (dev): SKIP: no CUDA device\n");
        return 0;
    }
    int B = argc > 5 ? atoi(argv[1]) : 1, T = argc > 5 ? atoi(argv[2]) : 4096,
        H = argc > 5 ? atoi(argv[3]) : 16, D = argc > 5 ? atoi(argv[4]) : 128,
        causal = argc > 5 ? atoi(argv[5]) : 0;
    if (D != 32 && D != 64 && D != 128) {
        fprintf(stderr, "attention (dev): D must be 32, 64 or 128\n");
        return 2;
    }
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    size_t n = (size_t)B * T * H * D;
    __nv_bfloat16 *h = (__nv_bfloat16 *)malloc(3 * n * 2);
    float *ref = (float *)malloc(n * 4), *got = (float *)malloc(n * 4);
    srand(1);
    for (size_t i = 0; i < 3 * n; i++)
        h[i] = __float2bfloat16((float)rand() / RAND_MAX * 2 - 1);
    __nv_bfloat16 *dq;
    float *o, *o0;
    CK(cudaMalloc(&dq, 3 * n * 2));
    CK(cudaMalloc(&o, n * 4));
    CK(cudaMalloc(&o0, n * 4));
    CK(cudaMemcpy(dq, h, 3 * n * 2, cudaMemcpyHostToDevice));
    const __nv_bfloat16 *dk = dq + n, *dv = dq + 2 * n;
    struct krn_attn_args t = {};
    t.B = B, t.T = T, t.H = H, t.D = D, t.ld_q = t.ld_k = t.ld_v = t.ld_o = (int64_t)H * D;
    t.scale = 1.0f / sqrtf((float)D), t.causal = causal != 0;
    t.dtype = KRN_DTYPE_BF16, t.dtype_o = KRN_DTYPE_F32;
    CK(cudaFuncSetAttribute(attn_kernel2<__nv_bfloat16, 32>,
                            cudaFuncAttributeMaxDynamicSharedMemorySize, a2_smem_bytes(32)));
    CK(cudaFuncSetAttribute(attn_kernel2<__nv_bfloat16, 64>,
                            cudaFuncAttributeMaxDynamicSharedMemorySize, a2_smem_bytes(64)));
    CK(cudaFuncSetAttribute(attn_kernel2<__nv_bfloat16, 128>,
                            cudaFuncAttributeMaxDynamicSharedMemorySize, a2_smem_bytes(128)));
    dim3 g0((unsigned)T, (unsigned)H, (unsigned)B);
    auto run = [&](int ver, float *out) {
        if (D == 32) run_version<32>(ver, g0, t, dq, dk, dv, out);
        else if (D == 64) run_version<64>(ver, g0, t, dq, dk, dv, out);
        else run_version<128>(ver, g0, t, dq, dk, dv, out);
    };
    run(0, o0);
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(ref, o0, n * 4, cudaMemcpyDeviceToHost));
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    double flops = 4.0 * B * H * (double)T * T * D / (causal ? 2 : 1);
    for (int ver = 0; ver <= 2; ver++) {
        CK(cudaMemset(o, 0, n * 4));
        run(ver, o);
        CK(cudaGetLastError());
        CK(cudaDeviceSynchronize());
        CK(cudaMemcpy(got, o, n * 4, cudaMemcpyDeviceToHost));
        double me = 0;
        for (size_t i = 0; i < n; i++) {
            double d = fabs((double)got[i] - ref[i]);
            me = d > me || d != d ? d : me;
        }
        bool ok = me <= (ver == 2 ? 1e-2 : 1e-4); /* v2 rounds P to bf16 */
        float ms = 0;
        int reps = ver == 0 ? 1 : 10;
        if (ok) {
            cudaEventRecord(e0);
            for (int i = 0; i < reps; i++)
                run(ver, o);
            cudaEventRecord(e1);
            CK(cudaEventSynchronize(e1));
            cudaEventElapsedTime(&ms, e0, e1);
            ms /= reps;
        }
        printf("{\"op\":\"attention\",\"version\":\"%d\",\"device\":\"%s\",\"shape\":[%d,%d,%d,%d,%d],"
               "\"dtype\":\"bf16\",\"valid\":%s,\"max_abs_err\":%.3g,\"time_ms\":%.4f,"
               "\"tflops\":%.2f}\n",
               ver, prop.name, B, T, H, D, causal, ok ? "true" : "false", me, ms,
               ok ? flops / (ms * 1e9) : 0.0);
    }
    return 0;
}
