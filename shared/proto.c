/* proto.c: header codec and per-type body validation tables (docs/protocol.md). */
#include "shared/proto.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const type_names[PROTO_TYPE_COUNT] = {
    [0] = "?",
    [PROTO_TYPE_REPLY] = "REPLY",
    [PROTO_TYPE_ERROR] = "ERROR",
    [PROTO_TYPE_PING] = "PING",
    [PROTO_TYPE_SUBMIT] = "SUBMIT",
    [PROTO_TYPE_SHOW] = "SHOW",
    [PROTO_TYPE_QUEUE] = "QUEUE",
    [PROTO_TYPE_CANCEL] = "CANCEL",
    [PROTO_TYPE_RESULT] = "RESULT",
    [PROTO_TYPE_NODES] = "NODES",
    [PROTO_TYPE_REGISTER] = "REGISTER",
    [PROTO_TYPE_HEARTBEAT] = "HEARTBEAT",
    [PROTO_TYPE_TASK_END] = "TASK_END",
    [PROTO_TYPE_DISPATCH] = "DISPATCH",
    [PROTO_TYPE_KILL] = "KILL",
    [PROTO_TYPE_MODEL_PUT] = "MODEL_PUT",
    [PROTO_TYPE_MODEL_COMMIT] = "MODEL_COMMIT",
    [PROTO_TYPE_MODEL_LIST] = "MODEL_LIST",
    [PROTO_TYPE_MODEL_VERIFY] = "MODEL_VERIFY",
    [PROTO_TYPE_SHARD_GET] = "SHARD_GET",
    [PROTO_TYPE_ADMIN_KEY] = "ADMIN_KEY",
    [PROTO_TYPE_AUDIT] = "AUDIT",
    [PROTO_TYPE_ADMIN_NODE] = "ADMIN_NODE",
    [PROTO_TYPE_HOLD] = "HOLD",
    [PROTO_TYPE_REQUEUE] = "REQUEUE",
    [PROTO_TYPE_DOCS] = "DOCS",
};

const char *proto_type_name(int type)
{
    if (type <= 0 || type >= PROTO_TYPE_COUNT)
        return "?";
    return type_names[type];
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static uint16_t get16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }

void proto_header_encode(uint8_t out[PROTO_HEADER_LEN], enum proto_type type, uint16_t flags,
                         uint64_t req_id)
{
    put16(out, PROTO_MAGIC);
    out[2] = PROTO_VERSION;
    out[3] = (uint8_t)type;
    put16(out + 4, flags);
    put16(out + 6, 0);
    for (int i = 0; i < 8; i++)
        out[8 + i] = (uint8_t)(req_id >> (56 - 8 * i));
}

int proto_header_decode(const void *buf, size_t len, enum proto_type *type, uint16_t *flags,
                        uint64_t *req_id, struct err *err)
{
    const uint8_t *p = buf;
    if (len != PROTO_HEADER_LEN)
        return err_set(err, EPROTO, "header: %zu bytes, expected %d", len, PROTO_HEADER_LEN);
    if (get16(p) != PROTO_MAGIC)
        return err_set(err, EPROTO, "header: bad magic 0x%04x", get16(p));
    if (p[2] != PROTO_VERSION)
        return err_set(err, EPROTO, "header: version %u, expected %u", p[2], PROTO_VERSION);
    if (p[3] == 0 || p[3] >= PROTO_TYPE_COUNT)
        return err_set(err, EPROTO, "header: unknown type %u", p[3]);
    if (get16(p + 6) != 0)
        return err_set(err, EPROTO, "header: reserved bits set");
    if (get16(p + 4) & ~PROTO_FLAGS_KNOWN)
        return err_set(err, EPROTO, "header: unknown flags 0x%04x", get16(p + 4));
    uint64_t id = 0;
    for (int i = 0; i < 8; i++)
        id = (id << 8) | p[8 + i];
    *type = (enum proto_type)p[3];
    *flags = get16(p + 4);
    *req_id = id;
    return 0;
}

/* ---- field tables ---- */

enum field_type { FT_INT, FT_NUM, FT_STR, FT_BOOL, FT_OBJ, FT_STR_ARRAY, FT_INT_ARRAY, FT_OBJ_ARRAY };

struct field {
    const char *name;
    enum field_type type;
    int required;
    double min, max;            /* FT_INT/FT_NUM/FT_INT_ARRAY: value range; FT_STR: max length */
    size_t max_items;           /* arrays: item count; FT_STR_ARRAY also uses max for item length */
    const struct field *sub;    /* FT_OBJ_ARRAY: element table, terminated by name == NULL */
};

#define I64MAX 9007199254740991.0 /* 2^53-1: exact in a double, safe in JSON */
#define REQ 1
#define OPT 0

static const struct field f_empty[] = {{0}};
static const struct field f_submit[] = {
    {"spec", FT_OBJ, REQ, 0, 0, 0, 0},
    {0}};
static const struct field f_show[] = {
    {"id", FT_INT, REQ, 1, I64MAX, 0, 0},
    {"tasks_from", FT_INT, OPT, 0, 4294967295.0, 0, 0}, /* array index of the page's first task */
    {"tasks_limit", FT_INT, OPT, 0, 100000, 0, 0},      /* tasks in the page (default 10,000) */
    {"tasks_state", FT_STR, OPT, 0, 16, 0, 0},          /* only tasks in this state */
    {0}};
static const struct field f_queue[] = {
    {"state", FT_STR, OPT, 0, 16, 0, 0},
    {"states", FT_STR_ARRAY, OPT, 0, 16, 24, 0}, /* any of these (squeue -t PD,R) */
    {"all", FT_BOOL, OPT, 0, 0, 0, 0},
    {"mine", FT_BOOL, OPT, 0, 0, 0, 0},        /* only jobs the sender's key submitted */
    {"from", FT_INT, OPT, 0, I64MAX, 0, 0},    /* job id the page starts at (default 1) */
    {"limit", FT_INT, OPT, 1, 100000, 0, 0},   /* jobs in the page (default 10,000) */
    {0}};
static const struct field f_cancel_task[] = {
    {"id", FT_INT, REQ, 1, I64MAX, 0, 0},
    {"index", FT_INT, REQ, 0, 4294967295.0, 0, 0},
    {0}};
static const struct field f_cancel[] = {
    {"ids", FT_INT_ARRAY, REQ, 1, I64MAX, 100000, 0},
    {"tasks", FT_OBJ_ARRAY, OPT, 0, 0, 100000, f_cancel_task}, /* array elements alone (J_I) */
    {0}};
static const struct field f_hold[] = {
    {"ids", FT_INT_ARRAY, REQ, 1, I64MAX, 100000, 0},
    {"release", FT_BOOL, OPT, 0, 0, 0, 0}, /* true: release (default: hold) */
    {0}};
static const struct field f_requeue[] = {
    {"ids", FT_INT_ARRAY, REQ, 1, I64MAX, 100000, 0},
    {0}};
static const struct field f_docs[] = {
    {"id", FT_INT, REQ, 1, I64MAX, 0, 0},
    {"first", FT_INT, REQ, 0, 4294967295.0, 0, 0}, /* 0-based index of its first document */
    {0}};
static const struct field f_result[] = {
    {"id", FT_INT, REQ, 1, I64MAX, 0, 0},
    {"task", FT_INT, OPT, 0, 4294967295.0, 0, 0},
    {"raw", FT_BOOL, OPT, 0, 0, 0, 0},
    {"tasks_from", FT_INT, OPT, 0, 4294967295.0, 0, 0}, /* without task: the page's first index */
    {"tasks_limit", FT_INT, OPT, 1, 100000, 0, 0},      /* and at most this many tasks */
    {0}};
static const struct field f_task_ref[] = {
    {"job", FT_INT, REQ, 1, I64MAX, 0, 0},
    {"task", FT_INT, REQ, 0, 4294967295.0, 0, 0},
    {"attempt", FT_INT, REQ, 1, 1000000, 0, 0},
    {"ended", FT_BOOL, REQ, 0, 0, 0, 0},
    {0}};
static const struct field f_register[] = {
    {"name", FT_STR, REQ, 0, 64, 0, 0},
    {"host", FT_STR, REQ, 0, 255, 0, 0},
    {"pid", FT_INT, REQ, 1, 4194304, 0, 0},
    {"cpus", FT_INT, REQ, 1, 1000000, 0, 0},
    {"gpus", FT_INT, REQ, 0, 1024, 0, 0},
    {"mem_bytes", FT_INT, REQ, 0, I64MAX, 0, 0},
    {"backend", FT_STR, REQ, 0, 32, 0, 0},
    {"instance", FT_STR, REQ, 0, 64, 0, 0},
    {"tasks", FT_OBJ_ARRAY, REQ, 0, 0, 100000, f_task_ref},
    {"comm_host", FT_STR, OPT, 0, 63, 0, 0},
    {"comm_port_min", FT_INT, OPT, 1, 65535, 0, 0},
    {"comm_port_max", FT_INT, OPT, 1, 65535, 0, 0},
    {"sandbox", FT_STR, OPT, 0, 16, 0, 0},        /* namespaces, off, unavailable */
    {"egress", FT_BOOL, OPT, 0, 0, 0, 0},         /* a route beyond fabric_subnets */
    {"egress_route", FT_STR, OPT, 0, 127, 0, 0},  /* the first such route */
    {"version", FT_STR, OPT, 0, 32, 0, 0},        /* the worker's MOAT_VERSION */
    {0}};
static const struct field f_heartbeat[] = {
    {"name", FT_STR, REQ, 0, 64, 0, 0},
    {"instance", FT_STR, REQ, 0, 64, 0, 0},
    {"running", FT_INT, REQ, 0, 1000000, 0, 0},
    {0}};
static const struct field f_task_end[] = {
    {"job", FT_INT, REQ, 1, I64MAX, 0, 0},
    {"task", FT_INT, REQ, 0, 4294967295.0, 0, 0},
    {"attempt", FT_INT, REQ, 1, 1000000, 0, 0},
    {"state", FT_STR, REQ, 0, 16, 0, 0},
    {"exit_code", FT_INT, REQ, -1, 255, 0, 0},
    {"signal", FT_INT, REQ, 0, 128, 0, 0},
    {"truncated", FT_BOOL, REQ, 0, 0, 0, 0},
    {"launch_error", FT_STR, OPT, 0, 200, 0, 0},
    {"reason", FT_STR, OPT, 0, 160, 0, 0},        /* why the worker ended it (over --mem) */
    {"rank", FT_INT, OPT, 0, 15, 0, 0},
    {"start_time", FT_NUM, REQ, 0, 1e11, 0, 0},
    {"end_time", FT_NUM, REQ, 0, 1e11, 0, 0},
    {"cpu_time", FT_NUM, OPT, 0, 1e12, 0, 0},     /* s: user + system of all its processes */
    {"max_rss", FT_INT, OPT, 0, I64MAX, 0, 0},    /* bytes: peak resident memory */
    {0}};
static const struct field f_dispatch[] = {
    {"job", FT_INT, REQ, 1, I64MAX, 0, 0},
    {"task", FT_INT, REQ, 0, 4294967295.0, 0, 0},
    {"attempt", FT_INT, REQ, 1, 1000000, 0, 0},
    {"kind", FT_STR, REQ, 0, 16, 0, 0},
    {"argv", FT_STR_ARRAY, REQ, 0, 65536, 4096, 0},
    {"env", FT_STR_ARRAY, REQ, 0, 65536, 256, 0},
    {"cpus", FT_INT, REQ, 1, 1000000, 0, 0},
    {"gpus", FT_INT, REQ, 0, 1024, 0, 0},
    {"mem", FT_INT, REQ, 0, I64MAX, 0, 0},
    {"deadline", FT_NUM, REQ, 0, 1e11, 0, 0},
    {"output_cap", FT_INT, REQ, 0, 1073741824.0, 0, 0},
    /* infer tasks */
    {"rank", FT_INT, OPT, 0, 15, 0, 0},
    {"tp", FT_INT, OPT, 1, 16, 0, 0},
    {"comm", FT_STR, OPT, 0, 128, 0, 0},
    {"comm_key", FT_STR, OPT, 0, 40, 0, 0},       /* this rank's CURVE secret key, Z85 */
    {"comm_keys", FT_STR_ARRAY, OPT, 0, 40, 16, 0}, /* every rank's public key */
    {"shard", FT_STR, OPT, 0, 64, 0, 0},
    {"shard_bytes", FT_INT, OPT, 1, 4294967296.0, 0, 0},
    {"vocab", FT_STR, OPT, 0, 64, 0, 0},
    {"vocab_bytes", FT_INT, OPT, 1, 4294967296.0, 0, 0},
    {"max_len", FT_INT, OPT, 2, 512, 0, 0},
    {"batch", FT_INT, OPT, 1, 65536, 0, 0},
    /* bench tasks: {op, shape, dtype, repeat, backend, threads}, checked by the worker */
    {"bench", FT_OBJ, OPT, 0, 0, 0, 0},
    {0}};
static const struct field f_kill[] = {
    {"job", FT_INT, REQ, 1, I64MAX, 0, 0},
    {"task", FT_INT, REQ, 0, 4294967295.0, 0, 0},
    {"attempt", FT_INT, REQ, 1, 1000000, 0, 0},
    {"reason", FT_STR, REQ, 0, 16, 0, 0},
    {0}};
static const struct field f_model_put[] = {
    {"name", FT_STR, REQ, 0, 64, 0, 0},
    {"file", FT_STR, REQ, 0, 64, 0, 0},
    {"sha256", FT_STR, REQ, 0, 64, 0, 0},
    {"offset", FT_INT, REQ, 0, 4294967296.0, 0, 0},
    {"total", FT_INT, REQ, 0, 4294967296.0, 0, 0},
    {0}};
static const struct field f_model_file[] = {
    {"file", FT_STR, REQ, 0, 64, 0, 0},
    {"sha256", FT_STR, REQ, 0, 64, 0, 0},
    {"bytes", FT_INT, REQ, 0, 4294967296.0, 0, 0},
    {0}};
static const struct field f_model_commit[] = {
    {"name", FT_STR, REQ, 0, 64, 0, 0},
    {"files", FT_OBJ_ARRAY, REQ, 0, 0, 16, f_model_file},
    {"manifest", FT_STR, OPT, 0, 65536, 0, 0},    /* manifest.json, byte for byte */
    {"signature", FT_STR, OPT, 0, 256, 0, 0},     /* manifest.sig: Ed25519, hex */
    {0}};
static const struct field f_model_name[] = {
    {"name", FT_STR, REQ, 0, 64, 0, 0},
    {0}};
static const struct field f_shard_get[] = {
    {"sha256", FT_STR, REQ, 0, 64, 0, 0},
    {"offset", FT_INT, REQ, 0, 4294967296.0, 0, 0},
    {"len", FT_INT, REQ, 1, 16777216, 0, 0},
    {0}};
static const struct field f_admin_key[] = {
    {"op", FT_STR, REQ, 0, 8, 0, 0},        /* add, revoke, list */
    {"key", FT_STR, OPT, 0, 40, 0, 0},      /* Z85 public key */
    {"role", FT_STR, OPT, 0, 8, 0, 0},      /* add: admin, client, worker (default client) */
    {"name", FT_STR, OPT, 0, 64, 0, 0},
    {0}};
static const struct field f_audit[] = {
    {"since", FT_NUM, OPT, 0, 1e11, 0, 0},  /* Unix s: records at or after */
    {"after", FT_INT, OPT, 0, I64MAX, 0, 0}, /* sequence number: records after it */
    {"limit", FT_INT, OPT, 1, 10000, 0, 0},
    {"verify", FT_BOOL, OPT, 0, 0, 0, 0},
    {0}};
static const struct field f_admin_node[] = {
    {"op", FT_STR, REQ, 0, 8, 0, 0},        /* drain, resume, remove */
    {"name", FT_STR, REQ, 0, 64, 0, 0},
    {"reason", FT_STR, OPT, 0, 80, 0, 0},   /* drain: why (shown by NODES) */
    {0}};
static const struct field f_error[] = {
    {"code", FT_INT, REQ, 0, 4095, 0, 0},
    {"msg", FT_STR, REQ, 0, 512, 0, 0},
    {0}};

/* NULL: free-form body (REPLY: its shape depends on the request; the requester checks). */
static const struct field *const tables[PROTO_TYPE_COUNT] = {
    [PROTO_TYPE_REPLY] = NULL,
    [PROTO_TYPE_ERROR] = f_error,
    [PROTO_TYPE_PING] = f_empty,
    [PROTO_TYPE_SUBMIT] = f_submit,
    [PROTO_TYPE_SHOW] = f_show,
    [PROTO_TYPE_QUEUE] = f_queue,
    [PROTO_TYPE_CANCEL] = f_cancel,
    [PROTO_TYPE_RESULT] = f_result,
    [PROTO_TYPE_NODES] = f_empty,
    [PROTO_TYPE_REGISTER] = f_register,
    [PROTO_TYPE_HEARTBEAT] = f_heartbeat,
    [PROTO_TYPE_TASK_END] = f_task_end,
    [PROTO_TYPE_DISPATCH] = f_dispatch,
    [PROTO_TYPE_KILL] = f_kill,
    [PROTO_TYPE_MODEL_PUT] = f_model_put,
    [PROTO_TYPE_MODEL_COMMIT] = f_model_commit,
    [PROTO_TYPE_MODEL_LIST] = f_empty,
    [PROTO_TYPE_MODEL_VERIFY] = f_model_name,
    [PROTO_TYPE_SHARD_GET] = f_shard_get,
    [PROTO_TYPE_ADMIN_KEY] = f_admin_key,
    [PROTO_TYPE_AUDIT] = f_audit,
    [PROTO_TYPE_ADMIN_NODE] = f_admin_node,
    [PROTO_TYPE_HOLD] = f_hold,
    [PROTO_TYPE_REQUEUE] = f_requeue,
    [PROTO_TYPE_DOCS] = f_docs,
};

static int check_int(const json_t *v, double min, double max)
{
    if (!json_is_integer(v))
        return 0;
    json_int_t i = json_integer_value(v);
    return (double)i >= min && (double)i <= max;
}

static int validate_fields(const struct field *tab, const json_t *obj, const char *where,
                           struct err *err)
{
    if (!json_is_object(obj))
        return err_set(err, EPROTO, "%s: not a JSON object", where);
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val) {
        const struct field *f = tab;
        while (f->name && strcmp(f->name, key) != 0)
            f++;
        if (f->name == NULL)
            return err_set(err, EPROTO, "%s: unknown field '%.40s'", where, key);
    }
    for (const struct field *f = tab; f->name; f++) {
        const json_t *v = json_object_get(obj, f->name);
        if (v == NULL) {
            if (f->required)
                return err_set(err, EPROTO, "%s: missing field '%s'", where, f->name);
            continue;
        }
        switch (f->type) {
        case FT_INT:
            if (!json_is_integer(v))
                return err_set(err, EPROTO, "%s: field '%s': expected an integer", where, f->name);
            if (!check_int(v, f->min, f->max))
                return err_set(err, EPROTO, "%s: field '%s': %lld out of range [%.0f, %.0f]", where,
                               f->name, (long long)json_integer_value(v), f->min, f->max);
            break;
        case FT_NUM: {
            if (!json_is_number(v))
                return err_set(err, EPROTO, "%s: field '%s': expected a number", where, f->name);
            double d = json_number_value(v);
            if (!isfinite(d) || d < f->min || d > f->max)
                return err_set(err, EPROTO, "%s: field '%s': out of range", where, f->name);
            break;
        }
        case FT_STR:
            if (!json_is_string(v))
                return err_set(err, EPROTO, "%s: field '%s': expected a string", where, f->name);
            if ((double)json_string_length(v) > f->max)
                return err_set(err, EPROTO, "%s: field '%s': longer than %.0f bytes", where, f->name,
                               f->max);
            break;
        case FT_BOOL:
            if (!json_is_boolean(v))
                return err_set(err, EPROTO, "%s: field '%s': expected true or false", where, f->name);
            break;
        case FT_OBJ:
            if (!json_is_object(v))
                return err_set(err, EPROTO, "%s: field '%s': expected an object", where, f->name);
            break;
        case FT_STR_ARRAY:
        case FT_INT_ARRAY:
        case FT_OBJ_ARRAY: {
            if (!json_is_array(v))
                return err_set(err, EPROTO, "%s: field '%s': expected an array", where, f->name);
            if (json_array_size(v) > f->max_items)
                return err_set(err, EPROTO, "%s: field '%s': more than %zu items", where, f->name,
                               f->max_items);
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e) {
                if (f->type == FT_STR_ARRAY) {
                    if (!json_is_string(e) || (double)json_string_length(e) > f->max)
                        return err_set(err, EPROTO, "%s: field '%s'[%zu]: expected a string of at most %.0f bytes",
                                       where, f->name, i, f->max);
                } else if (f->type == FT_INT_ARRAY) {
                    if (!check_int(e, f->min, f->max))
                        return err_set(err, EPROTO, "%s: field '%s'[%zu]: expected an integer in [%.0f, %.0f]",
                                       where, f->name, i, f->min, f->max);
                } else {
                    char sub[64];
                    snprintf(sub, sizeof sub, "%s.%s[%zu]", where, f->name, i);
                    if (validate_fields(f->sub, e, sub, err) != 0)
                        return -1;
                }
            }
            break;
        }
        }
    }
    return 0;
}

int proto_body_validate(enum proto_type type, const json_t *body, struct err *err)
{
    if (type <= 0 || type >= PROTO_TYPE_COUNT)
        return err_set(err, EPROTO, "unknown type %d", (int)type);
    if (!json_is_object(body))
        return err_set(err, EPROTO, "%s: body is not a JSON object", type_names[type]);
    if (tables[type] == NULL)
        return 0;
    return validate_fields(tables[type], body, type_names[type], err);
}

void proto_msg_init(struct proto_msg *msg, enum proto_type type, uint64_t req_id, json_t *body)
{
    memset(msg, 0, sizeof *msg);
    msg->type = type;
    msg->req_id = req_id;
    msg->body = body ? body : json_object();
}

int proto_msg_add_blob(struct proto_msg *msg, const void *data, size_t len, struct err *err)
{
    if (msg->nblobs >= PROTO_MAX_BLOBS)
        return err_set(err, ENOSPC, "message: more than %d blobs", PROTO_MAX_BLOBS);
    void *copy = malloc(len ? len : 1);
    if (copy == NULL)
        return err_set(err, ENOMEM, "message: blob of %zu bytes", len);
    if (len)
        memcpy(copy, data, len);
    msg->blobs[msg->nblobs].data = copy;
    msg->blobs[msg->nblobs].len = len;
    msg->nblobs++;
    return 0;
}

void proto_msg_clear(struct proto_msg *msg)
{
    if (msg == NULL)
        return;
    json_decref(msg->body);
    for (int i = 0; i < msg->nblobs; i++)
        free(msg->blobs[i].data);
    memset(msg, 0, sizeof *msg);
}

int proto_msg_decode(struct proto_msg *msg, const void *const *frames, const size_t *lens,
                     int nframes, struct err *err)
{
    memset(msg, 0, sizeof *msg);
    if (nframes < 2)
        return err_set(err, EPROTO, "message: %d frames, expected header and body", nframes);
    if (nframes > 2 + PROTO_MAX_BLOBS)
        return err_set(err, EPROTO, "message: %d frames, at most %d allowed", nframes,
                       2 + PROTO_MAX_BLOBS);
    enum proto_type type;
    uint16_t flags;
    uint64_t req_id;
    if (proto_header_decode(frames[0], lens[0], &type, &flags, &req_id, err) != 0)
        return -1;
    /* from here on a failure leaves type and req_id, so the request can be answered */
    msg->type = type;
    msg->flags = flags;
    msg->req_id = req_id;
    json_error_t jerr;
    json_t *body = json_loadb(frames[1], lens[1], JSON_REJECT_DUPLICATES, &jerr);
    if (body == NULL)
        return err_set(err, EPROTO, "%s: body: invalid JSON at byte %d: %.60s", proto_type_name(type),
                       jerr.position, jerr.text);
    if (proto_body_validate(type, body, err) != 0) {
        json_decref(body);
        return -1;
    }
    msg->body = body;
    for (int i = 2; i < nframes; i++) {
        if (proto_msg_add_blob(msg, frames[i], lens[i], err) != 0) {
            proto_msg_clear(msg);
            return -1;
        }
    }
    return 0;
}

json_t *proto_error_body(const struct err *err)
{
    return json_pack("{s:i, s:s}", "code", err->code, "msg", err->msg);
}

void proto_error_from_body(const json_t *body, struct err *err)
{
    json_t *c = json_object_get(body, "code"), *m = json_object_get(body, "msg");
    if (!json_is_integer(c) || !json_is_string(m)) {
        err_set(err, EPROTO, "malformed error reply");
        return;
    }
    err_set(err, (int)json_integer_value(c), "%s", json_string_value(m));
}
