/* ctl_main.c: moat-controller: configuration, the event loop, the handler table.
 *
 * One pass of the loop: wait for messages (or a timer), handle every waiting
 * message (up to a bound), check nodes and deadlines, place tasks, commit the
 * batch's one write transaction, then send the outbox. Nothing that
 * acknowledges a change leaves before the commit (group commit: one fsync per
 * pass, not per job). If the batch cannot be committed, its requests are
 * answered with the error and the in-memory state is rebuilt from LMDB.
 * Links: the ROUTER is a CURVE server; its ZAP handler (a REP socket in this
 * loop, bound before the ROUTER) admits allowlisted keys only, and every
 * request is checked against the current allowlist before its handler runs.
 */
#include <errno.h>
#include <getopt.h>
#include <sodium.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "controller/ctl_api.h"
#include "controller/ctl_audit.h"
#include "controller/ctl_auth.h"
#include "controller/ctl_cfg.h"
#include "controller/ctl_infer.h"
#include "controller/ctl_model.h"
#include "controller/ctl_nodeadm.h"
#include "controller/ctl_nodes.h"
#include "controller/ctl_purge.h"
#include "controller/ctl_sched.h"
#include "controller/ctl_state.h"
#include "shared/keys.h"
#include "shared/lockfile.h"
#include "shared/log.h"
#include "shared/units.h"
#include "shared/version.h"

#define BATCH_MAX 4096      /* messages handled per pass */
#define POLL_MS 50
#define CHECK_EVERY 0.1     /* s between liveness/deadline checks */
#define PARTS_EVERY 2.0     /* s between looks for infer jobs whose documents stopped coming */
#define SCHED_EVERY 0.25    /* s between passes that only look at begin times */

typedef int (*ctl_handler_fn)(struct ctl *, const struct net_peer *, struct proto_msg *,
                              struct err *);

static const ctl_handler_fn handlers[PROTO_TYPE_COUNT] = {
    [PROTO_TYPE_PING] = ctl_on_ping,
    [PROTO_TYPE_SUBMIT] = ctl_on_submit,
    [PROTO_TYPE_SHOW] = ctl_on_show,
    [PROTO_TYPE_QUEUE] = ctl_on_queue,
    [PROTO_TYPE_CANCEL] = ctl_on_cancel,
    [PROTO_TYPE_RESULT] = ctl_on_result,
    [PROTO_TYPE_NODES] = ctl_on_nodes,
    [PROTO_TYPE_REGISTER] = ctl_on_register,
    [PROTO_TYPE_HEARTBEAT] = ctl_on_heartbeat,
    [PROTO_TYPE_TASK_END] = ctl_on_task_end,
    [PROTO_TYPE_MODEL_PUT] = ctl_on_model_put,
    [PROTO_TYPE_MODEL_COMMIT] = ctl_on_model_commit,
    [PROTO_TYPE_MODEL_LIST] = ctl_on_model_list,
    [PROTO_TYPE_MODEL_VERIFY] = ctl_on_model_verify,
    [PROTO_TYPE_SHARD_GET] = ctl_on_shard_get,
    [PROTO_TYPE_ADMIN_KEY] = ctl_on_admin_key,
    [PROTO_TYPE_AUDIT] = ctl_on_audit,
    [PROTO_TYPE_ADMIN_NODE] = ctl_on_admin_node,
    [PROTO_TYPE_HOLD] = ctl_on_hold,
    [PROTO_TYPE_REQUEUE] = ctl_on_requeue,
    [PROTO_TYPE_DOCS] = ctl_on_docs,
};

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: moat-controller -c FILE | --version\n"
               "  Runs the moat controller in the foreground; logs go to stderr.\n"
               "  FILE is a libconfig file; conf/controller.conf documents every key.\n");
}

static void flush_outbox(struct ctl *ctl)
{
    for (int i = 0; i < ctl->nout; i++) {
        struct ctl_out *o = &ctl->outbox[i];
        struct err e = {0};
        if (net_send(ctl->sock, &o->peer, &o->msg, &e) != 0)
            log_debug("ctl", "send %s: %s", proto_type_name(o->msg.type), e.msg);
        proto_msg_clear(&o->msg);
    }
    ctl->nout = 0;
}

/* fail_batch: the batch's writes are void. Answer its requests with the reason, drop
 * what it would have dispatched, grow the map if that was the trouble, and rebuild
 * memory from the store so that it matches what was committed. */
static int fail_batch(struct ctl *ctl)
{
    struct err why = ctl->store_err, e = {0};
    store_abort(ctl->store);
    log_error("ctl", "batch abandoned: %s", why.msg);
    if (why.code == ENOSPC) {
        if (store_grow(ctl->store, &e) == 0) {
            log_warn("ctl", "store map grown to %llu bytes", (unsigned long long)store_map_size(ctl->store));
            err_set(&why, EAGAIN, "store was full and has grown; retry the request");
        } else {
            why = e; /* names the limit (store_map_max) */
            log_error("ctl", "%s", why.msg);
        }
    }
    for (int i = 0; i < ctl->nout; i++) {
        struct ctl_out *o = &ctl->outbox[i];
        if (o->is_reply) {
            uint64_t req = o->msg.req_id;
            proto_msg_clear(&o->msg);
            proto_msg_init(&o->msg, PROTO_TYPE_ERROR, req, proto_error_body(&why));
        } else if (o->msg.type != PROTO_TYPE_ERROR) {
            proto_msg_clear(&o->msg);
            o->msg.type = 0;
        }
    }
    for (int i = 0; i < ctl->nout; i++)
        if (ctl->outbox[i].msg.type != 0 && net_send(ctl->sock, &ctl->outbox[i].peer, &ctl->outbox[i].msg, &e) != 0)
            log_debug("ctl", "send: %s", e.msg);
    struct ctl_cfg cfg = ctl->cfg;
    store_t *st = ctl->store;
    net_sock_t *sock = ctl->sock;
    struct ctl_auth *auth = ctl->auth;
    ctl_state_free(ctl);
    ctl_state_init(ctl, &cfg, st, sock);
    ctl->auth = auth;
    if (ctl_state_recover(ctl, &e) != 0 || ctl_auth_load(ctl, &e) != 0) {
        log_error("ctl", "recover after failed batch: %s", e.msg);
        return -1;
    }
    return 0;
}

/* peer_log_ok: whether a line about a peer's unsolicited or malformed message may go to
 * the log: at most 20 per 10 s in all, so that a peer cannot flood it; the
 * number left out is said with the next line let through. */
static bool peer_log_ok(void)
{
    static double window;
    static unsigned shown, dropped;
    double now = units_mono();
    if (now - window >= 10.0) {
        if (dropped)
            log_warn("ctl", "%u lines about peers' unsolicited messages left out in 10 s", dropped);
        window = now;
        shown = dropped = 0;
    }
    if (shown < 20) {
        shown++;
        return true;
    }
    dropped++;
    return false;
}

static void handle(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg)
{
    struct err e = {0};
    ctl_handler_fn fn = handlers[msg->type];
    if (ctl_auth_check(ctl, peer, msg->type, msg->body, &e) != 0) {
        /* Answer a refused request (so a client says why) but never a reply. */
        if (fn != NULL && ctl_out_error(ctl, peer, msg->req_id, &e) == 0 && ctl->store_err.code != 0)
            ctl->outbox[ctl->nout - 1].is_reply = true;
        return;
    }
    if (fn == NULL) {
        if (msg->type == PROTO_TYPE_ERROR && peer_log_ok())
            log_warn("ctl", "peer %.40s reported an error: %.200s", peer->key,
                     json_string_value(json_object_get(msg->body, "msg")));
        else if (msg->type != PROTO_TYPE_REPLY && msg->type != PROTO_TYPE_ERROR && peer_log_ok())
            log_warn("ctl", "dropped %s from %.40s: not a request the controller serves",
                     proto_type_name(msg->type), peer->key);
        return;
    }
    if (fn(ctl, peer, msg, &e) != 0) {
        if (e.code == 0)
            err_set(&e, EIO, "%s failed", proto_type_name(msg->type));
        log_debug("ctl", "%s: %s", proto_type_name(msg->type), e.msg);
        /* When the batch failed, this request is answered like the others in it. */
        if (ctl_out_error(ctl, peer, msg->req_id, &e) == 0 && ctl->store_err.code != 0)
            ctl->outbox[ctl->nout - 1].is_reply = true;
    }
}

/* answer_malformed: a request whose header was valid but whose body was not
 * (a field too long, of the wrong type) gets ERROR EINVAL naming the field,
 * when its sender may send that request at all: a client then says what is
 * wrong instead of waiting for a reply that never comes. */
static void answer_malformed(struct ctl *ctl, const struct net_peer *peer,
                             const struct proto_msg *msg, const struct err *why)
{
    if (msg->req_id == 0 || msg->type <= 0 || msg->type >= PROTO_TYPE_COUNT ||
        handlers[msg->type] == NULL)
        return;
    struct err e = {0};
    if (ctl_auth_check(ctl, peer, msg->type, NULL, &e) != 0) {
        if (ctl_out_error(ctl, peer, msg->req_id, &e) == 0 && ctl->store_err.code != 0)
            ctl->outbox[ctl->nout - 1].is_reply = true;
        return;
    }
    err_set(&e, EINVAL, "%s", why->msg);
    if (ctl_out_error(ctl, peer, msg->req_id, &e) == 0 && ctl->store_err.code != 0)
        ctl->outbox[ctl->nout - 1].is_reply = true;
}

static int write_endpoint(const char *path, const char *endpoint, struct err *err)
{
    char tmp[CFG_STR_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return err_set(err, errno, "endpoint_file %s: %s", tmp, strerror(errno));
    fprintf(f, "%s\n", endpoint);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        return err_set(err, errno, "endpoint_file %s: %s", path, strerror(errno));
    return 0;
}

static int run(struct ctl *ctl, net_sock_t *zap)
{
    struct net_pollitem items[2] = {{.sock = ctl->sock, .events = NET_POLLIN},
                                    {.sock = zap, .events = NET_POLLIN}};
    double next_check = 0, next_sched = 0, next_parts = 0;
    while (!g_stop) {
        struct err e = {0};
        double poll_start = units_mono();
        if (net_poll(items, 2, POLL_MS, &e) < 0 && e.code != EINTR) {
            log_error("ctl", "%s", e.msg);
            return -1;
        }
        /* A poll that came back long after its timeout means this process did
         * not run (SIGSTOP, a paused VM, a swap storm): the nodes' heartbeats
         * wait in the socket, so that time must not count as their silence. */
        double stalled = units_mono() - poll_start - POLL_MS / 1e3;
        if (stalled > ctl->cfg.heartbeat_interval / 2) {
            log_warn("ctl", "the controller did not run for %.1f s; node liveness resumes from now",
                     stalled);
            for (int i = 0; i < ctl->nnodes; i++)
                ctl->nodes[i].last_seen += stalled;
        }
        /* New connections first: a handshake waits for this answer. The batch
         * is closed here, so the allowlist file may be re-read. */
        ctl_auth_refresh(ctl);
        if (net_zap_serve(zap, ctl_auth_zap_cb, ctl, &e) < 0) {
            log_error("ctl", "%s", e.msg);
            return -1;
        }
        /* Every node's messages sent before the drain starts are read by its end
         * (a ROUTER takes its peers' messages in turn: a node is served
         * among any number of busy clients): a node's silence is counted up to
         * here, so that no long request in the drain, commit or schedule of a
         * pass (a REQUEUE of a million tasks) counts as its silence, while a
         * dead node's silence still grows from pass to pass under any load. */
        double heard = units_mono();
        for (int n = 0; n < BATCH_MAX && ctl->store_err.code == 0; n++) {
            struct proto_msg msg;
            struct net_peer peer;
            int rc = net_recv(ctl->sock, &msg, &peer, &e);
            if (rc == 0)
                break;
            if (rc < 0) {
                if (peer_log_ok())
                    log_warn("ctl", "dropped malformed message from %.40s: %s",
                             peer.key[0] ? peer.key : "?", e.msg);
                answer_malformed(ctl, &peer, &msg, &e);
                continue;
            }
            handle(ctl, &peer, &msg);
            proto_msg_clear(&msg);
        }
        double mono = units_mono(), now = units_now();
        if (ctl->store_err.code == 0 && mono >= next_check) {
            next_check = mono + CHECK_EVERY;
            if (ctl_nodes_check(ctl, now, heard, &e) != 0 && ctl->store_err.code == 0)
                log_error("ctl", "node check: %s", e.msg);
        }
        if (ctl->store_err.code == 0 && mono >= next_parts) {
            next_parts = mono + PARTS_EVERY;
            if (ctl_infer_expire(ctl, mono, &e) != 0 && ctl->store_err.code == 0)
                log_error("ctl", "documents check: %s", e.msg);
        }
        if (ctl->store_err.code == 0 && (ctl->need_sched || mono >= next_sched)) {
            ctl->need_sched = false;
            next_sched = mono + SCHED_EVERY;
            if (ctl_sched_pass(ctl, now, &e) < 0 && ctl->store_err.code == 0)
                log_error("ctl", "schedule: %s", e.msg);
        }
        /* the jobs purged since the last batch leave the restart index with it */
        if (ctl->store_err.code == 0 && ctl_live_flush(ctl, false, &e) != 0)
            log_error("ctl", "purge: %s", e.msg);
        if (ctl->store_err.code == 0 && store_in_batch(ctl->store) &&
            store_commit(ctl->store, &ctl->store_err) != 0)
            log_error("ctl", "commit: %s", ctl->store_err.msg);
        if (ctl->store_err.code != 0) {
            if (fail_batch(ctl) != 0)
                return -1;
            continue; /* the nodes' clocks start anew with the recovery */
        }
        flush_outbox(ctl);
        /* the batch is committed: finished jobs whose time has come leave memory */
        ctl_purge_run(ctl, units_mono());
        /* many purged and no batch to carry them: a transaction of their own */
        if (ctl_live_flush(ctl, true, &e) != 0)
            log_error("ctl", "purge: %s", e.msg);
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *conf = NULL;
    int opt;
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'}, {0}};
    while ((opt = getopt_long(argc, argv, "c:hV", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': conf = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("moat-controller %s (protocol %u)\n", MOAT_VERSION, PROTO_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (conf == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    struct err e = {0};
    struct ctl_cfg cfg;
    if (ctl_cfg_load(conf, &cfg, &e) != 0) {
        fprintf(stderr, "moat-controller: %s\n", e.msg);
        return 2;
    }
    log_level_set((enum log_level)log_level_parse(cfg.log_level));
    /* Before anything reads the state: two controllers on one state_dir would
     * both recover its jobs and then collide on every write. */
    lockfile_t *lock = lockfile_state_dir(cfg.state_dir, "moat-controller", &e);
    if (lock == NULL) {
        fprintf(stderr, "moat-controller: %s\n", e.msg);
        return 2;
    }
    if (keys_process_guard(&e) != 0) {
        log_error("ctl", "%s", e.msg);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int rc = 1;
    net_t *net = NULL;
    net_sock_t *sock = NULL, *zap = NULL;
    struct ctl_auth *auth = NULL;
    struct net_curve curve = {0};
    if (keys_file_read(cfg.curve_secret_key_file, true, curve.secret_key, &e) != 0 ||
        net_curve_public(curve.public_key, curve.secret_key, &e) != 0) {
        log_error("ctl", "curve_secret_key_file: %s (make a pair with 'moat keygen')", e.msg);
        return 1;
    }
    if ((auth = ctl_auth_create(&cfg, &e)) == NULL) {
        log_error("ctl", "%s", e.msg);
        return 1;
    }
    store_t *store = store_open(cfg.state_dir, cfg.store_map_size, cfg.store_map_max, &e);
    if (store == NULL) {
        log_error("ctl", "%s", e.msg);
        ctl_auth_destroy(auth);
        return 1;
    }
    if ((net = net_create(&e)) == NULL)
        goto out;
    /* N.B. the ZAP handler exists before any socket binds: with
     * ZMQ_ZAP_ENFORCE_DOMAIN a connection that finds none is refused. */
    if ((zap = net_zap_bind(net, &e)) == NULL)
        goto out;
    const char *eps[CFG_LIST_MAX];
    for (int i = 0; i < cfg.listen.n; i++)
        eps[i] = cfg.listen.items[i];
    char bound[256];
    sock = net_router_bind_curve(net, eps, cfg.listen.n, (int64_t)cfg.max_message, &curve, bound,
                                 sizeof bound, &e);
    if (sock == NULL)
        goto out;
    struct ctl ctl;
    ctl_state_init(&ctl, &cfg, store, sock);
    ctl.auth = auth;
    double t_recover = units_mono();
    if (ctl_model_init(&ctl, &e) != 0 || ctl_state_recover(&ctl, &e) != 0 ||
        ctl_auth_load(&ctl, &e) != 0) {
        ctl_state_free(&ctl);
        goto out;
    }
    ctl.recovery_s = units_mono() - t_recover;
    if (cfg.endpoint_file[0] && write_endpoint(cfg.endpoint_file, bound, &e) != 0) {
        ctl_state_free(&ctl);
        goto out;
    }
    log_info("ctl", "moat-controller %s listening on %s (CURVE, key %s, %d keys allowed); %llu jobs "
             "(%llu in memory), %d nodes recovered from %s in %.0f ms",
             MOAT_VERSION, bound, curve.public_key, ctl_auth_count(&ctl), (unsigned long long)ctl.njobs,
             (unsigned long long)ctl.nresident, ctl.nnodes, cfg.state_dir, ctl.recovery_s * 1e3);
    ctl_auth_warn_empty(&ctl);
    rc = run(&ctl, zap) == 0 ? 0 : 1;
    ctl_state_free(&ctl);
    log_info("ctl", "stopped");
out:
    if (rc != 0 && e.code)
        log_error("ctl", "%s", e.msg);
    net_sock_close(sock);
    net_sock_close(zap);
    net_destroy(net);
    store_close(store);
    ctl_auth_destroy(auth);
    sodium_memzero(curve.secret_key, sizeof curve.secret_key);
    lockfile_release(lock); /* last: the state is closed */
    return rc;
}
