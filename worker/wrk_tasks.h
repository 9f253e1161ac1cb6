/* wrk_tasks.h: the worker's tasks: running ones and ended ones whose result the
 * controller has not yet acknowledged.
 *
 * Invariants: a task is keyed by (job, task index, attempt), so a DISPATCH
 * delivered twice starts it once; an ended task's result is committed to the
 * worker's LMDB (STORE_DB_INFLIGHT) before its TASK_END is sent, and deleted when
 * the controller acknowledges it, so a worker restart re-sends rather than loses
 * or re-runs it. Running tasks are not persisted: they die with the worker
 * (PR_SET_PDEATHSIG) and the controller requeues them.
 * Record layout (after the store's version byte): u32 big-endian length of a
 * JSON header {job, task, attempt, state, exit_code, signal, truncated,
 * start_time, end_time[, launch_error][, reason][, rank][, cpu_time, max_rss]},
 * the header, stdout bytes,
 * stderr bytes, result bytes (lengths in the header as out_len, err_len, res_len;
 * the result is an infer rank 0's embeddings).
 * Thread-safety: the worker's loop only.
 */
#ifndef MOAT_WRK_TASKS_H
#define MOAT_WRK_TASKS_H

#include <stdbool.h>
#include <stdint.h>

#include "shared/jobspec.h"
#include "shared/store.h"
#include "worker/wrk_bind.h"
#include "worker/wrk_exec.h"
#include "worker/wrk_objects.h"

enum wrk_phase { WRK_PHASE_FETCHING, WRK_PHASE_RUNNING, WRK_PHASE_ENDED };
enum wrk_kill { WRK_KILL_NONE, WRK_KILL_CANCEL, WRK_KILL_TIMEOUT, WRK_KILL_STALE, WRK_KILL_SHUTDOWN,
                WRK_KILL_MEMORY /* over its --mem: FAILED */ };

struct wrk_task {
    uint64_t job;
    uint32_t index, attempt;
    enum wrk_phase phase;
    struct wrk_proc proc;
    char cwd[600];
    bool cwd_shared;           /* cwd is the node's shared unconfined directory: never removed */
    double start_time, end_time, deadline; /* Unix s; deadline 0 = none */
    enum wrk_kill kill;
    double kill_at;            /* monotonic s for SIGKILL after SIGTERM; 0 = not due */
    uint64_t mem_limit;        /* exec tasks: bytes resident it may hold (the spec's mem); 0 = none */
    uint64_t mem_peak;         /* the most resident bytes measured (mem_check, every 0.5 s) */
    struct wrk_slot slot;      /* its CPUs and GPUs (wrk_bind.h), until reaped */
    char end_reason[160];      /* why the worker ended it, for TASK_END's reason ("" = none) */
    /* result, once ended */
    enum job_state state;
    int exit_code, signal;
    double cpu_time;           /* user + system CPU seconds of all its processes (wrk_exec_reaped) */
    uint64_t max_rss;          /* bytes: mem_peak, or its largest process's peak if
                                * larger, but for a sandboxed task (wrk_exec_reaped) */
    bool truncated;
    char launch_error[200];
    char *out, *err;           /* owned */
    size_t out_len, err_len;
    /* infer tasks (one TP rank of a batch) */
    bool infer;
    int rank, tp;
    json_t *dispatch;          /* the DISPATCH body, owned until launch */
    char *docs;                /* the batch's documents (JSON), owned until launch */
    size_t docs_len;
    int fetch_stage;           /* 0 shard, 1 vocabulary, 2 all present */
    struct wrk_fetch fetch;
    uint64_t fetch_req;        /* request id of the SHARD_GET in flight */
    double fetch_sent;         /* monotonic s it was sent */
    bool fetch_wait;           /* another task is fetching the same object */
    char *res;                 /* rank 0's embeddings once ended (f32 [n, dim]), owned */
    size_t res_len;
    /* delivery */
    bool need_send;
    uint64_t req_id;           /* of the last TASK_END sent */
    double last_sent;          /* monotonic s */
};

struct wrk_tasks {
    struct wrk_task **v;
    int n, cap;
};

/* wrk_tasks_find: the task (job, index, attempt) or NULL. */
struct wrk_task *wrk_tasks_find(const struct wrk_tasks *ts, uint64_t job, uint32_t index,
                                uint32_t attempt);
/* wrk_tasks_add: a new zeroed task, owned by the table. NULL on ENOMEM. */
struct wrk_task *wrk_tasks_add(struct wrk_tasks *ts, uint64_t job, uint32_t index, uint32_t attempt);
/* wrk_tasks_remove: free and drop ts->v[i]. */
void wrk_tasks_remove(struct wrk_tasks *ts, int i);
void wrk_tasks_free(struct wrk_tasks *ts);

/* wrk_task_finish: the child has been reaped: derive state and exit code, take the
 * captured output, remove the task's directory. */
void wrk_task_finish(struct wrk_task *t, double now);

/* wrk_task_save / wrk_task_forget: put or delete the ended task's record in the
 * open batch of st (opened on demand). ENOSPC when the map is full. */
int wrk_task_save(store_t *st, const struct wrk_task *t, struct err *err);
int wrk_task_forget(store_t *st, const struct wrk_task *t, struct err *err);

/* wrk_tasks_load: add every ended task recorded in st (after a worker restart). */
int wrk_tasks_load(struct wrk_tasks *ts, store_t *st, struct err *err);

/* wrk_tasks_sweep_dirs: at start, remove every per-attempt directory under
 * tasks_dir (state_dir/tasks/JOB.TASK.ATTEMPT): a previous worker process was
 * killed while those tasks ran (they died with it) and their directories,
 * with the documents and TP link key of an infer rank, were left. An ended
 * task's result is in the store, not there. The shared directory of
 * unconfined tasks ("unconfined") stays. Returns the number removed, or -1
 * with err on the first that could not be (the others are still tried). */
int wrk_tasks_sweep_dirs(const char *tasks_dir, struct err *err);

/* wrk_task_end_body: the TASK_END body for ended task t (caller owns). */
json_t *wrk_task_end_body(const struct wrk_task *t);

#endif
