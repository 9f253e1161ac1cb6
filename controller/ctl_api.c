/* ctl_api.c: the client-facing request handlers. */
#include "controller/ctl_api.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "controller/ctl_audit.h"
#include "controller/ctl_auth.h"
#include "controller/ctl_bench.h"
#include "controller/ctl_infer.h"
#include "controller/ctl_jobs.h"
#include "controller/ctl_quota.h"
#include "controller/ctl_result.h"
#include "controller/ctl_sched.h"
#include "shared/log.h"
#include "shared/units.h"
#include "shared/version.h"

int ctl_on_ping(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err)
{
    (void)err;
    json_int_t active = (json_int_t)ctl->nactive;
    int nodes = 0;
    for (int i = 0; i < ctl->nnodes; i++)
        nodes += !ctl->nodes[i].removed;
    json_t *b = json_pack("{s:s, s:f, s:I, s:I, s:I, s:i, s:f}", "version", MOAT_VERSION, "time",
                          units_now(), "jobs", (json_int_t)ctl->njobs, "active", active,
                          "resident", (json_int_t)ctl->nresident, "nodes", nodes,
                          "recovery_ms", ctl->recovery_s * 1e3);
    return ctl_out_reply(ctl, peer, msg->req_id, b);
}

int ctl_on_submit(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err)
{
    struct job_spec spec;
    struct ctl_job *job = NULL;
    json_t *sj = json_object_get(msg->body, "spec"), *docs = NULL, *ids = NULL, *lines = NULL;
    const char *kind = json_string_value(json_object_get(sj, "kind"));
    if (kind && strcmp(kind, "infer") == 0) {
        if (ctl_infer_prepare(msg, sj, &docs, &ids, &lines, err) != 0)
            return -1;
    } else if (msg->nblobs) {
        return err_set(err, EINVAL, "submit: only infer jobs carry documents");
    }
    if (jobspec_from_json(&spec, sj, err) != 0)
        goto fail_docs;
    char why[160];
    if (ctl_bench_expand(ctl, &spec, err) != 0 ||
        (spec.kind == JOB_KIND_INFER && ctl_infer_check(ctl, &spec, err) != 0))
        goto fail_spec;
    if (!ctl_sched_feasible(ctl, &spec, why, sizeof why)) { /* as sbatch: refused, not PENDING for ever */
        err_set(err, EINVAL, "submit: %s: the job could never start", why);
        goto fail_spec;
    }
    for (int i = 0; i < spec.nafter; i++) {
        if (spec.after[i] < 1 || spec.after[i] > ctl->njobs) {
            err_set(err, ENOENT, "dependency: job %llu does not exist", (unsigned long long)spec.after[i]);
            goto fail_spec;
        }
    }
    /* before the tasks are allocated: an infer spec's ndocs is the client's word */
    if (ctl_quota_check(ctl, peer->key, jobspec_ntasks(&spec), err) != 0) {
        err_prefix(err, "submit");
        goto fail_spec;
    }
    if ((job = ctl_job_new(ctl->njobs + 1, &spec, units_now(), err)) == NULL)
        goto fail_spec;
    snprintf(job->owner, sizeof job->owner, "%s", peer->key);
    if (job->spec.hold) { /* --hold: held from the start (ctl_job_hold) */
        job->held = true;
        snprintf(job->reason, sizeof job->reason, "held (moat release %llu)", (unsigned long long)job->id);
    }
    if ((docs && ctl_infer_accept(ctl, job, docs, ids, lines, err) != 0) ||
        ctl_job_save(ctl, job, true, err) != 0 || ctl_job_add(ctl, job, err) != 0)
        goto fail_job;
    json_decref(docs);
    json_decref(ids);
    json_decref(lines);
    if (ctl_queue_add(ctl, job, err) != 0 ||
        (ctl_job_receiving(job) && ctl_receiving_add(ctl, job->id, err) != 0))
        return -1;
    ctl_sched_note_new(ctl, job, units_now());
    char object[32];
    snprintf(object, sizeof object, "job %llu", (unsigned long long)job->id);
    json_t *argv0 = job->spec.argc > 0 ? json_string(job->spec.argv[0]) : json_null();
    if (ctl_audit_append(ctl, peer->key, "submit", object,
                         json_pack("{s:s, s:s, s:I, s:o}", "kind", job_kind_name(job->spec.kind), "name",
                                   job->spec.name, "tasks", (json_int_t)job->ntasks, "argv0", argv0),
                         err) != 0)
        return -1;
    log_debug("ctl", "job %llu submitted: %u tasks", (unsigned long long)job->id, job->ntasks);
    return ctl_out_reply(ctl, peer, msg->req_id, json_pack("{s:I}", "id", (json_int_t)job->id));

fail_job: /* the job owns the spec */
    ctl_job_free(job);
    goto fail_docs;
fail_spec:
    jobspec_clear(&spec);
fail_docs:
    json_decref(docs);
    json_decref(ids);
    json_decref(lines);
    return -1;
}

/* job_access: may peer cancel job, or read its results (what)? Its owner (the
 * key that submitted it) and admin keys may, as in Slurm only the job's user
 * and operators may scancel it; a job from before owners were kept is open to
 * every client. 0, or -1 with EPERM, audited. Listing (queue, show, wait) is
 * open to every client key. */
static int job_access(struct ctl *ctl, const struct net_peer *peer, const struct ctl_job *job,
                      const char *what, bool audit, struct err *err)
{
    if (job->owner[0] == '\0' || strcmp(job->owner, peer->key) == 0 ||
        ctl_auth_is_admin(ctl, peer->key))
        return 0;
    if (audit) {
        char object[64];
        snprintf(object, sizeof object, "%s job %llu", what, (unsigned long long)job->id);
        ctl_auth_refuse(ctl, peer->key, object, "another key's job");
    }
    return err_set(err, EPERM, "job %llu: submitted by another key; only it or an admin key may %s it",
                   (unsigned long long)job->id, what);
}

static struct ctl_job *job_arg(struct ctl *ctl, const json_t *body, struct err *err)
{
    uint64_t id = (uint64_t)json_integer_value(json_object_get(body, "id"));
    return ctl_job_get(ctl, id, err);
}

int ctl_on_docs(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err)
{
    struct ctl_job *job = job_arg(ctl, msg->body, err);
    if (job == NULL || job_access(ctl, peer, job, "add documents to", true, err) != 0)
        return -1;
    return ctl_infer_add(ctl, peer, msg, job, err);
}

/* SHOW: the job, its tasks' counts by state, and one page of its tasks: from
 * array index tasks_from (default the first) at most tasks_limit of them
 * (default CTL_SHOW_PAGE; 0: none), only those in tasks_state when given.
 * tasks_next: the index to ask for next, null when the page reached the end.
 * A page bounds the reply and the controller's memory for it (a job of a
 * million tasks made one reply of gigabytes of JSON, and stalled the loop). */
int ctl_on_show(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err)
{
    struct ctl_job *job = job_arg(ctl, msg->body, err);
    if (job == NULL)
        return -1;
    const json_t *b = msg->body, *fromj = json_object_get(b, "tasks_from");
    const json_t *limj = json_object_get(b, "tasks_limit"), *stj = json_object_get(b, "tasks_state");
    int want = -1;
    if (stj && (want = job_state_parse(json_string_value(stj))) < 0)
        return err_set(err, EINVAL, "tasks_state: '%s' is not a state", json_string_value(stj));
    uint64_t from = fromj ? (uint64_t)json_integer_value(fromj) : 0;
    uint32_t limit = limj ? (uint32_t)json_integer_value(limj) : CTL_SHOW_PAGE;
    uint64_t off = jobspec_offset_from(&job->spec, from);
    json_t *o = ctl_job_json(job), *tasks = json_array(), *counts = json_object();
    if (o == NULL || tasks == NULL || counts == NULL) {
        json_decref(o);
        json_decref(tasks);
        json_decref(counts);
        return err_set(err, ENOMEM, "show: out of memory");
    }
    uint32_t n[JOB_STATE_COUNT] = {0};
    uint64_t docs_done = 0; /* infer: the documents of its COMPLETED batches */
    double cpu = 0;         /* its ended tasks' CPU seconds, and their largest peak */
    uint32_t rss_kib = 0;
    for (uint32_t i = 0; i < job->ntasks; i++) {
        n[job->tasks[i].state < JOB_STATE_COUNT ? job->tasks[i].state : 0]++;
        if (job_state_is_terminal(job->tasks[i].state)) {
            cpu += job->tasks[i].cpu_time;
            rss_kib = job->tasks[i].max_rss_kib > rss_kib ? job->tasks[i].max_rss_kib : rss_kib;
        }
        if (job->spec.kind == JOB_KIND_INFER && job->tasks[i].state == JOB_STATE_COMPLETED) {
            uint64_t first = (uint64_t)i * (uint64_t)job->spec.batch;
            uint64_t left = job->spec.ndocs > first ? job->spec.ndocs - first : 0;
            docs_done += left < (uint64_t)job->spec.batch ? left : (uint64_t)job->spec.batch;
        }
    }
    if (job->spec.kind == JOB_KIND_INFER)
        json_object_set_new(o, "docs_done", json_integer((json_int_t)docs_done));
    json_object_set_new(o, "cpu_time", json_real(ctl_usage_seconds(cpu)));
    json_object_set_new(o, "max_rss", json_integer((json_int_t)rss_kib * 1024));
    for (int st = 0; st < JOB_STATE_COUNT; st++)
        if (n[st])
            json_object_set_new(counts, job_state_name((enum job_state)st), json_integer(n[st]));
    for (uint32_t listed = 0; off < job->ntasks && listed < limit; off++) {
        if (want < 0 || job->tasks[off].state == (enum job_state)want) {
            json_array_append_new(tasks, ctl_task_json(ctl, job, (uint32_t)off));
            listed++;
        }
    }
    while (want >= 0 && off < job->ntasks && job->tasks[off].state != (enum job_state)want)
        off++; /* next: a task the filter keeps */
    json_object_set_new(o, "task_states", counts);
    json_object_set_new(o, "tasks", tasks);
    /* limit 0 asks for the counters: no page, so no next one either */
    json_object_set_new(o, "tasks_next", off < job->ntasks && limit > 0
                                             ? json_integer((json_int_t)jobspec_index(&job->spec, off))
                                             : json_null());
    return ctl_out_reply(ctl, peer, msg->req_id, o);
}

/* queue_states: QUEUE's `state` (one job state) and `states` (any of several:
 * squeue --states=PD,R), as a bit per job state in *mask (0: neither). */
static int queue_states(const json_t *b, unsigned *mask, struct err *err)
{
    const json_t *st = json_object_get(b, "state"), *sts = json_object_get(b, "states");
    *mask = 0;
    int s = st ? job_state_parse(json_string_value(st)) : 0;
    if (s < 0)
        return err_set(err, EINVAL, "state: '%.16s' is not a job state", json_string_value(st));
    if (st)
        *mask |= 1u << s;
    size_t i;
    const json_t *v;
    json_array_foreach(sts, i, v) {
        if ((s = job_state_parse(json_string_value(v))) < 0)
            return err_set(err, EINVAL, "states[%zu]: '%.16s' is not a job state", i,
                           json_string_value(v));
        *mask |= 1u << s;
    }
    return 0;
}

/* QUEUE: one page of the jobs asked for, by id from `from`: at most `limit`
 * jobs, and at most CTL_QUEUE_SCAN ids looked at (a purged job is read from
 * the store for this), so that one request over a long history neither builds
 * a reply of every job nor holds the loop; `next`: the id to go on from, null
 * at the end. A page may be short, or empty, and still have a next. */
int ctl_on_queue(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err)
{
    const json_t *b = msg->body;
    unsigned want = 0; /* bit per job state asked for; 0: any */
    if (queue_states(b, &want, err) != 0)
        return -1;
    bool all = json_is_true(json_object_get(b, "all")) || want != 0;
    bool mine = json_is_true(json_object_get(b, "mine"));
    const json_t *fromj = json_object_get(b, "from"), *limj = json_object_get(b, "limit");
    uint64_t id = fromj ? (uint64_t)json_integer_value(fromj) : 1;
    uint32_t limit = limj ? (uint32_t)json_integer_value(limj) : CTL_SHOW_PAGE;
    unsigned terminal = 1u << JOB_STATE_COMPLETED | 1u << JOB_STATE_FAILED |
                        1u << JOB_STATE_CANCELLED | 1u << JOB_STATE_TIMEOUT;
    /* a purged job (finished: ctl_purge.h) is read from the store for this
     * listing only, and only when finished jobs are asked for */
    bool purged_wanted = all && (want == 0 || (want & terminal) != 0);
    json_t *jobs = json_array();
    uint32_t listed = 0, scanned = 0;
    for (id = id ? id : 1; id <= ctl->njobs && listed < limit && scanned < CTL_QUEUE_SCAN; id++) {
        const struct ctl_job *job = ctl->jobs[id];
        struct ctl_job *read = NULL;
        if (job == NULL && !purged_wanted)
            continue;
        scanned++;
        if (job == NULL && (job = read = ctl_job_read(ctl, id, false, err)) == NULL) {
            json_decref(jobs);
            return err_prefix(err, "queue");
        }
        if ((all || !job_state_is_terminal(job->state)) &&
            (want == 0 || (want & 1u << job->state) != 0) &&
            (!mine || strcmp(job->owner, peer->key) == 0)) {
            json_array_append_new(jobs, ctl_job_json(job));
            listed++;
        }
        ctl_job_free(read);
    }
    if (!purged_wanted) /* the rest are purged ones, not wanted: none left */
        while (id <= ctl->njobs && ctl->jobs[id] == NULL)
            id++;
    return ctl_out_reply(ctl, peer, msg->req_id,
                         json_pack("{s:o, s:o}", "jobs", jobs, "next",
                                   id <= ctl->njobs ? json_integer((json_int_t)id) : json_null()));
}

/* Refusals of other keys' jobs within one request: one auth audit record for
 * them all (ctl_auth_refuse), not one per id. */
struct refusals {
    uint64_t n, first;
};

static void refusals_audit(struct ctl *ctl, const struct net_peer *peer, const char *verb,
                           const struct refusals *r)
{
    if (r->n == 0)
        return;
    char object[64], why[64];
    snprintf(object, sizeof object, "%s job %llu", verb, (unsigned long long)r->first);
    snprintf(why, sizeof why, "another key's job (%llu such in this request)", (unsigned long long)r->n);
    ctl_auth_refuse(ctl, peer->key, object, why);
}

/* jobs_apply: op on each job of ids (read back when purged) that peer may act
 * on (job_access for verb): done gets the ids op took (0) or found done
 * already (1: a request sent again, not audited again), each audited as
 * verb; errors gets {id, code, msg} for the rest; refusals counts other
 * keys' jobs. -1 with err (and done, errors freed) when the store failed:
 * the request as a whole fails. */
static int jobs_apply(struct ctl *ctl, const struct net_peer *peer, const json_t *ids, const char *verb,
                      int (*op)(struct ctl *, struct ctl_job *, const void *, struct err *),
                      const void *arg, json_t *done, json_t *errors, struct refusals *ref,
                      struct err *err)
{
    size_t i;
    const json_t *v;
    json_array_foreach(ids, i, v) {
        uint64_t id = (uint64_t)json_integer_value(v);
        struct err e = {0};
        struct ctl_job *job = ctl_job_get(ctl, id, &e); /* NULL: e says why */
        if (job != NULL && job_access(ctl, peer, job, verb, false, &e) != 0) {
            job = NULL;
            ref->first = ref->n++ ? ref->first : id;
        }
        int rc = job != NULL ? op(ctl, job, arg, &e) : -1;
        if (rc >= 0) {
            char object[32];
            snprintf(object, sizeof object, "job %llu", (unsigned long long)id);
            if (rc == 1 || ctl_audit_append(ctl, peer->key, verb, object, NULL, &e) == 0) {
                json_array_append_new(done, json_integer((json_int_t)id));
                continue;
            }
        }
        if (ctl->store_err.code) {
            json_decref(done);
            json_decref(errors);
            *err = ctl->store_err;
            return -1;
        }
        json_array_append_new(errors, json_pack("{s:I, s:i, s:s}", "id", (json_int_t)id, "code",
                                                e.code, "msg", e.msg));
    }
    return 0;
}

static int op_cancel(struct ctl *ctl, struct ctl_job *job, const void *arg, struct err *err)
{
    (void)arg;
    return ctl_job_cancel(ctl, job, "cancelled by user", err);
}

static int op_hold(struct ctl *ctl, struct ctl_job *job, const void *arg, struct err *err)
{
    return ctl_job_hold(ctl, job, *(const bool *)arg, err);
}

int ctl_on_cancel(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err)
{
    json_t *done = json_array(), *errors = json_array();
    size_t i;
    json_t *v;
    struct refusals ref = {0};
    if (jobs_apply(ctl, peer, json_object_get(msg->body, "ids"), "cancel", op_cancel, NULL, done,
                   errors, &ref, err) != 0)
        return -1;
    /* elements alone: one audit record per run of one job's elements, naming
     * how many and the first of them (a J_[LIST] can be 100,000) */
    json_t *done_tasks = json_array(), *run = NULL;
    uint64_t run_id = 0, run_n = 0;
    const json_t *tasks = json_object_get(msg->body, "tasks");
    for (i = 0; i <= json_array_size(tasks); i++) {
        v = json_array_get(tasks, i); /* NULL past the end: the last run's record */
        uint64_t id = v ? (uint64_t)json_integer_value(json_object_get(v, "id")) : 0;
        uint32_t index = v ? (uint32_t)json_integer_value(json_object_get(v, "index")) : 0;
        struct err e = {0};
        if (run && id != run_id) {
            char object[32];
            snprintf(object, sizeof object, "job %llu", (unsigned long long)run_id);
            json_t *details = json_pack("{s:I, s:o}", "tasks", (json_int_t)run_n, "indices", run);
            run = NULL;
            if (ctl_audit_append(ctl, peer->key, "cancel", object, details, &e) != 0) {
                if (ctl->store_err.code) {
                    json_decref(done);
                    json_decref(errors);
                    json_decref(done_tasks);
                    *err = ctl->store_err;
                    return -1;
                }
                json_array_append_new(errors, json_pack("{s:I, s:i, s:s}", "id", (json_int_t)run_id,
                                                        "code", e.code, "msg", e.msg));
            }
        }
        if (v == NULL)
            break;
        struct ctl_job *job = ctl_job_get(ctl, id, &e);
        if (job != NULL && job_access(ctl, peer, job, "cancel", false, &e) != 0) {
            job = NULL;
            ref.first = ref.n++ ? ref.first : id;
        }
        int rc = job != NULL ? ctl_task_cancel(ctl, job, index, &e) : -1;
        if (rc >= 0) {
            json_array_append_new(done_tasks, json_pack("{s:I, s:I}", "id", (json_int_t)id,
                                                        "index", (json_int_t)index));
            if (rc == 1)
                continue; /* cancelled already: not audited again */
            if (run == NULL) {
                run = json_array();
                run_id = id;
                run_n = 0;
            }
            run_n++;
            if (json_array_size(run) < 1000)
                json_array_append_new(run, json_integer((json_int_t)index));
            else if (json_array_size(run) == 1000)
                json_array_append_new(run, json_string("..."));
            continue;
        }
        if (ctl->store_err.code) {
            json_decref(done);
            json_decref(errors);
            json_decref(done_tasks);
            json_decref(run);
            *err = ctl->store_err;
            return -1;
        }
        json_array_append_new(errors, json_pack("{s:I, s:I, s:i, s:s}", "id", (json_int_t)id, "index",
                                                (json_int_t)index, "code", e.code, "msg", e.msg));
    }
    refusals_audit(ctl, peer, "cancel", &ref);
    return ctl_out_reply(ctl, peer, msg->req_id,
                         json_pack("{s:o, s:o, s:o}", "cancelled", done, "cancelled_tasks", done_tasks,
                                   "errors", errors));
}

int ctl_on_hold(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err)
{
    bool hold = !json_is_true(json_object_get(msg->body, "release"));
    const char *verb = hold ? "hold" : "release";
    json_t *done = json_array(), *errors = json_array();
    struct refusals ref = {0};
    if (jobs_apply(ctl, peer, json_object_get(msg->body, "ids"), verb, op_hold, &hold, done, errors,
                   &ref, err) != 0)
        return -1;
    refusals_audit(ctl, peer, verb, &ref);
    return ctl_out_reply(ctl, peer, msg->req_id, json_pack("{s:o, s:o}", "done", done, "errors", errors));
}

static int op_requeue(struct ctl *ctl, struct ctl_job *job, const void *arg, struct err *err)
{
    (void)arg;
    return ctl_job_requeue(ctl, job, err);
}

int ctl_on_requeue(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err)
{
    json_t *done = json_array(), *errors = json_array();
    struct refusals ref = {0};
    if (jobs_apply(ctl, peer, json_object_get(msg->body, "ids"), "requeue", op_requeue, NULL, done,
                   errors, &ref, err) != 0)
        return -1;
    refusals_audit(ctl, peer, "requeue", &ref);
    return ctl_out_reply(ctl, peer, msg->req_id,
                         json_pack("{s:o, s:o}", "requeued", done, "errors", errors));
}

json_t *ctl_json_lossy_string(const uint8_t *s, size_t len)
{
    char *out = malloc(len * 3 + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        uint8_t c = s[i];
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        bool ok = n > 0 && i + n <= len && c != 0;
        uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1f : n == 3 ? c & 0x0f : c & 0x07;
        for (size_t k = 1; ok && k < n; k++) {
            ok = (s[i + k] & 0xc0) == 0x80;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        /* overlong forms, surrogates and out-of-range code points are invalid */
        if (ok && ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
                   (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff))
            ok = false;
        if (ok) {
            memcpy(out + o, s + i, n);
            o += n;
            i += n;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i += 1;
        }
    }
    json_t *j = json_stringn(out, o);
    free(out);
    return j;
}

static json_t *task_result_json(struct ctl *ctl, const struct ctl_job *job, uint32_t off, bool raw,
                                 struct proto_msg *blobs_to, struct err *err)
{
    const struct ctl_task *t = &job->tasks[off];
    uint32_t index = jobspec_index(&job->spec, off);
    json_t *o = json_pack("{s:I, s:s, s:o}", "index", (json_int_t)index, "state",
                          job_state_name(t->state), "exit_code",
                          job_state_is_terminal(t->state) && t->attempts > 0 ? json_integer(t->exit_code)
                                                                              : json_null());
    uint8_t key[12];
    void *val = NULL;
    size_t len = 0;
    struct ctl_result r;
    struct err e = {0};
    int rc = store_get(ctl->store, STORE_DB_RESULTS, key, store_key_task(key, job->id, index), &val,
                       &len, &e);
    if (rc == 0 && ctl_result_decode(val, len, &r, &e) == 0) {
        json_object_set_new(o, "signal", json_integer(r.signal));
        json_object_set_new(o, "truncated", json_boolean(r.truncated));
        if (raw) {
            if (proto_msg_add_blob(blobs_to, r.out, r.out_len, err) != 0 ||
                proto_msg_add_blob(blobs_to, r.err, r.err_len, err) != 0) {
                free(val);
                json_decref(o);
                return NULL;
            }
        } else {
            json_object_set_new(o, "stdout", ctl_json_lossy_string(r.out, r.out_len));
            json_object_set_new(o, "stderr", ctl_json_lossy_string(r.err, r.err_len));
        }
    } else {
        if (e.code != ENOENT) /* no result yet is normal; an unreadable one is not */
            log_error("ctl", "result %llu.%u: %s", (unsigned long long)job->id, index, e.msg);
        json_object_set_new(o, "stdout", json_null());
        json_object_set_new(o, "stderr", json_null());
        json_object_set_new(o, "truncated", json_false());
    }
    free(val);
    return o;
}

int ctl_on_result(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err)
{
    struct ctl_job *job = job_arg(ctl, msg->body, err);
    if (job == NULL || job_access(ctl, peer, job, "read the results of", true, err) != 0)
        return -1;
    if (job->spec.kind == JOB_KIND_INFER)
        return ctl_infer_result(ctl, peer, msg, job, err);
    const json_t *task = json_object_get(msg->body, "task");
    bool raw = json_is_true(json_object_get(msg->body, "raw"));
    if (raw && task == NULL)
        return err_set(err, EINVAL, "result: raw output needs a task index");
    if (task) {
        long off = ctl_task_offset(job, (uint64_t)json_integer_value(task));
        if (off < 0)
            return err_set(err, ENOENT, "job %llu: no task %lld", (unsigned long long)job->id,
                           (long long)json_integer_value(task));
        struct proto_msg tmp;
        proto_msg_init(&tmp, PROTO_TYPE_REPLY, 0, NULL);
        json_t *o = task_result_json(ctl, job, (uint32_t)off, raw, &tmp, err);
        if (o == NULL) {
            proto_msg_clear(&tmp);
            return -1;
        }
        if (ctl_out_reply(ctl, peer, msg->req_id, o) != 0) {
            proto_msg_clear(&tmp);
            return err_set(err, ENOMEM, "result: out of memory");
        }
        struct proto_msg *out = ctl_out_last(ctl);
        for (int i = 0; i < tmp.nblobs; i++) {
            out->blobs[i] = tmp.blobs[i];
            tmp.blobs[i].data = NULL;
        }
        out->nblobs = tmp.nblobs;
        tmp.nblobs = 0;
        proto_msg_clear(&tmp);
        return 0;
    }
    /* A page: from tasks_from, up to tasks_limit tasks or CTL_RESULT_PAGE_BYTES
     * of output (at least one task), as SHOW pages its tasks. */
    const json_t *fromj = json_object_get(msg->body, "tasks_from");
    const json_t *limj = json_object_get(msg->body, "tasks_limit");
    uint64_t from = fromj ? (uint64_t)json_integer_value(fromj) : 0;
    uint64_t off = jobspec_offset_from(&job->spec, from);
    uint32_t limit = limj ? (uint32_t)json_integer_value(limj) : CTL_SHOW_PAGE;
    size_t bytes = 0;
    json_t *tasks = json_array(), *rows = job->spec.kind == JOB_KIND_BENCH ? json_array() : NULL;
    for (uint32_t listed = 0; off < job->ntasks && listed < limit && bytes < CTL_RESULT_PAGE_BYTES;
         off++, listed++) {
        json_t *o = task_result_json(ctl, job, (uint32_t)off, false, NULL, err);
        if (o == NULL) {
            json_decref(tasks);
            json_decref(rows);
            return -1;
        }
        /* a bench task's stdout is its JSON rows, one per line (worker/wrk_bench.h) */
        const char *out = json_string_value(json_object_get(o, "stdout"));
        bytes += json_string_length(json_object_get(o, "stdout")) +
                 json_string_length(json_object_get(o, "stderr"));
        while (rows && out && *out) {
            const char *nl = strchr(out, '\n');
            size_t len = nl ? (size_t)(nl - out) : strlen(out);
            json_t *row = json_loadb(out, len, 0, NULL);
            if (json_is_object(row))
                json_array_append_new(rows, row);
            else
                json_decref(row);
            out += len + (nl != NULL);
        }
        json_array_append_new(tasks, o);
    }
    json_t *reply = json_pack("{s:I, s:s, s:s, s:o}", "id", (json_int_t)job->id, "kind",
                              job_kind_name(job->spec.kind), "state", job_state_name(job->state),
                              "tasks", tasks);
    if (reply && rows)
        json_object_set_new(reply, "rows", rows);
    else
        json_decref(rows);
    if (reply)
        json_object_set_new(reply, "tasks_next",
                            off < job->ntasks ? json_integer((json_int_t)jobspec_index(&job->spec, off))
                                              : json_null());
    return ctl_out_reply(ctl, peer, msg->req_id, reply);
}

int ctl_on_nodes(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err)
{
    (void)err;
    json_t *nodes = json_array();
    for (int i = 0; i < ctl->nnodes; i++)
        if (!ctl->nodes[i].removed)
            json_array_append_new(nodes, ctl_node_json(&ctl->nodes[i]));
    return ctl_out_reply(ctl, peer, msg->req_id, json_pack("{s:o}", "nodes", nodes));
}
