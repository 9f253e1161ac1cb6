/* cuda_gemm.cuh: the GEMM parameter block, its fused epilogue, and the two
 * tensor-core GEMMs promoted from kernels/dev/gemm.cu (numbers kept):
 *   gemm_kernel6  mma.sync m16n8k16 bf16/f16, fp32 accumulate, cp.async 16-byte
 *                 loads in a 3-stage pipeline, ldmatrix fragments (sm_80+)
 *   gemm_kernel7  Hopper: TMA (128B swizzle) into a 6-stage smem ring, wgmma
 *                 m64n128k16 from smem descriptors, warp-specialised: one
 *                 producer warpgroup, two consumer warpgroups (sm_90a only)
 * Included by cuda_gemm.cu and cuda_gemm_sm90a.cu (production; kernel 7 is
 * instantiated only in the latter, built for sm_90a alone) and by
 * kernels/dev/gemm.cu (the dev harness times exactly the promoted code).
 * N.B. neither has run on a GPU when written (no GPU was available): the cuda
 * backend self-checks both against gemm_kernel5 before it selects them
 * (cuda_gemm.cu), and tests/kernels/test_krn_cuda.c forces each against cuBLAS.
 */
#ifndef MOAT_KRN_CUDA_GEMM_CUH
#define MOAT_KRN_CUDA_GEMM_CUH

#include "kernels/cuda/cuda.cuh"
#include "kernels/cuda/cuda_mma.cuh"

#include <cuda.h> /* CUtensorMap and its enums only: the encoder comes from the runtime */

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

/* ---- gemm_kernel6: mma.sync + cp.async pipeline ----
 * Requires (cuda_gemm.cu checks): A row-major (ta = 0); B [N, K] (tb = 1) or
 * [K, N] (tb = 0, then N % 8 == 0); K, lda, ldb, stride_a, stride_b multiples
 * of 8 elements; a and b 16-byte aligned. Any M, N, K otherwise (zero-filled
 * tails). */
#define K6_BM 128
#define K6_BN 128
#define K6_BK 32
#define K6_STAGES 3
#define K6_LDA (K6_BK + 8)  /* 80-byte rows: ldmatrix rows land in distinct banks */
#define K6_LDBT (K6_BK + 8) /* B as [BN][BK] when tb = 1 */
#define K6_LDBN (K6_BN + 8) /* B as [BK][BN] when tb = 0: 272-byte rows */
#define K6_A_ELEMS (K6_BM * K6_LDA)
#define K6_B_ELEMS (K6_BN * K6_LDBT > K6_BK * K6_LDBN ? K6_BN * K6_LDBT : K6_BK * K6_LDBN)
#define K6_SMEM (K6_STAGES * (K6_A_ELEMS + K6_B_ELEMS) * 2)

/* grid = (ceil(N/128), ceil(M/128), batch); block = 256 = 8 warps as 2 (m) x 4 (n);
 * block tile 128x128, warp tile 64x32 = 4 (m16) x 4 (n8) mma tiles, BK 32 (two
 * k16 steps) per stage; dynamic smem K6_SMEM = 3 stages of A [128][40] and B
 * ([128][40] or [32][136]) bf16/f16. a: [M, K] (lda); b: [N, K] or [K, N] (ldb). */
template <typename T, int TB>
__global__ void __launch_bounds__(256) gemm_kernel6(gemm_params p)
{
    extern __shared__ __align__(16) unsigned char k6_smem[];
    T *As = (T *)k6_smem;
    T *Bs = As + K6_STAGES * K6_A_ELEMS;
    const T *a = (const T *)p.a + blockIdx.z * p.sa;
    const T *b = (const T *)p.b + blockIdx.z * p.sb;
    void *c = (char *)p.c + blockIdx.z * p.sc * (p.dt_c == KRN_DTYPE_F32 ? 4 : 2);
    const int64_t m0 = (int64_t)blockIdx.y * K6_BM, n0 = (int64_t)blockIdx.x * K6_BN;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int wm = warp / 4, wn = warp % 4;
    const int ktiles = (int)((p.K + K6_BK - 1) / K6_BK);

    /* one stage: A 128 rows x 4 chunks of 8 = 512 chunks, 2 per thread; B the same */
    auto load_stage = [&](int stage, int kt) {
        int64_t k0 = (int64_t)kt * K6_BK;
        T *as = As + stage * K6_A_ELEMS, *bs = Bs + stage * K6_B_ELEMS;
#pragma unroll
        for (int i = 0; i < 2; i++) {
            int ch = tid + i * 256, r = ch / 4, kc = (ch % 4) * 8;
            int64_t gm = m0 + r, gk = k0 + kc;
            bool ok = gm < p.M && gk < p.K; /* K % 8 == 0: a chunk is all in or all out */
            cp_async16(as + r * K6_LDA + kc, ok ? a + gm * p.lda + gk : a, ok);
        }
        if (TB) {
#pragma unroll
            for (int i = 0; i < 2; i++) {
                int ch = tid + i * 256, r = ch / 4, kc = (ch % 4) * 8;
                int64_t gn = n0 + r, gk = k0 + kc;
                bool ok = gn < p.N && gk < p.K;
                cp_async16(bs + r * K6_LDBT + kc, ok ? b + gn * p.ldb + gk : b, ok);
            }
        } else { /* [BK=32][BN=128]: 32 rows x 16 chunks */
#pragma unroll
            for (int i = 0; i < 2; i++) {
                int ch = tid + i * 256, r = ch / 16, nc = (ch % 16) * 8;
                int64_t gk = k0 + r, gn = n0 + nc;
                bool ok = gk < p.K && gn < p.N; /* N % 8 == 0 */
                cp_async16(bs + r * K6_LDBN + nc, ok ? b + gk * p.ldb + gn : b, ok);
            }
        }
    };

    float acc[4][4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                acc[i][j][e] = 0.0f;

#pragma unroll
    for (int s = 0; s < K6_STAGES - 1; s++) {
        if (s < ktiles)
            load_stage(s, s);
        cp_async_commit(); /* N.B. always commit: wait_group counts groups */
    }
    for (int kt = 0; kt < ktiles; kt++) {
        cp_async_wait<K6_STAGES - 2>(); /* groups 0..kt done: tile kt is in smem */
        __syncthreads();                /* ... for every thread; stage (kt-1)%S is free */
        int nk = kt + K6_STAGES - 1;
        if (nk < ktiles)
            load_stage(nk % K6_STAGES, nk);
        cp_async_commit();
        const T *as = As + (kt % K6_STAGES) * K6_A_ELEMS;
        const T *bs = Bs + (kt % K6_STAGES) * K6_B_ELEMS;
#pragma unroll
        for (int kk = 0; kk < K6_BK; kk += 16) {
            uint32_t af[4][4], bf[4][2];
            /* A m16k16 tile i: lane l addresses row l % 16, column (l / 16) * 8, so the
             * four 8x8 matrices are (rows 0-7, k 0-7), (8-15, 0-7), (0-7, 8-15),
             * (8-15, 8-15) = a0a1, a2a3, a4a5, a6a7 */
#pragma unroll
            for (int i = 0; i < 4; i++)
                ldmatrix_x4(af[i], as + (wm * 64 + i * 16 + lane % 16) * K6_LDA + kk +
                                       (lane / 16) * 8);
#pragma unroll
            for (int jp = 0; jp < 2; jp++) { /* two n8 tiles per ldmatrix.x4 */
                uint32_t r[4];
                int mi = lane / 8;
                if (TB) {
                    /* Bs[n][k]: matrices (n 0-7, k 0-7) (n 0-7, k 8-15) (n 8-15, k 0-7)
                     * (n 8-15, k 8-15); non-transposed, lane gets (n = g, k = 2t..) = b0b1 */
                    int n = wn * 32 + jp * 16 + (mi / 2) * 8 + lane % 8, k = kk + (mi % 2) * 8;
                    ldmatrix_x4(r, bs + n * K6_LDBT + k);
                } else {
                    /* Bs[k][n]: matrices (k 0-7, n 0-7) (k 8-15, n 0-7) (k 0-7, n 8-15)
                     * (k 8-15, n 8-15); .trans gives lane (k = 2t.., n = g) = b0b1 */
                    int k = kk + (mi % 2) * 8 + lane % 8, n = wn * 32 + jp * 16 + (mi / 2) * 8;
                    ldmatrix_x4_trans(r, bs + k * K6_LDBN + n);
                }
                bf[jp * 2][0] = r[0];
                bf[jp * 2][1] = r[1];
                bf[jp * 2 + 1][0] = r[2];
                bf[jp * 2 + 1][1] = r[3];
            }
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++)
                    mma_16816<T>(acc[i][j], af[i], bf[j]);
        }
    }
    cp_async_wait<0>();
    /* C fragment: c0c1 (row g, cols 2t, 2t+1), c2c3 (row g + 8) */
    const int g = lane / 4, t4 = lane % 4;
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int64_t m = m0 + wm * 64 + i * 16 + g + (e / 2) * 8;
                int64_t n = n0 + wn * 32 + j * 8 + t4 * 2 + (e % 2);
                if (m < p.M && n < p.N)
                    gemm_store(p, c, m, n, acc[i][j][e]);
            }
}

/* ---- gemm_kernel7 / gemm_kernel8: Hopper TMA + wgmma, warp-specialised ----
 * One template, two tile widths: kernel 7 = BN 128 (6 stages), kernel 8 = BN
 * 256 (4 stages: the same 193 KiB of shared memory; each consumer holds 64x256
 * fp32, twice the work per byte of A brought in, as CUTLASS's 128x256 tiles).
 * Requires: sm_90a code on a cc 9.0 device; ta = 0, tb = 1 (A [M, K], B [N, K],
 * both K-major, the x W^T of every linear layer); batch 1; K, lda, ldb
 * multiples of 8 (TMA: 16-byte global strides); a, b 128-byte aligned. Any M,
 * N, K otherwise (TMA zero-fills out-of-bounds boxes). */
#define K7_BM 128
#define K7_BN 128
#define K7_BK 64 /* 64 b16 = 128 bytes = one swizzle row */
#define K7_STAGES 6
#define K7_A_BYTES (K7_BM * K7_BK * 2) /* 16 KiB */
#define K7_B_BYTES (K7_BN * K7_BK * 2) /* 16 KiB */
#define K7_SMEM (K7_STAGES * (K7_A_BYTES + K7_B_BYTES) + 1024) /* + alignment slack */
#define K8_BN 256
#define K8_STAGES 4
#define K8_SMEM (K8_STAGES * (K7_A_BYTES + K8_BN * K7_BK * 2) + 1024)

template <int BN> struct k7_shape {
    static_assert(BN == 128 || BN == 256, "kernel 7 (BN 128) or 8 (BN 256)");
    static constexpr int stages = BN == 128 ? K7_STAGES : K8_STAGES;
    static constexpr int b_bytes = BN * K7_BK * 2;
    static constexpr int smem = stages * (K7_A_BYTES + b_bytes) + 1024;
};

/* grid = (ceil(N/BN), ceil(M/128)); block = 384 = 3 warpgroups: WG 0 the
 * producer (one thread issues the TMA loads of each k-tile into a ring of
 * stages, each A 128x64 + B BNx64 with 128-byte swizzle), WG 1 and WG 2
 * consumers (rows 0-63 and 64-127 of the tile; each issues 4 wgmma m64nBNk16
 * per k-tile and holds 64xBN fp32 = BN/2 registers per thread).
 * Barriers: full[s] (1 arrival + TMA bytes) and empty[s] (256 consumer arrivals).
 * A consumer keeps one k-tile's wgmma group in flight while it issues the next
 * (wgmma.wait_group 1, as CUTLASS's sm90 mainloop does), and releases a stage
 * only once the group that read it has completed. */
template <typename T, int BN>
__global__ void __launch_bounds__(384, 1)
    gemm_kernel7(const __grid_constant__ CUtensorMap tm_a, const __grid_constant__ CUtensorMap tm_b,
                 gemm_params p)
{
#if defined(KRN_HAVE_SM90A)
    constexpr int S = k7_shape<BN>::stages, BB = k7_shape<BN>::b_bytes, ND = BN / 2;
    extern __shared__ __align__(1024) unsigned char k7_smem_raw[];
    __shared__ __align__(8) uint64_t full[S], empty[S];
    /* 128B-swizzled TMA tiles and their wgmma descriptors need 1024-byte alignment */
    unsigned char *smem = (unsigned char *)(((uintptr_t)k7_smem_raw + 1023) & ~(uintptr_t)1023);
    unsigned char *sa = smem, *sb = smem + S * K7_A_BYTES;
    const int wg = threadIdx.x / 128, ktiles = (int)((p.K + K7_BK - 1) / K7_BK);
    const int m0 = blockIdx.y * K7_BM, n0 = blockIdx.x * BN;
    if (threadIdx.x == 0) {
        for (int s = 0; s < S; s++) {
            mbar_init(&full[s], 1);
            mbar_init(&empty[s], 256);
        }
        mbar_fence_init();
    }
    __syncthreads();
    if (wg == 0) {
        if (threadIdx.x == 0) {
            for (int kt = 0; kt < ktiles; kt++) {
                int s = kt % S, round = kt / S;
                if (round > 0) /* wait for the consumers to release the stage's last use */
                    mbar_wait(&empty[s], (uint32_t)((round - 1) & 1));
                mbar_arrive_expect_tx(&full[s], K7_A_BYTES + BB);
                tma_load_2d(sa + s * K7_A_BYTES, &tm_a, &full[s], kt * K7_BK, m0);
                tma_load_2d(sb + s * BB, &tm_b, &full[s], kt * K7_BK, n0);
            }
        }
        return; /* N.B. no __syncthreads below this point */
    }
    const int cw = wg - 1; /* consumer: rows cw*64 .. cw*64+63 of the tile */
    float d[ND];
#pragma unroll
    for (int i = 0; i < ND; i++)
        d[i] = 0.0f;
    for (int kt = 0; kt < ktiles; kt++) {
        int s = kt % S;
        mbar_wait(&full[s], (uint32_t)((kt / S) & 1));
        const unsigned char *a_tile = sa + s * K7_A_BYTES + cw * 64 * 128; /* 64 rows x 128 B */
        const unsigned char *b_tile = sb + s * BB;
#pragma unroll
        for (int i = 0; i < ND; i++)
            wgmma_fence_operand(d[i]);
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < K7_BK / 16; kk++) { /* k16 step = 32 bytes along the swizzled row */
            if constexpr (BN == 128)
                wgmma_m64n128k16<T>(d, wgmma_desc(a_tile + kk * 32), wgmma_desc(b_tile + kk * 32));
            else
                wgmma_m64n256k16<T>(d, wgmma_desc(a_tile + kk * 32), wgmma_desc(b_tile + kk * 32));
        }
        wgmma_commit();
        /* keep this tile's wgmma group in flight; the previous one has then
         * completed, and only now may its stage go back to the producer */
        wgmma_wait<1>();
#pragma unroll
        for (int i = 0; i < ND; i++)
            wgmma_fence_operand(d[i]);
        if (kt > 0)
            mbar_arrive(&empty[(kt - 1) % S]);
    }
    wgmma_wait<0>();
#pragma unroll
    for (int i = 0; i < ND; i++)
        wgmma_fence_operand(d[i]);
    /* D fragment (m64nNk16): warp w of the warpgroup owns rows 16w..16w+15;
     * d[4i + e] is at row 16w + g + 8 (e / 2), column 8i + 2t + (e % 2) */
    const int w = (threadIdx.x % 128) / 32, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
#pragma unroll
    for (int i = 0; i < BN / 8; i++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int64_t m = m0 + cw * 64 + w * 16 + g + (e / 2) * 8;
            int64_t n = n0 + i * 8 + t4 * 2 + (e % 2);
            if (m < p.M && n < p.N)
                gemm_store(p, p.c, m, n, d[i * 4 + e]);
        }
#else
    (void)tm_a, (void)tm_b, (void)p; /* not sm_90a: never selected (cuda_gemm.cu probes) */
#endif
}

/* gemm_probe_sm90a: *out = 1 when the code of the unit it is launched from, as
 * loaded for the running device, was compiled with the sm_90a feature set (so
 * gemm_kernel7 has a body). */
static __global__ void gemm_probe_sm90a(int *out)
{
#if defined(KRN_HAVE_SM90A)
    *out = 1;
#else
    *out = 0;
#endif
}

/* ---- host side of gemm_kernel7: tensor maps ---- */

typedef CUresult (*k7_encode_fn)(CUtensorMap *, CUtensorMapDataType, cuuint32_t, void *,
                                 const cuuint64_t *, const cuuint64_t *, const cuuint32_t *,
                                 const cuuint32_t *, CUtensorMapInterleave, CUtensorMapSwizzle,
                                 CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

/* k7_encoder: cuTensorMapEncodeTiled from the driver through the runtime's
 * entry-point query (no -lcuda at link time); NULL when the driver lacks it. */
static inline k7_encode_fn k7_encoder(void)
{
    void *fn = NULL;
    cudaDriverEntryPointQueryResult q;
#if CUDART_VERSION >= 12050
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault,
                                         &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess)
#else
    if (cudaGetDriverEntryPoint("cuTensorMapEncodeTiled", &fn, cudaEnableDefault, &q) !=
            cudaSuccess ||
        q != cudaDriverEntryPointSuccess)
#endif
    {
        cudaGetLastError();
        return NULL;
    }
    return (k7_encode_fn)fn;
}

/* k7_tensor_map: a rows x cols (K innermost) b16 matrix with leading dimension
 * ld elements, box 64 (K) x box_rows, 128-byte swizzle, zero fill out of bounds.
 * Returns false when the driver rejects it. */
static inline bool k7_tensor_map(k7_encode_fn enc, CUtensorMap *tm, const void *base, bool bf16,
                                 int64_t rows, int64_t cols, int64_t ld, int box_rows)
{
    cuuint64_t dims[2] = {(cuuint64_t)cols, (cuuint64_t)rows};
    cuuint64_t strides[1] = {(cuuint64_t)ld * 2}; /* bytes, dimension 1; multiple of 16 */
    cuuint32_t box[2] = {K7_BK, (cuuint32_t)box_rows};
    cuuint32_t estr[2] = {1, 1};
    return enc(tm, bf16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 2,
               (void *)base, dims, strides, box, estr, CU_TENSOR_MAP_INTERLEAVE_NONE,
               CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
               CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

/* Host entry points of gemm_kernel7, defined in cuda_gemm_sm90a.cu (the only
 * unit that instantiates it, compiled for sm_90a alone). */
cudaError_t cuda_gemm7_probe(cudaStream_t st, bool *ok);
void *cuda_gemm7_encoder(void);
cudaError_t cuda_gemm7_launch(const gemm_params &p, void *encoder, int bn, cudaStream_t st);

#endif
