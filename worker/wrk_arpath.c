/* wrk_arpath.c: the all-reduce path rule, its 20-byte record and the group's exchange (see wrk_arpath.h).
 *
 * Invariant: wrk_arpath_decide() depends on nothing but its arguments, so ranks
 * that hold the same all-gathered table reach the same decision.
 */
#include "worker/wrk_arpath.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REC_VERSION 1
#define FLAG_GPU 0x01
#define FLAG_NCCL 0x02

const char *const wrk_arpath_names[WRK_ARPATH_COUNT] = {"auto", "nccl", "zeromq"};

int wrk_arpath_parse(const char *name, enum wrk_arpath *out, struct err *err)
{
    for (int i = 0; name != NULL && i < WRK_ARPATH_COUNT; i++)
        if (strcmp(name, wrk_arpath_names[i]) == 0) {
            *out = (enum wrk_arpath)i;
            return 0;
        }
    return err_set(err, EINVAL, "allreduce '%s': expected auto, nccl or zeromq",
                   name != NULL ? name : "(null)");
}

void wrk_arpath_rank_encode(const struct wrk_arpath_rank *r, uint8_t out[WRK_ARPATH_REC_LEN])
{
    memset(out, 0, WRK_ARPATH_REC_LEN);
    out[0] = REC_VERSION;
    out[1] = (uint8_t)((r->gpu ? FLAG_GPU : 0) | (r->nccl ? FLAG_NCCL : 0));
    out[2] = (uint8_t)r->want;
    if (r->gpu)
        memcpy(out + 4, r->uuid, 16);
}

int wrk_arpath_rank_decode(const uint8_t in[WRK_ARPATH_REC_LEN], struct wrk_arpath_rank *r,
                           struct err *err)
{
    static const uint8_t zero[16];
    if (in[0] != REC_VERSION)
        return err_set(err, EPROTO, "all-reduce record: version %u, expected %d", in[0],
                       REC_VERSION);
    if ((in[1] & ~(FLAG_GPU | FLAG_NCCL)) != 0)
        return err_set(err, EPROTO, "all-reduce record: flags 0x%02x", in[1]);
    if (in[2] >= WRK_ARPATH_COUNT)
        return err_set(err, EPROTO, "all-reduce record: want %u", in[2]);
    if (in[3] != 0)
        return err_set(err, EPROTO, "all-reduce record: reserved byte 0x%02x", in[3]);
    if (!(in[1] & FLAG_GPU) && memcmp(in + 4, zero, 16) != 0)
        return err_set(err, EPROTO, "all-reduce record: a device UUID without a GPU");
    memset(r, 0, sizeof *r);
    r->gpu = (in[1] & FLAG_GPU) != 0;
    r->nccl = (in[1] & FLAG_NCCL) != 0;
    r->want = (enum wrk_arpath)in[2];
    memcpy(r->uuid, in + 4, 16);
    return 0;
}

/* "GPU-" + 8-4-4-4-12 lowercase hex, as nvidia-smi prints it (41 bytes with NUL). */
static void uuid_format(const uint8_t u[16], char out[41])
{
    int o = snprintf(out, 41, "GPU-");
    for (int i = 0; i < 16; i++) {
        o += snprintf(out + o, (size_t)(41 - o), "%02x", u[i]);
        if (i == 3 || i == 5 || i == 7 || i == 9)
            out[o++] = '-';
    }
    out[o] = '\0';
}

static void why_set(char *why, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void why_set(char *why, size_t cap, const char *fmt, ...)
{
    if (why == NULL || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
}

int wrk_arpath_decide(const struct wrk_arpath_rank *ranks, int tp, enum wrk_arpath *out,
                      char *why, size_t why_cap, struct err *err)
{
    if (ranks == NULL || tp < 1)
        return err_set(err, EINVAL, "all-reduce path: %d ranks", tp);
    enum wrk_arpath want = ranks[0].want;
    for (int k = 0; k < tp; k++) {
        if ((unsigned)ranks[k].want >= WRK_ARPATH_COUNT)
            return err_set(err, EINVAL, "all-reduce path: rank %d: want %d", k,
                           (int)ranks[k].want);
        if (ranks[k].want != want) /* rule 1 */
            return err_set(err, EINVAL, "allreduce: rank 0 asks for %s, rank %d for %s",
                           wrk_arpath_names[want], k, wrk_arpath_names[ranks[k].want]);
    }
    bool need = want == WRK_ARPATH_NCCL;
    if (want == WRK_ARPATH_ZEROMQ) { /* rule 2 */
        *out = WRK_ARPATH_ZEROMQ;
        why_set(why, why_cap, "the spec asks for zeromq");
        return 0;
    }
    for (int k = 0; k < tp; k++)
        if (!ranks[k].gpu) { /* rule 3 */
            if (need)
                return err_set(err, EINVAL, "allreduce nccl: rank %d is not on a GPU", k);
            *out = WRK_ARPATH_ZEROMQ;
            why_set(why, why_cap, "rank %d is not on a GPU", k);
            return 0;
        }
    for (int k = 0; k < tp; k++)
        if (!ranks[k].nccl) { /* rule 4 */
            if (need)
                return err_set(err, ENOTSUP, "allreduce nccl: rank %d's build has no NCCL", k);
            *out = WRK_ARPATH_ZEROMQ;
            why_set(why, why_cap, "rank %d's build has no NCCL", k);
            return 0;
        }
    for (int i = 0; i < tp; i++)
        for (int j = i + 1; j < tp; j++)
            if (memcmp(ranks[i].uuid, ranks[j].uuid, 16) == 0) { /* rule 5 */
                char u[41];
                uuid_format(ranks[i].uuid, u);
                if (need)
                    return err_set(err, EINVAL, "allreduce nccl: ranks %d and %d share %s "
                                   "(NCCL needs a GPU per rank)", i, j, u);
                *out = WRK_ARPATH_ZEROMQ;
                why_set(why, why_cap, "ranks %d and %d share %s", i, j, u);
                return 0;
            }
    *out = WRK_ARPATH_NCCL; /* rule 6 */
    if (tp == 1)
        why_set(why, why_cap, "one rank, on a GPU");
    else
        why_set(why, why_cap, "%d ranks on %d distinct GPUs", tp, tp);
    return 0;
}

int wrk_arpath_choose(wrk_comm_t *comm, const struct wrk_arpath_rank *mine,
                      enum wrk_arpath *out, char *why, size_t why_cap, struct err *err)
{
    if (comm == NULL || mine == NULL)
        return err_set(err, EINVAL, "all-reduce path: comm or record NULL");
    int tp = wrk_comm_tp(comm), rank = wrk_comm_rank(comm);
    if (tp == 1)
        return wrk_arpath_decide(mine, 1, out, why, why_cap, err);
    uint8_t *table = calloc((size_t)tp, WRK_ARPATH_REC_LEN);
    struct wrk_arpath_rank *ranks = calloc((size_t)tp, sizeof *ranks);
    int rc = -1;
    if (table == NULL || ranks == NULL) {
        err_set(err, ENOMEM, "all-reduce path: out of memory");
        goto out;
    }
    uint8_t *slot = table + (size_t)rank * WRK_ARPATH_REC_LEN;
    wrk_arpath_rank_encode(mine, slot);
    if (wrk_comm_allgather(comm, slot, WRK_ARPATH_REC_LEN, table, err) != 0)
        goto out;
    for (int k = 0; k < tp; k++)
        if (wrk_arpath_rank_decode(table + (size_t)k * WRK_ARPATH_REC_LEN, &ranks[k], err)
            != 0) {
            err_prefix(err, "rank %d", k);
            goto out;
        }
    rc = wrk_arpath_decide(ranks, tp, out, why, why_cap, err);
out:
    free(table);
    free(ranks);
    return rc;
}
