/* ctl_infer.h: infer jobs in the controller: documents in, TP groups placed, batch
 * embeddings checkpointed.
 *
 * An infer job's input is stored at submit, one record per batch (STORE_DB_DOCS:
 * key (job, batch) -> {"texts": [...], "ids": [...], "lines": [...]}, ids and
 * lines when the SUBMIT carried them); task b embeds batch b.
 * Each task runs on a TP group: tp ranks on tp distinct nodes, placed together
 * (gang) or not at all; rank 0 listens for its peers on a port of its node's
 * comm range. Each rank gets the SHA-256 of its shard and of the vocabulary,
 * which it fetches (SHARD_GET) and checks before use. A task completes when
 * every rank has reported COMPLETED for the current attempt; rank 0's report
 * carries the batch's embeddings (f32 [n, dim], little-endian), stored as the
 * task's result under (job, batch) once. A rank that fails or a node that is
 * lost stops the whole group (KILL to the others) and requeues the batch.
 */
#ifndef MOAT_CTL_INFER_H
#define MOAT_CTL_INFER_H

#include "controller/ctl_state.h"

/* ctl_infer_prepare: for a SUBMIT of kind infer: read the documents (blob 0: a JSON
 * array of strings; blob 1, optional: a JSON array of ids of the same length, or
 * null for none; blob 2, optional: a JSON array of the documents' 1-based line
 * numbers in the user's input file, as long) and set spec_json's "ndocs" to
 * their count, unless it gives the job's documents in all (then the rest come
 * by DOCS, ctl_infer_add; EINVAL when it is fewer than these).
 * EINVAL naming the document, id or line at fault. On success *docs (and *ids,
 * *lines, or NULL) are new references the caller owns. */
int ctl_infer_prepare(const struct proto_msg *msg, json_t *spec_json, json_t **docs, json_t **ids,
                      json_t **lines, struct err *err);

/* ctl_infer_add: DOCS {id, first} to infer job (its sender may, ctl_api.c): the
 * blobs as SUBMIT's, the documents from index `first` (0-based) on, stored batch
 * by batch in this store batch; the reply {id, received, ndocs} goes out once
 * they are committed. The part must start where the documents so far end, and
 * every part but the last hold whole batches; a part sent again after a lost
 * reply (all of it stored already) gets the same reply, whatever became of the
 * job since. EINVAL: not an infer job, ended or being cancelled, closed by
 * ctl_infer_expire, all its documents there, another first, a part past ndocs
 * or not of whole batches, or a bad document, id or line (numbered in the job). */
int ctl_infer_add(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg,
                  struct ctl_job *job, struct err *err);

/* ctl_infer_expire: close every infer job still receiving documents whose last
 * part came documents_timeout or longer before mono (monotonic s; a restart
 * counts as a part): the batches never received end CANCELLED (docs_closed,
 * kept in its record), those received run on, and the job ends CANCELLED
 * with the reason "documents stopped coming: N of M received" (logged). -1
 * with err when a record could not be written. */
int ctl_infer_expire(struct ctl *ctl, double mono, struct err *err);

/* ctl_infer_check: what an infer spec asks of its model, from the model's
 * manifest alone (no weights read): the model is imported (ENOENT), tp
 * divides its attention heads and FFN width (EINVAL, model_tp_check) and
 * max_len fits its position table (EINVAL). Before the cluster is asked
 * whether it could ever run the job: a tp no model takes is said as such. */
int ctl_infer_check(struct ctl *ctl, const struct job_spec *spec, struct err *err);

/* ctl_infer_accept: check the model and TP degree, extract shards if needed, set
 * job->infer and store the documents batch by batch (in the current batch of the
 * store); when they are not all the job's (spec ndocs), they must be whole
 * batches (EINVAL) and the job waits for the rest (DOCS). ENOENT unknown model,
 * EINVAL bad tp. */
int ctl_infer_accept(struct ctl *ctl, struct ctl_job *job, const json_t *docs, const json_t *ids,
                     const json_t *lines, struct err *err);

/* ctl_infer_pick: tp distinct schedulable nodes with room for one rank each, most
 * free cpus first, into out[0..tp) (node indices; the first 32,768 nodes are
 * eligible). Returns 0, or -1 when the group does not fit. */
int ctl_infer_pick(const struct ctl *ctl, const struct job_spec *spec, int16_t *out);

/* ctl_infer_dispatch: start the next attempt of task offset on the group nodes[]:
 * reserve every rank's resources, choose rank 0's port, save, queue a DISPATCH per
 * rank with the batch's documents. When tp > 1, make a CURVE key pair per rank
 * for this attempt's TP links (worker/wrk_comm.h) and give each rank its secret
 * key and every rank's public key; the keys travel only in those messages
 * (over the workers' CURVE links) and are never stored; the controller wipes
 * its own copy, not the messages' (freed once sent). EIO when no key pair can
 * be made, ENOMEM, EAGAIN (no free comm port on rank 0's node). */
int ctl_infer_dispatch(struct ctl *ctl, struct ctl_job *job, uint32_t offset, const int16_t *nodes,
                       double now, struct err *err);

/* ctl_infer_on_end: TASK_END of rank `rank` of a RUNNING infer task from node n
 * (attempt already matched). Queues the acknowledgement. */
int ctl_infer_on_end(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, int n,
                     struct ctl_job *job, uint32_t offset, int rank, struct err *err);

/* ctl_infer_result: RESULT for an infer job: without task, {id, kind, state,
 * count, dim, dtype, batches, done}; with task (raw or not): {index, state, count,
 * dim} and blobs [embeddings f32 [count, dim], documents JSON]. */
int ctl_infer_result(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg,
                     struct ctl_job *job, struct err *err);

#endif
