/* proto.h: moat's wire messages: header encoding, type table, body validation.
 *
 * A message is a ZeroMQ multipart (docs/protocol.md lists every type and field):
 *   frame 0  header, exactly PROTO_HEADER_LEN bytes, network byte order:
 *            magic u16 0x4D54 ("MT") | version u8 | type u8 | flags u16 | reserved u16 (0)
 *            | request id u64
 *   frame 1  body: one JSON object (UTF-8, RFC 8259), validated against the type's
 *            field table (types, ranges, string lengths; unknown fields rejected)
 *   frame 2+ blobs: raw bytes (task output, tensors), never re-encoded; at most
 *            PROTO_MAX_BLOBS, each bounded by the socket's maximum message size.
 * Decoders reject bad magic, version, short or long headers, non-object or invalid
 * JSON, missing/mistyped/out-of-range fields and unknown fields with EPROTO and a
 * message naming the check that failed. This module does no I/O (see net.h).
 * Thread-safety: all functions are reentrant; a struct proto_msg has one owner.
 */
#ifndef MOAT_PROTO_H
#define MOAT_PROTO_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"

#define PROTO_MAGIC 0x4D54u
#define PROTO_VERSION 1u
#define PROTO_HEADER_LEN 16
#define PROTO_FLAGS_KNOWN 0x0000 /* version 1 defines no flag: any set is refused */
#define PROTO_MAX_BLOBS 8

enum proto_type {
    PROTO_TYPE_REPLY = 1,  /* any -> requester: success, body depends on the request */
    PROTO_TYPE_ERROR,      /* any -> requester: {code, msg} */
    PROTO_TYPE_PING,       /* client -> controller */
    PROTO_TYPE_SUBMIT,     /* client -> controller: {spec} */
    PROTO_TYPE_SHOW,       /* client -> controller: {id} */
    PROTO_TYPE_QUEUE,      /* client -> controller: {state?, all?} */
    PROTO_TYPE_CANCEL,     /* client -> controller: {ids} */
    PROTO_TYPE_RESULT,     /* client -> controller: {id, task?, raw?} */
    PROTO_TYPE_NODES,      /* client -> controller: {} */
    PROTO_TYPE_REGISTER,   /* worker -> controller */
    PROTO_TYPE_HEARTBEAT,  /* worker -> controller */
    PROTO_TYPE_TASK_END,   /* worker -> controller, blobs: stdout, stderr */
    PROTO_TYPE_DISPATCH,   /* controller -> worker */
    PROTO_TYPE_KILL,       /* controller -> worker */
    PROTO_TYPE_MODEL_PUT,  /* client -> controller: one chunk of a model file, blob: bytes */
    PROTO_TYPE_MODEL_COMMIT, /* client -> controller: the manifest of an uploaded model */
    PROTO_TYPE_MODEL_LIST, /* client -> controller */
    PROTO_TYPE_MODEL_VERIFY, /* client -> controller: re-hash a stored model */
    PROTO_TYPE_SHARD_GET,  /* worker -> controller: a chunk of a verified shard */
    PROTO_TYPE_ADMIN_KEY,  /* admin -> controller: {op, key?, role?, name?}: the allowlist */
    PROTO_TYPE_AUDIT,      /* admin -> controller: {since?, after?, limit?, verify?}: the audit log */
    PROTO_TYPE_ADMIN_NODE, /* admin -> controller: {op, name, reason?}: drain, resume, remove a node */
    PROTO_TYPE_HOLD,       /* client -> controller: {ids, release?}: hold pending work, or release it */
    PROTO_TYPE_REQUEUE,    /* client -> controller: {ids}: run an ended job's unfinished tasks again */
    PROTO_TYPE_DOCS,       /* client -> controller: {id, first}, blobs as SUBMIT's: an infer job's next documents */
    PROTO_TYPE_COUNT
};

struct proto_blob {
    void *data; /* owned by the message */
    size_t len;
};

struct proto_msg {
    enum proto_type type;
    uint16_t flags;
    uint64_t req_id;
    json_t *body;   /* owned reference; a JSON object */
    int nblobs;
    struct proto_blob blobs[PROTO_MAX_BLOBS];
};

/* proto_type_name: "SUBMIT" etc.; "?" for values outside the enum. */
const char *proto_type_name(int type);

/* proto_header_encode: write the 16-byte header for (type, flags, req_id) into out. */
void proto_header_encode(uint8_t out[PROTO_HEADER_LEN], enum proto_type type, uint16_t flags,
                         uint64_t req_id);

/* proto_header_decode: parse and check a header frame of len bytes.
 * EPROTO: wrong length, magic, version, reserved bits, a flag outside
 * PROTO_FLAGS_KNOWN or unknown type. */
int proto_header_decode(const void *buf, size_t len, enum proto_type *type, uint16_t *flags,
                        uint64_t *req_id, struct err *err);

/* proto_body_validate: check body against the field table of type (see docs/protocol.md).
 * EPROTO naming the field: not an object, missing required field, wrong JSON type,
 * integer out of range, string too long or not UTF-8 (jansson guarantees UTF-8),
 * unknown field. Does not take ownership. */
int proto_body_validate(enum proto_type type, const json_t *body, struct err *err);

/* proto_msg_decode: build *msg from frames (header, body, blobs...) of nframes.
 * Copies the blobs; on success the caller frees with proto_msg_clear(). On error
 * *msg has no body nor blobs, and its type and req_id are those of the header
 * when the header was valid (0 otherwise), so that the sender of a bad request
 * can be told why. EPROTO for every malformed input; ENOMEM. */
int proto_msg_decode(struct proto_msg *msg, const void *const *frames, const size_t *lens,
                     int nframes, struct err *err);

/* proto_msg_init: empty message of type with req_id; takes ownership of body
 * (NULL means an empty object). */
void proto_msg_init(struct proto_msg *msg, enum proto_type type, uint64_t req_id, json_t *body);

/* proto_msg_add_blob: append a copy of len bytes. ENOSPC when PROTO_MAX_BLOBS are used; ENOMEM. */
int proto_msg_add_blob(struct proto_msg *msg, const void *data, size_t len, struct err *err);

/* proto_msg_clear: free body and blobs; the struct may be reused. NULL is a no-op. */
void proto_msg_clear(struct proto_msg *msg);

/* proto_error_body: new {code, msg} object for an ERROR reply. Caller owns it. */
json_t *proto_error_body(const struct err *err);

/* proto_error_from_body: read an ERROR body into *err (EPROTO if it is malformed). */
void proto_error_from_body(const json_t *body, struct err *err);

#endif
