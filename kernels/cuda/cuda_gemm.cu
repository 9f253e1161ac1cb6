/* cuda_gemm.cu: the cuda backend's GEMM, promoted from kernels/dev/gemm.cu
 * (versions keep their numbers): gemm_kernel3 (register-blocked smem tiling,
 * fp32 on CUDA cores) for f32, gemm_kernel5 (WMMA bf16/f16 tensor cores, fp32
 * accumulation) for bf16/f16. Both take any transpose, leading dimension,
 * batch stride and shape (bounds-checked tile loads) and fuse alpha/beta, the
 * bias/GELU epilogue and the narrowing of C. Selection (cuda_gemm): by dtype;
 * dev/gemm.cu's faster special cases (v4 vectorised loads, v6 Hopper wgmma)
 * are not promoted until they are validated on a GPU.
 */
#include "kernels/cuda/cuda.cuh"

#include <mma.h>

struct gemm_params {
    int64_t M, N, K, lda, ldb, ldc, sa, sb, sc;
    float alpha, beta;
    int ta, tb, epi, dt_ab, dt_c;
    const void *a, *b;
    const float *bias;
    void *c;
};

/* epilogue for one element: alpha*acc + beta*C + bias, GELU, store as dt_c. */
__device__ __forceinline__ void gemm_store(const gemm_params &p, void *c, int64_t m, int64_t n,
                                           float acc)
{
    int64_t i = m * p.ldc + n;
    float v = p.alpha * acc;
    if (p.beta != 0.0f)
        v += p.beta * krn_dload(c, p.dt_c, i);
    if (p.epi != KRN_EPI_NONE)
        v += p.bias[n];
    if (p.epi == KRN_EPI_BIAS_GELU)
        v = krn_dgelu(v);
    krn_dstore(c, p.dt_c, i, v);
}

/* ---- gemm_kernel3: 128x128 block tile, BK = 8, 256 threads, 8x8 per thread ---- */
#define K3_BM 128
#define K3_BN 128
#define K3_BK 8

/* block = 128x128 tile of C (batch item blockIdx.z); thread = 8x8 sub-tile,
 * rows ty*8.., cols tx*8..; smem As [BK][BM] (A transposed), Bs [BK][BN]. */
__global__ void __launch_bounds__(256) gemm_kernel3(gemm_params p)
{
    __shared__ float As[K3_BK][K3_BM];
    __shared__ float Bs[K3_BK][K3_BN];
    const float *a = (const float *)p.a + blockIdx.z * p.sa;
    const float *b = (const float *)p.b + blockIdx.z * p.sb;
    void *c = (char *)p.c + blockIdx.z * p.sc * (p.dt_c == KRN_DTYPE_F32 ? 4 : 2);
    int64_t m0 = (int64_t)blockIdx.y * K3_BM, n0 = (int64_t)blockIdx.x * K3_BN;
    int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    float acc[8][8] = {};
    for (int64_t k0 = 0; k0 < p.K; k0 += K3_BK) {
        /* 1024 elements each of the A and B tiles, 4 per thread */
        for (int e = threadIdx.x; e < K3_BM * K3_BK; e += 256) {
            int mm, kk;
            if (p.ta) { mm = e % K3_BM; kk = e / K3_BM; } /* coalesced along m */
            else { kk = e % K3_BK; mm = e / K3_BK; }      /* coalesced along k */
            int64_t gm = m0 + mm, gk = k0 + kk;
            float v = 0;
            if (gm < p.M && gk < p.K)
                v = p.ta ? a[gk * p.lda + gm] : a[gm * p.lda + gk];
            As[kk][mm] = v;
            int nn, kb;
            if (p.tb) { kb = e % K3_BK; nn = e / K3_BK; }
            else { nn = e % K3_BN; kb = e / K3_BN; }
            int64_t gn = n0 + nn, gkb = k0 + kb;
            float w = 0;
            if (gn < p.N && gkb < p.K)
                w = p.tb ? b[gn * p.ldb + gkb] : b[gkb * p.ldb + gn];
            Bs[kb][nn] = w;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < K3_BK; kk++) {
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
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++) {
            int64_t m = m0 + ty * 8 + i, n = n0 + tx * 8 + j;
            if (m < p.M && n < p.N)
                gemm_store(p, c, m, n, acc[i][j]);
        }
}

/* ---- gemm_kernel5: WMMA 16x16x16 bf16/f16, fp32 accumulate ---- */
#define K5_BM 128
#define K5_BN 128
#define K5_BK 32
#define K5_PAD 8

/* block = 128x128 tile of C, 8 warps as 2 (m) x 4 (n), warp = 64x32 = 4x2
 * fragments; smem As [BM][BK+8], Bs [BK][BN+8] (padding against bank
 * conflicts), a per-warp 16x16 f32 staging tile for the epilogue. */
template <typename T>
__global__ void __launch_bounds__(256) gemm_kernel5(gemm_params p)
{
    using namespace nvcuda;
    __shared__ __align__(32) T As[K5_BM][K5_BK + K5_PAD];
    __shared__ __align__(32) T Bs[K5_BK][K5_BN + K5_PAD];
    __shared__ __align__(32) float stage[8][16 * 16];
    const T *a = (const T *)p.a + blockIdx.z * p.sa;
    const T *b = (const T *)p.b + blockIdx.z * p.sb;
    void *c = (char *)p.c + blockIdx.z * p.sc * (p.dt_c == KRN_DTYPE_F32 ? 4 : 2);
    int64_t m0 = (int64_t)blockIdx.y * K5_BM, n0 = (int64_t)blockIdx.x * K5_BN;
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int wm = warp / 4, wn = warp % 4;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[4][2];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 2; j++)
            wmma::fill_fragment(acc[i][j], 0.0f);
    const T zero = T(0.0f);
    for (int64_t k0 = 0; k0 < p.K; k0 += K5_BK) {
        for (int e = threadIdx.x; e < K5_BM * K5_BK; e += 256) {
            int mm, kk;
            if (p.ta) { mm = e % K5_BM; kk = e / K5_BM; }
            else { kk = e % K5_BK; mm = e / K5_BK; }
            int64_t gm = m0 + mm, gk = k0 + kk;
            As[mm][kk] = gm < p.M && gk < p.K ? (p.ta ? a[gk * p.lda + gm] : a[gm * p.lda + gk])
                                              : zero;
            int nn, kb;
            if (p.tb) { kb = e % K5_BK; nn = e / K5_BK; }
            else { nn = e % K5_BN; kb = e / K5_BN; }
            int64_t gn = n0 + nn, gkb = k0 + kb;
            Bs[kb][nn] = gn < p.N && gkb < p.K ? (p.tb ? b[gn * p.ldb + gkb] : b[gkb * p.ldb + gn])
                                               : zero;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < K5_BK; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa[4];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb[2];
            for (int i = 0; i < 4; i++)
                wmma::load_matrix_sync(fa[i], &As[wm * 64 + i * 16][kk], K5_BK + K5_PAD);
            for (int j = 0; j < 2; j++)
                wmma::load_matrix_sync(fb[j], &Bs[kk][wn * 32 + j * 16], K5_BN + K5_PAD);
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 2; j++)
                    wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
        }
        __syncthreads();
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 2; j++) {
            wmma::store_matrix_sync(stage[warp], acc[i][j], 16, wmma::mem_row_major);
            __syncwarp();
            for (int e = lane; e < 256; e += 32) {
                int64_t m = m0 + wm * 64 + i * 16 + e / 16, n = n0 + wn * 32 + j * 16 + e % 16;
                if (m < p.M && n < p.N)
                    gemm_store(p, c, m, n, stage[warp][e]);
            }
            __syncwarp();
        }
}

int cuda_gemm(krn_backend_t *be, const struct krn_gemm_args *g, const void *a, const void *b,
              const float *bias, void *c, struct err *err)
{
    struct cuda_backend *cb = cuda_of(be);
    if (g->batch > 65535)
        return err_set(err, ENOTSUP, "gemm: batch %lld > 65535 on cuda", (long long)g->batch);
    gemm_params p = {g->M,       g->N,          g->K,          g->lda,     g->ldb,
                     g->ldc,     g->stride_a,   g->stride_b,   g->stride_c, g->alpha,
                     g->beta,    g->trans_a,    g->trans_b,    (int)g->epilogue,
                     (int)g->dtype_ab, (int)g->dtype_c, a, b, bias, c};
    CUDA_TRY(cudaSetDevice(cb->dev), err);
    if (g->dtype_ab == KRN_DTYPE_F32) {
        dim3 grid((unsigned)((g->N + K3_BN - 1) / K3_BN), (unsigned)((g->M + K3_BM - 1) / K3_BM),
                  (unsigned)g->batch);
        gemm_kernel3<<<grid, 256, 0, cb->stream>>>(p);
        CUDA_LAUNCHED("gemm_kernel3", err);
    } else {
        dim3 grid((unsigned)((g->N + K5_BN - 1) / K5_BN), (unsigned)((g->M + K5_BM - 1) / K5_BM),
                  (unsigned)g->batch);
        if (g->dtype_ab == KRN_DTYPE_BF16)
            gemm_kernel5<__nv_bfloat16><<<grid, 256, 0, cb->stream>>>(p);
        else
            gemm_kernel5<__half><<<grid, 256, 0, cb->stream>>>(p);
        CUDA_LAUNCHED("gemm_kernel5", err);
    }
    return 0;
}
