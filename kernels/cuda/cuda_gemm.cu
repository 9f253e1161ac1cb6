/* cuda_gemm.cu: the cuda backend's GEMM: four variants promoted from
 * kernels/dev/gemm.cu (numbers kept), run-time selection, and the self-check
 * that guards the fast ones.
 *   gemm_kernel3  f32 on CUDA cores (128x128x8 block tile, 8x8 per thread), any layout
 *   gemm_kernel4  gemm_kernel3 with 128-bit global loads and float4 smem reads,
 *                 A row-major, K/ld/strides multiples of 4 (dev v4, generalised)
 *   gemm_kernel5  WMMA bf16/f16, any layout (bounds-checked scalar tile loads)
 *   gemm_kernel6  mma.sync + 3-stage cp.async pipeline (cuda_gemm.cuh), sm_80+
 *   gemm_kernel7  TMA + wgmma, warp-specialised (cuda_gemm.cuh), sm_90a on cc 9.0;
 *                 launched through cuda_gemm_sm90a.cu, the unit built for sm_90a alone
 *   gemm_kernel8  kernel 7's template with 128x256 tiles (m64n256k16, 4 stages)
 * All fuse alpha/beta, the bias/GELU epilogue and the narrowing of C.
 * Selection (gemm_pick): f32 -> K4 when enabled and it fits, else K3. bf16/f16:
 * K8 when enabled and the call is A [M,K] x B[N,K]^T, batch 1, 128-byte
 * aligned, N >= 256 and M*N*K >= 2^30 (1024^3: enough 128x256 tiles to fill the
 * SMs); else K7 on the same terms with M*N*K >= 2^24 (below that the
 * 128x128 tiles of K6 fill the SMs better); else K6 when enabled and A is
 * row-major and aligned (K, ld, strides multiples of 8) with M, N >= 32; else K5.
 * Safety net (cuda_gemm_init): K4, K6, K7 and K8 are run at backend creation on
 * shapes with tails in M, N and K (and a K long enough to wrap K7's and K8's rings)
 * against K3 (for K4) or K5; a variant outside atol 1e-3 + rtol 1e-3, or non-finite, is
 * disabled for the handle's lifetime.
 */
#include "kernels/cuda/cuda_gemm.cuh"

#include <math.h>
#include <mma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- gemm_kernel4: gemm_kernel3 with vectorised loads (dev v4, generalised) ----
 * Requires: f32, ta = 0; K, lda, ldb, stride_a, stride_b multiples of 4; tb = 1,
 * or tb = 0 with N % 4 == 0; a, b 16-byte aligned. Any M, N, K otherwise. */

/* block = 128x128 tile of C, 256 threads, thread = 8x8 sub-tile (rows ty*8..,
 * cols tx*8..); per BK = 8 step each thread loads one float4 of A (row t/2, k
 * quad (t%2)*4) and one of B (tb = 0: row k t/32, cols (t%32)*4; tb = 1 as A),
 * zero outside the matrix; smem As [8][128] (A^T), Bs [8][128], read as float4. */
template <int TB>
__global__ void __launch_bounds__(256) gemm_kernel4(gemm_params p)
{
    __shared__ __align__(16) float As[K3_BK][K3_BM];
    __shared__ __align__(16) float Bs[K3_BK][K3_BN];
    const float *a = (const float *)p.a + blockIdx.z * p.sa;
    const float *b = (const float *)p.b + blockIdx.z * p.sb;
    void *c = (char *)p.c + blockIdx.z * p.sc * (p.dt_c == KRN_DTYPE_F32 ? 4 : 2);
    int64_t m0 = (int64_t)blockIdx.y * K3_BM, n0 = (int64_t)blockIdx.x * K3_BN;
    int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    int ar = threadIdx.x / 2, ak = (threadIdx.x % 2) * 4;
    int br = threadIdx.x / 32, bc = (threadIdx.x % 32) * 4;
    float acc[8][8] = {};
    const float4 zero4 = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    for (int64_t k0 = 0; k0 < p.K; k0 += K3_BK) {
        int64_t gm = m0 + ar, gk = k0 + ak; /* K % 4 == 0: a quad is all in or all out */
        float4 av = gm < p.M && gk < p.K ? *(const float4 *)(a + gm * p.lda + gk) : zero4;
        As[ak + 0][ar] = av.x;
        As[ak + 1][ar] = av.y;
        As[ak + 2][ar] = av.z;
        As[ak + 3][ar] = av.w;
        if (TB) {
            int64_t gn = n0 + ar;
            float4 bv = gn < p.N && gk < p.K ? *(const float4 *)(b + gn * p.ldb + gk) : zero4;
            Bs[ak + 0][ar] = bv.x;
            Bs[ak + 1][ar] = bv.y;
            Bs[ak + 2][ar] = bv.z;
            Bs[ak + 3][ar] = bv.w;
        } else {
            int64_t gkb = k0 + br, gn = n0 + bc; /* N % 4 == 0 */
            *(float4 *)&Bs[br][bc] =
                gkb < p.K && gn < p.N ? *(const float4 *)(b + gkb * p.ldb + gn) : zero4;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < K3_BK; kk++) {
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
#define K5_PAD 16

/* block = 128x128 tile of C, 8 warps as 2 (m) x 4 (n), warp = 64x32 = 4x2
 * fragments; smem As [BM][BK+16], Bs [BK][BN+16]: rows of 96 and 288 bytes,
 * so every row a fragment starts on is 32-byte aligned (the PTX ISA's wmma
 * "Address Alignment"; a pad of 8 gave 80/272-byte rows, which the CUDA Guide's
 * looser rule allows and the PTX rule does not) and rows shift banks; a per-warp
 * 16x16 f32 staging tile for the epilogue. */
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

const char *const cuda_gemm_variant_names[CU_GEMM_COUNT] = {
    "gemm_kernel3", "gemm_kernel4", "gemm_kernel5", "gemm_kernel6", "gemm_kernel7",
    "gemm_kernel8"};

static bool aligned16(const void *p)
{
    return ((uintptr_t)p & 15) == 0;
}

/* gemm_fits: whether variant v can compute this call at all (shape, layout,
 * alignment, dtype, device); selection and forcing both go through it. */
static bool gemm_fits(const struct cuda_backend *cb, int v, const gemm_params &p, int64_t batch)
{
    bool half = p.dt_ab != KRN_DTYPE_F32;
    switch (v) {
    case CU_GEMM_K3: return !half;
    case CU_GEMM_K4:
        return !half && !p.ta && p.K % 4 == 0 && p.lda % 4 == 0 && p.ldb % 4 == 0 &&
               p.sa % 4 == 0 && p.sb % 4 == 0 && (p.tb || p.N % 4 == 0) && aligned16(p.a) &&
               aligned16(p.b);
    case CU_GEMM_K5: return half;
    case CU_GEMM_K6:
        return half && cb->gemm_v[v].runnable && !p.ta && p.K % 8 == 0 && p.lda % 8 == 0 &&
               p.ldb % 8 == 0 && p.sa % 8 == 0 && p.sb % 8 == 0 && (p.tb || p.N % 8 == 0) &&
               aligned16(p.a) && aligned16(p.b);
    /* K7, K8: TMA with 128B swizzle: global bases 128-byte aligned (CUDA C++
     * Programming Guide, "TMA Swizzle"; the driver itself asks only 16) */
    case CU_GEMM_K7:
    case CU_GEMM_K8:
        return half && cb->gemm_v[v].runnable && !p.ta && p.tb && batch == 1 && p.K % 8 == 0 &&
               p.lda % 8 == 0 && p.ldb % 8 == 0 && ((uintptr_t)p.a & 127) == 0 &&
               ((uintptr_t)p.b & 127) == 0 && p.M <= INT32_MAX && p.N <= INT32_MAX &&
               p.K <= INT32_MAX;
    default: return false;
    }
}

/* gemm_pick: the variant for this call (see the file comment), or -1 when a
 * forced variant cannot take it. */
static int gemm_pick(const struct cuda_backend *cb, const gemm_params &p, int64_t batch)
{
    if (cb->gemm_force >= 0)
        return gemm_fits(cb, cb->gemm_force, p, batch) ? cb->gemm_force : -1;
    if (p.dt_ab == KRN_DTYPE_F32)
        return cb->gemm_v[CU_GEMM_K4].enabled && gemm_fits(cb, CU_GEMM_K4, p, batch) ? CU_GEMM_K4
                                                                                     : CU_GEMM_K3;
    if (cb->gemm_v[CU_GEMM_K8].enabled && gemm_fits(cb, CU_GEMM_K8, p, batch) && p.N >= 256 &&
        (double)p.M * (double)p.N * (double)p.K >= 1073741824.0)
        return CU_GEMM_K8;
    if (cb->gemm_v[CU_GEMM_K7].enabled && gemm_fits(cb, CU_GEMM_K7, p, batch) &&
        (double)p.M * (double)p.N * (double)p.K >= 16777216.0)
        return CU_GEMM_K7;
    if (cb->gemm_v[CU_GEMM_K6].enabled && gemm_fits(cb, CU_GEMM_K6, p, batch) && p.M >= 32 &&
        p.N >= 32)
        return CU_GEMM_K6;
    return CU_GEMM_K5;
}

/* gemm_launch: queue variant v (already known to fit) on the handle's stream. */
static int gemm_launch(struct cuda_backend *cb, int v, const gemm_params &p, int64_t batch,
                       struct err *err)
{
    cudaStream_t st = cb->stream;
    bool bf = p.dt_ab == KRN_DTYPE_BF16;
    switch (v) {
    case CU_GEMM_K3: {
        dim3 grid((unsigned)((p.N + K3_BN - 1) / K3_BN), (unsigned)((p.M + K3_BM - 1) / K3_BM),
                  (unsigned)batch);
        gemm_kernel3<<<grid, 256, 0, st>>>(p);
        CUDA_LAUNCHED("gemm_kernel3", err);
        return 0;
    }
    case CU_GEMM_K4: {
        dim3 grid((unsigned)((p.N + K3_BN - 1) / K3_BN), (unsigned)((p.M + K3_BM - 1) / K3_BM),
                  (unsigned)batch);
        if (p.tb)
            gemm_kernel4<1><<<grid, 256, 0, st>>>(p);
        else
            gemm_kernel4<0><<<grid, 256, 0, st>>>(p);
        CUDA_LAUNCHED("gemm_kernel4", err);
        return 0;
    }
    case CU_GEMM_K5: {
        dim3 grid((unsigned)((p.N + K5_BN - 1) / K5_BN), (unsigned)((p.M + K5_BM - 1) / K5_BM),
                  (unsigned)batch);
        if (bf)
            gemm_kernel5<__nv_bfloat16><<<grid, 256, 0, st>>>(p);
        else
            gemm_kernel5<__half><<<grid, 256, 0, st>>>(p);
        CUDA_LAUNCHED("gemm_kernel5", err);
        return 0;
    }
    case CU_GEMM_K6: {
        dim3 grid((unsigned)((p.N + K6_BN - 1) / K6_BN), (unsigned)((p.M + K6_BM - 1) / K6_BM),
                  (unsigned)batch);
        if (bf && p.tb)
            gemm_kernel6<__nv_bfloat16, 1><<<grid, 256, K6_SMEM, st>>>(p);
        else if (bf)
            gemm_kernel6<__nv_bfloat16, 0><<<grid, 256, K6_SMEM, st>>>(p);
        else if (p.tb)
            gemm_kernel6<__half, 1><<<grid, 256, K6_SMEM, st>>>(p);
        else
            gemm_kernel6<__half, 0><<<grid, 256, K6_SMEM, st>>>(p);
        CUDA_LAUNCHED("gemm_kernel6", err);
        return 0;
    }
    case CU_GEMM_K7:
    case CU_GEMM_K8: {
        cudaError_t e = cuda_gemm7_launch(p, cb->k7_encode, v == CU_GEMM_K7 ? 128 : 256, st);
        if (e == cudaErrorInvalidValue)
            return err_set(err, EIO, "%s: cuTensorMapEncodeTiled rejected %lldx%lldx%lld",
                           cuda_gemm_variant_names[v], (long long)p.M, (long long)p.N,
                           (long long)p.K);
        if (e != cudaSuccess)
            return cuda_fail(err, e, v == CU_GEMM_K7 ? "launch gemm_kernel7" : "launch gemm_kernel8");
        return 0;
    }
    default: return err_set(err, EINVAL, "gemm: variant %d", v);
    }
}

int cuda_gemm(krn_backend_t *be, const struct krn_gemm_args *g, const void *a, const void *b,
              const float *bias, void *c, struct err *err)
{
    struct cuda_backend *cb = cuda_of(be);
    if (g->batch > 65535)
        return err_set(err, ENOTSUP, "gemm: batch %lld > 65535 on cuda", (long long)g->batch);
    if ((g->M + 127) / 128 > 65535) /* grid.y: one row of blocks per 128 rows of C */
        return err_set(err, ENOTSUP, "gemm: M %lld > %d on cuda", (long long)g->M, 65535 * 128);
    gemm_params p = {g->M,       g->N,          g->K,          g->lda,     g->ldb,
                     g->ldc,     g->stride_a,   g->stride_b,   g->stride_c, g->alpha,
                     g->beta,    g->trans_a,    g->trans_b,    (int)g->epilogue,
                     (int)g->dtype_ab, (int)g->dtype_c, a, b, bias, c};
    int v = gemm_pick(cb, p, g->batch);
    if (v < 0)
        return err_set(err, ENOTSUP, "gemm: forced %s cannot take %s %lldx%lldx%lld ta=%d tb=%d "
                       "batch %lld (layout, alignment or dtype)",
                       cuda_gemm_variant_names[cb->gemm_force], krn_dtype_names[g->dtype_ab],
                       (long long)g->M, (long long)g->N, (long long)g->K, (int)g->trans_a,
                       (int)g->trans_b, (long long)g->batch);
    CUDA_TRY(cudaSetDevice(cb->dev), err);
    return gemm_launch(cb, v, p, g->batch, err);
}

/* ---- safety net ---- */

/* Fixed-seed uniform [-1, 1) (xorshift64*), as in krn_bench.c. */
static float check_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (float)(((*s * 2685821657736338717ull) >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

struct check_case {
    int v;             /* variant under test */
    int64_t M, N, K;
    int tb;
};

/* gemm_check_one: run variant cc->v and its reference (K3 for the f32 K4, else
 * K5) on the same random operands of dtype dt; *worst = max over C of
 * |v - ref| / (1e-3 + 1e-3 |ref|) (inf when non-finite). dev: scratch large
 * enough for A, B (4-byte elements) and two f32 C. */
static int gemm_check_one(struct cuda_backend *cb, const struct check_case *cc, enum krn_dtype dt,
                          char *dev, double *worst, struct err *err)
{
    int64_t na = cc->M * cc->K, nb = cc->N * cc->K, nc = cc->M * cc->N;
    size_t es = krn_dtype_size(dt), bytes_c = (size_t)nc * 4;
    float *h = (float *)malloc((size_t)(na + nb) * 4 + 2 * bytes_c);
    uint16_t *h16 = (uint16_t *)malloc((size_t)(na + nb) * 2);
    if (h == NULL || h16 == NULL) {
        free(h), free(h16);
        return err_set(err, ENOMEM, "gemm self-check: host memory");
    }
    uint64_t seed = 0x9e3779b97f4a7c15ull ^ (uint64_t)(cc->M * 131 + cc->N * 7 + cc->K);
    for (int64_t i = 0; i < na + nb; i++)
        h[i] = check_rand(&seed);
    if (dt == KRN_DTYPE_BF16)
        krn_f32_to_bf16(h, h16, (size_t)(na + nb));
    else if (dt == KRN_DTYPE_F16)
        krn_f32_to_f16(h, h16, (size_t)(na + nb));
    /* every operand 256-byte aligned, as a cudaMalloc'd tensor is (kernel 7's TMA
     * wants 128) */
    char *da = dev, *db = dev + ((na * (int64_t)es + 255) & ~(int64_t)255);
    char *c1 = (char *)(((uintptr_t)(db + nb * (int64_t)es) + 255) & ~(uintptr_t)255);
    char *c2 = c1 + ((bytes_c + 255) & ~(size_t)255);
    gemm_params p = {cc->M, cc->N, cc->K, cc->K, cc->tb ? cc->K : cc->N, cc->N, 0, 0, 0, 1.0f,
                     0.0f, 0, cc->tb, KRN_EPI_NONE, (int)dt, KRN_DTYPE_F32, da, db, NULL, c1};
    int ref = cc->v == CU_GEMM_K4 ? CU_GEMM_K3 : CU_GEMM_K5, rc = 0;
    const char *hab = dt == KRN_DTYPE_F32 ? (const char *)h : (const char *)h16;
    cudaError_t e = cudaMemcpyAsync(da, hab, (size_t)na * es, cudaMemcpyHostToDevice, cb->stream);
    if (e == cudaSuccess)
        e = cudaMemcpyAsync(db, hab + (size_t)na * es, (size_t)nb * es, cudaMemcpyHostToDevice,
                            cb->stream);
    if (e != cudaSuccess)
        rc = cuda_fail(err, e, "cudaMemcpyAsync (gemm self-check)");
    if (rc == 0)
        rc = gemm_launch(cb, cc->v, p, 1, err);
    p.c = c2;
    if (rc == 0)
        rc = gemm_launch(cb, ref, p, 1, err);
    /* N.B. h (the f32 operands) may still be read by the async upload: sync first */
    if (rc == 0 && (e = cudaStreamSynchronize(cb->stream)) != cudaSuccess)
        rc = cuda_fail(err, e, "gemm self-check (a kernel faulted)");
    float *o1 = h + na + nb, *o2 = o1 + nc;
    if (rc == 0 && (e = cudaMemcpy(o1, c1, bytes_c, cudaMemcpyDeviceToHost)) == cudaSuccess)
        e = cudaMemcpy(o2, c2, bytes_c, cudaMemcpyDeviceToHost);
    if (rc == 0 && e != cudaSuccess)
        rc = cuda_fail(err, e, "cudaMemcpy (gemm self-check)");
    if (rc == 0)
        for (int64_t i = 0; i < nc; i++) {
            double d = fabs((double)o1[i] - o2[i]) / (1e-3 + 1e-3 * fabs((double)o2[i]));
            if (!isfinite(o1[i]) || !isfinite(d))
                d = INFINITY;
            *worst = d > *worst ? d : *worst;
        }
    free(h), free(h16);
    return rc;
}

int cuda_gemm_init(struct cuda_backend *cb, struct err *err)
{
    static const char *const notes[CU_GEMM_COUNT] = {
        "f32, any layout (CUDA cores): reference for kernel 4",
        "f32, A row-major, K and ld multiples of 4 (float4 loads)",
        "bf16/f16, any layout (WMMA): reference for kernels 6, 7 and 8",
        "bf16/f16, A row-major, K and ld multiples of 8 (mma.sync, cp.async)",
        "bf16/f16, A [M,K] x B [N,K]^T, batch 1 (TMA + wgmma, sm_90a)",
        "kernel 7 with 128x256 tiles (wgmma m64n256k16, sm_90a)"};
    for (int v = 0; v < CU_GEMM_COUNT; v++) {
        struct cuda_variant *cv = &cb->gemm_v[v];
        memset(cv, 0, sizeof *cv);
        snprintf(cv->note, sizeof cv->note, "%s", notes[v]);
    }
    cb->gemm_force = -1;
    cb->gemm_v[CU_GEMM_K3].runnable = cb->gemm_v[CU_GEMM_K3].enabled = true;
    cb->gemm_v[CU_GEMM_K4].runnable = true;
    cb->gemm_v[CU_GEMM_K5].runnable = cb->gemm_v[CU_GEMM_K5].enabled = true;
    cb->gemm_v[CU_GEMM_K6].runnable = cb->cc_major >= 8;
    /* K7: sm_90a code must be what the runtime loaded for this device (probe),
     * the device cc 9.0 exactly (sm_90a code runs nowhere else), and the driver
     * must hand out the tensor-map encoder. */
    bool sm90a = false;
    if (cb->cc_major == 9 && cb->cc_minor == 0) {
        cudaError_t e = cuda_gemm7_probe(cb->stream, &sm90a);
        if (e != cudaSuccess)
            return cuda_fail(err, e, "gemm_probe_sm90a");
    }
    cb->sm90a = sm90a;
    cb->k7_encode = cb->sm90a ? cuda_gemm7_encoder() : NULL;
    for (int v = CU_GEMM_K7; v <= CU_GEMM_K8; v++) {
        cb->gemm_v[v].runnable =
            cb->sm90a && cb->cc_major == 9 && cb->cc_minor == 0 && cb->k7_encode != NULL;
        if (!cb->gemm_v[v].runnable)
            snprintf(cb->gemm_v[v].note, sizeof cb->gemm_v[v].note,
                     "not runnable: needs sm_90a code on a cc 9.0 device (this: sm_%d%d%s)",
                     cb->cc_major, cb->cc_minor, cb->sm90a ? ", no tensor-map encoder" : "");
    }
    if (cb->gemm_v[CU_GEMM_K6].runnable) {
#define K6_ATTR(T, TB)                                                                         \
    CUDA_TRY(cudaFuncSetAttribute(gemm_kernel6<T, TB>,                                          \
                                  cudaFuncAttributeMaxDynamicSharedMemorySize, K6_SMEM),        \
             err)
        K6_ATTR(__nv_bfloat16, 0);
        K6_ATTR(__nv_bfloat16, 1);
        K6_ATTR(__half, 0);
        K6_ATTR(__half, 1);
#undef K6_ATTR
    }
    /* self-checks: tails in M, N and K; K6 both B layouts; K7 and K8 a K that
     * wraps their 6- and 4-stage rings (K = 1024: 16 k-tiles) and one with
     * every tail (N = 520: a second 256-wide tile, mostly outside) */
    static const struct check_case cases[] = {
        {CU_GEMM_K4, 200, 136, 72, 1}, {CU_GEMM_K4, 130, 132, 44, 0},
        {CU_GEMM_K6, 200, 136, 72, 1}, {CU_GEMM_K6, 130, 136, 40, 0},
        {CU_GEMM_K6, 256, 256, 512, 1}, {CU_GEMM_K7, 300, 264, 200, 1},
        {CU_GEMM_K7, 256, 256, 1024, 1}, {CU_GEMM_K8, 300, 520, 200, 1},
        {CU_GEMM_K8, 256, 512, 1024, 1},
    };
    size_t need = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = (size_t)((cases[i].M + cases[i].N) * cases[i].K * 4 +
                            cases[i].M * cases[i].N * 8) + 1024;
        need = n > need ? n : need;
    }
    char *dev = NULL;
    CUDA_TRY(cudaMalloc(&dev, need), err);
    int rc = 0;
    for (int v = CU_GEMM_K4; v < CU_GEMM_COUNT && rc == 0; v++) {
        struct cuda_variant *cv = &cb->gemm_v[v];
        if (v == CU_GEMM_K5 || !cv->runnable)
            continue;
        double worst = 0;
        int dt0 = v == CU_GEMM_K4 ? KRN_DTYPE_F32 : KRN_DTYPE_BF16;
        int dt1 = v == CU_GEMM_K4 ? KRN_DTYPE_F32 : KRN_DTYPE_F16;
        for (size_t i = 0; i < sizeof cases / sizeof cases[0] && rc == 0; i++)
            for (int dt = dt0; dt <= dt1 && rc == 0; dt++)
                if (cases[i].v == v)
                    rc = gemm_check_one(cb, &cases[i], (enum krn_dtype)dt, dev, &worst, err);
        cv->checked = rc == 0;
        cv->check_err = worst;
        cv->enabled = rc == 0 && worst <= 1.0;
        if (rc == 0 && !cv->enabled)
            snprintf(cv->note, sizeof cv->note, "disabled: self-check error %.3g x tolerance vs "
                     "gemm_kernel%d", worst, v == CU_GEMM_K4 ? 3 : 5);
    }
    cudaFree(dev);
    return rc;
}
