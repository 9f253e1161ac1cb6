/* cli_submit.c: moat submit: options -> job spec (validated here, as the controller
 * will) -> SUBMIT -> the job id. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "shared/jobspec.h"
#include "shared/units.h"

static const char help[] =
    "usage: moat submit [OPTIONS] -- CMD [ARG...]\n"
    "\n"
    "Submit an exec job: CMD runs on a worker with ARGs (no shell; use sh -c for\n"
    "pipes). Prints the job id (with --json: {\"id\": N}). The job is stored\n"
    "durably before the id is printed.\n"
    "\n"
    "Options:\n"
    "  --name S            a name to recognise the job by (in queue and show)\n"
    "  --cpus N            CPUs per task (default 1)\n"
    "  --gpus N            GPUs per task (default 0)\n"
    "  --mem SIZE          memory per task: 512M, 4GiB, \"1.5 GB\" (default: none)\n"
    "  --priority N        higher runs first, -1000000..1000000 (default 0)\n"
    "  --array A-B[%MAX]   one task per index A..B; {index} in CMD/ARGs is replaced\n"
    "                      by it; %MAX: at most MAX tasks run at once\n"
    "  --after JOB[,JOB]   start only after these jobs COMPLETED (if one ends\n"
    "                      otherwise, this job is CANCELLED without running)\n"
    "  --begin TIME        not before TIME: now+DUR (now+2h), HH:MM (the next such\n"
    "                      local time), YYYY-MM-DD[THH:MM[:SS]][Z]\n"
    "  --time-limit DUR    per task: 90s, 10m, 1h30m, 01:30:00; past it the task is\n"
    "                      killed and the job ends TIMEOUT\n"
    "\n"
    "Examples:\n"
    "  moat submit -- python3 analyse.py --day 2024-05-01\n"
    "  moat submit --array 0-999%50 --cpus 2 -- ./score.sh shard-{index}.csv\n"
    "  id=$(moat submit -- make report) && moat submit --after $id -- ./publish.sh\n"
    "  moat submit --begin 22:00 --time-limit 4h --name nightly -- ./nightly.sh\n";

enum { OPT_NAME = 1, OPT_CPUS, OPT_GPUS, OPT_MEM, OPT_PRIORITY, OPT_ARRAY, OPT_AFTER, OPT_BEGIN,
       OPT_TIME_LIMIT };

static const struct option longopts[] = {
    {"name", required_argument, NULL, OPT_NAME},
    {"cpus", required_argument, NULL, OPT_CPUS},
    {"gpus", required_argument, NULL, OPT_GPUS},
    {"mem", required_argument, NULL, OPT_MEM},
    {"priority", required_argument, NULL, OPT_PRIORITY},
    {"array", required_argument, NULL, OPT_ARRAY},
    {"after", required_argument, NULL, OPT_AFTER},
    {"begin", required_argument, NULL, OPT_BEGIN},
    {"time-limit", required_argument, NULL, OPT_TIME_LIMIT},
    CLI_COMMON_OPTS,
};

int cli_submit_run(struct cli *cli, int argc, char **argv)
{
    struct job_spec spec;
    memset(&spec, 0, sizeof spec);
    bool first = true;
    double now = units_now();
    int c, rc = CLI_OK;
    while ((c = cli_getopt(cli, argc, argv, "+", longopts, help, &first)) != -1) {
        if (c == CLI_OPT_HELP)
            goto out;
        if (c == '?') {
            rc = CLI_USAGE;
            goto out;
        }
        const char *name = NULL;
        for (const struct option *o = longopts; o->name; o++)
            if (o->val == c)
                name = o->name;
        struct err err = {0};
        if (name == NULL || client_spec_option(&spec, name, optarg, now, &err) != 0) {
            rc = cli_fail(cli, CLI_USAGE, "%s", name ? err.msg : "internal: unknown option");
            goto out;
        }
    }
    json_t *obj;
    struct err err = {0};
    if (client_spec_finish(&spec, argc - optind, argv + optind, &obj, &err) != 0) {
        rc = cli_fail(cli, CLI_USAGE, "%s", err.msg);
        goto out;
    }
    json_t *reply;
    rc = cli_request(cli, PROTO_TYPE_SUBMIT, json_pack("{s:o}", "spec", obj), true, &reply, NULL,
                     NULL);
    if (rc != CLI_OK)
        goto out;
    json_t *id = json_object_get(reply, "id");
    if (!json_is_integer(id)) {
        rc = cli_fail(cli, CLI_FAILED, "controller reply has no job id");
    } else if (cli->json) {
        json_t *doc = json_pack("{s:I}", "id", json_integer_value(id));
        cli_json_print(doc);
        json_decref(doc);
    } else {
        printf("%lld\n", (long long)json_integer_value(id));
    }
    json_decref(reply);
out:
    jobspec_clear(&spec);
    return rc;
}
