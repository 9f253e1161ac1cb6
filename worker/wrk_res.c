/* wrk_res.c: resource detection for registration. */
#include "worker/wrk_res.h"

#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "kernels/krn.h"

void wrk_res_detect(const struct wrk_cfg *cfg, struct wrk_res *res)
{
    memset(res, 0, sizeof *res);
    if (gethostname(res->host, sizeof res->host - 1) != 0)
        snprintf(res->host, sizeof res->host, "localhost");
    snprintf(res->name, sizeof res->name, "%.64s", cfg->name[0] ? cfg->name : res->host);
    for (char *c = res->name; *c; c++)
        if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *c) == NULL)
            *c = '-';
    /* the CPUs this worker may run on (taskset, a cpuset), else every online one */
    cpu_set_t aff;
    long n = sched_getaffinity(0, sizeof aff, &aff) == 0 ? CPU_COUNT(&aff) : 0;
    if (n <= 0)
        n = sysconf(_SC_NPROCESSORS_ONLN);
    res->cpus = cfg->cpus > 0 ? (int)cfg->cpus : (n > 0 ? (int)n : 1);
    struct sysinfo si;
    res->mem = cfg->mem ? cfg->mem
               : sysinfo(&si) == 0 ? (uint64_t)si.totalram * si.mem_unit : 0;
    res->gpus = cfg->gpus >= 0 ? (int)cfg->gpus : krn_cuda_device_count();
    snprintf(res->backend, sizeof res->backend, "%s", res->gpus > 0 ? "cuda" : "cpu");
}
