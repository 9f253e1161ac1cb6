/* krn_impl.h: the backend vtable behind krn.h; private to kernels/.
 *
 * krn_core.c validates every op's arguments (shapes, strides, buffer sizes,
 * backend ownership) and resolves defaults (ld 0 -> tight, batch 0 -> 1,
 * scale 0 -> 1/sqrt(D)) before it calls a backend, so backend functions take
 * raw pointers and may assume valid, resolved arguments. A backend reports
 * only what it alone can know (ENOTSUP, ENOMEM, EIO).
 * Invariant: every buffer handed to a backend op was allocated by that backend.
 */
#ifndef MOAT_KRN_IMPL_H
#define MOAT_KRN_IMPL_H

#include <math.h>

#include "kernels/krn.h"

#ifdef __cplusplus
extern "C" {
#endif

struct krn_backend_ops {
    const char *name;
    void (*destroy)(krn_backend_t *be);
    int (*threads_set)(krn_backend_t *be, int threads, struct err *err); /* NULL: EINVAL */
    int (*sync)(krn_backend_t *be, struct err *err);
    int (*info)(const krn_backend_t *be, struct krn_device_info *out, struct err *err);
    void *(*stream)(krn_backend_t *be); /* NULL: none */

    /* memory: device (or host) pointers; offsets already applied. mem_upload and
     * mem_download serve both krn_buf_* and krn_ptr_*: they are synchronous (the
     * host side may be reused on return) and ordered after every queued op. */
    void *(*mem_alloc)(krn_backend_t *be, size_t bytes, struct err *err);
    void (*mem_free)(krn_backend_t *be, void *p);
    int (*mem_upload)(krn_backend_t *be, void *dst, const void *src, size_t bytes,
                      struct err *err);
    int (*mem_download)(krn_backend_t *be, void *dst, const void *src, size_t bytes,
                        struct err *err);
    int (*mem_zero)(krn_backend_t *be, void *dst, size_t bytes, struct err *err);

    /* ops: arguments resolved and checked by krn_core.c */
    int (*gemm)(krn_backend_t *be, const struct krn_gemm_args *g, const void *a,
                const void *b, const float *bias, void *c, struct err *err);
    int (*attention)(krn_backend_t *be, const struct krn_attn_args *t, const void *q,
                     const void *k, const void *v, const int32_t *mask, void *o,
                     struct err *err);
    int (*layernorm)(krn_backend_t *be, int64_t rows, int64_t cols, float eps,
                     const float *x, const float *gamma, const float *beta, float *y,
                     struct err *err);
    int (*gelu)(krn_backend_t *be, int64_t n, const float *x, float *y, struct err *err);
    int (*softmax)(krn_backend_t *be, int64_t rows, int64_t cols, const float *x,
                   float *y, struct err *err);
    int (*add)(krn_backend_t *be, int64_t n, const float *a, const float *b, float *y,
               struct err *err);
    int (*embedding)(krn_backend_t *be, int64_t n, int64_t dim, int64_t vocab,
                     const int32_t *ids, const float *table, float *out, struct err *err);
    int (*mean_pool)(krn_backend_t *be, int64_t B, int64_t T, int64_t D, const float *x,
                     const int32_t *mask, float *out, struct err *err);
    int (*l2_normalize)(krn_backend_t *be, int64_t rows, int64_t cols, float eps,
                        const float *x, float *y, struct err *err);

    /* kernel variants (NULL: none); krn_core.c checks op and out/max */
    int (*variants)(const krn_backend_t *be, struct krn_variant *out, int max);
    int (*variant_force)(krn_backend_t *be, enum krn_op op, const char *name,
                         struct err *err);
};

/* Every backend's context starts with this header (first member). */
struct krn_backend {
    const struct krn_backend_ops *ops;
};

struct krn_buf {
    krn_backend_t *be;
    struct krn_buf *root; /* NULL for an allocation; the owning allocation for a view */
    char *ptr;            /* base address (host or device) */
    size_t size;          /* bytes */
};

/* Backend constructors (one per backend file). */
krn_backend_t *krn_ref_backend_create(struct err *err);
krn_backend_t *krn_cpu_backend_create(int threads, struct err *err);
krn_backend_t *krn_cuda_backend_create(int dev, struct err *err); /* stub without CUDA */

/* Host memory for the ref and cpu backends (ref_backend.c): 64-byte aligned. */
void *krn_host_mem_alloc(krn_backend_t *be, size_t bytes, struct err *err);
void krn_host_mem_free(krn_backend_t *be, void *p);
int krn_host_mem_copy(krn_backend_t *be, void *dst, const void *src, size_t bytes,
                      struct err *err);
int krn_host_mem_zero(krn_backend_t *be, void *dst, size_t bytes, struct err *err);

/* Peak figures of the host CPU (FIGURES.md), used by cpu/ref info(). */
void krn_host_info(int threads, struct krn_device_info *out);

/* erf-form GELU on one float (shared by ref/cpu). */
static inline float krn_gelu_f32(float x)
{
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
}

/* bf16/f16 scalar conversions (host). */
float krn_bf16_to_f32_1(uint16_t h);
uint16_t krn_f32_to_bf16_1(float f);
float krn_f16_to_f32_1(uint16_t h);
uint16_t krn_f32_to_f16_1(float f);

/* krn_load_f32: element i of an array of dtype as float. */
static inline float krn_load_f32(const void *p, enum krn_dtype dt, int64_t i)
{
    switch (dt) {
    case KRN_DTYPE_BF16: return krn_bf16_to_f32_1(((const uint16_t *)p)[i]);
    case KRN_DTYPE_F16: return krn_f16_to_f32_1(((const uint16_t *)p)[i]);
    default: return ((const float *)p)[i];
    }
}

/* krn_store_f32: store v as element i of an array of dtype. */
static inline void krn_store_f32(void *p, enum krn_dtype dt, int64_t i, float v)
{
    switch (dt) {
    case KRN_DTYPE_BF16: ((uint16_t *)p)[i] = krn_f32_to_bf16_1(v); break;
    case KRN_DTYPE_F16: ((uint16_t *)p)[i] = krn_f32_to_f16_1(v); break;
    default: ((float *)p)[i] = v; break;
    }
}

/* Reference implementations on host pointers (kernels/ref/ref_ops.c); the ref
 * backend is a thin wrapper, and the cpu backend and tests call them directly. */
void krn_ref_gemm(const struct krn_gemm_args *g, const void *a, const void *b,
                  const float *bias, void *c);
void krn_ref_attention(const struct krn_attn_args *t, const void *q, const void *k,
                       const void *v, const int32_t *mask, void *o);
void krn_ref_layernorm(int64_t rows, int64_t cols, float eps, const float *x,
                       const float *gamma, const float *beta, float *y);
void krn_ref_gelu(int64_t n, const float *x, float *y);
void krn_ref_softmax(int64_t rows, int64_t cols, const float *x, float *y);
void krn_ref_add(int64_t n, const float *a, const float *b, float *y);
void krn_ref_embedding(int64_t n, int64_t dim, int64_t vocab, const int32_t *ids,
                       const float *table, float *out);
void krn_ref_mean_pool(int64_t B, int64_t T, int64_t D, const float *x,
                       const int32_t *mask, float *out);
void krn_ref_l2_normalize(int64_t rows, int64_t cols, float eps, const float *x, float *y);

#ifdef __cplusplus
}
#endif

#endif
