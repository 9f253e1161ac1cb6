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
 *
 * So that a restart costs what memory holds, not the whole history, the store
 * keeps an index of the jobs in memory (db "live", store.h): a job enters it in
 * its submission's batch (ctl_live_put) and leaves it in the first batch after
 * its purge (ctl_live_flush). Recovery loads the jobs of the index only. The
 * index may hold more than memory (a purge not yet flushed, or lost to a
 * crash: recovery finds such a job finished long ago and drops its entry
 * then) but never less: a job leaves it only once purged, and a purged job
 * stays finished unless `moat requeue` makes it unfinished again, which puts
 * it back (ctl_live_keep, ctl_live_put) in the batch that requeues it.
 * Thread-safety: the controller's event loop only.
 */
#ifndef MOAT_CTL_PURGE_H
#define MOAT_CTL_PURGE_H

#include <stdbool.h>
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

/* ctl_live_put: put job id in the index of jobs a restart loads, in the open
 * batch (opened on demand; ctl_batch). ENOSPC: map full; on failure
 * ctl->store_err is set too (the batch is void, ctl_state.h). */
int ctl_live_put(struct ctl *ctl, uint64_t id, struct err *err);

/* ctl_live_keep: job id is unfinished again (moat requeue, ctl_job_requeue):
 * forget a drop of it not yet flushed, so that the index keeps it; then
 * ctl_live_put it. */
void ctl_live_keep(struct ctl *ctl, uint64_t id);

/* ctl_live_drop: job id is out of memory for good: delete it from the index
 * at the next ctl_live_flush (kept in ctl->unlive until then). Out of memory:
 * the entry stays in the index (recovery drops it later; logged once). */
void ctl_live_drop(struct ctl *ctl, uint64_t id);

/* ctl_live_flush: delete the dropped ids from the index. In the open batch
 * if there is one (call it just before committing; a failure sets
 * ctl->store_err, the batch is void); else, with force and
 * CTL_LIVE_FLUSH_MIN or more waiting, in a transaction of its own, committed
 * at once (an idle controller still writes them; a failure leaves them in the
 * index, which recovery tolerates). An id already absent is no error. */
enum { CTL_LIVE_FLUSH_MIN = 4096 };
int ctl_live_flush(struct ctl *ctl, bool force, struct err *err);

#endif
