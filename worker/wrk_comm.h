/* wrk_comm.h: a TP group's collectives between rank processes over ZeroMQ, on host memory.
 *
 * Rank 0 binds a ROUTER on the group's endpoint; ranks 1..tp-1 connect DEALERs
 * to it. This module wraps its own ZeroMQ context and sockets (it includes
 * zmq.h in wrk_comm.c; nothing of ZeroMQ shows through this header), separate
 * from the fabric's sockets in shared/net.h. tp == 1 opens no socket at all.
 *
 * Security. Every link is CURVE (ZeroMQ RFC 26: Curve25519 key exchange,
 * XSalsa20-Poly1305), with keys the controller makes for each attempt of each
 * TP group and sends each rank with its dispatch over its own CURVE link
 * (struct wrk_comm_keys): rank 0's ROUTER is the CURVE server with rank 0's
 * key; each rank k connects as a CURVE client pinning rank 0's public key with
 * rank k's own pair. Rank 0 runs a ZAP handler (RFC 27) in its context that
 * admits exactly the public keys of ranks 1..tp-1 and fails closed (no answer,
 * no connection); a message counts as rank k's only when it comes over a
 * connection authenticated with rank k's key and under rank k's routing id.
 * So a peer without the attempt's keys (another attempt's rank, anyone on the
 * fabric) can neither read the activations nor join, and no member can speak
 * for another. Rank k fails at once (ECONNREFUSED) when rank 0's ZAP handler
 * refuses its key, or when what listens on the endpoint answers without CURVE
 * (a handshake protocol error); a handshake that just breaks off (a lost
 * connection, or a peer holding another rank 0 key, which libzmq cannot tell
 * apart) is retried, and named in the ETIMEDOUT if the wait runs out. Rank 0
 * answers ZAP requests only while it waits for a message (the rendezvous,
 * every collective): a member reconnecting while rank 0 computes waits that
 * long (libzmq's handshake limit is 30 s).
 *
 * Rendezvous. Rank k > 0 sets its routing id to "<k>/<group>" and sends HELLO;
 * rank 0 waits until HELLO has come from every rank 1..tp-1 with the same tp,
 * then answers WELCOME to each. A keyed peer whose routing id is not its own
 * rank's of this group (another group name, another rank's id) gets REFUSE and
 * can never take part; anything else it sends is dropped (a peer without the
 * keys does not get this far). Every wait is bounded by timeout_s.
 *
 * All-gather. Ranks k > 0 send their len bytes to rank 0 (GATHER); rank 0
 * waits for all, lays them out in rank order and sends the whole tp * len
 * bytes back (GATHERED), so every rank ends with the same table.
 *
 * All-reduce (sum). Ranks k > 0 send their partial buffer to rank 0 (PARTIAL);
 * rank 0 waits for all of them, sums element-wise in rank order 0, 1, 2, ...
 * (so the result does not depend on arrival order) and sends the sum back
 * (SUM). Every rank therefore ends with bit-identical buffers, equal to what
 * the in-process reference (tests/unit/test_bert.c) computes. Each collective
 * call (all-reduce, broadcast or all-gather) has a sequence number, 1 for the first call,
 * carried in every message of that call; all ranks must make the same calls in
 * the same order with the same sizes.
 *
 * Failure. Any failure inside a collective (ETIMEDOUT, EPROTO, EHOSTUNREACH,
 * a peer's ABORT) makes the handle sticky-failed: the call and every later
 * call return that error, and the handle sends ABORT (best effort) to rank 0
 * (from rank k) or to every rank (from rank 0), so the whole group fails fast
 * instead of each rank waiting out its timeout. wrk_comm_abort() does the same
 * for an error the caller hit outside the collectives.
 *
 * Message format (version 1). Every message is exactly two frames (the ROUTER
 * also sees the sender's routing id before them, which is not part of it):
 *   frame 0: header, 24 bytes, network byte order:
 *     magic u32 = 0x4D4F4152 ("MOAR"), version u8 = 1, type u8, flags u16 (0),
 *     rank u16 (the sender), tp u16, seq u32 (the collective call; 0 outside
 *     one), count u64 (elements of frame 1: f32 for PARTIAL/SUM, bytes else)
 *   frame 1: body:
 *     HELLO   1  group (bytes)            rank k -> 0
 *     WELCOME 2  group                    0 -> k, once every rank has said HELLO
 *     REFUSE  3  reason (text)            0 -> a peer that is not in the group
 *     PARTIAL 4  count f32, raw little-endian, never re-encoded    k -> 0
 *     SUM     5  count f32, raw little-endian                      0 -> k
 *     BCAST   6  count bytes                                       0 -> k
 *     ABORT   7  reason (text)            either way: the sender has failed
 *     GATHER  8  count bytes (this rank's)                         k -> 0
 *     GATHERED 9 count = tp * len bytes, rank 0's first            0 -> k
 * (GATHER and GATHERED were added within version 1: a build without them
 * rejects them as an unknown type, EPROTO, so a mixed group fails at once.)
 * A message from a group member is checked field by field: header length,
 * magic, version, flags, type, rank (must match the routing id), tp, seq,
 * count against the call's, body length == count * element size, frame count;
 * a failed check is EPROTO naming it. Tensors are host f32 (this module, like
 * shared/model.h, assumes little-endian hosts).
 *
 * NCCL seam (GPU ranks): the NCCL all-reduce (worker/wrk_nccl.h) has the same
 * function signature as wrk_comm_allreduce_sum() (so it plugs into struct
 * wrk_allreduce unchanged), and its ncclUniqueId (128 bytes) travels over this
 * rendezvous: rank 0 calls ncclGetUniqueId() and wrk_comm_bcast(), every rank
 * then ncclCommInitRank(tp, id, rank). The ZeroMQ all-reduce itself needs host
 * memory; GPU ranks use it through worker/wrk_stage.h, which copies the device
 * buffer to host memory and back around it. Which of the two a group uses is
 * decided by all its ranks together (worker/wrk_arpath.h, over
 * wrk_comm_allgather()): NCCL only when every rank has a GPU of its own (distinct
 * device UUIDs) and NCCL in its build, else ZeroMQ.
 *
 * Thread-safety: one handle per thread; different handles (even of one group)
 * may live in different threads of one process, each with its own context.
 */
#ifndef MOAT_WRK_COMM_H
#define MOAT_WRK_COMM_H

#include <stdbool.h>
#include <stddef.h>

#include "shared/err.h"
#include "worker/wrk_bert.h"

/* Limits: tp in [1, WRK_COMM_TP_MAX]; group 1..WRK_COMM_GROUP_MAX bytes of
 * [A-Za-z0-9._:-]; frames above WRK_COMM_MSG_MAX bytes drop the sender's
 * connection (libzmq ZMQ_MAXMSGSIZE). */
#define WRK_COMM_TP_MAX 256
#define WRK_COMM_GROUP_MAX 200
#define WRK_COMM_MSG_MAX ((long long)1 << 30)

typedef struct wrk_comm wrk_comm_t;

/* A CURVE key in Z85 text (ZeroMQ RFC 32): 40 characters for 32 bytes. */
#define WRK_COMM_KEY_LEN 40

/* The CURVE keys of one attempt of one TP group, as the controller's dispatch
 * gives them to rank `rank` (docs/protocol.md, DISPATCH "comm_key",
 * "comm_keys"). Borrowed: wrk_comm_create() copies what it needs.
 * secret:  this rank's secret key (Z85, WRK_COMM_KEY_LEN chars).
 * publics: tp public keys (Z85), in rank order, pairwise distinct; publics[0]
 *          is rank 0's, the CURVE server's; publics[rank] must be secret's. */
struct wrk_comm_keys {
    const char *secret;
    const char *const *publics;
};

/* wrk_comm_create: join TP group `group` (e.g. "job.task.attempt": unique per
 * attempt, so that no rank of another attempt can join) as rank of tp.
 * endpoint: rank 0's ZeroMQ endpoint, e.g. "tcp://127.0.0.1:29517"; rank 0
 * binds it (a wildcard port "tcp://127.0.0.1:*" works there, see
 * wrk_comm_endpoint()), the others connect to it (before or after rank 0 has
 * bound: ZeroMQ retries). Ignored (may be NULL) when tp == 1.
 * keys: the attempt's CURVE keys (see struct wrk_comm_keys); required when
 * tp > 1 (no plaintext mode), ignored (may be NULL) when tp == 1.
 * timeout_s > 0 bounds the rendezvous and, later, every single wait.
 * Blocks until the whole group is present (rank 0: every HELLO; rank k:
 * WELCOME). Returns a handle (caller frees with wrk_comm_destroy()) or NULL
 * with err: EINVAL (arguments, naming the bad one: a malformed or repeated key,
 * a secret that is not publics[rank]'s; rank 0 also when a member announces
 * another tp),
 * ETIMEDOUT (rank 0: names the missing ranks; rank k: no WELCOME),
 * ECONNREFUSED (rank k: rank 0 refused it: its key, at the CURVE handshake;
 * another group or tp, at HELLO),
 * ECANCELED (a member aborted), EPROTO, EADDRINUSE and other bind/connect
 * errno values (endpoint named), ENOMEM. */
wrk_comm_t *wrk_comm_create(const char *endpoint, const char *group, int tp, int rank,
                            const struct wrk_comm_keys *keys, double timeout_s,
                            struct err *err);

/* wrk_comm_destroy: close the sockets. Queued outgoing messages (rank 0's last
 * SUM) get up to min(timeout_s, 10 s) to leave; after a failure (a best-effort
 * ABORT) up to min(timeout_s, 1 s). NULL is a no-op. */
void wrk_comm_destroy(wrk_comm_t *c);

/* wrk_comm_allreduce_sum: replace buf[0..n) on every rank with the element-wise
 * sum over the group, summed in rank order (see the top comment).
 * ctx: a wrk_comm_t *. buf: n host floats (may be NULL when n == 0), caller-
 * owned, untouched on failure on ranks k > 0. n must be equal on every rank.
 * A no-op (0) when tp == 1. Errors (sticky, see the top comment): ETIMEDOUT
 * (names the rank waited for), EPROTO (names the rank and the failed check),
 * ECANCELED (a rank aborted; its reason is in the message), EHOSTUNREACH,
 * EINVAL (arguments; not sticky).
 * Signature of struct wrk_allreduce's callback; see wrk_comm_allreduce(). */
int wrk_comm_allreduce_sum(void *ctx, float *buf, size_t n, struct err *err);

/* wrk_comm_allreduce: {wrk_comm_allreduce_sum, c} for wrk_bert_create(). */
struct wrk_allreduce wrk_comm_allreduce(wrk_comm_t *c);

/* wrk_comm_bcast: copy rank 0's len bytes at buf into every rank's buf (the
 * ncclUniqueId exchange; the runner's input-consistency check). len must be
 * equal on every rank (EPROTO otherwise). Rank 0 does not wait for delivery.
 * Errors as wrk_comm_allreduce_sum(). */
int wrk_comm_bcast(wrk_comm_t *c, void *buf, size_t len, struct err *err);

/* wrk_comm_allgather: every rank contributes len bytes (mine) and receives
 * every rank's, in rank order: all[k * len .. (k + 1) * len) = rank k's mine,
 * bit for bit and the same on every rank (the all-reduce path choice,
 * worker/wrk_arpath.h). all: tp * len bytes, caller-owned; mine may be
 * all + rank * len (in place), else it must not overlap all. len must be
 * equal on every rank (EPROTO otherwise); len == 0 is a valid (empty) call.
 * tp == 1 copies mine into all. On failure the other ranks' slots of all
 * are unspecified. Errors as wrk_comm_allreduce_sum() (sticky); EINVAL (NULL with
 * len > 0, tp * len over WRK_COMM_MSG_MAX; not sticky). */
int wrk_comm_allgather(wrk_comm_t *c, const void *mine, size_t len, void *all,
                       struct err *err);

/* wrk_comm_abort: tell the group that this rank has failed with why (best
 * effort, does not wait); the handle becomes sticky-failed (ECANCELED). Rank 0
 * tells every rank, rank k tells rank 0, which passes it on in its next
 * collective. A no-op when tp == 1 or when the handle has already failed
 * (it has then told the group already). */
void wrk_comm_abort(wrk_comm_t *c, const struct err *why);

/* wrk_comm_key_valid: key is a CURVE key in Z85 text: WRK_COMM_KEY_LEN
 * characters of ZeroMQ RFC 32's alphabet (the rank spec's check). */
bool wrk_comm_key_valid(const char *key);

/* Accessors; never fail. wrk_comm_endpoint: rank 0's bound endpoint with any
 * wildcard port resolved (ZMQ_LAST_ENDPOINT), else the endpoint given; "" when
 * tp == 1. Borrowed: valid until wrk_comm_destroy(). */
int wrk_comm_rank(const wrk_comm_t *c);
int wrk_comm_tp(const wrk_comm_t *c);
const char *wrk_comm_endpoint(const wrk_comm_t *c);

/* wrk_comm_send_raw: tests only: send n arbitrary frames as this rank (ranks
 * k > 0: to rank 0; rank 0: to rank `to`), so that tests can put malformed
 * messages on the wire under a member's routing id. EINVAL, EHOSTUNREACH. */
int wrk_comm_send_raw(wrk_comm_t *c, int to, const void *const *frames, const size_t *lens,
                      int n, struct err *err);

#endif
