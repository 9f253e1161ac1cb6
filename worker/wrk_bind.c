/* wrk_bind.c: the node's CPUs and GPUs, shared out to tasks (see wrk_bind.h). */
#include "worker/wrk_bind.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int wrk_bind_init(struct wrk_bind *b, int cpus, int gpus, bool pin_cpus, const cpu_set_t *affinity,
                  const char *visible, char *why, size_t why_cap, struct err *err)
{
    memset(b, 0, sizeof *b);
    if (why && why_cap)
        why[0] = '\0';
    if (cpus < 1 || gpus < 0)
        return err_set(err, EINVAL, "bind: %d cpus, %d gpus: need cpus >= 1, gpus >= 0", cpus, gpus);
    cpu_set_t own;
    if (affinity == NULL) {
        CPU_ZERO(&own);
        if (sched_getaffinity(0, sizeof own, &own) != 0)
            CPU_ZERO(&own); /* unknown: no pinning */
        affinity = &own;
    }
    int have = CPU_COUNT(affinity);
    b->ncpus = cpus;
    b->ngpus = gpus;
    b->cpu = calloc((size_t)cpus, sizeof *b->cpu);
    b->cpu_users = calloc((size_t)cpus, sizeof *b->cpu_users);
    b->gpu = calloc((size_t)gpus + 1, sizeof *b->gpu);
    b->gpu_users = calloc((size_t)gpus + 1, sizeof *b->gpu_users);
    if (b->cpu == NULL || b->cpu_users == NULL || b->gpu == NULL || b->gpu_users == NULL)
        goto oom;
    if (pin_cpus && have >= cpus) {
        b->pin = true;
        for (int c = 0, k = 0; c < CPU_SETSIZE && k < cpus; c++)
            if (CPU_ISSET(c, affinity))
                b->cpu[k++] = c;
    } else if (pin_cpus && why && why_cap) {
        snprintf(why, why_cap, "cpus = %d, but this worker may run on %d CPUs: tasks are not pinned "
                 "(cpu_bind)", cpus, have);
    }
    /* GPU names: the worker's own CUDA_VISIBLE_DEVICES entries, in order;
     * offering more than it names would give a task a device the worker was
     * not given, or one device to two tasks */
    const char *v = visible && visible[0] ? visible : NULL;
    if (v) {
        int named = 1;
        for (const char *c = v; *c; c++)
            named += *c == ',';
        if (gpus > named) {
            wrk_bind_free(b);
            return err_set(err, EINVAL, "gpus = %d, but CUDA_VISIBLE_DEVICES (\"%.64s\") names %d: "
                           "offer at most %d, or name more", gpus, v, named, named);
        }
    }
    for (int g = 0; g < gpus; g++) {
        char name[128];
        size_t len = 0;
        if (v) {
            len = strcspn(v, ",");
            if (len >= sizeof name)
                len = sizeof name - 1;
            memcpy(name, v, len);
            v += strcspn(v, ",");
            if (*v == ',')
                v++;
        }
        if (len == 0)
            len = (size_t)snprintf(name, sizeof name, "%d", g);
        name[len] = '\0';
        if ((b->gpu[g] = strdup(name)) == NULL)
            goto oom;
    }
    return 0;
oom:
    wrk_bind_free(b);
    return err_set(err, ENOMEM, "bind: out of memory");
}

void wrk_bind_free(struct wrk_bind *b)
{
    for (int g = 0; b->gpu && g < b->ngpus; g++)
        free(b->gpu[g]);
    free(b->gpu);
    free(b->gpu_users);
    free(b->cpu);
    free(b->cpu_users);
    memset(b, 0, sizeof *b);
}

/* pick: want of n items with users[]: free ones lowest first, then the least
 * used; out gets indices in ascending order, taken[] (n, zeroed) is scratch.
 * Returns whether any is shared. O(want * n): n <= 1024 CPUs or GPUs. */
static bool pick(int *users, int n, int want, int *out, unsigned char *taken)
{
    bool shared = false;
    for (int k = 0; k < want; k++) {
        int best = -1;
        for (int i = 0; i < n; i++)
            if (!taken[i] && (best < 0 || users[i] < users[best]))
                best = i;
        taken[best] = 1;
        shared |= users[best] > 0;
    }
    for (int i = 0, k = 0; i < n; i++) /* ascending, so the mask and the list read in order */
        if (taken[i]) {
            out[k++] = i;
            users[i]++;
        }
    return shared;
}

int wrk_bind_take(struct wrk_bind *b, int cpus, int gpus, struct wrk_slot *s, struct err *err)
{
    memset(s, 0, sizeof *s);
    int nc = b->pin ? (cpus < 1 ? 1 : cpus > b->ncpus ? b->ncpus : cpus) : 0;
    int ng = gpus < 0 ? 0 : gpus > b->ngpus ? b->ngpus : gpus;
    unsigned char *scratch = calloc((size_t)b->ncpus + (size_t)b->ngpus + 1, 1);
    if (scratch == NULL || (nc && (s->cpu = malloc((size_t)nc * sizeof *s->cpu)) == NULL) ||
        (ng && (s->gpu = malloc((size_t)ng * sizeof *s->gpu)) == NULL)) {
        free(scratch);
        free(s->cpu);
        memset(s, 0, sizeof *s);
        return err_set(err, ENOMEM, "bind: out of memory");
    }
    s->ncpus = nc;
    s->ngpus = ng;
    s->shared = pick(b->cpu_users, b->ncpus, nc, s->cpu, scratch);
    s->shared |= pick(b->gpu_users, b->ngpus, ng, s->gpu, scratch + b->ncpus);
    free(scratch);
    s->held = true;
    return 0;
}

void wrk_bind_give(struct wrk_bind *b, struct wrk_slot *s)
{
    if (!s->held)
        return;
    for (int k = 0; k < s->ncpus; k++)
        if (s->cpu[k] < b->ncpus && b->cpu_users[s->cpu[k]] > 0)
            b->cpu_users[s->cpu[k]]--;
    for (int k = 0; k < s->ngpus; k++)
        if (s->gpu[k] < b->ngpus && b->gpu_users[s->gpu[k]] > 0)
            b->gpu_users[s->gpu[k]]--;
    free(s->cpu);
    free(s->gpu);
    memset(s, 0, sizeof *s);
}

bool wrk_bind_cpuset(const struct wrk_bind *b, const struct wrk_slot *s, cpu_set_t *out)
{
    CPU_ZERO(out);
    if (!b->pin || s->ncpus == 0)
        return false;
    for (int k = 0; k < s->ncpus; k++)
        CPU_SET(b->cpu[s->cpu[k]], out);
    return true;
}

int wrk_bind_env(const struct wrk_bind *b, const struct wrk_slot *s, char **cuda, char **moat,
                 struct err *err)
{
    *cuda = *moat = NULL;
    if (b->ngpus == 0 && !b->hide_gpus)
        return 0;
    size_t len = 1;
    for (int k = 0; k < s->ngpus; k++)
        len += strlen(b->gpu[s->gpu[k]]) + 1;
    char *list = malloc(len);
    if (list == NULL)
        return err_set(err, ENOMEM, "bind: out of memory");
    char *p = list;
    *p = '\0';
    for (int k = 0; k < s->ngpus; k++)
        p += sprintf(p, "%s%s", k ? "," : "", b->gpu[s->gpu[k]]);
    if (asprintf(cuda, "CUDA_VISIBLE_DEVICES=%s", list) < 0)
        *cuda = NULL;
    if (asprintf(moat, "MOAT_GPUS=%s", list) < 0)
        *moat = NULL;
    free(list);
    if (*cuda == NULL || *moat == NULL) {
        free(*cuda);
        free(*moat);
        *cuda = *moat = NULL;
        return err_set(err, ENOMEM, "bind: out of memory");
    }
    return 0;
}
