/* test_bert.c: model directory checks, TP shards and the BERT forward (shared/model.c,
 * worker/wrk_bert.c) against sentence-transformers.
 *
 * Needs the real model in $MOAT_MODEL_DIR (default build/model), which
 * `scripts/fetch-model.sh build/model` fills; the tests that need it FAIL
 * (not skip) when it is missing. The GPU test copy of scripts/gpu-model.py
 * (unused word-embedding rows zeroed) passes too: tests/gpu/run.sh uses it.
 * Golden vectors: tests/data/emb/, made by
 * tests/tools/gen_golden_embeddings.py (see tests/tools/README.md).
 * Tensor parallelism: ranks are threads, all-reducing in process (a barrier and
 * shared slots) or, like rank processes, through ZeroMQ on loopback with the
 * host staging of worker/wrk_stage.h; the latter on the "cuda" backend with
 * every rank on device 0 (the one-GPU case NCCL cannot run) when a device is
 * present, else that test skips with the reason.
 * Run from the repository root. Figures are printed, e.g.
 *   golden cpu tp=1: 250 sentences, min cosine 1.000000000 (1 - 1.3e-12, line 55), ...
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/tp_fixture.h"
#include <jansson.h>

#include "kernels/krn.h"
#include "shared/safetensors.h"
#include "worker/wrk_bert.h"
#include "worker/wrk_comm.h"
#include "shared/model.h"
#include "worker/wrk_stage.h"
#include "worker/wrk_tok.h"

#define EMB "tests/data/emb/"
#define MAX_LEN 256
#define MAX_BATCH 32
#define COS_MIN 0.99999
#define DIFF_MAX 1e-4
#define TP_DIFF_MAX 1e-5

/* ---- the real model and the golden data, loaded once ---- */

static model_t *model;
static wrk_tok_t *tok;
static int n_sent, dim;
static char *sent_buf;
static const char **sent;
static size_t *sent_len;
static float *golden;     /* [n_sent, dim] */
static int *golden_ntok;  /* [n_sent] */
static float *emb_tp1;    /* [n_sent, dim], our TP=1 result */
static float *emb_tp2;    /* [n_sent, dim], our TP=2 result, cpu, in-process all-reduce */

/* Batches: sentence indices sorted by token count, cut into MAX_BATCH runs,
 * tokenised once (ids, mask: int32 [B, T]). */
struct batch {
    int B, T;
    int32_t *ids, *mask;
};
static int *order;
static int n_batches;
static struct batch *batches;

static const char *model_dir(void)
{
    const char *d = getenv("MOAT_MODEL_DIR");
    return d != NULL && d[0] != '\0' ? d : "build/model";
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("%s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)sz + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)sz, f), (size_t)sz);
    buf[sz] = '\0';
    fclose(f);
    *n = (size_t)sz;
    return buf;
}

static int cmp_ntok(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    if (golden_ntok[x] != golden_ntok[y])
        return golden_ntok[x] - golden_ntok[y];
    return x - y;
}

static void batch_encode(int bi, struct batch *bt);

static void need_model(void)
{
    if (model != NULL)
        return;
    struct err err = {0};
    struct stat sb;
    if (stat(model_dir(), &sb) != 0)
        fail_msg("model directory %s is missing: run scripts/fetch-model.sh %s (or set "
                 "MOAT_MODEL_DIR)", model_dir(), model_dir());
    model = model_open(model_dir(), &err);
    if (model == NULL)
        fail_msg("model_open(%s): %s (run scripts/fetch-model.sh %s)", model_dir(), err.msg,
                 model_dir());
    tok = wrk_tok_create(model_vocab_path(model), &err);
    if (tok == NULL)
        fail_msg("wrk_tok_create: %s", err.msg);

    json_error_t jerr;
    json_t *meta = json_load_file(EMB "golden.json", 0, &jerr);
    if (meta == NULL)
        fail_msg(EMB "golden.json: %s", jerr.text);
    n_sent = (int)json_integer_value(json_object_get(meta, "count"));
    dim = (int)json_integer_value(json_object_get(meta, "dim"));
    json_t *nt = json_object_get(meta, "n_tokens");
    assert_true(n_sent >= 200);
    assert_int_equal(dim, model_config_get(model)->hidden);
    assert_int_equal(json_array_size(nt), (size_t)n_sent);
    golden_ntok = malloc((size_t)n_sent * sizeof *golden_ntok);
    assert_non_null(golden_ntok);
    for (int i = 0; i < n_sent; i++)
        golden_ntok[i] = (int)json_integer_value(json_array_get(nt, (size_t)i));
    json_decref(meta);

    size_t n;
    golden = (float *)slurp(EMB "golden.f32", &n);
    assert_int_equal(n, (size_t)n_sent * (size_t)dim * sizeof(float));

    sent_buf = slurp(EMB "sentences.txt", &n);
    sent = malloc((size_t)n_sent * sizeof *sent);
    sent_len = malloc((size_t)n_sent * sizeof *sent_len);
    assert_true(sent != NULL && sent_len != NULL);
    int k = 0;
    size_t start = 0;
    for (size_t i = 0; i < n; i++)
        if (sent_buf[i] == '\n') {
            assert_true(k < n_sent);
            sent[k] = sent_buf + start;
            sent_len[k] = i - start;
            k++;
            start = i + 1;
        }
    assert_int_equal(k, n_sent);

    order = malloc((size_t)n_sent * sizeof *order);
    assert_non_null(order);
    for (int i = 0; i < n_sent; i++)
        order[i] = i;
    qsort(order, (size_t)n_sent, sizeof *order, cmp_ntok);
    n_batches = (n_sent + MAX_BATCH - 1) / MAX_BATCH;
    batches = calloc((size_t)n_batches, sizeof *batches);
    assert_non_null(batches);
    for (int bi = 0; bi < n_batches; bi++)
        batch_encode(bi, &batches[bi]);
}

/* Tokenise batch bi (main thread only: it may fail the test). */
static void batch_encode(int bi, struct batch *bt)
{
    const char *texts[MAX_BATCH];
    size_t lens[MAX_BATCH];
    int32_t got[MAX_BATCH];
    int B = 0;
    for (int i = bi * MAX_BATCH; i < n_sent && B < MAX_BATCH; i++, B++) {
        texts[B] = sent[order[i]];
        lens[B] = sent_len[order[i]];
    }
    bt->ids = malloc((size_t)B * MAX_LEN * sizeof *bt->ids);
    bt->mask = malloc((size_t)B * MAX_LEN * sizeof *bt->mask);
    assert_true(bt->ids != NULL && bt->mask != NULL);
    struct err err = {0};
    if (wrk_tok_encode_batch(tok, texts, lens, B, MAX_LEN, false, bt->ids, bt->mask, got, &bt->T,
                             &err) != 0)
        fail_msg("batch %d: %s", bi, err.msg);
    for (int b = 0; b < B; b++)
        if (got[b] != golden_ntok[order[bi * MAX_BATCH + b]])
            fail_msg("sentence %d: %d tokens, HF has %d", order[bi * MAX_BATCH + b] + 1, got[b],
                     golden_ntok[order[bi * MAX_BATCH + b]]);
    bt->B = B;
}

/* Run every batch through m, embeddings into out [n_sent, dim] in input order.
 * Thread-safe (TP ranks call it); returns 0 or -1 with err. */
static int embed_all(wrk_bert_t *m, float *out, struct err *err)
{
    float *e = malloc((size_t)MAX_BATCH * (size_t)dim * sizeof *e);
    if (e == NULL)
        return err_set(err, ENOMEM, "out of memory");
    for (int bi = 0; bi < n_batches; bi++) {
        const struct batch *bt = &batches[bi];
        if (wrk_bert_forward(m, bt->ids, bt->mask, bt->B, bt->T, e, err) != 0) {
            free(e);
            return err_prefix(err, "batch %d", bi);
        }
        for (int b = 0; b < bt->B; b++)
            memcpy(out + (size_t)order[bi * MAX_BATCH + b] * dim, e + (size_t)b * dim,
                   (size_t)dim * sizeof(float));
    }
    free(e);
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void need_tp1(void)
{
    need_model();
    if (emb_tp1 != NULL)
        return;
    struct err err = {0};
    krn_backend_t *be = krn_backend_create("cpu", 0, &err);
    if (be == NULL)
        fail_msg("krn_backend_create(cpu): %s", err.msg);
    model_shard_t *s = model_shard_extract(model, 1, 0, &err);
    if (s == NULL)
        fail_msg("shard tp 1: %s", err.msg);
    wrk_bert_t *m = wrk_bert_create(be, s, MAX_BATCH, MAX_LEN, NULL, &err);
    if (m == NULL)
        fail_msg("wrk_bert_create: %s", err.msg);
    model_shard_destroy(s);
    emb_tp1 = malloc((size_t)n_sent * (size_t)dim * sizeof(float));
    assert_non_null(emb_tp1);
    double t0 = now_s();
    if (embed_all(m, emb_tp1, &err) != 0)
        fail_msg("tp 1: %s", err.msg);
    double t = now_s() - t0;
    print_message("tp=1 forward: %d sentences in %.2f s (%.0f sentences/s)\n", n_sent, t,
                  n_sent / t);
    wrk_bert_destroy(m);
    krn_backend_destroy(be);
}

/* ---- golden ---- */

/* Per-sentence cosine and max abs difference of emb against golden; prints the
 * worst figures under label and fails when a sentence is outside the bounds. */
static void golden_check(const float *emb, const char *label)
{
    double min_cos = 1.0, max_diff = 0.0;
    int worst_cos = 0, worst_diff = 0, bad = 0;
    for (int i = 0; i < n_sent; i++) {
        const float *a = emb + (size_t)i * dim, *g = golden + (size_t)i * dim;
        double dot = 0, na = 0, ng = 0, md = 0;
        for (int j = 0; j < dim; j++) {
            dot += (double)a[j] * g[j];
            na += (double)a[j] * a[j];
            ng += (double)g[j] * g[j];
            double d = fabs((double)a[j] - g[j]);
            md = d > md ? d : md;
        }
        double cos = dot / sqrt(na * ng);
        if (cos < min_cos) {
            min_cos = cos;
            worst_cos = i;
        }
        if (md > max_diff) {
            max_diff = md;
            worst_diff = i;
        }
        if (!(cos >= COS_MIN) || !(md <= DIFF_MAX)) {
            if (bad++ < 5)
                print_error("%s: sentence %d: cosine %.8f, max abs diff %.3g\n", label, i + 1,
                            cos, md);
        }
    }
    print_message("golden %s: %d sentences, min cosine %.9f (1 - %.2g, line %d), max abs "
                  "diff %.3g (line %d)\n", label, n_sent, min_cos, 1.0 - min_cos, worst_cos + 1,
                  max_diff, worst_diff + 1);
    assert_int_equal(bad, 0);
}

static void test_golden_tp1(void **state)
{
    (void)state;
    need_tp1();
    golden_check(emb_tp1, "cpu tp=1");
}

/* The same on the first CUDA device; skipped, with the reason, without one. */
static void test_golden_cuda(void **state)
{
    (void)state;
    if (krn_cuda_device_count() == 0) {
        print_message("skip: no CUDA device (or a build without CUDA)\n");
        skip();
    }
    need_model();
    struct err err = {0};
    krn_backend_t *be = krn_backend_create("cuda", 0, &err);
    if (be == NULL)
        fail_msg("krn_backend_create(cuda): %s", err.msg);
    model_shard_t *s = model_shard_extract(model, 1, 0, &err);
    assert_non_null(s);
    wrk_bert_t *m = wrk_bert_create(be, s, MAX_BATCH, MAX_LEN, NULL, &err);
    if (m == NULL)
        fail_msg("wrk_bert_create(cuda): %s", err.msg);
    model_shard_destroy(s);
    float *emb = malloc((size_t)n_sent * (size_t)dim * sizeof(float));
    assert_non_null(emb);
    double t0 = now_s();
    if (embed_all(m, emb, &err) != 0)
        fail_msg("cuda: %s", err.msg);
    print_message("cuda tp=1 forward: %d sentences in %.3f s\n", n_sent, now_s() - t0);
    golden_check(emb, "cuda tp=1");
    free(emb);
    wrk_bert_destroy(m);
    krn_backend_destroy(be);
}

/* ---- tensor parallel: ranks as threads ---- */

struct tp_group {
    int tp;
    const char *backend; /* "cpu" (1 thread per rank) or "cuda" (device 0, every rank) */
    char ep[64];         /* "": in-process all-reduce; else rank 0's ZeroMQ endpoint */
    pthread_barrier_t bar;
    float **slot;    /* [tp][cap] */
    size_t cap;
    int failed;      /* any rank failed at set-up */
};

struct tp_rank {
    struct tp_group *g;
    int rank;
    float *out;      /* [n_sent, dim] */
    struct err err;
    char sha[65];
};

/* The all-reduce: every rank publishes its buffer, then each sums all slots in
 * rank order (identical results on every rank), then waits so no slot is
 * overwritten while another rank still reads it. */
static int tp_allreduce_cb(void *ctx, float *buf, size_t n, struct err *err)
{
    struct tp_rank *r = ctx;
    struct tp_group *g = r->g;
    if (n > g->cap)
        return err_set(err, EINVAL, "allreduce: %zu floats over %zu", n, g->cap);
    memcpy(g->slot[r->rank], buf, n * sizeof *buf);
    pthread_barrier_wait(&g->bar);
    for (size_t i = 0; i < n; i++) {
        float s = g->slot[0][i];
        for (int k = 1; k < g->tp; k++)
            s += g->slot[k][i];
        buf[i] = s;
    }
    pthread_barrier_wait(&g->bar);
    return 0;
}

static void *tp_rank_main(void *p)
{
    struct tp_rank *r = p;
    struct tp_group *g = r->g;
    bool cuda = strcmp(g->backend, "cuda") == 0;
    wrk_comm_t *comm = NULL;
    wrk_stage_t *stage = NULL;
    krn_backend_t *be = NULL;
    model_shard_t *ex = NULL, *s = NULL;
    wrk_bert_t *m = NULL;
    struct wrk_allreduce ar = {tp_allreduce_cb, r};
    if (g->ep[0] != '\0') {
        /* as rank processes do: the group over ZeroMQ, device memory staged */
        comm = wrk_comm_create(g->ep, "30.0.0", g->tp, r->rank, tp_keys("30.0.0", r->rank), 60.0,
                               &r->err);
        if (comm == NULL)
            goto setup_done;
    }
    be = krn_backend_create(g->backend, cuda ? 0 : 1, &r->err);
    if (be != NULL && comm != NULL) {
        struct wrk_allreduce inner = wrk_comm_allreduce(comm);
        stage = wrk_stage_create(be, &inner, &r->err);
        if (stage == NULL)
            goto setup_done;
        ar = wrk_stage_allreduce(stage);
    }
    if (be != NULL)
        ex = model_shard_extract(model, g->tp, r->rank, &r->err);
    if (ex != NULL) {
        /* the wire path: the worker decodes what the controller extracted */
        size_t len;
        const void *bytes = model_shard_bytes(ex, &len);
        s = model_shard_decode(bytes, len, &r->err);
        model_shard_sha256(ex, r->sha);
    }
    if (s != NULL)
        m = wrk_bert_create(be, s, MAX_BATCH, MAX_LEN, &ar, &r->err);
setup_done:
    if (m == NULL)
        __atomic_store_n(&g->failed, 1, __ATOMIC_SEQ_CST);
    pthread_barrier_wait(&g->bar);
    /* N.B. in process, a rank failing mid-run leaves the others blocked in the
     * all-reduce: the test then hangs rather than passes. Over ZeroMQ the rank
     * tells the group, which fails at once. */
    if (!__atomic_load_n(&g->failed, __ATOMIC_SEQ_CST) && embed_all(m, r->out, &r->err) != 0)
        wrk_comm_abort(comm, &r->err);
    wrk_bert_destroy(m);
    wrk_stage_destroy(stage);
    model_shard_destroy(s);
    model_shard_destroy(ex);
    krn_backend_destroy(be);
    wrk_comm_destroy(comm);
    return NULL;
}

/* Embed every sentence with tp ranks (threads) on backend, all-reducing in
 * process or (zeromq) over ZeroMQ with staging. Checks that every rank ends
 * with the same bits and holds a distinct shard; returns rank 0's embeddings
 * [n_sent, dim] (caller frees). */
static float *tp_run(int tp, const char *backend, bool zeromq)
{
    need_model();
    struct tp_group g = {.tp = tp, .backend = backend,
                         .cap = (size_t)MAX_BATCH * MAX_LEN * (size_t)dim};
    if (zeromq)
        tp_free_endpoint(g.ep, sizeof g.ep);
    struct tp_rank r[12];
    pthread_t th[12];
    assert_true(tp <= 12);
    assert_int_equal(pthread_barrier_init(&g.bar, NULL, (unsigned)tp), 0);
    g.slot = calloc((size_t)tp, sizeof *g.slot);
    assert_non_null(g.slot);
    for (int k = 0; k < tp; k++) {
        g.slot[k] = zeromq ? NULL : malloc(g.cap * sizeof(float));
        r[k] = (struct tp_rank){.g = &g, .rank = k};
        r[k].out = calloc((size_t)n_sent * (size_t)dim, sizeof(float));
        assert_true((zeromq || g.slot[k] != NULL) && r[k].out != NULL);
    }
    double t0 = now_s();
    for (int k = 0; k < tp; k++)
        assert_int_equal(pthread_create(&th[k], NULL, tp_rank_main, &r[k]), 0);
    for (int k = 0; k < tp; k++)
        pthread_join(th[k], NULL);
    double t = now_s() - t0;
    for (int k = 0; k < tp; k++)
        if (r[k].err.code != 0)
            fail_msg("%s tp %d rank %d: %s", backend, tp, k, r[k].err.msg);
    for (int k = 0; k < tp; k++) {
        /* every rank ends with the same embeddings, bit for bit */
        assert_memory_equal(r[k].out, r[0].out, (size_t)n_sent * (size_t)dim * sizeof(float));
        for (int j = k + 1; j < tp; j++)
            assert_string_not_equal(r[k].sha, r[j].sha);
    }
    print_message("%s tp=%d (%s): %d sentences in %.2f s, %d threads\n", backend, tp,
                  zeromq ? "ZeroMQ, staged" : "in-process all-reduce", n_sent, t, tp);
    for (int k = 1; k < tp; k++)
        free(r[k].out);
    for (int k = 0; k < tp; k++)
        free(g.slot[k]);
    free(g.slot);
    pthread_barrier_destroy(&g.bar);
    return r[0].out;
}

/* max |a - b| over [n_sent, dim] */
static double max_abs_diff(const float *a, const float *b)
{
    double max_diff = 0.0;
    for (size_t i = 0; i < (size_t)n_sent * (size_t)dim; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= max_diff))
            max_diff = d;
    }
    return max_diff;
}

static void tp_check(int tp)
{
    need_tp1();
    float *e = tp_run(tp, "cpu", false);
    double max_diff = max_abs_diff(e, emb_tp1);
    print_message("tp=%d vs tp=1: max abs diff %.3g over %d sentences\n", tp, max_diff, n_sent);
    assert_true(max_diff <= TP_DIFF_MAX);
    if (tp == 2 && emb_tp2 == NULL)
        emb_tp2 = e;
    else
        free(e);
}

static void test_tp2_equals_tp1(void **state)
{
    (void)state;
    tp_check(2);
}

static void test_tp3_equals_tp1(void **state)
{
    (void)state;
    tp_check(3);
}

/* TP=2 through ZeroMQ and the host staging, on the cpu backend: the same bits
 * as the in-process all-reduce (both sum in rank order). */
static void test_tp2_zeromq_staged_cpu(void **state)
{
    (void)state;
    if (emb_tp2 == NULL)
        tp_check(2);
    float *e = tp_run(2, "cpu", true);
    if (memcmp(e, emb_tp2, (size_t)n_sent * (size_t)dim * sizeof(float)) != 0)
        fail_msg("tp=2 over ZeroMQ with staging differs from the in-process tp=2 (max abs "
                 "diff %.3g)", max_abs_diff(e, emb_tp2));
    free(e);
}

/* TP=2 on one GPU: both ranks on cuda device 0, all-reducing through ZeroMQ
 * with device <-> host staging (NCCL cannot place two ranks on one GPU);
 * compared with sentence-transformers and with the cpu TP=1 result. */
static void test_tp2_zeromq_staged_cuda(void **state)
{
    (void)state;
    if (krn_cuda_device_count() == 0) {
        print_message("skip: no CUDA device (or a build without CUDA)\n");
        skip();
    }
    need_tp1();
    float *e = tp_run(2, "cuda", true);
    golden_check(e, "cuda tp=2 (one GPU, ZeroMQ staged)");
    double d = max_abs_diff(e, emb_tp1);
    print_message("cuda tp=2 staged vs cpu tp=1: max abs diff %.3g\n", d);
    assert_true(d <= DIFF_MAX);
    free(e);
}

/* ---- the real model's directory, manifest and shards ---- */

#define MODEL_SHA256 "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

/* The SHA-256 model.safetensors must have: the pin, or, in the GPU test copy
 * made by scripts/gpu-model.py (unused word-embedding rows zeroed; its
 * gpu-copy.json names it), the copy's own hash, and only when the copy's
 * source is the pinned model. */
static void expected_model_sha(char out[65])
{
    char path[4096];
    snprintf(path, sizeof path, "%s/gpu-copy.json", model_dir());
    snprintf(out, 65, "%s", MODEL_SHA256);
    if (access(path, F_OK) != 0)
        return;
    json_error_t jerr;
    json_t *meta = json_load_file(path, 0, &jerr);
    if (meta == NULL)
        fail_msg("%s: %s", path, jerr.text);
    const char *fmt = json_string_value(json_object_get(meta, "format"));
    const char *src = json_string_value(
        json_object_get(json_object_get(meta, "source"), "model.safetensors"));
    const char *sha = json_string_value(json_object_get(
        json_object_get(json_object_get(meta, "files"), "model.safetensors"), "sha256"));
    if (fmt == NULL || strcmp(fmt, "moat-gpu-test-copy-1") != 0 || src == NULL
        || strcmp(src, MODEL_SHA256) != 0 || sha == NULL || strlen(sha) != 64)
        fail_msg("%s: not a GPU test copy of the pinned model", path);
    snprintf(out, 65, "%s", sha);
    print_message("GPU test copy of the pinned model (scripts/gpu-model.py): model.safetensors "
                  "%.16s...\n", sha);
    json_decref(meta);
}

static void test_model_open_and_manifest(void **state)
{
    (void)state;
    need_model();
    const struct model_config *c = model_config_get(model);
    assert_int_equal(c->hidden, 384);
    assert_int_equal(c->heads, 12);
    assert_int_equal(c->head_dim, 32);
    assert_int_equal(c->layers, 6);
    assert_int_equal(c->intermediate, 1536);
    assert_int_equal(c->vocab, 30522);
    assert_int_equal(c->max_position, 512);
    assert_int_equal(c->type_vocab, 2);
    assert_true(c->layer_norm_eps == 1e-12f);
    struct model_file f[MODEL_FILES];
    struct err err = {0};
    assert_int_equal(model_manifest_compute(model, f, &err), 0);
    /* the hashes pinned in scripts/fetch-model.sh */
    assert_string_equal(f[0].name, "config.json");
    assert_string_equal(f[0].sha256,
                        "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41");
    assert_string_equal(f[1].sha256,
                        "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3");
    assert_string_equal(f[2].name, "model.safetensors");
    char model_sha[65];
    expected_model_sha(model_sha);
    assert_string_equal(f[2].sha256, model_sha);
    assert_int_equal(f[2].bytes, 90868376);
}

static void test_shard_layout(void **state)
{
    (void)state;
    need_model();
    struct err err = {0};
    /* every TP degree that divides 12 heads; 5 and 0 do not */
    int ok[] = {1, 2, 3, 4, 6, 12};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        model_shard_t *s = model_shard_extract(model, ok[i], ok[i] - 1, &err);
        if (s == NULL)
            fail_msg("tp %d: %s", ok[i], err.msg);
        const struct st_tensor *q =
            model_shard_tensor(s, "encoder.layer.0.attention.self.query.weight");
        const struct st_tensor *o = model_shard_tensor(s, "encoder.layer.5.output.dense.weight");
        assert_non_null(q);
        assert_int_equal(q->shape[0], 384 / ok[i]);
        assert_int_equal(q->shape[1], 384);
        assert_non_null(o);
        assert_int_equal(o->shape[0], 384);
        assert_int_equal(o->shape[1], 1536 / ok[i]);
        /* row-parallel biases only on rank 0 */
        assert_true((model_shard_tensor(s, "encoder.layer.0.output.dense.bias") != NULL)
                    == (ok[i] == 1));
        assert_null(model_shard_tensor(s, "pooler.dense.weight"));
        assert_null(model_shard_tensor(s, "embeddings.position_ids"));
        model_shard_destroy(s);
    }
    assert_null(model_shard_extract(model, 5, 0, &err));
    assert_int_equal(err.code, EINVAL);
    assert_null(model_shard_extract(model, 0, 0, &err));
    assert_int_equal(err.code, EINVAL);
    assert_null(model_shard_extract(model, 2, 2, &err));
    assert_int_equal(err.code, EINVAL);

    /* slices: rank 1 of 2 holds value rows 192.. and output.dense columns 768.. */
    model_shard_t *s = model_shard_extract(model, 2, 1, &err);
    model_shard_t *full = model_shard_extract(model, 1, 0, &err);
    assert_true(s != NULL && full != NULL);
    const struct st_tensor *v = model_shard_tensor(s, "encoder.layer.3.attention.self.value.weight");
    const struct st_tensor *vf =
        model_shard_tensor(full, "encoder.layer.3.attention.self.value.weight");
    assert_memory_equal(v->data, (const char *)vf->data + 192 * 384 * 4, 192 * 384 * 4);
    const struct st_tensor *w = model_shard_tensor(s, "encoder.layer.3.output.dense.weight");
    const struct st_tensor *wf = model_shard_tensor(full, "encoder.layer.3.output.dense.weight");
    for (int row = 0; row < 384; row += 97)
        assert_memory_equal((const char *)w->data + row * 768 * 4,
                            (const char *)wf->data + (row * 1536 + 768) * 4, 768 * 4);
    model_shard_destroy(full);

    /* decode: the image round-trips; a tampered one is refused */
    size_t len;
    const void *bytes = model_shard_bytes(s, &len);
    model_shard_t *d = model_shard_decode(bytes, len, &err);
    assert_non_null(d);
    char h1[65], h2[65];
    model_shard_sha256(s, h1);
    model_shard_sha256(d, h2);
    assert_string_equal(h1, h2);
    assert_int_equal(model_shard_tp(d), 2);
    assert_int_equal(model_shard_rank(d), 1);
    model_shard_destroy(d);
    char *bad = malloc(len);
    assert_non_null(bad);
    memcpy(bad, bytes, len);
    char *r = memmem(bad, 4096, "\"rank\":\"1\"", 10);
    assert_non_null(r);
    r[8] = '0'; /* claims rank 0 but lacks its biases */
    assert_null(model_shard_decode(bad, len, &err));
    assert_int_equal(err.code, EINVAL);
    assert_non_null(strstr(err.msg, "encoder.layer.0.attention.output.dense.bias"));
    free(bad);
    assert_null(model_shard_decode(bytes, len - 4, &err));
    assert_int_equal(err.code, EINVAL);
    model_shard_destroy(s);
}

static void test_forward_bad_args(void **state)
{
    (void)state;
    need_model();
    struct err err = {0};
    krn_backend_t *be = krn_backend_create("cpu", 1, &err);
    assert_non_null(be);
    model_shard_t *s2 = model_shard_extract(model, 2, 0, &err);
    assert_non_null(s2);
    assert_null(wrk_bert_create(be, s2, 4, 16, NULL, &err)); /* tp 2, no all-reduce */
    assert_int_equal(err.code, EINVAL);
    model_shard_destroy(s2);
    model_shard_t *s = model_shard_extract(model, 1, 0, &err);
    assert_non_null(s);
    assert_null(wrk_bert_create(be, s, 4, 513, NULL, &err)); /* over max_position */
    assert_int_equal(err.code, EINVAL);
    wrk_bert_t *m = wrk_bert_create(be, s, 2, 8, NULL, &err);
    assert_non_null(m);
    assert_int_equal(wrk_bert_dim(m), 384);
    int32_t ids[16] = {101, 7592, 102, 0, 101, 2088, 102, 0};
    int32_t mask[16] = {1, 1, 1, 0, 1, 1, 1, 0};
    float out[2 * 384];
    assert_int_equal(wrk_bert_forward(m, ids, mask, 2, 4, out, &err), 0);
    assert_int_equal(wrk_bert_forward(m, ids, mask, 3, 4, out, &err), -1); /* B > max_batch */
    assert_int_equal(err.code, EINVAL);
    assert_int_equal(wrk_bert_forward(m, ids, mask, 1, 9, out, &err), -1); /* T > max_len */
    assert_int_equal(err.code, EINVAL);
    ids[1] = 30522;
    assert_int_equal(wrk_bert_forward(m, ids, mask, 2, 4, out, &err), -1);
    assert_int_equal(err.code, EINVAL);
    assert_non_null(strstr(err.msg, "ids[0][1]"));
    ids[1] = 7592;
    int32_t zero[8] = {0};
    assert_int_equal(wrk_bert_forward(m, ids, zero, 2, 4, out, &err), -1);
    assert_int_equal(err.code, EINVAL);
    assert_int_equal(wrk_bert_forward(m, NULL, mask, 2, 4, out, &err), -1);
    wrk_bert_destroy(m);
    wrk_bert_destroy(NULL);
    model_shard_destroy(s);
    krn_backend_destroy(be);
}

/* ---- a tiny synthetic BERT directory: the architecture check refuses what does not fit ---- */

#define TINY_H 64
#define TINY_I 128
#define TINY_V 40
#define TINY_P 16

static const char *const tiny_layer[] = {
    "attention.self.query.weight", "attention.self.query.bias", "attention.self.key.weight",
    "attention.self.key.bias", "attention.self.value.weight", "attention.self.value.bias",
    "attention.output.dense.weight", "attention.output.dense.bias",
    "attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias",
    "intermediate.dense.weight", "intermediate.dense.bias", "output.dense.weight",
    "output.dense.bias", "output.LayerNorm.weight", "output.LayerNorm.bias"};
/* shapes, in tiny_layer order: dims (0 = absent) */
static const int64_t tiny_layer_shape[][2] = {
    {TINY_H, TINY_H}, {TINY_H, 0}, {TINY_H, TINY_H}, {TINY_H, 0}, {TINY_H, TINY_H},
    {TINY_H, 0}, {TINY_H, TINY_H}, {TINY_H, 0}, {TINY_H, 0}, {TINY_H, 0},
    {TINY_I, TINY_H}, {TINY_I, 0}, {TINY_H, TINY_I}, {TINY_H, 0}, {TINY_H, 0}, {TINY_H, 0}};

enum tiny_fault { TINY_OK, TINY_MISSING, TINY_EXTRA, TINY_DTYPE, TINY_SHAPE, TINY_POS_IDS,
                  TINY_VOCAB_SHORT, TINY_VOCAB_NO_CLS, TINY_VOCAB_UTF8, TINY_VOCAB_FIFO };

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* Write a 1-layer BERT (hidden 64, 2 heads) into dir with the given fault. */
static void tiny_write(const char *dir, enum tiny_fault fault, const char *config)
{
    char path[256];
    mkdir(dir, 0755);
    static const char cfg_ok[] =
        "{\"model_type\":\"bert\",\"hidden_act\":\"gelu\",\"hidden_size\":64,"
        "\"num_attention_heads\":2,\"num_hidden_layers\":1,\"intermediate_size\":128,"
        "\"vocab_size\":40,\"max_position_embeddings\":16,\"type_vocab_size\":2,"
        "\"layer_norm_eps\":1e-12,\"position_embedding_type\":\"absolute\"}";
    const char *cfg = config != NULL ? config : cfg_ok;
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_file(path, cfg, strlen(cfg));
    /* TINY_V tokens: the four the tokeniser needs, then made-up ones */
    char vocab[TINY_V * 16];
    size_t vl = 0;
    for (int i = 0; i < TINY_V - (fault == TINY_VOCAB_SHORT); i++) {
        static const char *const sp[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]"};
        if (i < 4 && !(fault == TINY_VOCAB_NO_CLS && i == 2))
            vl += (size_t)snprintf(vocab + vl, sizeof vocab - vl, "%s\n", sp[i]);
        else if (fault == TINY_VOCAB_UTF8 && i == 7)
            vl += (size_t)snprintf(vocab + vl, sizeof vocab - vl, "caf\xe9\n"); /* Latin-1 */
        else
            vl += (size_t)snprintf(vocab + vl, sizeof vocab - vl, "tok%d\n", i);
    }
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    if (fault == TINY_VOCAB_FIFO)
        assert_int_equal(mkfifo(path, 0600), 0); /* reading it would block for ever */
    else
        write_file(path, vocab, vl);

    static float zeros[TINY_V * TINY_H + TINY_I * TINY_H];
    static int64_t pos_ids[TINY_P];
    for (int i = 0; i < TINY_P; i++)
        pos_ids[i] = i;
    if (fault == TINY_POS_IDS)
        pos_ids[3] = 4;
    struct st_tensor_in t[32];
    char names[32][96];
    int n = 0;
    const struct { const char *name; int64_t d0, d1; } top[] = {
        {"embeddings.word_embeddings.weight", TINY_V, TINY_H},
        {"embeddings.position_embeddings.weight", TINY_P, TINY_H},
        {"embeddings.token_type_embeddings.weight", 2, TINY_H},
        {"embeddings.LayerNorm.weight", TINY_H, 0},
        {"embeddings.LayerNorm.bias", TINY_H, 0}};
    for (size_t i = 0; i < 5; i++) {
        t[n] = (struct st_tensor_in){top[i].name, ST_DTYPE_F32, top[i].d1 ? 2 : 1,
                                     {top[i].d0, top[i].d1}, zeros};
        n++;
    }
    t[n++] = (struct st_tensor_in){"embeddings.position_ids", ST_DTYPE_I64, 2, {1, TINY_P},
                                   pos_ids};
    for (size_t i = 0; i < sizeof tiny_layer / sizeof tiny_layer[0]; i++) {
        if (fault == TINY_MISSING && i == 9)
            continue;
        snprintf(names[n], sizeof names[n], "encoder.layer.0.%s", tiny_layer[i]);
        t[n] = (struct st_tensor_in){names[n], ST_DTYPE_F32, tiny_layer_shape[i][1] ? 2 : 1,
                                     {tiny_layer_shape[i][0], tiny_layer_shape[i][1]}, zeros};
        if (fault == TINY_DTYPE && i == 4)
            t[n].dtype = ST_DTYPE_F16;
        if (fault == TINY_SHAPE && i == 12)
            t[n].shape[1] = TINY_I + 1;
        n++;
    }
    if (fault == TINY_EXTRA)
        t[n++] = (struct st_tensor_in){"encoder.layer.1.attention.self.query.weight",
                                       ST_DTYPE_F32, 2, {TINY_H, TINY_H}, zeros};
    void *img;
    size_t len;
    struct err err = {0};
    assert_int_equal(st_buf_encode(t, (size_t)n, NULL, 0, &img, &len, &err), 0);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_file(path, img, len);
    free(img);
}

static void tiny_refused(enum tiny_fault fault, const char *config, int code, const char *needle)
{
    char dir[] = "/tmp/test_bert_tinyXXXXXX";
    assert_non_null(mkdtemp(dir));
    tiny_write(dir, fault, config);
    struct err err = {0};
    model_t *m = model_open(dir, &err);
    if (code == 0) {
        if (m == NULL)
            fail_msg("tiny model: %s", err.msg);
        model_destroy(m);
    } else {
        assert_null(m);
        assert_int_equal(err.code, code);
        if (strstr(err.msg, needle) == NULL)
            fail_msg("expected \"%s\" in: %s", needle, err.msg);
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_arch_check(void **state)
{
    (void)state;
    tiny_refused(TINY_OK, NULL, 0, NULL);
    tiny_refused(TINY_MISSING, NULL, EINVAL,
                 "tensor 'encoder.layer.0.attention.output.LayerNorm.bias': missing");
    tiny_refused(TINY_EXTRA, NULL, EINVAL,
                 "tensor 'encoder.layer.1.attention.self.query.weight': unexpected");
    tiny_refused(TINY_DTYPE, NULL, EINVAL,
                 "tensor 'encoder.layer.0.attention.self.value.weight': dtype F16, expected F32");
    tiny_refused(TINY_SHAPE, NULL, EINVAL,
                 "tensor 'encoder.layer.0.output.dense.weight': shape [64, 129], "
                 "expected [64, 128]");
    tiny_refused(TINY_POS_IDS, NULL, EINVAL, "embeddings.position_ids");
    tiny_refused(TINY_VOCAB_SHORT, NULL, EINVAL, "39 tokens, config.json's vocab_size is 40");
    tiny_refused(TINY_VOCAB_NO_CLS, NULL, EINVAL, "no [CLS] token");
    tiny_refused(TINY_VOCAB_UTF8, NULL, EINVAL, "vocab.txt:8: not valid UTF-8");
    tiny_refused(TINY_VOCAB_FIFO, NULL, EINVAL, "vocab.txt: not a regular file");
    tiny_refused(TINY_OK,
                 "{\"model_type\":\"bert\",\"hidden_act\":\"relu\",\"hidden_size\":64,"
                 "\"num_attention_heads\":2,\"num_hidden_layers\":1,\"intermediate_size\":128,"
                 "\"vocab_size\":40,\"max_position_embeddings\":16,\"type_vocab_size\":2,"
                 "\"layer_norm_eps\":1e-12}", ENOTSUP, "hidden_act");
    tiny_refused(TINY_OK,
                 "{\"model_type\":\"bert\",\"hidden_act\":\"gelu\",\"hidden_size\":64,"
                 "\"num_attention_heads\":2,\"intermediate_size\":128,"
                 "\"vocab_size\":40,\"max_position_embeddings\":16,\"type_vocab_size\":2,"
                 "\"layer_norm_eps\":1e-12}", EINVAL, "num_hidden_layers: missing");
    tiny_refused(TINY_OK,
                 "{\"model_type\":\"bert\",\"hidden_act\":\"gelu\",\"hidden_size\":64,"
                 "\"num_attention_heads\":3,\"num_hidden_layers\":1,\"intermediate_size\":128,"
                 "\"vocab_size\":40,\"max_position_embeddings\":16,\"type_vocab_size\":2,"
                 "\"layer_norm_eps\":1e-12}", EINVAL, "not a multiple");
    tiny_refused(TINY_OK, "{\"model_type\":\"gpt2\"}", ENOTSUP, "model_type");
    tiny_refused(TINY_OK, "not json", EINVAL, "config.json");
    struct err err = {0};
    assert_null(model_open("/nonexistent/model", &err));
    assert_int_equal(err.code, ENOENT);
    model_destroy(NULL);
    model_shard_destroy(NULL);
}

static int group_teardown(void **state)
{
    (void)state;
    wrk_tok_destroy(tok);
    model_destroy(model);
    free(golden);
    free(golden_ntok);
    free(sent_buf);
    free(sent);
    free(sent_len);
    free(order);
    for (int bi = 0; batches != NULL && bi < n_batches; bi++) {
        free(batches[bi].ids);
        free(batches[bi].mask);
    }
    free(batches);
    free(emb_tp1);
    free(emb_tp2);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arch_check),
        cmocka_unit_test(test_model_open_and_manifest),
        cmocka_unit_test(test_shard_layout),
        cmocka_unit_test(test_forward_bad_args),
        cmocka_unit_test(test_golden_tp1),
        cmocka_unit_test(test_golden_cuda),
        cmocka_unit_test(test_tp2_equals_tp1),
        cmocka_unit_test(test_tp3_equals_tp1),
        cmocka_unit_test(test_tp2_zeromq_staged_cpu),
        cmocka_unit_test(test_tp2_zeromq_staged_cuda),
    };
    return cmocka_run_group_tests_name("bert", tests, NULL, group_teardown);
}
