/* test_sandbox.c: the sandbox's privilege drop in a clone of a busy,
 * multi-threaded process (worker/wrk_sandbox.h). */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "worker/wrk_sandbox.h"

static atomic_bool stop;

static void *nothing(void *arg)
{
    return arg;
}

/* churn: threads born and joined all the time, as ZeroMQ's and the worker's are */
static void *churn(void *arg)
{
    while (!atomic_load(&stop)) {
        pthread_t t;
        if (pthread_create(&t, NULL, nothing, NULL) == 0)
            pthread_join(t, NULL);
    }
    return arg;
}

static char stack[64 * 1024];

static int child(void *arg)
{
    (void)arg;
    /* our own ids: allowed as root, EPERM otherwise; either way it must return */
    const char *failed = wrk_sandbox_drop_ids(getuid(), getgid());
    _exit(failed == NULL ? 0 : errno == EPERM ? 1 : 2);
}

/* A clone (what the sandbox's init and command are) dropping its ids while
 * other threads come and go: glibc's setgroups/setres[ug]id wrappers wait in
 * the clone for the parent's threads and hung most such clones; the raw
 * system calls do not. Each clone gets 2 s; none may hang. */
static void drop_ids_in_a_clone_of_a_busy_process_never_hangs(void **state)
{
    (void)state;
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, churn, NULL), 0);
    int hung = 0, bad = 0;
    for (int i = 0; i < 300 && hung == 0; i++) {
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pid_t pid = clone(child, stack + sizeof stack, SIGCHLD, NULL);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        assert_true(pid > 0);
        int st = 0, k = 0;
        struct timespec ms = {0, 1000000};
        for (; k < 2000 && waitpid(pid, &st, WNOHANG) != pid; k++)
            nanosleep(&ms, NULL);
        if (k == 2000) {
            hung++;
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
        } else if (!WIFEXITED(st) || WEXITSTATUS(st) > 1) {
            bad++;
        }
    }
    atomic_store(&stop, true);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(hung, 0);
    assert_int_equal(bad, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(drop_ids_in_a_clone_of_a_busy_process_never_hangs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
