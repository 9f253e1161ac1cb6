/* manifest.c: artifact manifest codec, Ed25519 signatures and key files (manifest.h). */
#include "shared/manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define I53 9007199254740991LL

static bool is_name(const char *s, size_t max)
{
    size_t n = strlen(s);
    return n > 0 && n <= max && s[0] != '.' &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

static bool is_hex64(const char *s)
{
    return strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

/* str_field: the string at key of o (NULS inside rejected) or NULL with err. */
static const char *str_field(const json_t *o, const char *key, const char *where, struct err *err)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_string(v)) {
        err_set(err, EINVAL, "manifest: %s%s: expected a string", where, key);
        return NULL;
    }
    if (strlen(json_string_value(v)) != json_string_length(v)) {
        err_set(err, EINVAL, "manifest: %s%s: contains a NUL byte", where, key);
        return NULL;
    }
    return json_string_value(v);
}

static int int_field(const json_t *o, const char *key, long long min, const char *where, int64_t *out,
                     struct err *err)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > I53)
        return err_set(err, EINVAL, "manifest: %s%s: expected an integer in [%lld, 2^53)", where, key, min);
    *out = (int64_t)json_integer_value(v);
    return 0;
}

static int only_keys(const json_t *o, const char *const *keys, const char *where, struct err *err)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v) {
        const char *const *p = keys;
        while (*p && strcmp(*p, k) != 0)
            p++;
        if (*p == NULL)
            return err_set(err, EINVAL, "manifest: %sunknown key '%.40s'", where, k);
    }
    return 0;
}

static int parse_obj(const json_t *o, struct manifest *m, struct err *err)
{
    static const char *const top[] = {"format", "name", "architecture", "version", "files", NULL};
    static const char *const fkeys[] = {"file", "sha256", "bytes", NULL};
    if (!json_is_object(o))
        return err_set(err, EINVAL, "manifest: not a JSON object");
    if (only_keys(o, top, "", err) != 0)
        return -1;
    const char *s = str_field(o, "format", "", err);
    if (s == NULL)
        return -1;
    if (strcmp(s, MANIFEST_FORMAT) != 0)
        return err_set(err, EINVAL, "manifest: format '%.32s', expected '%s'", s, MANIFEST_FORMAT);
    if ((s = str_field(o, "name", "", err)) == NULL)
        return -1;
    if (!is_name(s, 64))
        return err_set(err, EINVAL, "manifest: name: 1-64 letters, digits, '.', '_', '-' expected");
    strcpy(m->name, s);
    if ((s = str_field(o, "architecture", "", err)) == NULL)
        return -1;
    if (strlen(s) == 0 || strlen(s) > 32 || strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") != strlen(s))
        return err_set(err, EINVAL, "manifest: architecture: 1-32 of a-z, 0-9, '_', '-' expected");
    strcpy(m->architecture, s);
    if (int_field(o, "version", 1, "", &m->version, err) != 0)
        return -1;
    const json_t *files = json_object_get(o, "files");
    if (!json_is_array(files) || json_array_size(files) == 0 || json_array_size(files) > MANIFEST_FILES_MAX)
        return err_set(err, EINVAL, "manifest: files: expected an array of 1 to %d objects", MANIFEST_FILES_MAX);
    size_t i;
    const json_t *f;
    json_array_foreach(files, i, f) {
        char where[32];
        snprintf(where, sizeof where, "files[%zu].", i);
        if (!json_is_object(f))
            return err_set(err, EINVAL, "manifest: files[%zu]: expected an object", i);
        if (only_keys(f, fkeys, where, err) != 0)
            return -1;
        struct manifest_file *mf = &m->files[i];
        if ((s = str_field(f, "file", where, err)) == NULL)
            return -1;
        if (!is_name(s, 64))
            return err_set(err, EINVAL, "manifest: %sfile: a plain file name expected", where);
        strcpy(mf->file, s);
        if (manifest_file_find(m, mf->file))
            return err_set(err, EINVAL, "manifest: %s: listed twice", mf->file);
        if ((s = str_field(f, "sha256", where, err)) == NULL)
            return -1;
        if (!is_hex64(s))
            return err_set(err, EINVAL, "manifest: %s: sha256: 64 lowercase hex digits expected", mf->file);
        strcpy(mf->sha256, s);
        if (int_field(f, "bytes", 0, where, &mf->bytes, err) != 0)
            return -1;
        m->nfiles = (int)i + 1;
    }
    return 0;
}

int manifest_parse(const char *text, size_t len, struct manifest *m, struct err *err)
{
    memset(m, 0, sizeof *m);
    if (len > MANIFEST_TEXT_MAX)
        return err_set(err, EFBIG, "manifest: %zu bytes, at most %d", len, MANIFEST_TEXT_MAX);
    json_error_t je;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (o == NULL)
        return err_set(err, EINVAL, "manifest: invalid JSON at byte %d: %.60s", je.position, je.text);
    int rc = parse_obj(o, m, err);
    json_decref(o);
    if (rc != 0)
        memset(m, 0, sizeof *m);
    return rc;
}

const struct manifest_file *manifest_file_find(const struct manifest *m, const char *file)
{
    for (int i = 0; i < m->nfiles; i++)
        if (strcmp(m->files[i].file, file) == 0)
            return &m->files[i];
    return NULL;
}

char *manifest_encode(const struct manifest *m)
{
    json_t *files = json_array();
    for (int i = 0; i < m->nfiles; i++)
        json_array_append_new(files, json_pack("{s:s, s:s, s:I}", "file", m->files[i].file, "sha256",
                                               m->files[i].sha256, "bytes", (json_int_t)m->files[i].bytes));
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:o}", "format", MANIFEST_FORMAT, "name", m->name,
                          "architecture", m->architecture, "version", (json_int_t)m->version, "files", files);
    char *text = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (text == NULL)
        return NULL;
    size_t n = strlen(text);
    char *out = realloc(text, n + 2);
    if (out == NULL) {
        free(text);
        return NULL;
    }
    out[n] = '\n';
    out[n + 1] = '\0';
    return out;
}

void manifest_sign(const char *text, size_t len, const uint8_t sk[MANIFEST_SK_BYTES],
                   char sig_hex[2 * MANIFEST_SIG_BYTES + 1])
{
    unsigned char sig[crypto_sign_BYTES];
    crypto_sign_detached(sig, NULL, (const unsigned char *)text, len, sk);
    sodium_bin2hex(sig_hex, 2 * MANIFEST_SIG_BYTES + 1, sig, sizeof sig);
}

int manifest_verify(const char *text, size_t len, const char *sig_text, const uint8_t pk[MANIFEST_PK_BYTES],
                    struct err *err)
{
    unsigned char sig[crypto_sign_BYTES];
    size_t got = 0;
    const char *end;
    while (*sig_text == ' ' || *sig_text == '\t' || *sig_text == '\n' || *sig_text == '\r')
        sig_text++;
    if (sodium_hex2bin(sig, sizeof sig, sig_text, strlen(sig_text), NULL, &got, &end) != 0 ||
        got != sizeof sig || strspn(end, " \t\r\n") != strlen(end))
        return err_set(err, EBADMSG, "manifest.sig: not an Ed25519 signature in hex (128 digits)");
    if (crypto_sign_verify_detached(sig, (const unsigned char *)text, len, pk) != 0)
        return err_set(err, EACCES, "manifest.sig: the signature does not verify");
    return 0;
}

void manifest_key_id(const uint8_t pk[MANIFEST_PK_BYTES], char id[17])
{
    sodium_bin2hex(id, 17, pk, 8);
}

int manifest_key_read(const char *path, uint8_t *key, size_t keylen, bool secret, struct err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(err, errno, "%s: %s", path, strerror(errno));
    struct stat st;
    char buf[1024];
    ssize_t n = fstat(fd, &st) == 0 ? read(fd, buf, sizeof buf - 1) : -1;
    int e = errno;
    close(fd);
    if (n < 0)
        return err_set(err, e, "%s: %s", path, strerror(e));
    buf[n] = '\0';
    if (secret && (st.st_mode & 077)) {
        /* a public key (moat model keygen's .pub) where the secret one goes */
        uint8_t pk[MANIFEST_PK_BYTES];
        bool pub = n > 0 && manifest_key_read(path, pk, sizeof pk, false, &(struct err){0}) == 0;
        sodium_memzero(buf, sizeof buf);
        if (pub)
            return err_set(err, EINVAL, "%s: a public key; signing takes the secret key (artifact.key "
                           "from moat model keygen)", path);
        return err_set(err, EPERM, "%s: secret key readable by group or others (mode %03o); chmod 600 it",
                       path, (unsigned)(st.st_mode & 0777));
    }
    /* the first line that is not blank or a comment */
    char *line = buf, *next;
    for (; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        line += strspn(line, " \t\r");
        size_t l = strlen(line);
        while (l && (line[l - 1] == ' ' || line[l - 1] == '\t' || line[l - 1] == '\r'))
            line[--l] = '\0';
        if (l && line[0] != '#')
            break;
    }
    size_t got = 0;
    int bad = 1;
    uint8_t tmp[MANIFEST_SK_BYTES]; /* key is untouched on failure */
    if (keylen > sizeof tmp)
        line = NULL;
    else if (line && strlen(line) == 2 * keylen)
        bad = sodium_hex2bin(tmp, keylen, line, strlen(line), NULL, &got, NULL) != 0 || got != keylen;
    else if (line)
        bad = sodium_base642bin(tmp, keylen, line, strlen(line), NULL, &got, NULL,
                                sodium_base64_VARIANT_ORIGINAL) != 0 || got != keylen;
    if (!bad)
        memcpy(key, tmp, keylen);
    sodium_memzero(tmp, sizeof tmp);
    sodium_memzero(buf, sizeof buf);
    if (bad)
        return err_set(err, EINVAL, "%s: not an Ed25519 %s key (%zu bytes in hex or base64)", path,
                       secret ? "secret" : "public", keylen);
    return 0;
}

static int write_new(const char *path, const char *text, mode_t mode, struct err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return err_set(err, errno, "%s: %s", path, strerror(errno));
    size_t len = strlen(text);
    ssize_t w = write(fd, text, len);
    int e = errno;
    if (fchmod(fd, mode) != 0 || fsync(fd) != 0 || w != (ssize_t)len) {
        close(fd);
        unlink(path);
        return err_set(err, w < 0 ? e : EIO, "%s: write failed", path);
    }
    close(fd);
    return 0;
}

int manifest_keypair_write(const char *sk_path, const char *pk_path, struct err *err)
{
    if (sodium_init() < 0)
        return err_set(err, EIO, "libsodium: initialisation failed");
    unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    char skhex[2 * sizeof sk + 2], pkhex[2 * sizeof pk + 2];
    crypto_sign_keypair(pk, sk);
    sodium_bin2hex(skhex, sizeof skhex, sk, sizeof sk);
    sodium_bin2hex(pkhex, sizeof pkhex, pk, sizeof pk);
    strcat(skhex, "\n");
    strcat(pkhex, "\n");
    sodium_memzero(sk, sizeof sk);
    int rc = write_new(sk_path, skhex, 0600, err);
    sodium_memzero(skhex, sizeof skhex);
    if (rc != 0)
        return -1;
    if (write_new(pk_path, pkhex, 0644, err) != 0) {
        unlink(sk_path);
        return -1;
    }
    return 0;
}
