/* jobspec.c: validation and JSON form of job specs; state names. */
#include "shared/jobspec.h"
#include "shared/text.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const state_names[JOB_STATE_COUNT] = {"PENDING", "RUNNING", "COMPLETED",
                                                         "FAILED", "CANCELLED", "TIMEOUT"};
static const char *const kind_names[JOB_KIND_COUNT] = {"exec", "infer", "bench"};

const char *job_state_name(enum job_state s)
{
    return (unsigned)s < JOB_STATE_COUNT ? state_names[s] : "?";
}

int job_state_parse(const char *name)
{
    for (int i = 0; i < JOB_STATE_COUNT; i++)
        if (strcasecmp(name, state_names[i]) == 0)
            return i;
    return -1;
}

bool job_state_is_terminal(enum job_state s)
{
    return s == JOB_STATE_COMPLETED || s == JOB_STATE_FAILED || s == JOB_STATE_CANCELLED ||
           s == JOB_STATE_TIMEOUT;
}

const char *job_kind_name(enum job_kind k)
{
    return (unsigned)k < JOB_KIND_COUNT ? kind_names[k] : "?";
}

const char *jobspec_dep_key(enum jobspec_dep kind)
{
    static const char *const keys[JOBSPEC_DEP_COUNT] = {"after", "after_any", "after_notok"};
    return (unsigned)kind < JOBSPEC_DEP_COUNT ? keys[kind] : "after";
}

int jobspec_add_after(struct job_spec *spec, const uint64_t *ids, int n, enum jobspec_dep kind,
                      struct err *err)
{
    if (n <= 0)
        return 0;
    if (spec->nafter + n > JOBSPEC_AFTER_MAX)
        return err_set(err, EINVAL, "dependencies: more than %d jobs", JOBSPEC_AFTER_MAX);
    uint64_t *ids2 = realloc(spec->after, (size_t)(spec->nafter + n) * sizeof *ids2);
    if (ids2 == NULL)
        return err_set(err, ENOMEM, "dependencies: out of memory");
    spec->after = ids2;
    uint8_t *kinds = realloc(spec->after_kind, (size_t)(spec->nafter + n));
    if (kinds == NULL)
        return err_set(err, ENOMEM, "dependencies: out of memory");
    spec->after_kind = kinds;
    for (int i = 0; i < n; i++) {
        bool dup = false;
        for (int k = 0; k < spec->nafter && !dup; k++) {
            if (spec->after[k] != ids[i])
                continue;
            dup = spec->after_kind[k] == (uint8_t)kind; /* said twice: once is enough */
            if ((spec->after_kind[k] == JOBSPEC_DEP_OK && kind == JOBSPEC_DEP_NOTOK) ||
                (spec->after_kind[k] == JOBSPEC_DEP_NOTOK && kind == JOBSPEC_DEP_OK))
                return err_set(err, EINVAL, "dependency: job %llu is both afterok (--after) and "
                               "afternotok (--after-notok): this job could never run",
                               (unsigned long long)ids[i]);
        }
        if (dup)
            continue;
        spec->after[spec->nafter] = ids[i];
        spec->after_kind[spec->nafter] = (uint8_t)kind;
        spec->nafter++;
    }
    return 0;
}

int jobspec_add_env(struct job_spec *spec, const char *kv, struct err *err)
{
    size_t name_len = strcspn(kv, "=");
    if (kv[name_len] != '=' || name_len == 0 || name_len > 256 ||
        !(isalpha((unsigned char)kv[0]) || kv[0] == '_'))
        return err_set(err, EINVAL, "env '%.64s': expected NAME=VALUE, NAME a letter or '_' then "
                       "letters, digits, '_'", kv);
    for (size_t i = 1; i < name_len; i++)
        if (!isalnum((unsigned char)kv[i]) && kv[i] != '_')
            return err_set(err, EINVAL, "env '%.64s': NAME may hold letters, digits and '_' only", kv);
    if (strncmp(kv, "MOAT_", 5) == 0)
        return err_set(err, EINVAL, "env '%.64s': MOAT_* variables are set by moat", kv);
    if (strncmp(kv, "CUDA_VISIBLE_DEVICES=", 21) == 0)
        return err_set(err, EINVAL, "env '%.64s': set by moat from --gpus (a task sees its own "
                       "GPUs)", kv);
    if (strchr(kv, '\n') != NULL)
        return err_set(err, EINVAL, "env '%.64s': a newline in VALUE", kv);
    size_t bytes = strlen(kv) + 1;
    int same = -1;
    for (int i = 0; i < spec->nenv; i++) {
        if (strncmp(spec->env[i], kv, name_len + 1) == 0)
            same = i;
        else
            bytes += strlen(spec->env[i]) + 1;
    }
    if (same < 0 && spec->nenv >= JOBSPEC_ENV_MAX)
        return err_set(err, EINVAL, "env: more than %d variables", JOBSPEC_ENV_MAX);
    if (bytes > JOBSPEC_ENV_BYTES)
        return err_set(err, EINVAL, "env: more than %d bytes in all", JOBSPEC_ENV_BYTES);
    char *copy = strdup(kv);
    if (copy == NULL)
        return err_set(err, ENOMEM, "env: out of memory");
    if (same >= 0) {
        free(spec->env[same]);
        spec->env[same] = copy;
        return 0;
    }
    char **v = realloc(spec->env, (size_t)(spec->nenv + 1) * sizeof *v);
    if (v == NULL) {
        free(copy);
        return err_set(err, ENOMEM, "env: out of memory");
    }
    spec->env = v;
    spec->env[spec->nenv++] = copy;
    return 0;
}

void jobspec_clear(struct job_spec *spec)
{
    if (spec == NULL)
        return;
    for (int i = 0; i < spec->argc; i++)
        free(spec->argv[i]);
    free(spec->argv);
    free(spec->after);
    free(spec->after_kind);
    free(spec->array_ranges);
    for (int i = 0; i < spec->nenv; i++)
        free(spec->env[i]);
    free(spec->env);
    for (int i = 0; i < spec->nnodes; i++)
        free(spec->nodes[i]);
    free(spec->nodes);
    memset(spec, 0, sizeof *spec);
}

static uint32_t range_count(const struct jobspec_range *r)
{
    return (r->last - r->start) / r->step + 1;
}

uint32_t jobspec_index(const struct job_spec *spec, uint32_t off)
{
    if (!spec->is_array)
        return off;
    if (spec->array_ranges == NULL)
        return spec->array_start + off;
    for (int i = 0; i < spec->array_nranges; i++) {
        const struct jobspec_range *r = &spec->array_ranges[i];
        uint32_t n = range_count(r);
        if (off < n)
            return r->start + off * r->step;
        off -= n;
    }
    return spec->array_end; /* off out of range: the caller's bug */
}

long jobspec_offset(const struct job_spec *spec, uint32_t index)
{
    uint32_t n = jobspec_ntasks(spec);
    if (!spec->is_array)
        return index < n ? (long)index : -1;
    if (spec->array_ranges == NULL)
        return index >= spec->array_start && index <= spec->array_end
                   ? (long)(index - spec->array_start) : -1;
    uint32_t off = 0;
    for (int i = 0; i < spec->array_nranges; i++) {
        const struct jobspec_range *r = &spec->array_ranges[i];
        if (index < r->start)
            return -1;
        if (index <= r->last)
            return (index - r->start) % r->step ? -1 : (long)(off + (index - r->start) / r->step);
        off += range_count(r);
    }
    return -1;
}

uint32_t jobspec_offset_from(const struct job_spec *spec, uint64_t index)
{
    uint32_t n = jobspec_ntasks(spec);
    if (!spec->is_array)
        return index < n ? (uint32_t)index : n;
    if (spec->array_ranges == NULL)
        return index <= spec->array_start ? 0
               : index > spec->array_end ? n : (uint32_t)(index - spec->array_start);
    uint32_t off = 0;
    for (int i = 0; i < spec->array_nranges; i++) {
        const struct jobspec_range *r = &spec->array_ranges[i];
        if (index <= r->start)
            return off;
        if (index <= r->last) /* the first of this range at or after index */
            return off + (uint32_t)((index - r->start + r->step - 1) / r->step);
        off += range_count(r);
    }
    return n;
}

void jobspec_array_format(const struct job_spec *spec, char *buf, size_t cap)
{
    size_t len = 0;
    if (cap == 0)
        return;
    buf[0] = '\0';
    if (!spec->is_array)
        return;
    struct jobspec_range one = {spec->array_start, spec->array_end, 1};
    const struct jobspec_range *rs = spec->array_ranges ? spec->array_ranges : &one;
    int nr = spec->array_ranges ? spec->array_nranges : 1;
    for (int i = 0; i < nr && len < cap; i++) {
        const struct jobspec_range *r = &rs[i];
        int w = r->start == r->last ? snprintf(buf + len, cap - len, "%s%u", i ? "," : "", r->start)
                : r->step == 1 ? snprintf(buf + len, cap - len, "%s%u-%u", i ? "," : "", r->start, r->last)
                : snprintf(buf + len, cap - len, "%s%u-%u:%u", i ? "," : "", r->start, r->last, r->step);
        len += (size_t)(w > 0 ? w : 0);
    }
    if (spec->array_max && len < cap)
        snprintf(buf + len, cap - len, "%%%u", spec->array_max);
}

/* array_set: spec's array from n ranges (each last already a member), in any
 * order, read as a set as Slurm reads --array: sorted; repeats dropped; a
 * single index inside a stepped range's span but off its steps splits it
 * (1-10:3,2 -> 1-2,4-10:3); step-1 ranges that touch or overlap merge, and
 * so do adjacent single indices (3,4,5 -> 3-5). Sets this cannot write
 * (interleaving steps), or writes in more than JOBSPEC_ARRAY_RANGES_MAX
 * ranges, are listed index by index and cut into runs (expand_set). A single
 * step-1 range is kept as start..end alone. rs is scratch (reordered).
 * what names the source in errors ("--array '...'", "spec: array"). */
static int range_cmp(const void *a, const void *b)
{
    const struct jobspec_range *x = a, *y = b;
    if (x->start != y->start)
        return (x->start > y->start) - (x->start < y->start);
    return (x->last > y->last) - (x->last < y->last);
}

static bool range_has(const struct jobspec_range *r, uint32_t x)
{
    return x >= r->start && x <= r->last && (x - r->start) % r->step == 0;
}

static int u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* expand_set: the indices of rs[0..n) one by one, sorted, repeats dropped,
 * cut into runs of one step each (greedily, from the lowest): for the sets
 * array_set's merge cannot write (interleaving steps: 0-10:2,1-9:2 -> 0-10)
 * or writes in too many ranges (0,2,4,... given one by one). *out is new
 * (caller frees), *k its length. EINVAL past JOBSPEC_ARRAY_MAX elements. */
static int expand_set(const struct jobspec_range *rs, int n, struct jobspec_range **out, int *k,
                      const char *what, struct err *err)
{
    uint64_t sum = 0;
    for (int i = 0; i < n; i++)
        sum += range_count(&rs[i]);
    if (sum > 4ull * JOBSPEC_ARRAY_MAX) /* repeats aside, far too many */
        return err_set(err, EINVAL, "%s: more than %u elements", what, JOBSPEC_ARRAY_MAX);
    uint32_t *x = malloc((size_t)sum * sizeof *x);
    if (x == NULL)
        return err_set(err, ENOMEM, "%s: out of memory", what);
    size_t m = 0;
    for (int i = 0; i < n; i++)
        for (uint64_t v = rs[i].start; v <= rs[i].last; v += rs[i].step)
            x[m++] = (uint32_t)v;
    qsort(x, m, sizeof *x, u32_cmp);
    size_t u = 0;
    for (size_t i = 0; i < m; i++)
        if (u == 0 || x[i] != x[u - 1])
            x[u++] = x[i];
    if (u > JOBSPEC_ARRAY_MAX) {
        free(x);
        return err_set(err, EINVAL, "%s: more than %u elements", what, JOBSPEC_ARRAY_MAX);
    }
    struct jobspec_range *o = malloc(u * sizeof *o);
    if (o == NULL) {
        free(x);
        return err_set(err, ENOMEM, "%s: out of memory", what);
    }
    int runs = 0;
    for (size_t i = 0; i < u;) {
        size_t j = i;
        uint32_t step = i + 1 < u ? x[i + 1] - x[i] : 1;
        while (j + 1 < u && x[j + 1] - x[j] == step)
            j++;
        if (j == i + 1 && step != 1)
            j = i; /* two indices far apart: a single, the second starts the next run */
        o[runs++] = (struct jobspec_range){x[i], x[j], j > i ? step : 1};
        i = j + 1;
    }
    free(x);
    *out = o;
    *k = runs;
    return 0;
}

static int array_set(struct job_spec *spec, struct jobspec_range *rs, int n, uint32_t max,
                     const char *what, struct err *err)
{
    bool expanded = false;
    qsort(rs, (size_t)n, sizeof *rs, range_cmp);
    /* out: sorted and disjoint at every step; a single index adds at most 2
     * ranges (itself and a split-off part), so 3n is room enough */
    struct jobspec_range *out = malloc((size_t)n * 3 * sizeof *out);
    if (out == NULL)
        return err_set(err, ENOMEM, "%s: out of memory", what);
    int k = 0;
    /* 1: the ranges of more than one index, in order of their starts */
    for (int i = 0; i < n; i++) {
        struct jobspec_range r = rs[i];
        if (r.start == r.last)
            continue;
        struct jobspec_range *p = k ? &out[k - 1] : NULL;
        if (p == NULL || r.start > p->last) {
            out[k++] = r;
        } else if (p->step == 1 && r.step == 1) { /* overlapping runs */
            if (r.last > p->last)
                p->last = r.last;
        } else if (r.step % p->step == 0 && range_has(p, r.start) && r.last <= p->last) {
            continue; /* every index of r is one of p's */
        } else if (p->step % r.step == 0 && range_has(&r, p->start) && p->last <= r.last) {
            *p = r; /* every index of p is one of r's */
        } else { /* interleaving steps: written out index by index instead */
            free(out);
            if (expand_set(rs, n, &out, &k, what, err) != 0)
                return -1;
            expanded = true;
            break;
        }
    }
    /* 2: the single indices: dropped when a range has them, else put in
     * order, splitting a stepped range whose span they fall in */
    for (int i = 0; i < n && !expanded; i++) {
        if (rs[i].start != rs[i].last)
            continue;
        uint32_t x = rs[i].start;
        int lo = 0, hi = k; /* the first range whose last index is >= x */
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (out[mid].last < x)
                lo = mid + 1;
            else
                hi = mid;
        }
        int j = lo;
        if (j < k && out[j].start <= x) {
            struct jobspec_range *p = &out[j];
            if (range_has(p, x))
                continue;
            uint32_t below = p->start + (x - p->start) / p->step * p->step;
            struct jobspec_range up = {below + p->step, p->last, p->step};
            if (up.start == up.last)
                up.step = 1;
            p->last = below;
            if (p->last == p->start)
                p->step = 1;
            memmove(&out[j + 3], &out[j + 1], (size_t)(k - j - 1) * sizeof *out);
            out[j + 1] = (struct jobspec_range){x, x, 1};
            out[j + 2] = up;
            k += 2;
        } else {
            memmove(&out[j + 1], &out[j], (size_t)(k - j) * sizeof *out);
            out[j] = (struct jobspec_range){x, x, 1};
            k++;
        }
    }
    /* 3: neighbours that run on by one merge (3,4,5 -> 3-5) */
    int m = 0;
    for (int i = 0; i < k; i++) {
        if (m > 0 && out[m - 1].step == 1 && out[i].step == 1 && out[i].start == out[m - 1].last + 1)
            out[m - 1].last = out[i].last;
        else
            out[m++] = out[i];
    }
    k = m;
    if (k > JOBSPEC_ARRAY_RANGES_MAX && !expanded) { /* 0,2,4,... one by one: runs of a step */
        free(out);
        if (expand_set(rs, n, &out, &k, what, err) != 0)
            return -1;
    }
    uint64_t total = 0;
    for (int i = 0; i < k; i++)
        total += range_count(&out[i]);
    if (total > JOBSPEC_ARRAY_MAX || k > JOBSPEC_ARRAY_RANGES_MAX) {
        free(out);
        return total > JOBSPEC_ARRAY_MAX
                   ? err_set(err, EINVAL, "%s: more than %u elements", what, JOBSPEC_ARRAY_MAX)
                   : err_set(err, EINVAL, "%s: more than %d ranges once merged", what,
                             JOBSPEC_ARRAY_RANGES_MAX);
    }
    uint32_t first = out[0].start, last = out[k - 1].last;
    struct jobspec_range *keep = NULL;
    if (k > 1 || out[0].step != 1) {
        keep = realloc(out, (size_t)k * sizeof *keep); /* shrinking: fails only in theory */
        if (keep == NULL)
            keep = out;
    } else {
        free(out);
    }
    spec->is_array = true;
    spec->array_start = first;
    spec->array_end = last;
    free(spec->array_ranges);
    spec->array_ranges = keep;
    spec->array_nranges = keep ? k : 0;
    spec->array_max = max;
    return 0;
}

uint32_t jobspec_ntasks(const struct job_spec *spec)
{
    if (spec->kind == JOB_KIND_INFER)
        return spec->batch > 0 ? (spec->ndocs + (uint32_t)spec->batch - 1) / (uint32_t)spec->batch : 1;
    if (spec->kind == JOB_KIND_BENCH)
        return (uint32_t)spec->nnodes;
    if (!spec->is_array)
        return 1;
    if (spec->array_ranges == NULL)
        return spec->array_end - spec->array_start + 1;
    uint32_t n = 0;
    for (int i = 0; i < spec->array_nranges; i++)
        n += range_count(&spec->array_ranges[i]);
    return n;
}

static int get_int(const json_t *obj, const char *key, long long min, long long max, long long def,
                   long long *out, struct err *err)
{
    const json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v))
        return err_set(err, EINVAL, "spec: %s: expected an integer", key);
    long long i = json_integer_value(v);
    if (i < min || i > max)
        return err_set(err, EINVAL, "spec: %s: %lld out of range [%lld, %lld]", key, i, min, max);
    *out = i;
    return 0;
}

static int get_num(const json_t *obj, const char *key, double min, double max, double *out,
                   struct err *err)
{
    const json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        *out = 0;
        return 0;
    }
    if (!json_is_number(v))
        return err_set(err, EINVAL, "spec: %s: expected a number", key);
    double d = json_number_value(v);
    if (!isfinite(d) || d < min || d > max)
        return err_set(err, EINVAL, "spec: %s: %g out of range [%g, %g]", key, d, min, max);
    *out = d;
    return 0;
}

/* array_parse: jobspec_array_parse with rs room for every comma-separated item. */
static int array_parse(const char *text, struct jobspec_range *rs, struct job_spec *spec,
                       struct err *err)
{
    int n = 0;
    unsigned long max = 0;
    char what[96];
    snprintf(what, sizeof what, "--array '%.60s'", text);
    const char *p = text;
    for (;;) {
        char *end;
        if (!isdigit((unsigned char)*p))
            return err_set(err, EINVAL, "%s: expected A, A-B or A-B:STEP items, comma-separated, "
                           "then %%MAX", what);
        errno = 0;
        unsigned long a = strtoul(p, &end, 10), b = a, step = 1;
        p = end;
        if (*p == '-') {
            if (!isdigit((unsigned char)p[1]))
                return err_set(err, EINVAL, "%s: expected a number after '-'", what);
            b = strtoul(p + 1, &end, 10);
            p = end;
            if (*p == ':') {
                if (!isdigit((unsigned char)p[1]))
                    return err_set(err, EINVAL, "%s: expected a step after ':'", what);
                step = strtoul(p + 1, &end, 10);
                p = end;
                if (step == 0)
                    return err_set(err, EINVAL, "%s: a step must be at least 1", what);
            }
        }
        if (errno == ERANGE || a > 0xfffffffeUL || b > 0xfffffffeUL || step > 0xfffffffeUL)
            return err_set(err, EINVAL, "%s: an index is above %lu", what, 0xfffffffeUL);
        if (b < a)
            return err_set(err, EINVAL, "%s: end %lu is before start %lu", what, b, a);
        rs[n++] = (struct jobspec_range){(uint32_t)a, (uint32_t)(a + (b - a) / step * step),
                                         (uint32_t)step};
        if (*p != ',')
            break;
        p++;
    }
    if (*p == '%') {
        char *end;
        if (!isdigit((unsigned char)p[1]))
            return err_set(err, EINVAL, "%s: expected a number after %%", what);
        max = strtoul(p + 1, &end, 10);
        p = end;
        if (max == 0)
            return err_set(err, EINVAL, "%s: %%MAX must be at least 1", what);
        if (max > JOBSPEC_ARRAY_MAX)
            max = JOBSPEC_ARRAY_MAX;
    }
    if (*p != '\0')
        return err_set(err, EINVAL, "%s: unexpected '%c'", what, *p);
    return array_set(spec, rs, n, (uint32_t)max, what, err);
}

int jobspec_array_parse(const char *text, struct job_spec *spec, struct err *err)
{
    size_t items = 1;
    for (const char *c = text; *c; c++)
        items += *c == ',';
    if (items > JOBSPEC_ARRAY_ITEMS_MAX)
        return err_set(err, EINVAL, "--array: more than %d items", JOBSPEC_ARRAY_ITEMS_MAX);
    struct jobspec_range *rs = malloc(items * sizeof *rs);
    if (rs == NULL)
        return err_set(err, ENOMEM, "--array: out of memory");
    int rc = array_parse(text, rs, spec, err);
    free(rs);
    return rc;
}

static const char *const known_keys[] = {"kind", "name", "argv", "cpus", "gpus", "mem",
                                         "priority", "array", "after", "after_any", "after_notok",
                                         "begin", "time_limit", "retries", "env", "hold",
                                         "model", "ndocs", "tp", "batch", "max_len", "bench",
                                         "nodes", NULL};

/* The ops of kernels/krn.h with the length of their shape vectors. */
static const struct {
    const char *name;
    int min, max;
    const char *shape; /* as moat submit --help says it */
} bench_ops[] = {{"gemm", 3, 4, "M,N,K[,BATCH]"},  {"attention", 4, 5, "B,T,H,D[,CAUSAL]"},
                 {"layernorm", 2, 2, "ROWS,COLS"}, {"gelu", 1, 1, "N"},
                 {"softmax", 2, 2, "ROWS,COLS"},   {"add", 1, 1, "N"},
                 {"embedding", 2, 2, "N,DIM"},     {"mean_pool", 3, 3, "B,T,D"},
                 {"l2norm", 2, 2, "ROWS,COLS"}};

bool jobspec_bench_op_ok(const char *op, int nshape)
{
    for (size_t i = 0; i < sizeof bench_ops / sizeof bench_ops[0]; i++)
        if (strcmp(op, bench_ops[i].name) == 0)
            return nshape >= bench_ops[i].min && nshape <= bench_ops[i].max;
    return false;
}

/* bench_op_shape: the shape op takes ("M,N,K[,BATCH]"), NULL for no such op. */
static const char *bench_op_shape(const char *op)
{
    for (size_t i = 0; i < sizeof bench_ops / sizeof bench_ops[0]; i++)
        if (strcmp(op, bench_ops[i].name) == 0)
            return bench_ops[i].shape;
    return NULL;
}

static bool node_name_ok(const char *s, size_t len)
{
    return len >= 1 && len <= JOBSPEC_NODE_NAME_MAX && strlen(s) == len &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == len;
}

int jobspec_set_nodes(struct job_spec *spec, const char *const *names, int n, struct err *err)
{
    if (n < 1 || n > JOBSPEC_NODES_MAX)
        return err_set(err, EINVAL, "spec: nodes: %d nodes, expected 1..%d", n, JOBSPEC_NODES_MAX);
    char **v = calloc((size_t)n, sizeof *v);
    if (v == NULL)
        return err_set(err, ENOMEM, "spec: out of memory");
    for (int i = 0; i < n; i++) {
        if ((v[i] = strdup(names[i])) == NULL) {
            while (i-- > 0)
                free(v[i]);
            free(v);
            return err_set(err, ENOMEM, "spec: out of memory");
        }
    }
    for (int i = 0; i < spec->nnodes; i++)
        free(spec->nodes[i]);
    free(spec->nodes);
    spec->nodes = v;
    spec->nnodes = n;
    spec->nodes_all = false;
    return 0;
}

/* bench_fields: the fields of a bench job ({"bench": {...}, "nodes": ...}). */
static int bench_fields(struct job_spec *spec, const json_t *obj, struct err *err)
{
    static const char *const no[] = {"argv", "array", "cpus", "gpus", "mem", NULL};
    for (const char *const *f = no; *f; f++)
        if (json_object_get(obj, *f))
            return err_set(err, EINVAL, "spec: %s: not for bench jobs (a bench task takes its whole node)", *f);
    const json_t *b = json_object_get(obj, "bench"), *v;
    if (!json_is_object(b))
        return err_set(err, EINVAL, "spec: bench: expected {op, shape, dtype, repeat, backend, threads}");
    const char *key;
    json_object_foreach((json_t *)b, key, v) {
        static const char *const known[] = {"op", "shape", "dtype", "repeat", "backend", "threads", NULL};
        bool ok = false;
        for (const char *const *k = known; *k; k++)
            ok |= strcmp(key, *k) == 0;
        if (!ok)
            return err_set(err, EINVAL, "spec: bench: unknown field '%.40s'", key);
    }
    const json_t *op = json_object_get(b, "op"), *shape = json_object_get(b, "shape");
    if (!json_is_string(op) || json_string_length(op) >= sizeof spec->bench_op)
        return err_set(err, EINVAL, "spec: bench.op: expected an op name (gemm, attention, ...)");
    memcpy(spec->bench_op, json_string_value(op), json_string_length(op) + 1);
    if (!json_is_array(shape) || json_array_size(shape) < 1 || json_array_size(shape) > JOBSPEC_SHAPE_MAX)
        return err_set(err, EINVAL, "spec: bench.shape: expected 1..%d integers", JOBSPEC_SHAPE_MAX);
    spec->bench_nshape = (int)json_array_size(shape);
    if (!jobspec_bench_op_ok(spec->bench_op, spec->bench_nshape)) {
        const char *want = bench_op_shape(spec->bench_op);
        if (want)
            return err_set(err, EINVAL, "spec: bench.shape: %s takes %s, not %d value%s", spec->bench_op,
                           want, spec->bench_nshape, spec->bench_nshape == 1 ? "" : "s");
        return err_set(err, EINVAL, "spec: bench.op: '%s' is not a kernel op (gemm, attention, "
                       "layernorm, gelu, softmax, add, embedding, mean_pool, l2norm)", spec->bench_op);
    }
    for (int i = 0; i < spec->bench_nshape; i++) {
        const json_t *e = json_array_get(shape, (size_t)i);
        /* attention's causal flag may be 0; every size is at least 1 */
        long long min = strcmp(spec->bench_op, "attention") == 0 && i == 4 ? 0 : 1;
        long long max = min == 0 ? 1 : JOBSPEC_BENCH_DIM_MAX;
        if (!json_is_integer(e) || json_integer_value(e) < min || json_integer_value(e) > max)
            return err_set(err, EINVAL, "spec: bench.shape[%d]: expected an integer in [%lld, %lld]", i,
                           min, max);
        spec->bench_shape[i] = json_integer_value(e);
    }
    bool attention = strcmp(spec->bench_op, "attention") == 0;
    int64_t elems = 1; /* all sizes together must not overflow (the worker checks memory) */
    for (int i = 0; i < spec->bench_nshape && !(attention && i == 4); i++)
        if (__builtin_mul_overflow(elems, spec->bench_shape[i], &elems) || elems > ((int64_t)1 << 62))
            return err_set(err, EINVAL, "spec: bench.shape: the sizes multiply past 2^62");
    if (attention && spec->bench_shape[3] != 32 && spec->bench_shape[3] != 64 &&
        spec->bench_shape[3] != 128)
        return err_set(err, EINVAL, "spec: bench.shape[3]: attention head dim %lld (32, 64 or 128)",
                       (long long)spec->bench_shape[3]);
    const json_t *dt = json_object_get(b, "dtype");
    const char *d = dt ? json_string_value(dt) : "f32";
    if (d == NULL || (strcmp(d, "f32") && strcmp(d, "bf16") && strcmp(d, "f16")))
        return err_set(err, EINVAL, "spec: bench.dtype: expected f32, bf16 or f16");
    snprintf(spec->bench_dtype, sizeof spec->bench_dtype, "%s", d);
    if (strcmp(d, "f32") != 0 && !attention && strcmp(spec->bench_op, "gemm") != 0)
        return err_set(err, EINVAL, "spec: bench.dtype: %s only for gemm and attention (%s is f32)", d,
                       spec->bench_op);
    const json_t *be = json_object_get(b, "backend");
    const char *bn = be ? json_string_value(be) : "auto";
    if (bn == NULL || (strcmp(bn, "auto") && strcmp(bn, "cpu") && strcmp(bn, "cuda")))
        return err_set(err, EINVAL, "spec: bench.backend: expected auto, cpu or cuda");
    snprintf(spec->bench_backend, sizeof spec->bench_backend, "%s", bn);
    const json_t *rep = json_object_get(b, "repeat"), *thr = json_object_get(b, "threads");
    if (rep && (!json_is_integer(rep) || json_integer_value(rep) < 1 || json_integer_value(rep) > 1000))
        return err_set(err, EINVAL, "spec: bench.repeat: expected an integer in [1, 1000]");
    spec->bench_repeat = rep ? (int)json_integer_value(rep) : 10;
    if (thr && (!json_is_integer(thr) || json_integer_value(thr) < 0 || json_integer_value(thr) > 1024))
        return err_set(err, EINVAL, "spec: bench.threads: expected an integer in [0, 1024] (0: all the node's cpus)");
    spec->bench_threads = thr ? (int)json_integer_value(thr) : 0;

    const json_t *nodes = json_object_get(obj, "nodes");
    if (json_is_string(nodes) && strcmp(json_string_value(nodes), "all") == 0) {
        spec->nodes_all = true;
        return 0;
    }
    if (!json_is_array(nodes) || json_array_size(nodes) < 1 || json_array_size(nodes) > JOBSPEC_NODES_MAX)
        return err_set(err, EINVAL, "spec: nodes: expected \"all\" or 1..%d node names", JOBSPEC_NODES_MAX);
    size_t cnt = json_array_size(nodes);
    const char **names = calloc(cnt, sizeof *names);
    if (names == NULL)
        return err_set(err, ENOMEM, "spec: out of memory");
    for (size_t i = 0; i < cnt; i++) {
        const json_t *e = json_array_get(nodes, i);
        if (!json_is_string(e) || !node_name_ok(json_string_value(e), json_string_length(e))) {
            free(names);
            return err_set(err, EINVAL, "spec: nodes[%zu]: expected a node name (letters, digits, '.', '_', '-')", i);
        }
        names[i] = json_string_value(e);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(names[j], names[i]) == 0) {
                err_set(err, EINVAL, "spec: nodes: '%s' is listed twice", names[i]);
                free(names);
                return -1;
            }
        }
    }
    int rc = jobspec_set_nodes(spec, names, (int)cnt, err);
    free(names);
    return rc;
}

/* infer_fields: the fields of an infer job (no argv, no array). */
static int infer_fields(struct job_spec *spec, const json_t *obj, struct err *err)
{
    const json_t *model = json_object_get(obj, "model");
    if (!json_is_string(model) || json_string_length(model) == 0 || json_string_length(model) > 64)
        return err_set(err, EINVAL, "spec: model: expected the name of an imported model");
    memcpy(spec->model, json_string_value(model), json_string_length(model) + 1);
    if (json_object_get(obj, "argv") || json_object_get(obj, "array"))
        return err_set(err, EINVAL, "spec: an infer job takes no argv or array");
    long long v;
    if (get_int(obj, "ndocs", 1, JOBSPEC_DOCS_MAX, 0, &v, err)) return -1;
    if (v < 1)
        return err_set(err, EINVAL, "spec: ndocs: the input has no documents");
    spec->ndocs = (uint32_t)v;
    if (get_int(obj, "tp", 1, JOBSPEC_TP_MAX, 1, &v, err)) return -1;
    spec->tp = (int)v;
    if (get_int(obj, "batch", 1, 65536, 64, &v, err)) return -1;
    spec->batch = (int)v;
    if ((spec->ndocs + (uint64_t)spec->batch - 1) / (uint64_t)spec->batch > JOBSPEC_ARRAY_MAX)
        return err_set(err, EINVAL, "spec: ndocs %u in batches of %d: more than %u batches (a larger "
                       "batch, or several jobs)", spec->ndocs, spec->batch, JOBSPEC_ARRAY_MAX);
    if (get_int(obj, "max_len", 2, 512, 256, &v, err)) return -1;
    spec->max_len = (int)v;
    return 0;
}

static int from_json(struct job_spec *spec, const json_t *obj, struct err *err)
{
    if (!json_is_object(obj))
        return err_set(err, EINVAL, "spec: not a JSON object");
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val) {
        int ok = 0;
        for (int i = 0; known_keys[i]; i++)
            ok |= strcmp(key, known_keys[i]) == 0;
        if (!ok)
            return err_set(err, EINVAL, "spec: unknown field '%.40s'", key);
    }
    const json_t *kind = json_object_get(obj, "kind");
    if (!json_is_string(kind))
        return err_set(err, EINVAL, "spec: kind: expected \"exec\", \"infer\" or \"bench\"");
    int k = -1;
    for (int i = 0; i < JOB_KIND_COUNT; i++)
        if (strcmp(json_string_value(kind), kind_names[i]) == 0)
            k = i;
    if (k < 0)
        return err_set(err, EINVAL, "spec: kind: unknown kind '%.20s'", json_string_value(kind));
    spec->kind = (enum job_kind)k;
    if (k != JOB_KIND_INFER) {
        for (const char *const *f = (const char *const[]){"model", "ndocs", "tp", "batch", "max_len", NULL}; *f; f++)
            if (json_object_get(obj, *f))
                return err_set(err, EINVAL, "spec: %s: only for infer jobs", *f);
    }
    if (k != JOB_KIND_BENCH) {
        for (const char *const *f = (const char *const[]){"bench", "nodes", NULL}; *f; f++)
            if (json_object_get(obj, *f))
                return err_set(err, EINVAL, "spec: %s: only for bench jobs", *f);
    }

    const json_t *name = json_object_get(obj, "name");
    if (name) {
        if (!json_is_string(name) || json_string_length(name) > JOBSPEC_NAME_MAX)
            return err_set(err, EINVAL, "spec: name: expected a string of at most %d bytes",
                           JOBSPEC_NAME_MAX);
        const char *s = json_string_value(name);
        /* C1 blanked, not refused: this also reads the records of jobs
         * submitted before C1 was refused (the CLI refuses it up front) */
        if (text_has_c0(s, json_string_length(name)))
            return err_set(err, EINVAL, "spec: name: control characters are not allowed");
        memcpy(spec->name, s, json_string_length(name) + 1);
        text_blank_controls(spec->name);
    }

    if (k == JOB_KIND_INFER && infer_fields(spec, obj, err) != 0)
        return -1;
    if (k == JOB_KIND_BENCH && bench_fields(spec, obj, err) != 0)
        return -1;
    const json_t *argv = json_object_get(obj, "argv");
    if (k != JOB_KIND_EXEC)
        argv = NULL;
    else if (!json_is_array(argv) || json_array_size(argv) == 0)
        return err_set(err, EINVAL, "spec: argv: expected a non-empty array of strings");
    if (argv && json_array_size(argv) > JOBSPEC_ARGV_MAX)
        return err_set(err, EINVAL, "spec: argv: more than %d arguments", JOBSPEC_ARGV_MAX);
    size_t total = 0, i;
    json_t *a;
    json_array_foreach(argv, i, a) {
        if (!json_is_string(a))
            return err_set(err, EINVAL, "spec: argv[%zu]: expected a string", i);
        if (strlen(json_string_value(a)) != json_string_length(a))
            return err_set(err, EINVAL, "spec: argv[%zu]: contains a NUL byte", i);
        total += json_string_length(a) + 1;
    }
    if (total > JOBSPEC_ARGV_BYTES)
        return err_set(err, EINVAL, "spec: argv: more than %d bytes", JOBSPEC_ARGV_BYTES);
    if (argv && json_string_length(json_array_get(argv, 0)) == 0)
        return err_set(err, EINVAL, "spec: argv[0]: empty command");
    const json_t *hold = json_object_get(obj, "hold");
    if (hold && !json_is_boolean(hold))
        return err_set(err, EINVAL, "spec: hold: expected true or false");
    spec->hold = json_is_true(hold);
    const json_t *env = json_object_get(obj, "env");
    if (env && k != JOB_KIND_EXEC)
        return err_set(err, EINVAL, "spec: env: only exec jobs take env");
    if (env && (!json_is_array(env) || json_array_size(env) > JOBSPEC_ENV_MAX))
        return err_set(err, EINVAL, "spec: env: expected an array of at most %d \"NAME=VALUE\"",
                       JOBSPEC_ENV_MAX);
    json_array_foreach(env, i, a) {
        if (!json_is_string(a) || strlen(json_string_value(a)) != json_string_length(a))
            return err_set(err, EINVAL, "spec: env[%zu]: expected a string without NUL", i);
        if (jobspec_add_env(spec, json_string_value(a), err) != 0)
            return err_prefix(err, "spec");
    }

    long long v;
    if (get_int(obj, "cpus", 1, 1000000, 1, &v, err)) return -1;
    spec->cpus = k == JOB_KIND_BENCH ? 0 : (int)v; /* bench: the whole node, at dispatch */
    if (get_int(obj, "gpus", 0, 1024, 0, &v, err)) return -1;
    spec->gpus = (int)v;
    if (get_int(obj, "mem", 0, 9007199254740991LL, 0, &v, err)) return -1;
    spec->mem = (uint64_t)v;
    if (get_int(obj, "priority", -1000000, 1000000, 0, &v, err)) return -1;
    spec->priority = (int)v;
    if (get_num(obj, "begin", 0, 1e11, &spec->begin, err)) return -1;
    if (get_num(obj, "time_limit", 0, 1e9, &spec->time_limit, err)) return -1;
    if (get_int(obj, "retries", 0, 100, 0, &v, err)) return -1;
    spec->retries = (int)v;

    const json_t *arr = json_object_get(obj, "array");
    if (arr) {
        long long s, e, m;
        const json_t *ranges = json_is_object(arr) ? json_object_get(arr, "ranges") : NULL;
        if (!json_is_object(arr) || json_object_size(arr) > 3 + (ranges != NULL))
            return err_set(err, EINVAL, "spec: array: expected {start, end, max[, ranges]}");
        if (get_int(arr, "start", 0, 0xfffffffeLL, -1, &s, err) ||
            get_int(arr, "end", 0, 0xfffffffeLL, -1, &e, err) ||
            get_int(arr, "max", 0, JOBSPEC_ARRAY_MAX, 0, &m, err))
            return -1;
        if (s < 0 || e < 0)
            return err_set(err, EINVAL, "spec: array: start and end are required");
        if (e < s || (ranges == NULL && e - s + 1 > (long long)JOBSPEC_ARRAY_MAX))
            return err_set(err, EINVAL, "spec: array: bad range %lld-%lld", s, e);
        struct jobspec_range rs[JOBSPEC_ARRAY_RANGES_MAX];
        int n = 1;
        rs[0] = (struct jobspec_range){(uint32_t)s, (uint32_t)e, 1};
        if (ranges) {
            if (!json_is_array(ranges) || json_array_size(ranges) < 1 ||
                json_array_size(ranges) > JOBSPEC_ARRAY_RANGES_MAX)
                return err_set(err, EINVAL, "spec: array: ranges: expected 1 to %d [start, last, step]",
                               JOBSPEC_ARRAY_RANGES_MAX);
            n = 0;
            size_t k;
            const json_t *r;
            json_array_foreach(ranges, k, r) {
                json_int_t v[3];
                for (int j = 0; j < 3; j++) {
                    const json_t *x = json_array_get(r, (size_t)j);
                    v[j] = json_is_integer(x) ? json_integer_value(x) : -1;
                }
                if (!json_is_array(r) || json_array_size(r) != 3 || v[0] < 0 || v[0] > 0xfffffffeLL ||
                    v[1] < v[0] || v[1] > 0xfffffffeLL || v[2] < 1 || v[2] > 0xfffffffeLL ||
                    (v[1] - v[0]) % v[2] != 0)
                    return err_set(err, EINVAL, "spec: array: ranges[%zu]: expected [start, last, "
                                   "step], last = start + k * step", k);
                rs[n++] = (struct jobspec_range){(uint32_t)v[0], (uint32_t)v[1], (uint32_t)v[2]};
            }
        }
        if (array_set(spec, rs, n, (uint32_t)m, "spec: array", err) != 0)
            return -1;
        if (spec->array_start != (uint32_t)s || spec->array_end != (uint32_t)e)
            return err_set(err, EINVAL, "spec: array: start and end are not the ranges' first and last");
    }

    for (int kind = 0; kind < JOBSPEC_DEP_COUNT; kind++) {
        const char *key = jobspec_dep_key((enum jobspec_dep)kind);
        const json_t *after = json_object_get(obj, key);
        if (after == NULL)
            continue;
        if (!json_is_array(after) || json_array_size(after) > JOBSPEC_AFTER_MAX)
            return err_set(err, EINVAL, "spec: %s: expected an array of at most %d job ids", key,
                           JOBSPEC_AFTER_MAX);
        json_array_foreach(after, i, a) {
            if (!json_is_integer(a) || json_integer_value(a) < 1)
                return err_set(err, EINVAL, "spec: %s[%zu]: expected a job id", key, i);
            uint64_t id = (uint64_t)json_integer_value(a);
            if (jobspec_add_after(spec, &id, 1, (enum jobspec_dep)kind, err) != 0)
                return err_prefix(err, "spec");
        }
    }

    spec->argv = calloc(json_array_size(argv) + 1, sizeof *spec->argv);
    if (spec->argv == NULL)
        return err_set(err, ENOMEM, "spec: out of memory");
    json_array_foreach(argv, i, a) {
        spec->argv[i] = strdup(json_string_value(a));
        if (spec->argv[i] == NULL)
            return err_set(err, ENOMEM, "spec: out of memory");
        spec->argc++;
    }
    return 0;
}

int jobspec_from_json(struct job_spec *spec, const json_t *obj, struct err *err)
{
    memset(spec, 0, sizeof *spec);
    if (from_json(spec, obj, err) == 0)
        return 0;
    jobspec_clear(spec); /* whatever was allocated before the failure */
    return -1;
}

json_t *jobspec_to_json(const struct job_spec *spec)
{
    json_t *o = json_object(), *argv = json_array();
    if (o == NULL || argv == NULL) {
        json_decref(o);
        json_decref(argv);
        return NULL;
    }
    json_object_set_new(o, "kind", json_string(kind_names[spec->kind]));
    if (spec->name[0])
        json_object_set_new(o, "name", json_string(spec->name));
    for (int i = 0; i < spec->argc; i++)
        json_array_append_new(argv, json_string(spec->argv[i]));
    json_object_set_new(o, "argv", argv);
    json_object_set_new(o, "cpus", json_integer(spec->cpus));
    json_object_set_new(o, "gpus", json_integer(spec->gpus));
    json_object_set_new(o, "mem", json_integer((json_int_t)spec->mem));
    json_object_set_new(o, "priority", json_integer(spec->priority));
    if (spec->is_array) {
        json_t *a = json_pack("{s:I, s:I, s:I}", "start", (json_int_t)spec->array_start, "end",
                              (json_int_t)spec->array_end, "max", (json_int_t)spec->array_max);
        if (a && spec->array_ranges) {
            json_t *rs = json_array();
            for (int i = 0; i < spec->array_nranges; i++) {
                const struct jobspec_range *r = &spec->array_ranges[i];
                json_array_append_new(rs, json_pack("[I, I, I]", (json_int_t)r->start,
                                                    (json_int_t)r->last, (json_int_t)r->step));
            }
            json_object_set_new(a, "ranges", rs);
        }
        json_object_set_new(o, "array", a);
    }
    for (int kind = 0; kind < JOBSPEC_DEP_COUNT; kind++) {
        json_t *after = NULL;
        for (int i = 0; i < spec->nafter; i++) {
            if (spec->after_kind[i] != kind)
                continue;
            if (after == NULL)
                after = json_array();
            json_array_append_new(after, json_integer((json_int_t)spec->after[i]));
        }
        if (after)
            json_object_set_new(o, jobspec_dep_key((enum jobspec_dep)kind), after);
    }
    if (spec->begin > 0)
        json_object_set_new(o, "begin", json_real(spec->begin));
    if (spec->time_limit > 0)
        json_object_set_new(o, "time_limit", json_real(spec->time_limit));
    if (spec->retries > 0)
        json_object_set_new(o, "retries", json_integer(spec->retries));
    if (spec->hold)
        json_object_set_new(o, "hold", json_true());
    if (spec->nenv > 0) {
        json_t *env = json_array();
        for (int i = 0; i < spec->nenv; i++)
            json_array_append_new(env, json_string(spec->env[i]));
        json_object_set_new(o, "env", env);
    }
    if (spec->kind == JOB_KIND_INFER) {
        json_object_del(o, "argv");
        json_object_set_new(o, "model", json_string(spec->model));
        json_object_set_new(o, "ndocs", json_integer(spec->ndocs));
        json_object_set_new(o, "tp", json_integer(spec->tp));
        json_object_set_new(o, "batch", json_integer(spec->batch));
        json_object_set_new(o, "max_len", json_integer(spec->max_len));
    }
    if (spec->kind == JOB_KIND_BENCH) {
        json_object_del(o, "argv");
        json_object_del(o, "cpus");
        json_object_del(o, "gpus");
        json_object_del(o, "mem");
        json_t *shape = json_array(), *nodes = json_array();
        for (int i = 0; i < spec->bench_nshape; i++)
            json_array_append_new(shape, json_integer((json_int_t)spec->bench_shape[i]));
        json_object_set_new(o, "bench", json_pack("{s:s, s:o, s:s, s:i, s:s, s:i}", "op", spec->bench_op,
                                                  "shape", shape, "dtype", spec->bench_dtype, "repeat",
                                                  spec->bench_repeat, "backend", spec->bench_backend,
                                                  "threads", spec->bench_threads));
        for (int i = 0; i < spec->nnodes; i++)
            json_array_append_new(nodes, json_string(spec->nodes[i]));
        if (spec->nodes_all) {
            json_decref(nodes);
            nodes = json_string("all");
        }
        json_object_set_new(o, "nodes", nodes);
        if (json_object_get(o, "bench") == NULL) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}
