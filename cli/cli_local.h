/* cli_local.h: a local cluster's directory and daemons, shared by `moat local`
 * (cli_local.c) and its helpers (cli_daemon.c).
 *
 * DIR holds: endpoint (the controller's endpoint, picked once and kept),
 * controller.conf/.pid/.log and controller/ (its state), worker-I.conf/.pid/.log
 * and worker-I/ for I = 1..N, the CURVE key pairs controller.key/.pub,
 * client.key/.pub (the CLI's, an admin key) and worker-I.key/.pub, and allowlist
 * (the controller's allowlist_file: the client and worker keys). Optional DIR/controller.extra.conf,
 * DIR/worker.extra.conf (every worker) and DIR/worker-I.extra.conf hold extra
 * settings (keys from conf/NAME.conf) appended to the generated files; a key set
 * there replaces the generated one.
 * Single-threaded; no function here prints.
 */
#ifndef MOAT_CLI_LOCAL_H
#define MOAT_CLI_LOCAL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define LOCAL_WORKERS_MAX 256

struct cli_local {
    char dir[PATH_MAX];    /* absolute, at most PATH_MAX - 64 bytes */
    char bindir[PATH_MAX]; /* where moat, moat-controller and moat-worker are */
    char endpoint[256];    /* "" until picked */
};

/* cli_local_path: DIR/name+ext into buf ("" if it would not fit). */
void cli_local_path(const struct cli_local *l, char *buf, size_t cap, const char *name,
                    const char *ext);

/* cli_file_read_line: the first line of path, without its newline. -1 (errno) if unreadable. */
int cli_file_read_line(const char *path, char *buf, size_t cap);

/* cli_file_write: replace path with text atomically (temp file + rename). -1 (errno). */
int cli_file_write(const char *path, const char *text);

/* cli_file_slurp: the whole file as a string; caller frees with free(). NULL (errno). */
char *cli_file_slurp(const char *path);

/* cli_dir_create: mkdir -p. -1 (errno). */
int cli_dir_create(const char *path);

/* cli_daemon_controller_conf_write, cli_daemon_worker_conf_write: (re)write
 * DIR/controller.conf or DIR/worker-I.conf (node name local-I; cpus when > 0,
 * else the cpus the file already has, as an earlier up --cpus-per-worker wrote
 * it, so that a restart of one daemon keeps the cluster's sizes;
 * cpu_bind "none" when nworkers > 1, as the workers share the machine's CPUs)
 * from l->endpoint and the extra files. -1 with a message in err. */
int cli_daemon_controller_conf_write(const struct cli_local *l, char *err, size_t cap);
/* cli_daemon_extras_check: none of DIR's *.extra.conf files (the controller's,
 * every worker's, workers 1..nworkers' own) sets what local up must set
 * itself for the cluster to hold together (the controller's listen and
 * allowlist_file, the workers' name, controller and key files, and in the
 * file all workers share their state_dir); else -1 with "FILE:LINE: KEY:
 * ..." in err. Run before any daemon starts. */
int cli_daemon_extras_check(const struct cli_local *l, int nworkers, char *err, size_t cap);
int cli_daemon_worker_conf_write(const struct cli_local *l, int i, int nworkers, int cpus, char *err,
                                 size_t cap);

/* cli_daemon_keys_write: make the key pairs that DIR lacks (controller, client,
 * worker-1..nworkers) and rewrite DIR/allowlist from the public keys (client as
 * admin, each worker as worker). -1 with a message in err. */
int cli_daemon_keys_write(const struct cli_local *l, int nworkers, char *err, size_t cap);

/* cli_daemon_pid: pid of DIR's daemon name ("controller", "worker-2") when it runs, else 0. */
pid_t cli_daemon_pid(const struct cli_local *l, const char *name);

/* cli_daemon_start: fork, setsid, exec bindir/prog -c DIR/name.conf with stdout
 * and stderr appended to DIR/name.log; writes DIR/name.pid. The child stays this
 * process's child until it exits (reap it with waitpid). Returns the pid, or -1
 * with a message in err. */
pid_t cli_daemon_start(const struct cli_local *l, const char *prog, const char *name, char *err,
                       size_t cap);

/* cli_daemon_last_log_line: the last non-empty line of DIR/name.log ("" if none). */
void cli_daemon_last_log_line(const struct cli_local *l, const char *name, char *out, size_t cap);

/* cli_daemon_count_workers: the largest I such that DIR/worker-1..I.conf all exist. */
int cli_daemon_count_workers(const struct cli_local *l);

/* cli_local_free_port: a TCP port on 127.0.0.1 that nothing listens on now; -1 (errno). */
int cli_local_free_port(void);

/* cli_pid_alive: pid exists and is not a zombie (a zombie child of ours is reaped). */
bool cli_pid_alive(pid_t pid);

#endif
