/* ctl_jobs.c: job and task transitions, their records and messages. */
#include "controller/ctl_quota.h"
#include "controller/ctl_jobs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/ctl_bench.h"
#include "controller/ctl_purge.h"
#include "shared/log.h"
#include "shared/text.h"
#include "shared/units.h"

/* legal[from][to] */
static const bool legal[JOB_STATE_COUNT][JOB_STATE_COUNT] = {
    [JOB_STATE_PENDING] = {[JOB_STATE_RUNNING] = true, [JOB_STATE_CANCELLED] = true,
                           [JOB_STATE_FAILED] = true},
    [JOB_STATE_RUNNING] = {[JOB_STATE_PENDING] = true, [JOB_STATE_COMPLETED] = true,
                           [JOB_STATE_FAILED] = true, [JOB_STATE_CANCELLED] = true,
                           [JOB_STATE_TIMEOUT] = true},
};

bool ctl_state_transition_ok(enum job_state from, enum job_state to)
{
    if ((unsigned)from >= JOB_STATE_COUNT || (unsigned)to >= JOB_STATE_COUNT)
        return false;
    return legal[from][to];
}

long ctl_task_offset(const struct ctl_job *job, uint64_t index)
{
    return index > UINT32_MAX ? -1 : jobspec_offset(&job->spec, (uint32_t)index);
}

json_t *ctl_task_argv_expand(const struct job_spec *spec, uint32_t index)
{
    json_t *argv = json_array();
    char num[16];
    int nlen = snprintf(num, sizeof num, "%u", index);
    for (int i = 0; argv && i < spec->argc; i++) {
        const char *a = spec->argv[i];
        if (strstr(a, "{index}") == NULL) {
            json_array_append_new(argv, json_string(a));
            continue;
        }
        size_t cap = strlen(a) + 1, len = 0;
        for (const char *p = a; (p = strstr(p, "{index}")); p += 7)
            cap += (size_t)nlen;
        char *out = malloc(cap);
        if (out == NULL) {
            json_decref(argv);
            return NULL;
        }
        for (const char *p = a; *p;) {
            if (strncmp(p, "{index}", 7) == 0) {
                memcpy(out + len, num, (size_t)nlen);
                len += (size_t)nlen;
                p += 7;
            } else {
                out[len++] = *p++;
            }
        }
        out[len] = '\0';
        json_array_append_new(argv, json_string(out));
        free(out);
    }
    return argv;
}

static void node_release(struct ctl *ctl, const struct ctl_job *job, struct ctl_task *t)
{
    if (t->node < 0)
        return;
    int nranks = t->ranks ? job->spec.tp : 1;
    for (int r = 0; r < nranks; r++) {
        int idx = t->ranks ? t->ranks[r] : t->node;
        if (idx < 0)
            continue;
        ctl_node_give(&ctl->nodes[idx], t);
    }
    if (t->ranks && job->spec.tp > 1) { /* kept to be shown, as last_node is */
        free(t->last_ranks);
        t->last_ranks = t->ranks;
    } else {
        free(t->ranks);
    }
    t->ranks = NULL;
    t->node = -1;
    ctl->need_sched = true;
}

void ctl_task_kill(struct ctl *ctl, const struct ctl_job *job, uint32_t offset, const char *reason)
{
    const struct ctl_task *t = &job->tasks[offset];
    int nranks = t->ranks ? job->spec.tp : 1;
    for (int r = 0; r < nranks; r++) {
        int idx = t->ranks ? t->ranks[r] : t->node;
        if (idx < 0)
            continue;
        json_t *body = json_pack("{s:I, s:I, s:I, s:s}", "job", (json_int_t)job->id, "task",
                                 (json_int_t)jobspec_index(&job->spec, offset), "attempt",
                                 (json_int_t)t->attempts, "reason", reason);
        ctl_out_send(ctl, &ctl->nodes[idx].peer, PROTO_TYPE_KILL, body);
    }
}

static int job_set_state(struct ctl *ctl, struct ctl_job *job, enum job_state to, double now,
                         struct err *err)
{
    if (job->state == to)
        return 0;
    if (!ctl_state_transition_ok(job->state, to))
        return err_set(err, EINVAL, "job %llu: %s -> %s is not a legal transition",
                       (unsigned long long)job->id, job_state_name(job->state), job_state_name(to));
    if (job_state_is_terminal(to)) {
        ctl->nactive--;
        ctl_quota_note(ctl, job, false, err); /* never fails for a job it counts */
    }
    job->state = to;
    if (to == JOB_STATE_RUNNING && job->start_time == 0)
        job->start_time = now;
    if (job_state_is_terminal(to)) {
        job->end_time = now;
        ctl_purge_note(ctl, job, 0);
    }
    return ctl_job_save(ctl, job, false, err);
}

/* job_maybe_finish: when every task is terminal, derive the job's final state. */
int ctl_job_requeue(struct ctl *ctl, struct ctl_job *job, struct err *err)
{
    unsigned long long id = (unsigned long long)job->id;
    if (!job_state_is_terminal(job->state))
        return err_set(err, EINVAL, "job %llu is %s: requeue runs again what an ended job did not "
                       "complete", id, job_state_name(job->state));
    if (job->state == JOB_STATE_COMPLETED)
        return err_set(err, EINVAL, "job %llu: COMPLETED: nothing to run again", id);
    if (job->spec.kind == JOB_KIND_BENCH)
        return err_set(err, EINVAL, "job %llu: a bench job is not requeued: submit it again", id);
    if (job->docs_received < job->spec.ndocs)
        return err_set(err, EINVAL, "job %llu: only %u of its %u documents came: submit them again as a "
                       "new job", id, job->docs_received, job->spec.ndocs);
    if (job->running > 0)
        return err_set(err, EBUSY, "job %llu: %u of its tasks still run", id, job->running);
    if (ctl_quota_check(ctl, job->owner, job->ntasks, err) != 0)
        return err_prefix(err, "requeue");
    if (ctl_batch(ctl, err) != 0 || ctl_quota_note(ctl, job, true, err) != 0)
        return -1; /* nothing changed yet; a store failure below voids the batch (a recount) */
    uint32_t n = 0;
    for (uint32_t off = 0; off < job->ntasks; off++) {
        struct ctl_task *t = &job->tasks[off];
        if (t->state == JOB_STATE_COMPLETED)
            continue;
        uint8_t key[12];
        size_t klen = store_key_task(key, job->id, jobspec_index(&job->spec, off));
        struct err e = {0};
        /* Never dispatched (cancelled while pending): no result, and no record
         * but a cancel's; without one a task is PENDING (ctl_state.c
         * task_decode), so deleting it is the whole reset and costs no JSON:
         * the REQUEUE of a million such tasks holds the loop a second less. */
        bool untouched = t->attempts == 0 && t->launch_fails == 0 && t->retried == 0 &&
                         t->last_node < 0 && t->last_ranks == NULL;
        if (store_del(ctl->store, untouched ? STORE_DB_TASKS : STORE_DB_RESULTS, key, klen, &e) != 0 &&
            e.code != ENOENT) {
            *err = e;
            if (ctl->store_err.code == 0)
                ctl->store_err = e; /* the batch is void: MAP_FULL grows the map (fail_batch) */
            return -1;
        }
        t->state = JOB_STATE_PENDING;
        t->node = -1;
        t->exit_code = -1;
        t->signal = 0;
        t->start_time = t->end_time = t->deadline = 0;
        t->kill_sent = t->cancel = false;
        t->cpu_time = 0;
        t->max_rss_kib = 0;
        free(t->ranks);
        t->ranks = NULL;
        t->ranks_done = 0;
        t->attempts_base = t->attempts;
        t->launch_fails = t->retried = 0;
        if (!untouched && ctl_task_save(ctl, job, off, err) != 0)
            return -1;
        n++;
    }
    job->state = JOB_STATE_PENDING;
    ctl->nactive++;
    job->start_time = job->end_time = 0; /* its run time is the new run's (queue TIME, show) */
    job->exit_code = -1;
    job->cancel_requested = false;
    job->cancel_time = 0;
    free(job->final_reason);
    job->final_reason = NULL;
    job->done -= n < job->done ? n : job->done;
    job->next_index = 0; /* the scheduler walks past what is not PENDING */
    job->requeue_head = job->nrequeue = 0;
    snprintf(job->reason, sizeof job->reason, "requeued: %u task%s to run again", n, n == 1 ? "" : "s");
    ctl_live_keep(ctl, job->id);
    if (ctl_live_put(ctl, job->id, err) != 0 || ctl_job_save(ctl, job, false, err) != 0)
        return -1;
    log_info("ctl", "job %llu: requeued, %u tasks to run again", id, n);
    return ctl_queue_add(ctl, job, err);
}

void ctl_job_final_reason(struct ctl_job *job)
{
    if (job->final_reason == NULL)
        job->final_reason = strdup(job->reason); /* NULL (no memory): the generic one */
}

int ctl_job_maybe_finish(struct ctl *ctl, struct ctl_job *job, double now, struct err *err)
{
    if (job->done < job->ntasks || job_state_is_terminal(job->state))
        return 0;
    bool failed = false, timeout = false, cancelled = false, killed = false;
    int code = 0; /* the highest exit code of its tasks; else -1 if one ended without
                   * one (a signal, its node lost, killed by a cancel) */
    double last_end = 0; /* the job ends when its last task did (by the nodes' clocks,
                          * as checked when each ended), not when the controller heard */
    for (uint32_t i = 0; i < job->ntasks; i++) {
        const struct ctl_task *t = &job->tasks[i];
        if (t->end_time > last_end)
            last_end = t->end_time;
        failed |= t->state == JOB_STATE_FAILED;
        timeout |= t->state == JOB_STATE_TIMEOUT;
        cancelled |= t->state == JOB_STATE_CANCELLED;
        if (t->attempts == 0)
            continue; /* never ran (cancelled while pending): no exit code to count */
        if (t->exit_code > code)
            code = t->exit_code;
        /* killed: by a signal, its node lost, or a cancel while it ran */
        killed |= t->exit_code < 0 && t->state != JOB_STATE_COMPLETED;
    }
    if (code == 0 && killed)
        code = -1;
    enum job_state to = job->cancel_requested || (cancelled && !failed && !timeout)
                            ? JOB_STATE_CANCELLED
                        : failed   ? JOB_STATE_FAILED
                        : timeout  ? JOB_STATE_TIMEOUT
                                   : JOB_STATE_COMPLETED;
    job->exit_code = code;
    /* unless a task's end said why it ended for good (final_reason), the
     * reason left is a passing one (waiting, a retry): a job that completed
     * has none, one that failed says which task and how */
    bool user_cancel = to == JOB_STATE_CANCELLED && job->cancel_requested; /* says so itself */
    if (job->final_reason && !user_cancel)
        snprintf(job->reason, sizeof job->reason, "%s", job->final_reason);
    else if (to == JOB_STATE_COMPLETED)
        job->reason[0] = '\0';
    if ((to == JOB_STATE_FAILED || to == JOB_STATE_TIMEOUT ||
         (to == JOB_STATE_CANCELLED && !job->cancel_requested)) && !job->final_reason) {
        /* what queue's REASON and show say when no task's end gave a reason:
         * the first task that did not complete, and how (Slurm: NonZeroExitCode) */
        uint32_t bad = 0, nbad = 0;
        for (uint32_t i = 0; i < job->ntasks; i++)
            if (job->tasks[i].state == to && nbad++ == 0)
                bad = i;
        const struct ctl_task *t = &job->tasks[bad];
        char more[48] = "";
        if (nbad > 1)
            snprintf(more, sizeof more, " (and %u more)", nbad - 1);
        if (to == JOB_STATE_CANCELLED)
            snprintf(job->reason, sizeof job->reason, "task %u: cancelled%s%s",
                     jobspec_index(&job->spec, bad), t->cancel ? " by user" : "", more);
        else if (t->signal > 0)
            snprintf(job->reason, sizeof job->reason, "task %u: killed by signal %d%s",
                     jobspec_index(&job->spec, bad), t->signal, more);
        else
            snprintf(job->reason, sizeof job->reason, "task %u: exit code %d%s",
                     jobspec_index(&job->spec, bad), t->exit_code, more);
    }
    if (job->state == JOB_STATE_PENDING && to != JOB_STATE_CANCELLED && to != JOB_STATE_FAILED)
        job->state = JOB_STATE_RUNNING; /* every task ended without the job being seen running */
    log_debug("ctl", "job %llu %s exit=%d", (unsigned long long)job->id, job_state_name(to), code);
    if (last_end > 0 && last_end < now && last_end >= job->start_time)
        now = last_end;
    return job_set_state(ctl, job, to, now, err);
}

int ctl_task_dispatch(struct ctl *ctl, struct ctl_job *job, uint32_t offset, int n, double now,
                      struct err *err)
{
    struct ctl_task *t = &job->tasks[offset];
    struct ctl_node *node = &ctl->nodes[n];
    if (!ctl_state_transition_ok(t->state, JOB_STATE_RUNNING))
        return err_set(err, EINVAL, "task %llu.%u: cannot start from %s", (unsigned long long)job->id,
                       jobspec_index(&job->spec, offset), job_state_name(t->state));
    uint32_t index = jobspec_index(&job->spec, offset);
    t->state = JOB_STATE_RUNNING;
    t->attempts++;
    if (t->attempts > job->attempts)
        job->attempts = t->attempts;
    t->cpu_time = 0; /* this attempt's, once it ends */
    t->max_rss_kib = 0;
    t->node = n;
    t->last_node = n;
    t->start_time = now;
    t->end_time = 0;
    t->kill_sent = false;
    t->deadline = job->spec.time_limit > 0 ? now + job->spec.time_limit : 0;
    ctl_node_take(node, job, t);
    job->running++;
    if (ctl_task_save(ctl, job, offset, err) != 0)
        return -1;
    if (job->state == JOB_STATE_PENDING && job_set_state(ctl, job, JOB_STATE_RUNNING, now, err) != 0)
        return -1;

    json_t *argv = ctl_task_argv_expand(&job->spec, index);
    json_t *env = json_array();
    char buf[160];
    snprintf(buf, sizeof buf, "MOAT_JOB_ID=%llu", (unsigned long long)job->id);
    json_array_append_new(env, json_string(buf));
    snprintf(buf, sizeof buf, "MOAT_TASK_INDEX=%u", index);
    json_array_append_new(env, json_string(buf));
    snprintf(buf, sizeof buf, "MOAT_ATTEMPT=%u", t->attempts);
    json_array_append_new(env, json_string(buf));
    snprintf(buf, sizeof buf, "MOAT_NODE=%s", node->name);
    json_array_append_new(env, json_string(buf));
    snprintf(buf, sizeof buf, "MOAT_JOB_NAME=%s", job->spec.name);
    json_array_append_new(env, json_string(buf));
    for (int i = 0; i < job->spec.nenv; i++) /* --env: NAMEs are never MOAT_* (jobspec.h) */
        json_array_append_new(env, json_string(job->spec.env[i]));
    /* what the node reserved: the spec's, or the whole node for a bench task */
    json_t *body = json_pack("{s:I, s:I, s:I, s:s, s:o, s:o, s:i, s:i, s:I, s:f, s:I}",
                             "job", (json_int_t)job->id, "task", (json_int_t)index, "attempt",
                             (json_int_t)t->attempts, "kind", job_kind_name(job->spec.kind), "argv",
                             argv, "env", env, "cpus", t->res_cpus, "gpus", t->res_gpus, "mem",
                             (json_int_t)t->res_mem, "deadline", t->deadline, "output_cap",
                             (json_int_t)ctl->cfg.output_cap);
    if (body != NULL && job->spec.kind == JOB_KIND_BENCH &&
        json_object_set_new(body, "bench", ctl_bench_json(&job->spec)) != 0) {
        json_decref(body);
        body = NULL;
    }
    if (body == NULL)
        return err_set(err, ENOMEM, "dispatch: out of memory");
    return ctl_out_send(ctl, &node->peer, PROTO_TYPE_DISPATCH, body) == 0
               ? 0 : err_set(err, ENOMEM, "dispatch: out of memory");
}

int ctl_task_end(struct ctl *ctl, struct ctl_job *job, uint32_t offset, enum job_state state,
                 int exit_code, int signal, double end_time, struct err *err)
{
    struct ctl_task *t = &job->tasks[offset];
    if (!job_state_is_terminal(state) || !ctl_state_transition_ok(t->state, state))
        return err_set(err, EINVAL, "task %llu.%u: %s -> %s is not a legal transition",
                       (unsigned long long)job->id, jobspec_index(&job->spec, offset),
                       job_state_name(t->state), job_state_name(state));
    bool was_running = t->state == JOB_STATE_RUNNING;
    node_release(ctl, job, t);
    t->state = state;
    t->exit_code = exit_code;
    t->signal = signal;
    t->end_time = end_time;
    if (was_running)
        job->running--;
    job->done++;
    job->completed += state == JOB_STATE_COMPLETED;
    if (ctl_task_save(ctl, job, offset, err) != 0)
        return -1;
    return ctl_job_maybe_finish(ctl, job, units_now(), err);
}

void ctl_task_usage_add(struct ctl_task *t, const json_t *b)
{
    double cpu = json_number_value(json_object_get(b, "cpu_time")); /* 0 when absent */
    json_int_t rss = json_integer_value(json_object_get(b, "max_rss"));
    if (cpu > 0)
        t->cpu_time += (float)cpu;
    uint64_t kib = rss > 0 ? ((uint64_t)rss + 1023) / 1024 : 0;
    if (kib > UINT32_MAX)
        kib = UINT32_MAX;
    if (kib > t->max_rss_kib)
        t->max_rss_kib = (uint32_t)kib;
}

int ctl_task_requeue(struct ctl *ctl, struct ctl_job *job, uint32_t offset, bool launch_failure,
                     const char *why, struct err *err)
{
    struct ctl_task *t = &job->tasks[offset];
    if (t->state != JOB_STATE_RUNNING)
        return err_set(err, EINVAL, "task %llu.%u: requeue from %s", (unsigned long long)job->id,
                       jobspec_index(&job->spec, offset), job_state_name(t->state));
    if (launch_failure)
        t->launch_fails++;
    /* node losses since the last requeue */
    uint32_t counted = t->attempts - t->attempts_base - t->launch_fails - t->retried;
    if (job->cancel_requested || t->cancel || counted >= (uint32_t)ctl->cfg.max_attempts) {
        enum job_state to = job->cancel_requested || t->cancel ? JOB_STATE_CANCELLED : JOB_STATE_FAILED;
        if (to == JOB_STATE_FAILED) {
            snprintf(job->reason, sizeof job->reason, "task %u: %.150s after %u attempts",
                     jobspec_index(&job->spec, offset), why, counted);
            text_utf8_trim(job->reason); /* why may be a worker's or a rank's UTF-8, cut */
            ctl_job_final_reason(job);
        }
        return ctl_task_end(ctl, job, offset, to, -1, 0, units_now(), err);
    }
    node_release(ctl, job, t);
    t->state = JOB_STATE_PENDING;
    job->running--;
    if (ctl_task_save(ctl, job, offset, err) != 0)
        return -1;
    if (ctl_task_requeue_push(job, offset, err) != 0 || ctl_queue_add(ctl, job, err) != 0)
        return -1;
    if (job->running == 0 && job->done == 0 && job->state == JOB_STATE_RUNNING) {
        job->state = JOB_STATE_PENDING; /* legal RUNNING -> PENDING: nothing of it runs now */
        snprintf(job->reason, sizeof job->reason, "requeued: %s", why);
        text_utf8_trim(job->reason);
        return ctl_job_save(ctl, job, false, err);
    }
    return 0;
}

int ctl_task_cancel(struct ctl *ctl, struct ctl_job *job, uint32_t index, struct err *err)
{
    long off = ctl_task_offset(job, index);
    if (job->spec.kind != JOB_KIND_EXEC || !job->spec.is_array)
        return err_set(err, EINVAL, "job %llu is not an array: cancel the whole job",
                       (unsigned long long)job->id);
    if (off < 0)
        return err_set(err, ENOENT, "job %llu has no task %u", (unsigned long long)job->id, index);
    struct ctl_task *t = &job->tasks[off];
    if (t->cancel || (job->cancel_requested && t->state == JOB_STATE_CANCELLED))
        return 1; /* cancelled already (a request sent again, or the job with it): no change */
    if (job_state_is_terminal(job->state) || job_state_is_terminal(t->state))
        return err_set(err, EINVAL, "job %llu task %u: already %s", (unsigned long long)job->id,
                       index, job_state_name(t->state));
    double now = units_now();
    t->cancel = true;
    if (t->state == JOB_STATE_PENDING) {
        /* N.B. it keeps its place in next_index / the requeue list: the
         * scheduler passes over tasks no longer PENDING (ctl_sched.c) */
        t->state = JOB_STATE_CANCELLED;
        t->end_time = now;
        job->done++;
        if (ctl_task_save(ctl, job, (uint32_t)off, err) != 0)
            return -1; /* a record even if it never started: a restart must not run it */
        return ctl_job_maybe_finish(ctl, job, now, err);
    }
    if (!t->kill_sent && t->node >= 0 && ctl->nodes[t->node].registered) {
        t->kill_sent = true; /* else sent when its node registers (ctl_on_register) */
        ctl_task_kill(ctl, job, (uint32_t)off, "cancel");
    }
    return ctl_task_save(ctl, job, (uint32_t)off, err);
}

int ctl_job_hold(struct ctl *ctl, struct ctl_job *job, bool hold, struct err *err)
{
    if (job_state_is_terminal(job->state))
        return err_set(err, EINVAL, "job %llu: already %s", (unsigned long long)job->id,
                       job_state_name(job->state));
    if (job->held == hold)
        return 1; /* no change */
    if (hold && job->done + job->running >= job->ntasks)
        return err_set(err, EINVAL, "job %llu: every task of it has started: nothing to hold",
                       (unsigned long long)job->id);
    job->held = hold;
    if (hold)
        snprintf(job->reason, sizeof job->reason, "held (moat release %llu)", (unsigned long long)job->id);
    else
        job->reason[0] = '\0'; /* the next pass says what it waits for, if anything */
    ctl->need_sched = true;
    return ctl_job_save(ctl, job, false, err);
}

int ctl_job_cancel(struct ctl *ctl, struct ctl_job *job, const char *why, struct err *err)
{
    if (job->cancel_requested)
        return 1; /* a request sent again (the CLI resends after 1 s): no change */
    if (job_state_is_terminal(job->state))
        return err_set(err, EINVAL, "job %llu: already %s", (unsigned long long)job->id,
                       job_state_name(job->state));
    double now = units_now();
    job->cancel_requested = true;
    job->cancel_time = now;
    snprintf(job->reason, sizeof job->reason, "%s", why);
    for (uint32_t off = 0; off < job->ntasks; off++) {
        struct ctl_task *t = &job->tasks[off];
        if (t->state == JOB_STATE_PENDING) {
            t->state = JOB_STATE_CANCELLED;
            t->end_time = now;
            job->done++;
            if (off < job->next_index && ctl_task_save(ctl, job, off, err) != 0)
                return -1; /* requeued tasks have records to update; never-started ones do not */
        } else if (t->state == JOB_STATE_RUNNING && !t->kill_sent && t->node >= 0 &&
                   ctl->nodes[t->node].registered) {
            /* N.B. a node not registered (yet) is sent the KILL when it
             * registers (ctl_on_register), or its tasks end with it */
            t->kill_sent = true;
            ctl_task_kill(ctl, job, off, "cancel");
        }
    }
    job->next_index = job->ntasks;
    job->requeue_head = job->nrequeue;
    if (ctl_job_save(ctl, job, false, err) != 0)
        return -1;
    return ctl_job_maybe_finish(ctl, job, now, err);
}
