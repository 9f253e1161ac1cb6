/* test_krn_api.c: the krn.h contract: names, dtype conversions, the cost model,
 * buffers and views, raw-pointer copies (krn_ptr_*; on CUDA too when a device is
 * present), argument errors (each with its errno), and krn_bench_run. */
#include "tests/kernels/krn_test.h"
#include "kernels/krn_bench.h"

#include <errno.h>
#include <stdlib.h>

static void test_backend_unknown_fails_einval(void **state)
{
    (void)state;
    struct err e = {0};
    assert_null(krn_backend_create("tpu", 0, &e));
    assert_int_equal(e.code, EINVAL);
    assert_null(krn_backend_create(NULL, 0, &e));
    assert_null(krn_backend_create("cpu", -1, &e));
    assert_int_equal(e.code, EINVAL);
    krn_backend_destroy(NULL); /* no-op */
    krn_buf_free(NULL);
}

/* without a device (or without CUDA) the cuda backend is ENODEV, count is 0 */
static void test_cuda_absent_is_enodev(void **state)
{
    (void)state;
    struct err e = {0};
    int n = krn_cuda_device_count();
    assert_true(n >= 0);
    assert_null(krn_backend_create("cuda", n, &e));
    assert_int_equal(e.code, ENODEV);
    struct krn_device_info info;
    assert_int_equal(krn_cuda_device_info(n, &info, &e), -1);
    assert_int_equal(e.code, ENODEV);
    uint8_t uuid[16] = {0};
    assert_int_equal(krn_cuda_device_uuid(n, uuid, &e), -1);
    assert_int_equal(e.code, ENODEV);
    assert_int_equal(krn_cuda_device_uuid(-1, uuid, &e), -1);
    assert_int_equal(e.code, ENODEV);
}

/* krn_ptr_upload/download on be: through a pointer inside a buffer (an offset
 * into it), checked against krn_buf_upload/download; bytes 0 is a no-op even
 * with NULL pointers; NULLs with bytes > 0 are EINVAL. */
static void ptr_copies(krn_backend_t *be)
{
    struct err e = {0};
    enum { N = 1000, OFF = 37 };
    unsigned char src[N], got[N], back[N];
    for (int i = 0; i < N; i++)
        src[i] = (unsigned char)(i * 7 + 3);
    krn_buf_t *b = krn_buf_alloc(be, N + 2 * OFF, &e);
    assert_non_null(b);
    assert_int_equal(krn_buf_zero(b, &e), 0); /* queued (cuda): the copies come after it */
    char *p = (char *)krn_buf_ptr(b) + OFF;
    assert_int_equal(krn_ptr_upload(be, p, src, N, &e), 0);
    memset(got, 0xee, sizeof got);
    assert_int_equal(krn_buf_download(b, OFF, got, N, &e), 0);
    assert_memory_equal(got, src, N);
    assert_int_equal(krn_buf_download(b, 0, got, OFF, &e), 0); /* nothing before p touched */
    for (int i = 0; i < OFF; i++)
        assert_int_equal(got[i], 0);
    assert_int_equal(krn_buf_download(b, OFF + N, got, OFF, &e), 0); /* nor after */
    for (int i = 0; i < OFF; i++)
        assert_int_equal(got[i], 0);
    memset(back, 0, sizeof back);
    assert_int_equal(krn_ptr_download(be, back, p + 100, N - 100, &e), 0);
    assert_memory_equal(back, src + 100, N - 100);
    /* stream order: a queued zero is seen by the download that follows */
    assert_int_equal(krn_buf_zero(b, &e), 0);
    assert_int_equal(krn_ptr_download(be, back, p, N, &e), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(back[i], 0);
    assert_int_equal(krn_ptr_upload(be, NULL, NULL, 0, &e), 0);
    assert_int_equal(krn_ptr_download(be, NULL, NULL, 0, &e), 0);
    assert_int_equal(krn_ptr_upload(be, NULL, src, 4, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_int_equal(krn_ptr_upload(be, p, NULL, 4, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_int_equal(krn_ptr_download(be, NULL, p, 4, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_int_equal(krn_ptr_download(be, back, NULL, 4, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_int_equal(krn_ptr_download(NULL, back, p, 4, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_int_equal(krn_ptr_upload(NULL, p, src, 0, &e), -1);
    assert_int_equal(e.code, EINVAL);
    krn_buf_free(b);
}

static void test_ptr_copies_host(void **state)
{
    (void)state;
    static const char *const names[] = {"ref", "cpu"};
    for (int i = 0; i < 2; i++) {
        struct err e = {0};
        krn_backend_t *be = krn_backend_create(names[i], 1, &e);
        assert_non_null(be);
        ptr_copies(be);
        krn_backend_destroy(be);
    }
}

/* The same on CUDA device 0 (device memory, stream-ordered), and the device's
 * UUID; skipped, with the reason, without a device. */
static void test_ptr_copies_cuda(void **state)
{
    (void)state;
    if (krn_cuda_device_count() == 0) {
        print_message("skip: no CUDA device (or a build without CUDA)\n");
        skip();
    }
    struct err e = {0};
    krn_backend_t *be = krn_backend_create("cuda", 0, &e);
    if (be == NULL)
        fail_msg("krn_backend_create(cuda): %s", e.msg);
    ptr_copies(be);
    krn_backend_destroy(be);
    uint8_t u1[16], u2[16];
    static const uint8_t zero[16];
    assert_int_equal(krn_cuda_device_uuid(0, u1, &e), 0);
    assert_int_equal(krn_cuda_device_uuid(0, u2, &e), 0);
    assert_memory_equal(u1, u2, 16);
    assert_memory_not_equal(u1, zero, 16);
    int n = krn_cuda_device_count();
    for (int d = 1; d < n; d++) { /* every visible device is another GPU */
        assert_int_equal(krn_cuda_device_uuid(d, u2, &e), 0);
        assert_memory_not_equal(u1, u2, 16);
    }
}

static void test_names_and_parse(void **state)
{
    (void)state;
    struct err e = {0};
    enum krn_dtype d;
    enum krn_op op;
    assert_int_equal(krn_dtype_parse("bf16", &d, &e), 0);
    assert_int_equal(d, KRN_DTYPE_BF16);
    assert_int_equal(krn_dtype_parse("fp16", &d, &e), 0);
    assert_int_equal(d, KRN_DTYPE_F16);
    assert_int_equal(krn_dtype_parse("int8", &d, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_int_equal(krn_op_parse("attention", &op, &e), 0);
    assert_int_equal(op, KRN_OP_ATTENTION);
    assert_int_equal(krn_op_parse("conv", &op, &e), -1);
    assert_int_equal(e.code, EINVAL);
    for (int i = 0; i < KRN_OP_COUNT; i++) {
        assert_int_equal(krn_op_parse(krn_op_names[i], &op, &e), 0);
        assert_int_equal(op, i);
    }
    assert_int_equal(krn_dtype_size(KRN_DTYPE_F32), 4);
    assert_int_equal(krn_dtype_size(KRN_DTYPE_BF16), 2);
}

/* conversions round to nearest even; specials survive */
static void test_dtype_conversions(void **state)
{
    (void)state;
    float in[] = {1.0f, -2.5f, 65504.0f, 65520.0f, 5.9604645e-8f, 1e-9f, INFINITY, NAN,
                  1.00390625f /* bf16 tie: 1 + 2^-8 rounds to even 1.0 */,
                  1.01171875f /* 1 + 3*2^-8 rounds up to 1 + 2^-6 */};
    uint16_t h[10];
    float out[10];
    krn_f32_to_bf16(in, h, 10);
    krn_bf16_to_f32(h, out, 10);
    assert_true(out[0] == 1.0f && out[1] == -2.5f && isinf(out[6]) && isnan(out[7]));
    assert_true(out[8] == 1.0f);
    assert_true(out[9] == 1.015625f);
    krn_f32_to_f16(in, h, 10);
    krn_f16_to_f32(h, out, 10);
    assert_true(out[0] == 1.0f && out[1] == -2.5f && out[2] == 65504.0f);
    assert_true(isinf(out[3]));             /* overflow to inf */
    assert_true(out[4] == 5.9604645e-8f);   /* smallest subnormal exact */
    assert_true(out[5] == 0.0f);            /* underflow to 0 */
    assert_true(isinf(out[6]) && isnan(out[7]));
}

static void test_cost_model(void **state)
{
    (void)state;
    int64_t g[3] = {4096, 1536, 384}, gb[4] = {2, 3, 4, 5}, a[5] = {32, 128, 12, 32, 1};
    assert_true(krn_op_flops(KRN_OP_GEMM, g, 3, KRN_DTYPE_F32) == 2.0 * 4096 * 1536 * 384);
    assert_true(krn_op_flops(KRN_OP_GEMM, gb, 4, KRN_DTYPE_F32) == 2.0 * 2 * 3 * 4 * 5);
    assert_true(krn_op_flops(KRN_OP_ATTENTION, a, 4, KRN_DTYPE_F32) == 4.0 * 32 * 12 * 128 * 128 * 32);
    assert_true(krn_op_flops(KRN_OP_ATTENTION, a, 5, KRN_DTYPE_F32) == 2.0 * 32 * 12 * 128 * 128 * 32);
    assert_true(krn_op_bytes(KRN_OP_GEMM, g, 3, KRN_DTYPE_BF16) ==
                2.0 * (4096.0 * 384 + 384.0 * 1536 + 4096.0 * 1536));
    int64_t bad[3] = {0, 1, 1};
    assert_true(krn_op_flops(KRN_OP_GEMM, bad, 3, KRN_DTYPE_F32) == 0);
    assert_true(krn_op_flops(KRN_OP_GEMM, g, 2, KRN_DTYPE_F32) == 0);
    assert_true(krn_op_flops(KRN_OP_COUNT, g, 3, KRN_DTYPE_F32) == 0);
}

static void test_buffers_and_views(void **state)
{
    (void)state;
    struct err e = {0};
    krn_backend_t *be = krn_backend_create("cpu", 1, &e);
    assert_non_null(be);
    assert_null(krn_buf_alloc(be, 0, &e));
    assert_int_equal(e.code, EINVAL);
    krn_buf_t *b = krn_buf_alloc(be, 64, &e);
    assert_non_null(b);
    assert_int_equal((uintptr_t)krn_buf_ptr(b) % 64, 0);
    char src[64], dst[64];
    for (int i = 0; i < 64; i++)
        src[i] = (char)i;
    assert_int_equal(krn_buf_upload(b, 0, src, 64, &e), 0);
    assert_int_equal(krn_buf_upload(b, 1, src, 64, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_null(krn_buf_view(b, 60, 8, &e));
    assert_int_equal(e.code, EINVAL);
    krn_buf_t *v = krn_buf_view(b, 16, 32, &e), *vv = krn_buf_view(v, 8, 8, &e);
    assert_non_null(v);
    assert_non_null(vv);
    assert_int_equal(krn_buf_size(v), 32);
    assert_int_equal(krn_buf_download(vv, 0, dst, 8, &e), 0);
    assert_memory_equal(dst, src + 24, 8);
    assert_int_equal(krn_buf_download(v, 0, dst, 33, &e), -1);
    krn_buf_free(vv);
    krn_buf_free(v);
    assert_int_equal(krn_buf_download(b, 0, dst, 64, &e), 0); /* root still valid */
    krn_buf_free(b);
    struct krn_device_info info;
    assert_int_equal(krn_backend_info(be, &info, &e), 0);
    assert_true(info.peak_f32_gflops > 0 && info.mem_total > 0);
    assert_string_equal(krn_backend_name(be), "cpu");
    assert_null(krn_backend_cuda_stream(be));
    krn_backend_destroy(be);
}

/* argument errors are reported before any work, with EINVAL/ENOTSUP */
static void test_op_argument_errors(void **state)
{
    (void)state;
    struct err e = {0};
    krn_backend_t *be = krn_backend_create("cpu", 1, &e), *other = krn_backend_create("ref", 0, &e);
    krn_buf_t *small = kt_buf(be, NULL, 4, KRN_DTYPE_F32), *big = kt_buf(be, NULL, 1024, KRN_DTYPE_F32);
    krn_buf_t *foreign = kt_buf(other, NULL, 1024, KRN_DTYPE_F32);
    struct krn_gemm_args g = {.M = 8, .N = 8, .K = 8, .alpha = 1};
    assert_int_equal(krn_gemm(be, &g, small, big, NULL, big, &e), -1);
    assert_int_equal(e.code, EINVAL); /* a too short */
    assert_int_equal(krn_gemm(be, &g, foreign, big, NULL, big, &e), -1);
    assert_int_equal(e.code, EINVAL); /* another backend's buffer */
    g.epilogue = KRN_EPI_BIAS;
    assert_int_equal(krn_gemm(be, &g, big, big, NULL, big, &e), -1);
    assert_int_equal(e.code, EINVAL); /* bias missing */
    g = (struct krn_gemm_args){.M = 0, .N = 8, .K = 8};
    assert_int_equal(krn_gemm(be, &g, big, big, NULL, big, &e), -1);
    assert_int_equal(e.code, EINVAL);
    g = (struct krn_gemm_args){.M = 8, .N = 8, .K = 8, .lda = 4};
    assert_int_equal(krn_gemm(be, &g, big, big, NULL, big, &e), -1);
    assert_int_equal(e.code, EINVAL); /* lda < K */
    g = (struct krn_gemm_args){.M = 8, .N = 8, .K = 8, .dtype_ab = KRN_DTYPE_BF16,
                               .dtype_c = KRN_DTYPE_F16};
    assert_int_equal(krn_gemm(be, &g, big, big, NULL, big, &e), -1);
    assert_int_equal(e.code, ENOTSUP);
    g = (struct krn_gemm_args){.M = 2, .N = 2, .K = 2, .batch = 2, .stride_a = 4, .stride_b = 4};
    assert_int_equal(krn_gemm(be, &g, big, big, NULL, big, &e), -1);
    assert_int_equal(e.code, EINVAL); /* stride_c 0 */
    struct krn_attn_args t = {.B = 1, .T = 4, .H = 1, .D = 32, .ld_q = 16};
    assert_int_equal(krn_attention(be, &t, big, big, big, NULL, big, &e), -1);
    assert_int_equal(e.code, EINVAL); /* ld_q < H*D */
    t = (struct krn_attn_args){.B = 1, .T = 64, .H = 1, .D = 32};
    assert_int_equal(krn_attention(be, &t, big, big, big, small, big, &e), -1);
    assert_int_equal(e.code, EINVAL); /* mask too short */
    t.scale = NAN;
    assert_int_equal(krn_attention(be, &t, big, big, big, NULL, big, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_int_equal(krn_layernorm(be, 2, 4, -1.0f, big, small, small, big, &e), -1);
    assert_int_equal(krn_layernorm(be, 2, 8, 1e-5f, big, small, small, big, &e), -1);
    assert_int_equal(krn_gelu(be, 0, big, big, &e), -1);
    assert_int_equal(krn_softmax(be, 1, 2048, big, big, &e), -1);
    assert_int_equal(krn_add(be, 5, small, big, big, &e), -1);
    assert_int_equal(krn_embedding(be, 4, 4, 0, small, big, big, &e), -1);
    assert_int_equal(krn_mean_pool(be, 1, 8, 4, big, small, big, &e), -1);
    assert_int_equal(krn_l2_normalize(be, 1, 8, 1e-12f, small, big, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_int_equal(krn_backend_threads_set(other, 2, &e), -1);
    assert_int_equal(e.code, EINVAL);
    /* sizes whose products wrap 64 bits to something small must not pass the
     * buffer checks (1104524548 * 16701072065 = 4 mod 2^64) */
    assert_int_equal(krn_l2_normalize(be, 1104524548, 16701072065, 1e-12f, big, big, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_int_equal(krn_softmax(be, 1104524548, 16701072065, big, big, &e), -1);
    assert_int_equal(e.code, EINVAL);
    g = (struct krn_gemm_args){.M = (int64_t)1 << 32, .N = (int64_t)1 << 32, .K = 1, .alpha = 1};
    assert_int_equal(krn_gemm(be, &g, big, big, NULL, big, &e), -1);
    assert_int_equal(e.code, EINVAL);
    t = (struct krn_attn_args){.B = (int64_t)1 << 40, .T = (int64_t)1 << 30, .H = 1, .D = 32};
    assert_int_equal(krn_attention(be, &t, big, big, big, NULL, big, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_int_equal(krn_mean_pool(be, (int64_t)1 << 40, (int64_t)1 << 30, 4, big, NULL, big, &e), -1);
    assert_int_equal(e.code, EINVAL);
    int64_t wrap[2] = {1104524548, 16701072065};
    char *rows = NULL;
    assert_int_equal(krn_bench_run("softmax", wrap, 2, KRN_DTYPE_F32, 1, be, &rows, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_null(rows);
    uint64_t host = 0, dev = 0;
    assert_int_equal(krn_bench_footprint("softmax", wrap, 2, KRN_DTYPE_F32, &host, &dev, &e), -1);
    int64_t ok[2] = {1024, 512};
    assert_int_equal(krn_bench_footprint("softmax", ok, 2, KRN_DTYPE_F32, &host, &dev, &e), 0);
    assert_true(host >= 3 * 1024 * 512 * 4 && dev >= 2 * 1024 * 512 * 4); /* x, y, copies */
    krn_buf_free(small), krn_buf_free(big), krn_buf_free(foreign);
    krn_backend_destroy(be);
    krn_backend_destroy(other);
}

/* krn_bench_run: one valid JSON row per call; bad op/shape/repeat are EINVAL */
/* kernel variants: cpu and ref have none; bad arguments fail before any backend code */
static void test_variants_without_cuda(void **state)
{
    (void)state;
    struct err e = {0};
    krn_backend_t *be = krn_backend_create("cpu", 1, &e);
    assert_non_null(be);
    struct krn_variant v[4];
    assert_int_equal(krn_backend_variants(be, v, 4, &e), 0);
    assert_int_equal(krn_backend_variants(be, NULL, 0, &e), 0);
    assert_int_equal(krn_backend_variants(be, NULL, 1, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_int_equal(krn_backend_variants(NULL, v, 4, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_int_equal(krn_backend_variant_force(be, "gemm", "gemm_kernel6", &e), -1);
    assert_int_equal(e.code, ENOTSUP);
    assert_int_equal(krn_backend_variant_force(be, "nosuchop", NULL, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_int_equal(krn_backend_variant_force(be, "gelu", NULL, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_int_equal(krn_backend_variant_force(be, NULL, NULL, &e), -1);
    assert_int_equal(e.code, EINVAL);
    krn_backend_destroy(be);
}

static void test_bench_run(void **state)
{
    (void)state;
    struct err e = {0};
    krn_backend_t *be = krn_backend_create("cpu", 2, &e);
    char *rows = NULL;
    int64_t g[3] = {64, 48, 32}, a[4] = {2, 70, 2, 32}, r[2] = {16, 384}, n[1] = {1000};
    assert_int_equal(krn_bench_run("gemm", g, 3, KRN_DTYPE_F32, 3, be, &rows, &e), 0);
    assert_non_null(strstr(rows, "\"op\":\"gemm\",\"shape\":[64,48,32]"));
    assert_non_null(strstr(rows, "\"valid\":true"));
    assert_non_null(strstr(rows, "\"ref\":\"openblas\""));
    assert_true(rows[strlen(rows) - 1] == '\n');
    free(rows);
    assert_int_equal(krn_bench_run("gemm", g, 3, KRN_DTYPE_BF16, 2, be, &rows, &e), 0);
    assert_non_null(strstr(rows, "\"valid\":true"));
    free(rows);
    assert_int_equal(krn_bench_run("attention", a, 4, KRN_DTYPE_F32, 2, be, &rows, &e), 0);
    assert_non_null(strstr(rows, "\"ref\":\"unfused\""));
    assert_non_null(strstr(rows, "\"valid\":true"));
    free(rows);
    static const char *rowops[] = {"layernorm", "softmax", "l2norm", "embedding"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(krn_bench_run(rowops[i], r, 2, KRN_DTYPE_F32, 2, be, &rows, &e), 0);
        assert_non_null(strstr(rows, "\"valid\":true"));
        free(rows);
    }
    assert_int_equal(krn_bench_run("gelu", n, 1, KRN_DTYPE_F32, 2, be, &rows, &e), 0);
    free(rows);
    assert_int_equal(krn_bench_run("conv", g, 3, KRN_DTYPE_F32, 2, be, &rows, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_null(rows);
    assert_int_equal(krn_bench_run("gemm", g, 2, KRN_DTYPE_F32, 2, be, &rows, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_int_equal(krn_bench_run("gemm", g, 3, KRN_DTYPE_F32, -1, be, &rows, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_int_equal(krn_bench_run("gelu", n, 1, KRN_DTYPE_BF16, 2, be, &rows, &e), -1);
    assert_int_equal(e.code, ENOTSUP);
    krn_backend_destroy(be);
}

/* row_number: the value of "key": in a JSON row, or NAN when it is null or absent */
static double row_number(const char *row, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(row, pat);
    if (p == NULL || strncmp(p + strlen(pat), "null", 4) == 0)
        return NAN;
    return strtod(p + strlen(pat), NULL);
}

/* krn_bench_stream_triad measures a positive bandwidth; bad arguments are EINVAL.
 * Once set, memory-bound cpu rows at that thread count carry it as "peak" with
 * a number for "pct_of_peak"; GEMM rows have a GFLOP/s peak either way. */
static void test_bench_stream_peak(void **state)
{
    (void)state;
    struct err e = {0};
    double gbps = 0;
    assert_int_equal(krn_bench_stream_triad(2, 1 << 20, 2, &gbps, &e), 0);
    assert_true(gbps > 0 && isfinite(gbps));
    assert_int_equal(krn_bench_stream_triad(-1, 0, 0, &gbps, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_int_equal(krn_bench_stream_triad(1, 100, 0, &gbps, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_int_equal(krn_bench_stream_triad(1, 0, 101, &gbps, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_int_equal(krn_bench_stream_triad(1, 0, 0, NULL, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_true(krn_bench_stream_bytes() >= (size_t)32 << 20);

    krn_backend_t *be = krn_backend_create("cpu", 2, &e);
    assert_non_null(be);
    char *rows = NULL;
    int64_t n[1] = {1 << 16}, g[3] = {64, 48, 32};
    krn_bench_host_gbps_set(0, 0); /* nothing measured: no peak for a GB/s row */
    assert_int_equal(krn_bench_run("add", n, 1, KRN_DTYPE_F32, 2, be, &rows, &e), 0);
    assert_non_null(strstr(rows, "\"peak\":null"));
    assert_non_null(strstr(rows, "\"peak_source\":null"));
    free(rows);
    krn_bench_host_gbps_set(1, gbps); /* another thread count: still none */
    assert_int_equal(krn_bench_run("add", n, 1, KRN_DTYPE_F32, 2, be, &rows, &e), 0);
    assert_true(isnan(row_number(rows, "peak")));
    free(rows);
    krn_bench_host_gbps_set(2, gbps);
    static const char *memops[] = {"add", "gelu"};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(krn_bench_run(memops[i], n, 1, KRN_DTYPE_F32, 2, be, &rows, &e), 0);
        assert_true(fabs(row_number(rows, "peak") - gbps) <= 1e-5 * gbps); /* %.6g */
        assert_true(row_number(rows, "pct_of_peak") > 0);
        assert_non_null(strstr(rows, "\"peak_unit\":\"gbps\""));
        assert_non_null(strstr(rows, "\"peak_source\":\"stream-triad (measured)\""));
        free(rows);
    }
    assert_int_equal(krn_bench_run("gemm", g, 3, KRN_DTYPE_F32, 2, be, &rows, &e), 0);
    assert_true(row_number(rows, "peak") > 0 && row_number(rows, "pct_of_peak") > 0);
    assert_non_null(strstr(rows, "\"peak_unit\":\"gflops\""));
    assert_true(strstr(rows, "\"peak_source\":\"table") || strstr(rows, "\"peak_source\":\"estimate"));
    free(rows);
    krn_bench_host_gbps_set(0, 0);
    krn_backend_destroy(be);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backend_unknown_fails_einval),
        cmocka_unit_test(test_cuda_absent_is_enodev),
        cmocka_unit_test(test_names_and_parse),
        cmocka_unit_test(test_dtype_conversions),
        cmocka_unit_test(test_cost_model),
        cmocka_unit_test(test_buffers_and_views),
        cmocka_unit_test(test_ptr_copies_host),
        cmocka_unit_test(test_ptr_copies_cuda),
        cmocka_unit_test(test_op_argument_errors),
        cmocka_unit_test(test_variants_without_cuda),
        cmocka_unit_test(test_bench_run),
        cmocka_unit_test(test_bench_stream_peak),
    };
    return cmocka_run_group_tests_name("krn api", tests, NULL, NULL);
}
