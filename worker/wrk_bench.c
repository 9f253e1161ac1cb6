/* wrk_bench.c: the bench task's process (see wrk_bench.h). */
#include "worker/wrk_bench.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/kernels/bench_cublas.h"
#include "kernels/krn.h"
#include "kernels/krn_bench.h"
#include "shared/jobspec.h"

struct bench_args {
    const char *node, *op, *backend;
    enum krn_dtype dtype;
    int64_t shape[JOBSPEC_SHAPE_MAX];
    int nshape, repeat, threads, cpus, gpus;
    int64_t mem; /* bytes the node registered (its whole memory); 0 = not told */
};

static int int_field(const json_t *o, const char *key, long long min, long long max, long long def,
                     int *out, struct err *err)
{
    const json_t *v = json_object_get(o, key);
    if (v == NULL) {
        *out = (int)def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return err_set(err, EINVAL, "%s: expected an integer in [%lld, %lld]", key, min, max);
    *out = (int)json_integer_value(v);
    return 0;
}

static int args_parse(const json_t *o, struct bench_args *a, struct err *err)
{
    static const char *const known[] = {"node", "op", "shape", "dtype", "repeat", "backend",
                                        "threads", "cpus", "gpus", "mem", NULL};
    if (!json_is_object(o))
        return err_set(err, EINVAL, "not a JSON object");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)o, key, v) {
        bool ok = false;
        for (const char *const *k = known; *k; k++)
            ok |= strcmp(key, *k) == 0;
        if (!ok)
            return err_set(err, EINVAL, "unknown key '%.40s'", key);
    }
    a->node = json_string_value(json_object_get(o, "node"));
    a->op = json_string_value(json_object_get(o, "op"));
    if (a->node == NULL)
        return err_set(err, EINVAL, "node: expected a string");
    if (a->op == NULL)
        return err_set(err, EINVAL, "op: expected a string");
    const json_t *sh = json_object_get(o, "shape");
    if (!json_is_array(sh) || json_array_size(sh) < 1 || json_array_size(sh) > JOBSPEC_SHAPE_MAX)
        return err_set(err, EINVAL, "shape: expected 1..%d integers", JOBSPEC_SHAPE_MAX);
    a->nshape = (int)json_array_size(sh);
    for (int i = 0; i < a->nshape; i++) {
        const json_t *e = json_array_get(sh, (size_t)i);
        if (!json_is_integer(e) || json_integer_value(e) < 0)
            return err_set(err, EINVAL, "shape[%d]: expected an integer >= 0", i);
        a->shape[i] = json_integer_value(e);
    }
    const json_t *dt = json_object_get(o, "dtype");
    if (dt && !json_is_string(dt))
        return err_set(err, EINVAL, "dtype: expected f32, bf16 or f16");
    if (krn_dtype_parse(dt ? json_string_value(dt) : "f32", &a->dtype, err) != 0)
        return err_prefix(err, "dtype");
    const json_t *be = json_object_get(o, "backend");
    a->backend = be ? json_string_value(be) : "auto";
    if (a->backend == NULL ||
        (strcmp(a->backend, "auto") && strcmp(a->backend, "cpu") && strcmp(a->backend, "cuda")))
        return err_set(err, EINVAL, "backend: expected auto, cpu or cuda");
    if (int_field(o, "repeat", 1, 1000, 10, &a->repeat, err) ||
        int_field(o, "threads", 0, 1024, 0, &a->threads, err) ||
        int_field(o, "cpus", 1, 1000000, 1, &a->cpus, err) ||
        int_field(o, "gpus", 0, 1024, 0, &a->gpus, err))
        return -1;
    const json_t *mem = json_object_get(o, "mem");
    if (mem && (!json_is_integer(mem) || json_integer_value(mem) < 0))
        return err_set(err, EINVAL, "mem: expected bytes >= 0");
    a->mem = mem ? json_integer_value(mem) : 0;
    return 0;
}

static double gib(uint64_t bytes)
{
    return (double)bytes / (1024.0 * 1024.0 * 1024.0);
}

/* fits: whether the case fits the memory there is: host memory (the node's, or
 * physical RAM when not told; cpu/ref backend buffers are host memory too),
 * and on cuda the device's free memory. Leaves 10% for everything else. */
static bool fits(const struct bench_args *a, krn_backend_t *be, const char *name)
{
    struct err e = {0};
    uint64_t host, dev;
    if (krn_bench_footprint(a->op, a->shape, a->nshape, a->dtype, &host, &dev, &e) != 0)
        return true; /* krn_bench_run reports the same error */
    struct krn_device_info info;
    bool cuda = strcmp(name, "cuda") == 0;
    if (krn_backend_info(be, &info, &e) != 0)
        return true;
    uint64_t host_have = a->mem > 0 ? (uint64_t)a->mem : cuda ? 0 : (uint64_t)info.mem_total;
    uint64_t host_need = host + (cuda ? 0 : dev);
    if (host_have > 0 && host_need > host_have / 10 * 9) {
        fprintf(stderr, "moat-bench: node %s: %s %s needs about %.1f GiB of host memory; the node "
                        "has %.1f GiB\n", a->node, a->op, krn_dtype_names[a->dtype], gib(host_need),
                gib(host_have));
        return false;
    }
    if (cuda && info.mem_free > 0 && dev > (uint64_t)info.mem_free / 10 * 9) {
        fprintf(stderr, "moat-bench: node %s: %s %s needs about %.1f GiB of GPU memory; %s has "
                        "%.1f GiB free\n", a->node, a->op, krn_dtype_names[a->dtype], gib(dev),
                info.name, gib((uint64_t)info.mem_free));
        return false;
    }
    return true;
}

/* host_bandwidth: for a memory-bound op on cpu, measure the host's bandwidth
 * (STREAM triad at the task's thread count, krn_bench_stream_triad) so that the
 * row carries a peak and % of it, as bench-kernels' rows do. Skipped, with a
 * line on stderr and a row whose peak is null, when the triad's three arrays
 * do not fit in 90% of the memory there is, or the measurement fails. */
static void host_bandwidth(const struct bench_args *a, krn_backend_t *be)
{
    struct err e = {0};
    struct krn_device_info info;
    if (strcmp(a->op, "gemm") == 0 || strcmp(a->op, "attention") == 0 ||
        krn_backend_info(be, &info, &e) != 0)
        return;
    uint64_t need = 3 * (uint64_t)krn_bench_stream_bytes();
    uint64_t have = a->mem > 0 ? (uint64_t)a->mem : (uint64_t)info.mem_total;
    double gbps = 0;
    if (have > 0 && need > have / 10 * 9)
        fprintf(stderr, "moat-bench: node %s: no peak for GB/s: the STREAM triad needs %.1f GiB, "
                        "the node has %.1f GiB\n", a->node, gib(need), gib(have));
    else if (krn_bench_stream_triad(info.multiprocessors, 0, 0, &gbps, &e) != 0)
        fprintf(stderr, "moat-bench: node %s: no peak for GB/s: %s\n", a->node, e.msg);
    else
        krn_bench_host_gbps_set(info.multiprocessors, gbps);
}

/* print_rows: rows (one object per line) to stdout, each with "node" first. */
static void print_rows(const char *rows, const char *node)
{
    json_t *name = json_string(node);
    char *quoted = name ? json_dumps(name, JSON_ENCODE_ANY) : NULL;
    json_decref(name);
    for (const char *p = rows; *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len > 2 && p[0] == '{' && quoted)
            printf("{\"node\":%s,%.*s\n", quoted, (int)(len - 1), p + 1);
        else if (len > 0)
            printf("%.*s\n", (int)len, p);
        p += len + (nl != NULL);
    }
    free(quoted);
    fflush(stdout);
}

int wrk_bench_main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "moat-bench: usage: moat-worker --run-bench JSON\n");
        return 2;
    }
    struct err err = {0};
    json_error_t je;
    json_t *o = json_loads(argv[1], JSON_REJECT_DUPLICATES, &je);
    if (o == NULL) {
        fprintf(stderr, "moat-bench: spec: %s\n", je.text);
        return 2;
    }
    struct bench_args a;
    if (args_parse(o, &a, &err) != 0) {
        fprintf(stderr, "moat-bench: spec: %s\n", err.msg);
        json_decref(o);
        return 2;
    }
    const char *name = a.backend;
    if (strcmp(name, "auto") == 0)
        name = a.gpus > 0 && krn_cuda_device_count() > 0 ? "cuda" : "cpu";
    int status = 1;
    krn_backend_t *be = NULL;
    if (strcmp(name, "cuda") == 0 && krn_cuda_device_count() == 0) {
        fprintf(stderr, "moat-bench: node %s: backend cuda: no CUDA device visible%s\n", a.node,
                a.gpus > 0 ? "" : " (and the node registered no GPU)");
        goto out;
    }
    int threads = a.threads ? a.threads : a.cpus;
    if (threads > a.cpus) {
        fprintf(stderr, "moat-bench: node %s: threads %d over the node's %d cpus; using %d\n", a.node,
                threads, a.cpus, a.cpus);
        threads = a.cpus;
    }
    be = krn_backend_create(name, strcmp(name, "cuda") == 0 ? 0 : threads, &err);
    if (be == NULL) {
        fprintf(stderr, "moat-bench: node %s: backend %s: %s\n", a.node, name, err.msg);
        goto out;
    }
    if (!fits(&a, be, name))
        goto out;
    if (strcmp(name, "cpu") == 0)
        host_bandwidth(&a, be);
    bench_cublas_install(be);
    char *rows = NULL;
    if (krn_bench_run(a.op, a.shape, a.nshape, a.dtype, a.repeat, be, &rows, &err) != 0) {
        fprintf(stderr, "moat-bench: node %s: %s %s on %s: %s\n", a.node, a.op,
                krn_dtype_names[a.dtype], name, err.msg);
    } else {
        print_rows(rows, a.node);
        status = strstr(rows, "\"valid\":false") ? 1 : 0;
        if (status != 0)
            fprintf(stderr, "moat-bench: node %s: a row failed validation (\"valid\":false)\n", a.node);
        free(rows);
    }
    bench_cublas_remove();
out:
    krn_backend_destroy(be);
    json_decref(o);
    return status;
}
