/* test_nccl.c: the NCCL all-reduce for GPU TP ranks. Without a GPU (or CUDA) the
 * device tests skip with a printed reason; the build's contract is checked anyway. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "kernels/krn.h"
#include "worker/wrk_nccl.h"

static void refuses_a_cpu_backend_or_reports_no_nccl(void **state)
{
    (void)state;
    struct err e = {0};
    krn_backend_t *cpu = krn_backend_create("cpu", 1, &e);
    assert_non_null(cpu);
    assert_null(wrk_nccl_create(NULL, cpu, 1, 0, &e));
    assert_int_equal(e.code, wrk_nccl_available() ? EINVAL : ENOTSUP);
    krn_backend_destroy(cpu);
    wrk_nccl_destroy(NULL);
}

static void single_rank_allreduce_on_the_gpu(void **state)
{
    (void)state;
    if (!wrk_nccl_available() || krn_cuda_device_count() == 0) {
        printf("SKIP: %s\n", wrk_nccl_available() ? "no CUDA device"
                                                   : "built without NCCL (CUDA=0 or NCCL=0)");
        skip();
    }
    struct err e = {0};
    krn_backend_t *be = krn_backend_create("cuda", 0, &e);
    if (be == NULL)
        fail_msg("cuda backend: %s", e.msg);
    wrk_nccl_t *n = wrk_nccl_create(NULL, be, 1, 0, &e);
    if (n == NULL)
        fail_msg("nccl: %s", e.msg);
    enum { N = 1000 };
    float host[N], back[N];
    for (int i = 0; i < N; i++)
        host[i] = (float)i * 0.5f - 7;
    krn_buf_t *buf = krn_buf_alloc(be, sizeof host, &e);
    assert_non_null(buf);
    assert_int_equal(krn_buf_upload(buf, 0, host, sizeof host, &e), 0);
    struct wrk_allreduce ar = wrk_nccl_allreduce(n);
    assert_int_equal(ar.allreduce_sum(ar.ctx, krn_buf_ptr(buf), N, &e), 0);
    assert_int_equal(krn_buf_download(buf, 0, back, sizeof back, &e), 0);
    for (int i = 0; i < N; i++) /* one rank: the sum is the input */
        assert_true(back[i] == host[i]);
    krn_buf_free(buf);
    wrk_nccl_destroy(n);
    krn_backend_destroy(be);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(refuses_a_cpu_backend_or_reports_no_nccl),
        cmocka_unit_test(single_rank_allreduce_on_the_gpu),
    };
    return cmocka_run_group_tests_name("nccl", tests, NULL, NULL);
}
