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

#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"

enum cfg_type {
    CFG_STR,      /* char[CFG_STR_MAX] */
    CFG_INT,      /* int64_t */
    CFG_SIZE,     /* uint64_t bytes, from a string with a unit or an integer */
    CFG_DURATION, /* double seconds, from a string with a unit */
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
};

/* cfg_defaults: fill out from the table's defaults. EINVAL if a default does not
 * parse (a programmer error, reported rather than asserted). */
int cfg_defaults(const struct cfg_key *table, void *out, struct err *err);

/* cfg_load: defaults, then the values in path. Errors (EINVAL, ENOENT) carry
 * "PATH:LINE: KEY: what is wrong" (or "PATH: ..." when there is no line). */
int cfg_load(const char *path, const struct cfg_key *table, void *out, struct err *err);

#endif
