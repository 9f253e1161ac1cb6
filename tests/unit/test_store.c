/* test_store.c: the LMDB store: keys, versioned values, EEXIST, map full and growth. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cmocka.h>

#include "shared/store.h"

static char dir[64];

static void cleanup(void)
{
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static store_t *fresh(uint64_t size, uint64_t max)
{
    snprintf(dir, sizeof dir, "/tmp/moat-test-store-XXXXXX");
    assert_non_null(mkdtemp(dir));
    struct err e = {0};
    store_t *st = store_open(dir, size, max, &e);
    if (st == NULL)
        fail_msg("open: %s", e.msg);
    return st;
}

static void keys_sort_numerically(void **state)
{
    (void)state;
    uint8_t a[12], b[12];
    store_key_task(a, 255, 7);
    store_key_task(b, 256, 0);
    assert_true(memcmp(a, b, 12) < 0);
    assert_true(store_key_get64(a) == 255);
    assert_true(store_key_get32(a + 8) == 7);
}

static void put_get_and_no_double_store(void **state)
{
    (void)state;
    store_t *st = fresh(1 << 20, 1 << 20);
    struct err e = {0};
    uint8_t k[12];
    size_t kl = store_key_task(k, 1, 2);
    void *v;
    size_t vl;
    assert_int_equal(store_get(st, STORE_DB_RESULTS, k, kl, &v, &vl, &e), -1);
    assert_int_equal(e.code, ENOENT);
    assert_int_equal(store_put(st, STORE_DB_RESULTS, k, kl, "x", 1, 0, &e), -1); /* no batch */
    assert_int_equal(e.code, EINVAL);
    assert_int_equal(store_begin(st, &e), 0);
    assert_int_equal(store_begin(st, &e), -1);
    assert_int_equal(e.code, EBUSY);
    assert_int_equal(store_put_new(st, STORE_DB_RESULTS, k, kl, "first", 5, &e), 0);
    assert_int_equal(store_put_new(st, STORE_DB_RESULTS, k, kl, "second", 6, &e), -1);
    assert_int_equal(e.code, EEXIST);
    assert_int_equal(store_commit(st, &e), 0);
    assert_int_equal(store_get(st, STORE_DB_RESULTS, k, kl, &v, &vl, &e), 0);
    assert_int_equal(vl, 5);
    assert_memory_equal(v, "first", 5);
    free(v);
    /* an aborted batch leaves nothing */
    uint8_t k2[8];
    assert_int_equal(store_begin(st, &e), 0);
    assert_int_equal(store_put(st, STORE_DB_JOBS, k2, store_key_job(k2, 9), "y", 1, 0, &e), 0);
    store_abort(st);
    assert_int_equal(store_get(st, STORE_DB_JOBS, k2, 8, &v, &vl, &e), -1);
    store_close(st);
    cleanup();
}

static void full_map_fails_cleanly_then_grows(void **state)
{
    (void)state;
    store_t *st = fresh(1 << 20, 4 << 20);
    struct err e = {0};
    char val[4000];
    memset(val, 'v', sizeof val);
    uint64_t committed = 0, id = 1;
    int full = 0;
    /* fill in batches of 16 until a put fails: it must be ENOSPC, not a crash */
    while (!full) {
        assert_int_equal(store_begin(st, &e), 0);
        for (int i = 0; i < 16; i++) {
            uint8_t k[8];
            if (store_put(st, STORE_DB_JOBS, k, store_key_job(k, id + (uint64_t)i), val, sizeof val, 1, &e) != 0) {
                assert_int_equal(e.code, ENOSPC);
                full = 1;
                break;
            }
        }
        if (full) {
            store_abort(st);
        } else {
            assert_int_equal(store_commit(st, &e), 0);
            id += 16;
            committed = id - 1;
        }
    }
    assert_true(committed > 0);
    /* everything committed before is intact */
    uint8_t k[8];
    void *v;
    size_t vl;
    assert_int_equal(store_get(st, STORE_DB_JOBS, k, store_key_job(k, committed), &v, &vl, &e), 0);
    assert_int_equal(vl, sizeof val);
    free(v);
    /* grow to the maximum, then refuse to go further */
    while (store_map_size(st) < (4 << 20))
        assert_int_equal(store_grow(st, &e), 0);
    assert_int_equal(store_grow(st, &e), -1);
    assert_int_equal(e.code, ENOSPC);
    assert_non_null(strstr(e.msg, "store_map_max"));
    assert_int_equal(store_begin(st, &e), 0);
    assert_int_equal(store_put(st, STORE_DB_JOBS, k, store_key_job(k, committed + 1), val, sizeof val, 1, &e), 0);
    assert_int_equal(store_commit(st, &e), 0);
    store_close(st);
    /* reopen: the data and the grown map are there */
    st = store_open(dir, 1 << 20, 4 << 20, &e);
    assert_non_null(st);
    assert_int_equal(store_get(st, STORE_DB_JOBS, k, store_key_job(k, committed + 1), &v, &vl, &e), 0);
    free(v);
    store_close(st);
    cleanup();
}

static void bad_dir(void **state)
{
    (void)state;
    struct err e = {0};
    assert_null(store_open("/proc/moat-cannot-be-here", 1 << 20, 1 << 20, &e));
    assert_int_not_equal(e.code, 0);
    assert_non_null(strstr(e.msg, "/proc/moat-cannot-be-here"));
}

/* A commit on a full disk says so and names the directory (LMDB itself says
 * "Input/output error" for the short write). Needs a 3 MiB tmpfs of its own:
 * skipped where this process may not mount one in a namespace of its own. */
static void full_disk_is_named(void **state)
{
    (void)state;
    char dir[] = "/tmp/moat-test-fullXXXXXX";
    assert_non_null(mkdtemp(dir));
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("tmpfs", dir, "tmpfs", 0, "size=3m") != 0) {
        rmdir(dir);
        printf("SKIP full_disk_is_named: cannot mount a tmpfs here (%s)\n", strerror(errno));
        skip();
    }
    char path[64];
    snprintf(path, sizeof path, "%s/s", dir);
    struct err e = {0};
    store_t *st = store_open(path, 1 << 20, 64 << 20, &e);
    assert_non_null(st);
    static char val[100000];
    memset(val, 'x', sizeof val);
    int rc = 0;
    for (int i = 0; i < 100 && rc == 0; i++) {
        char k[16];
        int kl = snprintf(k, sizeof k, "k%03d", i);
        assert_int_equal(store_begin(st, &e), 0);
        rc = store_put(st, STORE_DB_JOBS, k, (size_t)kl, val, sizeof val, 0, &e);
        if (rc == 0)
            rc = store_commit(st, &e);
        else
            store_abort(st);
    }
    assert_int_equal(rc, -1);
    assert_int_equal(e.code, ENOSPC);
    assert_non_null(strstr(e.msg, "is full"));
    assert_non_null(strstr(e.msg, path));
    store_close(st);
    umount(dir);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keys_sort_numerically),
        cmocka_unit_test(put_get_and_no_double_store),
        cmocka_unit_test(full_map_fails_cleanly_then_grows),
        cmocka_unit_test(bad_dir),
        cmocka_unit_test(full_disk_is_named),
    };
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
