/* wrk_cfg.c: the worker's key table; defaults mirrored in conf/worker.conf. */
#include "worker/wrk_cfg.h"

#include <errno.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>

#include "shared/log.h"

/* check_comm_ports: "MIN-MAX", 1 <= MIN <= MAX <= 65535. */
static int check_comm_ports(const void *field, char *why, size_t cap)
{
    const char *v = field;
    int lo, hi, used = 0;
    if (sscanf(v, "%d-%d%n", &lo, &hi, &used) != 2 || v[used] != '\0' || v[0] == '-') {
        snprintf(why, cap, "'%.40s': expected \"MIN-MAX\" within 1-65535", v);
        return -1;
    }
    if (lo < 1 || hi > 65535) {
        snprintf(why, cap, "'%.40s': ports are 1-65535", v);
        return -1;
    }
    if (lo > hi) {
        snprintf(why, cap, "'%.40s': MIN %d is greater than MAX %d", v, lo, hi);
        return -1;
    }
    return 0;
}

#define F(x) offsetof(struct wrk_cfg, x)
static const struct cfg_key keys[] = {
    {"name", CFG_STR, "", 0, 0, F(name), NULL},
    {"controller", CFG_STR, "tcp://127.0.0.1:7700", 0, 0, F(controller), cfg_check_connect},
    {"state_dir", CFG_STR, "/var/lib/moat/worker", 0, 0, F(state_dir), cfg_check_nonempty},
    {"cpus", CFG_INT, "0", 0, 1000000, F(cpus), NULL},
    {"mem", CFG_SIZE, "0", 0, 1.8e19, F(mem), NULL},
    {"gpus", CFG_INT, "-1", -1, 1024, F(gpus), NULL},
    {"cpu_bind", CFG_STR, "cpus", 0, 0, F(cpu_bind), NULL},
    {"resend_interval", CFG_DURATION, "1 s", 0.01, 3600, F(resend_interval), NULL},
    {"kill_grace", CFG_DURATION, "5 s", 0, 3600, F(kill_grace), NULL},
    {"comm_host", CFG_STR, "127.0.0.1", 0, 0, F(comm_host), NULL},
    {"comm_ports", CFG_STR, "29500-29999", 0, 0, F(comm_ports), check_comm_ports},
    {"log_level", CFG_STR, "info", 0, 0, F(log_level), NULL},
    {"exec_sandbox", CFG_STR, "required", 0, 0, F(exec_sandbox), NULL},
    {"exec_user", CFG_STR, "nobody", 0, 0, F(exec_user), NULL},
    {"exec_mem_limit", CFG_SIZE, "0", 0, 1.8e19, F(exec_mem_limit), NULL},
    {"exec_max_procs", CFG_INT, "4096", 1, 4194304, F(exec_max_procs), NULL},
    {"exec_max_files", CFG_INT, "4096", 16, 1048576, F(exec_max_files), NULL},
    {"exec_cpu_limit", CFG_DURATION, "0 s", 0, 31536000, F(exec_cpu_limit), NULL},
    {"exec_tmp_size", CFG_SIZE, "1 GiB", 1048576, 1.8e19, F(exec_tmp_size), NULL},
    {"fabric_subnets", CFG_STR_LIST, "127.0.0.0/8,::1/128", 0, 0, F(fabric_subnets), NULL},
    {"curve_secret_key_file", CFG_STR, "/etc/moat/worker.key", 0, 0, F(curve_secret_key_file), NULL},
    {"controller_public_key_file", CFG_STR, "/etc/moat/controller.pub", 0, 0, F(controller_public_key_file), NULL},
    {0},
};

int wrk_cfg_load(const char *path, struct wrk_cfg *cfg, struct err *err)
{
    memset(cfg, 0, sizeof *cfg);
    if ((path ? cfg_load(path, keys, cfg, err) : cfg_defaults(keys, cfg, err)) != 0)
        return -1;
    /* N.B. errors name the line that set the key, or the file (a default) */
    if (log_level_parse(cfg->log_level) < 0)
        return cfg_key_error(err, path, "log_level", "expected debug, info, warn or error");
    if (cfg->controller[0] == '\0')
        return cfg_key_error(err, path, "controller", "an endpoint is needed");
    if (strspn(cfg->name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
            strlen(cfg->name) || strlen(cfg->name) > 64)
        return cfg_key_error(err, path, "name", "use at most 64 letters, digits, '.', '_', '-'");
    int lo = 0, hi = 0; /* check_comm_ports has checked the text */
    if (sscanf(cfg->comm_ports, "%d-%d", &lo, &hi) != 2)
        return cfg_key_error(err, path, "comm_ports", "expected \"MIN-MAX\" within 1-65535");
    cfg->comm_port_min = lo;
    cfg->comm_port_max = hi;
    if (cfg->comm_host[0] == '\0' || strlen(cfg->comm_host) > 63)
        return cfg_key_error(err, path, "comm_host", "an address of this node on the fabric is needed");
    if (strcmp(cfg->cpu_bind, "cpus") != 0 && strcmp(cfg->cpu_bind, "none") != 0)
        return cfg_key_error(err, path, "cpu_bind", "expected \"cpus\" or \"none\"");
    if (strcmp(cfg->exec_sandbox, "required") != 0 && strcmp(cfg->exec_sandbox, "off") != 0)
        return cfg_key_error(err, path, "exec_sandbox", "expected \"required\" or \"off\"");
    if (cfg->exec_user[0] == '\0')
        return cfg_key_error(err, path, "exec_user", "a user name is needed");
    return 0;
}
