/* wrk_reap.h: the reaper that stands between the worker and an unsandboxed
 * exec task (exec_sandbox = "off"), so that the task's processes die with the
 * worker as a sandboxed task's die with its PID namespace.
 *
 * The worker starts `moat-reap --serve FD WORKER_PID` once (bin/moat-reap,
 * beside moat-worker; worker/reap/moat_reap.c; its handle is wrk_reaper.h):
 * a small service, libc only, that receives launch requests on the stream
 * socket FD and answers each with a per-task reaper (wrk_reap_task.h): a copy
 * of itself made by clone(2) with CLONE_VM (the service's memory, shared, not
 * copied: no page tables to copy or COW faults to take) and CLONE_PARENT (the
 * worker becomes its parent, so the worker waits for it, signals it and sees
 * its exit status as if it had started it itself), running on a stack of its
 * own. The reaper is the task's first process (its process group leader). It
 * sets itself up as the request says (CPUs, stdin from /dev/null, stdout and
 * stderr to the request's pipes, directory), makes itself a child subreaper
 * (prctl PR_SET_CHILD_SUBREAPER, Linux >= 3.4: orphaned descendants become
 * its children rather than init's), asks for SIGUSR1 when the worker dies
 * (PR_SET_PDEATHSIG), tells the service it is ready and waits for its "go"
 * (sent once the worker has the reaper's pid: a service that dies in between
 * leaves no task the worker does not know), starts CMD in the same process
 * group (the task's PATH searched, as execvpe(3) does), and waits:
 *  - CMD ends: every process still left of the task (its process tree, which
 *    as a subreaper holds CMD's orphans) is killed, and the reaper ends as CMD did
 *    (the same exit code, or the same signal), so the worker sees CMD's status;
 *  - the worker dies: the reaper kills the whole task the same way and exits.
 * Signals sent to the group (SIGTERM on cancel or time limit, or any the task
 * sends its own group) reach CMD directly; the reaper takes every catchable
 * one with sigwaitinfo and stays to collect CMD's status (SIGUSR1 counts as
 * the worker's death only when its parent changed). The worker's SIGKILL
 * after kill_grace goes to the task's whole tree (wrk_exec_kill).
 * A CMD that is not a binary (a script without #!) runs with /bin/sh, as
 * execvp does. A CMD that cannot be executed: "moat: cannot execute CMD: why"
 * on stderr, exit 127 (not found) or 126 (not executable), as a shell says it.
 *
 * Why a service: on a 2-vCPU VM, starting `true` bare costs ~0.65 ms of CPU;
 * an exec of moat-reap per task added ~0.8 ms more (glibc's start-up alone is
 * ~0.3 ms there, where CPUID traps), a service forking a reaper per task
 * ~0.5 ms (page tables, COW faults, TLB shootdowns), a service cloning one
 * with CLONE_VM ~0.3-0.45 ms (bench-reap; bench/results/sched-2026-11-30-reapsvc.md).
 * The service keeps no state between requests but the reapers' memory
 * regions, reused once the kernel has cleared a region's tids (the reaper
 * and its spawn child ended). It dies with the worker (PR_SET_PDEATHSIG
 * SIGKILL); a task's reaper does not need it once started.
 *
 * Limits, from the shared memory: the reapers and the service are one
 * memory to the kernel, so an OOM kill of any of them (small, so unlikely
 * beside the tasks) ends them all: each CMD dies with its reaper (it has
 * SIGKILL as its parent-death signal), but what CMD started runs on under
 * init, unseen (the worker fails those tasks). A service killed in the
 * moment between its answer and its "go" fails that task with exit 127 and
 * "moat: the reaper service ended before the task started" (not requeued).
 *
 * Wire format (native byte order; both ends are this build on one machine):
 * a request is struct wrk_reap_head, then head.body_len bytes holding cwd,
 * then argc arguments, then envc "NAME=VALUE" strings, each NUL-terminated;
 * its first byte carries two descriptors in an SCM_RIGHTS message (unix(7)):
 * the write ends of the task's stdout and stderr pipes. The answer is one
 * struct wrk_reap_reply.
 */
#ifndef MOAT_WRK_REAP_H
#define MOAT_WRK_REAP_H

#include <sched.h>
#include <stddef.h>
#include <stdint.h>

#define WRK_REAP_MAGIC 0x3150524du        /* "MRP1" in little-endian bytes */
#define WRK_REAP_BODY_MAX (16u << 20)     /* bytes of strings in one request */
#define WRK_REAP_STRINGS_MAX (1u << 20)   /* argc + envc */

struct wrk_reap_head {
    uint32_t magic;    /* WRK_REAP_MAGIC */
    uint32_t body_len; /* bytes that follow, <= WRK_REAP_BODY_MAX */
    uint32_t argc;     /* >= 1 */
    uint32_t envc;
    uint32_t pinned;   /* 1: run on cpus (sched_setaffinity); 0: on the service's */
    uint32_t reserved; /* 0 */
    cpu_set_t cpus;
};

/* stage of a launch that failed before CMD was started */
enum wrk_reap_stage {
    WRK_REAP_STARTED = 0,  /* the reaper runs (CMD itself may still fail: exit 127/126) */
    WRK_REAP_SETUP,        /* stdin, pipes or directory (errnum) */
    WRK_REAP_AFFINITY,     /* sched_setaffinity (errnum) */
    WRK_REAP_SERVICE,      /* the service could not clone or read the request (errnum) */
};

struct wrk_reap_reply {
    int32_t pid;    /* the reaper, the worker's child; 0 when stage is WRK_REAP_SERVICE */
    int32_t stage;  /* enum wrk_reap_stage */
    int32_t errnum; /* errno of the failed stage, else 0 */
};

/* wrk_reap_parse: split a request's body (h->body_len bytes at body) into
 * *cwd, argv[0..argc) and envp[0..envc), each pointing into body, and
 * NULL-terminate both arrays (argv holds h->argc + 1 entries, envp h->envc +
 * 1; the caller allocates them). Returns 0, or -1 when the head or body is
 * malformed: wrong magic, argc 0, counts over WRK_REAP_STRINGS_MAX, a body
 * over WRK_REAP_BODY_MAX, not exactly 1 + argc + envc NUL-terminated strings,
 * an empty cwd or argv[0], or an environment string without '='. */
int wrk_reap_parse(const struct wrk_reap_head *h, char *body, const char **cwd, char **argv,
                   char **envp);

/* wrk_reap_serve: the service loop on sock for the worker whose pid is worker
 * (this process's parent). Returns 0 when the worker closes the socket, 1
 * when the worker is already gone, 2 on a malformed request or when it
 * cannot set itself up (not dumpable, descriptors 0-2); the worker starts a
 * new service on its next launch. Per-task reapers are the worker's
 * children and outlive the service. */
int wrk_reap_serve(int sock, pid_t worker);

#endif
