/* cuda_attn.cuh: attn_kernel2, the tensor-core FlashAttention-2 forward promoted
 * from kernels/dev/attention.cu (number kept). Included by cuda_attn.cu and by
 * the dev harness, which times exactly this code.
 *
 * Algorithm: FlashAttention-2 (Dao 2023, Algorithm 1 and section 3.1): a block
 * owns 64 queries of one (b, h); each of its 4 warps owns 16 query rows and
 * keeps them in registers for the whole pass: Q as mma A fragments, the
 * unnormalised O (16 x D fp32), the running max m and partial sum l. K/V stream
 * through smem in tiles of 64 keys, double-buffered with cp.async. Per tile:
 * S = Q K^T (mma.sync m16n8k16, fp32), scale and mask (-inf for padding,
 * causal, out-of-range keys), online softmax in base 2 (exp2 of s*scale*log2 e),
 * then O += P V with P rounded to bf16/f16 and fed straight from the S
 * accumulators as A fragments: the C fragment of two adjacent n8 tiles
 * (c0c1 row g, c2c3 row g+8, cols 2t..2t+1) is exactly the A fragment of one
 * k16 step (a0a1/a2a3 cols 0-7, a4a5/a6a7 cols 8-15) - see cuda_mma.cuh.
 * Rows with no visible key keep m = -inf and l = 0 and are written as 0.
 * N.B. not run on a GPU when written: cuda_attn.c self-checks it against
 * attn_kernel1 at backend creation and disables it on disagreement.
 */
#ifndef MOAT_KRN_CUDA_ATTN_CUH
#define MOAT_KRN_CUDA_ATTN_CUH

#include "kernels/cuda/cuda.cuh"
#include "kernels/cuda/cuda_mma.cuh"

#define A2_BQ 64 /* queries per block (16 per warp) */
#define A2_BK 64 /* keys per tile */

/* dynamic smem: Q [64][D+8], K [2][64][D+8], V [2][64][D+8] (16-byte row
 * padding: ldmatrix rows fall in distinct banks), then valid[2][64] int. */
static constexpr int a2_smem_bytes(int D)
{
    return 5 * A2_BQ * (D + 8) * 2 + 2 * A2_BK * 4;
}

/* grid = (ceil(T/64), H, B); block = 128 threads = 4 warps x 16 query rows.
 * q, k, v: [B, T, H, D] bf16/f16 (T = __nv_bfloat16 / __half) with token strides
 * ld_q/ld_k/ld_v multiples of 8 and 16-byte aligned bases; o: [B, T, H, D] of
 * dtype_o with stride ld_o; mask: int32 [B, T] or NULL. */
template <typename T, int D>
__global__ void __launch_bounds__(128) attn_kernel2(struct krn_attn_args t, const T *q, const T *k,
                                                    const T *v, const int32_t *mask, void *o)
{
    constexpr int LD = D + 8, NT = A2_BK / 8, DT = D / 8, CH = D / 8; /* CH: 16-byte chunks/row */
    extern __shared__ __align__(16) unsigned char a2_smem[];
    T *Qs = (T *)a2_smem;
    T *Ks = Qs + A2_BQ * LD;           /* [2][64][LD] */
    T *Vs = Ks + 2 * A2_BK * LD;       /* [2][64][LD] */
    int *valid = (int *)(Vs + 2 * A2_BK * LD); /* [2][64] */
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t4 = lane % 4;
    const int64_t b = blockIdx.z, h = blockIdx.y, q0 = (int64_t)blockIdx.x * A2_BQ;
    const int64_t kend = t.causal ? min(t.T, q0 + A2_BQ) : t.T;
    const int ntiles = (int)((kend + A2_BK - 1) / A2_BK);

    auto load_rows = [&](T *dst, const T *src, int64_t ld, int64_t r0) {
        for (int c = tid; c < 64 * CH; c += 128) {
            int r = c / CH, dc = (c % CH) * 8;
            int64_t tok = r0 + r;
            bool ok = tok < t.T;
            cp_async16(dst + r * LD + dc, ok ? src + (b * t.T + tok) * ld + h * D + dc : src, ok);
        }
    };
    auto load_kv = [&](int buf, int tile) {
        int64_t k0 = (int64_t)tile * A2_BK;
        load_rows(Ks + buf * A2_BK * LD, k, t.ld_k, k0);
        load_rows(Vs + buf * A2_BK * LD, v, t.ld_v, k0);
        if (tid < A2_BK) {
            int64_t kj = k0 + tid;
            valid[buf * A2_BK + tid] = kj < t.T && (mask == NULL || mask[b * t.T + kj] != 0);
        }
    };

    load_rows(Qs, q, t.ld_q, q0);
    load_kv(0, 0);
    cp_async_commit();

    uint32_t qf[D / 16][4];
    float oacc[DT][4];
#pragma unroll
    for (int j = 0; j < DT; j++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            oacc[j][e] = 0.0f;
    float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.0f, 0.0f};
    const float sl2 = t.scale * 1.4426950408889634f; /* scale * log2(e) */
    const int64_t qr[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};

    for (int tile = 0; tile < ntiles; tile++) {
        const int buf = tile & 1;
        if (tile + 1 < ntiles)
            load_kv(buf ^ 1, tile + 1); /* buf ^ 1 was last read in tile - 1 (barrier below) */
        cp_async_commit();
        cp_async_wait<1>(); /* everything but the prefetch just issued */
        __syncthreads();
        if (tile == 0) {
            /* Q A-fragments for this warp's 16 rows, k16 step kk: lane l addresses
             * row l % 16, column kk*16 + (l / 16) * 8 */
#pragma unroll
            for (int kk = 0; kk < D / 16; kk++)
                ldmatrix_x4(qf[kk], Qs + (warp * 16 + lane % 16) * LD + kk * 16 + (lane / 16) * 8);
        }
        const T *ks = Ks + buf * A2_BK * LD, *vs = Vs + buf * A2_BK * LD;
        const int *vd = valid + buf * A2_BK;
        const int64_t k0 = (int64_t)tile * A2_BK;

        /* S = Q K^T: 16 x 64 per warp = 8 n8 tiles; B = K^T, i.e. K rows [key][d]
         * read non-transposed (as gemm_kernel6 with B [N, K]) */
        float s[NT][4];
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                s[j][e] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++)
#pragma unroll
            for (int jp = 0; jp < NT / 2; jp++) {
                uint32_t r[4];
                int mi = lane / 8;
                int key = jp * 16 + (mi / 2) * 8 + lane % 8, d = kk * 16 + (mi % 2) * 8;
                ldmatrix_x4(r, ks + key * LD + d);
                uint32_t b0[2] = {r[0], r[1]}, b1[2] = {r[2], r[3]};
                mma_16816<T>(s[jp * 2], qf[kk], b0);
                mma_16816<T>(s[jp * 2 + 1], qf[kk], b1);
            }
        /* scale, mask, row max (rows g and g+8 of the warp; a row's 64 keys are
         * spread over the 4 lanes of a quad) */
        float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int kc = j * 8 + t4 * 2 + (e % 2);
                int64_t key = k0 + kc;
                bool ok = vd[kc] && (!t.causal || key <= qr[e / 2]);
                float x = ok ? s[j][e] * sl2 : -INFINITY;
                s[j][e] = x;
                mx[e / 2] = fmaxf(mx[e / 2], x);
            }
        float corr[2];
#pragma unroll
        for (int r = 0; r < 2; r++) {
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
            float mnew = fmaxf(mrow[r], mx[r]);
            float mu = mnew == -INFINITY ? 0.0f : mnew; /* no visible key yet: exp2(-inf) = 0 */
            corr[r] = exp2f(mrow[r] - mu);
            mrow[r] = mnew;
            mx[r] = mu;
        }
        float ls[2] = {0.0f, 0.0f};
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float pv = exp2f(s[j][e] - mx[e / 2]);
                s[j][e] = pv;
                ls[e / 2] += pv;
            }
#pragma unroll
        for (int r = 0; r < 2; r++)
            lrow[r] = lrow[r] * corr[r] + ls[r]; /* per-lane partial; quad-summed at the end */
#pragma unroll
        for (int j = 0; j < DT; j++) {
            oacc[j][0] *= corr[0];
            oacc[j][1] *= corr[0];
            oacc[j][2] *= corr[1];
            oacc[j][3] *= corr[1];
        }
        /* O += P V: k16 step kk covers keys kk*16..+15 = S tiles 2kk, 2kk+1; B = V
         * [key][d] read transposed (as gemm_kernel6 with B [K, N]) */
#pragma unroll
        for (int kk = 0; kk < A2_BK / 16; kk++) {
            uint32_t pa[4] = {pack2<T>(s[2 * kk][0], s[2 * kk][1]),
                              pack2<T>(s[2 * kk][2], s[2 * kk][3]),
                              pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
            for (int jp = 0; jp < DT / 2; jp++) {
                uint32_t r[4];
                int mi = lane / 8;
                int key = kk * 16 + (mi % 2) * 8 + lane % 8, d = jp * 16 + (mi / 2) * 8;
                ldmatrix_x4_trans(r, vs + key * LD + d);
                uint32_t b0[2] = {r[0], r[1]}, b1[2] = {r[2], r[3]};
                mma_16816<T>(oacc[jp * 2], pa, b0);
                mma_16816<T>(oacc[jp * 2 + 1], pa, b1);
            }
        }
        __syncthreads(); /* N.B. the next iteration's prefetch overwrites this buffer */
    }
    cp_async_wait<0>();
#pragma unroll
    for (int r = 0; r < 2; r++) {
        lrow[r] += __shfl_xor_sync(0xffffffffu, lrow[r], 1);
        lrow[r] += __shfl_xor_sync(0xffffffffu, lrow[r], 2);
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        if (qr[r] >= t.T)
            continue;
        float inv = lrow[r] > 0.0f ? 1.0f / lrow[r] : 0.0f;
        int64_t base = (b * t.T + qr[r]) * t.ld_o + h * D;
#pragma unroll
        for (int j = 0; j < DT; j++) {
            krn_dstore(o, t.dtype_o, base + j * 8 + t4 * 2, oacc[j][r * 2] * inv);
            krn_dstore(o, t.dtype_o, base + j * 8 + t4 * 2 + 1, oacc[j][r * 2 + 1] * inv);
        }
    }
}

#endif
