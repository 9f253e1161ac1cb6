/* ctl_result.h: a task's stored result (exit status and captured output).
 *
 * Record layout in STORE_DB_RESULTS (after the store's version byte), big-endian:
 *   i32 exit_code | i32 signal | u8 truncated | u8 state (enum job_state)
 *   | u32 stdout_len | u32 stderr_len | stdout bytes | stderr bytes
 * Keyed by (job, task index): a retried task's result can only be stored once.
 */
#ifndef MOAT_CTL_RESULT_H
#define MOAT_CTL_RESULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"
#include "shared/jobspec.h"

struct ctl_result {
    int exit_code, signal;
    bool truncated;
    enum job_state state;
    const uint8_t *out, *err; /* borrowed from the buffer decoded */
    uint32_t out_len, err_len;
};

/* ctl_result_encode: the record for r into a malloc'd buffer (*len bytes).
 * Caller frees with free(); NULL on ENOMEM. */
uint8_t *ctl_result_encode(const struct ctl_result *r, size_t *len);

/* ctl_result_decode: parse buf (len bytes); r's pointers borrow from buf.
 * EPROTO on a short or inconsistent record. */
int ctl_result_decode(const uint8_t *buf, size_t len, struct ctl_result *r, struct err *err);

#endif
