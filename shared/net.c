/* net.c: ZeroMQ sockets for proto messages. */
#include "shared/net.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

struct net {
    void *ctx;
};

struct net_sock {
    void *zs;
    int router;
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

net_sock_t *net_router_bind(net_t *net, const char *const *endpoints, int n, int64_t max_msg,
                            char *bound, size_t cap, struct err *err)
{
    net_sock_t *s = sock_new(net, ZMQ_ROUTER, max_msg, err);
    if (s == NULL)
        return NULL;
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
    net_sock_t *s = sock_new(net, ZMQ_DEALER, max_msg, err);
    if (s == NULL)
        return NULL;
    int ivl = 100, max_ivl = 1000;
    zmq_setsockopt(s->zs, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(s->zs, ZMQ_RECONNECT_IVL_MAX, &max_ivl, sizeof max_ivl);
    if (zmq_connect(s->zs, endpoint) != 0) {
        err_set(err, errno, "connect %s: %s", endpoint, zmq_strerror(errno));
        net_sock_close(s);
        return NULL;
    }
    return s;
}

void net_sock_close(net_sock_t *sock)
{
    if (sock == NULL)
        return;
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
