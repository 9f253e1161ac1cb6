/* ctl_nodeadm.h: an admin's changes to nodes: drain, resume, remove.
 *
 * As Slurm's `scontrol update NodeName=X State=DRAIN|RESUME` and removing a
 * node from slurm.conf: a drained node (state DRAINING, ctl_state.h) keeps its
 * running tasks and gets no new work, across restarts of either daemon, until
 * an admin resumes it; a drain for launch failures (ctl_nodes.c) ends when a
 * new worker process registers or an admin resumes it. A removed node is no
 * longer listed and its worker key is free for another name; its record stays
 * (marked removed) so that old jobs still name their node, and if its worker
 * registers again it is a node again: to keep it out, revoke its key.
 */
#ifndef MOAT_CTL_NODEADM_H
#define MOAT_CTL_NODEADM_H

#include "controller/ctl_state.h"

/* ctl_on_admin_node: ADMIN_NODE {op, name, reason?} (docs/protocol.md), from
 * an admin key (ctl_auth.c). Replies with the node as NODES lists it, after
 * the change and its audit record (node.drain, node.resume, node.remove) are
 * committed. Errors (ERROR reply): EINVAL an op other than drain, resume,
 * remove, or a reason with control characters; ENOENT no such node; EBUSY
 * remove of a node that is not DOWN or still has tasks. */
int ctl_on_admin_node(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg,
                      struct err *err);

#endif
