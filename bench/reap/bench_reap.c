/* bench_reap.c: bench-reap: what starting an unsandboxed task under its
 * reaper costs, against starting the bare command.
 *
 * The scheduler's exec jobs/s on a small node is bound by CPU per launch
 * (bench/sched.c); this isolates the reaper's share. Two ways to run CMD
 * (default `true`, looked up in PATH) N times, one at a time, each waited for:
 *   bare:    clone(CLONE_VM | CLONE_VFORK) + execvpe of CMD and nothing
 *            else: the reference (the worker's spawn before there was a
 *            reaper also reset signals, set the group and parent-death
 *            signal, opened /dev/null and changed directory, so the ratio
 *            overstates the reaper's cost by those few calls);
 *   service: through the reaper service (worker/wrk_reaper.h): a request,
 *            a CLONE_VM copy of the service as the task's reaper, which
 *            starts CMD, waits and reaps (what the worker does now).
 * CPU time (this process and its waited-for children: getrusage) and wall
 * time per launch; the ways alternate for R rounds (which goes first
 * alternating too) so that noise hits both alike, the median round kept. One JSON object per way on stdout: {bench,
 * case, launches, cpu_ms_per_launch, wall_ms_per_launch, cpu_ratio_to_bare}.
 * N.B. the service's own CPU counts once it has exited (at the end of each
 * round), so its share is in the service figure.
 * Usage: bench-reap [--n N] [--rounds R] [--reap PATH] [CMD ARG...]
 *   N: launches per way and round (default 2000); R: rounds (default 3);
 *   PATH: the service (default: moat-reap beside this program).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "worker/wrk_reap.h"
#include "worker/wrk_reaper.h"

extern char **environ;

static double cpu_s(void)
{
    struct rusage self, kids;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &kids);
    return (double)(self.ru_utime.tv_sec + self.ru_stime.tv_sec + kids.ru_utime.tv_sec +
                    kids.ru_stime.tv_sec) +
           1e-6 * (double)(self.ru_utime.tv_usec + self.ru_stime.tv_usec + kids.ru_utime.tv_usec +
                           kids.ru_stime.tv_usec);
}

static double wall_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static char **cmd;
static int devnull;

static int bare_child(void *arg)
{
    (void)arg;
    dup2(devnull, 1);
    dup2(devnull, 2);
    execvpe(cmd[0], cmd, environ);
    _exit(127);
}

/* one round of n launches one way; CPU and wall seconds per launch */
static int round_of(int service, int n, const char *reap, double *cpu, double *wall)
{
    static char *stack;
    if (stack == NULL && (stack = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE,
                                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0)) == MAP_FAILED)
        return -1;
    struct wrk_reaper r;
    wrk_reaper_init(&r, reap);
    double c0 = cpu_s(), w0 = wall_s();
    for (int i = 0; i < n; i++) {
        pid_t pid;
        if (service) {
            int stage, errnum;
            struct err e = {0};
            pid = wrk_reaper_launch(&r, cmd, environ, "/", NULL, devnull, devnull, &stage, &errnum, &e);
            if (pid < 0 || stage != WRK_REAP_STARTED) {
                fprintf(stderr, "bench-reap: launch: %s\n", pid < 0 ? e.msg : strerror(errnum));
                return -1;
            }
        } else {
            pid = clone(bare_child, stack + (1 << 16), CLONE_VM | CLONE_VFORK | SIGCHLD, NULL);
        }
        int st;
        if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "bench-reap: %s did not exit 0\n", cmd[0]);
            return -1;
        }
    }
    if (service) { /* its own CPU time counts once it is waited for */
        wrk_reaper_stop(&r);
        if (r.pid > 0)
            waitpid(r.pid, NULL, 0);
    }
    *cpu = (cpu_s() - c0) / n;
    *wall = (wall_s() - w0) / n;
    return 0;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int n = 2000, rounds = 3, i = 1;
    char reap[700] = "";
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--n") == 0 && i + 1 < argc)
            n = atoi(argv[++i]);
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--reap") == 0 && i + 1 < argc)
            snprintf(reap, sizeof reap, "%s", argv[++i]);
        else {
            fprintf(stderr, "usage: bench-reap [--n N] [--rounds R] [--reap PATH] [CMD ARG...]\n");
            return 2;
        }
    }
    if (n < 1 || rounds < 1 || rounds > 99) {
        fprintf(stderr, "bench-reap: --n must be >= 1 and --rounds 1..99\n");
        return 2;
    }
    static char *dflt[] = {"true", NULL};
    cmd = i < argc ? argv + i : dflt;
    if (reap[0] == '\0') {
        char self[600];
        ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
        self[k > 0 ? k : 0] = '\0';
        char *slash = strrchr(self, '/');
        snprintf(reap, sizeof reap, "%.*s/moat-reap", slash ? (int)(slash - self) : 1,
                 slash ? self : ".");
    }
    if ((devnull = open("/dev/null", O_WRONLY | O_CLOEXEC)) < 0)
        return 1;
    double cpu[2][99], wall[2][99];
    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < 2; k++) {
            int way = k ^ (r & 1);
            if (round_of(way, n, reap, &cpu[way][r], &wall[way][r]) != 0)
                return 1;
        }
    double med_cpu[2], med_wall[2];
    for (int way = 0; way < 2; way++) {
        qsort(cpu[way], (size_t)rounds, sizeof(double), by_value);
        qsort(wall[way], (size_t)rounds, sizeof(double), by_value);
        med_cpu[way] = cpu[way][rounds / 2];
        med_wall[way] = wall[way][rounds / 2];
    }
    for (int way = 0; way < 2; way++)
        printf("{\"bench\":\"reap\",\"case\":\"%s\",\"command\":\"%s\",\"launches\":%d,"
               "\"cpu_ms_per_launch\":%.4f,\"wall_ms_per_launch\":%.4f,\"cpu_ratio_to_bare\":%.3f}\n",
               way ? "service" : "bare", cmd[0], n * rounds, 1e3 * med_cpu[way], 1e3 * med_wall[way],
               med_cpu[way] / med_cpu[0]);
    return 0;
}
