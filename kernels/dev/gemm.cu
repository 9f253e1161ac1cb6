/* gemm.cu: the CUDA GEMM progression, each version kept, validated against
 * cuBLAS before it is timed (llm.c dev/cuda style).
 *
 * C[M,N] = A[M,K] B[K,N], row-major (v6t and v7 read the same B stored
 * transposed, [N,K]: the x W^T layout of a linear layer), M, N, K multiples of
 * 128 (the dev harness; the production copies in kernels/cuda/ take any shape).
 *   v1 naive: one thread per C element, K loop from global memory.
 *   v2 shared-memory tiling: 32x32 tiles of A and B staged in smem.
 *   v3 register blocking: 128x128 block tile, BK 8, 8x8 outputs per thread
 *      (promoted: kernels/cuda/cuda_gemm.cu gemm_kernel3, f32 fallback).
 *   v4 vectorised loads: v3 with float4 global loads and a transposed A tile
 *      (promoted, generalised to tails and B [N,K]: gemm_kernel4, f32 path).
 *   v5 tensor cores: WMMA 16x16x16 bf16, fp32 accumulate, 128x128x32 block tile
 *      (promoted: gemm_kernel5, bf16/f16 fallback for any layout).
 *   v6 mma.sync m16n8k16 with ldmatrix fragments and 128-bit cp.async loads in
 *      a 3-stage pipeline (copies of tile k+2 in flight while tile k computes);
 *      128x128x32 block tile, 8 warps of 64x32. "6" reads B [K,N] through
 *      ldmatrix.trans, "6t" B [N,K] (promoted: gemm_kernel6).
 *   v7 Hopper (sm_90a, cc 9.0 only): TMA loads with 128-byte swizzle into a
 *      6-stage mbarrier ring, wgmma m64n128k16 from smem descriptors, warp
 *      specialisation (1 producer warpgroup, 2 consumer warpgroups of 64x128),
 *      128x128x64 block tile (promoted: gemm_kernel7). The tensor maps come from
 *      cuTensorMapEncodeTiled, obtained with cudaGetDriverEntryPointByVersion:
 *      no -lcuda. Each consumer keeps one k-tile's wgmma group in flight.
 *   v8 v7's template with 128x256 tiles: wgmma m64n256k16, 4 stages, 128
 *      accumulators per consumer thread (promoted: gemm_kernel8). Not yet:
 *      setmaxnreg, persistent blocks, TMA-store epilogue, clusters with
 *      multicast (what the published 760+ TFLOP/s kernels add).
 * v6, v7 and v8 are included from kernels/cuda/cuda_gemm.cuh rather than copied, so
 * this harness times exactly the production code (an exception to "copy the
 * winner": these are the two versions whose fragment layouts are easiest to
 * get subtly wrong, and one copy is one place to fix).
 * Build: make krn-dev (nvcc, sm_80/sm_90/sm_90a). Run: build/kernels/dev/gemm [M N K]
 * Results: none measured yet - no GPU was available when v1-v8 were written
 * (2026-11), so v6-v8 have run only on the CPU emulator (tests/cusim): the
 * production backend self-checks them against v5 before selecting them. tests/gpu/run.sh runs this file at
 * 4096^3 and 8192^3 and records the rows; put the measured TFLOP/s here.
 */
#include "kernels/cuda/cuda_gemm.cuh"

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <mma.h>
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

/* v1: grid = (N/16, M/16), block = 16x16, thread = one C element. */
__global__ void gemm_kernel1(int M, int N, int K, const float *a, const float *b, float *c)
{
    int m = blockIdx.y * 16 + threadIdx.y, n = blockIdx.x * 16 + threadIdx.x;
    if (m >= M || n >= N)
        return;
    float acc = 0;
    for (int k = 0; k < K; k++)
        acc += a[(size_t)m * K + k] * b[(size_t)k * N + n];
    c[(size_t)m * N + n] = acc;
}

/* v2: grid = (N/32, M/32), block = 32x32; smem tiles As, Bs [32][32]. */
__global__ void gemm_kernel2(int M, int N, int K, const float *a, const float *b, float *c)
{
    __shared__ float As[32][32], Bs[32][32 + 1];
    int ty = threadIdx.y, tx = threadIdx.x;
    int m = blockIdx.y * 32 + ty, n = blockIdx.x * 32 + tx;
    float acc = 0;
    for (int k0 = 0; k0 < K; k0 += 32) {
        As[ty][tx] = a[(size_t)m * K + k0 + tx];
        Bs[ty][tx] = b[(size_t)(k0 + ty) * N + n];
        __syncthreads();
        for (int k = 0; k < 32; k++)
            acc += As[ty][k] * Bs[k][tx];
        __syncthreads();
    }
    (void)M;
    c[(size_t)m * N + n] = acc;
}

/* v3: grid = (N/128, M/128), block = 256; thread = 8x8 of C; As [8][128] (A^T), Bs [8][128]. */
__global__ void __launch_bounds__(256) gemm_kernel3(int M, int N, int K, const float *a,
                                                    const float *b, float *c)
{
    __shared__ float As[8][128], Bs[8][128];
    int m0 = blockIdx.y * 128, n0 = blockIdx.x * 128, tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    float acc[8][8] = {};
    for (int k0 = 0; k0 < K; k0 += 8) {
        for (int e = threadIdx.x; e < 1024; e += 256) {
            int kk = e % 8, mm = e / 8;
            As[kk][mm] = a[(size_t)(m0 + mm) * K + k0 + kk];
            int nn = e % 128, kb = e / 128;
            Bs[kb][nn] = b[(size_t)(k0 + kb) * N + n0 + nn];
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < 8; kk++) {
            float ra[8], rb[8];
#pragma unroll
            for (int i = 0; i < 8; i++) {
                ra[i] = As[kk][ty * 8 + i];
                rb[i] = Bs[kk][tx * 8 + i];
            }
#pragma unroll
            for (int i = 0; i < 8; i++)
#pragma unroll
                for (int j = 0; j < 8; j++)
                    acc[i][j] += ra[i] * rb[j];
        }
        __syncthreads();
    }
    (void)M;
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++)
            c[(size_t)(m0 + ty * 8 + i) * N + n0 + tx * 8 + j] = acc[i][j];
}

/* v4: as v3, but each thread loads one float4 of A (2 rows x ... ) and one of B
 * per k-step, and writes C with float4 stores. */
__global__ void __launch_bounds__(256) gemm_kernel4(int M, int N, int K, const float *a,
                                                    const float *b, float *c)
{
    __shared__ __align__(16) float As[8][128], Bs[8][128];
    int m0 = blockIdx.y * 128, n0 = blockIdx.x * 128, tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    float acc[8][8] = {};
    /* A tile 128x8 = 256 float4: thread -> row t/2, k quad (t%2)*4; B tile 8x128 = 256 float4 */
    int ar = threadIdx.x / 2, ak = (threadIdx.x % 2) * 4;
    int br = threadIdx.x / 32, bc = (threadIdx.x % 32) * 4;
    for (int k0 = 0; k0 < K; k0 += 8) {
        float4 av = *(const float4 *)(a + (size_t)(m0 + ar) * K + k0 + ak);
        As[ak + 0][ar] = av.x;
        As[ak + 1][ar] = av.y;
        As[ak + 2][ar] = av.z;
        As[ak + 3][ar] = av.w;
        *(float4 *)&Bs[br][bc] = *(const float4 *)(b + (size_t)(k0 + br) * N + n0 + bc);
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < 8; kk++) {
            float4 a0 = *(const float4 *)&As[kk][ty * 8], a1 = *(const float4 *)&As[kk][ty * 8 + 4];
            float4 b0 = *(const float4 *)&Bs[kk][tx * 8], b1 = *(const float4 *)&Bs[kk][tx * 8 + 4];
            float ra[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
            float rb[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
            for (int i = 0; i < 8; i++)
#pragma unroll
                for (int j = 0; j < 8; j++)
                    acc[i][j] += ra[i] * rb[j];
        }
        __syncthreads();
    }
    (void)M;
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j += 4)
            *(float4 *)(c + (size_t)(m0 + ty * 8 + i) * N + n0 + tx * 8 + j) =
                make_float4(acc[i][j], acc[i][j + 1], acc[i][j + 2], acc[i][j + 3]);
}

/* v5: WMMA bf16; block = 128x128 of C, 8 warps (2x4), warp = 64x32 = 4x2 fragments. */
__global__ void __launch_bounds__(256) gemm_kernel5(int M, int N, int K, const __nv_bfloat16 *a,
                                                    const __nv_bfloat16 *b, float *c)
{
    using namespace nvcuda;
    __shared__ __align__(32) __nv_bfloat16 As[128][48], Bs[32][144]; /* 32-byte rows (wmma) */
    int m0 = blockIdx.y * 128, n0 = blockIdx.x * 128, warp = threadIdx.x / 32;
    int wm = warp / 4, wn = warp % 4;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[4][2];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 2; j++)
            wmma::fill_fragment(acc[i][j], 0.0f);
    for (int k0 = 0; k0 < K; k0 += 32) {
        for (int e = threadIdx.x; e < 128 * 32; e += 256) {
            As[e / 32][e % 32] = a[(size_t)(m0 + e / 32) * K + k0 + e % 32];
            Bs[e / 128][e % 128] = b[(size_t)(k0 + e / 128) * N + n0 + e % 128];
        }
        __syncthreads();
        for (int kk = 0; kk < 32; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa[4];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> fb[2];
            for (int i = 0; i < 4; i++)
                wmma::load_matrix_sync(fa[i], &As[wm * 64 + i * 16][kk], 48);
            for (int j = 0; j < 2; j++)
                wmma::load_matrix_sync(fb[j], &Bs[kk][wn * 32 + j * 16], 144);
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 2; j++)
                    wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
        }
        __syncthreads();
    }
    (void)M;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 2; j++)
            wmma::store_matrix_sync(c + (size_t)(m0 + wm * 64 + i * 16) * N + n0 + wn * 32 + j * 16,
                                    acc[i][j], (unsigned)N, wmma::mem_row_major);
}

static float max_rel_err(const float *x, const float *y, size_t n)
{
    float me = 0;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(x[i] - y[i]) / (fabsf(y[i]) + 1.0f);
        me = d > me ? d : me;
    }
    return me;
}

int main(int argc, char **argv)
{
    int n_dev = 0;
    if (cudaGetDeviceCount(&n_dev) != cudaSuccess || n_dev == 0) {
        printf("gemm (dev): SKIP: no CUDA device\n");
        return 0;
    }
    int M = argc > 3 ? atoi(argv[1]) : 4096, N = argc > 3 ? atoi(argv[2]) : 4096,
        K = argc > 3 ? atoi(argv[3]) : 4096;
    if (M % 128 || N % 128 || K % 128) {
        fprintf(stderr, "gemm (dev): M, N, K must be multiples of 128\n");
        return 2;
    }
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    size_t na = (size_t)M * K, nb = (size_t)K * N, nc = (size_t)M * N;
    float *ha = (float *)malloc(na * 4), *hb = (float *)malloc(nb * 4), *hc = (float *)malloc(nc * 4),
          *hr = (float *)malloc(nc * 4);
    __nv_bfloat16 *hab = (__nv_bfloat16 *)malloc(na * 2), *hbb = (__nv_bfloat16 *)malloc(nb * 2),
                  *hbt = (__nv_bfloat16 *)malloc(nb * 2);
    srand(1);
    for (size_t i = 0; i < na; i++) {
        hab[i] = __float2bfloat16((float)rand() / RAND_MAX * 2 - 1);
        ha[i] = __bfloat162float(hab[i]); /* the same values for f32 and bf16 runs */
    }
    for (size_t i = 0; i < nb; i++) {
        hbb[i] = __float2bfloat16((float)rand() / RAND_MAX * 2 - 1);
        hb[i] = __bfloat162float(hbb[i]);
    }
    for (int k = 0; k < K; k++) /* B^T [N, K] for v6t and v7 */
        for (int n = 0; n < N; n++)
            hbt[(size_t)n * K + k] = hbb[(size_t)k * N + n];
    float *a, *b, *c, *r;
    __nv_bfloat16 *ab, *bb, *bt;
    CK(cudaMalloc(&a, na * 4));
    CK(cudaMalloc(&b, nb * 4));
    CK(cudaMalloc(&c, nc * 4));
    CK(cudaMalloc(&r, nc * 4));
    CK(cudaMalloc(&ab, na * 2));
    CK(cudaMalloc(&bb, nb * 2));
    CK(cudaMalloc(&bt, nb * 2));
    CK(cudaMemcpy(bt, hbt, nb * 2, cudaMemcpyHostToDevice));
    /* v6/v7 parameter blocks (the production kernels' epilogue: alpha 1, beta 0, f32 C) */
    gemm_params p6 = {M, N, K, K, N, N, 0, 0, 0, 1.0f, 0.0f, 0, 0, KRN_EPI_NONE,
                      KRN_DTYPE_BF16, KRN_DTYPE_F32, ab, bb, NULL, c};
    gemm_params p6t = p6, p7;
    p6t.tb = 1, p6t.ldb = K, p6t.b = bt;
    p7 = p6t;
    CK(cudaFuncSetAttribute(gemm_kernel6<__nv_bfloat16, 0>,
                            cudaFuncAttributeMaxDynamicSharedMemorySize, K6_SMEM));
    CK(cudaFuncSetAttribute(gemm_kernel6<__nv_bfloat16, 1>,
                            cudaFuncAttributeMaxDynamicSharedMemorySize, K6_SMEM));
    /* v7 only where sm_90a code runs (probe) on a cc 9.0 device */
    int *dprobe, sm90a = 0;
    CK(cudaMalloc(&dprobe, sizeof(int)));
    gemm_probe_sm90a<<<1, 1>>>(dprobe);
    CK(cudaMemcpy(&sm90a, dprobe, sizeof(int), cudaMemcpyDeviceToHost));
    CUtensorMap tma, tmb;
    k7_encode_fn enc = k7_encoder();
    bool have7 = sm90a && prop.major == 9 && prop.minor == 0 && enc != NULL &&
                 k7_tensor_map(enc, &tma, ab, true, M, K, K, K7_BM) &&
                 k7_tensor_map(enc, &tmb, bt, true, N, K, K, K7_BN);
    CUtensorMap tmb8;
    bool have8 = have7 && N % K8_BN == 0 && k7_tensor_map(enc, &tmb8, bt, true, N, K, K, K8_BN);
    if (have7)
        CK(cudaFuncSetAttribute(gemm_kernel7<__nv_bfloat16, 128>,
                                cudaFuncAttributeMaxDynamicSharedMemorySize, K7_SMEM));
    if (have8)
        CK(cudaFuncSetAttribute(gemm_kernel7<__nv_bfloat16, 256>,
                                cudaFuncAttributeMaxDynamicSharedMemorySize, K8_SMEM));
    else
        fprintf(stderr, "gemm (dev): v7 skipped: needs sm_90a code on a cc 9.0 device "
                        "(sm_%d%d, sm90a code %d, encoder %s)\n",
                prop.major, prop.minor, sm90a, enc ? "yes" : "no");
    CK(cudaMemcpy(a, ha, na * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(b, hb, nb * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(ab, hab, na * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(bb, hbb, nb * 2, cudaMemcpyHostToDevice));
    cublasHandle_t h;
    cublasCreate(&h);
    float one = 1, zero = 0;
    /* reference: cuBLAS SGEMM (row-major via C^T = B^T A^T), default math (no TF32) */
    cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, N, M, K, &one, b, N, a, K, &zero, r, N);
    CK(cudaMemcpy(hr, r, nc * 4, cudaMemcpyDeviceToHost));
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    double flops = 2.0 * M * N * K;
    static const char *const vname[] = {"", "1", "2", "3", "4", "5", "6", "6t", "7", "8"};
    for (int v = 0; v <= 9; v++) { /* v0 = cuBLAS SGEMM and bf16; 6 = v6, 7 = v6t, 8 = v7, 9 = v8 */
        if ((v == 8 && !have7) || (v == 9 && !have8))
            continue;
        for (int bf = 0; bf < (v == 0 ? 2 : 1); bf++) {
            auto launch = [&]() {
                switch (v) {
                case 0:
                    if (bf)
                        cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, N, M, K, &one, bb, CUDA_R_16BF, N,
                                     ab, CUDA_R_16BF, K, &zero, c, CUDA_R_32F, N,
                                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
                    else
                        cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, N, M, K, &one, b, N, a, K, &zero,
                                    c, N);
                    break;
                case 1: gemm_kernel1<<<dim3(N / 16, M / 16), dim3(16, 16)>>>(M, N, K, a, b, c); break;
                case 2: gemm_kernel2<<<dim3(N / 32, M / 32), dim3(32, 32)>>>(M, N, K, a, b, c); break;
                case 3: gemm_kernel3<<<dim3(N / 128, M / 128), 256>>>(M, N, K, a, b, c); break;
                case 4: gemm_kernel4<<<dim3(N / 128, M / 128), 256>>>(M, N, K, a, b, c); break;
                case 5: gemm_kernel5<<<dim3(N / 128, M / 128), 256>>>(M, N, K, ab, bb, c); break;
                case 6:
                    gemm_kernel6<__nv_bfloat16, 0><<<dim3(N / 128, M / 128), 256, K6_SMEM>>>(p6);
                    break;
                case 7:
                    gemm_kernel6<__nv_bfloat16, 1><<<dim3(N / 128, M / 128), 256, K6_SMEM>>>(p6t);
                    break;
                case 8:
                    gemm_kernel7<__nv_bfloat16, 128><<<dim3(N / 128, M / 128), 384, K7_SMEM>>>(tma, tmb,
                                                                                        p7);
                    break;
                case 9:
                    gemm_kernel7<__nv_bfloat16, 256><<<dim3(N / 256, M / 128), 384, K8_SMEM>>>(
                        tma, tmb8, p7);
                    break;
                }
            };
            CK(cudaMemset(c, 0, nc * 4));
            launch();
            CK(cudaGetLastError());
            CK(cudaDeviceSynchronize());
            CK(cudaMemcpy(hc, c, nc * 4, cudaMemcpyDeviceToHost));
            float err = max_rel_err(hc, hr, nc);
            bool half = v >= 5 || bf;
            bool ok = err <= (half ? 2e-2f : 1e-3f);
            float ms = 0;
            int reps = v == 1 ? 2 : 10;
            if (ok) {
                cudaEventRecord(e0);
                for (int i = 0; i < reps; i++)
                    launch();
                cudaEventRecord(e1);
                CK(cudaEventSynchronize(e1));
                cudaEventElapsedTime(&ms, e0, e1);
                ms /= reps;
            }
            printf("{\"op\":\"gemm\",\"version\":\"%s\",\"device\":\"%s\",\"shape\":[%d,%d,%d],"
                   "\"dtype\":\"%s\",\"valid\":%s,\"max_rel_err\":%.3g,\"time_ms\":%.4f,"
                   "\"tflops\":%.2f}\n",
                   v == 0 ? (bf ? "cublas_bf16" : "cublas_sgemm") : vname[v],
                   prop.name, M, N, K, half ? "bf16" : "f32", ok ? "true" : "false", err, ms,
                   ok ? flops / (ms * 1e9) : 0.0);
        }
    }
    cublasDestroy(h);
    return 0;
}
