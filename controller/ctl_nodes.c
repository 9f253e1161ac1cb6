/* ctl_nodes.c: REGISTER, HEARTBEAT, TASK_END; liveness and deadlines. */
#include "controller/ctl_nodes.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "controller/ctl_audit.h"
#include "controller/ctl_auth.h"
#include "controller/ctl_infer.h"
#include "controller/ctl_jobs.h"
#include "controller/ctl_result.h"
#include "shared/log.h"
#include "shared/text.h"
#include "shared/units.h"
#include "shared/version.h"

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k)); /* fields were validated by proto */
}

static json_int_t jint(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static int node_add(struct ctl *ctl, const char *name, struct err *err)
{
    if (ctl->nnodes + 1 > ctl->nodes_cap) {
        int cap = ctl->nodes_cap ? ctl->nodes_cap * 2 : 16;
        struct ctl_node *n = realloc(ctl->nodes, (size_t)cap * sizeof *n);
        if (n == NULL)
            return err_set(err, ENOMEM, "nodes: out of memory");
        ctl->nodes = n;
        ctl->nodes_cap = cap;
    }
    struct ctl_node *n = &ctl->nodes[ctl->nnodes];
    memset(n, 0, sizeof *n);
    snprintf(n->name, sizeof n->name, "%s", name);
    n->state = NODE_STATE_DOWN;
    return ctl->nnodes++;
}

static bool listed(const json_t *tasks, uint64_t job, uint32_t index, uint32_t attempt)
{
    size_t i;
    json_t *t;
    json_array_foreach(tasks, i, t) {
        if ((uint64_t)jint(t, "job") == job && (uint32_t)jint(t, "task") == index &&
            (uint32_t)jint(t, "attempt") == attempt)
            return true;
    }
    return false;
}

/* requeue_lost: tasks RUNNING on node n that keep is not NULL and does not list. */
static int requeue_lost(struct ctl *ctl, int n, const json_t *keep, const char *why, struct err *err)
{
    for (uint64_t id = 1; id <= ctl->njobs; id++) {
        struct ctl_job *job = ctl->jobs[id];
        for (uint32_t off = 0; job && job->running && off < job->ntasks; off++) {
            struct ctl_task *t = &job->tasks[off];
            if (t->state != JOB_STATE_RUNNING || !ctl_task_on_node(job, t, n))
                continue;
            if (keep && listed(keep, id, jobspec_index(&job->spec, off), t->attempts))
                continue;
            log_warn("ctl", "task %llu.%u: %s; requeued", (unsigned long long)id,
                     jobspec_index(&job->spec, off), why);
            if (ctl_task_requeue(ctl, job, off, false, why, err) != 0)
                return -1;
        }
    }
    return 0;
}

static void send_kill(struct ctl *ctl, const struct net_peer *peer, uint64_t job, uint32_t index,
                      uint32_t attempt, const char *reason)
{
    json_t *body = json_pack("{s:I, s:I, s:I, s:s}", "job", (json_int_t)job, "task",
                             (json_int_t)index, "attempt", (json_int_t)attempt, "reason", reason);
    ctl_out_send(ctl, peer, PROTO_TYPE_KILL, body);
}

/* register_refused: log and audit a REGISTER refused for its key; EPERM. */
static int register_refused(struct ctl *ctl, const struct net_peer *peer, const char *name,
                            const char *why, struct err *err)
{
    log_warn("ctl", "register as node %s refused: %s; key=%s", name, why, peer->key);
    char object[96];
    snprintf(object, sizeof object, "register node %.64s", name);
    struct err e = {0};
    if (ctl->store_err.code == 0 &&
        ctl_audit_append(ctl, peer->key, "auth.refuse", object, json_pack("{s:s}", "reason", why),
                         &e) != 0)
        log_error("ctl", "audit: %s", e.msg);
    return err_set(err, EPERM, "register: node %.64s: %s", name, why);
}

/* node_key_check: may peer's key register as node name (index n, or -1 when
 * new)? A name belongs to the key that first registered it, for as long as
 * that key is allowlisted and not revoked, so another worker's key cannot
 * take over its tasks and results; and a key holds one node at a time: it
 * moves to a new name only once its old node is DOWN (its binding then ends,
 * and the old node is removed), so one key cannot flood the controller with
 * nodes. 0, or -1 with EPERM
 * (audited). A peer without a key (plaintext, unit tests) is not checked. */
static int node_key_check(struct ctl *ctl, const struct net_peer *peer, const char *name, int n,
                          struct err *err)
{
    if (peer->key[0] == '\0')
        return 0;
    if (n >= 0 && ctl->nodes[n].key[0] && strcmp(ctl->nodes[n].key, peer->key) != 0 &&
        ctl_auth_key_live(ctl, ctl->nodes[n].key))
        return register_refused(ctl, peer, name, "it belongs to another worker key", err);
    for (int m = 0; m < ctl->nnodes; m++) {
        struct ctl_node *o = &ctl->nodes[m];
        if (m == n || strcmp(o->key, peer->key) != 0)
            continue;
        if (o->state != NODE_STATE_DOWN || o->running > 0) {
            char why[256];
            snprintf(why, sizeof why, "this worker key is node %s's, which is %s; a key holds one "
                     "node (a renamed worker registers once its old name is DOWN)", o->name,
                     o->running > 0 ? "running tasks" : node_state_name(o->state));
            return register_refused(ctl, peer, name, why, err);
        }
        log_info("ctl", "worker key of node %s (DOWN) now registers as node %s; %s is removed",
                 o->name, name, o->name);
        o->key[0] = '\0';
        /* out of the node table's listings and placement, as moat admin node
         * remove: a key moving from name to name leaves no trail of DOWN nodes */
        o->removed = true;
        snprintf(o->reason, sizeof o->reason, "renamed %.40s", name);
        if (ctl_node_save(ctl, o, err) != 0)
            return -1;
    }
    return 0;
}

/* node_limit: seconds without a heartbeat after which node is lost: the
 * tolerance times its interval, the one it was last told if longer (a
 * controller restarted with a shorter heartbeat_interval: the worker keeps
 * its old pace until it registers again). A node not registered since this
 * controller started gets the time its worker may take to find it again
 * too: its connection retries back off to NET_RECONNECT_MAX_S while the
 * controller is down, then one heartbeat (answered "register first"), so
 * that a short tolerance does not requeue tasks it finished meanwhile. */
static double node_limit(const struct ctl *ctl, const struct ctl_node *node)
{
    double every = ctl->cfg.heartbeat_interval;
    if (node->hb_given > every)
        every = node->hb_given;
    double limit = every * (double)ctl->cfg.heartbeat_tolerance;
    if (!node->registered)
        limit += NET_RECONNECT_MAX_S + every + 0.5;
    return limit;
}

int ctl_on_register(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg,
                    struct err *err)
{
    const json_t *b = msg->body;
    const char *name = jstr(b, "name"), *instance = jstr(b, "instance");
    if (name[0] == '\0' || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                        "0123456789._-") != strlen(name))
        return err_set(err, EINVAL, "register: name '%.64s': use letters, digits, '.', '_', '-'", name);
    /* What the log and `moat nodes` print: plain ASCII, no control characters. */
    static const char *const text[] = {"host", "backend", "instance", "comm_host", "sandbox",
                                       "egress_route", "version"};
    for (size_t i = 0; i < sizeof text / sizeof *text; i++) {
        const char *v = jstr(b, text[i]);
        for (const unsigned char *p = (const unsigned char *)(v ? v : ""); *p; p++)
            if (*p < 0x20 || *p > 0x7e)
                return err_set(err, EINVAL, "register: %s: byte 0x%02x at %td; printable ASCII only",
                               text[i], *p, (const char *)p - v);
    }
    const char *be = jstr(b, "backend"), *sbx = jstr(b, "sandbox");
    if (strcmp(be, "cpu") != 0 && strcmp(be, "cuda") != 0)
        return err_set(err, EINVAL, "register: backend '%.32s': expected cpu or cuda", be);
    if (sbx && sbx[0] && strcmp(sbx, "namespaces") != 0 && strcmp(sbx, "off") != 0 &&
        strcmp(sbx, "unavailable") != 0)
        return err_set(err, EINVAL, "register: sandbox '%.16s': expected namespaces, off or unavailable",
                       sbx);
    if (jint(b, "comm_port_min") > jint(b, "comm_port_max"))
        return err_set(err, EINVAL, "register: comm_port_min %lld > comm_port_max %lld",
                       (long long)jint(b, "comm_port_min"), (long long)jint(b, "comm_port_max"));
    const json_t *eg = json_object_get(b, "egress");
    const char *route = jstr(b, "egress_route");
    if (json_is_true(eg)) {
        if (strcmp(ctl->cfg.egress_policy, "refuse") == 0) {
            log_warn("ctl", "node %s refused: it has a route beyond the fabric (%s); egress_policy = refuse",
                     name, route ? route : "?");
            return err_set(err, EACCES, "register: node %.64s has a route beyond the fabric (%.100s); "
                           "the controller's egress_policy is refuse", name, route ? route : "?");
        }
    }
    int n = ctl_node_find(ctl, name);
    if (node_key_check(ctl, peer, name, n, err) != 0)
        return -1;
    /* The same peer may not hold two names. */
    int other = ctl_node_by_peer(ctl, peer);
    if (other >= 0 && strcmp(ctl->nodes[other].name, name) != 0)
        ctl->nodes[other].registered = false;
    if (n < 0 && (n = node_add(ctl, name, err)) < 0)
        return -1;
    struct ctl_node *node = &ctl->nodes[n];
    if (node->removed) { /* an admin removed it (ctl_nodeadm.h); its worker is back */
        log_info("ctl", "node %s was removed; it registers again", name);
        node->removed = node->drained = false;
        node->reason[0] = '\0';
        node->state = NODE_STATE_DOWN;
    }
    bool restarted = strcmp(node->instance, instance) != 0;
    double mono = units_mono();
    bool twin = restarted && node->prev_instance[0] && strcmp(instance, node->prev_instance) == 0 &&
                node->registered && node->state != NODE_STATE_DOWN &&
                mono - node->last_seen <= node_limit(ctl, node);
    if (twin) {
        /* The instance the current one replaced is alive too: two workers
         * (a cloned machine, a copied config) share the name and would take
         * each other's place, requeueing each other's tasks, for ever. */
        if (mono - node->dup_logged >= 60.0) {
            log_error("ctl", "node %s: two live workers register under this name: pid %d on %s "
                      "(registered) and the instance it replaced; the latter is refused until "
                      "the former stops: give each worker a name of its own", name, node->pid,
                      node->host);
            node->dup_logged = mono;
        }
        return err_set(err, EBUSY, "register: node %.64s is held by another live worker (pid %d "
                       "on %.64s): stop one of them, or give each its own name", name, node->pid,
                       node->host);
    }
    if (strcmp(node->key, peer->key) != 0) {
        if (node->key[0])
            log_warn("ctl", "node %s: its worker key %s is no longer allowed; now %s", name,
                     node->key, peer->key);
        snprintf(node->key, sizeof node->key, "%s", peer->key);
    }
    const json_t *tasks = json_object_get(b, "tasks");
    /* Tasks we believe run there but the worker does not hold are lost. */
    if (requeue_lost(ctl, n, tasks, restarted ? "worker restarted" : "worker lost the task", err) != 0)
        return -1;
    node = &ctl->nodes[n];
    /* Tasks the worker holds that are not current there must stop. */
    size_t i;
    json_t *t;
    json_array_foreach(tasks, i, t) {
        if (json_is_true(json_object_get(t, "ended")))
            continue;
        uint64_t jid = (uint64_t)jint(t, "job");
        uint32_t index = (uint32_t)jint(t, "task"), attempt = (uint32_t)jint(t, "attempt");
        /* N.B. peek: a job with a task running is in memory (ctl_purge.h);
         * a purged one need not be read back to be found stale */
        struct ctl_job *job = ctl_job_peek(ctl, jid);
        long off = job ? ctl_task_offset(job, index) : -1;
        bool current = off >= 0 && job->tasks[off].state == JOB_STATE_RUNNING &&
                       ctl_task_on_node(job, &job->tasks[off], n) && job->tasks[off].attempts == attempt;
        if (!current) {
            send_kill(ctl, peer, jid, index, attempt, "stale");
        } else if (job->cancel_requested || job->tasks[off].cancel) {
            /* cancelled while this node was away (a restart of either side):
             * the KILL of ctl_job_cancel had no peer to go to */
            job->tasks[off].kill_sent = true;
            send_kill(ctl, peer, jid, index, attempt, "cancel");
        }
    }
    snprintf(node->host, sizeof node->host, "%s", jstr(b, "host"));
    snprintf(node->backend, sizeof node->backend, "%s", jstr(b, "backend"));
    if (restarted)
        snprintf(node->prev_instance, sizeof node->prev_instance, "%s", node->instance);
    snprintf(node->instance, sizeof node->instance, "%s", instance);
    node->pid = (int)jint(b, "pid");
    node->cpus = (int)jint(b, "cpus");
    node->gpus = (int)jint(b, "gpus");
    node->mem = (uint64_t)jint(b, "mem_bytes");
    const char *ch = jstr(b, "comm_host");
    snprintf(node->comm_host, sizeof node->comm_host, "%s", ch ? ch : "");
    node->comm_port_min = (int)jint(b, "comm_port_min");
    node->comm_port_max = (int)jint(b, "comm_port_max");
    const char *ver = jstr(b, "version");
    if ((restarted || node->state == NODE_STATE_DOWN) && strcmp(ver ? ver : "", MOAT_VERSION) != 0)
        log_warn("ctl", "node %s runs moat-worker %s, this controller %s", name,
                 ver && ver[0] ? ver : "(before 0.1.0)", MOAT_VERSION);
    snprintf(node->version, sizeof node->version, "%s", ver ? ver : "");
    const char *sb = jstr(b, "sandbox");
    snprintf(node->sandbox, sizeof node->sandbox, "%s", sb ? sb : "");
    bool had_egress = node->egress;
    node->egress = json_is_true(eg);
    snprintf(node->egress_route, sizeof node->egress_route, "%s", node->egress && route ? route : "");
    if (node->egress && (restarted || !had_egress))
        log_warn("ctl", "node %s has a route beyond the fabric: %s (egress_policy = warn)", node->name,
                 node->egress_route);
    if (restarted || node->state == NODE_STATE_DOWN) {
        /* a new worker process clears a drain for launch failures, not an admin's */
        node->state = node->drained ? NODE_STATE_DRAINING : NODE_STATE_UP;
        node->launch_failures = 0;
        if (!node->drained)
            node->reason[0] = '\0';
    }
    node->registered = true;
    node->peer = *peer;
    node->last_seen = units_mono();
    node->hb_given = ctl->cfg.heartbeat_interval;
    if (ctl_node_save(ctl, node, err) != 0)
        return -1;
    log_info("ctl", "node %s registered: host=%s pid=%d cpus=%d gpus=%d backend=%s%s", node->name,
             node->host, node->pid, node->cpus, node->gpus, node->backend,
             restarted ? " (new instance)" : "");
    ctl->need_sched = true;
    json_t *reply = json_pack("{s:s, s:I}", "node", node->name, "heartbeat_ms",
                              (json_int_t)(ctl->cfg.heartbeat_interval * 1000));
    return ctl_out_reply(ctl, peer, msg->req_id, reply);
}

int ctl_on_heartbeat(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg,
                     struct err *err)
{
    int n = ctl_node_by_peer(ctl, peer);
    if (n < 0 || strcmp(ctl->nodes[n].instance, jstr(msg->body, "instance")) != 0)
        return err_set(err, ENOTCONN, "heartbeat: node %.64s is not registered; register first",
                       jstr(msg->body, "name"));
    ctl->nodes[n].last_seen = units_mono();
    return ctl_out_reply(ctl, peer, msg->req_id, NULL);
}

int ctl_node_launch_failed(struct ctl *ctl, struct ctl_node *node, const char *what, const char *why,
                           struct err *err)
{
    node->launch_failures++;
    log_warn("ctl", "%s: node %s could not launch it: %s", what, node->name, why ? why : "?");
    if (node->launch_failures < ctl->cfg.drain_after_launch_failures || node->state != NODE_STATE_UP)
        return 0;
    node->state = NODE_STATE_DRAINING;
    snprintf(node->reason, sizeof node->reason, "%d launch failures in a row", node->launch_failures);
    log_warn("ctl", "node %s: DRAINING after %d launch failures in a row", node->name,
             node->launch_failures);
    return ctl_node_save(ctl, node, err);
}

int ctl_on_task_end(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg,
                    struct err *err)
{
    const json_t *b = msg->body;
    int n = ctl_node_by_peer(ctl, peer);
    if (n < 0)
        return err_set(err, ENOTCONN, "task end: sender is not registered; register first");
    struct ctl_node *node = &ctl->nodes[n];
    node->last_seen = units_mono();
    uint64_t jid = (uint64_t)jint(b, "job");
    uint32_t index = (uint32_t)jint(b, "task"), attempt = (uint32_t)jint(b, "attempt");
    int st = job_state_parse(jstr(b, "state"));
    if (st < 0 || !job_state_is_terminal((enum job_state)st))
        return err_set(err, EPROTO, "task end: state '%.16s' is not a final state", jstr(b, "state"));
    const json_t *rankj = json_object_get(b, "rank");
    if (msg->nblobs != (rankj && json_integer_value(rankj) == 0 && st == JOB_STATE_COMPLETED ? 3 : 2))
        return err_set(err, EPROTO, "task end: expected blobs stdout, stderr (and rank 0's output), got %d",
                       msg->nblobs);
    /* N.B. peek: a job with a task running is in memory (ctl_purge.h); a
     * purged one's late report is stale without reading the job back */
    struct ctl_job *job = ctl_job_peek(ctl, jid);
    long off = job ? ctl_task_offset(job, index) : -1;
    struct ctl_task *t = off >= 0 ? &job->tasks[off] : NULL;
    bool infer = t && job->spec.kind == JOB_KIND_INFER;
    if (t && t->state == JOB_STATE_RUNNING && t->attempts == attempt && infer && rankj)
        return ctl_infer_on_end(ctl, peer, msg, n, job, (uint32_t)off, (int)json_integer_value(rankj), err);
    if (t == NULL || infer || t->state != JOB_STATE_RUNNING || t->node != n || t->attempts != attempt) {
        /* A duplicate, or an attempt that is no longer current: acknowledge, store nothing. */
        if (t && attempt < t->attempts) /* it was rerun elsewhere (its node was taken for lost) */
            log_info("ctl", "task %llu.%u attempt %u from %s ended %s after it was requeued; "
                     "attempt %u counts, this result is dropped", (unsigned long long)jid, index,
                     attempt, node->name, jstr(b, "state"), t->attempts);
        else
            log_debug("ctl", "task %llu.%u attempt %u from %s: not current; ignored",
                      (unsigned long long)jid, index, attempt, node->name);
        return ctl_out_reply(ctl, peer, msg->req_id, NULL);
    }
    const json_t *le = json_object_get(b, "launch_error");
    if (le) {
        char what[48];
        snprintf(what, sizeof what, "task %llu.%u", (unsigned long long)jid, index);
        if (ctl_node_launch_failed(ctl, node, what, json_string_value(le), err) != 0)
            return -1;
        if (ctl_task_requeue(ctl, job, (uint32_t)off, true, "launch failed", err) != 0)
            return -1;
        return ctl_out_reply(ctl, peer, msg->req_id, NULL);
    }
    node->launch_failures = 0;
    if (job->spec.kind == JOB_KIND_EXEC && (st == JOB_STATE_FAILED || st == JOB_STATE_TIMEOUT) &&
        !job->cancel_requested && !t->cancel && t->retried < (uint32_t)job->spec.retries) {
        /* --retries: run it again; this attempt's output is not kept (one result a task) */
        char again[96];
        t->retried++;
        snprintf(again, sizeof again, "attempt %u %s (exit %d); retry %u of %d", attempt,
                 st == JOB_STATE_TIMEOUT ? "timed out" : "failed", (int)jint(b, "exit_code"),
                 t->retried, job->spec.retries);
        log_info("ctl", "task %llu.%u: %s", (unsigned long long)jid, index, again);
        if (ctl_task_requeue(ctl, job, (uint32_t)off, false, again, err) != 0)
            return -1;
        if (job->running > 0 || job->done > 0) /* else ctl_task_requeue said so */
            snprintf(job->reason, sizeof job->reason, "task %u: %.80s", index, again);
        return ctl_out_reply(ctl, peer, msg->req_id, NULL);
    }
    const char *why = jstr(b, "reason"); /* the worker ended it: over its --mem */
    char limit[64];
    if ((why == NULL || why[0] == '\0') && st == JOB_STATE_TIMEOUT) {
        char d[32];
        snprintf(limit, sizeof limit, "its time limit (%s) was reached",
                 units_duration_format(job->spec.time_limit, d, sizeof d));
        why = limit;
    }
    if (why && why[0] && st != JOB_STATE_COMPLETED) {
        snprintf(job->reason, sizeof job->reason, "task %u: %s", index, why);
        text_blank_controls(job->reason); /* the worker's words, shown on terminals */
        text_utf8_repair(job->reason);    /* cut at 199 bytes: it goes into JSON */
        ctl_job_final_reason(job);
    }
    /* When the process really started and ended, by the worker's clock; a
     * time before the dispatch or after now (5 minutes of clock skew aside),
     * or an end before the start, is not believed (a worker's broken clock, a
     * forged message): the dispatch and now stand for them. */
    double started = json_number_value(json_object_get(b, "start_time"));
    double ended = json_number_value(json_object_get(b, "end_time")), now = units_now();
    if (!(started >= t->start_time - 300 && started <= ended && ended <= now + 300)) {
        log_warn("ctl", "task %llu.%u: node %s's times (start %.3f, end %.3f) are outside the "
                 "dispatch (%.3f) and now (%.3f); using those", (unsigned long long)jid, index,
                 node->name, started, ended, t->start_time, now);
        started = t->start_time;
        ended = now;
    }
    t->start_time = started;
    struct ctl_result r = {
        .exit_code = (int)jint(b, "exit_code"),
        .signal = (int)jint(b, "signal"),
        .truncated = json_is_true(json_object_get(b, "truncated")),
        .state = (enum job_state)st,
        .out = msg->blobs[0].data,
        .out_len = (uint32_t)msg->blobs[0].len,
        .err = msg->blobs[1].data,
        .err_len = (uint32_t)msg->blobs[1].len,
    };
    size_t len;
    uint8_t *rec = ctl_result_encode(&r, &len);
    if (rec == NULL)
        return err_set(err, ENOMEM, "task end: out of memory");
    /* A result that cannot fit even at store_map_max would fail the whole batch
     * (and every request in it) at each resend: refuse it alone. The worker
     * keeps it and sends it again; nothing is lost, the job says why it waits. */
    if ((uint64_t)len + 65536 > store_room(ctl->store)) {
        free(rec);
        snprintf(job->reason, sizeof job->reason, "task %u: its result (%.1f MiB) waits: the store "
                 "is full (store_map_max)", index, (double)len / 1048576.0);
        log_warn("ctl", "task %llu.%u: result of %zu bytes refused: the store is full at store_map_max; "
                 "its node keeps it and sends it again", (unsigned long long)jid, index, len);
        return err_set(err, ENOSPC, "task end: the controller's store is full (store_map_max): "
                       "result of %zu bytes not stored; keep it and send it again", len);
    }
    uint8_t key[12];
    int rc = ctl_batch(ctl, err);
    if (rc == 0)
        rc = store_put(ctl->store, STORE_DB_RESULTS, key, store_key_task(key, jid, index), rec, len,
                       0, err);
    free(rec);
    if (rc != 0) {
        if (ctl->store_err.code == 0)
            ctl->store_err = *err;
        return -1;
    }
    ctl_task_usage_add(t, b);
    if (ctl_task_end(ctl, job, (uint32_t)off, (enum job_state)st, r.exit_code, r.signal, ended,
                     err) != 0)
        return -1;
    return ctl_out_reply(ctl, peer, msg->req_id, NULL);
}

int ctl_nodes_check(struct ctl *ctl, double now, double heard, struct err *err)
{
    for (int n = 0; n < ctl->nnodes; n++) {
        struct ctl_node *node = &ctl->nodes[n];
        if (node->state == NODE_STATE_DOWN && node->running == 0)
            continue;
        if (heard - node->last_seen <= node_limit(ctl, node))
            continue;
        log_warn("ctl", "node %s: no heartbeat for %.1f s; DOWN", node->name, heard - node->last_seen);
        node->state = NODE_STATE_DOWN;
        node->registered = false;
        if (ctl_node_save(ctl, node, err) != 0)
            return -1;
        char why[96];
        snprintf(why, sizeof why, "node %s lost", node->name);
        if (requeue_lost(ctl, n, NULL, why, err) != 0)
            return -1;
    }
    /* Backstop for time limits: the worker enforces them; this covers a silent worker. */
    double slack = ctl->cfg.kill_grace +
                   ctl->cfg.heartbeat_interval * (double)ctl->cfg.heartbeat_tolerance + 1.0;
    for (uint64_t id = 1; id <= ctl->njobs; id++) {
        struct ctl_job *job = ctl->jobs[id];
        if (job == NULL || job->running == 0 || job->spec.time_limit <= 0)
            continue;
        for (uint32_t off = 0; off < job->ntasks; off++) {
            struct ctl_task *t = &job->tasks[off];
            if (t->state != JOB_STATE_RUNNING || t->deadline <= 0 || now < t->deadline + slack)
                continue;
            /* a node not registered since this controller started (or since it
             * lost it) may hold the task's result: it reports it when it
             * registers, or its tasks are requeued when it is declared DOWN */
            if (t->node >= 0 && !ctl->nodes[t->node].registered)
                continue;
            if (!t->kill_sent && t->node >= 0) {
                t->kill_sent = true;
                ctl_task_kill(ctl, job, off, "timeout");
            } else if (now > t->deadline + 2 * slack) {
                log_warn("ctl", "task %llu.%u: past its time limit and not ended by its node; TIMEOUT",
                         (unsigned long long)id, jobspec_index(&job->spec, off));
                snprintf(job->reason, sizeof job->reason, "task %u: past its time limit, not ended "
                         "by its node", jobspec_index(&job->spec, off));
                if (ctl_task_end(ctl, job, off, JOB_STATE_TIMEOUT, -1, 0, now, err) != 0)
                    return -1;
            }
        }
    }
    return 0;
}
