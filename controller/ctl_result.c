/* ctl_result.c: binary codec of stored task results. */
#include "controller/ctl_result.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define HEAD 18

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

uint8_t *ctl_result_encode(const struct ctl_result *r, size_t *len)
{
    *len = HEAD + (size_t)r->out_len + r->err_len;
    uint8_t *b = malloc(*len);
    if (b == NULL)
        return NULL;
    put32(b, (uint32_t)r->exit_code);
    put32(b + 4, (uint32_t)r->signal);
    b[8] = r->truncated;
    b[9] = (uint8_t)r->state;
    put32(b + 10, r->out_len);
    put32(b + 14, r->err_len);
    if (r->out_len)
        memcpy(b + HEAD, r->out, r->out_len);
    if (r->err_len)
        memcpy(b + HEAD + r->out_len, r->err, r->err_len);
    return b;
}

int ctl_result_decode(const uint8_t *buf, size_t len, struct ctl_result *r, struct err *err)
{
    if (len < HEAD)
        return err_set(err, EPROTO, "result: record of %zu bytes is too short", len);
    r->exit_code = (int32_t)get32(buf);
    r->signal = (int32_t)get32(buf + 4);
    r->truncated = buf[8] != 0;
    r->state = buf[9] < JOB_STATE_COUNT ? (enum job_state)buf[9] : JOB_STATE_FAILED;
    r->out_len = get32(buf + 10);
    r->err_len = get32(buf + 14);
    if ((uint64_t)HEAD + r->out_len + r->err_len != len)
        return err_set(err, EPROTO, "result: lengths do not add up");
    r->out = buf + HEAD;
    r->err = buf + HEAD + r->out_len;
    return 0;
}
