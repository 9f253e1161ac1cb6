/* wrk_bind.h: which of the node's CPUs and GPUs each task runs on.
 *
 * The controller counts a node's cpus and gpus (ctl_sched.h); the worker
 * decides which ones a task gets, as slurmd's task/affinity and gres/gpu
 * plugins do for Slurm:
 *  - CPUs: with cpu_bind = "cpus" (worker.conf) each task is pinned
 *    (sched_setaffinity(2), before its program starts, inherited by all it
 *    starts) to CPUs of its own among the worker's, so that a --cpus 2 task
 *    sees 2 CPUs (nproc, os.sched_getaffinity) and OpenBLAS, OpenMP or
 *    PyTorch start that many threads rather than one per core of the node;
 *    a bench task, which takes the whole node, gets every one.
 *  - GPUs: on a node with gpus > 0 a task sees only its own devices through
 *    CUDA_VISIBLE_DEVICES (CUDA C Programming Guide, "CUDA Environment
 *    Variables"), its device 0 being the first; a task that asked for none
 *    sees none (CUDA_VISIBLE_DEVICES empty). MOAT_GPUS names them too.
 * The pool: the CPUs of the worker's own affinity mask when it started (run
 * the worker under taskset or a cpuset to give it fewer), the first `cpus` of
 * them when worker.conf says fewer; GPUs 0..gpus-1 of what the worker sees,
 * named as the worker's own CUDA_VISIBLE_DEVICES names them when it has one
 * (indices or GPU-UUIDs; it must name at least gpus of them), else by index.
 * A worker offering no GPU on a machine where CUDA sees some (gpus = 0) sets
 * hide_gpus: its tasks see none either.
 * A worker told to offer more CPUs than it may run on (cpus = 16 on 2) does
 * not pin: there are not enough to give each task CPUs of its own, and the
 * kernel spreads the tasks better than a fixed share would.
 * Taking CPUs/GPUs for a task picks free ones, lowest first; when fewer are
 * free than asked (the controller's count and the worker's disagree, e.g. a
 * task still dying after the controller took it for ended) the least used
 * are shared, and the slot says so.
 * Thread-safety: used from the worker's loop only.
 */
#ifndef MOAT_WRK_BIND_H
#define MOAT_WRK_BIND_H

#include <sched.h>
#include <stdbool.h>
#include <stddef.h>

#include "shared/err.h"

struct wrk_bind {
    bool pin;          /* tasks are pinned to CPUs */
    int ncpus;         /* CPUs in the pool */
    int *cpu;          /* [ncpus] OS CPU numbers, ascending; owned */
    int *cpu_users;    /* [ncpus] tasks holding each */
    int ngpus;         /* GPUs in the pool (the node's gpus) */
    char **gpu;        /* [ngpus] each as CUDA_VISIBLE_DEVICES names it; owned */
    int *gpu_users;    /* [ngpus] */
    bool hide_gpus;    /* a node offering none where CUDA sees some: tasks see none */
};

/* One task's share: indices into the pool. */
struct wrk_slot {
    int ncpus, ngpus;
    int *cpu, *gpu;    /* owned; NULL when none */
    bool shared;       /* some CPU or GPU is held by another task too */
    bool held;         /* taken and not yet given back */
};

/* wrk_bind_init: the pool of a worker offering cpus CPUs and gpus GPUs (its
 * registered figures, wrk_res.h), pinning tasks when pin_cpus (cpu_bind =
 * "cpus") and the worker may run on at least cpus CPUs. affinity: the
 * worker's mask (NULL: read with sched_getaffinity); visible: its
 * CUDA_VISIBLE_DEVICES (NULL or "": GPUs by index). why (may be NULL) gets a
 * line for the log when pinning was asked and is off. Errors: ENOMEM; cpus <
 * 1, gpus < 0, or gpus more than visible names (EINVAL, naming both). Free
 * with wrk_bind_free (also after an error). */
int wrk_bind_init(struct wrk_bind *b, int cpus, int gpus, bool pin_cpus, const cpu_set_t *affinity,
                  const char *visible, char *why, size_t why_cap, struct err *err);

void wrk_bind_free(struct wrk_bind *b);

/* wrk_bind_take: a slot of cpus CPUs (pinned nodes only; clamped to the
 * pool) and gpus GPUs (clamped to the pool) for one task; free ones first,
 * lowest first, then the least used (s->shared). *s is overwritten; give it
 * back with wrk_bind_give. Errors: ENOMEM. */
int wrk_bind_take(struct wrk_bind *b, int cpus, int gpus, struct wrk_slot *s, struct err *err);

/* wrk_bind_give: return s's CPUs and GPUs to the pool and free it; a slot
 * never taken, or given back already, is left alone. */
void wrk_bind_give(struct wrk_bind *b, struct wrk_slot *s);

/* wrk_bind_cpuset: the mask to pin s's task to; false (and *out empty) when
 * the node does not pin, so the task keeps the worker's mask. */
bool wrk_bind_cpuset(const struct wrk_bind *b, const struct wrk_slot *s, cpu_set_t *out);

/* wrk_bind_env: *cuda = "CUDA_VISIBLE_DEVICES=a,b" and *moat = "MOAT_GPUS=a,b"
 * for s's task (a task that asked for no GPU, or on a node with hide_gpus:
 * empty lists), both owned by the caller (free); on a node without GPUs (and
 * without hide_gpus) both NULL, and the task's environment is left as it is. Errors: ENOMEM -> -1 with err. */
int wrk_bind_env(const struct wrk_bind *b, const struct wrk_slot *s, char **cuda, char **moat,
                 struct err *err);

#endif
