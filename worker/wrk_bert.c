/* wrk_bert.c: BERT encoder forward (one TP rank) through krn.h ops.
 *
 * Invariants: every krn buffer is allocated in wrk_bert_create() for
 * R = max_batch * max_len rows and reused by each forward; activations are
 * row-major [B*T, width] with row b*T + t holding token t of sequence b.
 * Local widths: W = hidden/tp (this rank's heads x head_dim), F = intermediate/tp.
 * Padding is removed before the layers: the GEMMs, LayerNorms and residuals run
 * on the Mp valid tokens only ("packed" rows, in the order of the padded
 * layout), and only attention and pooling, which need the [B, T] layout, see
 * padded rows, gathered there and back with krn_embedding (an id outside the
 * table gives a zero row). Valid tokens never attend to padding (masked keys
 * weigh exactly 0), so packing changes no valid token's value.
 * The residual adds ride in the GEMMs: the row-parallel output projections
 * accumulate into the hidden state x with beta = 1 on rank 0 (beta = 0 and no
 * bias on the others), so the all-reduce of x completes x + dense(x) + bias.
 */
#include "worker/wrk_bert.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct wrk_bert_layer {
    krn_buf_t *qkv_w;   /* [3W, hidden]: this rank's query rows, then key, then value */
    krn_buf_t *qkv_b;   /* [3W] */
    krn_buf_t *ao_w;    /* [hidden, W] attention output dense (row-parallel) */
    krn_buf_t *ao_b;    /* [hidden]; rank 0 only, else NULL */
    krn_buf_t *ln1_g, *ln1_b; /* [hidden] attention.output.LayerNorm */
    krn_buf_t *ff1_w;   /* [F, hidden] intermediate.dense (column-parallel) */
    krn_buf_t *ff1_b;   /* [F] */
    krn_buf_t *ff2_w;   /* [hidden, F] output.dense (row-parallel) */
    krn_buf_t *ff2_b;   /* [hidden]; rank 0 only, else NULL */
    krn_buf_t *ln2_g, *ln2_b; /* [hidden] output.LayerNorm */
};

struct wrk_bert {
    krn_backend_t *be;
    struct model_config cfg;
    int tp, rank;
    int W, F, heads_local;
    int max_batch, max_len;
    struct wrk_allreduce ar;

    krn_buf_t *word, *pos, *ttype;   /* [vocab|max_position|type_vocab, hidden] */
    krn_buf_t *emb_g, *emb_b;        /* [hidden] */
    struct wrk_bert_layer *layers;   /* [cfg.layers] */

    krn_buf_t *x;       /* [R, hidden] hidden state */
    krn_buf_t *tmp;     /* [R, hidden] embedding parts, dense outputs (all-reduced) */
    krn_buf_t *qkv;     /* [R, 3W] = [B, T, 3, heads_local, head_dim] */
    krn_buf_t *q, *k, *v; /* views of qkv at 0, W, 2W floats */
    krn_buf_t *ctx;     /* [R, W] attention output */
    krn_buf_t *ffh;     /* [R, F] */
    krn_buf_t *ids;     /* int32 [R] */
    krn_buf_t *pos_ids; /* int32 [R] */
    krn_buf_t *tt_ids;  /* int32 [R], zeros */
    krn_buf_t *mask;    /* int32 [R] */
    krn_buf_t *pack;    /* int32 [R]: packed row p -> padded row b*T + t */
    krn_buf_t *unpack;  /* int32 [R]: padded row -> packed row, or -1 for padding */
    krn_buf_t *qkv_pad; /* [R, 3W] qkv in the padded layout: ffh, or its own buffer */
    krn_buf_t *pq, *pk, *pv; /* views of qkv_pad at 0, W, 2W floats */
    bool qkv_pad_own;   /* qkv_pad was allocated (3W > F), not borrowed from ffh */
    bool seq_attn;      /* padded batches: attention per sequence on packed rows
                         * (cpu, ref), not gathered into the padded layout (cuda) */
    int64_t *seq_off;   /* [max_batch + 1]: sequence b's packed rows start at seq_off[b] */
    krn_buf_t *pooled;  /* [max_batch, hidden] */
    int32_t *pos_host;  /* [R] staging for pos_ids */
    int32_t *ids_host;  /* [R] staging: packed token ids */
    int32_t *pack_host, *unpack_host; /* [R] staging for pack, unpack */
};

static void wrk_bert_layer_free(struct wrk_bert_layer *l)
{
    krn_buf_t **b[] = {&l->qkv_w, &l->qkv_b, &l->ao_w, &l->ao_b, &l->ln1_g, &l->ln1_b,
                       &l->ff1_w, &l->ff1_b, &l->ff2_w, &l->ff2_b, &l->ln2_g, &l->ln2_b};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) {
        krn_buf_free(*b[i]);
        *b[i] = NULL;
    }
}

void wrk_bert_destroy(wrk_bert_t *m)
{
    if (m == NULL)
        return;
    if (m->layers != NULL)
        for (int l = 0; l < m->cfg.layers; l++)
            wrk_bert_layer_free(&m->layers[l]);
    free(m->layers);
    /* N.B. views before the buffer they view */
    krn_buf_t *bufs[] = {m->q, m->k, m->v, m->pq, m->pk, m->pv,
                         m->qkv_pad_own ? m->qkv_pad : NULL, m->pack, m->unpack, m->word, m->pos, m->ttype, m->emb_g, m->emb_b,
                         m->x, m->tmp, m->qkv, m->ctx, m->ffh, m->ids, m->pos_ids,
                         m->tt_ids, m->mask, m->pooled};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        krn_buf_free(bufs[i]);
    free(m->pos_host);
    free(m->seq_off);
    free(m->ids_host);
    free(m->pack_host);
    free(m->unpack_host);
    free(m);
}

int wrk_bert_dim(const wrk_bert_t *m)
{
    return m->cfg.hidden;
}

/* A new buffer of bytes on the backend; NULL with err. */
static krn_buf_t *wrk_bert_alloc(wrk_bert_t *m, size_t bytes, const char *what, struct err *err)
{
    krn_buf_t *b = krn_buf_alloc(m->be, bytes, err);
    if (b == NULL)
        err_prefix(err, "bert: %s", what);
    return b;
}

/* Upload the shard tensors names[0..n) (each F32, shapes checked by
 * model_shard_decode) one after another into a new buffer. */
static krn_buf_t *wrk_bert_upload(wrk_bert_t *m, const model_shard_t *s, const char *const *names,
                                  int n, struct err *err)
{
    size_t total = 0;
    const struct st_tensor *t[3];
    for (int i = 0; i < n; i++) {
        t[i] = model_shard_tensor(s, names[i]);
        if (t[i] == NULL || t[i]->dtype != ST_DTYPE_F32) {
            err_set(err, EINVAL, "bert: shard tensor '%s': missing or not F32", names[i]);
            return NULL;
        }
        total += t[i]->end - t[i]->begin;
    }
    krn_buf_t *b = wrk_bert_alloc(m, total, names[0], err);
    if (b == NULL)
        return NULL;
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        size_t len = t[i]->end - t[i]->begin;
        if (krn_buf_upload(b, at, t[i]->data, len, err) != 0) {
            err_prefix(err, "bert: %s", names[i]);
            krn_buf_free(b);
            return NULL;
        }
        at += len;
    }
    return b;
}

static krn_buf_t *wrk_bert_upload1(wrk_bert_t *m, const model_shard_t *s, const char *name,
                                   struct err *err)
{
    return wrk_bert_upload(m, s, &name, 1, err);
}

static int wrk_bert_layer_load(wrk_bert_t *m, const model_shard_t *s, int l, struct err *err)
{
    struct wrk_bert_layer *L = &m->layers[l];
    char n[12][96];
    static const char *const sfx[12] = {
        "attention.self.query.weight", "attention.self.key.weight",
        "attention.self.value.weight", "attention.self.query.bias",
        "attention.self.key.bias", "attention.self.value.bias",
        "attention.output.dense.weight", "attention.output.dense.bias",
        "intermediate.dense.weight", "intermediate.dense.bias", "output.dense.weight",
        "output.dense.bias"};
    for (int i = 0; i < 12; i++)
        snprintf(n[i], sizeof n[i], "encoder.layer.%d.%s", l, sfx[i]);
    const char *w3[3] = {n[0], n[1], n[2]}, *b3[3] = {n[3], n[4], n[5]};
    char ln[4][96];
    snprintf(ln[0], 96, "encoder.layer.%d.attention.output.LayerNorm.weight", l);
    snprintf(ln[1], 96, "encoder.layer.%d.attention.output.LayerNorm.bias", l);
    snprintf(ln[2], 96, "encoder.layer.%d.output.LayerNorm.weight", l);
    snprintf(ln[3], 96, "encoder.layer.%d.output.LayerNorm.bias", l);
    if ((L->qkv_w = wrk_bert_upload(m, s, w3, 3, err)) == NULL
        || (L->qkv_b = wrk_bert_upload(m, s, b3, 3, err)) == NULL
        || (L->ao_w = wrk_bert_upload1(m, s, n[6], err)) == NULL
        || (L->ff1_w = wrk_bert_upload1(m, s, n[8], err)) == NULL
        || (L->ff1_b = wrk_bert_upload1(m, s, n[9], err)) == NULL
        || (L->ff2_w = wrk_bert_upload1(m, s, n[10], err)) == NULL
        || (L->ln1_g = wrk_bert_upload1(m, s, ln[0], err)) == NULL
        || (L->ln1_b = wrk_bert_upload1(m, s, ln[1], err)) == NULL
        || (L->ln2_g = wrk_bert_upload1(m, s, ln[2], err)) == NULL
        || (L->ln2_b = wrk_bert_upload1(m, s, ln[3], err)) == NULL)
        return -1;
    if (m->rank == 0
        && ((L->ao_b = wrk_bert_upload1(m, s, n[7], err)) == NULL
            || (L->ff2_b = wrk_bert_upload1(m, s, n[11], err)) == NULL))
        return -1;
    return 0;
}

wrk_bert_t *wrk_bert_create(krn_backend_t *be, const model_shard_t *shard, int max_batch,
                            int max_len, const struct wrk_allreduce *ar, struct err *err)
{
    if (be == NULL || shard == NULL) {
        err_set(err, EINVAL, "bert: NULL backend or shard");
        return NULL;
    }
    const struct model_config *c = model_shard_config(shard);
    int tp = model_shard_tp(shard);
    if (max_batch < 1 || max_len < 1 || max_len > c->max_position
        || (int64_t)max_batch * max_len > (1 << 24)) {
        err_set(err, EINVAL, "bert: max_batch %d, max_len %d: need >= 1, max_len <= %d, "
                "product <= 2^24", max_batch, max_len, c->max_position);
        return NULL;
    }
    if (tp > 1 && (ar == NULL || ar->allreduce_sum == NULL)) {
        err_set(err, EINVAL, "bert: tp %d needs an all-reduce", tp);
        return NULL;
    }
    wrk_bert_t *m = calloc(1, sizeof *m);
    if (m == NULL) {
        err_set(err, ENOMEM, "bert: out of memory");
        return NULL;
    }
    m->be = be;
    m->cfg = *c;
    m->tp = tp;
    m->rank = model_shard_rank(shard);
    m->W = c->hidden / tp;
    m->F = c->intermediate / tp;
    m->heads_local = c->heads / tp;
    m->max_batch = max_batch;
    m->max_len = max_len;
    if (ar != NULL)
        m->ar = *ar;
    size_t R = (size_t)max_batch * (size_t)max_len, H = (size_t)c->hidden, f4 = sizeof(float);
    m->layers = calloc((size_t)c->layers, sizeof *m->layers);
    m->pos_host = malloc(R * sizeof *m->pos_host);
    m->ids_host = malloc(R * sizeof *m->ids_host);
    m->seq_off = malloc(((size_t)max_batch + 1) * sizeof *m->seq_off);
    /* on the host backends a call costs microseconds; a CUDA launch per sequence
     * would cost more than the padded work it saves */
    m->seq_attn = strcmp(krn_backend_name(be), "cuda") != 0;
    m->pack_host = malloc(R * sizeof *m->pack_host);
    m->unpack_host = malloc(R * sizeof *m->unpack_host);
    if (m->layers == NULL || m->pos_host == NULL || m->ids_host == NULL
        || m->pack_host == NULL || m->unpack_host == NULL || m->seq_off == NULL) {
        err_set(err, ENOMEM, "bert: out of memory");
        goto fail;
    }
    if ((m->word = wrk_bert_upload1(m, shard, "embeddings.word_embeddings.weight", err)) == NULL
        || (m->pos = wrk_bert_upload1(m, shard, "embeddings.position_embeddings.weight", err))
               == NULL
        || (m->ttype = wrk_bert_upload1(m, shard, "embeddings.token_type_embeddings.weight",
                                        err)) == NULL
        || (m->emb_g = wrk_bert_upload1(m, shard, "embeddings.LayerNorm.weight", err)) == NULL
        || (m->emb_b = wrk_bert_upload1(m, shard, "embeddings.LayerNorm.bias", err)) == NULL)
        goto fail;
    for (int l = 0; l < c->layers; l++)
        if (wrk_bert_layer_load(m, shard, l, err) != 0)
            goto fail;
    size_t W = (size_t)m->W;
    if ((m->x = wrk_bert_alloc(m, R * H * f4, "x", err)) == NULL
        || (m->tmp = wrk_bert_alloc(m, R * H * f4, "tmp", err)) == NULL
        || (m->qkv = wrk_bert_alloc(m, R * 3 * W * f4, "qkv", err)) == NULL
        || (m->ctx = wrk_bert_alloc(m, R * W * f4, "ctx", err)) == NULL
        || (m->ffh = wrk_bert_alloc(m, R * (size_t)m->F * f4, "ffh", err)) == NULL
        || (m->ids = wrk_bert_alloc(m, R * 4, "ids", err)) == NULL
        || (m->pos_ids = wrk_bert_alloc(m, R * 4, "pos_ids", err)) == NULL
        || (m->tt_ids = wrk_bert_alloc(m, R * 4, "tt_ids", err)) == NULL
        || (m->mask = wrk_bert_alloc(m, R * 4, "mask", err)) == NULL
        || (m->pack = wrk_bert_alloc(m, R * 4, "pack", err)) == NULL
        || (m->unpack = wrk_bert_alloc(m, R * 4, "unpack", err)) == NULL
        || (m->pooled = wrk_bert_alloc(m, (size_t)max_batch * H * f4, "pooled", err)) == NULL)
        goto fail;
    size_t qkv_bytes = R * 3 * W * f4;
    if ((m->q = krn_buf_view(m->qkv, 0, qkv_bytes, err)) == NULL
        || (m->k = krn_buf_view(m->qkv, W * f4, qkv_bytes - W * f4, err)) == NULL
        || (m->v = krn_buf_view(m->qkv, 2 * W * f4, qkv_bytes - 2 * W * f4, err)) == NULL
        || krn_buf_zero(m->tt_ids, err) != 0)
        goto fail;
    /* the padded qkv lives in ffh (idle during attention) when it fits: 3W <= F */
    m->qkv_pad_own = 3 * W > (size_t)m->F;
    if (m->qkv_pad_own) {
        if ((m->qkv_pad = wrk_bert_alloc(m, qkv_bytes, "qkv_pad", err)) == NULL)
            goto fail;
    } else {
        m->qkv_pad = m->ffh;
    }
    if ((m->pq = krn_buf_view(m->qkv_pad, 0, qkv_bytes, err)) == NULL
        || (m->pk = krn_buf_view(m->qkv_pad, W * f4, qkv_bytes - W * f4, err)) == NULL
        || (m->pv = krn_buf_view(m->qkv_pad, 2 * W * f4, qkv_bytes - 2 * W * f4, err)) == NULL)
        goto fail;
    return m;
fail:
    wrk_bert_destroy(m);
    return NULL;
}

/* y = x W^T (+ bias) (+ y when accumulate): an nn.Linear on rows x [M, K], W [N, K];
 * y [M, N]. */
static int wrk_bert_linear(wrk_bert_t *m, int64_t M, int64_t N, int64_t K, const krn_buf_t *x,
                           const krn_buf_t *w, const krn_buf_t *bias, enum krn_epilogue epi,
                           bool accumulate, krn_buf_t *y, struct err *err)
{
    struct krn_gemm_args g = {0};
    g.M = M;
    g.N = N;
    g.K = K;
    g.trans_b = true;
    g.alpha = 1.0f;
    g.beta = accumulate ? 1.0f : 0.0f;
    g.epilogue = bias != NULL ? epi : KRN_EPI_NONE;
    g.dtype_ab = KRN_DTYPE_F32;
    g.dtype_c = KRN_DTYPE_F32;
    return krn_gemm(m->be, &g, x, w, bias, y, err);
}

/* Complete a row-parallel layer's partial sums in buf[0..n) across the TP group. */
static int wrk_bert_allreduce(wrk_bert_t *m, krn_buf_t *buf, size_t n, struct err *err)
{
    if (m->tp == 1)
        return 0;
    if (krn_backend_sync(m->be, err) != 0)
        return -1;
    if (m->ar.allreduce_sum(m->ar.ctx, krn_buf_ptr(buf), n, err) != 0)
        return err_prefix(err, "bert: all-reduce");
    return 0;
}

/* Attention of one sequence held in packed rows [o, o + n) of qkv, into the same
 * rows of ctx; a->B == 1. The views are handles only (no device memory). */
static int wrk_bert_attention_rows(wrk_bert_t *m, struct krn_attn_args *a, int64_t o, int64_t n,
                                   struct err *err)
{
    const size_t f4 = sizeof(float), W = (size_t)m->W, row = 3 * W * f4;
    size_t at = (size_t)o * row, len = (size_t)n * row;
    krn_buf_t *q = krn_buf_view(m->qkv, at, len, err);
    krn_buf_t *k = q ? krn_buf_view(m->qkv, at + W * f4, len - W * f4, err) : NULL;
    krn_buf_t *v = k ? krn_buf_view(m->qkv, at + 2 * W * f4, len - 2 * W * f4, err) : NULL;
    krn_buf_t *ctx = v ? krn_buf_view(m->ctx, (size_t)o * W * f4, (size_t)n * W * f4, err)
                       : NULL;
    a->T = n;
    int rc = ctx != NULL ? krn_attention(m->be, a, q, k, v, NULL, ctx, err) : -1;
    krn_buf_free(ctx);
    krn_buf_free(v);
    krn_buf_free(k);
    krn_buf_free(q);
    return rc;
}

/* One encoder layer on x [Mp, hidden] (packed rows; Mp == B*T when nothing is
 * padded, and then padded is false). */
static int wrk_bert_layer_forward(wrk_bert_t *m, const struct wrk_bert_layer *L, int B, int T,
                                  int64_t Mp, bool padded, struct err *err)
{
    const int64_t M = Mp, H = m->cfg.hidden, W = m->W, F = m->F, R = (int64_t)B * T;
    const float eps = m->cfg.layer_norm_eps;
    const bool acc = m->rank == 0; /* rank 0 carries the residual; see the file comment */
    /* self-attention: fused QKV projection, then fused attention over this rank's heads */
    if (wrk_bert_linear(m, M, 3 * W, H, m->x, L->qkv_w, L->qkv_b, KRN_EPI_BIAS, false, m->qkv,
                        err) != 0)
        return -1;
    struct krn_attn_args a = {0};
    a.B = B;
    a.T = T;
    a.H = m->heads_local;
    a.D = m->cfg.head_dim;
    a.ld_q = a.ld_k = a.ld_v = 3 * W;
    a.ld_o = W;
    a.dtype = KRN_DTYPE_F32;
    a.dtype_o = KRN_DTYPE_F32;
    if (padded && m->seq_attn) {
        /* one call per sequence on its packed rows, all valid (no mask) */
        a.B = 1;
        for (int b = 0; b < B; b++) {
            int64_t o = m->seq_off[b], n = m->seq_off[b + 1] - o;
            if (wrk_bert_attention_rows(m, &a, o, n, err) != 0)
                return -1;
        }
    } else if (padded) {
        /* qkv -> padded layout (zero rows for padding), attention into tmp [R, W],
         * then back to the packed ctx */
        if (krn_embedding(m->be, R, 3 * W, M, m->unpack, m->qkv, m->qkv_pad, err) != 0
            || krn_attention(m->be, &a, m->pq, m->pk, m->pv, m->mask, m->tmp, err) != 0
            || krn_embedding(m->be, M, W, R, m->pack, m->tmp, m->ctx, err) != 0)
            return -1;
    } else if (krn_attention(m->be, &a, m->q, m->k, m->v, m->mask, m->ctx, err) != 0) {
        return -1;
    }
    /* output dense, row-parallel, accumulated into x; all-reduce; LayerNorm in place */
    if (wrk_bert_linear(m, M, H, W, m->ctx, L->ao_w, L->ao_b, KRN_EPI_BIAS, acc, m->x, err) != 0
        || wrk_bert_allreduce(m, m->x, (size_t)(M * H), err) != 0
        || krn_layernorm(m->be, M, H, eps, m->x, L->ln1_g, L->ln1_b, m->x, err) != 0)
        return -1;
    /* FFN: up column-parallel with GELU, down row-parallel into x, all-reduce */
    if (wrk_bert_linear(m, M, F, H, m->x, L->ff1_w, L->ff1_b, KRN_EPI_BIAS_GELU, false, m->ffh,
                        err) != 0
        || wrk_bert_linear(m, M, H, F, m->ffh, L->ff2_w, L->ff2_b, KRN_EPI_BIAS, acc, m->x,
                           err) != 0
        || wrk_bert_allreduce(m, m->x, (size_t)(M * H), err) != 0
        || krn_layernorm(m->be, M, H, eps, m->x, L->ln2_g, L->ln2_b, m->x, err) != 0)
        return -1;
    return 0;
}

int wrk_bert_forward(wrk_bert_t *m, const int32_t *ids, const int32_t *mask, int B, int T,
                     float *out, struct err *err)
{
    if (m == NULL || ids == NULL || mask == NULL || out == NULL)
        return err_set(err, EINVAL, "bert: NULL argument");
    if (B < 1 || B > m->max_batch || T < 1 || T > m->max_len)
        return err_set(err, EINVAL, "bert: batch %d x %d tokens outside [1, %d] x [1, %d]", B, T,
                       m->max_batch, m->max_len);
    const int64_t R = (int64_t)B * T, H = m->cfg.hidden;
    int64_t Mp = 0; /* valid tokens, packed in the padded layout's order */
    for (int b = 0; b < B; b++) {
        int valid = 0;
        m->seq_off[b] = Mp;
        for (int t = 0; t < T; t++) {
            size_t r = (size_t)b * T + t;
            int32_t id = ids[r];
            if (id < 0 || id >= m->cfg.vocab)
                return err_set(err, EINVAL, "bert: ids[%d][%d] = %d outside [0, %d)", b, t, id,
                               m->cfg.vocab);
            if (mask[r] == 0) {
                m->unpack_host[r] = -1;
                continue;
            }
            valid++;
            m->ids_host[Mp] = id;
            m->pos_host[Mp] = t;
            m->pack_host[Mp] = (int32_t)r;
            m->unpack_host[r] = (int32_t)Mp++;
        }
        if (valid == 0)
            return err_set(err, EINVAL, "bert: mask row %d has no valid token", b);
    }
    m->seq_off[B] = Mp;
    const bool padded = Mp < R;
    if (krn_buf_upload(m->ids, 0, m->ids_host, (size_t)Mp * 4, err) != 0
        || krn_buf_upload(m->mask, 0, mask, (size_t)R * 4, err) != 0
        || krn_buf_upload(m->pos_ids, 0, m->pos_host, (size_t)Mp * 4, err) != 0
        || (padded && (krn_buf_upload(m->pack, 0, m->pack_host, (size_t)Mp * 4, err) != 0
                       || krn_buf_upload(m->unpack, 0, m->unpack_host, (size_t)R * 4, err)
                              != 0)))
        return err_prefix(err, "bert: upload");
    /* embeddings, in HF BertEmbeddings' order: (word + token_type) + position, LayerNorm */
    const int64_t M = Mp;
    if (krn_embedding(m->be, M, H, m->cfg.vocab, m->ids, m->word, m->x, err) != 0
        || krn_embedding(m->be, M, H, m->cfg.type_vocab, m->tt_ids, m->ttype, m->tmp, err) != 0
        || krn_add(m->be, M * H, m->x, m->tmp, m->x, err) != 0
        || krn_embedding(m->be, M, H, m->cfg.max_position, m->pos_ids, m->pos, m->tmp, err) != 0
        || krn_add(m->be, M * H, m->x, m->tmp, m->x, err) != 0
        || krn_layernorm(m->be, M, H, m->cfg.layer_norm_eps, m->x, m->emb_g, m->emb_b, m->x,
                         err) != 0)
        return -1;
    for (int l = 0; l < m->cfg.layers; l++)
        if (wrk_bert_layer_forward(m, &m->layers[l], B, T, Mp, padded, err) != 0)
            return err_prefix(err, "layer %d", l);
    /* sentence-transformers Pooling (mean) and Normalize (F.normalize, eps 1e-12), on
     * the padded layout (padding rows gathered as zeros, and masked out anyway) */
    krn_buf_t *xp = m->x;
    if (padded) {
        if (krn_embedding(m->be, R, H, M, m->unpack, m->x, m->tmp, err) != 0)
            return -1;
        xp = m->tmp;
    }
    if (krn_mean_pool(m->be, B, T, H, xp, m->mask, m->pooled, err) != 0
        || krn_l2_normalize(m->be, B, H, 1e-12f, m->pooled, m->pooled, err) != 0
        || krn_buf_download(m->pooled, 0, out, (size_t)B * (size_t)H * sizeof(float), err) != 0)
        return -1;
    return 0;
}
