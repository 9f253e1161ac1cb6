/* krn_test_ops.h: op checks that run one op on a backend under test and on a
 * reference backend with the same random inputs and compare the outputs.
 * Used by test_krn_cpu (cpu vs ref) and test_krn_cuda (cuda vs cpu).
 */
#ifndef MOAT_KRN_TEST_OPS_H
#define MOAT_KRN_TEST_OPS_H

#include "tests/kernels/krn_test.h"

struct kt_pair {
    krn_backend_t *be;  /* under test */
    krn_backend_t *ref; /* reference */
};

/* span of one operand in elements, batch included (args resolved as krn_core does) */
static inline size_t kt_gemm_span(int64_t rows, int64_t cols, int64_t ld, int64_t batch,
                                  int64_t stride)
{
    return (size_t)((rows - 1) * (ld ? ld : cols) + cols + (batch > 1 ? batch - 1 : 0) * stride);
}

/* kt_gemm: run g on both backends; C starts random (beta matters). */
static inline void kt_gemm(struct kt_pair *p, struct krn_gemm_args g, double atol, double rtol)
{
    struct err e = {0};
    int64_t ar = g.trans_a ? g.K : g.M, ac = g.trans_a ? g.M : g.K;
    int64_t br = g.trans_b ? g.N : g.K, bc = g.trans_b ? g.K : g.N;
    size_t na = kt_gemm_span(ar, ac, g.lda, g.batch, g.stride_a);
    size_t nb = kt_gemm_span(br, bc, g.ldb, g.batch, g.stride_b);
    size_t nc = kt_gemm_span(g.M, g.N, g.ldc, g.batch, g.stride_c);
    float *a = kt_randv(na, 1), *b = kt_randv(nb, 1), *c = kt_randv(nc, 1),
          *bias = kt_randv((size_t)g.N, 1);
    float *out[2];
    krn_backend_t *bes[2] = {p->be, p->ref};
    for (int i = 0; i < 2; i++) {
        krn_buf_t *ba = kt_buf(bes[i], a, na, g.dtype_ab), *bb = kt_buf(bes[i], b, nb, g.dtype_ab),
                  *bc_ = kt_buf(bes[i], c, nc, g.dtype_c), *bbias = kt_buf(bes[i], bias, (size_t)g.N,
                                                                       KRN_DTYPE_F32);
        if (krn_gemm(bes[i], &g, ba, bb, bbias, bc_, &e) != 0)
            fail_msg("gemm on %s: %s", krn_backend_name(bes[i]), e.msg);
        out[i] = kt_get(bc_, nc, g.dtype_c);
        krn_buf_free(ba);
        krn_buf_free(bb);
        krn_buf_free(bc_);
        krn_buf_free(bbias);
    }
    char what[128];
    snprintf(what, sizeof what, "gemm M=%lld N=%lld K=%lld ta=%d tb=%d epi=%d batch=%lld %s",
             (long long)g.M, (long long)g.N, (long long)g.K, g.trans_a, g.trans_b, g.epilogue,
             (long long)g.batch, krn_dtype_names[g.dtype_ab]);
    kt_close(what, out[0], out[1], nc, atol, rtol);
    free(a), free(b), free(c), free(bias), free(out[0]), free(out[1]);
}

/* kt_attn: run attention t on both backends. q/k/v are views into one fused
 * [B, T, 3, H, D] buffer when fused is set. mask: int32 [B, T] or NULL. */
static inline void kt_attn(struct kt_pair *p, struct krn_attn_args t, const int32_t *mask,
                           bool fused, double atol, double rtol)
{
    struct err e = {0};
    size_t hd = (size_t)(t.H * t.D), rows = (size_t)(t.B * t.T);
    size_t es = krn_dtype_size(t.dtype);
    size_t nin = fused ? rows * 3 * hd : rows * hd;
    float *x[3];
    for (int i = 0; i < 3; i++)
        x[i] = kt_randv(nin, 1.5f);
    if (fused)
        t.ld_q = t.ld_k = t.ld_v = (int64_t)(3 * hd);
    float *out[2];
    krn_backend_t *bes[2] = {p->be, p->ref};
    for (int i = 0; i < 2; i++) {
        krn_buf_t *bx[3] = {0}, *qkv = NULL, *bm = NULL;
        if (fused) {
            qkv = kt_buf(bes[i], x[0], nin, t.dtype);
            for (int j = 0; j < 3; j++) {
                bx[j] = krn_buf_view(qkv, (size_t)j * hd * es, (nin - 2 * hd) * es, &e);
                assert_non_null(bx[j]);
            }
        } else {
            for (int j = 0; j < 3; j++)
                bx[j] = kt_buf(bes[i], x[j], nin, t.dtype);
        }
        if (mask != NULL)
            bm = kt_buf_i32(bes[i], mask, rows);
        krn_buf_t *bo = kt_buf(bes[i], NULL, rows * hd, t.dtype_o);
        if (krn_attention(bes[i], &t, bx[0], bx[1], bx[2], bm, bo, &e) != 0)
            fail_msg("attention on %s: %s", krn_backend_name(bes[i]), e.msg);
        out[i] = kt_get(bo, rows * hd, t.dtype_o);
        for (int j = 0; j < 3; j++)
            krn_buf_free(bx[j]);
        krn_buf_free(qkv);
        krn_buf_free(bm);
        krn_buf_free(bo);
    }
    char what[128];
    snprintf(what, sizeof what, "attention B=%lld T=%lld H=%lld D=%lld causal=%d mask=%d %s",
             (long long)t.B, (long long)t.T, (long long)t.H, (long long)t.D, t.causal,
             mask != NULL, krn_dtype_names[t.dtype]);
    kt_close(what, out[0], out[1], rows * hd, atol, rtol);
    for (int i = 0; i < 3; i++)
        free(x[i]);
    free(out[0]), free(out[1]);
}

enum kt_row_op { KT_LAYERNORM, KT_GELU, KT_SOFTMAX, KT_ADD, KT_L2NORM };

/* kt_rowop: one of the f32 row/elementwise ops on [rows, cols]; inplace writes y = x. */
static inline void kt_rowop(struct kt_pair *p, enum kt_row_op op, int64_t rows, int64_t cols,
                            bool inplace, double atol, double rtol)
{
    struct err e = {0};
    size_t n = (size_t)(rows * cols);
    float *x = kt_randv(n, 3), *x2 = kt_randv(n, 1), *g = kt_randv((size_t)cols, 1),
          *bta = kt_randv((size_t)cols, 1);
    if (op == KT_L2NORM && rows > 1)
        memset(x + (rows - 1) * cols, 0, (size_t)cols * 4); /* a zero row: eps path */
    float *out[2];
    krn_backend_t *bes[2] = {p->be, p->ref};
    for (int i = 0; i < 2; i++) {
        krn_backend_t *be = bes[i];
        krn_buf_t *bx = kt_buf(be, x, n, KRN_DTYPE_F32), *bx2 = kt_buf(be, x2, n, KRN_DTYPE_F32);
        krn_buf_t *bg = kt_buf(be, g, (size_t)cols, KRN_DTYPE_F32),
                  *bb = kt_buf(be, bta, (size_t)cols, KRN_DTYPE_F32);
        krn_buf_t *by = inplace ? bx : kt_buf(be, NULL, n, KRN_DTYPE_F32);
        int rc = 0;
        switch (op) {
        case KT_LAYERNORM: rc = krn_layernorm(be, rows, cols, 1e-12f, bx, bg, bb, by, &e); break;
        case KT_GELU: rc = krn_gelu(be, (int64_t)n, bx, by, &e); break;
        case KT_SOFTMAX: rc = krn_softmax(be, rows, cols, bx, by, &e); break;
        case KT_ADD: rc = krn_add(be, (int64_t)n, bx, bx2, by, &e); break;
        case KT_L2NORM: rc = krn_l2_normalize(be, rows, cols, 1e-12f, bx, by, &e); break;
        }
        if (rc != 0)
            fail_msg("row op %d on %s: %s", op, krn_backend_name(be), e.msg);
        out[i] = kt_get(by, n, KRN_DTYPE_F32);
        if (!inplace)
            krn_buf_free(by);
        krn_buf_free(bx), krn_buf_free(bx2), krn_buf_free(bg), krn_buf_free(bb);
    }
    static const char *names[] = {"layernorm", "gelu", "softmax", "add", "l2norm"};
    char what[96];
    snprintf(what, sizeof what, "%s rows=%lld cols=%lld inplace=%d", names[op], (long long)rows,
             (long long)cols, inplace);
    kt_close(what, out[0], out[1], n, atol, rtol);
    free(x), free(x2), free(g), free(bta), free(out[0]), free(out[1]);
}

/* kt_embedding: ids include out-of-range values (-1, vocab), which give zero rows. */
static inline void kt_embedding(struct kt_pair *p, int64_t n, int64_t dim, int64_t vocab)
{
    struct err e = {0};
    int32_t *ids = malloc((size_t)n * 4);
    assert_non_null(ids);
    for (int64_t i = 0; i < n; i++)
        ids[i] = (int32_t)(((uint32_t)(kt_rand() * 1e6f + 1e6f)) % (uint32_t)vocab);
    ids[0] = -1;
    if (n > 1)
        ids[n - 1] = (int32_t)vocab;
    float *table = kt_randv((size_t)(vocab * dim), 1), *out[2];
    krn_backend_t *bes[2] = {p->be, p->ref};
    for (int i = 0; i < 2; i++) {
        krn_buf_t *bi = kt_buf_i32(bes[i], ids, (size_t)n),
                  *bt = kt_buf(bes[i], table, (size_t)(vocab * dim), KRN_DTYPE_F32),
                  *bo = kt_buf(bes[i], NULL, (size_t)(n * dim), KRN_DTYPE_F32);
        if (krn_embedding(bes[i], n, dim, vocab, bi, bt, bo, &e) != 0)
            fail_msg("embedding: %s", e.msg);
        out[i] = kt_get(bo, (size_t)(n * dim), KRN_DTYPE_F32);
        krn_buf_free(bi), krn_buf_free(bt), krn_buf_free(bo);
    }
    kt_close("embedding", out[0], out[1], (size_t)(n * dim), 0, 0);
    for (int64_t d = 0; d < dim; d++)
        assert_true(out[0][d] == 0.0f); /* id -1 */
    free(ids), free(table), free(out[0]), free(out[1]);
}

/* kt_mean_pool: mask rows: random, all valid, and (when B > 2) all padding. */
static inline void kt_mean_pool(struct kt_pair *p, int64_t B, int64_t T, int64_t D, bool use_mask)
{
    struct err e = {0};
    int32_t *mask = malloc((size_t)(B * T) * 4);
    assert_non_null(mask);
    for (int64_t i = 0; i < B * T; i++)
        mask[i] = kt_rand() > -0.3f;
    if (B > 2)
        for (int64_t t = 0; t < T; t++)
            mask[2 * T + t] = 0;
    float *x = kt_randv((size_t)(B * T * D), 2), *out[2];
    krn_backend_t *bes[2] = {p->be, p->ref};
    for (int i = 0; i < 2; i++) {
        krn_buf_t *bx = kt_buf(bes[i], x, (size_t)(B * T * D), KRN_DTYPE_F32);
        krn_buf_t *bm = use_mask ? kt_buf_i32(bes[i], mask, (size_t)(B * T)) : NULL;
        krn_buf_t *bo = kt_buf(bes[i], NULL, (size_t)(B * D), KRN_DTYPE_F32);
        if (krn_mean_pool(bes[i], B, T, D, bx, bm, bo, &e) != 0)
            fail_msg("mean_pool: %s", e.msg);
        out[i] = kt_get(bo, (size_t)(B * D), KRN_DTYPE_F32);
        krn_buf_free(bx), krn_buf_free(bm), krn_buf_free(bo);
    }
    kt_close("mean_pool", out[0], out[1], (size_t)(B * D), 1e-5, 1e-5);
    free(mask), free(x), free(out[0]), free(out[1]);
}

#endif
