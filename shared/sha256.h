/* sha256.h: SHA-256 (FIPS 180-4) of bytes and files, through OpenSSL's libcrypto.
 *
 * Every artifact in moat is named by its SHA-256 (manifests, shards, the audit
 * chain), and a TP rank hashes its shard (45-70 MB for MiniLM) before every
 * load. libsodium, which moat links for CURVE keys and signatures, has only
 * portable C for SHA-256 (~175 MB/s on the 2-vCPU EPYC of bench/results/);
 * libcrypto picks SHA-NI or AVX2 code at run time (~1 GB/s there). The digests
 * are the same bytes either way.
 * Thread-safety: a handle belongs to one thread; the functions are reentrant.
 */
#ifndef MOAT_SHA256_H
#define MOAT_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"

#define SHA256_BYTES 32

typedef struct sha256 sha256_t;

/* sha256_new: a streaming hash, ready for sha256_update. Caller frees with
 * sha256_free(). NULL with ENOMEM. */
sha256_t *sha256_new(struct err *err);

/* sha256_update: hash len more bytes of data (len 0 is a no-op). EIO when
 * libcrypto fails (names the call). */
int sha256_update(sha256_t *h, const void *data, size_t len, struct err *err);

/* sha256_final: the digest of everything given so far into out; the handle then
 * starts over (ready for a new message). EIO when libcrypto fails. */
int sha256_final(sha256_t *h, unsigned char out[SHA256_BYTES], struct err *err);

/* sha256_free: NULL is a no-op. */
void sha256_free(sha256_t *h);

/* sha256_once: the digest of data[0..len) into out. ENOMEM, EIO. */
int sha256_once(const void *data, size_t len, unsigned char out[SHA256_BYTES], struct err *err);

/* sha256_file: the digest of the file at path as 64 lowercase hex digits, and
 * its size into *bytes (may be NULL). errno codes naming the path; EIO. */
int sha256_file(const char *path, char hex[65], uint64_t *bytes, struct err *err);

/* sha256_hex: d as 64 lowercase hex digits and a NUL into hex. */
void sha256_hex(const unsigned char d[SHA256_BYTES], char hex[65]);

#endif
