/* test_arpath.c: the choice of a TP group's all-reduce path (worker/wrk_arpath.c).
 *
 * The rule (wrk_arpath_decide) on hand-made tables, one case per rule; the
 * 20-byte record's round trip and every decode check; and the exchange
 * (wrk_arpath_choose) in real groups of threads over loopback ZeroMQ, where
 * every rank must reach the same decision. No GPU is needed: the UUIDs are
 * made up, as another node's would be.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/tp_fixture.h"

#include "worker/wrk_arpath.h"

#define MAX_RANKS 4

/* A GPU rank on device `gpu` (made-up UUID: byte 0 = gpu, byte 15 = 0xa5). */
static struct wrk_arpath_rank gpu_rank(int gpu, enum wrk_arpath want)
{
    struct wrk_arpath_rank r = {.gpu = true, .nccl = true, .want = want};
    r.uuid[0] = (uint8_t)gpu;
    r.uuid[15] = 0xa5;
    return r;
}

static void test_parse_and_names(void **state)
{
    (void)state;
    struct err e = {0};
    enum wrk_arpath p;
    for (int i = 0; i < WRK_ARPATH_COUNT; i++) {
        assert_int_equal(wrk_arpath_parse(wrk_arpath_names[i], &p, &e), 0);
        assert_int_equal(p, i);
    }
    assert_string_equal(wrk_arpath_names[WRK_ARPATH_AUTO], "auto");
    assert_int_equal(wrk_arpath_parse("NCCL", &p, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_non_null(strstr(e.msg, "expected auto, nccl or zeromq"));
    assert_int_equal(wrk_arpath_parse(NULL, &p, &e), -1);
    assert_int_equal(e.code, EINVAL);
}

static void test_record_round_trip_and_garbage(void **state)
{
    (void)state;
    struct err e = {0};
    struct wrk_arpath_rank in = gpu_rank(7, WRK_ARPATH_ZEROMQ), out;
    uint8_t rec[WRK_ARPATH_REC_LEN];
    wrk_arpath_rank_encode(&in, rec);
    static const uint8_t want[WRK_ARPATH_REC_LEN] = {1, 3, 2, 0, 7, 0, 0, 0, 0, 0,
                                                     0, 0, 0, 0, 0, 0, 0, 0, 0, 0xa5};
    assert_memory_equal(rec, want, sizeof want); /* the documented layout */
    assert_int_equal(wrk_arpath_rank_decode(rec, &out, &e), 0);
    assert_true(out.gpu && out.nccl && out.want == WRK_ARPATH_ZEROMQ);
    assert_memory_equal(out.uuid, in.uuid, 16);
    /* a CPU rank's record carries no UUID, even if the struct had one */
    struct wrk_arpath_rank cpu = {.gpu = false, .nccl = false, .want = WRK_ARPATH_AUTO};
    cpu.uuid[3] = 9;
    wrk_arpath_rank_encode(&cpu, rec);
    assert_int_equal(wrk_arpath_rank_decode(rec, &out, &e), 0);
    assert_false(out.gpu || out.nccl);
    assert_int_equal(out.uuid[3], 0);
    static const struct {
        int byte;
        uint8_t v;
        const char *needle;
    } bad[] = {{0, 2, "version 2"},  {1, 0x04, "flags 0x04"},   {2, 3, "want 3"},
               {3, 1, "reserved"},   {10, 1, "UUID without a GPU"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        wrk_arpath_rank_encode(&cpu, rec);
        rec[bad[i].byte] = bad[i].v;
        assert_int_equal(wrk_arpath_rank_decode(rec, &out, &e), -1);
        if (e.code != EPROTO || strstr(e.msg, bad[i].needle) == NULL)
            fail_msg("byte %d = %u: expected EPROTO with \"%s\", got %d: %s", bad[i].byte,
                     bad[i].v, bad[i].needle, e.code, e.msg);
    }
}

/* decide(ranks) -> (rc 0 and path with why containing needle) or (-1, code, needle) */
static void decide_case(const struct wrk_arpath_rank *r, int tp, int code, enum wrk_arpath path,
                        const char *needle)
{
    struct err e = {0};
    enum wrk_arpath got = WRK_ARPATH_COUNT;
    char why[160] = "untouched";
    int rc = wrk_arpath_decide(r, tp, &got, why, sizeof why, &e);
    if (code == 0) {
        if (rc != 0)
            fail_msg("expected %s, got error %d: %s", wrk_arpath_names[path], e.code, e.msg);
        if (got != path || strstr(why, needle) == NULL)
            fail_msg("expected %s with \"%s\", got %s (%s)", wrk_arpath_names[path], needle,
                     got < WRK_ARPATH_COUNT ? wrk_arpath_names[got] : "?", why);
    } else {
        assert_int_equal(rc, -1);
        if (e.code != code || strstr(e.msg, needle) == NULL)
            fail_msg("expected error %d with \"%s\", got %d: %s", code, needle, e.code, e.msg);
        assert_string_equal(why, "untouched");
    }
}

static void test_decide_rules(void **state)
{
    (void)state;
    const enum wrk_arpath A = WRK_ARPATH_AUTO, N = WRK_ARPATH_NCCL, Z = WRK_ARPATH_ZEROMQ;
    struct wrk_arpath_rank r[3];
    /* 6: a GPU each, NCCL everywhere */
    r[0] = gpu_rank(0, A), r[1] = gpu_rank(1, A), r[2] = gpu_rank(2, A);
    decide_case(r, 3, 0, N, "3 ranks on 3 distinct GPUs");
    r[0].want = r[1].want = r[2].want = N;
    decide_case(r, 3, 0, N, "distinct GPUs");
    /* 1: the ranks disagree */
    r[2].want = A;
    decide_case(r, 3, EINVAL, 0, "rank 0 asks for nccl, rank 2 for auto");
    /* 2: zeromq asked for, even where NCCL would work */
    r[0].want = r[1].want = r[2].want = Z;
    decide_case(r, 3, 0, Z, "the spec asks for zeromq");
    /* 5: two ranks share a GPU: ZeroMQ (staged), or an error when NCCL is demanded */
    r[0] = gpu_rank(0, A), r[1] = gpu_rank(1, A), r[2] = gpu_rank(0, A);
    decide_case(r, 3, 0, Z, "ranks 0 and 2 share GPU-00000000-0000-0000-0000-0000000000a5");
    r[0].want = r[1].want = r[2].want = N;
    decide_case(r, 3, EINVAL, 0, "allreduce nccl: ranks 0 and 2 share GPU-");
    /* 4: a build without NCCL */
    r[0] = gpu_rank(0, A), r[1] = gpu_rank(1, A);
    r[1].nccl = false;
    decide_case(r, 2, 0, Z, "rank 1's build has no NCCL");
    r[0].want = r[1].want = N;
    decide_case(r, 2, ENOTSUP, 0, "rank 1's build has no NCCL");
    /* 3: a CPU rank (before 4 and 5: its build and UUID do not matter) */
    struct wrk_arpath_rank cpu = {.gpu = false, .nccl = true, .want = A};
    r[0] = gpu_rank(0, A), r[1] = cpu;
    decide_case(r, 2, 0, Z, "rank 1 is not on a GPU");
    r[0].want = r[1].want = N;
    decide_case(r, 2, EINVAL, 0, "allreduce nccl: rank 1 is not on a GPU");
    /* a CPU group (both ranks zero UUIDs: not "sharing a GPU") */
    r[0] = cpu, r[1] = cpu;
    decide_case(r, 2, 0, Z, "rank 0 is not on a GPU");
    /* one rank alone: the rule still applies */
    r[0] = gpu_rank(4, A);
    decide_case(r, 1, 0, N, "one rank, on a GPU");
    /* bad arguments */
    struct err e = {0};
    enum wrk_arpath got;
    assert_int_equal(wrk_arpath_decide(r, 0, &got, NULL, 0, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_int_equal(wrk_arpath_decide(NULL, 1, &got, NULL, 0, &e), -1);
    r[0].want = (enum wrk_arpath)7;
    assert_int_equal(wrk_arpath_decide(r, 1, &got, NULL, 0, &e), -1);
    assert_int_equal(e.code, EINVAL);
    r[0].want = A;
    assert_int_equal(wrk_arpath_decide(r, 1, &got, NULL, 0, &e), 0); /* why may be NULL */
    assert_int_equal(got, N);
}

/* ---- the exchange: every rank of a real group reaches the same decision ---- */

struct rank_arg {
    const char *ep, *group;
    int tp, rank;
    struct wrk_arpath_rank me;
    int rc;
    enum wrk_arpath path;
    char why[160];
    struct err err;
    float after;  /* an all-reduce after the choice: the group is still in step */
};

static void *rank_main(void *p)
{
    struct rank_arg *a = p;
    wrk_comm_t *c = wrk_comm_create(a->ep, a->group, a->tp, a->rank, tp_keys(a->group, a->rank), 5.0,
                                    &a->err);
    if (c == NULL) {
        a->rc = -2;
        return NULL;
    }
    a->rc = wrk_arpath_choose(c, &a->me, &a->path, a->why, sizeof a->why, &a->err);
    if (a->rc == 0) {
        a->after = (float)(a->rank + 1);
        if (wrk_comm_allreduce_sum(c, &a->after, 1, &a->err) != 0)
            a->rc = -3;
    } else {
        wrk_comm_abort(c, &a->err);
    }
    wrk_comm_destroy(c);
    return NULL;
}

static void choose_group(struct rank_arg *a, int tp, const struct wrk_arpath_rank *me)
{
    static int groups;
    char ep[64], group[32];
    tp_free_endpoint(ep, sizeof ep);
    snprintf(group, sizeof group, "22.0.%d", groups++);
    pthread_t th[MAX_RANKS];
    for (int r = 0; r < tp; r++) {
        a[r] = (struct rank_arg){.ep = ep, .group = group, .tp = tp, .rank = r, .me = me[r]};
        assert_int_equal(pthread_create(&th[r], NULL, rank_main, &a[r]), 0);
    }
    for (int r = 0; r < tp; r++)
        pthread_join(th[r], NULL);
}

static void test_choose_agrees(void **state)
{
    (void)state;
    const enum wrk_arpath A = WRK_ARPATH_AUTO;
    struct rank_arg a[MAX_RANKS];
    struct wrk_arpath_rank me[MAX_RANKS] = {gpu_rank(0, A), gpu_rank(1, A), gpu_rank(2, A),
                                            gpu_rank(3, A)};
    choose_group(a, 4, me);
    for (int r = 0; r < 4; r++) {
        if (a[r].rc != 0)
            fail_msg("rank %d: %d: %s", r, a[r].rc, a[r].err.msg);
        assert_int_equal(a[r].path, WRK_ARPATH_NCCL);
        assert_string_equal(a[r].why, "4 ranks on 4 distinct GPUs");
        assert_true(a[r].after == 10.0f);
    }
    /* ranks 1 and 3 on one GPU (e.g. two processes whose device 0 is the same
     * card): every rank, not only those two, takes ZeroMQ */
    me[3] = gpu_rank(1, A);
    choose_group(a, 4, me);
    for (int r = 0; r < 4; r++) {
        assert_int_equal(a[r].rc, 0);
        assert_int_equal(a[r].path, WRK_ARPATH_ZEROMQ);
        assert_non_null(strstr(a[r].why, "ranks 1 and 3 share GPU-01000000-"));
        assert_true(a[r].after == 10.0f);
    }
    print_message("4 ranks, two on one GPU: %s (on every rank)\n", a[0].why);
    /* the ranks' specs disagree: all fail alike, none waits for a timeout */
    me[0] = gpu_rank(0, WRK_ARPATH_NCCL);
    choose_group(a, 2, me);
    for (int r = 0; r < 2; r++) {
        assert_int_equal(a[r].rc, -1);
        assert_int_equal(a[r].err.code, EINVAL);
        assert_non_null(strstr(a[r].err.msg, "rank 0 asks for nccl, rank 1 for auto"));
    }
    /* tp 1: no exchange, the rule on the one record */
    struct err e = {0};
    wrk_comm_t *c = wrk_comm_create(NULL, "22.1.0", 1, 0, NULL, 1.0, &e);
    assert_non_null(c);
    enum wrk_arpath path;
    char why[160];
    struct wrk_arpath_rank cpu = {.want = A};
    assert_int_equal(wrk_arpath_choose(c, &cpu, &path, why, sizeof why, &e), 0);
    assert_int_equal(path, WRK_ARPATH_ZEROMQ);
    assert_int_equal(wrk_arpath_choose(NULL, &cpu, &path, why, sizeof why, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_int_equal(wrk_arpath_choose(c, NULL, &path, why, sizeof why, &e), -1);
    assert_int_equal(e.code, EINVAL);
    wrk_comm_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_names),
        cmocka_unit_test(test_record_round_trip_and_garbage),
        cmocka_unit_test(test_decide_rules),
        cmocka_unit_test(test_choose_agrees),
    };
    return cmocka_run_group_tests_name("arpath", tests, NULL, NULL);
}
