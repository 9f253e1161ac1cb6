/* wrk_bert.h: the BERT encoder forward for sentence embeddings, one TP rank on a krn backend.
 *
 * Computes what sentence-transformers' all-MiniLM-L6-v2 pipeline computes
 * (HF BertModel -> Pooling(mean) -> Normalize), for any BERT shard of
 * shared/model.h:
 *   x  = LayerNorm(word_emb[ids] + token_type_emb[0] + position_emb[t])
 *   per layer (post-LN, Vaswani et al. 2017 / Devlin et al. 2019; HF BertLayer):
 *     x = LayerNorm(x + Dense_o(Attention(x W_qkv^T + b_qkv, key-padding mask)))
 *     x = LayerNorm(x + Dense_2(GELU_erf(x W_1^T + b_1)))
 *   e  = mean over valid tokens of x;  out = e / max(||e||_2, 1e-12)
 * Tensor parallelism (Megatron-LM, Shoeybi et al. 2019): each rank holds
 * heads/tp heads and intermediate/tp FFN columns; the outputs of the two
 * row-parallel dense layers are partial sums that one all-reduce per sub-layer
 * (two per layer) completes; the row-parallel biases are added by rank 0
 * only, before the all-reduce. Every rank ends with the same embeddings.
 *
 * Thread-safety: one wrk_bert_t per thread (it owns activations and uses its
 * backend handle, which must not be shared). The ranks of one TP group run
 * their forwards concurrently, typically one thread or process each.
 */
#ifndef MOAT_WRK_BERT_H
#define MOAT_WRK_BERT_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/krn.h"
#include "shared/err.h"
#include "shared/model.h"

/* The TP group's all-reduce, supplied by the caller (NCCL, ZeroMQ, threads).
 * allreduce_sum: replace buf[0..n) on every rank with the element-wise sum of
 * all ranks' buf, then return 0; or -1 with err (the forward then fails with
 * that error). buf is backend memory (krn_buf_ptr): a host pointer on the
 * "ref"/"cpu" backends, a device pointer on "cuda"; the forward has waited for
 * queued ops (krn_backend_sync) before the call, and the function must have
 * finished writing buf when it returns. Every rank calls it the same number of
 * times with the same n, in the same order. For results identical on every
 * rank, sum in the same order everywhere (e.g. rank 0 first). */
struct wrk_allreduce {
    int (*allreduce_sum)(void *ctx, float *buf, size_t n, struct err *err);
    void *ctx;
};

typedef struct wrk_bert wrk_bert_t;

/* wrk_bert_create: upload shard's weights to be and allocate every
 * activation buffer for batches of up to max_batch sequences of up to max_len
 * tokens (nothing is allocated by wrk_bert_forward()).
 * be: Borrowed; must outlive the handle. shard: read during the call only.
 * ar: Borrowed (copied); required when the shard's tp > 1, ignored when 1
 * (may be NULL). max_len <= the config's max_position.
 * Memory: the shard's weights plus max_batch * max_len * (2 hidden + 4 hidden/tp
 * + intermediate/tp + 10) 4-byte words (MiniLM, tp 1, 32 x 256: 120 MiB), plus
 * 3 hidden/tp more when 3 hidden/tp > intermediate/tp (never for BERT).
 * Returns a handle (caller frees with wrk_bert_destroy(), before be) or NULL
 * with err: EINVAL (bad sizes, missing all-reduce), ENOMEM, and backend errors
 * (ENOTSUP: head dim, EIO). */
wrk_bert_t *wrk_bert_create(krn_backend_t *be, const model_shard_t *shard, int max_batch,
                            int max_len, const struct wrk_allreduce *ar, struct err *err);

/* wrk_bert_destroy: free buffers; NULL is a no-op. */
void wrk_bert_destroy(wrk_bert_t *m);

/* wrk_bert_dim: the embedding width (hidden_size, 384 for MiniLM). */
int wrk_bert_dim(const wrk_bert_t *m);

/* wrk_bert_forward: embed B sequences of T tokens.
 * ids: int32 [B, T] row-major token ids (wrk_tok_encode_batch output), each in
 * [0, vocab) (EINVAL otherwise, naming the row and column);
 * mask: int32 [B, T], 1 for a real token, 0 for padding (each row needs at
 * least one 1: EINVAL otherwise); token_type ids are all 0 (single texts).
 * out: f32 [B, hidden] row-major host memory, caller-owned: the L2-normalised
 * mean-pooled embeddings. 1 <= B <= max_batch, 1 <= T <= max_len (EINVAL).
 * All ranks of a TP group must call this with the same ids and mask.
 * Errors: EINVAL, the all-reduce's error, backend errors (EIO). */
int wrk_bert_forward(wrk_bert_t *m, const int32_t *ids, const int32_t *mask, int B, int T,
                     float *out, struct err *err);

#endif
