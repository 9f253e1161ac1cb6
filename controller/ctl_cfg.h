/* ctl_cfg.h: the controller's configuration (conf/controller.conf documents every key). */
#ifndef MOAT_CTL_CFG_H
#define MOAT_CTL_CFG_H

#include <stdint.h>

#include "shared/cfg.h"

struct ctl_cfg {
    struct cfg_list listen;
    char state_dir[CFG_STR_MAX];
    char endpoint_file[CFG_STR_MAX];
    double heartbeat_interval;   /* s */
    int64_t heartbeat_tolerance; /* missed heartbeats */
    int64_t max_attempts;
    int64_t drain_after_launch_failures;
    uint64_t store_map_size, store_map_max; /* bytes */
    uint64_t max_message;        /* bytes */
    uint64_t output_cap;         /* bytes per stream */
    double kill_grace;           /* s */
    double inactive_age;         /* s a finished job stays in memory (ctl_purge.h) */
    int64_t max_tasks;           /* tasks of unfinished jobs, in all (ctl_quota.h) */
    int64_t max_tasks_per_key;   /* the same, per owner key */
    uint64_t upload_max;         /* bytes of one key's unfinished model uploads (ctl_model.h) */
    double documents_timeout;    /* s an infer job submitted in parts waits for its next DOCS */
    char log_level[CFG_STR_MAX];
    char egress_policy[CFG_STR_MAX];         /* a node with a route off the fabric: warn, refuse */
    struct cfg_list trust_roots;             /* Ed25519 public key files for artifacts */
    int allow_unsigned_artifacts;            /* bool: audited override */
    char curve_secret_key_file[CFG_STR_MAX]; /* the controller's CURVE secret key (Z85) */
    char allowlist_file[CFG_STR_MAX];        /* "ROLE KEY [NAME]" lines; "" for none */
    struct cfg_list allowlist;               /* the same lines inline */
};

/* ctl_cfg_load: defaults, then path (NULL: defaults only). Errors: "PATH:LINE: KEY: why". */
int ctl_cfg_load(const char *path, struct ctl_cfg *cfg, struct err *err);

#endif
