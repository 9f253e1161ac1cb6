/* wrk_stage.h: a TP all-reduce on backend memory through an all-reduce on host memory.
 *
 * The ZeroMQ all-reduce (worker/wrk_comm.h) sums host floats; the BERT forward
 * (worker/wrk_bert.h) hands its all-reduce a krn_buf_ptr(), which is a device
 * pointer on the "cuda" backend. The adapter sits between them: each call
 * copies the n floats from the backend to a host scratch buffer
 * (krn_ptr_download), calls the inner all-reduce on the scratch, and copies the
 * sum back (krn_ptr_upload). The sum is the inner one's, bit for bit, so ranks
 * that stage and ranks that do not (a "cpu" rank in the same group) end
 * identical. Used for GPU ranks that cannot use NCCL, e.g. several ranks
 * sharing one GPU (worker/wrk_arpath.h decides).
 *
 * Cost per call: two synchronous PCIe copies of 4n bytes through pageable host
 * memory, plus the inner all-reduce. The scratch buffer grows to the largest n
 * seen (never shrinks) and is owned by the adapter.
 *
 * Failure. The inner all-reduce's errors pass through unchanged (the ZeroMQ one
 * is sticky and tells its group itself). A failure of the adapter's own (a copy:
 * EIO; the scratch: ENOMEM) happens before or after the inner call, so this
 * rank is then out of step with its group: the adapter becomes sticky-failed,
 * returns that error from every later call without calling the inner one, and
 * the caller must tell the group (wrk_comm_abort(), as worker/wrk_infer.c does
 * on any failure) so that the other ranks do not wait out their timeout.
 *
 * Thread-safety: one adapter per rank thread (it uses its backend handle).
 */
#ifndef MOAT_WRK_STAGE_H
#define MOAT_WRK_STAGE_H

#include <stddef.h>

#include "kernels/krn.h"
#include "shared/err.h"
#include "worker/wrk_bert.h"

typedef struct wrk_stage wrk_stage_t;

/* wrk_stage_create: an adapter for buffers of be around inner, an all-reduce
 * on host floats (e.g. wrk_comm_allreduce()). be: Borrowed, must outlive the
 * adapter; any backend ("ref"/"cpu" stage host to host, which tests use).
 * inner: copied; its ctx is Borrowed and must outlive the adapter.
 * Returns a handle (caller frees with wrk_stage_destroy()) or NULL with err:
 * EINVAL (be, inner or its callback NULL), ENOMEM. */
wrk_stage_t *wrk_stage_create(krn_backend_t *be, const struct wrk_allreduce *inner,
                              struct err *err);

/* wrk_stage_destroy: free the scratch buffer and the handle; NULL is a no-op. */
void wrk_stage_destroy(wrk_stage_t *s);

/* wrk_stage_allreduce_sum: struct wrk_allreduce callback. ctx: a wrk_stage_t *.
 * buf: f32 [n] backend memory of the adapter's backend (krn_buf_ptr of one of
 * its buffers, plus an offset; see krn_ptr_download); may be NULL when n == 0,
 * in which case the inner all-reduce is still called (every rank must make the
 * same calls). On return buf holds the group's sum; on failure buf is
 * unchanged. Errors: the inner all-reduce's; EIO (a copy; sticky), ENOMEM
 * (scratch; sticky), EINVAL (ctx NULL, buf NULL with n > 0, n * 4 over
 * SIZE_MAX; not sticky). */
int wrk_stage_allreduce_sum(void *ctx, float *buf, size_t n, struct err *err);

/* wrk_stage_allreduce: {wrk_stage_allreduce_sum, s} for wrk_bert_create(). */
struct wrk_allreduce wrk_stage_allreduce(wrk_stage_t *s);

#endif
