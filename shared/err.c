/* err.c: construction of struct err values. */
#include "shared/err.h"
#include "shared/text.h"

#include <stdio.h>
#include <string.h>

int err_set(struct err *err, int code, const char *fmt, ...)
{
    if (err == NULL)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    text_utf8_repair(err->msg); /* a cut message stays UTF-8: it goes into JSON */
    err->code = code;
    return -1;
}

int err_prefix(struct err *err, const char *fmt, ...)
{
    if (err == NULL)
        return -1;
    char head[ERR_MSG_MAX], old[ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    size_t n = strlen(head);
    if (n > sizeof err->msg - 3) {
        n = sizeof err->msg - 3;
        head[n] = '\0';
        n = strlen(text_utf8_trim(head)); /* a character cut before the ": " */
    }
    memcpy(err->msg, head, n);
    memcpy(err->msg + n, ": ", 2);
    size_t rest = sizeof err->msg - n - 3;
    size_t olen = strnlen(old, rest);
    memcpy(err->msg + n + 2, old, olen);
    err->msg[n + 2 + olen] = '\0';
    text_utf8_repair(err->msg);
    return -1;
}

void err_clear(struct err *err)
{
    if (err == NULL)
        return;
    err->code = 0;
    err->msg[0] = '\0';
}
