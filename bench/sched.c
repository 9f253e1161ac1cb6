/* sched.c: bench-sched: scheduler throughput and latency of a local moat cluster.
 *
 * Brings up `moat local up` (controller + W workers on loopback, each offering C
 * cpus) in a temporary directory and measures, in one run:
 *   single:  N `true` jobs submitted one at a time over one pipelined connection
 *            (at most --window unacknowledged): acknowledged submissions/s
 *            (each acknowledgement follows an LMDB commit) and completed jobs/s;
 *   array:   one N-element array job of `true`: completed tasks/s;
 *   latency: --latency-jobs jobs submitted one by one on an idle cluster, each
 *            after the previous one started: submit->start p50/p99, from the
 *            controller's receipt of SUBMIT to the worker's fork of the task;
 *   restart: the controller killed (SIGKILL) with all those jobs in its store and
 *            started again (`moat local up`): its recovery time (PING
 *            recovery_ms), the jobs it loaded, and the wall time of `local up`;
 * and the controller's peak RSS (VmHWM). Prints one JSON object per line. With
 * --slurm FILE (the JSON line of bench/slurm/run.sh from the same machine) it
 * adds a line of ratios moat/Slurm.
 * Exec tasks run unsandboxed by default (--sandbox off): this measures the
 * scheduler, as Slurm runs its jobs without namespaces; --sandbox on measures
 * the product default, where each task also pays for new namespaces.
 * --inactive-age S sets the controller's inactive_age (seconds a finished job
 * stays in its memory; default the product's 5 minutes, longer than a run):
 * with 0, finished jobs leave memory at once (controller/ctl_purge.h), and
 * ctl_rss_mb at the end shows what they cost while resident.
 * Usage: bench-sched [--jobs N] [--workers W] [--cpus-per-worker C] [--window K]
 *                    [--latency-jobs L] [--sandbox on|off] [--slurm FILE]
 *                    [--inactive-age S] [--keep]
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shared/client.h"
#include "shared/units.h"

static char moat_bin[PATH_MAX];

static int run_capture(char *const argv[], char *out, size_t cap)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t n;
    while (len + 1 < cap && (n = read(fds[0], out + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    out[len] = '\0';
    close(fds[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static json_t *call(client_t *c, enum proto_type type, json_t *body)
{
    struct proto_msg r;
    struct err e = {0};
    if (client_call(c, type, body, 60, &r, &e) != 0 || client_reply_error(&r, &e) != 0) {
        fprintf(stderr, "bench-sched: %s: %s\n", proto_type_name(type), e.msg);
        exit(1);
    }
    json_t *b = json_incref(r.body);
    proto_msg_clear(&r);
    return b;
}

static json_t *true_spec(void)
{
    return json_pack("{s:s, s:[s]}", "kind", "exec", "argv", "true");
}

/* wait_idle: poll PING until no job is active; returns the time it saw that. */
static double wait_idle(client_t *c)
{
    for (;;) {
        json_t *b = call(c, PROTO_TYPE_PING, NULL);
        json_int_t active = json_integer_value(json_object_get(b, "active"));
        json_decref(b);
        if (active == 0)
            return units_mono();
        usleep(10000);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

/* rss_mb: field ("VmHWM": peak, "VmRSS": now, "RssAnon": now, heap and
 * other anonymous memory) of /proc/PID/status in MiB. */
static double rss_mb(long pid, const char *field)
{
    char path[64], line[256], fmt[32];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    snprintf(fmt, sizeof fmt, "%s: %%lf kB", field);
    FILE *f = fopen(path, "r");
    double kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, fmt, &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb / 1024.0;
}

int main(int argc, char **argv)
{
    long jobs = 10000, workers = 2, cpus = 16, window = 4096, latency_jobs = 300;
    const char *slurm = NULL, *sandbox = "off";
    double inactive_age = -1; /* -1: the controller's default */
    int keep = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--keep")) { keep = 1; continue; }
        if (v == NULL) { fprintf(stderr, "bench-sched: %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--jobs")) jobs = atol(v);
        else if (!strcmp(a, "--workers")) workers = atol(v);
        else if (!strcmp(a, "--cpus-per-worker")) cpus = atol(v);
        else if (!strcmp(a, "--window")) window = atol(v);
        else if (!strcmp(a, "--latency-jobs")) latency_jobs = atol(v);
        else if (!strcmp(a, "--slurm")) slurm = v;
        else if (!strcmp(a, "--sandbox")) sandbox = !strcmp(v, "on") ? "required" : "off";
        else if (!strcmp(a, "--inactive-age")) inactive_age = atof(v);
        else { fprintf(stderr, "bench-sched: unknown argument %s\n", a); return 2; }
        i++;
    }
    if (jobs < 1 || workers < 1 || cpus < 1 || window < 1 || latency_jobs < 0) {
        fprintf(stderr, "bench-sched: counts must be positive\n");
        return 2;
    }
    /* bin/bench-sched lives next to bin/moat */
    ssize_t n = readlink("/proc/self/exe", moat_bin, sizeof moat_bin - 16);
    if (n <= 0) { perror("bench-sched: /proc/self/exe"); return 1; }
    moat_bin[n] = '\0';
    *strrchr(moat_bin, '/') = '\0';
    strcat(moat_bin, "/moat");
    char dir[] = "/tmp/moat-bench-XXXXXX";
    if (mkdtemp(dir) == NULL) { perror("bench-sched: mkdtemp"); return 1; }
    char wbuf[24], cbuf[24], out[4096];
    snprintf(wbuf, sizeof wbuf, "%ld", workers);
    snprintf(cbuf, sizeof cbuf, "%ld", cpus);
    char extra[PATH_MAX];
    snprintf(extra, sizeof extra, "%s/controller.extra.conf", dir);
    FILE *f = fopen(extra, "w");
    if (f) {
        fputs("log_level = \"warn\";\n", f);
        if (inactive_age >= 0)
            fprintf(f, "inactive_age = \"%g s\";\n", inactive_age);
        fclose(f);
    }
    snprintf(extra, sizeof extra, "%s/worker.extra.conf", dir);
    if ((f = fopen(extra, "w"))) {
        fprintf(f, "log_level = \"warn\";\nexec_sandbox = \"%s\";\n", sandbox);
        fclose(f);
    }
    char *up[] = {moat_bin, "--json", "local", "up", "--dir", dir, "--workers", wbuf,
                  "--cpus-per-worker", cbuf, NULL};
    if (run_capture(up, out, sizeof out) != 0) {
        fprintf(stderr, "bench-sched: moat local up failed: %s\n", out);
        return 1;
    }
    json_t *info = json_loads(out, 0, NULL);
    const char *endpoint = json_string_value(json_object_get(info, "endpoint"));
    long ctl_pid = (long)json_integer_value(json_object_get(info, "controller_pid"));
    struct err e = {0};
    struct net_curve curve;
    client_t *c = endpoint && client_keys_load(&curve, dir, false, &e) == 0
                      ? client_create_curve(endpoint, &curve, &e) : NULL;
    if (c == NULL) { fprintf(stderr, "bench-sched: connect: %s\n", e.msg); return 1; }
    fprintf(stderr, "bench-sched: cluster in %s at %s; %ld workers x %ld cpus\n", dir, endpoint,
            workers, cpus);

    /* ---- single: N jobs, pipelined submits ---- */
    double t0 = units_mono(), t_acked = 0;
    long sent = 0, acked = 0;
    while (acked < jobs) {
        while (sent < jobs && sent - acked < window) {
            json_t *body = json_pack("{s:o}", "spec", true_spec());
            if (client_send(c, PROTO_TYPE_SUBMIT, body, NULL, &e) != 0) {
                if (e.code == EAGAIN)
                    break;
                fprintf(stderr, "bench-sched: submit: %s\n", e.msg);
                return 1;
            }
            sent++;
        }
        struct proto_msg r;
        int rc = client_recv(c, 60, &r, &e);
        if (rc <= 0) { fprintf(stderr, "bench-sched: no acknowledgement: %s\n", e.msg); return 1; }
        if (client_reply_error(&r, &e) != 0) { fprintf(stderr, "bench-sched: submit refused: %s\n", e.msg); return 1; }
        proto_msg_clear(&r);
        acked++;
    }
    t_acked = units_mono();
    double t_done = wait_idle(c);
    size_t nl = 0;
    double *lat = calloc((size_t)jobs + (size_t)latency_jobs + 1, sizeof *lat);
    size_t i;
    json_t *j;
    long failed = 0;
    for (json_int_t from = 1; from > 0;) { /* QUEUE answers in pages */
        json_t *q = call(c, PROTO_TYPE_QUEUE, json_pack("{s:b, s:I, s:i}", "all", 1, "from", from,
                                                        "limit", 100000));
        json_array_foreach(json_object_get(q, "jobs"), i, j) {
            failed += strcmp(json_string_value(json_object_get(j, "state")), "COMPLETED") != 0;
            double s = json_number_value(json_object_get(j, "submit_time"));
            double st = json_number_value(json_object_get(j, "start_time"));
            if (st > 0 && nl < (size_t)jobs)
                lat[nl++] = (st - s) * 1e3;
        }
        const json_t *nx = json_object_get(q, "next");
        from = json_is_integer(nx) ? json_integer_value(nx) : 0;
        json_decref(q);
    }
    double sp50 = pct(lat, nl, 0.5), sp99 = pct(lat, nl, 0.99);
    json_t *single = json_pack("{s:s, s:s, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:I}", "bench", "sched",
                               "case", "single", "jobs", (json_int_t)jobs, "workers", (json_int_t)workers,
                               "cpus_per_worker", (json_int_t)cpus, "submit_rate",
                               jobs / (t_acked - t0), "complete_rate", jobs / (t_done - t0),
                               "burst_latency_p50_ms", sp50, "burst_latency_p99_ms", sp99,
                               "not_completed", (json_int_t)failed);
    json_object_set_new(single, "sandbox", json_string(sandbox));

    /* ---- array: one N-element job ---- */
    t0 = units_mono();
    json_t *spec = true_spec();
    json_object_set_new(spec, "array", json_pack("{s:i, s:I}", "start", 0, "end", (json_int_t)(jobs - 1)));
    json_t *idb = call(c, PROTO_TYPE_SUBMIT, json_pack("{s:o}", "spec", spec));
    json_int_t aid = json_integer_value(json_object_get(idb, "id"));
    json_decref(idb);
    t_done = wait_idle(c);
    json_t *aj = call(c, PROTO_TYPE_SHOW, json_pack("{s:I, s:i}", "id", aid, "tasks_limit", 0));
    json_t *array = json_pack("{s:s, s:s, s:I, s:f, s:s}", "bench", "sched", "case", "array", "tasks",
                              (json_int_t)jobs, "complete_rate", jobs / (t_done - t0), "state",
                              json_string_value(json_object_get(aj, "state")));
    json_decref(aj);

    /* ---- latency: one job at a time on an idle cluster ---- */
    nl = 0;
    for (long k = 0; k < latency_jobs; k++) {
        json_t *r = call(c, PROTO_TYPE_SUBMIT, json_pack("{s:o}", "spec", true_spec()));
        json_int_t id = json_integer_value(json_object_get(r, "id"));
        json_decref(r);
        for (;;) {
            json_t *s = call(c, PROTO_TYPE_SHOW, json_pack("{s:I}", "id", id));
            const char *st = json_string_value(json_object_get(s, "state"));
            if (!strcmp(st, "COMPLETED") || !strcmp(st, "FAILED")) {
                json_t *t0j = json_array_get(json_object_get(s, "tasks"), 0);
                lat[nl++] = (json_number_value(json_object_get(t0j, "start_time")) -
                             json_number_value(json_object_get(s, "submit_time"))) * 1e3;
                json_decref(s);
                break;
            }
            json_decref(s);
            usleep(1000);
        }
    }
    json_t *latency = json_pack("{s:s, s:s, s:I, s:f, s:f}", "bench", "sched", "case", "latency", "jobs",
                                (json_int_t)latency_jobs, "submit_start_p50_ms", pct(lat, nl, 0.5),
                                "submit_start_p99_ms", pct(lat, nl, 0.99));
    json_object_set_new(single, "ctl_peak_rss_mb", json_real(rss_mb(ctl_pid, "VmHWM")));
    json_object_set_new(single, "ctl_rss_mb", json_real(rss_mb(ctl_pid, "VmRSS")));
    /* the heap alone: VmRSS also counts the LMDB map's pages (file-backed) */
    json_object_set_new(single, "ctl_rss_anon_mb", json_real(rss_mb(ctl_pid, "RssAnon")));
    json_object_set_new(single, "inactive_age_s",
                        inactive_age >= 0 ? json_real(inactive_age) : json_string("default"));
    free(lat);
    client_destroy(c);

    /* ---- restart: kill -9 the controller with the run's jobs in its store ---- */
    json_t *restart = NULL;
    if (kill((pid_t)ctl_pid, SIGKILL) == 0) {
        for (int k = 0; k < 5000 && kill((pid_t)ctl_pid, 0) == 0; k++)
            usleep(1000);
        t0 = units_mono();
        int up_rc = run_capture(up, out, sizeof out); /* starts the controller alone again */
        double up_ms = (units_mono() - t0) * 1e3;
        c = up_rc == 0 ? client_create_curve(endpoint, &curve, &e) : NULL;
        json_t *ping = c ? call(c, PROTO_TYPE_PING, json_object()) : NULL;
        if (ping == NULL) {
            fprintf(stderr, "bench-sched: no controller after the restart: %s\n", out);
            return 1;
        }
        restart = json_pack("{s:s, s:s, s:O?, s:O?, s:O?, s:f}", "bench", "sched", "case", "restart",
                            "jobs_in_store", json_object_get(ping, "jobs"), "resident",
                            json_object_get(ping, "resident"), "recovery_ms",
                            json_object_get(ping, "recovery_ms"), "local_up_ms", up_ms);
        json_decref(ping);
        client_destroy(c);
    }

    char *down[] = {moat_bin, "local", "down", "--dir", dir, NULL};
    run_capture(down, out, sizeof out);
    if (!keep) {
        char cmd[PATH_MAX + 16];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "bench-sched: could not remove %s\n", dir);
    }
    json_dumpf(single, stdout, JSON_COMPACT);
    putchar('\n');
    json_dumpf(array, stdout, JSON_COMPACT);
    putchar('\n');
    json_dumpf(latency, stdout, JSON_COMPACT);
    putchar('\n');
    if (restart) {
        json_dumpf(restart, stdout, JSON_COMPACT);
        putchar('\n');
        json_decref(restart);
    }
    if (slurm) {
        json_error_t je;
        json_t *s = json_load_file(slurm, 0, &je);
        double sr = json_number_value(json_object_get(s, "complete_rate"));
        if (s == NULL || sr <= 0) {
            fprintf(stderr, "bench-sched: %s: no complete_rate to compare with\n", slurm);
            return 1;
        }
        json_t *ratio = json_pack("{s:s, s:s, s:s, s:f, s:f, s:f}", "bench", "sched", "case",
                                  "vs_slurm", "slurm_mode",
                                  json_string_value(json_object_get(s, "mode")) ?: "?",
                                  "slurm_complete_rate", sr, "moat_complete_rate",
                                  json_number_value(json_object_get(single, "complete_rate")),
                                  "ratio", json_number_value(json_object_get(single, "complete_rate")) / sr);
        json_dumpf(ratio, stdout, JSON_COMPACT);
        putchar('\n');
        json_decref(ratio);
        json_decref(s);
    }
    json_decref(single);
    json_decref(array);
    json_decref(latency);
    json_decref(info);
    return failed ? 1 : 0;
}
