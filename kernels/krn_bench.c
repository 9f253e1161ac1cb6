/* krn_bench.c: krn_bench_run, the one benchmark routine behind bench-kernels and
 * the worker's bench task: set up, validate, time, and format JSON rows.
 *
 * Validation runs before any timing. GEMM and attention are checked on sampled
 * outputs against a double-precision dot product on the host (so a 8192^3 GEMM
 * is validated in milliseconds on every backend); the row ops are checked in
 * full against kernels/ref. References timed in the same run: OpenBLAS called
 * directly (gemm on cpu), a registered hook (cuBLAS on cuda, see krn_bench.h),
 * and for attention the unfused Q.K^T -> softmax -> P.V built from this
 * backend's own GEMM and softmax (no mask, non-causal only; f32, so bf16/f16
 * rows time it on f32 copies of the same values and name it "unfused_f32").
 */
#include "kernels/krn_bench.h"
#include "kernels/krn_impl.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const struct krn_bench_ref *bench_ref;

void krn_bench_ref_set(const struct krn_bench_ref *ref)
{
    bench_ref = ref;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Fixed-seed uniform [-1, 1) (xorshift64*), as in the tests. */
static float bench_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (float)(((*s * 2685821657736338717ull) >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

/* A benchmark case: host copies (f32, already rounded to dtype) and buffers. */
struct bcase {
    enum krn_op op;
    int64_t s[5];
    int ns;
    enum krn_dtype dt;
    krn_backend_t *be;
    float *h[3];          /* host inputs, f32 values exactly representable in dt */
    size_t n[3], nout;
    krn_buf_t *in[3], *out, *aux, *mask;
    struct krn_gemm_args g;
    struct krn_attn_args t;
    float *scratch_h;     /* host copy of the output */
    int64_t nscores;      /* floats of the unfused attention reference's scores; -1: too many */
};

typedef int (*run_fn)(struct bcase *c, struct err *err);

static int run_op(struct bcase *c, struct err *err)
{
    krn_backend_t *be = c->be;
    const int64_t *s = c->s;
    switch (c->op) {
    case KRN_OP_GEMM: return krn_gemm(be, &c->g, c->in[0], c->in[1], NULL, c->out, err);
    case KRN_OP_ATTENTION:
        return krn_attention(be, &c->t, c->in[0], c->in[1], c->in[2], NULL, c->out, err);
    case KRN_OP_LAYERNORM:
        return krn_layernorm(be, s[0], s[1], 1e-12f, c->in[0], c->in[1], c->in[2], c->out, err);
    case KRN_OP_GELU: return krn_gelu(be, s[0], c->in[0], c->out, err);
    case KRN_OP_SOFTMAX: return krn_softmax(be, s[0], s[1], c->in[0], c->out, err);
    case KRN_OP_ADD: return krn_add(be, s[0], c->in[0], c->in[1], c->out, err);
    case KRN_OP_EMBEDDING:
        return krn_embedding(be, s[0], s[1], 30522, c->aux, c->in[0], c->out, err);
    case KRN_OP_MEAN_POOL:
        return krn_mean_pool(be, s[0], s[1], s[2], c->in[0], c->mask, c->out, err);
    case KRN_OP_L2NORM: return krn_l2_normalize(be, s[0], s[1], 1e-12f, c->in[0], c->out, err);
    default: return err_set(err, EINVAL, "bench: op %d", (int)c->op);
    }
}

/* upload_as: n f32 values as dtype into a new buffer. */
static krn_buf_t *upload_as(krn_backend_t *be, const float *x, size_t n, enum krn_dtype dt,
                            struct err *err)
{
    size_t es = krn_dtype_size(dt);
    krn_buf_t *b = krn_buf_alloc(be, n * es, err);
    if (b == NULL)
        return NULL;
    void *tmp = (void *)x;
    if (dt != KRN_DTYPE_F32) {
        tmp = malloc(n * es);
        if (tmp == NULL) {
            krn_buf_free(b);
            err_set(err, ENOMEM, "bench: host copy");
            return NULL;
        }
        if (dt == KRN_DTYPE_BF16)
            krn_f32_to_bf16(x, tmp, n);
        else
            krn_f32_to_f16(x, tmp, n);
    }
    int rc = krn_buf_upload(b, 0, tmp, n * es, err);
    if (tmp != x)
        free(tmp);
    if (rc != 0) {
        krn_buf_free(b);
        return NULL;
    }
    return b;
}

static void bcase_free(struct bcase *c)
{
    for (int i = 0; i < 3; i++) {
        free(c->h[i]);
        krn_buf_free(c->in[i]);
    }
    krn_buf_free(c->out);
    krn_buf_free(c->aux);
    krn_buf_free(c->mask);
    free(c->scratch_h);
}

/* A tensor of a bench case may have at most this many elements (256 GiB of f32):
 * every size below is computed with overflow checks against it. */
#define BENCH_ELEMS_MAX ((int64_t)1 << 36)

/* prod: *out = a * b * c (c may be 1), false on overflow or over BENCH_ELEMS_MAX. */
static bool prod(int64_t a, int64_t b, int64_t c, int64_t *out)
{
    int64_t ab;
    return !__builtin_mul_overflow(a, b, &ab) && !__builtin_mul_overflow(ab, c, out) &&
           *out >= 0 && *out <= BENCH_ELEMS_MAX;
}

/* bench_sizes: element counts of the case's inputs n[3], output *nout and int32
 * side input *nids (embedding ids, mean_pool mask), and the floats of the
 * unfused attention reference's scores [H, T, T] (*nscores; 0 for other ops,
 * -1 when over BENCH_ELEMS_MAX: that case is timed without the reference).
 * s holds nshape values already accepted by krn_op_flops/krn_op_bytes. EINVAL
 * naming the op when a tensor is too large (BENCH_ELEMS_MAX) or a product
 * overflows, before anything is allocated. */
static int bench_sizes(enum krn_op op, const int64_t *s, int ns, int64_t n[3], int64_t *nout,
                       int64_t *nids, int64_t *nscores, struct err *err)
{
    bool ok = true;
    n[0] = n[1] = n[2] = *nout = *nids = *nscores = 0;
    switch (op) {
    case KRN_OP_GEMM: {
        int64_t batch = ns > 3 ? s[3] : 1;
        ok = prod(batch, s[0], s[2], &n[0]) && prod(batch, s[1], s[2], &n[1]) &&
             prod(batch, s[0], s[1], nout);
        break;
    }
    case KRN_OP_ATTENTION: {
        int64_t bt;
        ok = prod(s[0], s[1], 1, &bt) && prod(bt, s[2], s[3], &n[0]);
        if (!prod(s[2], s[1], s[1], nscores))
            *nscores = -1; /* too long for the unfused reference: the row has none */
        n[1] = n[2] = *nout = n[0];
        break;
    }
    case KRN_OP_LAYERNORM:
        ok = prod(s[0], s[1], 1, &n[0]);
        n[1] = n[2] = s[1];
        *nout = n[0];
        break;
    case KRN_OP_GELU:
    case KRN_OP_ADD:
        ok = prod(s[0], 1, 1, &n[0]);
        if (op == KRN_OP_ADD)
            n[1] = n[0];
        *nout = n[0];
        break;
    case KRN_OP_SOFTMAX:
    case KRN_OP_L2NORM:
        ok = prod(s[0], s[1], 1, &n[0]);
        *nout = n[0];
        break;
    case KRN_OP_EMBEDDING:
        ok = prod(30522, s[1], 1, &n[0]) && prod(s[0], s[1], 1, nout);
        *nids = s[0];
        break;
    case KRN_OP_MEAN_POOL:
        ok = prod(s[0], s[1], s[2], &n[0]) && prod(s[0], s[2], 1, nout) && prod(s[0], s[1], 1, nids);
        break;
    default: return err_set(err, EINVAL, "bench: op %d", (int)op);
    }
    if (!ok)
        return err_set(err, EINVAL, "bench %s: shape too large (a tensor over 2^36 elements)",
                       krn_op_names[op]);
    return 0;
}

int krn_bench_footprint(const char *op, const int64_t *shape, int nshape, enum krn_dtype dtype,
                        uint64_t *host_bytes, uint64_t *backend_bytes, struct err *err)
{
    enum krn_op o;
    if (krn_op_parse(op, &o, err) != 0)
        return -1;
    if ((unsigned)dtype >= KRN_DTYPE_COUNT || nshape < 1 || nshape > 5 ||
        krn_op_bytes(o, shape, nshape, dtype) <= 0)
        return err_set(err, EINVAL, "bench %s: bad shape or dtype (see krn_op_flops)", op);
    int64_t n[3], nout, nids, nscores;
    if (bench_sizes(o, shape, nshape, n, &nout, &nids, &nscores, err) != 0)
        return -1;
    uint64_t in = (uint64_t)(n[0] + n[1] + n[2]), es = krn_dtype_size(dtype);
    bool typed = o == KRN_OP_GEMM || o == KRN_OP_ATTENTION;
    /* host: f32 inputs, the output copy, validation's reference (f32 per output
     * element at most), ids; backend: inputs and output at dtype, ids, and for
     * unfused attention its scores plus f32 copies of q, k, v, o */
    *host_bytes = 4 * in + 4 * (uint64_t)nout + 4 * (uint64_t)nout + 4 * (uint64_t)nids;
    *backend_bytes = (typed ? es : 4) * (in + (uint64_t)nout) + 4 * (uint64_t)nids +
                     (nscores > 0 ? 4 * (uint64_t)nscores + 4 * (in + (uint64_t)nout) : 0);
    return 0;
}

/* bcase_setup: shapes -> sizes, random host inputs rounded to dtype, buffers. */
static int bcase_setup(struct bcase *c, struct err *err)
{
    const int64_t *s = c->s;
    enum krn_dtype in_dt = KRN_DTYPE_F32;
    size_t out_es = 4;
    int64_t n[3], nout, nids, nscores;
    if (bench_sizes(c->op, s, c->ns, n, &nout, &nids, &nscores, err) != 0)
        return -1;
    for (int i = 0; i < 3; i++)
        c->n[i] = (size_t)n[i];
    c->nout = (size_t)nout;
    c->nscores = nscores;
    switch (c->op) {
    case KRN_OP_GEMM:
        c->g = (struct krn_gemm_args){.M = s[0], .N = s[1], .K = s[2], .trans_b = true,
                                      .alpha = 1, .dtype_ab = c->dt, .dtype_c = c->dt,
                                      .batch = c->ns > 3 ? s[3] : 1};
        c->g.stride_a = s[0] * s[2];
        c->g.stride_b = s[1] * s[2];
        c->g.stride_c = s[0] * s[1];
        in_dt = c->dt;
        out_es = krn_dtype_size(c->dt);
        break;
    case KRN_OP_ATTENTION:
        if (s[3] != 32 && s[3] != 64 && s[3] != 128)
            return err_set(err, EINVAL, "bench attention: D=%lld (32, 64 or 128)",
                           (long long)s[3]);
        c->t = (struct krn_attn_args){.B = s[0], .T = s[1], .H = s[2], .D = s[3],
                                      .causal = c->ns > 4 && s[4] != 0, .dtype = c->dt,
                                      .dtype_o = c->dt};
        in_dt = c->dt;
        out_es = krn_dtype_size(c->dt);
        break;
    default: break;
    }
    uint64_t seed = 0x243f6a8885a308d3ull;
    for (int i = 0; i < 3; i++) {
        if (c->n[i] == 0)
            continue;
        c->h[i] = malloc(c->n[i] * sizeof(float));
        if (c->h[i] == NULL)
            return err_set(err, ENOMEM, "bench: %zu host floats", c->n[i]);
        for (size_t j = 0; j < c->n[i]; j++) {
            float x = bench_rand(&seed); /* rounded to dtype so host and device agree */
            if (in_dt == KRN_DTYPE_BF16)
                x = krn_bf16_to_f32_1(krn_f32_to_bf16_1(x));
            else if (in_dt == KRN_DTYPE_F16)
                x = krn_f16_to_f32_1(krn_f32_to_f16_1(x));
            c->h[i][j] = x;
        }
        if ((c->in[i] = upload_as(c->be, c->h[i], c->n[i], in_dt, err)) == NULL)
            return -1;
    }
    if ((c->out = krn_buf_alloc(c->be, c->nout * out_es, err)) == NULL ||
        krn_buf_zero(c->out, err) != 0)
        return -1;
    if (c->op == KRN_OP_EMBEDDING || c->op == KRN_OP_MEAN_POOL) {
        size_t n = (size_t)nids;
        int32_t *v = malloc(n * 4);
        if (v == NULL)
            return err_set(err, ENOMEM, "bench: ids");
        for (size_t i = 0; i < n; i++)
            v[i] = c->op == KRN_OP_EMBEDDING ? (int32_t)((i * 7919u) % 30522u)
                                             : (int32_t)((i % (size_t)s[1]) < (size_t)s[1] * 3 / 4);
        krn_buf_t *b = krn_buf_alloc(c->be, n * 4, err);
        int rc = b ? krn_buf_upload(b, 0, v, n * 4, err) : -1;
        free(v);
        if (rc != 0) {
            krn_buf_free(b);
            return -1;
        }
        if (c->op == KRN_OP_EMBEDDING)
            c->aux = b;
        else
            c->mask = b;
    }
    c->scratch_h = malloc(c->nout * sizeof(float));
    return c->scratch_h ? 0 : err_set(err, ENOMEM, "bench: output copy");
}

/* fetch_out: the output as f32 on the host (c->scratch_h). */
static int fetch_out(struct bcase *c, enum krn_dtype dt, struct err *err)
{
    if (dt == KRN_DTYPE_F32)
        return krn_buf_download(c->out, 0, c->scratch_h, c->nout * 4, err);
    uint16_t *tmp = malloc(c->nout * 2);
    if (tmp == NULL)
        return err_set(err, ENOMEM, "bench: output copy");
    int rc = krn_buf_download(c->out, 0, tmp, c->nout * 2, err);
    if (rc == 0) {
        if (dt == KRN_DTYPE_BF16)
            krn_bf16_to_f32(tmp, c->scratch_h, c->nout);
        else
            krn_f16_to_f32(tmp, c->scratch_h, c->nout);
    }
    free(tmp);
    return rc;
}

/* validate: max abs error against a host reference and the tolerance it must meet. */
static int validate(struct bcase *c, double *max_err, bool *valid, double *checksum,
                    struct err *err)
{
    bool narrow = (c->op == KRN_OP_GEMM || c->op == KRN_OP_ATTENTION) && c->dt != KRN_DTYPE_F32;
    if (fetch_out(c, narrow ? c->dt : KRN_DTYPE_F32, err) != 0)
        return -1;
    const float *o = c->scratch_h;
    double sum = 0, me = 0, tol = 1e-4; /* |got - want| <= tol + rtol |want| */
    bool bad = false;
    for (size_t i = 0; i < c->nout; i++) {
        sum += o[i];
        if (!isfinite(o[i]))
            bad = true;
    }
    *checksum = sum;
    double rtol = narrow ? (c->dt == KRN_DTYPE_BF16 ? 1.6e-2 : 2e-3) : 1e-4;
    const int64_t *s = c->s;
    uint64_t seed = 7;
    if (c->op == KRN_OP_GEMM) { /* 512 sampled entries, double dot products */
        tol = 1e-5 * (double)s[2] + 1e-4;
        for (int k = 0; k < 512; k++) {
            int64_t bt = (int64_t)((bench_rand(&seed) * 0.5f + 0.5f) * (float)c->g.batch) % c->g.batch;
            int64_t m = (int64_t)((bench_rand(&seed) * 0.5f + 0.5f) * (float)s[0]) % s[0];
            int64_t n = (int64_t)((bench_rand(&seed) * 0.5f + 0.5f) * (float)s[1]) % s[1];
            const float *a = c->h[0] + bt * s[0] * s[2] + m * s[2];
            const float *b = c->h[1] + bt * s[1] * s[2] + n * s[2];
            double want = 0;
            for (int64_t kk = 0; kk < s[2]; kk++)
                want += (double)a[kk] * b[kk];
            double d = fabs(o[bt * s[0] * s[1] + m * s[1] + n] - want);
            me = d > me ? d : me;
            if (d > tol + rtol * fabs(want))
                bad = true;
        }
    } else if (c->op == KRN_OP_ATTENTION) { /* 24 sampled query rows */
        const struct krn_attn_args *t = &c->t;
        int64_t HD = t->H * t->D;
        tol = 1e-4;
        double *p = malloc((size_t)t->T * sizeof(double));
        if (p == NULL)
            return err_set(err, ENOMEM, "bench: validation row");
        for (int r = 0; r < 24; r++) {
            int64_t b = (int64_t)((bench_rand(&seed) * 0.5f + 0.5f) * (float)t->B) % t->B;
            int64_t h = (int64_t)((bench_rand(&seed) * 0.5f + 0.5f) * (float)t->H) % t->H;
            int64_t i = r == 0 ? t->T - 1 : (int64_t)((bench_rand(&seed) * 0.5f + 0.5f) * (float)t->T) % t->T;
            const float *q = c->h[0] + (b * t->T + i) * HD + h * t->D;
            double mx = -INFINITY, l = 0;
            double scale = 1.0 / sqrt((double)t->D);
            int64_t jend = t->causal ? i + 1 : t->T;
            for (int64_t j = 0; j < jend; j++) {
                const float *k = c->h[1] + (b * t->T + j) * HD + h * t->D;
                double acc = 0;
                for (int64_t d = 0; d < t->D; d++)
                    acc += (double)q[d] * k[d];
                p[j] = acc * scale;
                mx = p[j] > mx ? p[j] : mx;
            }
            for (int64_t j = 0; j < jend; j++)
                l += (p[j] = exp(p[j] - mx));
            for (int64_t d = 0; d < t->D; d++) {
                double want = 0;
                for (int64_t j = 0; j < jend; j++)
                    want += p[j] * c->h[2][(b * t->T + j) * HD + h * t->D + d];
                want /= l;
                double dd = fabs(o[(b * t->T + i) * HD + h * t->D + d] - want);
                me = dd > me ? dd : me;
                if (dd > tol + rtol * fabs(want))
                    bad = true;
            }
        }
        free(p);
    } else { /* full reference on the host */
        float *want = malloc(c->nout * sizeof(float));
        int32_t *ids = NULL;
        if (want == NULL)
            return err_set(err, ENOMEM, "bench: reference output");
        if (c->aux || c->mask) {
            krn_buf_t *ib = c->aux ? c->aux : c->mask;
            ids = malloc(krn_buf_size(ib));
            if (ids == NULL || krn_buf_download(ib, 0, ids, krn_buf_size(ib), err) != 0) {
                free(ids), free(want);
                return ids ? -1 : err_set(err, ENOMEM, "bench: ids");
            }
        }
        switch (c->op) {
        case KRN_OP_LAYERNORM: krn_ref_layernorm(s[0], s[1], 1e-12f, c->h[0], c->h[1], c->h[2], want); break;
        case KRN_OP_GELU: krn_ref_gelu(s[0], c->h[0], want); break;
        case KRN_OP_SOFTMAX: krn_ref_softmax(s[0], s[1], c->h[0], want); break;
        case KRN_OP_ADD: krn_ref_add(s[0], c->h[0], c->h[1], want); break;
        case KRN_OP_EMBEDDING: krn_ref_embedding(s[0], s[1], 30522, ids, c->h[0], want); break;
        case KRN_OP_MEAN_POOL: krn_ref_mean_pool(s[0], s[1], s[2], c->h[0], ids, want); break;
        case KRN_OP_L2NORM: krn_ref_l2_normalize(s[0], s[1], 1e-12f, c->h[0], want); break;
        default: break;
        }
        for (size_t i = 0; i < c->nout; i++) {
            double d = fabs((double)o[i] - want[i]);
            me = d > me ? d : me;
            if (d > tol + 1e-4 * fabs(want[i]))
                bad = true;
        }
        free(want);
        free(ids);
    }
    *max_err = me;
    *valid = !bad;
    return 0;
}

typedef int (*bench_fn)(struct bcase *, void *, struct err *);

/* time_block: one timed call of fn into ts[(*n)++]. */
static int time_block(struct bcase *c, bench_fn fn, void *ctx, double *ts, int *n, struct err *err)
{
    double t0 = now_ms();
    if (fn(c, ctx, err) != 0 || krn_backend_sync(c->be, err) != 0)
        return -1;
    ts[(*n)++] = now_ms() - t0;
    return 0;
}

/* series: one untimed call of fn, then timed calls into ts[*n...] until want
 * more were made or, past the first 2, budget_ms has passed. */
static int series(struct bcase *c, bench_fn fn, void *ctx, double *ts, int *n, int want,
                  double budget_ms, struct err *err)
{
    if (fn(c, ctx, err) != 0 || krn_backend_sync(c->be, err) != 0)
        return -1;
    double start = now_ms();
    for (int k = 0; k < want && (k < 2 || now_ms() - start < budget_ms); k++)
        if (time_block(c, fn, ctx, ts, n, err) != 0)
            return -1;
    return 0;
}

/* time_pair: repeat timed runs of fn and of ref (when not NULL), at least 3
 * unless repeat < 3, each series stopping after ~4 s. Interleaved: one warm-up
 * each, then rounds timing fn then ref back to back, so that load from other
 * processes hits both alike. Blocks, for a ref on threads of its own (OpenBLAS's
 * threads spin for ~2^28 cycles after each call, long enough to take a core
 * from every fn call of an interleaved run or of short alternating blocks, and
 * the backend's pool spins after its calls too): series of fn and of ref in
 * the order fn, ref, ref, fn (ABBA: a load that rises or falls through the
 * measurement weighs on both alike, where one fn block then one ref block
 * gave the later block all of it), each series after an untimed call; a
 * pause between them would not do, as an idle VM slows the next calls down
 * 3-6x (2-vCPU machine of bench/results/). Median and min in ms for fn,
 * median for ref, over all their series. */
static int time_pair(struct bcase *c, bench_fn fn, void *ctx, bench_fn ref, void *rctx,
                     int repeat, bool blocks, double *med, double *mn, double *rmed, int *runs,
                     struct err *err)
{
    static double ts[2][1000];
    if (repeat > 1000)
        repeat = 1000;
    int n = 0, nr = 0;
    if (blocks) {
        /* A B B A: half of fn's runs, as many of ref's, the rest of ref's,
         * then as many of fn's again (a series cut short by its time budget
         * is matched by the next, so each side has as many runs) */
        int first = (repeat + 1) / 2, second = repeat - first;
        if (series(c, fn, ctx, ts[0], &n, first, 2000, err) != 0)
            return -1;
        if (ref != NULL && series(c, ref, rctx, ts[1], &nr, n, 2000, err) != 0)
            return -1;
        if (ref != NULL && second > 0 && series(c, ref, rctx, ts[1], &nr, second, 2000, err) != 0)
            return -1;
        if (second > 0 && series(c, fn, ctx, ts[0], &n, ref != NULL ? nr - n : second, 2000, err) != 0)
            return -1;
    } else {
        if (fn(c, ctx, err) != 0 || krn_backend_sync(c->be, err) != 0)
            return -1;
        if (ref != NULL && (ref(c, rctx, err) != 0 || krn_backend_sync(c->be, err) != 0))
            return -1;
        double start = now_ms();
        while (n < repeat) {
            double t0 = now_ms();
            if (fn(c, ctx, err) != 0 || krn_backend_sync(c->be, err) != 0)
                return -1;
            ts[0][n] = now_ms() - t0;
            if (ref != NULL) {
                t0 = now_ms();
                if (ref(c, rctx, err) != 0 || krn_backend_sync(c->be, err) != 0)
                    return -1;
                ts[1][nr++] = now_ms() - t0;
            }
            n++;
            if (n >= 3 && now_ms() - start > 4000)
                break;
        }
    }
    *runs = n;
    qsort(ts[0], (size_t)n, sizeof(double), cmp_double);
    *med = ts[0][n / 2];
    *mn = ts[0][0];
    if (ref != NULL) {
        qsort(ts[1], (size_t)nr, sizeof(double), cmp_double);
        *rmed = ts[1][nr / 2];
    }
    return 0;
}

static int run_main(struct bcase *c, void *ctx, struct err *err)
{
    (void)ctx;
    return run_op(c, err);
}

/* OpenBLAS directly on the same host memory (cpu backend only; f32), with its
 * own threading at the backend's thread count (*ctx), as a program calling
 * cblas_sgemm would run it; the cpu backend keeps OpenBLAS at one thread inside
 * its own pool, so the count is set for the call and put back after. */
static int run_openblas(struct bcase *c, void *ctx, struct err *err)
{
    (void)err;
    openblas_set_num_threads(*(const int *)ctx);
    const struct krn_gemm_args *g = &c->g;
    const float *a = c->dt == KRN_DTYPE_F32 ? krn_buf_ptr(c->in[0]) : c->h[0];
    const float *b = c->dt == KRN_DTYPE_F32 ? krn_buf_ptr(c->in[1]) : c->h[1];
    float *o = c->dt == KRN_DTYPE_F32 ? krn_buf_ptr(c->out) : c->scratch_h;
    for (int64_t bt = 0; bt < g->batch; bt++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)g->M, (blasint)g->N,
                    (blasint)g->K, 1.0f, a + bt * g->M * g->K, (blasint)g->K,
                    b + bt * g->N * g->K, (blasint)g->K, 0.0f, o + bt * g->M * g->N,
                    (blasint)g->N);
    openblas_set_num_threads(1);
    return 0;
}

static int run_hook(struct bcase *c, void *ctx, struct err *err)
{
    const struct krn_bench_ref *r = ctx;
    return r->gemm(r->ctx, c->be, &c->g, c->in[0], c->in[1], c->out, err);
}

/* Unfused attention with the backend's own ops: per sequence b, S = Q K^T for
 * all heads as one strided-batched GEMM ([H, T, T] in ctx's buffer), softmax
 * over rows, O = P V. Materialises H*T*T floats. */
struct unfused_ctx {
    krn_buf_t *S;      /* [H, T, T] f32 */
    krn_buf_t *in[4];  /* f32 copies of q, k, v and an f32 output, for bf16/f16 rows; else NULL */
};

static int run_unfused(struct bcase *c, void *ctx, struct err *err)
{
    struct unfused_ctx *u = ctx;
    krn_buf_t *S = u->S;
    const struct krn_attn_args *t = &c->t;
    int64_t HD = t->H * t->D;
    size_t es = 4; /* f32: the unfused path has no 16-bit softmax, so half rows use f32 copies */
    krn_buf_t *const *in = u->in[0] ? u->in : c->in;
    krn_buf_t *out = u->in[0] ? u->in[3] : c->out;
    for (int64_t b = 0; b < t->B; b++) {
        size_t off = (size_t)(b * t->T * HD) * es;
        krn_buf_t *q = krn_buf_view(in[0], off, (size_t)(t->T * HD) * es, err);
        krn_buf_t *k = krn_buf_view(in[1], off, (size_t)(t->T * HD) * es, err);
        krn_buf_t *v = krn_buf_view(in[2], off, (size_t)(t->T * HD) * es, err);
        krn_buf_t *o = krn_buf_view(out, off, (size_t)(t->T * HD) * es, err);
        struct krn_gemm_args qk = {.M = t->T, .N = t->T, .K = t->D, .trans_b = true, .lda = HD,
                                   .ldb = HD, .alpha = 1.0f / sqrtf((float)t->D),
                                   .batch = t->H, .stride_a = t->D, .stride_b = t->D,
                                   .stride_c = t->T * t->T};
        struct krn_gemm_args pv = {.M = t->T, .N = t->D, .K = t->T, .ldc = HD, .ldb = HD,
                                   .alpha = 1, .dtype_ab = KRN_DTYPE_F32, .dtype_c = KRN_DTYPE_F32,
                                   .batch = t->H, .stride_a = t->T * t->T, .stride_b = t->D,
                                   .stride_c = t->D};
        int rc = q && k && v && o ? 0 : -1;
        if (rc == 0)
            rc = krn_gemm(c->be, &qk, q, k, NULL, S, err);
        if (rc == 0)
            rc = krn_softmax(c->be, t->H * t->T, t->T, S, S, err);
        if (rc == 0)
            rc = krn_gemm(c->be, &pv, S, v, NULL, o, err);
        krn_buf_free(q), krn_buf_free(k), krn_buf_free(v), krn_buf_free(o);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* JSON output buffer */
struct jbuf {
    char *p;
    size_t len, cap;
};

static int jprintf(struct jbuf *j, struct err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int jprintf(struct jbuf *j, struct err *err, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(j->p + j->len, j->cap - j->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return err_set(err, EINVAL, "bench: format");
        if ((size_t)n < j->cap - j->len) {
            j->len += (size_t)n;
            return 0;
        }
        size_t cap = (j->cap + (size_t)n) * 2;
        char *p = realloc(j->p, cap);
        if (p == NULL)
            return err_set(err, ENOMEM, "bench: json");
        j->p = p;
        j->cap = cap;
    }
}

/* jnum: a number or null when not finite/meaningful (<= 0 with positive_only). */
static const char *jnum(char *buf, size_t n, double v, bool positive_only)
{
    if (!isfinite(v) || (positive_only && v <= 0))
        snprintf(buf, n, "null");
    else
        snprintf(buf, n, "%.6g", v);
    return buf;
}

/* peak_source: where a row's peak comes from ("peak_source" in the row), or NULL
 * when there is none. Memory-bound rows on "cpu"/"ref" take the measured STREAM
 * triad set with krn_bench_host_gbps_set into *peak (krn_host_info has no
 * bandwidth figure). The strings name the formula of krn_host_info
 * (krn_host.c) and of the cuda backend's fill_info (cuda_backend.cu). */
static const char *peak_source(const char *backend, const struct krn_device_info *info,
                               bool compute, double *peak)
{
    bool host = strcmp(backend, "cuda") != 0;
    if (host && !compute && *peak <= 0 && krn_bench_host_gbps(info->multiprocessors) > 0)
        *peak = krn_bench_host_gbps(info->multiprocessors);
    if (*peak <= 0)
        return NULL;
    if (host && !compute)
        return "stream-triad (measured)";
    if (host)
        return info->peak_from_table
                   ? "table (FIGURES.md: measured FMA peak per core x threads)"
                   : "estimate (threads x 3.6 GHz x SIMD FLOP/cycle)";
    if (info->peak_from_table)
        return "table (FIGURES.md: vendor spec)";
    return compute ? "estimate (SMs x clock x FLOP/cycle)"
                   : "estimate (2 x memory clock x bus width)";
}

int krn_bench_run(const char *op, const int64_t *shape, int nshape, enum krn_dtype dtype,
                  int repeat, krn_backend_t *be, char **json_rows, struct err *err)
{
    struct bcase c = {.be = be, .dt = dtype, .ns = nshape};
    struct jbuf j = {0};
    krn_buf_t *S = NULL;
    *json_rows = NULL;
    if (be == NULL)
        return err_set(err, EINVAL, "bench: backend is NULL");
    if (krn_op_parse(op, &c.op, err) != 0)
        return -1;
    if (repeat < 0 || repeat > 1000)
        return err_set(err, EINVAL, "bench: repeat %d (0..1000)", repeat);
    if (repeat == 0)
        repeat = 10;
    if ((unsigned)dtype >= KRN_DTYPE_COUNT)
        return err_set(err, EINVAL, "bench: bad dtype");
    if (krn_op_flops(c.op, shape, nshape, dtype) <= 0 && c.op != KRN_OP_EMBEDDING)
        return err_set(err, EINVAL, "bench %s: bad shape (see krn_op_flops)", op);
    if (c.op == KRN_OP_EMBEDDING && krn_op_bytes(c.op, shape, nshape, dtype) <= 0)
        return err_set(err, EINVAL, "bench %s: bad shape (n_ids, dim)", op);
    if (dtype != KRN_DTYPE_F32 && c.op != KRN_OP_GEMM && c.op != KRN_OP_ATTENTION)
        return err_set(err, ENOTSUP, "bench %s: f32 only", op);
    memcpy(c.s, shape, sizeof(int64_t) * (size_t)nshape);
    struct krn_device_info info;
    double med = 0, mn = 0, ref_med = NAN, max_err = 0, checksum = 0;
    int runs = 0; /* timed runs made: at most repeat (a series stops after ~4 s) */
    bool valid = false;
    const char *ref_name = NULL;
    struct unfused_ctx uctx = {0};
    int rc = -1;
    if (krn_backend_info(be, &info, err) != 0 || bcase_setup(&c, err) != 0)
        goto out;
    if (run_op(&c, err) != 0 || validate(&c, &max_err, &valid, &checksum, err) != 0)
        goto out;
    if (valid) {
        bench_fn ref = NULL;
        void *rctx = NULL;
        if (c.op == KRN_OP_GEMM && strcmp(krn_backend_name(be), "cpu") == 0) {
            ref_name = "openblas";
            ref = run_openblas;
            rctx = &info.multiprocessors; /* the cpu backend's threads */
        } else if (c.op == KRN_OP_GEMM && bench_ref != NULL &&
                   strcmp(bench_ref->backend, krn_backend_name(be)) == 0) {
            ref_name = bench_ref->name;
            ref = run_hook;
            rctx = (void *)bench_ref;
        } else if (c.op == KRN_OP_ATTENTION && !c.t.causal && c.nscores > 0 &&
                   strcmp(krn_backend_name(be), "ref") != 0) {
            /* f32 rows: the same buffers; bf16/f16 rows: f32 copies of the same
             * values ("unfused_f32": the unfused path has no 16-bit softmax) */
            ref_name = dtype == KRN_DTYPE_F32 ? "unfused" : "unfused_f32";
            ref = run_unfused;
            S = krn_buf_alloc(be, (size_t)(c.t.H * c.t.T * c.t.T) * 4, err);
            if (S == NULL)
                goto out;
            uctx.S = S;
            if (dtype != KRN_DTYPE_F32) {
                for (int i = 0; i < 3; i++)
                    if ((uctx.in[i] = upload_as(be, c.h[i], c.n[i], KRN_DTYPE_F32, err)) == NULL)
                        goto out;
                if ((uctx.in[3] = krn_buf_alloc(be, c.nout * 4, err)) == NULL)
                    goto out;
            }
            rctx = &uctx;
        }
        if (time_pair(&c, run_main, NULL, ref, rctx, repeat, ref == run_openblas, &med, &mn,
                      &ref_med, &runs, err) != 0)
            goto out;
    }
    double flops = krn_op_flops(c.op, shape, nshape, dtype);
    double bytes = krn_op_bytes(c.op, shape, nshape, dtype);
    bool compute = c.op == KRN_OP_GEMM || c.op == KRN_OP_ATTENTION;
    double peak = compute ? (dtype == KRN_DTYPE_F32 ? info.peak_f32_gflops : info.peak_bf16_gflops)
                          : info.peak_gbps;
    const char *peak_src = peak_source(krn_backend_name(be), &info, compute, &peak);
    double gflops = valid ? flops / (med * 1e6) : NAN, gbps = valid ? bytes / (med * 1e6) : NAN;
    char b1[32], b2[32], b3[32], b4[32], b5[32], b6[32], b7[32], b8[32];
    if (jprintf(&j, err, "{\"op\":\"%s\",\"shape\":[", krn_op_names[c.op]) != 0)
        goto out;
    for (int i = 0; i < nshape; i++)
        if (jprintf(&j, err, "%s%lld", i ? "," : "", (long long)shape[i]) != 0)
            goto out;
    if (jprintf(&j, err,
                "],\"dtype\":\"%s\",\"backend\":\"%s\",\"device\":\"%s\",\"threads\":%d,"
                "\"repeat\":%d,\"time_ms\":%s,\"time_ms_min\":%s,\"gflops\":%s,\"gbps\":%s,"
                "\"ref\":%s%s%s,\"ref_time_ms\":%s,\"pct_of_ref\":%s,\"peak\":%s,"
                "\"peak_unit\":\"%s\",\"peak_source\":%s%s%s,\"pct_of_peak\":%s,"
                "\"max_abs_err\":%.3g,\"valid\":%s,"
                "\"checksum\":%.9g}\n",
                krn_dtype_names[dtype], krn_backend_name(be), info.name,
                strcmp(krn_backend_name(be), "cuda") ? info.multiprocessors : 0, runs,
                jnum(b1, 32, valid ? med : NAN, true), jnum(b2, 32, valid ? mn : NAN, true),
                jnum(b3, 32, compute ? gflops : NAN, false), jnum(b4, 32, gbps, false),
                ref_name ? "\"" : "", ref_name ? ref_name : "null", ref_name ? "\"" : "",
                jnum(b5, 32, ref_med, true), jnum(b6, 32, valid ? 100.0 * ref_med / med : NAN, true),
                jnum(b7, 32, peak, true), compute ? "gflops" : "gbps",
                peak_src ? "\"" : "", peak_src ? peak_src : "null", peak_src ? "\"" : "",
                jnum(b8, 32, compute ? 100.0 * gflops / peak : 100.0 * gbps / peak, true),
                max_err, valid ? "true" : "false", checksum) != 0)
        goto out;
    *json_rows = j.p;
    j.p = NULL;
    rc = 0;
out:
    free(j.p);
    krn_buf_free(S);
    for (int i = 0; i < 4; i++)
        krn_buf_free(uctx.in[i]);
    bcase_free(&c);
    return rc;
}
