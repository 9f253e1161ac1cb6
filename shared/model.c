/* model.c: BERT model directory loading, architecture check, manifest, TP shards.
 *
 * One table (wrk_specs) says every tensor of the architecture: its shape in
 * config terms and how tensor parallelism splits it. The directory check, the
 * shard extraction and the shard decoder all derive their expectations from
 * it, so they cannot disagree.
 */
#include "shared/model.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <utf8proc.h>

#include "shared/sha256.h"

const char *const model_file_names[MODEL_FILES] = {"config.json", "vocab.txt",
                                                            "model.safetensors"};

#define MODEL_SHARD_FORMAT "moat-bert-shard-1"
#define WRK_NAME_MAX 96

/* Symbolic dimensions, resolved against a config. */
enum wrk_dim { DIM_NONE, DIM_1, DIM_H, DIM_I, DIM_V, DIM_POS, DIM_TV };

/* How a tensor is split across a TP group.
 *   ROWS:  dim 0 split in tp equal contiguous parts (column-parallel nn.Linear:
 *          output features; its bias too)
 *   COLS:  dim 1 split likewise (row-parallel nn.Linear: input features)
 *   RANK0: whole, held by rank 0 only (a row-parallel layer's bias)
 *   EXTRA: optional in the model directory, never in a shard */
enum wrk_split { SPLIT_NONE, SPLIT_ROWS, SPLIT_COLS, SPLIT_RANK0, SPLIT_EXTRA };

struct wrk_spec {
    const char *name; /* per-layer names are suffixes of "encoder.layer.%d." */
    bool per_layer;
    enum st_dtype dtype;
    enum wrk_dim d0, d1; /* d1 DIM_NONE: a vector */
    enum wrk_split split;
};

static const struct wrk_spec wrk_specs[] = {
    {"embeddings.word_embeddings.weight", false, ST_DTYPE_F32, DIM_V, DIM_H, SPLIT_NONE},
    {"embeddings.position_embeddings.weight", false, ST_DTYPE_F32, DIM_POS, DIM_H, SPLIT_NONE},
    {"embeddings.token_type_embeddings.weight", false, ST_DTYPE_F32, DIM_TV, DIM_H, SPLIT_NONE},
    {"embeddings.LayerNorm.weight", false, ST_DTYPE_F32, DIM_H, DIM_NONE, SPLIT_NONE},
    {"embeddings.LayerNorm.bias", false, ST_DTYPE_F32, DIM_H, DIM_NONE, SPLIT_NONE},
    {"embeddings.position_ids", false, ST_DTYPE_I64, DIM_1, DIM_POS, SPLIT_EXTRA},
    {"pooler.dense.weight", false, ST_DTYPE_F32, DIM_H, DIM_H, SPLIT_EXTRA},
    {"pooler.dense.bias", false, ST_DTYPE_F32, DIM_H, DIM_NONE, SPLIT_EXTRA},
    {"attention.self.query.weight", true, ST_DTYPE_F32, DIM_H, DIM_H, SPLIT_ROWS},
    {"attention.self.query.bias", true, ST_DTYPE_F32, DIM_H, DIM_NONE, SPLIT_ROWS},
    {"attention.self.key.weight", true, ST_DTYPE_F32, DIM_H, DIM_H, SPLIT_ROWS},
    {"attention.self.key.bias", true, ST_DTYPE_F32, DIM_H, DIM_NONE, SPLIT_ROWS},
    {"attention.self.value.weight", true, ST_DTYPE_F32, DIM_H, DIM_H, SPLIT_ROWS},
    {"attention.self.value.bias", true, ST_DTYPE_F32, DIM_H, DIM_NONE, SPLIT_ROWS},
    {"attention.output.dense.weight", true, ST_DTYPE_F32, DIM_H, DIM_H, SPLIT_COLS},
    {"attention.output.dense.bias", true, ST_DTYPE_F32, DIM_H, DIM_NONE, SPLIT_RANK0},
    {"attention.output.LayerNorm.weight", true, ST_DTYPE_F32, DIM_H, DIM_NONE, SPLIT_NONE},
    {"attention.output.LayerNorm.bias", true, ST_DTYPE_F32, DIM_H, DIM_NONE, SPLIT_NONE},
    {"intermediate.dense.weight", true, ST_DTYPE_F32, DIM_I, DIM_H, SPLIT_ROWS},
    {"intermediate.dense.bias", true, ST_DTYPE_F32, DIM_I, DIM_NONE, SPLIT_ROWS},
    {"output.dense.weight", true, ST_DTYPE_F32, DIM_H, DIM_I, SPLIT_COLS},
    {"output.dense.bias", true, ST_DTYPE_F32, DIM_H, DIM_NONE, SPLIT_RANK0},
    {"output.LayerNorm.weight", true, ST_DTYPE_F32, DIM_H, DIM_NONE, SPLIT_NONE},
    {"output.LayerNorm.bias", true, ST_DTYPE_F32, DIM_H, DIM_NONE, SPLIT_NONE},
};
#define WRK_NSPECS (sizeof wrk_specs / sizeof wrk_specs[0])

/* One expected tensor, resolved for a config, a TP degree and a rank. */
struct wrk_expect {
    char name[WRK_NAME_MAX];
    const struct wrk_spec *spec;
    int ndim;
    int64_t full[2];   /* shape in the model directory */
    int64_t shard[2];  /* shape in this rank's shard */
    int64_t lo;        /* first row (ROWS) or column (COLS) of the slice */
    bool in_shard;     /* this rank holds it */
    bool found;
};

struct model {
    char *dir;
    char *vocab_path;
    struct model_config cfg;
    st_file_t *st;
};

struct model_shard {
    void *img;
    size_t len;
    st_file_t *st;
    struct model_config cfg;
    int tp, rank;
};

/* ---- config ---- */

static int64_t wrk_dim_value(const struct model_config *c, enum wrk_dim d)
{
    switch (d) {
    case DIM_1: return 1;
    case DIM_H: return c->hidden;
    case DIM_I: return c->intermediate;
    case DIM_V: return c->vocab;
    case DIM_POS: return c->max_position;
    case DIM_TV: return c->type_vocab;
    default: return 0;
    }
}

static int wrk_cfg_int(json_t *root, const char *key, int lo, int hi, int *out, struct err *err)
{
    json_t *v = json_object_get(root, key);
    if (v == NULL)
        return err_set(err, EINVAL, "%s: missing", key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return err_set(err, EINVAL, "%s: not an integer in [%d, %d]", key, lo, hi);
    *out = (int)json_integer_value(v);
    return 0;
}

static int wrk_cfg_str(json_t *root, const char *key, const char *want, bool required,
                       struct err *err)
{
    json_t *v = json_object_get(root, key);
    if (v == NULL)
        return required ? err_set(err, EINVAL, "%s: missing", key) : 0;
    if (!json_is_string(v))
        return err_set(err, EINVAL, "%s: not a string", key);
    if (strcmp(json_string_value(v), want) != 0)
        return err_set(err, ENOTSUP, "%s: \"%s\" not supported (only \"%s\")", key,
                       json_string_value(v), want);
    return 0;
}

/* Shared by config.json and a shard's metadata: the invariants between fields. */
static int wrk_cfg_check(struct model_config *c, struct err *err)
{
    if (c->hidden < 1 || c->hidden > 16384 || c->heads < 1 || c->heads > 256 || c->layers < 1
        || c->layers > 256 || c->intermediate < 1 || c->intermediate > 65536 || c->vocab < 1
        || c->vocab > (1 << 22) || c->max_position < 1 || c->max_position > (1 << 16)
        || c->type_vocab < 1 || c->type_vocab > 64)
        return err_set(err, EINVAL, "a size is out of range (hidden %d, heads %d, layers %d, "
                       "intermediate %d, vocab %d, positions %d, types %d)", c->hidden, c->heads,
                       c->layers, c->intermediate, c->vocab, c->max_position, c->type_vocab);
    if (c->hidden % c->heads != 0)
        return err_set(err, EINVAL, "hidden_size %d not a multiple of num_attention_heads %d",
                       c->hidden, c->heads);
    c->head_dim = c->hidden / c->heads;
    if (!(c->layer_norm_eps > 0.0f) || !isfinite(c->layer_norm_eps) || c->layer_norm_eps > 1.0f)
        return err_set(err, EINVAL, "layer_norm_eps: not in (0, 1]");
    return 0;
}

static int wrk_cfg_from_json(json_t *root, struct model_config *c, struct err *err)
{
    memset(c, 0, sizeof *c);
    if (!json_is_object(root))
        return err_set(err, EINVAL, "not a json object");
    if (wrk_cfg_str(root, "model_type", "bert", true, err) != 0
        || wrk_cfg_str(root, "hidden_act", "gelu", true, err) != 0
        || wrk_cfg_str(root, "position_embedding_type", "absolute", false, err) != 0)
        return -1;
    json_t *dec = json_object_get(root, "is_decoder");
    if (dec != NULL && !json_is_false(dec))
        return err_set(err, ENOTSUP, "is_decoder: only false (an encoder) is supported");
    if (wrk_cfg_int(root, "hidden_size", 1, 16384, &c->hidden, err) != 0
        || wrk_cfg_int(root, "num_attention_heads", 1, 256, &c->heads, err) != 0
        || wrk_cfg_int(root, "num_hidden_layers", 1, 256, &c->layers, err) != 0
        || wrk_cfg_int(root, "intermediate_size", 1, 65536, &c->intermediate, err) != 0
        || wrk_cfg_int(root, "vocab_size", 1, 1 << 22, &c->vocab, err) != 0
        || wrk_cfg_int(root, "max_position_embeddings", 1, 1 << 16, &c->max_position, err) != 0
        || wrk_cfg_int(root, "type_vocab_size", 1, 64, &c->type_vocab, err) != 0)
        return -1;
    json_t *eps = json_object_get(root, "layer_norm_eps");
    if (eps == NULL || !json_is_number(eps))
        return err_set(err, EINVAL, "layer_norm_eps: %s", eps ? "not a number" : "missing");
    c->layer_norm_eps = (float)json_number_value(eps);
    return wrk_cfg_check(c, err);
}

int model_config_parse(const char *path, struct model_config *out, struct err *err)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        if (access(path, R_OK) != 0)
            return err_set(err, errno, "%s: %s", path, strerror(errno));
        return err_set(err, EINVAL, "%s: line %d: %s", path, jerr.line, jerr.text);
    }
    struct model_config c;
    int rc = wrk_cfg_from_json(root, &c, err);
    json_decref(root);
    if (rc != 0)
        return err_prefix(err, "%s", path);
    *out = c;
    return 0;
}

int model_tp_check(const struct model_config *cfg, int tp, int rank, struct err *err)
{
    if (tp < 1 || cfg->heads % tp != 0 || cfg->intermediate % tp != 0)
        return err_set(err, EINVAL, "tp %d: must divide num_attention_heads %d and "
                       "intermediate_size %d", tp, cfg->heads, cfg->intermediate);
    if (rank < 0 || rank >= tp)
        return err_set(err, EINVAL, "rank %d: not in [0, %d)", rank, tp);
    return 0;
}

/* ---- the expected tensor set ---- */

/* All tensors of the architecture for (cfg, tp, rank); caller frees *out. */
static int wrk_expect_build(const struct model_config *c, int tp, int rank,
                            struct wrk_expect **out, size_t *n_out, struct err *err)
{
    size_t cap = WRK_NSPECS * (size_t)c->layers + WRK_NSPECS, n = 0;
    struct wrk_expect *e = calloc(cap, sizeof *e);
    if (e == NULL)
        return err_set(err, ENOMEM, "model: out of memory");
    for (int l = -1; l < c->layers; l++)
        for (size_t i = 0; i < WRK_NSPECS; i++) {
            const struct wrk_spec *s = &wrk_specs[i];
            if (s->per_layer != (l >= 0))
                continue;
            struct wrk_expect *x = &e[n++];
            x->spec = s;
            if (s->per_layer)
                snprintf(x->name, sizeof x->name, "encoder.layer.%d.%s", l, s->name);
            else
                snprintf(x->name, sizeof x->name, "%s", s->name);
            x->ndim = s->d1 == DIM_NONE ? 1 : 2;
            x->full[0] = wrk_dim_value(c, s->d0);
            x->full[1] = x->ndim == 2 ? wrk_dim_value(c, s->d1) : 0;
            x->shard[0] = x->full[0];
            x->shard[1] = x->full[1];
            x->in_shard = s->split != SPLIT_EXTRA && (s->split != SPLIT_RANK0 || rank == 0);
            int dim = s->split == SPLIT_ROWS ? 0 : s->split == SPLIT_COLS ? 1 : -1;
            if (dim >= 0) {
                x->shard[dim] = x->full[dim] / tp;
                x->lo = x->shard[dim] * rank;
            }
        }
    *out = e;
    *n_out = n;
    return 0;
}

static struct wrk_expect *wrk_expect_find(struct wrk_expect *e, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(e[i].name, name) == 0)
            return &e[i];
    return NULL;
}

static bool wrk_shape_equal(const struct st_tensor *t, int ndim, const int64_t *shape)
{
    if (t->ndim != ndim)
        return false;
    for (int d = 0; d < ndim; d++)
        if (t->shape[d] != shape[d])
            return false;
    return true;
}

static void wrk_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t at = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < ndim && at < cap; d++)
        at += (size_t)snprintf(buf + at, cap - at, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (at < cap)
        snprintf(buf + at, cap - at, "]");
}

/* Check st against the expectations: shard selects shard shapes and the
 * in_shard subset (else full shapes, EXTRA optional). */
static int wrk_tensors_check(const st_file_t *st, struct wrk_expect *e, size_t n, bool shard,
                             struct err *err)
{
    for (size_t i = 0; i < st_file_count(st); i++) {
        const struct st_tensor *t = st_file_tensor(st, i);
        struct wrk_expect *x = wrk_expect_find(e, n, t->name);
        if (x == NULL || (shard && !x->in_shard))
            return err_set(err, EINVAL, "tensor '%s': unexpected for this architecture%s",
                           t->name, shard ? " and rank" : "");
        const int64_t *want = shard ? x->shard : x->full;
        enum st_dtype dt = x->spec->dtype;
        if (t->dtype != dt)
            return err_set(err, EINVAL, "tensor '%s': dtype %s, expected %s", t->name,
                           st_dtype_names[t->dtype], st_dtype_names[dt]);
        if (!wrk_shape_equal(t, x->ndim, want)) {
            char got[64], exp[64];
            wrk_shape_str(got, sizeof got, t->ndim, t->shape);
            wrk_shape_str(exp, sizeof exp, x->ndim, want);
            return err_set(err, EINVAL, "tensor '%s': shape %s, expected %s", t->name, got, exp);
        }
        x->found = true;
    }
    for (size_t i = 0; i < n; i++) {
        bool needed = shard ? e[i].in_shard : e[i].spec->split != SPLIT_EXTRA;
        if (needed && !e[i].found)
            return err_set(err, EINVAL, "tensor '%s': missing", e[i].name);
    }
    return 0;
}

/* ---- model directory ---- */

static char *wrk_path_join(const char *dir, const char *name)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s", dir, name) < 0)
        return NULL;
    return p;
}

void model_destroy(model_t *m)
{
    if (m == NULL)
        return;
    st_file_destroy(m->st);
    free(m->vocab_path);
    free(m->dir);
    free(m);
}

/* embeddings.position_ids, when present, must be 0, 1, ..., max_position-1:
 * the forward uses absolute positions t for token t. */
static int wrk_position_ids_check(const st_file_t *st, struct err *err)
{
    const struct st_tensor *t = st_file_find(st, "embeddings.position_ids");
    if (t == NULL)
        return 0;
    const unsigned char *p = t->data;
    for (int64_t i = 0; i < t->numel; i++) {
        int64_t v;
        memcpy(&v, p + 8 * i, 8);
        if (v != i)
            return err_set(err, EINVAL, "tensor 'embeddings.position_ids': [0, %lld] is %lld, "
                           "expected %lld", (long long)i, (long long)v, (long long)i);
    }
    return 0;
}

/* regular_file: path is (or links to) a regular file; else EINVAL naming it
 * (a FIFO would block the reader, a directory cannot be hashed). */
static int regular_file(const char *path, struct err *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return err_set(err, errno, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return err_set(err, EINVAL, "%s: not a regular file", path);
    return 0;
}

/* vocab_check: vocab.txt holds exactly `tokens` lines (one token each, ids
 * from 0 in line order, as BERT's WordPiece vocabulary), valid UTF-8 without
 * NUL or CR, including [PAD], [UNK], [CLS] and [SEP], which the tokeniser
 * needs (worker/wrk_tok.h). EINVAL naming the line; I/O errors. */
static int vocab_check(const char *path, int tokens, struct err *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return err_set(err, errno, "%s: %s", path, strerror(errno));
    static const char *const special[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]"};
    bool seen[4] = {false};
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lines = 0;
    int rc = 0;
    while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
        lines++;
        size_t len = (size_t)n;
        if (len > 0 && line[len - 1] == '\n')
            len--;
        if (memchr(line, '\0', len) || memchr(line, '\r', len))
            rc = err_set(err, EINVAL, "%s:%ld: a NUL or CR byte in a token", path, lines);
        for (size_t i = 0; rc == 0 && i < len;) {
            utf8proc_int32_t cp;
            utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)line + i,
                                                  (utf8proc_ssize_t)(len - i), &cp);
            if (k <= 0)
                rc = err_set(err, EINVAL, "%s:%ld: not valid UTF-8 at byte %zu", path, lines, i);
            else
                i += (size_t)k;
        }
        for (int s = 0; s < 4; s++)
            seen[s] |= len == strlen(special[s]) && memcmp(line, special[s], len) == 0;
    }
    free(line);
    if (rc == 0 && ferror(f))
        rc = err_set(err, EIO, "%s: read error", path);
    fclose(f);
    if (rc != 0)
        return rc;
    if (lines != tokens)
        return err_set(err, EINVAL, "%s: %ld tokens, config.json's vocab_size is %d", path, lines,
                       tokens);
    for (int s = 0; s < 4; s++)
        if (!seen[s])
            return err_set(err, EINVAL, "%s: no %s token (the tokeniser needs it)", path, special[s]);
    return 0;
}

model_t *model_open(const char *dir, struct err *err)
{
    struct wrk_expect *e = NULL;
    size_t n = 0;
    char *cfg_path = NULL, *st_path = NULL;
    model_t *m = calloc(1, sizeof *m);
    if (m == NULL || (m->dir = strdup(dir)) == NULL
        || (m->vocab_path = wrk_path_join(dir, "vocab.txt")) == NULL
        || (cfg_path = wrk_path_join(dir, "config.json")) == NULL
        || (st_path = wrk_path_join(dir, "model.safetensors")) == NULL) {
        err_set(err, ENOMEM, "model %s: out of memory", dir);
        goto fail;
    }
    if (regular_file(cfg_path, err) != 0 || regular_file(m->vocab_path, err) != 0 ||
        regular_file(st_path, err) != 0)
        goto fail;
    if (model_config_parse(cfg_path, &m->cfg, err) != 0)
        goto fail;
    if (vocab_check(m->vocab_path, m->cfg.vocab, err) != 0)
        goto fail;
    m->st = st_file_open(st_path, err);
    if (m->st == NULL)
        goto fail;
    if (wrk_expect_build(&m->cfg, 1, 0, &e, &n, err) != 0)
        goto fail;
    if (wrk_tensors_check(m->st, e, n, false, err) != 0
        || wrk_position_ids_check(m->st, err) != 0) {
        err_prefix(err, "%s", st_path);
        goto fail;
    }
    free(e);
    free(cfg_path);
    free(st_path);
    return m;
fail:
    free(e);
    free(cfg_path);
    free(st_path);
    model_destroy(m);
    return NULL;
}

const struct model_config *model_config_get(const model_t *m)
{
    return &m->cfg;
}

const char *model_vocab_path(const model_t *m)
{
    return m->vocab_path;
}

int model_file_sha256(const char *path, char hex[65], int64_t *bytes, struct err *err)
{
    uint64_t n = 0;
    if (sha256_file(path, hex, &n, err) != 0)
        return -1;
    if (bytes != NULL)
        *bytes = (int64_t)n;
    return 0;
}

int model_manifest_compute(const model_t *m, struct model_file files[MODEL_FILES],
                               struct err *err)
{
    struct model_file tmp[MODEL_FILES];
    for (int i = 0; i < MODEL_FILES; i++) {
        char *p = wrk_path_join(m->dir, model_file_names[i]);
        if (p == NULL)
            return err_set(err, ENOMEM, "model %s: out of memory", m->dir);
        tmp[i].name = model_file_names[i];
        int rc = model_file_sha256(p, tmp[i].sha256, &tmp[i].bytes, err);
        free(p);
        if (rc != 0)
            return -1;
    }
    memcpy(files, tmp, sizeof tmp);
    return 0;
}

/* ---- shards ---- */

void model_shard_destroy(model_shard_t *s)
{
    if (s == NULL)
        return;
    st_file_destroy(s->st);
    free(s->img);
    free(s);
}

/* The shard's __metadata__ (key, value pairs); values in vals[][24]. */
#define WRK_META_N 11
static void wrk_meta_fill(const struct model_config *c, int tp, int rank,
                          const char *kv[2 * WRK_META_N], char vals[WRK_META_N][24])
{
    const char *keys[WRK_META_N] = {"format", "tp", "rank", "hidden_size",
                                    "num_attention_heads", "num_hidden_layers",
                                    "intermediate_size", "vocab_size",
                                    "max_position_embeddings", "type_vocab_size",
                                    "layer_norm_eps"};
    int ints[WRK_META_N] = {0, tp, rank, c->hidden, c->heads, c->layers, c->intermediate,
                            c->vocab, c->max_position, c->type_vocab, 0};
    snprintf(vals[0], 24, "%s", MODEL_SHARD_FORMAT);
    for (int i = 1; i < WRK_META_N - 1; i++)
        snprintf(vals[i], 24, "%d", ints[i]);
    snprintf(vals[WRK_META_N - 1], 24, "%.9g", (double)c->layer_norm_eps);
    for (int i = 0; i < WRK_META_N; i++) {
        kv[2 * i] = keys[i];
        kv[2 * i + 1] = vals[i];
    }
}

/* Wrap an image (taking ownership of img on success) after checking it. */
static model_shard_t *model_shard_wrap(void *img, size_t len, struct err *err);

model_shard_t *model_shard_extract(const model_t *m, int tp, int rank, struct err *err)
{
    if (model_tp_check(&m->cfg, tp, rank, err) != 0)
        return NULL;
    struct wrk_expect *e = NULL;
    size_t n = 0;
    if (wrk_expect_build(&m->cfg, tp, rank, &e, &n, err) != 0)
        return NULL;
    struct st_tensor_in *in = calloc(n, sizeof *in);
    void **gathered = calloc(n, sizeof *gathered);
    model_shard_t *s = NULL;
    void *img = NULL;
    size_t k = 0, len = 0;
    if (in == NULL || gathered == NULL) {
        err_set(err, ENOMEM, "shard: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const struct wrk_expect *x = &e[i];
        if (!x->in_shard)
            continue;
        const struct st_tensor *t = st_file_find(m->st, x->name);
        const unsigned char *src = t->data; /* present: checked at open */
        size_t es = st_dtype_size(t->dtype);
        struct st_tensor_in *o = &in[k++];
        o->name = x->name;
        o->dtype = t->dtype;
        o->ndim = x->ndim;
        o->shape[0] = x->shard[0];
        o->shape[1] = x->shard[1];
        if (x->spec->split == SPLIT_ROWS) {
            /* contiguous: rows lo .. lo+shard[0] of a [rows, cols] (or [rows]) tensor */
            size_t row = x->ndim == 2 ? (size_t)x->full[1] * es : es;
            o->data = src + (size_t)x->lo * row;
        } else if (x->spec->split == SPLIT_COLS) {
            size_t rows = (size_t)x->full[0], cols = (size_t)x->full[1];
            size_t w = (size_t)x->shard[1];
            unsigned char *g = malloc(rows * w * es);
            if (g == NULL) {
                err_set(err, ENOMEM, "shard: tensor '%s': out of memory", x->name);
                goto out;
            }
            for (size_t r = 0; r < rows; r++)
                memcpy(g + r * w * es, src + (r * cols + (size_t)x->lo) * es, w * es);
            gathered[i] = g;
            o->data = g;
        } else {
            o->data = src;
        }
    }
    const char *kv[2 * WRK_META_N];
    char vals[WRK_META_N][24];
    wrk_meta_fill(&m->cfg, tp, rank, kv, vals);
    if (st_buf_encode(in, k, kv, WRK_META_N, &img, &len, err) != 0)
        goto out;
    s = model_shard_wrap(img, len, err);
    if (s == NULL)
        free(img);
out:
    if (gathered != NULL)
        for (size_t i = 0; i < n; i++)
            free(gathered[i]);
    free(gathered);
    free(in);
    free(e);
    return s;
}

static int wrk_meta_int(const st_file_t *st, const char *key, int *out, struct err *err)
{
    const char *v = st_file_metadata(st, key);
    if (v == NULL)
        return err_set(err, EINVAL, "shard: __metadata__ %s: missing", key);
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || x < 0 || x > INT_MAX)
        return err_set(err, EINVAL, "shard: __metadata__ %s: \"%s\" is not an integer", key, v);
    *out = (int)x;
    return 0;
}

static model_shard_t *model_shard_wrap(void *img, size_t len, struct err *err)
{
    struct wrk_expect *e = NULL;
    size_t n = 0;
    model_shard_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        err_set(err, ENOMEM, "shard: out of memory");
        return NULL;
    }
    s->st = st_file_parse(img, len, err);
    if (s->st == NULL) {
        err_prefix(err, "shard");
        goto fail;
    }
    const char *fmt = st_file_metadata(s->st, "format");
    if (fmt == NULL || strcmp(fmt, MODEL_SHARD_FORMAT) != 0) {
        err_set(err, EINVAL, "shard: __metadata__ format: \"%s\", expected \"%s\"",
                fmt ? fmt : "(missing)", MODEL_SHARD_FORMAT);
        goto fail;
    }
    struct model_config *c = &s->cfg;
    const char *eps = st_file_metadata(s->st, "layer_norm_eps");
    char *end = NULL;
    if (wrk_meta_int(s->st, "tp", &s->tp, err) != 0
        || wrk_meta_int(s->st, "rank", &s->rank, err) != 0
        || wrk_meta_int(s->st, "hidden_size", &c->hidden, err) != 0
        || wrk_meta_int(s->st, "num_attention_heads", &c->heads, err) != 0
        || wrk_meta_int(s->st, "num_hidden_layers", &c->layers, err) != 0
        || wrk_meta_int(s->st, "intermediate_size", &c->intermediate, err) != 0
        || wrk_meta_int(s->st, "vocab_size", &c->vocab, err) != 0
        || wrk_meta_int(s->st, "max_position_embeddings", &c->max_position, err) != 0
        || wrk_meta_int(s->st, "type_vocab_size", &c->type_vocab, err) != 0)
        goto fail;
    if (eps != NULL)
        c->layer_norm_eps = strtof(eps, &end);
    if (eps == NULL || end == eps || *end != '\0') {
        err_set(err, EINVAL, "shard: __metadata__ layer_norm_eps: missing or not a number");
        goto fail;
    }
    if (wrk_cfg_check(c, err) != 0 || model_tp_check(c, s->tp, s->rank, err) != 0) {
        err_prefix(err, "shard");
        goto fail;
    }
    if (wrk_expect_build(c, s->tp, s->rank, &e, &n, err) != 0
        || wrk_tensors_check(s->st, e, n, true, err) != 0) {
        err_prefix(err, "shard tp %d rank %d", s->tp, s->rank);
        goto fail;
    }
    free(e);
    s->img = img;
    s->len = len;
    return s;
fail:
    free(e);
    st_file_destroy(s->st);
    free(s);
    return NULL;
}

model_shard_t *model_shard_decode(const void *buf, size_t len, struct err *err)
{
    if (buf == NULL || len == 0) {
        err_set(err, EINVAL, "shard: empty buffer");
        return NULL;
    }
    void *img = malloc(len);
    if (img == NULL) {
        err_set(err, ENOMEM, "shard: out of memory for %zu bytes", len);
        return NULL;
    }
    memcpy(img, buf, len);
    model_shard_t *s = model_shard_wrap(img, len, err);
    if (s == NULL)
        free(img);
    return s;
}

const void *model_shard_bytes(const model_shard_t *s, size_t *len)
{
    *len = s->len;
    return s->img;
}

void model_shard_sha256(const model_shard_t *s, char hex[65])
{
    unsigned char d[SHA256_BYTES];
    struct err e = {0};
    if (sha256_once(s->img, s->len, d, &e) != 0)
        memset(hex, 'x', 64), hex[64] = '\0'; /* no hex digest: never matches one */
    else
        sha256_hex(d, hex);
}

const struct model_config *model_shard_config(const model_shard_t *s)
{
    return &s->cfg;
}

int model_shard_tp(const model_shard_t *s)
{
    return s->tp;
}

int model_shard_rank(const model_shard_t *s)
{
    return s->rank;
}

const struct st_tensor *model_shard_tensor(const model_shard_t *s, const char *name)
{
    return st_file_find(s->st, name);
}
