/* cuda_attn.cu: the cuda backend's fused attention forward, promoted from
 * kernels/dev/attention.cu as attn_kernel1 (FlashAttention-2 loop order on CUDA
 * cores; the tensor-core version is future work, see that file).
 *
 * One block = 32 queries of one (b, h); 4 threads ("a quad") per query, each
 * holding D/4 interleaved dims of q and of the unnormalised output in registers.
 * K/V stream through shared memory in tiles of 32 keys (converted to f32), and
 * every key updates the running max m, sum l and output o (online softmax,
 * Milakov & Gimelshein 2018; Dao 2023). No [T, T] matrix exists anywhere:
 * memory is O(T*D) per head (the inputs) plus 2*32*D floats of smem per block.
 */
#include "kernels/cuda/cuda.cuh"

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
    CUDA_TRY(cudaSetDevice(cb->dev), err);
    dim3 grid((unsigned)((t->T + ATT_BQ - 1) / ATT_BQ), (unsigned)t->H, (unsigned)t->B);
    switch (t->D) {
    case 32: attn_kernel1<32><<<grid, 128, 0, cb->stream>>>(*t, q, k, v, mask, o); break;
    case 64: attn_kernel1<64><<<grid, 128, 0, cb->stream>>>(*t, q, k, v, mask, o); break;
    default: attn_kernel1<128><<<grid, 128, 0, cb->stream>>>(*t, q, k, v, mask, o); break;
    }
    CUDA_LAUNCHED("attn_kernel1", err);
    return 0;
}
