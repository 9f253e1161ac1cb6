/* ctl_state.h: the controller's in-memory state: jobs, tasks, nodes, the outbox.
 *
 * LMDB is the truth; this is its working copy, rebuilt from the store at start
 * (ctl_state_recover) and after a failed commit. Every change is written to the
 * store in the current batch before it is visible in memory, and every message
 * that acknowledges a change sits in the outbox until the batch has committed.
 * Invariants:
 *  - jobs are indexed by id (ids are dense, from 1); a job's tasks are an array
 *    indexed by offset (jobspec_index/jobspec_offset map it to the array
 *    index); a finished job may have
 *    left memory (jobs[id] == NULL, controller/ctl_purge.h): ctl_job_get()
 *    reads it back, ctl_job_peek() does not;
 *  - a task that never left PENDING has no task record in the store;
 *  - node resource use (used_*) is the sum over its RUNNING tasks.
 * Thread-safety: single-threaded (the controller's event loop).
 */
#ifndef MOAT_CTL_STATE_H
#define MOAT_CTL_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "controller/ctl_cfg.h"
#include "shared/jobspec.h"
#include "shared/net.h"
#include "shared/proto.h"
#include "shared/store.h"

enum node_state { NODE_STATE_UP, NODE_STATE_DRAINING, NODE_STATE_DOWN, NODE_STATE_COUNT };
const char *node_state_name(enum node_state s);

struct ctl_task {
    enum job_state state;
    uint32_t attempts;      /* dispatches so far; the current attempt's number */
    uint32_t launch_fails;  /* dispatches the node could not launch (not held against the job) */
    uint32_t retried;       /* attempts started again after a failure (spec.retries) */
    uint32_t attempts_base; /* attempts before the last moat requeue: not held against
                             * max_attempts (ctl_job_requeue); persisted */
    int node;               /* index into ctl.nodes while RUNNING, else -1 */
    int last_node;          /* node of the latest attempt, -1 before the first */
    int exit_code;          /* -1 until ended or when killed by a signal */
    int signal;
    double start_time, end_time; /* Unix s; 0 = not yet */
    double deadline;        /* absolute Unix s of the time limit; 0 = none */
    /* resource usage of the current attempt as its node(s) reported it at
     * its end (TASK_END cpu_time, max_rss; an infer task: its ranks' CPU
     * summed, their largest peak); 0 until then */
    float cpu_time;         /* s */
    uint32_t max_rss_kib;   /* KiB */
    bool kill_sent;
    bool cancel;            /* cancelled alone (moat cancel J_I): ends CANCELLED, never
                             * requeued or retried; persisted in its record */
    /* infer tasks: the TP group of the current attempt */
    int16_t *ranks;         /* tp node indices while RUNNING (ranks[0] == node); owned; else NULL */
    int16_t *last_ranks;    /* tp > 1: the latest ended attempt's ranks' nodes (-1: unknown), as
                             * last_node is rank 0's; owned; NULL before one ended */
    uint32_t ranks_done;    /* bit r: rank r reported COMPLETED for this attempt */
    int comm_port;          /* rank 0's rendezvous port on its node */
    /* what each of its nodes reserved for it (ctl_node_take), given back as is */
    int res_cpus, res_gpus;
    uint64_t res_mem;
};


struct ctl_job {
    uint64_t id;
    struct job_spec spec;
    enum job_state state;
    double submit_time, start_time, end_time; /* Unix s; 0 = not yet */
    int exit_code;          /* meaningful when terminal */
    bool cancel_requested;
    bool queued;            /* on ctl.queue (has tasks left to place) */
    char reason[200];       /* why PENDING or why it ended, "" if nothing to say */
    bool held;              /* moat hold (or submit --hold): starts no task until released */
    char *final_reason;     /* why the first task that ended for good with a reason
                             * did (over its --mem, its node lost max_attempts
                             * times), owned, else NULL; the job's reason when it
                             * ends, whatever passing reasons came between (not
                             * persisted: a job ending after a restart says
                             * which task failed and how) */
    uint32_t ntasks;
    struct ctl_task *tasks;
    uint32_t next_index;    /* offset of the first task never dispatched */
    uint32_t *requeue;      /* offsets of tasks waiting for another attempt (FIFO) */
    uint32_t nrequeue, requeue_cap, requeue_head;
    uint32_t running;       /* tasks RUNNING */
    uint32_t done;          /* tasks in a terminal state */
    uint32_t completed;     /* of them COMPLETED (the job's progress); kept in the job's
                             * record once it ended, for a listing without its tasks */
    json_t *infer;          /* infer jobs: {shards: [{sha256, bytes}] per rank, vocab: {sha256, bytes}}; owned */
    uint32_t docs_received; /* infer: its first documents stored so far; spec.ndocs once all
                             * came, fewer while it waits for DOCS (kept in its record) */
    double docs_mono;       /* monotonic s of its last documents (or of recovery) */
    bool docs_closed;       /* its documents stopped coming (documents_timeout): the batches
                             * never received are CANCELLED, the others run (kept in its record) */
    double cancel_time;     /* Unix s of ctl_job_cancel (0: never): the end time of the
                             * tasks it never started, which have no record */
    uint32_t attempts;      /* the most attempts of any task (kept in the job record) */
    double touched;         /* monotonic s: when it ended or was last read back (ctl_purge.h) */
    char owner[NET_KEY_LEN + 1]; /* Z85 key that submitted it; "" in records before owners */
};

/* ctl_job_ready: how many of job's first tasks have their input: all of them,
 * but for an infer job still receiving documents (DOCS), its whole batches
 * received so far. The scheduler starts no task at or past it. */
static inline uint32_t ctl_job_ready(const struct ctl_job *job)
{
    if (job->docs_received >= job->spec.ndocs || job->spec.batch <= 0)
        return job->ntasks;
    return job->docs_received / (uint32_t)job->spec.batch;
}

/* ctl_job_receiving: an infer job whose documents have not all come (DOCS) and
 * may still. */
static inline bool ctl_job_receiving(const struct ctl_job *job)
{
    return job->docs_received < job->spec.ndocs && !job->docs_closed;
}

/* ctl_task_on_node: task t of job runs (a rank of it) on node n. */
static inline bool ctl_task_on_node(const struct ctl_job *job, const struct ctl_task *t, int n)
{
    if (t->node == n)
        return true;
    for (int r = 1; t->ranks && r < job->spec.tp; r++)
        if (t->ranks[r] == n)
            return true;
    return false;
}

struct ctl_node {
    char name[65], host[256], backend[33], instance[65];
    char version[33];         /* the worker's, from REGISTER ("" when it did not say) */
    char prev_instance[65];   /* the instance the current one replaced ("" if none): it
                               * registering again means two live workers share the name */
    double dup_logged;        /* monotonic s: the last log line about such a twin */
    double hb_given;          /* s: the heartbeat interval this node was last told
                               * (persisted: a restarted controller with a shorter
                               * one waits as long as the worker was told) */
    int pid, cpus, gpus;
    uint64_t mem;
    int used_cpus, used_gpus;
    uint64_t used_mem;
    int running;
    enum node_state state;
    bool registered;          /* REGISTER answered on the current peer */
    struct net_peer peer;
    double last_seen;         /* monotonic s */
    int launch_failures;      /* consecutive */
    char comm_host[64];       /* where this node's TP rank 0 listens (REGISTER) */
    char sandbox[17];         /* exec sandbox: namespaces, off, unavailable ("" if not told) */
    bool egress;              /* has a route beyond its fabric subnets (REGISTER) */
    char egress_route[128];   /* the first such route */
    int comm_port_min, comm_port_max, comm_port_next;
    bool held;                /* this placement pass: a bench task waits for it (ctl_sched) */
    bool reserved;            /* this placement pass: a blocked job's task is counted in its
                               * used_* (ctl_sched.c reserve; undone at the end of the pass) */
    char key[NET_KEY_LEN + 1]; /* the worker key the name belongs to (ctl_on_register); "" unbound */
    bool drained;             /* an admin drained it: DRAINING, not UP, until resumed (ctl_nodeadm.h) */
    bool removed;             /* an admin removed it: not listed, gets nothing; its name
                               * still resolves (old tasks name it) and a REGISTER revives it */
    char reason[81];          /* why DRAINING: the admin's reason or the launch failures; "" */
};

/* ctl_node_take: reserve on n what task t of job needs there (one task, or one
 * rank of an infer task): the spec's cpus/gpus/mem, or for a bench task the
 * whole node; the amounts are recorded in t. ctl_node_give: return what
 * ctl_node_take recorded in t (so a node that re-registers with other sizes
 * while the task runs is still given back exactly what was taken). */
void ctl_node_take(struct ctl_node *n, const struct ctl_job *job, struct ctl_task *t);
void ctl_node_give(struct ctl_node *n, const struct ctl_task *t);

struct ctl_out {
    struct net_peer peer;
    struct proto_msg msg;
    bool is_reply;            /* acknowledges a request: becomes an ERROR if the batch fails */
};

struct ctl_auth;

/* One owner key's tasks of unfinished jobs (ctl_quota.h). */
struct ctl_owner_tasks {
    char key[NET_KEY_LEN + 1];
    uint64_t tasks;
};

/* A stored object hashed whole when SHARD_GET last served it, as the file was
 * then (ctl_model.c: a file changed since is hashed again). */
#define CTL_SERVED_MAX 16
struct ctl_served {
    char sha[65];
    uint64_t dev, ino, size;
    int64_t mtime_ns;
};

struct ctl {
    struct ctl_cfg cfg;
    store_t *store;
    net_sock_t *sock;
    struct ctl_auth *auth;    /* the allowlist (ctl_auth.h); borrowed like store and sock */
    struct ctl_job **jobs;    /* jobs[id], id in [1, njobs]; NULL: purged (ctl_purge.h) */
    uint64_t njobs, jobs_cap;
    uint64_t nresident;       /* jobs in memory (jobs[id] != NULL) */
    struct ctl_purge_entry *purge; /* finished jobs by the time they may leave memory */
    size_t purge_head, npurge, purge_cap; /* FIFO: purge[purge_head .. npurge) */
    uint64_t *unlive;         /* purged ids still in the store's index (ctl_live_flush) */
    size_t nunlive, unlive_cap;
    uint64_t nactive;         /* jobs not in a terminal state */
    uint64_t active_tasks;    /* their tasks (ctl_quota.h) */
    struct ctl_owner_tasks *owners; /* the same per owner key, owned */
    int nowners, owners_cap;
    uint64_t *receiving;      /* ids of infer jobs that were waiting for documents (DOCS);
                               * ctl_infer_expire drops those no longer waiting */
    size_t nreceiving, receiving_cap;
    struct ctl_job **queue;   /* jobs with tasks to place, by priority desc then id asc */
    uint32_t nqueue, queue_cap;
    struct ctl_node *nodes;
    int nnodes, nodes_cap;
    struct ctl_out *outbox;
    int nout, out_cap;
    double started;           /* monotonic s at start */
    double recovery_s;        /* how long the start's ctl_state_recover took (PING) */
    bool need_sched;          /* something changed that may allow a placement */
    double reasons_at;        /* Unix s: the last refresh of unexamined jobs' reasons (ctl_sched) */
    struct err store_err;     /* sticky: a write of this batch failed; the batch is void */
    struct ctl_served served[CTL_SERVED_MAX]; /* objects verified when last served (ring) */
    int served_next;
};

/* ctl_state_init: empty state over an open store and socket (borrowed). */
void ctl_state_init(struct ctl *ctl, const struct ctl_cfg *cfg, store_t *store, net_sock_t *sock);
/* ctl_state_free: free jobs, nodes and the outbox (not the store or socket). */
void ctl_state_free(struct ctl *ctl);

/* ctl_state_recover: rebuild jobs, tasks and nodes from the store: the jobs in
 * the store's index of jobs in memory (ctl_purge.h) with their tasks, so the
 * cost follows the unfinished and recent jobs, not the history. A store of
 * schema 1 (no index yet) is read whole once, and its index written and
 * committed. Nodes come back unregistered, with heartbeat tolerance from the
 * end of the recovery (not from when their records were read) to register
 * again. ENOMEM; store errors. */
int ctl_state_recover(struct ctl *ctl, struct err *err);

/* ctl_job_get: job by id; a purged job is read back from the store (and is
 * purgeable again inactive_age later). NULL with err: ENOENT when unknown;
 * else the read-back failed (ENOMEM, store errors; logged). ctl_job_peek:
 * only a job in memory, NULL otherwise. */
struct ctl_job *ctl_job_get(struct ctl *ctl, uint64_t id, struct err *err);
struct ctl_job *ctl_job_peek(const struct ctl *ctl, uint64_t id);
/* ctl_job_read: a new copy of job id from the store, not kept (caller frees
 * with ctl_job_free): a finished job as `show` sees it. with_tasks false
 * reads the job record alone, for a finished job's listing (`queue`: its
 * counters come from the record; its tasks are left blank); an unfinished
 * one is always read whole. A job id in [1, njobs] without a record comes
 * back as a FAILED placeholder ("record missing"), as a recovery that reads
 * every record (a schema-1 store) makes it.
 * ENOENT past njobs; ENOMEM; store errors. */
struct ctl_job *ctl_job_read(struct ctl *ctl, uint64_t id, bool with_tasks, struct err *err);
/* ctl_job_add: take ownership of job (id must be njobs + 1). ENOMEM. */
int ctl_job_add(struct ctl *ctl, struct ctl_job *job, struct err *err);
/* ctl_job_new: a PENDING job for spec (takes ownership of spec's contents on success). */
struct ctl_job *ctl_job_new(uint64_t id, struct job_spec *spec, double now, struct err *err);
void ctl_job_free(struct ctl_job *job);

/* ctl_docs_closed_why: "documents stopped coming: N of M received", new (caller
 * frees), NULL when out of memory: the reason of an infer job closed by
 * ctl_infer_expire. */
char *ctl_docs_closed_why(const struct ctl_job *job);

/* ctl_receiving_add: note job id as waiting for documents (ctl.receiving). ENOMEM. */
int ctl_receiving_add(struct ctl *ctl, uint64_t id, struct err *err);

/* ctl_queue_add: put job on the placement queue in priority order (no-op if queued). */
int ctl_queue_add(struct ctl *ctl, struct ctl_job *job, struct err *err);
/* ctl_task_requeue_push: remember offset for another attempt; ENOMEM. */
int ctl_task_requeue_push(struct ctl_job *job, uint32_t offset, struct err *err);

/* Persistence of one object into the current batch (opened on demand).
 * ENOSPC: the map is full. A failure also sets ctl->store_err: the event loop
 * then abandons the batch, answers its requests with the error and recovers. */
/* ctl_job_save's append: a new job (its id sorts last), which also enters the
 * index of jobs a restart loads (ctl_live_put). */
int ctl_job_save(struct ctl *ctl, const struct ctl_job *job, bool append, struct err *err);
int ctl_task_save(struct ctl *ctl, const struct ctl_job *job, uint32_t offset, struct err *err);
int ctl_node_save(struct ctl *ctl, const struct ctl_node *node, struct err *err);
/* ctl_batch: make sure the batch transaction is open. */
int ctl_batch(struct ctl *ctl, struct err *err);

/* ctl_node_find / ctl_node_by_peer: index or -1. ctl_node_find also finds a
 * removed node (its name stays known); check ->removed where that matters. */
int ctl_node_find(const struct ctl *ctl, const char *name);
int ctl_node_by_peer(const struct ctl *ctl, const struct net_peer *peer);

/* Outbox: messages sent after the batch commits. Takes ownership of body. */
int ctl_out_reply(struct ctl *ctl, const struct net_peer *peer, uint64_t req_id, json_t *body);
int ctl_out_error(struct ctl *ctl, const struct net_peer *peer, uint64_t req_id, const struct err *e);
int ctl_out_send(struct ctl *ctl, const struct net_peer *peer, enum proto_type type, json_t *body);
/* ctl_out_last: the last queued message (to attach blobs). */
struct proto_msg *ctl_out_last(struct ctl *ctl);

/* ctl_job_json: a job as PRODUCT.md's show and queue give it, without its
 * tasks; ctl_task_json: task off (offset in job->tasks) as show lists it.
 * Caller owns; NULL (or holes) only when out of memory. */
json_t *ctl_job_json(const struct ctl_job *job);
json_t *ctl_task_json(const struct ctl *ctl, const struct ctl_job *job, uint32_t off);

/* ctl_usage_seconds: CPU seconds as JSON gives them, rounded to the
 * microsecond (wait4's unit): a float's 0.011667 does not become
 * 0.011667000129818916. */
double ctl_usage_seconds(double s);
/* ctl_node_json: a node as NODES lists it (docs/protocol.md). Caller owns; NULL: ENOMEM. */
json_t *ctl_node_json(const struct ctl_node *n);

#endif
