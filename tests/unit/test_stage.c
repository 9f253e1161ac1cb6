/* test_stage.c: the staged all-reduce (worker/wrk_stage.c) around the ZeroMQ one.
 *
 * Ranks are threads of this process, each with its own backend handle and
 * comm handle, on loopback ports found free by binding port 0 (as in
 * test_comm.c). The same calls are made once on host arrays through
 * wrk_comm_allreduce_sum() and once on backend buffers through the adapter;
 * the results must be the same bits. The "cpu" backend runs everywhere; the
 * "cuda" case (both ranks on device 0, which is what the adapter is for)
 * skips, with the reason, without a device.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/tp_fixture.h"

#include "kernels/krn.h"
#include "worker/wrk_comm.h"
#include "worker/wrk_stage.h"

#define MAX_RANKS 3
#define OFF_FLOATS 5 /* the staged buffer sits at an offset inside its krn buffer */

static const size_t call_n[] = {1, 1000, 0, 3 * 256 * 384, 17};
#define N_CALLS (sizeof call_n / sizeof call_n[0])

struct rank_arg {
    const char *ep, *group, *backend;
    int tp, rank;
    bool staged;          /* through the adapter on backend memory, else plain host */
    float *res[N_CALLS];  /* results, host */
    int rc;
    struct err err;
};

/* One call on backend memory: upload at an offset, staged all-reduce on the
 * raw pointer, download. */
static int staged_call(krn_backend_t *be, wrk_stage_t *st, krn_buf_t *b, float *host, size_t n,
                       struct err *err)
{
    size_t off = OFF_FLOATS * sizeof(float);
    if (n > 0 && krn_buf_upload(b, off, host, n * sizeof(float), err) != 0)
        return -1;
    float *p = (float *)((char *)krn_buf_ptr(b) + off);
    if (wrk_stage_allreduce_sum(st, n > 0 ? p : NULL, n, err) != 0)
        return -1;
    (void)be;
    return n > 0 ? krn_buf_download(b, off, host, n * sizeof(float), err) : 0;
}

static void *rank_main(void *p)
{
    struct rank_arg *a = p;
    krn_backend_t *be = NULL;
    wrk_stage_t *st = NULL;
    krn_buf_t *b = NULL;
    wrk_comm_t *c = wrk_comm_create(a->ep, a->group, a->tp, a->rank, tp_keys(a->group, a->rank),
                                    10.0, &a->err);
    if (c == NULL)
        goto fail;
    if (a->staged) {
        struct wrk_allreduce inner = wrk_comm_allreduce(c);
        be = krn_backend_create(a->backend, strcmp(a->backend, "cuda") == 0 ? 0 : 1, &a->err);
        if (be == NULL || (st = wrk_stage_create(be, &inner, &a->err)) == NULL
            || (b = krn_buf_alloc(be, (call_n[3] + 2 * OFF_FLOATS) * sizeof(float), &a->err))
                   == NULL)
            goto fail;
    }
    for (size_t k = 0; k < N_CALLS; k++) {
        size_t n = call_n[k];
        a->res[k] = malloc((n + 1) * sizeof(float));
        if (a->res[k] == NULL) {
            err_set(&a->err, ENOMEM, "out of memory");
            goto fail;
        }
        for (size_t i = 0; i < n; i++)
            a->res[k][i] = tp_val(a->rank, (int)k, i);
        int rc = a->staged ? staged_call(be, st, b, a->res[k], n, &a->err)
                           : wrk_comm_allreduce_sum(c, a->res[k], n, &a->err);
        if (rc != 0)
            goto fail;
    }
    goto out;
fail:
    a->rc = -1;
    wrk_comm_abort(c, &a->err);
out:
    krn_buf_free(b);
    wrk_stage_destroy(st);
    krn_backend_destroy(be);
    wrk_comm_destroy(c);
    return NULL;
}

/* Run tp ranks; staged[r] says which go through the adapter. */
static void run_group(struct rank_arg *a, int tp, const char *backend, const bool *staged)
{
    static int groups;
    char ep[64], group[32];
    tp_free_endpoint(ep, sizeof ep);
    snprintf(group, sizeof group, "21.0.%d", groups++);
    pthread_t th[MAX_RANKS];
    for (int r = 0; r < tp; r++) {
        a[r] = (struct rank_arg){.ep = ep, .group = group, .backend = backend, .tp = tp,
                                 .rank = r, .staged = staged[r]};
        assert_int_equal(pthread_create(&th[r], NULL, rank_main, &a[r]), 0);
    }
    for (int r = 0; r < tp; r++)
        pthread_join(th[r], NULL);
    for (int r = 0; r < tp; r++)
        if (a[r].rc != 0)
            fail_msg("%s rank %d%s: %s", backend, r, staged[r] ? " (staged)" : "", a[r].err.msg);
}

static void args_free(struct rank_arg *a, int tp)
{
    for (int r = 0; r < tp; r++)
        for (size_t k = 0; k < N_CALLS; k++)
            free(a[r].res[k]);
}

/* Every rank of got equals every rank of want, bit for bit, in every call. */
static void same_bits(const struct rank_arg *got, const struct rank_arg *want, int tp,
                      const char *label)
{
    for (size_t k = 0; k < N_CALLS; k++)
        for (int r = 0; r < tp; r++)
            if (call_n[k] > 0
                && memcmp(got[r].res[k], want[0].res[k], call_n[k] * sizeof(float)) != 0)
                fail_msg("%s: call %zu rank %d differs from the plain ZeroMQ sum", label, k, r);
}

static void stage_vs_plain(const char *backend, int tp)
{
    struct rank_arg plain[MAX_RANKS], staged[MAX_RANKS], mixed[MAX_RANKS];
    bool none[MAX_RANKS] = {false}, all[MAX_RANKS] = {true, true, true},
         some[MAX_RANKS] = {true, false, true};
    run_group(plain, tp, backend, none);
    run_group(staged, tp, backend, all);
    run_group(mixed, tp, backend, some); /* a host rank in a staged group */
    same_bits(staged, plain, tp, "all staged");
    same_bits(mixed, plain, tp, "rank 1 plain, the others staged");
    print_message("%s tp=%d: %zu staged all-reduces (up to %zu floats) equal the plain "
                  "ZeroMQ ones bit for bit\n", backend, tp, N_CALLS, call_n[3]);
    args_free(plain, tp);
    args_free(staged, tp);
    args_free(mixed, tp);
}

static void test_stage_equals_plain_cpu(void **state)
{
    (void)state;
    stage_vs_plain("cpu", 2);
    stage_vs_plain("cpu", 3);
}

/* Two (and three) ranks on one GPU: the case NCCL cannot do. */
static void test_stage_equals_plain_cuda(void **state)
{
    (void)state;
    if (krn_cuda_device_count() == 0) {
        print_message("skip: no CUDA device (or a build without CUDA)\n");
        skip();
    }
    stage_vs_plain("cuda", 2);
    stage_vs_plain("cuda", 3);
}

/* ---- the adapter alone, around a fake inner all-reduce ---- */

struct fake {
    int calls;
    const float *last_buf;
    size_t last_n;
    int fail_at;   /* call number (1-based) that fails with ECANCELED; 0: never */
};

static int fake_cb(void *ctx, float *buf, size_t n, struct err *err)
{
    struct fake *f = ctx;
    f->calls++;
    f->last_buf = buf;
    f->last_n = n;
    if (f->calls == f->fail_at)
        return err_set(err, ECANCELED, "rank 1 aborted: fake");
    for (size_t i = 0; i < n; i++)
        buf[i] *= 2; /* "two ranks with the same data" */
    return 0;
}

static void test_stage_bad_args(void **state)
{
    (void)state;
    struct err e = {0};
    krn_backend_t *be = krn_backend_create("cpu", 1, &e);
    assert_non_null(be);
    struct fake f = {0};
    struct wrk_allreduce inner = {fake_cb, &f}, nocb = {NULL, &f};
    assert_null(wrk_stage_create(NULL, &inner, &e));
    assert_int_equal(e.code, EINVAL);
    assert_null(wrk_stage_create(be, NULL, &e));
    assert_int_equal(e.code, EINVAL);
    assert_null(wrk_stage_create(be, &nocb, &e));
    assert_int_equal(e.code, EINVAL);
    wrk_stage_t *s = wrk_stage_create(be, &inner, &e);
    assert_non_null(s);
    assert_int_equal(wrk_stage_allreduce_sum(NULL, NULL, 0, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_int_equal(wrk_stage_allreduce_sum(s, NULL, 4, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_int_equal(f.calls, 0); /* argument errors never reach the inner one */
    float x = 1;
    assert_int_equal(wrk_stage_allreduce_sum(s, &x, SIZE_MAX / 2, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_int_equal(f.calls, 0);
    wrk_stage_destroy(s);
    wrk_stage_destroy(NULL);
    krn_backend_destroy(be);
}

/* The inner one sees host scratch (not the backend pointer), every call
 * including n == 0 reaches it, its errors pass through and leave buf as it was. */
static void test_stage_calls_inner(void **state)
{
    (void)state;
    struct err e = {0};
    krn_backend_t *be = krn_backend_create("ref", 0, &e);
    assert_non_null(be);
    struct fake f = {.fail_at = 3};
    struct wrk_allreduce inner = {fake_cb, &f};
    wrk_stage_t *s = wrk_stage_create(be, &inner, &e);
    assert_non_null(s);
    struct wrk_allreduce ar = wrk_stage_allreduce(s);
    assert_ptr_equal(ar.ctx, s);
    krn_buf_t *b = krn_buf_alloc(be, 64 * sizeof(float), &e);
    assert_non_null(b);
    float host[64], back[64];
    for (int i = 0; i < 64; i++)
        host[i] = (float)i - 20.5f;
    assert_int_equal(krn_buf_upload(b, 0, host, sizeof host, &e), 0);
    float *p = krn_buf_ptr(b);
    assert_int_equal(ar.allreduce_sum(ar.ctx, p, 64, &e), 0);
    assert_int_equal(f.calls, 1);
    assert_true(f.last_buf != p && f.last_n == 64);
    assert_int_equal(krn_buf_download(b, 0, back, sizeof back, &e), 0);
    for (int i = 0; i < 64; i++)
        assert_true(back[i] == 2 * host[i]);
    assert_int_equal(ar.allreduce_sum(ar.ctx, NULL, 0, &e), 0);
    assert_int_equal(f.calls, 2);
    assert_int_equal(f.last_n, 0);
    /* call 3 fails inside the inner all-reduce: its error, buf untouched */
    assert_int_equal(ar.allreduce_sum(ar.ctx, p, 64, &e), -1);
    assert_int_equal(e.code, ECANCELED);
    assert_string_equal(e.msg, "rank 1 aborted: fake");
    assert_int_equal(krn_buf_download(b, 0, host, sizeof host, &e), 0);
    assert_memory_equal(host, back, sizeof back);
    /* the inner one's failure is its own to keep (the ZeroMQ one is sticky) */
    assert_int_equal(ar.allreduce_sum(ar.ctx, p, 8, &e), 0);
    assert_int_equal(f.calls, 4);
    krn_buf_free(b);
    wrk_stage_destroy(s);
    krn_backend_destroy(be);
}

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* The adapter's own failure (here: no memory for the scratch) is sticky: the
 * inner all-reduce is never called again. */
static void test_stage_own_failure_sticky(void **state)
{
    (void)state;
#ifdef UNDER_ASAN
    print_message("skip: ASan aborts on the impossible allocation this test needs\n");
    skip();
#else
    struct err e = {0};
    krn_backend_t *be = krn_backend_create("ref", 0, &e);
    assert_non_null(be);
    struct fake f = {0};
    struct wrk_allreduce inner = {fake_cb, &f};
    wrk_stage_t *s = wrk_stage_create(be, &inner, &e);
    assert_non_null(s);
    float x[4] = {1, 2, 3, 4};
    /* n passes the argument check but its scratch cannot be allocated; nothing
     * is read from x before the allocation fails */
    assert_int_equal(wrk_stage_allreduce_sum(s, x, SIZE_MAX / sizeof(float) - 1, &e), -1);
    assert_int_equal(e.code, ENOMEM);
    assert_non_null(strstr(e.msg, "stage scratch"));
    struct err again = {0};
    assert_int_equal(wrk_stage_allreduce_sum(s, x, 4, &again), -1);
    assert_int_equal(again.code, ENOMEM);
    assert_string_equal(again.msg, e.msg);
    assert_int_equal(f.calls, 0);
    assert_true(x[0] == 1 && x[3] == 4);
    wrk_stage_destroy(s);
    krn_backend_destroy(be);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stage_bad_args),
        cmocka_unit_test(test_stage_calls_inner),
        cmocka_unit_test(test_stage_own_failure_sticky),
        cmocka_unit_test(test_stage_equals_plain_cpu),
        cmocka_unit_test(test_stage_equals_plain_cuda),
    };
    return cmocka_run_group_tests_name("stage", tests, NULL, NULL);
}
