/* cli_submit.c: moat submit: options -> job spec (validated here, as the controller
 * will) -> SUBMIT -> the job id. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "shared/jobspec.h"
#include "shared/units.h"

static const char help[] =
    "usage: moat submit [OPTIONS] -- CMD [ARG...]\n"
    "       moat submit --infer MODEL --input FILE [--tp N] [--batch N] [--max-len N]\n"
    "                   [--input-format text|jsonl] [--on-bad-line fail|skip] [OPTIONS]\n"
    "       moat submit --bench OP --shape N,N,... [--dtype T] [--nodes all|LIST]\n"
    "                   [--repeat N] [--backend auto|cpu|cuda] [--threads N] [OPTIONS]\n"
    "\n"
    "Submit an exec job: CMD runs on a worker with ARGs (no shell; use sh -c for\n"
    "pipes). Prints the job id (with --json: {\"id\": N}). The job is stored\n"
    "durably before the id is printed.\n"
    "Where it runs: not in this directory. Each task starts in an empty directory\n"
    "of its own on the worker, as the worker's exec_user (nobody by default),\n"
    "with a private /tmp and no network (exec_sandbox): give scripts and data as\n"
    "absolute paths that user can read on the node, and take results from stdout\n"
    "(moat result) or write them under such a path. Its environment:\n"
    "MOAT_JOB_ID, MOAT_TASK_INDEX, MOAT_ATTEMPT, MOAT_NODE, MOAT_JOB_NAME,\n"
    "MOAT_CPUS, and on a GPU node MOAT_GPUS and CUDA_VISIBLE_DEVICES: a task is\n"
    "pinned to --cpus CPUs of its own (the worker's cpu_bind) and sees only its\n"
    "--gpus devices.\n"
    "\n"
    "Options:\n"
    "  --name S            a name to recognise the job by (in queue and show)\n"
    "  --cpus N            CPUs per task (default 1)\n"
    "  --gpus N            GPUs per task (default 0)\n"
    "  --mem SIZE          memory per task: 512M, 4GiB, \"1.5 GB\", with a unit and at\n"
    "                      least 1 MiB (default: none);\n"
    "                      placement counts it, and an exec task whose processes\n"
    "                      hold more resident memory is killed (FAILED, reason)\n"
    "  --priority N        higher runs first, -1000000..1000000 (default 0)\n"
    "  --array A-B[%MAX]   one task per index A..B; {index} in CMD/ARGs is replaced\n"
    "                      by it; %MAX: at most MAX tasks run at once. Also\n"
    "                      lists and steps, as Slurm's: 1-3,7,10-20:5%2 (1, 2, 3,\n"
    "                      7, 10, 15, 20), e.g. to rerun the failed elements\n"
    "  --after JOB[,JOB]   start only after these jobs COMPLETED (if one ends\n"
    "                      otherwise, this job is CANCELLED without running)\n"
    "  --after-any JOB[,JOB]  start once these jobs ended, in any state (cleanup)\n"
    "  --after-notok JOB[,JOB]  start only if these jobs ended other than\n"
    "                      COMPLETED (alerts); if one COMPLETED, CANCELLED\n"
    "  --dependency SPEC   Slurm's form of the three: afterok:J[:J...],\n"
    "                      afterany:J[:J...], afternotok:J[:J...], comma-separated\n"
    "  --begin TIME        not before TIME: now+DUR (now+2h), HH:MM (the next such\n"
    "                      local time), YYYY-MM-DD[THH:MM[:SS]][Z], or as sbatch:\n"
    "                      tomorrow (or midnight), noon, fika (15:00), teatime (16:00)\n"
    "  --time-limit DUR    per task: 90s, 10m, 1h30m, 01:30:00 (a unit is needed:\n"
    "                      90 alone is refused); past it the task is killed and\n"
    "                      the job ends TIMEOUT\n"
    "  --retries N         a task that fails (exits non-zero, is killed, passes its\n"
    "                      time limit) runs again, up to N more times, 0..100\n"
    "                      (default 0); only the last attempt's output is kept\n"
    "  --env NAME=VALUE    set a variable in the tasks' environment (repeat for\n"
    "                      more; Slurm's --export NAME=VALUE); --env NAME passes\n"
    "                      NAME's value here; a sandboxed task has otherwise\n"
    "                      PATH, HOME, LANG, TMPDIR and MOAT_* only\n"
    "  --hold              submit held: nothing starts until 'moat release JOB'\n"
    "  --wait              then wait for the job to end, as 'moat wait' (sbatch\n"
    "                      --wait): exit 0 when it COMPLETED, 1 otherwise\n"
    "\n"
    "Infer jobs embed documents with an imported model (moat model import):\n"
    "  --infer MODEL       the model's name\n"
    "  --input FILE        one document per line, or JSON Lines with \"text\" (and\n"
    "                      an optional \"id\") per line; - reads stdin; empty lines\n"
    "                      are skipped (each result keeps its \"line\" number); bad\n"
    "                      lines are reported as FILE:LINE and stop the submission,\n"
    "                      or are left out with --on-bad-line skip\n"
    "  --input-format F    text or jsonl; default: by the extension (.jsonl and\n"
    "                      .ndjson JSONL, .txt text), else JSONL when the first\n"
    "                      non-blank line starts with '{'\n"
    "  --tp N              tensor-parallel degree: each batch runs on N nodes\n"
    "                      (Megatron-style layer split; default 1)\n"
    "  --batch N           documents per task (default 64); tasks of one job run\n"
    "                      side by side on free nodes (data parallelism)\n"
    "  --max-len N         tokens per document after truncation (default 256)\n"
    "  --pooling mean      how token vectors become one per document: mean over\n"
    "                      the tokens under the attention mask, L2-normalised (the\n"
    "                      pooling all-MiniLM-L6-v2 was trained with; the only one)\n"
    "  --cpus N            CPUs per rank (default 1)\n"
    "  Results: moat result JOB --format npy --out emb.npy; moat search JOB QUERY\n"
    "\n"
    "Bench jobs time one kernel op on chosen nodes, one task per node; each task\n"
    "waits for its node to be idle and takes all of it while it runs:\n"
    "  --bench OP          gemm, attention, layernorm, gelu, softmax, add,\n"
    "                      embedding, mean_pool, l2norm (kernels/krn.h)\n"
    "  --shape N,N,...     the op's shape: gemm M,N,K[,BATCH]; attention\n"
    "                      B,T,H,D[,CAUSAL]; layernorm/softmax/l2norm ROWS,COLS;\n"
    "                      gelu/add N; embedding N,DIM; mean_pool B,T,D\n"
    "  --dtype T           f32 (default), bf16 or f16 (gemm and attention)\n"
    "  --nodes all|LIST    every node UP at submission (default), or names a,b,c\n"
    "  --repeat N          at most N timed runs after one warm-up, 1..1000\n"
    "                      (default 10; a series stops after ~4 s)\n"
    "  --backend B         auto (cuda on nodes with a GPU, else cpu), cpu or cuda\n"
    "  --threads N         cpu threads (default and most: the node's cpus)\n"
    "  Results: moat result JOB prints one JSON row per node (bench/kernels rows:\n"
    "  time_ms, gflops, pct_of_ref vs OpenBLAS or cuBLAS, pct_of_peak, valid)\n"
    "\n"
    "Examples:\n"
    "  moat submit -- python3 /srv/jobs/analyse.py --day 2024-05-01\n"
    "  moat submit --infer minilm --input docs.txt --tp 2 --cpus 1\n"
    "  moat submit --array 0-999%50 --cpus 2 -- /srv/jobs/score.sh /srv/data/shard-{index}.csv\n"
    "  moat submit --bench gemm --shape 4096,4096,4096 --dtype bf16 --nodes all\n"
    "  id=$(moat submit -- make -C /srv/reports) && moat submit --after $id -- /srv/jobs/publish.sh\n"
    "  moat submit --begin 22:00 --time-limit 4h --name nightly -- /srv/jobs/nightly.sh\n";

enum { OPT_NAME = 1, OPT_CPUS, OPT_GPUS, OPT_MEM, OPT_PRIORITY, OPT_ARRAY, OPT_AFTER, OPT_BEGIN,
       OPT_TIME_LIMIT, OPT_RETRIES, OPT_ENV, OPT_HOLD, OPT_WAIT, OPT_AFTER_ANY, OPT_AFTER_NOTOK, OPT_DEPENDENCY, OPT_INFER, OPT_INPUT, OPT_TP, OPT_BATCH, OPT_MAX_LEN, OPT_POOLING, OPT_INPUT_FORMAT, OPT_ON_BAD,
       OPT_BENCH, OPT_SHAPE, OPT_DTYPE, OPT_NODES, OPT_REPEAT, OPT_BACKEND, OPT_THREADS };

static const struct option longopts[] = {
    {"name", required_argument, NULL, OPT_NAME},
    {"cpus", required_argument, NULL, OPT_CPUS},
    {"gpus", required_argument, NULL, OPT_GPUS},
    {"mem", required_argument, NULL, OPT_MEM},
    {"priority", required_argument, NULL, OPT_PRIORITY},
    {"array", required_argument, NULL, OPT_ARRAY},
    {"after", required_argument, NULL, OPT_AFTER},
    {"after-any", required_argument, NULL, OPT_AFTER_ANY},
    {"after-notok", required_argument, NULL, OPT_AFTER_NOTOK},
    {"dependency", required_argument, NULL, OPT_DEPENDENCY},
    {"begin", required_argument, NULL, OPT_BEGIN},
    {"time-limit", required_argument, NULL, OPT_TIME_LIMIT},
    {"retries", required_argument, NULL, OPT_RETRIES},
    {"env", required_argument, NULL, OPT_ENV},
    {"hold", no_argument, NULL, OPT_HOLD},
    {"wait", no_argument, NULL, OPT_WAIT},
    {"infer", required_argument, NULL, OPT_INFER},
    {"input", required_argument, NULL, OPT_INPUT},
    {"tp", required_argument, NULL, OPT_TP},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"max-len", required_argument, NULL, OPT_MAX_LEN},
    {"pooling", required_argument, NULL, OPT_POOLING},
    {"input-format", required_argument, NULL, OPT_INPUT_FORMAT},
    {"on-bad-line", required_argument, NULL, OPT_ON_BAD},
    {"bench", required_argument, NULL, OPT_BENCH},
    {"shape", required_argument, NULL, OPT_SHAPE},
    {"dtype", required_argument, NULL, OPT_DTYPE},
    {"nodes", required_argument, NULL, OPT_NODES},
    {"repeat", required_argument, NULL, OPT_REPEAT},
    {"backend", required_argument, NULL, OPT_BACKEND},
    {"threads", required_argument, NULL, OPT_THREADS},
    CLI_COMMON_OPTS,
};

/* Bench options as given (validated by jobspec_from_json through the round trip). */
struct bench_opts {
    const char *op, *shape, *dtype, *nodes, *backend;
    long long repeat, threads;
    bool any; /* a bench-only option was given */
};

/* list_json: "a,b,c" -> a JSON array of strings, or of integers when ints. NULL
 * (with a message) for an empty item or a bad integer. */
static json_t *list_json(struct cli *cli, const char *opt, const char *text, bool ints)
{
    json_t *arr = json_array();
    const char *p = text;
    for (;;) {
        size_t len = strcspn(p, ",");
        if (len == 0) {
            json_decref(arr);
            cli_fail(cli, CLI_USAGE, "%s: '%s': an empty item in the comma-separated list", opt, text);
            return NULL;
        }
        if (len > 64) {
            json_decref(arr);
            cli_fail(cli, CLI_USAGE, "%s: '%.*s...': longer than 64 characters", opt, 24, p);
            return NULL;
        }
        char item[65];
        memcpy(item, p, len);
        item[len] = '\0';
        if (ints) {
            char *end;
            errno = 0;
            long long v = strtoll(item, &end, 10);
            if (*end != '\0' || end == item) {
                json_decref(arr);
                cli_fail(cli, CLI_USAGE, "%s: '%s' is not an integer", opt, item);
                return NULL;
            }
            if (errno == ERANGE) {
                json_decref(arr);
                cli_fail(cli, CLI_USAGE, "%s: '%s' is out of range", opt, item);
                return NULL;
            }
            json_array_append_new(arr, json_integer(v));
        } else {
            json_array_append_new(arr, json_string(item));
        }
        if (p[len] == '\0')
            return arr;
        p += len + 1;
    }
}

/* bench_spec: turn the validated common spec obj into a bench job's. CLI_OK or
 * CLI_USAGE (printed). */
static int bench_spec(struct cli *cli, json_t *obj, const struct bench_opts *b)
{
    if (b->shape == NULL)
        return cli_fail(cli, CLI_USAGE, "--bench needs --shape (e.g. --shape 4096,4096,4096)");
    json_t *shape = list_json(cli, "--shape", b->shape, true);
    if (shape == NULL)
        return CLI_USAGE;
    json_t *nodes = b->nodes == NULL || strcmp(b->nodes, "all") == 0
                        ? json_string("all") : list_json(cli, "--nodes", b->nodes, false);
    if (nodes == NULL) {
        json_decref(shape);
        return CLI_USAGE;
    }
    json_t *bench = json_pack("{s:s, s:o, s:s, s:I, s:s, s:I}", "op", b->op, "shape", shape, "dtype",
                              b->dtype ? b->dtype : "f32", "repeat", (json_int_t)b->repeat, "backend",
                              b->backend ? b->backend : "auto", "threads", (json_int_t)b->threads);
    json_object_del(obj, "argv");
    json_object_del(obj, "cpus");
    json_object_del(obj, "gpus");
    json_object_del(obj, "mem");
    json_object_set_new(obj, "kind", json_string("bench"));
    json_object_set_new(obj, "bench", bench);
    json_object_set_new(obj, "nodes", nodes);
    struct job_spec check;
    struct err err = {0};
    if (jobspec_from_json(&check, obj, &err) != 0)
        return cli_fail(cli, CLI_USAGE, "%s", err.msg);
    jobspec_clear(&check);
    return CLI_OK;
}

int cli_submit_run(struct cli *cli, int argc, char **argv)
{
    struct job_spec spec;
    memset(&spec, 0, sizeof spec);
    bool first = true;
    double now = units_now();
    int c, rc = CLI_OK;
    const char *model = NULL, *input = NULL;
    long long tp = 1, batch = 64, max_len = 256;
    bool skip_bad = false, wait = false;
    int input_format = -1; /* --input-format: 1 jsonl, 0 text, -1 by the file */
    struct bench_opts bo = {.repeat = 10};
    bool res_opt = false; /* --cpus, --gpus or --mem given */
    const char *infer_opt = NULL; /* an option only infer jobs take, as given */
    while ((c = cli_getopt(cli, argc, argv, "+", longopts, help, &first)) != -1) {
        if (c == CLI_OPT_HELP)
            goto out;
        if (c == '?') {
            rc = CLI_USAGE;
            goto out;
        }
        if (c >= OPT_BENCH && c <= OPT_THREADS) {
            bo.any |= c != OPT_BENCH;
            if (c == OPT_BENCH)
                bo.op = optarg;
            else if (c == OPT_SHAPE)
                bo.shape = optarg;
            else if (c == OPT_DTYPE)
                bo.dtype = optarg;
            else if (c == OPT_NODES)
                bo.nodes = optarg;
            else if (c == OPT_BACKEND)
                bo.backend = optarg;
            else if (c == OPT_REPEAT && cli_parse_int(cli, "--repeat", optarg, 1, 1000, &bo.repeat) != 0)
                rc = CLI_USAGE;
            else if (c == OPT_THREADS && cli_parse_int(cli, "--threads", optarg, 1, 1024, &bo.threads) != 0)
                rc = CLI_USAGE;
            if (rc != CLI_OK)
                goto out;
            continue;
        }
        if (c == OPT_WAIT) { /* not a spec field: what the CLI does after */
            wait = true;
            continue;
        }
        res_opt |= c == OPT_CPUS || c == OPT_GPUS || c == OPT_MEM;
        if (c >= OPT_INFER && c <= OPT_ON_BAD) {
            if (c > OPT_INPUT && infer_opt == NULL)
                infer_opt = argv[optind - 1][0] == '-' ? argv[optind - 1] : argv[optind - 2];
            if (c == OPT_INFER)
                model = optarg;
            else if (c == OPT_INPUT)
                input = optarg;
            else if (c == OPT_TP && cli_parse_int(cli, "--tp", optarg, 1, JOBSPEC_TP_MAX, &tp) != 0)
                rc = CLI_USAGE;
            else if (c == OPT_BATCH && cli_parse_int(cli, "--batch", optarg, 1, 65536, &batch) != 0)
                rc = CLI_USAGE;
            else if (c == OPT_MAX_LEN && cli_parse_int(cli, "--max-len", optarg, 2, 512, &max_len) != 0)
                rc = CLI_USAGE;
            else if (c == OPT_POOLING && strcmp(optarg, "mean") != 0)
                rc = cli_fail(cli, CLI_USAGE, "--pooling: '%s': only mean (the pooling the model "
                              "was trained with)", optarg);
            else if (c == OPT_INPUT_FORMAT) {
                if (strcmp(optarg, "text") != 0 && strcmp(optarg, "jsonl") != 0)
                    rc = cli_fail(cli, CLI_USAGE, "--input-format: '%s': expected text or jsonl", optarg);
                input_format = strcmp(optarg, "jsonl") == 0;
            } else if (c == OPT_ON_BAD) {
                if (strcmp(optarg, "skip") != 0 && strcmp(optarg, "fail") != 0)
                    rc = cli_fail(cli, CLI_USAGE, "--on-bad-line: '%s': expected skip or fail", optarg);
                skip_bad = strcmp(optarg, "skip") == 0;
            }
            if (rc != CLI_OK)
                goto out;
            continue;
        }
        const char *name = NULL;
        for (const struct option *o = longopts; o->name; o++)
            if (o->val == c)
                name = o->name;
        struct err err = {0};
        char *kv = NULL; /* --env NAME: NAME=its value here, as sbatch --export=NAME */
        if (c == OPT_ENV && strchr(optarg, '=') == NULL) {
            const char *v = getenv(optarg);
            if (v == NULL) {
                rc = cli_fail(cli, CLI_USAGE, "--env %.64s: not set in this environment (give "
                              "NAME=VALUE)", optarg);
                goto out;
            }
            if (asprintf(&kv, "%s=%s", optarg, v) < 0) {
                rc = cli_fail(cli, CLI_FAILED, "--env: out of memory");
                goto out;
            }
        }
        int orc = name ? client_spec_option(&spec, name, kv ? kv : optarg, now, &err) : -1;
        free(kv);
        if (orc != 0) {
            rc = cli_fail(cli, CLI_USAGE, "%s", name ? err.msg : "internal: unknown option");
            goto out;
        }
    }
    json_t *obj;
    struct err err = {0};
    if (bo.any && bo.op == NULL) {
        rc = cli_fail(cli, CLI_USAGE, "--shape, --dtype, --nodes, --repeat, --backend and --threads "
                                      "go with --bench");
        goto out;
    }
    if (infer_opt && !model) {
        rc = cli_fail(cli, CLI_USAGE, "%s goes with --infer", infer_opt);
        goto out;
    }
    if (bo.op) {
        if (model || input || optind < argc || spec.is_array || res_opt) {
            rc = cli_fail(cli, CLI_USAGE, "a bench job takes no command, --infer, --array, --cpus, "
                                          "--gpus or --mem (each task takes its whole node)");
            goto out;
        }
        char *dummy[] = {"true", NULL};
        if (client_spec_finish(&spec, 1, dummy, &obj, &err) != 0) {
            rc = cli_fail(cli, CLI_USAGE, "%s", err.msg);
            goto out;
        }
        if ((rc = bench_spec(cli, obj, &bo)) != CLI_OK) {
            json_decref(obj);
            goto out;
        }
    } else if (model || input) {
        if (!model || !input) {
            rc = cli_fail(cli, CLI_USAGE, "--infer and --input go together");
            goto out;
        }
        if (optind < argc || spec.is_array) {
            rc = cli_fail(cli, CLI_USAGE, "an infer job takes no command and no --array");
            goto out;
        }
        /* validate the common options through the exec path, then turn the spec into infer */
        char *dummy[] = {"true", NULL};
        if (client_spec_finish(&spec, 1, dummy, &obj, &err) != 0) {
            rc = cli_fail(cli, CLI_USAGE, "%s", err.msg);
            goto out;
        }
        json_object_del(obj, "argv");
        json_object_set_new(obj, "kind", json_string("infer"));
        json_object_set_new(obj, "model", json_string(model));
        json_object_set_new(obj, "tp", json_integer(tp));
        json_object_set_new(obj, "batch", json_integer(batch));
        json_object_set_new(obj, "max_len", json_integer(max_len));
        rc = cli_infer_submit(cli, obj, input, input_format, skip_bad, wait);
        goto out;
    } else if (client_spec_finish(&spec, argc - optind, argv + optind, &obj, &err) != 0) {
        rc = cli_fail(cli, CLI_USAGE, "%s", err.msg);
        goto out;
    }
    json_t *reply;
    rc = cli_request(cli, PROTO_TYPE_SUBMIT, json_pack("{s:o}", "spec", obj), true, &reply, NULL,
                     NULL);
    if (rc != CLI_OK)
        goto out;
    json_t *id = json_object_get(reply, "id");
    if (!json_is_integer(id))
        rc = cli_fail(cli, CLI_FAILED, "controller reply has no job id");
    else
        rc = cli_submitted(cli, (uint64_t)json_integer_value(id), wait);
    json_decref(reply);
out:
    jobspec_clear(&spec);
    return rc;
}
