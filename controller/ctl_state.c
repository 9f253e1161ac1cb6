/* ctl_state.c: jobs, tasks, nodes in memory; their records in the store; recovery; outbox. */
#include "controller/ctl_quota.h"
#include "controller/ctl_state.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "controller/ctl_jobs.h"
#include "controller/ctl_purge.h"
#include "shared/log.h"
#include "shared/units.h"

static const char *const node_state_names[NODE_STATE_COUNT] = {"UP", "DRAINING", "DOWN"};

const char *node_state_name(enum node_state s)
{
    return (unsigned)s < NODE_STATE_COUNT ? node_state_names[s] : "?";
}

void ctl_state_init(struct ctl *ctl, const struct ctl_cfg *cfg, store_t *store, net_sock_t *sock)
{
    memset(ctl, 0, sizeof *ctl);
    ctl->cfg = *cfg;
    ctl->store = store;
    ctl->sock = sock;
    ctl->started = units_mono();
}

void ctl_job_free(struct ctl_job *job)
{
    if (job == NULL)
        return;
    jobspec_clear(&job->spec);
    for (uint32_t i = 0; job->tasks && i < job->ntasks; i++) {
        free(job->tasks[i].ranks);
        free(job->tasks[i].last_ranks);
    }
    free(job->tasks);
    free(job->final_reason);
    json_decref(job->infer);
    free(job->requeue);
    free(job);
}

void ctl_state_free(struct ctl *ctl)
{
    for (uint64_t i = 1; i <= ctl->njobs; i++)
        ctl_job_free(ctl->jobs[i]);
    free(ctl->jobs);
    free(ctl->purge);
    ctl->purge = NULL;
    ctl->purge_head = ctl->npurge = ctl->purge_cap = 0;
    free(ctl->unlive);
    ctl->unlive = NULL;
    ctl->nunlive = ctl->unlive_cap = 0;
    ctl->nresident = 0;
    ctl_quota_free(ctl);
    free(ctl->queue);
    free(ctl->receiving);
    free(ctl->nodes);
    for (int i = 0; i < ctl->nout; i++)
        proto_msg_clear(&ctl->outbox[i].msg);
    free(ctl->outbox);
    ctl->jobs = NULL;
    ctl->queue = NULL;
    ctl->nodes = NULL;
    ctl->outbox = NULL;
    ctl->njobs = ctl->jobs_cap = 0;
    ctl->nqueue = ctl->queue_cap = 0;
    ctl->nnodes = ctl->nodes_cap = 0;
    ctl->nout = ctl->out_cap = 0;
}

void ctl_node_take(struct ctl_node *n, const struct ctl_job *job, struct ctl_task *t)
{
    bool whole = job->spec.kind == JOB_KIND_BENCH;
    t->res_cpus = whole ? n->cpus : job->spec.cpus;
    t->res_gpus = whole ? n->gpus : job->spec.gpus;
    t->res_mem = whole ? n->mem : job->spec.mem;
    n->used_cpus += t->res_cpus;
    n->used_gpus += t->res_gpus;
    n->used_mem += t->res_mem;
    n->running++;
}

void ctl_node_give(struct ctl_node *n, const struct ctl_task *t)
{
    n->used_cpus -= t->res_cpus;
    n->used_gpus -= t->res_gpus;
    n->used_mem -= t->res_mem;
    n->running--;
}

struct ctl_job *ctl_job_peek(const struct ctl *ctl, uint64_t id)
{
    return id >= 1 && id <= ctl->njobs ? ctl->jobs[id] : NULL;
}

struct ctl_job *ctl_job_get(struct ctl *ctl, uint64_t id, struct err *err)
{
    if (id < 1 || id > ctl->njobs) {
        err_set(err, ENOENT, "job %llu: no such job", (unsigned long long)id);
        return NULL;
    }
    if (ctl->jobs[id] != NULL)
        return ctl->jobs[id];
    struct ctl_job *job = ctl_job_read(ctl, id, true, err);
    if (job == NULL) {
        err_prefix(err, "job %llu: cannot read it back from the store", (unsigned long long)id);
        log_error("ctl", "%s", err->msg);
        return NULL;
    }
    ctl->jobs[id] = job;
    ctl->nresident++;
    ctl_purge_note(ctl, job, 0);
    return job;
}

struct ctl_job *ctl_job_new(uint64_t id, struct job_spec *spec, double now, struct err *err)
{
    struct ctl_job *job = calloc(1, sizeof *job);
    uint32_t n = jobspec_ntasks(spec);
    struct ctl_task *tasks = job ? calloc(n, sizeof *tasks) : NULL;
    if (tasks == NULL) {
        free(job);
        err_set(err, ENOMEM, "job %llu: out of memory for %u tasks", (unsigned long long)id, n);
        return NULL;
    }
    for (uint32_t i = 0; i < n; i++) {
        tasks[i].node = -1;
        tasks[i].last_node = -1;
        tasks[i].exit_code = -1;
    }
    job->id = id;
    job->spec = *spec;
    memset(spec, 0, sizeof *spec);
    job->state = JOB_STATE_PENDING;
    job->submit_time = now;
    job->exit_code = -1;
    job->ntasks = n;
    job->tasks = tasks;
    job->docs_received = job->spec.ndocs; /* all, unless the SUBMIT said more follow */
    return job;
}

/* jobs_grow: room in ctl->jobs for one more id. ENOMEM. */
static int jobs_grow(struct ctl *ctl, struct err *err)
{
    if (ctl->njobs + 2 > ctl->jobs_cap) {
        uint64_t cap = ctl->jobs_cap ? ctl->jobs_cap * 2 : 1024;
        struct ctl_job **j = realloc(ctl->jobs, cap * sizeof *j);
        if (j == NULL)
            return err_set(err, ENOMEM, "jobs: out of memory");
        ctl->jobs = j;
        ctl->jobs_cap = cap;
        ctl->jobs[0] = NULL;
    }
    return 0;
}

int ctl_job_add(struct ctl *ctl, struct ctl_job *job, struct err *err)
{
    if (job->id != ctl->njobs + 1)
        return err_set(err, EINVAL, "job %llu: ids must be dense", (unsigned long long)job->id);
    if (jobs_grow(ctl, err) != 0 ||
        (!job_state_is_terminal(job->state) && ctl_quota_note(ctl, job, true, err) != 0))
        return -1;
    ctl->jobs[++ctl->njobs] = job;
    ctl->nresident++;
    ctl->nactive += !job_state_is_terminal(job->state);
    return 0;
}

static bool queue_before(const struct ctl_job *a, const struct ctl_job *b)
{
    if (a->spec.priority != b->spec.priority)
        return a->spec.priority > b->spec.priority;
    return a->id < b->id;
}

char *ctl_docs_closed_why(const struct ctl_job *job)
{
    char why[96];
    snprintf(why, sizeof why, "documents stopped coming: %u of %u received", job->docs_received,
             job->spec.ndocs);
    return strdup(why);
}

int ctl_receiving_add(struct ctl *ctl, uint64_t id, struct err *err)
{
    if (ctl->nreceiving == ctl->receiving_cap) {
        size_t cap = ctl->receiving_cap ? 2 * ctl->receiving_cap : 16;
        uint64_t *r = realloc(ctl->receiving, cap * sizeof *r);
        if (r == NULL)
            return err_set(err, ENOMEM, "receiving: out of memory");
        ctl->receiving = r;
        ctl->receiving_cap = cap;
    }
    ctl->receiving[ctl->nreceiving++] = id;
    return 0;
}

int ctl_queue_add(struct ctl *ctl, struct ctl_job *job, struct err *err)
{
    if (job->queued)
        return 0;
    if (ctl->nqueue + 1 > ctl->queue_cap) {
        uint32_t cap = ctl->queue_cap ? ctl->queue_cap * 2 : 1024;
        struct ctl_job **q = realloc(ctl->queue, cap * sizeof *q);
        if (q == NULL)
            return err_set(err, ENOMEM, "queue: out of memory");
        ctl->queue = q;
        ctl->queue_cap = cap;
    }
    /* Most submissions go to the end (same priority, newest): search from the back. */
    uint32_t pos = ctl->nqueue;
    while (pos > 0 && queue_before(job, ctl->queue[pos - 1]))
        pos--;
    memmove(ctl->queue + pos + 1, ctl->queue + pos, (ctl->nqueue - pos) * sizeof *ctl->queue);
    ctl->queue[pos] = job;
    ctl->nqueue++;
    job->queued = true;
    ctl->need_sched = true;
    return 0;
}

int ctl_task_requeue_push(struct ctl_job *job, uint32_t offset, struct err *err)
{
    if (job->requeue_head > 0 && job->requeue_head == job->nrequeue) {
        job->requeue_head = job->nrequeue = 0;
    }
    if (job->nrequeue + 1 > job->requeue_cap) {
        uint32_t cap = job->requeue_cap ? job->requeue_cap * 2 : 8;
        uint32_t *r = realloc(job->requeue, cap * sizeof *r);
        if (r == NULL)
            return err_set(err, ENOMEM, "job %llu: out of memory", (unsigned long long)job->id);
        job->requeue = r;
        job->requeue_cap = cap;
    }
    job->requeue[job->nrequeue++] = offset;
    return 0;
}

/* ---- records ---- */

int ctl_batch(struct ctl *ctl, struct err *err)
{
    return store_in_batch(ctl->store) ? 0 : store_begin(ctl->store, err);
}

static json_t *time_json(double t) { return t > 0 ? json_real(t) : json_null(); }

static int save_json(struct ctl *ctl, enum store_db db, const void *key, size_t klen, json_t *o,
                     bool append, struct err *err)
{
    if (o == NULL)
        return err_set(err, ENOMEM, "store: out of memory");
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (text == NULL)
        return err_set(err, ENOMEM, "store: out of memory");
    int rc = ctl_batch(ctl, err);
    if (rc == 0)
        rc = store_put(ctl->store, db, key, klen, text, strlen(text), append, err);
    free(text);
    if (rc != 0 && ctl->store_err.code == 0)
        ctl->store_err = *err;
    return rc;
}

int ctl_job_save(struct ctl *ctl, const struct ctl_job *job, bool append, struct err *err)
{
    json_t *spec = jobspec_to_json(&job->spec);
    if (spec == NULL)
        return err_set(err, ENOMEM, "store: out of memory");
    json_t *o = json_pack("{s:o, s:s, s:o, s:o, s:o, s:i, s:s, s:b}", "spec", spec, "state",
                          job_state_name(job->state), "submit_time", time_json(job->submit_time),
                          "start_time", time_json(job->start_time), "end_time",
                          time_json(job->end_time), "exit_code", job->exit_code, "reason",
                          job->reason, "cancel", job->cancel_requested);
    if (o && job_state_is_terminal(job->state) &&
        json_object_set_new(o, "completed", json_integer(job->completed)) != 0) {
        json_decref(o);
        o = NULL;
    }
    if (o && job->held && json_object_set_new(o, "held", json_true()) != 0) {
        json_decref(o);
        o = NULL;
    }
    if (o && (json_object_set_new(o, "cancel_time", time_json(job->cancel_time)) != 0 ||
              json_object_set_new(o, "attempts", json_integer(job->attempts)) != 0 ||
              json_object_set_new(o, "owner", json_string(job->owner)) != 0)) {
        json_decref(o);
        o = NULL;
    }
    if (o && job->infer)
        json_object_set(o, "infer", job->infer);
    if (o && job->docs_received < job->spec.ndocs)
        json_object_set_new(o, "docs_received", json_integer(job->docs_received));
    if (o && job->docs_closed)
        json_object_set_new(o, "docs_closed", json_true());
    uint8_t key[8];
    if (save_json(ctl, STORE_DB_JOBS, key, store_key_job(key, job->id), o, append, err) != 0)
        return -1;
    /* a new job: a restart loads it until it is purged (ctl_purge.h) */
    return append ? ctl_live_put(ctl, job->id, err) : 0;
}

int ctl_task_save(struct ctl *ctl, const struct ctl_job *job, uint32_t offset, struct err *err)
{
    const struct ctl_task *t = &job->tasks[offset];
    const char *node = t->last_node >= 0 ? ctl->nodes[t->last_node].name : "";
    json_t *o = json_pack("{s:s, s:i, s:i, s:s, s:i, s:i, s:o, s:o, s:o}", "state",
                          job_state_name(t->state), "attempts", (int)t->attempts, "launch_fails",
                          (int)t->launch_fails, "node", node, "exit_code", t->exit_code, "signal",
                          t->signal, "start_time", time_json(t->start_time), "end_time",
                          time_json(t->end_time), "deadline", time_json(t->deadline));
    if (o && t->retried)
        json_object_set_new(o, "retried", json_integer(t->retried));
    if (o && t->attempts_base)
        json_object_set_new(o, "attempts_base", json_integer(t->attempts_base));
    if (o && (t->cpu_time > 0 || t->max_rss_kib > 0)) {
        json_object_set_new(o, "cpu_time", json_real(ctl_usage_seconds(t->cpu_time)));
        json_object_set_new(o, "max_rss_kib", json_integer(t->max_rss_kib));
    }
    if (o && t->cancel)
        json_object_set_new(o, "cancel", json_true());
    if (o && t->ranks) {
        json_t *ranks = json_array();
        for (int r = 0; r < job->spec.tp; r++)
            json_array_append_new(ranks, json_string(t->ranks[r] >= 0 ? ctl->nodes[t->ranks[r]].name : ""));
        json_object_set_new(o, "ranks", ranks);
        json_object_set_new(o, "comm_port", json_integer(t->comm_port));
        json_object_set_new(o, "ranks_done", json_integer(t->ranks_done));
    } else if (o && t->last_ranks) {
        json_t *ranks = json_array();
        for (int r = 0; r < job->spec.tp; r++)
            json_array_append_new(ranks, json_string(t->last_ranks[r] >= 0 ? ctl->nodes[t->last_ranks[r]].name
                                                                           : ""));
        json_object_set_new(o, "last_ranks", ranks);
    }
    uint8_t key[12];
    uint32_t index = jobspec_index(&job->spec, offset);
    return save_json(ctl, STORE_DB_TASKS, key, store_key_task(key, job->id, index), o, false, err);
}

int ctl_node_save(struct ctl *ctl, const struct ctl_node *n, struct err *err)
{
    json_t *o = json_pack("{s:s, s:s, s:i, s:i, s:i, s:I, s:s, s:s, s:s, s:s}", "name", n->name,
                          "host", n->host, "pid", n->pid, "cpus", n->cpus, "gpus", n->gpus,
                          "mem_bytes", (json_int_t)n->mem, "backend", n->backend, "state",
                          node_state_name(n->state), "instance", n->instance, "key", n->key);
    if (o)
        json_object_update_new(o, json_pack("{s:f, s:s, s:b, s:s, s:s}", "heartbeat_s", n->hb_given,
                                            "sandbox", n->sandbox, "egress", n->egress,
                                            "egress_route", n->egress_route, "version", n->version));
    if (o && (n->drained || n->removed || n->reason[0]))
        json_object_update_new(o, json_pack("{s:b, s:b, s:s}", "drained", n->drained, "removed",
                                            n->removed, "reason", n->reason));
    return save_json(ctl, STORE_DB_NODES, n->name, strlen(n->name), o, false, err);
}

json_t *ctl_node_json(const struct ctl_node *n)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:I, s:i, s:s, s:i, s:i, s:b}", "name",
                          n->name, "state", node_state_name(n->state), "host", n->host, "pid",
                          n->pid, "cpus", n->cpus, "gpus", n->gpus, "mem_bytes", (json_int_t)n->mem,
                          "running_tasks", n->running, "backend", n->backend, "used_cpus",
                          n->used_cpus, "launch_failures", n->launch_failures, "registered",
                          n->registered);
    if (o == NULL)
        return NULL;
    json_object_set_new(o, "used_gpus", json_integer(n->used_gpus));
    json_object_set_new(o, "used_mem", json_integer((json_int_t)n->used_mem));
    json_object_set_new(o, "sandbox", json_string(n->sandbox[0] ? n->sandbox : "unknown"));
    json_object_set_new(o, "version", json_string(n->version));
    json_object_set_new(o, "egress", json_boolean(n->egress));
    if (n->egress)
        json_object_set_new(o, "egress_route", json_string(n->egress_route));
    json_object_set_new(o, "drained", json_boolean(n->drained));
    json_object_set_new(o, "reason", json_string(n->reason));
    return o;
}

int ctl_node_find(const struct ctl *ctl, const char *name)
{
    for (int i = 0; i < ctl->nnodes; i++)
        if (strcmp(ctl->nodes[i].name, name) == 0)
            return i;
    return -1;
}

int ctl_node_by_peer(const struct ctl *ctl, const struct net_peer *peer)
{
    for (int i = 0; i < ctl->nnodes; i++) {
        const struct ctl_node *n = &ctl->nodes[i];
        if (n->registered && n->peer.len == peer->len && memcmp(n->peer.id, peer->id, peer->len) == 0)
            return i;
    }
    return -1;
}

/* ---- recovery ---- */

static double jnum(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : 0;
}

static int jint(const json_t *o, const char *k, int def)
{
    const json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (int)json_integer_value(v) : def;
}

static const char *jstr(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : "";
}

static int load_node_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    struct ctl *ctl = arg;
    (void)key;
    (void)klen;
    json_t *o = json_loadb(val, vlen, 0, NULL);
    if (o == NULL) {
        log_error("ctl", "recover: unreadable node record skipped");
        return 0;
    }
    if (ctl->nnodes + 1 > ctl->nodes_cap) {
        int cap = ctl->nodes_cap ? ctl->nodes_cap * 2 : 16;
        struct ctl_node *n = realloc(ctl->nodes, (size_t)cap * sizeof *n);
        if (n == NULL) {
            json_decref(o);
            return ENOMEM;
        }
        ctl->nodes = n;
        ctl->nodes_cap = cap;
    }
    struct ctl_node *n = &ctl->nodes[ctl->nnodes++];
    memset(n, 0, sizeof *n);
    snprintf(n->name, sizeof n->name, "%s", jstr(o, "name"));
    snprintf(n->host, sizeof n->host, "%s", jstr(o, "host"));
    snprintf(n->backend, sizeof n->backend, "%s", jstr(o, "backend"));
    snprintf(n->instance, sizeof n->instance, "%s", jstr(o, "instance"));
    snprintf(n->key, sizeof n->key, "%s", jstr(o, "key")); /* "" in records before keys were bound */
    n->pid = jint(o, "pid", 0);
    n->cpus = jint(o, "cpus", 0);
    n->gpus = jint(o, "gpus", 0);
    n->mem = (uint64_t)jnum(o, "mem_bytes");
    const char *st = jstr(o, "state");
    n->state = !strcmp(st, "DOWN") ? NODE_STATE_DOWN
               : !strcmp(st, "DRAINING") ? NODE_STATE_DRAINING : NODE_STATE_UP;
    n->drained = json_is_true(json_object_get(o, "drained"));
    n->removed = json_is_true(json_object_get(o, "removed"));
    snprintf(n->reason, sizeof n->reason, "%s", jstr(o, "reason"));
    /* as the node last registered (records before these fields: unknown) */
    n->hb_given = jnum(o, "heartbeat_s");
    snprintf(n->sandbox, sizeof n->sandbox, "%s", jstr(o, "sandbox"));
    n->egress = json_is_true(json_object_get(o, "egress"));
    snprintf(n->egress_route, sizeof n->egress_route, "%s", jstr(o, "egress_route"));
    snprintf(n->version, sizeof n->version, "%s", jstr(o, "version"));
    n->registered = false;
    n->last_seen = units_mono();
    json_decref(o);
    return 0;
}

/* job_placeholder: a FAILED job standing for id, whose record is missing or
 * unreadable (corruption: the rest of the store keeps being served). */
static struct ctl_job *job_placeholder(uint64_t id, const char *why, struct err *err)
{
    struct job_spec none = {0};
    struct ctl_job *job = ctl_job_new(id, &none, 0, err);
    if (job != NULL) {
        job->state = JOB_STATE_FAILED;
        snprintf(job->reason, sizeof job->reason, "%s", why);
    }
    return job;
}

/* job_decode: a new job from its record (val, vlen); a placeholder when the
 * record is unreadable (logged). NULL only with ENOMEM. */
static struct ctl_job *job_decode(uint64_t id, const void *val, size_t vlen, struct err *err)
{
    struct err e = {0};
    json_t *o = json_loadb(val, vlen, 0, NULL);
    struct job_spec spec;
    if (o == NULL || jobspec_from_json(&spec, json_object_get(o, "spec"), &e) != 0) {
        /* Refused at submit if invalid, so this means corruption: keep serving. */
        log_error("ctl", "job %llu: unreadable record: %s", (unsigned long long)id,
                  o ? e.msg : "invalid JSON");
        json_decref(o);
        return job_placeholder(id, "unreadable record", err);
    }
    struct ctl_job *job = ctl_job_new(id, &spec, jnum(o, "submit_time"), err);
    if (job == NULL) {
        jobspec_clear(&spec);
        json_decref(o);
        return NULL;
    }
    int st = job_state_parse(jstr(o, "state"));
    job->state = st < 0 ? JOB_STATE_PENDING : (enum job_state)st;
    job->start_time = jnum(o, "start_time");
    job->end_time = jnum(o, "end_time");
    job->exit_code = jint(o, "exit_code", -1);
    /* records of jobs that ended before the count was kept: all of them */
    job->completed = (uint32_t)jint(o, "completed", job->state == JOB_STATE_COMPLETED ? job->ntasks : 0);
    snprintf(job->reason, sizeof job->reason, "%s", jstr(o, "reason"));
    job->cancel_requested = json_is_true(json_object_get(o, "cancel"));
    job->held = json_is_true(json_object_get(o, "held"));
    job->cancel_time = jnum(o, "cancel_time");
    job->attempts = (uint32_t)jint(o, "attempts", 0);
    snprintf(job->owner, sizeof job->owner, "%s", jstr(o, "owner"));
    job->infer = json_incref(json_object_get(o, "infer"));
    json_int_t got = jint(o, "docs_received", job->spec.ndocs); /* absent: all came */
    job->docs_received = got >= 0 && got < job->spec.ndocs ? (uint32_t)got : job->spec.ndocs;
    job->docs_mono = units_mono(); /* its sender has documents_timeout from now to go on */
    job->docs_closed = json_is_true(json_object_get(o, "docs_closed")) && job->docs_received < job->spec.ndocs;
    if (job->docs_closed && !job_state_is_terminal(job->state)) /* its reason when it ends */
        job->final_reason = ctl_docs_closed_why(job);
    json_decref(o);
    return job;
}

/* slot_purged: the next id's slot, empty: a finished job left in the store
 * (ctl_purge.h). ENOMEM. */
static int slot_purged(struct ctl *ctl, struct err *err)
{
    if (jobs_grow(ctl, err) != 0)
        return -1;
    ctl->jobs[++ctl->njobs] = NULL;
    return 0;
}

/* purged_long_ago: the record (val, vlen) is of a job that finished more than
 * inactive_age before now (Unix s): recovery leaves it in the store. */
static bool purged_long_ago(const struct ctl *ctl, const void *val, size_t vlen, double now)
{
    json_t *o = json_loadb(val, vlen, 0, NULL);
    int st = job_state_parse(jstr(o, "state"));
    double end = jnum(o, "end_time");
    json_decref(o);
    return st >= 0 && job_state_is_terminal((enum job_state)st) && end > 0 &&
           end + ctl->cfg.inactive_age <= now;
}

static int load_job_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    struct ctl *ctl = arg;
    if (klen != 8)
        return 0;
    uint64_t id = store_key_get64(key);
    struct err e = {0};
    /* Ids are dense; a gap (never expected) is filled with a placeholder FAILED job
     * (read back as one, ctl_job_read, once purged). */
    while (ctl->njobs + 1 < id) {
        struct ctl_job *gap = job_placeholder(ctl->njobs + 1, "record missing", &e);
        if (gap == NULL || ctl_job_add(ctl, gap, &e) != 0) {
            ctl_job_free(gap);
            return ENOMEM;
        }
    }
    if (purged_long_ago(ctl, val, vlen, units_now()))
        return slot_purged(ctl, &e) != 0 ? ENOMEM : 0;
    struct ctl_job *job = job_decode(id, val, vlen, &e);
    if (job == NULL || ctl_job_add(ctl, job, &e) != 0) {
        ctl_job_free(job);
        return ENOMEM;
    }
    return 0;
}

/* task_decode: task index of job from its record. recovering: a RUNNING task
 * takes its node's resources again (or goes back to PENDING when its node is
 * unknown); reading a finished job back (ctl_job_read), nothing is taken. */
static void task_decode(struct ctl *ctl, struct ctl_job *job, uint32_t index, const void *val,
                        size_t vlen, bool recovering)
{
    uint64_t id = job->id;
    long offset = job->tasks ? jobspec_offset(&job->spec, index) : -1;
    if (offset < 0 || (uint32_t)offset >= job->ntasks) {
        log_warn("ctl", "task %llu.%u has no job; skipped", (unsigned long long)id, index);
        return;
    }
    uint32_t off = (uint32_t)offset;
    json_t *o = json_loadb(val, vlen, 0, NULL);
    if (o == NULL) {
        log_error("ctl", "task %llu.%u: unreadable record", (unsigned long long)id, index);
        return;
    }
    struct ctl_task *t = &job->tasks[off];
    int st = job_state_parse(jstr(o, "state"));
    t->state = st < 0 ? JOB_STATE_PENDING : (enum job_state)st;
    t->attempts = (uint32_t)jint(o, "attempts", 0);
    if (t->attempts > job->attempts)
        job->attempts = t->attempts;
    t->launch_fails = (uint32_t)jint(o, "launch_fails", 0);
    t->retried = (uint32_t)jint(o, "retried", 0);
    t->attempts_base = (uint32_t)jint(o, "attempts_base", 0);
    if (t->attempts_base > t->attempts)
        t->attempts_base = t->attempts;
    t->cancel = json_is_true(json_object_get(o, "cancel"));
    t->exit_code = jint(o, "exit_code", -1);
    t->signal = jint(o, "signal", 0);
    t->cpu_time = (float)jnum(o, "cpu_time");
    long long kib = jint(o, "max_rss_kib", 0);
    t->max_rss_kib = kib > 0 && kib <= UINT32_MAX ? (uint32_t)kib : 0;
    t->start_time = jnum(o, "start_time");
    t->end_time = jnum(o, "end_time");
    t->deadline = jnum(o, "deadline");
    t->node = -1;
    int n = ctl_node_find(ctl, jstr(o, "node"));
    t->last_node = n;
    const json_t *ranks = json_object_get(o, "ranks");
    if (t->state == JOB_STATE_RUNNING && json_is_array(ranks) &&
        json_array_size(ranks) == (size_t)job->spec.tp && job->spec.tp > 0) {
        t->ranks = calloc((size_t)job->spec.tp, sizeof *t->ranks);
        for (int r = 0; t->ranks && r < job->spec.tp; r++) {
            t->ranks[r] = (int16_t)ctl_node_find(ctl, json_string_value(json_array_get(ranks, (size_t)r)) ?: "");
            if (t->ranks[r] < 0)
                n = -1; /* a rank's node is unknown: requeue below */
        }
        t->comm_port = jint(o, "comm_port", 0);
        t->ranks_done = (uint32_t)jint(o, "ranks_done", 0);
    }
    const json_t *last = json_object_get(o, "last_ranks");
    if (t->state != JOB_STATE_RUNNING && json_is_array(last) && job->spec.tp > 1 &&
        json_array_size(last) == (size_t)job->spec.tp &&
        (t->last_ranks = calloc((size_t)job->spec.tp, sizeof *t->last_ranks)) != NULL)
        for (int r = 0; r < job->spec.tp; r++)
            t->last_ranks[r] = (int16_t)ctl_node_find(ctl, json_string_value(json_array_get(last, (size_t)r)) ?: "");
    if (t->state == JOB_STATE_RUNNING && recovering) {
        if (n >= 0 && (t->ranks || job->spec.kind != JOB_KIND_INFER)) {
            t->node = n;
            for (int r = 0; r < (t->ranks ? job->spec.tp : 1); r++) {
                ctl_node_take(&ctl->nodes[t->ranks ? t->ranks[r] : n], job, t);
            }
        } else {
            free(t->ranks);
            t->ranks = NULL;
            t->state = JOB_STATE_PENDING; /* node unknown: requeue below */
        }
    }
    if (off + 1 > job->next_index)
        job->next_index = off + 1;
    json_decref(o);
}

static int load_task_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    struct ctl *ctl = arg;
    if (klen != 12)
        return 0;
    uint64_t id = store_key_get64(key);
    struct ctl_job *job = ctl_job_peek(ctl, id);
    if (job == NULL) {
        if (id < 1 || id > ctl->njobs) /* else: its job stays in the store */
            log_warn("ctl", "recover: task %llu.%u has no job; skipped", (unsigned long long)id,
                     store_key_get32((const uint8_t *)key + 8));
        return 0;
    }
    task_decode(ctl, job, store_key_get32((const uint8_t *)key + 8), val, vlen, true);
    return 0;
}

/* job_settle_finished: a finished job's counters from its tasks; tasks it never
 * started (no record) are CANCELLED when the job was (as ctl_job_cancel left
 * them in memory). */
static void job_settle_finished(struct ctl_job *job)
{
    job->running = 0;
    job->completed = 0;
    for (uint32_t off = 0; off < job->ntasks; off++) {
        struct ctl_task *t = &job->tasks[off];
        job->completed += t->state == JOB_STATE_COMPLETED;
        if (t->state == JOB_STATE_RUNNING) {
            job->running++;
        } else if (!job_state_is_terminal(t->state)) {
            t->state = JOB_STATE_CANCELLED;
            if (t->end_time == 0)
                t->end_time = job->cancel_time > 0 ? job->cancel_time : job->end_time;
        }
    }
    job->done = job->ntasks - job->running;
}

/* ---- reading a finished job back ---- */

struct task_walk {
    struct ctl *ctl;
    struct ctl_job *job;
    bool recovering; /* task_decode's */
};

static int job_tasks_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    struct task_walk *w = arg;
    if (klen != 12 || store_key_get64(key) != w->job->id)
        return 1; /* past this job's tasks */
    task_decode(w->ctl, w->job, store_key_get32((const uint8_t *)key + 8), val, vlen,
                w->recovering);
    return 0;
}

/* job_tasks_load: job's task records, in one range scan from its first key.
 * 0, or -1 with err (store errors). */
static int job_tasks_load(struct ctl *ctl, struct ctl_job *job, bool recovering, struct err *err)
{
    uint8_t key[12];
    struct task_walk w = {ctl, job, recovering};
    return store_foreach_from(ctl->store, STORE_DB_TASKS, key, store_key_task(key, job->id, 0),
                              job_tasks_cb, &w, err) < 0 ? -1 : 0;
}

struct ctl_job *ctl_job_read(struct ctl *ctl, uint64_t id, bool with_tasks, struct err *err)
{
    if (id < 1 || id > ctl->njobs) {
        err_set(err, ENOENT, "job %llu: no such job", (unsigned long long)id);
        return NULL;
    }
    uint8_t key[12];
    void *val = NULL;
    size_t len = 0;
    struct ctl_job *job;
    struct err ge = {0}; /* ENOENT is no error here: the id's record is missing */
    if (store_get(ctl->store, STORE_DB_JOBS, key, store_key_job(key, id), &val, &len, &ge) == 0)
        job = job_decode(id, val, len, err);
    else if (ge.code == ENOENT)
        job = job_placeholder(id, "record missing", err);
    else {
        *err = ge;
        return NULL;
    }
    free(val);
    if (job == NULL)
        return NULL;
    if (!with_tasks && job_state_is_terminal(job->state)) {
        job->running = 0; /* finished: every task ended */
        job->done = job->ntasks;
        return job;
    }
    if (job_tasks_load(ctl, job, false, err) != 0) {
        ctl_job_free(job);
        return NULL;
    }
    if (job_state_is_terminal(job->state))
        job_settle_finished(job);
    return job;
}

/* recover_scan: load from every job and task record: a store of schema 1,
 * written before the index of jobs in memory existed (ctl_purge.h). */
static int recover_scan(struct ctl *ctl, struct err *err)
{
    if (store_foreach(ctl->store, STORE_DB_JOBS, load_job_cb, ctl, err) != 0)
        return err->code ? -1 : err_set(err, ENOMEM, "recover: jobs: out of memory");
    if (store_foreach(ctl->store, STORE_DB_TASKS, load_task_cb, ctl, err) != 0)
        return err->code ? -1 : err_set(err, ENOMEM, "recover: tasks: out of memory");
    return 0;
}

/* recover_index: after recover_scan, in one batch: the index of the jobs now
 * in memory, and the schema version that says it is there. */
static int recover_index(struct ctl *ctl, struct err *err)
{
    for (uint64_t id = 1; id <= ctl->njobs; id++)
        if (ctl->jobs[id] != NULL && ctl_live_put(ctl, id, err) != 0)
            goto fail;
    if (ctl_batch(ctl, err) != 0 || store_set_schema(ctl->store, err) != 0 ||
        store_commit(ctl->store, err) != 0)
        goto fail;
    ctl->nunlive = 0; /* dropped before they were put */
    log_info("ctl", "store: indexed %llu of %llu jobs for restarts (schema %d)",
             (unsigned long long)ctl->nresident, (unsigned long long)ctl->njobs,
             STORE_SCHEMA_VERSION);
    return 0;
fail:
    store_abort(ctl->store);
    ctl->store_err = (struct err){0};
    return -1;
}

/* slots_reserve: jobs[1..n] empty (purged) slots; njobs = n. ENOMEM. */
static int slots_reserve(struct ctl *ctl, uint64_t n, struct err *err)
{
    uint64_t cap = ctl->jobs_cap ? ctl->jobs_cap : 1024;
    while (cap < n + 2)
        cap *= 2;
    if (cap > ctl->jobs_cap) {
        struct ctl_job **j = realloc(ctl->jobs, cap * sizeof *j);
        if (j == NULL)
            return err_set(err, ENOMEM, "recover: %llu job slots: out of memory",
                           (unsigned long long)n);
        ctl->jobs = j;
        ctl->jobs_cap = cap;
    }
    for (uint64_t id = ctl->njobs + 1; id <= n; id++)
        ctl->jobs[id] = NULL;
    ctl->jobs[0] = NULL;
    ctl->njobs = n;
    return 0;
}

struct id_list {
    uint64_t *ids;
    size_t n, cap;
};

static int collect_id_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    (void)val, (void)vlen;
    struct id_list *l = arg;
    if (klen != 8)
        return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        uint64_t *ids = realloc(l->ids, cap * sizeof *ids);
        if (ids == NULL)
            return ENOMEM;
        l->ids = ids;
        l->cap = cap;
    }
    l->ids[l->n++] = store_key_get64(key);
    return 0;
}

/* recover_live: load the jobs of the index (ctl_purge.h) and their tasks;
 * every other id up to the last job record is an empty slot, read back on
 * demand. An entry of a job finished long ago, or without a record, is
 * dropped from the index. Costs what is in memory, not the store's history. */
static int recover_live(struct ctl *ctl, struct err *err)
{
    uint8_t last[8];
    size_t klen = 0, vlen = 0;
    void *val = NULL;
    struct err le = {0};
    uint64_t njobs = 0;
    if (store_last(ctl->store, STORE_DB_JOBS, last, sizeof last, &klen, &val, &vlen, &le) == 0) {
        free(val);
        njobs = klen == 8 ? store_key_get64(last) : 0;
    } else if (le.code != ENOENT) {
        *err = le;
        return -1;
    }
    if (slots_reserve(ctl, njobs, err) != 0)
        return -1;
    struct id_list live = {0};
    if (store_foreach(ctl->store, STORE_DB_LIVE, collect_id_cb, &live, err) != 0) {
        free(live.ids);
        return err->code ? -1 : err_set(err, ENOMEM, "recover: index: out of memory");
    }
    double now = units_now();
    int rc = 0;
    for (size_t i = 0; i < live.n && rc == 0; i++) {
        uint64_t id = live.ids[i];
        uint8_t key[8];
        struct err ge = {0};
        val = NULL;
        if (id < 1 || id > njobs ||
            store_get(ctl->store, STORE_DB_JOBS, key, store_key_job(key, id), &val, &vlen, &ge) != 0) {
            if (ge.code != 0 && ge.code != ENOENT) {
                *err = ge;
                rc = -1;
                break;
            }
            log_warn("ctl", "recover: job %llu is indexed but has no record; left out",
                     (unsigned long long)id);
            ctl_live_drop(ctl, id);
            continue;
        }
        if (purged_long_ago(ctl, val, vlen, now)) {
            free(val);
            ctl_live_drop(ctl, id);
            continue;
        }
        struct ctl_job *job = job_decode(id, val, vlen, err);
        free(val);
        if (job == NULL) {
            rc = -1;
            break;
        }
        ctl->jobs[id] = job;
        ctl->nresident++;
        rc = job_tasks_load(ctl, job, true, err);
    }
    free(live.ids);
    return rc;
}

int ctl_state_recover(struct ctl *ctl, struct err *err)
{
    if (store_foreach(ctl->store, STORE_DB_NODES, load_node_cb, ctl, err) != 0)
        return err->code ? -1 : err_set(err, ENOMEM, "recover: nodes: out of memory");
    bool migrate = store_schema(ctl->store) < STORE_SCHEMA_VERSION;
    if ((migrate ? recover_scan(ctl, err) : recover_live(ctl, err)) != 0)
        return -1;
    double now = units_now();
    for (uint64_t id = 1; id <= ctl->njobs; id++) {
        struct ctl_job *job = ctl->jobs[id];
        if (job == NULL)
            continue; /* finished long ago: left in the store */
        for (uint32_t off = 0; off < job->ntasks; off++) {
            struct ctl_task *t = &job->tasks[off];
            if (t->state == JOB_STATE_RUNNING) {
                job->running++;
            } else if (job_state_is_terminal(t->state)) {
                job->done++;
                job->completed += t->state == JOB_STATE_COMPLETED;
            } else if (job->cancel_requested && !job_state_is_terminal(job->state)) {
                /* cancelled while others ran: ctl_job_cancel ended it in memory only
                 * (no record); the job ends when its running tasks do */
                t->state = JOB_STATE_CANCELLED;
                t->end_time = job->cancel_time > 0 ? job->cancel_time : now;
                job->done++;
            } else if (job->docs_closed && off >= ctl_job_ready(job)) {
                /* its documents never came (ctl_infer_expire): no record */
                t->state = JOB_STATE_CANCELLED;
                t->end_time = now;
                job->done++;
            } else if (t->cancel) {
                /* cancelled alone while it ran, and its node is unknown now
                 * (task_decode made it PENDING): it stays cancelled */
                t->state = JOB_STATE_CANCELLED;
                t->end_time = now;
                job->done++;
                if (ctl_task_save(ctl, job, off, err) != 0)
                    return -1;
            } else if (off < job->next_index && ctl_task_requeue_push(job, off, err) != 0) {
                return -1;
            }
        }
        if (!job_state_is_terminal(job->state) && !job->cancel_requested && job->running == 0 &&
            job->done == job->ntasks && ctl_job_maybe_finish(ctl, job, now, err) != 0)
            return -1; /* its last task was such a one */
        if (job->cancel_requested && !job_state_is_terminal(job->state)) {
            job->next_index = job->ntasks;
            job->requeue_head = job->nrequeue;
            if (job->running == 0 && job->done == job->ntasks) {
                /* its last running task came back PENDING (its node unknown): nothing
                 * of it runs any more, so the cancel is complete */
                job->state = JOB_STATE_CANCELLED;
                job->end_time = job->cancel_time > 0 ? job->cancel_time : now;
                job->exit_code = -1;
                if (ctl_job_save(ctl, job, false, err) != 0)
                    return -1;
            }
        }
        if (job_state_is_terminal(job->state)) {
            /* Tasks a cancelled or failed job never started have no record. */
            job_settle_finished(job);
            ctl_purge_note(ctl, job, job->end_time > 0 ? now - job->end_time : 0);
            continue;
        }
        /* Tasks never started are implied PENDING; requeued ones are on the list. */
        if ((job->next_index < job->ntasks || job->nrequeue > job->requeue_head) &&
            ctl_queue_add(ctl, job, err) != 0)
            return -1;
        if (ctl_job_receiving(job) && !job->cancel_requested && ctl_receiving_add(ctl, id, err) != 0)
            return -1;
    }
    ctl->nactive = 0;
    for (uint64_t id = 1; id <= ctl->njobs; id++)
        ctl->nactive += ctl->jobs[id] != NULL && !job_state_is_terminal(ctl->jobs[id]->state);
    if (ctl_quota_recount(ctl, err) != 0)
        return -1;
    ctl->need_sched = true;
    /* the loaded finished jobs in the order they may go (noted in id order) */
    ctl_purge_sort(ctl);
    ctl_purge_run(ctl, units_mono());
    if (migrate && recover_index(ctl, err) != 0)
        return -1;
    /* A node's silence counts from now: its heartbeats of the recovery (seconds
     * for a million task records) wait unread in the socket. */
    double mono = units_mono();
    for (int i = 0; i < ctl->nnodes; i++)
        ctl->nodes[i].last_seen = mono;
    return 0;
}

/* ---- outbox ---- */

static struct ctl_out *out_new(struct ctl *ctl)
{
    if (ctl->nout + 1 > ctl->out_cap) {
        int cap = ctl->out_cap ? ctl->out_cap * 2 : 256;
        struct ctl_out *o = realloc(ctl->outbox, (size_t)cap * sizeof *o);
        if (o == NULL)
            return NULL;
        ctl->outbox = o;
        ctl->out_cap = cap;
    }
    return &ctl->outbox[ctl->nout++];
}

static int out_push(struct ctl *ctl, const struct net_peer *peer, enum proto_type type,
                    uint64_t req_id, json_t *body, bool is_reply)
{
    struct ctl_out *o = body ? out_new(ctl) : NULL;
    if (o == NULL) {
        json_decref(body);
        log_error("ctl", "outbox: out of memory; message dropped");
        return -1;
    }
    o->peer = *peer;
    o->is_reply = is_reply;
    proto_msg_init(&o->msg, type, req_id, body);
    return 0;
}

int ctl_out_reply(struct ctl *ctl, const struct net_peer *peer, uint64_t req_id, json_t *body)
{
    return out_push(ctl, peer, PROTO_TYPE_REPLY, req_id, body ? body : json_object(), true);
}

int ctl_out_error(struct ctl *ctl, const struct net_peer *peer, uint64_t req_id, const struct err *e)
{
    return out_push(ctl, peer, PROTO_TYPE_ERROR, req_id, proto_error_body(e), false);
}

int ctl_out_send(struct ctl *ctl, const struct net_peer *peer, enum proto_type type, json_t *body)
{
    return out_push(ctl, peer, type, 0, body, false);
}

struct proto_msg *ctl_out_last(struct ctl *ctl)
{
    return ctl->nout ? &ctl->outbox[ctl->nout - 1].msg : NULL;
}

/* ---- views ---- */

double ctl_usage_seconds(double s)
{
    return round(s * 1e6) / 1e6;
}

json_t *ctl_task_json(const struct ctl *ctl, const struct ctl_job *job, uint32_t off)
{
    const struct ctl_task *t = &job->tasks[off];
    json_t *to = json_object();
    json_object_set_new(to, "index", json_integer(jobspec_index(&job->spec, off)));
    json_object_set_new(to, "state", json_string(job_state_name(t->state)));
    json_object_set_new(to, "attempts", json_integer(t->attempts));
    json_object_set_new(to, "node", t->last_node >= 0 ? json_string(ctl->nodes[t->last_node].name)
                                                      : json_null());
    /* a TP group: every rank's node, rank order: running, else of the latest attempt */
    const int16_t *rk = t->ranks ? t->ranks : t->last_ranks;
    if (rk) {
        json_t *ranks = json_array();
        for (int r = 0; r < job->spec.tp; r++)
            json_array_append_new(ranks, rk[r] >= 0 ? json_string(ctl->nodes[rk[r]].name) : json_null());
        json_object_set_new(to, "ranks", ranks);
    }
    /* null until it ends, and for one that never ran (cancelled while pending) */
    json_object_set_new(to, "exit_code", job_state_is_terminal(t->state) && t->attempts > 0
                                             ? json_integer(t->exit_code) : json_null());
    /* the signal that killed it (exit_code -1), 0 when it exited; null likewise */
    json_object_set_new(to, "signal", job_state_is_terminal(t->state) && t->attempts > 0
                                          ? json_integer(t->signal) : json_null());
    /* what its node(s) measured (TASK_END): null until it ends, or when none
     * said; max_rss null too for a task shorter than a sample (0.5 s) */
    bool used = job_state_is_terminal(t->state) && (t->cpu_time > 0 || t->max_rss_kib > 0);
    json_object_set_new(to, "cpu_time", used ? json_real(ctl_usage_seconds(t->cpu_time)) : json_null());
    json_object_set_new(to, "max_rss", used && t->max_rss_kib > 0
                                           ? json_integer((json_int_t)t->max_rss_kib * 1024)
                                           : json_null());
    json_object_set_new(to, "start_time", time_json(t->start_time));
    json_object_set_new(to, "end_time", time_json(t->end_time));
    return to;
}

json_t *ctl_job_json(const struct ctl_job *job)
{
    uint32_t attempts = job->attempts;
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer((json_int_t)job->id));
    json_object_set_new(o, "name", json_string(job->spec.name));
    json_object_set_new(o, "kind", json_string(job_kind_name(job->spec.kind)));
    json_object_set_new(o, "state", json_string(job_state_name(job->state)));
    json_object_set_new(o, "attempts", json_integer(attempts));
    json_object_set_new(o, "submit_time", time_json(job->submit_time));
    json_object_set_new(o, "start_time", time_json(job->start_time));
    json_object_set_new(o, "end_time", time_json(job->end_time));
    json_object_set_new(o, "exit_code", job_state_is_terminal(job->state) && attempts > 0
                                            ? json_integer(job->exit_code) : json_null());
    /* the share of its tasks COMPLETED: what a cancelled or failed job got done */
    json_object_set_new(o, "progress", json_real(job->ntasks ? (double)job->completed / job->ntasks : 1.0));
    json_object_set_new(o, "priority", json_integer(job->spec.priority));
    json_object_set_new(o, "cpus", json_integer(job->spec.cpus));
    json_object_set_new(o, "gpus", json_integer(job->spec.gpus));
    json_object_set_new(o, "mem", json_integer((json_int_t)job->spec.mem));
    json_object_set_new(o, "ntasks", json_integer(job->ntasks));
    json_object_set_new(o, "running", json_integer(job->running));
    json_object_set_new(o, "done", json_integer(job->done));
    char wait_docs[96]; /* an infer job with all it got done: said as it is, not stored */
    if (ctl_job_receiving(job) && job->running == 0 && !job->held && !job->cancel_requested &&
        !job_state_is_terminal(job->state) && job->next_index >= ctl_job_ready(job) &&
        job->requeue_head >= job->nrequeue)
        snprintf(wait_docs, sizeof wait_docs, "waiting for documents (%u of %u received)",
                 job->docs_received, job->spec.ndocs);
    else
        wait_docs[0] = '\0';
    json_object_set_new(o, "reason", json_string(wait_docs[0] ? wait_docs : job->reason));
    json_object_set_new(o, "held", json_boolean(job->held));
    json_object_set_new(o, "owner", job->owner[0] ? json_string(job->owner) : json_null());
    json_t *argv = json_array();
    for (int i = 0; i < job->spec.argc; i++)
        json_array_append_new(argv, json_string(job->spec.argv[i]));
    json_object_set_new(o, "argv", argv);
    if (job->spec.is_array) {
        char buf[JOBSPEC_ARRAY_RANGES_MAX * 32];
        jobspec_array_format(&job->spec, buf, sizeof buf);
        json_object_set_new(o, "array", json_string(buf));
    }
    if (job->spec.kind == JOB_KIND_INFER) {
        json_object_set_new(o, "model", json_string(job->spec.model));
        json_object_set_new(o, "tp", json_integer(job->spec.tp));
        json_object_set_new(o, "batch", json_integer(job->spec.batch));
        json_object_set_new(o, "max_len", json_integer(job->spec.max_len));
        json_object_set_new(o, "ndocs", json_integer(job->spec.ndocs));
        json_object_set_new(o, "docs_received", json_integer(job->docs_received));
    }
    if (job->spec.kind == JOB_KIND_BENCH) {
        json_t *spec = jobspec_to_json(&job->spec);
        json_object_set(o, "bench", json_object_get(spec, "bench"));
        json_object_set(o, "nodes", json_object_get(spec, "nodes"));
        json_decref(spec);
    }
    if (job->spec.begin > 0)
        json_object_set_new(o, "begin", json_real(job->spec.begin));
    if (job->spec.time_limit > 0)
        json_object_set_new(o, "time_limit", json_real(job->spec.time_limit));
    if (job->spec.retries > 0)
        json_object_set_new(o, "retries", json_integer(job->spec.retries));
    if (job->spec.nenv > 0) { /* --env: the names only (values may be credentials) */
        json_t *names = json_array();
        for (int i = 0; i < job->spec.nenv; i++)
            json_array_append_new(names, json_stringn(job->spec.env[i],
                                                      strcspn(job->spec.env[i], "=")));
        json_object_set_new(o, "env", names);
    }
    for (int kind = 0; kind < JOBSPEC_DEP_COUNT; kind++) {
        json_t *a = NULL;
        for (int i = 0; i < job->spec.nafter; i++) {
            if (job->spec.after_kind && job->spec.after_kind[i] != kind)
                continue;
            if (!job->spec.after_kind && kind != JOBSPEC_DEP_OK)
                continue;
            if (a == NULL)
                a = json_array();
            json_array_append_new(a, json_integer((json_int_t)job->spec.after[i]));
        }
        if (a)
            json_object_set_new(o, jobspec_dep_key((enum jobspec_dep)kind), a);
    }
    return o;
}
