/* test_bind.c: the share-out of a node's CPUs and GPUs to tasks (worker/wrk_bind.c).
 *
 * On made-up affinity masks and CUDA_VISIBLE_DEVICES values: tasks get CPUs
 * and GPUs of their own while there are free ones, lowest first, the mask
 * and device list agree with the slot, given-back ones are reused, a
 * shortage shares the least used and says so, an oversubscribed worker
 * does not pin, and the environment strings name the devices as the
 * worker's own CUDA_VISIBLE_DEVICES did. The pinning itself
 * (sched_setaffinity in the task's first process) is tested end to end in
 * tests/integration/test_cluster_jobs.py::test_task_binding.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "worker/wrk_bind.h"

static cpu_set_t mask_of(const int *cpus, int n)
{
    cpu_set_t m;
    CPU_ZERO(&m);
    for (int i = 0; i < n; i++)
        CPU_SET(cpus[i], &m);
    return m;
}

static void test_cpus_own_then_shared(void **state)
{
    (void)state;
    static const int os[] = {2, 3, 5, 7, 11, 13}; /* the worker's mask: not 0..n */
    cpu_set_t aff = mask_of(os, 6);
    struct wrk_bind b;
    struct err e = {0};
    char why[200];
    assert_int_equal(wrk_bind_init(&b, 4, 0, true, &aff, NULL, why, sizeof why, &e), 0);
    assert_true(b.pin);
    assert_string_equal(why, "");
    int want[] = {2, 3, 5, 7}; /* cpus = 4: the first 4 of the mask */
    assert_memory_equal(b.cpu, want, sizeof want);

    struct wrk_slot s1, s2, s3;
    assert_int_equal(wrk_bind_take(&b, 2, 0, &s1, &e), 0);
    assert_int_equal(wrk_bind_take(&b, 1, 0, &s2, &e), 0);
    assert_false(s1.shared || s2.shared);
    cpu_set_t m;
    assert_true(wrk_bind_cpuset(&b, &s1, &m));
    assert_int_equal(CPU_COUNT(&m), 2);
    assert_true(CPU_ISSET(2, &m) && CPU_ISSET(3, &m));
    assert_true(wrk_bind_cpuset(&b, &s2, &m));
    assert_int_equal(CPU_COUNT(&m), 1);
    assert_true(CPU_ISSET(5, &m));

    /* 1 free (7), 2 asked: 7 and the least used of the rest, shared */
    assert_int_equal(wrk_bind_take(&b, 2, 0, &s3, &e), 0);
    assert_true(s3.shared);
    assert_true(wrk_bind_cpuset(&b, &s3, &m));
    assert_int_equal(CPU_COUNT(&m), 2);
    assert_true(CPU_ISSET(7, &m));
    wrk_bind_give(&b, &s3);
    wrk_bind_give(&b, &s3); /* twice: the second is a no-op */
    for (int i = 0; i < 4; i++)
        assert_int_equal(b.cpu_users[i], i < 3 ? 1 : 0);

    /* given back: taken again, lowest first */
    wrk_bind_give(&b, &s1);
    assert_int_equal(wrk_bind_take(&b, 3, 0, &s1, &e), 0);
    assert_false(s1.shared);
    assert_true(wrk_bind_cpuset(&b, &s1, &m));
    assert_true(CPU_ISSET(2, &m) && CPU_ISSET(3, &m) && CPU_ISSET(7, &m) && !CPU_ISSET(5, &m));

    /* more than the node has: all of it (a bench task takes the whole node) */
    struct wrk_slot all;
    assert_int_equal(wrk_bind_take(&b, 64, 0, &all, &e), 0);
    assert_int_equal(all.ncpus, 4);
    assert_true(all.shared);
    wrk_bind_give(&b, &all);
    wrk_bind_give(&b, &s1);
    wrk_bind_give(&b, &s2);
    for (int i = 0; i < 4; i++)
        assert_int_equal(b.cpu_users[i], 0);
    wrk_bind_free(&b);
}

static void test_no_pin(void **state)
{
    (void)state;
    static const int os[] = {0, 1};
    cpu_set_t aff = mask_of(os, 2);
    struct wrk_bind b;
    struct err e = {0};
    char why[200];
    /* cpus = 16 on 2: not pinned, and the log line says why */
    assert_int_equal(wrk_bind_init(&b, 16, 0, true, &aff, NULL, why, sizeof why, &e), 0);
    assert_false(b.pin);
    assert_non_null(strstr(why, "16"));
    struct wrk_slot s;
    assert_int_equal(wrk_bind_take(&b, 4, 0, &s, &e), 0);
    cpu_set_t m;
    assert_false(wrk_bind_cpuset(&b, &s, &m));
    assert_int_equal(CPU_COUNT(&m), 0);
    wrk_bind_give(&b, &s);
    wrk_bind_free(&b);
    /* cpu_bind = "none": not pinned, nothing to say */
    assert_int_equal(wrk_bind_init(&b, 2, 0, false, &aff, NULL, why, sizeof why, &e), 0);
    assert_false(b.pin);
    assert_string_equal(why, "");
    wrk_bind_free(&b);
    assert_int_equal(wrk_bind_init(&b, 0, 0, true, &aff, NULL, why, sizeof why, &e), -1);
    assert_int_equal(e.code, EINVAL);
}

static void test_gpus_and_env(void **state)
{
    (void)state;
    static const int os[] = {0, 1, 2, 3};
    cpu_set_t aff = mask_of(os, 4);
    struct wrk_bind b;
    struct err e = {0};
    /* the worker itself sees 3 devices, named by its own CUDA_VISIBLE_DEVICES */
    assert_int_equal(wrk_bind_init(&b, 4, 3, true, &aff, "4,GPU-8a1f,6", NULL, 0, &e), 0);
    struct wrk_slot s1, s2, none;
    assert_int_equal(wrk_bind_take(&b, 1, 2, &s1, &e), 0);
    assert_int_equal(wrk_bind_take(&b, 1, 1, &s2, &e), 0);
    assert_int_equal(wrk_bind_take(&b, 1, 0, &none, &e), 0);
    assert_false(s1.shared || s2.shared || none.shared);
    char *cuda, *moat;
    assert_int_equal(wrk_bind_env(&b, &s1, &cuda, &moat, &e), 0);
    assert_string_equal(cuda, "CUDA_VISIBLE_DEVICES=4,GPU-8a1f");
    assert_string_equal(moat, "MOAT_GPUS=4,GPU-8a1f");
    free(cuda);
    free(moat);
    assert_int_equal(wrk_bind_env(&b, &s2, &cuda, &moat, &e), 0);
    assert_string_equal(cuda, "CUDA_VISIBLE_DEVICES=6");
    free(cuda);
    free(moat);
    /* asked for none on a GPU node: sees none */
    assert_int_equal(wrk_bind_env(&b, &none, &cuda, &moat, &e), 0);
    assert_string_equal(cuda, "CUDA_VISIBLE_DEVICES=");
    assert_string_equal(moat, "MOAT_GPUS=");
    free(cuda);
    free(moat);
    /* a fourth GPU asked: the least used is shared */
    struct wrk_slot s3;
    assert_int_equal(wrk_bind_take(&b, 1, 1, &s3, &e), 0);
    assert_true(s3.shared);
    wrk_bind_give(&b, &s1);
    wrk_bind_give(&b, &s2);
    wrk_bind_give(&b, &s3);
    wrk_bind_give(&b, &none);
    for (int g = 0; g < 3; g++)
        assert_int_equal(b.gpu_users[g], 0);
    wrk_bind_free(&b);

    /* no CUDA_VISIBLE_DEVICES: by index; a shorter one than gpus is refused
     * (a second "GPU" would be one the worker was not given) */
    assert_int_equal(wrk_bind_init(&b, 1, 2, false, &aff, "", NULL, 0, &e), 0);
    assert_string_equal(b.gpu[0], "0");
    assert_string_equal(b.gpu[1], "1");
    wrk_bind_free(&b);
    assert_int_equal(wrk_bind_init(&b, 1, 2, false, &aff, "3", NULL, 0, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_non_null(strstr(e.msg, "CUDA_VISIBLE_DEVICES"));
    assert_null(b.gpu);

    /* gpus = 0 where CUDA sees devices: tasks see none */
    assert_int_equal(wrk_bind_init(&b, 1, 0, false, &aff, NULL, NULL, 0, &e), 0);
    b.hide_gpus = true;
    assert_int_equal(wrk_bind_take(&b, 1, 0, &s1, &e), 0);
    assert_int_equal(wrk_bind_env(&b, &s1, &cuda, &moat, &e), 0);
    assert_string_equal(cuda, "CUDA_VISIBLE_DEVICES=");
    free(cuda);
    free(moat);
    wrk_bind_give(&b, &s1);
    wrk_bind_free(&b);

    /* a node without GPUs leaves the environment alone */
    assert_int_equal(wrk_bind_init(&b, 1, 0, false, &aff, NULL, NULL, 0, &e), 0);
    assert_int_equal(wrk_bind_take(&b, 1, 1, &s1, &e), 0);
    assert_int_equal(s1.ngpus, 0);
    assert_int_equal(wrk_bind_env(&b, &s1, &cuda, &moat, &e), 0);
    assert_null(cuda);
    assert_null(moat);
    wrk_bind_give(&b, &s1);
    wrk_bind_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpus_own_then_shared),
        cmocka_unit_test(test_no_pin),
        cmocka_unit_test(test_gpus_and_env),
    };
    return cmocka_run_group_tests_name("bind", tests, NULL, NULL);
}
