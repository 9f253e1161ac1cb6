/* cli_admin.c: the security commands: keygen, admin key add|revoke|list, audit. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/cli_local.h"
#include "shared/keys.h"
#include "shared/net.h"
#include "shared/units.h"

/* ---- keygen ---- */

static const char keygen_help[] =
    "usage: moat keygen [--out DIR] [--name NAME]\n"
    "\n"
    "Make a CURVE key pair: DIR/NAME.key (the secret key, mode 0600; never leaves\n"
    "its host) and DIR/NAME.pub (the public key, for the controller's allowlist).\n"
    "DIR (made when missing) defaults to the current directory and NAME to\n"
    "'client'. Existing files are never overwritten. With --json:\n"
    "{\"public_key\", \"key_file\", \"pub_file\"}.\n"
    "\n"
    "Examples:\n"
    "  moat keygen --out /etc/moat --name worker     # on a new node\n"
    "  moat admin key add \"$(cat /etc/moat/worker.pub)\" --role worker --name node7\n";

int cli_keygen_run(struct cli *cli, int argc, char **argv)
{
    enum { OPT_OUT = 1, OPT_NAME };
    static const struct option longopts[] = {
        {"out", required_argument, NULL, OPT_OUT},
        {"name", required_argument, NULL, OPT_NAME},
        CLI_COMMON_OPTS,
    };
    const char *out = ".", *name = "client";
    bool first = true;
    int c;
    while ((c = cli_getopt(cli, argc, argv, "", longopts, keygen_help, &first)) != -1) {
        if (c == CLI_OPT_HELP)
            return CLI_OK;
        if (c == '?')
            return CLI_USAGE;
        if (c == OPT_OUT)
            out = optarg;
        if (c == OPT_NAME)
            name = optarg;
    }
    if (optind < argc)
        return cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
    if (name[0] == '\0' || strlen(name) > 64 || strchr(name, '/'))
        return cli_usage_error(cli, "--name: '%s': a file name of at most 64 bytes", name);
    struct stat st;
    if (stat(out, &st) == 0 && !S_ISDIR(st.st_mode))
        return cli_fail(cli, CLI_USAGE, "--out: %s: not a directory", out);
    if (cli_dir_create(out) != 0) /* made as moat model keygen makes it */
        return cli_fail(cli, CLI_USAGE, "--out: %s: %s", out, strerror(errno));
    char kpath[PATH_MAX], ppath[PATH_MAX], pub[NET_KEY_LEN + 1], sec[NET_KEY_LEN + 1];
    snprintf(kpath, sizeof kpath, "%s/%s.key", out, name);
    snprintf(ppath, sizeof ppath, "%s/%s.pub", out, name);
    struct err err = {0};
    if (net_curve_keypair(pub, sec, &err) != 0)
        return cli_fail(cli, CLI_FAILED, "%s", err.msg);
    int rc = keys_file_write(kpath, sec, true, &err);
    memset(sec, 0, sizeof sec);
    if (rc != 0) /* an existing key is bad input (2), as for moat model keygen */
        return cli_fail(cli, err.code == EEXIST ? CLI_USAGE : CLI_FAILED, "%s%s", err.msg,
                        err.code == EEXIST ? " (refusing to replace a key)" : "");
    if (keys_file_write(ppath, pub, false, &err) != 0)
        return cli_fail(cli, CLI_FAILED, "%s", err.msg);
    if (cli->json) {
        json_t *doc = json_pack("{s:s, s:s, s:s}", "public_key", pub, "key_file", kpath, "pub_file", ppath);
        cli_json_print(doc);
        json_decref(doc);
    } else {
        printf("%s\n", pub);
        fprintf(stderr, "moat keygen: secret key in %s, public key in %s\n", kpath, ppath);
    }
    return CLI_OK;
}

/* ---- admin key ---- */

static const char admin_help[] =
    "usage: moat admin key add PUBKEY [--role admin|client|worker] [--name NAME]\n"
    "       moat admin key revoke PUBKEY\n"
    "       moat admin key list\n"
    "       moat admin node drain|resume|remove NAME   (moat admin node --help)\n"
    "\n"
    "Change the controller's allowlist of CURVE public keys (an admin key is\n"
    "needed). PUBKEY is the 40-character Z85 key or a file holding it (NAME.pub).\n"
    "add allows a key (role client unless --role says otherwise); revoke takes\n"
    "access away at once, from new connections and from ones already open; both\n"
    "are stored by the controller, override its allowlist_file, and are audited.\n"
    "\n"
    "Examples:\n"
    "  moat admin key add /etc/moat/node7.pub --role worker --name node7\n"
    "  moat admin key revoke 'rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7'\n"
    "  moat admin key list --json\n";

static int key_arg(struct cli *cli, const char *text, char key[KEYS_LEN + 1])
{
    if (keys_z85_valid(text)) {
        memcpy(key, text, KEYS_LEN + 1);
        return 0;
    }
    struct err err = {0};
    if (keys_file_read(text, false, key, &err) != 0)
        return cli_usage_error(cli, "PUBKEY '%.60s': neither a Z85 key nor a key file (%s)", text, err.msg);
    return 0;
}

int cli_admin_run(struct cli *cli, int argc, char **argv)
{
    enum { OPT_ROLE = 1, OPT_NAME };
    static const struct option longopts[] = {
        {"role", required_argument, NULL, OPT_ROLE},
        {"name", required_argument, NULL, OPT_NAME},
        CLI_COMMON_OPTS,
    };
    const char *role = NULL, *name = NULL;
    bool first = true;
    int c;
    for (int i = 1; i < argc; i++) { /* admin node ...: its own options and help */
        if (strcmp(argv[i], "node") == 0)
            return cli_admin_node_run(cli, argc, argv);
        if (argv[i][0] != '-')
            break;
        if (strcmp(argv[i], "--controller") == 0)
            i++; /* its value */
    }
    /* A Z85 key may begin with '-' (it is in the alphabet, ZeroMQ RFC 32): take such
     * an argument out before getopt reads it as an option. */
    static const char z85[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                              ".-:+=^!/*?&<>()[]{}@%$#";
    char *dash_key = NULL;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-' && strlen(argv[i]) == KEYS_LEN && strspn(argv[i], z85) == KEYS_LEN) {
            dash_key = argv[i];
            memmove(&argv[i], &argv[i + 1], (size_t)(argc - i) * sizeof *argv);
            argc--;
            break;
        }
    }
    while ((c = cli_getopt(cli, argc, argv, "", longopts, admin_help, &first)) != -1) {
        if (c == CLI_OPT_HELP)
            return CLI_OK;
        if (c == '?')
            return CLI_USAGE;
        if (c == OPT_ROLE)
            role = optarg;
        if (c == OPT_NAME)
            name = optarg;
    }
    char *pos[4];
    int n = 0;
    for (int i = optind; i < argc && n < 3; i++)
        pos[n++] = argv[i];
    if (optind + n < argc)
        return cli_usage_error(cli, "unexpected argument '%s'", argv[optind + n]);
    if (dash_key)
        pos[n++] = dash_key;
    char **a = pos;
    if (n < 2 || strcmp(a[0], "key") != 0)
        return cli_usage_error(cli, "expected 'key add|revoke|list' or 'node drain|resume|remove'");
    const char *op = a[1];
    static char cmd[32];
    snprintf(cmd, sizeof cmd, "admin key %s", op);
    bool list = strcmp(op, "list") == 0, add = strcmp(op, "add") == 0;
    if (!list && !add && strcmp(op, "revoke") != 0)
        return cli_usage_error(cli, "unknown operation '%s': expected add, revoke or list", op);
    cli->cmd = cmd;
    if (n != (list ? 2 : 3))
        return cli_usage_error(cli, list ? "list takes no argument" : "expected one PUBKEY");
    if (!add && (role || name))
        return cli_usage_error(cli, "--role and --name apply to 'add' only");
    if (role && keys_role_parse(role) < 0)
        return cli_usage_error(cli, "--role: '%s': expected admin, client or worker", role);
    json_t *body = json_pack("{s:s}", "op", op);
    if (!list) {
        char key[KEYS_LEN + 1];
        if (key_arg(cli, a[2], key) != 0) {
            json_decref(body);
            return CLI_USAGE;
        }
        json_object_set_new(body, "key", json_string(key));
    }
    if (role)
        json_object_set_new(body, "role", json_string(role));
    if (name)
        json_object_set_new(body, "name", json_string(name));
    json_t *reply;
    int rc = cli_request(cli, PROTO_TYPE_ADMIN_KEY, body, true, &reply, NULL, NULL);
    if (rc != CLI_OK)
        return rc;
    if (cli->json) {
        cli_json_print(reply);
    } else if (list) {
        static const char *const hdr[] = {"KEY", "ROLE", "STATE", "SOURCE", "NAME"};
        struct cli_table *t = cli_table_create(5, hdr, "lllll");
        size_t i;
        const json_t *k;
        json_array_foreach(json_object_get(reply, "keys"), i, k) {
            const char *row[] = {cli_json_str(k, "key", "?"), cli_json_str(k, "role", "?"),
                                 cli_json_str(k, "state", "?"), cli_json_str(k, "source", "?"),
                                 cli_json_str(k, "name", "")};
            cli_table_add(t, row);
        }
        cli_table_print(t);
    } else {
        printf("%s %s (%s)\n", cli_json_str(reply, "key", "?"), add ? "allowed" : "revoked",
               cli_json_str(reply, "role", "?"));
    }
    json_decref(reply);
    return CLI_OK;
}

/* ---- audit ---- */

static const char audit_help[] =
    "usage: moat audit [--since TIME] [--json]\n"
    "       moat audit verify\n"
    "\n"
    "List the controller's audit log (an admin key is needed): submissions,\n"
    "cancellations, placements, model imports, key changes and refused\n"
    "connections or requests, oldest first. TIME is Unix seconds, a date\n"
    "(YYYY-MM-DD[THH:MM[:SS]][Z]), a time of day (HH:MM[:SS], midnight, noon,\n"
    "fika, teatime: its last occurrence, today or yesterday), today (since\n"
    "00:00) or a duration ago ('-1h', '-30m'); a time to come is refused.\n"
    "Columns: SEQ, TIME, ACTOR (the first 12 characters of its public key, or\n"
    "'controller'), ACTION, OBJECT, DETAILS. With --json: {\"records\": [...]}.\n"
    "\n"
    "verify: check the whole hash chain (every record carries the SHA-256 of the\n"
    "one before); exit 0 when intact, 1 naming the first bad record when one was\n"
    "edited, deleted, inserted or reordered. With --json: {ok, records,\n"
    "first_bad, error, head}.\n"
    "\n"
    "Examples:\n"
    "  moat audit --since -1h\n"
    "  moat audit --json | jq '.records[] | select(.action==\"auth.refuse\")'\n"
    "  moat audit verify\n";

static int since_parse(struct cli *cli, const char *text, double *out)
{
    struct err err = {0};
    double now = units_now(), d;
    char *end;
    if (text[0] == '-') {
        if (units_duration_parse(text + 1, &d, &err) != 0)
            return cli_usage_error(cli, "--since: %s", err.msg);
        *out = now - d;
        return 0;
    }
    errno = 0;
    d = strtod(text, &end);
    if (errno == 0 && end != text && *end == '\0' && isdigit((unsigned char)text[0])) {
        *out = d;
        return 0;
    }
    if (strncasecmp(text, "now", 3) == 0 || strcasecmp(text, "tomorrow") == 0)
        return cli_usage_error(cli, "--since '%s': a time to come; --since lists what happened after "
                               "a time past", text);
    bool today = strcasecmp(text, "today") == 0; /* since 00:00, not since now (sbatch's) */
    if (units_begin_parse(today ? "midnight" : text, now, out, &err) != 0)
        return cli_usage_error(cli, "--since '%s': expected Unix seconds, YYYY-MM-DD[THH:MM[:SS]][Z], "
                               "HH:MM[:SS], midnight, noon, today or -DURATION (-1h)", text);
    /* a time of day (HH:MM, midnight, noon, ...) is the begin parser's next
     * such time; here it is the last one. A date is as given: one to come
     * is refused, not moved. */
    if (*out > now && (today || strchr(text, '-') == NULL))
        *out -= 86400;
    else if (*out > now)
        return cli_usage_error(cli, "--since '%s': a time to come; --since lists what happened after "
                               "a time past", text);
    return 0;
}

static int audit_verify(struct cli *cli)
{
    json_t *reply;
    int rc = cli_request(cli, PROTO_TYPE_AUDIT, json_pack("{s:b}", "verify", 1), false, &reply, NULL,
                         NULL);
    if (rc != CLI_OK)
        return rc;
    bool ok = json_is_true(json_object_get(reply, "ok"));
    if (cli->json)
        cli_json_print(reply);
    else if (ok)
        printf("audit log intact: %lld records, head %s\n", cli_json_int(reply, "records", 0),
               cli_json_str(reply, "head", ""));
    if (!ok)
        cli_fail(cli, CLI_FAILED, "%s", cli_json_str(reply, "error", "audit log damaged"));
    json_decref(reply);
    return ok ? CLI_OK : CLI_FAILED;
}

int cli_audit_run(struct cli *cli, int argc, char **argv)
{
    enum { OPT_SINCE = 1 };
    static const struct option longopts[] = {
        {"since", required_argument, NULL, OPT_SINCE},
        CLI_COMMON_OPTS,
    };
    double since = 0;
    bool first = true, gave_since = false;
    int c;
    while ((c = cli_getopt(cli, argc, argv, "", longopts, audit_help, &first)) != -1) {
        if (c == CLI_OPT_HELP)
            return CLI_OK;
        if (c == '?')
            return CLI_USAGE;
        if (c == OPT_SINCE) {
            gave_since = true;
            if (since_parse(cli, optarg, &since) != 0)
                return CLI_USAGE;
            if (!(since <= 1e11)) /* the protocol's bound; NaN too */
                return cli_usage_error(cli, "--since '%s': time out of range", optarg);
            if (since < 0) /* before 1970: every record */
                since = 0;
        }
    }
    if (optind < argc && strcmp(argv[optind], "verify") == 0) {
        cli->cmd = "audit verify";
        if (optind + 1 < argc || gave_since)
            return cli_usage_error(cli, "verify takes no argument");
        return audit_verify(cli);
    }
    if (optind < argc)
        return cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
    json_t *all = json_array();
    long long after = 0;
    struct cli_table *t = NULL;
    if (!cli->json) {
        static const char *const hdr[] = {"SEQ", "TIME", "ACTOR", "ACTION", "OBJECT", "DETAILS"};
        t = cli_table_create(6, hdr, "rlllll");
    }
    for (;;) { /* page through the log */
        json_t *reply;
        json_t *body = json_pack("{s:I, s:f}", "after", (json_int_t)after, "since", since);
        int rc = cli_request(cli, PROTO_TYPE_AUDIT, body, false, &reply, NULL, NULL);
        if (rc != CLI_OK) {
            json_decref(all);
            if (after > 0)
                cli_table_print(t); /* what came before the failed page */
            else
                cli_table_free(t);  /* nothing came: not even a header */
            return rc;
        }
        size_t i;
        json_t *r;
        json_array_foreach(json_object_get(reply, "records"), i, r) {
            if (t) {
                char seq[24], when[32], actor[16], *details;
                snprintf(seq, sizeof seq, "%lld", cli_json_int(r, "seq", 0));
                cli_time_format(cli_json_num(r, "time", 0), when, sizeof when);
                snprintf(actor, sizeof actor, "%.12s", cli_json_str(r, "actor", "?"));
                details = json_dumps(json_object_get(r, "details"), JSON_COMPACT);
                const char *row[] = {seq, when, actor, cli_json_str(r, "action", "?"),
                                     cli_json_str(r, "object", ""), details ? details : ""};
                cli_table_add(t, row);
                free(details);
            } else {
                json_array_append(all, r);
            }
        }
        const json_t *next = json_object_get(reply, "next");
        after = json_is_integer(next) ? json_integer_value(next) : -1;
        json_decref(reply);
        if (after < 0)
            break;
    }
    if (cli->json) {
        json_t *doc = json_pack("{s:o}", "records", all);
        cli_json_print(doc);
        json_decref(doc);
    } else {
        json_decref(all);
        cli_table_print(t);
    }
    return CLI_OK;
}
