/* jobspec.h: a job's specification (what was submitted) and the job/task states.
 *
 * The spec travels as JSON inside SUBMIT, is validated once here by both the CLI
 * (to fail early) and the controller (to never persist a spec it could not load
 * again), and is stored verbatim in the job record. Every deadline is absolute
 * (Unix seconds), so a restart never resets it.
 * JSON shape (docs/protocol.md): {"kind":"exec", "name":S, "argv":[S...], "cpus":N,
 *   "gpus":N, "mem":BYTES, "priority":N, "array":{"start":A,"end":B,"max":M}
 *   (and "ranges":[[START,LAST,STEP]...] when the indices are not all of A..B),
 *   "after":[ID...], "begin":UNIX_S, "time_limit":SECONDS, "env":["NAME=VALUE"...],
 *   "hold":true};
 *   an infer job has no
 *   argv or array but {"model":S, "ndocs":N, "tp":N, "batch":N, "max_len":N}:
 *   one task per batch of documents, each run by a TP group of tp ranks, every
 *   rank on its own node with cpus/gpus/mem of its own. A bench job has no argv,
 *   array, cpus, gpus or mem but {"bench":{"op":S, "shape":[N...], "dtype":S,
 *   "repeat":N, "backend":"auto"|"cpu"|"cuda", "threads":N}, "nodes":[S...]|"all"}:
 *   one task per listed node, pinned to it, taking the whole node while it runs
 *   (a benchmark on a shared node measures its neighbours); "all" is replaced by
 *   the controller with the nodes UP at submission. Ops and shape vectors are
 *   those of kernels/krn.h (krn_op_flops).
 * Thread-safety: functions are reentrant; a spec has one owner.
 */
#ifndef MOAT_JOBSPEC_H
#define MOAT_JOBSPEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"

enum job_state {
    JOB_STATE_PENDING,
    JOB_STATE_RUNNING,
    JOB_STATE_COMPLETED,
    JOB_STATE_FAILED,
    JOB_STATE_CANCELLED,
    JOB_STATE_TIMEOUT,
    JOB_STATE_COUNT
};

enum job_kind { JOB_KIND_EXEC, JOB_KIND_INFER, JOB_KIND_BENCH, JOB_KIND_COUNT };

#define JOBSPEC_NAME_MAX 128
#define JOBSPEC_ARGV_MAX 4096
#define JOBSPEC_ARGV_BYTES 65536
#define JOBSPEC_AFTER_MAX 256

/* Dependency kinds, as Slurm's: afterok (the default: the job must COMPLETE),
 * afterany (it must end, in any state), afternotok (it must end other than
 * COMPLETED). JSON: "after", "after_any", "after_notok": arrays of job ids. */
enum jobspec_dep { JOBSPEC_DEP_OK, JOBSPEC_DEP_ANY, JOBSPEC_DEP_NOTOK, JOBSPEC_DEP_COUNT };

#define JOBSPEC_ARRAY_MAX 1000000u
#define JOBSPEC_ARRAY_RANGES_MAX 1024 /* ranges of a job's indices, once merged */
#define JOBSPEC_ARRAY_ITEMS_MAX 10000 /* comma-separated items of one --array */
#define JOBSPEC_ENV_MAX 128      /* --env variables of a job */
#define JOBSPEC_ENV_BYTES 32768  /* their "NAME=VALUE" strings in all */

/* One range of array indices: start, start + step, ... up to last (which is
 * one of them). */
struct jobspec_range {
    uint32_t start, last, step;
};
#define JOBSPEC_TP_MAX 16
#define JOBSPEC_DOC_MAX_BYTES (1u << 20) /* an infer document, in bytes of UTF-8 */
#define JOBSPEC_DOCS_MAX 100000000u
#define JOBSPEC_NODES_MAX 4096
#define JOBSPEC_NODE_NAME_MAX 64
#define JOBSPEC_SHAPE_MAX 5
#define JOBSPEC_BENCH_DIM_MAX (1LL << 34) /* per shape element */

struct job_spec {
    enum job_kind kind;
    char name[JOBSPEC_NAME_MAX + 1];
    char **argv;          /* argc strings, owned */
    int argc;
    int cpus;             /* >= 1 */
    int gpus;             /* >= 0 */
    uint64_t mem;         /* bytes; 0 = no requirement */
    int priority;         /* higher runs first; [-1000000, 1000000] */
    bool is_array;
    uint32_t array_start, array_end; /* first and last index; one task (index 0) when !is_array */
    uint32_t array_max;   /* at most this many tasks running at once; 0 = unlimited */
    struct jobspec_range *array_ranges; /* the indices when not all of start..end:
                                         * ascending, disjoint; owned; else NULL */
    int array_nranges;
    uint64_t *after;      /* nafter job ids this job waits for, owned */
    uint8_t *after_kind;  /* per after[i], enum jobspec_dep; owned (NULL when nafter is 0) */
    int nafter;
    double begin;         /* absolute Unix seconds; 0 = as soon as possible */
    double time_limit;    /* seconds per task; 0 = none */
    int retries;          /* exec: a task that FAILED or hit its time limit runs again up to
                           * this many times, 0..100 (JSON "retries"; default 0) */
    bool hold;            /* submitted held (--hold; JSON "hold"): the job starts held
                           * (ctl_job_hold) */
    char **env;           /* exec: nenv "NAME=VALUE" its tasks' environment adds (--env;
                           * JSON "env"), one per NAME; owned */
    int nenv;
    /* infer jobs */
    char model[65];       /* an imported model's name */
    uint32_t ndocs;       /* documents in the input, >= 1 */
    int tp;               /* tensor-parallel degree: ranks per task, 1..JOBSPEC_TP_MAX */
    int batch;            /* documents per task, 1..65536 */
    int max_len;          /* tokens per document after truncation, 2..512 */
    /* bench jobs */
    char bench_op[16];    /* a krn.h op name: "gemm", "attention", ... */
    int64_t bench_shape[JOBSPEC_SHAPE_MAX]; /* the op's shape vector (krn_op_flops) */
    int bench_nshape;
    char bench_dtype[8];  /* "f32", "bf16" or "f16" */
    int bench_repeat;     /* timed runs, 1..1000 (default 10) */
    char bench_backend[8]; /* "auto" (cuda on a node with GPUs, else cpu), "cpu", "cuda" */
    int bench_threads;    /* cpu backend threads, 0 = all of the node's cpus */
    bool nodes_all;       /* "nodes": "all", not yet expanded (nnodes == 0) */
    char **nodes;         /* nnodes node names, one task each (task i on nodes[i]), owned */
    int nnodes;
};

/* job_state_name: "PENDING" ...; job_state_parse: name (case-insensitive) -> state or -1. */
const char *job_state_name(enum job_state s);
int job_state_parse(const char *name);
/* job_state_is_terminal: COMPLETED, FAILED, CANCELLED or TIMEOUT. */
bool job_state_is_terminal(enum job_state s);
const char *job_kind_name(enum job_kind k);

/* jobspec_from_json: validate obj and fill *spec (zeroed first). EINVAL naming the
 * field ("spec: cpus: must be >= 1"). On success the caller frees with jobspec_clear(). */
int jobspec_from_json(struct job_spec *spec, const json_t *obj, struct err *err);

/* jobspec_to_json: new JSON object of spec (the shape above). Caller owns it; NULL on ENOMEM. */
json_t *jobspec_to_json(const struct job_spec *spec);

/* jobspec_ntasks: number of tasks (array elements, batches of an infer job, nodes
 * of a bench job, or 1). */
uint32_t jobspec_ntasks(const struct job_spec *spec);

/* jobspec_array_parse: Slurm's --array syntax -> fields of spec: comma-separated
 * items A, A-B or A-B:STEP, then optionally %MAX ("0-15:4,20,30-32%2"), read
 * as a set, as Slurm reads it: any order, repeats, overlaps and interleaving
 * steps allowed (merged: 0-10:2,1-9:2 is 0-10). Replaces spec's array
 * fields (freeing old ranges). EINVAL naming the item on bad syntax, B < A,
 * STEP 0, more than JOBSPEC_ARRAY_ITEMS_MAX items,
 * JOBSPEC_ARRAY_RANGES_MAX ranges once merged or JOBSPEC_ARRAY_MAX elements;
 * ENOMEM. */
int jobspec_array_parse(const char *text, struct job_spec *spec, struct err *err);

/* jobspec_add_env: set variable "NAME=VALUE" (kv) for spec's tasks, replacing an
 * earlier one of the same NAME. NAME: a letter or '_', then letters, digits,
 * '_' (POSIX's portable names); not MOAT_* nor CUDA_VISIBLE_DEVICES (moat
 * sets those: wrk_bind.h); no NUL or
 * newline in VALUE. EINVAL naming kv on a bad one or past JOBSPEC_ENV_MAX /
 * JOBSPEC_ENV_BYTES; ENOMEM. spec is unchanged on error. */
int jobspec_add_env(struct job_spec *spec, const char *kv, struct err *err);

/* jobspec_index: the array index of task offset off (0 <= off < ntasks); for a
 * job without an array (infer batches, bench nodes, a plain exec job) off. */
uint32_t jobspec_index(const struct job_spec *spec, uint32_t off);

/* jobspec_offset: the task offset of array index index, or -1 when it is not
 * one of the job's. jobspec_offset_from: the offset of the first task whose
 * index is >= index (ntasks when none): where a listing from index starts. */
long jobspec_offset(const struct job_spec *spec, uint32_t index);
uint32_t jobspec_offset_from(const struct job_spec *spec, uint64_t index);

/* jobspec_array_format: the array as --array took it ("0-15:4,20%2") into
 * buf; "" without an array. Cut to cap (NUL-terminated). */
void jobspec_array_format(const struct job_spec *spec, char *buf, size_t cap);

/* jobspec_bench_op_ok: op is a bench op and nshape fits it (krn.h's shape
 * vectors: gemm 3-4, attention 4-5, layernorm/softmax/embedding/l2norm 2,
 * gelu/add 1, mean_pool 3). tests/kernels/test_krn_api.c keeps this table
 * equal to krn_op_parse()'s. */
bool jobspec_bench_op_ok(const char *op, int nshape);

/* jobspec_set_nodes: replace spec's node list with a copy of names[0..n), clearing
 * nodes_all (the controller's expansion of "all"). EINVAL for n outside
 * [1, JOBSPEC_NODES_MAX], ENOMEM. */
int jobspec_set_nodes(struct job_spec *spec, const char *const *names, int n, struct err *err);

/* jobspec_dep_key: the JSON key of kind ("after", "after_any", "after_notok"). */
const char *jobspec_dep_key(enum jobspec_dep kind);
/* jobspec_add_after: append n job ids of kind to spec's dependencies; an id
 * already there with the same kind is not repeated. EINVAL past
 * JOBSPEC_AFTER_MAX in all, or for an id that would be both afterok and
 * afternotok (the job could never run); ENOMEM. */
int jobspec_add_after(struct job_spec *spec, const uint64_t *ids, int n, enum jobspec_dep kind,
                      struct err *err);

/* jobspec_clear: free argv, after and nodes; NULL is a no-op. */
void jobspec_clear(struct job_spec *spec);

#endif
