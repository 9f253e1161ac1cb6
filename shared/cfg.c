/* cfg.c: table-driven libconfig loading with file:line: key: messages. */
#include "shared/cfg.h"

#include <errno.h>
#include <libconfig.h>
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
            snprintf(why, cap, "%lld is out of range [%.0f, %.0f]", v, k->min, k->max);
            return -1;
        }
        *(int64_t *)field = v;
        return 0;
    }
    case CFG_SIZE: {
        uint64_t v;
        if (units_size_parse(text, &v, &e) != 0) {
            snprintf(why, cap, "%s", e.msg);
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
            snprintf(why, cap, "%s", e.msg);
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
        if (parse_text(k, k->def, out, why, sizeof why) != 0)
            return err_set(err, EINVAL, "default of %s: %s", k->name, why);
    return 0;
}

static int setting_value(const struct cfg_key *k, config_setting_t *s, void *out, char *why,
                         size_t cap)
{
    char buf[64];
    int type = config_setting_type(s);
    switch (k->type) {
    case CFG_STR:
    case CFG_DURATION:
        if (type != CONFIG_TYPE_STRING) {
            snprintf(why, cap, k->type == CFG_STR ? "expected a string"
                                                  : "expected a string with a unit, like \"30 s\"");
            return -1;
        }
        return parse_text(k, config_setting_get_string(s), out, why, cap);
    case CFG_SIZE:
        if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64) {
            snprintf(buf, sizeof buf, "%lld", config_setting_get_int64(s));
            return parse_text(k, buf, out, why, cap);
        }
        if (type != CONFIG_TYPE_STRING) {
            snprintf(why, cap, "expected a size with a unit, like \"64 GiB\"");
            return -1;
        }
        return parse_text(k, config_setting_get_string(s), out, why, cap);
    case CFG_INT:
        if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64) {
            snprintf(why, cap, "expected an integer");
            return -1;
        }
        snprintf(buf, sizeof buf, "%lld", config_setting_get_int64(s));
        return parse_text(k, buf, out, why, cap);
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

int cfg_load(const char *path, const struct cfg_key *table, void *out, struct err *err)
{
    if (cfg_defaults(table, out, err) != 0)
        return -1;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return err_set(err, errno, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return err_set(err, EINVAL, "%s: not a regular file", path);
    }
    config_t cf;
    config_init(&cf);
    int rc = -1;
    if (config_read(&cf, f) != CONFIG_TRUE) {
        err_set(err, EINVAL, "%s:%d: %s", path, config_error_line(&cf), config_error_text(&cf));
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
            err_set(err, EINVAL, "%s:%d: %s: unknown key", path, config_setting_source_line(s), name);
            goto out;
        }
        char why[160];
        if (setting_value(k, s, out, why, sizeof why) != 0) {
            err_set(err, EINVAL, "%s:%d: %s: %s", path, config_setting_source_line(s), name, why);
            goto out;
        }
    }
    rc = 0;
out:
    config_destroy(&cf);
    fclose(f);
    return rc;
}
