/* wrk_objects.h: the worker's cache of verified artifacts (TP shards, vocabularies),
 * content-addressed by SHA-256 under <state_dir>/objects/<sha256>.
 *
 * An object is fetched from the controller in chunks (SHARD_GET) into a
 * temporary file, hashed as it arrives, and renamed into place only when its
 * SHA-256 equals the one the controller's DISPATCH named; so a second job never
 * fetches it again and a damaged transfer is never used. Loaders check the hash
 * again before use (wrk_infer).
 * Thread-safety: one wrk_fetch per task, the worker's loop only.
 */
#ifndef MOAT_WRK_OBJECTS_H
#define MOAT_WRK_OBJECTS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"
#include "shared/sha256.h"

struct wrk_fetch {
    char sha[65];
    uint64_t total, off;
    int fd;                       /* -1 when idle */
    char tmp[600], path[600];
    sha256_t *hs;                 /* the bytes so far; NULL when idle */
    /* finishing: fsync and rename run on a thread so the worker's loop (and its
     * heartbeats) never waits for the disk */
    pthread_t thread;
    bool finishing;
    int done;                     /* atomic: 0 running, 1 stored, -errno failed */
};

/* wrk_objects_name_valid: sha is 64 lowercase hex digits (a SHA-256), the
 * only names the objects directory holds: anything else from a DISPATCH
 * ("../x", "/etc/x") would make a path outside it. */
bool wrk_objects_name_valid(const char *sha);

/* wrk_objects_path: <dir>/<sha> into out (cap bytes). Returns out. sha must
 * pass wrk_objects_name_valid() (callers check it where it comes in). */
char *wrk_objects_path(const char *dir, const char *sha, char *out, size_t cap);

/* wrk_objects_have: the object is in the cache (it was verified when stored). */
bool wrk_objects_have(const char *dir, const char *sha);

/* wrk_objects_sweep: remove the temporary files (<sha>.<tag>.part) of fetches
 * a previous run of the worker did not finish (it was killed mid-transfer;
 * each is as large as the part of a shard that came). Call before any fetch
 * starts. Returns how many, or -1 with err naming dir when it cannot be read;
 * a file that cannot be removed is skipped. */
int wrk_objects_sweep(const char *dir, struct err *err);

/* wrk_fetch_begin: start receiving object sha of total bytes into dir; tag makes
 * the temporary file name unique per task. errno codes naming the path. */
int wrk_fetch_begin(struct wrk_fetch *f, const char *dir, const char *sha, uint64_t total,
                    const char *tag, struct err *err);

/* wrk_fetch_chunk: the bytes at offset off (must equal the bytes received so far).
 * EPROTO for an out-of-order or oversized chunk; write errors. */
int wrk_fetch_chunk(struct wrk_fetch *f, const void *data, size_t len, uint64_t off, struct err *err);

/* wrk_fetch_done: all bytes arrived. */
bool wrk_fetch_done(const struct wrk_fetch *f);

/* wrk_fetch_finish: check the SHA-256 (EBADMSG naming both hashes on a mismatch;
 * the fetch is then idle), then start storing it (fsync, rename into the cache)
 * on a thread; wrk_fetch_poll() tells when that is over. */
int wrk_fetch_finish(struct wrk_fetch *f, struct err *err);

/* wrk_fetch_poll: for a finishing fetch: 0 still storing, 1 stored (the fetch is
 * idle), -1 with err when storing failed (idle). */
int wrk_fetch_poll(struct wrk_fetch *f, struct err *err);

/* wrk_fetch_busy: f is receiving or storing object sha. */
bool wrk_fetch_busy(const struct wrk_fetch *f, const char *sha);

/* wrk_fetch_abort: drop a partial fetch (waits for a storing thread). Idle or NULL: no-op. */
void wrk_fetch_abort(struct wrk_fetch *f);

#endif
