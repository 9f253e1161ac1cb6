/* bench_store.c: bench-store: result checkpoints MB/s against raw LMDB puts.
 *
 * PRODUCT.md's storage figure: how fast the controller commits task results,
 * as a ratio to plain LMDB writing the same bytes on the same disk in the
 * same run. For each result size (1 KiB: a small exec output; 48 KiB: one
 * infer batch of 32 x 384 fp32 embeddings; 1 MiB: output_cap) and each
 * commit cadence (1 result per commit, as when results trickle in; 64, as
 * the event loop's group commit under load):
 *   moat: the controller's own TASK_END handler (ctl_on_task_end) on tasks
 *         dispatched to an in-process node: message checks, the result record
 *         (controller/ctl_result.h), the task's and job's records, the outbox;
 *         then store_commit (fsync) every B results;
 *   raw:  mdb_put of a value of the same size under the same key layout in an
 *         LMDB environment of its own beside it, mdb_txn_commit every B puts.
 * Payload MB/s = results x size / seconds. The two alternate, R rounds each
 * (median kept), so that a noisy disk hits both alike. One JSON object per
 * line on stdout: {bench, case, size, per_commit, results, moat_mb_s,
 * raw_mb_s, ratio, moat_results_s, raw_results_s}.
 * Usage: bench-store [--dir DIR] [--mb M] [--rounds R] [--size BYTES] [--per B]
 *   DIR: where the two environments go (default: a new one under /tmp);
 *   M: payload per case and round (default 32 MB);
 *   --size, --per: run only the cases of that result size / cadence (to
 *   profile one case; the sizes and cadences are those listed above).
 */
#include <errno.h>
#include <lmdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "controller/ctl_jobs.h"
#include "controller/ctl_nodes.h"
#include "controller/ctl_sched.h"
#include "controller/ctl_state.h"
#include "shared/log.h"
#include "shared/store.h"
#include "shared/units.h"

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench-store: %s: %s\n", what, why);
    exit(1);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* moat_round: n results of size bytes through ctl_on_task_end, a commit every
 * per results; seconds taken (the dispatch before is not timed). */
static double moat_round(const char *dir, uint32_t n, size_t size, uint32_t per, const uint8_t *payload)
{
    struct err e = {0};
    store_t *st = store_open(dir, 4ull << 30, 64ull << 30, &e); /* no growth mid-batch */
    if (st == NULL)
        die("store", e.msg);
    struct ctl_cfg cfg;
    if (ctl_cfg_load(NULL, &cfg, &e) != 0)
        die("config", e.msg);
    struct ctl ctl;
    ctl_state_init(&ctl, &cfg, st, NULL);
    struct ctl_node *node = calloc(1, sizeof *node);
    snprintf(node->name, sizeof node->name, "bench");
    node->cpus = (int)n;
    node->state = NODE_STATE_UP;
    node->registered = true;
    node->peer.len = 1;
    node->peer.id[0] = 1;
    node->last_seen = units_mono();
    ctl.nodes = node;
    ctl.nnodes = ctl.nodes_cap = 1;
    char specj[128];
    snprintf(specj, sizeof specj, "{\"kind\":\"exec\",\"argv\":[\"x\"],\"array\":{\"start\":0,\"end\":%u}}",
             n - 1);
    json_t *sj = json_loads(specj, 0, NULL);
    struct job_spec spec;
    if (jobspec_from_json(&spec, sj, &e) != 0)
        die("spec", e.msg);
    json_decref(sj);
    struct ctl_job *job = ctl_job_new(1, &spec, units_now(), &e);
    if (job == NULL || ctl_job_save(&ctl, job, true, &e) != 0 || ctl_job_add(&ctl, job, &e) != 0 ||
        ctl_queue_add(&ctl, job, &e) != 0)
        die("submit", e.msg);
    if (ctl_sched_pass(&ctl, units_now(), &e) != (int)n)
        die("dispatch", e.msg[0] ? e.msg : "not every task was placed");
    if (store_commit(st, &e) != 0)
        die("commit", e.msg);
    for (int i = 0; i < ctl.nout; i++)
        proto_msg_clear(&ctl.outbox[i].msg);
    ctl.nout = 0;
    double t0 = units_mono();
    for (uint32_t i = 0; i < n; i++) {
        struct proto_msg msg;
        proto_msg_init(&msg, PROTO_TYPE_TASK_END, i + 1,
                       json_pack("{s:I, s:I, s:i, s:s, s:i, s:i, s:b, s:f, s:f}", "job", (json_int_t)1,
                                 "task", (json_int_t)i, "attempt", 1, "state", "COMPLETED",
                                 "exit_code", 0, "signal", 0, "truncated", 0, "start_time",
                                 units_now(), "end_time", units_now()));
        if (proto_msg_add_blob(&msg, payload, size, &e) != 0 || proto_msg_add_blob(&msg, "", 0, &e) != 0)
            die("message", e.msg);
        if (ctl_on_task_end(&ctl, &node->peer, &msg, &e) != 0)
            die("task end", e.msg);
        proto_msg_clear(&msg);
        if ((i + 1) % per == 0 || i + 1 == n) {
            if (store_commit(st, &e) != 0)
                die("commit", e.msg);
            for (int k = 0; k < ctl.nout; k++)
                proto_msg_clear(&ctl.outbox[k].msg);
            ctl.nout = 0;
        }
    }
    double dt = units_mono() - t0;
    if (job->state != JOB_STATE_COMPLETED)
        die("moat", "the job did not complete");
    ctl_state_free(&ctl);
    store_close(st);
    return dt;
}

/* raw_round: the same number of puts of the same size straight into LMDB. */
static double raw_round(const char *dir, uint32_t n, size_t size, uint32_t per, const uint8_t *payload)
{
    MDB_env *env;
    MDB_dbi dbi;
    MDB_txn *txn;
    int rc = mdb_env_create(&env);
    if (rc == 0)
        rc = mdb_env_set_mapsize(env, 64ull << 30);
    if (rc == 0)
        rc = mdb_env_open(env, dir, 0, 0600);
    if (rc != 0)
        die("raw lmdb", mdb_strerror(rc));
    double t0 = units_mono();
    for (uint32_t i = 0; i < n; i += per) {
        if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0 || (rc = mdb_dbi_open(txn, NULL, 0, &dbi)) != 0)
            die("raw lmdb", mdb_strerror(rc));
        for (uint32_t k = i; k < n && k < i + per; k++) {
            uint8_t key[12];
            MDB_val kv = {store_key_task(key, 1, k), key}, vv = {size, (void *)payload};
            if ((rc = mdb_put(txn, dbi, &kv, &vv, 0)) != 0)
                die("raw lmdb put", mdb_strerror(rc));
        }
        if ((rc = mdb_txn_commit(txn)) != 0)
            die("raw lmdb commit", mdb_strerror(rc));
    }
    double dt = units_mono() - t0;
    mdb_env_close(env);
    return dt;
}

static void wipe(const char *dir)
{
    char path[4200];
    static const char *const files[] = {"data.mdb", "lock.mdb"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
}

int main(int argc, char **argv)
{
    const char *base = NULL;
    double mb = 32;
    int rounds = 3;
    long only_size = 0, only_per = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            base = argv[++i];
        else if (!strcmp(argv[i], "--mb") && i + 1 < argc)
            mb = atof(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--size") && i + 1 < argc)
            only_size = atol(argv[++i]);
        else if (!strcmp(argv[i], "--per") && i + 1 < argc)
            only_per = atol(argv[++i]);
        else {
            fprintf(stderr, "usage: bench-store [--dir DIR] [--mb M] [--rounds R] [--size BYTES] [--per B]\n");
            return 2;
        }
    }
    if (!(mb > 0) || rounds < 1 || rounds > 99) {
        fprintf(stderr, "bench-store: --mb must be > 0 and --rounds 1..99\n");
        return 2;
    }
    if ((only_size && only_size != 1024 && only_size != 49152 && only_size != 1048576) ||
        (only_per && only_per != 1 && only_per != 64)) {
        fprintf(stderr, "bench-store: --size must be 1024, 49152 or 1048576 and --per 1 or 64\n");
        return 2;
    }
    char tmp[] = "/tmp/moat-bench-store-XXXXXX"; /* mkdtemp's template */
    bool own = base == NULL;                      /* made here: removed at the end */
    if (base == NULL && (base = mkdtemp(tmp)) == NULL)
        die("mkdtemp", strerror(errno));
    char mdir[4096], rdir[4096];
    snprintf(mdir, sizeof mdir, "%s/moat", base);
    snprintf(rdir, sizeof rdir, "%s/raw", base);
    if ((mkdir(rdir, 0700) != 0 && errno != EEXIST))
        die(rdir, strerror(errno));
    static const size_t sizes[] = {1024, 49152, 1048576};
    static const uint32_t pers[] = {1, 64};
    uint8_t *payload = malloc(sizes[2]);
    for (size_t i = 0; i < sizes[2]; i++)
        payload[i] = (uint8_t)(i * 2654435761u >> 24);
    log_level_set(LOG_LEVEL_WARN);
    for (size_t s = 0; s < 3; s++) {
        for (size_t p = 0; p < 2; p++) {
            if ((only_size && (size_t)only_size != sizes[s]) || (only_per && (uint32_t)only_per != pers[p]))
                continue;
            /* fsync per commit bounds the per-result case: fewer results there */
            double want = mb * 1e6 / (double)sizes[s];
            uint32_t n = (uint32_t)(pers[p] == 1 ? (want > 2000 ? 2000 : want) : want);
            if (n < pers[p])
                n = pers[p];
            double tm[99], tr[99];
            for (int r = 0; r < rounds; r++) {
                wipe(mdir);
                wipe(rdir);
                tm[r] = moat_round(mdir, n, sizes[s], pers[p], payload);
                tr[r] = raw_round(rdir, n, sizes[s], pers[p], payload);
            }
            qsort(tm, (size_t)rounds, sizeof *tm, cmp_double);
            qsort(tr, (size_t)rounds, sizeof *tr, cmp_double);
            double m = tm[rounds / 2], rw = tr[rounds / 2];
            double bytes = (double)n * (double)sizes[s];
            printf("{\"bench\": \"store\", \"case\": \"result\", \"size\": %zu, \"per_commit\": %u, "
                   "\"results\": %u, \"moat_mb_s\": %.1f, \"raw_mb_s\": %.1f, \"ratio\": %.3f, "
                   "\"moat_results_s\": %.0f, \"raw_results_s\": %.0f}\n",
                   sizes[s], pers[p], n, bytes / m / 1e6, bytes / rw / 1e6, rw / m, n / m, n / rw);
            fflush(stdout);
        }
    }
    wipe(mdir);
    wipe(rdir);
    free(payload);
    rmdir(mdir); /* only empty ones go: a --dir the caller gave keeps its other files */
    rmdir(rdir);
    if (own)
        rmdir(base);
    return 0;
}
