/* ctl_jobs.h: the job and task state machine.
 *
 * States (PRODUCT.md): PENDING -> RUNNING -> COMPLETED | FAILED | CANCELLED | TIMEOUT;
 * RUNNING -> PENDING when a task is requeued (its node was lost); PENDING ->
 * CANCELLED (cancel, or an --after dependency that can no longer complete) and
 * PENDING -> FAILED (retries exhausted). Terminal states are final. Tasks follow
 * the same table; a job's state is derived from its tasks: RUNNING once one has
 * started, terminal when all are, then CANCELLED if cancelled, COMPLETED if all
 * completed, TIMEOUT if one timed out and none failed, else FAILED.
 * Every function writes the records it changes into the current batch and queues
 * the messages it implies (DISPATCH, KILL) in the outbox.
 */
#ifndef MOAT_CTL_JOBS_H
#define MOAT_CTL_JOBS_H

#include <stdbool.h>

#include "controller/ctl_state.h"

/* ctl_state_transition_ok: whether from -> to is legal for a job or a task. */
bool ctl_state_transition_ok(enum job_state from, enum job_state to);

/* ctl_task_dispatch: start attempt attempts+1 of task offset on node n at now:
 * reserve the node's resources, save, and queue a DISPATCH. EINVAL if illegal. */
int ctl_task_dispatch(struct ctl *ctl, struct ctl_job *job, uint32_t offset, int n, double now,
                      struct err *err);

/* ctl_task_end: a RUNNING task ended in state (COMPLETED, FAILED, TIMEOUT or
 * CANCELLED) with exit_code/signal; release its node; finish the job if it was
 * the last. */
int ctl_task_end(struct ctl *ctl, struct ctl_job *job, uint32_t offset, enum job_state state,
                 int exit_code, int signal, double end_time, struct err *err);

/* ctl_task_usage_add: add to t the resource usage a TASK_END body b reports
 * (cpu_time seconds, summed; max_rss bytes, the larger kept, in KiB); absent
 * fields (an older worker) add nothing. Once per rank and attempt: the caller
 * drops duplicates. */
void ctl_task_usage_add(struct ctl_task *t, const json_t *b);

/* ctl_task_requeue: a RUNNING task lost its node (or could not be launched:
 * launch_failure true, not held against the job): back to PENDING for another
 * attempt, or FAILED when max_attempts are used up. */
int ctl_task_requeue(struct ctl *ctl, struct ctl_job *job, uint32_t offset, bool launch_failure,
                     const char *why, struct err *err);

/* ctl_job_cancel: cancel pending tasks now and send KILL to running ones; the job
 * becomes CANCELLED when the last running task has ended. why is recorded as the
 * job's reason. Returns 0, or 1 when the job was cancelled already (no change:
 * a request the CLI sent again). EINVAL when the job has ended otherwise. */
int ctl_job_cancel(struct ctl *ctl, struct ctl_job *job, const char *why, struct err *err);

/* ctl_task_cancel: cancel one element of an exec array job (Slurm's scancel
 * J_I): a pending one ends CANCELLED now (with a task record, so a restart
 * does not run it), a running one is sent KILL and ends CANCELLED, neither
 * requeued nor retried. The job ends as usual when its last task does
 * (CANCELLED when no task FAILED or timed out). Returns 0, or 1 when the
 * element was cancelled already (no change: a request sent again). Errors:
 * ENOENT for an index not in the array; EINVAL when the job is not an exec
 * array, or the job or task has ended otherwise. */
int ctl_task_cancel(struct ctl *ctl, struct ctl_job *job, uint32_t index, struct err *err);

/* ctl_job_requeue: run again the tasks of an ended job (FAILED, TIMEOUT or
 * CANCELLED) that did not complete, as Slurm's scontrol requeue does for a
 * batch job: each goes back to PENDING for a new attempt, its node-loss,
 * launch-failure and --retries budgets anew (attempt numbers go on, so that a
 * late report of an old attempt is still told apart: attempts_base) and its
 * old result deleted; COMPLETED tasks and their results stay. The job is
 * PENDING again (an explicit exception to the state table), its reason says
 * so, and it is back in the restart index (ctl_purge.h) and the queue.
 * exec and infer jobs. EINVAL: the job has not ended, or COMPLETED, or is a
 * bench job (submit it again); EBUSY: a task of it is still RUNNING; store
 * errors. */
int ctl_job_requeue(struct ctl *ctl, struct ctl_job *job, struct err *err);

/* ctl_job_final_reason: job->reason (just written) says why a task ended for
 * good: keep it as the reason the job will end with (the first such one
 * stands), whatever passing reasons (waiting, held) the scheduler writes
 * before the job's other tasks end. */
void ctl_job_final_reason(struct ctl_job *job);

/* ctl_job_maybe_finish: when every task of job has ended, give the job its
 * final state (CANCELLED if cancelled or a task was and none failed, FAILED,
 * TIMEOUT, else COMPLETED), exit code (the largest of the tasks that ran; -1
 * when none exited non-zero and one failed or timed out without an exit code) and
 * reason, and save it; else nothing. */
int ctl_job_maybe_finish(struct ctl *ctl, struct ctl_job *job, double now, struct err *err);

/* ctl_job_hold: hold job (hold true: no task of it starts until released, as
 * Slurm's scontrol hold; running tasks go on) or release it (false), saved
 * with the job record. Returns 0, or 1 for no change (holding a held job,
 * releasing one not held). EINVAL when the job has ended, or (hold) when
 * every task of it has started. */
int ctl_job_hold(struct ctl *ctl, struct ctl_job *job, bool hold, struct err *err);

/* ctl_task_kill: queue a KILL (reason: cancel, timeout, stale) for every rank of the
 * running task offset. */
void ctl_task_kill(struct ctl *ctl, const struct ctl_job *job, uint32_t offset, const char *reason);

/* ctl_task_offset: offset of array index in job, or -1 when out of range. */
long ctl_task_offset(const struct ctl_job *job, uint64_t index);

/* ctl_task_argv_expand: argv with every "{index}" replaced by the decimal index.
 * Returns a JSON array of strings (caller owns); NULL on ENOMEM. */
json_t *ctl_task_argv_expand(const struct job_spec *spec, uint32_t index);

#endif
