/* wrk_arpath.h: which all-reduce a TP group uses (NCCL or ZeroMQ), decided by all its ranks together.
 *
 * Two paths exist: NCCL on device memory (worker/wrk_nccl.h) and ZeroMQ on
 * host memory (worker/wrk_comm.h; GPU ranks go through worker/wrk_stage.h,
 * which copies device memory to the host and back around it). Every rank
 * must take the same path: NCCL's set-up starts with a broadcast of its
 * unique id over the ZeroMQ channel, so a group that disagrees goes out of
 * step and fails only at its timeout. Hence each rank describes itself in a
 * record, the records are exchanged with wrk_comm_allgather(), and every rank
 * applies the same pure function (wrk_arpath_decide()) to the same table.
 *
 * The rule, in this order (the first that applies; "want" is the spec's
 * "allreduce" key, and must be the same on every rank):
 *   1. the ranks want different things          -> EINVAL on every rank
 *   2. want "zeromq"                            -> ZeroMQ
 *   3. a rank is not on a GPU (a "cpu" rank)    -> ZeroMQ (want "nccl": EINVAL)
 *   4. a rank's build has no NCCL               -> ZeroMQ (want "nccl": ENOTSUP)
 *   5. two ranks share a GPU (equal device UUID,
 *      krn_cuda_device_uuid(): the same physical
 *      device whatever its index in each process,
 *      which NCCL cannot use for two ranks)     -> ZeroMQ (want "nccl": EINVAL)
 *   6. otherwise: every rank on a GPU of its own -> NCCL
 * Each outcome comes with a one-line reason for the log.
 *
 * Record (WRK_ARPATH_REC_LEN = 20 bytes, one per rank, the all-gather's unit):
 *   byte 0     version = 1
 *   byte 1     flags: bit 0 gpu, bit 1 nccl; other bits 0
 *   byte 2     want: 0 auto, 1 nccl, 2 zeromq
 *   byte 3     0 (reserved)
 *   bytes 4-19 the device UUID, raw (zeros when not gpu)
 * A record that fails a check is EPROTO naming the rank and the check.
 *
 * Thread-safety: every function is reentrant; wrk_arpath_choose() uses the
 * comm handle (one per thread).
 */
#ifndef MOAT_WRK_ARPATH_H
#define MOAT_WRK_ARPATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"
#include "worker/wrk_comm.h"

/* What a spec asks for ("allreduce" key) and what a group uses (NCCL or ZEROMQ). */
enum wrk_arpath {
    WRK_ARPATH_AUTO,   /* a request only: NCCL when rule 6 holds, else ZeroMQ */
    WRK_ARPATH_NCCL,
    WRK_ARPATH_ZEROMQ,
    WRK_ARPATH_COUNT
};
extern const char *const wrk_arpath_names[WRK_ARPATH_COUNT]; /* "auto", "nccl", "zeromq" */

/* wrk_arpath_parse: "auto" | "nccl" | "zeromq" into *out; EINVAL otherwise. */
int wrk_arpath_parse(const char *name, enum wrk_arpath *out, struct err *err);

/* One rank's description of itself. */
struct wrk_arpath_rank {
    bool gpu;              /* its activations live on a CUDA device ("cuda" backend) */
    bool nccl;             /* its build has NCCL (wrk_nccl_available()) */
    enum wrk_arpath want;  /* its spec's request */
    uint8_t uuid[16];      /* its device's UUID when gpu (krn_cuda_device_uuid) */
};

#define WRK_ARPATH_REC_LEN 20

/* wrk_arpath_rank_encode: r into the 20-byte record above. Never fails. */
void wrk_arpath_rank_encode(const struct wrk_arpath_rank *r, uint8_t out[WRK_ARPATH_REC_LEN]);

/* wrk_arpath_rank_decode: a record into *r; EPROTO naming the failed check
 * (version, flags, want, reserved byte, a non-zero UUID without gpu). */
int wrk_arpath_rank_decode(const uint8_t in[WRK_ARPATH_REC_LEN], struct wrk_arpath_rank *r,
                           struct err *err);

/* wrk_arpath_decide: apply the rule above to ranks[0 .. tp). On success *out
 * is WRK_ARPATH_NCCL or WRK_ARPATH_ZEROMQ and why (why_cap bytes, may be NULL
 * when why_cap is 0) a lowercase reason, e.g. "ranks 0 and 1 share
 * GPU-6c3e0fa1-..."; on failure why is untouched. Errors: EINVAL (tp < 1, a
 * want out of range, rules 1, 3, 5), ENOTSUP (rule 4 with want "nccl"). */
int wrk_arpath_decide(const struct wrk_arpath_rank *ranks, int tp, enum wrk_arpath *out,
                      char *why, size_t why_cap, struct err *err);

/* wrk_arpath_choose: the group's decision: encode mine, all-gather every
 * rank's record over comm (one collective call: every rank of the group must
 * make it at the same point), decode them and wrk_arpath_decide(). tp == 1
 * decides on mine alone, without a call. Same outputs and errors as
 * wrk_arpath_decide(), plus comm's (sticky; wrk_comm_allgather()), EPROTO (a
 * bad record, naming its rank) and ENOMEM. */
int wrk_arpath_choose(wrk_comm_t *comm, const struct wrk_arpath_rank *mine,
                      enum wrk_arpath *out, char *why, size_t why_cap, struct err *err);

#endif
