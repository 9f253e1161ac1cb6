/* client.c: a DEALER speaking docs/protocol.md to the controller, and the CLI's
 * pure argument helpers.
 * Invariant: next_id only grows, so a late reply to an abandoned request can
 * never be mistaken for the reply to a newer one. */
#include "shared/client.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "shared/keys.h"
#include "shared/net.h"
#include "shared/text.h"
#include "shared/units.h"

#define CLIENT_ENDPOINT_MAX 512

struct client {
    net_t *net;
    net_sock_t *sock;
    uint64_t next_id;
    char endpoint[CLIENT_ENDPOINT_MAX];
};

static client_t *create(const char *endpoint, const struct net_curve *curve, struct err *err);

client_t *client_create(const char *endpoint, struct err *err)
{
    return create(endpoint, NULL, err);
}

client_t *client_create_curve(const char *endpoint, const struct net_curve *curve, struct err *err)
{
    return create(endpoint, curve, err);
}

static const char *keys_dir(const char *dir)
{
    if (dir == NULL || *dir == '\0')
        dir = getenv("MOAT_DIR");
    return dir == NULL || *dir == '\0' ? ".moat" : dir;
}

const char *client_key_path(char *buf, size_t cap, const char *dir, bool env)
{
    const char *key = env ? getenv("MOAT_KEY") : NULL;
    if (key != NULL && *key != '\0')
        snprintf(buf, cap, "%s", key);
    else
        snprintf(buf, cap, "%s/client.key", keys_dir(dir));
    return buf;
}

int client_keys_load(struct net_curve *curve, const char *dir, bool env, struct err *err)
{
    char path[4096], key[4096];
    const char *ctl = env ? getenv("MOAT_CONTROLLER_KEY") : NULL;
    dir = keys_dir(dir);
    memset(curve, 0, sizeof *curve);
    client_key_path(key, sizeof key, dir, env);
    if (keys_file_read(key, true, curve->secret_key, err) != 0 ||
        net_curve_public(curve->public_key, curve->secret_key, err) != 0)
        return err_prefix(err, "client key");
    if (ctl == NULL || *ctl == '\0') {
        snprintf(path, sizeof path, "%s/controller.pub", dir);
        ctl = path;
    }
    if (keys_file_read(ctl, false, curve->server_key, err) != 0)
        return err_prefix(err, "controller key");
    return 0;
}

static client_t *create(const char *endpoint, const struct net_curve *curve, struct err *err)
{
    if (endpoint == NULL || *endpoint == '\0') {
        err_set(err, EINVAL, "endpoint: empty");
        return NULL;
    }
    if (strlen(endpoint) >= CLIENT_ENDPOINT_MAX) {
        err_set(err, EINVAL, "endpoint: longer than %d bytes", CLIENT_ENDPOINT_MAX - 1);
        return NULL;
    }
    client_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        err_set(err, ENOMEM, "client: out of memory");
        return NULL;
    }
    strcpy(c->endpoint, endpoint);
    c->next_id = 1;
    c->net = net_create(err);
    if (c->net == NULL)
        goto fail_free;
    /* No size limit on what we receive: results can be large, and the
     * controller bounds them itself. */
    c->sock = net_dealer_connect_curve(c->net, endpoint, -1, curve, err);
    if (c->sock == NULL)
        goto fail_net;
    return c;
fail_net:
    net_destroy(c->net);
fail_free:
    free(c);
    return NULL;
}

void client_destroy(client_t *c)
{
    if (c == NULL)
        return;
    net_sock_close(c->sock);
    net_destroy(c->net);
    free(c);
}

const char *client_endpoint(const client_t *c)
{
    return c->endpoint;
}

bool client_link_why(client_t *c, char *buf, size_t cap)
{
    enum net_link link = net_sock_link(c->sock, false);
    /* it was there when the request went: the request may have been carried
     * out (a SUBMIT: a job made), whatever the link is now */
    const char *was = link != NET_LINK_UP && link != NET_LINK_NONE && net_sock_ever_up(c->sock)
                          ? "; the link was lost after the request was sent: it may have been carried "
                            "out (check before repeating it)"
                          : "";
    switch (link) {
    case NET_LINK_UNRESOLVED:
        snprintf(buf, cap, "cannot reach the controller at %s: its host name does not resolve%s",
                 c->endpoint, was);
        return true;
    case NET_LINK_TCP_FAILED:
        snprintf(buf, cap, "cannot reach the controller at %s: nothing listens there (connection "
                 "refused or host unreachable): is it running? ('moat local status' for a local "
                 "cluster)%s", c->endpoint, was);
        return true;
    case NET_LINK_NO_HANDSHAKE:
        snprintf(buf, cap, "connected to %s but the CURVE handshake did not complete: wrong controller "
                 "public key, this client's key is not allowlisted, or the controller is too busy to "
                 "answer (recovering a large store, or a long request)%s", c->endpoint, was);
        return true;
    case NET_LINK_REFUSED:
        if (!was[0])
            return false; /* the EACCES of the call says it */
        snprintf(buf, cap, "%s refused this client's key (not in its allowlist, or revoked)%s",
                 c->endpoint, was);
        return true;
    default:
        return false;
    }
}

int client_send(client_t *c, enum proto_type type, json_t *body, uint64_t *req_id,
                struct err *err)
{
    return client_send_blobs(c, type, body, NULL, 0, req_id, err);
}

int client_send_blobs(client_t *c, enum proto_type type, json_t *body, const struct proto_blob *blobs,
                      int nblobs, uint64_t *req_id, struct err *err)
{
    struct proto_msg msg;
    uint64_t id = c->next_id++;
    proto_msg_init(&msg, type, id, body);
    if (msg.body == NULL)
        return err_set(err, ENOMEM, "client: out of memory");
    for (int i = 0; i < nblobs; i++) {
        if (proto_msg_add_blob(&msg, blobs[i].data, blobs[i].len, err) != 0) {
            proto_msg_clear(&msg);
            return -1;
        }
    }
    int rc = net_send(c->sock, NULL, &msg, err);
    proto_msg_clear(&msg);
    if (rc != 0 && net_sock_refused(c->sock))
        return err_set(err, EACCES, "%s refused this client's key (not in its allowlist, or revoked)",
                       c->endpoint);
    if (rc != 0)
        return -1;
    if (req_id)
        *req_id = id;
    return 0;
}

int client_recv(client_t *c, double timeout_s, struct proto_msg *reply, struct err *err)
{
    double deadline = units_mono() + (timeout_s > 0 ? timeout_s : 0);
    struct net_peer peer;
    for (;;) {
        int rc = net_recv(c->sock, reply, &peer, err);
        if (rc != 0)
            return rc;
        double left = deadline - units_mono();
        if (left <= 0)
            return 0;
        struct net_pollitem it = {.sock = c->sock, .events = NET_POLLIN};
        struct err perr = {0};
        long ms = (long)ceil(left * 1000.0);
        if (net_poll(&it, 1, ms, &perr) < 0 && perr.code != EINTR)
            return err_set(err, perr.code, "%s", perr.msg);
    }
}

int client_call(client_t *c, enum proto_type type, json_t *body, double timeout_s,
                struct proto_msg *reply, struct err *err)
{
    return client_call_blobs(c, type, body, NULL, 0, timeout_s, reply, err);
}

int client_call_blobs(client_t *c, enum proto_type type, json_t *body, const struct proto_blob *blobs,
                      int nblobs, double timeout_s, struct proto_msg *reply, struct err *err)
{
    int rc = client_call_repeat(c, type, body, blobs, nblobs, timeout_s, false, reply, NULL, err);
    json_decref(body);
    return rc;
}

#define REPEAT_MAX 40 /* sends of one request: 8 after EAGAIN, 32 doublings of the wait */
#define EAGAIN_MAX 8

int client_call_repeat(client_t *c, enum proto_type type, const json_t *body,
                       const struct proto_blob *blobs, int nblobs, double timeout_s, bool resend,
                       struct proto_msg *reply, int *sends, struct err *err)
{
    uint64_t ids[REPEAT_MAX];
    int n = 0, again = 0;
    double now = units_mono(), deadline = now + timeout_s, step = 1.0, next_send = now;
    memset(reply, 0, sizeof *reply);
    if (sends)
        *sends = 0;
    for (;;) {
        if (units_mono() >= next_send && n < REPEAT_MAX) {
            json_t *copy = body ? json_deep_copy(body) : json_object();
            if (copy == NULL)
                return err_set(err, ENOMEM, "%s: out of memory", proto_type_name(type));
            if (client_send_blobs(c, type, copy, blobs, nblobs, &ids[n], err) != 0)
                return err_prefix(err, "%s", proto_type_name(type));
            n++;
            if (sends)
                *sends = n;
            /* N.B. never again once not to resend: not even when a stray reply
             * wakes this loop at its deadline (a second SUBMIT, a second job) */
            next_send = resend && n < REPEAT_MAX ? units_mono() + step : HUGE_VAL;
            step *= 2;
        }
        double wake = next_send < deadline ? next_send : deadline;
        double left = wake - units_mono();
        struct err rerr = {0};
        int rc = client_recv(c, left > 0 ? left : 0, reply, &rerr);
        if (rc == 1) {
            bool ours = false;
            for (int i = 0; i < n && !ours; i++)
                ours = reply->req_id == ids[i];
            if (!ours || (reply->type != PROTO_TYPE_REPLY && reply->type != PROTO_TYPE_ERROR)) {
                proto_msg_clear(reply); /* a late reply to an abandoned request */
                continue;
            }
            struct err why = {0};
            if (reply->type == PROTO_TYPE_ERROR && client_reply_error(reply, &why) != 0 &&
                why.code == EAGAIN && again < EAGAIN_MAX && n < REPEAT_MAX &&
                units_mono() < deadline) {
                proto_msg_clear(reply); /* nothing of it was stored: send it again now */
                again++;
                next_send = units_mono();
                step = 1.0;
                continue;
            }
            return 0;
        }
        if (rc < 0 && rerr.code == EPROTO)
            continue; /* malformed reply: not ours to trust; keep waiting */
        if (rc < 0)
            return err_set(err, rerr.code, "%s: %s", proto_type_name(type), rerr.msg);
        if (net_sock_refused(c->sock))
            return err_set(err, EACCES, "%s refused this client's key (not in its allowlist, or revoked)",
                           c->endpoint);
        if (units_mono() >= deadline)
            break;
    }
    char buf[32];
    return err_set(err, ETIMEDOUT, "no reply from %s in %s", c->endpoint,
                   units_duration_format(timeout_s, buf, sizeof buf));
}

int client_reply_error(const struct proto_msg *reply, struct err *err)
{
    if (reply->type == PROTO_TYPE_ERROR) {
        proto_error_from_body(reply->body, err);
        return -1;
    }
    if (reply->type != PROTO_TYPE_REPLY || !json_is_object(reply->body))
        return err_set(err, EPROTO, "unexpected %s message", proto_type_name(reply->type));
    return 0;
}

/* ---- pure helpers ---- */

int client_timeout_parse(const char *text, double *out, struct err *err)
{
    if (text == NULL || *text == '\0') {
        *out = CLIENT_TIMEOUT_DEFAULT;
        return 0;
    }
    double v;
    struct err e = {0};
    if (units_duration_parse(text, &v, &e) != 0)
        return err_set(err, EINVAL, "MOAT_TIMEOUT: %s", e.msg);
    if (!(v > 0))
        return err_set(err, EINVAL, "MOAT_TIMEOUT: '%s': must be more than 0 s", text);
    *out = v;
    return 0;
}

#define JOBID_MAX 9007199254740991ULL /* 2^53-1, the wire's integer bound */

int client_jobid_parse(const char *text, uint64_t *out, struct err *err)
{
    if (text == NULL || !isdigit((unsigned char)text[0]))
        return err_set(err, EINVAL, "job id '%s': expected a positive integer", text ? text : "");
    uint64_t v = 0;
    const char *p = text;
    for (; isdigit((unsigned char)*p); p++) {
        v = v * 10 + (uint64_t)(*p - '0');
        if (v > JOBID_MAX)
            return err_set(err, EINVAL, "job id '%s': too large", text);
    }
    if (*p != '\0' || v == 0)
        return err_set(err, EINVAL, "job id '%s': expected a positive integer", text);
    *out = v;
    return 0;
}

int client_jobids_parse(const char *text, uint64_t *out, int *n, int cap, struct err *err)
{
    char buf[32];
    const char *p = text;
    int start = *n;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len >= sizeof buf) {
            *n = start;
            return err_set(err, EINVAL, "job id '%.*s': too long", (int)(len > 40 ? 40 : len), p);
        }
        memcpy(buf, p, len);
        buf[len] = '\0';
        if (*n >= cap) {
            *n = start;
            return err_set(err, EINVAL, "more than %d job ids", cap);
        }
        if (client_jobid_parse(buf, &out[*n], err) != 0) {
            *n = start;
            return -1;
        }
        (*n)++;
        if (comma == NULL)
            return 0;
        p = comma + 1;
    }
}

static int parse_int_opt(const char *opt, const char *value, long long min, long long max,
                         long long *out, struct err *err)
{
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (errno != 0 || end == value || *end != '\0' || isspace((unsigned char)value[0]))
        return err_set(err, EINVAL, "--%s: '%s': expected an integer", opt, value);
    if (v < min || v > max)
        return err_set(err, EINVAL, "--%s: %lld out of range [%lld, %lld]", opt, v, min, max);
    *out = v;
    return 0;
}

int client_spec_option(struct job_spec *spec, const char *opt, const char *value, double now,
                       struct err *err)
{
    struct err e = {0};
    long long v;
    if (strcmp(opt, "hold") == 0) { /* a flag: no value */
        spec->hold = true;
        return 0;
    }
    if (value == NULL)
        return err_set(err, EINVAL, "--%s: missing value", opt);
    if (strcmp(opt, "name") == 0) {
        size_t len = strlen(value);
        if (len > JOBSPEC_NAME_MAX)
            return err_set(err, EINVAL, "--name: longer than %d bytes", JOBSPEC_NAME_MAX);
        if (strcmp(value, "--") == 0) /* `--name -- CMD`: getopt took the separator */
            return err_set(err, EINVAL, "--name: missing value before --");
        if (text_has_controls(value, len))
            return err_set(err, EINVAL, "--name: control characters are not allowed");
        memcpy(spec->name, value, len + 1);
        return 0;
    }
    if (strcmp(opt, "cpus") == 0) {
        if (parse_int_opt(opt, value, 1, 1000000, &v, err) != 0)
            return -1;
        spec->cpus = (int)v;
        return 0;
    }
    if (strcmp(opt, "gpus") == 0) {
        if (parse_int_opt(opt, value, 0, 1024, &v, err) != 0)
            return -1;
        spec->gpus = (int)v;
        return 0;
    }
    if (strcmp(opt, "priority") == 0) {
        if (parse_int_opt(opt, value, -1000000, 1000000, &v, err) != 0)
            return -1;
        spec->priority = (int)v;
        return 0;
    }
    if (strcmp(opt, "mem") == 0) {
        uint64_t bytes;
        /* Slurm's --mem=512 is megabytes, ours would be bytes: ask for a unit */
        if (value[0] != '\0' && value[strspn(value, "0123456789. ")] == '\0'
            && value[strspn(value, "0. ")] != '\0') /* "0", "0.0": none, as with a unit */
            return err_set(err, EINVAL, "--mem '%s': give a unit (%sM, %sMiB or %sG; "
                           "Slurm's --mem counts megabytes)", value, value, value, value);
        if (units_size_parse(value, &bytes, &e) != 0)
            return err_set(err, EINVAL, "--mem: %s", e.msg);
        if (bytes > JOBID_MAX)
            return err_set(err, EINVAL, "--mem: '%s': too large", value);
        if (bytes > 0 && bytes < (1u << 20))
            return err_set(err, EINVAL, "--mem: '%s': less than 1 MiB (0 asks for none)", value);
        spec->mem = bytes;
        return 0;
    }
    if (strcmp(opt, "env") == 0) {
        if (jobspec_add_env(spec, value, &e) != 0)
            return err_set(err, EINVAL, "--%s", e.msg);
        return 0;
    }
    if (strcmp(opt, "array") == 0) {
        if (jobspec_array_parse(value, spec, &e) != 0) /* nothing of spec changes on error */
            return err_set(err, EINVAL, "%s", e.msg);
        return 0;
    }
    if (strcmp(opt, "after") == 0 || strcmp(opt, "after-any") == 0 || strcmp(opt, "after-notok") == 0) {
        uint64_t ids[JOBSPEC_AFTER_MAX];
        int n = 0;
        enum jobspec_dep kind = opt[5] == '\0' ? JOBSPEC_DEP_OK
                                : opt[6] == 'a' ? JOBSPEC_DEP_ANY : JOBSPEC_DEP_NOTOK;
        if (client_jobids_parse(value, ids, &n, JOBSPEC_AFTER_MAX, &e) != 0)
            return err_set(err, EINVAL, "--%s: %s", opt, e.msg);
        if (jobspec_add_after(spec, ids, n, kind, &e) != 0)
            return err_set(err, e.code, "--%s: %s", opt, e.msg);
        return 0;
    }
    if (strcmp(opt, "dependency") == 0) { /* Slurm's: afterok:1:2,afterany:3,afternotok:4 */
        char buf[4096];
        if (strlen(value) >= sizeof buf)
            return err_set(err, EINVAL, "--dependency: longer than %zu bytes", sizeof buf - 1);
        snprintf(buf, sizeof buf, "%s", value);
        char *list = buf;
        for (char *item; (item = strsep(&list, ",")) != NULL;) {
            if (*item == '\0') /* "", "a,,b", a trailing comma: a script lost an id */
                return err_set(err, EINVAL, "--dependency '%s': an empty entry; expected "
                               "TYPE:JOB[:JOB...][,...]", value);
            char *colon = strchr(item, ':');
            enum jobspec_dep kind;
            if (colon == NULL)
                return err_set(err, EINVAL, "--dependency: '%s': expected TYPE:JOB[:JOB...]", item);
            *colon = '\0';
            if (strcmp(item, "afterok") == 0)
                kind = JOBSPEC_DEP_OK;
            else if (strcmp(item, "afterany") == 0)
                kind = JOBSPEC_DEP_ANY;
            else if (strcmp(item, "afternotok") == 0)
                kind = JOBSPEC_DEP_NOTOK;
            else
                return err_set(err, EINVAL, "--dependency: type '%s': expected afterok, afterany or "
                               "afternotok", item);
            char *rest = colon + 1;
            for (char *one; (one = strsep(&rest, ":")) != NULL;) {
                uint64_t id;
                if (client_jobid_parse(one, &id, &e) != 0)
                    return err_set(err, EINVAL, "--dependency: %s", e.msg);
                if (jobspec_add_after(spec, &id, 1, kind, &e) != 0)
                    return err_set(err, e.code, "--dependency: %s", e.msg);
            }
        }
        return 0;
    }
    if (strcmp(opt, "begin") == 0) {
        double t;
        if (units_begin_parse(value, now, &t, &e) != 0)
            return err_set(err, EINVAL, "--begin: %s", e.msg);
        if (t < 1 || t > 1e11)
            return err_set(err, EINVAL, "--begin: '%s': time out of range", value);
        spec->begin = t;
        return 0;
    }
    if (strcmp(opt, "retries") == 0) {
        if (parse_int_opt(opt, value, 0, 100, &v, err) != 0)
            return -1;
        spec->retries = (int)v;
        return 0;
    }
    if (strcmp(opt, "time-limit") == 0) {
        double d;
        /* Slurm's --time=90 is minutes, ours would be seconds: ask for a unit */
        if (value[strspn(value, "0123456789. ")] == '\0' && atof(value) == 0)
            return err_set(err, EINVAL, "--time-limit '%s': no limit is the default: leave the "
                           "option out (Slurm's --time=0)", value);
        if (value[strspn(value, "0123456789. ")] == '\0')
            return err_set(err, EINVAL, "--time-limit '%s': give a unit (%ss, %sm or %sh; "
                           "Slurm's --time counts minutes)", value, value, value, value);
        if (units_duration_parse(value, &d, &e) != 0)
            return err_set(err, EINVAL, "--time-limit: %s", e.msg);
        if (!(d > 0) || d > 1e9)
            return err_set(err, EINVAL, "--time-limit: '%s': must be more than 0 s and at most 1e9 s",
                           value);
        spec->time_limit = d;
        return 0;
    }
    return err_set(err, EINVAL, "--%s: not a submit option", opt);
}

int client_spec_finish(struct job_spec *spec, int argc, char *const *argv, json_t **out,
                       struct err *err)
{
    *out = NULL;
    if (argc < 1)
        return err_set(err, EINVAL, "missing command (put it after --: moat submit -- CMD ARG...)");
    if (argc > JOBSPEC_ARGV_MAX)
        return err_set(err, EINVAL, "command: more than %d arguments", JOBSPEC_ARGV_MAX);
    char **copy = calloc((size_t)argc, sizeof *copy);
    if (copy == NULL)
        return err_set(err, ENOMEM, "out of memory");
    for (int i = 0; i < argc; i++) {
        copy[i] = strdup(argv[i]);
        if (copy[i] == NULL) {
            for (int j = 0; j < i; j++)
                free(copy[j]);
            free(copy);
            return err_set(err, ENOMEM, "out of memory");
        }
    }
    for (int i = 0; i < spec->argc; i++)
        free(spec->argv[i]);
    free(spec->argv);
    spec->argv = copy;
    spec->argc = argc;
    spec->kind = JOB_KIND_EXEC;
    if (spec->cpus == 0)
        spec->cpus = 1;

    json_t *obj = jobspec_to_json(spec);
    if (obj == NULL)
        return err_set(err, ENOMEM, "out of memory");
    struct job_spec check;
    struct err e = {0};
    if (jobspec_from_json(&check, obj, &e) != 0) {
        json_decref(obj);
        /* "spec: argv: ..." reads better for a user as "command: ..." */
        const char *m = e.msg;
        if (strncmp(m, "spec: ", 6) == 0)
            m += 6;
        if (strncmp(m, "argv", 4) == 0)
            return err_set(err, e.code ? e.code : EINVAL, "command%s", m + 4);
        return err_set(err, e.code ? e.code : EINVAL, "%s", m);
    }
    jobspec_clear(&check);
    *out = obj;
    return 0;
}
