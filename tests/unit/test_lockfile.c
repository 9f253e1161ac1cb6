/* test_lockfile.c: shared/lockfile: one holder per file, the holder's pid in
 * the refusal, the lock gone with its holder (kill -9 too), bad arguments. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "shared/lockfile.h"

static char root[] = "/tmp/moat-test-lockfile-XXXXXX";

static int setup(void **state)
{
    (void)state;
    return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

static long file_pid(const char *path)
{
    FILE *f = fopen(path, "r");
    long pid = -1;
    if (f && fscanf(f, "%ld", &pid) != 1)
        pid = -1;
    if (f)
        fclose(f);
    return pid;
}

/* lockfile_acquire creates the missing directories, writes the pid; a second
 * acquire of the same file (this process too) fails with EWOULDBLOCK naming
 * the holder; after release it succeeds again. */
static void second_acquire_refused_with_holder_pid(void **state)
{
    (void)state;
    char dir[256], path[300];
    snprintf(dir, sizeof dir, "%s/a/b/state", root);
    snprintf(path, sizeof path, "%s/x.lock", dir);
    struct err e = {0};
    long holder = -1;
    lockfile_t *l = lockfile_acquire(dir, "x.lock", &holder, &e);
    assert_non_null(l);
    assert_int_equal(holder, 0);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(file_pid(path), (long)getpid());

    lockfile_t *again = lockfile_acquire(dir, "x.lock", &holder, &e);
    assert_null(again);
    assert_int_equal(e.code, EWOULDBLOCK);
    assert_int_equal(holder, (long)getpid());
    assert_non_null(strstr(e.msg, path));
    /* another name in the same directory is another lock */
    lockfile_t *other = lockfile_acquire(dir, "y.lock", NULL, &e);
    assert_non_null(other);
    lockfile_release(other);

    lockfile_release(l);
    l = lockfile_acquire(dir, "x.lock", &holder, &e);
    assert_non_null(l);
    lockfile_release(l);
    lockfile_release(NULL);
}

/* A holder killed with SIGKILL leaves its file with its pid, but no lock: the
 * next one takes it (a restart after kill -9 is not refused). */
static void lock_dies_with_its_holder(void **state)
{
    (void)state;
    char dir[256];
    snprintf(dir, sizeof dir, "%s/killed", root);
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        struct err ce = {0};
        lockfile_t *cl = lockfile_acquire(dir, "d.lock", NULL, &ce);
        char c = cl ? 'y' : 'n';
        (void)!write(p[1], &c, 1);
        pause();
        _exit(0);
    }
    close(p[1]);
    char c = 0;
    assert_int_equal(read(p[0], &c, 1), 1);
    close(p[0]);
    assert_int_equal(c, 'y');
    struct err e = {0};
    long holder = 0;
    assert_null(lockfile_acquire(dir, "d.lock", &holder, &e));
    assert_int_equal(e.code, EWOULDBLOCK);
    assert_int_equal(holder, (long)child);
    kill(child, SIGKILL);
    assert_int_equal(waitpid(child, NULL, 0), child);
    lockfile_t *l = lockfile_acquire(dir, "d.lock", &holder, &e);
    assert_non_null(l);
    lockfile_release(l);
}

/* Bad arguments and a directory that cannot be made fail with a message
 * naming the path; nothing is created. */
static void bad_arguments_and_unmakeable_directory(void **state)
{
    (void)state;
    struct err e = {0};
    assert_null(lockfile_acquire(NULL, "x.lock", NULL, &e));
    assert_int_equal(e.code, EINVAL);
    assert_null(lockfile_acquire(root, "", NULL, &e));
    assert_int_equal(e.code, EINVAL);
    assert_null(lockfile_acquire(root, "../x.lock", NULL, &e));
    assert_int_equal(e.code, EINVAL);
    char file[256], dir[300];
    snprintf(file, sizeof file, "%s/plain", root);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(dir, sizeof dir, "%s/sub", file);
    assert_null(lockfile_acquire(dir, "x.lock", NULL, &e));
    assert_int_equal(e.code, ENOTDIR);
    assert_non_null(strstr(e.msg, dir));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(second_acquire_refused_with_holder_pid),
        cmocka_unit_test(lock_dies_with_its_holder),
        cmocka_unit_test(bad_arguments_and_unmakeable_directory),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
