/* wrk_infer.c: the rank runner of an infer task: spec, shard check, tokenise, forward, output.
 *
 * Invariants: every rank of a group makes the same collective calls in the
 * same order (one broadcast; when tp > 1 and there are documents, one
 * all-gather that picks the all-reduce path, and NCCL's id broadcast when that
 * path is NCCL; then two all-reduces per layer per sub-batch), because every
 * rank derives its sub-batches from the same token ids (checked by the
 * broadcast digest) and every rank reaches the same path decision from the same
 * all-gathered table (worker/wrk_arpath.h). Once the comm handle exists, any
 * failure is passed to the group with wrk_comm_abort() before the process exits.
 */
#include "worker/wrk_infer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "kernels/krn.h"
#include "shared/err.h"
#include "shared/keys.h"
#include "worker/wrk_arpath.h"
#include "worker/wrk_bert.h"
#include "worker/wrk_comm.h"
#include "shared/model.h"
#include "worker/wrk_nccl.h"
#include "worker/wrk_stage.h"
#include "worker/wrk_tok.h"

#define SHARD_MAX ((int64_t)8 << 30)
#define DOCS_MAX 10000000

struct infer_spec {
    long long job, task, attempt;
    int rank, tp;
    const char *shard, *shard_sha256, *vocab, *vocab_sha256, *input, *output, *comm, *backend;
    const char *comm_key;                   /* this rank's CURVE secret key (tp > 1) */
    const char *comm_keys[WRK_COMM_TP_MAX]; /* every rank's public key (tp > 1) */
    double comm_timeout;
    int max_len, batch, threads, device;
    enum wrk_arpath allreduce; /* what the spec asks for (default auto) */
    json_t *root; /* owns the strings above */
};

/* The documents, tokenised: doc i's ids are ids[off[i] .. off[i] + len[i]). */
struct infer_docs {
    int n;
    int32_t *len;
    size_t *off;
    int32_t *ids;
    size_t n_ids, cap;
    int *order; /* doc indices sorted by len, stable */
    int longest;
};

struct infer_stats {
    int docs, batches;
    int64_t tokens;
    double seconds, setup_seconds;
    const char *allreduce; /* "none", "nccl", "zeromq" or "zeromq-staged" */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- spec ---- */

static const char *const spec_keys[] = {
    "job", "task", "attempt", "rank", "tp", "shard", "shard_sha256", "vocab", "vocab_sha256",
    "input", "output", "comm", "comm_key", "comm_keys", "comm_timeout", "max_len", "batch",
    "backend", "threads", "device", "allreduce"};

static int spec_int(json_t *o, const char *key, bool required, long long def, long long min,
                    long long max, long long *out, struct err *err)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL) {
        if (required)
            return err_set(err, EINVAL, "%s: missing", key);
        *out = def;
        return 0;
    }
    if (!json_is_integer(v))
        return err_set(err, EINVAL, "%s: not an integer", key);
    long long x = json_integer_value(v);
    if (x < min || x > max)
        return err_set(err, EINVAL, "%s: %lld outside [%lld, %lld]", key, x, min, max);
    *out = x;
    return 0;
}

static int spec_str(json_t *o, const char *key, bool required, const char *def, const char **out,
                    struct err *err)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL) {
        if (required)
            return err_set(err, EINVAL, "%s: missing", key);
        *out = def;
        return 0;
    }
    if (!json_is_string(v) || json_string_length(v) == 0
        || strlen(json_string_value(v)) != json_string_length(v))
        return err_set(err, EINVAL, "%s: not a non-empty string", key);
    *out = json_string_value(v);
    return 0;
}

static int spec_parse(const char *path, struct infer_spec *s, struct err *err)
{
    memset(s, 0, sizeof *s);
    json_error_t je;
    s->root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (s->root == NULL)
        return err_set(err, EINVAL, "%s: line %d: %s", path, je.line, je.text);
    json_t *o = s->root;
    if (!json_is_object(o))
        return err_set(err, EINVAL, "%s: not a JSON object", path);
    const char *key;
    json_t *val;
    json_object_foreach(o, key, val) {
        bool known = false;
        for (size_t i = 0; i < sizeof spec_keys / sizeof spec_keys[0]; i++)
            known = known || strcmp(key, spec_keys[i]) == 0;
        if (!known)
            return err_set(err, EINVAL, "%s: unknown key", key);
    }
    long long v;
    if (spec_int(o, "job", true, 0, 0, INT64_MAX, &s->job, err) != 0
        || spec_int(o, "task", true, 0, 0, INT64_MAX, &s->task, err) != 0
        || spec_int(o, "attempt", true, 0, 0, INT64_MAX, &s->attempt, err) != 0
        || spec_int(o, "tp", true, 0, 1, WRK_COMM_TP_MAX, &v, err) != 0)
        return -1;
    s->tp = (int)v;
    if (spec_int(o, "rank", true, 0, 0, s->tp - 1, &v, err) != 0)
        return -1;
    s->rank = (int)v;
    if (spec_int(o, "max_len", false, WRK_TOK_MAX_LEN_DEFAULT, 2, 512, &v, err) != 0)
        return -1;
    s->max_len = (int)v;
    if (spec_int(o, "batch", false, 32, 1, 1024, &v, err) != 0)
        return -1;
    s->batch = (int)v;
    if (spec_int(o, "threads", false, 0, 0, 4096, &v, err) != 0)
        return -1;
    s->threads = (int)v;
    if (spec_int(o, "device", false, 0, 0, 1024, &v, err) != 0)
        return -1;
    s->device = (int)v;
    if (spec_str(o, "shard", true, NULL, &s->shard, err) != 0
        || spec_str(o, "shard_sha256", true, NULL, &s->shard_sha256, err) != 0
        || spec_str(o, "vocab", true, NULL, &s->vocab, err) != 0
        || spec_str(o, "vocab_sha256", false, NULL, &s->vocab_sha256, err) != 0
        || spec_str(o, "input", true, NULL, &s->input, err) != 0
        || spec_str(o, "output", s->rank == 0, NULL, &s->output, err) != 0
        || spec_str(o, "comm", s->tp > 1, NULL, &s->comm, err) != 0
        || spec_str(o, "backend", false, "cpu", &s->backend, err) != 0)
        return -1;
    if (s->tp > 1 && spec_str(o, "comm_key", true, NULL, &s->comm_key, err) != 0)
        return -1;
    if (s->tp > 1 && !wrk_comm_key_valid(s->comm_key))
        return err_set(err, EINVAL, "comm_key: not a CURVE key (%d Z85 characters)",
                       WRK_COMM_KEY_LEN);
    json_t *keys = json_object_get(o, "comm_keys");
    if (s->tp > 1 && (!json_is_array(keys) || json_array_size(keys) != (size_t)s->tp))
        return err_set(err, EINVAL, "comm_keys: not an array of %d public keys", s->tp);
    for (int k = 0; s->tp > 1 && k < s->tp; k++)
        if (!wrk_comm_key_valid(s->comm_keys[k] = json_string_value(json_array_get(keys, (size_t)k))))
            return err_set(err, EINVAL, "comm_keys[%d]: not a CURVE key (%d Z85 characters)", k,
                           WRK_COMM_KEY_LEN);
    const char *ar;
    if (spec_str(o, "allreduce", false, "auto", &ar, err) != 0
        || wrk_arpath_parse(ar, &s->allreduce, err) != 0)
        return -1;
    if (strspn(s->shard_sha256, "0123456789abcdefABCDEF") != 64 || strlen(s->shard_sha256) != 64)
        return err_set(err, EINVAL, "shard_sha256: not 64 hex digits");
    if (strcmp(s->backend, "cpu") != 0 && strcmp(s->backend, "cuda") != 0
        && strcmp(s->backend, "ref") != 0)
        return err_set(err, EINVAL, "backend: '%s', expected cpu or cuda", s->backend);
    if (s->allreduce == WRK_ARPATH_NCCL && strcmp(s->backend, "cuda") != 0)
        return err_set(err, EINVAL, "allreduce: nccl needs backend cuda, not %s", s->backend);
    s->comm_timeout = 60.0;
    json_t *t = json_object_get(o, "comm_timeout");
    if (t != NULL) {
        if (!json_is_number(t) || !(json_number_value(t) > 0 && json_number_value(t) <= 86400))
            return err_set(err, EINVAL, "comm_timeout: not a number of seconds in (0, 86400]");
        s->comm_timeout = json_number_value(t);
    }
    return 0;
}

/* ---- shard ---- */

static model_shard_t *shard_load(const struct infer_spec *s, struct err *err)
{
    int fd = open(s->shard, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err_set(err, errno, "%s: %s", s->shard, strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size <= 0
        || sb.st_size > SHARD_MAX) {
        err_set(err, EINVAL, "%s: not a regular file of 1 byte to 8 GiB", s->shard);
        close(fd);
        return NULL;
    }
    void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        err_set(err, errno, "%s: mmap: %s", s->shard, strerror(errno));
        return NULL;
    }
    model_shard_t *sh = model_shard_decode(p, (size_t)sb.st_size, err);
    munmap(p, (size_t)sb.st_size);
    if (sh == NULL) {
        err_prefix(err, "%s", s->shard);
        return NULL;
    }
    char hex[65];
    model_shard_sha256(sh, hex);
    if (strcasecmp(hex, s->shard_sha256) != 0) {
        err_set(err, EINVAL, "SHA-256 %.16s..., expected %.16s... (%s)", hex, s->shard_sha256,
                s->shard);
        model_shard_destroy(sh);
        return NULL;
    }
    if (model_shard_tp(sh) != s->tp || model_shard_rank(sh) != s->rank) {
        err_set(err, EINVAL, "%s: shard of rank %d of tp %d, spec says rank %d of tp %d",
                s->shard, model_shard_rank(sh), model_shard_tp(sh), s->rank, s->tp);
        model_shard_destroy(sh);
        return NULL;
    }
    return sh;
}

/* ---- documents ---- */

static void docs_free(struct infer_docs *d)
{
    free(d->len);
    free(d->off);
    free(d->ids);
    free(d->order);
    memset(d, 0, sizeof *d);
}

static const struct infer_docs *sort_docs;
static int cmp_len(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    int32_t lx = sort_docs->len[x], ly = sort_docs->len[y];
    if (lx != ly)
        return lx < ly ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Read the input (a JSON array of strings) and tokenise every document. */
static int docs_load(const char *path, const wrk_tok_t *tok, int max_len, struct infer_docs *d,
                     struct err *err)
{
    json_error_t je;
    json_t *a = json_load_file(path, JSON_ALLOW_NUL, &je);
    if (a == NULL)
        return err_set(err, EINVAL, "%s: line %d: %s", path, je.line, je.text);
    int rc = -1;
    int32_t *scratch = malloc((size_t)max_len * sizeof *scratch);
    if (!json_is_array(a)) {
        err_set(err, EINVAL, "%s: not a JSON array of strings", path);
        goto out;
    }
    if (json_array_size(a) > DOCS_MAX) {
        err_set(err, EFBIG, "%s: %zu documents, at most %d", path, json_array_size(a), DOCS_MAX);
        goto out;
    }
    d->n = (int)json_array_size(a);
    d->len = calloc((size_t)d->n + 1, sizeof *d->len);
    d->off = calloc((size_t)d->n + 1, sizeof *d->off);
    d->order = calloc((size_t)d->n + 1, sizeof *d->order);
    d->cap = (size_t)d->n * 32 + 64;
    d->ids = malloc(d->cap * sizeof *d->ids);
    if (scratch == NULL || d->len == NULL || d->off == NULL || d->order == NULL
        || d->ids == NULL) {
        err_set(err, ENOMEM, "out of memory for %d documents", d->n);
        goto out;
    }
    for (int i = 0; i < d->n; i++) {
        json_t *v = json_array_get(a, (size_t)i);
        if (!json_is_string(v)) {
            err_set(err, EINVAL, "%s: document %d: not a string", path, i);
            goto out;
        }
        int32_t n = 0;
        if (wrk_tok_encode(tok, json_string_value(v), json_string_length(v), max_len, scratch,
                           &n, err) != 0) {
            err_prefix(err, "%s: document %d", path, i);
            goto out;
        }
        if (d->n_ids + (size_t)n > d->cap) {
            size_t cap = (d->cap + (size_t)n) * 2;
            int32_t *ids = realloc(d->ids, cap * sizeof *ids);
            if (ids == NULL) {
                err_set(err, ENOMEM, "out of memory for token ids");
                goto out;
            }
            d->ids = ids;
            d->cap = cap;
        }
        memcpy(d->ids + d->n_ids, scratch, (size_t)n * sizeof *scratch);
        d->off[i] = d->n_ids;
        d->len[i] = n;
        d->n_ids += (size_t)n;
        d->order[i] = i;
        if (n > d->longest)
            d->longest = n;
    }
    sort_docs = d;
    qsort(d->order, (size_t)d->n, sizeof *d->order, cmp_len);
    sort_docs = NULL;
    rc = 0;
out:
    free(scratch);
    json_decref(a);
    return rc;
}

/* SHA-256 of what the forward consumes: max_len, batch, then every document's
 * length and ids (little-endian int32, as in memory on the supported hosts). */
static void docs_digest(const struct infer_docs *d, int max_len, int batch,
                        unsigned char out[crypto_hash_sha256_BYTES])
{
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    int32_t head[3] = {max_len, batch, d->n};
    crypto_hash_sha256_update(&st, (const unsigned char *)head, sizeof head);
    crypto_hash_sha256_update(&st, (const unsigned char *)d->len, (size_t)d->n * sizeof *d->len);
    crypto_hash_sha256_update(&st, (const unsigned char *)d->ids, d->n_ids * sizeof *d->ids);
    crypto_hash_sha256_final(&st, out);
}

/* ---- output ---- */

static int output_write(const char *path, const float *emb, size_t n_floats, struct err *err)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return err_set(err, ENAMETOOLONG, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return err_set(err, errno, "%s: %s", tmp, strerror(errno));
    const char *p = (const char *)emb;
    size_t left = n_floats * sizeof(float);
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            err_set(err, w < 0 ? errno : EIO, "%s: write: %s", tmp,
                    w < 0 ? strerror(errno) : "no progress");
            goto fail;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0) {
        err_set(err, errno, "%s: fsync: %s", tmp, strerror(errno));
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        err_set(err, errno, "%s: close: %s", tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        err_set(err, errno, "rename %s: %s", path, strerror(errno));
        goto fail;
    }
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return -1;
}

/* ---- the run ---- */

struct infer_run {
    wrk_comm_t *comm;
    model_shard_t *shard;
    wrk_tok_t *tok;
    struct infer_docs docs;
    krn_backend_t *be;
    wrk_nccl_t *nccl;    /* the all-reduce of a group on the NCCL path; else NULL */
    wrk_stage_t *stage;  /* a GPU rank on the ZeroMQ path: the host staging; else NULL */
    wrk_bert_t *bert;
    int32_t *ids, *mask; /* [batch, longest] */
    float *emb;          /* [n_docs, dim] */
    float *out;          /* [batch, dim] */
};

/* Pick the group's all-reduce path together with the other ranks (tp > 1; r->be
 * open) and set it up: r->nccl on the NCCL path, r->stage for a GPU rank on the
 * ZeroMQ path, neither for a host rank. Logs the choice and its reason on one
 * stderr line. 0, or -1 with *what and err. */
static int select_allreduce(const struct infer_spec *s, struct infer_run *r,
                            struct infer_stats *st, const char **what, struct err *err)
{
    bool cuda = strcmp(s->backend, "cuda") == 0;
    struct wrk_arpath_rank me = {.gpu = cuda, .nccl = wrk_nccl_available(), .want = s->allreduce};
    if (cuda && krn_cuda_device_uuid(s->device, me.uuid, err) != 0)
        return -1; /* *what is still "backend" */
    *what = "comm";
    enum wrk_arpath path;
    char why[160];
    if (wrk_arpath_choose(r->comm, &me, &path, why, sizeof why, err) != 0)
        return -1;
    st->allreduce = path == WRK_ARPATH_NCCL ? "nccl" : cuda ? "zeromq-staged" : "zeromq";
    fprintf(stderr, "moat-infer: all-reduce: %s (%s)\n", st->allreduce, why);
    fflush(stderr);
    if (path == WRK_ARPATH_NCCL) {
        r->nccl = wrk_nccl_create(r->comm, r->be, s->tp, s->rank, err);
        return r->nccl != NULL ? 0 : -1;
    }
    if (cuda) {
        struct wrk_allreduce inner = wrk_comm_allreduce(r->comm);
        r->stage = wrk_stage_create(r->be, &inner, err);
        return r->stage != NULL ? 0 : -1;
    }
    return 0;
}

/* Run the rank; returns 0, or 1 / 2 (exit status) with *what and err set. */
static int infer_run(const struct infer_spec *s, struct infer_stats *st, const char **what,
                     struct err *err)
{
    struct infer_run r = {0};
    int status = 1;
    double t0 = now_s();
    char group[96];
    snprintf(group, sizeof group, "%lld.%lld.%lld", s->job, s->task, s->attempt);

    *what = "comm";
    struct wrk_comm_keys keys = {s->comm_key, s->comm_keys};
    r.comm = wrk_comm_create(s->comm, group, s->tp, s->rank, &keys, s->comm_timeout, err);
    if (r.comm == NULL)
        goto out;

    *what = "shard";
    r.shard = shard_load(s, err);
    if (r.shard == NULL)
        goto out;
    const struct model_config *cfg = model_shard_config(r.shard);
    if (s->max_len > cfg->max_position) {
        *what = "spec";
        status = 2;
        err_set(err, EINVAL, "max_len: %d over the model's max_position %d", s->max_len,
                cfg->max_position);
        goto out;
    }

    *what = "vocab";
    if (s->vocab_sha256) { /* verified at every load, like the shard */
        char hex[65];
        if (model_file_sha256(s->vocab, hex, NULL, err) != 0)
            goto out;
        if (strcasecmp(hex, s->vocab_sha256) != 0) {
            err_set(err, EINVAL, "SHA-256 %.16s..., expected %.16s... (%s)", hex, s->vocab_sha256,
                    s->vocab);
            goto out;
        }
    }
    r.tok = wrk_tok_create(s->vocab, err);
    if (r.tok == NULL)
        goto out;
    if (wrk_tok_vocab_size(r.tok) > cfg->vocab) {
        err_set(err, EINVAL, "%s: %d tokens, the model has %d", s->vocab,
                (int)wrk_tok_vocab_size(r.tok), cfg->vocab);
        goto out;
    }

    *what = "input";
    double t_tok = now_s();
    if (docs_load(s->input, r.tok, s->max_len, &r.docs, err) != 0)
        goto out;
    t_tok = now_s() - t_tok;
    unsigned char mine[crypto_hash_sha256_BYTES], root[crypto_hash_sha256_BYTES];
    docs_digest(&r.docs, s->max_len, s->batch, mine);
    memcpy(root, mine, sizeof root);
    if (wrk_comm_bcast(r.comm, root, sizeof root, err) != 0) {
        *what = "comm";
        goto out;
    }
    if (memcmp(root, mine, sizeof root) != 0) {
        err_set(err, EINVAL, "%s: tokens differ from rank 0's (input, vocab, max_len or batch)",
                s->input);
        goto out;
    }

    const int n = r.docs.n, dim = cfg->hidden;
    const int B = n < s->batch ? n : s->batch, T = r.docs.longest;
    r.emb = calloc((size_t)n * (size_t)dim + 1, sizeof *r.emb);
    r.out = malloc(((size_t)s->batch * (size_t)dim + 1) * sizeof *r.out);
    r.ids = malloc(((size_t)B * (size_t)T + 1) * sizeof *r.ids);
    r.mask = malloc(((size_t)B * (size_t)T + 1) * sizeof *r.mask);
    if (r.emb == NULL || r.out == NULL || r.ids == NULL || r.mask == NULL) {
        *what = "input";
        err_set(err, ENOMEM, "out of memory for %d documents", n);
        goto out;
    }
    if (n > 0) {
        *what = "backend";
        bool cuda = strcmp(s->backend, "cuda") == 0;
        r.be = krn_backend_create(s->backend, cuda ? s->device : s->threads, err);
        if (r.be == NULL)
            goto out;
        if (s->tp > 1 && select_allreduce(s, &r, st, what, err) != 0)
            goto out;
        *what = "model";
        struct wrk_allreduce ar = r.nccl    ? wrk_nccl_allreduce(r.nccl)
                                  : r.stage ? wrk_stage_allreduce(r.stage)
                                            : wrk_comm_allreduce(r.comm);
        r.bert = wrk_bert_create(r.be, r.shard, B, T, &ar, err);
        if (r.bert == NULL)
            goto out;
    }
    model_shard_destroy(r.shard);
    r.shard = NULL;
    /* tokenising counts as work, not set-up: it scales with the documents */
    st->setup_seconds = now_s() - t0 - t_tok;
    double t1 = now_s() - t_tok;
    *what = "forward";
    const int32_t pad = wrk_tok_pad_id(r.tok);
    for (int first = 0; first < n; first += s->batch) {
        int nb = n - first < s->batch ? n - first : s->batch, Tb = 0;
        for (int b = 0; b < nb; b++)
            if (r.docs.len[r.docs.order[first + b]] > Tb)
                Tb = r.docs.len[r.docs.order[first + b]];
        for (int b = 0; b < nb; b++) {
            int di = r.docs.order[first + b], L = r.docs.len[di];
            int32_t *ids = r.ids + (size_t)b * Tb, *mask = r.mask + (size_t)b * Tb;
            memcpy(ids, r.docs.ids + r.docs.off[di], (size_t)L * sizeof *ids);
            for (int t = 0; t < Tb; t++) {
                if (t >= L)
                    ids[t] = pad;
                mask[t] = t < L;
            }
            st->tokens += L;
        }
        if (wrk_bert_forward(r.bert, r.ids, r.mask, nb, Tb, r.out, err) != 0) {
            err_prefix(err, "documents %d..%d of the sorted batch", first, first + nb - 1);
            goto out;
        }
        for (int b = 0; b < nb; b++)
            memcpy(r.emb + (size_t)r.docs.order[first + b] * dim, r.out + (size_t)b * dim,
                   (size_t)dim * sizeof(float));
        st->batches++;
    }
    if (s->rank == 0) {
        *what = "output";
        if (output_write(s->output, r.emb, (size_t)n * (size_t)dim, err) != 0)
            goto out;
    }
    st->docs = n;
    st->seconds = now_s() - t1;
    status = 0;
out:
    if (status != 0)
        wrk_comm_abort(r.comm, err);
    wrk_bert_destroy(r.bert);
    wrk_stage_destroy(r.stage);
    wrk_nccl_destroy(r.nccl);
    krn_backend_destroy(r.be);
    model_shard_destroy(r.shard);
    wrk_tok_destroy(r.tok);
    docs_free(&r.docs);
    free(r.ids);
    free(r.mask);
    free(r.emb);
    free(r.out);
    wrk_comm_destroy(r.comm);
    return status;
}

int wrk_infer_main(int argc, char **argv)
{
    struct err err = {0};
    if (argc != 2 || argv[1] == NULL) {
        fprintf(stderr, "moat-infer: usage: moat-worker --run-infer SPEC.json\n");
        return 2;
    }
    /* The spec holds this rank's CURVE secret key (tp > 1). */
    if (keys_process_guard(&err) != 0) {
        fprintf(stderr, "moat-infer: %s\n", err.msg);
        return 1;
    }
    struct infer_spec spec;
    if (spec_parse(argv[1], &spec, &err) != 0) {
        fprintf(stderr, "moat-infer: spec: %s: %s\n", argv[1], err.msg);
        json_decref(spec.root);
        return 2;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "moat-infer: spec: libsodium initialisation failed\n");
        json_decref(spec.root);
        return 1;
    }
    struct infer_stats st = {.allreduce = "none"};
    const char *what = "spec";
    int status = infer_run(&spec, &st, &what, &err);
    if (status != 0) {
        fprintf(stderr, "moat-infer: %s: %s\n", what, err.msg);
    } else {
        double sec = st.seconds > 0 ? st.seconds : 1e-9;
        printf("{\"rank\":%d,\"tp\":%d,\"docs\":%d,\"tokens\":%" PRId64 ",\"batches\":%d,"
               "\"seconds\":%.6f,\"docs_per_s\":%.3f,\"tokens_per_s\":%.1f,"
               "\"setup_seconds\":%.6f,\"allreduce\":\"%s\"}\n",
               spec.rank, spec.tp, st.docs, st.tokens, st.batches, st.seconds, st.docs / sec,
               (double)st.tokens / sec, st.setup_seconds, st.allreduce);
        fflush(stdout);
    }
    json_decref(spec.root);
    return status;
}
