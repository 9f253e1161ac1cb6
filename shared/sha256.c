/* sha256.c: SHA-256 through libcrypto's EVP interface (see sha256.h). */
#include "shared/sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct sha256 {
    EVP_MD_CTX *ctx;
};

sha256_t *sha256_new(struct err *err)
{
    sha256_t *h = calloc(1, sizeof *h);
    if (h == NULL || (h->ctx = EVP_MD_CTX_new()) == NULL) {
        free(h);
        err_set(err, ENOMEM, "sha256: out of memory");
        return NULL;
    }
    if (EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
        sha256_free(h);
        err_set(err, EIO, "sha256: EVP_DigestInit_ex failed");
        return NULL;
    }
    return h;
}

int sha256_update(sha256_t *h, const void *data, size_t len, struct err *err)
{
    if (len > 0 && EVP_DigestUpdate(h->ctx, data, len) != 1)
        return err_set(err, EIO, "sha256: EVP_DigestUpdate failed");
    return 0;
}

int sha256_final(sha256_t *h, unsigned char out[SHA256_BYTES], struct err *err)
{
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(h->ctx, out, &n) != 1 || n != SHA256_BYTES ||
        EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1)
        return err_set(err, EIO, "sha256: EVP_DigestFinal_ex failed");
    return 0;
}

void sha256_free(sha256_t *h)
{
    if (h == NULL)
        return;
    EVP_MD_CTX_free(h->ctx);
    free(h);
}

int sha256_once(const void *data, size_t len, unsigned char out[SHA256_BYTES], struct err *err)
{
    unsigned int n = 0;
    if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 || n != SHA256_BYTES)
        return err_set(err, EIO, "sha256: EVP_Digest failed");
    return 0;
}

int sha256_file(const char *path, char hex[65], uint64_t *bytes, struct err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(err, errno, "%s: %s", path, strerror(errno));
    sha256_t *h = sha256_new(err);
    if (h == NULL) {
        close(fd);
        return -1;
    }
    static __thread unsigned char buf[1 << 18];
    uint64_t total = 0;
    int rc = 0;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = err_set(err, errno, "%s: read: %s", path, strerror(errno));
            break;
        }
        if (r == 0)
            break;
        if ((rc = sha256_update(h, buf, (size_t)r, err)) != 0)
            break;
        total += (uint64_t)r;
    }
    close(fd);
    unsigned char d[SHA256_BYTES];
    if (rc == 0 && (rc = sha256_final(h, d, err)) == 0) {
        sha256_hex(d, hex);
        if (bytes != NULL)
            *bytes = total;
    }
    sha256_free(h);
    return rc;
}

void sha256_hex(const unsigned char d[SHA256_BYTES], char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < SHA256_BYTES; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[64] = '\0';
}
