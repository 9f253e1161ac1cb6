/* units.c: sizes, durations, begin times; see units.h for the accepted syntax. */
#include "shared/units.h"

#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *skip_ws(const char *s)
{
    while (*s && isspace((unsigned char)*s))
        s++;
    return s;
}

/* is_hex_prefix: s starts like a C hexadecimal number (0x...), which strtod reads. */
static bool is_hex_prefix(const char *s) { return s[0] == '0' && (s[1] == 'x' || s[1] == 'X'); }

int units_size_parse(const char *text, uint64_t *out, struct err *err)
{
    static const struct { const char *unit; double mult; } units[] = {
        {"", 1.0}, {"b", 1.0},
        {"k", 1024.0}, {"kib", 1024.0}, {"kb", 1e3},
        {"m", 1048576.0}, {"mib", 1048576.0}, {"mb", 1e6},
        {"g", 1073741824.0}, {"gib", 1073741824.0}, {"gb", 1e9},
        {"t", 1099511627776.0}, {"tib", 1099511627776.0}, {"tb", 1e12},
    };
    if (text == NULL)
        return err_set(err, EINVAL, "size: missing value");
    const char *s = skip_ws(text);
    if (*s == '-')
        return err_set(err, EINVAL, "size '%s': must not be negative", text);
    if ((!isdigit((unsigned char)*s) && *s != '.') || is_hex_prefix(s))
        return err_set(err, EINVAL, "size '%s': expected a number with a unit like \"64 GiB\"", text);
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || v < 0)
        return err_set(err, EINVAL, "size '%s': bad number", text);
    char unit[8] = {0};
    const char *u = skip_ws(end);
    size_t n = 0;
    while (u[n] && !isspace((unsigned char)u[n])) {
        if (n >= sizeof unit - 1)
            return err_set(err, EINVAL, "size '%s': unknown unit", text);
        unit[n] = (char)tolower((unsigned char)u[n]);
        n++;
    }
    if (*skip_ws(u + n) != '\0')
        return err_set(err, EINVAL, "size '%s': trailing characters", text);
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(unit, units[i].unit) == 0) {
            double bytes = v * units[i].mult;
            if (bytes > 1.8e19)
                return err_set(err, ERANGE, "size '%s': too large", text);
            *out = (uint64_t)llround(bytes);
            return 0;
        }
    }
    return err_set(err, EINVAL, "size '%s': unknown unit '%s' (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)",
                   text, unit);
}

static int colon_duration(const char *s, double *out)
{
    /* [DD-]HH:MM:SS or MM:SS or HH:MM:SS */
    long days = 0, f[3];
    int nf = 0;
    const char *p = s;
    char *end;
    const char *dash = strchr(s, '-');
    if (dash) {
        days = strtol(s, &end, 10);
        if (end != dash || days < 0)
            return -1;
        p = dash + 1;
    }
    while (nf < 3) {
        if (!isdigit((unsigned char)*p))
            return -1;
        f[nf++] = strtol(p, &end, 10);
        p = end;
        if (*p == ':')
            p++;
        else
            break;
    }
    if (*skip_ws(p) != '\0' || nf < 2)
        return -1;
    /* a clock's fields: minutes and seconds below 60 (1:99:00 is a typo, not 2:39:00) */
    if (f[nf - 1] > 59 || (nf == 3 && f[1] > 59) || (dash && nf == 3 && f[0] > 23))
        return -1;
    double secs = nf == 3 ? f[0] * 3600.0 + f[1] * 60.0 + f[2] : f[0] * 60.0 + f[1];
    *out = days * 86400.0 + secs;
    return 0;
}

int units_duration_parse(const char *text, double *out, struct err *err)
{
    if (text == NULL)
        return err_set(err, EINVAL, "duration: missing value");
    const char *s = skip_ws(text);
    if (*s == '\0')
        return err_set(err, EINVAL, "duration: empty");
    if (strchr(s, ':')) {
        if (colon_duration(s, out) == 0)
            return 0;
        return err_set(err, EINVAL, "duration '%s': expected [DD-]HH:MM:SS or MM:SS", text);
    }
    double total = 0;
    int terms = 0;
    while (*s) {
        char *end;
        errno = 0;
        if (*s == '-')
            return err_set(err, EINVAL, "duration '%s': must not be negative", text);
        /* decimal only: strtod would also read 0x10, inf, nan */
        if ((!isdigit((unsigned char)*s) && *s != '.') || is_hex_prefix(s))
            return err_set(err, EINVAL, "duration '%s': bad number", text);
        double v = strtod(s, &end);
        if (end == s || errno != 0 || v < 0 || !isfinite(v))
            return err_set(err, EINVAL, "duration '%s': bad number", text);
        s = skip_ws(end);
        char unit[8] = {0};
        size_t n = 0;
        while (isalpha((unsigned char)s[n])) {
            if (n >= sizeof unit - 1)
                return err_set(err, EINVAL, "duration '%s': unknown unit", text);
            unit[n] = (char)tolower((unsigned char)s[n]);
            n++;
        }
        double mult;
        /* the words too: Slurm's --begin takes now+1hour, now+3days */
        if (n == 0 || !strcmp(unit, "s") || !strcmp(unit, "sec") || !strcmp(unit, "secs") ||
            !strcmp(unit, "second") || !strcmp(unit, "seconds"))
            mult = 1;
        else if (!strcmp(unit, "ms"))
            mult = 1e-3;
        else if (!strcmp(unit, "us"))
            mult = 1e-6;
        else if (!strcmp(unit, "m") || !strcmp(unit, "min") || !strcmp(unit, "mins") ||
                 !strcmp(unit, "minute") || !strcmp(unit, "minutes"))
            mult = 60;
        else if (!strcmp(unit, "h") || !strcmp(unit, "hr") || !strcmp(unit, "hrs") ||
                 !strcmp(unit, "hour") || !strcmp(unit, "hours"))
            mult = 3600;
        else if (!strcmp(unit, "d") || !strcmp(unit, "day") || !strcmp(unit, "days"))
            mult = 86400;
        else if (!strcmp(unit, "w") || !strcmp(unit, "week") || !strcmp(unit, "weeks"))
            mult = 7 * 86400;
        else
            return err_set(err, EINVAL, "duration '%s': unknown unit '%s' (use ms, s, m, h, d, w)", text, unit);
        if (n == 0 && terms > 0)
            return err_set(err, EINVAL, "duration '%s': a unit is needed after each number", text);
        total += v * mult;
        terms++;
        s = skip_ws(s + n);
    }
    *out = total;
    return 0;
}

double units_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

double units_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int units_begin_parse(const char *text, double now, double *out, struct err *err)
{
    if (text == NULL || *text == '\0')
        return err_set(err, EINVAL, "begin: missing value");
    /* sbatch's words for times of day (sbatch(1), --begin) */
    static const struct { const char *word, *time; } words[] = {
        {"today", NULL}, {"midnight", "00:00"}, {"tomorrow", "00:00"}, {"noon", "12:00"},
        {"fika", "15:00"}, {"teatime", "16:00"}};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++) {
        if (strcasecmp(text, words[i].word) != 0)
            continue;
        if (words[i].time == NULL) { /* the start of today: already past */
            *out = now;
            return 0;
        }
        return units_begin_parse(words[i].time, now, out, err);
    }
    if (strncasecmp(text, "now", 3) == 0) {
        const char *rest = text + 3;
        if (*rest == '\0') {
            *out = now;
            return 0;
        }
        if (*rest != '+')
            return err_set(err, EINVAL, "begin '%s': expected now+DURATION", text);
        double d;
        if (units_duration_parse(rest + 1, &d, err) != 0)
            return err_prefix(err, "begin");
        *out = now + d;
        return 0;
    }
    int Y, Mo, D, h = 0, mi = 0, sec = 0, used = 0;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (sscanf(text, "%4d-%2d-%2d%n", &Y, &Mo, &D, &used) == 3) {
        const char *p = text + used;
        int utc = 0;
        if (*p == 'T' || *p == ' ') {
            int u2 = 0;
            if (sscanf(p + 1, "%2d:%2d%n", &h, &mi, &u2) != 2)
                return err_set(err, EINVAL, "begin '%s': expected YYYY-MM-DDTHH:MM[:SS]", text);
            p += 1 + u2;
            if (*p == ':') {
                int u3 = 0;
                if (sscanf(p + 1, "%2d%n", &sec, &u3) != 1)
                    return err_set(err, EINVAL, "begin '%s': bad seconds", text);
                p += 1 + u3;
            }
        }
        if (*p == 'Z') {
            utc = 1;
            p++;
        }
        if (*p != '\0' || Mo < 1 || Mo > 12 || D < 1 || D > 31 || h > 23 || mi > 59 || sec > 60 ||
            h < 0 || mi < 0 || sec < 0)
            return err_set(err, EINVAL, "begin '%s': not a valid ISO 8601 date and time", text);
        tm.tm_year = Y - 1900;
        tm.tm_mon = Mo - 1;
        tm.tm_mday = D;
        tm.tm_hour = h;
        tm.tm_min = mi;
        tm.tm_sec = sec;
        tm.tm_isdst = -1;
        time_t t = utc ? timegm(&tm) : mktime(&tm);
        if (t == (time_t)-1)
            return err_set(err, EINVAL, "begin '%s': time out of range", text);
        /* mktime moves 2024-02-30 to March 1st: a date it had to move does not exist */
        if (tm.tm_mday != D || tm.tm_mon != Mo - 1 || tm.tm_year != Y - 1900)
            return err_set(err, EINVAL, "begin '%s': %04d-%02d has no day %d", text, Y, Mo, D);
        *out = (double)t;
        return 0;
    }
    if (sscanf(text, "%2d:%2d%n", &h, &mi, &used) == 2) {
        const char *p = text + used;
        if (*p == ':') {
            int u3 = 0;
            if (sscanf(p + 1, "%2d%n", &sec, &u3) != 1)
                return err_set(err, EINVAL, "begin '%s': bad seconds", text);
            p += 1 + u3;
        }
        if (*p != '\0' || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59)
            return err_set(err, EINVAL, "begin '%s': expected HH:MM[:SS]", text);
        time_t tn = (time_t)now;
        localtime_r(&tn, &tm);
        tm.tm_hour = h;
        tm.tm_min = mi;
        tm.tm_sec = sec;
        tm.tm_isdst = -1;
        time_t t = mktime(&tm);
        if ((double)t <= now) {
            tm.tm_mday += 1;
            tm.tm_isdst = -1;
            t = mktime(&tm);
        }
        *out = (double)t;
        return 0;
    }
    return err_set(err, EINVAL,
                   "begin '%s': expected now, now+DURATION, HH:MM, YYYY-MM-DD[THH:MM[:SS]], today, "
                   "tomorrow, midnight, noon, fika or teatime", text);
}

char *units_duration_format(double seconds, char *buf, int cap)
{
    if (seconds < 0 || !isfinite(seconds))
        seconds = 0;
    long s = (long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(buf, (size_t)cap, "%ldh%02ldm%02lds", s / 3600, (s / 60) % 60, s % 60);
    else if (s >= 60)
        snprintf(buf, (size_t)cap, "%ldm%02lds", s / 60, s % 60);
    else
        snprintf(buf, (size_t)cap, "%lds", s);
    return buf;
}
