/* test_bench_cublas.c: the cuBLAS reference of bench rows is dlopen'ed, not
 * linked: on a CUDA build libcublas must load and its calls resolve (no GPU
 * needed), and the worker must not have it among its libraries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bench/kernels/bench_cublas.h"

static void cublas_loads_on_demand(void **state)
{
    (void)state;
#ifdef KRN_TEST_CUBLAS
    assert_true(bench_cublas_loadable());
    assert_false(bench_cublas_install(NULL)); /* no backend: nothing installed */
    bench_cublas_remove();
#else
    assert_false(bench_cublas_loadable());
    print_message("skip: a build without CUDA has no cuBLAS reference\n");
    skip();
#endif
}

/* The worker and its rank processes do not load cuBLAS (~150 MiB resident). */
static void worker_does_not_link_cublas(void **state)
{
    (void)state;
    FILE *p = popen("ldd bin/moat-worker 2>&1", "r");
    if (p == NULL) {
        print_message("skip: cannot run ldd\n");
        skip();
    }
    char line[512];
    bool seen_any = false;
    while (fgets(line, sizeof line, p)) {
        seen_any |= strstr(line, "libc.so") != NULL;
        if (strstr(line, "libcublas"))
            fail_msg("bin/moat-worker links cuBLAS: %s", line);
    }
    pclose(p);
    if (!seen_any) {
        print_message("skip: bin/moat-worker not built or ldd gave nothing\n");
        skip();
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cublas_loads_on_demand),
        cmocka_unit_test(worker_does_not_link_cublas),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
