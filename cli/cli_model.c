/* cli_model.c: moat model import|list|verify|sign|keygen: intake of model artifacts.
 *
 * sign and keygen run on the connected side: sign hashes the directory's files
 * and writes manifest.json and its Ed25519 signature manifest.sig
 * (shared/manifest.h). import checks the directory locally first (config and
 * every tensor against the architecture, SHA-256 of each file against
 * manifest.json: shared/model.h), uploads each file in chunks, then commits
 * the file list with manifest.json and manifest.sig; the controller checks the
 * signature against its trust roots, the hashes, the version (no rollback) and
 * the architecture again before it records anything.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_local.h"
#include "shared/manifest.h"
#include "shared/model.h"

#define CHUNK (4u << 20) /* the controller's CTL_MODEL_CHUNK */

static const char model_help[] =
    "usage: moat model import DIR [--name NAME]\n"
    "       moat model list\n"
    "       moat model verify NAME\n"
    "       moat model sign DIR --key FILE [--name NAME] [--version N]\n"
    "       moat model keygen --out DIR\n"
    "\n"
    "Bring a model into the cluster. DIR holds config.json, vocab.txt and\n"
    "model.safetensors of a BERT encoder (all-MiniLM-L6-v2).\n"
    "On the connected side (no controller needed):\n"
    "  keygen  write a new Ed25519 signing key pair: DIR/artifact.key (the secret\n"
    "          key: libsodium's 64 bytes in hex, mode 0600; keep it off the\n"
    "          cluster) and DIR/artifact.pub (32 bytes in hex: list it in the\n"
    "          controller's trust_roots)\n"
    "  sign    hash DIR's files and write DIR/manifest.json (artifact NAME,\n"
    "          default the directory's base name; architecture; version N,\n"
    "          default 1, which must grow with every release; each file's\n"
    "          SHA-256) and DIR/manifest.sig, its Ed25519 signature by the\n"
    "          secret key in FILE (hex or base64, mode 0600)\n"
    "On the cluster:\n"
    "  import  check DIR locally (architecture, every file's SHA-256 against\n"
    "          manifest.json, naming a file that differs), upload it, and commit\n"
    "          it with manifest.json and manifest.sig. The controller refuses an\n"
    "          unsigned artifact or one not signed by a key of its trust_roots,\n"
    "          any file whose hash differs from the manifest, and a version not\n"
    "          newer than the one imported (no rollback). NAME defaults to the\n"
    "          manifest's artifact name.\n"
    "  list    models with versions, signers and file hashes (--json: {\"models\": [...]})\n"
    "  verify  re-hash the stored files of NAME and the TP shards made from\n"
    "          them; exit 1 if any differs (a damaged shard is removed, to be\n"
    "          extracted again from the files)\n"
    "\n"
    "Examples:\n"
    "  moat model keygen --out ~/moat-signing                  # connected side, once\n"
    "  scripts/fetch-model.sh /media/intake/minilm             # connected side\n"
    "  moat model sign /media/intake/minilm --key ~/moat-signing/artifact.key --name minilm --version 3\n"
    "  moat model import /media/intake/minilm                  # isolated side\n"
    "  moat model verify minilm\n";

static int upload(struct cli *cli, const char *name, const char *dir, const struct model_file *f)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, f->name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cli_fail(cli, CLI_USAGE, "%s: %s", path, strerror(errno));
    char *buf = malloc(CHUNK);
    int rc = buf ? CLI_OK : cli_fail(cli, CLI_FAILED, "out of memory");
    int64_t off = 0;
    while (rc == CLI_OK && off < f->bytes) {
        ssize_t n = pread(fd, buf, CHUNK, (off_t)off);
        if (n <= 0) {
            rc = cli_fail(cli, CLI_FAILED, "%s: read: %s", path, n < 0 ? strerror(errno) : "file shrank");
            break;
        }
        json_t *body = json_pack("{s:s, s:s, s:s, s:I, s:I}", "name", name, "file", f->name, "sha256",
                                 f->sha256, "offset", (json_int_t)off, "total", (json_int_t)f->bytes);
        struct proto_blob blob = {buf, (size_t)n};
        json_t *reply;
        rc = cli_request_blobs(cli, PROTO_TYPE_MODEL_PUT, body, &blob, 1, true, &reply, NULL, NULL);
        if (rc != CLI_OK)
            break;
        json_decref(reply);
        off += n;
        if (!cli->json && isatty(2))
            fprintf(stderr, "\r%s: %lld/%lld bytes", f->name, (long long)off, (long long)f->bytes);
    }
    if (!cli->json && isatty(2))
        fprintf(stderr, "\n");
    free(buf);
    close(fd);
    return rc;
}

/* base_name: the last component of dir into buf. */
static const char *base_name(const char *dir, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", dir);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/')
        buf[--n] = '\0';
    const char *slash = strrchr(buf, '/');
    return slash ? slash + 1 : buf;
}

/* signed_read: DIR/manifest.json (parsed into *sm, its text into *text) and
 * DIR/manifest.sig into *sig, when DIR has a manifest. CLI_OK with *text NULL
 * when it has none. */
static int signed_read(struct cli *cli, const char *dir, struct manifest *sm, char **text, char **sig)
{
    char path[PATH_MAX];
    struct err e = {0};
    *text = *sig = NULL;
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    if (access(path, F_OK) != 0)
        return CLI_OK;
    if ((*text = cli_file_slurp(path)) == NULL)
        return cli_fail(cli, CLI_USAGE, "%s: %s", path, strerror(errno));
    if (manifest_parse(*text, strlen(*text), sm, &e) != 0)
        return cli_fail(cli, CLI_USAGE, "%s: %s", path, e.msg);
    snprintf(path, sizeof path, "%s/manifest.sig", dir);
    if ((*sig = cli_file_slurp(path)) == NULL)
        return cli_fail(cli, CLI_USAGE, "%s: %s (moat model sign writes it beside manifest.json)", path,
                        strerror(errno));
    return CLI_OK;
}

static int do_import(struct cli *cli, const char *dir, const char *name)
{
    struct err e = {0};
    struct manifest sm;
    char *mtext = NULL, *sig = NULL, base[PATH_MAX];
    int rc = signed_read(cli, dir, &sm, &mtext, &sig);
    if (rc == CLI_OK && name == NULL)
        name = mtext ? sm.name : base_name(dir, base, sizeof base);
    model_t *m = rc == CLI_OK ? model_open(dir, &e) : NULL;
    if (rc == CLI_OK && m == NULL)
        rc = cli_fail(cli, CLI_USAGE, "%s", e.msg);
    struct model_file files[MODEL_FILES];
    if (rc == CLI_OK && model_manifest_compute(m, files, &e) != 0)
        rc = cli_fail(cli, CLI_FAILED, "%s", e.msg);
    model_destroy(m);
    for (int i = 0; rc == CLI_OK && mtext && i < MODEL_FILES; i++) {
        const struct manifest_file *mf = manifest_file_find(&sm, files[i].name);
        if (mf == NULL)
            rc = cli_fail(cli, CLI_USAGE, "%s/%s: not listed in manifest.json", dir, files[i].name);
        else if (mf->bytes != files[i].bytes)
            rc = cli_fail(cli, CLI_USAGE, "%s/%s: %llu bytes, manifest.json says %llu (the file "
                          "changed after it was signed)", dir, files[i].name,
                          (unsigned long long)files[i].bytes, (unsigned long long)mf->bytes);
        else if (strcmp(mf->sha256, files[i].sha256) != 0)
            rc = cli_fail(cli, CLI_USAGE, "%s/%s: SHA-256 %.16s... differs from manifest.json's %.16s... "
                          "(the file changed after it was signed)", dir, files[i].name, files[i].sha256,
                          mf->sha256);
    }
    if (rc != CLI_OK) {
        free(mtext);
        free(sig);
        return rc;
    }
    for (int i = 0; i < MODEL_FILES && rc == CLI_OK; i++)
        rc = upload(cli, name, dir, &files[i]);
    json_t *arr = json_array(), *body = NULL;
    for (int i = 0; i < MODEL_FILES; i++)
        json_array_append_new(arr, json_pack("{s:s, s:s, s:I}", "file", files[i].name, "sha256",
                                             files[i].sha256, "bytes", (json_int_t)files[i].bytes));
    if (rc == CLI_OK) {
        body = json_pack("{s:s, s:o}", "name", name, "files", arr);
        if (mtext) {
            json_object_set_new(body, "manifest", json_string(mtext));
            json_object_set_new(body, "signature", json_string(sig));
        }
    } else {
        json_decref(arr);
    }
    free(mtext);
    free(sig);
    if (rc != CLI_OK)
        return rc;
    json_t *reply;
    rc = cli_request(cli, PROTO_TYPE_MODEL_COMMIT, body, true, &reply, NULL, NULL);
    if (rc != CLI_OK)
        return rc;
    if (cli->json)
        cli_json_print(reply);
    else
        printf(json_is_true(json_object_get(reply, "already"))
                   ? "model %s version %lld: imported already, with these very files; nothing changed\n"
                   : "model %s version %lld imported\n", cli_json_str(reply, "name", "?"),
               cli_json_int(reply, "version", 0));
    json_decref(reply);
    return CLI_OK;
}

static int do_sign(struct cli *cli, const char *dir, const char *key, const char *name, long long version)
{
    struct err e = {0};
    uint8_t sk[MANIFEST_SK_BYTES];
    if (manifest_key_read(key, sk, sizeof sk, true, &e) != 0)
        return cli_fail(cli, CLI_USAGE, "--key: %s", e.msg);
    model_t *m = model_open(dir, &e);
    if (m == NULL)
        return cli_fail(cli, CLI_USAGE, "%s", e.msg);
    struct model_file files[MODEL_FILES];
    int rc = model_manifest_compute(m, files, &e);
    model_destroy(m);
    if (rc != 0)
        return cli_fail(cli, CLI_FAILED, "%s", e.msg);
    struct manifest man = {.version = version, .nfiles = MODEL_FILES};
    char base[PATH_MAX];
    snprintf(man.name, sizeof man.name, "%.64s", name ? name : base_name(dir, base, sizeof base));
    snprintf(man.architecture, sizeof man.architecture, "bert");
    for (int i = 0; i < MODEL_FILES; i++) {
        snprintf(man.files[i].file, sizeof man.files[i].file, "%s", files[i].name);
        memcpy(man.files[i].sha256, files[i].sha256, sizeof man.files[i].sha256);
        man.files[i].bytes = files[i].bytes;
    }
    char *text = manifest_encode(&man);
    struct manifest check;
    if (text == NULL || manifest_parse(text, strlen(text), &check, &e) != 0) {
        free(text);
        return cli_fail(cli, CLI_USAGE, "%s", text ? e.msg : "manifest: out of memory");
    }
    char sig[2 * MANIFEST_SIG_BYTES + 2], id[17], mpath[PATH_MAX], spath[PATH_MAX];
    manifest_sign(text, strlen(text), sk, sig);
    manifest_key_id(sk + MANIFEST_SK_BYTES - MANIFEST_PK_BYTES, id);
    memset(sk, 0, sizeof sk);
    strcat(sig, "\n");
    snprintf(mpath, sizeof mpath, "%s/manifest.json", dir);
    snprintf(spath, sizeof spath, "%s/manifest.sig", dir);
    rc = cli_file_write(mpath, text) != 0 ? cli_fail(cli, CLI_FAILED, "%s: %s", mpath, strerror(errno))
         : cli_file_write(spath, sig) != 0 ? cli_fail(cli, CLI_FAILED, "%s: %s", spath, strerror(errno))
                                           : CLI_OK;
    free(text);
    if (rc != CLI_OK)
        return rc;
    if (cli->json) {
        json_t *o = json_pack("{s:s, s:I, s:s, s:s, s:s}", "name", man.name, "version", (json_int_t)version,
                              "manifest", mpath, "signature", spath, "key_id", id);
        cli_json_print(o);
        json_decref(o);
    } else {
        printf("signed %s version %lld with key %s: %s, %s\n", man.name, version, id, mpath, spath);
    }
    return CLI_OK;
}

static int do_keygen(struct cli *cli, const char *out)
{
    struct err e = {0};
    char sk[PATH_MAX], pk[PATH_MAX];
    if (cli_dir_create(out) != 0)
        return cli_fail(cli, CLI_USAGE, "--out: %s: %s", out, strerror(errno));
    snprintf(sk, sizeof sk, "%s/artifact.key", out);
    snprintf(pk, sizeof pk, "%s/artifact.pub", out);
    if (manifest_keypair_write(sk, pk, &e) != 0)
        return cli_fail(cli, e.code == EEXIST ? CLI_USAGE : CLI_FAILED, "%s%s", e.msg,
                        e.code == EEXIST ? " (refusing to replace a signing key)" : "");
    uint8_t key[MANIFEST_PK_BYTES];
    char id[17] = "";
    if (manifest_key_read(pk, key, sizeof key, false, &e) == 0)
        manifest_key_id(key, id);
    if (cli->json) {
        json_t *o = json_pack("{s:s, s:s, s:s}", "secret_key", sk, "public_key", pk, "key_id", id);
        cli_json_print(o);
        json_decref(o);
    } else {
        printf("signing key %s: %s (secret, keep it on the connected side), %s (public: add it to the "
               "controller's trust_roots)\n", id, sk, pk);
    }
    return CLI_OK;
}

static int do_list(struct cli *cli)
{
    json_t *reply;
    int rc = cli_request(cli, PROTO_TYPE_MODEL_LIST, NULL, false, &reply, NULL, NULL);
    if (rc != CLI_OK)
        return rc;
    if (cli->json) {
        cli_json_print(reply);
    } else {
        static const char *const head[] = {"NAME", "VERSION", "IMPORTED", "SIGNED BY",
                                           "MODEL.SAFETENSORS SHA-256"};
        struct cli_table *t = cli_table_create(5, head, "lrlll");
        size_t i;
        json_t *mo;
        json_array_foreach(json_object_get(reply, "models"), i, mo) {
            char ver[24], when[64];
            const char *sha = "?";
            size_t k;
            json_t *f;
            json_array_foreach(json_object_get(mo, "files"), k, f)
                if (strcmp(cli_json_str(f, "file", ""), "model.safetensors") == 0)
                    sha = cli_json_str(f, "sha256", "?");
            snprintf(ver, sizeof ver, "%lld", cli_json_int(mo, "version", 0));
            cli_time_format(cli_json_num(mo, "imported", 0), when, sizeof when);
            const char *signer = json_is_true(json_object_get(mo, "signed")) ? cli_json_str(mo, "signer", "?")
                                                                             : "UNSIGNED";
            const char *cells[] = {cli_json_str(mo, "name", "?"), ver, when, signer, sha};
            cli_table_add(t, cells);
        }
        cli_table_print(t);
    }
    json_decref(reply);
    return CLI_OK;
}

static int do_verify(struct cli *cli, const char *name)
{
    json_t *reply;
    int rc = cli_request(cli, PROTO_TYPE_MODEL_VERIFY, json_pack("{s:s}", "name", name), true, &reply,
                         NULL, NULL);
    if (rc != CLI_OK)
        return rc;
    bool ok = json_is_true(json_object_get(reply, "ok"));
    if (cli->json) {
        cli_json_print(reply);
    } else {
        size_t i;
        json_t *f;
        json_array_foreach(json_object_get(reply, "files"), i, f)
            printf("%-18s %s\n", cli_json_str(f, "file", "?"),
                   json_is_true(json_object_get(f, "ok")) ? "ok" : "CHANGED OR MISSING");
        json_array_foreach(json_object_get(reply, "shards"), i, f) {
            char what[48];
            snprintf(what, sizeof what, "shard %lld of tp %lld", cli_json_int(f, "rank", 0),
                     cli_json_int(f, "tp", 0));
            printf("%-18s %s\n", what, json_is_true(json_object_get(f, "ok")) ? "ok"
                   : json_is_true(json_object_get(f, "removed"))
                       ? "DAMAGED: removed; extracted again from the files above at the next job"
                   : json_is_true(json_object_get(f, "missing"))
                       ? "not on disk: extracted again from the files above at the next job"
                       : "unreadable");
        }
        printf("model %s version %lld: %s\n", name, cli_json_int(reply, "version", 0),
               ok ? "intact" : "DAMAGED");
    }
    json_decref(reply);
    return ok ? CLI_OK : CLI_FAILED;
}

int cli_model_run(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {{"name", required_argument, NULL, 'n'},
                                             {"key", required_argument, NULL, 'k'},
                                             {"version", required_argument, NULL, 'V'},
                                             {"out", required_argument, NULL, 'o'},
                                             CLI_COMMON_OPTS};
    bool first = true;
    const char *name = NULL, *key = NULL, *out = NULL;
    long long version = 1;
    int c;
    while ((c = cli_getopt(cli, argc, argv, "", longopts, model_help, &first)) != -1) {
        if (c == CLI_OPT_HELP)
            return CLI_OK;
        if (c == 'n')
            name = optarg;
        else if (c == 'k')
            key = optarg;
        else if (c == 'o')
            out = optarg;
        else if (c == 'V') {
            if (cli_parse_int(cli, "--version", optarg, 1, 9007199254740991LL, &version) != 0)
                return CLI_USAGE;
        } else
            return CLI_USAGE;
    }
    if (optind >= argc)
        return cli_usage_error(cli, "missing subcommand: import, list or verify");
    const char *sub = argv[optind++];
    if (strcmp(sub, "import") == 0) {
        cli->cmd = "model import";
        if (optind + 1 != argc)
            return cli_usage_error(cli, "expected one directory");
        return do_import(cli, argv[optind], name);
    }
    if (strcmp(sub, "sign") == 0) {
        cli->cmd = "model sign";
        if (optind + 1 != argc)
            return cli_usage_error(cli, "expected one directory");
        if (key == NULL)
            return cli_usage_error(cli, "--key FILE is needed (a key from 'moat model keygen')");
        return do_sign(cli, argv[optind], key, name, version);
    }
    if (strcmp(sub, "keygen") == 0) {
        cli->cmd = "model keygen";
        if (optind != argc || out == NULL)
            return cli_usage_error(cli, "expected --out DIR and nothing else");
        return do_keygen(cli, out);
    }
    if (strcmp(sub, "list") == 0) {
        cli->cmd = "model list";
        return optind == argc ? do_list(cli) : cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
    }
    if (strcmp(sub, "verify") == 0) {
        cli->cmd = "model verify";
        if (optind + 1 != argc)
            return cli_usage_error(cli, "expected one model name");
        return do_verify(cli, argv[optind]);
    }
    return cli_usage_error(cli, "unknown subcommand '%s' (import, list, verify, sign, keygen)", sub);
}
