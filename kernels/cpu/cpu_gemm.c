/* cpu_gemm.c: the cpu backend's GEMM: OpenBLAS cblas_sgemm plus a threaded epilogue.
 *
 * f32 A/B/C go straight to cblas_sgemm (row-major, the caller's ld), so the
 * cost over calling OpenBLAS directly is the argument check only. bf16/f16
 * operands are widened into the handle's scratch first (Debian's OpenBLAS has
 * no cblas_sbgemm), and a bf16/f16 C is computed in f32 scratch and narrowed
 * in the epilogue pass. The bias/GELU epilogue is one extra pass over C.
 */
#include "kernels/cpu/cpu.h"

#include <cblas.h>

struct epi_ctx {
    const struct krn_gemm_args *g;
    const float *bias;
    float *cf;   /* f32 result, [batch][M, ldcf] */
    int64_t ldcf, stride_cf;
    void *c;     /* final C in dtype_c (may equal cf) */
    int64_t rows; /* batch * M */
};

static void epi_worker(void *p, int tid, int n)
{
    struct epi_ctx *e = p;
    const struct krn_gemm_args *g = e->g;
    int64_t per = (e->rows + n - 1) / n, lo = tid * per, hi = lo + per < e->rows ? lo + per : e->rows;
    for (int64_t r = lo; r < hi; r++) {
        int64_t bt = r / g->M, m = r % g->M;
        float *src = e->cf + bt * e->stride_cf + m * e->ldcf;
        int64_t dst = bt * g->stride_c + m * g->ldc;
        if (g->epilogue == KRN_EPI_BIAS_GELU) { /* vectorised GELU in chunks */
            float tmp[256];
            for (int64_t j0 = 0; j0 < g->N; j0 += 256) {
                int64_t nj = g->N - j0 < 256 ? g->N - j0 : 256;
                for (int64_t j = 0; j < nj; j++)
                    tmp[j] = src[j0 + j] + e->bias[j0 + j];
                cpu_gelu_run(tmp, tmp, nj);
                for (int64_t j = 0; j < nj; j++)
                    krn_store_f32(e->c, g->dtype_c, dst + j0 + j, tmp[j]);
            }
            continue;
        }
        for (int64_t j = 0; j < g->N; j++) {
            float x = src[j];
            if (g->epilogue != KRN_EPI_NONE)
                x += e->bias[j];
            krn_store_f32(e->c, g->dtype_c, dst + j, x);
        }
    }
}

/* widen: n elements of dtype at src into f32 dst. */
static void widen(const void *src, enum krn_dtype dt, float *dst, int64_t n)
{
    if (dt == KRN_DTYPE_BF16)
        krn_bf16_to_f32(src, dst, (size_t)n);
    else
        krn_f16_to_f32(src, dst, (size_t)n);
}

int cpu_gemm(krn_backend_t *be, const struct krn_gemm_args *g, const void *a, const void *b,
             const float *bias, void *c, struct err *err)
{
    struct cpu_backend *cb = (struct cpu_backend *)be;
    int64_t ar = g->trans_a ? g->K : g->M, ac = g->trans_a ? g->M : g->K;
    int64_t br = g->trans_b ? g->N : g->K, bc = g->trans_b ? g->K : g->N;
    int64_t na = (ar - 1) * g->lda + ac + (g->batch - 1) * g->stride_a;
    int64_t nb = (br - 1) * g->ldb + bc + (g->batch - 1) * g->stride_b;
    bool wide_in = g->dtype_ab != KRN_DTYPE_F32, wide_out = g->dtype_c != KRN_DTYPE_F32;
    int64_t nc = wide_out ? g->batch * g->M * g->N : 0;
    if (wide_in || wide_out) {
        size_t need = (size_t)((wide_in ? na + nb : 0) + nc);
        if (cpu_scratch_reserve(cb, need, err) != 0)
            return -1;
    }
    const float *af = a, *bf = b;
    float *cf = c;
    int64_t ldcf = g->ldc, stride_cf = g->stride_c;
    float *s = cb->gemm_scratch;
    if (wide_in) {
        widen(a, g->dtype_ab, s, na);
        widen(b, g->dtype_ab, s + na, nb);
        af = s;
        bf = s + na;
        s += na + nb;
    }
    if (wide_out) {
        cf = s;
        ldcf = g->N;
        stride_cf = g->M * g->N;
        if (g->beta != 0.0f)
            for (int64_t bt = 0; bt < g->batch; bt++)
                for (int64_t m = 0; m < g->M; m++)
                    for (int64_t j = 0; j < g->N; j++)
                        cf[bt * stride_cf + m * ldcf + j] = krn_load_f32(
                            c, g->dtype_c, bt * g->stride_c + m * g->ldc + j);
    }
    for (int64_t bt = 0; bt < g->batch; bt++)
        cblas_sgemm(CblasRowMajor, g->trans_a ? CblasTrans : CblasNoTrans,
                    g->trans_b ? CblasTrans : CblasNoTrans, (blasint)g->M, (blasint)g->N,
                    (blasint)g->K, g->alpha, af + bt * g->stride_a, (blasint)g->lda,
                    bf + bt * g->stride_b, (blasint)g->ldb, g->beta, cf + bt * stride_cf,
                    (blasint)ldcf);
    if (g->epilogue != KRN_EPI_NONE || wide_out) {
        struct epi_ctx e = {g, bias, cf, ldcf, stride_cf, c, g->batch * g->M};
        int nt = e.rows * g->N >= (1 << 16) ? cb->threads : 1;
        cpu_parallel(nt > e.rows ? (int)e.rows : nt, epi_worker, &e);
    }
    return 0;
}
