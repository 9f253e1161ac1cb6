/* cfg.c: table-driven libconfig loading with file:line: key: messages.
 *
 * Integers are read as written: libconfig 1.5 parses an integer literal without
 * the L suffix into an int and keeps its low 32 bits only (4294967299 becomes 3,
 * 6442450944 becomes -2147483648), and config_setting_get_int64 returns that.
 * So cfg_load scans the file's text for the literal given to each top-level key
 * (scan_ints) and takes that, after checking that its low 32 bits (all 64 for
 * an L literal) are what libconfig read: a scanner mistake is an error, never a
 * silently different number.
 */
#include "shared/cfg.h"

#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "shared/units.h"

static int in_bounds(const struct cfg_key *k, double v)
{
    return k->min == k->max || (v >= k->min && v <= k->max);
}

/* parse_text: a string value (or default) into the field. Fills why on failure. */
static int parse_text(const struct cfg_key *k, const char *text, void *out, char *why, size_t cap)
{
    char *field = (char *)out + k->offset;
    struct err e = {0};
    switch (k->type) {
    case CFG_STR:
        if (strlen(text) >= CFG_STR_MAX) {
            snprintf(why, cap, "longer than %d bytes", CFG_STR_MAX - 1);
            return -1;
        }
        strcpy(field, text);
        return 0;
    case CFG_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (errno || end == text || *end) {
            snprintf(why, cap, "expected an integer, got \"%.40s\"", text);
            return -1;
        }
        if (!in_bounds(k, (double)v)) {
            snprintf(why, cap, "%s is out of range [%.0f, %.0f]", text, k->min, k->max);
            return -1;
        }
        *(int64_t *)field = v;
        return 0;
    }
    case CFG_SIZE: {
        uint64_t v;
        if (units_size_parse(text, &v, &e) != 0) {
            snprintf(why, cap, "%.150s", e.msg); /* why: 160 bytes at most */
            return -1;
        }
        if (!in_bounds(k, (double)v)) {
            snprintf(why, cap, "\"%s\" is out of range [%.0f, %.0f] bytes", text, k->min, k->max);
            return -1;
        }
        *(uint64_t *)field = v;
        return 0;
    }
    case CFG_DURATION: {
        double v;
        if (units_duration_parse(text, &v, &e) != 0) {
            snprintf(why, cap, "%.150s", e.msg);
            return -1;
        }
        if (!in_bounds(k, v)) {
            snprintf(why, cap, "\"%s\" is out of range [%g s, %g s]", text, k->min, k->max);
            return -1;
        }
        *(double *)field = v;
        return 0;
    }
    case CFG_BOOL:
        if (!strcmp(text, "true"))
            *(int *)field = 1;
        else if (!strcmp(text, "false"))
            *(int *)field = 0;
        else {
            snprintf(why, cap, "expected true or false");
            return -1;
        }
        return 0;
    case CFG_STR_LIST: {
        struct cfg_list *l = (struct cfg_list *)field;
        memset(l, 0, sizeof *l);
        const char *p = text;
        while (*p) {
            const char *c = strchr(p, ',');
            size_t n = c ? (size_t)(c - p) : strlen(p);
            if (l->n >= CFG_LIST_MAX || n >= CFG_STR_MAX) {
                snprintf(why, cap, "too many or too long items");
                return -1;
            }
            memcpy(l->items[l->n], p, n);
            l->items[l->n++][n] = '\0';
            p += n + (c ? 1 : 0);
        }
        return 0;
    }
    default:
        snprintf(why, cap, "unknown key type");
        return -1;
    }
}

int cfg_defaults(const struct cfg_key *table, void *out, struct err *err)
{
    char why[160];
    for (const struct cfg_key *k = table; k->name; k++)
        if (parse_text(k, k->def, out, why, sizeof why) != 0 ||
            (k->check && k->check((char *)out + k->offset, why, sizeof why) != 0))
            return err_set(err, EINVAL, "default of %s: %s", k->name, why);
    return 0;
}

/* ---- integers as written ---- */

#define LITS_MAX 64

struct lit {
    char name[64];
    char text[48]; /* "" when the literal is longer */
};

struct lits {
    struct lit v[LITS_MAX];
    int n;
};

/* scan_ints: the integer literals given to top-level settings ("KEY = 12;" or
 * "KEY : 12L") in text, skipping comments (#, //, / * * /) and strings. Tokens as
 * libconfig 1.5's scanner (scanner.l) makes them: names [A-Za-z*][-A-Za-z0-9_*]*,
 * numbers from a digit, '.' or a sign. Floats are recorded too and
 * never looked up (their settings are not integers). */
static void scan_ints(const char *p, struct lits *out)
{
    char ident[64] = "", key[64] = "";
    int depth = 0;
    bool want = false; /* just after "KEY =" at the top level */
    out->n = 0;
    while (*p) {
        unsigned char c = (unsigned char)*p;
        if (isspace(c)) {
            p++;
        } else if (c == '#' || (c == '/' && p[1] == '/')) {
            while (*p && *p != '\n')
                p++;
        } else if (c == '/' && p[1] == '*') {
            p += 2;
            while (*p && !(p[0] == '*' && p[1] == '/'))
                p++;
            p += *p ? 2 : 0;
        } else if (c == '"') {
            for (p++; *p && *p != '"'; p++)
                if (*p == '\\' && p[1])
                    p++;
            p += *p ? 1 : 0;
            want = false;
        } else if (isalpha(c) || c == '*' || c == '@') {
            size_t n = 0;
            while (isalnum((unsigned char)*p) || (*p && strchr("_-*@", *p) != NULL)) {
                if (n < sizeof ident - 1)
                    ident[n++] = *p;
                p++;
            }
            ident[n] = '\0';
            want = false;
        } else if (c == '=' || c == ':') {
            want = depth == 0;
            if (want)
                memcpy(key, ident, sizeof key);
            p++;
        } else if (isdigit(c) || c == '.' ||
                   ((c == '+' || c == '-') && (isdigit((unsigned char)p[1]) || p[1] == '.'))) {
            const char *b = p++;
            bool hex = b[0] == '0' && (b[1] == 'x' || b[1] == 'X');
            while (isalnum((unsigned char)*p) || *p == '.' ||
                   ((*p == '+' || *p == '-') && !hex && (p[-1] == 'e' || p[-1] == 'E')))
                p++;
            if (want && out->n < LITS_MAX) {
                struct lit *l = &out->v[out->n++];
                memcpy(l->name, key, sizeof l->name);
                size_t n = (size_t)(p - b);
                n = n < sizeof l->text ? n : 0;
                memcpy(l->text, b, n);
                l->text[n] = '\0';
            }
            want = false;
        } else {
            depth += (c == '{' || c == '[' || c == '(') - (c == '}' || c == ']' || c == ')');
            want = false;
            p++;
        }
    }
}

/* int_as_written: s's integer as the file writes it: *v, and its text in lit
 * (cap >= 48). 0; 1 when the literal does not fit 64 bits (lit is filled);
 * -1 with why when it cannot be re-read or disagrees with libconfig. */
static int int_as_written(config_setting_t *s, const struct lits *lits, long long *v, char *lit,
                          char *why, size_t cap)
{
    const char *name = config_setting_name(s);
    long long lv = config_setting_get_int64(s);
    bool wide = config_setting_type(s) == CONFIG_TYPE_INT64;
    const struct lit *l = NULL;
    for (int i = 0; i < lits->n && l == NULL; i++)
        if (strcmp(lits->v[i].name, name) == 0)
            l = &lits->v[i];
    if (l == NULL || l->text[0] == '\0') {
        snprintf(why, cap, "cannot read this integer as written (libconfig reads %lld); "
                 "write it on the key's own line", lv);
        return -1;
    }
    snprintf(lit, 48, "%s", l->text);
    char digits[48];
    size_t n = strlen(l->text);
    while (n > 0 && (l->text[n - 1] == 'L' || l->text[n - 1] == 'l'))
        n--;
    memcpy(digits, l->text, n);
    digits[n] = '\0';
    const char *d = digits + (digits[0] == '+');
    bool hex = d[0] == '0' && (d[1] == 'x' || d[1] == 'X');
    char *end;
    errno = 0;
    long long mine = hex ? (long long)strtoull(d, &end, 16) : strtoll(d, &end, 10);
    if (*d == '\0' || *end != '\0') {
        snprintf(why, cap, "'%s': expected an integer", l->text);
        return -1;
    }
    if (errno == ERANGE)
        return 1;
    /* libconfig keeps the low 32 bits of a literal without L: they must agree */
    if (wide ? mine != lv : (int32_t)(uint32_t)(unsigned long long)mine != (int32_t)lv) {
        snprintf(why, cap, "cannot read '%s' as written (libconfig reads %lld)", l->text, lv);
        return -1;
    }
    *v = mine;
    return 0;
}

/* has_unit: text, a size or duration that parsed, names its unit: it holds a
 * letter, or is a [DD-]HH:MM:SS duration, or its number is zero (0 of
 * anything is 0). */
static bool has_unit(const char *text)
{
    bool zero = true;
    for (const char *c = text; *c; c++) {
        if (isalpha((unsigned char)*c) || *c == ':')
            return true;
        if (isdigit((unsigned char)*c) && *c != '0')
            zero = false;
    }
    return zero;
}

static int setting_value(const struct cfg_key *k, config_setting_t *s, const struct lits *lits,
                         void *out, char *why, size_t cap)
{
    char lit[48];
    long long iv = 0;
    int type = config_setting_type(s);
    switch (k->type) {
    case CFG_STR:
        if (type != CONFIG_TYPE_STRING) {
            snprintf(why, cap, "expected a string");
            return -1;
        }
        return parse_text(k, config_setting_get_string(s), out, why, cap);
    case CFG_DURATION:
        if (type != CONFIG_TYPE_STRING) {
            snprintf(why, cap, "expected a string with a unit, like \"30 s\"");
            return -1;
        }
        if (parse_text(k, config_setting_get_string(s), out, why, cap) != 0)
            return -1;
        if (!has_unit(config_setting_get_string(s))) {
            snprintf(why, cap, "give a unit, e.g. \"30 s\" (not \"%.40s\")", config_setting_get_string(s));
            return -1;
        }
        return 0;
    case CFG_SIZE: {
        if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64) {
            int r = int_as_written(s, lits, &iv, lit, why, cap);
            if (r < 0)
                return -1;
            if (r > 0 || iv != 0) { /* bytes? Slurm's megabytes? say which */
                snprintf(why, cap, "give a unit, e.g. \"8 GiB\" (not %s)", lit);
                return -1;
            }
            return parse_text(k, "0", out, why, cap);
        }
        if (type != CONFIG_TYPE_STRING) {
            snprintf(why, cap, "expected a size with a unit, like \"64 GiB\"");
            return -1;
        }
        const char *text = config_setting_get_string(s);
        if (parse_text(k, text, out, why, cap) != 0)
            return -1;
        if (!has_unit(text)) {
            snprintf(why, cap, "give a unit, e.g. \"8 GiB\" (not \"%.40s\")", text);
            return -1;
        }
        return 0;
    }
    case CFG_INT: {
        if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64) {
            snprintf(why, cap, "expected an integer");
            return -1;
        }
        int r = int_as_written(s, lits, &iv, lit, why, cap);
        if (r < 0)
            return -1;
        if (r > 0 || !in_bounds(k, (double)iv)) {
            if (k->min == k->max)
                snprintf(why, cap, "%s does not fit in 64 bits", lit);
            else
                snprintf(why, cap, "%s is out of range [%.0f, %.0f]", lit, k->min, k->max);
            return -1;
        }
        *(int64_t *)((char *)out + k->offset) = iv;
        return 0;
    }
    case CFG_BOOL:
        if (type != CONFIG_TYPE_BOOL) {
            snprintf(why, cap, "expected true or false");
            return -1;
        }
        *(int *)((char *)out + k->offset) = config_setting_get_bool(s);
        return 0;
    case CFG_STR_LIST: {
        struct cfg_list *l = (struct cfg_list *)((char *)out + k->offset);
        if (type == CONFIG_TYPE_STRING) {
            memset(l, 0, sizeof *l);
            const char *v = config_setting_get_string(s);
            if (strlen(v) >= CFG_STR_MAX) {
                snprintf(why, cap, "longer than %d bytes", CFG_STR_MAX - 1);
                return -1;
            }
            strcpy(l->items[0], v);
            l->n = 1;
            return 0;
        }
        if (type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST) {
            snprintf(why, cap, "expected a list of strings, like [\"a\", \"b\"]");
            return -1;
        }
        int n = config_setting_length(s);
        if (n > CFG_LIST_MAX) {
            snprintf(why, cap, "more than %d items", CFG_LIST_MAX);
            return -1;
        }
        memset(l, 0, sizeof *l);
        for (int i = 0; i < n; i++) {
            const char *v = config_setting_get_string_elem(s, i);
            if (v == NULL || strlen(v) >= CFG_STR_MAX) {
                snprintf(why, cap, "item %d: expected a string", i);
                return -1;
            }
            strcpy(l->items[l->n++], v);
        }
        return 0;
    }
    default:
        snprintf(why, cap, "unknown key type");
        return -1;
    }
}

/* source_of: where line of text (read from path) came from, as "FILE:LINE"
 * into out: a generated file (moat local up's) marks the text it copied with
 * a line CFG_FROM_MARK FILE before it, so that an error names the file the user
 * edits and its own line; else path and line. */
static void source_of(const char *path, const char *text, int line, char *out, size_t cap)
{
    const char *from = NULL;
    size_t flen = 0;
    int at = 0, cur = 1; /* the marker's line */
    for (const char *p = text; *p && cur < line; cur++) {
        if (strncmp(p, CFG_FROM_MARK, strlen(CFG_FROM_MARK)) == 0) {
            from = p + strlen(CFG_FROM_MARK);
            flen = strcspn(from, "\n");
            at = cur;
        }
        const char *nl = strchr(p, '\n');
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    if (from && flen > 0 && flen < 4096)
        snprintf(out, cap, "%.*s:%d", (int)flen, from, line - at);
    else
        snprintf(out, cap, "%s:%d", path, line);
}

/* read_text: the whole of the regular file path (< 16 MiB), NUL-terminated,
 * into *text (caller frees). errno values, naming path. */
static int read_text(const char *path, char **text, struct err *err)
{
    *text = NULL;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return err_set(err, errno, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return err_set(err, EINVAL, "%s: not a regular file", path);
    }
    char *t = st.st_size < (16 << 20) ? malloc((size_t)st.st_size + 1) : NULL;
    size_t len = t ? fread(t, 1, (size_t)st.st_size, f) : 0;
    if (t == NULL || ferror(f)) {
        free(t);
        fclose(f);
        return err_set(err, t ? EIO : EFBIG, "%s: %s", path, t ? "read error" : "larger than 16 MiB");
    }
    fclose(f);
    t[len] = '\0';
    *text = t;
    return 0;
}

bool cfg_where(const char *path, const char *key, char *out, size_t cap)
{
    snprintf(out, cap, "%s", path ? path : "defaults");
    char *text;
    struct err e = {0};
    if (path == NULL || read_text(path, &text, &e) != 0)
        return false;
    config_t cf;
    config_init(&cf);
    bool set = false;
    if (config_read_string(&cf, text) == CONFIG_TRUE) {
        config_setting_t *s = config_setting_get_member(config_root_setting(&cf), key);
        if (s != NULL) {
            source_of(path, text, config_setting_source_line(s), out, cap);
            set = true;
        }
    }
    config_destroy(&cf);
    free(text);
    return set;
}

int cfg_key_error(struct err *err, const char *path, const char *key, const char *fmt, ...)
{
    char where[4200], what[ERR_MSG_MAX];
    cfg_where(path, key, where, sizeof where);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return err_set(err, EINVAL, "%s: %s: %s", where, key, what);
}

int cfg_load(const char *path, const struct cfg_key *table, void *out, struct err *err)
{
    if (cfg_defaults(table, out, err) != 0)
        return -1;
    /* the text once, for libconfig and for scan_ints */
    char *text;
    if (read_text(path, &text, err) != 0)
        return -1;
    struct lits *lits = malloc(sizeof *lits);
    if (lits == NULL) {
        free(text);
        return err_set(err, ENOMEM, "%s: out of memory", path);
    }
    scan_ints(text, lits);
    config_t cf;
    config_init(&cf);
    int rc = -1;
    char where[4200];
    if (config_read_string(&cf, text) != CONFIG_TRUE) {
        source_of(path, text, config_error_line(&cf), where, sizeof where);
        err_set(err, EINVAL, "%s: %s", where, config_error_text(&cf));
        goto out;
    }
    config_setting_t *root = config_root_setting(&cf);
    int n = config_setting_length(root);
    for (int i = 0; i < n; i++) {
        config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
        const char *name = config_setting_name(s);
        const struct cfg_key *k = table;
        while (k->name && strcmp(k->name, name) != 0)
            k++;
        if (k->name == NULL) {
            source_of(path, text, config_setting_source_line(s), where, sizeof where);
            err_set(err, EINVAL, "%s: %s: unknown key", where, name);
            goto out;
        }
        char why[160];
        if (setting_value(k, s, lits, out, why, sizeof why) != 0 ||
            (k->check && k->check((char *)out + k->offset, why, sizeof why) != 0)) {
            source_of(path, text, config_setting_source_line(s), where, sizeof where);
            err_set(err, EINVAL, "%s: %s: %s", where, name, why);
            goto out;
        }
    }
    rc = 0;
out:
    config_destroy(&cf);
    free(lits);
    free(text);
    return rc;
}

/* ---- checks ---- */

int cfg_check_nonempty(const void *field, char *why, size_t cap)
{
    if (((const char *)field)[0] != '\0')
        return 0;
    snprintf(why, cap, "empty");
    return -1;
}

/* endpoint_check: ep is "tcp://HOST:PORT" (bind: HOST may be "*", PORT "*")
 * or "ipc://PATH"; the way libzmq reads them (zmq_tcp(7), zmq_ipc(7)), which
 * would otherwise take port 99999 modulo 65536. */
static int endpoint_check(const char *ep, bool bind, char *why, size_t cap)
{
    if (strncmp(ep, "ipc://", 6) == 0) {
        size_t n = strlen(ep + 6);
        if (n == 0 || n > 107) /* sun_path holds 108 bytes with the NUL (unix(7)) */
            snprintf(why, cap, "'%.200s': expected ipc://PATH, PATH 1-107 bytes", ep);
        return n == 0 || n > 107 ? -1 : 0;
    }
    if (strncmp(ep, "tcp://", 6) != 0) {
        snprintf(why, cap, "'%.200s': expected tcp://HOST:PORT or ipc://PATH", ep);
        return -1;
    }
    const char *host = ep + 6, *colon;
    if (host[0] == '[') { /* an IPv6 address: [::1]:7700 */
        const char *close = strchr(host, ']');
        colon = close && close[1] == ':' ? close + 1 : NULL;
    } else {
        colon = strrchr(host, ':');
    }
    if (colon == NULL || colon == host) {
        snprintf(why, cap, "'%.200s': expected tcp://HOST:PORT", ep);
        return -1;
    }
    if (!bind && colon - host == 1 && host[0] == '*') {
        snprintf(why, cap, "'%.200s': '*' is for listening; name the host", ep);
        return -1;
    }
    const char *port = colon + 1;
    if (bind && strcmp(port, "*") == 0)
        return 0;
    if (*port == '\0' || strspn(port, "0123456789") != strlen(port)) {
        snprintf(why, cap, "'%.200s': port '%.16s' is not a number%s", ep, port, bind ? " or '*'" : "");
        return -1;
    }
    if (strlen(port) > 5 || atoi(port) < 1 || atoi(port) > 65535) {
        snprintf(why, cap, "'%.200s': port out of range 1-65535", ep);
        return -1;
    }
    return 0;
}

int cfg_check_listen(const void *field, char *why, size_t cap)
{
    const struct cfg_list *l = field;
    for (int i = 0; i < l->n; i++)
        if (endpoint_check(l->items[i], true, why, cap) != 0)
            return -1;
    return 0;
}

int cfg_check_connect(const void *field, char *why, size_t cap)
{
    const char *ep = field;
    return ep[0] ? endpoint_check(ep, false, why, cap) : 0;
}
