/* wrk_nccl.c: NCCL all-reduce for GPU TP ranks (a stub without CUDA). */
#include "worker/wrk_nccl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#ifdef MOAT_HAVE_NCCL
#include <cuda_runtime.h>
#include <nccl.h>

struct wrk_nccl {
    ncclComm_t comm;
    cudaStream_t stream;
    int tp, rank;
};

bool wrk_nccl_available(void) { return true; }

static int nccl_err(struct err *err, ncclResult_t r, const char *call)
{
    return err_set(err, EIO, "%s: %s", call, ncclGetErrorString(r));
}

wrk_nccl_t *wrk_nccl_create(wrk_comm_t *comm, krn_backend_t *be, int tp, int rank, struct err *err)
{
    void *stream = krn_backend_cuda_stream(be);
    if (stream == NULL) {
        err_set(err, EINVAL, "nccl: the backend is not cuda");
        return NULL;
    }
    if (tp < 1 || rank < 0 || rank >= tp || (tp > 1 && comm == NULL)) {
        err_set(err, EINVAL, "nccl: rank %d of tp %d needs the group's channel", rank, tp);
        return NULL;
    }
    ncclUniqueId id;
    ncclResult_t r;
    if (rank == 0 && (r = ncclGetUniqueId(&id)) != ncclSuccess) {
        nccl_err(err, r, "ncclGetUniqueId");
        return NULL;
    }
    /* the id crosses the fabric inside the group's authenticated channel */
    if (tp > 1 && wrk_comm_bcast(comm, &id, sizeof id, err) != 0)
        return NULL;
    struct krn_device_info info;
    if (krn_backend_info(be, &info, err) != 0)
        return NULL;
    wrk_nccl_t *n = calloc(1, sizeof *n);
    if (n == NULL) {
        err_set(err, ENOMEM, "nccl: out of memory");
        return NULL;
    }
    n->stream = (cudaStream_t)stream;
    n->tp = tp;
    n->rank = rank;
    if ((r = ncclCommInitRank(&n->comm, tp, id, rank)) != ncclSuccess) {
        nccl_err(err, r, "ncclCommInitRank");
        free(n);
        return NULL;
    }
    return n;
}

void wrk_nccl_destroy(wrk_nccl_t *n)
{
    if (n == NULL)
        return;
    ncclCommDestroy(n->comm);
    free(n);
}

int wrk_nccl_allreduce_sum(void *ctx, float *buf, size_t count, struct err *err)
{
    wrk_nccl_t *n = ctx;
    ncclResult_t r = ncclAllReduce(buf, buf, count, ncclFloat32, ncclSum, n->comm, n->stream);
    if (r != ncclSuccess)
        return nccl_err(err, r, "ncclAllReduce");
    cudaError_t c = cudaStreamSynchronize(n->stream);
    if (c != cudaSuccess)
        return err_set(err, EIO, "cudaStreamSynchronize: %s", cudaGetErrorName(c));
    return 0;
}

#else /* no CUDA in this build */

struct wrk_nccl {
    int unused;
};

bool wrk_nccl_available(void) { return false; }

wrk_nccl_t *wrk_nccl_create(wrk_comm_t *comm, krn_backend_t *be, int tp, int rank, struct err *err)
{
    (void)comm;
    (void)be;
    (void)tp;
    (void)rank;
    err_set(err, ENOTSUP, "nccl: built without NCCL (CUDA=0 or NCCL=0)");
    return NULL;
}

void wrk_nccl_destroy(wrk_nccl_t *n) { free(n); }

int wrk_nccl_allreduce_sum(void *ctx, float *buf, size_t count, struct err *err)
{
    (void)ctx;
    (void)buf;
    (void)count;
    return err_set(err, ENOTSUP, "nccl: built without NCCL (CUDA=0 or NCCL=0)");
}

#endif

struct wrk_allreduce wrk_nccl_allreduce(wrk_nccl_t *n)
{
    struct wrk_allreduce ar = {wrk_nccl_allreduce_sum, n};
    return ar;
}
