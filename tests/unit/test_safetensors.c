/* test_safetensors.c: the safetensors reader and writer (shared/safetensors.c)
 * on crafted good and bad files. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "shared/safetensors.h"

/* A file image: u64 LE header length, the header text, then data_len bytes
 * (value i & 0xff at offset i). hlen_override != 0 replaces the length field. */
static unsigned char *image(const char *header, size_t data_len, uint64_t hlen_override,
                            size_t *len)
{
    size_t h = strlen(header);
    *len = 8 + h + data_len;
    unsigned char *b = malloc(*len + 1);
    assert_non_null(b);
    uint64_t v = hlen_override ? hlen_override : h;
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    memcpy(b + 8, header, h);
    for (size_t i = 0; i < data_len; i++)
        b[8 + h + i] = (unsigned char)i;
    return b;
}

/* Parse header + data_len bytes; expect failure with code and needle in the message. */
static void refused(const char *header, size_t data_len, uint64_t hlen, int code,
                    const char *needle)
{
    size_t len;
    unsigned char *b = image(header, data_len, hlen, &len);
    struct err err = {0};
    st_file_t *f = st_file_parse(b, len, &err);
    if (f != NULL)
        fail_msg("accepted: %s", header);
    assert_int_equal(err.code, code);
    if (needle != NULL && strstr(err.msg, needle) == NULL)
        fail_msg("expected \"%s\" in: %s", needle, err.msg);
    free(b);
}

static void test_parse_good(void **state)
{
    (void)state;
    const char *hdr = "{\"__metadata__\":{\"format\":\"pt\"},"
                      "\"b\":{\"dtype\":\"I64\",\"shape\":[1,2],\"data_offsets\":[24,40]},"
                      "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                      "\"empty\":{\"dtype\":\"BF16\",\"shape\":[0,7],\"data_offsets\":[40,40]},"
                      "\"scalar\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[40,41]}}   ";
    size_t len;
    unsigned char *b = image(hdr, 41, 0, &len);
    struct err err = {0};
    st_file_t *f = st_file_parse(b, len, &err);
    if (f == NULL)
        fail_msg("%s", err.msg);
    assert_int_equal(st_file_count(f), 4);
    /* sorted by offset; the zero-size tensor sits before the scalar at 40 */
    assert_string_equal(st_file_tensor(f, 0)->name, "a");
    assert_string_equal(st_file_tensor(f, 1)->name, "b");
    assert_string_equal(st_file_tensor(f, 2)->name, "empty");
    assert_string_equal(st_file_tensor(f, 3)->name, "scalar");
    assert_null(st_file_tensor(f, 4));
    const struct st_tensor *a = st_file_find(f, "a");
    assert_non_null(a);
    assert_int_equal(a->dtype, ST_DTYPE_F32);
    assert_int_equal(a->ndim, 2);
    assert_int_equal(a->shape[0], 2);
    assert_int_equal(a->shape[1], 3);
    assert_int_equal(a->numel, 6);
    assert_ptr_equal(a->data, b + 8 + strlen(hdr));
    const struct st_tensor *s = st_file_find(f, "scalar");
    assert_int_equal(s->ndim, 0);
    assert_int_equal(s->numel, 1);
    assert_int_equal(*(const unsigned char *)s->data, 40);
    assert_int_equal(st_file_find(f, "empty")->numel, 0);
    assert_null(st_file_find(f, "missing"));
    assert_string_equal(st_file_metadata(f, "format"), "pt");
    assert_null(st_file_metadata(f, "other"));
    size_t n;
    assert_ptr_equal(st_file_bytes(f, &n), b);
    assert_int_equal(n, len);
    st_file_destroy(f);
    st_file_destroy(NULL);
    free(b);
}

static void test_dtypes(void **state)
{
    (void)state;
    assert_int_equal(st_dtype_size(ST_DTYPE_F32), 4);
    assert_int_equal(st_dtype_size(ST_DTYPE_BF16), 2);
    assert_int_equal(st_dtype_size(ST_DTYPE_F16), 2);
    assert_int_equal(st_dtype_size(ST_DTYPE_I64), 8);
    assert_int_equal(st_dtype_size(ST_DTYPE_BOOL), 1);
    assert_int_equal(st_dtype_size(ST_DTYPE_COUNT), 0);
    /* every name parses back to its size */
    for (int d = 0; d < ST_DTYPE_COUNT; d++) {
        char hdr[160];
        size_t sz = st_dtype_size((enum st_dtype)d);
        snprintf(hdr, sizeof hdr,
                 "{\"t\":{\"dtype\":\"%s\",\"shape\":[3],\"data_offsets\":[0,%zu]}}",
                 st_dtype_names[d], 3 * sz);
        size_t len;
        unsigned char *b = image(hdr, 3 * sz, 0, &len);
        struct err err = {0};
        st_file_t *f = st_file_parse(b, len, &err);
        if (f == NULL)
            fail_msg("%s: %s", st_dtype_names[d], err.msg);
        assert_int_equal(st_file_find(f, "t")->dtype, d);
        st_file_destroy(f);
        free(b);
    }
}

static void test_refuse_lengths(void **state)
{
    (void)state;
    struct err err = {0};
    unsigned char small[7] = {0};
    assert_null(st_file_parse(small, sizeof small, &err));
    assert_int_equal(err.code, EINVAL);
    assert_null(st_file_parse(NULL, 0, &err));
    assert_int_equal(err.code, EINVAL);
    const char *ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    refused(ok, 4, (uint64_t)1 << 63, EFBIG, "limit");              /* huge */
    refused(ok, 4, ST_HEADER_MAX + 1ull, EFBIG, "limit");           /* just over */
    refused(ok, 4, strlen(ok) + 5, EINVAL, "header length");        /* past the end */
    refused("", 0, 0, EINVAL, "header length");                     /* zero */
    refused("[1,2]", 0, 0, EINVAL, "'{'");                          /* not an object */
    refused("{\"a\":1} x", 0, 0, EINVAL, "json");                   /* trailing garbage */
    refused("{\"a\":", 0, 0, EINVAL, "json");                       /* cut JSON */
}

static void test_truncated_everywhere(void **state)
{
    (void)state;
    struct st_tensor_in t[2] = {
        {"w", ST_DTYPE_F32, 2, {4, 4}, NULL},
        {"b", ST_DTYPE_F16, 1, {4}, NULL},
    };
    float w[16] = {0};
    uint16_t bias[4] = {0};
    t[0].data = w;
    t[1].data = bias;
    void *img;
    size_t len;
    struct err err = {0};
    assert_int_equal(st_buf_encode(t, 2, NULL, 0, &img, &len, &err), 0);
    st_file_t *f = st_file_parse(img, len, &err);
    assert_non_null(f);
    st_file_destroy(f);
    /* every proper prefix is refused (it drops data or cuts the header) */
    for (size_t n = 0; n < len; n++) {
        unsigned char *cut = malloc(n + 1);
        memcpy(cut, img, n);
        f = st_file_parse(cut, n, &err);
        if (f != NULL)
            fail_msg("prefix of %zu / %zu bytes accepted", n, len);
        assert_int_equal(err.code, EINVAL);
        free(cut);
    }
    /* one extra byte is refused too */
    unsigned char *more = malloc(len + 1);
    memcpy(more, img, len);
    more[len] = 0;
    assert_null(st_file_parse(more, len + 1, &err));
    assert_non_null(strstr(err.msg, "trailing"));
    free(more);
    /* single-byte corruption of the header never crashes; most is refused */
    unsigned char *mut = malloc(len);
    for (size_t i = 0; i < len - 16 * 4 - 8; i++)
        for (int v = 0; v < 256; v += 51) {
            memcpy(mut, img, len);
            mut[i] = (unsigned char)v;
            f = st_file_parse(mut, len, &err);
            st_file_destroy(f);
        }
    free(mut);
    free(img);
}

static void test_refuse_offsets(void **state)
{
    (void)state;
    refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
            "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
            24, 0, EINVAL, "tensor 'b': data_offsets [8, 24] overlap tensor 'a'");
    refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
            8, 0, EINVAL, "overlap");
    refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, 0, EINVAL,
            "tensor 'a': gap of 4 bytes");
    refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12, 0, EINVAL,
            "4 trailing bytes");
    refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 12, 0, EINVAL,
            "tensor 'a': data_offsets [0, 16] outside the 12-byte buffer");
    refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, 0, EINVAL,
            "tensor 'a': data_offsets");
    refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8, 0, EINVAL,
            "tensor 'a': data_offsets");
    refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, 0, EINVAL,
            "tensor 'a': data_offsets");
    refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8.0]}}", 8, 0, EINVAL,
            "tensor 'a': data_offsets");
}

static void test_refuse_entries(void **state)
{
    (void)state;
    /* wrong size: shape x dtype != offsets */
    refused("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", 12, 0, EINVAL,
            "tensor 'w': 12 bytes at data_offsets, but 4 elements of F32 need 16");
    refused("{\"w\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16, 0, EINVAL,
            "4 elements of F16 need 8");
    /* bad dtype */
    refused("{\"w\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, 0, EINVAL,
            "tensor 'w': unknown dtype F33");
    refused("{\"w\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, 0, EINVAL,
            "unknown dtype");
    refused("{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, 0, EINVAL,
            "unknown dtype");
    /* shapes */
    refused("{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, 0, EINVAL,
            "tensor 'w': shape[0]");
    refused("{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, 0, EINVAL,
            "shape[0]");
    refused("{\"w\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,4]}}", 4, 0, EINVAL,
            "shape");
    refused("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
            0, EINVAL, "at most 8");
    refused("{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4611686018427387904],"
            "\"data_offsets\":[0,4]}}", 4, 0, EINVAL, "overflows");
    refused("{\"w\":{\"dtype\":\"U8\",\"shape\":[9223372036854775807,2],\"data_offsets\":[0,4]}}",
            4, 0, EINVAL, "overflows");
    /* entry structure */
    refused("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 0, 0, EINVAL, "missing data_offsets");
    refused("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, 0, EINVAL, "missing dtype");
    refused("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, 0,
            EINVAL, "unknown key 'x'");
    refused("{\"w\":[1,2]}", 0, 0, EINVAL, "tensor 'w': entry is not an object");
    /* duplicate names */
    refused("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
            "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, 0, EINVAL,
            "duplicate");
    /* metadata */
    refused("{\"__metadata__\":{\"k\":1}}", 0, 0, EINVAL, "__metadata__: 'k' is not a string");
    refused("{\"__metadata__\":[]}", 0, 0, EINVAL, "__metadata__ is not an object");
}

static void test_encode_open_roundtrip(void **state)
{
    (void)state;
    float a[6] = {1, 2, 3, 4, 5, 6};
    int64_t ids[3] = {7, 8, 9};
    struct st_tensor_in t[3] = {
        {"layer.a", ST_DTYPE_F32, 2, {2, 3}, a},
        {"ids", ST_DTYPE_I64, 1, {3}, ids},
        {"none", ST_DTYPE_F32, 1, {0}, NULL},
    };
    const char *kv[4] = {"format", "pt", "tp", "2"};
    void *img;
    size_t len;
    struct err err = {0};
    assert_int_equal(st_buf_encode(t, 3, kv, 2, &img, &len, &err), 0);
    /* the byte buffer starts 8-aligned, as the reference writer pads it */
    uint64_t hlen = 0;
    memcpy(&hlen, img, 8);
    assert_int_equal((8 + hlen) % 8, 0);
    char path[] = "/tmp/test_safetensorsXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, img, len), (ssize_t)len);
    close(fd);
    st_file_t *f = st_file_open(path, &err);
    if (f == NULL)
        fail_msg("%s", err.msg);
    assert_int_equal(st_file_count(f), 3);
    const struct st_tensor *ta = st_file_find(f, "layer.a");
    assert_memory_equal(ta->data, a, sizeof a);
    assert_memory_equal(st_file_find(f, "ids")->data, ids, sizeof ids);
    assert_int_equal(st_file_find(f, "none")->numel, 0);
    assert_string_equal(st_file_metadata(f, "tp"), "2");
    st_file_destroy(f);

    /* a file cut short on disk names the path */
    assert_int_equal(truncate(path, (off_t)len - 1), 0);
    assert_null(st_file_open(path, &err));
    assert_int_equal(err.code, EINVAL);
    assert_non_null(strstr(err.msg, path));
    unlink(path);
    assert_null(st_file_open(path, &err));
    assert_int_equal(err.code, ENOENT);
    assert_null(st_file_open("/tmp", &err));
    assert_int_equal(err.code, EINVAL);
    free(img);
}

static void test_encode_bad_args(void **state)
{
    (void)state;
    float a[1] = {0};
    void *img = NULL;
    size_t len = 0;
    struct err err = {0};
    struct st_tensor_in dup[2] = {{"x", ST_DTYPE_F32, 1, {1}, a}, {"x", ST_DTYPE_F32, 1, {1}, a}};
    assert_int_equal(st_buf_encode(dup, 2, NULL, 0, &img, &len, &err), -1);
    assert_int_equal(err.code, EINVAL);
    struct st_tensor_in meta[1] = {{"__metadata__", ST_DTYPE_F32, 1, {1}, a}};
    assert_int_equal(st_buf_encode(meta, 1, NULL, 0, &img, &len, &err), -1);
    struct st_tensor_in dt[1] = {{"x", ST_DTYPE_COUNT, 1, {1}, a}};
    assert_int_equal(st_buf_encode(dt, 1, NULL, 0, &img, &len, &err), -1);
    struct st_tensor_in neg[1] = {{"x", ST_DTYPE_F32, 1, {-1}, a}};
    assert_int_equal(st_buf_encode(neg, 1, NULL, 0, &img, &len, &err), -1);
    struct st_tensor_in nd[1] = {{"x", ST_DTYPE_F32, 9, {1}, a}};
    assert_int_equal(st_buf_encode(nd, 1, NULL, 0, &img, &len, &err), -1);
    assert_null(img);
    /* an empty file of tensors is valid */
    assert_int_equal(st_buf_encode(NULL, 0, NULL, 0, &img, &len, &err), 0);
    st_file_t *f = st_file_parse(img, len, &err);
    assert_non_null(f);
    assert_int_equal(st_file_count(f), 0);
    st_file_destroy(f);
    free(img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_dtypes),
        cmocka_unit_test(test_refuse_lengths),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_refuse_offsets),
        cmocka_unit_test(test_refuse_entries),
        cmocka_unit_test(test_encode_open_roundtrip),
        cmocka_unit_test(test_encode_bad_args),
    };
    return cmocka_run_group_tests_name("safetensors", tests, NULL, NULL);
}
