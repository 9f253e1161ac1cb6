/* ctl_audit.h: the audit log: an append-only, hash-chained LMDB database.
 *
 * Record N (N = 1, 2, ...; key: N as u64 big-endian in STORE_DB_AUDIT) is
 *   prev[32] | hash[32] | JSON {time, actor, action, object, details}
 * where prev is record N-1's hash (32 zero bytes for N = 1) and
 *   hash = SHA-256(N as u64 big-endian | prev | JSON)      (libsodium crypto_hash_sha256)
 * The chain's head (N and record N's hash) is kept in STORE_DB_META under
 * "audit_head", so that removing records from the end is seen too. A record is
 * written in the same batch transaction as the change it records: both commit or
 * neither does.
 * actor: the Z85 public key of the peer that asked, or "controller".
 * Actions: submit, cancel, place, model.import, key.add, key.revoke, key.remove,
 * key.change (allowlist_file edits), auth.refuse (docs/protocol.md has them all).
 * What it protects against: edits, deletions, insertions and reorderings of the
 * LMDB file by someone who does not recompute the chain; see docs/security.md.
 * Thread-safety: the controller's event loop only.
 */
#ifndef MOAT_CTL_AUDIT_H
#define MOAT_CTL_AUDIT_H

#include <stdint.h>

#include "controller/ctl_state.h"

#define CTL_AUDIT_ACTOR_SELF "controller"

/* ctl_audit_append: append one record in the current batch (opened on demand).
 * Takes ownership of details (an object, or NULL for {}). A failure (ENOSPC,
 * ENOMEM) also sets ctl->store_err, so the change it records is abandoned too. */
int ctl_audit_append(struct ctl *ctl, const char *actor, const char *action, const char *object,
                     json_t *details, struct err *err);

/* ctl_audit_verify: walk the whole log and the head. Returns 0 when the chain is
 * intact; 1 when it is not, with *first_bad the sequence number of the first
 * bad record and why->msg naming it ("audit record 7: ..."); -1 with err when the
 * store cannot be read. *records: the number of records walked; head_hex (65
 * bytes): the last record's hash in hex ("" when empty). */
int ctl_audit_verify(store_t *st, uint64_t *records, uint64_t *first_bad, char head_hex[65],
                     struct err *why, struct err *err);

/* ctl_on_audit: AUDIT: {verify: true} -> {ok, records, first_bad, error, head};
 * otherwise {records: [{seq, time, actor, action, object, details, hash}], next}
 * for records after `after` with time >= `since`, at most `limit` (1000). */
int ctl_on_audit(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err);

#endif
