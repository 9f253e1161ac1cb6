/* client.h: the client side of the wire protocol (docs/protocol.md), and the pure
 * argument helpers the CLI shares with its unit tests.
 *
 * A client_t is one DEALER connected to a controller endpoint. Two ways to use it:
 *   - request/reply: client_call() sends one request and waits for the reply
 *     carrying the same request id; replies to earlier, abandoned requests are
 *     dropped on the way.
 *   - pipelined: client_send() many requests, then client_recv() replies in
 *     whatever order they come; the caller matches them by request id (bench,
 *     burst submitters).
 * Request ids start at 1 and increase by one per request on a client.
 * The argument helpers (client_spec_option, client_jobid_parse, ...) do no I/O.
 * Thread-safety: one client_t per thread; the helpers are reentrant.
 */
#ifndef MOAT_CLIENT_H
#define MOAT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"
#include "shared/jobspec.h"
#include "shared/net.h"
#include "shared/proto.h"

typedef struct client client_t;

/* Default time to wait for a reply (seconds); MOAT_TIMEOUT overrides it. */
#define CLIENT_TIMEOUT_DEFAULT 10.0

/* client_create: a DEALER connected to endpoint ("tcp://HOST:PORT", "ipc://PATH").
 * The connection is made in the background: a controller that is not there yet
 * shows up as a timeout in client_call/client_recv, never here.
 * Caller frees with client_destroy(). NULL with err: EINVAL (bad endpoint), ENOMEM. */
client_t *client_create(const char *endpoint, struct err *err);

/* client_create_curve: client_create over CURVE with the keys in *curve (its
 * own pair and the controller's public key): what every real controller needs. */
client_t *client_create_curve(const char *endpoint, const struct net_curve *curve, struct err *err);

/* client_keys_load: the CLI's keys into *curve. The secret key comes from the
 * file $MOAT_KEY names (when env is true and it is set), else DIR/client.key;
 * the public key is derived from it; the controller's public key from the file
 * $MOAT_CONTROLLER_KEY names (env and set), else DIR/controller.pub. dir NULL:
 * $MOAT_DIR, else ./.moat. Errors name the file: ENOENT, EACCES (a secret key
 * readable by others), EINVAL (not a key). */
int client_keys_load(struct net_curve *curve, const char *dir, bool env, struct err *err);

/* client_key_path: the file client_keys_load(_, dir, env, _) reads the secret
 * key from, into buf (cap bytes, cut if longer); returns buf. */
const char *client_key_path(char *buf, size_t cap, const char *dir, bool env);

/* client_destroy: close the socket and the ZeroMQ context. NULL is a no-op. */
void client_destroy(client_t *c);

/* client_endpoint: the endpoint given to client_create. Borrowed: valid until
 * client_destroy. */
const char *client_endpoint(const client_t *c);

#define CLIENT_WHY_MAX 700 /* client_link_why's buf: enough for any endpoint taken */

/* client_link_why: why no reply came, when the link's monitor can tell more
 * than "no reply": the host does not resolve; no TCP connection could be
 * made (nothing listens there); the TCP connection was made but no CURVE
 * handshake completed (the controller key given is not the controller's;
 * where the controller drops rather than refuses it, this client's key is
 * not allowlisted; or the controller did not serve the handshake in time: it
 * answers handshakes between requests and after its recovery); or, after a
 * drop, the controller refused this client's key. Each says, when the link
 * had been up, that it was lost after the request was sent, which may have
 * been carried out. Writes one line (cap bytes) into buf and returns true;
 * false, buf untouched, otherwise (no connection made, or the link is up:
 * then "no reply" is the whole story). Reads the link's pending events only. */
bool client_link_why(client_t *c, char *buf, size_t cap);

/* client_call: send request type with body and wait up to timeout_s for its reply
 * (client_call_repeat without resend: sent once, and again only after an ERROR
 * EAGAIN). Takes ownership of body (NULL: {}). On success *reply holds a REPLY or
 * an ERROR message (check reply->type; client_reply_error() reads an ERROR) and
 * the caller frees it with proto_msg_clear(). Errors: ETIMEDOUT (no reply in
 * time: the controller is unreachable or overloaded), EAGAIN (send queue full),
 * EACCES (the controller refused this client's key), ENOMEM. */
int client_call(client_t *c, enum proto_type type, json_t *body, double timeout_s,
                struct proto_msg *reply, struct err *err);

/* client_send: queue one request without waiting; its request id goes to *req_id
 * (may be NULL). Takes ownership of body (NULL: {}). EAGAIN when the send queue is
 * full (receive some replies first), ENOMEM. */
int client_send(client_t *c, enum proto_type type, json_t *body, uint64_t *req_id,
                struct err *err);

/* client_send_blobs / client_call_blobs: the same, with nblobs raw frames beside
 * the body (copied; at most PROTO_MAX_BLOBS). ENOSPC for too many blobs. */
int client_send_blobs(client_t *c, enum proto_type type, json_t *body, const struct proto_blob *blobs,
                      int nblobs, uint64_t *req_id, struct err *err);
int client_call_blobs(client_t *c, enum proto_type type, json_t *body, const struct proto_blob *blobs,
                      int nblobs, double timeout_s, struct proto_msg *reply, struct err *err);

/* client_call_repeat: one request, answered once, over a link that may lose it.
 * Sends type with a copy of body (not taken; NULL: {}) and the blobs, and waits up
 * to timeout_s in all for a reply to it. With resend, a silence of 1 s, 2 s, 4 s,
 * ... sends it again (a controller restart in between loses what was in flight),
 * and a reply to any of the sends is taken, so that a request that takes the
 * controller longer than the first wait is answered by its own reply rather than
 * by a repeat's (a REQUEUE's repeat would say the job is no longer ended). Only
 * for requests that are safe to repeat. With or without resend, an ERROR EAGAIN
 * reply (the controller's batch was void, nothing of the request was stored:
 * controller/ctl_main.c fail_batch) sends it again at once, at most 8 times.
 * *reply and errors as client_call_blobs; *sends (may be NULL) gets how many
 * times it went. */
int client_call_repeat(client_t *c, enum proto_type type, const json_t *body,
                       const struct proto_blob *blobs, int nblobs, double timeout_s, bool resend,
                       struct proto_msg *reply, int *sends, struct err *err);

/* client_recv: wait up to timeout_s for the next reply of any request.
 * Returns 1 with *reply filled (caller frees with proto_msg_clear), 0 on timeout,
 * -1 with err (a malformed reply is consumed and reported as EPROTO; the caller
 * may keep receiving). */
int client_recv(client_t *c, double timeout_s, struct proto_msg *reply, struct err *err);

/* client_reply_error: when reply is an ERROR, copy its (code, msg) into err and
 * return -1; when it is a REPLY whose body is a JSON object, return 0. */
int client_reply_error(const struct proto_msg *reply, struct err *err);

/* ---- pure helpers for the CLI (no I/O) ---- */

/* client_timeout_parse: text (a duration, e.g. "10 s", or NULL/empty for the
 * default) -> seconds > 0 in *out. EINVAL naming MOAT_TIMEOUT. */
int client_timeout_parse(const char *text, double *out, struct err *err);

/* client_jobid_parse: "17" -> 17. EINVAL ("job id 'x': expected a positive
 * integer") for anything else, including 0, signs, spaces and overflow past 2^53-1. */
int client_jobid_parse(const char *text, uint64_t *out, struct err *err);

/* client_jobids_parse: "3,4,5" -> ids appended to out[*n..cap). EINVAL as above
 * or when more than cap ids are given. */
int client_jobids_parse(const char *text, uint64_t *out, int *n, int cap, struct err *err);

/* client_spec_option: apply one `moat submit` option to spec. opt is the long
 * option name without dashes ("name", "cpus", "gpus", "mem", "priority", "array",
 * "after", "begin", "time-limit", "env", ...), value its argument, now the reference time for
 * --begin (Unix seconds). spec must be zeroed or filled by earlier calls (spec->cpus
 * 0 is read as "not given"); --after may be repeated and accumulates. EINVAL with a
 * message naming the option ("--mem: size 'x': bad number"), ENOMEM. On failure
 * spec keeps its previous values (argv/after it owned stay owned). */
int client_spec_option(struct job_spec *spec, const char *opt, const char *value, double now,
                       struct err *err);

/* client_spec_finish: set argv (copies argc strings), fill defaults (cpus 1,
 * kind exec) and validate the whole spec exactly as the controller will, by a
 * JSON round trip through jobspec_from_json. On success *out is the spec JSON
 * for SUBMIT (caller owns it). EINVAL naming the field, ENOMEM. */
int client_spec_finish(struct job_spec *spec, int argc, char *const *argv, json_t **out,
                       struct err *err);

#endif
