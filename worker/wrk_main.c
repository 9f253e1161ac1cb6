/* wrk_main.c: moat-worker: registration, heartbeats, the task loop.
 *
 * One pass: wait on the controller socket, the signal fd (SIGCHLD, SIGTERM,
 * SIGINT) and the output pipes of running tasks; handle messages; reap children;
 * enforce deadlines and kill graces; commit the batch of ended-task records;
 * then send the TASK_ENDs they allow. Unacknowledged results are re-sent every
 * resend_interval; an ERROR ENOTCONN from the controller (it restarted, or the
 * connection was replaced) makes the worker register again, listing every task
 * it holds, so the controller can reconcile.
 */
#include <errno.h>
#include <getopt.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernels/krn.h"
#include "shared/keys.h"
#include "shared/lockfile.h"
#include "shared/log.h"
#include "shared/net.h"
#include "shared/proto.h"
#include "shared/store.h"
#include "shared/text.h"
#include "shared/units.h"
#include "shared/version.h"
#include "worker/wrk_bench.h"
#include "worker/wrk_bind.h"
#include "worker/wrk_cfg.h"
#include "worker/wrk_egress.h"
#include "worker/wrk_exec.h"
#include "worker/wrk_infer.h"
#include "worker/wrk_objects.h"
#include "worker/wrk_reaper.h"
#include "worker/wrk_res.h"
#include "worker/wrk_sandbox.h"
#include "worker/wrk_tasks.h"

extern char **environ;

#define REGISTER_RETRY 0.5 /* s between REGISTERs while unanswered */
#define UNREGISTERED_FIRST 10.0 /* s without a REGISTER answer before saying why */
#define UNREGISTERED_EVERY 60.0 /* s between those lines after the first */
#define REPEAT_LOG_EVERY 60.0   /* s between two logs of one repeated failure */
#define MEM_CHECK_EVERY 0.5 /* s between measurements of tasks' resident memory (mem_check) */
#define FETCH_RESEND 30.0   /* s without an answer to a SHARD_GET before it is sent again */
/* For infer ranks and bench tasks: the cpu backend threads through its own pool
 * (its thread count comes in the spec) and keeps OpenBLAS at one thread; with
 * more, OpenBLAS would start its threads at load and they would spin for ~2^28
 * cycles, taking cores from the pool for the process's first ~0.1 s. */
#define OPENBLAS_ENV "OPENBLAS_NUM_THREADS=1"

/* A failure that repeats (a send that keeps failing, the controller's same
 * error to every heartbeat) is logged once, then at most every
 * REPEAT_LOG_EVERY with the number of repeats left out in between. */
struct wrk_repeat {
    char last[ERR_MSG_MAX];
    double at;           /* monotonic s of the last line logged */
    unsigned suppressed; /* repeats since */
};

struct wrk {
    struct wrk_cfg cfg;
    struct wrk_res res;
    store_t *store;
    net_sock_t *sock;
    int sigfd;
    char instance[40];
    struct wrk_tasks tasks;
    bool registered;
    uint64_t reg_req;
    double reg_sent, next_hb, hb_interval;
    double next_mem_check;     /* monotonic s */
    uint64_t next_req;
    bool stop;
    bool batch_needs_sync;  /* the open batch records results (not only forgets them) */
    char self[600];         /* this executable, for `--run-infer` children */
    struct wrk_reaper reaper; /* moat-reap beside it: unsandboxed exec tasks run under it */
    char objects[600];      /* <state_dir>/objects */
    struct wrk_sandbox sandbox;
    struct wrk_bind bind;   /* which CPUs and GPUs each task gets */
    struct wrk_subnet subnets[CFG_LIST_MAX];
    int nsubnets;
    char reg_refused[ERR_MSG_MAX]; /* the controller's last refusal of REGISTER, logged once */
    double unreg_since;     /* monotonic s since which REGISTER has had no answer */
    double unreg_next_log;  /* when to say why next (UNREGISTERED_*) */
    char public_key[NET_KEY_LEN + 1]; /* this worker's, for those lines */
    struct wrk_repeat send_fail, ctl_error;
};

/* repeat_pass: whether to log msg now (see struct wrk_repeat); tail (cap
 * bytes) gets what to append to the line: "" or the count of repeats not
 * logged since the last one. */
static bool repeat_pass(struct wrk_repeat *r, const char *msg, char *tail, size_t cap)
{
    double now = units_mono();
    bool same = strcmp(r->last, msg) == 0;
    if (same && now - r->at < REPEAT_LOG_EVERY) {
        r->suppressed++;
        return false;
    }
    tail[0] = '\0';
    if (same && r->suppressed)
        snprintf(tail, cap, " (%u more times in %.0f s)", r->suppressed, now - r->at);
    snprintf(r->last, sizeof r->last, "%s", msg);
    r->at = now;
    r->suppressed = 0;
    return true;
}

static void start_infer(struct wrk *w, struct wrk_task *t);
static int start_bench(struct wrk *w, struct wrk_task *t, const json_t *b, const cpu_set_t *cpus,
                       char *const *bind_env, bool *launch_error, struct err *err);
static void end_unstarted(struct wrk *w, struct wrk_task *t, bool launch_error, const char *why);

static void send_msg(struct wrk *w, enum proto_type type, uint64_t req, json_t *body,
                     const struct wrk_task *blobs_of)
{
    struct proto_msg m;
    struct err e = {0};
    proto_msg_init(&m, type, req, body);
    if (blobs_of && (proto_msg_add_blob(&m, blobs_of->out, blobs_of->out_len, &e) != 0 ||
                     proto_msg_add_blob(&m, blobs_of->err, blobs_of->err_len, &e) != 0 ||
                     (blobs_of->res && proto_msg_add_blob(&m, blobs_of->res, blobs_of->res_len, &e) != 0)))
        log_error("wrk", "task end: %s", e.msg);
    else if (net_send(w->sock, NULL, &m, &e) != 0) {
        /* EAGAIN while the controller is out of reach: every REGISTER and
         * heartbeat would say it again; the "not registered" line says why */
        char tail[48];
        err_prefix(&e, "send %s", proto_type_name(type));
        if (repeat_pass(&w->send_fail, e.msg, tail, sizeof tail))
            log_warn("wrk", "%s%s", e.msg, tail);
    }
    proto_msg_clear(&m);
}

static void send_register(struct wrk *w)
{
    json_t *tasks = json_array();
    for (int i = 0; i < w->tasks.n; i++) {
        const struct wrk_task *t = w->tasks.v[i];
        json_array_append_new(tasks, json_pack("{s:I, s:I, s:I, s:b}", "job", (json_int_t)t->job,
                                               "task", (json_int_t)t->index, "attempt",
                                               (json_int_t)t->attempt, "ended",
                                               t->phase == WRK_PHASE_ENDED));
    }
    json_t *b = json_pack("{s:s, s:s, s:i, s:i, s:i, s:I, s:s, s:s, s:o}", "name", w->res.name, "host",
                          w->res.host, "pid", (int)getpid(), "cpus", w->res.cpus, "gpus",
                          w->res.gpus, "mem_bytes", (json_int_t)w->res.mem, "backend",
                          w->res.backend, "instance", w->instance, "tasks", tasks);
    json_object_set_new(b, "version", json_string(MOAT_VERSION));
    json_object_set_new(b, "comm_host", json_string(w->cfg.comm_host));
    json_object_set_new(b, "comm_port_min", json_integer(w->cfg.comm_port_min));
    json_object_set_new(b, "comm_port_max", json_integer(w->cfg.comm_port_max));
    char route[128];
    bool egress = wrk_egress_detect(w->subnets, w->nsubnets, route, sizeof route);
    json_object_set_new(b, "sandbox", json_string(wrk_sandbox_mode_name(w->sandbox.mode)));
    json_object_set_new(b, "egress", json_boolean(egress));
    if (egress)
        json_object_set_new(b, "egress_route", json_string(route));
    w->reg_req = ++w->next_req;
    w->reg_sent = units_mono();
    send_msg(w, PROTO_TYPE_REGISTER, w->reg_req, b, NULL);
}

static void reply(struct wrk *w, uint64_t req, json_t *body)
{
    send_msg(w, PROTO_TYPE_REPLY, req, body ? body : json_object(), NULL);
}

static void reply_error(struct wrk *w, uint64_t req, const struct err *e)
{
    send_msg(w, PROTO_TYPE_ERROR, req, proto_error_body(e), NULL);
}

static char **json_strv(const json_t *arr, char **extra_env)
{
    size_t n = json_array_size(arr), ne = 0;
    while (extra_env && extra_env[ne])
        ne++;
    char **v = calloc(n + ne + 1, sizeof *v);
    if (v == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        v[i] = (char *)json_string_value(json_array_get(arr, i));
    for (size_t i = 0; i < ne; i++)
        v[n + i] = extra_env[i];
    return v;
}

/* Environment a task's binding adds (wrk_bind.h), first in its envp so that
 * it wins over the worker's own: MOAT_CPUS, and on a GPU node
 * CUDA_VISIBLE_DEVICES and MOAT_GPUS, with the worker's CUDA_DEVICE_ORDER
 * (which the names may rely on; a sandbox passes only these). NULL-terminated. */
struct bind_env {
    char *v[5];
    char cpus[32];
};

static int bind_env_make(struct wrk *w, const struct wrk_task *t, int cpus, struct bind_env *be,
                         struct err *err)
{
    memset(be, 0, sizeof *be);
    snprintf(be->cpus, sizeof be->cpus, "MOAT_CPUS=%d", cpus);
    be->v[0] = be->cpus;
    if (wrk_bind_env(&w->bind, &t->slot, &be->v[1], &be->v[2], err) != 0)
        return -1;
    const char *order = getenv("CUDA_DEVICE_ORDER");
    if (be->v[1] && order && (be->v[3] = malloc(strlen(order) + 20)) != NULL)
        sprintf(be->v[3], "CUDA_DEVICE_ORDER=%s", order);
    return 0;
}

static void bind_env_free(struct bind_env *be)
{
    free(be->v[1]);
    free(be->v[2]);
    free(be->v[3]);
}

/* skip_var: a worker variable the task does not inherit: MOAT_* (the task's
 * own come first), CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER where the
 * binding sets them, and a string that is no NAME=VALUE (a parent may leave
 * one in environ; the reaper service refuses it). */
static bool skip_var(const struct wrk *w, const char *v)
{
    return strncmp(v, "MOAT_", 5) == 0 || strchr(v, '=') == NULL ||
           ((w->bind.ngpus > 0 || w->bind.hide_gpus) &&
            (strncmp(v, "CUDA_VISIBLE_DEVICES=", 21) == 0 || strncmp(v, "CUDA_DEVICE_ORDER=", 18) == 0));
}

/* env_named: whether list (NULL-terminated "NAME=VALUE") sets v's NAME. */
static bool env_named(char *const *list, const char *v)
{
    size_t n = strcspn(v, "=") + 1;
    for (size_t i = 0; list[i]; i++)
        if (strncmp(list[i], v, n) == 0)
            return true;
    return false;
}

/* give_back: the task's CPUs and GPUs return to the pool (it ended, or never started). */
static void give_back(struct wrk *w, struct wrk_task *t)
{
    wrk_bind_give(&w->bind, &t->slot);
}

/* dispatch_check: what the message checks (shared/proto.c) leave to the
 * worker: names of objects that become paths under its objects directory,
 * and an exec task's argv. The controller is trusted, but a path out of
 * objects/ or a NULL argv[0] in the sandboxed child would cost more than
 * this. Returns 0, or -1 with why (cap bytes) naming the field. */
static int dispatch_check(const json_t *b, const char *kind, char *why, size_t cap)
{
    static const char *const names[] = {"shard", "vocab"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const json_t *v = json_object_get(b, names[i]);
        if (v && !wrk_objects_name_valid(json_string_value(v))) {
            snprintf(why, cap, "%s: not a SHA-256 in 64 lowercase hex digits", names[i]);
            return -1;
        }
    }
    if (strcmp(kind, "exec") == 0 && json_array_size(json_object_get(b, "argv")) == 0) {
        snprintf(why, cap, "argv: empty");
        return -1;
    }
    return 0;
}

static void on_dispatch(struct wrk *w, const struct proto_msg *m)
{
    const json_t *b = m->body;
    uint64_t job = (uint64_t)json_integer_value(json_object_get(b, "job"));
    uint32_t index = (uint32_t)json_integer_value(json_object_get(b, "task"));
    uint32_t attempt = (uint32_t)json_integer_value(json_object_get(b, "attempt"));
    reply(w, m->req_id, NULL);
    if (wrk_tasks_find(&w->tasks, job, index, attempt)) {
        log_debug("wrk", "task %llu.%u attempt %u: duplicate dispatch ignored",
                  (unsigned long long)job, index, attempt);
        return;
    }
    struct wrk_task *t = wrk_tasks_add(&w->tasks, job, index, attempt);
    if (t == NULL) {
        log_error("wrk", "task %llu.%u: out of memory", (unsigned long long)job, index);
        return;
    }
    t->start_time = units_now();
    t->deadline = json_number_value(json_object_get(b, "deadline"));
    if (strcmp(json_string_value(json_object_get(b, "kind")), "exec") == 0)
        t->mem_limit = (uint64_t)json_integer_value(json_object_get(b, "mem"));
    /* per attempt: a new attempt never shares a directory with a dying one */
    snprintf(t->cwd, sizeof t->cwd, "%s/tasks/%llu.%u.%u", w->cfg.state_dir, (unsigned long long)job,
             index, attempt);
    struct err e = {0};
    bool launch_error = false;
    const char *kind = json_string_value(json_object_get(b, "kind"));
    char why[96];
    if (dispatch_check(b, kind, why, sizeof why) != 0) {
        end_unstarted(w, t, true, why); /* logs it */
        return;
    }
    /* its CPUs and GPUs, held until its process is reaped (a bench task: the
     * whole node, as the controller counts it) */
    int want_cpus = (int)json_integer_value(json_object_get(b, "cpus"));
    if (wrk_bind_take(&w->bind, want_cpus, (int)json_integer_value(json_object_get(b, "gpus")),
                      &t->slot, &e) != 0) {
        end_unstarted(w, t, true, e.msg);
        return;
    }
    if (t->slot.shared)
        log_warn("wrk", "task %llu.%u: fewer CPUs or GPUs free here than it asked; it shares some "
                 "with another task", (unsigned long long)job, index);
    cpu_set_t cpus;
    bool pinned = wrk_bind_cpuset(&w->bind, &t->slot, &cpus);
    if (strcmp(kind, "infer") == 0 && m->nblobs == 1 && json_object_get(b, "shard") &&
        json_object_get(b, "vocab") && json_object_get(b, "rank") && json_object_get(b, "tp")) {
        t->infer = true;
        t->rank = (int)json_integer_value(json_object_get(b, "rank"));
        t->tp = (int)json_integer_value(json_object_get(b, "tp"));
        t->dispatch = json_incref((json_t *)b);
        t->docs = malloc(m->blobs[0].len + 1);
        if (t->docs) {
            memcpy(t->docs, m->blobs[0].data, m->blobs[0].len);
            t->docs_len = m->blobs[0].len;
        }
        t->phase = WRK_PHASE_FETCHING;
        start_infer(w, t);
        return;
    }
    /* Task environment: the task's MOAT_* variables, then the worker's own
     * without its MOAT_* ones (getenv takes the first match). */
    struct bind_env be;
    int rc = bind_env_make(w, t, want_cpus, &be, &e);
    char **task_env = rc == 0 ? json_strv(json_object_get(b, "env"), be.v) : NULL;
    size_t nenv = 0;
    while (environ[nenv])
        nenv++;
    char **envp = task_env ? calloc(json_array_size(json_object_get(b, "env")) + 4 + nenv + 1, sizeof *envp) : NULL;
    char **argv = json_strv(json_object_get(b, "argv"), NULL);
    if (rc != 0) {
        launch_error = true;
    } else if (strcmp(kind, "bench") == 0) {
        rc = start_bench(w, t, b, pinned ? &cpus : NULL, be.v, &launch_error, &e);
    } else if (strcmp(kind, "exec") != 0) {
        rc = err_set(&e, ENOTSUP, "task kind '%.16s' is not supported by this worker", kind);
        launch_error = true;
    } else if (envp == NULL || argv == NULL) {
        rc = err_set(&e, ENOMEM, "out of memory");
        launch_error = true;
    } else if (w->sandbox.mode == WRK_SANDBOX_UNAVAILABLE) {
        rc = err_set(&e, ENOTSUP, "sandbox unavailable: %.120s", w->sandbox.why);
        launch_error = true;
    } else if (w->sandbox.mode == WRK_SANDBOX_NAMESPACES) {
        char **senv = wrk_sandbox_envp(task_env, t->cwd);
        rc = senv ? wrk_exec_start_sandboxed(&t->proc, &w->sandbox, argv, senv, t->cwd,
                                             pinned ? &cpus : NULL,
                                             (size_t)json_integer_value(json_object_get(b, "output_cap")),
                                             &launch_error, &e)
                  : err_set(&e, ENOMEM, "out of memory");
        if (senv == NULL)
            launch_error = true;
        free(senv);
    } else {
        size_t k = 0;
        for (size_t i = 0; task_env[i]; i++)
            envp[k++] = task_env[i];
        for (size_t i = 0; i < nenv; i++)
            if (!skip_var(w, environ[i]) && !env_named(task_env, environ[i]))
                envp[k++] = environ[i]; /* the worker's, but not one the task sets (--env) */
        envp[k] = NULL;
        /* Unconfined tasks share one directory (as Slurm jobs share theirs): a
         * directory made and removed per task costs ext4 more than the task. */
        snprintf(t->cwd, sizeof t->cwd, "%s/tasks/unconfined", w->cfg.state_dir);
        t->cwd_shared = true;
        /* under a reaper of its own from moat-reap (worker/wrk_reap.h): the
         * task's processes die with it and with this worker */
        rc = wrk_exec_start_reaped(&t->proc, &w->reaper, argv, envp, t->cwd, pinned ? &cpus : NULL,
                                   (size_t)json_integer_value(json_object_get(b, "output_cap")),
                                   &launch_error, &e);
    }
    free(task_env);
    free(envp);
    free(argv);
    bind_env_free(&be);
    if (rc != 0) {
        give_back(w, t);
        log_warn("wrk", "task %llu.%u attempt %u: launch failed: %s", (unsigned long long)job, index,
                 attempt, e.msg);
        snprintf(t->launch_error, sizeof t->launch_error, "%.199s", e.msg);
        text_utf8_trim(t->launch_error);
        t->phase = WRK_PHASE_ENDED;
        t->state = JOB_STATE_FAILED;
        t->end_time = units_now();
        if (!launch_error) { /* cannot happen: start only fails at launch */
            snprintf(t->launch_error, sizeof t->launch_error, "launch: %.191s", e.msg);
            text_utf8_trim(t->launch_error);
        }
        t->need_send = true;
        if (wrk_task_save(w->store, t, &e) != 0)
            log_error("wrk", "task %llu.%u: cannot record result: %s", (unsigned long long)job,
                      index, e.msg);
        w->batch_needs_sync = true;
        return;
    }
    t->phase = WRK_PHASE_RUNNING;
    log_debug("wrk", "task %llu.%u attempt %u: started pid %d", (unsigned long long)job, index,
              attempt, (int)t->proc.pid);
}

/* start_bench: launch a bench task as `moat-worker --run-bench JSON` (worker/wrk_bench.h)
 * in the shared unconfined directory (its threads come in the JSON). */
static int start_bench(struct wrk *w, struct wrk_task *t, const json_t *b, const cpu_set_t *cpus,
                       char *const *bind_env, bool *launch_error, struct err *err)
{
    const json_t *bench = json_object_get(b, "bench");
    if (!json_is_object(bench)) {
        *launch_error = true;
        return err_set(err, EPROTO, "bench task without its bench object");
    }
    json_t *args = json_deep_copy(bench);
    char *text = NULL;
    if (args && json_object_set_new(args, "node", json_string(w->res.name)) == 0 &&
        json_object_set(args, "cpus", json_object_get(b, "cpus")) == 0 &&
        json_object_set(args, "gpus", json_object_get(b, "gpus")) == 0 &&
        json_object_set(args, "mem", json_object_get(b, "mem")) == 0)
        text = json_dumps(args, JSON_COMPACT);
    json_decref(args);
    size_t nenv = 0;
    while (environ[nenv])
        nenv++;
    char **envp = calloc(nenv + 3 + 4, sizeof *envp);
    if (text == NULL || envp == NULL) {
        free(text);
        free(envp);
        *launch_error = true;
        return err_set(err, ENOMEM, "out of memory");
    }
    char jobvar[64];
    snprintf(jobvar, sizeof jobvar, "MOAT_JOB_ID=%llu", (unsigned long long)t->job);
    size_t k = 0;
    envp[k++] = jobvar;
    envp[k++] = (char *)OPENBLAS_ENV;
    for (size_t i = 0; bind_env[i]; i++)
        envp[k++] = bind_env[i];
    for (size_t i = 0; i < nenv; i++)
        if (!skip_var(w, environ[i]) && strncmp(environ[i], "OPENBLAS_NUM_THREADS=", 21) != 0)
            envp[k++] = environ[i];
    snprintf(t->cwd, sizeof t->cwd, "%s/tasks/unconfined", w->cfg.state_dir);
    t->cwd_shared = true;
    char *argv[] = {w->self, "--run-bench", text, NULL};
    int rc = wrk_exec_start(&t->proc, argv, envp, t->cwd, cpus,
                            (size_t)json_integer_value(json_object_get(b, "output_cap")), launch_error,
                            err);
    free(envp);
    free(text);
    return rc;
}

/* end_launch_failed: the task could not be started here. launch_error: the node is
 * at fault (not held against the job); else the task itself failed. */
static void end_unstarted(struct wrk *w, struct wrk_task *t, bool launch_error, const char *why)
{
    struct err e = {0};
    wrk_fetch_abort(&t->fetch);
    give_back(w, t);
    log_warn("wrk", "task %llu.%u attempt %u: %s", (unsigned long long)t->job, t->index, t->attempt, why);
    if (launch_error) {
        snprintf(t->launch_error, sizeof t->launch_error, "%s", why);
        text_utf8_trim(t->launch_error);
    } else if ((t->err = strdup(why)) != NULL) {
        t->err_len = strlen(why);
    }
    t->phase = WRK_PHASE_ENDED;
    t->state = JOB_STATE_FAILED;
    t->end_time = units_now();
    t->need_send = true;
    if (wrk_task_save(w->store, t, &e) != 0)
        log_error("wrk", "task %llu.%u: cannot record result: %s", (unsigned long long)t->job,
                  t->index, e.msg);
    w->batch_needs_sync = true;
    /* an infer rank's directory holds its documents and its TP link key */
    if (t->cwd[0] && !t->cwd_shared && wrk_exec_remove_tree(t->cwd, &e) != 0)
        log_warn("wrk", "task %llu.%u: %s", (unsigned long long)t->job, t->index, e.msg);
}

/* fetch_next: ask for the next chunk of the object being fetched (again, with a
 * new request id, when the last request got no answer: a reply to the old one
 * is then ignored). */
static void fetch_next(struct wrk *w, struct wrk_task *t)
{
    uint64_t left = t->fetch.total - t->fetch.off;
    t->fetch_req = ++w->next_req;
    t->fetch_sent = units_mono();
    send_msg(w, PROTO_TYPE_SHARD_GET, t->fetch_req,
             json_pack("{s:s, s:I, s:I}", "sha256", t->fetch.sha, "offset", (json_int_t)t->fetch.off,
                       "len", (json_int_t)(left < (4u << 20) ? left : (4u << 20))),
             NULL);
}

/* start_infer: make sure the shard and vocabulary are here and verified (fetching
 * what is missing), then launch the rank as `moat-worker --run-infer SPEC.json`. */
static void start_infer(struct wrk *w, struct wrk_task *t)
{
    static const char *const keys[2][2] = {{"shard", "shard_bytes"}, {"vocab", "vocab_bytes"}};
    struct err e = {0};
    while (t->fetch_stage < 2) {
        const char *sha = json_string_value(json_object_get(t->dispatch, keys[t->fetch_stage][0]));
        if (t->fetch.finishing)
            return; /* being stored: timers() polls it */
        if (wrk_objects_have(w->objects, sha)) {
            t->fetch_stage++;
            continue;
        }
        for (int i = 0; i < w->tasks.n; i++) {
            if (w->tasks.v[i] != t && wrk_fetch_busy(&w->tasks.v[i]->fetch, sha)) {
                t->fetch_wait = true; /* another task is fetching it: timers() retries */
                return;
            }
        }
        t->fetch_wait = false;
        char tag[64];
        snprintf(tag, sizeof tag, "%llu.%u.%u", (unsigned long long)t->job, t->index, t->attempt);
        json_int_t total = json_integer_value(json_object_get(t->dispatch, keys[t->fetch_stage][1]));
        if (wrk_fetch_begin(&t->fetch, w->objects, sha, (uint64_t)total, tag, &e) != 0) {
            end_unstarted(w, t, true, e.msg);
            return;
        }
        fetch_next(w, t);
        return; /* continued in on_fetch_reply */
    }
    /* the rank's input, spec, and the process */
    char input[700], output[700], spec[700], shard[600], vocab[600];
    snprintf(input, sizeof input, "%s/input.json", t->cwd);
    snprintf(output, sizeof output, "%s/output.f32", t->cwd);
    snprintf(spec, sizeof spec, "%s/spec.json", t->cwd);
    wrk_objects_path(w->objects, json_string_value(json_object_get(t->dispatch, "shard")), shard, sizeof shard);
    wrk_objects_path(w->objects, json_string_value(json_object_get(t->dispatch, "vocab")), vocab, sizeof vocab);
    json_t *docs = t->docs ? json_loadb(t->docs, t->docs_len, 0, NULL) : NULL;
    json_t *texts = json_object_get(docs, "texts");
    if (mkdir(t->cwd, 0700) != 0 && errno != EEXIST) {
        json_decref(docs);
        err_set(&e, errno, "task directory %s: %s", t->cwd, strerror(errno));
        end_unstarted(w, t, true, e.msg);
        return;
    }
    const json_t *d = t->dispatch;
    json_t *sp = json_pack("{s:O, s:O, s:O, s:i, s:i, s:s, s:O, s:s, s:s, s:s, s:O, s:O, s:s, s:O, s:i}",
                           "job", json_object_get(d, "job"), "task", json_object_get(d, "task"),
                           "attempt", json_object_get(d, "attempt"), "rank", t->rank, "tp", t->tp,
                           "shard", shard, "shard_sha256", json_object_get(d, "shard"), "vocab", vocab,
                           "input", input, "output", output, "max_len", json_object_get(d, "max_len"),
                           "threads", json_object_get(d, "cpus"), "backend",
                           w->res.gpus > 0 && json_integer_value(json_object_get(d, "gpus")) > 0 ? "cuda" : "cpu",
                           "comm", json_object_get(d, "comm") ? json_object_get(d, "comm") : json_null(),
                           "comm_timeout", 120);
    if (!json_is_string(json_object_get(sp, "comm")))
        json_object_del(sp, "comm");
    json_object_set(sp, "vocab_sha256", json_object_get(d, "vocab")); /* checked at every load */
    /* the attempt's CURVE keys for the TP links (tp > 1); N.B. the spec file
     * lies in the task's own directory (mode 0700), removed when the task
     * ends, started or not, or (the worker killed meanwhile) when the worker
     * starts again (wrk_tasks_sweep_dirs) */
    if (json_object_get(d, "comm_key") && json_object_get(d, "comm_keys")) {
        json_object_set(sp, "comm_key", json_object_get(d, "comm_key"));
        json_object_set(sp, "comm_keys", json_object_get(d, "comm_keys"));
    }
    int ok = json_is_array(texts) && json_dump_file(texts, input, JSON_COMPACT) == 0 &&
             json_dump_file(sp, spec, JSON_COMPACT) == 0;
    json_decref(sp);
    json_decref(docs);
    free(t->docs);
    t->docs = NULL;
    if (!ok) {
        end_unstarted(w, t, true, "cannot write the rank's input and spec");
        return;
    }
    char *argv[] = {w->self, "--run-infer", spec, NULL};
    size_t nenv = 0;
    while (environ[nenv])
        nenv++;
    struct bind_env be;
    cpu_set_t cpus;
    bool pinned = wrk_bind_cpuset(&w->bind, &t->slot, &cpus);
    int ncpus = (int)json_integer_value(json_object_get(t->dispatch, "cpus"));
    char **envp = bind_env_make(w, t, ncpus, &be, &e) == 0 ? calloc(nenv + 3 + 4, sizeof *envp) : NULL;
    char jobvar[64];
    snprintf(jobvar, sizeof jobvar, "MOAT_JOB_ID=%llu", (unsigned long long)t->job);
    size_t k = 0;
    if (envp) {
        envp[k++] = jobvar;
        envp[k++] = (char *)OPENBLAS_ENV;
        for (size_t i = 0; be.v[i]; i++)
            envp[k++] = be.v[i];
        for (size_t i = 0; i < nenv; i++)
            if (!skip_var(w, environ[i]) && strncmp(environ[i], "OPENBLAS_NUM_THREADS=", 21) != 0)
                envp[k++] = environ[i];
    }
    bool launch_error = true;
    int rc = envp ? wrk_exec_start(&t->proc, argv, envp, t->cwd, pinned ? &cpus : NULL, 65536,
                                   &launch_error, &e)
                  : err_set(&e, ENOMEM, "out of memory");
    free(envp);
    bind_env_free(&be);
    json_decref(t->dispatch);
    t->dispatch = NULL;
    if (rc != 0) {
        end_unstarted(w, t, launch_error, e.msg);
        return;
    }
    t->phase = WRK_PHASE_RUNNING;
    log_debug("wrk", "task %llu.%u attempt %u: rank %d/%d started pid %d", (unsigned long long)t->job,
              t->index, t->attempt, t->rank, t->tp, (int)t->proc.pid);
}

/* on_fetch_reply: a SHARD_GET answer for task t (REPLY with a chunk, or ERROR). */
static void on_fetch_reply(struct wrk *w, struct wrk_task *t, const struct proto_msg *m)
{
    struct err e = {0};
    if (m->type == PROTO_TYPE_ERROR) {
        proto_error_from_body(m->body, &e);
        end_unstarted(w, t, false, e.msg);
        return;
    }
    if (m->nblobs != 1 || m->blobs[0].len == 0 ||
        wrk_fetch_chunk(&t->fetch, m->blobs[0].data, m->blobs[0].len, t->fetch.off, &e) != 0) {
        if (e.code == 0)
            err_set(&e, EPROTO, "object %.16s...: empty chunk", t->fetch.sha);
        end_unstarted(w, t, false, e.msg);
        return;
    }
    if (!wrk_fetch_done(&t->fetch)) {
        fetch_next(w, t);
        return;
    }
    if (wrk_fetch_finish(&t->fetch, &e) != 0) {
        end_unstarted(w, t, false, e.msg);
        return;
    }
    log_info("wrk", "object %.16s... fetched and verified (%llu bytes)", t->fetch.sha,
             (unsigned long long)t->fetch.total);
    /* stored on a thread; timers() moves on when it is in the cache */
}

/* fetch_in_flight: t has a SHARD_GET out that its next chunk waits for. */
static bool fetch_in_flight(const struct wrk_task *t)
{
    return t->phase == WRK_PHASE_FETCHING && t->fetch.fd >= 0 && !t->fetch.finishing && !t->fetch_wait;
}

/* infer_timers: fetched objects being stored, tasks waiting for another task's
 * fetch, and SHARD_GETs unanswered for FETCH_RESEND s (sent again). */
static void infer_timers(struct wrk *w)
{
    for (int i = 0; i < w->tasks.n; i++) {
        struct wrk_task *t = w->tasks.v[i];
        if (t->phase != WRK_PHASE_FETCHING)
            continue;
        if (fetch_in_flight(t) && w->registered && units_mono() - t->fetch_sent > FETCH_RESEND) {
            log_warn("wrk", "task %llu.%u: no answer to a shard request in %.0f s; asking again",
                     (unsigned long long)t->job, t->index, FETCH_RESEND);
            fetch_next(w, t);
        } else if (t->fetch.finishing) {
            struct err e = {0};
            int rc = wrk_fetch_poll(&t->fetch, &e);
            if (rc < 0) {
                end_unstarted(w, t, true, e.msg);
                continue;
            }
            if (rc == 0)
                continue;
            t->fetch_stage++;
            start_infer(w, t);
        } else if (t->fetch_wait) {
            start_infer(w, t);
        }
    }
}

static void kill_task(struct wrk *w, struct wrk_task *t, enum wrk_kill why)
{
    if (t->phase == WRK_PHASE_FETCHING && t->kill == WRK_KILL_NONE) {
        t->kill = why;
        end_unstarted(w, t, false, "killed before it started");
        t->state = JOB_STATE_CANCELLED;
        return;
    }
    if (t->phase != WRK_PHASE_RUNNING || t->kill != WRK_KILL_NONE)
        return;
    t->kill = why;
    wrk_exec_signal(&t->proc, SIGTERM);
    t->kill_at = units_mono() + w->cfg.kill_grace;
}

static void on_kill(struct wrk *w, const struct proto_msg *m)
{
    const json_t *b = m->body;
    struct wrk_task *t = wrk_tasks_find(&w->tasks,
                                        (uint64_t)json_integer_value(json_object_get(b, "job")),
                                        (uint32_t)json_integer_value(json_object_get(b, "task")),
                                        (uint32_t)json_integer_value(json_object_get(b, "attempt")));
    const char *why = json_string_value(json_object_get(b, "reason"));
    if (t)
        kill_task(w, t, !strcmp(why, "timeout") ? WRK_KILL_TIMEOUT
                        : !strcmp(why, "stale") ? WRK_KILL_STALE : WRK_KILL_CANCEL);
    reply(w, m->req_id, NULL);
}

static void on_reply(struct wrk *w, const struct proto_msg *m)
{
    if (m->req_id == w->reg_req && w->reg_req) {
        w->registered = true;
        w->reg_refused[0] = '\0';
        json_int_t hb = json_integer_value(json_object_get(m->body, "heartbeat_ms"));
        if (hb > 0)
            w->hb_interval = (double)hb / 1000.0;
        w->next_hb = units_mono() + w->hb_interval;
        log_info("wrk", "moat-worker %s registered as %s (heartbeat %.2f s)", MOAT_VERSION, w->res.name,
                 w->hb_interval);
        for (int i = 0; i < w->tasks.n; i++) {
            struct wrk_task *t = w->tasks.v[i];
            if (t->phase == WRK_PHASE_ENDED)
                t->need_send = true; /* unacknowledged results go again */
            else if (fetch_in_flight(t))
                fetch_next(w, t); /* a restarted controller never answers the last one */
        }
        return;
    }
    for (int i = 0; i < w->tasks.n; i++) {
        struct wrk_task *t = w->tasks.v[i];
        if (t->phase == WRK_PHASE_FETCHING && t->fetch_req == m->req_id) {
            on_fetch_reply(w, t, m);
            return;
        }
        if (t->phase == WRK_PHASE_ENDED && t->req_id == m->req_id) {
            struct err e = {0};
            if (wrk_task_forget(w->store, t, &e) != 0) {
                log_error("wrk", "inflight: %s", e.msg);
                return;
            }
            give_back(w, t);
            wrk_tasks_remove(&w->tasks, i);
            return;
        }
    }
}

static void on_message(struct wrk *w, const struct proto_msg *m)
{
    switch (m->type) {
    case PROTO_TYPE_DISPATCH:
        if (!w->registered) {
            struct err e;
            err_set(&e, ENOTCONN, "worker is not registered");
            reply_error(w, m->req_id, &e);
            return;
        }
        on_dispatch(w, m);
        return;
    case PROTO_TYPE_KILL: on_kill(w, m); return;
    case PROTO_TYPE_REPLY: on_reply(w, m); return;
    case PROTO_TYPE_ERROR: {
        struct err e;
        for (int i = 0; i < w->tasks.n; i++) {
            if (w->tasks.v[i]->phase == WRK_PHASE_FETCHING && w->tasks.v[i]->fetch_req == m->req_id) {
                on_fetch_reply(w, w->tasks.v[i], m);
                return;
            }
        }
        proto_error_from_body(m->body, &e);
        if (m->req_id == w->reg_req && e.code != ENOTCONN) {
            /* REGISTER refused (egress policy, ...): say so once, ask again now and then */
            if (strcmp(w->reg_refused, e.msg) != 0)
                log_error("wrk", "controller refused registration: %s", e.msg);
            snprintf(w->reg_refused, sizeof w->reg_refused, "%s", e.msg);
            w->reg_sent = units_mono() + 5.0;
            return;
        }
        if (e.code == ENOTCONN) {
            if (w->registered) {
                log_info("wrk", "controller does not know this worker (%s); registering", e.msg);
                w->unreg_since = units_mono();
                w->unreg_next_log = w->unreg_since + UNREGISTERED_FIRST;
            }
            w->registered = false;
            if (units_mono() - w->reg_sent > REGISTER_RETRY / 5)
                send_register(w);
        } else {
            /* a revoked key gets this for every heartbeat */
            char tail[48];
            if (repeat_pass(&w->ctl_error, e.msg, tail, sizeof tail))
                log_warn("wrk", "controller: %s%s", e.msg, tail);
        }
        return;
    }
    default:
        log_warn("wrk", "dropped %s: not a message a worker serves", proto_type_name(m->type));
        if (m->req_id) {
            struct err e;
            err_set(&e, EPROTO, "%s is not served by a worker", proto_type_name(m->type));
            reply_error(w, m->req_id, &e);
        }
    }
}

/* unregistered_say: while REGISTER goes unanswered, say why now and then
 * (UNREGISTERED_FIRST, then every UNREGISTERED_EVERY), from what the link's
 * monitor saw since the last line: without it the worker retried silently
 * forever (a wrong key, a controller that is not there). */
static void unregistered_say(struct wrk *w, double mono)
{
    if (mono < w->unreg_next_log)
        return;
    w->unreg_next_log = mono + UNREGISTERED_EVERY;
    const char *ep = w->cfg.controller;
    char why[1400] = "";
    switch (net_sock_link(w->sock, true)) {
    case NET_LINK_UNRESOLVED:
        snprintf(why, sizeof why, "the host of the controller address %s does not resolve: "
                 "is controller right?", ep);
        break;
    case NET_LINK_TCP_FAILED:
        snprintf(why, sizeof why, "cannot connect to the controller at %s (connection refused or "
                 "host unreachable): is it running, and is controller the address it listens on?", ep);
        break;
    case NET_LINK_NO_HANDSHAKE:
        snprintf(why, sizeof why, "connected to the controller at %s but the CURVE handshake did not "
                 "complete: is controller_public_key_file (%s) its public key?", ep,
                 w->cfg.controller_public_key_file);
        break;
    case NET_LINK_REFUSED:
        snprintf(why, sizeof why, "the controller at %s refused this worker's key (%s): add it to its "
                 "allowlist (moat admin key add KEY --role worker), or it was revoked", ep,
                 w->public_key);
        break;
    case NET_LINK_UP: /* connected: refused, or no answer at all */
        if (w->reg_refused[0])
            snprintf(why, sizeof why, "the controller at %s refused it: %s", ep, w->reg_refused);
        break;
    default: break; /* nothing seen yet */
    }
    if (why[0] == '\0')
        snprintf(why, sizeof why, "no answer from the controller at %s: is it running, is "
                 "controller_public_key_file its public key, is this worker's key (%s) in its "
                 "allowlist?", ep, w->public_key);
    log_warn("wrk", "not registered after %.0f s: %s", mono - w->unreg_since, why);
}

static struct wrk_task *task_by_pid(struct wrk *w, pid_t pid)
{
    for (int i = 0; i < w->tasks.n; i++)
        if (w->tasks.v[i]->phase == WRK_PHASE_RUNNING && w->tasks.v[i]->proc.pid == pid)
            return w->tasks.v[i];
    return NULL;
}

static void on_signals(struct wrk *w)
{
    struct signalfd_siginfo si;
    while (read(w->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
            w->stop = true;
    }
    int status;
    pid_t pid;
    struct rusage ru;
    while ((pid = wait4(-1, &status, WNOHANG, &ru)) > 0) {
        struct wrk_task *t = task_by_pid(w, pid);
        if (t == NULL) {
            wrk_reaper_ended(&w->reaper, pid, status);
            continue;
        }
        wrk_exec_reaped(&t->proc, status, &ru);
        give_back(w, t);
        wrk_task_finish(t, units_now());
        struct err e = {0};
        if (wrk_task_save(w->store, t, &e) != 0)
            log_error("wrk", "task %llu.%u: cannot record result: %s", (unsigned long long)t->job,
                      t->index, e.msg);
        w->batch_needs_sync = true;
        log_debug("wrk", "task %llu.%u: %s exit=%d", (unsigned long long)t->job, t->index,
                  job_state_name(t->state), t->exit_code);
    }
}

/* mem_check: measure the resident memory of every running task (one scan of
 * /proc for all of them), keep each one's peak (its max_rss at its end, as
 * Slurm's jobacct_gather samples MaxRSS), and end, with SIGKILL at once as an
 * OOM kill would, each exec task over its memory limit: its state is FAILED
 * and its reason says by how much. Slurm without cgroups does the same by
 * polling (JobAcctGatherParams=OverMemoryKill). */
static void mem_check(struct wrk *w)
{
    bool any = false;
    for (int i = 0; i < w->tasks.n && !any; i++)
        any = w->tasks.v[i]->phase == WRK_PHASE_RUNNING && w->tasks.v[i]->kill == WRK_KILL_NONE;
    if (!any)
        return;
    struct wrk_proctab tab;
    wrk_proctab_read(&tab);
    for (int i = 0; i < w->tasks.n; i++) {
        struct wrk_task *t = w->tasks.v[i];
        if (t->phase != WRK_PHASE_RUNNING || t->kill != WRK_KILL_NONE)
            continue;
        uint64_t rss = wrk_exec_rss(&tab, &t->proc);
        if (rss > t->mem_peak)
            t->mem_peak = rss;
        if (t->mem_limit == 0 || rss <= t->mem_limit)
            continue;
        snprintf(t->end_reason, sizeof t->end_reason,
                 "killed: %.1f MiB resident, over its --mem of %.1f MiB", (double)rss / 1048576.0,
                 (double)t->mem_limit / 1048576.0);
        log_warn("wrk", "task %llu.%u: %s", (unsigned long long)t->job, t->index, t->end_reason);
        t->kill = WRK_KILL_MEMORY;
        wrk_exec_kill(&t->proc, &tab);
    }
    wrk_proctab_free(&tab);
}

static void timers(struct wrk *w)
{
    infer_timers(w);
    double mono = units_mono(), now = units_now();
    if (mono >= w->next_mem_check) {
        w->next_mem_check = mono + MEM_CHECK_EVERY;
        mem_check(w);
    }
    for (int i = 0; i < w->tasks.n; i++) {
        struct wrk_task *t = w->tasks.v[i];
        if (t->phase != WRK_PHASE_RUNNING)
            continue;
        if (t->deadline > 0 && now >= t->deadline && t->kill == WRK_KILL_NONE) {
            log_info("wrk", "task %llu.%u: time limit reached", (unsigned long long)t->job, t->index);
            kill_task(w, t, WRK_KILL_TIMEOUT);
        }
        if (t->kill_at > 0 && mono >= t->kill_at) {
            wrk_exec_kill(&t->proc, NULL);
            t->kill_at = 0;
        }
    }
    if (!w->registered) {
        if (mono - w->reg_sent >= REGISTER_RETRY)
            send_register(w);
        unregistered_say(w, mono);
        return;
    }
    if (mono >= w->next_hb) {
        int running = 0;
        for (int i = 0; i < w->tasks.n; i++)
            running += w->tasks.v[i]->phase == WRK_PHASE_RUNNING;
        send_msg(w, PROTO_TYPE_HEARTBEAT, ++w->next_req,
                 json_pack("{s:s, s:s, s:i}", "name", w->res.name, "instance", w->instance, "running",
                           running),
                 NULL);
        w->next_hb = mono + w->hb_interval;
    }
    for (int i = 0; i < w->tasks.n; i++) {
        struct wrk_task *t = w->tasks.v[i];
        if (t->phase == WRK_PHASE_ENDED && !t->need_send && mono - t->last_sent >= w->cfg.resend_interval)
            t->need_send = true;
    }
}

static void send_results(struct wrk *w)
{
    if (!w->registered)
        return;
    double mono = units_mono();
    for (int i = 0; i < w->tasks.n; i++) {
        struct wrk_task *t = w->tasks.v[i];
        if (t->phase != WRK_PHASE_ENDED || !t->need_send)
            continue;
        t->req_id = ++w->next_req;
        t->last_sent = mono;
        t->need_send = false;
        send_msg(w, PROTO_TYPE_TASK_END, t->req_id, wrk_task_end_body(t), t);
    }
}

static int run(struct wrk *w)
{
    struct net_pollitem *items = NULL;
    int cap = 0;
    send_register(w);
    while (!w->stop) {
        int n = 2;
        for (int i = 0; i < w->tasks.n; i++)
            if (w->tasks.v[i]->phase == WRK_PHASE_RUNNING)
                n += 2;
        if (n > cap) {
            struct net_pollitem *p = realloc(items, (size_t)n * 2 * sizeof *p);
            if (p == NULL) {
                free(items);
                return -1;
            }
            items = p;
            cap = n * 2;
        }
        int k = 0;
        items[k++] = (struct net_pollitem){.sock = w->sock, .events = NET_POLLIN};
        items[k++] = (struct net_pollitem){.fd = w->sigfd, .events = NET_POLLIN};
        for (int i = 0; i < w->tasks.n; i++) {
            struct wrk_task *t = w->tasks.v[i];
            if (t->phase != WRK_PHASE_RUNNING)
                continue;
            items[k++] = (struct net_pollitem){.fd = t->proc.out_fd, .events = t->proc.out_fd >= 0};
            items[k++] = (struct net_pollitem){.fd = t->proc.err_fd, .events = t->proc.err_fd >= 0};
        }
        struct err e = {0};
        if (net_poll(items, k, 50, &e) < 0 && e.code != EINTR) {
            log_error("wrk", "%s", e.msg);
            free(items);
            return -1;
        }
        /* Pipes first: the tasks polled are items 2.. in table order. */
        for (int i = 0, j = 2; i < w->tasks.n && j < k; i++) {
            struct wrk_task *t = w->tasks.v[i];
            if (t->phase != WRK_PHASE_RUNNING)
                continue;
            if (items[j].revents)
                wrk_exec_drain(&t->proc, t->proc.out_fd);
            if (items[j + 1].revents)
                wrk_exec_drain(&t->proc, t->proc.err_fd);
            j += 2;
        }
        for (int m = 0; m < 10000; m++) {
            struct proto_msg msg;
            struct net_peer peer;
            int rc = net_recv(w->sock, &msg, &peer, &e);
            if (rc == 0)
                break;
            if (rc < 0) {
                log_warn("wrk", "dropped malformed message: %s", e.msg);
                continue;
            }
            on_message(w, &msg);
            proto_msg_clear(&msg);
        }
        on_signals(w);
        timers(w);
        /* A batch that only forgets acknowledged results need not reach the disk:
         * if it is lost, the results are sent again and acknowledged again. */
        if (store_in_batch(w->store) &&
            (w->batch_needs_sync ? store_commit(w->store, &e) : store_commit_nosync(w->store, &e)) != 0) {
            /* Results stay in memory and go out anyway: losing the record only
             * matters if this worker also dies before the acknowledgement. */
            log_error("wrk", "inflight commit: %s", e.msg);
            if (e.code == ENOSPC)
                store_grow(w->store, &e);
        }
        w->batch_needs_sync = false;
        send_results(w);
    }
    free(items);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: moat-worker -c FILE | --version\n"
               "  Runs a moat worker in the foreground; logs go to stderr.\n"
               "  FILE is a libconfig file; conf/worker.conf documents every key.\n");
}

int main(int argc, char **argv)
{
    /* Ranks and bench tasks: OpenBLAS at one thread from load on (the daemon
     * itself runs no GEMM, and its environment passes on to unconfined tasks). */
    if (argc >= 2 && strcmp(argv[1], "--run-infer") == 0) {
        krn_cpu_process_init(argv);
        return wrk_infer_main(argc - 1, argv + 1);
    }
    if (argc >= 2 && strcmp(argv[1], "--run-bench") == 0) {
        krn_cpu_process_init(argv);
        return wrk_bench_main(argc - 1, argv + 1);
    }
    const char *conf = NULL;
    int opt;
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'}, {0}};
    while ((opt = getopt_long(argc, argv, "c:hV", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': conf = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("moat-worker %s (protocol %u)\n", MOAT_VERSION, PROTO_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (conf == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    struct wrk w;
    memset(&w, 0, sizeof w);
    struct err e = {0};
    if (wrk_cfg_load(conf, &w.cfg, &e) != 0) {
        fprintf(stderr, "moat-worker: %s\n", e.msg);
        return 2;
    }
    log_level_set((enum log_level)log_level_parse(w.cfg.log_level));
    /* Before anything touches the state: a second worker on this state_dir
     * would sweep away the running one's task directories, then both would
     * register in turn. */
    lockfile_t *lock = lockfile_state_dir(w.cfg.state_dir, "moat-worker", &e);
    if (lock == NULL) {
        fprintf(stderr, "moat-worker: %s\n", e.msg);
        return 2;
    }
    /* Before the probe clones us and before any key is read: its clones,
     * the sandbox inits, stay non-dumpable too (tasks are exec'd). */
    if (keys_process_guard(&e) != 0) {
        log_error("wrk", "%s", e.msg);
        return 1;
    }
    wrk_res_detect(&w.cfg, &w.res);
    {
        struct wrk_res_warn rw;
        if (wrk_res_check(&w.cfg, getenv("CUDA_VISIBLE_DEVICES"), &rw, &e) != 0) {
            log_error("wrk", "%s: %s", conf, e.msg);
            return 1;
        }
        if (rw.cpus[0])
            log_warn("wrk", "%s", rw.cpus);
        if (rw.mem[0])
            log_warn("wrk", "%s", rw.mem);
    }
    w.hb_interval = 1.0;
    uint8_t rnd[16];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, rnd, sizeof rnd) != (ssize_t)sizeof rnd) {
        fprintf(stderr, "moat-worker: /dev/urandom: %s\n", strerror(errno));
        return 1;
    }
    close(fd);
    for (int i = 0; i < 16; i++)
        snprintf(w.instance + 2 * i, 3, "%02x", rnd[i]);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    w.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (w.sigfd < 0) {
        fprintf(stderr, "moat-worker: signalfd: %s\n", strerror(errno));
        return 1;
    }

    char path[CFG_STR_MAX + 32];
    snprintf(path, sizeof path, "%s/tasks", w.cfg.state_dir);
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        log_warn("wrk", "%s: %s; tasks cannot be launched here", path, strerror(errno));
    int swept = wrk_tasks_sweep_dirs(path, &e);
    if (swept < 0)
        log_warn("wrk", "task directories of a previous run: %s", e.msg);
    else if (swept > 0)
        log_info("wrk", "removed %d task directories left by a previous run (killed with its tasks)",
                 swept);
    snprintf(w.objects, sizeof w.objects, "%.500s/objects", w.cfg.state_dir);
    /* Before any thread starts: the sandbox probe clones this process. */
    if (wrk_egress_subnets_parse(&w.cfg.fabric_subnets, w.subnets, &w.nsubnets, &e) != 0 ||
        wrk_sandbox_init(&w.sandbox, &w.cfg, w.res.mem, &e) != 0) {
        log_error("wrk", "%s: %s", conf, e.msg);
        return 2;
    }
    if (w.sandbox.mode == WRK_SANDBOX_UNAVAILABLE)
        log_error("wrk", "exec sandbox unavailable (%s): exec tasks will be refused; "
                  "set exec_sandbox = \"off\" to run them unconfined", w.sandbox.why);
    else if (w.sandbox.mode == WRK_SANDBOX_OFF)
        log_warn("wrk", "exec sandbox off (exec_sandbox = \"off\"): exec tasks run unconfined");
    else
        log_info("wrk", "exec sandbox: namespaces, user %s", w.sandbox.user);
    if (mkdir(w.objects, 0700) != 0 && errno != EEXIST)
        log_warn("wrk", "%s: %s; infer tasks cannot fetch shards", w.objects, strerror(errno));
    int parts = wrk_objects_sweep(w.objects, &e);
    if (parts > 0)
        log_info("wrk", "removed %d unfinished shard transfer%s left by a previous run", parts,
                 parts == 1 ? "" : "s");
    ssize_t sl = readlink("/proc/self/exe", w.self, sizeof w.self - 1);
    w.self[sl > 0 ? sl : 0] = '\0';
    {
        const char *slash = strrchr(w.self, '/');
        char reaper[640];
        snprintf(reaper, sizeof reaper, "%.*s/moat-reap", slash ? (int)(slash - w.self) : 1,
                 slash ? w.self : ".");
        wrk_reaper_init(&w.reaper, reaper);
        if (w.sandbox.mode == WRK_SANDBOX_OFF && access(reaper, X_OK) != 0)
            log_warn("wrk", "%s: %s; unsandboxed exec tasks cannot start (build it with make)",
                     reaper, strerror(errno));
    }
    snprintf(path, sizeof path, "%s/store", w.cfg.state_dir);
    int rc = 1;
    net_t *net = NULL;
    w.store = store_open(path, 16u << 20, 4ull << 30, &e);
    if (w.store == NULL)
        goto out;
    /* schema 2 changed only the controller's databases: nothing to migrate */
    if (store_schema(w.store) < STORE_SCHEMA_VERSION &&
        (store_begin(w.store, &e) != 0 || store_set_schema(w.store, &e) != 0 ||
         store_commit(w.store, &e) != 0)) {
        store_abort(w.store);
        goto out;
    }
    if (wrk_tasks_load(&w.tasks, w.store, &e) != 0)
        goto out;
    char why[200];
    if (wrk_bind_init(&w.bind, w.res.cpus, w.res.gpus, strcmp(w.cfg.cpu_bind, "cpus") == 0, NULL,
                      getenv("CUDA_VISIBLE_DEVICES"), why, sizeof why, &e) != 0)
        goto out;
    if (why[0])
        log_warn("wrk", "%s", why);
    /* offering none where CUDA sees some: its tasks see none either */
    w.bind.hide_gpus = w.res.gpus == 0 && krn_cuda_device_count() > 0;
    if ((net = net_create(&e)) == NULL)
        goto out;
    struct net_curve curve = {0};
    if (keys_file_read(w.cfg.curve_secret_key_file, true, curve.secret_key, &e) != 0 ||
        net_curve_public(curve.public_key, curve.secret_key, &e) != 0) {
        err_prefix(&e, "curve_secret_key_file");
        goto out;
    }
    if (keys_file_read(w.cfg.controller_public_key_file, false, curve.server_key, &e) != 0) {
        err_prefix(&e, "controller_public_key_file");
        goto out;
    }
    w.sock = net_dealer_connect_curve(net, w.cfg.controller, 0, &curve, &e);
    sodium_memzero(curve.secret_key, sizeof curve.secret_key);
    if (w.sock == NULL)
        goto out;
    memcpy(w.public_key, curve.public_key, sizeof w.public_key);
    w.unreg_since = units_mono();
    w.unreg_next_log = w.unreg_since + UNREGISTERED_FIRST;
    log_info("wrk", "node %s: %d cpus, %d gpus, %llu bytes, backend %s; controller %s; %d results to re-send",
             w.res.name, w.res.cpus, w.res.gpus, (unsigned long long)w.res.mem, w.res.backend,
             w.cfg.controller, w.tasks.n);
    rc = run(&w) == 0 ? 0 : 1;
    for (int i = 0; i < w.tasks.n; i++)
        if (w.tasks.v[i]->phase == WRK_PHASE_RUNNING)
            wrk_exec_signal(&w.tasks.v[i]->proc, SIGKILL);
    log_info("wrk", "stopped");
out:
    if (rc != 0 && e.code)
        log_error("wrk", "%s", e.msg);
    for (int i = 0; i < w.tasks.n; i++)
        give_back(&w, w.tasks.v[i]);
    wrk_tasks_free(&w.tasks);
    wrk_bind_free(&w.bind);
    wrk_reaper_stop(&w.reaper);
    net_sock_close(w.sock);
    net_destroy(net);
    store_close(w.store);
    lockfile_release(lock); /* last: the state is closed */
    return rc;
}
