/* ctl_bench.h: bench jobs in the controller: node lists, placement, DISPATCH.
 *
 * A bench job (shared/jobspec.h) has one task per listed node, pinned to it:
 * task i runs on spec.nodes[i]. A task starts only when its node is UP,
 * registered and idle, and then takes the whole node (every cpu, gpu and byte
 * of memory it registered), so that nothing else shares the machine being
 * measured; tasks start in any order (ctl_sched.c bench_pass). While a task
 * waits for a busy node, that node is held: jobs behind the bench job in the
 * queue are not placed on it, so the benchmark is not starved by a stream of
 * smaller work. The job shows "waiting for node X (busy|DOWN|not registered)
 * [and N more]"; a task pinned to a node that never comes back waits until the
 * job is cancelled (as Slurm's --nodelist with a down node pends). The
 * worker runs the kernel benchmark (kernels/krn.h krn_bench_run) and the JSON
 * rows it prints are the task's stdout, stored like any task output (`moat
 * result JOB` prints them, one row per line).
 * Thread-safety: the controller's event loop only.
 */
#ifndef MOAT_CTL_BENCH_H
#define MOAT_CTL_BENCH_H

#include <jansson.h>
#include <stdbool.h>

#include "controller/ctl_state.h"

/* ctl_bench_expand: for a SUBMIT of kind bench: replace "all" with every node
 * that is UP and registered now (with backend cuda: and has a GPU), in name
 * order, and check that each listed node is known (and, with backend cuda,
 * has a GPU when it registered). EINVAL ("nodes: all: no node is UP", more
 * than JOBSPEC_NODES_MAX nodes UP, a GPU-less node for cuda), ENOENT naming
 * an unknown node, ENOMEM. Other kinds: a no-op. */
int ctl_bench_expand(const struct ctl *ctl, struct job_spec *spec, struct err *err);

/* ctl_bench_node: the node index task offset of job is pinned to, or -1 (unknown
 * node). */
int ctl_bench_node(const struct ctl *ctl, const struct ctl_job *job, uint32_t offset);

/* ctl_bench_node_free: n can take a bench task now (UP, registered, not held
 * by a bench task of a job ahead in this pass, nothing running). */
bool ctl_bench_node_free(const struct ctl_node *n);

/* ctl_bench_json: the DISPATCH's "bench" object of spec ({op, shape, dtype,
 * repeat, backend, threads}); a new reference, NULL on ENOMEM. */
json_t *ctl_bench_json(const struct job_spec *spec);

#endif
