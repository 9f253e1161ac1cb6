/* ctl_sched.c: priority order, resource fit, dependencies, begin times, %MAX. */
#include "controller/ctl_sched.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "controller/ctl_audit.h"
#include "controller/ctl_bench.h"
#include "controller/ctl_infer.h"
#include "controller/ctl_jobs.h"
#include "shared/log.h"
#include "shared/units.h"

bool ctl_sched_fits(const struct ctl_node *n, const struct job_spec *spec)
{
    return n->state == NODE_STATE_UP && n->registered && !n->held &&
           n->cpus - n->used_cpus >= spec->cpus &&
           (spec->gpus == 0 || n->gpus - n->used_gpus >= spec->gpus) &&
           (spec->mem == 0 || (n->used_mem <= n->mem && n->mem - n->used_mem >= spec->mem));
}

/* asked_and_largest: "3 cpus, 1 gpus (largest: 2 cpus, 0 gpus, 1.0 GiB)": what
 * spec asks of one node (gpus and memory only when asked) and the largest
 * node's figures. */
static void asked_and_largest(const struct job_spec *spec, int mc, int mg, uint64_t mm, char *buf,
                              size_t cap)
{
    int len = snprintf(buf, cap, "%d cpus", spec->cpus);
    if (spec->gpus > 0 && len >= 0 && (size_t)len < cap)
        len += snprintf(buf + len, cap - (size_t)len, ", %d gpus", spec->gpus);
    if (spec->mem > 0 && len >= 0 && (size_t)len < cap)
        len += snprintf(buf + len, cap - (size_t)len, ", %.1f GiB", (double)spec->mem / 1073741824.0);
    if (len >= 0 && (size_t)len < cap)
        snprintf(buf + len, cap - (size_t)len, " (largest: %d cpus, %d gpus, %.1f GiB)", mc, mg,
                 (double)mm / 1073741824.0);
}

/* Nodes as big as one task of a spec needs, among those looked at (every one
 * not removed, or those UP only), and the largest figures among them. */
struct node_sizes {
    int looked, fit, cpus, gpus;
    uint64_t mem;
};

static struct node_sizes node_sizes(const struct ctl *ctl, const struct job_spec *spec, bool up_only)
{
    struct node_sizes z = {0};
    for (int i = 0; i < ctl->nnodes; i++) {
        const struct ctl_node *n = &ctl->nodes[i];
        if (n->removed || (up_only && n->state != NODE_STATE_UP))
            continue;
        z.looked++;
        z.fit += n->cpus >= spec->cpus && n->gpus >= spec->gpus && (spec->mem == 0 || n->mem >= spec->mem);
        z.cpus = n->cpus > z.cpus ? n->cpus : z.cpus;
        z.gpus = n->gpus > z.gpus ? n->gpus : z.gpus;
        z.mem = n->mem > z.mem ? n->mem : z.mem;
    }
    return z;
}

bool ctl_sched_feasible(const struct ctl *ctl, const struct job_spec *spec, char *why, size_t cap)
{
    struct node_sizes z = node_sizes(ctl, spec, false);
    int need = spec->kind == JOB_KIND_INFER ? spec->tp : 1;
    /* N.B. within a heartbeat tolerance of the controller's start, the
     * workers of a new cluster may still be registering (a big one after the
     * small ones): not judged yet, the job waits with its reason instead */
    bool settling = units_mono() - ctl->started <
                    ctl->cfg.heartbeat_interval * (double)ctl->cfg.heartbeat_tolerance;
    if (z.looked == 0 || z.fit >= need || spec->kind == JOB_KIND_BENCH || settling)
        return true;
    char asked[128];
    asked_and_largest(spec, z.cpus, z.gpus, z.mem, asked, sizeof asked);
    if (z.fit == 0)
        snprintf(why, cap, "no node of this cluster has %s", asked);
    else
        snprintf(why, cap, "it needs %d nodes for its TP ranks; %d of this cluster can hold one", need,
                 z.fit);
    return false;
}

/* never_fits: no node UP could hold one task (infer: tp ranks on tp nodes) of
 * spec even when idle; why says so, with the largest node, so that a job
 * that waits for a bigger node than the cluster has does not read "waiting
 * for resources" for ever. Bench tasks (whole nodes) are not judged here. */
static bool never_fits(const struct ctl *ctl, const struct job_spec *spec, char *why, size_t cap)
{
    struct node_sizes z = node_sizes(ctl, spec, true);
    int need = spec->kind == JOB_KIND_INFER ? spec->tp : 1;
    if (z.looked == 0 || z.fit >= need || spec->kind == JOB_KIND_BENCH)
        return false; /* no node yet: plain waiting */
    char asked[128];
    asked_and_largest(spec, z.cpus, z.gpus, z.mem, asked, sizeof asked);
    if (z.fit == 0)
        snprintf(why, cap, "no node UP has %.80s", asked);
    else
        snprintf(why, cap, "needs %d nodes for its TP ranks, %d UP can hold one", need, z.fit);
    return true;
}

/* note_waiting: job has tasks left that could not be placed this pass: if
 * nothing of it runs and its reason says nothing more specific, say whether
 * it waits for resources to free up (on the node reserved for it, when
 * reserved is one) or for a node big enough (never_fits). */
static void note_waiting(const struct ctl *ctl, struct ctl_job *job, int reserved)
{
    char why[sizeof job->reason];
    bool plain = job->reason[0] == '\0' || strncmp(job->reason, "waiting for resources", 21) == 0 ||
                 strncmp(job->reason, "no node UP", 10) == 0 || strncmp(job->reason, "needs ", 6) == 0;
    if (job->running != 0 || !plain)
        return;
    if (never_fits(ctl, &job->spec, why, sizeof why))
        snprintf(job->reason, sizeof job->reason, "%s", why);
    else if (reserved >= 0)
        snprintf(job->reason, sizeof job->reason, "waiting for resources (node %.56s reserved)",
                 ctl->nodes[reserved].name);
    else
        snprintf(job->reason, sizeof job->reason, "waiting for resources");
}

/* A reservation: what a blocked job's task (one TP rank) would take on a
 * node, counted as used there for the rest of the pass (ctl_sched_pass undoes
 * it), so that jobs after it may use only what the job would leave. */
struct resv {
    int node, cpus, gpus;
    uint64_t mem;
};

/* reserve: job (ready; the first in priority order this pass to be blocked)
 * has a task that no node has room for now. On the nodes big enough for one
 * task (one per TP rank) with the most free cpus, count the task's cpus,
 * gpus and memory as used for the rest of the pass: jobs after it in the
 * queue may use what it would leave there (cpus beside a GPU job waiting for
 * its GPU), but not take what frees up and starve it (a 2-cpu job behind a
 * long array of 1-cpu tasks would otherwise wait for the whole array); the
 * pass after comes to this job first again. Nothing is reserved unless all
 * the nodes it needs exist. Fills out[] (JOBSPEC_TP_MAX), returns how many,
 * 0 for none; free_cpus loses the cpus reserved. */
static int reserve(struct ctl *ctl, const struct ctl_job *job, long *free_cpus, struct resv *out)
{
    const struct job_spec *spec = &job->spec;
    int need = spec->kind == JOB_KIND_INFER ? spec->tp : 1, n = 0;
    for (int r = 0; r < need && r < JOBSPEC_TP_MAX; r++) {
        int best = -1;
        for (int i = 0; i < ctl->nnodes; i++) {
            const struct ctl_node *nd = &ctl->nodes[i];
            if (nd->state != NODE_STATE_UP || !nd->registered || nd->held || nd->reserved ||
                nd->cpus < spec->cpus || nd->gpus < spec->gpus || (spec->mem && nd->mem < spec->mem))
                continue;
            if (best < 0 || nd->cpus - nd->used_cpus > ctl->nodes[best].cpus - ctl->nodes[best].used_cpus)
                best = i;
        }
        if (best < 0)
            break;
        ctl->nodes[best].reserved = true;
        out[n++] = (struct resv){best, spec->cpus, spec->gpus, spec->mem};
    }
    if (n < need) {
        for (int k = 0; k < n; k++)
            ctl->nodes[out[k].node].reserved = false;
        return 0;
    }
    for (int k = 0; k < n; k++) {
        struct ctl_node *nd = &ctl->nodes[out[k].node];
        int avail = nd->cpus - nd->used_cpus;
        *free_cpus -= avail <= 0 ? 0 : avail < out[k].cpus ? avail : out[k].cpus;
        nd->used_cpus += out[k].cpus;
        nd->used_gpus += out[k].gpus;
        nd->used_mem += out[k].mem;
    }
    return n;
}

/* unreserve: give back what reserve counted as used. */
static void unreserve(struct ctl *ctl, const struct resv *r, int n)
{
    for (int k = 0; k < n; k++) {
        struct ctl_node *nd = &ctl->nodes[r[k].node];
        nd->used_cpus -= r[k].cpus;
        nd->used_gpus -= r[k].gpus;
        nd->used_mem -= r[k].mem;
        nd->reserved = false;
    }
}

int ctl_sched_pick(const struct ctl_node *nodes, int nnodes, const struct job_spec *spec)
{
    int best = -1;
    for (int i = 0; i < nnodes; i++) {
        if (!ctl_sched_fits(&nodes[i], spec))
            continue;
        if (best < 0 || nodes[i].cpus - nodes[i].used_cpus > nodes[best].cpus - nodes[best].used_cpus)
            best = i;
    }
    return best;
}

int ctl_sched_job_ready(struct ctl *ctl, const struct ctl_job *job, double now, char *why,
                        size_t cap)
{
    /* every dependency is looked at: one that can no longer be met cancels
     * the job whatever its place in the list; else the first one unmet is
     * what the job waits for */
    bool waiting = false;
    for (int i = 0; i < job->spec.nafter; i++) {
        struct err e = {0};
        const struct ctl_job *dep = ctl_job_get(ctl, job->spec.after[i], &e);
        if (dep == NULL && e.code == ENOENT) {
            snprintf(why, cap, "dependency %llu does not exist", (unsigned long long)job->spec.after[i]);
            return -1;
        }
        if (dep == NULL) { /* a purged job that could not be read back: wait, do not cancel */
            if (!waiting)
                snprintf(why, cap, "dependency %llu unreadable: %.60s",
                         (unsigned long long)job->spec.after[i], e.msg);
            waiting = true;
            continue;
        }
        enum jobspec_dep kind = job->spec.after_kind ? (enum jobspec_dep)job->spec.after_kind[i]
                                                     : JOBSPEC_DEP_OK;
        if (!job_state_is_terminal(dep->state)) {
            if (!waiting)
                snprintf(why, cap, "waiting for job %llu%s", (unsigned long long)dep->id,
                         dep->held ? " (held)" : "");
            waiting = true;
            continue;
        }
        bool ok = dep->state == JOB_STATE_COMPLETED;
        if (kind == JOBSPEC_DEP_OK && !ok) {
            snprintf(why, cap, "dependency %llu ended %s", (unsigned long long)dep->id,
                     job_state_name(dep->state));
            return -1;
        }
        if (kind == JOBSPEC_DEP_NOTOK && ok) {
            snprintf(why, cap, "dependency %llu COMPLETED (afternotok: runs only if it does not)",
                     (unsigned long long)dep->id);
            return -1;
        }
    }
    if (job->held) {
        snprintf(why, cap, "held (moat release %llu)", (unsigned long long)job->id);
        return 0;
    }
    if (waiting)
        return 0;
    if (job->spec.begin > now) {
        snprintf(why, cap, "begin time not reached");
        return 0;
    }
    return 1;
}

/* audit_place: the placement of task offset of job (just dispatched) in the audit log. */
static int audit_place(struct ctl *ctl, const struct ctl_job *job, uint32_t offset, struct err *err)
{
    const struct ctl_task *t = &job->tasks[offset];
    json_t *nodes = json_array();
    for (int r = 0; r < (t->ranks ? job->spec.tp : 1); r++) {
        int n = t->ranks ? t->ranks[r] : t->node;
        json_array_append_new(nodes, json_string(n >= 0 ? ctl->nodes[n].name : "?"));
    }
    char object[64];
    snprintf(object, sizeof object, "task %llu.%u", (unsigned long long)job->id,
             job->spec.kind == JOB_KIND_INFER ? offset : jobspec_index(&job->spec, offset));
    return ctl_audit_append(ctl, CTL_AUDIT_ACTOR_SELF, "place", object,
                            json_pack("{s:o, s:i}", "nodes", nodes, "attempt", (int)t->attempts), err);
}

/* has_work: whether job has a task to start (an infer job still receiving
 * documents: among its batches that came, ctl_job_ready); first passes over the
 * tasks at the head of the requeue list and at next_index that are no longer
 * PENDING (an array element cancelled alone, ctl_task_cancel). */
static bool has_work(struct ctl_job *job)
{
    while (job->requeue_head < job->nrequeue &&
           job->tasks[job->requeue[job->requeue_head]].state != JOB_STATE_PENDING)
        job->requeue_head++;
    while (job->next_index < job->ntasks && job->tasks[job->next_index].state != JOB_STATE_PENDING)
        job->next_index++;
    return !job_state_is_terminal(job->state) && !job->cancel_requested &&
           (job->requeue_head < job->nrequeue || job->next_index < ctl_job_ready(job));
}

/* bench_wait_why: why a bench task cannot start on node n (-1: unknown). */
static const char *bench_wait_why(const struct ctl *ctl, int n)
{
    if (n < 0)
        return "unknown";
    const struct ctl_node *node = &ctl->nodes[n];
    if (node->state != NODE_STATE_UP)
        return node_state_name(node->state);
    return node->registered ? "busy" : "not registered";
}

/* bench_pass: start every task of bench job whose node is free, in any order
 * (a busy or lost node does not hold up the others). Tasks never started go on
 * the requeue list first, so that any of them can be taken from it. A task
 * whose node is UP but busy holds that node for the rest of the pass: jobs
 * after this one in the queue (lower priority, or younger) are not placed
 * there, so the benchmark gets the node when its current work ends. */
static int bench_pass(struct ctl *ctl, struct ctl_job *job, double now, long *free_cpus,
                      int *placed, struct err *err)
{
    while (job->next_index < job->ntasks) {
        if (ctl_task_requeue_push(job, job->next_index, err) != 0)
            return -1;
        job->next_index++;
    }
    int waiting = 0;
    for (uint32_t i = job->requeue_head; i < job->nrequeue; i++) {
        uint32_t off = job->requeue[i];
        int n = ctl_bench_node(ctl, job, off);
        if (n >= 0 && ctl_bench_node_free(&ctl->nodes[n])) {
            job->requeue[i] = job->requeue[job->requeue_head];
            job->requeue[job->requeue_head++] = off;
            if (ctl_task_dispatch(ctl, job, off, n, now, err) != 0 ||
                audit_place(ctl, job, off, err) != 0)
                return -1;
            *free_cpus -= ctl->nodes[n].cpus;
            (*placed)++;
            continue;
        }
        if (n >= 0 && ctl->nodes[n].state == NODE_STATE_UP && ctl->nodes[n].registered)
            ctl->nodes[n].held = true;
        if (waiting++ == 0)
            snprintf(job->reason, sizeof job->reason, "waiting for node %.64s (%s)",
                     job->spec.nodes[off], bench_wait_why(ctl, n));
    }
    if (waiting > 1) {
        size_t len = strlen(job->reason);
        snprintf(job->reason + len, sizeof job->reason - len, " and %d more", waiting - 1);
    }
    return 0;
}

/* refresh_reasons: the jobs from queue position from on, which a pass that
 * found the cluster full did not look at: bring their reasons up to date
 * (a dependency that has ended, a begin time that has come), at most once a
 * second, so that queue and show do not go on saying what is no longer so.
 * A job whose dependency failed is cancelled by the next pass that reaches it. */
static void refresh_reasons(struct ctl *ctl, uint32_t from, double now)
{
    if (now - ctl->reasons_at < 1.0 && now >= ctl->reasons_at)
        return;
    ctl->reasons_at = now;
    for (uint32_t k = from; k < ctl->nqueue; k++) {
        struct ctl_job *job = ctl->queue[k];
        char why[96];
        int ready = has_work(job) ? ctl_sched_job_ready(ctl, job, now, why, sizeof why) : -1;
        if (ready < 0)
            continue;
        if (ready == 0) {
            snprintf(job->reason, sizeof job->reason, "%s", why);
        } else if (job->running == 0) {
            job->reason[0] = '\0';
            note_waiting(ctl, job, -1);
        }
    }
}

void ctl_sched_note_new(struct ctl *ctl, struct ctl_job *job, double now)
{
    char why[96];
    if (job->held || !has_work(job))
        return;
    int ready = ctl_sched_job_ready(ctl, job, now, why, sizeof why);
    if (ready == 0)
        snprintf(job->reason, sizeof job->reason, "%s", why);
    else if (ready > 0)
        note_waiting(ctl, job, -1);
}

static int sched_pass(struct ctl *ctl, double now, struct resv *resv, int *nresv, struct err *err)
{
    long free_cpus = 0;
    for (int i = 0; i < ctl->nnodes; i++)
        ctl->nodes[i].held = false;
    for (int i = 0; i < ctl->nnodes; i++) {
        const struct ctl_node *n = &ctl->nodes[i];
        if (n->state == NODE_STATE_UP && n->registered && n->cpus > n->used_cpus)
            free_cpus += n->cpus - n->used_cpus;
    }
    int placed = 0;
    uint32_t w = 0, i = 0;
    for (; i < ctl->nqueue; i++) {
        struct ctl_job *job = ctl->queue[i];
        if (!has_work(job)) {
            job->queued = false; /* DOCS puts a job receiving documents back */
            continue;
        }
        if (free_cpus <= 0) {
            refresh_reasons(ctl, i, now); /* the cluster is full: the rest stay as they are */
            break;
        }
        char why[96];
        int ready = ctl_sched_job_ready(ctl, job, now, why, sizeof why);
        if (ready < 0) {
            job->queued = false;
            if (ctl_job_cancel(ctl, job, why, err) < 0)
                return -1;
            continue;
        }
        if (ready == 0) {
            snprintf(job->reason, sizeof job->reason, "%s", why);
            ctl->queue[w++] = job;
            continue;
        }
        job->reason[0] = '\0';
        bool blocked = false; /* a task of it found no node with room */
        while (job->spec.kind == JOB_KIND_INFER && has_work(job)) {
            if (free_cpus < (long)job->spec.cpus * job->spec.tp) {
                blocked = true;
                break;
            }
            int16_t group[JOBSPEC_TP_MAX];
            if (ctl_infer_pick(ctl, &job->spec, group) != 0) {
                blocked = true;
                break;
            }
            uint32_t off = job->requeue_head < job->nrequeue ? job->requeue[job->requeue_head]
                                                             : job->next_index;
            if (ctl_infer_dispatch(ctl, job, off, group, now, err) != 0) {
                if (err->code == EAGAIN) {
                    blocked = true; /* no port free on rank 0's node now */
                    break;
                }
                return -1;
            }
            if (audit_place(ctl, job, off, err) != 0)
                return -1;
            if (job->requeue_head < job->nrequeue)
                job->requeue_head++;
            else
                job->next_index++;
            free_cpus -= (long)job->spec.cpus * job->spec.tp;
            placed++;
        }
        if (job->spec.kind == JOB_KIND_BENCH && bench_pass(ctl, job, now, &free_cpus, &placed, err) != 0)
            return -1;
        while (job->spec.kind == JOB_KIND_EXEC && has_work(job)) {
            if (job->spec.array_max && job->running >= job->spec.array_max)
                break;
            int n = free_cpus >= job->spec.cpus ? ctl_sched_pick(ctl->nodes, ctl->nnodes, &job->spec) : -1;
            if (n < 0) {
                blocked = true;
                break;
            }
            uint32_t off = job->requeue_head < job->nrequeue ? job->requeue[job->requeue_head]
                                                             : job->next_index;
            if (ctl_task_dispatch(ctl, job, off, n, now, err) != 0 ||
                audit_place(ctl, job, off, err) != 0)
                return -1;
            if (job->requeue_head < job->nrequeue)
                job->requeue_head++;
            else
                job->next_index++;
            free_cpus -= job->spec.cpus;
            placed++;
        }
        if (has_work(job)) {
            int held = -1;
            if (blocked && *nresv == 0 && /* one reservation a pass: the first job blocked */
                (*nresv = reserve(ctl, job, &free_cpus, resv)) > 0)
                held = resv[0].node;
            note_waiting(ctl, job, held);
            ctl->queue[w++] = job;
        } else {
            job->queued = false;
        }
    }
    /* Keep the jobs not looked at (the loop stopped when the cluster was full). */
    if (i < ctl->nqueue) {
        if (w != i)
            memmove(ctl->queue + w, ctl->queue + i, (ctl->nqueue - i) * sizeof *ctl->queue);
        w += ctl->nqueue - i;
    }
    ctl->nqueue = w;
    return placed;
}

int ctl_sched_pass(struct ctl *ctl, double now, struct err *err)
{
    struct resv resv[JOBSPEC_TP_MAX];
    int nresv = 0;
    int placed = sched_pass(ctl, now, resv, &nresv, err);
    unreserve(ctl, resv, nresv); /* also after a failure: nodes keep only real use */
    return placed;
}
