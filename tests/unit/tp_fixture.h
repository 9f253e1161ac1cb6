/* tp_fixture.h: helpers shared by the unit tests that run TP groups in threads
 * (test_comm, test_stage, test_arpath, test_bert, test_infer). Include after
 * <cmocka.h>; every function is static, one copy per test binary.
 */
#ifndef MOAT_TP_FIXTURE_H
#define MOAT_TP_FIXTURE_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "shared/net.h"
#include "worker/wrk_comm.h"

/* tp_free_endpoint: "tcp://127.0.0.1:PORT" for a loopback port that was free a
 * moment ago (bound to port 0, read back, closed), into out (cap bytes). */
static inline void tp_free_endpoint(char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    snprintf(out, cap, "tcp://127.0.0.1:%u", ntohs(a.sin_port));
    close(fd);
}

/* tp_val: deterministic f32 test data of mixed magnitudes (2^-6 .. 2^6 times a
 * mantissa in [-0.5, 0.5)), so that the summation order of an all-reduce shows
 * in the low bits: value i of rank r in call k. */
static inline float tp_val(int r, int k, size_t i)
{
    uint32_t x = (uint32_t)(i * 2654435761u) ^ (uint32_t)(r * 40503 + k * 977 + 1);
    x ^= x >> 13;
    x *= 0x5bd1e995u;
    x ^= x >> 15;
    float mant = (float)(x & 0xffff) / 65536.0f - 0.5f;
    int e = (int)((x >> 16) % 13) - 6;
    return mant * (float)(1 << (e + 6)) / 64.0f;
}

/* TP link keys, as the controller makes them for each attempt of each group
 * (controller/ctl_infer.c): TP_KEYS_MAX CURVE pairs per key set. */
#define TP_KEYS_MAX 8
#define TP_KEY_SETS 32
struct tp_key_set {
    char name[64];
    char secret[TP_KEYS_MAX][NET_KEY_LEN + 1], pub[TP_KEYS_MAX][NET_KEY_LEN + 1];
    const char *publics[TP_KEYS_MAX];
    struct wrk_comm_keys rank[TP_KEYS_MAX];
};

/* tp_keys: rank's view of key set `name` (made on first use, kept for the
 * test binary's life; thread-safe), for wrk_comm_create() with any tp up to
 * TP_KEYS_MAX: one name, one set, so the threads of one group agree without
 * sharing a variable; tests give another attempt another name. */
static inline const struct wrk_comm_keys *tp_keys(const char *name, int rank)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static struct tp_key_set sets[TP_KEY_SETS];
    static int nsets;
    assert_true(rank >= 0 && rank < TP_KEYS_MAX);
    pthread_mutex_lock(&mu);
    struct tp_key_set *ks = NULL;
    for (int i = 0; i < nsets && ks == NULL; i++)
        if (strcmp(sets[i].name, name) == 0)
            ks = &sets[i];
    if (ks == NULL) {
        assert_true(nsets < TP_KEY_SETS);
        ks = &sets[nsets++];
        snprintf(ks->name, sizeof ks->name, "%s", name);
        for (int r = 0; r < TP_KEYS_MAX; r++) {
            struct err e = {0};
            assert_int_equal(net_curve_keypair(ks->pub[r], ks->secret[r], &e), 0);
            ks->publics[r] = ks->pub[r];
        }
        for (int r = 0; r < TP_KEYS_MAX; r++)
            ks->rank[r] = (struct wrk_comm_keys){ks->secret[r], ks->publics};
    }
    pthread_mutex_unlock(&mu);
    return &ks->rank[rank];
}

#endif
