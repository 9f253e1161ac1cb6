/* test_reap.c: the reaper service and its per-task reapers (worker/wrk_reap.h,
 * wrk_reap_task.c, wrk_reaper.c), driven as the worker drives them, this test
 * being the worker: bin/moat-reap (MOAT_BIN overrides bin/) is started and the
 * task reapers are this process's children.
 *
 * The request parser refuses every malformed request; a task's exit code,
 * signal, output and "cannot execute" reach the parent as the command's; the
 * command is looked up in the task's PATH, not the parent's, and a script
 * without #! runs with /bin/sh; a setup failure is told apart; leftovers die
 * with the task; forty tasks at once and then forty more (reused regions)
 * each end as they should; a request larger than a standard region works;
 * the command dies with a reaper killed under it; a killed service is
 * replaced on the next launch, seen to end or not; one that does not answer
 * in time is killed and replaced. A worker's death killing
 * its tasks is tested end to end in tests/integration/test_cluster_faults.py.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdbool.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "worker/wrk_reap.h"
#include "worker/wrk_reaper.h"

static struct wrk_reaper reaper;

static int setup(void **state)
{
    (void)state;
    const char *bin = getenv("MOAT_BIN");
    char path[600];
    snprintf(path, sizeof path, "%s/moat-reap", bin ? bin : "bin");
    wrk_reaper_init(&reaper, path);
    return access(path, X_OK);
}

static int teardown(void **state)
{
    (void)state;
    wrk_reaper_stop(&reaper);
    if (reaper.pid > 0)
        waitpid(reaper.pid, NULL, 0);
    return 0;
}

/* a request body: cwd, argv, envp as the wire has them */
static size_t body_of(char *out, const char *cwd, const char *const *argv, const char *const *envp,
                      struct wrk_reap_head *h)
{
    size_t n = 0;
    memset(h, 0, sizeof *h);
    h->magic = WRK_REAP_MAGIC;
    n += (size_t)sprintf(out + n, "%s", cwd) + 1;
    for (; argv[h->argc]; h->argc++)
        n += (size_t)sprintf(out + n, "%s", argv[h->argc]) + 1;
    for (; envp[h->envc]; h->envc++)
        n += (size_t)sprintf(out + n, "%s", envp[h->envc]) + 1;
    h->body_len = (uint32_t)n;
    return n;
}

static void test_parse(void **state)
{
    (void)state;
    char body[256], *argv[4], *envp[4];
    const char *cwd;
    struct wrk_reap_head h;
    const char *a[] = {"echo", "hi", NULL}, *e[] = {"PATH=/bin", NULL};
    body_of(body, "/tmp", a, e, &h);
    assert_int_equal(wrk_reap_parse(&h, body, &cwd, argv, envp), 0);
    assert_string_equal(cwd, "/tmp");
    assert_string_equal(argv[0], "echo");
    assert_string_equal(argv[1], "hi");
    assert_null(argv[2]);
    assert_string_equal(envp[0], "PATH=/bin");
    assert_null(envp[1]);
    /* each one malformed */
    struct wrk_reap_head bad = h;
    bad.magic ^= 1;
    assert_int_equal(wrk_reap_parse(&bad, body, &cwd, argv, envp), -1);
    bad = h;
    bad.argc = 0;
    bad.envc = 2;
    assert_int_equal(wrk_reap_parse(&bad, body, &cwd, argv, envp), -1); /* no command */
    bad = h;
    bad.argc = 3; /* one string too many asked */
    assert_int_equal(wrk_reap_parse(&bad, body, &cwd, argv, envp), -1);
    bad = h;
    bad.body_len -= 1; /* the last string unterminated */
    assert_int_equal(wrk_reap_parse(&bad, body, &cwd, argv, envp), -1);
    bad = h;
    bad.envc = WRK_REAP_STRINGS_MAX;
    assert_int_equal(wrk_reap_parse(&bad, body, &cwd, argv, envp), -1);
    bad = h;
    bad.body_len = WRK_REAP_BODY_MAX + 1;
    assert_int_equal(wrk_reap_parse(&bad, body, &cwd, argv, envp), -1);
    const char *noeq[] = {"PATH", NULL}, *empty[] = {"", NULL}, *none[] = {NULL};
    body_of(body, "/tmp", a, noeq, &h);
    assert_int_equal(wrk_reap_parse(&h, body, &cwd, argv, envp), -1);
    body_of(body, "", a, none, &h);
    assert_int_equal(wrk_reap_parse(&h, body, &cwd, argv, envp), -1);
    body_of(body, "/tmp", empty, none, &h);
    assert_int_equal(wrk_reap_parse(&h, body, &cwd, argv, envp), -1);
}

struct run {
    pid_t pid;
    int out, err; /* read ends */
    int stage, errnum;
};

/* start: argv with envp in cwd through the service; asserts it launched */
static struct run start(const char *cwd, char *const *argv, char *const *envp)
{
    struct run r = {0};
    int o[2], e[2];
    assert_int_equal(pipe2(o, O_CLOEXEC), 0);
    assert_int_equal(pipe2(e, O_CLOEXEC), 0);
    struct err er = {0};
    r.pid = wrk_reaper_launch(&reaper, argv, envp, cwd, NULL, o[1], e[1], &r.stage, &r.errnum, &er);
    if (r.pid < 0)
        fail_msg("launch: %s", er.msg);
    close(o[1]);
    close(e[1]);
    r.out = o[0];
    r.err = e[0];
    return r;
}

static char *slurp(int fd)
{
    static char buf[2][4096];
    static int which;
    char *b = buf[which ^= 1];
    size_t n = 0;
    ssize_t k;
    while (n < sizeof buf[0] - 1 && (k = read(fd, b + n, sizeof buf[0] - 1 - n)) > 0)
        n += (size_t)k;
    b[n] = '\0';
    close(fd);
    return b;
}

/* finish: the task's status; its stdout and stderr into out/err */
static int finish(struct run *r, char **out, char **err)
{
    int status;
    char *o = slurp(r->out), *e = slurp(r->err);
    assert_int_equal(waitpid(r->pid, &status, 0), r->pid);
    if (out)
        *out = o;
    if (err)
        *err = e;
    return status;
}

static char *base_env[] = {"PATH=/usr/bin:/bin", NULL};

static void test_status_output_signal(void **state)
{
    (void)state;
    char *out, *err;
    char *a1[] = {"sh", "-c", "echo out; echo err >&2; exit 3", NULL};
    struct run r = start("/tmp", a1, base_env);
    assert_int_equal(r.stage, WRK_REAP_STARTED);
    int st = finish(&r, &out, &err);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 3);
    assert_string_equal(out, "out\n");
    assert_string_equal(err, "err\n");
    /* the task's own process group: pgid == the reaper's pid; the reaper
     * is CMD's parent and is named so */
    char *a2[] = {"sh", "-c", "ps -o pgid= -p $$ | tr -d ' '; cat /proc/$PPID/comm; echo $PPID", NULL};
    r = start("/tmp", a2, base_env);
    pid_t pid = r.pid;
    st = finish(&r, &out, NULL);
    char want[64];
    snprintf(want, sizeof want, "%d\nmoat-reaper\n%d\n", (int)pid, (int)pid);
    assert_string_equal(out, want);
    /* the reaper ($PPID) holds the task's stdin, stdout and stderr, nothing
     * of the service's */
    /* CMD's own: 0-2 and ls's directory, no socket of the service's */
    char *a6[] = {"sh", "-c", "ls /proc/self/fd | sort | tr '\\n' ' '", NULL};
    r = start("/tmp", a6, base_env);
    finish(&r, &out, NULL);
    assert_string_equal(out, "0 1 2 3 ");
    if (geteuid() == 0) { /* the reaper is not dumpable: its fds are root's to see */
        char *a5[] = {"sh", "-c", "ls /proc/$PPID/fd | sort | tr '\\n' ' '", NULL};
        r = start("/tmp", a5, base_env);
        finish(&r, &out, NULL);
        assert_string_equal(out, "0 1 2 ");
    }
    char *a3[] = {"sh", "-c", "kill -TERM $$", NULL};
    r = start("/tmp", a3, base_env);
    st = finish(&r, NULL, NULL);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGTERM);
    char *a7[] = {"sh", "-c", "kill -SEGV $$", NULL}; /* one that dumps core */
    r = start("/tmp", a7, base_env);
    st = finish(&r, NULL, NULL);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGSEGV);
    char *a4[] = {"moat-no-such-command", NULL};
    r = start("/tmp", a4, base_env);
    st = finish(&r, &out, &err);
    assert_int_equal(WEXITSTATUS(st), 127);
    assert_string_equal(err, "moat: cannot execute moat-no-such-command: No such file or directory\n");
}

static void test_task_path_and_scripts(void **state)
{
    (void)state;
    char dir[] = "/tmp/moat-test-reap-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[200], env[240];
    snprintf(path, sizeof path, "%s/moat-hello", dir);
    FILE *f = fopen(path, "w");
    fputs("#!/bin/sh\necho hello from $0\n", f);
    fclose(f);
    chmod(path, 0755);
    snprintf(path, sizeof path, "%s/moat-nobang", dir);
    f = fopen(path, "w");
    fputs("echo no bang $1\n", f);
    fclose(f);
    chmod(path, 0755);
    snprintf(env, sizeof env, "PATH=/nonexistent:%s:/usr/bin:/bin", dir);
    char *envp[] = {env, NULL}, *out;
    char *a1[] = {"moat-hello", NULL};
    struct run r = start("/tmp", a1, envp);
    assert_int_equal(WEXITSTATUS(finish(&r, &out, NULL)), 0);
    snprintf(path, sizeof path, "hello from %s/moat-hello\n", dir);
    assert_string_equal(out, path);
    /* not in the parent's PATH: the task's decides */
    r = start("/tmp", a1, base_env);
    assert_int_equal(WEXITSTATUS(finish(&r, NULL, NULL)), 127);
    char *a2[] = {"moat-nobang", "x", NULL};
    r = start("/tmp", a2, envp);
    assert_int_equal(WEXITSTATUS(finish(&r, &out, NULL)), 0);
    assert_string_equal(out, "no bang x\n");
    /* the task's directory */
    char *a3[] = {"pwd", NULL};
    r = start(dir, a3, base_env);
    finish(&r, &out, NULL);
    snprintf(path, sizeof path, "%s\n", dir);
    assert_string_equal(out, path);
    snprintf(path, sizeof path, "rm -r %s", dir);
    assert_int_equal(system(path), 0);
}

static void test_setup_failure(void **state)
{
    (void)state;
    char *a[] = {"true", NULL};
    struct run r = start("/nonexistent/moat", a, base_env);
    assert_int_equal(r.stage, WRK_REAP_SETUP);
    assert_int_equal(r.errnum, ENOENT);
    assert_int_equal(WEXITSTATUS(finish(&r, NULL, NULL)), 127);
}

static void test_leftovers_die(void **state)
{
    (void)state;
    char *out;
    char *a[] = {"sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!; "
                             "setsid sleep 60 >/dev/null 2>&1 & echo $!", NULL};
    struct run r = start("/tmp", a, base_env);
    assert_int_equal(WEXITSTATUS(finish(&r, &out, NULL)), 0);
    pid_t p1 = (pid_t)strtol(out, &out, 10), p2 = (pid_t)strtol(out, NULL, 10);
    assert_true(p1 > 0 && p2 > 0);
    assert_int_equal(kill(p1, 0), -1); /* killed and reaped by the reaper before it ended */
    assert_int_equal(kill(p2, 0), -1);
}

static void test_many_at_once(void **state)
{
    (void)state;
    enum { N = 40 };
    for (int round = 0; round < 2; round++) {
        struct run r[N];
        char code[N][12];
        for (int i = 0; i < N; i++) {
            snprintf(code[i], sizeof code[i], "%d", (i * 7 + round) % 100);
            char *a[] = {"sh", "-c", "sleep 0.2; echo $0; exit $0", code[i], NULL};
            r[i] = start("/tmp", a, base_env);
        }
        for (int i = 0; i < N; i++) {
            char *out;
            int st = finish(&r[i], &out, NULL);
            assert_int_equal(WEXITSTATUS(st), (i * 7 + round) % 100);
            assert_int_equal(atoi(out), (i * 7 + round) % 100);
        }
    }
}

static void test_large_request(void **state)
{
    (void)state;
    /* 4 x 100 KiB of environment: over a standard region (256 KiB), each
     * string under execve's 128 KiB (MAX_ARG_STRLEN) */
    size_t n = 100 * 1024;
    char *big[4], *envp[6] = {"PATH=/usr/bin:/bin"}, *out;
    for (int i = 0; i < 4; i++) {
        big[i] = malloc(n + 8);
        memcpy(big[i], "BIG0=", 5);
        big[i][3] = (char)('0' + i);
        memset(big[i] + 5, 'a' + i, n);
        big[i][5 + n] = '\0';
        envp[i + 1] = big[i];
    }
    envp[5] = NULL;
    char *a[] = {"sh", "-c", "echo $((${#BIG0} + ${#BIG1} + ${#BIG2} + ${#BIG3}))", NULL};
    struct run r = start("/tmp", a, envp);
    assert_int_equal(WEXITSTATUS(finish(&r, &out, NULL)), 0);
    assert_string_equal(out, "409600\n");
    for (int i = 0; i < 4; i++)
        free(big[i]);
    /* and a small one after it */
    char *b[] = {"true", NULL};
    r = start("/tmp", b, base_env);
    assert_int_equal(WEXITSTATUS(finish(&r, NULL, NULL)), 0);
}

/* gone_or_zombie: pid has ended (init may not have reaped it yet) */
static bool gone_or_zombie(pid_t pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return true;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

static void test_command_dies_with_its_reaper(void **state)
{
    (void)state;
    /* not the normal course (the reaper outlives CMD): an OOM kill, say */
    char *a[] = {"sleep", "30", NULL};
    struct run r = start("/tmp", a, base_env);
    char path[80], buf[64] = {0};
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)r.pid, (int)r.pid);
    pid_t cmd = 0;
    for (int i = 0; i < 200 && cmd <= 0; i++) {
        FILE *f = fopen(path, "r");
        if (f && fgets(buf, sizeof buf, f))
            cmd = (pid_t)atoi(buf);
        if (f)
            fclose(f);
        if (cmd <= 0)
            usleep(10000);
    }
    assert_true(cmd > 0);
    int st;
    assert_int_equal(kill(r.pid, SIGKILL), 0);
    assert_int_equal(waitpid(r.pid, &st, 0), r.pid);
    bool dead = false;
    for (int i = 0; i < 200 && !dead; i++) {
        dead = gone_or_zombie(cmd);
        if (!dead)
            usleep(10000);
    }
    assert_true(dead);
    close(r.out);
    close(r.err);
}

static void test_service_replaced(void **state)
{
    (void)state;
    char *a[] = {"sh", "-c", "echo started; sleep 0.3; echo done", NULL}, *out;
    struct run r = start("/tmp", a, base_env);
    /* killed only once the task runs: a service killed between its answer
     * and its "go" fails the task (wrk_reap.h) */
    char line[9] = {0};
    assert_int_equal(read(r.out, line, 8), 8);
    assert_string_equal(line, "started\n");
    pid_t old = reaper.pid;
    assert_true(old > 0);
    int status;
    assert_int_equal(kill(old, SIGKILL), 0);
    assert_int_equal(waitpid(old, &status, 0), old);
    assert_true(wrk_reaper_ended(&reaper, old, status));
    assert_false(wrk_reaper_ended(&reaper, old, status));
    /* the running task is not the service's: it ends as it would have */
    assert_int_equal(WEXITSTATUS(finish(&r, &out, NULL)), 0);
    assert_string_equal(out, "done\n");
    char *b[] = {"true", NULL};
    r = start("/tmp", b, base_env);
    assert_true(reaper.pid > 0 && reaper.pid != old);
    assert_int_equal(WEXITSTATUS(finish(&r, NULL, NULL)), 0);
    /* killed and not yet seen to end: the launch's send fails, and it
     * starts another service once */
    old = reaper.pid;
    assert_int_equal(kill(old, SIGKILL), 0);
    assert_int_equal(waitpid(old, &status, 0), old);
    r = start("/tmp", b, base_env);
    assert_true(reaper.pid > 0 && reaper.pid != old);
    assert_int_equal(WEXITSTATUS(finish(&r, NULL, NULL)), 0);
}

static void test_service_that_does_not_answer(void **state)
{
    (void)state;
    char *b[] = {"true", NULL};
    struct run r = start("/tmp", b, base_env); /* a service runs */
    assert_int_equal(WEXITSTATUS(finish(&r, NULL, NULL)), 0);
    pid_t old = reaper.pid;
    assert_int_equal(kill(old, SIGSTOP), 0);
    reaper.reply_ms = 300;
    int o[2], stage, errnum;
    assert_int_equal(pipe2(o, O_CLOEXEC), 0);
    struct err e = {0};
    assert_int_equal(wrk_reaper_launch(&reaper, b, base_env, "/tmp", NULL, o[1], o[1], &stage,
                                       &errnum, &e), -1);
    assert_int_equal(e.code, ETIMEDOUT);
    assert_non_null(strstr(e.msg, "no answer in time"));
    close(o[0]);
    close(o[1]);
    int status;
    assert_int_equal(waitpid(old, &status, 0), old); /* killed */
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    wrk_reaper_ended(&reaper, old, status);
    reaper.reply_ms = 10000;
    r = start("/tmp", b, base_env);
    assert_true(reaper.pid != old);
    assert_int_equal(WEXITSTATUS(finish(&r, NULL, NULL)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_status_output_signal),
        cmocka_unit_test(test_task_path_and_scripts),
        cmocka_unit_test(test_setup_failure),
        cmocka_unit_test(test_leftovers_die),
        cmocka_unit_test(test_many_at_once),
        cmocka_unit_test(test_large_request),
        cmocka_unit_test(test_command_dies_with_its_reaper),
        cmocka_unit_test(test_service_replaced),
        cmocka_unit_test(test_service_that_does_not_answer),
    };
    return cmocka_run_group_tests_name("reap", tests, setup, teardown);
}
