/* net.c: ZeroMQ sockets for proto messages. */
#include "shared/net.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

/* A DRAFT option in libzmq 4.3's header that its builds accept (Debian's does);
 * net_router_bind_curve fails rather than run without it. */
#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93
#endif
#define NET_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define NET_ZAP_DOMAIN "moat"

struct net {
    void *ctx;
};

struct net_sock {
    void *zs;
    int router;
    void *mon;        /* CURVE DEALER: PAIR receiving the socket's monitor events */
    int refused;      /* the last handshake failed authentication (ZAP said no) */
    bool up;          /* the last handshake succeeded; not disconnected since */
    bool ever_up;     /* a handshake succeeded at some time */
    bool tcp_started; /* a TCP connect started in the current attempt */
    unsigned seen;    /* LINK_SEEN_* since the last success or restart */
};

enum { /* what a DEALER's monitor showed (net_sock_link) */
    LINK_SEEN_UNRESOLVED = 1u << 0,
    LINK_SEEN_TCP_FAILED = 1u << 1,
    LINK_SEEN_CONNECTED = 1u << 2,
    LINK_SEEN_REFUSED = 1u << 3,
};

net_t *net_create(struct err *err)
{
    net_t *net = calloc(1, sizeof *net);
    if (net == NULL) {
        err_set(err, ENOMEM, "net: out of memory");
        return NULL;
    }
    net->ctx = zmq_ctx_new();
    if (net->ctx == NULL) {
        err_set(err, errno, "net: zmq_ctx_new: %s", zmq_strerror(errno));
        free(net);
        return NULL;
    }
    return net;
}

void net_destroy(net_t *net)
{
    if (net == NULL)
        return;
    zmq_ctx_term(net->ctx);
    free(net);
}

static net_sock_t *sock_new(net_t *net, int type, int64_t max_msg, struct err *err)
{
    net_sock_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        err_set(err, ENOMEM, "net: out of memory");
        return NULL;
    }
    s->zs = zmq_socket(net->ctx, type);
    if (s->zs == NULL) {
        err_set(err, errno, "net: zmq_socket: %s", zmq_strerror(errno));
        free(s);
        return NULL;
    }
    int zero = 0, hwm = 100000;
    zmq_setsockopt(s->zs, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s->zs, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s->zs, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (max_msg > 0)
        zmq_setsockopt(s->zs, ZMQ_MAXMSGSIZE, &max_msg, sizeof max_msg);
    s->router = type == ZMQ_ROUTER;
    if (s->router) {
        int one = 1;
        zmq_setsockopt(s->zs, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    }
    return s;
}

int net_curve_available(void)
{
    return zmq_has("curve");
}

static int z85_ok(const char *k)
{
    static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   ".-:+=^!/*?&<>()[]{}@%$#";
    return k && strlen(k) == NET_KEY_LEN && strspn(k, alphabet) == NET_KEY_LEN;
}

int net_curve_keypair(char public_key[NET_KEY_LEN + 1], char secret_key[NET_KEY_LEN + 1],
                      struct err *err)
{
    if (!zmq_has("curve"))
        return err_set(err, EIO, "curve: this libzmq was built without CURVE");
    if (zmq_curve_keypair(public_key, secret_key) != 0)
        return err_set(err, errno ? errno : EIO, "curve: keypair: %s", zmq_strerror(errno));
    return 0;
}

int net_curve_public(char public_key[NET_KEY_LEN + 1], const char *secret_key, struct err *err)
{
    if (!z85_ok(secret_key))
        return err_set(err, EINVAL, "curve: a key is %d Z85 characters", NET_KEY_LEN);
    if (zmq_curve_public(public_key, secret_key) != 0)
        return err_set(err, errno ? errno : EIO, "curve: public key: %s", zmq_strerror(errno));
    return 0;
}

int net_zmq_curve_server(void *zs, const char *secret_key, struct err *err)
{
    int one = 1;
    if (!z85_ok(secret_key))
        return err_set(err, EINVAL, "curve: bad secret key");
    if (zmq_setsockopt(zs, ZMQ_ZAP_ENFORCE_DOMAIN, &one, sizeof one) != 0)
        return err_set(err, errno, "curve: ZMQ_ZAP_ENFORCE_DOMAIN: %s (libzmq too old?)",
                       zmq_strerror(errno));
    if (zmq_setsockopt(zs, ZMQ_ZAP_DOMAIN, NET_ZAP_DOMAIN, strlen(NET_ZAP_DOMAIN)) != 0 ||
        zmq_setsockopt(zs, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(zs, ZMQ_CURVE_SECRETKEY, secret_key, NET_KEY_LEN) != 0)
        return err_set(err, errno, "curve: server options: %s", zmq_strerror(errno));
    return 0;
}

int net_zmq_curve_client(void *zs, const struct net_curve *c, struct err *err)
{
    if (!z85_ok(c->secret_key) || !z85_ok(c->public_key) || !z85_ok(c->server_key))
        return err_set(err, EINVAL, "curve: bad key (each is %d Z85 characters)", NET_KEY_LEN);
    if (zmq_setsockopt(zs, ZMQ_CURVE_SERVERKEY, c->server_key, NET_KEY_LEN) != 0 ||
        zmq_setsockopt(zs, ZMQ_CURVE_PUBLICKEY, c->public_key, NET_KEY_LEN) != 0 ||
        zmq_setsockopt(zs, ZMQ_CURVE_SECRETKEY, c->secret_key, NET_KEY_LEN) != 0)
        return err_set(err, errno, "curve: client options: %s", zmq_strerror(errno));
    return 0;
}

net_sock_t *net_router_bind(net_t *net, const char *const *endpoints, int n, int64_t max_msg,
                            char *bound, size_t cap, struct err *err)
{
    return net_router_bind_curve(net, endpoints, n, max_msg, NULL, bound, cap, err);
}

net_sock_t *net_router_bind_curve(net_t *net, const char *const *endpoints, int n, int64_t max_msg,
                                  const struct net_curve *curve, char *bound, size_t cap,
                                  struct err *err)
{
    net_sock_t *s = sock_new(net, ZMQ_ROUTER, max_msg, err);
    if (s == NULL)
        return NULL;
    if (curve && net_zmq_curve_server(s->zs, curve->secret_key, err) != 0) {
        net_sock_close(s);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        if (zmq_bind(s->zs, endpoints[i]) != 0) {
            err_set(err, errno, "bind %s: %s", endpoints[i], zmq_strerror(errno));
            net_sock_close(s);
            return NULL;
        }
    }
    if (bound && cap) {
        size_t len = cap;
        if (zmq_getsockopt(s->zs, ZMQ_LAST_ENDPOINT, bound, &len) != 0)
            bound[0] = '\0';
    }
    return s;
}

net_sock_t *net_dealer_connect(net_t *net, const char *endpoint, int64_t max_msg, struct err *err)
{
    return net_dealer_connect_curve(net, endpoint, max_msg, NULL, err);
}

net_sock_t *net_dealer_connect_curve(net_t *net, const char *endpoint, int64_t max_msg,
                                     const struct net_curve *curve, struct err *err)
{
    net_sock_t *s = sock_new(net, ZMQ_DEALER, max_msg, err);
    if (s == NULL)
        return NULL;
    if (curve && net_zmq_curve_client(s->zs, curve, err) != 0) {
        net_sock_close(s);
        return NULL;
    }
    if (curve) { /* N.B. monitor before connecting, or the first events are lost */
        char ep[64];
        snprintf(ep, sizeof ep, "inproc://moat-net-monitor-%p", (void *)s);
        int events = ZMQ_EVENT_CONNECT_DELAYED | ZMQ_EVENT_CONNECTED | ZMQ_EVENT_CONNECT_RETRIED |
                     ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                     ZMQ_EVENT_HANDSHAKE_SUCCEEDED;
        if (zmq_socket_monitor(s->zs, ep, events) == 0 &&
            (s->mon = zmq_socket(net->ctx, ZMQ_PAIR)) != NULL && zmq_connect(s->mon, ep) != 0) {
            zmq_close(s->mon);
            s->mon = NULL;
        }
    }
    int ivl = 100, max_ivl = (int)(NET_RECONNECT_MAX_S * 1000);
    zmq_setsockopt(s->zs, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(s->zs, ZMQ_RECONNECT_IVL_MAX, &max_ivl, sizeof max_ivl);
    if (zmq_connect(s->zs, endpoint) != 0) {
        err_set(err, errno, "connect %s: %s", endpoint, zmq_strerror(errno));
        net_sock_close(s);
        return NULL;
    }
    return s;
}

int net_zmq_monitor_read(void *mon)
{
    zmq_msg_t ev, addr;
    zmq_msg_init(&ev);
    zmq_msg_init(&addr);
    int event = -1;
    if (zmq_msg_recv(&ev, mon, ZMQ_DONTWAIT) >= 0) {
        if (zmq_msg_more(&ev))
            zmq_msg_recv(&addr, mon, 0);
        uint16_t e = 0; /* libzmq writes it in host order */
        if (zmq_msg_size(&ev) >= 2)
            memcpy(&e, zmq_msg_data(&ev), sizeof e);
        event = e;
    }
    zmq_msg_close(&ev);
    zmq_msg_close(&addr);
    return event;
}

/* monitor_drain: fold the pending monitor events into sock's link state.
 * libzmq reports an attempt as CONNECT_DELAYED (a TCP connect started; none
 * for a name that does not resolve), then CONNECTED or CONNECT_RETRIED, then
 * (CURVE) HANDSHAKE_SUCCEEDED, HANDSHAKE_FAILED_AUTH (ZAP's no) or a
 * DISCONNECTED without either (the server dropped the handshake). */
static void monitor_drain(net_sock_t *sock)
{
    for (int event; sock->mon && (event = net_zmq_monitor_read(sock->mon)) >= 0;) {
        switch (event) {
        case ZMQ_EVENT_CONNECT_DELAYED: sock->tcp_started = true; break;
        case ZMQ_EVENT_CONNECTED: sock->seen |= LINK_SEEN_CONNECTED; break;
        case ZMQ_EVENT_CONNECT_RETRIED:
            sock->seen |= sock->tcp_started ? LINK_SEEN_TCP_FAILED : LINK_SEEN_UNRESOLVED;
            sock->tcp_started = false;
            break;
        case ZMQ_EVENT_DISCONNECTED: sock->up = false; break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
            sock->refused = 1;
            sock->seen |= LINK_SEEN_REFUSED;
            break;
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
            sock->refused = 0;
            sock->up = sock->ever_up = true;
            sock->seen = 0;
            break;
        default: break;
        }
    }
}

int net_sock_refused(net_sock_t *sock)
{
    monitor_drain(sock);
    return sock->refused;
}

bool net_sock_ever_up(net_sock_t *sock)
{
    monitor_drain(sock);
    return sock->ever_up;
}

enum net_link net_sock_link(net_sock_t *sock, bool restart)
{
    monitor_drain(sock);
    unsigned seen = sock->seen;
    if (restart)
        sock->seen = 0;
    if (sock->up)
        return NET_LINK_UP;
    if (seen & LINK_SEEN_REFUSED)
        return NET_LINK_REFUSED;
    if (seen & LINK_SEEN_CONNECTED)
        return NET_LINK_NO_HANDSHAKE;
    if (seen & LINK_SEEN_TCP_FAILED)
        return NET_LINK_TCP_FAILED;
    if (seen & LINK_SEEN_UNRESOLVED)
        return NET_LINK_UNRESOLVED;
    return NET_LINK_NONE;
}

void net_sock_close(net_sock_t *sock)
{
    if (sock == NULL)
        return;
    if (sock->mon) {
        zmq_socket_monitor(sock->zs, NULL, 0);
        zmq_close(sock->mon);
    }
    zmq_close(sock->zs);
    free(sock);
}

static int send_part(void *zs, const void *data, size_t len, int more, struct err *err)
{
    if (zmq_send(zs, data, len, ZMQ_DONTWAIT | (more ? ZMQ_SNDMORE : 0)) < 0)
        return err_set(err, errno, "send: %s", zmq_strerror(errno));
    return 0;
}

int net_send(net_sock_t *sock, const struct net_peer *peer, const struct proto_msg *msg,
             struct err *err)
{
    uint8_t hdr[PROTO_HEADER_LEN];
    proto_header_encode(hdr, msg->type, msg->flags, msg->req_id);
    char *body = json_dumps(msg->body, JSON_COMPACT);
    if (body == NULL)
        return err_set(err, ENOMEM, "send: cannot encode %s body", proto_type_name(msg->type));
    int rc = 0;
    if (sock->router) {
        if (peer == NULL || peer->len == 0) {
            free(body);
            return err_set(err, EINVAL, "send: ROUTER needs a peer");
        }
        /* N.B. with ROUTER_MANDATORY an unknown peer fails on the first frame, so
         * nothing partial is queued. */
        rc = send_part(sock->zs, peer->id, peer->len, 1, err);
    }
    if (rc == 0)
        rc = send_part(sock->zs, hdr, sizeof hdr, 1, err);
    if (rc == 0)
        rc = send_part(sock->zs, body, strlen(body), msg->nblobs > 0, err);
    for (int i = 0; rc == 0 && i < msg->nblobs; i++)
        rc = send_part(sock->zs, msg->blobs[i].data, msg->blobs[i].len, i + 1 < msg->nblobs, err);
    free(body);
    return rc;
}

int net_send_frames(net_sock_t *sock, const void *const *frames, const size_t *lens, int n,
                    struct err *err)
{
    for (int i = 0; i < n; i++)
        if (send_part(sock->zs, frames[i], lens[i], i + 1 < n, err) != 0)
            return -1;
    return 0;
}

int net_recv(net_sock_t *sock, struct proto_msg *msg, struct net_peer *peer, struct err *err)
{
    enum { MAXF = 2 + PROTO_MAX_BLOBS };
    zmq_msg_t parts[MAXF];
    int nparts = 0, extra = 0, more = 1, rc;
    peer->len = 0;
    peer->key[0] = '\0';
    memset(msg, 0, sizeof *msg);
    if (sock->router) {
        zmq_msg_t id;
        zmq_msg_init(&id);
        if (zmq_msg_recv(&id, sock->zs, ZMQ_DONTWAIT) < 0) {
            int e = errno;
            zmq_msg_close(&id);
            if (e == EAGAIN)
                return 0;
            return err_set(err, e, "recv: %s", zmq_strerror(e));
        }
        size_t len = zmq_msg_size(&id);
        if (len > NET_PEER_MAX)
            len = NET_PEER_MAX;
        memcpy(peer->id, zmq_msg_data(&id), len);
        peer->len = len;
        more = zmq_msg_more(&id);
        zmq_msg_close(&id);
    }
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        int flags = (sock->router || nparts > 0) ? 0 : ZMQ_DONTWAIT;
        if (zmq_msg_recv(&m, sock->zs, flags) < 0) {
            int e = errno;
            zmq_msg_close(&m);
            if (e == EAGAIN && nparts == 0 && !sock->router)
                return 0;
            for (int i = 0; i < nparts; i++)
                zmq_msg_close(&parts[i]);
            return err_set(err, e, "recv: %s", zmq_strerror(e));
        }
        more = zmq_msg_more(&m);
        if (nparts < MAXF)
            parts[nparts++] = m;
        else {
            extra++;
            zmq_msg_close(&m);
        }
    }
    if (extra) {
        for (int i = 0; i < nparts; i++)
            zmq_msg_close(&parts[i]);
        return err_set(err, EPROTO, "message: more than %d frames", MAXF);
    }
    peer->key[0] = '\0';
    if (sock->router && nparts > 0) {
        /* Set by the ZAP handler's reply for this connection (CURVE only). */
        const char *uid = zmq_msg_gets(&parts[0], "User-Id");
        if (uid && strlen(uid) == NET_KEY_LEN)
            memcpy(peer->key, uid, NET_KEY_LEN + 1);
    }
    const void *frames[MAXF];
    size_t lens[MAXF];
    for (int i = 0; i < nparts; i++) {
        frames[i] = zmq_msg_data(&parts[i]);
        lens[i] = zmq_msg_size(&parts[i]);
    }
    rc = proto_msg_decode(msg, frames, lens, nparts, err);
    for (int i = 0; i < nparts; i++)
        zmq_msg_close(&parts[i]);
    return rc == 0 ? 1 : -1;
}

int net_poll(struct net_pollitem *items, int n, long timeout_ms, struct err *err)
{
    zmq_pollitem_t stack[32], *zi = stack;
    if (n > 32 && (zi = calloc((size_t)n, sizeof *zi)) == NULL)
        return err_set(err, ENOMEM, "poll: out of memory");
    for (int i = 0; i < n; i++) {
        zi[i].socket = items[i].sock ? items[i].sock->zs : NULL;
        zi[i].fd = items[i].fd;
        zi[i].events = (items[i].events & NET_POLLIN) ? ZMQ_POLLIN : 0;
        zi[i].revents = 0;
    }
    int rc = zmq_poll(zi, n, timeout_ms);
    if (rc < 0)
        err_set(err, errno, "poll: %s", zmq_strerror(errno));
    for (int i = 0; rc >= 0 && i < n; i++)
        items[i].revents = (zi[i].revents & ZMQ_POLLIN) ? NET_POLLIN : 0;
    if (zi != stack)
        free(zi);
    return rc;
}

/* ---- ZAP (RFC 27) ---- */

void *net_zmq_zap_bind(void *ctx, struct err *err)
{
    void *zs = zmq_socket(ctx, ZMQ_REP);
    int zero = 0;
    if (zs == NULL || zmq_setsockopt(zs, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_bind(zs, NET_ZAP_ENDPOINT) != 0) {
        err_set(err, errno, "zap: bind %s: %s", NET_ZAP_ENDPOINT, zmq_strerror(errno));
        if (zs)
            zmq_close(zs);
        return NULL;
    }
    return zs;
}

net_sock_t *net_zap_bind(net_t *net, struct err *err)
{
    net_sock_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        err_set(err, ENOMEM, "net: out of memory");
        return NULL;
    }
    s->zs = net_zmq_zap_bind(net->ctx, err);
    if (s->zs == NULL) {
        free(s);
        return NULL;
    }
    return s;
}

/* zap_reply: the six frames of a ZAP reply (RFC 27). */
static int zap_reply(void *zs, const zmq_msg_t *req_id, const char *status, const char *text,
                     const char *user, struct err *err)
{
    zmq_msg_t id;
    zmq_msg_init_size(&id, zmq_msg_size((zmq_msg_t *)req_id));
    memcpy(zmq_msg_data(&id), zmq_msg_data((zmq_msg_t *)req_id), zmq_msg_size((zmq_msg_t *)req_id));
    if (zmq_send(zs, "1.0", 3, ZMQ_SNDMORE) < 0 || zmq_msg_send(&id, zs, ZMQ_SNDMORE) < 0 ||
        zmq_send(zs, status, strlen(status), ZMQ_SNDMORE) < 0 ||
        zmq_send(zs, text, strlen(text), ZMQ_SNDMORE) < 0 ||
        zmq_send(zs, user, strlen(user), ZMQ_SNDMORE) < 0 || zmq_send(zs, "", 0, 0) < 0) {
        zmq_msg_close(&id);
        return err_set(err, errno, "zap: reply: %s", zmq_strerror(errno));
    }
    return 0;
}

int net_zap_serve(net_sock_t *zap, net_zap_cb cb, void *arg, struct err *err)
{
    return net_zmq_zap_serve(zap->zs, cb, arg, err);
}

int net_zmq_zap_serve(void *zs, net_zap_cb cb, void *arg, struct err *err)
{
    enum { ZAP_FRAMES = 7 }; /* version, id, domain, address, identity, mechanism, key */
    int served = 0;
    for (;;) {
        zmq_msg_t f[ZAP_FRAMES + 1];
        int n = 0, more = 1;
        while (more) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, zs, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
                int e = errno;
                zmq_msg_close(&m);
                for (int i = 0; i < n; i++)
                    zmq_msg_close(&f[i]);
                if (e == EAGAIN && n == 0)
                    return served;
                return err_set(err, e, "zap: recv: %s", zmq_strerror(e));
            }
            more = zmq_msg_more(&m);
            if (n < ZAP_FRAMES + 1)
                f[n++] = m;
            else
                zmq_msg_close(&m);
        }
        char mech[16] = "", addr[64] = "", key[NET_KEY_LEN + 1] = "";
        int rc = 0;
        if (n >= 6) {
            size_t ml = zmq_msg_size(&f[5]), al = zmq_msg_size(&f[3]);
            memcpy(mech, zmq_msg_data(&f[5]), ml < sizeof mech - 1 ? ml : sizeof mech - 1);
            memcpy(addr, zmq_msg_data(&f[3]), al < sizeof addr - 1 ? al : sizeof addr - 1);
        }
        if (n == ZAP_FRAMES && strcmp(mech, "CURVE") == 0 && zmq_msg_size(&f[6]) == 32 &&
            zmq_z85_encode(key, zmq_msg_data(&f[6]), 32) != NULL && cb(key, addr, arg))
            rc = zap_reply(zs, &f[1], "200", "OK", key, err);
        else if (n >= 2)
            rc = zap_reply(zs, &f[1], "400", "key not allowed", "", err);
        else { /* not a ZAP request; REP still owes a reply */
            zmq_msg_t none;
            zmq_msg_init(&none);
            rc = zap_reply(zs, &none, "400", "malformed request", "", err);
            zmq_msg_close(&none);
        }
        for (int i = 0; i < n; i++)
            zmq_msg_close(&f[i]);
        if (rc != 0)
            return -1;
        served++;
    }
}
