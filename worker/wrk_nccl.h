/* wrk_nccl.h: the TP group's all-reduce through NCCL, for ranks whose activations
 * live on a GPU (the "cuda" backend).
 *
 * Rendezvous: rank 0 creates an ncclUniqueId and the group's ZeroMQ channel
 * (worker/wrk_comm.h, already joined) broadcasts it; every rank then calls
 * ncclCommInitRank on its own device. The all-reduce is ncclAllReduce(sum, f32)
 * on the backend's stream (krn_backend_cuda_stream), in place, then a stream
 * synchronise, so the buffer holds the sum when the call returns, as struct
 * wrk_allreduce requires. NCCL's ring/tree sum order is fixed for a given
 * communicator, so every rank gets the same result (NCCL docs: "Reproducibility").
 * NCCL cannot place two ranks of one communicator on the same GPU; on a one-GPU
 * machine only tp == 1 can be tested here (a single-rank communicator). Groups
 * use NCCL only when every rank has a GPU of its own (worker/wrk_arpath.h);
 * otherwise GPU ranks all-reduce over ZeroMQ through worker/wrk_stage.h.
 * Built only when CUDA is and NCCL is not switched off (MOAT_HAVE_NCCL; make
 * NCCL=0); otherwise wrk_nccl_create fails with ENOTSUP ("built without NCCL").
 * Errors from NCCL become EIO naming the call and ncclGetErrorString.
 * Thread-safety: one handle per rank process.
 */
#ifndef MOAT_WRK_NCCL_H
#define MOAT_WRK_NCCL_H

#include <stdbool.h>
#include <stddef.h>

#include "kernels/krn.h"
#include "shared/err.h"
#include "worker/wrk_bert.h"
#include "worker/wrk_comm.h"

typedef struct wrk_nccl wrk_nccl_t;

/* wrk_nccl_available: this build has NCCL. */
bool wrk_nccl_available(void);

/* wrk_nccl_create: join the NCCL communicator of the group that comm (borrowed,
 * joined; NULL allowed when tp == 1) connects, on be's device and stream (be must be
 * a "cuda" backend; borrowed, must outlive the handle). Caller frees with
 * wrk_nccl_destroy(). ENOTSUP (no NCCL in this build), EINVAL (not a cuda backend,
 * bad tp/rank), EIO (NCCL), and comm's errors during the id broadcast. */
wrk_nccl_t *wrk_nccl_create(wrk_comm_t *comm, krn_backend_t *be, int tp, int rank, struct err *err);

/* wrk_nccl_destroy: ncclCommDestroy and free; NULL is a no-op. */
void wrk_nccl_destroy(wrk_nccl_t *n);

/* wrk_nccl_allreduce_sum: struct wrk_allreduce callback; buf: f32 [n] in device
 * memory (krn_buf_ptr of a cuda buffer). EIO on an NCCL or CUDA error. */
int wrk_nccl_allreduce_sum(void *ctx, float *buf, size_t n, struct err *err);

/* wrk_nccl_allreduce: {wrk_nccl_allreduce_sum, n} for wrk_bert_create(). */
struct wrk_allreduce wrk_nccl_allreduce(wrk_nccl_t *n);

#endif
