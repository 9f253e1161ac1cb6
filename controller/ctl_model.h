/* ctl_model.h: the controller's artifact store: model intake and shard serving.
 *
 * Layout under <state_dir>/artifacts: upload/<keyid>-<sha256>.part (files
 * being uploaded, one per client key and file, never trusted; removed at start
 * and when not written for CTL_MODEL_UPLOAD_STALE), objects/<sha256> (content-addressed, verified,
 * fsync'd: model files and TP shards), models/<name>-v<version>/ (hard links
 * named config.json, vocab.txt, model.safetensors). The record of truth is the
 * LMDB "artifacts" database: "model/<name>" -> the latest manifest
 * {name, version, files: [{file, sha256, bytes}], config, imported};
 * "shards/<name>/<version>/<tp>" -> [{sha256, bytes}] per rank.
 * A model is accepted only if every file's SHA-256 matches what the client
 * declared and its config and every tensor match the architecture
 * (shared/model.h); the error names the file or tensor.
 */
#ifndef MOAT_CTL_MODEL_H
#define MOAT_CTL_MODEL_H

#include "controller/ctl_state.h"

#define CTL_MODEL_CHUNK (4u << 20) /* bytes per MODEL_PUT / SHARD_GET chunk, at most */
#define CTL_MODEL_UPLOAD_STALE 3600.0 /* s: an upload not written for this long is removed */
#define CTL_MODEL_FREE_MIN (512u << 20) /* bytes of the state directory's disk uploads leave free */

/* ctl_model_init: create the artifact directories. errno codes naming the path. */
int ctl_model_init(struct ctl *ctl, struct err *err);

int ctl_on_model_put(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err);
int ctl_on_model_commit(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err);
int ctl_on_model_list(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err);
int ctl_on_model_verify(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err);
int ctl_on_shard_get(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err);

/* ctl_model_manifest: the latest manifest of model name (caller owns), or NULL with
 * ENOENT ("model NAME: not imported"). */
json_t *ctl_model_manifest(struct ctl *ctl, const char *name, struct err *err);

/* ctl_model_shards: the TP shards of model name for degree tp, extracting and
 * storing them on first use: a JSON array of tp objects {sha256, bytes}, rank
 * order (caller owns). EINVAL when tp does not divide the model's heads and
 * FFN width; ENOENT; I/O errors. */
json_t *ctl_model_shards(struct ctl *ctl, const char *name, int tp, struct err *err);

#endif
