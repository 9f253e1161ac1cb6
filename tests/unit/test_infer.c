/* test_infer.c: the infer rank runner (worker/wrk_infer.c) as separate processes, TP=1/2/3.
 *
 * Each rank is this binary re-executed as `test_infer --run-infer SPEC.json`
 * (main() hands that to wrk_infer_main(), as moat-worker does), with
 * OPENBLAS_NUM_THREADS=1 and "threads": 1, its stdout and stderr in files.
 * Shards are extracted from the real model into a temp dir; the documents are
 * the first 40 lines of tests/data/emb/sentences.txt plus an empty and an
 * over-long one. Needs $MOAT_MODEL_DIR (default build/model): FAILS, saying to
 * run scripts/fetch-model.sh build/model, when it is missing.
 * The all-reduce path a group picks (worker/wrk_arpath.h) is read from each
 * rank's stdout ("allreduce") and its stderr log line; the GPU case (TP=2 with
 * both ranks on cuda device 0: ZeroMQ with staging, since NCCL cannot share a
 * GPU) skips, with the reason, without a device.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/tp_fixture.h"
#include <jansson.h>

#include "kernels/krn.h"
#include "worker/wrk_infer.h"
#include "shared/model.h"

#define N_LINES 40
#define N_DOCS (N_LINES + 2)
#define DIM 384
#define TP_DIFF_MAX 1e-5
#define GOLDEN_DIFF_MAX 1e-4
#define RUN_TIMEOUT_S 120

static char dir[] = "/tmp/test_infer_XXXXXX";
static char self[4096];
static char vocab[4096];
static char shard_path[4][4][4200]; /* [tp][rank] */
static char shard_sha[4][4][65];
static float *tp1_out;            /* [N_DOCS, DIM] */
static int run_no;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const char *model_dir(void)
{
    const char *d = getenv("MOAT_MODEL_DIR");
    return d != NULL && d[0] != '\0' ? d : "build/model";
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)sz + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)sz, f), (size_t)sz);
    buf[sz] = '\0';
    fclose(f);
    if (n != NULL)
        *n = (size_t)sz;
    return buf;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    fclose(f);
}

/* docs.json: N_LINES real sentences, "", and a document far over max_len. */
static void write_docs(const char *path, int change_one)
{
    char *txt = slurp("tests/data/emb/sentences.txt", NULL);
    if (txt == NULL)
        fail_msg("tests/data/emb/sentences.txt: %s (run from the repository root)",
                 strerror(errno));
    json_t *a = json_array();
    char *p = txt;
    for (int i = 0; i < N_LINES; i++) {
        char *nl = strchr(p, '\n');
        assert_non_null(nl);
        json_array_append_new(a, json_stringn(p, (size_t)(nl - p)));
        p = nl + 1;
    }
    json_array_append_new(a, json_string(""));
    char *longdoc = malloc(20000);
    assert_non_null(longdoc);
    longdoc[0] = '\0';
    for (int i = 0; i < 600; i++)
        strcat(longdoc, i % 2 ? "tensor " : "parallel ");
    json_array_append_new(a, json_string(longdoc));
    free(longdoc);
    if (change_one)
        json_array_set_new(a, 3, json_string("a different document on one rank"));
    assert_int_equal(json_dump_file(a, path, JSON_COMPACT), 0);
    json_decref(a);
    free(txt);
}

static int group_setup(void **state)
{
    (void)state;
    struct err err = {0};
    struct stat sb;
    if (stat(model_dir(), &sb) != 0) {
        fprintf(stderr, "model directory %s is missing: run scripts/fetch-model.sh %s (or set "
                "MOAT_MODEL_DIR)\n", model_dir(), model_dir());
        return -1;
    }
    model_t *m = model_open(model_dir(), &err);
    if (m == NULL) {
        fprintf(stderr, "model_open(%s): %s (run scripts/fetch-model.sh %s)\n", model_dir(),
                err.msg, model_dir());
        return -1;
    }
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(vocab, sizeof vocab, "%s", model_vocab_path(m));
    if (vocab[0] != '/') {
        char cwd[2048];
        if (getcwd(cwd, sizeof cwd) == NULL)
            return -1;
        snprintf(vocab, sizeof vocab, "%s/%s", cwd, model_vocab_path(m));
    }
    for (int tp = 1; tp <= 3; tp++)
        for (int r = 0; r < tp; r++) {
            model_shard_t *s = model_shard_extract(m, tp, r, &err);
            if (s == NULL) {
                fprintf(stderr, "shard %d/%d: %s\n", r, tp, err.msg);
                return -1;
            }
            size_t len;
            const void *bytes = model_shard_bytes(s, &len);
            snprintf(shard_path[tp][r], sizeof shard_path[tp][r], "%s/shard-tp%d-r%d", dir, tp,
                     r);
            FILE *f = fopen(shard_path[tp][r], "wb");
            if (f == NULL || fwrite(bytes, 1, len, f) != len || fclose(f) != 0)
                return -1;
            model_shard_sha256(s, shard_sha[tp][r]);
            model_shard_destroy(s);
        }
    model_destroy(m);
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    setenv("OMP_NUM_THREADS", "1", 1);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    free(tp1_out);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (dir[sizeof dir - 2] != 'X')
        return system(cmd) == 0 ? 0 : -1;
    return 0;
}

/* ---- running ranks ---- */

struct rank_run {
    char spec[4300], out[4300], stdout_path[4300], stderr_path[4300];
    pid_t pid;
    int status; /* exit status, or -1 when killed or not run */
    char *so, *se;
};

static pid_t spawn(struct rank_run *r)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        FILE *o = freopen(r->stdout_path, "w", stdout);
        FILE *e = freopen(r->stderr_path, "w", stderr);
        if (o == NULL || e == NULL)
            _exit(99);
        char *argv[] = {self, "--run-infer", r->spec, NULL};
        execv(self, argv);
        _exit(98);
    }
    return pid;
}

/* Write rank r's spec: the common fields, then extra (a JSON object's members
 * as text, "" for none) merged in; with raw != NULL the spec is raw instead. */
static void spec_write(struct rank_run *rr, int tp, int r, const char *ep, const char *docs,
                       const char *extra, const char *raw)
{
    int n = ++run_no;
    snprintf(rr->spec, sizeof rr->spec, "%s/spec-%d.json", dir, n);
    snprintf(rr->out, sizeof rr->out, "%s/out-%d.f32", dir, n);
    snprintf(rr->stdout_path, sizeof rr->stdout_path, "%s/stdout-%d", dir, n);
    snprintf(rr->stderr_path, sizeof rr->stderr_path, "%s/stderr-%d", dir, n);
    if (raw != NULL) {
        write_text(rr->spec, raw);
        return;
    }
    json_t *o = json_pack("{s:i, s:i, s:i, s:i, s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:i, "
                          "s:i, s:f}",
                          "job", 12, "task", 0, "attempt", 1, "rank", r, "tp", tp, "shard",
                          shard_path[tp][r], "shard_sha256", shard_sha[tp][r], "vocab", vocab,
                          "input", docs, "output", rr->out, "backend", "cpu", "threads", 1,
                          "max_len", 256, "batch", 16, "comm_timeout", 20.0);
    assert_non_null(o);
    if (ep != NULL) {
        /* the attempt's TP link keys, as the controller's dispatch gives them */
        json_t *pubs = json_array();
        for (int k = 0; k < tp; k++)
            json_array_append_new(pubs, json_string(tp_keys("infer", k)->publics[k]));
        json_object_set_new(o, "comm", json_string(ep));
        json_object_set_new(o, "comm_key", json_string(tp_keys("infer", r)->secret));
        json_object_set_new(o, "comm_keys", pubs);
    }
    if (extra != NULL && extra[0] != '\0') {
        json_error_t je;
        json_t *x = json_loads(extra, 0, &je);
        assert_non_null(x);
        json_object_update(o, x);
        json_decref(x);
    }
    assert_int_equal(json_dump_file(o, rr->spec, JSON_COMPACT), 0);
    json_decref(o);
}

/* Run the prepared ranks concurrently; wait (bounded) and collect outputs. */
static double run_ranks(struct rank_run *rr, int n)
{
    double t0 = now_s();
    for (int i = 0; i < n; i++)
        rr[i].pid = spawn(&rr[i]);
    for (int i = 0; i < n; i++) {
        int st = 0;
        for (;;) {
            pid_t w = waitpid(rr[i].pid, &st, WNOHANG);
            if (w == rr[i].pid)
                break;
            if (now_s() - t0 > RUN_TIMEOUT_S) {
                for (int j = 0; j < n; j++)
                    kill(rr[j].pid, SIGKILL);
                waitpid(rr[i].pid, &st, 0);
                break;
            }
            usleep(5000);
        }
        rr[i].status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        rr[i].so = slurp(rr[i].stdout_path, NULL);
        rr[i].se = slurp(rr[i].stderr_path, NULL);
    }
    return now_s() - t0;
}

static void runs_free(struct rank_run *rr, int n)
{
    for (int i = 0; i < n; i++) {
        free(rr[i].so);
        free(rr[i].se);
    }
}

static void expect_fail(const struct rank_run *r, int status, const char *needle)
{
    if (r->status != status || r->se == NULL || strstr(r->se, needle) == NULL
        || strncmp(r->se, "moat-infer: ", 12) != 0 || strchr(r->se, '\n') != r->se + strlen(r->se) - 1)
        fail_msg("expected exit %d and one stderr line with \"%s\"; got exit %d, stderr: %s",
                 status, needle, r->status, r->se != NULL ? r->se : "(none)");
    assert_true(r->so == NULL || r->so[0] == '\0');
}

/* Read rank 0's output [N_DOCS, DIM]; caller frees. */
static float *read_out(const struct rank_run *r)
{
    size_t n;
    float *e = (float *)slurp(r->out, &n);
    if (e == NULL)
        fail_msg("%s: %s; stderr: %s", r->out, strerror(errno), r->se);
    assert_int_equal(n, (size_t)N_DOCS * DIM * sizeof(float));
    return e;
}

/* ar: the all-reduce path the rank must report ("none", "zeromq", ...). */
static void check_stats(const struct rank_run *r, int tp, int rank, const char *ar)
{
    json_error_t je;
    json_t *o = json_loads(r->so, 0, &je);
    if (o == NULL)
        fail_msg("stdout is not one JSON line: %s", r->so);
    assert_int_equal(json_integer_value(json_object_get(o, "docs")), N_DOCS);
    assert_int_equal(json_integer_value(json_object_get(o, "rank")), rank);
    assert_int_equal(json_integer_value(json_object_get(o, "tp")), tp);
    assert_true(json_integer_value(json_object_get(o, "tokens")) > 2 * N_DOCS);
    assert_true(json_is_number(json_object_get(o, "seconds")));
    assert_true(json_number_value(json_object_get(o, "docs_per_s")) > 0);
    const char *got = json_string_value(json_object_get(o, "allreduce"));
    if (got == NULL || strcmp(got, ar) != 0)
        fail_msg("rank %d: allreduce %s, expected %s", rank, got ? got : "(missing)", ar);
    json_decref(o);
    /* a group logs its choice, with the reason, on one stderr line */
    char line[64];
    snprintf(line, sizeof line, "moat-infer: all-reduce: %s (", ar);
    if (tp > 1 && (r->se == NULL || strstr(r->se, line) == NULL))
        fail_msg("rank %d: no \"%s...\" on stderr: %s", rank, line, r->se ? r->se : "");
    if (tp == 1)
        assert_true(r->se == NULL || r->se[0] == '\0');
}

/* Run a TP group of tp processes on the documents, each rank's spec with
 * extra merged in; each must report all-reduce path ar. Returns rank 0's output. */
static float *run_group_ex(int tp, const char *extra, const char *ar, double *seconds)
{
    char docs[4200], ep[64];
    snprintf(docs, sizeof docs, "%s/docs.json", dir);
    write_docs(docs, 0);
    tp_free_endpoint(ep, sizeof ep);
    struct rank_run rr[4];
    for (int r = 0; r < tp; r++)
        spec_write(&rr[r], tp, r, tp > 1 ? ep : NULL, docs, extra, NULL);
    *seconds = run_ranks(rr, tp);
    for (int r = 0; r < tp; r++) {
        if (rr[r].status != 0)
            fail_msg("tp %d rank %d: exit %d: %s", tp, r, rr[r].status, rr[r].se);
        check_stats(&rr[r], tp, r, ar);
        struct stat sb;
        if (r > 0) /* only rank 0 writes */
            assert_int_not_equal(stat(rr[r].out, &sb), 0);
        char tmp[4400];
        snprintf(tmp, sizeof tmp, "%s.tmp", rr[r].out);
        assert_int_not_equal(stat(tmp, &sb), 0);
    }
    print_message("tp=%d rank 0: %s", tp, rr[0].so);
    float *e = read_out(&rr[0]);
    runs_free(rr, tp);
    return e;
}

static float *run_group(int tp, double *seconds)
{
    return run_group_ex(tp, "", tp > 1 ? "zeromq" : "none", seconds);
}

static void need_tp1(void)
{
    if (tp1_out != NULL)
        return;
    double t;
    tp1_out = run_group(1, &t);
    /* rows are unit vectors, and the real sentences match the golden vectors */
    size_t n;
    float *golden = (float *)slurp("tests/data/emb/golden.f32", &n);
    assert_non_null(golden);
    assert_true(n >= (size_t)N_LINES * DIM * sizeof(float));
    double max_diff = 0;
    for (int i = 0; i < N_DOCS; i++) {
        double nn = 0;
        for (int j = 0; j < DIM; j++) {
            float v = tp1_out[(size_t)i * DIM + j];
            nn += (double)v * v;
            if (i < N_LINES) {
                double d = fabs((double)v - golden[(size_t)i * DIM + j]);
                max_diff = d > max_diff ? d : max_diff;
            }
        }
        assert_true(fabs(nn - 1.0) < 1e-4);
    }
    free(golden);
    print_message("tp=1: %d docs, max abs diff to sentence-transformers %.3g\n", N_DOCS,
                  max_diff);
    assert_true(max_diff <= GOLDEN_DIFF_MAX);
}

/* A group of tp ranks (spec extra, path ar) against TP=1, within max. */
static void group_equals_tp1(int tp, const char *extra, const char *ar, double max)
{
    need_tp1();
    double t;
    float *e = run_group_ex(tp, extra, ar, &t);
    double max_diff = 0;
    for (size_t i = 0; i < (size_t)N_DOCS * DIM; i++) {
        double d = fabs((double)e[i] - tp1_out[i]);
        if (!(d <= max_diff))
            max_diff = d;
    }
    print_message("tp=%d (%d processes, all-reduce %s%s%s) vs tp=1: max abs diff %.3g over %d "
                  "docs, %.2f s\n", tp, tp, ar, extra[0] ? ", spec " : "", extra, max_diff,
                  N_DOCS, t);
    assert_true(max_diff <= max);
    free(e);
}

static void tp_equals_tp1(int tp)
{
    group_equals_tp1(tp, "", "zeromq", TP_DIFF_MAX);
}

static void test_tp1(void **state)
{
    (void)state;
    need_tp1();
}

static void test_tp2_equals_tp1(void **state)
{
    (void)state;
    tp_equals_tp1(2);
}

static void test_tp3_equals_tp1(void **state)
{
    (void)state;
    tp_equals_tp1(3);
}

/* ---- failures: one line on stderr, exit 2 (spec) or 1 ---- */

static void one_rank(const char *extra, const char *raw, const char *docs_text, int status,
                     const char *needle)
{
    char docs[4200];
    snprintf(docs, sizeof docs, "%s/docs-%d.json", dir, run_no + 1);
    if (docs_text != NULL)
        write_text(docs, docs_text);
    else
        write_docs(docs, 0);
    struct rank_run rr;
    spec_write(&rr, 1, 0, NULL, docs, extra, raw);
    run_ranks(&rr, 1);
    expect_fail(&rr, status, needle);
    struct stat sb;
    assert_int_not_equal(stat(rr.out, &sb), 0); /* no output on failure */
    runs_free(&rr, 1);
}

static void test_bad_spec(void **state)
{
    (void)state;
    one_rank(NULL, "not json", NULL, 2, "moat-infer: spec:");
    one_rank(NULL, "[1, 2]", NULL, 2, "not a JSON object");
    one_rank(NULL, "{\"job\": 1}", NULL, 2, "task: missing");
    one_rank("{\"color\": \"blue\"}", NULL, NULL, 2, "color: unknown key");
    one_rank("{\"rank\": 1}", NULL, NULL, 2, "rank: 1 outside [0, 0]");
    one_rank("{\"tp\": 0}", NULL, NULL, 2, "tp: 0 outside");
    one_rank("{\"max_len\": 1}", NULL, NULL, 2, "max_len");
    one_rank("{\"batch\": \"32\"}", NULL, NULL, 2, "batch: not an integer");
    one_rank("{\"backend\": \"tpu\"}", NULL, NULL, 2, "backend: 'tpu'");
    one_rank("{\"shard_sha256\": \"abc\"}", NULL, NULL, 2, "shard_sha256: not 64 hex");
    one_rank("{\"comm_timeout\": -1}", NULL, NULL, 2, "comm_timeout");
    one_rank("{\"tp\": 2}", NULL, NULL, 2, "comm: missing");
    one_rank("{\"tp\": 2, \"comm\": \"tcp://127.0.0.1:1\"}", NULL, NULL, 2, "comm_key: missing");
    one_rank("{\"tp\": 2, \"comm\": \"tcp://127.0.0.1:1\", \"comm_key\": \"k\"}", NULL, NULL, 2,
             "comm_key: not a CURVE key (40 Z85 characters)");
    char keyed[400];
    snprintf(keyed, sizeof keyed,
             "{\"tp\": 2, \"comm\": \"tcp://127.0.0.1:1\", \"comm_key\": \"%s\", "
             "\"comm_keys\": [\"a\"]}", tp_keys("infer", 0)->secret);
    one_rank(keyed, NULL, NULL, 2, "comm_keys: not an array of 2 public keys");
    snprintf(keyed, sizeof keyed,
             "{\"tp\": 2, \"comm\": \"tcp://127.0.0.1:1\", \"comm_key\": \"%s\", "
             "\"comm_keys\": [\"%s\", \"%s\"]}", tp_keys("infer", 0)->secret,
             tp_keys("infer", 0)->publics[0], "0123456789012345678901234567890123456789~");
    one_rank(keyed, NULL, NULL, 2, "comm_keys[1]: not a CURVE key");
    one_rank("{\"allreduce\": \"mpi\"}", NULL, NULL, 2, "allreduce 'mpi': expected auto, nccl");
    one_rank("{\"allreduce\": 1}", NULL, NULL, 2, "allreduce: not a non-empty string");
    one_rank("{\"allreduce\": \"nccl\"}", NULL, NULL, 2, "allreduce: nccl needs backend cuda");
    /* and the usage line, in process */
    char *argv[] = {"--run-infer", NULL};
    assert_int_equal(wrk_infer_main(1, argv), 2);
}

static void test_bad_shard(void **state)
{
    (void)state;
    char extra[9000];
    snprintf(extra, sizeof extra, "{\"shard_sha256\": \"%s\"}", shard_sha[2][0]);
    one_rank(extra, NULL, NULL, 1, "moat-infer: shard:");
    one_rank(extra, NULL, NULL, 1, "SHA-256");
    /* the right hash of the wrong rank's shard */
    snprintf(extra, sizeof extra, "{\"shard\": \"%s\", \"shard_sha256\": \"%s\"}",
             shard_path[2][0], shard_sha[2][0]);
    one_rank(extra, NULL, NULL, 1, "shard of rank 0 of tp 2, spec says rank 0 of tp 1");
    /* not a shard at all */
    char junk[4300];
    snprintf(junk, sizeof junk, "%s/junk", dir);
    write_text(junk, "this is not a safetensors file");
    snprintf(extra, sizeof extra, "{\"shard\": \"%s\"}", junk);
    one_rank(extra, NULL, NULL, 1, "moat-infer: shard:");
    one_rank("{\"shard\": \"/nonexistent/shard\"}", NULL, NULL, 1, "/nonexistent/shard");
    one_rank("{\"vocab\": \"/nonexistent/vocab.txt\"}", NULL, NULL, 1, "moat-infer: vocab:");
}

static void test_bad_input(void **state)
{
    (void)state;
    one_rank("", NULL, "{\"text\": \"x\"}", 1, "moat-infer: input: ");
    one_rank("", NULL, "[\"fine\", 7]", 1, "document 1: not a string");
    one_rank("", NULL, "[\"unterminated", 1, "moat-infer: input: ");
    one_rank("{\"input\": \"/nonexistent/docs.json\"}", NULL, NULL, 1, "moat-infer: input: ");
    one_rank("{\"output\": \"/nonexistent/dir/out.f32\"}", NULL, NULL, 1, "moat-infer: output: ");
}

static void test_empty_input(void **state)
{
    (void)state;
    char docs[4200];
    snprintf(docs, sizeof docs, "%s/empty.json", dir);
    write_text(docs, "[]");
    struct rank_run rr;
    spec_write(&rr, 1, 0, NULL, docs, "", NULL);
    run_ranks(&rr, 1);
    if (rr.status != 0)
        fail_msg("exit %d: %s", rr.status, rr.se);
    struct stat sb;
    assert_int_equal(stat(rr.out, &sb), 0);
    assert_int_equal(sb.st_size, 0);
    assert_non_null(strstr(rr.so, "\"docs\":0"));
    runs_free(&rr, 1);
}

/* Rank 1 of 2 never comes: rank 0 fails within comm_timeout, naming it. */
static void test_missing_rank(void **state)
{
    (void)state;
    char docs[4200], ep[64];
    snprintf(docs, sizeof docs, "%s/docs.json", dir);
    write_docs(docs, 0);
    tp_free_endpoint(ep, sizeof ep);
    struct rank_run rr;
    spec_write(&rr, 2, 0, ep, docs, "{\"comm_timeout\": 1}", NULL);
    double t = run_ranks(&rr, 1);
    expect_fail(&rr, 1, "moat-infer: comm: ");
    expect_fail(&rr, 1, "rank 1 missing");
    assert_true(t < 10);
    runs_free(&rr, 1);
}

/* Ranks given different documents: the digest check fails the group fast. */
static void test_ranks_disagree(void **state)
{
    (void)state;
    char docs0[4200], docs1[4200], ep[64];
    snprintf(docs0, sizeof docs0, "%s/docs.json", dir);
    snprintf(docs1, sizeof docs1, "%s/docs-changed.json", dir);
    write_docs(docs0, 0);
    write_docs(docs1, 1);
    tp_free_endpoint(ep, sizeof ep);
    struct rank_run rr[2];
    spec_write(&rr[0], 2, 0, ep, docs0, "", NULL);
    spec_write(&rr[1], 2, 1, ep, docs1, "", NULL);
    double t = run_ranks(rr, 2);
    expect_fail(&rr[1], 1, "tokens differ from rank 0's");
    expect_fail(&rr[0], 1, "rank 1 aborted");
    assert_true(t < 15); /* well under the 20 s comm_timeout */
    runs_free(rr, 2);
}

/* "allreduce": "zeromq" asked for explicitly on CPU ranks: the same path. */
static void test_tp2_zeromq_asked(void **state)
{
    (void)state;
    group_equals_tp1(2, "{\"allreduce\": \"zeromq\"}", "zeromq", TP_DIFF_MAX);
}

/* Ranks whose specs ask for different all-reduce paths fail together, fast,
 * naming both, before any NCCL set-up could go out of step. */
static void test_ranks_disagree_on_allreduce(void **state)
{
    (void)state;
    char docs[4200], ep[64];
    snprintf(docs, sizeof docs, "%s/docs.json", dir);
    write_docs(docs, 0);
    tp_free_endpoint(ep, sizeof ep);
    struct rank_run rr[2];
    spec_write(&rr[0], 2, 0, ep, docs, "", NULL);
    spec_write(&rr[1], 2, 1, ep, docs, "{\"allreduce\": \"zeromq\"}", NULL);
    double t = run_ranks(rr, 2);
    for (int r = 0; r < 2; r++)
        expect_fail(&rr[r], 1, "moat-infer: comm: allreduce: rank 0 asks for auto, rank 1 for "
                               "zeromq");
    assert_true(t < 15); /* well under the 20 s comm_timeout */
    runs_free(rr, 2);
}

/* TP=2 on one GPU: both ranks on cuda device 0 pick ZeroMQ with staging by
 * themselves (equal device UUIDs), and match the cpu TP=1 output; demanding
 * NCCL there fails on both ranks, naming the shared GPU. */
static void test_tp2_one_gpu(void **state)
{
    (void)state;
    if (krn_cuda_device_count() == 0) {
        print_message("skip: no CUDA device (or a build without CUDA)\n");
        skip();
    }
    group_equals_tp1(2, "{\"backend\": \"cuda\", \"device\": 0}", "zeromq-staged",
                     GOLDEN_DIFF_MAX);
    char docs[4200], ep[64];
    snprintf(docs, sizeof docs, "%s/docs.json", dir);
    tp_free_endpoint(ep, sizeof ep);
    struct rank_run rr[2];
    for (int r = 0; r < 2; r++)
        spec_write(&rr[r], 2, r, ep, docs,
                   "{\"backend\": \"cuda\", \"device\": 0, \"allreduce\": \"nccl\"}", NULL);
    run_ranks(rr, 2);
    for (int r = 0; r < 2; r++)
        expect_fail(&rr[r], 1, "moat-infer: comm: allreduce nccl: ");
    print_message("nccl demanded on one GPU: %s", rr[0].se);
    runs_free(rr, 2);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--run-infer") == 0)
        return wrk_infer_main(argc - 1, argv + 1);
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return 1;
    self[n] = '\0';
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_spec),
        cmocka_unit_test(test_bad_shard),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_empty_input),
        cmocka_unit_test(test_tp1),
        cmocka_unit_test(test_tp2_equals_tp1),
        cmocka_unit_test(test_tp3_equals_tp1),
        cmocka_unit_test(test_missing_rank),
        cmocka_unit_test(test_ranks_disagree),
        cmocka_unit_test(test_tp2_zeromq_asked),
        cmocka_unit_test(test_ranks_disagree_on_allreduce),
        cmocka_unit_test(test_tp2_one_gpu),
    };
    return cmocka_run_group_tests_name("infer", tests, group_setup, group_teardown);
}
