/* cli_nodeadm.c: moat admin node drain|resume|remove (controller/ctl_nodeadm.h). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "shared/text.h"

static const char node_help[] =
    "usage: moat admin node drain NAME [--reason TEXT]\n"
    "       moat admin node resume NAME\n"
    "       moat admin node remove NAME\n"
    "\n"
    "Change a worker node's state (an admin key is needed; audited):\n"
    "  drain   no new work goes to the node; its running tasks go on. It stays\n"
    "          DRAINING, across restarts, until resumed. TEXT (at most 80 bytes)\n"
    "          shows in 'moat nodes' (default 'drained by an admin').\n"
    "  resume  the node takes work again (also ends a drain for launch failures).\n"
    "  remove  forget a DOWN node with no tasks: it leaves 'moat nodes' and its\n"
    "          worker key may register under another name. If its worker comes\n"
    "          back it registers again; to keep it out, revoke its key.\n"
    "With --json: the node as 'moat nodes --json' lists it.\n"
    "\n"
    "Examples:\n"
    "  moat admin node drain node7 --reason 'DIMM errors, ticket 4411'\n"
    "  moat nodes                     # node7 DRAINING until its tasks end\n"
    "  moat admin node resume node7\n"
    "  moat admin node remove old-node3\n";

int cli_admin_node_run(struct cli *cli, int argc, char **argv)
{
    enum { OPT_REASON = 1 };
    static const struct option longopts[] = {
        {"reason", required_argument, NULL, OPT_REASON},
        CLI_COMMON_OPTS,
    };
    const char *reason = NULL;
    bool first = true;
    cli->cmd = "admin node";
    int c;
    while ((c = cli_getopt(cli, argc, argv, "", longopts, node_help, &first)) != -1) {
        if (c == CLI_OPT_HELP)
            return CLI_OK;
        if (c == '?')
            return CLI_USAGE;
        if (c == OPT_REASON)
            reason = optarg;
    }
    /* argv: admin node OP NAME */
    if (optind + 1 >= argc || strcmp(argv[optind], "node") != 0)
        return cli_usage_error(cli, "expected 'node drain|resume|remove NAME'");
    const char *op = argv[optind + 1];
    static char cmd[32];
    snprintf(cmd, sizeof cmd, "admin node %.16s", op);
    bool drain = strcmp(op, "drain") == 0;
    if (!drain && strcmp(op, "resume") != 0 && strcmp(op, "remove") != 0)
        return cli_usage_error(cli, "unknown operation '%s': expected drain, resume or remove", op);
    cli->cmd = cmd;
    if (optind + 3 != argc)
        return cli_usage_error(cli, optind + 3 < argc ? "expected one NAME, got more" : "expected a node NAME");
    const char *name = argv[optind + 2];
    if (name[0] == '\0' || strlen(name) > 64)
        return cli_usage_error(cli, "NAME '%.70s': a node name of 1 to 64 bytes", name);
    if (reason && !drain)
        return cli_usage_error(cli, "--reason applies to 'drain' only");
    if (reason && strlen(reason) > 80)
        return cli_usage_error(cli, "--reason: %zu bytes; at most 80", strlen(reason));
    if (reason && text_has_controls(reason, strlen(reason)))
        return cli_usage_error(cli, "--reason: control characters are not allowed");
    json_t *body = json_pack("{s:s, s:s}", "op", op, "name", name);
    if (body == NULL)
        return cli_usage_error(cli, "NAME '%.70s': not UTF-8", name);
    if (reason && json_object_set_new(body, "reason", json_string(reason)) != 0) {
        json_decref(body);
        return cli_usage_error(cli, "--reason: not UTF-8");
    }
    json_t *reply;
    int rc = cli_request(cli, PROTO_TYPE_ADMIN_NODE, body, true, &reply, NULL, NULL);
    if (rc != CLI_OK)
        return rc;
    if (cli->json) {
        cli_json_print(reply);
    } else {
        const char *why = cli_json_str(reply, "reason", "");
        printf("node %s: %s%s%s%s\n", cli_json_str(reply, "name", name),
               strcmp(op, "remove") == 0 ? "removed" : cli_json_str(reply, "state", "?"),
               why[0] ? " (" : "", why, why[0] ? ")" : "");
    }
    json_decref(reply);
    return CLI_OK;
}
