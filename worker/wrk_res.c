/* wrk_res.c: resource detection for registration. */
#include "worker/wrk_res.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdbool.h>
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

/* nvidia_dev_count: the /dev/nvidiaN character devices (N a number; not
 * nvidiactl, nvidia-uvm): NVIDIA's driver makes one per GPU. */
static int nvidia_dev_count(void)
{
    DIR *d = opendir("/dev");
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        const char *s = de->d_name;
        if (strncmp(s, "nvidia", 6) != 0 || s[6] == '\0')
            continue;
        bool digits = true;
        for (const char *c = s + 6; *c; c++)
            digits = digits && isdigit((unsigned char)*c);
        n += digits;
    }
    if (d)
        closedir(d);
    return n;
}

int wrk_res_check(const struct wrk_cfg *cfg, const char *visible, struct wrk_res_warn *warn,
                  struct err *err)
{
    memset(warn, 0, sizeof *warn);
    if (cfg->gpus > 0 && (visible == NULL || visible[0] == '\0')) {
        int cuda = krn_cuda_device_count(), devs = nvidia_dev_count();
        int seen = cuda > devs ? cuda : devs;
        if (cfg->gpus > seen)
            return err_set(err, EINVAL, "gpus = %lld, but this machine shows %d (CUDA runtime: %d "
                           "devices, none without a driver or in a build without CUDA; "
                           "/dev/nvidiaN: %d): offer at most %d, or -1 to detect",
                           (long long)cfg->gpus, seen, cuda, devs, seen);
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (cfg->cpus > 0 && online > 0 && cfg->cpus > online)
        snprintf(warn->cpus, sizeof warn->cpus, "cpus = %lld, but this machine has %ld online CPUs: "
                 "tasks will share them", (long long)cfg->cpus, online);
    struct sysinfo si;
    uint64_t phys = sysinfo(&si) == 0 ? (uint64_t)si.totalram * si.mem_unit : 0;
    if (cfg->mem > 0 && phys > 0 && cfg->mem > phys)
        snprintf(warn->mem, sizeof warn->mem, "mem = %llu bytes, but this machine has %llu bytes of "
                 "physical memory: tasks may be killed for want of it",
                 (unsigned long long)cfg->mem, (unsigned long long)phys);
    return 0;
}
