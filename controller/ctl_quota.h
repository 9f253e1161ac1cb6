/* ctl_quota.h: the tasks of unfinished jobs the controller holds, in all and
 * per owner key, against max_tasks and max_tasks_per_key.
 *
 * Each task of a job costs the controller a struct ctl_task (about 100 bytes)
 * and its scheduling work from the job's submission until the job ends, so
 * one key submitting arrays of a million held tasks could otherwise take the
 * controller's memory. As Slurm's MaxJobCount (all jobs) and an association's
 * MaxSubmitJobs (one user), a submission or requeue that would pass either
 * limit is refused; it may come again once jobs have ended. A job counts its
 * ntasks from when it is added (or requeued) until it reaches a terminal
 * state, whatever its tasks' own states.
 */
#ifndef MOAT_CTL_QUOTA_H
#define MOAT_CTL_QUOTA_H

#include <stdbool.h>
#include <stdint.h>

#include "controller/ctl_state.h"

/* ctl_quota_check: whether owner (a Z85 key) may add ntasks more tasks of
 * unfinished jobs. 0, or -1 with EDQUOT naming the limit, the count and what
 * to do. */
int ctl_quota_check(const struct ctl *ctl, const char *owner, uint64_t ntasks, struct err *err);

/* ctl_quota_note: job's tasks begin (held true) or stop (false) to count, for
 * its owner and in all. ENOMEM only when a new owner's entry cannot be made
 * (held true): then nothing changed. Never fails with held false. */
int ctl_quota_note(struct ctl *ctl, const struct ctl_job *job, bool held, struct err *err);

/* ctl_quota_recount: the counts from the jobs in memory (every unfinished job
 * is), after a recovery. ENOMEM. */
int ctl_quota_recount(struct ctl *ctl, struct err *err);

/* ctl_quota_free: the per-owner table. */
void ctl_quota_free(struct ctl *ctl);

#endif
