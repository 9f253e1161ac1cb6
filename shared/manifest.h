/* manifest.h: signed artifact manifests (manifest.json + manifest.sig).
 *
 * manifest.json is one JSON object (RFC 8259, UTF-8), unknown keys rejected:
 *   {"format": "moat-artifact-1", "name": NAME, "architecture": ARCH,
 *    "version": N, "files": [{"file": F, "sha256": HEX, "bytes": B}, ...]}
 * NAME: 1-64 of [A-Za-z0-9._-], not starting with '.'; ARCH: 1-32 of [a-z0-9_-]
 * ("bert"); N: 1..2^53-1, an artifact's version, which only ever grows (an
 * import of an equal or lower version is a rollback, refused); F: a file name
 * (same rule as NAME), each once; HEX: SHA-256 (FIPS 180-4), 64 lowercase hex
 * digits; B: 0..2^53-1 bytes. At most MANIFEST_FILES_MAX files.
 * manifest.sig is the Ed25519 signature (RFC 8032; libsodium
 * crypto_sign_detached) of manifest.json's exact bytes, as 128 hex digits and a
 * newline. Keys live in files holding one line of hex (or standard base64): a
 * secret key is libsodium's 64-byte form (seed | public key), mode 0600; a public
 * key is 32 bytes. '#' lines are comments.
 * Thread-safety: reentrant.
 */
#ifndef MOAT_MANIFEST_H
#define MOAT_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"

#define MANIFEST_FORMAT "moat-artifact-1"
#define MANIFEST_FILES_MAX 16
#define MANIFEST_TEXT_MAX 65536      /* bytes of manifest.json, at most */
#define MANIFEST_PK_BYTES 32         /* crypto_sign_PUBLICKEYBYTES */
#define MANIFEST_SK_BYTES 64         /* crypto_sign_SECRETKEYBYTES */
#define MANIFEST_SIG_BYTES 64        /* crypto_sign_BYTES */

struct manifest_file {
    char file[65];
    char sha256[65];
    int64_t bytes;
};

struct manifest {
    char name[65];
    char architecture[33];
    int64_t version;
    int nfiles;
    struct manifest_file files[MANIFEST_FILES_MAX];
};

/* manifest_parse: check and parse len bytes of manifest.json text into *m.
 * EINVAL naming the key or file at fault; EFBIG beyond MANIFEST_TEXT_MAX. */
int manifest_parse(const char *text, size_t len, struct manifest *m, struct err *err);

/* manifest_encode: manifest.json text for m (indented JSON and a newline).
 * Caller frees with free(). NULL: ENOMEM. */
char *manifest_encode(const struct manifest *m);

/* manifest_file_find: the entry for file name, or NULL. Borrowed from m. */
const struct manifest_file *manifest_file_find(const struct manifest *m, const char *file);

/* manifest_sign: Ed25519 signature of text[0..len) with secret key sk, as 128
 * hex digits plus NUL into sig_hex. */
void manifest_sign(const char *text, size_t len, const uint8_t sk[MANIFEST_SK_BYTES],
                   char sig_hex[2 * MANIFEST_SIG_BYTES + 1]);

/* manifest_verify: 0 when sig_text (hex, surrounding white space allowed) is a
 * valid signature of text[0..len) by pk; -1 with EBADMSG (malformed signature)
 * or EACCES (it does not verify). */
int manifest_verify(const char *text, size_t len, const char *sig_text, const uint8_t pk[MANIFEST_PK_BYTES],
                    struct err *err);

/* manifest_key_read: the key in file path (hex or base64, see the top comment)
 * into key[keylen] (MANIFEST_PK_BYTES or MANIFEST_SK_BYTES). secret: refuse a
 * file that group or others may read (EPERM). ENOENT/EACCES (open), EINVAL (not
 * a key of that size). */
int manifest_key_read(const char *path, uint8_t *key, size_t keylen, bool secret, struct err *err);

/* manifest_keypair_write: a new Ed25519 key pair: the secret key to sk_path
 * (mode 0600) and the public key to pk_path (0644), hex, each created anew
 * (EEXIST if present). */
int manifest_keypair_write(const char *sk_path, const char *pk_path, struct err *err);

/* manifest_key_id: the first 16 hex digits of the public key, for logs and the audit. */
void manifest_key_id(const uint8_t pk[MANIFEST_PK_BYTES], char id[17]);

#endif
