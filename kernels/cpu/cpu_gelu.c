/* cpu_gelu.c: the cpu backend's vectorised erf-form GELU, y = 0.5 x (1 + erf(x / sqrt 2)).
 *
 * erf comes from W. J. Cody's rational Chebyshev approximations ("Rational
 * Chebyshev approximations for the error function", Math. Comp. 23 (1969)
 * 631-638; coefficients as in Netlib SPECFUN CALERF), evaluated branch-free
 * on 8 lanes in float (one AVX2 register: with 16-lane vectors GCC scalarises
 * the compares on AVX2), with u = x / sqrt 2 and y = |u|:
 *   y <= 0.46875       1 + erf(u) = 1 + u P1(u^2) / Q1(u^2)
 *   0.46875 < y <= 4   erfc(y) = exp(-y^2) P2(y) / Q2(y)
 *   y > 4              erfc(y) = exp(-y^2) (1/sqrt(pi) - z P3(z) / Q3(z)) / y, z = 1/y^2
 * and 1 + erf(u) = 2 - erfc(y) for u > 0, erfc(y) for u < 0, so the negative
 * tail keeps its relative accuracy (no 1 + (-1 + tiny) cancellation).
 * exp(-y^2) is computed as exp(-x^2 / 2) from the exact input x, not from the
 * rounded u = x / sqrt 2, with x^2 split into an exact part (x's top 12
 * significant bits, squared) and a small remainder, and the exact part reduced
 * exactly (in the spirit of CALERF's trunc(16 y) split, with one exp instead of
 * two): neither the rounding of u nor that of y^2 reaches the exponent, where it
 * would be amplified 2 y^2-fold.
 * Measured against double 0.5 x erfc(-x / sqrt 2) over [-12, 12] in steps of
 * 2^-14: max relative error 3.9e-7 (a few float ulp; test_krn_cpu
 * test_gelu_accuracy checks 1e-6 in steps of 2^-10), where the scalar
 * 0.5 x (1 + erff(u)) it replaces loses 4.7% at x = -5 to cancellation.
 * Compiled for x86-64-v4/v3/baseline via target_clones. x = +-inf is handled
 * (-inf gives NaN, as 0.5 x (1 + erff) did); NaN gives NaN.
 */
#include "kernels/cpu/cpu.h"

#include <math.h>

#pragma GCC diagnostic ignored "-Wpsabi" /* the v8 helpers are always inlined */

typedef float v8 __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

#define V8(c) ((v8){c, c, c, c, c, c, c, c})
#define V8I(c) ((v8i){c, c, c, c, c, c, c, c})

/* v8_sel: m ? a : b per lane (m from a vector comparison: all ones or zero). */
static inline __attribute__((always_inline)) v8 v8_sel(v8i m, v8 a, v8 b)
{
    return (v8)(((v8i)a & m) | ((v8i)b & ~m));
}

/* v8_any: whether any lane of a comparison mask is set. */
static inline __attribute__((always_inline)) int v8_any(v8i m)
{
    int32_t any = 0;
    for (int i = 0; i < 8; i++)
        any |= m[i];
    return any != 0;
}

/* v8_exp2: e^(hi + lo) for hi + lo <= 0 and |lo| small, with hi a multiple of
 * 2^-24 (so hi - n ln2_hi, a multiple of 2^-24 below 1, is exact); 0 below -87.3.
 * Cody-Waite reduction hi + lo = n ln2 + r, |r| <= ln2/2, degree-7 Taylor
 * polynomial (truncation 2.4e-9 relative), 2^n from the exponent bits. */
static inline __attribute__((always_inline)) v8 v8_exp2(v8 hi, v8 lo)
{
    v8 x = hi + lo;
    v8i under = x < V8(-87.3f);
    v8 t = x * 1.44269504088896341f + 12582912.0f; /* round to nearest: 1.5 * 2^23 */
    v8 n = t - 12582912.0f;
    v8 r = hi - n * 0.693359375f; /* exact: both multiples of 2^-16, difference < 1 */
    r = r + lo;
    r = r - n * -2.12194440e-4f;  /* ln2 = 0.693359375 - 2.12194440e-4 */
    v8 p = r * (1.0f / 5040) + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    v8i ni = __builtin_convertvector(v8_sel(under, V8(0.0f), n), v8i);
    v8 scale = (v8)((ni + 127) << 23);
    return (v8)((v8i)(p * scale) & ~under);
}

/* v8_gelu: the GELU of 8 lanes (see the file comment). */
static inline __attribute__((always_inline)) v8 v8_gelu(v8 x)
{
    v8 u = x * 0.70710678118654752f;
    v8 y = v8_sel(u < V8(0.0f), -u, u);
    /* region 1: |u| <= 0.46875, erf(u) = u P1(u^2) / Q1(u^2) */
    v8 z = u * u;
    v8 num = z * 1.85777706184603153e-1f + 3.16112374387056560e0f;
    num = num * z + 1.13864154151050156e2f;
    num = num * z + 3.77485237685302021e2f;
    num = num * z + 3.20937758913846947e3f;
    v8 den = z + 2.36012909523441209e1f;
    den = den * z + 2.44024637934444173e2f;
    den = den * z + 1.28261652607737228e3f;
    den = den * z + 2.84423683343917062e3f;
    v8 num1 = u * num, den1 = den; /* region 1's quotient, divided together with region 2's */
    /* region 2: 0.46875 < y <= 4, erfc(y) exp(y^2) = P2(y) / Q2(y) */
    v8 yc = v8_sel(y > V8(9.5f), V8(9.5f), y); /* erfc(9.5) ~ 1e-41: 0 in float anyway */
    num = yc * 2.15311535474403846e-8f + 5.64188496988670089e-1f;
    num = num * yc + 8.88314979438837594e0f;
    num = num * yc + 6.61191906371416295e1f;
    num = num * yc + 2.98635138197400131e2f;
    num = num * yc + 8.81952221241769090e2f;
    num = num * yc + 1.71204761263407058e3f;
    num = num * yc + 2.05107837782607147e3f;
    num = num * yc + 1.23033935479799725e3f;
    den = yc + 1.57449261107098347e1f;
    den = den * yc + 1.17693950891312499e2f;
    den = den * yc + 5.37181101862009858e2f;
    den = den * yc + 1.62138957456669019e3f;
    den = den * yc + 3.29079923573345963e3f;
    den = den * yc + 4.36261909014324716e3f;
    den = den * yc + 3.43936767414372164e3f;
    den = den * yc + 1.23033935480374942e3f;
    v8i near = y <= V8(0.46875f);
    v8 q = v8_sel(near, num1, num) / v8_sel(near, den1, den);
    v8 one_p_erf1 = 1.0f + q, r = q;
    v8i far = yc > V8(4.0f);
    if (v8_any(far)) { /* region 3 (|x| > 5.66, rare): skip its three divisions otherwise */
        /* y > 4: erfc(y) exp(y^2) = (1/sqrt(pi) - w P3(w) / Q3(w)) / y, w = 1/y^2 */
        v8 y4 = v8_sel(far, yc, V8(4.0f));
        v8 w = 1.0f / (y4 * y4);
        num = w * 1.63153871373020978e-2f + 3.05326634961232344e-1f;
        num = num * w + 3.60344899949804439e-1f;
        num = num * w + 1.25781726111229246e-1f;
        num = num * w + 1.60837851487422766e-2f;
        num = num * w + 6.58749161529837803e-4f;
        den = w + 2.56852019228982242e0f;
        den = den * w + 1.87295284992346725e0f;
        den = den * w + 5.27905102951428412e-1f;
        den = den * w + 6.05183413124413191e-2f;
        den = den * w + 2.33520497626869185e-3f;
        r = v8_sel(far, (5.6418958354775628695e-1f - w * num / den) / y4, r);
    }
    /* exp(-y^2) = exp(-x^2 / 2) from the exact input a = |x| (not from the
     * rounded u): a = ah + al with ah = a's top 12 significant bits, so
     * -ah^2 / 2 is exact (24 bits; a multiple of 2^-24 wherever n != 0) and the
     * rest, -(ah al + al^2 / 2), is small; v8_exp2 reduces the exact part exactly. */
    v8 a = v8_sel(x < V8(0.0f), -x, x);
    a = v8_sel(a > V8(13.5f), V8(13.5f), a);
    v8 ah = (v8)((v8i)a & V8I(0xfffff000));
    v8 al = a - ah;
    v8 erfc = v8_exp2(-0.5f * (ah * ah), -(ah * al + 0.5f * (al * al))) * r;
    v8 one_p_erf = v8_sel(u < V8(0.0f), erfc, 2.0f - erfc);
    one_p_erf = v8_sel(near, one_p_erf1, one_p_erf);
    return 0.5f * x * one_p_erf;
}

__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
void cpu_gelu_run(const float *x, float *y, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v8 v;
        __builtin_memcpy(&v, x + i, sizeof v);
        v = v8_gelu(v);
        __builtin_memcpy(y + i, &v, sizeof v);
    }
    if (i < n) { /* tail: pad with zeros, store only n - i lanes */
        float buf[8] = {0};
        for (int64_t j = i; j < n; j++)
            buf[j - i] = x[j];
        v8 v;
        __builtin_memcpy(&v, buf, sizeof v);
        v = v8_gelu(v);
        __builtin_memcpy(buf, &v, sizeof v);
        for (int64_t j = i; j < n; j++)
            y[j] = buf[j - i];
    }
}
