/* ctl_infer.c: documents, TP groups, rank reports and embeddings of infer jobs. */
#include "controller/ctl_infer.h"

#include <errno.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/ctl_jobs.h"
#include "controller/ctl_model.h"
#include "controller/ctl_nodes.h"
#include "controller/ctl_result.h"
#include "controller/ctl_sched.h"
#include "shared/log.h"
#include "shared/model.h"
#include "shared/net.h"
#include "shared/text.h"
#include "shared/units.h"

#define DOC_MAX_BYTES JOBSPEC_DOC_MAX_BYTES

/* parse_docs: blobs [documents, ids?, lines?] of a SUBMIT or DOCS (docs/protocol.md),
 * each checked; *docs (*ids, *lines or NULL) new references. EINVAL naming the
 * document, id or line at fault by its 1-based number in the job (base: the
 * documents before the part). */
static int parse_docs(const struct proto_msg *msg, size_t base, json_t **docs, json_t **ids,
                      json_t **lines, struct err *err)
{
    *docs = *ids = *lines = NULL;
    if (msg->nblobs < 1 || msg->nblobs > 3)
        return err_set(err, EINVAL, "infer: the documents must come as one blob (ids as a second, "
                       "line numbers as a third)");
    json_error_t je;
    json_t *d = json_loadb(msg->blobs[0].data, msg->blobs[0].len, 0, &je);
    if (!json_is_array(d)) {
        json_decref(d);
        return err_set(err, EINVAL, "infer: documents: not a JSON array of strings (byte %d)", je.position);
    }
    size_t i;
    json_t *v;
    json_array_foreach(d, i, v) {
        if (!json_is_string(v) || json_string_length(v) > DOC_MAX_BYTES) {
            json_decref(d);
            return err_set(err, EINVAL, "infer: document %zu: expected a string of at most %u bytes",
                           base + i + 1, DOC_MAX_BYTES);
        }
    }
    json_t *idv = NULL;
    if (msg->nblobs >= 2) {
        idv = json_loadb(msg->blobs[1].data, msg->blobs[1].len, JSON_DECODE_ANY, &je);
        if (idv == NULL) {
            json_decref(d);
            return err_set(err, EINVAL, "infer: ids: not JSON (byte %d: %.80s)", je.position, je.text);
        }
        if (json_is_null(idv)) { /* no ids, line numbers follow */
            json_decref(idv);
            idv = NULL;
        } else if (!json_is_array(idv) || json_array_size(idv) != json_array_size(d)) {
            json_decref(d);
            json_decref(idv);
            return err_set(err, EINVAL, "infer: ids: expected a JSON array as long as the documents");
        }
        json_array_foreach(idv, i, v) { /* docs/protocol.md: strings, integers, null (none) */
            if ((!json_is_string(v) || json_string_length(v) > DOC_MAX_BYTES) && !json_is_integer(v) &&
                !json_is_null(v)) {
                json_decref(d);
                json_decref(idv);
                return err_set(err, EINVAL, "infer: id %zu: expected a string (at most %u bytes), an "
                               "integer or null", base + i + 1, DOC_MAX_BYTES);
            }
        }
    }
    json_t *lv = NULL;
    if (msg->nblobs == 3) {
        lv = json_loadb(msg->blobs[2].data, msg->blobs[2].len, 0, &je);
        bool ok = json_is_array(lv) && json_array_size(lv) == json_array_size(d);
        json_array_foreach(ok ? lv : NULL, i, v) {
            if (!json_is_integer(v) || json_integer_value(v) < 1) {
                json_decref(d);
                json_decref(idv);
                json_decref(lv);
                return err_set(err, EINVAL, "infer: line %zu: expected a line number (an integer >= 1)",
                               base + i + 1);
            }
        }
        if (!ok) {
            json_decref(d);
            json_decref(idv);
            json_decref(lv);
            return err_set(err, EINVAL, "infer: lines: expected a JSON array as long as the documents");
        }
    }
    *docs = d;
    *ids = idv;
    *lines = lv;
    return 0;
}

int ctl_infer_prepare(const struct proto_msg *msg, json_t *spec_json, json_t **docs, json_t **ids,
                      json_t **lines, struct err *err)
{
    if (parse_docs(msg, 0, docs, ids, lines, err) != 0)
        return -1;
    /* ndocs: the job's documents in all; more than these come by DOCS */
    json_int_t n = (json_int_t)json_array_size(*docs);
    const json_t *total = json_object_get(spec_json, "ndocs");
    if (json_is_integer(total) && json_integer_value(total) < n) {
        json_decref(*docs);
        json_decref(*ids);
        json_decref(*lines);
        *docs = *ids = *lines = NULL;
        return err_set(err, EINVAL, "spec: ndocs: %lld, fewer than the %lld documents sent",
                       (long long)json_integer_value(total), (long long)n);
    }
    if (!json_is_integer(total)) /* not there: these are all (else jobspec_from_json refuses it) */
        json_object_set_new(spec_json, "ndocs", json_integer(n));
    return 0;
}

int ctl_infer_check(struct ctl *ctl, const struct job_spec *spec, struct err *err)
{
    json_t *man = ctl_model_manifest(ctl, spec->model, err);
    if (man == NULL)
        return -1;
    if (!json_is_true(json_object_get(man, "signed")) && !ctl->cfg.allow_unsigned_artifacts) {
        /* let in while the override was on; not used once it is off */
        json_int_t v = json_integer_value(json_object_get(man, "version"));
        json_decref(man);
        return err_set(err, EACCES, "model %s version %lld is unsigned and allow_unsigned_artifacts "
                       "is off: import a signed version", spec->model, (long long)v);
    }
    const json_t *cfg = json_object_get(man, "config");
    struct model_config c = {
        .heads = (int)json_integer_value(json_object_get(cfg, "heads")),
        .intermediate = (int)json_integer_value(json_object_get(cfg, "intermediate")),
        .max_position = (int)json_integer_value(json_object_get(cfg, "max_position")),
    };
    json_decref(man);
    if (model_tp_check(&c, spec->tp, 0, err) != 0)
        return err_prefix(err, "model %s", spec->model);
    if (spec->max_len > c.max_position)
        return err_set(err, EINVAL, "max_len %d: model %s takes at most %d tokens", spec->max_len,
                       spec->model, c.max_position);
    return 0;
}

/* store_docs: the documents docs (ids, lines or NULL, as long) that follow the
 * job's docs_received so far, batch by batch into STORE_DB_DOCS (in the current
 * batch of the store), and count them in docs_received. Every part but the
 * last holds whole batches (so a batch's record is written once). EINVAL past
 * the job's ndocs or for a part not made of whole batches; store errors. */
static int store_docs(struct ctl *ctl, struct ctl_job *job, const json_t *docs, const json_t *ids,
                      const json_t *lines, struct err *err)
{
    uint32_t B = (uint32_t)job->spec.batch, first = job->docs_received;
    size_t n = json_array_size(docs);
    if (n == 0 || n > job->spec.ndocs - first)
        return err_set(err, EINVAL, "infer: %zu documents from document %u: the job has %u", n, first,
                       job->spec.ndocs);
    if (first + n < job->spec.ndocs && n % B != 0)
        return err_set(err, EINVAL, "infer: a part of %zu documents: every part but the last must "
                       "hold whole batches (a multiple of batch %u)", n, B);
    for (uint32_t b = first / B; (size_t)b * B < first + n; b++) {
        json_t *texts = json_array(), *idb = ids ? json_array() : NULL, *lnb = lines ? json_array() : NULL;
        for (size_t k = (size_t)b * B - first; k < (size_t)(b + 1) * B - first && k < n; k++) {
            json_array_append(texts, json_array_get(docs, k));
            if (idb)
                json_array_append(idb, json_array_get(ids, k));
            if (lnb)
                json_array_append(lnb, json_array_get(lines, k));
        }
        json_t *rec = json_pack("{s:o}", "texts", texts);
        if (idb)
            json_object_set_new(rec, "ids", idb);
        if (lnb)
            json_object_set_new(rec, "lines", lnb);
        char *text = json_dumps(rec, JSON_COMPACT);
        json_decref(rec);
        uint8_t key[12];
        int rc = text ? ctl_batch(ctl, err) : err_set(err, ENOMEM, "infer: out of memory");
        if (rc == 0)
            rc = store_put(ctl->store, STORE_DB_DOCS, key, store_key_task(key, job->id, b), text,
                           strlen(text), 0, err);
        free(text);
        if (rc != 0) {
            if (ctl->store_err.code == 0 && err->code == ENOSPC)
                ctl->store_err = *err;
            return -1;
        }
    }
    job->docs_received = first + (uint32_t)n;
    return 0;
}

int ctl_infer_accept(struct ctl *ctl, struct ctl_job *job, const json_t *docs, const json_t *ids,
                     const json_t *lines, struct err *err)
{
    json_t *man = ctl_model_manifest(ctl, job->spec.model, err);
    if (man == NULL)
        return -1;
    json_t *vocab = NULL;
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(man, "files"), i, f)
        if (strcmp(json_string_value(json_object_get(f, "file")), "vocab.txt") == 0)
            vocab = json_pack("{s:O, s:O}", "sha256", json_object_get(f, "sha256"), "bytes",
                              json_object_get(f, "bytes"));
    json_t *cfg = json_object_get(man, "config");
    int max_pos = (int)json_integer_value(json_object_get(cfg, "max_position"));
    json_int_t hidden = json_integer_value(json_object_get(cfg, "hidden"));
    json_decref(man);
    if (vocab == NULL)
        return err_set(err, EPROTO, "model %s: manifest has no vocab.txt", job->spec.model);
    if (job->spec.max_len > max_pos) {
        json_decref(vocab);
        return err_set(err, EINVAL, "max_len %d: model %s takes at most %d tokens", job->spec.max_len,
                       job->spec.model, max_pos);
    }
    json_t *shards = ctl_model_shards(ctl, job->spec.model, job->spec.tp, err);
    if (shards == NULL) {
        json_decref(vocab);
        return -1;
    }
    /* dim: the width of each embedding (mean pooling keeps the hidden size):
     * what a batch's result must hold, count x dim f32 */
    job->infer = json_pack("{s:o, s:o, s:I}", "shards", shards, "vocab", vocab, "dim", hidden);
    job->docs_received = 0;
    job->docs_mono = units_mono();
    return store_docs(ctl, job, docs, ids, lines, err);
}

int ctl_infer_add(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg,
                  struct ctl_job *job, struct err *err)
{
    unsigned long long id = (unsigned long long)job->id;
    if (job->spec.kind != JOB_KIND_INFER)
        return err_set(err, EINVAL, "job %llu: not an infer job: it takes no documents", id);
    json_int_t first = json_integer_value(json_object_get(msg->body, "first"));
    json_t *docs, *ids, *lines;
    if (parse_docs(msg, (size_t)first, &docs, &ids, &lines, err) != 0)
        return err_prefix(err, "job %llu", id);
    json_int_t n = (json_int_t)json_array_size(docs);
    int rc = 0;
    if (n > 0 && first + n <= job->docs_received) {
        /* sent again after a lost reply: stored already, the same answer,
         * whatever became of the job since (the CLI resends until answered) */
    } else if (job_state_is_terminal(job->state) || job->cancel_requested) {
        rc = err_set(err, EINVAL, "job %llu: %s%s%s%s: it takes no more documents", id,
                     job->cancel_requested && !job_state_is_terminal(job->state)
                         ? "being cancelled" : job_state_name(job->state),
                     job->reason[0] ? " (" : "", job->reason, job->reason[0] ? ")" : "");
    } else if (job->docs_closed) {
        rc = err_set(err, EINVAL, "job %llu: documents stopped coming (%u of %u received, none for "
                     "documents_timeout): it takes no more", id, job->docs_received, job->spec.ndocs);
    } else if (!ctl_job_receiving(job)) {
        rc = err_set(err, EINVAL, "job %llu: it has all its %u documents", id, job->spec.ndocs);
    } else if (first != job->docs_received) {
        rc = err_set(err, EINVAL, "job %llu: first: %lld, but it has %u documents so far: the next "
                     "part starts there", id, (long long)first, job->docs_received);
    } else if ((rc = store_docs(ctl, job, docs, ids, lines, err)) != 0) {
        err_prefix(err, "job %llu", id);
    } else {
        job->docs_mono = units_mono();
        ctl->need_sched = true;
        rc = ctl_job_save(ctl, job, false, err);
        if (rc == 0)
            rc = ctl_queue_add(ctl, job, err);
        if (rc == 0 && !ctl_job_receiving(job))
            log_info("ctl", "job %llu: all %u documents received", id, job->spec.ndocs);
    }
    json_decref(docs);
    json_decref(ids);
    json_decref(lines);
    if (rc != 0)
        return -1;
    return ctl_out_reply(ctl, peer, msg->req_id,
                         json_pack("{s:I, s:I, s:I}", "id", (json_int_t)job->id, "received",
                                   (json_int_t)job->docs_received, "ndocs", (json_int_t)job->spec.ndocs));
}

int ctl_infer_expire(struct ctl *ctl, double mono, struct err *err)
{
    for (size_t k = 0; k < ctl->nreceiving;) {
        uint64_t id = ctl->receiving[k];
        struct ctl_job *job = id <= ctl->njobs ? ctl->jobs[id] : NULL;
        if (job == NULL || !ctl_job_receiving(job) || job->cancel_requested ||
            job_state_is_terminal(job->state)) {
            ctl->receiving[k] = ctl->receiving[--ctl->nreceiving]; /* waits no more */
            continue;
        }
        k++;
        if (mono - job->docs_mono < ctl->cfg.documents_timeout)
            continue;
        /* the batches never received end CANCELLED; those received run on */
        char *why = ctl_docs_closed_why(job);
        if (why == NULL)
            return err_set(err, ENOMEM, "documents check: out of memory");
        log_warn("ctl", "job %llu: %s, none for %.0f s (documents_timeout): the batches received "
                 "run on, the rest are cancelled", (unsigned long long)id, why, mono - job->docs_mono);
        double now = units_now();
        job->docs_closed = true;
        snprintf(job->reason, sizeof job->reason, "%s", why);
        free(job->final_reason);
        job->final_reason = why; /* its reason when it ends */
        for (uint32_t off = ctl_job_ready(job); off < job->ntasks; off++) {
            struct ctl_task *t = &job->tasks[off];
            if (t->state == JOB_STATE_PENDING) { /* never started: no record (ctl_state.c recovery) */
                t->state = JOB_STATE_CANCELLED;
                t->end_time = now;
                job->done++;
            }
        }
        if (ctl_job_save(ctl, job, false, err) != 0 || ctl_job_maybe_finish(ctl, job, now, err) != 0)
            return -1;
    }
    return 0;
}

int ctl_infer_pick(const struct ctl *ctl, const struct job_spec *spec, int16_t *out)
{
    for (int r = 0; r < spec->tp; r++) {
        int best = -1;
        for (int i = 0; i < ctl->nnodes && i <= INT16_MAX; i++) { /* ranks hold int16_t indices */
            const struct ctl_node *n = &ctl->nodes[i];
            bool taken = false;
            for (int k = 0; k < r; k++) /* tp <= JOBSPEC_TP_MAX: a scan is enough */
                taken |= out[k] == i;
            if (taken || !ctl_sched_fits(n, spec))
                continue;
            if (best < 0 || n->cpus - n->used_cpus > ctl->nodes[best].cpus - ctl->nodes[best].used_cpus)
                best = i;
        }
        if (best < 0)
            return -1;
        out[r] = (int16_t)best;
    }
    return 0;
}

/* same_machine: whether nodes a and b share a machine, as far as their rank 0
 * listening goes: the same host name, or the same comm_host (workers of one
 * machine, as `moat local up` starts them, all listen on 127.0.0.1). */
static bool same_machine(const struct ctl *ctl, int a, int b)
{
    const struct ctl_node *x = &ctl->nodes[a], *y = &ctl->nodes[b];
    return a == b || strcmp(x->host, y->host) == 0 ||
           (x->comm_host[0] && strcmp(x->comm_host, y->comm_host) == 0);
}

/* pick_port: a port of node n's comm range not used by a running task's rank 0
 * on n's machine (any node of it: their ranges may overlap). */
static int pick_port(struct ctl *ctl, int n)
{
    struct ctl_node *node = &ctl->nodes[n];
    int lo = node->comm_port_min, hi = node->comm_port_max;
    if (lo <= 0 || hi < lo)
        return 0;
    for (int tries = 0; tries <= hi - lo; tries++) {
        int port = lo + (node->comm_port_next++ % (hi - lo + 1));
        bool busy = false;
        for (uint64_t id = 1; id <= ctl->njobs && !busy; id++) {
            const struct ctl_job *j = ctl->jobs[id];
            if (j == NULL || j->spec.kind != JOB_KIND_INFER || j->running == 0)
                continue;
            for (uint32_t k = 0; k < j->ntasks && !busy; k++)
                busy = j->tasks[k].state == JOB_STATE_RUNNING && j->tasks[k].comm_port == port &&
                       j->tasks[k].node >= 0 && same_machine(ctl, j->tasks[k].node, n);
        }
        if (!busy)
            return port;
    }
    return 0;
}

/* free_comm_keys: wipe and free make_comm_keys()'s output (NULLs are no-ops). */
static void free_comm_keys(int tp, char (*secrets)[NET_KEY_LEN + 1], json_t *publics)
{
    if (secrets != NULL) {
        sodium_memzero(secrets, (size_t)tp * sizeof *secrets);
        free(secrets);
    }
    json_decref(publics);
}

/* make_comm_keys: tp fresh CURVE key pairs (Z85): *secrets (tp entries, freed
 * with free_comm_keys) and *publics, a JSON array of the public keys in rank
 * order. 0, or -1 with EIO (no CURVE in libzmq) or ENOMEM. */
static int make_comm_keys(int tp, char (**secrets)[NET_KEY_LEN + 1], json_t **publics,
                          struct err *err)
{
    *secrets = calloc((size_t)tp, sizeof **secrets);
    *publics = json_array();
    if (*secrets == NULL || *publics == NULL) {
        free(*secrets);
        json_decref(*publics);
        *secrets = NULL;
        *publics = NULL;
        return err_set(err, ENOMEM, "infer: out of memory");
    }
    for (int r = 0; r < tp; r++) {
        char pub[NET_KEY_LEN + 1];
        if (net_curve_keypair(pub, (*secrets)[r], err) != 0 ||
            json_array_append_new(*publics, json_string(pub)) != 0) {
            if (err->code == 0)
                err_set(err, ENOMEM, "infer: out of memory");
            free_comm_keys(tp, *secrets, *publics);
            *secrets = NULL;
            *publics = NULL;
            return err_prefix(err, "TP link keys");
        }
    }
    return 0;
}

static json_t *load_docs(struct ctl *ctl, uint64_t job, uint32_t batch, char **text, size_t *len,
                         struct err *err)
{
    uint8_t key[12];
    void *val;
    if (store_get(ctl->store, STORE_DB_DOCS, key, store_key_task(key, job, batch), &val, len, err) != 0)
        return NULL;
    json_t *o = json_loadb(val, *len, 0, NULL);
    if (o == NULL) {
        free(val);
        err_set(err, EPROTO, "job %llu batch %u: unreadable documents", (unsigned long long)job, batch);
        return NULL;
    }
    *text = val;
    return o;
}

int ctl_infer_dispatch(struct ctl *ctl, struct ctl_job *job, uint32_t offset, const int16_t *nodes,
                       double now, struct err *err)
{
    struct ctl_task *t = &job->tasks[offset];
    int tp = job->spec.tp;
    if (!ctl_state_transition_ok(t->state, JOB_STATE_RUNNING))
        return err_set(err, EINVAL, "task %llu.%u: cannot start from %s", (unsigned long long)job->id,
                       offset, job_state_name(t->state));
    int port = pick_port(ctl, nodes[0]);
    if (port == 0 && tp > 1)
        return err_set(err, EAGAIN, "node %s: no free port in its comm range", ctl->nodes[nodes[0]].name);
    /* the attempt's TP link keys: rank r's secret in secrets[r], publics in order */
    char (*secrets)[NET_KEY_LEN + 1] = NULL;
    json_t *publics = NULL;
    if (tp > 1 && make_comm_keys(tp, &secrets, &publics, err) != 0)
        return -1;
    char *doctext = NULL;
    size_t doclen = 0;
    json_t *docs = load_docs(ctl, job->id, offset, &doctext, &doclen, err);
    if (docs == NULL) {
        free_comm_keys(tp, secrets, publics);
        return -1;
    }
    json_decref(docs);
    t->ranks = calloc((size_t)tp, sizeof *t->ranks);
    if (t->ranks == NULL) {
        free(doctext);
        free_comm_keys(tp, secrets, publics);
        return err_set(err, ENOMEM, "infer: out of memory");
    }
    memcpy(t->ranks, nodes, (size_t)tp * sizeof *nodes);
    t->state = JOB_STATE_RUNNING;
    t->attempts++;
    if (t->attempts > job->attempts)
        job->attempts = t->attempts;
    t->cpu_time = 0; /* the sum of this attempt's ranks, as they end */
    t->max_rss_kib = 0;
    t->node = t->last_node = nodes[0];
    t->start_time = now;
    t->end_time = 0;
    t->kill_sent = false;
    t->ranks_done = 0;
    t->comm_port = port;
    t->deadline = job->spec.time_limit > 0 ? now + job->spec.time_limit : 0;
    for (int r = 0; r < tp; r++) {
        ctl_node_take(&ctl->nodes[nodes[r]], job, t);
    }
    job->running++;
    if (ctl_task_save(ctl, job, offset, err) != 0)
        goto fail;
    if (job->state == JOB_STATE_PENDING) {
        job->state = JOB_STATE_RUNNING;
        if (job->start_time == 0)
            job->start_time = now;
        if (ctl_job_save(ctl, job, false, err) != 0)
            goto fail;
    }
    char comm[160];
    snprintf(comm, sizeof comm, "tcp://%s:%d", ctl->nodes[nodes[0]].comm_host[0] ? ctl->nodes[nodes[0]].comm_host : "127.0.0.1", port);
    const json_t *vocab = json_object_get(job->infer, "vocab");
    for (int r = 0; r < tp; r++) {
        const json_t *sh = json_array_get(json_object_get(job->infer, "shards"), (size_t)r);
        char env[96];
        snprintf(env, sizeof env, "MOAT_JOB_ID=%llu", (unsigned long long)job->id);
        json_t *body = json_pack(
            "{s:I, s:I, s:I, s:s, s:[], s:[s], s:i, s:i, s:I, s:f, s:i, s:i, s:i, s:s, s:O, s:O, s:O, s:O, s:i, s:i}",
            "job", (json_int_t)job->id, "task", (json_int_t)offset, "attempt", (json_int_t)t->attempts,
            "kind", "infer", "argv", "env", env, "cpus", job->spec.cpus, "gpus", job->spec.gpus, "mem",
            (json_int_t)job->spec.mem, "deadline", t->deadline, "output_cap", 65536, "rank", r, "tp", tp,
            "comm", comm, "shard", json_object_get(sh, "sha256"), "shard_bytes",
            json_object_get(sh, "bytes"), "vocab", json_object_get(vocab, "sha256"), "vocab_bytes",
            json_object_get(vocab, "bytes"), "max_len", job->spec.max_len, "batch", job->spec.batch);
        if (body != NULL && tp > 1 &&
            (json_object_set_new(body, "comm_key", json_string(secrets[r])) != 0 ||
             json_object_set(body, "comm_keys", publics) != 0)) {
            json_decref(body);
            body = NULL;
        }
        if (body == NULL || ctl_out_send(ctl, &ctl->nodes[nodes[r]].peer, PROTO_TYPE_DISPATCH, body) != 0) {
            err_set(err, ENOMEM, "dispatch: out of memory");
            goto fail;
        }
        if (proto_msg_add_blob(ctl_out_last(ctl), doctext, doclen, err) != 0)
            goto fail;
    }
    free(doctext);
    free_comm_keys(tp, secrets, publics);
    return 0;
fail:
    free(doctext);
    free_comm_keys(tp, secrets, publics);
    return -1;
}

static int fail_group(struct ctl *ctl, struct ctl_job *job, uint32_t offset, bool launch_failure,
                      const char *why, struct err *err)
{
    ctl_task_kill(ctl, job, offset, "stale");
    return ctl_task_requeue(ctl, job, offset, launch_failure, why, err);
}

/* stderr_last_line: the last non-empty line of a rank's stderr blob (its own
 * error message: a rank that could not start, a shard that did not verify),
 * at most cap - 1 bytes, into out ("" if none). */
static void stderr_last_line(const struct proto_msg *msg, char *out, size_t cap)
{
    out[0] = '\0';
    if (msg->nblobs < 2 || msg->blobs[1].len == 0)
        return;
    const char *p = (const char *)msg->blobs[1].data;
    size_t end = msg->blobs[1].len;
    while (end > 0 && (p[end - 1] == '\n' || p[end - 1] == '\r' || p[end - 1] == ' '))
        end--;
    size_t begin = end;
    while (begin > 0 && p[begin - 1] != '\n')
        begin--;
    size_t n = end - begin < cap - 1 ? end - begin : cap - 1;
    memcpy(out, p + begin, n);
    out[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (out[i] == '\0')
            out[i] = ' ';
}

/* rank_failed: a rank of offset's current attempt ended other than COMPLETED:
 * say why (the worker's launch error or reason, a signal, the time limit, or
 * the last line of the rank's stderr), then end the task CANCELLED (cancel) or
 * TIMEOUT (its time limit, as an exec task's: not run again), or requeue the
 * whole group (a launch failure counts against the node, not the job). */
static int rank_failed(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, int n,
                       struct ctl_job *job, uint32_t offset, int rank, const char *state,
                       struct err *err)
{
    const json_t *b = msg->body;
    struct ctl_node *node = &ctl->nodes[n];
    char why[256], tail[128], d[32];
    int sig = (int)json_integer_value(json_object_get(b, "signal"));
    const char *told = json_string_value(json_object_get(b, "reason")); /* over its --mem */
    const char *le = json_string_value(json_object_get(b, "launch_error"));
    bool timeout = strcmp(state, "TIMEOUT") == 0;
    stderr_last_line(msg, tail, sizeof tail);
    if (le)
        snprintf(why, sizeof why, "rank %d could not start on %.40s: %.120s", rank, node->name, le);
    else if (told && told[0])
        snprintf(why, sizeof why, "rank %d on %.40s: %.100s", rank, node->name, told);
    else if (timeout)
        snprintf(why, sizeof why, "rank %d on %.40s: its time limit (%s) was reached", rank, node->name,
                 units_duration_format(job->spec.time_limit, d, sizeof d));
    else if (sig > 0 && strcmp(state, "FAILED") == 0) /* not a kill the worker chose */
        snprintf(why, sizeof why, "rank %d on %.40s killed by signal %d", rank, node->name, sig);
    else if (tail[0])
        snprintf(why, sizeof why, "rank %d on %.40s ended %.12s: %.120s", rank, node->name, state, tail);
    else
        snprintf(why, sizeof why, "rank %d on %.40s ended %.12s (exit code %d)", rank, node->name,
                 state, (int)json_integer_value(json_object_get(b, "exit_code")));
    text_blank_controls(why); /* the worker's and the rank's words, shown on terminals */
    text_utf8_repair(why);
    int elen = msg->nblobs > 1 ? (int)(msg->blobs[1].len > 300 ? 300 : msg->blobs[1].len) : 0;
    log_warn("ctl", "task %llu.%u: %s%s%.*s", (unsigned long long)job->id, offset, why,
             elen ? "; its stderr began: " : "", elen, elen ? (const char *)msg->blobs[1].data : "");
    if (job->cancel_requested || strcmp(state, "CANCELLED") == 0) {
        ctl_task_kill(ctl, job, offset, "cancel");
        if (ctl_task_end(ctl, job, offset, JOB_STATE_CANCELLED, -1, 0, units_now(), err) != 0)
            return -1;
    } else if (le) {
        char what[48];
        snprintf(what, sizeof what, "task %llu.%u rank %d", (unsigned long long)job->id, offset, rank);
        if (ctl_node_launch_failed(ctl, node, what, le, err) != 0 ||
            fail_group(ctl, job, offset, true, why, err) != 0)
            return -1;
    } else if (timeout) {
        ctl_task_kill(ctl, job, offset, "timeout"); /* the other ranks */
        snprintf(job->reason, sizeof job->reason, "task %u: %.180s", jobspec_index(&job->spec, offset), why);
        text_utf8_trim(job->reason);
        ctl_job_final_reason(job);
        if (ctl_task_end(ctl, job, offset, JOB_STATE_TIMEOUT, -1, 0, units_now(), err) != 0)
            return -1;
    } else if (fail_group(ctl, job, offset, false, why, err) != 0) {
        return -1;
    }
    return ctl_out_reply(ctl, peer, msg->req_id, NULL);
}

int ctl_infer_on_end(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, int n,
                     struct ctl_job *job, uint32_t offset, int rank, struct err *err)
{
    struct ctl_task *t = &job->tasks[offset];
    const json_t *b = msg->body;
    if (rank >= job->spec.tp || t->ranks == NULL || t->ranks[rank] != n) {
        log_debug("ctl", "task %llu.%u: rank %d from %s is not current; ignored",
                  (unsigned long long)job->id, offset, rank, ctl->nodes[n].name);
        return ctl_out_reply(ctl, peer, msg->req_id, NULL);
    }
    const char *state = json_string_value(json_object_get(b, "state"));
    if (strcmp(state, "COMPLETED") != 0)
        return rank_failed(ctl, peer, msg, n, job, offset, rank, state, err);
    ctl->nodes[n].launch_failures = 0;
    if (rank == 0) {
        uint32_t count = job->spec.ndocs - offset * (uint32_t)job->spec.batch;
        if (count > (uint32_t)job->spec.batch)
            count = (uint32_t)job->spec.batch;
        /* exactly count x dim f32 (dim unknown for jobs stored before it was
         * kept: a multiple of count) */
        json_int_t dim = json_integer_value(json_object_get(job->infer, "dim"));
        size_t want = (size_t)count * 4 * (dim > 0 ? (size_t)dim : 1);
        if (msg->nblobs != 3 || msg->blobs[2].len == 0 ||
            (dim > 0 ? msg->blobs[2].len != want : msg->blobs[2].len % want != 0))
            return fail_group(ctl, job, offset, false, "rank 0 sent no embeddings of the right size", err) == 0
                       ? ctl_out_reply(ctl, peer, msg->req_id, NULL) : -1;
        struct ctl_result r = {.exit_code = 0, .state = JOB_STATE_COMPLETED,
                               .out = msg->blobs[2].data, .out_len = (uint32_t)msg->blobs[2].len,
                               .err = msg->blobs[1].data, .err_len = (uint32_t)msg->blobs[1].len};
        size_t len;
        uint8_t *rec = ctl_result_encode(&r, &len);
        uint8_t key[12];
        int rc = rec ? ctl_batch(ctl, err) : err_set(err, ENOMEM, "result: out of memory");
        if (rc == 0)
            rc = store_put(ctl->store, STORE_DB_RESULTS, key, store_key_task(key, job->id, offset), rec,
                           len, 0, err);
        free(rec);
        if (rc != 0) {
            if (ctl->store_err.code == 0)
                ctl->store_err = *err;
            return -1;
        }
    }
    if (!(t->ranks_done & (1u << rank))) /* not a resent report */
        ctl_task_usage_add(t, b);
    t->ranks_done |= 1u << rank;
    if (t->ranks_done == (1u << job->spec.tp) - 1) {
        /* when it ended by the node's clock (the ranks of a group end within
         * moments of each other), not when the controller heard: a report
         * held while the controller was down would add that time. A time
         * outside the dispatch and now (5 minutes of skew aside) is not
         * believed, as for exec tasks (ctl_nodes.c). */
        double now = units_now(), ended = json_number_value(json_object_get(b, "end_time"));
        if (!(ended >= t->start_time - 300 && ended <= now + 300))
            ended = now;
        if (ended < t->start_time)
            ended = t->start_time;
        if (ctl_task_end(ctl, job, offset, JOB_STATE_COMPLETED, 0, 0, ended, err) != 0)
            return -1;
    } else if (ctl_task_save(ctl, job, offset, err) != 0) {
        return -1;
    }
    return ctl_out_reply(ctl, peer, msg->req_id, NULL);
}

int ctl_infer_result(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg,
                     struct ctl_job *job, struct err *err)
{
    const json_t *task = json_object_get(msg->body, "task");
    int dim = 0;
    if (task == NULL) {
        /* dim from the first stored batch */
        for (uint32_t b = 0; b < job->ntasks && dim == 0; b++) {
            if (job->tasks[b].state != JOB_STATE_COMPLETED)
                continue;
            uint8_t key[12];
            void *val;
            size_t len;
            struct ctl_result r;
            struct err e = {0};
            if (store_get(ctl->store, STORE_DB_RESULTS, key, store_key_task(key, job->id, b), &val, &len, &e) == 0) {
                uint32_t count = job->spec.ndocs - b * (uint32_t)job->spec.batch;
                if (count > (uint32_t)job->spec.batch)
                    count = (uint32_t)job->spec.batch;
                if (ctl_result_decode(val, len, &r, &e) == 0 && count)
                    dim = (int)(r.out_len / 4 / count);
                free(val);
            }
        }
        uint32_t done = 0;
        for (uint32_t b = 0; b < job->ntasks; b++)
            done += job->tasks[b].state == JOB_STATE_COMPLETED;
        return ctl_out_reply(ctl, peer, msg->req_id,
                             json_pack("{s:I, s:s, s:s, s:I, s:i, s:s, s:I, s:I, s:i}", "id",
                                       (json_int_t)job->id, "kind", "infer", "state",
                                       job_state_name(job->state), "count", (json_int_t)job->spec.ndocs,
                                       "dim", dim, "dtype", "f32", "batches", (json_int_t)job->ntasks,
                                       "done", (json_int_t)done, "batch", job->spec.batch));
    }
    json_int_t b = json_integer_value(task);
    if (b < 0 || (uint64_t)b >= job->ntasks)
        return err_set(err, ENOENT, "job %llu: no batch %lld", (unsigned long long)job->id, (long long)b);
    uint32_t count = job->spec.ndocs - (uint32_t)b * (uint32_t)job->spec.batch;
    if (count > (uint32_t)job->spec.batch)
        count = (uint32_t)job->spec.batch;
    uint8_t key[12];
    void *val = NULL;
    size_t len;
    struct ctl_result r = {0};
    if (job->tasks[b].state != JOB_STATE_COMPLETED)
        return err_set(err, ENOENT, "job %llu: batch %lld is %s", (unsigned long long)job->id, (long long)b,
                       job_state_name(job->tasks[b].state));
    if (store_get(ctl->store, STORE_DB_RESULTS, key, store_key_task(key, job->id, (uint32_t)b), &val, &len, err) != 0 ||
        ctl_result_decode(val, len, &r, err) != 0) {
        free(val);
        return -1;
    }
    char *doctext = NULL;
    size_t doclen = 0;
    json_t *docs = load_docs(ctl, job->id, (uint32_t)b, &doctext, &doclen, err);
    json_decref(docs);
    int rc = -1;
    if (docs && ctl_out_reply(ctl, peer, msg->req_id,
                              json_pack("{s:s, s:I, s:s, s:I, s:I, s:i}", "kind", "infer", "index", b,
                                        "state", "COMPLETED", "count", (json_int_t)count, "dim",
                                        (json_int_t)(r.out_len / 4 / count), "batch",
                                        job->spec.batch)) == 0 &&
        proto_msg_add_blob(ctl_out_last(ctl), r.out, r.out_len, err) == 0 &&
        proto_msg_add_blob(ctl_out_last(ctl), doctext, doclen, err) == 0)
        rc = 0;
    free(val);
    free(doctext);
    return rc;
}
