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

/* What wrk_res_check found worth a warning: "" or one line each. */
struct wrk_res_warn {
    char cpus[160];
    char mem[160];
};

/* wrk_res_check: the configured cpus, mem and gpus against the machine.
 * gpus > 0 beyond what the worker can see is EINVAL naming the key and what
 * was detected: the CUDA runtime's count (krn_cuda_device_count) or the
 * /dev/nvidiaN device files (one per NVIDIA GPU), whichever is more, so a
 * --gpus job never lands where it cannot run. With visible (the worker's
 * CUDA_VISIBLE_DEVICES) set, wrk_bind_init checks gpus against the devices it
 * names instead. cpus beyond the online CPUs (sysconf(_SC_NPROCESSORS_ONLN))
 * or mem beyond physical memory (sysinfo(2)) fill warn: the worker runs, as
 * tests and oversubscribed nodes want, where Slurm would drain the node. */
int wrk_res_check(const struct wrk_cfg *cfg, const char *visible, struct wrk_res_warn *warn,
                  struct err *err);

#endif
