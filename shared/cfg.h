/* cfg.h: daemon configuration files (libconfig syntax), parsed once into plain structs.
 *
 * Each daemon describes its keys in one static table (name, type, default, bounds,
 * offset into its struct); defaults live only there and are mirrored, commented,
 * in conf/ (controller.conf, worker.conf), which tests parse. Sizes take units ("64 GiB"), durations take
 * units ("30 s"); see units.h. Unknown keys and bad values are errors of the form
 * "FILE:LINE: KEY: what is wrong".
 * The one module that includes libconfig.h. Thread-safety: reentrant.
 */
#ifndef MOAT_CFG_H
#define MOAT_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"

enum cfg_type {
    CFG_STR,      /* char[CFG_STR_MAX] */
    CFG_INT,      /* int64_t */
    CFG_SIZE,     /* uint64_t bytes, from a string with a unit ("0" or 0 may go without) */
    CFG_DURATION, /* double seconds, from a string with a unit ("0" or [DD-]HH:MM:SS may go without) */
    CFG_BOOL,     /* int 0/1 */
    CFG_STR_LIST, /* struct cfg_list */
    CFG_TYPE_COUNT
};

#define CFG_STR_MAX 512
#define CFG_LIST_MAX 16

struct cfg_list {
    int n;
    char items[CFG_LIST_MAX][CFG_STR_MAX];
};

struct cfg_key {
    const char *name;
    enum cfg_type type;
    const char *def;   /* default as text, parsed like a file value ("1 s", "3", "a,b" for lists) */
    double min, max;   /* numeric bounds (INT, SIZE in bytes, DURATION in s); min == max: none */
    size_t offset;     /* offsetof the field in the daemon's struct */
    /* check: NULL, or a further test of the parsed field (defaults included):
     * 0, or -1 with why (cap bytes) saying what is wrong, without the key */
    int (*check)(const void *field, char *why, size_t cap);
};

/* Checks for cfg_key.check. cfg_check_nonempty: a CFG_STR that must not be "".
 * cfg_check_listen: a CFG_STR_LIST of endpoints to bind, each "tcp://HOST:PORT"
 * (HOST may be "*", PORT 1-65535 or "*" for one the system picks) or
 * "ipc://PATH". cfg_check_connect: a CFG_STR endpoint to connect to, the same
 * without the wildcards. */
int cfg_check_nonempty(const void *field, char *why, size_t cap);
int cfg_check_listen(const void *field, char *why, size_t cap);
int cfg_check_connect(const void *field, char *why, size_t cap);

/* cfg_defaults: fill out from the table's defaults. EINVAL if a default does not
 * parse (a programmer error, reported rather than asserted). */
int cfg_defaults(const struct cfg_key *table, void *out, struct err *err);

/* cfg_load: defaults, then the values in path. Errors (EINVAL, ENOENT) carry
 * "PATH:LINE: KEY: what is wrong" (or "PATH: ..." when there is no line);
 * past a line CFG_FROM_MARK FILE (moat local up's generated files mark so
 * the text they copy from the DIR/NAME.extra.conf files) the place is FILE
 * and the line within it.
 * Integers are taken as written in the file: libconfig 1.5 (Debian's
 * libconfig-dev) keeps only the low 32 bits of a literal without the L suffix
 * (4294967299 reads as 3), so cfg_load re-reads each top-level integer from
 * the file's text and checks that it agrees with libconfig's low bits. */
int cfg_load(const char *path, const struct cfg_key *table, void *out, struct err *err);

/* cfg_where: where key is set in the config file path, as cfg_load's errors
 * name places ("FILE:LINE", past a CFG_FROM_MARK the file it names), into
 * out (cap bytes); true. False when path does not set it (its default
 * holds), or cannot be read, or path is NULL: out is then path (or
 * "defaults"). For the checks a daemon makes after cfg_load: of one key's
 * value against another's, or of a value no table check covers. */
bool cfg_where(const char *path, const char *key, char *out, size_t cap);

/* cfg_key_error: err_set(err, EINVAL, "WHERE: KEY: MESSAGE"), WHERE from
 * cfg_where(path, key), MESSAGE from fmt (printf). Returns -1. */
int cfg_key_error(struct err *err, const char *path, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* CFG_FROM_MARK: the start of the comment line before text a generated config
 * file copied from another file (cfg_load's errors name that file). */
#define CFG_FROM_MARK "# moat local: from "

#endif
