/* cli_local.c: moat local up/down/status: a controller and N workers on this
 * machine, on loopback, with every file under one directory (see cli_local.h
 * for its layout; cli_daemon.c for the files and processes).
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_local.h"
#include "shared/units.h"

#define LOCAL_UP_WAIT 30.0    /* seconds for the cluster to answer and its workers to be UP */
#define LOCAL_DOWN_GRACE 10.0 /* seconds between SIGTERM and SIGKILL */

static const char help[] =
    "usage: moat local up [--workers N] [--dir DIR] [--cpus-per-worker N]\n"
    "       moat local down [--dir DIR]\n"
    "       moat local status [--dir DIR]\n"
    "\n"
    "Run a moat cluster on this machine: one moat-controller and N moat-worker\n"
    "daemons (found next to this moat), listening on loopback only. Everything\n"
    "lives in DIR (default $MOAT_DIR, else ./.moat): config files, logs\n"
    "(controller.log, worker-I.log), pid files, state, and the file 'endpoint'\n"
    "that other moat commands read when DIR is $MOAT_DIR or ./.moat.\n"
    "\n"
    "  up      start whichever daemons of DIR are not running (so it is safe to\n"
    "          repeat, e.g. after a crash), then wait until the controller\n"
    "          answers and the N workers (local-1..local-N) are UP.\n"
    "          --workers N: default the number DIR already has, else 2; fewer\n"
    "          than it has shrinks it (stopped workers above N leave DIR).\n"
    "          --cpus-per-worker N: CPUs each worker offers (default: what DIR's\n"
    "          workers were given before, else all).\n"
    "          With --json: {\"dir\", \"endpoint\", \"controller_pid\", \"worker_pids\"}.\n"
    "  down    stop the daemons (SIGTERM, then SIGKILL after 10 s). State stays.\n"
    "  status  list the daemons, their pids and whether they run; exit 0 when\n"
    "          all run, 1 otherwise.\n"
    "\n"
    "To tune the daemons, put settings from conf/controller.conf or\n"
    "conf/worker.conf in DIR/controller.extra.conf, DIR/worker.extra.conf (all\n"
    "workers) or DIR/worker-I.extra.conf; they apply when a daemon next starts.\n"
    "What local up sets itself is refused there: the controller's listen and\n"
    "allowlist_file, the workers' name and controller, the key files, and\n"
    "state_dir in worker.extra.conf (each worker keeps its own).\n"
    "Model signing keys the controller trusts (its trust_roots, for moat model\n"
    "import): every DIR/trust/*.pub (from moat model keygen) when the controller\n"
    "starts; after adding one, moat local down && moat local up.\n"
    "\n"
    "Examples:\n"
    "  moat local up --workers 4 && moat nodes\n"
    "  moat local up --dir /tmp/c1 --workers 2; MOAT_DIR=/tmp/c1 moat queue\n"
    "  echo 'heartbeat_interval = \"200 ms\";' > .moat/controller.extra.conf\n"
    "  moat local down && moat local up\n";

/* ---- set-up ---- */

static int local_init(struct cli *cli, struct cli_local *l, const char *dir, bool create)
{
    if (dir == NULL || *dir == '\0')
        dir = getenv("MOAT_DIR");
    if (dir == NULL || *dir == '\0')
        dir = ".moat";
    if (create && cli_dir_create(dir) != 0)
        return cli_fail(cli, CLI_USAGE, "--dir: %s: %s", dir, strerror(errno));
    if (realpath(dir, l->dir) == NULL)
        return cli_fail(cli, create ? CLI_USAGE : CLI_FAILED, "%s: %s%s", dir, strerror(errno),
                        create ? "" : " (no cluster here; start one with 'moat local up')");
    if (strlen(l->dir) > PATH_MAX - 64)
        return cli_fail(cli, CLI_USAGE, "--dir: %s: path too long", l->dir);
    ssize_t n = readlink("/proc/self/exe", l->bindir, sizeof l->bindir - 1);
    if (n < 0)
        return cli_fail(cli, CLI_FAILED, "/proc/self/exe: %s", strerror(errno));
    l->bindir[n] = '\0';
    char *slash = strrchr(l->bindir, '/');
    if (slash)
        *slash = '\0';
    char path[PATH_MAX + 32];
    cli_local_path(l, path, sizeof path, "endpoint", "");
    if (cli_file_read_line(path, l->endpoint, sizeof l->endpoint) != 0)
        l->endpoint[0] = '\0';
    return CLI_OK;
}

/* ---- up ---- */

struct started {
    pid_t pid;
    char name[32];
    char prog[32];
};

/* check_started: a daemon we started that has already exited is an error. */
static int check_started(struct cli *cli, const struct cli_local *l, struct started *s, int n)
{
    for (int i = 0; i < n; i++) {
        int status;
        if (s[i].pid > 0 && waitpid(s[i].pid, &status, WNOHANG) == s[i].pid) {
            char last[512], how[64];
            cli_daemon_last_log_line(l, s[i].name, last, sizeof last);
            if (WIFEXITED(status))
                snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(status));
            else
                snprintf(how, sizeof how, "was killed by signal %d", WTERMSIG(status));
            return cli_fail(cli, CLI_FAILED, "%s (%s) %s: %s (see %s/%s.log)", s[i].prog, s[i].name,
                            how, last[0] ? last : "no output", l->dir, s[i].name);
        }
    }
    return CLI_OK;
}

/* wait_ready: until every worker local-1..N is registered as the process
 * wpids[i] (not a registration of a worker killed before this `up`, which
 * the controller has not yet found dead) and UP, or drained by an admin
 * (counted in *drained). */
static int wait_ready(struct cli *cli, const struct cli_local *l, int nworkers, const pid_t *wpids,
                      struct started *s, int ns, int *drained)
{
    struct err err = {0};
    struct net_curve curve;
    client_t *c = client_keys_load(&curve, l->dir, false, &err) == 0
                      ? client_create_curve(l->endpoint, &curve, &err) : NULL;
    if (c == NULL)
        return cli_fail(cli, CLI_FAILED, "controller %s: %s", l->endpoint, err.msg);
    double deadline = units_mono() + LOCAL_UP_WAIT;
    int rc = CLI_OK, up = 0;
    bool answered = false;
    char state[512] = "";
    while ((rc = check_started(cli, l, s, ns)) == CLI_OK) {
        if (units_mono() > deadline) {
            rc = answered ? cli_fail(cli, CLI_FAILED,
                                     "%d of %d workers UP after %.0f s (%s); see the logs in %s",
                                     up, nworkers, LOCAL_UP_WAIT, state, l->dir)
                          : cli_fail(cli, CLI_UNREACHABLE,
                                     "controller at %s does not answer after %.0f s; see %s/controller.log",
                                     l->endpoint, LOCAL_UP_WAIT, l->dir);
            break;
        }
        struct proto_msg msg;
        if (client_call(c, answered ? PROTO_TYPE_NODES : PROTO_TYPE_PING, NULL, 0.5, &msg, &err) != 0)
            continue;
        if (client_reply_error(&msg, &err) != 0) {
            proto_msg_clear(&msg);
            usleep(50000);
            continue;
        }
        if (!answered) {
            answered = true;
            proto_msg_clear(&msg);
            continue;
        }
        up = 0;
        *drained = 0;
        size_t len = 0;
        state[0] = '\0';
        for (int i = 1; i <= nworkers; i++) {
            char want[32];
            snprintf(want, sizeof want, "local-%d", i);
            const char *st = "not registered";
            bool ready = false;
            size_t k;
            const json_t *node;
            json_array_foreach(json_object_get(msg.body, "nodes"), k, node) {
                if (strcmp(cli_json_str(node, "name", ""), want) != 0)
                    continue;
                st = cli_json_str(node, "state", "?");
                /* an admin's drain outlives restarts: such a node is as up as it will get */
                if (cli_json_int(node, "pid", 0) != (long long)wpids[i - 1])
                    st = "registered as a process that is gone";
                ready = json_is_true(json_object_get(node, "registered")) &&
                        cli_json_int(node, "pid", 0) == (long long)wpids[i - 1] &&
                        (strcmp(st, "UP") == 0 ||
                         (strcmp(st, "DRAINING") == 0 && json_is_true(json_object_get(node, "drained"))));
            }
            up += ready;
            *drained += ready && strcmp(st, "DRAINING") == 0;
            if (!ready && len < sizeof state)
                len += (size_t)snprintf(state + len, sizeof state - len, "%s%s %s", len ? ", " : "",
                                        want, st);
        }
        proto_msg_clear(&msg);
        if (up == nworkers)
            break;
        usleep(50000);
    }
    client_destroy(c);
    return rc;
}

static int local_up(struct cli *cli, struct cli_local *l, int nworkers, int cpus)
{
    char err[PATH_MAX + 256], path[PATH_MAX + 32];
    if (nworkers >= 0) {
        /* --workers N below what DIR has: the cluster shrinks. The stopped
         * workers above N leave DIR (their config), so that a plain up or
         * status counts N; one still running stays, and is said below. */
        for (int i = cli_daemon_count_workers(l); i > nworkers; i--) {
            char name[32];
            snprintf(name, sizeof name, "worker-%d", i);
            if (cli_daemon_pid(l, name) > 0)
                break;
            cli_local_path(l, path, sizeof path, name, ".conf");
            unlink(path);
            cli_local_path(l, path, sizeof path, name, ".pid"); /* status lists a pid file's daemon */
            unlink(path);
        }
    }
    if (nworkers < 0)
        nworkers = cli_daemon_count_workers(l) ? cli_daemon_count_workers(l) : 2;
    pid_t cpid = cli_daemon_pid(l, "controller");
    if (l->endpoint[0] == '\0') {
        if (cpid > 0)
            return cli_fail(cli, CLI_FAILED, "%s/endpoint is missing but the controller runs (pid %ld); "
                            "run 'moat local down' first", l->dir, (long)cpid);
        int port = cli_local_free_port();
        if (port < 0)
            return cli_fail(cli, CLI_FAILED, "cannot find a free loopback port: %s", strerror(errno));
        snprintf(l->endpoint, sizeof l->endpoint, "tcp://127.0.0.1:%d", port);
        cli_local_path(l, path, sizeof path, "endpoint", "");
        char line[300];
        if (snprintf(line, sizeof line, "%s\n", l->endpoint) >= (int)sizeof line)
            return cli_fail(cli, CLI_FAILED, "endpoint too long");
        if (cli_file_write(path, line) != 0)
            return cli_fail(cli, CLI_FAILED, "%s: %s", path, strerror(errno));
    }
    /* Settings that would split the cluster, before anything starts */
    if (cli_daemon_extras_check(l, nworkers, err, sizeof err) != 0)
        return cli_fail(cli, CLI_USAGE, "%s", err);
    /* Keys before any daemon starts: the allowlist must name every worker. */
    int nkeys = cli_daemon_count_workers(l) > nworkers ? cli_daemon_count_workers(l) : nworkers;
    if (cli_daemon_keys_write(l, nkeys, err, sizeof err) != 0)
        return cli_fail(cli, CLI_FAILED, "%s", err);
    struct started s[LOCAL_WORKERS_MAX + 1];
    int ns = 0;
    if (cpid == 0) {
        cli_local_path(l, path, sizeof path, "controller", "");
        if (cli_dir_create(path) != 0)
            return cli_fail(cli, CLI_FAILED, "%s: %s", path, strerror(errno));
        if (cli_daemon_controller_conf_write(l, err, sizeof err) != 0)
            return cli_fail(cli, CLI_FAILED, "%s", err);
        cpid = cli_daemon_start(l, "moat-controller", "controller", err, sizeof err);
        if (cpid < 0)
            return cli_fail(cli, CLI_FAILED, "%s", err);
        s[ns].pid = cpid;
        snprintf(s[ns].name, sizeof s[ns].name, "controller");
        snprintf(s[ns].prog, sizeof s[ns].prog, "moat-controller");
        ns++;
    }
    /* the workers that will share this machine: those asked for, and any
     * already running beyond them (an earlier up with more) */
    int sharing = nworkers;
    for (int i = nworkers + 1; i <= nkeys; i++) {
        char name[32];
        snprintf(name, sizeof name, "worker-%d", i);
        sharing += cli_daemon_pid(l, name) > 0;
    }
    pid_t wpids[LOCAL_WORKERS_MAX];
    int kept = 0; /* workers already running: --cpus-per-worker does not reach them */
    for (int i = 1; i <= nworkers; i++) {
        char name[32];
        snprintf(name, sizeof name, "worker-%d", i);
        pid_t pid = cli_daemon_pid(l, name);
        kept += pid > 0;
        if (pid == 0) {
            if (cli_daemon_worker_conf_write(l, i, sharing, cpus, err, sizeof err) != 0)
                return cli_fail(cli, CLI_FAILED, "%s", err);
            pid = cli_daemon_start(l, "moat-worker", name, err, sizeof err);
            if (pid < 0)
                return cli_fail(cli, CLI_FAILED, "%s", err);
            s[ns].pid = pid;
            snprintf(s[ns].name, sizeof s[ns].name, "%s", name);
            snprintf(s[ns].prog, sizeof s[ns].prog, "moat-worker");
            ns++;
        }
        wpids[i - 1] = pid;
    }
    int drained = 0;
    int rc = wait_ready(cli, l, nworkers, wpids, s, ns, &drained);
    if (rc != CLI_OK)
        return rc;
    if (cpus > 0 && kept > 0)
        fprintf(stderr, "moat local up: --cpus-per-worker %d: %d worker%s already ran and keep%s %s "
                "CPUs; it applies to a worker when it starts ('moat local down' first)\n", cpus, kept,
                kept == 1 ? "" : "s", kept == 1 ? "s" : "", kept == 1 ? "its" : "their");
    if (cli->json) {
        json_t *arr = json_array();
        for (int i = 0; i < nworkers; i++)
            json_array_append_new(arr, json_integer(wpids[i]));
        json_t *doc = json_pack("{s:s, s:s, s:I, s:o}", "dir", l->dir, "endpoint", l->endpoint,
                                "controller_pid", (json_int_t)cpid, "worker_pids", arr);
        cli_json_print(doc);
        json_decref(doc);
    } else {
        int extra = 0; /* workers of an earlier, larger up still running: not stopped here */
        for (int i = nworkers + 1; i <= cli_daemon_count_workers(l); i++) {
            char name[32];
            snprintf(name, sizeof name, "worker-%d", i);
            extra += cli_daemon_pid(l, name) > 0;
        }
        printf("cluster up in %s: controller %s (pid %ld), %d worker%s UP", l->dir, l->endpoint,
               (long)cpid, nworkers - drained, nworkers - drained == 1 ? "" : "s");
        if (drained > 0) /* an admin's drain outlives restarts */
            printf(" and %d DRAINING (an admin's drain: moat admin node resume NAME)", drained);
        printf(" (%d daemon%s started now)", ns, ns == 1 ? "" : "s");
        if (extra > 0)
            printf("; %d more worker%s of this directory still run%s (to have %d: moat local down, "
                   "then moat local up --workers %d)", extra, extra == 1 ? "" : "s", extra == 1 ? "s" : "",
                   nworkers, nworkers);
        printf("\n");
        char def[PATH_MAX];
        const char *env = getenv("MOAT_DIR");
        if (realpath(env && *env ? env : ".moat", def) == NULL || strcmp(def, l->dir) != 0)
            printf("to use it: export MOAT_DIR=%s\n", l->dir);
    }
    return CLI_OK;
}

/* ---- down ---- */

struct daemon {
    char name[32];
    pid_t pid;
    bool killed;
};

static int list_daemons(const struct cli_local *l, struct daemon *d, int cap, bool running_only)
{
    int n = 0;
    int nw = cli_daemon_count_workers(l);
    /* Workers with a pid file beyond the contiguous confs count too. */
    DIR *dp = opendir(l->dir);
    struct dirent *e;
    while (dp && (e = readdir(dp)) != NULL) {
        int i;
        char tail[16];
        if (sscanf(e->d_name, "worker-%d.pi%15s", &i, tail) == 2 && strcmp(tail, "d") == 0 && i > nw)
            nw = i > LOCAL_WORKERS_MAX ? nw : i;
    }
    if (dp)
        closedir(dp);
    for (int i = 0; i <= nw && n < cap; i++) {
        char name[32];
        if (i == 0)
            snprintf(name, sizeof name, "controller");
        else
            snprintf(name, sizeof name, "worker-%d", i);
        pid_t pid = cli_daemon_pid(l, name);
        if (running_only && pid == 0)
            continue;
        if (i == 0 && !running_only) {
            char conf[PATH_MAX + 32];
            cli_local_path(l, conf, sizeof conf, name, ".conf");
            if (access(conf, F_OK) != 0)
                continue;
        }
        snprintf(d[n].name, sizeof d[n].name, "%s", name);
        d[n].pid = pid;
        d[n].killed = false;
        n++;
    }
    return n;
}

static int local_down(struct cli *cli, struct cli_local *l)
{
    struct daemon d[LOCAL_WORKERS_MAX + 1];
    int n = list_daemons(l, d, LOCAL_WORKERS_MAX + 1, true);
    for (int i = n - 1; i >= 0; i--)
        kill(d[i].pid, SIGTERM);
    double deadline = units_mono() + LOCAL_DOWN_GRACE;
    for (;;) {
        int left = 0;
        for (int i = 0; i < n; i++)
            left += cli_pid_alive(d[i].pid);
        if (left == 0)
            break;
        if (units_mono() > deadline) {
            for (int i = 0; i < n; i++)
                if (cli_pid_alive(d[i].pid)) {
                    kill(d[i].pid, SIGKILL);
                    d[i].killed = true;
                }
            double end = units_mono() + 5;
            while (units_mono() < end) {
                left = 0;
                for (int i = 0; i < n; i++)
                    left += cli_pid_alive(d[i].pid);
                if (left == 0)
                    break;
                usleep(20000);
            }
            break;
        }
        usleep(20000);
    }
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX + 32];
        cli_local_path(l, path, sizeof path, d[i].name, ".pid");
        if (!cli_pid_alive(d[i].pid))
            unlink(path);
    }
    if (cli->json) {
        json_t *arr = json_array();
        for (int i = 0; i < n; i++)
            json_array_append_new(arr, json_pack("{s:s, s:I, s:b}", "name", d[i].name, "pid",
                                                 (json_int_t)d[i].pid, "killed", d[i].killed));
        json_t *doc = json_pack("{s:s, s:o}", "dir", l->dir, "stopped", arr);
        cli_json_print(doc);
        json_decref(doc);
    } else if (n == 0) {
        printf("nothing running in %s\n", l->dir);
    } else {
        for (int i = 0; i < n; i++)
            printf("stopped %s (pid %ld)%s\n", d[i].name, (long)d[i].pid,
                   d[i].killed ? " with SIGKILL" : "");
    }
    return CLI_OK;
}

/* ---- status ---- */

static int local_status(struct cli *cli, struct cli_local *l)
{
    struct daemon d[LOCAL_WORKERS_MAX + 1];
    int n = list_daemons(l, d, LOCAL_WORKERS_MAX + 1, false);
    if (n == 0)
        return cli_fail(cli, CLI_FAILED, "no cluster in %s (start one with 'moat local up')", l->dir);
    int stopped = 0;
    for (int i = 0; i < n; i++)
        stopped += d[i].pid == 0;
    if (cli->json) {
        json_t *arr = json_array();
        for (int i = 0; i < n; i++) {
            char log[PATH_MAX + 32];
            cli_local_path(l, log, sizeof log, d[i].name, ".log");
            json_t *o = json_pack("{s:s, s:b, s:s}", "name", d[i].name, "running", d[i].pid > 0,
                                  "log", log);
            json_object_set_new(o, "pid", d[i].pid > 0 ? json_integer(d[i].pid) : json_null());
            json_array_append_new(arr, o);
        }
        json_t *doc = json_pack("{s:s, s:s, s:o}", "dir", l->dir, "endpoint", l->endpoint, "daemons",
                                arr);
        cli_json_print(doc);
        json_decref(doc);
    } else {
        printf("dir %s, endpoint %s\n", l->dir, l->endpoint[0] ? l->endpoint : "-");
        static const char *const hdr[] = {"DAEMON", "PID", "STATE", "LOG"};
        struct cli_table *t = cli_table_create(4, hdr, "lrll");
        for (int i = 0; i < n; i++) {
            char pid[16], log[PATH_MAX + 32];
            snprintf(pid, sizeof pid, d[i].pid ? "%ld" : "-", (long)d[i].pid);
            cli_local_path(l, log, sizeof log, d[i].name, ".log");
            const char *row[] = {d[i].name, pid, d[i].pid ? "running" : "stopped", log};
            cli_table_add(t, row);
        }
        cli_table_print(t);
    }
    return stopped ? CLI_FAILED : CLI_OK;
}

int cli_local_run(struct cli *cli, int argc, char **argv)
{
    enum { OPT_WORKERS = 1, OPT_DIR, OPT_CPUS };
    static const struct option longopts[] = {
        {"workers", required_argument, NULL, OPT_WORKERS},
        {"dir", required_argument, NULL, OPT_DIR},
        {"cpus-per-worker", required_argument, NULL, OPT_CPUS},
        CLI_COMMON_OPTS,
    };
    bool first = true;
    const char *dir = NULL;
    long long nworkers = -1, cpus = 0;
    bool gave_workers = false, gave_cpus = false;
    int c;
    while ((c = cli_getopt(cli, argc, argv, "", longopts, help, &first)) != -1) {
        if (c == CLI_OPT_HELP)
            return CLI_OK;
        if (c == '?')
            return CLI_USAGE;
        if (c == OPT_DIR)
            dir = optarg;
        if (c == OPT_WORKERS) {
            gave_workers = true;
            if (cli_parse_int(cli, "--workers", optarg, 0, LOCAL_WORKERS_MAX, &nworkers) != 0)
                return CLI_USAGE;
        }
        if (c == OPT_CPUS) {
            gave_cpus = true;
            if (cli_parse_int(cli, "--cpus-per-worker", optarg, 1, 1000000, &cpus) != 0)
                return CLI_USAGE;
        }
    }
    if (optind >= argc)
        return cli_usage_error(cli, "missing up, down or status");
    const char *sub = argv[optind];
    static char cmd[32];
    bool is_up = strcmp(sub, "up") == 0;
    if (!is_up && strcmp(sub, "down") != 0 && strcmp(sub, "status") != 0)
        return cli_usage_error(cli, "unknown subcommand '%s': expected up, down or status", sub);
    snprintf(cmd, sizeof cmd, "local %s", sub);
    cli->cmd = cmd;
    if (optind + 1 < argc)
        return cli_usage_error(cli, "unexpected argument '%s'", argv[optind + 1]);
    if (!is_up && (gave_workers || gave_cpus))
        return cli_usage_error(cli, "%s applies to 'local up' only",
                               gave_workers ? "--workers" : "--cpus-per-worker");
    struct cli_local l;
    memset(&l, 0, sizeof l);
    int rc = local_init(cli, &l, dir, is_up);
    if (rc != CLI_OK)
        return rc;
    if (is_up)
        return local_up(cli, &l, (int)nworkers, (int)cpus);
    if (strcmp(sub, "down") == 0)
        return local_down(cli, &l);
    return local_status(cli, &l);
}
