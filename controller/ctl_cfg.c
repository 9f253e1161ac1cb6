/* ctl_cfg.c: the controller's key table; defaults mirrored in conf/controller.conf. */
#include "controller/ctl_cfg.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "shared/keys.h"
#include "shared/log.h"

#define F(x) offsetof(struct ctl_cfg, x)
static const struct cfg_key keys[] = {
    {"listen", CFG_STR_LIST, "tcp://127.0.0.1:7700", 0, 0, F(listen), cfg_check_listen},
    {"state_dir", CFG_STR, "/var/lib/moat/controller", 0, 0, F(state_dir), cfg_check_nonempty},
    {"endpoint_file", CFG_STR, "", 0, 0, F(endpoint_file), NULL},
    {"heartbeat_interval", CFG_DURATION, "1 s", 0.01, 3600, F(heartbeat_interval), NULL},
    {"heartbeat_tolerance", CFG_INT, "3", 1, 1000, F(heartbeat_tolerance), NULL},
    {"max_attempts", CFG_INT, "3", 1, 1000, F(max_attempts), NULL},
    {"drain_after_launch_failures", CFG_INT, "3", 1, 1000000, F(drain_after_launch_failures), NULL},
    {"store_map_size", CFG_SIZE, "64 MiB", 1048576, 1.8e19, F(store_map_size), NULL},
    {"store_map_max", CFG_SIZE, "64 GiB", 1048576, 1.8e19, F(store_map_max), NULL},
    {"max_message", CFG_SIZE, "8 MiB", 65536, 1099511627776.0, F(max_message), NULL},
    {"output_cap", CFG_SIZE, "1 MiB", 0, 536870912, F(output_cap), NULL},
    {"kill_grace", CFG_DURATION, "5 s", 0, 3600, F(kill_grace), NULL},
    {"inactive_age", CFG_DURATION, "5 m", 0, 31536000, F(inactive_age), NULL},
    {"max_tasks", CFG_INT, "4000000", 1, 1000000000, F(max_tasks), NULL},
    {"max_tasks_per_key", CFG_INT, "1000000", 1, 1000000000, F(max_tasks_per_key), NULL},
    {"upload_max", CFG_SIZE, "16 GiB", 1048576, 1.8e19, F(upload_max), NULL},
    {"documents_timeout", CFG_DURATION, "10 m", 1, 604800, F(documents_timeout), NULL},
    {"log_level", CFG_STR, "info", 0, 0, F(log_level), NULL},
    {"egress_policy", CFG_STR, "warn", 0, 0, F(egress_policy), NULL},
    {"trust_roots", CFG_STR_LIST, "", 0, 0, F(trust_roots), NULL},
    {"allow_unsigned_artifacts", CFG_BOOL, "false", 0, 0, F(allow_unsigned_artifacts), NULL},
    {"curve_secret_key_file", CFG_STR, "/etc/moat/controller.key", 0, 0, F(curve_secret_key_file), NULL},
    {"allowlist_file", CFG_STR, "/etc/moat/allowlist", 0, 0, F(allowlist_file), NULL},
    {"allowlist", CFG_STR_LIST, "", 0, 0, F(allowlist), NULL},
    {0},
};

int ctl_cfg_load(const char *path, struct ctl_cfg *cfg, struct err *err)
{
    memset(cfg, 0, sizeof *cfg);
    if ((path ? cfg_load(path, keys, cfg, err) : cfg_defaults(keys, cfg, err)) != 0)
        return -1;
    /* N.B. errors name the line that set the key, or the file (a default) */
    if (log_level_parse(cfg->log_level) < 0)
        return cfg_key_error(err, path, "log_level", "expected debug, info, warn or error");
    if (strcmp(cfg->egress_policy, "warn") != 0 && strcmp(cfg->egress_policy, "refuse") != 0)
        return cfg_key_error(err, path, "egress_policy", "expected \"warn\" or \"refuse\"");
    if (cfg->listen.n == 0)
        return cfg_key_error(err, path, "listen", "at least one endpoint is needed");
    char tmp[4200];
    if (cfg->max_message < 2 * cfg->output_cap + 65536) {
        /* the one of the two the file sets is the one to change */
        bool cap_set = cfg_where(path, "output_cap", tmp, sizeof tmp) &&
                       !cfg_where(path, "max_message", tmp, sizeof tmp);
        return cap_set ? cfg_key_error(err, path, "output_cap", "2 x output_cap + 64 KiB must fit in "
                                       "max_message (%llu bytes): raise max_message too",
                                       (unsigned long long)cfg->max_message)
                       : cfg_key_error(err, path, "max_message", "must be at least 2 x output_cap + "
                                       "64 KiB (%llu bytes)",
                                       (unsigned long long)(2 * cfg->output_cap + 65536));
    }
    if (cfg->store_map_max < cfg->store_map_size) {
        bool size_set = cfg_where(path, "store_map_size", tmp, sizeof tmp) &&
                        !cfg_where(path, "store_map_max", tmp, sizeof tmp);
        return size_set ? cfg_key_error(err, path, "store_map_size", "larger than store_map_max (%llu "
                                        "bytes): raise store_map_max too",
                                        (unsigned long long)cfg->store_map_max)
                        : cfg_key_error(err, path, "store_map_max", "smaller than store_map_size");
    }
    if (cfg->curve_secret_key_file[0] == '\0')
        return cfg_key_error(err, path, "curve_secret_key_file", "a key is needed (every link uses "
                             "CURVE; make one with 'moat keygen')");
    for (int i = 0; i < cfg->allowlist.n; i++) {
        struct keys_entry ke;
        struct err e = {0};
        if (keys_line_parse(cfg->allowlist.items[i], &ke, &e) < 0)
            return cfg_key_error(err, path, "allowlist", "[%d]: %s", i, e.msg);
    }
    return 0;
}
