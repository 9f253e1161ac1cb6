/* cli_result.c: moat result: a job's task outputs (RESULT), as text, JSON lines or
 * exact bytes. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"

static const char help[] =
    "usage: moat result JOB [--task I] [--out FILE] [--format jsonl|raw|npy]\n"
    "                       [--partial] [--ids FILE]\n"
    "  (infer jobs: metadata, or the embeddings in input order: --format npy,\n"
    "  raw (little-endian f32 [N, dim], no header) or jsonl ({index, line, text,\n"
    "  id, embedding} per document; line: its line number in the input); --partial\n"
    "  exports those of a job not all of whose batches COMPLETED (failed, cancelled\n"
    "  or running): in npy and raw the other rows are NaN, in jsonl they are left\n"
    "  out; with --json and --out, {path, format, count, dim, dtype, missing};\n"
    "  --ids FILE with npy or raw: one JSON line per row, {index, line, id}, id\n"
    "  absent when the document had none, {index, missing: true} for a NaN row)\n"
    "\n"
    "Print what a job's tasks wrote, task after task in index order: their\n"
    "stdout to stdout, their stderr to stderr (jsonl and --json keep both apart).\n"
    "  --task I         only array element (task) I (also written JOB_I, as 17_3)\n"
    "  --out FILE       write to FILE instead of stdout\n"
    "  --format jsonl   one JSON object per task and line:\n"
    "                   {index, state, exit_code, stdout, stderr, truncated}\n"
    "  --format raw     stdout byte for byte (text output replaces bytes that are\n"
    "                   not UTF-8); with --task, that task only\n"
    "With --json: the controller's reply, {\"tasks\": [...]} (one task object with\n"
    "--task). Output is captured up to the controller's output_cap per stream;\n"
    "\"truncated\": true says some was dropped.\n"
    "\n"
    "Examples:\n"
    "  moat result 17\n"
    "  moat result 17 --task 3 --format raw --out part3.bin\n"
    "  moat result 18 --format npy --out emb.npy --ids emb.ids.jsonl\n"
    "  moat result 17 --format jsonl | jq -r 'select(.exit_code != 0) | .stderr'\n";

enum format { FMT_TEXT, FMT_JSONL, FMT_RAW, FMT_NPY };

static int index_cmp(const void *a, const void *b)
{
    long long x = cli_json_int(*(json_t *const *)a, "index", 0);
    long long y = cli_json_int(*(json_t *const *)b, "index", 0);
    return (x > y) - (x < y);
}

/* result_page: RESULT {id, tasks_from}: the page of task outputs from index from. */
static int result_page(struct cli *cli, void *ctx, long long from, json_t **reply)
{
    json_t *body = json_pack("{s:I, s:I}", "id", (json_int_t)*(const uint64_t *)ctx, "tasks_from",
                             (json_int_t)from);
    return cli_request(cli, PROTO_TYPE_RESULT, body, true, reply, NULL, NULL);
}

/* raw_task: RESULT {id, task, raw} -> the stdout blob written to out. */
/* task_note: a word on stderr when the task of reply (a RESULT of one task)
 * has not ended, so that an empty output is not taken for its whole output. */
static void task_note(uint64_t id, long long task, const json_t *reply)
{
    const char *state = cli_json_str(reply, "state", "");
    int st = job_state_parse(state);
    if (st >= 0 && !job_state_is_terminal((enum job_state)st))
        fprintf(stderr, "moat result: task %lld of job %llu is %s: no output until it ends\n", task,
                (unsigned long long)id, state);
}

static int raw_task(struct cli *cli, uint64_t id, long long task, FILE *out)
{
    json_t *reply;
    struct proto_msg msg;
    json_t *body = json_pack("{s:I, s:I, s:b}", "id", (json_int_t)id, "task", (json_int_t)task,
                             "raw", 1);
    int rc = cli_request(cli, PROTO_TYPE_RESULT, body, true, &reply, &msg, NULL);
    if (rc != CLI_OK)
        return rc;
    if (msg.nblobs >= 1 && msg.blobs[0].len > 0)
        fwrite(msg.blobs[0].data, 1, msg.blobs[0].len, out);
    task_note(id, task, reply);
    json_decref(reply);
    proto_msg_clear(&msg);
    return CLI_OK;
}

/* same_file: whether paths a and b name one file: the same inode when both
 * exist, else the same name in the same (resolved) directory. */
static bool same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    bool ea = stat(a, &sa) == 0, eb = stat(b, &sb) == 0;
    if (ea || eb)
        return ea && eb && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    char da[PATH_MAX], db[PATH_MAX], ra[PATH_MAX], rb[PATH_MAX];
    snprintf(da, sizeof da, "%s", a);
    snprintf(db, sizeof db, "%s", b);
    const char *na = strrchr(a, '/') ? strrchr(a, '/') + 1 : a;
    const char *nb = strrchr(b, '/') ? strrchr(b, '/') + 1 : b;
    char *sa_ = strrchr(da, '/'), *sb_ = strrchr(db, '/');
    if (sa_)
        *sa_ = '\0';
    if (sb_)
        *sb_ = '\0';
    if (realpath(sa_ ? (da[0] ? da : "/") : ".", ra) == NULL ||
        realpath(sb_ ? (db[0] ? db : "/") : ".", rb) == NULL)
        return strcmp(a, b) == 0;
    return strcmp(ra, rb) == 0 && strcmp(na, nb) == 0;
}

int cli_result_run(struct cli *cli, int argc, char **argv)
{
    enum { OPT_TASK = 1, OPT_OUT, OPT_FORMAT, OPT_PARTIAL, OPT_IDS };
    static const struct option longopts[] = {
        {"task", required_argument, NULL, OPT_TASK},
        {"partial", no_argument, NULL, OPT_PARTIAL},
        {"out", required_argument, NULL, OPT_OUT},
        {"ids", required_argument, NULL, OPT_IDS},
        {"format", required_argument, NULL, OPT_FORMAT},
        CLI_COMMON_OPTS,
    };
    bool first = true;
    int c;
    long long task = -1;
    bool partial = false; /* infer: export what is done */
    const char *outpath = NULL, *idspath = NULL;
    enum format fmt = FMT_TEXT;
    while ((c = cli_getopt(cli, argc, argv, "", longopts, help, &first)) != -1) {
        if (c == CLI_OPT_HELP)
            return CLI_OK;
        if (c == '?')
            return CLI_USAGE;
        if (c == OPT_TASK && cli_parse_int(cli, "--task", optarg, 0, 4294967295LL, &task) != 0)
            return CLI_USAGE;
        if (c == OPT_OUT)
            outpath = optarg;
        if (c == OPT_IDS)
            idspath = optarg;
        partial |= c == OPT_PARTIAL;
        if (c == OPT_FORMAT) {
            if (strcmp(optarg, "jsonl") == 0)
                fmt = FMT_JSONL;
            else if (strcmp(optarg, "raw") == 0)
                fmt = FMT_RAW;
            else if (strcmp(optarg, "npy") == 0)
                fmt = FMT_NPY;
            else
                return cli_fail(cli, CLI_USAGE, "--format: '%s': expected jsonl, raw or npy", optarg);
        }
    }
    if (idspath && fmt != FMT_NPY && fmt != FMT_RAW)
        return cli_fail(cli, CLI_USAGE, "--ids goes with --format npy or raw (jsonl has them in "
                        "each line)");
    if (idspath && outpath && same_file(idspath, outpath))
        return cli_fail(cli, CLI_USAGE, "--ids %s: the same file as --out %s", idspath, outpath);
    if (optind >= argc)
        return cli_usage_error(cli, "missing JOB");
    if (optind + 1 < argc)
        return cli_usage_error(cli, "unexpected argument '%s' (one job at a time)", argv[optind + 1]);
    uint64_t id;
    long long elem;
    if (cli_jobtask_parse(cli, argv[optind], &id, &elem) != CLI_OK)
        return CLI_USAGE;
    if (elem >= 0) { /* JOB_I, as sacct -j 17_3: --task I */
        if (task >= 0 && task != elem)
            return cli_fail(cli, CLI_USAGE, "%s and --task %lld name different tasks", argv[optind], task);
        task = elem;
    }

    struct cli_out o, oi = {.f = stdout};
    int rc = cli_out_open(cli, &o, "--out", outpath);
    if (rc == CLI_OK && idspath && (rc = cli_out_open(cli, &oi, "--ids", idspath)) != CLI_OK)
        cli_out_close(cli, &o, rc);
    if (rc != CLI_OK)
        return rc;
    FILE *out = o.f;
    json_t *reply = NULL, *summary = NULL;
    if (fmt == FMT_RAW && task >= 0 && !cli->json) {
        rc = raw_task(cli, id, task, out);
        goto done;
    }
    json_t *body = json_pack("{s:I}", "id", (json_int_t)id);
    if (task >= 0)
        json_object_set_new(body, "task", json_integer(task));
    rc = cli_request(cli, PROTO_TYPE_RESULT, body, true, &reply, NULL, NULL);
    if (rc != CLI_OK)
        goto done;
    if (strcmp(cli_json_str(reply, "kind", ""), "infer") == 0) {
        if (out == stdout) /* the output starts: a failure after it adds no --json error document */
            cli_stdout_claim();
        static const char *const names[] = {[FMT_TEXT] = NULL, [FMT_JSONL] = "jsonl",
                                            [FMT_RAW] = "raw", [FMT_NPY] = "npy"};
        rc = cli_infer_result(cli, id, reply, names[fmt], task, partial, out, outpath,
                              idspath ? oi.f : NULL, idspath, &summary);
        goto done;
    }
    if (fmt == FMT_NPY || partial || idspath) {
        rc = cli_fail(cli, CLI_USAGE, "%s: only for infer jobs",
                      partial ? "--partial" : idspath ? "--ids" : "--format npy");
        goto done;
    }
    if (out == stdout)
        cli_stdout_claim();
    if (cli->json) { /* pages streamed into one document (cli_paged_json) */
        struct cli_pages pg = {"tasks", "tasks_next", "rows", result_page, &id};
        rc = cli_paged_json(cli, reply, &pg, out);
        reply = NULL;
        goto done;
    }
    /* Not ended: what is there so far, and a word that more may come. */
    const char *state = cli_json_str(reply, "state", "");
    bool ended = state[0] == '\0' || task >= 0 || (job_state_parse(state) >= 0 &&
                                                     job_state_is_terminal(job_state_parse(state)));
    /* The task objects (one with --task) in index order, page by page. */
    long long cut = 0, first_cut = -1; /* tasks whose output was truncated */
    long long asked = -1;                /* the index the last page was asked from */
    for (;;) {
        json_t *tasks = json_object_get(reply, "tasks");
        if (task < 0 && !json_is_array(tasks)) {
            rc = cli_fail(cli, CLI_FAILED, "controller reply has no task list");
            goto done;
        }
        size_t n = task >= 0 ? 1 : json_array_size(tasks);
        json_t **v = calloc(n ? n : 1, sizeof *v);
        if (v == NULL) {
            rc = cli_fail(cli, CLI_FAILED, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < n; i++)
            v[i] = task >= 0 ? reply : json_array_get(tasks, i);
        qsort(v, n, sizeof *v, index_cmp); /* a page is in index order; be sure of it */
        for (size_t i = 0; i < n && rc == CLI_OK; i++) {
            if (json_is_true(json_object_get(v[i], "truncated")) && cut++ == 0)
                first_cut = cli_json_int(v[i], "index", 0);
            if (fmt == FMT_JSONL) {
                json_dumpf(v[i], out, JSON_COMPACT);
                fputc('\n', out);
            } else if (fmt == FMT_RAW) {
                rc = raw_task(cli, id, cli_json_int(v[i], "index", 0), out);
            } else { /* stdout to out, stderr to ours, as the task wrote them */
                const json_t *s = json_object_get(v[i], "stdout");
                const json_t *e = json_object_get(v[i], "stderr");
                if (json_is_string(s))
                    fwrite(json_string_value(s), 1, json_string_length(s), out);
                if (json_is_string(e) && json_string_length(e) > 0) {
                    fflush(out);
                    fwrite(json_string_value(e), 1, json_string_length(e), stderr);
                }
            }
        }
        free(v);
        const json_t *nx = json_object_get(reply, "tasks_next");
        if (rc != CLI_OK || task >= 0 || !json_is_integer(nx))
            break;
        long long from = json_integer_value(nx);
        json_decref(reply);
        reply = NULL;
        if ((rc = cli_next_check(cli, asked, from)) != CLI_OK ||
            (rc = result_page(cli, &id, asked = from, &reply)) != CLI_OK)
            break;
    }
    if (rc == CLI_OK && task >= 0)
        task_note(id, task, reply);
    if (rc == CLI_OK && !ended)
        fprintf(stderr, "moat result: job %llu is %s: the output of its ended tasks only\n",
                (unsigned long long)id, state);
    if (cut > 0 && fmt != FMT_JSONL) /* jsonl says so in each line */
        fprintf(stderr, "moat result: the output of %s%lld%s was cut at the controller's "
                "output_cap; the rest was not kept\n", cut == 1 ? "task " : "", cut == 1 ? first_cut : cut,
                cut == 1 ? "" : " tasks");
done:
    json_decref(reply);
    /* both written whole before either replaces its file: an old FILE is never
     * left beside new ids, nor new embeddings beside old ids */
    rc = cli_out_finish(cli, &o, cli_out_finish(cli, &oi, rc));
    rc = cli_out_close(cli, &oi, rc);
    rc = cli_out_close(cli, &o, rc);
    if (rc == CLI_OK && summary) /* once the file is in place */
        cli_json_print(summary);
    json_decref(summary);
    return rc;
}
