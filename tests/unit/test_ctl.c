/* test_ctl.c: the controller's state machine, placement, requeue and recovery,
 * on a real LMDB store in a temporary directory and fake nodes (no sockets). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>

#include "controller/ctl_bench.h"
#include "controller/ctl_api.h"
#include "controller/ctl_jobs.h"
#include "controller/ctl_purge.h"
#include "controller/ctl_sched.h"
#include "controller/ctl_state.h"
#include "kernels/krn.h"
#include "shared/units.h"

struct fx {
    char dir[64];
    struct ctl ctl;
    store_t *store;
};

static void add_node(struct ctl *ctl, const char *name, int cpus, int gpus, uint64_t mem)
{
    ctl->nodes = realloc(ctl->nodes, (size_t)(ctl->nnodes + 1) * sizeof *ctl->nodes);
    struct ctl_node *n = &ctl->nodes[ctl->nnodes++];
    memset(n, 0, sizeof *n);
    snprintf(n->name, sizeof n->name, "%s", name);
    n->cpus = cpus;
    n->gpus = gpus;
    n->mem = mem;
    n->state = NODE_STATE_UP;
    n->registered = true;
    n->peer.len = 1;
    n->peer.id[0] = (uint8_t)ctl->nnodes;
    n->last_seen = units_mono();
    ctl->nodes_cap = ctl->nnodes;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/moat-test-ctl-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    struct err e = {0};
    f->store = store_open(f->dir, 1 << 20, 1 << 26, &e);
    assert_non_null(f->store);
    struct ctl_cfg cfg;
    assert_int_equal(ctl_cfg_load(NULL, &cfg, &e), 0);
    ctl_state_init(&f->ctl, &cfg, f->store, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    ctl_state_free(&f->ctl);
    store_close(f->store);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* submit: a job like `moat submit` would send; returns it. */
static struct ctl_job *submit(struct ctl *ctl, const char *json)
{
    struct job_spec spec;
    struct err e = {0};
    json_t *o = json_loads(json, 0, NULL);
    assert_non_null(o);
    if (jobspec_from_json(&spec, o, &e) != 0)
        fail_msg("spec %s: %s", json, e.msg);
    json_decref(o);
    struct ctl_job *job = ctl_job_new(ctl->njobs + 1, &spec, units_now(), &e);
    assert_non_null(job);
    assert_int_equal(ctl_job_save(ctl, job, true, &e), 0);
    assert_int_equal(ctl_job_add(ctl, job, &e), 0);
    assert_int_equal(ctl_queue_add(ctl, job, &e), 0);
    return job;
}

static int sched(struct ctl *ctl)
{
    struct err e = {0};
    int n = ctl_sched_pass(ctl, units_now(), &e);
    if (n < 0)
        fail_msg("sched: %s", e.msg);
    return n;
}

static void end_task(struct ctl *ctl, struct ctl_job *job, uint32_t off, enum job_state st, int code)
{
    struct err e = {0};
    if (ctl_task_end(ctl, job, off, st, code, 0, units_now(), &e) != 0)
        fail_msg("end: %s", e.msg);
}

static void commit(struct fx *f)
{
    struct err e = {0};
    if (store_in_batch(f->store))
        assert_int_equal(store_commit(f->store, &e), 0);
    for (int i = 0; i < f->ctl.nout; i++)
        proto_msg_clear(&f->ctl.outbox[i].msg);
    f->ctl.nout = 0;
}

static void transitions_table(void **state)
{
    (void)state;
    enum job_state P = JOB_STATE_PENDING, R = JOB_STATE_RUNNING, C = JOB_STATE_COMPLETED,
                   F = JOB_STATE_FAILED, X = JOB_STATE_CANCELLED, T = JOB_STATE_TIMEOUT;
    bool want[JOB_STATE_COUNT][JOB_STATE_COUNT] = {0};
    want[P][R] = want[P][X] = want[P][F] = true;
    want[R][P] = want[R][C] = want[R][F] = want[R][X] = want[R][T] = true;
    for (int a = 0; a < JOB_STATE_COUNT; a++)
        for (int b = 0; b < JOB_STATE_COUNT; b++)
            if (ctl_state_transition_ok((enum job_state)a, (enum job_state)b) != want[a][b])
                fail_msg("%s -> %s: expected %s", job_state_name((enum job_state)a),
                         job_state_name((enum job_state)b), want[a][b] ? "legal" : "illegal");
    assert_false(ctl_state_transition_ok(JOB_STATE_COUNT, P));
    /* every terminal state is final */
    for (int b = 0; b < JOB_STATE_COUNT; b++) {
        assert_false(ctl_state_transition_ok(C, (enum job_state)b));
        assert_false(ctl_state_transition_ok(T, (enum job_state)b));
    }
}

static void illegal_end_is_refused(void **state)
{
    struct fx *f = *state;
    add_node(&f->ctl, "n1", 1, 0, 0);
    struct ctl_job *job = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"true\"]}");
    struct err e = {0};
    /* PENDING -> COMPLETED is not legal */
    assert_int_equal(ctl_task_end(&f->ctl, job, 0, JOB_STATE_COMPLETED, 0, 0, 1, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_int_equal(sched(&f->ctl), 1);
    end_task(&f->ctl, job, 0, JOB_STATE_COMPLETED, 0);
    assert_int_equal(job->state, JOB_STATE_COMPLETED);
    assert_int_equal(ctl_task_end(&f->ctl, job, 0, JOB_STATE_FAILED, 1, 0, 1, &e), -1);
    assert_int_equal(ctl_job_cancel(&f->ctl, job, "x", &e), -1);
    assert_int_equal(e.code, EINVAL);
}

static void places_by_resources_priority_and_age(void **state)
{
    struct fx *f = *state;
    add_node(&f->ctl, "small", 2, 0, 1 << 30);
    add_node(&f->ctl, "gpu", 4, 2, 4ull << 30);
    struct ctl_job *low = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"a\"],\"cpus\":2,\"priority\":-5}");
    struct ctl_job *old = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"b\"],\"cpus\":2}");
    struct ctl_job *hi = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"c\"],\"cpus\":2,\"priority\":10}");
    struct ctl_job *young = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"d\"],\"cpus\":2}");
    struct ctl_job *gpu = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"e\"],\"gpus\":3}");
    struct ctl_job *big = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"f\"],\"mem\":8589934592}");
    /* 6 cpus in all: hi, then old, then young (older first at equal priority) fit. */
    assert_int_equal(sched(&f->ctl), 3);
    assert_int_equal(hi->state, JOB_STATE_RUNNING);
    assert_int_equal(old->state, JOB_STATE_RUNNING);
    assert_int_equal(young->state, JOB_STATE_RUNNING);
    assert_int_equal(low->state, JOB_STATE_PENDING);
    /* 3 gpus and 8 GiB fit on no node: never placed */
    assert_int_equal(gpu->state, JOB_STATE_PENDING);
    assert_int_equal(big->state, JOB_STATE_PENDING);
    /* the first placement goes to the node with most free cpus */
    assert_string_equal(f->ctl.nodes[hi->tasks[0].node].name, "gpu");
    assert_int_equal(f->ctl.nodes[0].used_cpus + f->ctl.nodes[1].used_cpus, 6);
    end_task(&f->ctl, old, 0, JOB_STATE_COMPLETED, 0);
    assert_int_equal(sched(&f->ctl), 1);
    assert_int_equal(low->state, JOB_STATE_RUNNING);
    commit(f);
}

/* A job of high priority that needs more cpus than any node has free gets a
 * node reserved: the small tasks of a low-priority array go elsewhere, so the
 * big job starts when that node's running tasks end, not after the array. */
static void a_big_job_is_not_starved_by_small_ones(void **state)
{
    struct fx *f = *state;
    add_node(&f->ctl, "n1", 2, 0, 0);
    add_node(&f->ctl, "n2", 2, 0, 0);
    struct ctl_job *arr = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"a\"],\"priority\":-10,"
                                           "\"array\":{\"start\":0,\"end\":59}}");
    assert_int_equal(sched(&f->ctl), 4); /* both nodes full */
    struct ctl_job *big = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"b\"],\"cpus\":2,"
                                           "\"priority\":1000}");
    assert_int_equal(sched(&f->ctl), 0);
    /* one task ends on n1: n1 has 1 cpu free, not enough for big; n1 is held */
    uint32_t on1 = 0;
    while (arr->tasks[on1].node != 0)
        on1++;
    end_task(&f->ctl, arr, on1, JOB_STATE_COMPLETED, 0);
    assert_int_equal(sched(&f->ctl), 0);
    assert_int_equal(f->ctl.nodes[0].used_cpus, 1);
    assert_string_equal(big->reason, "waiting for resources (node n1 reserved)");
    /* a task ends on n2: the array goes on there */
    uint32_t on2 = 0;
    while (arr->tasks[on2].state != JOB_STATE_RUNNING || arr->tasks[on2].node != 1)
        on2++;
    end_task(&f->ctl, arr, on2, JOB_STATE_COMPLETED, 0);
    assert_int_equal(sched(&f->ctl), 1);
    assert_int_equal(f->ctl.nodes[1].used_cpus, 2);
    assert_int_equal(f->ctl.nodes[0].used_cpus, 1);
    /* n1's other task ends: big starts there, ahead of the 54 array tasks left */
    uint32_t last = on1 + 1;
    while (arr->tasks[last].state != JOB_STATE_RUNNING || arr->tasks[last].node != 0)
        last++;
    end_task(&f->ctl, arr, last, JOB_STATE_COMPLETED, 0);
    assert_int_equal(sched(&f->ctl), 1);
    assert_int_equal(big->state, JOB_STATE_RUNNING);
    assert_string_equal(f->ctl.nodes[big->tasks[0].node].name, "n1");
    assert_string_equal(big->reason, "");
    /* a job bigger than any node reserves nothing: the array keeps both nodes' room */
    struct ctl_job *huge = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"c\"],\"cpus\":3,"
                                            "\"priority\":2000}");
    end_task(&f->ctl, big, 0, JOB_STATE_COMPLETED, 0);
    assert_int_equal(sched(&f->ctl), 2);
    assert_int_equal(huge->state, JOB_STATE_PENDING);
    assert_non_null(strstr(huge->reason, "no node UP has 3 cpus"));
    commit(f);
}

/* Reservations are bounded: a TP job that cannot fit at all holds nothing,
 * a TP job that can is not starved, and only the first blocked job of a pass
 * holds a node, so waiting big jobs cannot idle the cluster. */
static void reservations_hold_only_what_can_be_used(void **state)
{
    struct fx *f = *state;
    add_node(&f->ctl, "n1", 4, 0, 0);
    add_node(&f->ctl, "n2", 4, 0, 0);
    struct ctl_job *tp3 = submit(&f->ctl, "{\"kind\":\"infer\",\"model\":\"m\",\"ndocs\":10,"
                                           "\"tp\":3,\"priority\":10}");
    struct ctl_job *small = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"c\"],"
                                             "\"array\":{\"start\":0,\"end\":3}}");
    assert_int_equal(sched(&f->ctl), 4); /* two nodes cannot hold 3 ranks: nothing held */
    assert_int_equal(small->running, 4);
    assert_non_null(strstr(tp3->reason, "needs 3 nodes"));
    struct err e = {0};
    assert_int_equal(ctl_job_cancel(&f->ctl, tp3, "test", &e), 0);
    for (uint32_t o = 0; o < 4; o++)
        end_task(&f->ctl, small, o, JOB_STATE_COMPLETED, 0);
    /* two 3-cpu jobs leave 1 cpu free on each node */
    submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"a\"],\"cpus\":3}");
    submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"a\"],\"cpus\":3}");
    assert_int_equal(sched(&f->ctl), 2);
    struct ctl_job *b1 = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"b\"],\"cpus\":2,\"priority\":10}");
    struct ctl_job *b2 = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"b\"],\"cpus\":2,\"priority\":10}");
    struct ctl_job *ones = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"c\"],"
                                            "\"array\":{\"start\":0,\"end\":1}}");
    assert_int_equal(sched(&f->ctl), 1); /* b1 holds n1; b2 holds nothing; a 1-cpu task takes n2's */
    assert_string_equal(b1->reason, "waiting for resources (node n1 reserved)");
    assert_string_equal(b2->reason, "waiting for resources");
    assert_int_equal(ones->running, 1);
    assert_string_equal(f->ctl.nodes[ones->tasks[0].node].name, "n2");
    commit(f);
}

/* A job waiting for a GPU reserves only what its task takes: the node's
 * other cpus still run cpu-only work. */
static void a_reservation_leaves_the_rest_of_its_node(void **state)
{
    struct fx *f = *state;
    add_node(&f->ctl, "gpu", 8, 1, 0);
    struct ctl_job *g1 = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"a\"],\"gpus\":1}");
    assert_int_equal(sched(&f->ctl), 1);
    struct ctl_job *g2 = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"b\"],\"gpus\":1,"
                                          "\"cpus\":2,\"priority\":10}");
    struct ctl_job *cpu = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"c\"],"
                                           "\"array\":{\"start\":0,\"end\":99}}");
    assert_int_equal(sched(&f->ctl), 5); /* 8 cpus - g1's 1 - g2's 2 set aside */
    assert_int_equal(cpu->running, 5);
    assert_string_equal(g2->reason, "waiting for resources (node gpu reserved)");
    end_task(&f->ctl, g1, 0, JOB_STATE_COMPLETED, 0);
    assert_int_equal(sched(&f->ctl), 2); /* g2 gets the GPU and its 2 cpus; the last cpu, a task */
    assert_int_equal(g2->state, JOB_STATE_RUNNING);
    assert_int_equal(f->ctl.nodes[0].used_cpus, 8);
    commit(f);
}

/* A TP job of high priority behind a low-priority array gets its ranks' nodes
 * reserved as cpus free up, instead of losing each freed cpu to the array. */
static void a_tp_job_is_not_starved_by_small_ones(void **state)
{
    struct fx *f = *state;
    add_node(&f->ctl, "n1", 2, 0, 0);
    add_node(&f->ctl, "n2", 2, 0, 0);
    struct ctl_job *arr = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"c\"],\"priority\":-10,"
                                           "\"array\":{\"start\":0,\"end\":99}}");
    assert_int_equal(sched(&f->ctl), 4);
    struct ctl_job *tp = submit(&f->ctl, "{\"kind\":\"infer\",\"model\":\"m\",\"ndocs\":10,"
                                          "\"tp\":2,\"priority\":10}");
    /* tasks end one by one: the array gets no freed cpu a rank needs. (The
     * nodes have no comm ports here, so the TP job cannot start: it holds.) */
    static const int want[3] = {0, 0, 1}; /* the third end leaves n1 a cpu beyond its rank's */
    for (int k = 0; k < 3; k++) {
        uint32_t o = 0;
        while (arr->tasks[o].state != JOB_STATE_RUNNING)
            o++;
        end_task(&f->ctl, arr, o, JOB_STATE_COMPLETED, 0);
        assert_int_equal(sched(&f->ctl), want[k]);
        assert_non_null(strstr(tp->reason, "reserved"));
        /* what the pass set aside is given back: nodes count only real tasks */
        assert_int_equal(f->ctl.nodes[0].used_cpus + f->ctl.nodes[1].used_cpus, (int)arr->running);
        if (k > 0) /* each rank's cpu is still free */
            assert_true(f->ctl.nodes[0].used_cpus < 2 && f->ctl.nodes[1].used_cpus < 2);
    }
    assert_int_equal(arr->running, 2);
    commit(f);
}

static void array_max_bounds_concurrency(void **state)
{
    struct fx *f = *state;
    add_node(&f->ctl, "n1", 64, 0, 0);
    struct ctl_job *job = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"echo\",\"{index}\"],"
                                          "\"array\":{\"start\":10,\"end\":19,\"max\":3}}");
    assert_int_equal(job->ntasks, 10);
    assert_int_equal(sched(&f->ctl), 3);
    assert_int_equal(sched(&f->ctl), 0);
    assert_int_equal(job->running, 3);
    end_task(&f->ctl, job, 1, JOB_STATE_COMPLETED, 0);
    assert_int_equal(sched(&f->ctl), 1);
    assert_int_equal(job->running, 3);
    /* indices are dispatched in order and {index} is substituted */
    json_t *argv = ctl_task_argv_expand(&job->spec, 17);
    assert_string_equal(json_string_value(json_array_get(argv, 1)), "17");
    json_decref(argv);
    for (int round = 0; round < 20 && job->done < job->ntasks; round++) {
        for (uint32_t i = 0; i < job->ntasks; i++)
            if (job->tasks[i].state == JOB_STATE_RUNNING)
                end_task(&f->ctl, job, i, JOB_STATE_COMPLETED, 0);
        sched(&f->ctl);
        assert_true(job->running <= 3);
    }
    assert_int_equal(job->state, JOB_STATE_COMPLETED);
    assert_int_equal(f->ctl.nactive, 0);
    commit(f);
}

static void after_and_begin(void **state)
{
    struct fx *f = *state;
    add_node(&f->ctl, "n1", 8, 0, 0);
    struct ctl_job *a = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"a\"]}");
    struct ctl_job *b = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"b\"],\"after\":[1]}");
    struct ctl_job *c = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"c\"],\"after\":[2]}");
    char later[128];
    snprintf(later, sizeof later, "{\"kind\":\"exec\",\"argv\":[\"d\"],\"begin\":%.0f}", units_now() + 3600);
    struct ctl_job *d = submit(&f->ctl, later);
    assert_int_equal(sched(&f->ctl), 1);
    assert_int_equal(a->state, JOB_STATE_RUNNING);
    assert_int_equal(b->state, JOB_STATE_PENDING);
    assert_non_null(strstr(b->reason, "job 1"));
    assert_int_equal(d->state, JOB_STATE_PENDING);
    assert_non_null(strstr(d->reason, "begin"));
    end_task(&f->ctl, a, 0, JOB_STATE_COMPLETED, 0);
    assert_int_equal(sched(&f->ctl), 1);
    assert_int_equal(b->state, JOB_STATE_RUNNING);
    /* b fails: c can never run and is cancelled, naming the dependency */
    end_task(&f->ctl, b, 0, JOB_STATE_FAILED, 2);
    assert_int_equal(b->state, JOB_STATE_FAILED);
    assert_int_equal(b->exit_code, 2);
    sched(&f->ctl);
    assert_int_equal(c->state, JOB_STATE_CANCELLED);
    assert_non_null(strstr(c->reason, "dependency 2 ended FAILED"));
    /* the begin time is absolute: once passed, d runs */
    d->spec.begin = units_now() - 1;
    assert_int_equal(sched(&f->ctl), 1);
    assert_int_equal(d->state, JOB_STATE_RUNNING);
    commit(f);
}

static void requeue_then_fail_after_max_attempts(void **state)
{
    struct fx *f = *state;
    add_node(&f->ctl, "n1", 1, 0, 0);
    struct ctl_job *job = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"x\"]}");
    struct err e = {0};
    /* launch failures are not held against the job */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(sched(&f->ctl), 1);
        assert_int_equal(ctl_task_requeue(&f->ctl, job, 0, true, "launch failed", &e), 0);
        assert_int_equal(job->tasks[0].state, JOB_STATE_PENDING);
    }
    assert_int_equal(job->tasks[0].launch_fails, 5);
    /* node losses are: max_attempts (3) of them fail the task */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sched(&f->ctl), 1);
        assert_int_equal(ctl_task_requeue(&f->ctl, job, 0, false, "node lost", &e), 0);
        assert_int_equal(job->state, JOB_STATE_PENDING);
    }
    assert_int_equal(f->ctl.nodes[0].used_cpus, 0);
    assert_int_equal(sched(&f->ctl), 1);
    assert_int_equal(job->tasks[0].attempts, 8);
    assert_int_equal(ctl_task_requeue(&f->ctl, job, 0, false, "node lost", &e), 0);
    assert_int_equal(job->tasks[0].state, JOB_STATE_FAILED);
    assert_int_equal(job->state, JOB_STATE_FAILED);
    assert_non_null(strstr(job->reason, "after 3 attempts"));
    commit(f);
}

/* A task that fails for good while others of its job still wait or run: the
 * job ends FAILED with that task's reason and a non-zero exit code, whatever
 * the passes between wrote and however its other tasks ended (a helper saw
 * "FAILED (exit code 0)" with no reason after node losses). */
static void a_task_failed_for_good_gives_the_job_its_reason_and_exit_code(void **state)
{
    struct fx *f = *state;
    add_node(&f->ctl, "n1", 1, 0, 0);
    struct ctl_job *job = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"x\"],"
                                          "\"array\":{\"start\":0,\"end\":2}}");
    struct err e = {0};
    for (int i = 0; i < 3; i++) { /* task 0 loses its node max_attempts times */
        assert_int_equal(sched(&f->ctl), 1);
        assert_int_equal(job->tasks[0].state, JOB_STATE_RUNNING);
        assert_int_equal(ctl_task_requeue(&f->ctl, job, 0, false, "node lost", &e), 0);
    }
    assert_int_equal(job->tasks[0].state, JOB_STATE_FAILED);
    assert_int_equal(job->state, JOB_STATE_RUNNING); /* tasks 1 and 2 are still to run */
    for (uint32_t off = 1; off < 3; off++) { /* the passes write passing reasons */
        assert_int_equal(sched(&f->ctl), 1);
        end_task(&f->ctl, job, off, JOB_STATE_COMPLETED, 0);
    }
    assert_int_equal(job->state, JOB_STATE_FAILED);
    assert_string_equal(job->reason, "task 0: node lost after 3 attempts");
    assert_int_equal(job->exit_code, -1); /* not the later task's 0 */
    commit(f);
    /* a positive exit code wins over a signal, in any order */
    struct ctl_job *j2 = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"x\"],"
                                         "\"array\":{\"start\":0,\"end\":2}}");
    int codes[3] = {-1, 0, 3};
    for (uint32_t off = 0; off < 3; off++) {
        assert_int_equal(sched(&f->ctl), 1);
        end_task(&f->ctl, j2, off, codes[off] == 0 ? JOB_STATE_COMPLETED : JOB_STATE_FAILED,
                 codes[off]);
    }
    assert_int_equal(j2->state, JOB_STATE_FAILED);
    assert_int_equal(j2->exit_code, 3);
    commit(f);
    /* a user's cancel after a task failed for good: the job says it was cancelled */
    struct ctl_job *j3 = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"x\"],"
                                         "\"array\":{\"start\":0,\"end\":1}}");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sched(&f->ctl), 1);
        assert_int_equal(ctl_task_requeue(&f->ctl, j3, 0, false, "node lost", &e), 0);
    }
    assert_int_equal(sched(&f->ctl), 1); /* task 1 runs */
    assert_int_equal(ctl_job_cancel(&f->ctl, j3, "cancelled by user", &e), 0);
    end_task(&f->ctl, j3, 1, JOB_STATE_CANCELLED, -1);
    assert_int_equal(j3->state, JOB_STATE_CANCELLED);
    assert_string_equal(j3->reason, "cancelled by user");
    commit(f);
}

static void cancel_pending_and_running(void **state)
{
    struct fx *f = *state;
    add_node(&f->ctl, "n1", 2, 0, 0);
    struct ctl_job *job = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"x\"],\"array\":{\"start\":0,\"end\":4}}");
    assert_int_equal(sched(&f->ctl), 2);
    commit(f);
    struct err e = {0};
    assert_int_equal(ctl_job_cancel(&f->ctl, job, "cancelled by user", &e), 0);
    /* pending ones end now; running ones get a KILL and end when the worker says so */
    assert_int_equal(job->done, 3);
    assert_int_equal(job->state, JOB_STATE_RUNNING);
    int kills = 0;
    for (int i = 0; i < f->ctl.nout; i++)
        kills += f->ctl.outbox[i].msg.type == PROTO_TYPE_KILL;
    assert_int_equal(kills, 2);
    end_task(&f->ctl, job, 0, JOB_STATE_CANCELLED, -1);
    end_task(&f->ctl, job, 1, JOB_STATE_CANCELLED, -1);
    assert_int_equal(job->state, JOB_STATE_CANCELLED);
    assert_int_equal(sched(&f->ctl), 0);
    commit(f);
}

static void recovery_rebuilds_state(void **state)
{
    struct fx *f = *state;
    add_node(&f->ctl, "n1", 4, 0, 0);
    struct err e = {0};
    assert_int_equal(ctl_node_save(&f->ctl, &f->ctl.nodes[0], &e), 0);
    struct ctl_job *a = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"a\"],\"array\":{\"start\":0,\"end\":5}}");
    submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"b\"],\"time_limit\":60,\"priority\":1}");
    assert_int_equal(sched(&f->ctl), 4); /* b first (priority), then a's tasks 0-2 */
    end_task(&f->ctl, a, 0, JOB_STATE_COMPLETED, 0);
    double deadline = f->ctl.jobs[2]->tasks[0].deadline;
    assert_true(deadline > 0);
    commit(f);
    /* a restart: rebuild from the store alone */
    struct ctl_cfg cfg = f->ctl.cfg;
    ctl_state_free(&f->ctl);
    ctl_state_init(&f->ctl, &cfg, f->store, NULL);
    assert_int_equal(ctl_state_recover(&f->ctl, &e), 0);
    assert_int_equal(f->ctl.njobs, 2);
    struct ctl_job *r = f->ctl.jobs[1];
    assert_int_equal(r->state, JOB_STATE_RUNNING);
    assert_int_equal(r->tasks[0].state, JOB_STATE_COMPLETED);
    assert_int_equal(r->tasks[1].state, JOB_STATE_RUNNING);
    assert_int_equal(r->tasks[5].state, JOB_STATE_PENDING);
    assert_int_equal(r->running, 2);
    assert_int_equal(r->done, 1);
    assert_int_equal(r->next_index, 3);
    /* the deadline is absolute: a restart does not reset it */
    assert_true(f->ctl.jobs[2]->tasks[0].deadline == deadline);
    /* the node comes back unregistered, with its running tasks' resources held */
    assert_false(f->ctl.nodes[0].registered);
    assert_int_equal(f->ctl.nodes[0].used_cpus, 3);
    assert_int_equal(f->ctl.nactive, 2);
}

/* queue_all: ctl_on_queue({all: true})'s jobs, as "ID:STATE" joined by ' '. */
static void queue_all(struct fx *f, char *out, size_t cap)
{
    struct proto_msg msg = {.type = PROTO_TYPE_QUEUE, .req_id = 1};
    msg.body = json_pack("{s:b}", "all", 1);
    struct net_peer peer = {0};
    struct err e = {0};
    assert_int_equal(ctl_on_queue(&f->ctl, &peer, &msg, &e), 0);
    json_decref(msg.body);
    const json_t *jobs = json_object_get(f->ctl.outbox[f->ctl.nout - 1].msg.body, "jobs");
    size_t off = 0;
    out[0] = '\0';
    for (size_t i = 0; i < json_array_size(jobs); i++) {
        const json_t *j = json_array_get(jobs, i);
        off += (size_t)snprintf(out + off, cap - off, "%s%lld:%s", i ? " " : "",
                                (long long)json_integer_value(json_object_get(j, "id")),
                                json_string_value(json_object_get(j, "state")));
    }
}

/* Finished jobs leave memory inactive_age after they ended and come back from
 * the store as they were (tasks, exit codes, times); unfinished ones, and a
 * cancelled one whose task still runs, stay; queue --all and dependencies
 * still see purged jobs; a restart purges at once what is old enough. */
static void finished_jobs_leave_memory_and_come_back(void **state)
{
    struct fx *f = *state;
    f->ctl.cfg.inactive_age = 60;
    add_node(&f->ctl, "n1", 8, 0, 0);
    struct ctl_job *a = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"a\"],"
                                         "\"array\":{\"start\":10,\"end\":12}}");
    struct ctl_job *b = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"b\"]}");
    struct ctl_job *c = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"c\"]}");
    struct ctl_job *x = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"x\"]}");
    assert_int_equal(sched(&f->ctl), 6);
    end_task(&f->ctl, a, 0, JOB_STATE_COMPLETED, 0);
    end_task(&f->ctl, a, 1, JOB_STATE_COMPLETED, 0);
    end_task(&f->ctl, a, 2, JOB_STATE_FAILED, 3);
    end_task(&f->ctl, b, 0, JOB_STATE_COMPLETED, 0);
    struct err e = {0};
    assert_int_equal(ctl_job_cancel(&f->ctl, x, "test", &e), 0);
    assert_int_equal(a->state, JOB_STATE_FAILED);
    assert_int_equal(x->state, JOB_STATE_RUNNING); /* cancelled, its task still ending */
    double a_end = a->end_time, t_a2 = a->tasks[2].end_time;
    commit(f);
    double now = units_mono();
    assert_int_equal(ctl_purge_run(&f->ctl, now), 0); /* not yet */
    assert_int_equal(ctl_purge_run(&f->ctl, now + 61), 2);
    assert_null(ctl_job_peek(&f->ctl, 1));
    assert_null(ctl_job_peek(&f->ctl, 2));
    assert_ptr_equal(ctl_job_peek(&f->ctl, 3), c);
    assert_ptr_equal(ctl_job_peek(&f->ctl, 4), x);
    assert_int_equal(f->ctl.nresident, 2);
    assert_int_equal(f->ctl.nactive, 2);

    /* queue --all reads them from the store without keeping them */
    char q[256];
    queue_all(f, q, sizeof q);
    assert_string_equal(q, "1:FAILED 2:COMPLETED 3:RUNNING 4:RUNNING");
    assert_int_equal(f->ctl.nresident, 2);
    commit(f);

    /* read back as it was */
    double t_read = units_mono();
    struct ctl_job *a2 = ctl_job_get(&f->ctl, 1, &e);
    assert_non_null(a2);
    assert_int_equal(a2->state, JOB_STATE_FAILED);
    assert_int_equal(a2->exit_code, 3);
    assert_true(a2->end_time == a_end);
    assert_string_equal(a2->spec.argv[0], "a");
    assert_int_equal(a2->spec.array_start, 10);
    assert_int_equal(a2->ntasks, 3);
    assert_int_equal(a2->tasks[0].state, JOB_STATE_COMPLETED);
    assert_int_equal(a2->tasks[2].state, JOB_STATE_FAILED);
    assert_int_equal(a2->tasks[2].exit_code, 3);
    assert_true(a2->tasks[2].end_time == t_a2);
    assert_int_equal(a2->running, 0);
    assert_int_equal(a2->done, 3);
    assert_int_equal(f->ctl.nresident, 3);
    assert_ptr_equal(ctl_job_get(&f->ctl, 1, &e), a2); /* once */
    /* purgeable inactive_age after the read, not before */
    assert_int_equal(ctl_purge_run(&f->ctl, t_read + 30), 0);
    assert_int_equal(ctl_purge_run(&f->ctl, units_mono() + 61), 1);
    assert_null(ctl_job_peek(&f->ctl, 1));

    /* x's task ends, and with it the job: now it may go */
    end_task(&f->ctl, x, 0, JOB_STATE_CANCELLED, -1);
    assert_int_equal(x->state, JOB_STATE_CANCELLED);
    assert_int_equal(ctl_purge_run(&f->ctl, units_mono() + 1000), 0); /* batch open */
    commit(f);
    assert_int_equal(ctl_purge_run(&f->ctl, units_mono() + 1000), 1);
    assert_null(ctl_job_peek(&f->ctl, 4));

    /* a dependency on a purged job: read back, COMPLETED, so it starts */
    struct ctl_job *d = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"d\"],\"after\":[2]}");
    assert_int_equal(sched(&f->ctl), 1);
    assert_int_equal(d->state, JOB_STATE_RUNNING);
    commit(f);

    /* a restart with inactive_age 0: every finished job leaves memory at once */
    struct ctl_cfg cfg = f->ctl.cfg;
    cfg.inactive_age = 0;
    ctl_state_free(&f->ctl);
    ctl_state_init(&f->ctl, &cfg, f->store, NULL);
    assert_int_equal(ctl_state_recover(&f->ctl, &e), 0);
    assert_int_equal(f->ctl.njobs, 5);
    assert_int_equal(f->ctl.nresident, 2); /* c and d run */
    assert_null(ctl_job_peek(&f->ctl, 1));
    assert_non_null(ctl_job_peek(&f->ctl, 3));
    assert_non_null(ctl_job_peek(&f->ctl, 5));
    assert_int_equal(f->ctl.nactive, 2);
    queue_all(f, q, sizeof q);
    assert_string_equal(q, "1:FAILED 2:COMPLETED 3:RUNNING 4:CANCELLED 5:RUNNING");
    struct ctl_job *b2 = ctl_job_get(&f->ctl, 2, &e);
    assert_non_null(b2);
    assert_int_equal(b2->state, JOB_STATE_COMPLETED);
    assert_int_equal(b2->tasks[0].exit_code, 0);
    assert_null(ctl_job_get(&f->ctl, 6, &e));
    assert_int_equal(e.code, ENOENT);
    (void)b;
}


static int count_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    (void)key, (void)klen, (void)val, (void)vlen;
    ++*(int *)arg;
    return 0;
}

/* live_entries: how many jobs the store's restart index holds. */
static int live_entries(struct fx *f)
{
    int n = 0;
    struct err e = {0};
    assert_int_equal(store_foreach(f->store, STORE_DB_LIVE, count_cb, &n, &e), 0);
    return n;
}

/* restart: the controller's state rebuilt from the store alone, with cfg. */
static void restart(struct fx *f, const struct ctl_cfg *cfg)
{
    struct ctl_cfg c = *cfg;
    struct err e = {0};
    ctl_state_free(&f->ctl);
    ctl_state_init(&f->ctl, &c, f->store, NULL);
    if (ctl_state_recover(&f->ctl, &e) != 0)
        fail_msg("recover: %s", e.msg);
}

/* An array element cancelled alone: not dispatched once cancelled while
 * pending (the scheduler passes over it); and one cancelled while it ran
 * whose node is unknown at a restart (task_decode makes it PENDING) stays
 * cancelled instead of running again, and the job ends with it. */
static void cancelled_element_never_runs_again(void **state)
{
    struct fx *f = *state;
    add_node(&f->ctl, "n1", 2, 0, 0);
    struct err e = {0};
    assert_int_equal(ctl_node_save(&f->ctl, &f->ctl.nodes[0], &e), 0);
    struct ctl_job *a = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"a\"],"
                                         "\"array\":{\"start\":0,\"end\":3}}");
    assert_int_equal(sched(&f->ctl), 2); /* 0 and 1 run; 2 and 3 wait for cpus */
    assert_int_equal(ctl_task_cancel(&f->ctl, a, 2, &e), 0); /* pending */
    assert_int_equal(ctl_task_cancel(&f->ctl, a, 2, &e), 1); /* again: no change */
    assert_int_equal(ctl_task_cancel(&f->ctl, a, 7, &e), -1);
    assert_int_equal(e.code, ENOENT);
    assert_int_equal(ctl_task_cancel(&f->ctl, a, 1, &e), 0); /* running: KILL sent */
    assert_true(a->tasks[1].cancel && a->tasks[1].state == JOB_STATE_RUNNING);
    end_task(&f->ctl, a, 0, JOB_STATE_COMPLETED, 0);
    assert_int_equal(sched(&f->ctl), 1); /* 3, not 2 */
    assert_int_equal(a->tasks[2].state, JOB_STATE_CANCELLED);
    assert_int_equal(a->tasks[2].attempts, 0);
    assert_int_equal(a->tasks[3].state, JOB_STATE_RUNNING);
    end_task(&f->ctl, a, 3, JOB_STATE_COMPLETED, 0);
    commit(f);
    /* the node of element 1 is gone from the store: a restart cannot place it */
    assert_int_equal(store_begin(f->store, &e), 0);
    assert_int_equal(store_del(f->store, STORE_DB_NODES, "n1", 2, &e), 0);
    commit(f);
    restart(f, &f->ctl.cfg);
    struct ctl_job *a2 = ctl_job_get(&f->ctl, 1, &e);
    assert_non_null(a2);
    assert_int_equal(a2->tasks[1].state, JOB_STATE_CANCELLED);
    assert_int_equal(a2->state, JOB_STATE_CANCELLED);
    assert_string_equal(a2->reason, "task 1: cancelled by user (and 1 more)");
    /* element 1, cancelled while it ran, ended without an exit code (2 never ran) */
    assert_int_equal(a2->exit_code, -1);
    add_node(&f->ctl, "n1", 2, 0, 0);
    assert_int_equal(sched(&f->ctl), 0); /* nothing of it runs again */
    commit(f);
}

/* A restart loads the jobs of the store's index only: purged jobs leave it in
 * the batch after their purge; one whose purge was lost to a crash is dropped
 * from it at the next restart; the history costs nothing to load. */
static void restart_loads_the_index_only(void **state)
{
    struct fx *f = *state;
    f->ctl.cfg.inactive_age = 60;
    add_node(&f->ctl, "n1", 8, 0, 0);
    struct err e = {0};
    assert_int_equal(ctl_node_save(&f->ctl, &f->ctl.nodes[0], &e), 0);
    struct ctl_job *a = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"a\"]}");
    struct ctl_job *b = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"b\"]}");
    struct ctl_job *c = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"c\"],"
                                         "\"array\":{\"start\":0,\"end\":3}}");
    assert_int_equal(sched(&f->ctl), 6);
    end_task(&f->ctl, a, 0, JOB_STATE_COMPLETED, 0);
    end_task(&f->ctl, b, 0, JOB_STATE_FAILED, 2);
    end_task(&f->ctl, c, 1, JOB_STATE_COMPLETED, 0);
    commit(f);
    assert_int_equal(live_entries(f), 3);
    /* a and b leave memory; the first batch after takes them out of the index */
    assert_int_equal(ctl_purge_run(&f->ctl, units_mono() + 61), 2);
    assert_int_equal(live_entries(f), 3);
    assert_int_equal(ctl_live_flush(&f->ctl, false, &e), 0); /* no batch: waits */
    struct ctl_job *d = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"d\"]}");
    assert_int_equal(ctl_live_flush(&f->ctl, false, &e), 0);
    commit(f);
    assert_int_equal(live_entries(f), 2); /* c and d */

    restart(f, &f->ctl.cfg);
    assert_int_equal(f->ctl.njobs, 4);
    assert_int_equal(f->ctl.nresident, 2);
    assert_null(ctl_job_peek(&f->ctl, 1));
    assert_null(ctl_job_peek(&f->ctl, 2));
    c = ctl_job_peek(&f->ctl, 3);
    d = ctl_job_peek(&f->ctl, 4);
    assert_non_null(c);
    assert_non_null(d);
    /* c comes back whole: its tasks, their node's resources, its queue place */
    assert_int_equal(c->tasks[0].state, JOB_STATE_RUNNING);
    assert_int_equal(c->tasks[1].state, JOB_STATE_COMPLETED);
    assert_int_equal(c->running, 3);
    assert_int_equal(c->done, 1);
    assert_int_equal(f->ctl.nodes[0].used_cpus, 3);
    assert_int_equal(f->ctl.nactive, 2);
    assert_true(d->queued);
    /* the purged ones read back as they were */
    struct ctl_job *b2 = ctl_job_get(&f->ctl, 2, &e);
    assert_non_null(b2);
    assert_int_equal(b2->state, JOB_STATE_FAILED);
    assert_int_equal(b2->tasks[0].exit_code, 2);
    assert_null(ctl_job_get(&f->ctl, 5, &e));
    assert_int_equal(e.code, ENOENT);
    /* a new job after the restart takes the next id */
    struct ctl_job *g = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"g\"]}");
    assert_int_equal(g->id, 5);
    commit(f);

    /* c finishes and is purged, but the controller dies before a batch
     * carries its removal: the next restart leaves it out and drops it */
    for (uint32_t off = 0; off < 4; off++)
        if (off != 1)
            end_task(&f->ctl, c, off, JOB_STATE_COMPLETED, 0);
    commit(f);
    assert_int_equal(ctl_purge_run(&f->ctl, units_mono() + 61), 2); /* c, b2 read back */
    assert_int_equal(live_entries(f), 3);
    struct ctl_cfg cfg = f->ctl.cfg;
    cfg.inactive_age = 0;
    restart(f, &cfg);
    assert_int_equal(f->ctl.nresident, 2); /* d, g */
    assert_null(ctl_job_peek(&f->ctl, 3));
    assert_int_equal(f->ctl.nunlive, 1);
    assert_int_equal(ctl_batch(&f->ctl, &e), 0);
    assert_int_equal(ctl_live_flush(&f->ctl, false, &e), 0);
    commit(f);
    assert_int_equal(live_entries(f), 2);
    (void)b;
}

/* A store written before the index (schema 1): the first restart reads every
 * record, writes the index and the schema version; the next uses the index. */
static void restart_indexes_an_older_store(void **state)
{
    struct fx *f = *state;
    f->ctl.cfg.inactive_age = 0;
    add_node(&f->ctl, "n1", 8, 0, 0);
    struct err e = {0};
    assert_int_equal(ctl_node_save(&f->ctl, &f->ctl.nodes[0], &e), 0);
    struct ctl_job *a = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"a\"]}");
    submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"b\"]}");
    submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"c\"],\"cpus\":16}");
    assert_int_equal(sched(&f->ctl), 2);
    end_task(&f->ctl, a, 0, JOB_STATE_COMPLETED, 0);
    commit(f);
    /* make it a schema-1 store: no index, version byte 1 (as the first release wrote) */
    store_close(f->store);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta, live;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, f->dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    assert_int_equal(mdb_dbi_open(txn, "live", 0, &live), 0);
    assert_int_equal(mdb_drop(txn, live, 1), 0);
    uint8_t one = 1;
    MDB_val k = {6, "schema"}, v = {1, &one};
    assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    f->store = store_open(f->dir, 1 << 20, 1 << 26, &e);
    assert_non_null(f->store);
    assert_int_equal(store_schema(f->store), 1);
    assert_int_equal(live_entries(f), 0);

    f->ctl.store = f->store;
    restart(f, &f->ctl.cfg);
    assert_int_equal(store_schema(f->store), STORE_SCHEMA_VERSION);
    assert_int_equal(f->ctl.njobs, 3);
    assert_int_equal(f->ctl.nresident, 2); /* a finished and went */
    assert_int_equal(live_entries(f), 2);
    assert_int_equal(ctl_job_peek(&f->ctl, 2)->running, 1);
    assert_true(ctl_job_peek(&f->ctl, 3)->queued);
    /* the next restart goes by the index and finds the same */
    restart(f, &f->ctl.cfg);
    assert_int_equal(f->ctl.nresident, 2);
    assert_int_equal(ctl_job_peek(&f->ctl, 2)->running, 1);
    assert_int_equal(f->ctl.nodes[0].used_cpus, 1);
    /* a newer store than this build is refused, by name */
    store_close(f->store);
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, f->dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    uint8_t next = STORE_SCHEMA_VERSION + 1;
    v.mv_data = &next;
    assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    f->store = store_open(f->dir, 1 << 20, 1 << 26, &e);
    assert_null(f->store);
    assert_int_equal(e.code, EPROTO);
    assert_non_null(strstr(e.msg, "schema version 3"));
    /* teardown closes what is open: put it back */
    f->ctl.store = NULL;
}


/* A job no node could ever hold says so instead of "waiting for resources". */
static void unplaceable_job_says_why(void **state)
{
    struct fx *f = *state;
    add_node(&f->ctl, "n1", 2, 0, 1ull << 30);
    struct ctl_job *big = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"a\"],\"cpus\":3}");
    struct ctl_job *gpu = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"b\"],\"gpus\":1}");
    struct ctl_job *busy = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"c\"],\"cpus\":2}");
    assert_int_equal(sched(&f->ctl), 1); /* busy */
    assert_string_equal(big->reason, "no node UP has 3 cpus (largest: 2 cpus, 0 gpus, 1.0 GiB)");
    assert_non_null(strstr(gpu->reason, "no node UP has 1 cpus, 1 gpus (largest"));
    assert_int_equal(busy->state, JOB_STATE_RUNNING);
    /* a bigger node registers: the job starts */
    add_node(&f->ctl, "n2", 4, 0, 1ull << 30);
    assert_int_equal(sched(&f->ctl), 1);
    assert_int_equal(big->state, JOB_STATE_RUNNING);
}


/* A cancelled job whose only running task comes back with its node unknown
 * (a node record lost): nothing of it runs, so recovery ends it. */
static void cancelled_job_with_a_lost_node_ends_at_recovery(void **state)
{
    struct fx *f = *state;
    add_node(&f->ctl, "n1", 4, 0, 0); /* never saved: unknown after a restart */
    struct ctl_job *j = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"a\"],"
                                         "\"array\":{\"start\":0,\"end\":3}}");
    assert_int_equal(sched(&f->ctl), 4);
    end_task(&f->ctl, j, 0, JOB_STATE_COMPLETED, 0);
    end_task(&f->ctl, j, 1, JOB_STATE_COMPLETED, 0);
    end_task(&f->ctl, j, 2, JOB_STATE_COMPLETED, 0);
    struct err e = {0};
    assert_int_equal(ctl_job_cancel(&f->ctl, j, "test", &e), 0);
    assert_int_equal(j->state, JOB_STATE_RUNNING); /* task 3 is being killed */
    commit(f);
    restart(f, &f->ctl.cfg);
    j = ctl_job_peek(&f->ctl, 1);
    assert_non_null(j);
    assert_int_equal(j->state, JOB_STATE_CANCELLED);
    assert_int_equal(j->tasks[3].state, JOB_STATE_CANCELLED);
    assert_int_equal(f->ctl.nactive, 0);
    commit(f); /* its end was written */
    restart(f, &f->ctl.cfg);
    assert_int_equal(ctl_job_get(&f->ctl, 1, &e)->state, JOB_STATE_CANCELLED);
}

/* show_text: ctl_job_json(job) with every ctl_task_json as compact text (caller frees). */
static char *show_text(struct fx *f, uint64_t id)
{
    struct err e = {0};
    struct ctl_job *job = ctl_job_get(&f->ctl, id, &e);
    if (job == NULL)
        fail_msg("job %llu: %s", (unsigned long long)id, e.msg);
    json_t *o = ctl_job_json(job), *tasks = json_array();
    for (uint32_t off = 0; off < job->ntasks; off++)
        json_array_append_new(tasks, ctl_task_json(&f->ctl, job, off));
    json_object_set_new(o, "tasks", tasks);
    char *txt = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return txt;
}

/* What `show` says of a finished job is the same after it was purged and read
 * back, field for field: tasks cancelled before they started (no record),
 * a job cancelled by its failed dependency, retried tasks' attempts. */
static void show_is_the_same_after_read_back(void **state)
{
    struct fx *f = *state;
    f->ctl.cfg.inactive_age = 0;
    add_node(&f->ctl, "n1", 2, 0, 0);
    struct err e = {0};
    assert_int_equal(ctl_node_save(&f->ctl, &f->ctl.nodes[0], &e), 0);
    struct ctl_job *arr = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"a\"],"
                                           "\"array\":{\"start\":0,\"end\":5}}");
    struct ctl_job *bad = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"b\"]}");
    struct ctl_job *dep = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"c\"],\"after\":[2]}");
    struct ctl_job *pend = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"d\"],\"cpus\":2}");
    assert_int_equal(sched(&f->ctl), 2); /* arr's tasks 0 and 1 */
    /* task 0 is lost with its node once: a second attempt */
    assert_int_equal(ctl_task_requeue(&f->ctl, arr, 0, false, "node lost", &e), 0);
    end_task(&f->ctl, arr, 1, JOB_STATE_COMPLETED, 0);
    assert_int_equal(sched(&f->ctl), 2); /* arr 0 again, arr 2 */
    assert_int_equal(arr->tasks[0].attempts, 2);
    end_task(&f->ctl, arr, 0, JOB_STATE_COMPLETED, 0);
    assert_int_equal(ctl_job_cancel(&f->ctl, arr, "cancelled by user", &e), 0); /* 3-5 never ran */
    end_task(&f->ctl, arr, 2, JOB_STATE_CANCELLED, -1);
    assert_int_equal(ctl_job_cancel(&f->ctl, pend, "cancelled by user", &e), 0);
    assert_int_equal(sched(&f->ctl), 1); /* bad */
    end_task(&f->ctl, bad, 0, JOB_STATE_FAILED, 1);
    sched(&f->ctl); /* dep: its dependency failed, so it is cancelled */
    assert_int_equal(dep->state, JOB_STATE_CANCELLED);
    assert_int_equal(arr->state, JOB_STATE_CANCELLED);
    commit(f);
    char *before[5];
    for (uint64_t id = 1; id <= 4; id++)
        before[id] = show_text(f, id);
    assert_int_equal(ctl_purge_run(&f->ctl, units_mono() + 1), 4);
    assert_int_equal(f->ctl.nresident, 0);
    for (uint64_t id = 1; id <= 4; id++) {
        char *after = show_text(f, id);
        if (strcmp(before[id], after) != 0)
            fail_msg("job %llu differs after read-back:\n%s\n%s", (unsigned long long)id,
                     before[id], after);
        free(after);
    }
    /* and after a restart that leaves them in the store */
    struct ctl_cfg cfg = f->ctl.cfg;
    ctl_state_free(&f->ctl);
    ctl_state_init(&f->ctl, &cfg, f->store, NULL);
    assert_int_equal(ctl_state_recover(&f->ctl, &e), 0);
    assert_int_equal(f->ctl.nresident, 0);
    for (uint64_t id = 1; id <= 4; id++) {
        char *after = show_text(f, id);
        assert_string_equal(before[id], after);
        free(after);
        free(before[id]);
    }
}

/* A bench spec: the JSON round trip keeps every field; bad ones are named. */
static void bench_spec_round_trip_and_errors(void **state)
{
    (void)state;
    struct job_spec spec, back;
    struct err e = {0};
    json_t *o = json_loads("{\"kind\":\"bench\",\"bench\":{\"op\":\"attention\",\"shape\":[2,128,4,32,1],"
                           "\"dtype\":\"bf16\",\"repeat\":7,\"backend\":\"cuda\",\"threads\":3},"
                           "\"nodes\":[\"b\",\"a\"]}", 0, NULL);
    assert_int_equal(jobspec_from_json(&spec, o, &e), 0);
    json_decref(o);
    assert_int_equal(jobspec_ntasks(&spec), 2);
    assert_int_equal(spec.cpus, 0);
    json_t *j = jobspec_to_json(&spec);
    assert_int_equal(jobspec_from_json(&back, j, &e), 0);
    json_decref(j);
    assert_string_equal(back.bench_op, "attention");
    assert_int_equal(back.bench_nshape, 5);
    assert_int_equal(back.bench_shape[4], 1);
    assert_string_equal(back.bench_dtype, "bf16");
    assert_int_equal(back.bench_repeat, 7);
    assert_string_equal(back.bench_backend, "cuda");
    assert_int_equal(back.bench_threads, 3);
    assert_int_equal(back.nnodes, 2);
    assert_string_equal(back.nodes[0], "b");
    jobspec_clear(&spec);
    jobspec_clear(&back);
    static const struct {
        const char *json, *msg;
    } bad[] = {
        {"{\"kind\":\"bench\",\"bench\":{\"op\":\"gemm\",\"shape\":[1,2]},\"nodes\":\"all\"}", "gemm takes M,N,K[,BATCH], not 2 values"},
        {"{\"kind\":\"bench\",\"bench\":{\"op\":\"conv\",\"shape\":[1]},\"nodes\":\"all\"}", "bench.op: 'conv' is not a kernel op"},
        {"{\"kind\":\"bench\",\"bench\":{\"op\":\"gemm\",\"shape\":[1,0,2]},\"nodes\":\"all\"}", "shape[1]"},
        {"{\"kind\":\"bench\",\"bench\":{\"op\":\"gelu\",\"shape\":[8],\"dtype\":\"f64\"},\"nodes\":\"all\"}", "bench.dtype"},
        {"{\"kind\":\"bench\",\"bench\":{\"op\":\"gelu\",\"shape\":[8],\"repeat\":0},\"nodes\":\"all\"}", "bench.repeat"},
        {"{\"kind\":\"bench\",\"bench\":{\"op\":\"gelu\",\"shape\":[8],\"x\":0},\"nodes\":\"all\"}", "unknown field 'x'"},
        {"{\"kind\":\"bench\",\"bench\":{\"op\":\"gelu\",\"shape\":[8]},\"nodes\":[\"a\",\"a\"]}", "listed twice"},
        {"{\"kind\":\"bench\",\"bench\":{\"op\":\"gelu\",\"shape\":[8]},\"nodes\":[\"a b\"]}", "nodes[0]"},
        {"{\"kind\":\"bench\",\"bench\":{\"op\":\"gelu\",\"shape\":[8]},\"nodes\":[]}", "nodes"},
        {"{\"kind\":\"bench\",\"bench\":{\"op\":\"gelu\",\"shape\":[8]},\"nodes\":\"all\",\"cpus\":2}", "cpus"},
        {"{\"kind\":\"bench\",\"nodes\":\"all\"}", "spec: bench"},
        {"{\"kind\":\"exec\",\"argv\":[\"x\"],\"nodes\":\"all\"}", "only for bench jobs"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o = json_loads(bad[i].json, 0, NULL);
        assert_non_null(o);
        memset(&e, 0, sizeof e);
        if (jobspec_from_json(&spec, o, &e) == 0)
            fail_msg("accepted %s", bad[i].json);
        if (strstr(e.msg, bad[i].msg) == NULL)
            fail_msg("%s: message '%s' does not name '%s'", bad[i].json, e.msg, bad[i].msg);
        json_decref(o);
    }
}

/* jobspec's table of bench ops and shape lengths is the kernels' own: an op and
 * length pass jobspec exactly when krn.h's cost model accepts them. */
static void bench_op_table_matches_the_kernels(void **state)
{
    (void)state;
    const int64_t shape[JOBSPEC_SHAPE_MAX] = {2, 2, 2, 2, 1};
    for (int op = 0; op < KRN_OP_COUNT; op++) {
        for (int n = 0; n <= JOBSPEC_SHAPE_MAX; n++) {
            bool krn = krn_op_bytes((enum krn_op)op, shape, n, KRN_DTYPE_F32) > 0;
            if (jobspec_bench_op_ok(krn_op_names[op], n) != krn)
                fail_msg("%s with %d shape values: jobspec says %d, krn.h says %d", krn_op_names[op], n,
                         !krn, krn);
        }
    }
    assert_false(jobspec_bench_op_ok("conv2d", 3));
}

/* "all" becomes the nodes UP now, in name order; unknown names are refused. */
static void bench_nodes_all_expands_to_up_nodes(void **state)
{
    struct fx *f = *state;
    add_node(&f->ctl, "zeta", 2, 0, 0);
    add_node(&f->ctl, "alpha", 2, 0, 0);
    add_node(&f->ctl, "down", 2, 0, 0);
    f->ctl.nodes[2].state = NODE_STATE_DOWN;
    struct job_spec spec;
    struct err e = {0};
    json_t *o = json_loads("{\"kind\":\"bench\",\"bench\":{\"op\":\"add\",\"shape\":[8]},\"nodes\":\"all\"}",
                           0, NULL);
    assert_int_equal(jobspec_from_json(&spec, o, &e), 0);
    assert_true(spec.nodes_all);
    assert_int_equal(ctl_bench_expand(&f->ctl, &spec, &e), 0);
    assert_false(spec.nodes_all);
    assert_int_equal(spec.nnodes, 2);
    assert_string_equal(spec.nodes[0], "alpha");
    assert_string_equal(spec.nodes[1], "zeta");
    jobspec_clear(&spec);
    json_decref(o);
    o = json_loads("{\"kind\":\"bench\",\"bench\":{\"op\":\"add\",\"shape\":[8]},\"nodes\":[\"alpha\",\"nope\"]}",
                   0, NULL);
    assert_int_equal(jobspec_from_json(&spec, o, &e), 0);
    assert_int_equal(ctl_bench_expand(&f->ctl, &spec, &e), -1);
    assert_int_equal(e.code, ENOENT);
    assert_non_null(strstr(e.msg, "'nope'"));
    jobspec_clear(&spec);
    json_decref(o);
}

/* A bench task runs on its own node only, waits while that node is busy
 * without holding up the job's other tasks, holds the node against work queued
 * behind it, takes the whole node and gives back exactly that. */
static void bench_task_takes_its_idle_node_whole(void **state)
{
    struct fx *f = *state;
    add_node(&f->ctl, "a", 4, 1, 1 << 30);
    add_node(&f->ctl, "b", 8, 0, 2u << 30);
    struct ctl_job *ex = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"x\"],\"cpus\":1}");
    assert_int_equal(sched(&f->ctl), 1);
    assert_string_equal(f->ctl.nodes[ex->tasks[0].node].name, "b"); /* most free cpus */
    struct ctl_job *bj = submit(&f->ctl, "{\"kind\":\"bench\",\"bench\":{\"op\":\"gemm\",\"shape\":[64,64,64]},"
                                         "\"nodes\":[\"b\",\"a\"],\"priority\":5}");
    struct ctl_job *low = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"y\"]}");
    /* b is busy: task 1 starts on a anyway; task 0 waits and says why */
    assert_int_equal(sched(&f->ctl), 1);
    assert_int_equal(bj->tasks[1].state, JOB_STATE_RUNNING);
    assert_string_equal(f->ctl.nodes[bj->tasks[1].node].name, "a");
    assert_int_equal(bj->tasks[0].state, JOB_STATE_PENDING);
    assert_string_equal(bj->reason, "waiting for node b (busy)");
    assert_int_equal(f->ctl.nodes[0].used_cpus, 4);
    assert_int_equal(f->ctl.nodes[0].used_gpus, 1);
    /* b has 7 free cpus, but it is held for the benchmark: the younger job waits */
    assert_int_equal(low->state, JOB_STATE_PENDING);
    assert_int_equal(sched(&f->ctl), 0);
    end_task(&f->ctl, ex, 0, JOB_STATE_COMPLETED, 0);
    assert_int_equal(sched(&f->ctl), 1);
    assert_string_equal(f->ctl.nodes[bj->tasks[0].node].name, "b");
    assert_int_equal(f->ctl.nodes[1].used_cpus, 8);
    assert_true(f->ctl.nodes[1].used_mem == 2u << 30);
    assert_int_equal(low->state, JOB_STATE_PENDING); /* nothing fits beside a benchmark */
    /* the DISPATCH carries the bench object and the whole node's sizes */
    bool seen = false;
    for (int i = 0; i < f->ctl.nout; i++) {
        const json_t *b = f->ctl.outbox[i].msg.body;
        if (f->ctl.outbox[i].msg.type != PROTO_TYPE_DISPATCH || json_integer_value(json_object_get(b, "job")) != (json_int_t)bj->id)
            continue;
        assert_string_equal(json_string_value(json_object_get(b, "kind")), "bench");
        assert_string_equal(json_string_value(json_object_get(json_object_get(b, "bench"), "op")), "gemm");
        if (json_integer_value(json_object_get(b, "task")) == 1) {
            assert_int_equal(json_integer_value(json_object_get(b, "cpus")), 4);
            assert_int_equal(json_integer_value(json_object_get(b, "gpus")), 1);
            seen = true;
        }
        struct err e = {0};
        assert_int_equal(proto_body_validate(PROTO_TYPE_DISPATCH, b, &e), 0);
    }
    assert_true(seen);
    end_task(&f->ctl, bj, 0, JOB_STATE_COMPLETED, 0);
    end_task(&f->ctl, bj, 1, JOB_STATE_COMPLETED, 0);
    assert_int_equal(bj->state, JOB_STATE_COMPLETED);
    for (int n = 0; n < 2; n++) {
        assert_int_equal(f->ctl.nodes[n].used_cpus, 0);
        assert_int_equal(f->ctl.nodes[n].used_gpus, 0);
        assert_true(f->ctl.nodes[n].used_mem == 0);
        assert_int_equal(f->ctl.nodes[n].running, 0);
    }
    assert_int_equal(sched(&f->ctl), 1);
    assert_int_equal(low->state, JOB_STATE_RUNNING);
    commit(f);
}

/* Waiting reasons name the first node waited for, why, and how many more; a
 * lost node does not hold up the rest, and a bench of lower priority does not
 * hold a node against work ahead of it. */
static void bench_wait_reasons_and_lost_nodes(void **state)
{
    struct fx *f = *state;
    add_node(&f->ctl, "a", 2, 0, 0);
    add_node(&f->ctl, "b", 2, 0, 0);
    add_node(&f->ctl, "c", 2, 0, 0);
    f->ctl.nodes[0].state = NODE_STATE_DOWN;
    f->ctl.nodes[1].registered = false;
    struct ctl_job *bj = submit(&f->ctl, "{\"kind\":\"bench\",\"bench\":{\"op\":\"add\",\"shape\":[64]},"
                                         "\"nodes\":[\"a\",\"b\",\"c\"]}");
    assert_int_equal(sched(&f->ctl), 1); /* c */
    assert_int_equal(bj->tasks[2].state, JOB_STATE_RUNNING);
    assert_string_equal(bj->reason, "waiting for node a (DOWN) and 1 more");
    f->ctl.nodes[0].state = NODE_STATE_UP;
    assert_int_equal(sched(&f->ctl), 1); /* a */
    assert_string_equal(bj->reason, "waiting for node b (not registered)");
    f->ctl.nodes[1].registered = true;
    struct ctl_job *hi = submit(&f->ctl, "{\"kind\":\"exec\",\"argv\":[\"x\"],\"priority\":9}");
    /* hi is ahead of the bench in the queue: b is not held against it */
    assert_int_equal(sched(&f->ctl), 1);
    assert_int_equal(hi->state, JOB_STATE_RUNNING);
    assert_string_equal(f->ctl.nodes[hi->tasks[0].node].name, "b");
    assert_string_equal(bj->reason, "waiting for node b (busy)");
    end_task(&f->ctl, hi, 0, JOB_STATE_COMPLETED, 0);
    assert_int_equal(sched(&f->ctl), 1);
    assert_int_equal(bj->running, 3);
    commit(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(transitions_table),
        cmocka_unit_test_setup_teardown(illegal_end_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(places_by_resources_priority_and_age, setup, teardown),
        cmocka_unit_test_setup_teardown(a_big_job_is_not_starved_by_small_ones, setup, teardown),
        cmocka_unit_test_setup_teardown(reservations_hold_only_what_can_be_used, setup, teardown),
        cmocka_unit_test_setup_teardown(a_tp_job_is_not_starved_by_small_ones, setup, teardown),
        cmocka_unit_test_setup_teardown(a_reservation_leaves_the_rest_of_its_node, setup, teardown),
        cmocka_unit_test_setup_teardown(array_max_bounds_concurrency, setup, teardown),
        cmocka_unit_test_setup_teardown(after_and_begin, setup, teardown),
        cmocka_unit_test_setup_teardown(requeue_then_fail_after_max_attempts, setup, teardown),
        cmocka_unit_test_setup_teardown(a_task_failed_for_good_gives_the_job_its_reason_and_exit_code,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(cancel_pending_and_running, setup, teardown),
        cmocka_unit_test_setup_teardown(recovery_rebuilds_state, setup, teardown),
        cmocka_unit_test_setup_teardown(finished_jobs_leave_memory_and_come_back, setup, teardown),
        cmocka_unit_test_setup_teardown(show_is_the_same_after_read_back, setup, teardown),
        cmocka_unit_test_setup_teardown(restart_loads_the_index_only, setup, teardown),
        cmocka_unit_test_setup_teardown(cancelled_element_never_runs_again, setup, teardown),
        cmocka_unit_test_setup_teardown(unplaceable_job_says_why, setup, teardown),
        cmocka_unit_test_setup_teardown(cancelled_job_with_a_lost_node_ends_at_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(restart_indexes_an_older_store, setup, teardown),
        cmocka_unit_test(bench_spec_round_trip_and_errors),
        cmocka_unit_test(bench_op_table_matches_the_kernels),
        cmocka_unit_test_setup_teardown(bench_nodes_all_expands_to_up_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(bench_task_takes_its_idle_node_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(bench_wait_reasons_and_lost_nodes, setup, teardown),
    };
    return cmocka_run_group_tests_name("ctl", tests, NULL, NULL);
}
