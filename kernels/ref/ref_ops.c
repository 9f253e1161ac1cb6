/* ref_ops.c: plain-loop reference implementations of every op, on host pointers.
 *
 * Obviously right rather than fast: one loop nest per formula, accumulation in
 * double, inputs converted from their dtype element by element. The cpu and
 * cuda backends are tested against these. Arguments are already resolved and
 * checked by krn_core.c (ld, batch, scale set).
 */
#include "kernels/krn_impl.h"

#include <math.h>

void krn_ref_gemm(const struct krn_gemm_args *g, const void *a, const void *b,
                  const float *bias, void *c)
{
    for (int64_t bt = 0; bt < g->batch; bt++) {
        int64_t oa = bt * g->stride_a, ob = bt * g->stride_b, oc = bt * g->stride_c;
        for (int64_t m = 0; m < g->M; m++) {
            for (int64_t n = 0; n < g->N; n++) {
                double acc = 0;
                for (int64_t k = 0; k < g->K; k++) {
                    /* op(A)[m,k], op(B)[k,n] */
                    int64_t ia = g->trans_a ? k * g->lda + m : m * g->lda + k;
                    int64_t ib = g->trans_b ? n * g->ldb + k : k * g->ldb + n;
                    acc += (double)krn_load_f32(a, g->dtype_ab, oa + ia) *
                           (double)krn_load_f32(b, g->dtype_ab, ob + ib);
                }
                int64_t ic = oc + m * g->ldc + n;
                double r = g->alpha * acc;
                if (g->beta != 0.0f)
                    r += (double)g->beta * krn_load_f32(c, g->dtype_c, ic);
                if (g->epilogue != KRN_EPI_NONE)
                    r += bias[n];
                if (g->epilogue == KRN_EPI_BIAS_GELU)
                    r = 0.5 * r * (1.0 + erf(r / sqrt(2.0)));
                krn_store_f32(c, g->dtype_c, ic, (float)r);
            }
        }
    }
}

/* Two passes per query row over all T keys: scores, then softmax and sum. */
void krn_ref_attention(const struct krn_attn_args *t, const void *q, const void *k,
                       const void *v, const int32_t *mask, void *o)
{
    double s[t->T > 0 ? t->T : 1]; /* VLA: the ref backend is for tests, T is modest */
    for (int64_t b = 0; b < t->B; b++) {
        for (int64_t h = 0; h < t->H; h++) {
            for (int64_t i = 0; i < t->T; i++) {
                int64_t qi = (b * t->T + i) * t->ld_q + h * t->D;
                double mx = -INFINITY;
                for (int64_t j = 0; j < t->T; j++) {
                    bool visible = (mask == NULL || mask[b * t->T + j] != 0) &&
                                   (!t->causal || j <= i);
                    if (!visible) {
                        s[j] = -INFINITY;
                        continue;
                    }
                    int64_t kj = (b * t->T + j) * t->ld_k + h * t->D;
                    double acc = 0;
                    for (int64_t d = 0; d < t->D; d++)
                        acc += (double)krn_load_f32(q, t->dtype, qi + d) *
                               krn_load_f32(k, t->dtype, kj + d);
                    s[j] = acc * t->scale;
                    if (s[j] > mx)
                        mx = s[j];
                }
                double sum = 0;
                for (int64_t j = 0; j < t->T; j++) {
                    s[j] = mx == -INFINITY || s[j] == -INFINITY ? 0 : exp(s[j] - mx);
                    sum += s[j];
                }
                int64_t oi = (b * t->T + i) * t->ld_o + h * t->D;
                for (int64_t d = 0; d < t->D; d++) {
                    double acc = 0;
                    for (int64_t j = 0; j < t->T; j++)
                        if (s[j] != 0)
                            acc += s[j] * krn_load_f32(v, t->dtype,
                                                       (b * t->T + j) * t->ld_v + h * t->D + d);
                    krn_store_f32(o, t->dtype_o, oi + d, sum > 0 ? (float)(acc / sum) : 0.0f);
                }
            }
        }
    }
}

void krn_ref_layernorm(int64_t rows, int64_t cols, float eps, const float *x,
                       const float *gamma, const float *beta, float *y)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        double mean = 0, var = 0;
        for (int64_t c = 0; c < cols; c++)
            mean += xr[c];
        mean /= (double)cols;
        for (int64_t c = 0; c < cols; c++)
            var += (xr[c] - mean) * (xr[c] - mean);
        var /= (double)cols;
        double inv = 1.0 / sqrt(var + eps);
        for (int64_t c = 0; c < cols; c++)
            y[r * cols + c] = (float)((xr[c] - mean) * inv * gamma[c] + beta[c]);
    }
}

void krn_ref_gelu(int64_t n, const float *x, float *y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = (float)(0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0))));
}

void krn_ref_softmax(int64_t rows, int64_t cols, const float *x, float *y)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        double mx = -INFINITY, sum = 0;
        for (int64_t c = 0; c < cols; c++)
            mx = xr[c] > mx ? xr[c] : mx;
        for (int64_t c = 0; c < cols; c++)
            sum += exp(xr[c] - mx);
        for (int64_t c = 0; c < cols; c++)
            y[r * cols + c] = (float)(exp(xr[c] - mx) / sum);
    }
}

void krn_ref_add(int64_t n, const float *a, const float *b, float *y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = a[i] + b[i];
}

void krn_ref_embedding(int64_t n, int64_t dim, int64_t vocab, const int32_t *ids,
                       const float *table, float *out)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t d = 0; d < dim; d++)
            out[i * dim + d] = ids[i] >= 0 && ids[i] < vocab ? table[ids[i] * dim + d] : 0.0f;
}

void krn_ref_mean_pool(int64_t B, int64_t T, int64_t D, const float *x, const int32_t *mask,
                       float *out)
{
    for (int64_t b = 0; b < B; b++) {
        double cnt = 0;
        for (int64_t t = 0; t < T; t++)
            cnt += mask == NULL || mask[b * T + t] != 0;
        for (int64_t d = 0; d < D; d++) {
            double acc = 0;
            for (int64_t t = 0; t < T; t++)
                if (mask == NULL || mask[b * T + t] != 0)
                    acc += x[(b * T + t) * D + d];
            out[b * D + d] = (float)(acc / (cnt > 1e-9 ? cnt : 1e-9));
        }
    }
}

void krn_ref_l2_normalize(int64_t rows, int64_t cols, float eps, const float *x, float *y)
{
    for (int64_t r = 0; r < rows; r++) {
        double ss = 0;
        for (int64_t c = 0; c < cols; c++)
            ss += (double)x[r * cols + c] * x[r * cols + c];
        double nrm = sqrt(ss);
        if (nrm < eps)
            nrm = eps;
        for (int64_t c = 0; c < cols; c++)
            y[r * cols + c] = (float)(x[r * cols + c] / nrm);
    }
}
