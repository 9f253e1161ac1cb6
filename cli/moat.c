/* moat.c: the moat command: global options, the command table, top-level help. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "shared/proto.h"
#include "shared/version.h"

static const char usage[] =
    "usage: moat [--controller ENDPOINT] [--json] COMMAND [ARGS...]\n"
    "\n"
    "moat runs jobs on a moat cluster: a controller and its workers.\n"
    "\n"
    "Commands:\n"
    "%s"
    "\n"
    "Options (before or after the command):\n"
    "  --controller ENDPOINT  the controller to talk to, e.g. tcp://10.0.0.1:7700\n"
    "  --json                 print one JSON document on stdout (for scripts); on\n"
    "                         failure {\"error\": \"moat CMD: why\", \"exit\": N}\n"
    "  -h, --help             this help; 'moat COMMAND --help' for a command's\n"
    "  --version              moat's version (and the wire protocol's)\n"
    "\n"
    "The controller is, in order: --controller, $MOAT_CONTROLLER, or the file\n"
    "'endpoint' in $MOAT_DIR (default ./.moat), which 'moat local up' writes.\n"
    "Requests time out after $MOAT_TIMEOUT (a duration, default 10 s).\n"
    "Every link is CURVE-encrypted: the CLI's key pair is $MOAT_KEY (a secret key\n"
    "file) or client.key in $MOAT_DIR, the controller's public key\n"
    "$MOAT_CONTROLLER_KEY or controller.pub in $MOAT_DIR ('moat local up' writes\n"
    "them; docs/security.md).\n"
    "\n"
    "Exit status: 0 success; 1 the job or command failed; 2 bad usage or input;\n"
    "3 the controller cannot be reached.\n"
    "\n"
    "Getting started:\n"
    "  moat local up --workers 2              # a controller and 2 workers here\n"
    "  moat submit -- echo hello              # prints the job id, e.g. 1\n"
    "  moat wait 1 && moat result 1           # hello\n"
    "  moat submit --array 0-99%%10 -- sh -c 'echo {index}'\n"
    "  moat queue; moat nodes; moat show 2\n"
    "  moat local down\n";

static const struct cli_cmd commands[] = {
    {"submit", cli_submit_run, "submit a job (a command, or an array of them)"},
    {"queue", cli_queue_run, "list jobs (pending and running; --all for finished too)"},
    {"show", cli_show_run, "show one job and its tasks"},
    {"cancel", cli_cancel_run, "cancel jobs (running tasks are killed)"},
    {"hold", cli_hold_run, "hold jobs: no task of them starts until released"},
    {"release", cli_release_run, "release held jobs"},
    {"requeue", cli_requeue_run, "run again what ended jobs did not complete"},
    {"wait", cli_wait_run, "wait until jobs end; exit 0 when all COMPLETED"},
    {"result", cli_result_run, "print a job's output"},
    {"nodes", cli_nodes_run, "list worker nodes"},
    {"local", cli_local_run, "run a cluster on this machine: up, down, status"},
    {"ping", cli_ping_run, "check that the controller answers"},
    {"model", cli_model_run, "import, list and verify models"},
    {"search", cli_search_run, "semantic search over an infer job's embeddings"},
    {"keygen", cli_keygen_run, "make a CURVE key pair (NAME.key, NAME.pub)"},
    {"admin", cli_admin_run, "allowlist and nodes: admin key add|revoke|list, admin node drain|resume|remove"},
    {"audit", cli_audit_run, "list the audit log, or verify its hash chain"},
};
#define NCOMMANDS (int)(sizeof commands / sizeof commands[0])

static void print_usage(FILE *out)
{
    char list[2048] = "";
    size_t len = 0;
    for (int i = 0; i < NCOMMANDS; i++)
        len += (size_t)snprintf(list + len, sizeof list - len, "  %-8s %s\n", commands[i].name,
                                commands[i].summary);
    fprintf(out, usage, list);
}

int main(int argc, char **argv)
{
    struct cli cli = {0};
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--json") == 0) {
            cli.json = true;
        } else if (strcmp(a, "--controller") == 0) {
            if (i + 1 >= argc)
                return cli_fail(&cli, CLI_USAGE, "--controller: missing value");
            cli.controller = argv[++i];
        } else if (strncmp(a, "--controller=", 13) == 0) {
            cli.controller = a + 13;
        } else if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
            if (cli.json)
                printf("{\"version\": \"%s\", \"protocol\": %u}\n", MOAT_VERSION, PROTO_VERSION);
            else
                printf("moat %s (protocol %u)\n", MOAT_VERSION, PROTO_VERSION);
            return CLI_OK;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0 || strcmp(a, "help") == 0) {
            /* 'moat help CMD' (as git help): CMD's own help */
            for (int c = 0; strcmp(a, "help") == 0 && i + 1 < argc && c < NCOMMANDS; c++) {
                if (strcmp(argv[i + 1], commands[c].name) == 0) {
                    char *sub[] = {argv[i + 1], "--help", NULL};
                    cli.cmd = commands[c].name;
                    return commands[c].run(&cli, 2, sub);
                }
            }
            print_usage(stdout);
            return CLI_OK;
        } else if (a[0] == '-') {
            cli_fail(&cli, CLI_USAGE, "unknown option '%s' (see 'moat --help')", a);
            if (cli.json)
                cli_json_error(CLI_USAGE);
            return CLI_USAGE;
        } else {
            break;
        }
    }
    if (i >= argc) {
        print_usage(stderr);
        if (cli.json) {
            cli_fail(&cli, CLI_USAGE, "missing COMMAND (see 'moat --help')");
            cli_json_error(CLI_USAGE);
        }
        return CLI_USAGE;
    }
    struct err err = {0};
    if (client_timeout_parse(getenv("MOAT_TIMEOUT"), &cli.timeout, &err) != 0) {
        cli_fail(&cli, CLI_USAGE, "%s", err.msg);
        if (cli.json)
            cli_json_error(CLI_USAGE);
        return CLI_USAGE;
    }
    for (int c = 0; c < NCOMMANDS; c++) {
        if (strcmp(argv[i], commands[c].name) == 0) {
            cli.cmd = commands[c].name;
            int rc = commands[c].run(&cli, argc - i, argv + i);
            client_destroy(cli.client);
            json_decref(cli.json_extra);
            fflush(stdout);
            if (ferror(stdout) && rc == CLI_OK)
                rc = cli_fail(&cli, CLI_FAILED, "writing output failed");
            else if (rc != CLI_OK && cli.json)
                cli_json_error(rc);
            return rc;
        }
    }
    cli_fail(&cli, CLI_USAGE, "unknown command '%s' (see 'moat --help')", argv[i]);
    if (cli.json)
        cli_json_error(CLI_USAGE);
    return CLI_USAGE;
}
