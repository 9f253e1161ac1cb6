/* cli_model.c: moat model import|list|verify: intake of model artifacts.
 *
 * import checks the directory locally first (config and every tensor against the
 * architecture, SHA-256 of each file: worker/wrk_model.h), uploads each file in
 * chunks, then commits the manifest; the controller verifies the hashes and the
 * architecture again before it records anything.
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
#include "worker/wrk_model.h"

#define CHUNK (4u << 20) /* the controller's CTL_MODEL_CHUNK */

static const char model_help[] =
    "usage: moat model import DIR [--name NAME]\n"
    "       moat model list\n"
    "       moat model verify NAME\n"
    "\n"
    "Bring a model into the cluster (the isolated side of intake; the connected\n"
    "side is scripts/fetch-model.sh DIR). DIR holds config.json, vocab.txt and\n"
    "model.safetensors of a BERT encoder (all-MiniLM-L6-v2). import refuses a\n"
    "directory whose config or tensors do not match the architecture, naming the\n"
    "file or tensor; the controller checks every file's SHA-256 and the\n"
    "architecture again before it records the model. Importing a name again makes\n"
    "a new version. NAME defaults to the directory's base name.\n"
    "  list    models with versions and file hashes (--json: {\"models\": [...]})\n"
    "  verify  re-hash the stored files of NAME; exit 1 if any differs\n"
    "\n"
    "Examples:\n"
    "  scripts/fetch-model.sh /media/intake/minilm      # connected side\n"
    "  moat model import /media/intake/minilm --name minilm\n"
    "  moat model verify minilm\n";

static int upload(struct cli *cli, const char *name, const char *dir, const struct wrk_model_file *f)
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

static int do_import(struct cli *cli, const char *dir, const char *name)
{
    struct err e = {0};
    wrk_model_t *m = wrk_model_open(dir, &e);
    if (m == NULL)
        return cli_fail(cli, CLI_USAGE, "%s", e.msg);
    struct wrk_model_file files[WRK_MODEL_FILES];
    int rc = wrk_model_manifest_compute(m, files, &e);
    wrk_model_destroy(m);
    if (rc != 0)
        return cli_fail(cli, CLI_FAILED, "%s", e.msg);
    for (int i = 0; i < WRK_MODEL_FILES; i++)
        if ((rc = upload(cli, name, dir, &files[i])) != CLI_OK)
            return rc;
    json_t *arr = json_array();
    for (int i = 0; i < WRK_MODEL_FILES; i++)
        json_array_append_new(arr, json_pack("{s:s, s:s, s:I}", "file", files[i].name, "sha256",
                                             files[i].sha256, "bytes", (json_int_t)files[i].bytes));
    json_t *reply;
    rc = cli_request(cli, PROTO_TYPE_MODEL_COMMIT, json_pack("{s:s, s:o}", "name", name, "files", arr),
                     true, &reply, NULL, NULL);
    if (rc != CLI_OK)
        return rc;
    if (cli->json)
        cli_json_print(reply);
    else
        printf("model %s version %lld imported\n", cli_json_str(reply, "name", "?"),
               cli_json_int(reply, "version", 0));
    json_decref(reply);
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
        static const char *const head[] = {"NAME", "VERSION", "IMPORTED", "MODEL.SAFETENSORS SHA-256"};
        struct cli_table *t = cli_table_create(4, head, "lrll");
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
            const char *cells[] = {cli_json_str(mo, "name", "?"), ver, when, sha};
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
        printf("model %s version %lld: %s\n", name, cli_json_int(reply, "version", 0),
               ok ? "intact" : "DAMAGED");
    }
    json_decref(reply);
    return ok ? CLI_OK : CLI_FAILED;
}

int cli_model_run(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {{"name", required_argument, NULL, 'n'}, CLI_COMMON_OPTS};
    bool first = true;
    const char *name = NULL;
    int c;
    while ((c = cli_getopt(cli, argc, argv, "", longopts, model_help, &first)) != -1) {
        if (c == CLI_OPT_HELP)
            return CLI_OK;
        if (c == 'n')
            name = optarg;
        else
            return CLI_USAGE;
    }
    if (optind >= argc)
        return cli_usage_error(cli, "missing subcommand: import, list or verify");
    const char *sub = argv[optind++];
    if (strcmp(sub, "import") == 0) {
        cli->cmd = "model import";
        if (optind + 1 != argc)
            return cli_usage_error(cli, "expected one directory");
        const char *dir = argv[optind];
        char base[PATH_MAX];
        if (name == NULL) {
            snprintf(base, sizeof base, "%s", dir);
            size_t n = strlen(base);
            while (n > 1 && base[n - 1] == '/')
                base[--n] = '\0';
            const char *slash = strrchr(base, '/');
            name = slash ? slash + 1 : base;
        }
        return do_import(cli, dir, name);
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
    return cli_usage_error(cli, "unknown subcommand '%s' (import, list, verify)", sub);
}
