/* ctl_model.c: uploads, verification, manifests, shard extraction and serving. */
#include "controller/ctl_model.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "controller/ctl_audit.h"
#include "shared/log.h"
#include "shared/manifest.h"
#include "shared/units.h"
#include "shared/model.h"
#include "shared/sha256.h"
#include "shared/text.h"

static void art_path(const struct ctl *ctl, char *out, size_t cap, const char *fmt, const char *a,
                     const char *b)
{
    char rel[256];
    snprintf(rel, sizeof rel, fmt, a, b);
    snprintf(out, cap, "%s/artifacts/%s", ctl->cfg.state_dir, rel);
}

/* upload_path: where peer's upload of the file with this sha256 collects:
 * upload/KEYID-SHA.part, KEYID the first 8 bytes of SHA-256(peer's Z85 key) in
 * hex, so that one client's bytes never mix with another's (a stray or hostile
 * upload of the same hash cannot spoil a genuine import). */
static void upload_path(const struct ctl *ctl, const struct net_peer *peer, const char *sha,
                        char *out, size_t cap)
{
    unsigned char d[SHA256_BYTES];
    char hex[65], id[17] = "anonymous";
    struct err e = {0};
    if (peer->key[0] && sha256_once(peer->key, strlen(peer->key), d, &e) == 0) {
        sha256_hex(d, hex);
        snprintf(id, sizeof id, "%.16s", hex);
    }
    char rel[128];
    snprintf(rel, sizeof rel, "%s-%s.part", id, sha);
    art_path(ctl, out, cap, "upload/%s%s", rel, "");
}

/* uploads_held: bytes of the unfinished uploads (upload/<id>-*.part) of the
 * key whose upload path is path, that one aside. */
static uint64_t uploads_held(const struct ctl *ctl, const char *path)
{
    char dir[PATH_MAX];
    art_path(ctl, dir, sizeof dir, "upload%s%s", "", "");
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    size_t idlen = strcspn(base, "-") + 1; /* "<id>-" */
    uint64_t sum = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, base, idlen) != 0 || strcmp(de->d_name, base) == 0)
            continue;
        char p[PATH_MAX + 256];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISREG(st.st_mode))
            sum += (uint64_t)st.st_size;
    }
    closedir(d);
    return sum;
}

/* sweep_uploads: remove the uploads (upload/\*.part) not written for max_age
 * seconds (every one with 0): an import given up, or cut by a restart, leaves
 * no bytes behind for long. Best effort: failures are logged. */
static void sweep_uploads(const struct ctl *ctl, double max_age)
{
    char dir[PATH_MAX];
    art_path(ctl, dir, sizeof dir, "upload%s%s", "", "");
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    double now = units_now();
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n < 6 || strcmp(de->d_name + n - 5, ".part") != 0)
            continue;
        char path[PATH_MAX + 256];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(path, &st) != 0 || (max_age > 0 && now - (double)st.st_mtime < max_age))
            continue;
        if (unlink(path) != 0)
            log_warn("ctl", "artifacts: %s: %s", path, strerror(errno));
        else
            log_info("ctl", "artifacts: removed an unfinished upload (%s, %lld bytes)", de->d_name,
                     (long long)st.st_size);
    }
    closedir(d);
}

int ctl_model_init(struct ctl *ctl, struct err *err)
{
    const char *dirs[] = {"", "upload", "objects", "models"};
    char path[PATH_MAX];
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        art_path(ctl, path, sizeof path, "%s%s", dirs[i], "");
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return err_set(err, errno, "artifacts: mkdir %s: %s", path, strerror(errno));
    }
    sweep_uploads(ctl, 0); /* no client's upload survives a restart: it starts again */
    /* a trust root that cannot be read is a configuration error, found now
     * rather than at the first import */
    for (int i = 0; i < ctl->cfg.trust_roots.n; i++) {
        uint8_t pk[MANIFEST_PK_BYTES];
        if (manifest_key_read(ctl->cfg.trust_roots.items[i], pk, sizeof pk, false, err) != 0)
            return err_prefix(err, "trust_roots");
    }
    return 0;
}

static bool is_hex64(const char *s)
{
    if (strlen(s) != 64)
        return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    return true;
}

static bool is_name(const char *s)
{
    return *s && strlen(s) <= 64 &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == strlen(s) &&
           s[0] != '.';
}

static int known_file(const char *f)
{
    for (int i = 0; i < MODEL_FILES; i++)
        if (strcmp(f, model_file_names[i]) == 0)
            return i;
    return -1;
}

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

int ctl_on_model_put(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err)
{
    const json_t *b = msg->body;
    const char *name = jstr(b, "name"), *file = jstr(b, "file"), *sha = jstr(b, "sha256");
    uint64_t off = (uint64_t)json_integer_value(json_object_get(b, "offset"));
    uint64_t total = (uint64_t)json_integer_value(json_object_get(b, "total"));
    if (!is_name(name))
        return err_set(err, EINVAL, "model name '%.64s': use letters, digits, '.', '_', '-'", name);
    if (known_file(file) < 0)
        return err_set(err, EINVAL, "model %s: file '%.64s' is not part of a model", name, file);
    if (!is_hex64(sha))
        return err_set(err, EINVAL, "model %s: %s: sha256 must be 64 lowercase hex digits", name, file);
    if (msg->nblobs != 1 || msg->blobs[0].len > CTL_MODEL_CHUNK)
        return err_set(err, EINVAL, "model %s: %s: one chunk of at most %u bytes expected", name, file,
                       CTL_MODEL_CHUNK);
    size_t len = msg->blobs[0].len;
    if (off + len > total)
        return err_set(err, EINVAL, "model %s: %s: chunk past the declared size", name, file);
    char path[PATH_MAX];
    upload_path(ctl, peer, sha, path, sizeof path);
    if (off == 0)
        sweep_uploads(ctl, CTL_MODEL_UPLOAD_STALE);
    /* One key's unfinished uploads are bounded (upload_max), and no upload
     * takes the last CTL_MODEL_FREE_MIN of the state directory's disk from
     * the store: bytes sent by a client are on disk before they are checked. */
    uint64_t held = uploads_held(ctl, path), cap = ctl->cfg.upload_max;
    if (total > cap || held + off + len > cap)
        return err_set(err, EDQUOT, "model %s: %s: %.1f MiB: this key's unfinished uploads hold "
                       "%.1f MiB, and upload_max is %.1f MiB (an unfinished upload goes after an "
                       "hour unwritten)", name, file, total / 1048576.0, held / 1048576.0,
                       cap / 1048576.0);
    struct statvfs vfs;
    if (statvfs(ctl->cfg.state_dir, &vfs) == 0 &&
        (uint64_t)vfs.f_bavail * vfs.f_frsize < len + CTL_MODEL_FREE_MIN)
        return err_set(err, ENOSPC, "model %s: %s: the state directory's disk has %.1f MiB free; "
                       "uploads leave %u MiB to the store", name, file,
                       (double)vfs.f_bavail * vfs.f_frsize / 1048576.0, CTL_MODEL_FREE_MIN >> 20);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return err_set(err, errno, "model %s: %s: %s", name, path, strerror(errno));
    struct stat st;
    int rc = fstat(fd, &st);
    /* Chunks come in order; one sent again (its reply was lost) restarts the
     * upload from its offset: what follows it is cut. The SHA-256 check at
     * commit is what makes the file trusted. */
    if (rc == 0 && (uint64_t)st.st_size < off) {
        close(fd);
        return err_set(err, EINVAL, "model %s: %s: chunk at offset %llu, expected %llu", name, file,
                       (unsigned long long)off, (unsigned long long)st.st_size);
    }
    ssize_t w = rc == 0 ? pwrite(fd, msg->blobs[0].data, len, (off_t)off) : -1;
    int e = errno;
    if (w == (ssize_t)len && ftruncate(fd, (off_t)(off + len)) != 0) {
        e = errno;
        w = -1;
    }
    close(fd);
    if (w != (ssize_t)len)
        return err_set(err, w < 0 ? e : ENOSPC, "model %s: %s: write: %s", name, file,
                       w < 0 ? strerror(e) : "short write");
    return ctl_out_reply(ctl, peer, msg->req_id,
                         json_pack("{s:I}", "received", (json_int_t)(off + len)));
}


static int fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int artifact_put(struct ctl *ctl, const char *key, json_t *val, struct err *err)
{
    char *text = json_dumps(val, JSON_COMPACT);
    if (text == NULL)
        return err_set(err, ENOMEM, "artifacts: out of memory");
    int rc = ctl_batch(ctl, err);
    if (rc == 0)
        rc = store_put(ctl->store, STORE_DB_ARTIFACTS, key, strlen(key), text, strlen(text), 0, err);
    free(text);
    if (rc != 0 && ctl->store_err.code == 0)
        ctl->store_err = *err;
    return rc;
}

static json_t *artifact_get(struct ctl *ctl, const char *key, struct err *err)
{
    void *val;
    size_t len;
    if (store_get(ctl->store, STORE_DB_ARTIFACTS, key, strlen(key), &val, &len, err) != 0)
        return NULL;
    json_t *o = json_loadb(val, len, 0, NULL);
    free(val);
    if (o == NULL)
        err_set(err, EPROTO, "artifacts: record %s is not JSON", key);
    return o;
}

json_t *ctl_model_manifest(struct ctl *ctl, const char *name, struct err *err)
{
    char key[96];
    snprintf(key, sizeof key, "model/%.64s", name);
    json_t *m = artifact_get(ctl, key, err);
    if (m == NULL && err->code == ENOENT)
        err_set(err, ENOENT, "model %.64s: not imported (moat model import DIR --name %.64s)", name, name);
    return m;
}

/* signed_check: the commit's manifest.json is signed by a trust root, names this
 * artifact, lists exactly the committed files with their hashes, and is newer
 * than what is imported. *signed_ false: an unsigned artifact let in by
 * allow_unsigned_artifacts. signer: the trust root's key id. */
static bool same_files(const json_t *a, const json_t *b)
{
    if (json_array_size(a) != json_array_size(b))
        return false;
    size_t i, k;
    json_t *f, *g;
    json_array_foreach(a, i, f) {
        bool found = false;
        json_array_foreach(b, k, g)
            found |= strcmp(jstr(f, "file"), jstr(g, "file")) == 0 &&
                     strcmp(jstr(f, "sha256"), jstr(g, "sha256")) == 0;
        if (!found)
            return false;
    }
    return true;
}

static int signed_check(struct ctl *ctl, const char *name, const json_t *b, struct manifest *m,
                        bool *signed_, char signer[17], json_t **same, struct err *err)
{
    *same = NULL;
    const json_t *text = json_object_get(b, "manifest");
    const char *sig = jstr(b, "signature");
    *signed_ = false;
    if (text == NULL) {
        if (!ctl->cfg.allow_unsigned_artifacts)
            return err_set(err, EACCES, "model %s: no manifest.json: unsigned artifacts are refused "
                           "(sign it on the connected side: moat model sign DIR --key FILE)", name);
        json_t *prev = ctl_model_manifest(ctl, name, &(struct err){0});
        bool was_signed = json_is_true(json_object_get(prev, "signed"));
        json_int_t pv = json_integer_value(json_object_get(prev, "version"));
        json_decref(prev);
        if (was_signed) /* the override lets unsigned models in, not over signed ones */
            return err_set(err, EACCES, "model %s: version %lld is signed; an unsigned import may not "
                           "replace it (import it under another name)", name, (long long)pv);
        log_warn("ctl", "model %s: UNSIGNED ARTIFACT ACCEPTED because allow_unsigned_artifacts = true", name);
        return 0;
    }
    if (sig == NULL)
        return err_set(err, EACCES, "model %s: manifest.sig is missing", name);
    const char *t = json_string_value(text);
    size_t len = json_string_length(text);
    if (ctl->cfg.trust_roots.n == 0)
        return err_set(err, EACCES, "model %s: manifest.json: no trust_roots configured, so no "
                       "signature is trusted (the controller's trust_roots; a local cluster "
                       "reads DIR/trust/*.pub when it starts)", name);
    struct err ve = {0};
    for (int i = 0; i < ctl->cfg.trust_roots.n && !*signed_; i++) {
        uint8_t pk[MANIFEST_PK_BYTES];
        struct err ke = {0};
        if (manifest_key_read(ctl->cfg.trust_roots.items[i], pk, sizeof pk, false, &ke) != 0) {
            /* checked at start; gone or changed since: the others still count */
            log_warn("ctl", "trust_roots: %s", ke.msg);
            continue;
        }
        if (manifest_verify(t, len, sig, pk, &ve) == 0) {
            *signed_ = true;
            manifest_key_id(pk, signer);
        } else if (ve.code == EBADMSG) {
            return err_set(err, EACCES, "model %s: %s", name, ve.msg);
        }
    }
    if (!*signed_)
        return err_set(err, EACCES, "model %s: manifest.json: not signed by a trust root (the signature "
                       "does not verify with any of the %d configured keys)", name, ctl->cfg.trust_roots.n);
    if (manifest_parse(t, len, m, err) != 0)
        return err_prefix(err, "model %s: manifest.json", name);
    if (strcmp(m->name, name) != 0)
        return err_set(err, EINVAL, "model %s: manifest.json is signed for artifact '%s'", name, m->name);
    if (strcmp(m->architecture, "bert") != 0)
        return err_set(err, ENOTSUP, "model %s: manifest.json: architecture '%s', this cluster runs bert",
                       name, m->architecture);
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(b, "files"), i, f) {
        const char *file = jstr(f, "file");
        const struct manifest_file *mf = manifest_file_find(m, file);
        if (mf == NULL)
            return err_set(err, EINVAL, "model %s: %s is not in the signed manifest", name, file);
        if (strcmp(mf->sha256, jstr(f, "sha256")) != 0 ||
            mf->bytes != (int64_t)json_integer_value(json_object_get(f, "bytes")))
            return err_set(err, EINVAL, "model %s: %s: SHA-256 %.16s... differs from the signed manifest's "
                           "%.16s...", name, file, jstr(f, "sha256"), mf->sha256);
    }
    if ((size_t)m->nfiles != json_array_size(json_object_get(b, "files")))
        return err_set(err, EINVAL, "model %s: manifest.json lists %d files, %zu committed", name, m->nfiles,
                       json_array_size(json_object_get(b, "files")));
    struct err pe = {0};
    json_t *prev = ctl_model_manifest(ctl, name, &pe);
    json_int_t pv = prev ? json_integer_value(json_object_get(prev, "version")) : 0;
    if (prev && m->version == pv && json_is_true(json_object_get(prev, "signed")) &&
        same_files(json_object_get(prev, "files"), json_object_get(b, "files"))) {
        *same = prev; /* this very version again (a resent commit): nothing to do */
        return 0;
    }
    json_decref(prev);
    if (prev && m->version <= pv)
        return err_set(err, EACCES, "model %s: version %lld is not newer than the imported version %lld "
                       "(rollback refused)", name, (long long)m->version, (long long)pv);
    return 0;
}

static int model_commit(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err);

int ctl_on_model_commit(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err)
{
    if (model_commit(ctl, peer, msg, err) == 0)
        return 0;
    /* A refused import is audited as an accepted one is (an untrusted signer,
     * a rollback, a file that is not what was signed, a tensor that does not
     * fit the architecture): the controller's own troubles are not refusals,
     * and a void batch keeps nothing. */
    if ((err->code != EACCES && err->code != EINVAL && err->code != EPROTO && err->code != ENOTSUP) ||
        ctl->store_err.code != 0)
        return -1; /* not a refusal: the controller's own trouble (store, memory, disk) */
    char object[96];
    snprintf(object, sizeof object, "model %.64s", jstr(msg->body, "name"));
    text_blank_controls(object);
    log_warn("ctl", "refused import of %s: %s", object, err->msg);
    struct err e = {0};
    if (ctl_audit_append(ctl, peer->key[0] ? peer->key : "none", "model.refuse", object,
                         json_pack("{s:s}", "reason", err->msg), &e) != 0)
        log_error("ctl", "audit: %s", e.msg);
    return -1;
}

static int model_commit(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err)
{
    const json_t *b = msg->body, *files = json_object_get(b, "files");
    const char *name = jstr(b, "name");
    if (!is_name(name))
        return err_set(err, EINVAL, "model name '%.64s': use letters, digits, '.', '_', '-'", name);
    if (json_array_size(files) != MODEL_FILES)
        return err_set(err, EINVAL, "model %s: expected the %d files config.json, vocab.txt, model.safetensors",
                       name, MODEL_FILES);
    struct manifest sm;
    bool is_signed;
    char signer[17] = "";
    json_t *same;
    if (signed_check(ctl, name, b, &sm, &is_signed, signer, &same, err) != 0)
        return -1;
    if (same) {
        json_object_del(same, "dir");
        json_object_set_new(same, "already", json_true()); /* nothing was imported */
        log_info("ctl", "model %s v%lld: already imported", name, (long long)sm.version);
        return ctl_out_reply(ctl, peer, msg->req_id, same);
    }
    /* 1. every upload is complete and hashes to what the client declared */
    const char *shas[MODEL_FILES] = {0};
    size_t i;
    json_t *f;
    json_array_foreach(files, i, f) {
        int k = known_file(jstr(f, "file"));
        const char *sha = jstr(f, "sha256");
        if (k < 0 || shas[k])
            return err_set(err, EINVAL, "model %s: file '%.64s' unknown or repeated", name, jstr(f, "file"));
        if (!is_hex64(sha))
            return err_set(err, EINVAL, "model %s: %s: bad sha256", name, jstr(f, "file"));
        shas[k] = sha;
        char part[PATH_MAX], obj[PATH_MAX], hex[65];
        upload_path(ctl, peer, sha, part, sizeof part);
        art_path(ctl, obj, sizeof obj, "objects/%s%s", sha, "");
        uint64_t bytes;
        if (access(obj, F_OK) == 0) { /* already have these bytes: verify again anyway */
            if (sha256_file(obj, hex, &bytes, err) != 0)
                return -1;
            if (strcmp(hex, sha) != 0)
                return err_set(err, EIO, "model %s: stored object %s is corrupt", name, sha);
            unlink(part);
            continue;
        }
        if (sha256_file(part, hex, &bytes, err) != 0)
            return err_prefix(err, "model %s: %s: upload incomplete", name, jstr(f, "file"));
        if (bytes != (uint64_t)json_integer_value(json_object_get(f, "bytes")))
            return err_set(err, EINVAL, "model %s: %s: received %llu bytes, declared %lld", name,
                           jstr(f, "file"), (unsigned long long)bytes,
                           (long long)json_integer_value(json_object_get(f, "bytes")));
        if (strcmp(hex, sha) != 0) {
            unlink(part);
            return err_set(err, EINVAL, "model %s: %s: SHA-256 of the received bytes is %.16s..., not %.16s...",
                           name, jstr(f, "file"), hex, sha);
        }
        if (fsync_path(part) != 0 || rename(part, obj) != 0)
            return err_set(err, errno, "model %s: %s: %s", name, obj, strerror(errno));
    }
    /* 2. the architecture: config and every tensor, through a directory of links */
    struct err e2 = {0};
    json_t *prev = ctl_model_manifest(ctl, name, &e2);
    json_int_t version = is_signed ? (json_int_t)sm.version
                                   : prev ? json_integer_value(json_object_get(prev, "version")) + 1 : 1;
    json_decref(prev);
    char vname[96], dir[PATH_MAX];
    snprintf(vname, sizeof vname, "%s-v%lld", name, (long long)version);
    art_path(ctl, dir, sizeof dir, "models/%s%s", vname, "");
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return err_set(err, errno, "model %s: %s: %s", name, dir, strerror(errno));
    for (int k = 0; k < MODEL_FILES; k++) {
        char obj[PATH_MAX], lnk[PATH_MAX + 80];
        art_path(ctl, obj, sizeof obj, "objects/%s%s", shas[k], "");
        snprintf(lnk, sizeof lnk, "%s/%s", dir, model_file_names[k]);
        unlink(lnk);
        if (link(obj, lnk) != 0)
            return err_set(err, errno, "model %s: link %s: %s", name, lnk, strerror(errno));
    }
    model_t *m = model_open(dir, err);
    if (m == NULL)
        return err_prefix(err, "model %s refused", name);
    const struct model_config cfg = *model_config_get(m), *c = &cfg; /* m is freed next */
    json_t *config = json_pack("{s:i, s:i, s:i, s:i, s:i, s:i}", "hidden", c->hidden, "heads", c->heads,
                               "layers", c->layers, "intermediate", c->intermediate, "vocab", c->vocab,
                               "max_position", c->max_position);
    model_destroy(m);
    json_t *man = json_pack("{s:s, s:I, s:O, s:o, s:f, s:s}", "name", name, "version", version,
                            "files", files, "config", config, "imported", units_now(), "dir", vname);
    json_object_set_new(man, "signed", json_boolean(is_signed));
    json_object_set_new(man, "signer", is_signed ? json_string(signer) : json_null());
    char key[96];
    snprintf(key, sizeof key, "model/%s", name);
    if (artifact_put(ctl, key, man, err) != 0) {
        json_decref(man);
        return -1;
    }
    char object[96];
    snprintf(object, sizeof object, "model %s", name);
    if (ctl_audit_append(ctl, peer->key, "model.import", object,
                         json_pack("{s:I, s:O, s:s}", "version", (json_int_t)version, "files", files,
                                   "signer", is_signed ? signer : "UNSIGNED (allow_unsigned_artifacts)"),
                         err) != 0) {
        json_decref(man);
        return -1;
    }
    log_info("ctl", "model %s v%lld imported (hidden %d, %d layers)", name, (long long)version,
             c->hidden, c->layers);
    return ctl_out_reply(ctl, peer, msg->req_id, man);
}

static int list_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    if (klen < 6 || memcmp(key, "model/", 6) != 0)
        return 1; /* past the models */
    if (klen > 6) {
        json_t *o = json_loadb(val, vlen, 0, NULL);
        if (o) {
            json_object_del(o, "dir");
            json_array_append_new(arg, o);
        }
    }
    return 0;
}

int ctl_on_model_list(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err)
{
    json_t *models = json_array();
    /* in the open batch: a model whose import this pass answered is listed */
    if (store_foreach_from(ctl->store, STORE_DB_ARTIFACTS, "model/", 6, list_cb, models, err) < 0) {
        json_decref(models);
        return -1;
    }
    return ctl_out_reply(ctl, peer, msg->req_id, json_pack("{s:o}", "models", models));
}

/* object_check: whether the stored object named sha (objects/SHA) still hashes
 * to its name: 1 yes, 0 no (err says so), 2 it is not there (ENOENT), -1 on
 * another I/O error (err). */
static int object_check(const struct ctl *ctl, const char *sha, struct err *err)
{
    char obj[PATH_MAX], hex[65] = "";
    uint64_t bytes = 0;
    art_path(ctl, obj, sizeof obj, "objects/%s%s", sha, "");
    if (sha256_file(obj, hex, &bytes, err) != 0)
        return err->code == ENOENT ? 2 : -1;
    if (strcmp(hex, sha) == 0)
        return 1;
    err_set(err, EIO, "stored object %.16s... is damaged: its SHA-256 is %.16s... (%s)", sha, hex, obj);
    return 0;
}

/* A walk over the artifact records "shards/NAME/VERSION/TP" (JSON arrays of
 * {sha256, bytes}, rank order), listing {tp, rank, sha256}. */
struct shards_walk {
    const char *prefix;
    size_t plen;
    json_t *list;
    bool keys; /* the prefix is "shards/": each item says its name and version too */
};

static int shards_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    struct shards_walk *w = arg;
    if (klen < w->plen || memcmp(key, w->prefix, w->plen) != 0)
        return 1; /* past the prefix */
    /* the rest of the key: "TP", or with keys "NAME/VERSION/TP" */
    char rest[160], *name = rest, *version = NULL, *tp = rest;
    size_t n = klen - w->plen < sizeof rest - 1 ? klen - w->plen : sizeof rest - 1;
    memcpy(rest, (const char *)key + w->plen, n);
    rest[n] = '\0';
    if (w->keys) {
        char *slash = strrchr(rest, '/');
        if (slash == NULL)
            return 0;
        *slash = '\0';
        tp = slash + 1;
        if ((slash = strrchr(rest, '/')) == NULL)
            return 0;
        *slash = '\0';
        version = slash + 1;
    }
    json_t *a = json_loadb(val, vlen, 0, NULL);
    size_t r;
    json_t *sh;
    json_array_foreach(a, r, sh) {
        if (!json_is_string(json_object_get(sh, "sha256")))
            continue;
        json_t *o = json_pack("{s:i, s:i, s:s}", "tp", atoi(tp), "rank", (int)r, "sha256",
                              jstr(sh, "sha256"));
        if (o && version) {
            json_object_set_new(o, "name", json_string(name));
            json_object_set_new(o, "version", json_string(version));
        }
        json_array_append_new(w->list, o);
    }
    json_decref(a);
    return 0;
}

int ctl_on_model_verify(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err)
{
    json_t *man = ctl_model_manifest(ctl, jstr(msg->body, "name"), err);
    if (man == NULL)
        return -1;
    json_t *out = json_array();
    bool ok = true;
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(man, "files"), i, f) {
        char obj[PATH_MAX], hex[65] = "";
        uint64_t bytes = 0;
        struct err e = {0};
        art_path(ctl, obj, sizeof obj, "objects/%s%s", jstr(f, "sha256"), "");
        bool good = sha256_file(obj, hex, &bytes, &e) == 0 && strcmp(hex, jstr(f, "sha256")) == 0;
        ok &= good;
        json_array_append_new(out, json_pack("{s:s, s:b, s:s}", "file", jstr(f, "file"), "ok", good,
                                             "sha256", hex));
    }
    /* the TP shards extracted from this version (kept to serve workers) */
    char prefix[160];
    snprintf(prefix, sizeof prefix, "shards/%s/%lld/", jstr(man, "name"),
             (long long)json_integer_value(json_object_get(man, "version")));
    struct shards_walk walk = {.prefix = prefix, .plen = strlen(prefix), .list = json_array()};
    if (walk.list == NULL || store_foreach_from(ctl->store, STORE_DB_ARTIFACTS, prefix, walk.plen,
                                                shards_cb, &walk, err) < 0) {
        json_decref(walk.list);
        json_decref(out);
        json_decref(man);
        return -1;
    }
    json_t *shards = json_array();
    json_array_foreach(walk.list, i, f) {
        struct err e = {0};
        const char *sha = jstr(f, "sha256");
        int good = object_check(ctl, sha, &e);
        if (good == 0) { /* made again from the verified files at the next job (ctl_model_shards) */
            char obj[PATH_MAX];
            art_path(ctl, obj, sizeof obj, "objects/%s%s", sha, "");
            unlink(obj);
            log_error("ctl", "model %s: TP shard %.16s... (tp %lld, rank %lld): %s; removed, to be "
                      "extracted again", jstr(man, "name"), sha,
                      (long long)json_integer_value(json_object_get(f, "tp")),
                      (long long)json_integer_value(json_object_get(f, "rank")), e.msg);
        }
        ok &= good == 1 || good == 2; /* a shard not on disk is made again when needed */
        json_array_append_new(shards, json_pack("{s:O, s:O, s:s, s:b, s:b, s:b}", "tp",
                                                json_object_get(f, "tp"), "rank", json_object_get(f, "rank"),
                                                "sha256", sha, "ok", good == 1, "removed", good == 0,
                                                "missing", good == 2));
    }
    json_decref(walk.list);
    json_t *reply = json_pack("{s:s, s:O, s:b, s:o, s:o}", "name", jstr(man, "name"), "version",
                              json_object_get(man, "version"), "ok", ok, "files", out, "shards", shards);
    json_decref(man);
    return ctl_out_reply(ctl, peer, msg->req_id, reply);
}

/* shard_write: shard s (whose SHA-256 is hex) as objects/HEX, whole and synced
 * before it takes that name. errno values. */
static int shard_write(const struct ctl *ctl, const model_shard_t *s, const char *hex, struct err *err)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    size_t len;
    const void *bytes = model_shard_bytes(s, &len);
    art_path(ctl, path, sizeof path, "objects/%s%s", hex, "");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    errno = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ssize_t w = fd >= 0 ? write(fd, bytes, len) : -1;
    int ok = fd >= 0 && w == (ssize_t)len && fsync(fd) == 0;
    int e = errno ? errno : EIO; /* a short write sets none */
    if (fd >= 0)
        close(fd);
    if (!ok || rename(tmp, path) != 0) {
        if (ok)
            e = errno;
        unlink(tmp);
        return err_set(err, e, "shard %s: %s", path, strerror(e));
    }
    return 0;
}

/* shard_restore: make the TP shard sha again (removed as damaged, or gone)
 * from the model version it was extracted from: the artifact records
 * "shards/NAME/VERSION/TP" say which, models/NAME-vVERSION holds its files.
 * The shard made must hash to sha, which is its whole check. 0; ENOENT when
 * no record names sha or its version's files are gone; model errors. */
static int shard_restore(struct ctl *ctl, const char *sha, struct err *err)
{
    struct shards_walk walk = {.prefix = "shards/", .plen = 7, .list = json_array(), .keys = true};
    if (walk.list == NULL)
        return err_set(err, ENOMEM, "out of memory");
    if (store_foreach_from(ctl->store, STORE_DB_ARTIFACTS, walk.prefix, walk.plen, shards_cb, &walk,
                           err) < 0) {
        json_decref(walk.list);
        return -1;
    }
    size_t i;
    json_t *f;
    int rc = err_set(err, ENOENT, "shard %.16s...: no model version made it", sha);
    json_array_foreach(walk.list, i, f) {
        if (strcmp(jstr(f, "sha256"), sha) != 0)
            continue;
        char vname[160], dir[PATH_MAX];
        snprintf(vname, sizeof vname, "%s-v%s", jstr(f, "name"), jstr(f, "version"));
        art_path(ctl, dir, sizeof dir, "models/%s%s", vname, "");
        model_t *m = model_open(dir, err);
        if (m == NULL) {
            rc = err_prefix(err, "shard %.16s...", sha);
            break;
        }
        int tp = (int)json_integer_value(json_object_get(f, "tp"));
        int rank = (int)json_integer_value(json_object_get(f, "rank"));
        model_shard_t *s = model_shard_extract(m, tp, rank, err);
        model_destroy(m);
        if (s == NULL) {
            rc = err_prefix(err, "shard %.16s...", sha);
            break;
        }
        char hex[65];
        model_shard_sha256(s, hex);
        rc = strcmp(hex, sha) != 0 ? err_set(err, EIO, "shard %.16s...: made again from %s, it hashes "
                                              "to %.16s...", sha, vname, hex)
                                   : shard_write(ctl, s, hex, err);
        model_shard_destroy(s);
        if (rc == 0)
            log_info("ctl", "shard %.16s... (tp %d, rank %d of %s) extracted again", sha, tp, rank, vname);
        break;
    }
    json_decref(walk.list);
    return rc;
}

json_t *ctl_model_shards(struct ctl *ctl, const char *name, int tp, struct err *err)
{
    json_t *man = ctl_model_manifest(ctl, name, err);
    if (man == NULL)
        return NULL;
    char key[160];
    snprintf(key, sizeof key, "shards/%s/%lld/%d", name,
             (long long)json_integer_value(json_object_get(man, "version")), tp);
    struct err e = {0};
    json_t *have = artifact_get(ctl, key, &e);
    size_t i;
    json_t *f;
    json_array_foreach(have, i, f) {
        char obj[PATH_MAX];
        art_path(ctl, obj, sizeof obj, "objects/%s%s", jstr(f, "sha256"), "");
        if (access(obj, F_OK) != 0) { /* removed as damaged (SHARD_GET, model verify) */
            log_warn("ctl", "model %s: TP shard %s is gone; the shards of tp %d are extracted again",
                     name, obj, tp);
            json_decref(have);
            have = NULL;
            break;
        }
    }
    if (have) {
        json_decref(man);
        return have;
    }
    /* The stored files are what was verified at import: check again before use. */
    json_array_foreach(json_object_get(man, "files"), i, f) {
        char obj[PATH_MAX], hex[65];
        uint64_t bytes;
        art_path(ctl, obj, sizeof obj, "objects/%s%s", jstr(f, "sha256"), "");
        hex[0] = '\0';
        int rc = sha256_file(obj, hex, &bytes, err);
        if (rc == 0 && strcmp(hex, jstr(f, "sha256")) != 0)
            rc = err_set(err, EIO, "model %s: stored %s (%s) is corrupt: SHA-256 %.16s...", name,
                         jstr(f, "file"), obj, hex);
        if (rc != 0) {
            json_decref(man);
            return NULL;
        }
    }
    char dir[PATH_MAX];
    art_path(ctl, dir, sizeof dir, "models/%s%s", jstr(man, "dir"), "");
    json_decref(man);
    model_t *m = model_open(dir, err);
    if (m == NULL)
        return NULL;
    if (model_tp_check(model_config_get(m), tp, 0, err) != 0) {
        model_destroy(m);
        return NULL;
    }
    json_t *shards = json_array();
    for (int r = 0; r < tp; r++) {
        model_shard_t *s = model_shard_extract(m, tp, r, err);
        if (s == NULL)
            goto fail;
        char hex[65];
        size_t len;
        model_shard_bytes(s, &len);
        model_shard_sha256(s, hex);
        int rc = shard_write(ctl, s, hex, err);
        model_shard_destroy(s);
        if (rc != 0)
            goto fail;
        json_array_append_new(shards, json_pack("{s:s, s:I}", "sha256", hex, "bytes", (json_int_t)len));
    }
    model_destroy(m);
    if (artifact_put(ctl, key, shards, err) != 0) {
        json_decref(shards);
        return NULL;
    }
    log_info("ctl", "model %s: %d TP shards extracted", name, tp);
    return shards;
fail:
    model_destroy(m);
    json_decref(shards);
    return NULL;
}

/* served_of: object sha as st describes the file (device, inode, size, mtime). */
static struct ctl_served served_of(const char *sha, const struct stat *st)
{
    struct ctl_served v = {.dev = (uint64_t)st->st_dev, .ino = (uint64_t)st->st_ino,
                           .size = (uint64_t)st->st_size,
                           .mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec};
    snprintf(v.sha, sizeof v.sha, "%s", sha);
    return v;
}

/* served_verified: whether object sha, as st describes it, was hashed whole
 * when it was last served. served_note: it was (a ring of CTL_SERVED_MAX,
 * oldest replaced). */
static bool served_verified(const struct ctl *ctl, const char *sha, const struct stat *st)
{
    struct ctl_served now = served_of(sha, st);
    for (int i = 0; i < CTL_SERVED_MAX; i++) {
        const struct ctl_served *v = &ctl->served[i];
        if (strcmp(v->sha, now.sha) == 0 && v->dev == now.dev && v->ino == now.ino &&
            v->size == now.size && v->mtime_ns == now.mtime_ns)
            return true;
    }
    return false;
}

static void served_note(struct ctl *ctl, const char *sha, const struct stat *st)
{
    ctl->served[ctl->served_next] = served_of(sha, st);
    ctl->served_next = (ctl->served_next + 1) % CTL_SERVED_MAX;
}

int ctl_on_shard_get(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err)
{
    if (ctl_node_by_peer(ctl, peer) < 0)
        return err_set(err, ENOTCONN, "shard: only registered workers may fetch shards");
    const char *sha = jstr(msg->body, "sha256");
    if (!is_hex64(sha))
        return err_set(err, EINVAL, "shard: bad sha256");
    uint64_t off = (uint64_t)json_integer_value(json_object_get(msg->body, "offset"));
    size_t len = (size_t)json_integer_value(json_object_get(msg->body, "len"));
    if (len > CTL_MODEL_CHUNK)
        len = CTL_MODEL_CHUNK;
    char path[PATH_MAX];
    art_path(ctl, path, sizeof path, "objects/%s%s", sha, "");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && off == 0) { /* a TP shard removed (as damaged) or lost */
        if (shard_restore(ctl, sha, err) != 0)
            return -1; /* says why (ENOENT: no model version made it) */
        fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0) {
        int e = errno;
        return err_set(err, e, "shard %.16s...: %s", sha, strerror(e));
    }
    struct stat st;
    fstat(fd, &st);
    if (off == 0 && !served_verified(ctl, sha, &st)) {
        /* The first chunk: hash it whole before serving (once per file as it
         * is: a worker fetches a shard once and keeps it by hash), so that a
         * file damaged on this disk is not sent to fail at every rank. */
        struct err e = {0};
        int good = object_check(ctl, sha, &e);
        if (good == 0) {
            /* a TP shard is made again from its model's files; another object
             * (a vocabulary, an imported file) has no other source */
            close(fd);
            log_error("ctl", "%s", e.msg);
            struct err re = {0};
            if (shard_restore(ctl, sha, &re) != 0) /* replaces it whole when it can */
                return err_set(err, EIO, "%s (not made again: %s)", e.msg, re.msg);
            fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                return err_set(err, errno, "shard %.16s...: %s", sha, strerror(errno));
            fstat(fd, &st);
        } else if (good != 1) {
            close(fd);
            return err_set(err, e.code, "shard %.16s...: %s", sha, e.msg);
        }
        served_note(ctl, sha, &st);
    }
    void *buf = malloc(len);
    ssize_t n = buf && off < (uint64_t)st.st_size ? pread(fd, buf, len, (off_t)off) : 0;
    close(fd);
    if (buf == NULL || n < 0) {
        free(buf);
        return err_set(err, buf ? errno : ENOMEM, "shard %.16s...: read failed", sha);
    }
    if (ctl_out_reply(ctl, peer, msg->req_id, json_pack("{s:I}", "total", (json_int_t)st.st_size)) != 0 ||
        proto_msg_add_blob(ctl_out_last(ctl), buf, (size_t)n, err) != 0) {
        free(buf);
        return -1;
    }
    free(buf);
    return 0;
}
