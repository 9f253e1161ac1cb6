/* log.c: timestamped single-write log lines on stderr. */
#include "shared/log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum log_level g_level = LOG_LEVEL_INFO;
static const char *const level_names[LOG_LEVEL_COUNT] = {"debug", "info", "warn", "error"};

void log_level_set(enum log_level level) { g_level = level; }

int log_level_parse(const char *name)
{
    for (int i = 0; i < LOG_LEVEL_COUNT; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

void log_msg(enum log_level level, const char *component, const char *fmt, ...)
{
    if (level < g_level)
        return;
    char line[2048];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (long)(tv.tv_usec / 1000), level_names[level], component);
    char msg[sizeof line];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t mlen = m < 0 ? 0 : (size_t)m < sizeof msg ? (size_t)m : sizeof msg - 1;
    /* One line per call, whatever a peer put in the strings it is quoted by:
     * control characters (C0, DEL, and C1 as UTF-8 writes them, U+0080..U+009F)
     * become \xNN, so a newline cannot start a forged line nor an escape
     * sequence drive a terminal. */
    size_t len = (size_t)n;
    for (size_t i = 0; i < mlen && len < sizeof line - 2; i++) {
        unsigned char c = (unsigned char)msg[i];
        bool c1 = c == 0xc2 && i + 1 < mlen && (unsigned char)msg[i + 1] >= 0x80 &&
                  (unsigned char)msg[i + 1] <= 0x9f;
        if (c >= 0x20 && c != 0x7f && !c1) {
            line[len++] = (char)c;
            continue;
        }
        if (c1)
            c = (unsigned char)msg[++i];
        if (len + 4 > sizeof line - 2)
            break;
        len += (size_t)snprintf(line + len, 5, "\\x%02x", c);
    }
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
