/* ctl_api.h: client requests: PING, SUBMIT, SHOW, QUEUE, CANCEL, RESULT, NODES.
 * Each handler queues exactly one REPLY, or returns -1 with err for an ERROR
 * reply (EINVAL bad argument, ENOENT unknown job or task). SUBMIT's reply leaves
 * only after the batch holding the job has committed.
 */
#ifndef MOAT_CTL_API_H
#define MOAT_CTL_API_H

#include "controller/ctl_state.h"

/* SHOW's default page: tasks in one reply when the request names no tasks_limit. */
#define CTL_SHOW_PAGE 10000
/* RESULT's page also ends once its outputs (stdout + stderr) reach this many bytes. */
#define CTL_RESULT_PAGE_BYTES (4u << 20)
/* QUEUE looks at this many jobs at most per request (purged ones are read from LMDB). */
#define CTL_QUEUE_SCAN 50000

int ctl_on_ping(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err);
int ctl_on_submit(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err);
int ctl_on_show(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err);
int ctl_on_queue(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err);
int ctl_on_cancel(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err);
/* ctl_on_requeue: REQUEUE {ids}: ctl_job_requeue each job its owner's key (or
 * an admin's) sent, audited as "requeue"; {requeued: [ids], errors: [{id,
 * code, msg}]}, the rest requeued all the same. */
int ctl_on_requeue(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err);

/* ctl_on_docs: DOCS {id, first}: the next documents of an infer job submitted in
 * parts, from its owner's key (or an admin's; others EPERM, audited);
 * ctl_infer_add. */
int ctl_on_docs(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err);

/* ctl_on_hold: HOLD {ids, release?}: hold (or release) each job, its owner's
 * or any with an admin key, audited; reply {done: [ids], errors: [{id, code,
 * msg}]} as CANCEL's (ctl_job_hold). */
int ctl_on_hold(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err);
int ctl_on_result(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err);
int ctl_on_nodes(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err);

/* ctl_json_lossy_string: a JSON string of len bytes with invalid UTF-8 sequences
 * replaced by U+FFFD (RFC 3629 validity). Caller owns; NULL on ENOMEM. */
json_t *ctl_json_lossy_string(const uint8_t *s, size_t len);

#endif
