/* ctl_purge.h: finished jobs leave the controller's memory after inactive_age
 * and are read back from the store when asked for.
 *
 * LMDB keeps every job for ever (it is the truth, ctl_state.h); memory keeps
 * the jobs that have not finished, and a finished one for inactive_age
 * (conf/controller.conf, default 5 minutes) after it ended or was last read
 * back by ctl_job_get(). Like Slurm's MinJobAge or Flux's inactive-age-limit,
 * but without losing anything: `show`, `wait`, `result`, dependencies and
 * `queue --all` read a purged job from the store. So the controller's memory
 * follows the jobs of the last few minutes, not every job since it was
 * installed.
 *
 * A purged job's slot ctl.jobs[id] is NULL. The FIFO ctl.purge holds
 * (id, at) in the order jobs became purgeable, on the monotonic clock (a
 * wall-clock step cannot stall or hurry it); an entry is stale when its job
 * was read back since (job->touched > at; a newer entry follows). A job is
 * purged only when it is finished, has no task RUNNING, is not on the
 * placement queue, and no batch is open (everything about it is committed,
 * so a read-back sees what memory had). Recovery (ctl_state_recover) does not
 * even load a finished job whose end lies more than inactive_age back.
 * Thread-safety: the controller's event loop only.
 */
#ifndef MOAT_CTL_PURGE_H
#define MOAT_CTL_PURGE_H

#include <stddef.h>
#include <stdint.h>

#include "controller/ctl_state.h"

struct ctl_purge_entry {
    uint64_t id;
    double at; /* monotonic s: the job ended or was read back; purgeable at + inactive_age */
};

/* ctl_purge_note: job finished or was read back `ago` seconds ago (0: now;
 * recovery gives the time since its recorded end): remember it
 * (job->touched = the monotonic time of that) to purge it inactive_age
 * later. Out of memory: the job just stays in memory (logged once). */
void ctl_purge_note(struct ctl *ctl, struct ctl_job *job, double ago);

/* ctl_purge_sort: order the FIFO by time (after recovery, which notes jobs in
 * id order with their end times). */
void ctl_purge_sort(struct ctl *ctl);

/* ctl_purge_run: purge every job whose time has come at now (monotonic s,
 * units_mono); a job
 * that cannot go yet (tasks still RUNNING, queued) is noted again at now.
 * Does nothing while a batch is open (store_in_batch). Returns the number of
 * jobs purged; gives freed memory back to the system (malloc_trim, at most
 * once a second) when any. */
uint64_t ctl_purge_run(struct ctl *ctl, double now);

#endif
