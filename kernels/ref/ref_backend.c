/* ref_backend.c: the "ref" backend: host memory and the plain loops of ref_ops.c.
 *
 * Single-threaded and slow on purpose; it exists so that every other backend
 * can be compared with it through the same krn.h calls. Holds no state beyond
 * its vtable.
 */
#include "kernels/krn_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct ref_backend {
    struct krn_backend base; /* first member */
};

static void ref_destroy(krn_backend_t *be)
{
    free(be);
}

static int ref_sync(krn_backend_t *be, struct err *err)
{
    (void)be;
    (void)err;
    return 0;
}

static int ref_info(const krn_backend_t *be, struct krn_device_info *out, struct err *err)
{
    (void)be;
    (void)err;
    krn_host_info(1, out);
    return 0;
}

/* Host memory shared by the ref and cpu backends: 64-byte aligned (a cache
 * line, an AVX-512 vector). */
void *krn_host_mem_alloc(krn_backend_t *be, size_t bytes, struct err *err)
{
    (void)be;
    void *p = NULL;
    if (posix_memalign(&p, 64, (bytes + 63) & ~(size_t)63) != 0) {
        err_set(err, ENOMEM, "buffer: %zu bytes: out of host memory", bytes);
        return NULL;
    }
    return p;
}

void krn_host_mem_free(krn_backend_t *be, void *p)
{
    (void)be;
    free(p);
}

int krn_host_mem_copy(krn_backend_t *be, void *dst, const void *src, size_t bytes,
                     struct err *err)
{
    (void)be;
    (void)err;
    memmove(dst, src, bytes);
    return 0;
}

int krn_host_mem_zero(krn_backend_t *be, void *dst, size_t bytes, struct err *err)
{
    (void)be;
    (void)err;
    memset(dst, 0, bytes);
    return 0;
}

static int ref_gemm(krn_backend_t *be, const struct krn_gemm_args *g, const void *a,
                    const void *b, const float *bias, void *c, struct err *err)
{
    (void)be;
    (void)err;
    krn_ref_gemm(g, a, b, bias, c);
    return 0;
}

static int ref_attention(krn_backend_t *be, const struct krn_attn_args *t, const void *q,
                         const void *k, const void *v, const int32_t *mask, void *o,
                         struct err *err)
{
    (void)be;
    if (t->T > 65536)
        return err_set(err, ENOTSUP, "attention: ref backend limited to T <= 65536");
    krn_ref_attention(t, q, k, v, mask, o);
    return 0;
}

static int ref_layernorm(krn_backend_t *be, int64_t rows, int64_t cols, float eps,
                         const float *x, const float *gamma, const float *beta, float *y,
                         struct err *err)
{
    (void)be;
    (void)err;
    krn_ref_layernorm(rows, cols, eps, x, gamma, beta, y);
    return 0;
}

static int ref_gelu(krn_backend_t *be, int64_t n, const float *x, float *y, struct err *err)
{
    (void)be;
    (void)err;
    krn_ref_gelu(n, x, y);
    return 0;
}

static int ref_softmax(krn_backend_t *be, int64_t rows, int64_t cols, const float *x,
                       float *y, struct err *err)
{
    (void)be;
    (void)err;
    krn_ref_softmax(rows, cols, x, y);
    return 0;
}

static int ref_add(krn_backend_t *be, int64_t n, const float *a, const float *b, float *y,
                   struct err *err)
{
    (void)be;
    (void)err;
    krn_ref_add(n, a, b, y);
    return 0;
}

static int ref_embedding(krn_backend_t *be, int64_t n, int64_t dim, int64_t vocab,
                         const int32_t *ids, const float *table, float *out, struct err *err)
{
    (void)be;
    (void)err;
    krn_ref_embedding(n, dim, vocab, ids, table, out);
    return 0;
}

static int ref_mean_pool(krn_backend_t *be, int64_t B, int64_t T, int64_t D, const float *x,
                         const int32_t *mask, float *out, struct err *err)
{
    (void)be;
    (void)err;
    krn_ref_mean_pool(B, T, D, x, mask, out);
    return 0;
}

static int ref_l2_normalize(krn_backend_t *be, int64_t rows, int64_t cols, float eps,
                            const float *x, float *y, struct err *err)
{
    (void)be;
    (void)err;
    krn_ref_l2_normalize(rows, cols, eps, x, y);
    return 0;
}

static const struct krn_backend_ops ref_ops = {
    .name = "ref",
    .destroy = ref_destroy,
    .sync = ref_sync,
    .info = ref_info,
    .mem_alloc = krn_host_mem_alloc,
    .mem_free = krn_host_mem_free,
    .mem_upload = krn_host_mem_copy,
    .mem_download = krn_host_mem_copy,
    .mem_zero = krn_host_mem_zero,
    .gemm = ref_gemm,
    .attention = ref_attention,
    .layernorm = ref_layernorm,
    .gelu = ref_gelu,
    .softmax = ref_softmax,
    .add = ref_add,
    .embedding = ref_embedding,
    .mean_pool = ref_mean_pool,
    .l2_normalize = ref_l2_normalize,
};

krn_backend_t *krn_ref_backend_create(struct err *err)
{
    struct ref_backend *rb = calloc(1, sizeof *rb);
    if (rb == NULL) {
        err_set(err, ENOMEM, "backend ref: out of host memory");
        return NULL;
    }
    rb->base.ops = &ref_ops;
    return &rb->base;
}
