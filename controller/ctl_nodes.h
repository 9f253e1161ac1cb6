/* ctl_nodes.h: the worker side of the controller: registration, heartbeats, task
 * results, node liveness and time-limit enforcement.
 *
 * A node gets work only after its REGISTER has been answered on its current
 * routing id. A REGISTER reconciles: tasks the controller has RUNNING on the node
 * that the worker does not list are requeued (the worker lost them); tasks the
 * worker lists that are not current there are sent KILL (stale attempts).
 * Handlers return 0 after queueing their reply, or -1 with err for an ERROR reply.
 */
#ifndef MOAT_CTL_NODES_H
#define MOAT_CTL_NODES_H

#include "controller/ctl_state.h"

int ctl_on_register(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg,
                    struct err *err);
int ctl_on_heartbeat(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg,
                     struct err *err);
int ctl_on_task_end(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg,
                    struct err *err);

/* ctl_node_launch_failed: count a launch that failed on node (a task or a
 * TP rank that could not start there: the node is at fault, not the job); the
 * drain_after_launch_failures-th in a row drains it (DRAINING, reason "N
 * launch failures in a row", saved). what: the task, for the log; why: the
 * worker's words. -1 with err if the node record could not be written. */
int ctl_node_launch_failed(struct ctl *ctl, struct ctl_node *node, const char *what, const char *why,
                           struct err *err);

/* ctl_nodes_check: mark nodes silent for heartbeat_interval x heartbeat_tolerance
 * DOWN and requeue their tasks; KILL tasks well past their deadline that the worker
 * has not ended, and end them as TIMEOUT if they still linger. now: Unix
 * seconds; heard: the monotonic time up to which every node's messages have
 * been read (the start of the last drain of the socket), against which a
 * node's silence is counted. -1 with err if a record could not be written. */
int ctl_nodes_check(struct ctl *ctl, double now, double heard, struct err *err);

#endif
