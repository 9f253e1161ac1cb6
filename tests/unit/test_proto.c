/* test_proto.c: wire header and body validation: round trips and rejections. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shared/proto.h"

static int decode_text(enum proto_type type, const char *body, struct proto_msg *m, struct err *e)
{
    uint8_t hdr[PROTO_HEADER_LEN];
    proto_header_encode(hdr, type, 0, 42);
    const void *frames[2] = {hdr, body};
    size_t lens[2] = {sizeof hdr, strlen(body)};
    return proto_msg_decode(m, frames, lens, 2, e);
}

static void expect_reject(enum proto_type type, const char *body, const char *needle)
{
    struct proto_msg m;
    struct err e = {0};
    assert_int_equal(decode_text(type, body, &m, &e), -1);
    assert_int_equal(e.code, EPROTO);
    if (strstr(e.msg, needle) == NULL)
        fail_msg("message '%s' does not mention '%s'", e.msg, needle);
}

static void header_round_trip(void **state)
{
    (void)state;
    uint8_t hdr[PROTO_HEADER_LEN];
    proto_header_encode(hdr, PROTO_TYPE_TASK_END, 0, 0x0102030405060708ull);
    enum proto_type t;
    uint16_t flags;
    uint64_t id;
    struct err e = {0};
    assert_int_equal(proto_header_decode(hdr, sizeof hdr, &t, &flags, &id, &e), 0);
    assert_int_equal(t, PROTO_TYPE_TASK_END);
    assert_int_equal(flags, 0);
    assert_true(id == 0x0102030405060708ull);
    assert_int_equal(hdr[0], 0x4D); /* big-endian magic */
    assert_int_equal(hdr[8], 0x01);
}

static void header_rejects_bad_input(void **state)
{
    (void)state;
    uint8_t hdr[PROTO_HEADER_LEN], bad[PROTO_HEADER_LEN];
    proto_header_encode(hdr, PROTO_TYPE_PING, 0, 1);
    enum proto_type t;
    uint16_t f;
    uint64_t id;
    struct err e = {0};
    assert_int_equal(proto_header_decode(hdr, 15, &t, &f, &id, &e), -1);
    assert_int_equal(e.code, EPROTO);
    assert_int_equal(proto_header_decode(hdr, 17, &t, &f, &id, &e), -1);
    memcpy(bad, hdr, sizeof bad);
    bad[0] ^= 1;
    assert_int_equal(proto_header_decode(bad, sizeof bad, &t, &f, &id, &e), -1);
    assert_non_null(strstr(e.msg, "magic"));
    memcpy(bad, hdr, sizeof bad);
    bad[2] = 9;
    assert_int_equal(proto_header_decode(bad, sizeof bad, &t, &f, &id, &e), -1);
    assert_non_null(strstr(e.msg, "version"));
    memcpy(bad, hdr, sizeof bad);
    bad[3] = PROTO_TYPE_COUNT;
    assert_int_equal(proto_header_decode(bad, sizeof bad, &t, &f, &id, &e), -1);
    assert_non_null(strstr(e.msg, "type"));
    memcpy(bad, hdr, sizeof bad);
    bad[3] = 0;
    assert_int_equal(proto_header_decode(bad, sizeof bad, &t, &f, &id, &e), -1);
    memcpy(bad, hdr, sizeof bad);
    bad[7] = 1;
    assert_int_equal(proto_header_decode(bad, sizeof bad, &t, &f, &id, &e), -1);
    assert_non_null(strstr(e.msg, "reserved"));
    memcpy(bad, hdr, sizeof bad);
    bad[5] = 1; /* flags: none is defined in version 1 */
    assert_int_equal(proto_header_decode(bad, sizeof bad, &t, &f, &id, &e), -1);
    assert_string_equal(e.msg, "header: unknown flags 0x0001");
}

static void body_round_trip_with_blobs(void **state)
{
    (void)state;
    struct proto_msg m;
    struct err e = {0};
    uint8_t hdr[PROTO_HEADER_LEN];
    proto_header_encode(hdr, PROTO_TYPE_TASK_END, 0, 9);
    const char *body = "{\"job\":3,\"task\":0,\"attempt\":1,\"state\":\"COMPLETED\",\"exit_code\":0,"
                       "\"signal\":0,\"truncated\":false,\"start_time\":1.5,\"end_time\":2}";
    const void *frames[4] = {hdr, body, "out\0bin", ""};
    size_t lens[4] = {sizeof hdr, strlen(body), 7, 0};
    assert_int_equal(proto_msg_decode(&m, frames, lens, 4, &e), 0);
    assert_int_equal(m.type, PROTO_TYPE_TASK_END);
    assert_int_equal(m.req_id, 9);
    assert_int_equal(m.nblobs, 2);
    assert_int_equal(m.blobs[0].len, 7);
    assert_memory_equal(m.blobs[0].data, "out\0bin", 7);
    assert_int_equal(json_integer_value(json_object_get(m.body, "job")), 3);
    proto_msg_clear(&m);
}

static void body_rejections(void **state)
{
    (void)state;
    expect_reject(PROTO_TYPE_SHOW, "{}", "missing field 'id'");
    expect_reject(PROTO_TYPE_SHOW, "{\"id\":\"7\"}", "expected an integer");
    expect_reject(PROTO_TYPE_SHOW, "{\"id\":0}", "out of range");
    expect_reject(PROTO_TYPE_SHOW, "{\"id\":1,\"x\":1}", "unknown field 'x'");
    expect_reject(PROTO_TYPE_SHOW, "[1]", "not a JSON object");
    expect_reject(PROTO_TYPE_SHOW, "{\"id\":1", "invalid JSON");
    expect_reject(PROTO_TYPE_SHOW, "{\"id\":1,\"id\":2}", "invalid JSON");
    expect_reject(PROTO_TYPE_QUEUE, "{\"all\":1}", "true or false");
    expect_reject(PROTO_TYPE_CANCEL, "{\"ids\":[1,\"2\"]}", "ids'[1]");
    expect_reject(PROTO_TYPE_REGISTER,
                  "{\"name\":\"n\",\"host\":\"h\",\"pid\":1,\"cpus\":0,\"gpus\":0,\"mem_bytes\":1,"
                  "\"backend\":\"cpu\",\"instance\":\"i\",\"tasks\":[]}",
                  "cpus");
    expect_reject(PROTO_TYPE_REGISTER,
                  "{\"name\":\"n\",\"host\":\"h\",\"pid\":1,\"cpus\":1,\"gpus\":0,\"mem_bytes\":1,"
                  "\"backend\":\"cpu\",\"instance\":\"i\",\"tasks\":[{\"job\":1}]}",
                  "tasks[0]");
    char longname[200];
    memset(longname, 'a', sizeof longname);
    longname[sizeof longname - 1] = '\0';
    char body[400];
    snprintf(body, sizeof body, "{\"name\":\"%s\",\"instance\":\"i\",\"running\":0}", longname);
    expect_reject(PROTO_TYPE_HEARTBEAT, body, "longer than");
}

static void frame_count_and_blobs(void **state)
{
    (void)state;
    struct proto_msg m;
    struct err e = {0};
    uint8_t hdr[PROTO_HEADER_LEN];
    proto_header_encode(hdr, PROTO_TYPE_PING, 0, 1);
    const void *one[1] = {hdr};
    size_t l1[1] = {sizeof hdr};
    assert_int_equal(proto_msg_decode(&m, one, l1, 1, &e), -1);
    assert_int_equal(e.code, EPROTO);
    const void *many[12];
    size_t lm[12];
    for (int i = 0; i < 12; i++) {
        many[i] = i == 0 ? (const void *)hdr : "{}";
        lm[i] = i == 0 ? sizeof hdr : 2;
    }
    assert_int_equal(proto_msg_decode(&m, many, lm, 12, &e), -1);
    assert_non_null(strstr(e.msg, "frames"));
    struct proto_msg out;
    proto_msg_init(&out, PROTO_TYPE_REPLY, 1, NULL);
    for (int i = 0; i < PROTO_MAX_BLOBS; i++)
        assert_int_equal(proto_msg_add_blob(&out, "x", 1, &e), 0);
    assert_int_equal(proto_msg_add_blob(&out, "x", 1, &e), -1);
    assert_int_equal(e.code, ENOSPC);
    proto_msg_clear(&out);
    proto_msg_clear(NULL);
}

static void garbage_never_crashes(void **state)
{
    (void)state;
    srand(1234);
    uint8_t buf[64];
    for (int round = 0; round < 20000; round++) {
        size_t n1 = (size_t)(rand() % 20), n2 = (size_t)(rand() % 64);
        for (size_t i = 0; i < sizeof buf; i++)
            buf[i] = (uint8_t)rand();
        uint8_t hdr[PROTO_HEADER_LEN];
        proto_header_encode(hdr, (enum proto_type)(1 + rand() % (PROTO_TYPE_COUNT - 1)), 0, 1);
        const void *frames[2] = {round % 2 ? (const void *)hdr : buf, buf};
        size_t lens[2] = {round % 2 ? sizeof hdr : n1, n2};
        struct proto_msg m;
        struct err e = {0};
        if (proto_msg_decode(&m, frames, lens, 2, &e) == 0)
            proto_msg_clear(&m);
        else
            assert_int_equal(e.code, EPROTO);
    }
}

static void error_body_round_trip(void **state)
{
    (void)state;
    struct err in, out;
    err_set(&in, ENOENT, "job %d: no such job", 5);
    json_t *b = proto_error_body(&in);
    assert_int_equal(proto_body_validate(PROTO_TYPE_ERROR, b, &out), 0);
    proto_error_from_body(b, &out);
    assert_int_equal(out.code, ENOENT);
    assert_string_equal(out.msg, "job 5: no such job");
    json_decref(b);
    json_t *bad = json_pack("{s:s}", "code", "x");
    proto_error_from_body(bad, &out);
    assert_int_equal(out.code, EPROTO);
    json_decref(bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(header_round_trip),
        cmocka_unit_test(header_rejects_bad_input),
        cmocka_unit_test(body_round_trip_with_blobs),
        cmocka_unit_test(body_rejections),
        cmocka_unit_test(frame_count_and_blobs),
        cmocka_unit_test(garbage_never_crashes),
        cmocka_unit_test(error_body_round_trip),
    };
    return cmocka_run_group_tests_name("proto", tests, NULL, NULL);
}
