/* store.h: the LMDB store: one environment, named databases, versioned values.
 *
 * Invariants: keys are fixed-width big-endian integers (cursor order = numeric
 * order) or short strings; every value starts with a version byte that this
 * module adds on put and checks on get; there is one write transaction at a
 * time, opened by store_begin() and committed by store_commit() once per event-
 * loop pass (group commit). The map grows before a batch when it is 3/4 full,
 * up to the configured maximum; a put that still finds it full fails with ENOSPC
 * and the caller aborts the batch (store_abort), grows and tries again.
 * LMDB values never leave this module: reads copy out.
 * Thread-safety: one store_t per thread (the daemons are single-threaded).
 * Format: LMDB 0.9 (lmdb.h); schema version in db "meta", key "schema".
 */
#ifndef MOAT_STORE_H
#define MOAT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"

/* Schema versions: 1, the first; 2 adds db "live" (the controller's index of
 * the jobs a restart loads). A store of an older version opens and reports it
 * (store_schema) so that its owner can migrate and then record the current
 * one (store_set_schema); a newer one is refused. */
#define STORE_SCHEMA_VERSION 2
#define STORE_VALUE_VERSION 1

enum store_db {
    STORE_DB_META,
    STORE_DB_JOBS,      /* key u64 job id -> job record (JSON) */
    STORE_DB_TASKS,     /* key u64 job, u32 task -> task record (JSON); absent = never started */
    STORE_DB_RESULTS,   /* key u64 job, u32 task -> result (binary, see ctl_result) */
    STORE_DB_NODES,     /* key node name -> node record (JSON) */
    STORE_DB_INFLIGHT,  /* worker: key u64 job, u32 task, u32 attempt -> in-flight record */
    STORE_DB_ARTIFACTS, /* key "model/NAME" -> manifest (JSON); "shards/NAME/VERSION/TP" -> shard hashes */
    STORE_DB_DOCS,      /* key u64 job, u32 batch -> the batch's input documents (JSON) */
    STORE_DB_KEYS,      /* key Z85 public key (40 bytes) -> allowlist change (JSON, ctl_auth) */
    STORE_DB_AUDIT,     /* key u64 sequence number (from 1) -> audit record (ctl_audit); append-only */
    STORE_DB_LIVE,      /* key u64 job id -> empty: jobs not yet out of the controller's memory (ctl_purge.h) */
    STORE_DB_COUNT
};

typedef struct store store_t;

/* store_open: open (creating) the environment in directory dir (created 0700 if
 * missing) with an initial map of map_size bytes that may grow to map_max.
 * Checks the schema version: EPROTO if the store was written by a newer
 * version (or is not a moat store); an older one opens (store_schema).
 * Caller frees with store_close(). */
store_t *store_open(const char *dir, uint64_t map_size, uint64_t map_max, struct err *err);
void store_close(store_t *st);

/* store_schema: the schema version the store had when opened (a new store:
 * STORE_SCHEMA_VERSION). store_set_schema: record STORE_SCHEMA_VERSION in the
 * open batch, once the caller has migrated what the versions between need
 * (EINVAL with no batch open). */
int store_schema(const store_t *st);
int store_set_schema(store_t *st, struct err *err);

/* store_begin: open the batch's write transaction (growing the map first if it is
 * 3/4 full). EBUSY if one is open. store_commit: make it durable (fsync). On
 * failure the batch is aborted and nothing of it is stored. store_abort: drop it. */
int store_begin(store_t *st, struct err *err);
int store_commit(store_t *st, struct err *err);
/* store_commit_nosync: commit without fsync, for batches whose loss on a crash is
 * harmless (a worker forgetting acknowledged results); the next store_commit()
 * makes it durable along with its own writes. */
int store_commit_nosync(store_t *st, struct err *err);
void store_abort(store_t *st);
int store_in_batch(const store_t *st);

/* store_room: about how many more bytes of values the store can take before
 * its map is full at map_max: the maximum less the pages in use (LMDB's last
 * page, so free pages it could reuse count as used: an underestimate) and what
 * the open batch has put so far, with a page per value for the B-tree. For a
 * caller to refuse a large write that cannot fit rather than fail its batch. */
uint64_t store_room(store_t *st);

/* store_grow: double the map (up to map_max) with no transaction open. ENOSPC at the max. */
int store_grow(store_t *st, struct err *err);

/* store_put: write key -> (version byte, val) in the current (sub)transaction.
 * append=1 asserts the key sorts last (MDB_APPEND; faster; EINVAL otherwise).
 * ENOSPC: map full; EINVAL: no transaction. */
int store_put(store_t *st, enum store_db db, const void *key, size_t klen, const void *val,
              size_t vlen, int append, struct err *err);

/* store_put_new: like store_put but fails with EEXIST when the key exists (a result is
 * never stored twice). */
int store_put_new(store_t *st, enum store_db db, const void *key, size_t klen, const void *val,
                  size_t vlen, struct err *err);

/* store_del: delete key (ENOENT when absent). */
int store_del(store_t *st, enum store_db db, const void *key, size_t klen, struct err *err);

/* store_get: copy the value of key (without the version byte) into a malloc'd buffer.
 * Caller frees *val with free(). Reads the open write transaction if any (so a batch
 * sees its own writes), else a short read transaction. ENOENT; EPROTO on a bad version. */
int store_get(store_t *st, enum store_db db, const void *key, size_t klen, void **val,
              size_t *vlen, struct err *err);

/* store_foreach: call cb for every record of db in key order (a read transaction).
 * Borrowed: key and val are valid only during the call. A non-zero cb return stops
 * the walk and is returned. */
typedef int (*store_foreach_cb)(const void *key, size_t klen, const void *val, size_t vlen,
                                void *arg);
int store_foreach(store_t *st, enum store_db db, store_foreach_cb cb, void *arg, struct err *err);

/* store_foreach_from: store_foreach from the first key >= from (flen bytes;
 * from NULL: the first key) in key order, in the open write transaction if
 * any (so a batch sees its own writes), else a read transaction: a range scan (a job's tasks: from the
 * 8-byte job key; a page of the audit log: from the next sequence number),
 * which cb ends by returning non-zero. */
int store_foreach_from(store_t *st, enum store_db db, const void *from, size_t flen,
                       store_foreach_cb cb, void *arg, struct err *err);

/* store_last: copy the last record of db in key order (the open write
 * transaction's view if any): its key into key (cap bytes; *klen its length) and
 * its value as store_get does. Caller frees *val with free(). ENOENT when db is
 * empty; ENOSPC when the key does not fit cap. */
int store_last(store_t *st, enum store_db db, void *key, size_t cap, size_t *klen, void **val,
               size_t *vlen, struct err *err);

/* Key helpers: big-endian fixed-width encodings. Return the key length. */
size_t store_key_job(uint8_t out[8], uint64_t job);
size_t store_key_task(uint8_t out[12], uint64_t job, uint32_t task);
size_t store_key_attempt(uint8_t out[16], uint64_t job, uint32_t task, uint32_t attempt);
uint64_t store_key_get64(const uint8_t *p);
uint32_t store_key_get32(const uint8_t *p);

/* store_map_size: the current map size in bytes. */
uint64_t store_map_size(const store_t *st);

#endif
