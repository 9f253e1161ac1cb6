/* wrk_cfg.h: the worker's configuration (conf/worker.conf documents every key). */
#ifndef MOAT_WRK_CFG_H
#define MOAT_WRK_CFG_H

#include <stdint.h>

#include "shared/cfg.h"

struct wrk_cfg {
    char name[CFG_STR_MAX];
    char controller[CFG_STR_MAX];
    char state_dir[CFG_STR_MAX];
    int64_t cpus;        /* 0 = all online */
    uint64_t mem;        /* bytes; 0 = physical memory */
    int64_t gpus;        /* -1 = detect */
    double resend_interval, kill_grace; /* s */
    char comm_host[CFG_STR_MAX]; /* where this node's TP rank 0 listens */
    char comm_ports[CFG_STR_MAX]; /* "MIN-MAX" */
    int comm_port_min, comm_port_max; /* parsed from comm_ports */
    char log_level[CFG_STR_MAX];
};

/* wrk_cfg_load: defaults, then path. Errors: "PATH:LINE: KEY: why". */
int wrk_cfg_load(const char *path, struct wrk_cfg *cfg, struct err *err);

#endif
