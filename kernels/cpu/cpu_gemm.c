/* cpu_gemm.c: the cpu backend's GEMM: OpenBLAS cblas_sgemm plus a threaded epilogue.
 *
 * f32 A/B/C go straight to cblas_sgemm (row-major, the caller's ld), so the
 * cost over calling OpenBLAS directly is the argument check only. bf16/f16
 * operands are widened into the handle's scratch first (Debian's OpenBLAS has
 * no cblas_sbgemm), and a bf16/f16 C is computed in f32 scratch and narrowed
 * in the epilogue pass. Each GEMM is split over the backend's pool (OpenBLAS
 * itself runs single-threaded, see cpu_threads_set) in column or row blocks;
 * a thread applies the epilogue to its own block right after computing it, and
 * a bias with beta == 0 is written into C before sgemm runs with beta = 1
 * (which replaces OpenBLAS's zeroing pass of C, so the bias costs nothing).
 */
#include "kernels/cpu/cpu.h"

#include <cblas.h>
#include <string.h>

/* Elements of C (M*N*K, per batch item) below which a GEMM runs on one thread. */
#define GEMM_PAR_MIN ((int64_t)1 << 18)

struct gemm_ctx {
    const struct krn_gemm_args *g;
    const float *af, *bf, *bias;
    float *cf;          /* f32 result, [batch][M, ldcf] (may equal c) */
    int64_t ldcf, stride_cf;
    void *c;            /* final C in dtype_c */
    bool wide_out;      /* C is bf16/f16: cf is f32 scratch, narrowed here */
    bool prefill;       /* bias written into C first, then sgemm with beta = 1 */
    bool split_n;       /* threads take column blocks (else row blocks) */
};

/* share: [lo, hi) of n items in units of u for thread tid of nt. */
static void share(int64_t n, int64_t u, int tid, int nt, int64_t *lo, int64_t *hi)
{
    int64_t units = (n + u - 1) / u, per = units / nt, rem = units % nt;
    int64_t a = tid * per + (tid < rem ? tid : rem), b = a + per + (tid < rem);
    *lo = a * u < n ? a * u : n;
    *hi = b * u < n ? b * u : n;
}

/* epilogue of rows [m0, m1) x columns [n0, n1) of item bt, right after its sgemm
 * (the block is still in cache). */
static void gemm_epilogue(const struct gemm_ctx *e, int64_t bt, int64_t m0, int64_t m1,
                          int64_t n0, int64_t n1)
{
    const struct krn_gemm_args *g = e->g;
    bool add_bias = g->epilogue != KRN_EPI_NONE && !e->prefill;
    bool gelu = g->epilogue == KRN_EPI_BIAS_GELU;
    for (int64_t m = m0; m < m1; m++) {
        float *src = e->cf + bt * e->stride_cf + m * e->ldcf;
        if (add_bias)
            for (int64_t j = n0; j < n1; j++)
                src[j] += e->bias[j];
        if (gelu)
            cpu_gelu_run(src + n0, src + n0, n1 - n0);
        if (e->wide_out) {
            int64_t dst = bt * g->stride_c + m * g->ldc;
            for (int64_t j = n0; j < n1; j++)
                krn_store_f32(e->c, g->dtype_c, dst + j, src[j]);
        }
    }
}

static void gemm_worker(void *p, int tid, int nt)
{
    const struct gemm_ctx *e = p;
    const struct krn_gemm_args *g = e->g;
    int64_t m0 = 0, m1 = g->M, n0 = 0, n1 = g->N;
    if (e->split_n)
        share(g->N, 16, tid, nt, &n0, &n1);
    else
        share(g->M, 4, tid, nt, &m0, &m1);
    if (m0 >= m1 || n0 >= n1)
        return;
    /* op(A) rows m0.. and op(B) columns n0.. inside the stored layouts */
    int64_t aoff = g->trans_a ? m0 : m0 * g->lda, boff = g->trans_b ? n0 * g->ldb : n0;
    for (int64_t bt = 0; bt < g->batch; bt++) {
        float *cblk = e->cf + bt * e->stride_cf + m0 * e->ldcf + n0;
        if (e->prefill)
            for (int64_t m = m0; m < m1; m++)
                memcpy(cblk + (m - m0) * e->ldcf, e->bias + n0,
                       (size_t)(n1 - n0) * sizeof(float));
        cblas_sgemm(CblasRowMajor, g->trans_a ? CblasTrans : CblasNoTrans,
                    g->trans_b ? CblasTrans : CblasNoTrans, (blasint)(m1 - m0),
                    (blasint)(n1 - n0), (blasint)g->K, g->alpha,
                    e->af + bt * g->stride_a + aoff, (blasint)g->lda,
                    e->bf + bt * g->stride_b + boff, (blasint)g->ldb,
                    e->prefill ? 1.0f : g->beta, cblk, (blasint)e->ldcf);
        if (g->epilogue != KRN_EPI_NONE || e->wide_out)
            gemm_epilogue(e, bt, m0, m1, n0, n1);
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
    /* Split over the pool: column blocks when M < N (each thread then packs
     * all of A and its share of B, the smaller total), else row blocks. */
    struct gemm_ctx e = {g, af, bf, bias, cf, ldcf, stride_cf, c, wide_out,
                         g->epilogue != KRN_EPI_NONE && g->beta == 0.0f, g->M < g->N};
    int nt = g->M * g->N * g->K >= GEMM_PAR_MIN ? cb->threads : 1;
    int64_t units = e.split_n ? (g->N + 15) / 16 : (g->M + 3) / 4;
    cpu_parallel(cb, nt > units ? (int)units : nt, gemm_worker, &e);
    return 0;
}
