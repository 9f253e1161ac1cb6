/* ctl_sched.h: placement of pending tasks on nodes.
 *
 * Policy: jobs in priority order (higher first), then oldest (lower id) first;
 * within a job, requeued tasks before never-started ones, in index order. A task
 * goes to the UP, registered node with room for its cpus, gpus and memory that
 * has the most free cpus (spreading load). The first job in this order that
 * has a task no node has room for now gets a reservation for the pass: on
 * the node big enough for it with the most free cpus (a TP group: one per
 * rank) its task's cpus, gpus and memory count as used, so jobs after it
 * may use only what it would leave there and cannot starve a big job of
 * higher priority with a stream of small ones; they still run on the other
 * nodes, and other blocked jobs reserve nothing (one reservation a pass, so
 * that waiting big jobs cannot idle the cluster; no backfill by time
 * limits). A job is
 * eligible once its begin time has passed and every --after job has COMPLETED;
 * if one of those ends otherwise, the job is CANCELLED ("dependency never
 * satisfied"). An array job with %MAX never has more than MAX tasks running.
 */
#ifndef MOAT_CTL_SCHED_H
#define MOAT_CTL_SCHED_H

#include <stdbool.h>
#include <stddef.h>

#include "controller/ctl_state.h"

/* ctl_sched_fits: node n is schedulable (UP, registered, not held in this
 * pass for a waiting bench task) and has room for one task of spec (what a
 * reservation set aside in this pass counted as used). */
bool ctl_sched_fits(const struct ctl_node *n, const struct job_spec *spec);

/* ctl_sched_feasible: whether some node of the cluster (any state but
 * removed, however busy) is big enough for one task of spec (an infer job:
 * tp such nodes), as Slurm and Flux judge a submission; true when no node is
 * known yet, within a heartbeat tolerance (heartbeat_interval x
 * heartbeat_tolerance) of the controller's start (nodes may still be
 * registering), and for bench jobs (whole nodes). When
 * false, why says what was asked and the largest node
 * ("no node of this cluster has 64 cpus (largest: 2 cpus, 0 gpus, 23.5 GiB)"). */
bool ctl_sched_feasible(const struct ctl *ctl, const struct job_spec *spec, char *why, size_t cap);

/* ctl_sched_pick: index of the best node for one task of spec, or -1 if none fits. */
int ctl_sched_pick(const struct ctl_node *nodes, int nnodes, const struct job_spec *spec);

/* ctl_sched_job_ready: 1 when job may start tasks at now, 0 when it must wait (why says
 * for what), -1 when it never can (why names the dependency and its end state). */
int ctl_sched_job_ready(struct ctl *ctl, const struct ctl_job *job, double now, char *why,
                        size_t cap);

/* ctl_sched_note_new: the reason of a job just queued, before any pass judged
 * it (a pass that finds the cluster full leaves the jobs after the first
 * unjudged, and refreshes their reasons once a second): what it waits for,
 * or "waiting for resources". A held job keeps its "held" reason. */
void ctl_sched_note_new(struct ctl *ctl, struct ctl_job *job, double now);

/* ctl_sched_pass: place as many tasks as fit now; jobs with nothing left to place
 * leave the queue. Returns the number of tasks dispatched, or -1 with err when a
 * record could not be written. */
int ctl_sched_pass(struct ctl *ctl, double now, struct err *err);

#endif
