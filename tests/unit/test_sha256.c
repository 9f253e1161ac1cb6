/* test_sha256.c: shared/sha256 against FIPS 180-4's examples and libsodium. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "shared/sha256.h"

static void hex_of(const void *data, size_t len, char hex[65])
{
    unsigned char d[SHA256_BYTES];
    struct err e = {0};
    assert_int_equal(sha256_once(data, len, d, &e), 0);
    sha256_hex(d, hex);
}

/* FIPS 180-4 / NIST CSRC example values: "abc", the 448-bit message, "". */
static void known_vectors(void **state)
{
    (void)state;
    char hex[65];
    hex_of("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    hex_of(m, strlen(m), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    hex_of("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

/* Streaming in uneven pieces equals one call and libsodium's digest; a final
 * starts the handle over. */
static void streaming_equals_once_and_libsodium(void **state)
{
    (void)state;
    assert_true(sodium_init() >= 0);
    size_t n = (1 << 20) + 13;
    unsigned char *buf = malloc(n);
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)(i * 2654435761u >> 13);
    struct err e = {0};
    sha256_t *h = sha256_new(&e);
    assert_non_null(h);
    unsigned char a[SHA256_BYTES], b[SHA256_BYTES], c[SHA256_BYTES];
    for (int round = 0; round < 2; round++) { /* the second round reuses the handle */
        size_t off = 0, step = 1;
        while (off < n) {
            size_t k = step < n - off ? step : n - off;
            assert_int_equal(sha256_update(h, buf + off, k, &e), 0);
            off += k;
            step = step * 3 + 1;
        }
        assert_int_equal(sha256_final(h, a, &e), 0);
        assert_int_equal(sha256_once(buf, n, b, &e), 0);
        crypto_hash_sha256(c, buf, n);
        assert_memory_equal(a, b, SHA256_BYTES);
        assert_memory_equal(a, c, SHA256_BYTES);
    }
    sha256_free(h);
    sha256_free(NULL);
    free(buf);
}

static void file_digest_size_and_errors(void **state)
{
    (void)state;
    char path[] = "/tmp/moat-test-sha256-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t n = 3 * (1 << 18) + 7; /* not a multiple of the read size */
    unsigned char *buf = malloc(n);
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)(i ^ (i >> 8));
    assert_int_equal(write(fd, buf, n), (ssize_t)n);
    close(fd);
    char want[65], got[65];
    hex_of(buf, n, want);
    uint64_t bytes = 0;
    struct err e = {0};
    assert_int_equal(sha256_file(path, got, &bytes, &e), 0);
    assert_string_equal(got, want);
    assert_int_equal(bytes, n);
    unlink(path);
    assert_int_equal(sha256_file(path, got, NULL, &e), -1);
    assert_non_null(strstr(e.msg, path));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(known_vectors),
        cmocka_unit_test(streaming_equals_once_and_libsodium),
        cmocka_unit_test(file_digest_size_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
