/* wrk_cfg.h: the worker's configuration (conf/worker.conf documents every key). */
#ifndef MOAT_WRK_CFG_H
#define MOAT_WRK_CFG_H

#include <stdint.h>

#include "shared/cfg.h"

struct wrk_cfg {
    char name[CFG_STR_MAX];
    char controller[CFG_STR_MAX];
    char state_dir[CFG_STR_MAX];
    int64_t cpus;        /* 0 = all this worker may run on */
    uint64_t mem;        /* bytes; 0 = physical memory */
    int64_t gpus;        /* -1 = detect */
    char cpu_bind[CFG_STR_MAX]; /* "cpus": each task pinned to CPUs of its own; "none" (wrk_bind.h) */
    double resend_interval, kill_grace; /* s */
    char comm_host[CFG_STR_MAX]; /* where this node's TP rank 0 listens */
    char comm_ports[CFG_STR_MAX]; /* "MIN-MAX" */
    int comm_port_min, comm_port_max; /* parsed from comm_ports */
    char log_level[CFG_STR_MAX];
    /* exec sandbox (wrk_sandbox.h) and egress posture (wrk_egress.h) */
    char exec_sandbox[CFG_STR_MAX];   /* "required" or "off" */
    char exec_user[CFG_STR_MAX];
    uint64_t exec_mem_limit;          /* bytes, RLIMIT_AS; 0 = mem */
    int64_t exec_max_procs, exec_max_files;
    double exec_cpu_limit;            /* s, RLIMIT_CPU; 0 = none */
    uint64_t exec_tmp_size;           /* bytes of the private /tmp */
    struct cfg_list fabric_subnets;   /* CIDR prefixes */
    char curve_secret_key_file[CFG_STR_MAX];      /* this worker's CURVE secret key (Z85) */
    char controller_public_key_file[CFG_STR_MAX]; /* the controller's CURVE public key */
};

/* wrk_cfg_load: defaults, then path. Errors: "PATH:LINE: KEY: why". */
int wrk_cfg_load(const char *path, struct wrk_cfg *cfg, struct err *err);

#endif
