/* cpu_attn.c: the cpu backend's fused attention forward.
 *
 * Fused: FlashAttention-2's loop order (Dao 2023, Algorithm 1) on the CPU. A
 * work item is one (b, h, block of BQ queries); it streams K/V in blocks of BK
 * keys through per-thread tiles, keeping a running max m, running sum l and an
 * unnormalised O for its queries, so memory is O(BQ*D + BK*D) per thread and
 * never [T, T]. Items are handed out dynamically (causal items are uneven).
 * The inner products use GCC vector extensions of 8 floats (one AVX2 register;
 * Zen 4 runs AVX-512 as two 256-bit halves, so 8 loses nothing there), in
 * 4-row x 16-column register blocks (8 accumulators: no spills with 16 ymm).
 * The item function is compiled for x86-64-v4, v3 (AVX2+FMA) and baseline
 * and picked at load time (target_clones), so one binary runs on every node.
 * Short sequences: a tile works on the first nq4 = round4(queries) rows and
 * nk16 = round16(last visible key + 1) keys only, not the full 64 x 64, and a
 * call below ATTN_PAR_MIN_FLOPS (one short sentence: wrk_bert calls attention
 * per sequence on unpadded rows) runs on the caller without waking the pool.
 * Invariant: every tile pointer is 64-byte aligned (scratch offsets are
 * multiples of 16 floats).
 */
#include "kernels/cpu/cpu.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define BQ CPU_ATTN_BQ
#define BK CPU_ATTN_BK

/* The v8 helpers are static and always inlined, so the psABI note on passing
 * 32-byte vectors without AVX does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"

typedef float v8 __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

/* v8_exp: *px = e^*px for 8 lanes, in place; -inf gives exactly 0. Cody-Waite reduction
 * x = n ln2 + r, |r| <= ln2/2, then a degree-6 Taylor polynomial (relative
 * error < 2e-7 on the reduced range), scaled by 2^n built in the exponent bits. */
static inline __attribute__((always_inline)) void v8_exp(v8 *px)
{
    v8 x = *px;
    v8i isninf = x == -INFINITY;
    const v8 lo = {-87.0f, -87.0f, -87.0f, -87.0f, -87.0f, -87.0f, -87.0f, -87.0f};
    v8i below = x < lo;
    x = (v8)(((v8i)x & ~below) | ((v8i)lo & below));
    v8 t = x * 1.44269504088896341f + 12582912.0f; /* round to nearest via the 1.5*2^23 trick */
    v8 n = t - 12582912.0f;
    v8 r = x - n * 0.693359375f;                  /* ln2 high part (exact in float) */
    r = r - n * -2.12194440e-4f;                  /* ln2 low part */
    v8 p = r * (1.0f / 720) + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    v8i ni = __builtin_convertvector(n, v8i);
    v8 scale = (v8)((ni + 127) << 23);
    *px = (v8)((v8i)(p * scale) & ~isninf);
}

struct attn_ctx {
    const struct krn_attn_args *t;
    const void *q, *k, *v;
    const int32_t *mask;
    void *o;
    float *scratch; /* per thread CPU_ATTN_SCRATCH floats */
    int64_t nqb, items;
    int64_t next; /* atomic: next item */
};

/* pack_rows: dst[r][0..D) = src rows (token stride ld) as f32, rows [n, nrows) zeroed. */
static inline __attribute__((always_inline)) void pack_rows(float *dst, const void *src,
                                                            enum krn_dtype dt, int64_t ld,
                                                            int n, int nrows, int D, float mul)
{
    for (int r = 0; r < n; r++) {
        if (dt == KRN_DTYPE_F32) {
            const float *s = (const float *)src + r * ld;
            for (int d = 0; d < D; d++)
                dst[r * D + d] = s[d] * mul;
        } else {
            for (int d = 0; d < D; d++)
                dst[r * D + d] = krn_load_f32(src, dt, r * ld + d) * mul;
        }
    }
    memset(dst + n * D, 0, sizeof(float) * (size_t)(nrows - n) * (size_t)D);
}

/* attn_item: one (b, h, query block). D is a constant after inlining. */
static inline __attribute__((always_inline)) void attn_item(struct attn_ctx *c, float *ws,
                                                            int64_t item, const int D)
{
    const struct krn_attn_args *t = c->t;
    int64_t qb = item % c->nqb, bh = item / c->nqb, h = bh % t->H, b = bh / t->H;
    int64_t q0 = qb * BQ;
    int nq = (int)(t->T - q0 < BQ ? t->T - q0 : BQ);
    int nq4 = (nq + 3) & ~3;
    size_t es = krn_dtype_size(t->dtype);
    float *Qs = ws;                          /* [BQ, D] scaled queries */
    float *Kt = Qs + BQ * CPU_ATTN_DMAX;     /* [D, BK] keys, transposed */
    float *Vs = Kt + CPU_ATTN_DMAX * BK;     /* [BK, D] values */
    float *S = Vs + BK * CPU_ATTN_DMAX;      /* [BQ, BK] scores, then P */
    float *Os = S + BQ * BK;                 /* [BQ, D] unnormalised output */
    float *m = Os + BQ * CPU_ATTN_DMAX;      /* [BQ] running max */
    float *l = m + BQ;                       /* [BQ] running sum */
    float *valid = l + BQ;                   /* [BK] 1 = key visible (padding mask) */

    pack_rows(Qs, (const char *)c->q + ((b * t->T + q0) * t->ld_q + h * D) * es, t->dtype,
              t->ld_q, nq, nq4, D, t->scale);
    memset(Os, 0, sizeof(float) * (size_t)nq4 * (size_t)D);
    for (int i = 0; i < nq4; i++) {
        m[i] = -INFINITY;
        l[i] = 0;
    }
    int64_t kend = t->causal ? (q0 + nq < t->T ? q0 + nq : t->T) : t->T;
    for (int64_t k0 = 0; k0 < kend; k0 += BK) {
        int nk = (int)(kend - k0 < BK ? kend - k0 : BK);
        int last = -1; /* the block's last visible key: keys after it weigh exactly 0 */
        for (int j = 0; j < nk; j++) {
            valid[j] = c->mask == NULL || c->mask[b * t->T + k0 + j] != 0;
            last = valid[j] != 0 ? j : last;
        }
        if (last < 0)
            continue; /* the whole key block is padding */
        /* short sequences: work on the first nk16 keys of the tile only */
        nk = last + 1;
        const int nk16 = (nk + 15) & ~15;
        for (int j = nk; j < nk16; j++)
            valid[j] = 0;
        /* K^T tile: column j is key k0 + j */
        const char *kbase = (const char *)c->k + ((b * t->T + k0) * t->ld_k + h * D) * es;
        if (t->dtype == KRN_DTYPE_F32) {
            for (int j = 0; j < nk; j++) {
                const float *kr = (const float *)kbase + j * t->ld_k;
                for (int d = 0; d < D; d++)
                    Kt[d * BK + j] = kr[d];
            }
        } else {
            for (int j = 0; j < nk; j++)
                for (int d = 0; d < D; d++)
                    Kt[d * BK + j] = krn_load_f32(kbase, t->dtype, j * t->ld_k + d);
        }
        for (int d = 0; d < D; d++)
            for (int j = nk; j < nk16; j++)
                Kt[d * BK + j] = 0;
        pack_rows(Vs, (const char *)c->v + ((b * t->T + k0) * t->ld_v + h * D) * es,
                  t->dtype, t->ld_v, nk, nk, D, 1.0f); /* rows >= nk are never read */

        /* S = Qs Kt: blocks of 4 query rows x 16 keys, 8 accumulators */
        for (int i = 0; i < nq4; i += 4) {
            for (int j0 = 0; j0 < nk16; j0 += 16) {
                v8 acc[4][2];
                memset(acc, 0, sizeof acc);
                for (int d = 0; d < D; d++) {
                    v8 k0 = *(const v8 *)(Kt + d * BK + j0), k1 = *(const v8 *)(Kt + d * BK + j0 + 8);
                    for (int r = 0; r < 4; r++) {
                        float qv = Qs[(i + r) * D + d];
                        acc[r][0] += qv * k0;
                        acc[r][1] += qv * k1;
                    }
                }
                for (int r = 0; r < 4; r++) {
                    *(v8 *)(S + (i + r) * BK + j0) = acc[r][0];
                    *(v8 *)(S + (i + r) * BK + j0 + 8) = acc[r][1];
                }
            }
        }
        /* masks, then the online softmax update of m, l and O per row */
        for (int i = 0; i < nq4; i++) {
            float *s = S + i * BK;
            if (i >= nq) {
                memset(s, 0, sizeof(float) * (size_t)nk16);
                continue;
            }
            float mx = -INFINITY;
            for (int j = 0; j < nk16; j++) {
                bool vis = valid[j] != 0 && (!t->causal || k0 + j <= q0 + i);
                s[j] = vis ? s[j] : -INFINITY;
                mx = s[j] > mx ? s[j] : mx;
            }
            float mnew = mx > m[i] ? mx : m[i];
            if (mnew == -INFINITY) {
                memset(s, 0, sizeof(float) * (size_t)nk16);
                continue;
            }
            float alpha = m[i] == -INFINITY ? 0.0f : expf(m[i] - mnew);
            v8 vsum = {0};
            for (int cc = 0; cc < nk16 / 8; cc++) {
                v8 p = *(v8 *)(s + cc * 8) - mnew;
                v8_exp(&p);
                *(v8 *)(s + cc * 8) = p;
                vsum += p;
            }
            float sum = 0;
            for (int e = 0; e < 8; e++)
                sum += vsum[e];
            l[i] = l[i] * alpha + sum;
            m[i] = mnew;
            if (alpha != 1.0f)
                for (int d = 0; d < D; d++)
                    Os[i * D + d] *= alpha;
        }
        /* O += P V: blocks of 4 rows x 16 columns of O, 8 accumulators */
        for (int i = 0; i < nq4; i += 4) {
            for (int dc = 0; dc < D; dc += 16) {
                v8 acc[4][2];
                for (int r = 0; r < 4; r++) {
                    acc[r][0] = *(v8 *)(Os + (i + r) * D + dc);
                    acc[r][1] = *(v8 *)(Os + (i + r) * D + dc + 8);
                }
                for (int j = 0; j < nk; j++) {
                    v8 v0 = *(const v8 *)(Vs + j * D + dc), v1 = *(const v8 *)(Vs + j * D + dc + 8);
                    for (int r = 0; r < 4; r++) {
                        float p = S[(i + r) * BK + j];
                        acc[r][0] += p * v0;
                        acc[r][1] += p * v1;
                    }
                }
                for (int r = 0; r < 4; r++) {
                    *(v8 *)(Os + (i + r) * D + dc) = acc[r][0];
                    *(v8 *)(Os + (i + r) * D + dc + 8) = acc[r][1];
                }
            }
        }
    }
    /* O = Os / l; a row that saw no key is 0 */
    for (int i = 0; i < nq; i++) {
        float inv = l[i] > 0 ? 1.0f / l[i] : 0.0f;
        int64_t base = (b * t->T + q0 + i) * t->ld_o + h * D;
        if (t->dtype_o == KRN_DTYPE_F32) {
            float *orow = (float *)c->o + base;
            for (int d = 0; d < D; d += 8) {
                v8 x = *(const v8 *)(Os + i * D + d) * inv;
                __builtin_memcpy(orow + d, &x, sizeof x);
            }
        } else {
            for (int d = 0; d < D; d++)
                krn_store_f32(c->o, t->dtype_o, base + d, Os[i * D + d] * inv);
        }
    }
}

/* FLOPs (4 B H T^2 D) below which attention runs on the calling thread. */
#define ATTN_PAR_MIN_FLOPS 4e6

#define ATTN_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

ATTN_CLONES static void attn_items_d32(struct attn_ctx *c, float *ws)
{
    for (int64_t it; (it = __atomic_fetch_add(&c->next, 1, __ATOMIC_RELAXED)) < c->items;)
        attn_item(c, ws, it, 32);
}

ATTN_CLONES static void attn_items_d64(struct attn_ctx *c, float *ws)
{
    for (int64_t it; (it = __atomic_fetch_add(&c->next, 1, __ATOMIC_RELAXED)) < c->items;)
        attn_item(c, ws, it, 64);
}

ATTN_CLONES static void attn_items_d128(struct attn_ctx *c, float *ws)
{
    for (int64_t it; (it = __atomic_fetch_add(&c->next, 1, __ATOMIC_RELAXED)) < c->items;)
        attn_item(c, ws, it, 128);
}

static void attn_worker(void *p, int tid, int n)
{
    (void)n;
    struct attn_ctx *c = p;
    float *ws = c->scratch + (size_t)tid * CPU_ATTN_SCRATCH;
    switch (c->t->D) {
    case 32: attn_items_d32(c, ws); break;
    case 64: attn_items_d64(c, ws); break;
    default: attn_items_d128(c, ws); break;
    }
}

int cpu_attention(krn_backend_t *be, const struct krn_attn_args *t, const void *q,
                  const void *k, const void *v, const int32_t *mask, void *o,
                  struct err *err)
{
    struct cpu_backend *cb = (struct cpu_backend *)be;
    if (t->D != 32 && t->D != 64 && t->D != 128)
        return err_set(err, ENOTSUP, "attention: head dim %lld (cpu supports 32, 64, 128)",
                       (long long)t->D);
    struct attn_ctx c = {.t = t, .q = q, .k = k, .v = v, .mask = mask, .o = o,
                         .scratch = cb->attn_scratch};
    c.nqb = (t->T + BQ - 1) / BQ;
    c.items = t->B * t->H * c.nqb;
    /* a small call (one short sequence) costs less than waking the pool */
    double flops = 4.0 * (double)(t->B * t->H) * (double)t->T * (double)t->T * (double)t->D;
    int nt = flops < ATTN_PAR_MIN_FLOPS ? 1 : cb->threads;
    nt = nt < c.items ? nt : (int)c.items;
    cpu_parallel(cb, nt, attn_worker, &c);
    return 0;
}
