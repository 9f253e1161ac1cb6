/* tp_fixture.h: helpers shared by the unit tests that run TP groups in threads
 * (test_comm, test_stage, test_arpath, test_bert, test_infer). Include after
 * <cmocka.h>; every function is static, one copy per test binary.
 */
#ifndef MOAT_TP_FIXTURE_H
#define MOAT_TP_FIXTURE_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

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

#endif
