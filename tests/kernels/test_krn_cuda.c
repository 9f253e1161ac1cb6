/* test_krn_cuda.c: every op of the "cuda" backend against the "cpu" backend,
 * and the GEMMs against cuBLAS. Skips (exit 0, reason printed) when the build
 * has no CUDA or no device is visible.
 *
 * Every kernel variant (krn_backend_variants) is also forced in turn
 * (krn_backend_variant_force) and compared with the cpu backend and, for GEMM,
 * cuBLAS, whatever automatic selection would pick; and a variant
 * that the backend's self-check disabled fails test_variants_self_check, so a
 * fast path that is wrong on this GPU is reported rather than silently skipped.
 *
 * Tolerances: f32 GEMM atol 3e-6*K + 1e-5 (fp32 FMA order differs), bf16/f16
 * GEMM vs cuBLAS atol 1e-3*sqrt(K) rtol 1e-2 (both accumulate in fp32 from the
 * same rounded inputs), attention atol 2e-4 rtol 1e-3 (__expf) in f32;
 * tensor-core attention (P rounded to bf16/f16 before P.V) atol 1e-2 rtol 2e-2
 * (bf16) or 3e-3 / 1e-2 (f16); row ops 1e-5..1e-4.
 */
#include "tests/kernels/krn_test_ops.h"

#include <errno.h>

#ifdef KRN_TEST_CUBLAS
#include <cublas_v2.h>
#include <cuda_runtime.h>
#endif

static struct kt_pair P;

static int setup(void **state)
{
    (void)state;
    struct err e = {0};
    P.be = krn_backend_create("cuda", 0, &e);
    if (P.be == NULL) {
        fprintf(stderr, "cuda backend: %s\n", e.msg);
        return -1;
    }
    P.ref = krn_backend_create("cpu", 2, &e);
    return P.ref ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    krn_backend_destroy(P.be);
    krn_backend_destroy(P.ref);
    return 0;
}

static void test_gemm_vs_cpu(void **state)
{
    (void)state;
    static const int64_t shapes[][3] = {{1, 1, 1}, {7, 5, 3}, {33, 65, 17}, {129, 200, 67},
                                        {256, 1536, 384}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int tr = 0; tr < 4; tr++)
            for (int epi = 0; epi < KRN_EPI_COUNT; epi++) {
                struct krn_gemm_args g = {.M = shapes[s][0], .N = shapes[s][1], .K = shapes[s][2],
                                          .trans_a = tr & 1, .trans_b = tr >> 1, .alpha = 1,
                                          .beta = epi == 1 ? 0.5f : 0.0f,
                                          .epilogue = (enum krn_epilogue)epi};
                kt_gemm(&P, g, 3e-6 * (double)g.K + 1e-5, 1e-5);
            }
}

static void test_gemm_half_vs_cpu(void **state)
{
    (void)state;
    for (int dt = KRN_DTYPE_BF16; dt <= KRN_DTYPE_F16; dt++)
        for (int tr = 0; tr < 4; tr++) {
            struct krn_gemm_args g = {.M = 130, .N = 250, .K = 96, .trans_a = tr & 1,
                                      .trans_b = tr >> 1, .alpha = 1,
                                      .dtype_ab = (enum krn_dtype)dt,
                                      .epilogue = KRN_EPI_BIAS_GELU};
            kt_gemm(&P, g, 1e-4, 1e-4);
            g.dtype_c = (enum krn_dtype)dt;
            kt_gemm(&P, g, 1e-3, dt == KRN_DTYPE_BF16 ? 8e-3 : 1e-3);
        }
}

static void test_gemm_batched_vs_cpu(void **state)
{
    (void)state;
    struct krn_gemm_args g = {.M = 64, .N = 48, .K = 32, .trans_b = true, .alpha = 1, .batch = 12,
                              .stride_a = 32, .stride_b = 32, .stride_c = 48,
                              .lda = 12 * 32, .ldb = 12 * 32, .ldc = 12 * 48};
    kt_gemm(&P, g, 1e-4, 1e-5); /* heads interleaved as in attention */
}

/* gemm_case_fn: one GEMM of a forced variant: shape index s of the caller's
 * table, dtype dt of A and B, B [N, K] (tb) or [K, N] */
typedef void (*gemm_case_fn)(void *ctx, const int64_t shape[3], size_t s, enum krn_dtype dt,
                             bool tb);

/* for_each_gemm_variant: force every runnable GEMM variant in turn and run fn on
 * each shape, in the dtypes it takes (f32 for kernels 3-4, bf16 and f16 for the
 * rest) and both B layouts unless it takes B [N, K] only (kernels 7-8); prints
 * "<variant>: agrees with <what>" after each; returns how many ran. */
static int for_each_gemm_variant(const int64_t (*shapes)[3], size_t ns, gemm_case_fn fn,
                                 void *ctx, const char *what)
{
    struct err e = {0};
    struct krn_variant vs[16];
    int n = krn_backend_variants(P.be, vs, 16, &e);
    assert_true(n > 0 && n <= 16);
    int ran = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(vs[i].op, "gemm") != 0)
            continue;
        if (!vs[i].runnable) {
            printf("  %s: not runnable here (%s)\n", vs[i].name, vs[i].note);
            continue;
        }
        assert_int_equal(krn_backend_variant_force(P.be, "gemm", vs[i].name, &e), 0);
        bool f32 = strcmp(vs[i].name, "gemm_kernel3") == 0 ||
                   strcmp(vs[i].name, "gemm_kernel4") == 0;
        bool tn_only = strcmp(vs[i].name, "gemm_kernel7") == 0 ||
                       strcmp(vs[i].name, "gemm_kernel8") == 0;
        for (int dt = f32 ? 0 : 1; dt <= (f32 ? 0 : 2); dt++)
            for (size_t s = 0; s < ns; s++)
                for (int tb = 1; tb >= (tn_only ? 1 : 0); tb--)
                    fn(ctx, shapes[s], s, (enum krn_dtype)dt, tb);
        printf("  %s: agrees with %s\n", vs[i].name, what);
        ran++;
    }
    assert_int_equal(krn_backend_variant_force(P.be, "gemm", NULL, &e), 0);
    return ran;
}

static void gemm_case_vs_cpu(void *ctx, const int64_t shape[3], size_t s, enum krn_dtype dt,
                             bool tb)
{
    (void)ctx;
    struct krn_gemm_args g = {.M = shape[0], .N = shape[1], .K = shape[2], .trans_b = tb,
                              .alpha = 1, .dtype_ab = dt};
    if (s == 1) { /* the fused epilogue: beta, bias + GELU */
        g.beta = 0.5f;
        g.epilogue = KRN_EPI_BIAS_GELU;
    }
    double K = (double)g.K;
    bool f32 = dt == KRN_DTYPE_F32;
    kt_gemm(&P, g, f32 ? 3e-6 * K + 1e-5 : 1e-3 * sqrt(K), f32 ? 1e-5 : 1e-2);
}

/* every GEMM variant forced in turn against the cpu backend, with tails in M,
 * N and K, both B layouts where the variant takes them, and the fused
 * epilogue (beta, bias + GELU): needs no cuBLAS, so it also runs on the CPU
 * emulator (tests/cusim), where it is the only check of each variant on
 * shapes larger than its self-check's */
static void test_gemm_variants_vs_cpu(void **state)
{
    (void)state;
    static const int64_t shapes[][3] = {{256, 256, 512}, {300, 264, 200}, {33, 40, 24}};
    int ran = for_each_gemm_variant(shapes, sizeof shapes / sizeof shapes[0], gemm_case_vs_cpu,
                                    NULL, "the cpu backend");
    assert_true(ran >= 3); /* kernels 3, 4 and 5 run on every device */
}

#ifdef KRN_TEST_CUBLAS
/* gemm_vs_cublas: our kernel and cublasGemmEx on the same device buffers. */
static void gemm_vs_cublas_tb(cublasHandle_t h, int64_t M, int64_t N, int64_t K,
                              enum krn_dtype dt, bool tb)
{
    struct err e = {0};
    size_t na = (size_t)(M * K), nb = (size_t)(K * N), nc = (size_t)(M * N);
    float *a = kt_randv(na, 1), *b = kt_randv(nb, 1);
    krn_buf_t *ba = kt_buf(P.be, a, na, dt), *bb = kt_buf(P.be, b, nb, dt),
              *c1 = kt_buf(P.be, NULL, nc, KRN_DTYPE_F32), *c2 = kt_buf(P.be, NULL, nc, KRN_DTYPE_F32);
    struct krn_gemm_args g = {.M = M, .N = N, .K = K, .trans_b = tb, .alpha = 1, .dtype_ab = dt};
    if (krn_gemm(P.be, &g, ba, bb, NULL, c1, &e) != 0)
        fail_msg("gemm %lldx%lldx%lld %s tb=%d: %s", (long long)M, (long long)N, (long long)K,
                 krn_dtype_names[dt], tb, e.msg);
    static const cudaDataType_t ty[] = {CUDA_R_32F, CUDA_R_16BF, CUDA_R_16F};
    float alpha = 1, beta = 0;
    cublasSetStream(h, (cudaStream_t)krn_backend_cuda_stream(P.be));
    /* row-major C = A op(B) is column-major C^T = op(B)^T A^T */
    assert_int_equal(cublasGemmEx(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N, (int)N, (int)M,
                                  (int)K, &alpha, krn_buf_ptr(bb), ty[dt], tb ? (int)K : (int)N,
                                  krn_buf_ptr(ba), ty[dt], (int)K,
                                  &beta, krn_buf_ptr(c2), CUDA_R_32F, (int)N, CUBLAS_COMPUTE_32F,
                                  CUBLAS_GEMM_DEFAULT),
                     CUBLAS_STATUS_SUCCESS);
    float *o1 = kt_get(c1, nc, KRN_DTYPE_F32), *o2 = kt_get(c2, nc, KRN_DTYPE_F32);
    char what[96];
    snprintf(what, sizeof what, "gemm vs cublas %lldx%lldx%lld %s tb=%d", (long long)M,
             (long long)N, (long long)K, krn_dtype_names[dt], tb);
    kt_close(what, o1, o2, nc, dt == KRN_DTYPE_F32 ? 3e-6 * (double)K + 1e-5
                                                               : 1e-3 * sqrt((double)K),
             dt == KRN_DTYPE_F32 ? 1e-5 : 1e-2);
    free(a), free(b), free(o1), free(o2);
    krn_buf_free(ba), krn_buf_free(bb), krn_buf_free(c1), krn_buf_free(c2);
}

static void gemm_vs_cublas(cublasHandle_t h, int64_t M, int64_t N, int64_t K, enum krn_dtype dt)
{
    gemm_vs_cublas_tb(h, M, N, K, dt, true);
}

static void gemm_case_vs_cublas(void *ctx, const int64_t shape[3], size_t s, enum krn_dtype dt,
                                bool tb)
{
    (void)s;
    gemm_vs_cublas_tb(*(cublasHandle_t *)ctx, shape[0], shape[1], shape[2], dt, tb);
}

/* every GEMM variant forced in turn, on the shapes and layouts it takes */
static void test_gemm_variants_vs_cublas(void **state)
{
    (void)state;
    cublasHandle_t h;
    assert_int_equal(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
    static const int64_t shapes[][3] = {{512, 512, 512}, {1000, 776, 336}, {4096, 1152, 384},
                                        {64, 2048, 4096}};
    int ran = for_each_gemm_variant(shapes, sizeof shapes / sizeof shapes[0], gemm_case_vs_cublas,
                                    &h, "cuBLAS");
    cublasDestroy(h);
    assert_true(ran >= 2);
}

/* strided-batched GEMM (attention's per-head products, a shared weight with
 * stride 0) against cublasGemmStridedBatchedEx on the same device buffers */
static void gemm_batched_vs_cublas(cublasHandle_t h, int64_t M, int64_t N, int64_t K, int64_t batch,
                                   bool share_b, enum krn_dtype dt)
{
    struct err e = {0};
    int64_t sa = M * K, sb = share_b ? 0 : N * K, sc = M * N;
    size_t na = (size_t)(sa * batch), nb = (size_t)(share_b ? N * K : sb * batch), nc = (size_t)(sc * batch);
    float *a = kt_randv(na, 1), *b = kt_randv(nb, 1);
    krn_buf_t *ba = kt_buf(P.be, a, na, dt), *bb = kt_buf(P.be, b, nb, dt),
              *c1 = kt_buf(P.be, NULL, nc, KRN_DTYPE_F32), *c2 = kt_buf(P.be, NULL, nc, KRN_DTYPE_F32);
    struct krn_gemm_args g = {.M = M, .N = N, .K = K, .trans_b = true, .alpha = 1, .dtype_ab = dt,
                              .batch = batch, .stride_a = sa, .stride_b = sb, .stride_c = sc};
    if (krn_gemm(P.be, &g, ba, bb, NULL, c1, &e) != 0)
        fail_msg("batched gemm %lldx%lldx%lld x%lld %s: %s", (long long)M, (long long)N, (long long)K,
                 (long long)batch, krn_dtype_names[dt], e.msg);
    static const cudaDataType_t ty[] = {CUDA_R_32F, CUDA_R_16BF, CUDA_R_16F};
    float alpha = 1, beta = 0;
    cublasSetStream(h, (cudaStream_t)krn_backend_cuda_stream(P.be));
    /* row-major C_i = A_i B_i^T is column-major C_i^T = B_i A_i^T */
    assert_int_equal(cublasGemmStridedBatchedEx(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)N, (int)M, (int)K,
                                                &alpha, krn_buf_ptr(bb), ty[dt], (int)K, (long long)sb,
                                                krn_buf_ptr(ba), ty[dt], (int)K, (long long)sa, &beta,
                                                krn_buf_ptr(c2), CUDA_R_32F, (int)N, (long long)sc,
                                                (int)batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                     CUBLAS_STATUS_SUCCESS);
    float *o1 = kt_get(c1, nc, KRN_DTYPE_F32), *o2 = kt_get(c2, nc, KRN_DTYPE_F32);
    char what[112];
    snprintf(what, sizeof what, "batched gemm vs cublas %lldx%lldx%lld x%lld%s %s", (long long)M,
             (long long)N, (long long)K, (long long)batch, share_b ? " (B shared)" : "",
             krn_dtype_names[dt]);
    kt_close(what, o1, o2, nc, dt == KRN_DTYPE_F32 ? 3e-6 * (double)K + 1e-5 : 1e-3 * sqrt((double)K),
             dt == KRN_DTYPE_F32 ? 1e-5 : 1e-2);
    free(a), free(b), free(o1), free(o2);
    krn_buf_free(ba), krn_buf_free(bb), krn_buf_free(c1), krn_buf_free(c2);
}

static void test_gemm_batched_vs_cublas(void **state)
{
    (void)state;
    cublasHandle_t h;
    assert_int_equal(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
    for (int dt = 0; dt < KRN_DTYPE_COUNT; dt++) {
        gemm_batched_vs_cublas(h, 128, 128, 64, 12, false, (enum krn_dtype)dt); /* heads of a layer */
        gemm_batched_vs_cublas(h, 77, 50, 33, 5, false, (enum krn_dtype)dt);   /* tails */
        gemm_batched_vs_cublas(h, 64, 96, 128, 4, true, (enum krn_dtype)dt);   /* one weight, stride 0 */
    }
    cublasDestroy(h);
}

static void test_gemm_vs_cublas(void **state)
{
    (void)state;
    cublasHandle_t h;
    assert_int_equal(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
    for (int dt = 0; dt < KRN_DTYPE_COUNT; dt++) {
        gemm_vs_cublas(h, 512, 512, 512, (enum krn_dtype)dt);
        gemm_vs_cublas(h, 4096, 1152, 384, (enum krn_dtype)dt);
        gemm_vs_cublas(h, 1000, 777, 333, (enum krn_dtype)dt);
    }
    cublasDestroy(h);
}
#endif

static void test_attention_vs_cpu(void **state)
{
    (void)state;
    static const int64_t shapes[][4] = {{1, 1, 1, 32}, {2, 7, 3, 64}, {1, 65, 2, 32},
                                        {2, 130, 1, 128}, {4, 512, 12, 32}, {2, 512, 16, 64}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int causal = 0; causal < 2; causal++) {
            struct krn_attn_args t = {.B = shapes[s][0], .T = shapes[s][1], .H = shapes[s][2],
                                      .D = shapes[s][3], .causal = causal};
            kt_attn(&P, t, NULL, false, 2e-4, 1e-3);
        }
    int32_t mask[3 * 97];
    for (int i = 0; i < 3 * 97; i++)
        mask[i] = i < 97 ? (i % 3 != 0) : (i < 2 * 97 ? i == 97 + 50 : 0);
    struct krn_attn_args t = {.B = 3, .T = 97, .H = 2, .D = 64};
    kt_attn(&P, t, mask, false, 2e-4, 1e-3);
    /* bf16 q/k/v: automatic selection takes attn_kernel2 (P rounded to bf16
     * before P.V), hence its tolerance, as in test_attention_variants_vs_cpu */
    t.dtype = KRN_DTYPE_BF16;
    kt_attn(&P, t, mask, true, 1e-2, 2e-2);
    t.dtype_o = KRN_DTYPE_BF16;
    kt_attn(&P, t, mask, false, 1e-2, 2e-2);
}

/* every attention variant forced in turn against the cpu backend */
static void test_attention_variants_vs_cpu(void **state)
{
    (void)state;
    struct err e = {0};
    struct krn_variant vs[16];
    int n = krn_backend_variants(P.be, vs, 16, &e);
    int32_t mask[3 * 97];
    for (int i = 0; i < 3 * 97; i++)
        mask[i] = i < 97 ? (i % 3 != 0) : (i < 2 * 97 ? i == 97 + 50 : 0);
    for (int i = 0; i < n; i++) {
        if (strcmp(vs[i].op, "attention") != 0 || !vs[i].runnable)
            continue;
        bool tc = strcmp(vs[i].name, "attn_kernel1") != 0;
        assert_int_equal(krn_backend_variant_force(P.be, "attention", vs[i].name, &e), 0);
        for (int dt = tc ? KRN_DTYPE_BF16 : KRN_DTYPE_F32; dt <= KRN_DTYPE_F16; dt++) {
            double atol = dt == KRN_DTYPE_BF16 ? 1e-2 : dt == KRN_DTYPE_F16 ? 3e-3 : 2e-4;
            double rtol = dt == KRN_DTYPE_BF16 ? 2e-2 : dt == KRN_DTYPE_F16 ? 1e-2 : 1e-3;
            for (int D = 32; D <= 128; D *= 2)
                for (int causal = 0; causal < 2; causal++) {
                    struct krn_attn_args t = {.B = 3, .T = 97, .H = 2, .D = D, .causal = causal,
                                              .dtype = (enum krn_dtype)dt};
                    kt_attn(&P, t, mask, false, atol, rtol);
                    kt_attn(&P, t, NULL, true, atol, rtol); /* fused QKV strides */
                    struct krn_attn_args l = {.B = 1, .T = 1031, .H = 2, .D = D,
                                              .causal = causal, .dtype = (enum krn_dtype)dt};
                    kt_attn(&P, l, NULL, false, atol, rtol);
                }
        }
        printf("  %s: agrees with the cpu backend\n", vs[i].name);
    }
    assert_int_equal(krn_backend_variant_force(P.be, "attention", NULL, &e), 0);
}

/* the safety net's verdicts: on a GPU, every runnable variant must have passed
 * its self-check (a disabled one is a bug to fix, even though users are safe) */
static void test_variants_self_check(void **state)
{
    (void)state;
    struct err e = {0};
    struct krn_variant vs[16];
    int n = krn_backend_variants(P.be, vs, 16, &e);
    assert_true(n >= 8 && n <= 16);
    int bad = 0;
    struct krn_device_info info;
    assert_int_equal(krn_backend_info(P.be, &info, &e), 0);
    bool hopper = info.cc_major == 9 && info.cc_minor == 0;
    for (int i = 0; i < n; i++) {
        printf("  %-9s %-13s runnable=%d checked=%d enabled=%d check_err=%.3g  %s\n", vs[i].op,
               vs[i].name, vs[i].runnable, vs[i].checked, vs[i].enabled, vs[i].check_err,
               vs[i].note);
        if (vs[i].runnable && !vs[i].enabled)
            bad++;
        /* on an H100/H200 (or the emulated sm_90a) the Hopper kernels must run */
        if (hopper && !vs[i].runnable &&
            (!strcmp(vs[i].name, "gemm_kernel7") || !strcmp(vs[i].name, "gemm_kernel8")))
            fail_msg("%s not runnable on a cc 9.0 device: %s", vs[i].name, vs[i].note);
    }
    assert_int_equal(krn_backend_variant_force(P.be, "gemm", "gemm_kernel99", &e), -1);
    assert_int_equal(e.code, ENOENT);
    assert_int_equal(krn_backend_variant_force(P.be, "layernorm", "gemm_kernel3", &e), -1);
    assert_int_equal(e.code, EINVAL);
    /* a forced variant refuses what it cannot take: K7/K6 need K % 8 == 0 */
    if (krn_backend_variant_force(P.be, "gemm", "gemm_kernel6", &e) != 0) {
        assert_int_equal(e.code, ENOTSUP); /* pre-Ampere: kernel 6 not runnable */
        if (bad)
            fail_msg("%d runnable variant(s) disabled by the self-check (see above)", bad);
        return;
    }
    float x[12] = {0};
    krn_buf_t *b = kt_buf(P.be, x, 12, KRN_DTYPE_BF16), *c = kt_buf(P.be, NULL, 4, KRN_DTYPE_F32);
    struct krn_gemm_args g = {.M = 2, .N = 2, .K = 3, .trans_b = true, .alpha = 1,
                              .dtype_ab = KRN_DTYPE_BF16};
    assert_int_equal(krn_gemm(P.be, &g, b, b, NULL, c, &e), -1);
    assert_int_equal(e.code, ENOTSUP);
    assert_int_equal(krn_backend_variant_force(P.be, "gemm", NULL, &e), 0);
    assert_int_equal(krn_gemm(P.be, &g, b, b, NULL, c, &e), 0); /* automatic: K5 takes it */
    krn_buf_free(b), krn_buf_free(c);
    if (bad)
        fail_msg("%d runnable variant(s) disabled by the self-check (see above)", bad);
}

static void test_rowops_vs_cpu(void **state)
{
    (void)state;
    for (int op = KT_LAYERNORM; op <= KT_L2NORM; op++) {
        kt_rowop(&P, (enum kt_row_op)op, 1, 1, false, 1e-5, 1e-4);
        kt_rowop(&P, (enum kt_row_op)op, 257, 384, false, 1e-5, 1e-4);
        kt_rowop(&P, (enum kt_row_op)op, 33, 4099, true, 1e-5, 1e-4);
    }
    kt_embedding(&P, 1000, 384, 3000);
    kt_mean_pool(&P, 5, 33, 384, true);
    kt_mean_pool(&P, 3, 128, 1024, false);
}

static void test_bad_device(void **state)
{
    (void)state;
    struct err e = {0};
    assert_null(krn_backend_create("cuda", krn_cuda_device_count(), &e));
    assert_int_equal(e.code, ENODEV);
}

static void test_bench_rows(void **state)
{
    (void)state;
    struct err e = {0};
    char *rows = NULL;
    int64_t s[3] = {512, 512, 512};
    for (int dt = 0; dt < KRN_DTYPE_COUNT; dt++) {
        assert_int_equal(krn_bench_run("gemm", s, 3, (enum krn_dtype)dt, 3, P.be, &rows, &e), 0);
        assert_non_null(strstr(rows, "\"valid\":true"));
        free(rows);
    }
    int64_t a[4] = {2, 256, 4, 64};
    assert_int_equal(krn_bench_run("attention", a, 4, KRN_DTYPE_F32, 3, P.be, &rows, &e), 0);
    assert_non_null(strstr(rows, "\"valid\":true"));
    free(rows);
}

int main(void)
{
    int n = krn_cuda_device_count();
    if (n == 0) {
        struct err e = {0};
        krn_backend_t *be = krn_backend_create("cuda", 0, &e);
        printf("test_krn_cuda: SKIP: no CUDA device (%s)\n",
               be == NULL ? e.msg : "device count 0");
        krn_backend_destroy(be);
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_vs_cpu),
        cmocka_unit_test(test_gemm_half_vs_cpu),
        cmocka_unit_test(test_gemm_batched_vs_cpu),
        cmocka_unit_test(test_variants_self_check),
        cmocka_unit_test(test_gemm_variants_vs_cpu),
#ifdef KRN_TEST_CUBLAS
        cmocka_unit_test(test_gemm_vs_cublas),
        cmocka_unit_test(test_gemm_batched_vs_cublas),
        cmocka_unit_test(test_gemm_variants_vs_cublas),
#endif
        cmocka_unit_test(test_attention_vs_cpu),
        cmocka_unit_test(test_attention_variants_vs_cpu),
        cmocka_unit_test(test_rowops_vs_cpu),
        cmocka_unit_test(test_bad_device),
        cmocka_unit_test(test_bench_rows),
    };
    return cmocka_run_group_tests_name("krn cuda vs cpu and cublas", tests, setup, teardown);
}
