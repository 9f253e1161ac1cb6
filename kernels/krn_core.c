/* krn_core.c: the krn.h front end: name tables, backend selection, buffers,
 * argument validation and dispatch to the backend vtable.
 *
 * Invariant: a backend op is called only with arguments that passed the checks
 * here (dims >= 1, strides resolved and large enough, every buffer owned by the
 * backend and long enough), so backends never re-check shapes.
 */
#include "kernels/krn_impl.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const krn_dtype_names[KRN_DTYPE_COUNT] = {"f32", "bf16", "f16"};
const char *const krn_op_names[KRN_OP_COUNT] = {
    "gemm", "attention", "layernorm", "gelu", "softmax",
    "add",  "embedding", "mean_pool", "l2norm",
};

size_t krn_dtype_size(enum krn_dtype dtype)
{
    switch (dtype) {
    case KRN_DTYPE_F32: return 4;
    case KRN_DTYPE_BF16:
    case KRN_DTYPE_F16: return 2;
    default: return 0;
    }
}

int krn_dtype_parse(const char *name, enum krn_dtype *out, struct err *err)
{
    static const struct { const char *s; enum krn_dtype d; } tab[] = {
        {"f32", KRN_DTYPE_F32},   {"fp32", KRN_DTYPE_F32},     {"float32", KRN_DTYPE_F32},
        {"bf16", KRN_DTYPE_BF16}, {"bfloat16", KRN_DTYPE_BF16}, {"f16", KRN_DTYPE_F16},
        {"fp16", KRN_DTYPE_F16},  {"float16", KRN_DTYPE_F16},
    };
    for (size_t i = 0; name != NULL && i < sizeof tab / sizeof tab[0]; i++)
        if (strcmp(name, tab[i].s) == 0) {
            *out = tab[i].d;
            return 0;
        }
    return err_set(err, EINVAL, "dtype '%s': expected f32, bf16 or f16",
                   name ? name : "(null)");
}

int krn_op_parse(const char *name, enum krn_op *out, struct err *err)
{
    for (int i = 0; name != NULL && i < KRN_OP_COUNT; i++)
        if (strcmp(name, krn_op_names[i]) == 0) {
            *out = (enum krn_op)i;
            return 0;
        }
    return err_set(err, EINVAL, "op '%s': unknown (gemm, attention, layernorm, gelu, "
                   "softmax, add, embedding, mean_pool, l2norm)", name ? name : "(null)");
}

/* ---- backends ---- */

krn_backend_t *krn_backend_create(const char *name, int param, struct err *err)
{
    if (name == NULL) {
        err_set(err, EINVAL, "backend: name is NULL");
        return NULL;
    }
    if (strcmp(name, "ref") == 0)
        return krn_ref_backend_create(err);
    if (strcmp(name, "cpu") == 0) {
        if (param < 0) {
            err_set(err, EINVAL, "backend cpu: threads %d < 0", param);
            return NULL;
        }
        return krn_cpu_backend_create(param, err);
    }
    if (strcmp(name, "cuda") == 0) {
        if (param < 0) {
            err_set(err, EINVAL, "backend cuda: device %d < 0", param);
            return NULL;
        }
        return krn_cuda_backend_create(param, err);
    }
    err_set(err, EINVAL, "backend '%s': unknown (ref, cpu, cuda)", name);
    return NULL;
}

void krn_backend_destroy(krn_backend_t *be)
{
    if (be != NULL)
        be->ops->destroy(be);
}

const char *krn_backend_name(const krn_backend_t *be)
{
    return be->ops->name;
}

int krn_backend_threads_set(krn_backend_t *be, int threads, struct err *err)
{
    if (be->ops->threads_set == NULL)
        return err_set(err, EINVAL, "backend %s: no thread count", be->ops->name);
    if (threads < 0)
        return err_set(err, EINVAL, "backend %s: threads %d < 0", be->ops->name, threads);
    return be->ops->threads_set(be, threads, err);
}

int krn_backend_sync(krn_backend_t *be, struct err *err)
{
    return be->ops->sync(be, err);
}

int krn_backend_info(const krn_backend_t *be, struct krn_device_info *out, struct err *err)
{
    memset(out, 0, sizeof *out);
    return be->ops->info(be, out, err);
}

int krn_backend_variants(const krn_backend_t *be, struct krn_variant *out, int max,
                         struct err *err)
{
    if (be == NULL || max < 0 || (out == NULL && max > 0))
        return err_set(err, EINVAL, "variants: backend NULL, or out NULL with max %d", max);
    return be->ops->variants ? be->ops->variants(be, out, max) : 0;
}

int krn_backend_variant_force(krn_backend_t *be, const char *op, const char *name,
                              struct err *err)
{
    enum krn_op o;
    if (be == NULL || op == NULL)
        return err_set(err, EINVAL, "variant force: backend or op NULL");
    if (krn_op_parse(op, &o, err) != 0)
        return -1;
    if (o != KRN_OP_GEMM && o != KRN_OP_ATTENTION)
        return err_set(err, EINVAL, "variant force: op %s has no variants", op);
    if (be->ops->variant_force == NULL)
        return err_set(err, ENOTSUP, "variant force: backend %s has no kernel variants",
                       be->ops->name);
    return be->ops->variant_force(be, o, name, err);
}

void *krn_backend_cuda_stream(krn_backend_t *be)
{
    return be->ops->stream ? be->ops->stream(be) : NULL;
}

/* ---- buffers ---- */

krn_buf_t *krn_buf_alloc(krn_backend_t *be, size_t bytes, struct err *err)
{
    if (bytes == 0) {
        err_set(err, EINVAL, "buffer: size 0");
        return NULL;
    }
    krn_buf_t *buf = calloc(1, sizeof *buf);
    if (buf == NULL) {
        err_set(err, ENOMEM, "buffer: out of host memory");
        return NULL;
    }
    buf->ptr = be->ops->mem_alloc(be, bytes, err);
    if (buf->ptr == NULL) {
        free(buf);
        return NULL;
    }
    buf->be = be;
    buf->size = bytes;
    return buf;
}

krn_buf_t *krn_buf_view(krn_buf_t *parent, size_t offset, size_t bytes, struct err *err)
{
    if (parent == NULL || bytes == 0 || offset > parent->size || bytes > parent->size - offset) {
        err_set(err, EINVAL, "buffer view: [%zu, +%zu) outside buffer of %zu bytes", offset,
                bytes, parent ? parent->size : 0);
        return NULL;
    }
    krn_buf_t *v = calloc(1, sizeof *v);
    if (v == NULL) {
        err_set(err, ENOMEM, "buffer view: out of host memory");
        return NULL;
    }
    v->be = parent->be;
    v->root = parent->root ? parent->root : parent;
    v->ptr = parent->ptr + offset;
    v->size = bytes;
    return v;
}

void krn_buf_free(krn_buf_t *buf)
{
    if (buf == NULL)
        return;
    if (buf->root == NULL)
        buf->be->ops->mem_free(buf->be, buf->ptr);
    free(buf);
}

size_t krn_buf_size(const krn_buf_t *buf)
{
    return buf->size;
}

void *krn_buf_ptr(krn_buf_t *buf)
{
    return buf->ptr;
}

int krn_buf_upload(krn_buf_t *buf, size_t offset, const void *src, size_t bytes,
                   struct err *err)
{
    if (offset > buf->size || bytes > buf->size - offset)
        return err_set(err, EINVAL, "upload: [%zu, +%zu) outside buffer of %zu bytes", offset,
                       bytes, buf->size);
    if (bytes == 0)
        return 0;
    return buf->be->ops->mem_upload(buf->be, buf->ptr + offset, src, bytes, err);
}

int krn_buf_download(const krn_buf_t *buf, size_t offset, void *dst, size_t bytes,
                     struct err *err)
{
    if (offset > buf->size || bytes > buf->size - offset)
        return err_set(err, EINVAL, "download: [%zu, +%zu) outside buffer of %zu bytes",
                       offset, bytes, buf->size);
    if (bytes == 0)
        return 0;
    return buf->be->ops->mem_download(buf->be, dst, buf->ptr + offset, bytes, err);
}

int krn_buf_zero(krn_buf_t *buf, struct err *err)
{
    return buf->be->ops->mem_zero(buf->be, buf->ptr, buf->size, err);
}

int krn_ptr_download(krn_backend_t *be, void *dst, const void *ptr, size_t bytes,
                     struct err *err)
{
    if (bytes == 0)
        return be != NULL ? 0 : err_set(err, EINVAL, "ptr download: backend is NULL");
    if (be == NULL || dst == NULL || ptr == NULL)
        return err_set(err, EINVAL, "ptr download: %zu bytes: backend, dst or ptr is NULL",
                       bytes);
    return be->ops->mem_download(be, dst, ptr, bytes, err);
}

int krn_ptr_upload(krn_backend_t *be, void *ptr, const void *src, size_t bytes,
                   struct err *err)
{
    if (bytes == 0)
        return be != NULL ? 0 : err_set(err, EINVAL, "ptr upload: backend is NULL");
    if (be == NULL || ptr == NULL || src == NULL)
        return err_set(err, EINVAL, "ptr upload: %zu bytes: backend, ptr or src is NULL",
                       bytes);
    return be->ops->mem_upload(be, ptr, src, bytes, err);
}

/* ---- validation helpers ---- */

/* check_buf: buf belongs to be and holds at least elems elements of esize bytes. */
static int check_buf(krn_backend_t *be, const krn_buf_t *buf, int64_t elems, size_t esize,
                     const char *op, const char *name, struct err *err)
{
    if (buf == NULL)
        return err_set(err, EINVAL, "%s: %s is NULL", op, name);
    if (buf->be != be)
        return err_set(err, EINVAL, "%s: %s belongs to another backend", op, name);
    if (elems < 0 || (double)elems * (double)esize > (double)buf->size)
        return err_set(err, EINVAL, "%s: %s needs %lld bytes, buffer has %zu", op, name,
                       (long long)elems * (long long)esize, buf->size);
    return 0;
}

/* mul, add: a * b and a + b for sizes; -1 (which check_buf refuses) when an
 * operand is negative or the result overflows int64, so that no caller's
 * shape can wrap to a small size that passes the buffer checks. */
static int64_t mul(int64_t a, int64_t b)
{
    int64_t r;
    return a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r) ? -1 : r;
}

static int64_t add(int64_t a, int64_t b)
{
    int64_t r;
    return a < 0 || b < 0 || __builtin_add_overflow(a, b, &r) ? -1 : r;
}

/* span: elements touched by a [rows, cols] matrix with row stride ld (-1 on overflow). */
static int64_t span(int64_t rows, int64_t cols, int64_t ld)
{
    return add(mul(rows - 1, ld), cols);
}

static bool dtype_ok(enum krn_dtype d)
{
    return (unsigned)d < KRN_DTYPE_COUNT;
}

/* ---- ops ---- */

int krn_gemm(krn_backend_t *be, const struct krn_gemm_args *args, const krn_buf_t *a,
             const krn_buf_t *b, const krn_buf_t *bias, krn_buf_t *c, struct err *err)
{
    struct krn_gemm_args g = *args;
    if (g.M < 1 || g.N < 1 || g.K < 1)
        return err_set(err, EINVAL, "gemm: M=%lld N=%lld K=%lld: each must be >= 1",
                       (long long)g.M, (long long)g.N, (long long)g.K);
    if (!dtype_ok(g.dtype_ab) || !dtype_ok(g.dtype_c))
        return err_set(err, EINVAL, "gemm: bad dtype");
    if (g.dtype_c != KRN_DTYPE_F32 && g.dtype_c != g.dtype_ab)
        return err_set(err, ENOTSUP, "gemm: dtype_c %s with dtype_ab %s (want f32 or same)",
                       krn_dtype_names[g.dtype_c], krn_dtype_names[g.dtype_ab]);
    if ((unsigned)g.epilogue >= KRN_EPI_COUNT)
        return err_set(err, EINVAL, "gemm: bad epilogue %d", (int)g.epilogue);
    int64_t ar = g.trans_a ? g.K : g.M, ac = g.trans_a ? g.M : g.K;
    int64_t br = g.trans_b ? g.N : g.K, bc = g.trans_b ? g.K : g.N;
    if (g.lda == 0) g.lda = ac;
    if (g.ldb == 0) g.ldb = bc;
    if (g.ldc == 0) g.ldc = g.N;
    if (g.lda < ac || g.ldb < bc || g.ldc < g.N)
        return err_set(err, EINVAL, "gemm: lda=%lld ldb=%lld ldc=%lld below row lengths "
                       "%lld %lld %lld", (long long)g.lda, (long long)g.ldb, (long long)g.ldc,
                       (long long)ac, (long long)bc, (long long)g.N);
    if (g.batch == 0) g.batch = 1;
    if (g.batch < 0 || g.stride_a < 0 || g.stride_b < 0 || g.stride_c < 0)
        return err_set(err, EINVAL, "gemm: negative batch or stride");
    /* Items of C may interleave (heads of a [T, H, D] output: stride_c = D,
     * ldc = H*D) but must not coincide; full overlap is not checked. */
    if (g.batch > 1 && g.stride_c == 0)
        return err_set(err, EINVAL, "gemm: stride_c 0 with batch %lld", (long long)g.batch);
    size_t eab = krn_dtype_size(g.dtype_ab), ec = krn_dtype_size(g.dtype_c);
    if (check_buf(be, a, add(span(ar, ac, g.lda), mul(g.batch - 1, g.stride_a)), eab, "gemm", "a",
                  err) ||
        check_buf(be, b, add(span(br, bc, g.ldb), mul(g.batch - 1, g.stride_b)), eab, "gemm", "b",
                  err) ||
        check_buf(be, c, add(span(g.M, g.N, g.ldc), mul(g.batch - 1, g.stride_c)), ec, "gemm", "c",
                  err))
        return -1;
    if (g.epilogue != KRN_EPI_NONE && check_buf(be, bias, g.N, 4, "gemm", "bias", err))
        return -1;
    const float *bp = g.epilogue != KRN_EPI_NONE ? (const float *)bias->ptr : NULL;
    return be->ops->gemm(be, &g, a->ptr, b->ptr, bp, c->ptr, err);
}

int krn_attention(krn_backend_t *be, const struct krn_attn_args *args, const krn_buf_t *q,
                  const krn_buf_t *k, const krn_buf_t *v, const krn_buf_t *mask,
                  krn_buf_t *o, struct err *err)
{
    struct krn_attn_args t = *args;
    if (t.B < 1 || t.T < 1 || t.H < 1 || t.D < 1)
        return err_set(err, EINVAL, "attention: B=%lld T=%lld H=%lld D=%lld: each must be >= 1",
                       (long long)t.B, (long long)t.T, (long long)t.H, (long long)t.D);
    if (!dtype_ok(t.dtype) || !dtype_ok(t.dtype_o))
        return err_set(err, EINVAL, "attention: bad dtype");
    if (t.dtype_o != KRN_DTYPE_F32 && t.dtype_o != t.dtype)
        return err_set(err, ENOTSUP, "attention: dtype_o %s with dtype %s (want f32 or same)",
                       krn_dtype_names[t.dtype_o], krn_dtype_names[t.dtype]);
    int64_t hd = mul(t.H, t.D);
    if (hd < 0 || mul(t.B, t.T) < 0)
        return err_set(err, EINVAL, "attention: B*T or H*D overflows");
    if (t.ld_q == 0) t.ld_q = hd;
    if (t.ld_k == 0) t.ld_k = hd;
    if (t.ld_v == 0) t.ld_v = hd;
    if (t.ld_o == 0) t.ld_o = hd;
    if (t.ld_q < hd || t.ld_k < hd || t.ld_v < hd || t.ld_o < hd)
        return err_set(err, EINVAL, "attention: token stride below H*D=%lld", (long long)hd);
    if (!(t.scale == t.scale) || isinf(t.scale))
        return err_set(err, EINVAL, "attention: scale is not finite");
    if (t.scale == 0.0f)
        t.scale = 1.0f / sqrtf((float)t.D);
    size_t ei = krn_dtype_size(t.dtype), eo = krn_dtype_size(t.dtype_o);
    int64_t rows = mul(t.B, t.T);
    if (check_buf(be, q, span(rows, hd, t.ld_q), ei, "attention", "q", err) ||
        check_buf(be, k, span(rows, hd, t.ld_k), ei, "attention", "k", err) ||
        check_buf(be, v, span(rows, hd, t.ld_v), ei, "attention", "v", err) ||
        check_buf(be, o, span(rows, hd, t.ld_o), eo, "attention", "o", err))
        return -1;
    if (mask != NULL && check_buf(be, mask, rows, 4, "attention", "mask", err))
        return -1;
    return be->ops->attention(be, &t, q->ptr, k->ptr, v->ptr,
                              mask ? (const int32_t *)mask->ptr : NULL, o->ptr, err);
}

/* check_rc: rows >= 1 and cols >= 1. */
static int check_rc(const char *op, int64_t rows, int64_t cols, struct err *err)
{
    if (rows < 1 || cols < 1)
        return err_set(err, EINVAL, "%s: rows=%lld cols=%lld: each must be >= 1", op,
                       (long long)rows, (long long)cols);
    return 0;
}

int krn_layernorm(krn_backend_t *be, int64_t rows, int64_t cols, float eps,
                  const krn_buf_t *x, const krn_buf_t *gamma, const krn_buf_t *beta,
                  krn_buf_t *y, struct err *err)
{
    if (check_rc("layernorm", rows, cols, err) ||
        check_buf(be, x, mul(rows, cols), 4, "layernorm", "x", err) ||
        check_buf(be, gamma, cols, 4, "layernorm", "gamma", err) ||
        check_buf(be, beta, cols, 4, "layernorm", "beta", err) ||
        check_buf(be, y, mul(rows, cols), 4, "layernorm", "y", err))
        return -1;
    if (!(eps >= 0.0f))
        return err_set(err, EINVAL, "layernorm: eps %g < 0", (double)eps);
    return be->ops->layernorm(be, rows, cols, eps, (const float *)x->ptr,
                              (const float *)gamma->ptr, (const float *)beta->ptr,
                              (float *)y->ptr, err);
}

int krn_gelu(krn_backend_t *be, int64_t n, const krn_buf_t *x, krn_buf_t *y, struct err *err)
{
    if (check_rc("gelu", n, 1, err) || check_buf(be, x, n, 4, "gelu", "x", err) ||
        check_buf(be, y, n, 4, "gelu", "y", err))
        return -1;
    return be->ops->gelu(be, n, (const float *)x->ptr, (float *)y->ptr, err);
}

int krn_softmax(krn_backend_t *be, int64_t rows, int64_t cols, const krn_buf_t *x,
                krn_buf_t *y, struct err *err)
{
    if (check_rc("softmax", rows, cols, err) ||
        check_buf(be, x, mul(rows, cols), 4, "softmax", "x", err) ||
        check_buf(be, y, mul(rows, cols), 4, "softmax", "y", err))
        return -1;
    return be->ops->softmax(be, rows, cols, (const float *)x->ptr, (float *)y->ptr, err);
}

int krn_add(krn_backend_t *be, int64_t n, const krn_buf_t *a, const krn_buf_t *b,
            krn_buf_t *y, struct err *err)
{
    if (check_rc("add", n, 1, err) || check_buf(be, a, n, 4, "add", "a", err) ||
        check_buf(be, b, n, 4, "add", "b", err) || check_buf(be, y, n, 4, "add", "y", err))
        return -1;
    return be->ops->add(be, n, (const float *)a->ptr, (const float *)b->ptr, (float *)y->ptr,
                        err);
}

int krn_embedding(krn_backend_t *be, int64_t n, int64_t dim, int64_t vocab,
                  const krn_buf_t *ids, const krn_buf_t *table, krn_buf_t *out,
                  struct err *err)
{
    if (check_rc("embedding", n, dim, err) || check_rc("embedding", vocab, 1, err) ||
        check_buf(be, ids, n, 4, "embedding", "ids", err) ||
        check_buf(be, table, mul(vocab, dim), 4, "embedding", "table", err) ||
        check_buf(be, out, mul(n, dim), 4, "embedding", "out", err))
        return -1;
    return be->ops->embedding(be, n, dim, vocab, (const int32_t *)ids->ptr,
                              (const float *)table->ptr, (float *)out->ptr, err);
}

int krn_mean_pool(krn_backend_t *be, int64_t B, int64_t T, int64_t D, const krn_buf_t *x,
                  const krn_buf_t *mask, krn_buf_t *out, struct err *err)
{
    if (check_rc("mean_pool", mul(B, T), D, err) || check_rc("mean_pool", B, T, err) ||
        check_buf(be, x, mul(mul(B, T), D), 4, "mean_pool", "x", err) ||
        check_buf(be, out, mul(B, D), 4, "mean_pool", "out", err))
        return -1;
    if (mask != NULL && check_buf(be, mask, mul(B, T), 4, "mean_pool", "mask", err))
        return -1;
    return be->ops->mean_pool(be, B, T, D, (const float *)x->ptr,
                              mask ? (const int32_t *)mask->ptr : NULL, (float *)out->ptr,
                              err);
}

int krn_l2_normalize(krn_backend_t *be, int64_t rows, int64_t cols, float eps,
                     const krn_buf_t *x, krn_buf_t *y, struct err *err)
{
    if (check_rc("l2norm", rows, cols, err) ||
        check_buf(be, x, mul(rows, cols), 4, "l2norm", "x", err) ||
        check_buf(be, y, mul(rows, cols), 4, "l2norm", "y", err))
        return -1;
    if (!(eps >= 0.0f))
        return err_set(err, EINVAL, "l2norm: eps %g < 0", (double)eps);
    return be->ops->l2_normalize(be, rows, cols, eps, (const float *)x->ptr, (float *)y->ptr,
                                 err);
}

/* ---- cost model ---- */

/* shape_ok: nshape in [lo, hi] and the first lo entries >= 1. */
static bool shape_ok(const int64_t *s, int n, int lo, int hi)
{
    if (s == NULL || n < lo || n > hi)
        return false;
    for (int i = 0; i < lo; i++)
        if (s[i] < 1)
            return false;
    return true;
}

double krn_op_flops(enum krn_op op, const int64_t *s, int n, enum krn_dtype dtype)
{
    (void)dtype;
    switch (op) {
    case KRN_OP_GEMM:
        if (!shape_ok(s, n, 3, 4)) return 0;
        return 2.0 * s[0] * s[1] * s[2] * (n == 4 && s[3] > 1 ? s[3] : 1);
    case KRN_OP_ATTENTION:
        if (!shape_ok(s, n, 4, 5)) return 0;
        return 4.0 * s[0] * s[2] * s[1] * s[1] * s[3] * (n == 5 && s[4] ? 0.5 : 1.0);
    case KRN_OP_LAYERNORM: return shape_ok(s, n, 2, 2) ? 8.0 * s[0] * s[1] : 0;
    case KRN_OP_GELU: return shape_ok(s, n, 1, 1) ? 8.0 * s[0] : 0;
    case KRN_OP_SOFTMAX: return shape_ok(s, n, 2, 2) ? 5.0 * s[0] * s[1] : 0;
    case KRN_OP_ADD: return shape_ok(s, n, 1, 1) ? (double)s[0] : 0;
    case KRN_OP_EMBEDDING: return 0;
    case KRN_OP_MEAN_POOL: return shape_ok(s, n, 3, 3) ? 2.0 * s[0] * s[1] * s[2] : 0;
    case KRN_OP_L2NORM: return shape_ok(s, n, 2, 2) ? 3.0 * s[0] * s[1] : 0;
    default: return 0;
    }
}

double krn_op_bytes(enum krn_op op, const int64_t *s, int n, enum krn_dtype dtype)
{
    double e = (double)krn_dtype_size(dtype);
    if (e == 0)
        return 0;
    switch (op) {
    case KRN_OP_GEMM: {
        if (!shape_ok(s, n, 3, 4)) return 0;
        double bt = n == 4 && s[3] > 1 ? (double)s[3] : 1;
        return bt * (e * ((double)s[0] * s[2] + (double)s[2] * s[1]) + e * s[0] * s[1]);
    }
    case KRN_OP_ATTENTION:
        if (!shape_ok(s, n, 4, 5)) return 0;
        return 4.0 * e * s[0] * s[1] * s[2] * s[3] + 4.0 * s[0] * s[1];
    case KRN_OP_LAYERNORM: return shape_ok(s, n, 2, 2) ? 4.0 * (2.0 * s[0] * s[1] + 2 * s[1]) : 0;
    case KRN_OP_GELU: return shape_ok(s, n, 1, 1) ? 8.0 * s[0] : 0;
    case KRN_OP_SOFTMAX: return shape_ok(s, n, 2, 2) ? 8.0 * s[0] * s[1] : 0;
    case KRN_OP_ADD: return shape_ok(s, n, 1, 1) ? 12.0 * s[0] : 0;
    case KRN_OP_EMBEDDING: return shape_ok(s, n, 2, 2) ? 4.0 * s[0] + 8.0 * s[0] * s[1] : 0;
    case KRN_OP_MEAN_POOL:
        return shape_ok(s, n, 3, 3)
                   ? 4.0 * ((double)s[0] * s[1] * s[2] + (double)s[0] * s[1] + (double)s[0] * s[2])
                   : 0;
    case KRN_OP_L2NORM: return shape_ok(s, n, 2, 2) ? 8.0 * s[0] * s[1] : 0;
    default: return 0;
    }
}
