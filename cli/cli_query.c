/* cli_query.c: the read-only commands: ping, queue, show, nodes. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "shared/jobspec.h"
#include "shared/units.h"

static const char ping_help[] =
    "usage: moat ping\n"
    "\n"
    "Check that the controller answers; prints its version and how many jobs and\n"
    "nodes it knows. Exit 3 when it does not answer within $MOAT_TIMEOUT.\n"
    "\n"
    "Examples:\n"
    "  moat ping\n"
    "  MOAT_TIMEOUT=2s moat --controller tcp://10.0.0.1:7700 ping || echo down\n";

int cli_ping_run(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {CLI_COMMON_OPTS};
    bool first = true;
    int c;
    while ((c = cli_getopt(cli, argc, argv, "", longopts, ping_help, &first)) != -1)
        return c == CLI_OPT_HELP ? CLI_OK : CLI_USAGE;
    if (optind < argc)
        return cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
    json_t *reply;
    int rc = cli_request(cli, PROTO_TYPE_PING, NULL, false, &reply, NULL, NULL);
    if (rc != CLI_OK)
        return rc;
    if (cli->json)
        cli_json_print(reply);
    else
        printf("controller %s: version %s, %lld jobs, %lld nodes\n", client_endpoint(cli->client),
               cli_json_str(reply, "version", "?"), cli_json_int(reply, "jobs", 0),
               cli_json_int(reply, "nodes", 0));
    json_decref(reply);
    return CLI_OK;
}

/* ---- queue ---- */

static const char queue_help[] =
    "usage: moat queue [--state STATE[,STATE...]] [--all] [--me]\n"
    "\n"
    "List jobs, oldest first: pending and running ones, or all with --all;\n"
    "with --me only those submitted with this client's key (squeue --me).\n"
    "--state lists only jobs in the states given, each one of PENDING, RUNNING,\n"
    "COMPLETED, FAILED, CANCELLED, TIMEOUT, or Slurm's PD, R, CD, F, CA, TO\n"
    "(a finished state implies --all). With --json: {\"jobs\": [job, ...]}.\n"
    "\n"
    "Columns: JOBID, NAME, STATE, PROGRESS (share of tasks COMPLETED), SUBMITTED,\n"
    "TIME (running time so far, or total), EXIT (exit code of a finished job),\n"
    "REASON (why it waits, or why it ended as it did).\n"
    "\n"
    "Examples:\n"
    "  moat queue\n"
    "  moat queue --state FAILED\n"
    "  moat queue --state failed,timeout --me\n"
    "  moat queue --all --json | jq '.jobs[] | select(.state==\"RUNNING\") | .id'\n";

static void job_elapsed(const json_t *job, char *buf, int cap)
{
    double start = cli_json_num(job, "start_time", 0), end = cli_json_num(job, "end_time", 0);
    if (!(start > 0)) {
        snprintf(buf, (size_t)cap, "-");
        return;
    }
    units_duration_format((end > 0 ? end : units_now()) - start, buf, cap);
}

static void job_exit(const json_t *job, char *buf, int cap)
{
    const json_t *v = json_object_get(job, "exit_code");
    int st = job_state_parse(cli_json_str(job, "state", "?"));
    long long sig = cli_json_int(job, "signal", 0); /* tasks: what killed one */
    if (json_is_integer(v) && st >= 0 && job_state_is_terminal((enum job_state)st) && sig > 0)
        snprintf(buf, (size_t)cap, "signal %lld", sig);
    else if (json_is_integer(v) && json_integer_value(v) >= 0 && st >= 0 &&
             job_state_is_terminal((enum job_state)st))
        snprintf(buf, (size_t)cap, "%lld", (long long)json_integer_value(v));
    else /* not ended, or ended without one (-1: cancelled, a signal, its node lost) */
        snprintf(buf, (size_t)cap, "-");
}

/* queue_page: QUEUE with the first request's body (ctx) from job id from. */
static int queue_page(struct cli *cli, void *ctx, long long from, json_t **reply)
{
    json_t *body = json_deep_copy(ctx);
    json_object_set_new(body, "from", json_integer(from));
    return cli_request(cli, PROTO_TYPE_QUEUE, body, true, reply, NULL, NULL);
}

/* Slurm's compact state codes (squeue -t PD,R), next to moat's names. */
static const char *const state_codes[JOB_STATE_COUNT] = {"PD", "R", "CD", "F", "CA", "TO"};

/* state_one: one state name or code, in any case; -1 when it is neither. */
static int state_one(const char *text, size_t len)
{
    char up[16];
    if (len == 0 || len >= sizeof up)
        return -1;
    for (size_t k = 0; k < len; k++)
        up[k] = (char)toupper((unsigned char)text[k]);
    up[len] = '\0';
    for (int s = 0; s < JOB_STATE_COUNT; s++)
        if (strcmp(up, state_codes[s]) == 0)
            return s;
    return job_state_parse(up);
}

/* state_arg: --state's value, a comma-separated list of states, added to
 * *mask (a bit per state); -1 (printed) when one is no state. */
static int state_arg(const struct cli *cli, const char *text, unsigned *mask)
{
    for (const char *p = text;; p++) {
        size_t len = strcspn(p, ",");
        int st = state_one(p, len);
        if (st < 0)
            return cli_usage_error(cli, "--state '%.*s': expected PENDING, RUNNING, COMPLETED, FAILED, "
                                   "CANCELLED or TIMEOUT (or PD, R, CD, F, CA, TO), comma-separated",
                                   (int)(len < 40 ? len : 40), p);
        *mask |= 1u << st;
        if (p[len] == '\0')
            return 0;
        p += len;
    }
}

int cli_queue_run(struct cli *cli, int argc, char **argv)
{
    enum { OPT_STATE = 1, OPT_ALL, OPT_ME };
    static const struct option longopts[] = {
        {"state", required_argument, NULL, OPT_STATE},
        {"all", no_argument, NULL, OPT_ALL},
        {"me", no_argument, NULL, OPT_ME},
        CLI_COMMON_OPTS,
    };
    bool first = true, all = false, me = false;
    unsigned states = 0; /* bit per state asked for */
    int c;
    while ((c = cli_getopt(cli, argc, argv, "", longopts, queue_help, &first)) != -1) {
        if (c == CLI_OPT_HELP)
            return CLI_OK;
        if (c == '?')
            return CLI_USAGE;
        if (c == OPT_ALL)
            all = true;
        if (c == OPT_ME)
            me = true;
        if (c == OPT_STATE && state_arg(cli, optarg, &states) != 0)
            return CLI_USAGE;
    }
    if (optind < argc)
        return cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
    json_t *body = json_object();
    json_t *names = json_array();
    for (int s = 0; s < JOB_STATE_COUNT; s++)
        if (states & 1u << s) {
            json_array_append_new(names, json_string(job_state_name((enum job_state)s)));
            all = all || job_state_is_terminal((enum job_state)s);
        }
    if (json_array_size(names) == 1) /* one: `state`, which controllers before lists took */
        json_object_set(body, "state", json_array_get(names, 0));
    else if (json_array_size(names) > 1)
        json_object_set(body, "states", names);
    json_decref(names);
    if (all)
        json_object_set_new(body, "all", json_true());
    if (me)
        json_object_set_new(body, "mine", json_true());
    json_t *reply;
    int rc = cli_request(cli, PROTO_TYPE_QUEUE, json_incref(body), true, &reply, NULL, NULL);
    if (rc != CLI_OK) {
        json_decref(body);
        return rc;
    }
    if (!json_is_array(json_object_get(reply, "jobs"))) {
        json_decref(reply);
        json_decref(body);
        return cli_fail(cli, CLI_FAILED, "controller reply has no job list");
    }
    if (cli->json) {
        struct cli_pages pg = {"jobs", "next", NULL, queue_page, body};
        rc = cli_paged_json(cli, reply, &pg, stdout);
        json_decref(body);
        return rc;
    }
    static const char *const hdr[] = {"JOBID", "NAME", "STATE", "PROGRESS", "SUBMITTED", "TIME",
                                      "EXIT", "REASON"};
    struct cli_table *t = cli_table_create(8, hdr, "rllrlrrl");
    long long asked = 0; /* the first page is from job 1 */
    for (;;) {
        size_t i;
        const json_t *job;
        json_array_foreach(json_object_get(reply, "jobs"), i, job) {
            char id[24], prog[16], sub[32], el[32], ex[32];
            snprintf(id, sizeof id, "%lld", cli_json_int(job, "id", 0));
            snprintf(prog, sizeof prog, "%.0f%%", 100.0 * cli_json_num(job, "progress", 0));
            cli_time_format(cli_json_num(job, "submit_time", 0), sub, sizeof sub);
            job_elapsed(job, el, sizeof el);
            job_exit(job, ex, sizeof ex);
            const char *name = cli_json_str(job, "name", "");
            const char *row[] = {id, name[0] ? name : "-", cli_json_str(job, "state", "?"), prog,
                                 sub, el, ex, cli_json_str(job, "reason", "")};
            cli_table_add(t, row);
        }
        cli_table_flush(t); /* a long history goes out page by page */
        const json_t *nx = json_object_get(reply, "next");
        long long next = json_is_integer(nx) ? json_integer_value(nx) : -1;
        json_decref(reply);
        if (next < 0 || (rc = cli_next_check(cli, asked, next)) != CLI_OK ||
            (rc = queue_page(cli, body, asked = next, &reply)) != CLI_OK)
            break;
    }
    cli_table_print(t);
    json_decref(body);
    return rc;
}

/* ---- show ---- */

static const char show_help[] =
    "usage: moat show JOB [--state STATE] | moat show JOB_I\n"
    "\n"
    "Show one job: its state, times, exit code, its tasks' counts by state and\n"
    "every task (array element): index, state, attempts, node, CPU time, peak\n"
    "resident memory (MAXRSS, as sacct's: the largest of its node's samples\n"
    "every 0.5 s, so a peak shorter than that may be missed) and exit code\n"
    "(\"signal N\" for one a signal killed).\n"
    "JOB_I (17_3) shows the job with its task (array element) I alone.\n"
    "--state STATE lists only the tasks in STATE (PENDING, RUNNING, COMPLETED,\n"
    "FAILED, CANCELLED, TIMEOUT). With --json the job object: {id, name, kind,\n"
    "state, attempts, submit_time, start_time, end_time, exit_code, progress,\n"
    " ntasks, task_states: {STATE: count}, cpu_time, max_rss, tasks: [{index, state,\n"
    " attempts, node, exit_code, signal, cpu_time (s), max_rss (bytes), start_time,\n"
    " end_time}]}. A job of many tasks is fetched and\n"
    "printed in pages of 10,000 tasks.\n"
    "\n"
    "Examples:\n"
    "  moat show 17\n"
    "  moat show 17 --state FAILED\n"
    "  moat show 17 --json | jq '[.tasks[] | select(.state==\"FAILED\") | .index]'\n";

/* size_format: bytes -> "1.5 GiB". Returns buf. */
static char *size_format(double bytes, char *buf, int cap)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    while (bytes >= 1024 && u < 5) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, (size_t)cap, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
    return buf;
}

/* usage_format: o's cpu_time and max_rss (a task's, or a job's over its
 * tasks) as "1.25s" / "1m05s" and "1.5GiB" (one word each: a table's cells
 * split on blanks) in cpu and rss; "-" for what o does not have (not ended,
 * shorter than a sample, or no node said). */
static void usage_format(const json_t *o, char *cpu, int ccap, char *rss, int rcap)
{
    const json_t *c = json_object_get(o, "cpu_time"), *m = json_object_get(o, "max_rss");
    if (json_is_number(c) && json_number_value(c) < 60)
        snprintf(cpu, (size_t)ccap, "%.2fs", json_number_value(c));
    else if (json_is_number(c))
        units_duration_format(json_number_value(c), cpu, ccap);
    else
        snprintf(cpu, (size_t)ccap, "-");
    if (json_is_integer(m) && json_integer_value(m) > 0) {
        char *sp = strchr(size_format((double)json_integer_value(m), rss, rcap), ' ');
        if (sp)
            memmove(sp, sp + 1, strlen(sp));
    } else
        snprintf(rss, (size_t)rcap, "-");
}

static void task_row(struct cli_table *t, const json_t *task)
{
    char idx[24], att[16], tex[32];
    snprintf(idx, sizeof idx, "%lld", cli_json_int(task, "index", 0));
    snprintf(att, sizeof att, "%lld", cli_json_int(task, "attempts", 0));
    job_exit(task, tex, sizeof tex);
    const char *node = cli_json_str(task, "node", "");
    const char *state = cli_json_str(task, "state", "?");
    char nodes[200];
    snprintf(nodes, sizeof nodes, "%s", node[0] ? node : "-");
    const json_t *ranks = json_object_get(task, "ranks"), *rn;
    size_t r;
    if (json_array_size(ranks) > 1) { /* TP ranks: node of rank 0 + rank 1 + ... */
        nodes[0] = '\0';
        json_array_foreach(ranks, r, rn) {
            size_t len = strlen(nodes);
            snprintf(nodes + len, sizeof nodes - len, "%s%s", r ? "+" : "",
                     json_is_string(rn) ? json_string_value(rn) : "?");
        }
    }
    if (strcmp(state, "PENDING") == 0) /* waiting for another attempt: no node yet */
        snprintf(nodes, sizeof nodes, "-");
    char cpu[32], rss[32];
    usage_format(task, cpu, sizeof cpu, rss, sizeof rss);
    const char *row[] = {idx, state, att, nodes, cpu, rss, tex};
    cli_table_add(t, row);
}

/* show_page: the next page of job id's tasks from index from (-1: the first;
 * see ctl_on_show), only those in state when not NULL. */
static int show_page(struct cli *cli, uint64_t id, long long from, const char *state, json_t **reply)
{
    json_t *body = json_pack("{s:I}", "id", (json_int_t)id);
    if (from >= 0)
        json_object_set_new(body, "tasks_from", json_integer(from));
    if (state)
        json_object_set_new(body, "tasks_state", json_string(state));
    return cli_request(cli, PROTO_TYPE_SHOW, body, true, reply, NULL, NULL);
}

/* show_one: SHOW of job id with task index alone (tasks_from index, one task):
 * a usage error when the job has no such task (the page's first is another). */
static int show_one(struct cli *cli, uint64_t id, long long index, json_t **reply)
{
    json_t *body = json_pack("{s:I, s:I, s:i}", "id", (json_int_t)id, "tasks_from",
                             (json_int_t)index, "tasks_limit", 1);
    int rc = cli_request(cli, PROTO_TYPE_SHOW, body, true, reply, NULL, NULL);
    if (rc != CLI_OK)
        return rc;
    const json_t *t = json_array_get(json_object_get(*reply, "tasks"), 0);
    if (t == NULL || cli_json_int(t, "index", -1) != index) {
        json_decref(*reply);
        *reply = NULL;
        return cli_fail(cli, CLI_USAGE, "job %llu has no task %lld", (unsigned long long)id, index);
    }
    json_object_set_new(*reply, "tasks_next", json_null()); /* this one is all */
    return CLI_OK;
}

struct show_ctx {
    uint64_t id;
    const char *state;
};

static int show_next(struct cli *cli, void *ctx, long long from, json_t **reply)
{
    const struct show_ctx *sc = ctx;
    return show_page(cli, sc->id, from, sc->state, reply);
}

static long long next_of(const json_t *reply)
{
    const json_t *n = json_object_get(reply, "tasks_next");
    return json_is_integer(n) ? json_integer_value(n) : -1;
}

/* show_spec: what the job asked for: its command, array, resources, priority,
 * time limit, begin time and dependencies (what scontrol show job gives). */
static void show_spec(const json_t *job)
{
    const json_t *argv = json_object_get(job, "argv"), *v;
    size_t i;
    if (json_array_size(argv) > 0) {
        printf("  command:  ");
        json_array_foreach(argv, i, v) { /* as a shell would take it back */
            const char *a = json_string_value(v);
            putchar(' ');
            cli_print_word(stdout, a ? a : "");
        }
        printf("\n");
    }
    const char *arr = cli_json_str(job, "array", "");
    if (arr[0])
        printf("  array:     %s\n", arr);
    if (strcmp(cli_json_str(job, "kind", ""), "bench") != 0) { /* a bench task takes its node */
        char res[96];
        long long cpus = cli_json_int(job, "cpus", 1), gpus = cli_json_int(job, "gpus", 0);
        int n = snprintf(res, sizeof res, "%lld cpu%s", cpus, cpus == 1 ? "" : "s");
        if (gpus > 0)
            n += snprintf(res + n, sizeof res - (size_t)n, ", %lld gpu%s", gpus, gpus == 1 ? "" : "s");
        double m = cli_json_num(job, "mem", 0);
        char mem[32];
        if (m > 0)
            snprintf(res + n, sizeof res - (size_t)n, ", %s", size_format(m, mem, sizeof mem));
        printf("  resources: %s per %s\n", res,
               strcmp(cli_json_str(job, "kind", ""), "infer") == 0 ? "TP rank" : "task");
    }
    printf("  priority:  %lld\n", cli_json_int(job, "priority", 0));
    double tl = cli_json_num(job, "time_limit", 0), begin = cli_json_num(job, "begin", 0);
    char buf[32];
    if (tl > 0)
        printf("  limit:     %s\n", units_duration_format(tl, buf, sizeof buf));
    if (cli_json_int(job, "retries", 0) > 0)
        printf("  retries:   %lld (a failed task runs again)\n", cli_json_int(job, "retries", 0));
    if (begin > 0)
        printf("  begin:     %s\n", cli_time_format(begin, buf, sizeof buf));
    const json_t *env = json_object_get(job, "env");
    for (size_t i = 0; i < json_array_size(env); i++)
        printf("%s%s%s", i ? ", " : "  env:       ", json_string_value(json_array_get(env, i)),
               i + 1 == json_array_size(env) ? " (--env; values not shown)\n" : "");
    static const char *const dep_key[] = {"after", "after_any", "after_notok"};
    static const char *const dep_what[] = {"each must COMPLETE", "each must end, in any state",
                                           "each must end other than COMPLETED"};
    for (int k = 0; k < 3; k++) {
        const json_t *after = json_object_get(job, dep_key[k]);
        if (json_array_size(after) == 0)
            continue;
        printf("  after:     ");
        json_array_foreach(after, i, v)
            printf("%s%lld", i ? "," : "", (long long)json_integer_value(v));
        printf(" (%s)\n", dep_what[k]);
    }
}

int cli_show_run(struct cli *cli, int argc, char **argv)
{
    enum { OPT_STATE = 1 };
    static const struct option longopts[] = {
        {"state", required_argument, NULL, OPT_STATE},
        CLI_COMMON_OPTS,
    };
    const char *state = NULL;
    bool first = true;
    int c;
    while ((c = cli_getopt(cli, argc, argv, "", longopts, show_help, &first)) != -1) {
        if (c == CLI_OPT_HELP)
            return CLI_OK;
        if (c == '?')
            return CLI_USAGE;
        if (c == OPT_STATE)
            state = optarg;
    }
    if (optind >= argc)
        return cli_usage_error(cli, "missing JOB");
    if (optind + 1 < argc)
        return cli_usage_error(cli, "unexpected argument '%s' (one job at a time)", argv[optind + 1]);
    if (state) {
        unsigned mask = 0;
        if (state_arg(cli, state, &mask) != 0)
            return CLI_USAGE;
        if (mask & (mask - 1))
            return cli_usage_error(cli, "--state '%s': show lists the tasks of one state at a time",
                                   state);
        state = job_state_name((enum job_state)__builtin_ctz(mask));
    }
    uint64_t id;
    long long only; /* JOB_I: element I alone, as scontrol show job 17_3 */
    if (cli_jobtask_parse(cli, argv[optind], &id, &only) != CLI_OK)
        return CLI_USAGE;
    if (only >= 0 && state)
        return cli_usage_error(cli, "--state goes with a whole job, not %s", argv[optind]);
    json_t *reply;
    int rc = only >= 0 ? show_one(cli, id, only, &reply) : show_page(cli, id, -1, state, &reply);
    if (rc != CLI_OK)
        return rc;
    if (cli->json && only >= 0) {
        cli_json_print(reply);
        json_decref(reply);
        return CLI_OK;
    }
    if (cli->json) {
        struct show_ctx sc = {id, state};
        struct cli_pages pg = {"tasks", "tasks_next", NULL, show_next, &sc};
        return cli_paged_json(cli, reply, &pg, stdout);
    }
    char sub[32], st[32], en[32], el[32], ex[32];
    const char *name = cli_json_str(reply, "name", "");
    job_exit(reply, ex, sizeof ex);
    job_elapsed(reply, el, sizeof el);
    printf("job %lld%s%s%s\n", cli_json_int(reply, "id", 0), name[0] ? " \"" : "", name,
           name[0] ? "\"" : "");
    printf("  kind:      %s\n", cli_json_str(reply, "kind", "?"));
    const json_t *bench = json_object_get(reply, "bench");
    if (json_is_object(bench)) {
        printf("  bench:     %s [", cli_json_str(bench, "op", "?"));
        const json_t *shape = json_object_get(bench, "shape"), *v;
        size_t i;
        json_array_foreach(shape, i, v)
            printf("%s%lld", i ? "," : "", (long long)json_integer_value(v));
        long long th = cli_json_int(bench, "threads", 0);
        printf("] %s, up to %lld runs, backend %s, ", cli_json_str(bench, "dtype", "?"),
               cli_json_int(bench, "repeat", 0), cli_json_str(bench, "backend", "?"));
        if (th > 0)
            printf("%lld cpu threads\n", th);
        else
            printf("cpu threads: all\n");
        printf("  nodes:     ");
        const json_t *nodes = json_object_get(reply, "nodes");
        json_array_foreach(nodes, i, v)
            printf("%s%s", i ? "," : "", json_string_value(v));
        printf("\n");
    }
    if (json_object_get(reply, "model"))
        printf("  model:     %s, TP %lld, %lld documents in batches of %lld (max %lld tokens)\n",
               cli_json_str(reply, "model", "?"), cli_json_int(reply, "tp", 1), cli_json_int(reply, "ndocs", 0),
               cli_json_int(reply, "batch", 0), cli_json_int(reply, "max_len", 0));
    show_spec(reply);
    printf("  state:     %s\n", cli_json_str(reply, "state", "?"));
    const char *reason = cli_json_str(reply, "reason", "");
    if (reason[0])
        printf("  reason:    %s\n", reason);
    printf("  progress:  %.0f%%\n", 100.0 * cli_json_num(reply, "progress", 0));
    printf("  attempts:  %lld\n", cli_json_int(reply, "attempts", 0));
    printf("  exit code: %s\n", ex);
    printf("  submitted: %s\n", cli_time_format(cli_json_num(reply, "submit_time", 0), sub, sizeof sub));
    printf("  started:   %s\n", cli_time_format(cli_json_num(reply, "start_time", 0), st, sizeof st));
    printf("  ended:     %s\n", cli_time_format(cli_json_num(reply, "end_time", 0), en, sizeof en));
    printf("  run time:  %s\n", el);
    char cpu[32], rss[32];
    usage_format(reply, cpu, sizeof cpu, rss, sizeof rss);
    if (only < 0 && (cli_json_num(reply, "cpu_time", 0) > 0 || cli_json_int(reply, "max_rss", 0) > 0))
        printf("  usage:     %s CPU in all, %s peak resident (its largest task)\n",
               cpu, rss);
    long long ntasks = cli_json_int(reply, "ntasks", 0);
    const json_t *counts = json_object_get(reply, "task_states");
    if (ntasks > 1 && json_is_object(counts)) {
        printf("  tasks:     %lld (", ntasks);
        static const char *const order[] = {"COMPLETED", "RUNNING", "PENDING", "FAILED", "TIMEOUT",
                                            "CANCELLED"};
        bool sep = false;
        for (size_t k = 0; k < sizeof order / sizeof *order; k++) {
            long long n = cli_json_int(counts, order[k], 0);
            if (n > 0) {
                printf("%s%lld %s", sep ? ", " : "", n, order[k]);
                sep = true;
            }
        }
        printf(")\n");
    }
    static const char *const hdr[] = {"INDEX", "STATE", "ATTEMPTS", "NODE", "CPU", "MAXRSS", "EXIT"};
    struct cli_table *t = NULL;
    long long asked = -1;
    for (;;) {
        const json_t *tasks = json_object_get(reply, "tasks"), *task;
        size_t i;
        if (t == NULL && json_array_size(tasks) > 0) {
            printf("\n");
            t = cli_table_create(7, hdr, "rlrlrrr");
            /* the widest index is the last (the end of the last range of
             * "1-3,7,10-20:5%2"): the width of every page */
            const char *arr = cli_json_str(reply, "array", ""), *last = strrchr(arr, ',');
            last = last ? last + 1 : arr;
            const char *dash = strchr(last, '-');
            int w = (int)strspn(dash ? dash + 1 : last, "0123456789");
            if (w > 0)
                cli_table_min_width(t, 0, w);
        }
        json_array_foreach(tasks, i, task)
            task_row(t, task);
        cli_table_flush(t);
        long long next = next_of(reply);
        json_decref(reply);
        reply = NULL;
        if (next < 0 || (rc = cli_next_check(cli, asked, next)) != CLI_OK)
            break;
        if ((rc = show_page(cli, id, asked = next, state, &reply)) != CLI_OK)
            break;
    }
    if (t == NULL && state && rc == CLI_OK)
        printf("\n  no task is %s\n", state);
    cli_table_print(t);
    return rc;
}

/* ---- nodes ---- */

static const char nodes_help[] =
    "usage: moat nodes\n"
    "\n"
    "List worker nodes: NAME, STATE (UP; DRAINING: gets no new work, drained by\n"
    "an admin or after repeated launch failures; DOWN: missed its heartbeats;\n"
    "a '*' after UP or DRAINING, as in sinfo: the node is known from the store\n"
    "but has not registered since the controller started, and gets no work\n"
    "until it does or is found DOWN),\n"
    "HOST, PID, CPUS and GPUS (in use/offered), MEM (offered), RUNNING (tasks\n"
    "now), BACKEND (cpu or cuda),\n"
    "SANDBOX (how exec tasks run: namespaces; off: unconfined; unavailable:\n"
    "refused), EGRESS (yes: the node has a route beyond the fabric's subnets)\n"
    "and REASON (why DRAINING or '*'). 'moat admin node' drains, resumes,\n"
    "removes.\n"
    "With --json: {\"nodes\": [{name, state, host, pid, cpus, gpus, mem_bytes,\n"
    "used_cpus, used_gpus, used_mem, running_tasks, backend, sandbox, egress,\n"
    "egress_route?, drained, registered, reason}]}.\n"
    "\n"
    "Examples:\n"
    "  moat nodes\n"
    "  moat nodes --json | jq -r '.nodes[] | select(.state != \"UP\") | .name'\n";


/* node_cmp: by name, numbers in names compared as numbers (local-2 < local-10). */
static int node_cmp(const void *a, const void *b)
{
    const char *x = cli_json_str(*(const json_t *const *)a, "name", "");
    const char *y = cli_json_str(*(const json_t *const *)b, "name", "");
    while (*x && *y) {
        if (isdigit((unsigned char)*x) && isdigit((unsigned char)*y)) {
            char *ex, *ey;
            unsigned long long nx = strtoull(x, &ex, 10), ny = strtoull(y, &ey, 10);
            if (nx != ny)
                return nx < ny ? -1 : 1;
            x = ex;
            y = ey;
            continue;
        }
        if (*x != *y)
            return (unsigned char)*x < (unsigned char)*y ? -1 : 1;
        x++;
        y++;
    }
    return (unsigned char)*x - (unsigned char)*y;
}

int cli_nodes_run(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {CLI_COMMON_OPTS};
    bool first = true;
    int c;
    while ((c = cli_getopt(cli, argc, argv, "", longopts, nodes_help, &first)) != -1)
        return c == CLI_OPT_HELP ? CLI_OK : CLI_USAGE;
    if (optind < argc)
        return cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
    json_t *reply;
    int rc = cli_request(cli, PROTO_TYPE_NODES, NULL, false, &reply, NULL, NULL);
    if (rc != CLI_OK)
        return rc;
    const json_t *nodes = json_object_get(reply, "nodes");
    if (!json_is_array(nodes)) {
        json_decref(reply);
        return cli_fail(cli, CLI_FAILED, "controller reply has no node list");
    }
    if (cli->json) {
        cli_json_print(reply);
        json_decref(reply);
        return CLI_OK;
    }
    static const char *const hdr[] = {"NAME", "STATE", "HOST", "PID", "CPUS", "GPUS", "MEM",
                                      "RUNNING", "BACKEND", "SANDBOX", "EGRESS", "REASON"};
    struct cli_table *t = cli_table_create(12, hdr, "lllrrrrrllll");
    size_t nn = json_array_size(nodes);
    const json_t **sorted = calloc(nn ? nn : 1, sizeof *sorted);
    if (sorted == NULL) {
        json_decref(reply);
        return cli_fail(cli, CLI_FAILED, "out of memory");
    }
    for (size_t k = 0; k < nn; k++)
        sorted[k] = json_array_get(nodes, k);
    qsort(sorted, nn, sizeof *sorted, node_cmp);
    for (size_t k = 0; k < nn; k++) {
        const json_t *n = sorted[k];
        char pid[16], cpus[16], gpus[16], mem[32], run[16];
        snprintf(pid, sizeof pid, "%lld", cli_json_int(n, "pid", 0));
        /* in use / offered, as sinfo's CPUS(A/I/O/T) starts */
        snprintf(cpus, sizeof cpus, "%lld/%lld", cli_json_int(n, "used_cpus", 0), cli_json_int(n, "cpus", 0));
        snprintf(gpus, sizeof gpus, "%lld/%lld", cli_json_int(n, "used_gpus", 0), cli_json_int(n, "gpus", 0));
        size_format(cli_json_num(n, "mem_bytes", 0), mem, sizeof mem);
        snprintf(run, sizeof run, "%lld", cli_json_int(n, "running_tasks", 0));
        /* sinfo's '*': known, not responding (a DOWN node is not expected to) */
        const char *st = cli_json_str(n, "state", "?");
        const json_t *reg = json_object_get(n, "registered");
        char state[40];
        snprintf(state, sizeof state, "%s%s", st,
                 json_is_false(reg) && strcmp(st, "DOWN") != 0 ? "*" : "");
        const char *reason = cli_json_str(n, "reason", "");
        if (json_is_false(reg) && strcmp(st, "DOWN") != 0 && reason[0] == '\0')
            reason = "not registered since the controller started";
        const char *row[] = {cli_json_str(n, "name", "?"), state,
                             cli_json_str(n, "host", "?"), pid, cpus, gpus, mem, run,
                             cli_json_str(n, "backend", "?"), cli_json_str(n, "sandbox", "?"),
                             json_is_true(json_object_get(n, "egress")) ? "yes" : "no",
                             reason};
        cli_table_add(t, row);
    }
    free(sorted);
    cli_table_print(t);
    json_decref(reply);
    return CLI_OK;
}
