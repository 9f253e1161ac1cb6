/* wrk_res.h: what this node offers: host name, cpus, memory, GPUs, backend. */
#ifndef MOAT_WRK_RES_H
#define MOAT_WRK_RES_H

#include <stdint.h>

#include "worker/wrk_cfg.h"

struct wrk_res {
    char host[256];
    char name[65];
    int cpus;            /* >= 1 */
    uint64_t mem;        /* bytes */
    int gpus;
    char backend[16];    /* "cuda" when gpus > 0, else "cpu" */
};

/* wrk_res_detect: fill *res from the configuration and the machine: cpus from
 * the worker's affinity mask (sched_getaffinity(2); else
 * sysconf(_SC_NPROCESSORS_ONLN)), memory from sysinfo(2), GPUs from the CUDA runtime
 * (krn_cuda_device_count; 0 in a build without CUDA). Never fails. */
void wrk_res_detect(const struct wrk_cfg *cfg, struct wrk_res *res);

#endif
