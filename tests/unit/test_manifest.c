/* test_manifest.c: artifact manifests: parse, encode, Ed25519 sign/verify, key files. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "shared/manifest.h"

#define SHA_A "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"
#define GOOD                                                                                       \
    "{\"format\": \"moat-artifact-1\", \"name\": \"minilm\", \"architecture\": \"bert\", "         \
    "\"version\": 3, \"files\": [{\"file\": \"config.json\", \"sha256\": \"" SHA_A "\", "          \
    "\"bytes\": 612}]}"

static void parse_good_and_encode_round_trip(void **state)
{
    (void)state;
    struct manifest m, again;
    struct err e = {0};
    assert_int_equal(manifest_parse(GOOD, strlen(GOOD), &m, &e), 0);
    assert_string_equal(m.name, "minilm");
    assert_int_equal(m.version, 3);
    assert_int_equal(m.nfiles, 1);
    assert_int_equal(m.files[0].bytes, 612);
    assert_non_null(manifest_file_find(&m, "config.json"));
    assert_null(manifest_file_find(&m, "vocab.txt"));
    char *text = manifest_encode(&m);
    assert_non_null(text);
    assert_int_equal(manifest_parse(text, strlen(text), &again, &e), 0);
    assert_memory_equal(&m, &again, sizeof m);
    free(text);
}

static void expect_bad(const char *text, const char *needle)
{
    struct manifest m;
    struct err e = {0};
    assert_int_equal(manifest_parse(text, strlen(text), &m, &e), -1);
    assert_int_equal(e.code, EINVAL);
    if (strstr(e.msg, needle) == NULL)
        fail_msg("'%s' does not mention '%s'", e.msg, needle);
}

static void parse_rejects_bad_manifests_naming_the_key(void **state)
{
    (void)state;
    expect_bad("[]", "not a JSON object");
    expect_bad("{", "invalid JSON");
    expect_bad("{\"format\": \"moat-artifact-2\"}", "format");
    expect_bad("{\"format\": \"moat-artifact-1\", \"name\": \"../x\", \"architecture\": \"bert\", "
               "\"version\": 1, \"files\": []}", "name");
    expect_bad("{\"format\": \"moat-artifact-1\", \"name\": \"m\", \"architecture\": \"bert\", "
               "\"version\": 0, \"files\": []}", "version");
    expect_bad("{\"format\": \"moat-artifact-1\", \"name\": \"m\", \"architecture\": \"bert\", "
               "\"version\": 1, \"files\": []}", "files");
    expect_bad("{\"format\": \"moat-artifact-1\", \"name\": \"m\", \"architecture\": \"bert\", "
               "\"version\": 1, \"extra\": 1, \"files\": []}", "unknown key 'extra'");
    expect_bad("{\"format\": \"moat-artifact-1\", \"name\": \"m\", \"architecture\": \"bert\", \"version\": 1, "
               "\"files\": [{\"file\": \"a\", \"sha256\": \"" SHA_A "\", \"bytes\": 1}, "
               "{\"file\": \"a\", \"sha256\": \"" SHA_A "\", \"bytes\": 1}]}", "a: listed twice");
    expect_bad("{\"format\": \"moat-artifact-1\", \"name\": \"m\", \"architecture\": \"bert\", \"version\": 1, "
               "\"files\": [{\"file\": \"a\", \"sha256\": \"XYZ\", \"bytes\": 1}]}", "a: sha256");
    expect_bad("{\"format\": \"moat-artifact-1\", \"name\": \"m\", \"architecture\": \"bert\", \"version\": 1, "
               "\"files\": [{\"file\": \"a/b\", \"sha256\": \"" SHA_A "\", \"bytes\": 1}]}", "file name");
    expect_bad("{\"format\": \"moat-artifact-1\", \"name\": \"m\\u0000x\", \"architecture\": \"bert\", "
               "\"version\": 1, \"files\": []}", "NUL");
}

static void signature_verifies_and_any_flipped_byte_fails(void **state)
{
    (void)state;
    char dir[] = "/tmp/moat-test-manifest-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sk_path[64], pk_path[64];
    snprintf(sk_path, sizeof sk_path, "%s/a.key", dir);
    snprintf(pk_path, sizeof pk_path, "%s/a.pub", dir);
    struct err e = {0};
    assert_int_equal(manifest_keypair_write(sk_path, pk_path, &e), 0);
    assert_int_equal(manifest_keypair_write(sk_path, pk_path, &e), -1); /* never replaced */
    assert_int_equal(e.code, EEXIST);
    struct stat st;
    assert_int_equal(stat(sk_path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    uint8_t sk[MANIFEST_SK_BYTES], pk[MANIFEST_PK_BYTES];
    assert_int_equal(manifest_key_read(sk_path, sk, sizeof sk, true, &e), 0);
    assert_int_equal(manifest_key_read(pk_path, pk, sizeof pk, false, &e), 0);
    assert_int_equal(manifest_key_read(pk_path, sk, sizeof sk, false, &e), -1); /* wrong size */
    assert_int_equal(e.code, EINVAL);
    chmod(sk_path, 0644);
    assert_int_equal(manifest_key_read(sk_path, sk, sizeof sk, true, &e), -1);
    assert_int_equal(e.code, EPERM);
    char sig[2 * MANIFEST_SIG_BYTES + 1];
    manifest_sign(GOOD, strlen(GOOD), sk, sig);
    assert_int_equal(manifest_verify(GOOD, strlen(GOOD), sig, pk, &e), 0);
    char text[sizeof GOOD];
    for (size_t i = 0; i < strlen(GOOD); i += 7) {
        memcpy(text, GOOD, sizeof GOOD);
        text[i] ^= 1;
        assert_int_equal(manifest_verify(text, strlen(GOOD), sig, pk, &e), -1);
        assert_int_equal(e.code, EACCES);
    }
    sig[5] = sig[5] == '0' ? '1' : '0';
    assert_int_equal(manifest_verify(GOOD, strlen(GOOD), sig, pk, &e), -1);
    assert_int_equal(manifest_verify(GOOD, strlen(GOOD), "zz", pk, &e), -1);
    assert_int_equal(e.code, EBADMSG);
    unlink(sk_path);
    unlink(pk_path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_good_and_encode_round_trip),
        cmocka_unit_test(parse_rejects_bad_manifests_naming_the_key),
        cmocka_unit_test(signature_verifies_and_any_flipped_byte_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
