/* cli_daemon.c: the files and processes of a local cluster (moat local): paths,
 * generated config files, pid files, starting and probing daemons.
 * Invariant: a daemon counts as running only when its pid file names a live
 * process whose command line mentions its own config file (pid reuse is not
 * mistaken for a daemon).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli_local.h"
#include "shared/cfg.h"
#include "shared/keys.h"
#include "shared/net.h"

/* ---- files ---- */

/* cli_local_path: local_init keeps DIR short enough that this never
 * truncates; a truncated path would be empty rather than wrong. */
void cli_local_path(const struct cli_local *l, char *buf, size_t cap, const char *name, const char *ext)
{
    if (snprintf(buf, cap, "%s/%s%s", l->dir, name, ext) >= (int)cap)
        buf[0] = '\0';
}

int cli_file_read_line(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    if (fgets(buf, (int)cap, f) == NULL)
        buf[0] = '\0';
    fclose(f);
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

int cli_file_write(const char *path, const char *text)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    fputs(text, f);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

char *cli_file_slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
        if (len + 1 == cap) {
            char *g = realloc(buf, cap * 2);
            if (g == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = g;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf)
        buf[len] = '\0';
    return buf;
}

int cli_dir_create(const char *path)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* ---- config generation ---- */

/* defines_key: whether a libconfig text sets key at the start of a line. */
static bool defines_key(const char *text, const char *key)
{
    size_t klen = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncmp(p, key, klen) == 0) {
            const char *q = p + klen;
            while (*q == ' ' || *q == '\t')
                q++;
            if (*q == '=' || *q == ':')
                return true;
        }
    }
    return false;
}

static void append(char **buf, size_t *len, size_t *cap, const char *s)
{
    size_t n = strlen(s);
    if (*buf == NULL)
        return;
    if (*len + n + 1 > *cap) {
        size_t c = (*cap + n + 1) * 2;
        char *g = realloc(*buf, c);
        if (g == NULL) {
            free(*buf);
            *buf = NULL;
            return;
        }
        *buf = g;
        *cap = c;
    }
    memcpy(*buf + *len, s, n + 1);
    *len += n;
}

/* quote: a libconfig string literal of s. */
static void quote(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    out[o++] = '"';
    for (; *s && o + 3 < cap; s++) {
        if (*s == '"' || *s == '\\')
            out[o++] = '\\';
        out[o++] = *s;
    }
    out[o++] = '"';
    out[o] = '\0';
}

/* owned_check: none of the extra files sets a key of owned (what local up
 * must set itself for the cluster to hold together: the endpoint every
 * daemon and command uses, the keys it made and allowlisted); else -1 with
 * "FILE:LINE: KEY: ..." in err. */
static int owned_check(const char *const *extras, int nextras, const char *const *owned, int nowned,
                       char *err, size_t cap)
{
    for (int i = 0; i < nextras; i++) {
        if (access(extras[i], F_OK) != 0)
            continue;
        for (int k = 0; k < nowned; k++) {
            char where[PATH_MAX + 32];
            if (cfg_where(extras[i], owned[k], where, sizeof where)) {
                snprintf(err, cap, "%s: %s: set by moat local up itself (the cluster's endpoint, "
                         "keys and each worker's own state); remove it from this file", where,
                         owned[k]);
                return -1;
            }
        }
    }
    return 0;
}

/* write_conf: path = generated "key = value;" lines (keys[i], vals[i] already in
 * libconfig syntax) unless an extra file sets the key, then the extra files. */
static int write_conf(const char *path, const char *const *keys, const char *const *vals, int n,
                      const char *const *extras, int nextras)
{
    char *texts[4] = {0};
    size_t cap = 1024, len = 0;
    char *buf = malloc(cap);
    if (buf)
        buf[0] = '\0';
    for (int i = 0; i < nextras && i < 4; i++)
        texts[i] = cli_file_slurp(extras[i]);
    append(&buf, &len, &cap, "# written by 'moat local up'; edit the *.extra.conf files instead\n");
    for (int k = 0; k < n; k++) {
        bool overridden = false;
        for (int i = 0; i < nextras && i < 4; i++)
            overridden |= texts[i] && defines_key(texts[i], keys[k]);
        if (overridden)
            continue;
        append(&buf, &len, &cap, keys[k]);
        append(&buf, &len, &cap, " = ");
        append(&buf, &len, &cap, vals[k]);
        append(&buf, &len, &cap, ";\n");
    }
    for (int i = 0; i < nextras && i < 4; i++) {
        if (texts[i] == NULL)
            continue;
        append(&buf, &len, &cap, "\n" CFG_FROM_MARK);
        append(&buf, &len, &cap, extras[i]);
        append(&buf, &len, &cap, "\n");
        append(&buf, &len, &cap, texts[i]);
        append(&buf, &len, &cap, "\n");
        free(texts[i]);
    }
    int rc = buf ? cli_file_write(path, buf) : -1;
    free(buf);
    return rc;
}

/* key_pair: DIR/name.key and .pub exist afterwards; the public key in pub. */
static int key_pair(const struct cli_local *l, const char *name, char pub[KEYS_LEN + 1], char *err,
                    size_t cap)
{
    char kpath[PATH_MAX + 32], ppath[PATH_MAX + 32], sec[KEYS_LEN + 1];
    struct err e = {0};
    cli_local_path(l, kpath, sizeof kpath, name, ".key");
    cli_local_path(l, ppath, sizeof ppath, name, ".pub");
    int rc = 0;
    if (access(kpath, F_OK) != 0)
        rc = net_curve_keypair(pub, sec, &e) == 0 && keys_file_write(kpath, sec, true, &e) == 0 ? 0 : -1;
    else
        rc = keys_file_read(kpath, true, sec, &e) == 0 && net_curve_public(pub, sec, &e) == 0 ? 0 : -1;
    if (rc == 0 && access(ppath, F_OK) != 0 && keys_file_write(ppath, pub, false, &e) != 0)
        rc = -1;
    memset(sec, 0, sizeof sec);
    if (rc != 0)
        snprintf(err, cap, "keys: %s", e.msg);
    return rc;
}

int cli_daemon_keys_write(const struct cli_local *l, int nworkers, char *err, size_t cap)
{
    char pub[KEYS_LEN + 1], path[PATH_MAX + 32], line[160];
    size_t len = 0, tcap = 4096;
    char *text = malloc(tcap);
    if (text == NULL) {
        snprintf(err, cap, "keys: out of memory");
        return -1;
    }
    text[0] = '\0';
    append(&text, &len, &tcap, "# written by 'moat local up': ROLE PUBLIC-KEY NAME\n");
    int rc = key_pair(l, "controller", pub, err, cap);
    if (rc == 0 && (rc = key_pair(l, "client", pub, err, cap)) == 0) {
        snprintf(line, sizeof line, "admin %s local-client\n", pub);
        append(&text, &len, &tcap, line);
    }
    for (int i = 1; rc == 0 && i <= nworkers; i++) {
        char name[32];
        snprintf(name, sizeof name, "worker-%d", i);
        if ((rc = key_pair(l, name, pub, err, cap)) == 0) {
            snprintf(line, sizeof line, "worker %s local-%d\n", pub, i);
            append(&text, &len, &tcap, line);
        }
    }
    cli_local_path(l, path, sizeof path, "allowlist", "");
    if (rc == 0 && (text == NULL || cli_file_write(path, text) != 0)) {
        snprintf(err, cap, "%s: %s", path, strerror(errno));
        rc = -1;
    }
    free(text);
    return rc;
}

/* trust_roots_value: a libconfig list of the DIR/trust/NAME.pub files (the Ed25519 keys whose
 * signatures the cluster's controller accepts on artifacts: moat model keygen),
 * sorted; NULL when there is none. Caller frees with free(). */
static char *trust_roots_value(const struct cli_local *l)
{
    char dir[PATH_MAX + 32];
    cli_local_path(l, dir, sizeof dir, "trust", "");
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0)
        return NULL;
    size_t cap = 4, len = 0;
    char *buf = malloc(cap);
    int found = 0;
    if (buf)
        strcpy(buf, "[ ");
    len = 2;
    for (int i = 0; i < n; i++) {
        size_t nl = strlen(names[i]->d_name);
        if (buf && found < 16 && nl > 4 && strcmp(names[i]->d_name + nl - 4, ".pub") == 0 &&
            names[i]->d_name[0] != '.') {
            char file[2 * PATH_MAX], q[2 * PATH_MAX + 8];
            snprintf(file, sizeof file, "%s/%s", dir, names[i]->d_name);
            quote(file, q, sizeof q);
            if (found++)
                append(&buf, &len, &cap, ", ");
            append(&buf, &len, &cap, q);
        }
        free(names[i]);
    }
    free(names);
    if (buf)
        append(&buf, &len, &cap, " ]");
    if (found == 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

int cli_daemon_extras_check(const struct cli_local *l, int nworkers, char *err, size_t cap)
{
    char extra[PATH_MAX + 32];
    static const char *const ctl_owned[] = {"listen", "curve_secret_key_file", "allowlist_file"};
    /* every worker's (worker.extra.conf): also where it keeps its state */
    static const char *const all_owned[] = {"name", "controller", "curve_secret_key_file",
                                            "controller_public_key_file", "state_dir"};
    static const char *const one_owned[] = {"name", "controller", "curve_secret_key_file",
                                            "controller_public_key_file"};
    cli_local_path(l, extra, sizeof extra, "controller", ".extra.conf");
    const char *e1[] = {extra};
    if (owned_check(e1, 1, ctl_owned, 3, err, cap) != 0)
        return -1;
    cli_local_path(l, extra, sizeof extra, "worker", ".extra.conf");
    if (owned_check(e1, 1, all_owned, 5, err, cap) != 0)
        return -1;
    for (int i = 1; i <= nworkers; i++) {
        char name[32];
        snprintf(name, sizeof name, "worker-%d", i);
        cli_local_path(l, extra, sizeof extra, name, ".extra.conf");
        if (owned_check(e1, 1, one_owned, 4, err, cap) != 0)
            return -1;
    }
    return 0;
}

int cli_daemon_controller_conf_write(const struct cli_local *l, char *err, size_t cap)
{
    char path[PATH_MAX + 32], listen[320], qep[300], state[PATH_MAX + 32], qstate[PATH_MAX + 40],
        extra[PATH_MAX + 32], key[PATH_MAX + 32], qkey[PATH_MAX + 40], allow[PATH_MAX + 32],
        qallow[PATH_MAX + 40];
    cli_local_path(l, path, sizeof path, "controller", ".conf");
    cli_local_path(l, state, sizeof state, "controller", "");
    cli_local_path(l, extra, sizeof extra, "controller", ".extra.conf");
    cli_local_path(l, key, sizeof key, "controller", ".key");
    cli_local_path(l, allow, sizeof allow, "allowlist", "");
    quote(l->endpoint, qep, sizeof qep);
    snprintf(listen, sizeof listen, "[ %s ]", qep);
    quote(state, qstate, sizeof qstate);
    quote(key, qkey, sizeof qkey);
    quote(allow, qallow, sizeof qallow);
    const char *keys[] = {"listen", "state_dir", "curve_secret_key_file", "allowlist_file", "trust_roots"};
    char *trust = trust_roots_value(l);
    const char *vals[] = {listen, qstate, qkey, qallow, trust};
    const char *extras[] = {extra};
    if (write_conf(path, keys, vals, trust ? 5 : 4, extras, 1) != 0) {
        snprintf(err, cap, "%s: %s", path, strerror(errno));
        free(trust);
        return -1;
    }
    free(trust);
    return 0;
}

int cli_daemon_worker_conf_write(const struct cli_local *l, int i, int nworkers, int cpus, char *err,
                                 size_t cap)
{
    char name[32], qname[40], path[PATH_MAX + 32], qep[300], state[PATH_MAX + 32],
        qstate[PATH_MAX + 40], extra_all[PATH_MAX + 32], extra_one[PATH_MAX + 32], ncpus[24],
        key[PATH_MAX + 32], qkey[PATH_MAX + 40], ctlpub[PATH_MAX + 32], qctlpub[PATH_MAX + 40];
    snprintf(name, sizeof name, "worker-%d", i);
    cli_local_path(l, path, sizeof path, name, ".conf");
    cli_local_path(l, key, sizeof key, name, ".key");
    cli_local_path(l, ctlpub, sizeof ctlpub, "controller", ".pub");
    quote(key, qkey, sizeof qkey);
    quote(ctlpub, qctlpub, sizeof qctlpub);
    cli_local_path(l, state, sizeof state, name, "");
    cli_local_path(l, extra_all, sizeof extra_all, "worker", ".extra.conf");
    cli_local_path(l, extra_one, sizeof extra_one, name, ".extra.conf");
    snprintf(name, sizeof name, "local-%d", i);
    quote(name, qname, sizeof qname);
    quote(l->endpoint, qep, sizeof qep);
    quote(state, qstate, sizeof qstate);
    if (cpus <= 0) { /* what an earlier up wrote: "cpus = N;" on a line of its own */
        char *old = cli_file_slurp(path);
        char *extras = old ? strstr(old, "\n" CFG_FROM_MARK) : NULL;
        if (extras == NULL && old) /* written by an older moat local */
            extras = strstr(old, "\n# from ");
        if (extras) /* the extra files' text follows: theirs is not ours to keep */
            *extras = '\0';
        for (const char *p = old; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : "") {
            if (strncmp(p, "cpus = ", 7) != 0)
                continue;
            char *end;
            errno = 0;
            long n = strtol(p + 7, &end, 10);
            if (errno == 0 && *end == ';' && n > 0 && n <= 1000000) /* as --cpus-per-worker */
                cpus = (int)n;
            break;
        }
        free(old);
    }
    snprintf(ncpus, sizeof ncpus, "%d", cpus);
    /* N.B. the workers of one machine share its CPUs: each would pin its
     * tasks to the same first ones (wrk_bind.h), so only a lone worker pins */
    const char *keys[] = {"name", "controller", "state_dir", "curve_secret_key_file",
                          "controller_public_key_file", "cpu_bind", "cpus"};
    const char *vals[] = {qname, qep, qstate, qkey, qctlpub, nworkers > 1 ? "\"none\"" : "\"cpus\"",
                          ncpus};
    const char *extras[] = {extra_all, extra_one};
    if (write_conf(path, keys, vals, cpus > 0 ? 7 : 6, extras, 2) != 0) {
        snprintf(err, cap, "%s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- daemons ---- */

pid_t cli_daemon_pid(const struct cli_local *l, const char *name)
{
    char path[PATH_MAX + 32], line[32], conf[PATH_MAX + 32];
    cli_local_path(l, path, sizeof path, name, ".pid");
    if (cli_file_read_line(path, line, sizeof line) != 0)
        return 0;
    char *end;
    long pid = strtol(line, &end, 10);
    if (end == line || pid <= 1)
        return 0;
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/%ld/stat", pid);
    char *stat = cli_file_slurp(proc);
    if (stat == NULL)
        return 0;
    const char *rp = strrchr(stat, ')');
    bool zombie = rp && (rp[2] == 'Z' || rp[2] == 'X');
    free(stat);
    if (zombie)
        return 0;
    snprintf(proc, sizeof proc, "/proc/%ld/cmdline", pid);
    FILE *f = fopen(proc, "r");
    if (f == NULL)
        return 0;
    char cmd[PATH_MAX * 2];
    size_t n = fread(cmd, 1, sizeof cmd - 1, f);
    fclose(f);
    for (size_t i = 0; i < n; i++)
        if (cmd[i] == '\0')
            cmd[i] = ' ';
    cmd[n] = '\0';
    cli_local_path(l, conf, sizeof conf, name, ".conf");
    return strstr(cmd, conf) ? (pid_t)pid : 0;
}

pid_t cli_daemon_start(const struct cli_local *l, const char *prog, const char *name, char *err,
                          size_t cap)
{
    char bin[PATH_MAX + 32], conf[PATH_MAX + 32], log[PATH_MAX + 32], pidf[PATH_MAX + 32];
    snprintf(bin, sizeof bin, "%s/%s", l->bindir, prog);
    cli_local_path(l, conf, sizeof conf, name, ".conf");
    cli_local_path(l, log, sizeof log, name, ".log");
    cli_local_path(l, pidf, sizeof pidf, name, ".pid");
    if (access(bin, X_OK) != 0) {
        snprintf(err, cap, "%s: %s (build it with 'make')", bin, strerror(errno));
        return -1;
    }
    int logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (logfd < 0) {
        snprintf(err, cap, "%s: %s", log, strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, cap, "fork: %s", strerror(errno));
        close(logfd);
        return -1;
    }
    if (pid == 0) {
        setsid();
        int in = open("/dev/null", O_RDONLY);
        if (in >= 0)
            dup2(in, STDIN_FILENO);
        dup2(logfd, STDOUT_FILENO);
        dup2(logfd, STDERR_FILENO);
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
        if (chdir(l->dir) != 0)
            _exit(126);
        signal(SIGPIPE, SIG_DFL);
        execl(bin, bin, "-c", conf, (char *)NULL);
        dprintf(STDERR_FILENO, "moat local up: exec %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    close(logfd);
    char line[32];
    snprintf(line, sizeof line, "%ld\n", (long)pid);
    if (cli_file_write(pidf, line) != 0) {
        snprintf(err, cap, "%s: %s", pidf, strerror(errno));
        kill(pid, SIGKILL);
        return -1;
    }
    return pid;
}

void cli_daemon_last_log_line(const struct cli_local *l, const char *name, char *out, size_t cap)
{
    char path[PATH_MAX + 32];
    cli_local_path(l, path, sizeof path, name, ".log");
    char *text = cli_file_slurp(path);
    out[0] = '\0';
    if (text == NULL)
        return;
    size_t len = strlen(text);
    while (len && (text[len - 1] == '\n' || text[len - 1] == ' '))
        text[--len] = '\0';
    char *nl = strrchr(text, '\n');
    snprintf(out, cap, "%s", nl ? nl + 1 : text);
    free(text);
}

int cli_daemon_count_workers(const struct cli_local *l)
{
    int n = 0;
    for (;;) {
        char name[32], path[PATH_MAX + 32];
        snprintf(name, sizeof name, "worker-%d", n + 1);
        cli_local_path(l, path, sizeof path, name, ".conf");
        if (access(path, F_OK) != 0)
            return n;
        n++;
    }
}

int cli_local_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

bool cli_pid_alive(pid_t pid)
{
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/%ld/stat", (long)pid);
    char *stat = cli_file_slurp(proc);
    if (stat == NULL)
        return false;
    const char *rp = strrchr(stat, ')');
    bool z = rp && (rp[2] == 'Z' || rp[2] == 'X');
    free(stat);
    if (z)
        waitpid(pid, NULL, WNOHANG); /* ours (started by this process): reap */
    return !z;
}
