/* net.h: the fabric's sockets (ZeroMQ ROUTER/DEALER) carrying proto messages.
 *
 * With worker/wrk_comm.c, the only module that includes zmq.h. A ROUTER
 * (controller) sees each peer as a routing id (struct net_peer); a DEALER
 * (worker, client) talks to one endpoint.
 * Receives are non-blocking; a malformed message is consumed whole and reported
 * as an error so that the caller logs one line and keeps serving.
 * Links are encrypted and authenticated with CURVE (RFC 26, CurveZMQ) when a
 * struct net_curve is given: the ROUTER is the CURVE server and asks a ZAP
 * handler (RFC 27, net_zap_bind) about every new connection, failing closed
 * (ZMQ_ZAP_ENFORCE_DOMAIN) when there is none; each message it receives carries
 * the Z85 public key that the handler accepted (struct net_peer.key).
 * Thread-safety: a net_t may be shared; each net_sock_t belongs to one thread.
 */
#ifndef MOAT_NET_H
#define MOAT_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"
#include "shared/proto.h"

typedef struct net net_t;
typedef struct net_sock net_sock_t;

#define NET_PEER_MAX 255

#define NET_KEY_LEN 40 /* a CURVE key (32 bytes) in Z85 text (ZeroMQ RFC 32) */
/* A connecting socket retries a lost or refused connection after 0.1 s,
 * backing off to NET_RECONNECT_MAX_S between tries (ZMQ_RECONNECT_IVL_MAX):
 * a worker finds a restarted controller within about that long. */
#define NET_RECONNECT_MAX_S 1.0

struct net_peer {
    uint8_t id[NET_PEER_MAX];
    size_t len; /* 0 for a DEALER's single peer */
    char key[NET_KEY_LEN + 1]; /* ROUTER with CURVE: the sender's public key (the ZAP
                                * User-Id); "" on a plaintext socket */
};

/* CURVE settings of one socket, Z85 keys (NUL-terminated, NET_KEY_LEN chars). */
struct net_curve {
    char secret_key[NET_KEY_LEN + 1]; /* this side's secret key */
    char public_key[NET_KEY_LEN + 1]; /* this side's public key */
    char server_key[NET_KEY_LEN + 1]; /* DEALER: the controller's public key; ROUTER: unused */
};

/* net_curve_available: libzmq was built with CURVE (libsodium). */
int net_curve_available(void);

/* net_curve_keypair: a new key pair in Z85. EIO if CURVE is unavailable. */
int net_curve_keypair(char public_key[NET_KEY_LEN + 1], char secret_key[NET_KEY_LEN + 1],
                      struct err *err);

/* net_curve_public: the public key of secret_key (both Z85). EINVAL for a
 * malformed key. */
int net_curve_public(char public_key[NET_KEY_LEN + 1], const char *secret_key, struct err *err);

/* net_create: a ZeroMQ context. Caller frees with net_destroy(). NULL with err (ENOMEM). */
net_t *net_create(struct err *err);
void net_destroy(net_t *net);

/* net_router_bind: a ROUTER bound to every endpoint in endpoints[0..n). Messages
 * larger than max_msg bytes (any frame) make libzmq drop the peer's connection.
 * The last bound endpoint (with a wildcard port resolved) is written to bound
 * (cap bytes) when bound is not NULL. Caller frees with net_sock_close().
 * EADDRINUSE and friends come back with the endpoint named in err. */
net_sock_t *net_router_bind(net_t *net, const char *const *endpoints, int n, int64_t max_msg,
                            char *bound, size_t cap, struct err *err);

/* net_router_bind_curve: net_router_bind as a CURVE server with curve's
 * secret key. N.B. bind the ZAP handler (net_zap_bind) first: with
 * ZMQ_ZAP_ENFORCE_DOMAIN set, a connection that finds no handler is refused. */
net_sock_t *net_router_bind_curve(net_t *net, const char *const *endpoints, int n, int64_t max_msg,
                                  const struct net_curve *curve, char *bound, size_t cap,
                                  struct err *err);

/* net_dealer_connect_curve: net_dealer_connect as a CURVE client of
 * curve->server_key with its own pair. */
net_sock_t *net_dealer_connect_curve(net_t *net, const char *endpoint, int64_t max_msg,
                                     const struct net_curve *curve, struct err *err);

/* ZAP (RFC 27): the handler that a CURVE ROUTER of the same net_t consults on
 * every new connection. net_zap_bind: a REP socket on inproc://zeromq.zap.01
 * (EADDRINUSE if this net_t has one). Caller frees with net_sock_close().
 * net_zap_serve: answer every request waiting on zap without blocking: cb(key,
 * address, arg) is called with the client's Z85 public key and its address and
 * returns 1 to accept (the key becomes the connection's User-Id) or 0 to refuse
 * (status 400). Requests for other mechanisms than CURVE are refused without
 * calling cb. Returns the number of requests answered, -1 with err on a socket
 * error. */
typedef int (*net_zap_cb)(const char *key, const char *address, void *arg);
net_sock_t *net_zap_bind(net_t *net, struct err *err);
int net_zap_serve(net_sock_t *zap, net_zap_cb cb, void *arg, struct err *err);

/* The same CURVE and ZAP set-up on raw libzmq sockets (void *), for a module
 * that runs sockets in a ZeroMQ context of its own: worker/wrk_comm.c, the TP
 * group's collectives (one context per handle and thread).
 * net_zmq_curve_server: make zs (a ROUTER, before it binds) a CURVE server
 *   with secret_key (Z85) that fails closed: every new connection needs the
 *   yes of a ZAP handler in zs's context (ZMQ_ZAP_ENFORCE_DOMAIN).
 * net_zmq_curve_client: make zs (a DEALER, before it connects) a CURVE client
 *   of c->server_key with c's own pair.
 *   Both: EINVAL for a malformed key, else libzmq's errno.
 * net_zmq_zap_bind: a ZAP REP socket (inproc://zeromq.zap.01) in context ctx;
 *   the caller closes it with zmq_close. NULL with err (EADDRINUSE: ctx has
 *   one already).
 * net_zmq_zap_serve: net_zap_serve() on such a socket. */
int net_zmq_curve_server(void *zs, const char *secret_key, struct err *err);
int net_zmq_curve_client(void *zs, const struct net_curve *c, struct err *err);
void *net_zmq_zap_bind(void *ctx, struct err *err);
int net_zmq_zap_serve(void *zs, net_zap_cb cb, void *arg, struct err *err);
/* net_zmq_monitor_read: one pending event of a socket monitor's PAIR socket
 * (zmq_socket_monitor: a frame of u16 event id in host order and u32 value,
 * then the address), without blocking: the event id (ZMQ_EVENT_*), 0 for a
 * malformed event, -1 when none is waiting. */
int net_zmq_monitor_read(void *mon);

/* net_dealer_connect: a DEALER connected (asynchronously; libzmq reconnects on
 * its own) to endpoint. Caller frees with net_sock_close(). */
net_sock_t *net_dealer_connect(net_t *net, const char *endpoint, int64_t max_msg, struct err *err);

/* net_sock_refused: a CURVE DEALER's last handshake was refused by the
 * server's ZAP handler (its key is not allowed); 0 once one succeeds, and for
 * other sockets. Reads the socket's pending handshake events; never blocks. */
int net_sock_refused(net_sock_t *sock);

/* What a CURVE DEALER's connection to its endpoint has come to, from the
 * socket's monitor events (libzmq's zmq_socket_monitor), for messages that
 * say why nothing gets through. From worst to best news:
 *   NET_LINK_NONE        no attempt has ended yet (or no monitor: a plaintext
 *                        socket, or its monitor could not be set up)
 *   NET_LINK_UNRESOLVED  attempts were retried without any TCP connect
 *                        starting: the host name does not resolve
 *   NET_LINK_TCP_FAILED  TCP connects were made and failed (refused,
 *                        unreachable, timed out): nothing listens there
 *   NET_LINK_NO_HANDSHAKE TCP connected, but no CURVE handshake completed:
 *                        the server key is not the server's, or the server
 *                        dropped the connection for another reason
 *   NET_LINK_REFUSED     the server's ZAP handler refused this side's key
 *   NET_LINK_UP          the last handshake succeeded and the connection has
 *                        not dropped since
 * Except for NET_LINK_UP, the answer sums up what happened since the last
 * successful handshake or the last net_sock_link(sock, true): the worst of
 * REFUSED > NO_HANDSHAKE > TCP_FAILED > UNRESOLVED, so that an answer does
 * not depend on the moment of a retry it is asked at. */
enum net_link {
    NET_LINK_NONE,
    NET_LINK_UNRESOLVED,
    NET_LINK_TCP_FAILED,
    NET_LINK_NO_HANDSHAKE,
    NET_LINK_REFUSED,
    NET_LINK_UP,
};

/* net_sock_link: the link's state (above), after reading the socket's pending
 * monitor events; never blocks. restart: forget the events summed up so far
 * (the next call sums up only what happens from now on). */
enum net_link net_sock_link(net_sock_t *sock, bool restart);

/* net_sock_ever_up: whether a CURVE DEALER's handshake ever succeeded (its
 * peer was there once, whatever the link is now); false for other sockets.
 * Reads the socket's pending monitor events; never blocks. */
bool net_sock_ever_up(net_sock_t *sock);

/* net_sock_close: close without lingering. NULL is a no-op. */
void net_sock_close(net_sock_t *sock);

/* net_send: send msg (header, compact JSON body, blobs) to peer (ROUTER) or to the
 * connected endpoint (DEALER: peer NULL). Never blocks. Does not take ownership.
 * EHOSTUNREACH: the peer is gone (ROUTER); EAGAIN: queue full; ENOMEM. */
int net_send(net_sock_t *sock, const struct net_peer *peer, const struct proto_msg *msg,
             struct err *err);

/* net_recv: receive one message without blocking.
 * Returns 1 with *msg filled (caller frees with proto_msg_clear) and *peer set,
 * 0 when nothing is waiting, -1 with err when a message arrived but was malformed
 * (EPROTO; it has been consumed; peer is still set, and msg's type and req_id
 * when its header was valid (proto_msg_decode), so the caller can answer). */
int net_recv(net_sock_t *sock, struct proto_msg *msg, struct net_peer *peer, struct err *err);

struct net_pollitem {
    net_sock_t *sock; /* or NULL and fd */
    int fd;
    short events;     /* NET_POLLIN */
    short revents;
};
#define NET_POLLIN 1

/* net_poll: wait up to timeout_ms (-1: forever) for any item to be readable.
 * Returns the number of ready items, 0 on timeout, -1 on EINTR (err set). */
int net_poll(struct net_pollitem *items, int n, long timeout_ms, struct err *err);

/* net_send_frames: send raw frames (tests and fuzzing only: lets a test put
 * arbitrary bytes on the wire through a DEALER). */
int net_send_frames(net_sock_t *sock, const void *const *frames, const size_t *lens, int n,
                    struct err *err);

#endif
