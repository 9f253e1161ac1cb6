/* wrk_stage.c: the staged all-reduce: backend memory -> host scratch -> inner all-reduce -> back.
 *
 * Invariants: host holds cap floats (cap 0: host NULL); failed.code != 0 once
 * a copy or the scratch failed, and then the inner all-reduce is never called
 * again (see wrk_stage.h, "Failure").
 */
#include "worker/wrk_stage.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

struct wrk_stage {
    krn_backend_t *be;
    struct wrk_allreduce inner;
    float *host;        /* [cap] scratch */
    size_t cap;
    struct err failed;  /* code != 0: sticky */
};

wrk_stage_t *wrk_stage_create(krn_backend_t *be, const struct wrk_allreduce *inner,
                              struct err *err)
{
    if (be == NULL || inner == NULL || inner->allreduce_sum == NULL) {
        err_set(err, EINVAL, "stage: backend or inner all-reduce is NULL");
        return NULL;
    }
    wrk_stage_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        err_set(err, ENOMEM, "stage: out of memory");
        return NULL;
    }
    s->be = be;
    s->inner = *inner;
    return s;
}

void wrk_stage_destroy(wrk_stage_t *s)
{
    if (s == NULL)
        return;
    free(s->host);
    free(s);
}

/* Record *e, an error of the adapter's own: sticky from here on. */
static int stage_fail(wrk_stage_t *s, struct err *e, const char *step, struct err *err)
{
    err_prefix(e, "stage %s", step);
    s->failed = *e;
    if (err != NULL)
        *err = *e;
    return -1;
}

int wrk_stage_allreduce_sum(void *ctx, float *buf, size_t n, struct err *err)
{
    wrk_stage_t *s = ctx;
    if (s == NULL || (buf == NULL && n > 0))
        return err_set(err, EINVAL, "stage all-reduce: NULL argument");
    if (n > SIZE_MAX / sizeof(float))
        return err_set(err, EINVAL, "stage all-reduce: %zu floats", n);
    if (s->failed.code != 0) {
        if (err != NULL)
            *err = s->failed;
        return -1;
    }
    struct err e = {0};
    if (n > s->cap) {
        float *h = realloc(s->host, n * sizeof *h);
        if (h == NULL) {
            err_set(&e, ENOMEM, "out of memory for %zu floats", n);
            return stage_fail(s, &e, "scratch", err);
        }
        s->host = h;
        s->cap = n;
    }
    size_t bytes = n * sizeof(float);
    if (krn_ptr_download(s->be, s->host, buf, bytes, &e) != 0)
        return stage_fail(s, &e, "download", err);
    if (s->inner.allreduce_sum(s->inner.ctx, n > 0 ? s->host : NULL, n, err) != 0)
        return -1;
    if (krn_ptr_upload(s->be, buf, s->host, bytes, &e) != 0)
        return stage_fail(s, &e, "upload", err);
    return 0;
}

struct wrk_allreduce wrk_stage_allreduce(wrk_stage_t *s)
{
    struct wrk_allreduce ar = {wrk_stage_allreduce_sum, s};
    return ar;
}
