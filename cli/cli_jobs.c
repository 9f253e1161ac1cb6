/* cli_jobs.c: commands that act on jobs already submitted: cancel, wait. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "shared/jobspec.h"
#include "shared/units.h"

/* parse_jobs: argv[optind..] (each "N" or "N,M,...") -> a new array of ids. */
static int parse_jobs(struct cli *cli, int argc, char **argv, uint64_t **ids, int *n)
{
    int cap = 0;
    for (int i = optind; i < argc; i++)
        for (const char *p = argv[i]; p; p = strchr(p + 1, ','))
            cap++;
    if (cap == 0)
        return cli_usage_error(cli, "missing JOB");
    *ids = calloc((size_t)cap, sizeof **ids);
    *n = 0;
    if (*ids == NULL)
        return cli_fail(cli, CLI_FAILED, "out of memory");
    for (int i = optind; i < argc; i++) {
        struct err err = {0};
        if (client_jobids_parse(argv[i], *ids, n, cap, &err) != 0) {
            free(*ids);
            *ids = NULL;
            return cli_fail(cli, CLI_USAGE, "%s", err.msg);
        }
    }
    return CLI_OK;
}

/* ---- cancel ---- */

static const char cancel_help[] =
    "usage: moat cancel JOB...\n"
    "\n"
    "Cancel jobs: pending tasks never start, running ones are killed (their whole\n"
    "process group); the job ends CANCELLED. JOB_I cancels element I of an array\n"
    "job alone, JOB_[LIST] those of LIST (as --array takes it: 3-5,9), as\n"
    "Slurm's scancel does: a pending one never starts, a running one is killed;\n"
    "neither is retried, and the job ends when its other tasks do (CANCELLED\n"
    "unless one FAILED). Silent on success; with --json: {\"cancelled\": [ids],\n"
    "\"cancelled_tasks\": [{id, index}], \"errors\": [{id, [index,] code, msg}]}.\n"
    "The others are cancelled even when one fails: exit 2 when a job or element\n"
    "does not exist or has already ended otherwise than cancelled, 1 when one\n"
    "could not be cancelled for another reason. Cancelling again what was\n"
    "cancelled is no error (a request may be sent twice), and is not audited again.\n"
    "\n"
    "Examples:\n"
    "  moat cancel 17\n"
    "  moat cancel 17 18 19\n"
    "  moat cancel 17_3 17_[10-20:2]\n"
    "  moat queue --state PENDING --json | jq -r '.jobs[].id' | xargs moat cancel\n";

#define CANCEL_MAX 100000

/* shown: arg as an error message quotes it: its first 60 bytes and "..."
 * when longer (a J_[LIST] can be 100 KiB), in buf. */
static const char *shown(const char *arg, char buf[72])
{
    if (strlen(arg) <= 63)
        return arg;
    snprintf(buf, 72, "%.60s...", arg);
    return buf;
}

/* cancel_parse: one argument: comma-separated JOB, JOB_I or JOB_[LIST] items ->
 * ids and tasks ({id, index} objects). */
static int cancel_parse(struct cli *cli, const char *arg, json_t *ids, json_t *tasks)
{
    const char *p = arg;
    char sa[72];
    bool elements = false; /* a JOB_I came before in this argument */
    for (;;) {
        char num[32];
        size_t len = strspn(p, "0123456789");
        if (len == 0 || len >= sizeof num)
            return cli_fail(cli, CLI_USAGE, "'%s': expected JOB, JOB_I or JOB_[LIST], comma-separated",
                            shown(arg, sa));
        memcpy(num, p, len);
        num[len] = '\0';
        p += len;
        uint64_t id;
        struct err err = {0};
        if (client_jobid_parse(num, &id, &err) != 0)
            return cli_fail(cli, CLI_USAGE, "%s", err.msg);
        if (*p != '_') {
            /* N.B. "17_3,5" reads in Slurm's way as elements 3 and 5 to some: refused,
             * not taken for the whole of job 5 */
            if (elements)
                return cli_fail(cli, CLI_USAGE, "'%s': a whole job (%s) after an element: for "
                                "elements write JOB_[LIST] (17_[3,5]); for jobs, separate arguments",
                                shown(arg, sa), num);
            json_array_append_new(ids, json_integer((json_int_t)id));
        } else {
            /* the elements: one index, or a list in brackets as --array takes it */
            elements = true;
            const char *end;
            p++;
            if (*p == '[') {
                end = strchr(p, ']');
                if (end == NULL)
                    return cli_fail(cli, CLI_USAGE, "'%s': no ']' after %s_[", shown(arg, sa), num);
                len = (size_t)(end - p - 1);
                p++;
            } else {
                len = strspn(p, "0123456789");
                end = p + len - 1;
            }
            if (len == 0)
                return cli_fail(cli, CLI_USAGE, "'%s': expected an index or [LIST] after %s_",
                                shown(arg, sa), num);
            char *list = strndup(p, len);
            if (list == NULL)
                return cli_fail(cli, CLI_FAILED, "out of memory");
            p = end + 1;
            struct job_spec one;
            memset(&one, 0, sizeof one);
            if (jobspec_array_parse(list, &one, &err) == 0 && one.array_max)
                err_set(&err, EINVAL, "no %%MAX here");
            free(list);
            if (err.code) {
                jobspec_clear(&one);
                const char *why = strncmp(err.msg, "--array '", 9) == 0 && strstr(err.msg, "': ")
                                      ? strstr(err.msg, "': ") + 3 : err.msg; /* said once: arg */
                return cli_fail(cli, CLI_USAGE, "'%s': elements of job %s: %s", shown(arg, sa), num,
                                why);
            }
            uint32_t n = jobspec_ntasks(&one);
            if (json_array_size(tasks) + n > CANCEL_MAX) {
                jobspec_clear(&one);
                return cli_fail(cli, CLI_USAGE, "more than %d array elements at once", CANCEL_MAX);
            }
            for (uint32_t k = 0; k < n; k++)
                json_array_append_new(tasks, json_pack("{s:I, s:I}", "id", (json_int_t)id, "index",
                                                       (json_int_t)jobspec_index(&one, k)));
            jobspec_clear(&one);
        }
        if (*p == '\0')
            return CLI_OK;
        if (*p++ != ',')
            return cli_fail(cli, CLI_USAGE, "'%s': expected JOB, JOB_I or JOB_[LIST], comma-separated",
                            shown(arg, sa));
    }
}

int cli_cancel_run(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {CLI_COMMON_OPTS};
    bool first = true;
    int c;
    while ((c = cli_getopt(cli, argc, argv, "", longopts, cancel_help, &first)) != -1)
        return c == CLI_OPT_HELP ? CLI_OK : CLI_USAGE;
    if (optind >= argc)
        return cli_usage_error(cli, "missing JOB");
    json_t *arr = json_array(), *tasks = json_array();
    int rc = CLI_OK;
    for (int i = optind; i < argc && rc == CLI_OK; i++)
        rc = cancel_parse(cli, argv[i], arr, tasks);
    if (rc == CLI_OK && json_array_size(arr) > CANCEL_MAX)
        rc = cli_fail(cli, CLI_USAGE, "more than %d jobs at once", CANCEL_MAX);
    if (rc != CLI_OK) {
        json_decref(arr);
        json_decref(tasks);
        return rc;
    }
    json_t *reply, *body = json_pack("{s:o}", "ids", arr);
    if (json_array_size(tasks) > 0)
        json_object_set(body, "tasks", tasks);
    json_decref(tasks);
    rc = cli_request(cli, PROTO_TYPE_CANCEL, body, true, &reply, NULL, NULL);
    if (rc != CLI_OK)
        return rc;
    if (cli->json)
        cli_json_print(reply);
    const json_t *errors = json_object_get(reply, "errors");
    size_t i;
    const json_t *e;
    json_array_foreach(errors, i, e) {
        const char *msg = cli_json_str(e, "msg", "cannot cancel");
        char prefix[48], more[64] = "";
        snprintf(prefix, sizeof prefix, "job %lld", cli_json_int(e, "id", 0));
        long long code = cli_json_int(e, "code", 0);
        /* elements of one job not in its array (a J_[0-99999] past the
         * array's end): one line, not one per element */
        size_t same = 0;
        while (code == ENOENT && json_object_get(e, "index") && i + same + 1 < json_array_size(errors)) {
            const json_t *n = json_array_get(errors, i + same + 1);
            if (!json_object_get(n, "index") || cli_json_int(n, "id", 0) != cli_json_int(e, "id", 0) ||
                cli_json_int(n, "code", 0) != code)
                break;
            same++;
        }
        if (same > 0)
            snprintf(more, sizeof more, " (and %zu more not in its array)", same);
        /* The controller's message may already name the job. */
        int why = code == ENOENT || code == EINVAL ? CLI_USAGE : CLI_FAILED;
        if (strncmp(msg, prefix, strlen(prefix)) == 0)
            cli_fail(cli, why, "%s%s", msg, more);
        else if (json_object_get(e, "index"))
            cli_fail(cli, why, "%s_%lld: %s%s", prefix, cli_json_int(e, "index", 0), msg, more);
        else
            cli_fail(cli, why, "%s: %s", prefix, msg);
        if (rc != CLI_USAGE)
            rc = why;
        i += same;
    }
    json_decref(reply);
    return rc;
}

/* ---- hold, release ---- */

static const char hold_help[] =
    "usage: moat hold JOB...\n"
    "\n"
    "Hold jobs, as Slurm's scontrol hold: no task of them starts until 'moat\n"
    "release JOB' (tasks already running go on); queue and show say 'held'.\n"
    "The hold is stored with the job and outlives restarts. 'moat submit --hold'\n"
    "submits a job held. Silent on success; with --json: {\"done\": [ids],\n"
    "\"errors\": [{id, code, msg}]}. Exit 2 when a job does not exist or has\n"
    "ended (the others are held all the same).\n"
    "\n"
    "Examples:\n"
    "  moat hold 17 18\n"
    "  moat release 17\n";

static const char release_help[] =
    "usage: moat release JOB...\n"
    "\n"
    "Release held jobs ('moat hold', 'moat submit --hold'): their tasks start as\n"
    "resources allow. Silent on success; with --json: {\"done\": [ids],\n"
    "\"errors\": [{id, code, msg}]}. Exit 2 when a job does not exist or has ended.\n"
    "\n"
    "Examples:\n"
    "  moat release 17\n"
    "  moat queue --json | jq -r '.jobs[] | select(.held) | .id' | xargs moat release\n";

static const char requeue_help[] =
    "usage: moat requeue JOB...\n"
    "\n"
    "Run again the tasks of ended jobs (FAILED, TIMEOUT or CANCELLED) that did\n"
    "not complete, as Slurm's scontrol requeue: an array's failed elements, an\n"
    "infer job's failed or cancelled batches. Each is a new attempt with its\n"
    "budgets anew (max_attempts, --retries); COMPLETED tasks and their results\n"
    "stay, so an infer job ends with every embedding. The job is PENDING again.\n"
    "A job CANCELLED because its --after job failed is requeued like any other:\n"
    "name both (moat requeue 17 18) and it waits for the first to COMPLETE.\n"
    "Silent on success; with --json: {\"requeued\": [ids], \"errors\": [{id,\n"
    "code, msg}]}. Exit 2 when a job does not exist, has not ended or COMPLETED,\n"
    "or is a bench job (the others are requeued all the same).\n"
    "\n"
    "Examples:\n"
    "  moat requeue 17\n"
    "  moat requeue 17 18                   # 18 ran --after 17: both again\n"
    "  moat queue --state FAILED,TIMEOUT --json | jq -r '.jobs[].id' | xargs moat requeue\n";

/* ids_run: JOB... into a request of type (body {ids} and what extra adds,
 * which it takes), its errors one line each (exit 2 for ENOENT and EINVAL). */
static int ids_run(struct cli *cli, int argc, char **argv, const char *help, enum proto_type type,
                   json_t *extra)
{
    static const struct option longopts[] = {CLI_COMMON_OPTS};
    bool first = true;
    int c;
    while ((c = cli_getopt(cli, argc, argv, "", longopts, help, &first)) != -1) {
        json_decref(extra);
        return c == CLI_OPT_HELP ? CLI_OK : CLI_USAGE;
    }
    uint64_t *ids;
    int n, rc = parse_jobs(cli, argc, argv, &ids, &n);
    if (rc != CLI_OK) {
        json_decref(extra);
        return rc;
    }
    if (n > CANCEL_MAX) {
        free(ids);
        json_decref(extra);
        return cli_fail(cli, CLI_USAGE, "more than %d jobs at once", CANCEL_MAX);
    }
    json_t *arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, json_integer((json_int_t)ids[i]));
    free(ids);
    json_t *reply, *body = extra ? extra : json_object();
    json_object_set_new(body, "ids", arr);
    rc = cli_request(cli, type, body, true, &reply, NULL, NULL);
    if (rc != CLI_OK)
        return rc;
    if (cli->json)
        cli_json_print(reply);
    size_t i;
    const json_t *e;
    json_array_foreach(json_object_get(reply, "errors"), i, e) {
        long long code = cli_json_int(e, "code", 0);
        int why = code == ENOENT || code == EINVAL ? CLI_USAGE : CLI_FAILED;
        cli_fail(cli, why, "%s", cli_json_str(e, "msg", "refused"));
        if (rc != CLI_USAGE)
            rc = why;
    }
    json_decref(reply);
    return rc;
}

int cli_hold_run(struct cli *cli, int argc, char **argv)
{
    return ids_run(cli, argc, argv, hold_help, PROTO_TYPE_HOLD, json_pack("{s:b}", "release", 0));
}

int cli_release_run(struct cli *cli, int argc, char **argv)
{
    return ids_run(cli, argc, argv, release_help, PROTO_TYPE_HOLD, json_pack("{s:b}", "release", 1));
}

int cli_requeue_run(struct cli *cli, int argc, char **argv)
{
    return ids_run(cli, argc, argv, requeue_help, PROTO_TYPE_REQUEUE, NULL);
}

/* ---- after submit ---- */

int cli_submitted(struct cli *cli, uint64_t id, bool wait)
{
    return cli_submitted_with(cli, id, wait, NULL);
}

int cli_submitted_with(struct cli *cli, uint64_t id, bool wait, json_t *extra)
{
    if (!wait || !cli->json) {
        if (cli->json) {
            json_t *doc = json_pack("{s:I}", "id", (json_int_t)id);
            if (extra)
                json_object_update(doc, extra);
            cli_json_print(doc);
            json_decref(doc);
        } else {
            printf("%llu\n", (unsigned long long)id);
            fflush(stdout); /* the id before a long wait */
        }
    }
    if (!wait) {
        json_decref(extra);
        return CLI_OK;
    }
    if (cli->json) { /* in wait's document, beside its jobs */
        json_decref(cli->json_extra);
        cli->json_extra = extra;
    } else {
        json_decref(extra);
    }
    char arg[32];
    snprintf(arg, sizeof arg, "%llu", (unsigned long long)id);
    char *argv[] = {"wait", arg, NULL};
    optind = 0; /* getopt starts over on this argv */
    return cli_wait_run(cli, 2, argv);
}

/* ---- wait ---- */

static const char wait_help[] =
    "usage: moat wait JOB... [--timeout DUR] [--progress DUR]\n"
    "\n"
    "Wait until every JOB has ended (JOB_I: element I of an array job alone).\n"
    "Exit 0 when all COMPLETED, 1 when any ended\n"
    "otherwise (FAILED, CANCELLED, TIMEOUT; each is named on stderr) or when\n"
    "--timeout (e.g. 30s, 10m, 2h) passed first. On a terminal, a progress bar\n"
    "(tasks ended / total, elapsed time) is drawn on stderr; otherwise wait is\n"
    "silent; --progress DUR writes a line of it every DUR instead, for a log (a\n"
    "batch script's, CI's). With --json: {\"jobs\": [{id, state, exit_code}], \"timed_out\": B}\n"
    "(and \"index\" for a JOB_I).\n"
    "A controller restart while waiting is ridden out (up to $MOAT_TIMEOUT).\n"
    "\n"
    "Examples:\n"
    "  moat wait 17 && moat result 17\n"
    "  moat wait 17 18 --timeout 1h || echo 'did not complete'\n"
    "  moat wait 17_3 && moat result 17_3\n"
    "  moat wait 17 --progress 1m 2>> run.log\n";

struct wjob {
    uint64_t id;
    long long index;   /* JOB_I: the element waited for; -1: the whole job */
    bool done;
    char state[16];
    char reason[96];   /* the job's reason, "" if none */
    long long exit_code;
    long ntasks, nended;
    long long ndocs, docs_done; /* infer jobs: documents in all and in finished batches */
    long long docs_at_start;    /* docs_done when wait first saw the job (-1: not yet) */
    uint64_t req;      /* outstanding SHOW request id, 0 if none */
};

/* wjob_name: "17", or "17_3" for an element, in buf. */
static const char *wjob_name(const struct wjob *j, char buf[48])
{
    if (j->index >= 0)
        snprintf(buf, 48, "%llu_%lld", (unsigned long long)j->id, j->index);
    else
        snprintf(buf, 48, "%llu", (unsigned long long)j->id);
    return buf;
}

/* draw_bar: the progress on stderr: redrawn in place on a terminal, or (as_line,
 * wait --progress) one plain line for a log. */
static void draw_bar(const struct wjob *jobs, int n, double elapsed, bool final, bool as_line)
{
    const char *pre = as_line ? "" : "\r", *post = as_line ? "\n" : "\033[K";
    long tot = 0, ended = 0;
    int jdone = 0;
    for (int i = 0; i < n; i++) {
        tot += jobs[i].ntasks;
        ended += jobs[i].nended;
        jdone += jobs[i].done;
    }
    int width = 30, fill = tot ? (int)((double)ended / (double)tot * width) : 0;
    char bar[64], el[32];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '-';
    bar[width] = '\0';
    long long docs = 0, done_docs = 0, new_docs = 0;
    for (int i = 0; i < n; i++) {
        docs += jobs[i].ndocs;
        done_docs += jobs[i].docs_done;
        new_docs += jobs[i].docs_at_start >= 0 ? jobs[i].docs_done - jobs[i].docs_at_start : 0;
    }
    if (docs > 0) {
        /* infer jobs: documents, throughput since waiting began, and an estimate of the rest */
        double rate = elapsed > 0 ? (double)new_docs / elapsed : 0;
        char eta[32] = "?";
        if (rate > 0)
            units_duration_format((double)(docs - done_docs) / rate, eta, sizeof eta);
        fprintf(stderr, "%s[%s] %lld/%lld docs, %.1f docs/s, ETA %s, %s%s", pre, bar, done_docs, docs,
                rate, eta, units_duration_format(elapsed, el, sizeof el), post);
    } else {
        fprintf(stderr, "%s[%s] %ld/%ld tasks, %d/%d jobs, %s%s", pre, bar, ended, tot, jdone, n,
                units_duration_format(elapsed, el, sizeof el), post);
    }
    if (final && !as_line)
        fputc('\n', stderr);
    fflush(stderr);
}

/* poll_round: SHOW every job not yet done, pipelined. Returns CLI_OK, or an exit
 * code (printed) for a refused job; *answered says whether any reply came. */
static int poll_round(struct cli *cli, struct wjob *jobs, int n, double timeout, bool *answered)
{
    struct err err = {0};
    int outstanding = 0;
    *answered = false;
    for (int i = 0; i < n; i++) {
        jobs[i].req = 0;
        if (jobs[i].done)
            continue;
        /* the job's counters, not its tasks (a page of them would be wasted);
         * for an element, a page of that one task */
        json_t *body = json_pack("{s:I, s:i}", "id", (json_int_t)jobs[i].id, "tasks_limit",
                                 jobs[i].index >= 0);
        if (jobs[i].index >= 0)
            json_object_set_new(body, "tasks_from", json_integer(jobs[i].index));
        if (client_send(cli->client, PROTO_TYPE_SHOW, body, &jobs[i].req, &err) != 0)
            break; /* queue full: the rest next round */
        outstanding++;
    }
    double deadline = units_mono() + timeout;
    while (outstanding > 0) {
        double left = deadline - units_mono();
        if (left <= 0)
            return CLI_OK;
        struct proto_msg msg;
        int r = client_recv(cli->client, left, &msg, &err);
        if (r <= 0)
            continue;
        int k = -1;
        for (int i = 0; i < n && k < 0; i++)
            if (jobs[i].req == msg.req_id && msg.req_id != 0)
                k = i;
        if (k < 0) {
            proto_msg_clear(&msg);
            continue;
        }
        jobs[k].req = 0;
        outstanding--;
        *answered = true;
        if (client_reply_error(&msg, &err) != 0) {
            proto_msg_clear(&msg);
            bool bad = err.code == ENOENT || err.code == EINVAL;
            return cli_fail(cli, bad ? CLI_USAGE : CLI_FAILED, "%s", err.msg);
        }
        const json_t *job = msg.body;
        if (jobs[k].index >= 0) { /* the element stands for the job */
            const json_t *t = json_array_get(json_object_get(job, "tasks"), 0);
            if (t == NULL || cli_json_int(t, "index", -1) != jobs[k].index) {
                proto_msg_clear(&msg);
                return cli_fail(cli, CLI_USAGE, "job %llu has no task %lld",
                                (unsigned long long)jobs[k].id, jobs[k].index);
            }
            snprintf(jobs[k].state, sizeof jobs[k].state, "%s", cli_json_str(t, "state", "?"));
            char mine[32]; /* the job's reason, when it is about this task */
            int ml = snprintf(mine, sizeof mine, "task %lld: ", jobs[k].index);
            const char *why = cli_json_str(job, "reason", "");
            snprintf(jobs[k].reason, sizeof jobs[k].reason, "%s",
                     strncmp(why, mine, (size_t)ml) == 0 ? why + ml : "");
            jobs[k].exit_code = cli_json_int(t, "exit_code", -1);
            int st = job_state_parse(jobs[k].state);
            jobs[k].done = st >= 0 && job_state_is_terminal((enum job_state)st);
            jobs[k].ntasks = 1;
            jobs[k].nended = jobs[k].done;
            proto_msg_clear(&msg);
            continue;
        }
        snprintf(jobs[k].state, sizeof jobs[k].state, "%s", cli_json_str(job, "state", "?"));
        snprintf(jobs[k].reason, sizeof jobs[k].reason, "%s", cli_json_str(job, "reason", ""));
        jobs[k].exit_code = cli_json_int(job, "exit_code", -1);
        jobs[k].ntasks = (long)cli_json_int(job, "ntasks", 0);
        jobs[k].nended = (long)cli_json_int(job, "done", 0);
        jobs[k].ndocs = cli_json_int(job, "ndocs", 0);
        jobs[k].docs_done = cli_json_int(job, "docs_done", 0);
        if (jobs[k].docs_at_start < 0)
            jobs[k].docs_at_start = jobs[k].docs_done;
        int st = job_state_parse(jobs[k].state);
        jobs[k].done = st >= 0 && job_state_is_terminal((enum job_state)st);
        proto_msg_clear(&msg);
    }
    return CLI_OK;
}

int cli_wait_run(struct cli *cli, int argc, char **argv)
{
    enum { OPT_TIMEOUT = 1, OPT_PROGRESS };
    static const struct option longopts[] = {
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"progress", required_argument, NULL, OPT_PROGRESS},
        CLI_COMMON_OPTS,
    };
    bool first = true;
    double limit = 0, every = 0; /* --progress: a line each `every` s */
    int c;
    while ((c = cli_getopt(cli, argc, argv, "", longopts, wait_help, &first)) != -1) {
        if (c == CLI_OPT_HELP)
            return CLI_OK;
        if (c == '?')
            return CLI_USAGE;
        if (c == OPT_TIMEOUT) {
            struct err err = {0};
            if (units_duration_parse(optarg, &limit, &err) != 0)
                return cli_fail(cli, CLI_USAGE, "--timeout: %s", err.msg);
            if (!(limit > 0))
                return cli_fail(cli, CLI_USAGE, "--timeout: '%s': must be more than 0 s", optarg);
        }
        if (c == OPT_PROGRESS) {
            struct err err = {0};
            if (units_duration_parse(optarg, &every, &err) != 0)
                return cli_fail(cli, CLI_USAGE, "--progress: %s", err.msg);
            if (!(every >= 0.1))
                return cli_fail(cli, CLI_USAGE, "--progress: '%s': at least 0.1 s", optarg);
        }
    }
    int n = 0, rc = CLI_OK;
    for (int i = optind; i < argc; i++)
        for (const char *p = argv[i]; p; p = strchr(p + 1, ','))
            n++;
    if (n == 0)
        return cli_usage_error(cli, "missing JOB");
    struct wjob *jobs = calloc((size_t)n, sizeof *jobs);
    if (jobs == NULL)
        return cli_fail(cli, CLI_FAILED, "out of memory");
    n = 0; /* JOB or JOB_I, comma-separated or not */
    for (int i = optind; i < argc; i++)
        for (const char *p = argv[i]; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
            char item[48];
            size_t len = strcspn(p, ",");
            if (len >= sizeof item) {
                free(jobs);
                return cli_usage_error(cli, "'%.40s...': not a JOB or JOB_I", p);
            }
            snprintf(item, sizeof item, "%.*s", (int)len, p);
            if (cli_jobtask_parse(cli, item, &jobs[n].id, &jobs[n].index) != CLI_OK) {
                free(jobs);
                return CLI_USAGE;
            }
            jobs[n].docs_at_start = -1;
            snprintf(jobs[n].state, sizeof jobs[n].state, "?");
            n++;
        }
    rc = cli_connect(cli);
    if (rc != CLI_OK)
        goto out;

    bool bar = isatty(STDERR_FILENO) && every == 0;
    double start = units_mono(), last_answer = start, interval = 0.05, last_line = start;
    bool timed_out = false;
    for (;;) {
        double now = units_mono();
        /* Per round, give up on replies after 1 s: lost requests (a controller
         * restart) are sent again next round. */
        double round = cli->timeout < 1.0 ? cli->timeout : 1.0;
        bool answered;
        rc = poll_round(cli, jobs, n, round, &answered);
        if (rc != CLI_OK)
            goto out;
        now = units_mono();
        if (answered)
            last_answer = now;
        int remaining = 0;
        for (int i = 0; i < n; i++)
            remaining += !jobs[i].done;
        if (bar)
            draw_bar(jobs, n, now - start, remaining == 0, false);
        if (every > 0 && (remaining == 0 || now - last_line >= every)) {
            draw_bar(jobs, n, now - start, remaining == 0, true);
            last_line = now;
        }
        if (remaining == 0)
            break;
        if (now - last_answer >= cli->timeout) {
            if (bar)
                fputc('\n', stderr);
            char buf[32], why[CLIENT_WHY_MAX];
            if (client_link_why(cli->client, why, sizeof why)) {
                rc = cli_fail(cli, CLI_UNREACHABLE, "%s", why);
                goto out;
            }
            rc = cli_fail(cli, CLI_UNREACHABLE, "cannot reach the controller at %s: no reply in %s",
                          client_endpoint(cli->client),
                          units_duration_format(cli->timeout, buf, sizeof buf));
            goto out;
        }
        if (limit > 0 && now - start >= limit) {
            timed_out = true;
            break;
        }
        double sleep_s = interval;
        if (limit > 0 && start + limit - now < sleep_s)
            sleep_s = start + limit - now;
        if (sleep_s > 0)
            usleep((useconds_t)(sleep_s * 1e6));
        interval = interval * 1.5 > 0.5 ? 0.5 : interval * 1.5;
    }
    if (bar && timed_out)
        fputc('\n', stderr);

    rc = CLI_OK;
    for (int i = 0; i < n; i++) {
        if (!jobs[i].done)
            continue;
        if (strcmp(jobs[i].state, "COMPLETED") != 0) {
            rc = CLI_FAILED;
            char code[40] = "", why[112] = "";
            if (jobs[i].exit_code >= 0 && strcmp(jobs[i].state, "FAILED") == 0)
                snprintf(code, sizeof code, " (exit code %lld)", jobs[i].exit_code);
            if (jobs[i].reason[0])
                snprintf(why, sizeof why, ": %s", jobs[i].reason);
            char nm[48];
            cli_fail(cli, rc, "job %s %s%s%s", wjob_name(&jobs[i], nm), jobs[i].state,
                     code, why);
        }
    }
    if (timed_out) {
        char buf[32], list[256] = "", nm[48];
        size_t len = 0;
        int shown = 0, left = 0;
        for (int i = 0; i < n; i++) {
            if (jobs[i].done)
                continue;
            left++;
            if (shown < 5 && len < sizeof list)
                len += (size_t)snprintf(list + len, sizeof list - len, "%sjob %s %s",
                                        shown ? ", " : "", wjob_name(&jobs[i], nm),
                                        jobs[i].state);
            shown++;
        }
        rc = cli_fail(cli, CLI_FAILED, "timed out after %s: %d job%s not ended: %s%s",
                      units_duration_format(limit, buf, sizeof buf), left, left == 1 ? "" : "s",
                      list, left > 5 ? ", ..." : "");
    }
    if (cli->json) {
        json_t *arr = json_array();
        for (int i = 0; i < n; i++) {
            json_t *o = json_pack("{s:I, s:s}", "id", (json_int_t)jobs[i].id, "state", jobs[i].state);
            if (jobs[i].index >= 0)
                json_object_set_new(o, "index", json_integer(jobs[i].index));
            if (jobs[i].done)
                json_object_set_new(o, "exit_code", json_integer(jobs[i].exit_code));
            else
                json_object_set_new(o, "exit_code", json_null());
            json_array_append_new(arr, o);
        }
        json_t *doc = json_pack("{s:o, s:b}", "jobs", arr, "timed_out", timed_out);
        if (cli->json_extra)
            json_object_update(doc, cli->json_extra);
        json_decref(cli->json_extra);
        cli->json_extra = NULL;
        cli_json_print(doc);
        json_decref(doc);
    }
out:
    free(jobs);
    return rc;
}
