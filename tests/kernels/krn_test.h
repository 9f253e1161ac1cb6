/* krn_test.h: helpers shared by the kernel tests: seeded random data, buffers
 * made from host arrays, and an element-wise comparison with a stated tolerance.
 *
 * Tolerance: |got - want| <= atol + rtol * |want| for every element; on failure
 * the first offending index is printed and the test fails (cmocka).
 */
#ifndef MOAT_KRN_TEST_H
#define MOAT_KRN_TEST_H

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kernels/krn.h"

static uint64_t kt_seed = 0x9e3779b97f4a7c15ull;

/* kt_rand: uniform in [-1, 1), xorshift64* (deterministic across runs). */
static inline float kt_rand(void)
{
    kt_seed ^= kt_seed >> 12;
    kt_seed ^= kt_seed << 25;
    kt_seed ^= kt_seed >> 27;
    uint64_t r = kt_seed * 2685821657736338717ull;
    return (float)((r >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static inline float *kt_randv(size_t n, float scale)
{
    float *v = malloc(n * sizeof *v + 4);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = kt_rand() * scale;
    return v;
}

/* kt_buf: a buffer on be holding n elements of dtype from the f32 array x
 * (converted); x == NULL leaves it zeroed. */
static inline krn_buf_t *kt_buf(krn_backend_t *be, const float *x, size_t n,
                                enum krn_dtype dt)
{
    struct err e = {0};
    size_t es = krn_dtype_size(dt);
    krn_buf_t *b = krn_buf_alloc(be, n * es, &e);
    if (b == NULL)
        fail_msg("alloc %zu bytes: %s", n * es, e.msg);
    if (x == NULL) {
        assert_int_equal(krn_buf_zero(b, &e), 0);
        return b;
    }
    void *h = malloc(n * es);
    assert_non_null(h);
    if (dt == KRN_DTYPE_F32)
        memcpy(h, x, n * 4);
    else if (dt == KRN_DTYPE_BF16)
        krn_f32_to_bf16(x, h, n);
    else
        krn_f32_to_f16(x, h, n);
    if (krn_buf_upload(b, 0, h, n * es, &e) != 0)
        fail_msg("upload: %s", e.msg);
    free(h);
    return b;
}

static inline krn_buf_t *kt_buf_i32(krn_backend_t *be, const int32_t *x, size_t n)
{
    struct err e = {0};
    krn_buf_t *b = krn_buf_alloc(be, n * 4, &e);
    assert_non_null(b);
    assert_int_equal(krn_buf_upload(b, 0, x, n * 4, &e), 0);
    return b;
}

/* kt_get: download n elements of dtype into a new f32 array (caller frees). */
static inline float *kt_get(const krn_buf_t *b, size_t n, enum krn_dtype dt)
{
    struct err e = {0};
    size_t es = krn_dtype_size(dt);
    void *h = malloc(n * es);
    float *f = malloc(n * sizeof *f);
    assert_true(h != NULL && f != NULL);
    if (krn_buf_download(b, 0, h, n * es, &e) != 0)
        fail_msg("download: %s", e.msg);
    if (dt == KRN_DTYPE_F32)
        memcpy(f, h, n * 4);
    else if (dt == KRN_DTYPE_BF16)
        krn_bf16_to_f32(h, f, n);
    else
        krn_f16_to_f32(h, f, n);
    free(h);
    return f;
}

/* kt_close: compare; fail with the first bad element. Returns the max abs error. */
static inline double kt_close(const char *what, const float *got, const float *want, size_t n,
                              double atol, double rtol)
{
    double maxe = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= atol + rtol * fabs(want[i])))
            fail_msg("%s: element %zu: got %.7g want %.7g (atol %g rtol %g)", what, i,
                     (double)got[i], (double)want[i], atol, rtol);
        if (d > maxe)
            maxe = d;
    }
    return maxe;
}

#endif
