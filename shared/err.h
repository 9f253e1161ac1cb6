/* err.h: the one error type that crosses module boundaries (and the wire).
 *
 * code is an errno value (EINVAL, ENOENT, EPROTO, ENOSPC, ...); msg is lowercase
 * and names the object ("job 17: gpus: 9 requested, node max 8"). Foreign codes
 * are translated where they enter (MDB_NOTFOUND -> ENOENT, MDB_MAP_FULL -> ENOSPC).
 * Thread-safety: a struct err belongs to its caller; functions here are reentrant.
 */
#ifndef MOAT_ERR_H
#define MOAT_ERR_H

#include <stdarg.h>

#define ERR_MSG_MAX 400 /* the wire allows 512 (docs/protocol.md ERROR) */

struct err {
    int code;              /* errno value; 0 when no error */
    char msg[ERR_MSG_MAX]; /* NUL-terminated, truncated to fit */
};

/* err_set: record code and a printf-style message in *err (err may be NULL).
 * Always returns -1, so that `return err_set(err, EINVAL, "...")` reads naturally. */
int err_set(struct err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* err_prefix: prepend "prefix: " to an existing message (context on the way up).
 * Returns -1 like err_set. */
int err_prefix(struct err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* err_clear: reset *err to code 0 and an empty message. */
void err_clear(struct err *err);

#endif
