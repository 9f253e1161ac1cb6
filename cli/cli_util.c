/* cli_util.c: messages, option parsing, requests and output shared by the commands. */
#include "cli/cli.h"

#include "shared/text.h"
#include "shared/units.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <utf8proc.h>

static char last_error[1100]; /* the first failure's line, for cli_json_error */
static bool stdout_claimed;

int cli_fail(const struct cli *cli, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fflush(stdout);
    /* the controller's message may start with the command's own name
     * ("admin node remove: ..."): said once */
    const char *m = msg;
    size_t cl = cli->cmd ? strlen(cli->cmd) : 0;
    if (cl && strncmp(m, cli->cmd, cl) == 0 && m[cl] == ':' && m[cl + 1] == ' ')
        m += cl + 2;
    fprintf(stderr, "moat%s%s: %s\n", cli->cmd ? " " : "", cli->cmd ? cli->cmd : "", m);
    if (last_error[0] == '\0')
        snprintf(last_error, sizeof last_error, "moat%s%s: %s", cli->cmd ? " " : "",
                 cli->cmd ? cli->cmd : "", m);
    return code;
}

void cli_stdout_claim(void) { stdout_claimed = true; }

void cli_json_error(int code)
{
    if (stdout_claimed)
        return;
    json_t *o = json_pack("{s:s, s:i}", "error", last_error[0] ? last_error : "failed (see stderr)",
                          "exit", code);
    if (o)
        cli_json_print(o);
    json_decref(o);
}

int cli_out_open(const struct cli *cli, struct cli_out *o, const char *opt, const char *path)
{
    o->f = stdout;
    o->opt = opt;
    o->path = path;
    o->tmp[0] = '\0';
    if (path == NULL) /* N.B. stdout is claimed at the first write (cli_stdout_claim) */
        return CLI_OK;
    if (path[0] == '\0')
        return cli_fail(cli, CLI_USAGE, "%s: empty file name", opt);
    struct stat sb;
    bool exists = stat(path, &sb) == 0;
    if (exists && !S_ISREG(sb.st_mode)) {
        if ((o->f = fopen(path, "wb")) == NULL)
            return cli_fail(cli, CLI_USAGE, "%s: %s: %s", opt, path, strerror(errno));
        return CLI_OK;
    }
    /* a link to a file: the file it names is replaced, not the link */
    if (exists && realpath(path, o->real) != NULL)
        o->path = o->real;
    if ((size_t)snprintf(o->tmp, sizeof o->tmp, "%s.XXXXXX", o->path) >= sizeof o->tmp)
        return cli_fail(cli, CLI_USAGE, "%s: %s: path too long", opt, path);
    int fd = mkstemp(o->tmp);
    if (fd < 0 && (errno == EACCES || errno == EPERM || errno == EROFS)) {
        /* no room beside it for a temporary (a file one may write in a directory
         * one may not): write the file itself, as before */
        o->tmp[0] = '\0';
        if ((o->f = fopen(path, "wb")) == NULL)
            return cli_fail(cli, CLI_USAGE, "%s: %s: %s", opt, path, strerror(errno));
        return CLI_OK;
    }
    if (fd < 0) {
        int e = errno;
        o->tmp[0] = '\0';
        return cli_fail(cli, CLI_USAGE, "%s: %s: %s", opt, path, strerror(e));
    }
    mode_t mask = umask(0);
    umask(mask);
    mode_t mode = exists ? sb.st_mode & 07777 : 0666 & ~mask; /* an existing file keeps its mode */
    if (fchmod(fd, mode) != 0 || (o->f = fdopen(fd, "wb")) == NULL) {
        int e = errno;
        close(fd);
        unlink(o->tmp);
        o->tmp[0] = '\0';
        o->f = stdout;
        return cli_fail(cli, CLI_USAGE, "%s: %s: %s", opt, path, strerror(e));
    }
    return CLI_OK;
}

int cli_out_finish(const struct cli *cli, struct cli_out *o, int rc)
{
    if (o->f == stdout || o->f == NULL)
        return rc;
    /* a write that failed (a full disk, a file size limit) leaves its error
     * here: fclose alone does not see an fwrite too large for the buffer */
    errno = 0;
    if (rc == CLI_OK && fflush(o->f) != 0 && errno != 0)
        rc = cli_fail(cli, CLI_FAILED, "%s: %s: %s", o->opt, o->path, strerror(errno));
    else if (rc == CLI_OK && ferror(o->f)) /* the failed write's errno is gone */
        rc = cli_fail(cli, CLI_FAILED, "%s: %s: a write failed (a full disk, or a file size limit)",
                      o->opt, o->path);
    int e = fclose(o->f) != 0 ? errno : 0; /* NFS, quotas: an error may wait for the close */
    o->f = NULL;
    if (rc == CLI_OK && e != 0)
        rc = cli_fail(cli, CLI_FAILED, "%s: %s: %s", o->opt, o->path, strerror(e));
    return rc;
}

int cli_out_close(const struct cli *cli, struct cli_out *o, int rc)
{
    if (o->f == stdout)
        return rc;
    rc = cli_out_finish(cli, o, rc);
    o->f = stdout;
    if (o->tmp[0] == '\0')
        return rc;
    if (rc == CLI_OK && rename(o->tmp, o->path) != 0)
        rc = cli_fail(cli, CLI_FAILED, "%s: %s: %s", o->opt, o->path, strerror(errno));
    if (rc != CLI_OK)
        unlink(o->tmp);
    o->tmp[0] = '\0';
    return rc;
}

int cli_usage_error(const struct cli *cli, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return cli_fail(cli, CLI_USAGE, "%s (see 'moat %s --help')", msg, cli->cmd ? cli->cmd : "");
}

int cli_getopt(struct cli *cli, int argc, char **argv, const char *shortopts,
               const struct option *longopts, const char *help, bool *first)
{
    char opts[64];
    /* ':' first: report a missing argument as ':' rather than '?'. A leading '+'
     * from the caller (submit) stops at the first non-option; otherwise options
     * may follow positional arguments ("moat wait 17 --timeout 5m"). */
    bool stop = shortopts[0] == '+';
    snprintf(opts, sizeof opts, "%s:h%s", stop ? "+" : "", shortopts + (stop ? 1 : 0));
    if (*first) {
        optind = 0; /* glibc: full re-initialisation */
        opterr = 0;
        *first = false;
    }
    for (;;) {
        int c = getopt_long(argc, argv, opts, longopts, NULL);
        const char *bad = optind > 0 && optind - 1 < argc ? argv[optind - 1] : "?";
        switch (c) {
        case CLI_OPT_JSON:
            cli->json = true;
            continue;
        case CLI_OPT_CONTROLLER:
            cli->controller = optarg;
            continue;
        case CLI_OPT_HELP:
            fputs(help, stdout);
            return CLI_OPT_HELP;
        case ':':
            if (optopt && optopt < 0x100 && optopt != CLI_OPT_HELP && bad[0] == '-' && bad[1] != '-')
                cli_usage_error(cli, "-%c: missing value", optopt);
            else
                cli_usage_error(cli, "%s: missing value", bad);
            return '?';
        case '?': {
            if (optopt && optopt < 0x100) {
                cli_usage_error(cli, "unknown option '-%c'", optopt);
                return '?';
            }
            /* getopt_long takes a unique prefix: say which options a prefix
             * could be rather than that it is unknown */
            char names[200] = "";
            size_t len = 0, plen = bad[0] == '-' && bad[1] == '-' ? strcspn(bad + 2, "=") : 0;
            int n = 0;
            for (int k = 0; plen > 0 && longopts[k].name; k++)
                if (strncmp(longopts[k].name, bad + 2, plen) == 0 && len + 40 < sizeof names) {
                    len += (size_t)snprintf(names + len, sizeof names - len, "%s--%s", n ? ", " : "",
                                            longopts[k].name);
                    n++;
                }
            if (n > 1)
                cli_usage_error(cli, "ambiguous option '%.*s': %s", (int)(plen + 2), bad, names);
            else
                cli_usage_error(cli, "unknown option '%s'", bad);
            return '?';
        }
        default:
            return c;
        }
    }
}

int cli_jobtask_parse(const struct cli *cli, const char *text, uint64_t *id, long long *index)
{
    char jobarg[32];
    const char *us = strchr(text, '_');
    size_t len = us ? (size_t)(us - text) : strlen(text);
    if (len >= sizeof jobarg)
        return cli_fail(cli, CLI_USAGE, "job id '%.40s...': too long", text);
    memcpy(jobarg, text, len);
    jobarg[len] = '\0';
    *index = -1;
    if (us && cli_parse_int(cli, "JOB_I", us + 1, 0, 4294967295LL, index) != 0)
        return CLI_USAGE;
    struct err err = {0};
    if (client_jobid_parse(jobarg, id, &err) != 0)
        return cli_fail(cli, CLI_USAGE, "%s", err.msg);
    return CLI_OK;
}

int cli_parse_int(const struct cli *cli, const char *opt, const char *text, long long min,
                  long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0') {
        cli_fail(cli, CLI_USAGE, "%s: '%s': expected an integer", opt, text);
        return -1;
    }
    if (v < min || v > max) {
        cli_fail(cli, CLI_USAGE, "%s: %lld out of range [%lld, %lld]", opt, v, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_endpoint(const struct cli *cli, char *buf, size_t cap)
{
    if (cli->controller && *cli->controller) {
        snprintf(buf, cap, "%s", cli->controller);
        return 0;
    }
    if (cli->controller) /* given, and empty: not a reason to try another */
        return cli_fail(cli, CLI_USAGE, "--controller: empty endpoint");
    const char *env = getenv("MOAT_CONTROLLER");
    if (env && *env) {
        snprintf(buf, cap, "%s", env);
        return 0;
    }
    const char *dir = getenv("MOAT_DIR");
    if (dir == NULL || *dir == '\0')
        dir = ".moat";
    char path[4096];
    snprintf(path, sizeof path, "%s/endpoint", dir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return cli_fail(cli, CLI_UNREACHABLE,
                        "no controller: %s: %s (use --controller ENDPOINT, set MOAT_CONTROLLER, "
                        "set MOAT_DIR, or start one with 'moat local up')",
                        path, strerror(errno));
    if (fgets(buf, (int)cap, f) == NULL)
        buf[0] = '\0';
    fclose(f);
    buf[strcspn(buf, "\r\n")] = '\0';
    if (buf[0] == '\0')
        return cli_fail(cli, CLI_UNREACHABLE, "no controller: %s is empty", path);
    return 0;
}

int cli_connect(struct cli *cli)
{
    if (cli->client)
        return 0;
    char ep[512];
    int rc = cli_endpoint(cli, ep, sizeof ep);
    if (rc != 0)
        return rc;
    struct err err = {0};
    struct net_curve curve;
    if (client_keys_load(&curve, NULL, true, &err) != 0)
        return cli_fail(cli, err.code == ENOENT ? CLI_UNREACHABLE : CLI_USAGE,
                        "%s (every link uses CURVE: 'moat local up' writes client.key and "
                        "controller.pub into its dir; or set MOAT_KEY and MOAT_CONTROLLER_KEY)",
                        err.msg);
    cli->client = client_create_curve(ep, &curve, &err);
    memset(curve.secret_key, 0, sizeof curve.secret_key);
    if (cli->client == NULL)
        return cli_fail(cli, err.code == EINVAL ? CLI_USAGE : CLI_UNREACHABLE, "controller '%s': %s",
                        ep, err.msg);
    return 0;
}

int cli_request(struct cli *cli, enum proto_type type, json_t *body, bool user_arg,
                json_t **reply, struct proto_msg *blobs, int *code)
{
    return cli_request_blobs(cli, type, body, NULL, 0, user_arg, reply, blobs, code);
}

int cli_request_blobs(struct cli *cli, enum proto_type type, json_t *body,
                      const struct proto_blob *send, int nsend, bool user_arg, json_t **reply,
                      struct proto_msg *blobs, int *code)
{
    *reply = NULL;
    if (code)
        *code = 0;
    int rc = cli_connect(cli);
    if (rc != 0) {
        json_decref(body);
        return rc;
    }
    struct proto_msg msg;
    struct err err = {0};
    /* Requests that are safe to repeat are sent again (1 s, 2 s, 4 s, ...) until
     * cli->timeout passes, so that a controller restart in between costs a
     * retry rather than an error; the first reply to any of the sends is the
     * answer. SUBMIT is sent once: a repeat could make two jobs. */
    bool repeat = type != PROTO_TYPE_SUBMIT;
    if (client_call_repeat(cli->client, type, body, send, nsend, cli->timeout, repeat, &msg, NULL,
                           &err) != 0) {
        json_decref(body);
        if (err.code == EACCES) /* the link itself was refused */
            return cli_fail(cli, CLI_UNREACHABLE, "%s", err.msg);
        char why[CLIENT_WHY_MAX];
        if (err.code == ETIMEDOUT && client_link_why(cli->client, why, sizeof why))
            return cli_fail(cli, CLI_UNREACHABLE, "%s", why);
        if (err.code == ETIMEDOUT) {
            char buf[32];
            return cli_fail(cli, CLI_UNREACHABLE, "cannot reach the controller at %s: no reply in %s",
                            client_endpoint(cli->client),
                            units_duration_format(cli->timeout, buf, sizeof buf));
        }
        return cli_fail(cli, CLI_FAILED, "%s", err.msg);
    }
    json_decref(body);
    if (client_reply_error(&msg, &err) != 0) {
        proto_msg_clear(&msg);
        if (code)
            *code = err.code;
        bool bad_input = user_arg && (err.code == EINVAL || err.code == ENOENT);
        if (err.code == EACCES && (strstr(err.msg, " key may not ") || strstr(err.msg, "key revoked") ||
                                   strstr(err.msg, "not in the allowlist"))) {
            /* refused for the key itself (ctl_auth_check): say which key this was */
            char key[512];
            return cli_fail(cli, CLI_FAILED, "%s; this command used the key in %s%s", err.msg,
                            client_key_path(key, sizeof key, NULL, true),
                            getenv("MOAT_KEY") && *getenv("MOAT_KEY") ? " (MOAT_KEY)" : "");
        }
        return cli_fail(cli, bad_input ? CLI_USAGE : CLI_FAILED, "%s", err.msg);
    }
    *reply = json_incref(msg.body);
    if (blobs)
        *blobs = msg; /* hand the frames over */
    else
        proto_msg_clear(&msg);
    return 0;
}

void cli_print_word(FILE *f, const char *s)
{
    /* N.B. no ',' '{' '}': bash's brace expansion would split {a,b} */
    static const char safe[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:+@%";
    if (s[0] && strspn(s, safe) == strlen(s)) {
        fputs(s, f);
        return;
    }
    if (!text_has_controls(s, strlen(s))) { /* '...' with each ' as '\'' */
        fputc('\'', f);
        for (const char *p = s; *p; p++)
            fputs(*p == '\'' ? "'\\''" : (char[]){*p, 0}, f);
        fputc('\'', f);
        return;
    }
    fputs("$'", f); /* bash/ksh/zsh ANSI-C quoting */
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\'' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (text_is_c1(p)) /* C1: its two UTF-8 bytes */
            fprintf(f, "\\xc2\\x%02x", *++p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\x%02x", *p);
        else
            fputc(*p, f);
    }
    fputc('\'', f);
}

void cli_json_print(const json_t *doc)
{
    stdout_claimed = true;
    size_t flags = JSON_ENCODE_ANY | (isatty(STDOUT_FILENO) ? JSON_INDENT(2) : JSON_COMPACT);
    json_dumpf(doc, stdout, flags);
    fputc('\n', stdout);
}

int cli_next_check(const struct cli *cli, long long asked, long long next)
{
    if (next >= 0 && next <= asked)
        return cli_fail(cli, CLI_FAILED, "the controller's next page (%lld) does not follow the one "
                        "asked for (%lld); stopped", next, asked);
    return CLI_OK;
}

/* pages_write: items (stolen) then the later pages' items, comma-separated;
 * each later page's extra array (rows) appended to extra. */
static int pages_write(struct cli *cli, const struct cli_pages *pg, json_t *tasks, long long next,
                       json_t *extra, FILE *out)
{
    bool first = true;
    for (;;) {
        size_t i;
        const json_t *t;
        json_array_foreach(tasks, i, t) {
            if (!first)
                fputc(',', out);
            json_dumpf(t, out, JSON_COMPACT);
            first = false;
        }
        json_decref(tasks);
        if (next < 0)
            return CLI_OK;
        json_t *r;
        long long asked = next;
        int rc = pg->page(cli, pg->ctx, next, &r);
        if (rc != CLI_OK)
            return rc;
        const json_t *n = json_object_get(r, pg->next_key);
        next = json_is_integer(n) ? json_integer_value(n) : -1;
        if ((rc = cli_next_check(cli, asked, next)) != CLI_OK) {
            json_decref(r);
            return rc;
        }
        tasks = json_incref(json_object_get(r, pg->list_key));
        if (extra)
            json_array_extend(extra, json_object_get(r, pg->extra_key));
        json_decref(r);
    }
}

int cli_paged_json(struct cli *cli, json_t *reply, const struct cli_pages *pg, FILE *out)
{
    const json_t *n = json_object_get(reply, pg->next_key);
    long long next = json_is_integer(n) ? json_integer_value(n) : -1;
    json_object_del(reply, pg->next_key);
    if (out == stdout)
        cli_stdout_claim();
    if (next < 0) {
        if (out == stdout) {
            cli_json_print(reply);
        } else {
            json_dumpf(reply, out, JSON_COMPACT);
            fputc('\n', out);
        }
        json_decref(reply);
        return CLI_OK;
    }
    json_t *items = json_incref(json_object_get(reply, pg->list_key));
    json_t *extra = pg->extra_key ? json_incref(json_object_get(reply, pg->extra_key)) : NULL;
    json_object_del(reply, pg->list_key);
    if (pg->extra_key)
        json_object_del(reply, pg->extra_key);
    char *head = json_dumps(reply, JSON_COMPACT);
    json_decref(reply);
    size_t hl = head ? strlen(head) : 0;
    if (hl < 2) {
        free(head);
        json_decref(items);
        json_decref(extra);
        return cli_fail(cli, CLI_FAILED, "out of memory");
    }
    head[hl - 1] = '\0'; /* its closing brace: the list goes in first */
    fprintf(out, "%s%s\"%s\":[", head, hl > 2 ? "," : "", pg->list_key);
    free(head);
    int rc = pages_write(cli, pg, items, next, extra, out);
    fputc(']', out); /* also when cut short: what came is valid JSON; rc says it is cut */
    if (extra) {
        fprintf(out, ",\"%s\":", pg->extra_key);
        json_dumpf(extra, out, JSON_COMPACT);
        json_decref(extra);
    }
    fputs("}\n", out);
    return rc;
}

struct cli_table {
    int ncols, nrows, cap;
    char **cells; /* nrows * ncols, row 0 the header */
    char align[16];
    int width[16];     /* the widest cell so far per column (cli_table_flush) */
    bool header_shown; /* row 0 was printed by an earlier cli_table_flush */
};

struct cli_table *cli_table_create(int ncols, const char *const *header, const char *align)
{
    struct cli_table *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->ncols = ncols;
    snprintf(t->align, sizeof t->align, "%s", align);
    cli_table_add(t, header);
    return t;
}

void cli_table_add(struct cli_table *t, const char *const *cells)
{
    if (t == NULL)
        return;
    if (t->nrows == t->cap) {
        int cap = t->cap ? t->cap * 2 : 16;
        char **grown = realloc(t->cells, (size_t)cap * (size_t)t->ncols * sizeof *grown);
        if (grown == NULL)
            return;
        t->cells = grown;
        t->cap = cap;
    }
    for (int i = 0; i < t->ncols; i++)
        t->cells[t->nrows * t->ncols + i] = strdup(cells[i] ? cells[i] : "");
    t->nrows++;
}

void cli_table_min_width(struct cli_table *t, int col, int width)
{
    if (t && col >= 0 && col < 16 && width > t->width[col])
        t->width[col] = width;
}

/* display_width: the terminal columns s takes: UTF-8 code points by
 * utf8proc_charwidth (wide CJK 2, combining marks 0), a byte that is not
 * UTF-8 one column (as a terminal shows a replacement character). */
static int display_width(const char *s)
{
    int w = 0;
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    while (*p) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate(p, -1, &cp);
        if (n <= 0) {
            w++;
            p++;
            continue;
        }
        w += utf8proc_charwidth(cp);
        p += n;
    }
    return w;
}

void cli_table_flush(struct cli_table *t)
{
    if (t == NULL)
        return;
    int *width = t->width;
    for (int r = 0; r < t->nrows; r++)
        for (int c = 0; c < t->ncols && c < 16; c++) {
            const char *s = t->cells[r * t->ncols + c];
            int w = s ? display_width(s) : 0;
            if (w > width[c])
                width[c] = w;
        }
    for (int r = t->header_shown ? 1 : 0; r < t->nrows; r++) {
        for (int c = 0; c < t->ncols && c < 16; c++) {
            const char *s = t->cells[r * t->ncols + c];
            s = s ? s : "";
            bool last = c == t->ncols - 1;
            int pad = width[c] - display_width(s); /* printf's widths count bytes */
            if (t->align[c] == 'r')
                printf("%*s%s", pad > 0 ? pad : 0, "", s);
            else if (last)
                printf("%s", s);
            else
                printf("%s%*s", s, pad > 0 ? pad : 0, "");
            if (!last)
                fputs("  ", stdout);
        }
        fputc('\n', stdout);
    }
    for (int i = t->ncols; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    t->nrows = t->nrows ? 1 : 0; /* keep the header */
    t->header_shown = true;
}

void cli_table_print(struct cli_table *t)
{
    if (t == NULL)
        return;
    cli_table_flush(t);
    cli_table_free(t);
}

void cli_table_free(struct cli_table *t)
{
    if (t == NULL)
        return;
    for (int i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}

long long cli_json_int(const json_t *obj, const char *key, long long def)
{
    const json_t *v = json_object_get(obj, key);
    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_real(v))
        return (long long)json_real_value(v);
    return def;
}

double cli_json_num(const json_t *obj, const char *key, double def)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_number(v) ? json_number_value(v) : def;
}

const char *cli_json_str(const json_t *obj, const char *key, const char *def)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : def;
}

char *cli_time_format(double t, char *buf, int cap)
{
    if (!(t > 0)) {
        snprintf(buf, (size_t)cap, "-");
        return buf;
    }
    time_t tt = (time_t)t, now = time(NULL);
    struct tm tm, tn;
    localtime_r(&tt, &tm);
    localtime_r(&now, &tn);
    if (tm.tm_year == tn.tm_year && tm.tm_yday == tn.tm_yday)
        strftime(buf, (size_t)cap, "%H:%M:%S", &tm);
    else
        strftime(buf, (size_t)cap, "%Y-%m-%d %H:%M", &tm);
    return buf;
}
