/* ctl_bench.c: bench jobs in the controller (see ctl_bench.h). */
#include "controller/ctl_bench.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int ctl_bench_expand(const struct ctl *ctl, struct job_spec *spec, struct err *err)
{
    if (spec->kind != JOB_KIND_BENCH)
        return 0;
    /* --backend cuda runs only where a GPU is: refused now, as a job that
     * could never start is, rather than FAILED on its node */
    bool cuda = strcmp(spec->bench_backend, "cuda") == 0;
    if (!spec->nodes_all) {
        for (int i = 0; i < spec->nnodes; i++) {
            int n = ctl_node_find(ctl, spec->nodes[i]);
            if (n < 0 || ctl->nodes[n].removed)
                return err_set(err, ENOENT, "nodes: unknown node '%s' (see moat nodes)", spec->nodes[i]);
            if (cuda && ctl->nodes[n].registered && ctl->nodes[n].gpus == 0)
                return err_set(err, EINVAL, "backend cuda: node '%s' has no GPU (--backend cpu, or "
                               "auto: cuda where there are GPUs)", spec->nodes[i]);
        }
        return 0;
    }
    const char **names = calloc((size_t)ctl->nnodes + 1, sizeof *names);
    if (names == NULL)
        return err_set(err, ENOMEM, "nodes: out of memory");
    int n = 0;
    for (int i = 0; i < ctl->nnodes; i++) {
        const struct ctl_node *nd = &ctl->nodes[i];
        if (nd->state == NODE_STATE_UP && nd->registered && (!cuda || nd->gpus > 0))
            names[n++] = nd->name;
    }
    int rc = 0;
    if (n == 0) {
        rc = err_set(err, EINVAL, cuda ? "nodes: all: no node UP has a GPU for backend cuda"
                                       : "nodes: all: no node is UP");
    } else if (n > JOBSPEC_NODES_MAX) {
        rc = err_set(err, EINVAL, "nodes: all: %d nodes are UP, more than the %d of one bench job; "
                     "list them in several jobs", n, JOBSPEC_NODES_MAX);
    } else {
        qsort(names, (size_t)n, sizeof *names, name_cmp);
        rc = jobspec_set_nodes(spec, names, n, err);
    }
    free(names);
    return rc;
}

int ctl_bench_node(const struct ctl *ctl, const struct ctl_job *job, uint32_t offset)
{
    if (job->spec.kind != JOB_KIND_BENCH || offset >= (uint32_t)job->spec.nnodes)
        return -1;
    return ctl_node_find(ctl, job->spec.nodes[offset]);
}

bool ctl_bench_node_free(const struct ctl_node *n)
{
    return n->state == NODE_STATE_UP && n->registered && !n->held && !n->reserved && n->running == 0;
}

json_t *ctl_bench_json(const struct job_spec *spec)
{
    json_t *shape = json_array();
    for (int i = 0; shape && i < spec->bench_nshape; i++)
        json_array_append_new(shape, json_integer((json_int_t)spec->bench_shape[i]));
    return json_pack("{s:s, s:o, s:s, s:i, s:s, s:i}", "op", spec->bench_op, "shape", shape,
                     "dtype", spec->bench_dtype, "repeat", spec->bench_repeat, "backend",
                     spec->bench_backend, "threads", spec->bench_threads);
}
