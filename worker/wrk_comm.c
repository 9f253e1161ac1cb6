/* wrk_comm.c: the TP group's rendezvous, all-reduce and broadcast over ZeroMQ (see wrk_comm.h).
 *
 * Invariants: c->seq is the number of collective calls started; c->failed
 * holds the sticky error once any collective has failed (then nothing more is
 * sent except one ABORT); rank 0 keeps each member's PARTIAL as a zmq_msg_t
 * (no copy) until it has summed them all. The only module besides
 * shared/net.c that includes zmq.h, for its own sockets; their CURVE and ZAP
 * set-up is shared/net.h's (net_zmq_*). Rank 0 answers ZAP requests, and rank
 * k reads its DEALER's handshake failures, wherever they wait for a message
 * (recv_msg): rank 0 waits there whenever it expects a member to connect.
 */
#include "worker/wrk_comm.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <time.h>
#include <zmq.h>

#include "shared/net.h"

#define HDR_LEN 24
#define MAGIC 0x4D4F4152u /* "MOAR" */
#define VERSION 1
#define ID_MAX 255
#define LINGER_MAX_MS 10000
#define LINGER_FAILED_MS 1000

enum comm_type {
    COMM_HELLO = 1,
    COMM_WELCOME,
    COMM_REFUSE,
    COMM_PARTIAL,
    COMM_SUM,
    COMM_BCAST,
    COMM_ABORT,
    COMM_GATHER,
    COMM_GATHERED,
    COMM_TYPE_END
};
static const char *const comm_type_names[COMM_TYPE_END] = {
    "?", "HELLO", "WELCOME", "REFUSE", "PARTIAL", "SUM", "BCAST", "ABORT", "GATHER", "GATHERED"};

struct comm_hdr {
    uint8_t type;
    uint16_t rank, tp;
    uint32_t seq;
    uint64_t count;
};

/* One received message: header, body (kept as a zmq message), sender. */
struct comm_msg {
    struct comm_hdr h;
    zmq_msg_t body;
    int from;                 /* member rank, or -1: a stranger (ROUTER side) */
    uint8_t id[ID_MAX];       /* sender's routing id (ROUTER side) */
    size_t id_len;
};

struct wrk_comm {
    int tp, rank;
    int timeout_ms;
    char group[WRK_COMM_GROUP_MAX + 1];
    char endpoint[256];
    void *ctx, *sock;
    uint32_t seq;
    struct err failed;        /* code != 0: sticky */
    zmq_msg_t *part;          /* rank 0: [tp] partials, index 1.. used */
    bool *have;               /* rank 0: [tp] */
    char (*ids)[ID_MAX + 1];  /* rank 0: [tp] members' routing ids, NUL-terminated */
    char (*keys)[WRK_COMM_KEY_LEN + 1]; /* rank 0: [tp] members' public keys (Z85) */
    void *zap;                /* rank 0: ZAP REP socket (admits keys[1..tp-1]) */
    void *mon;                /* rank k: PAIR receiving the DEALER's handshake failures */
    int hs_failed;            /* rank k: last failed handshake's event, 0 if none */
    bool quiet;               /* failed with nothing more to send: close without linger */
};

/* ---- helpers ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put_be16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put_be32(uint8_t *p, uint32_t v)
{
    put_be16(p, (uint16_t)(v >> 16));
    put_be16(p + 2, (uint16_t)v);
}
static void put_be64(uint8_t *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}
static uint16_t get_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get_be32(const uint8_t *p) { return (uint32_t)get_be16(p) << 16 | get_be16(p + 2); }
static uint64_t get_be64(const uint8_t *p) { return (uint64_t)get_be32(p) << 32 | get_be32(p + 4); }

static void hdr_encode(uint8_t out[HDR_LEN], const struct comm_hdr *h)
{
    put_be32(out, MAGIC);
    out[4] = VERSION;
    out[5] = h->type;
    put_be16(out + 6, 0);
    put_be16(out + 8, h->rank);
    put_be16(out + 10, h->tp);
    put_be32(out + 12, h->seq);
    put_be64(out + 16, h->count);
}

/* Decode a header frame; 0, or -1 with EPROTO naming the failed check. */
static int hdr_decode(const void *buf, size_t len, struct comm_hdr *h, struct err *err)
{
    const uint8_t *p = buf;
    if (len != HDR_LEN)
        return err_set(err, EPROTO, "header of %zu bytes, expected %d", len, HDR_LEN);
    if (get_be32(p) != MAGIC)
        return err_set(err, EPROTO, "bad magic 0x%08x", get_be32(p));
    if (p[4] != VERSION)
        return err_set(err, EPROTO, "version %u, expected %d", p[4], VERSION);
    if (get_be16(p + 6) != 0)
        return err_set(err, EPROTO, "flags 0x%04x set", get_be16(p + 6));
    if (p[5] < COMM_HELLO || p[5] >= COMM_TYPE_END)
        return err_set(err, EPROTO, "unknown type %u", p[5]);
    h->type = p[5];
    h->rank = get_be16(p + 8);
    h->tp = get_be16(p + 10);
    h->seq = get_be32(p + 12);
    h->count = get_be64(p + 16);
    return 0;
}

static bool group_valid(const char *g)
{
    size_t n = strlen(g);
    if (n == 0 || n > WRK_COMM_GROUP_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = g[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')
                  || ch == '.' || ch == '_' || ch == ':' || ch == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* Remaining milliseconds until deadline (>= 0). */
static long remaining_ms(int64_t deadline)
{
    int64_t r = deadline - now_ms();
    return r > 0 ? (long)r : 0;
}

/* ---- sending ---- */

/* Send header + body; on a ROUTER prefixed by the routing id of `to`
 * (id, id_len). zmq_send copies body. Blocks at most timeout_ms (SNDTIMEO). */
static int send_msg(wrk_comm_t *c, const void *id, size_t id_len, const struct comm_hdr *h,
                    const void *body, size_t body_len, struct err *err)
{
    uint8_t hdr[HDR_LEN];
    hdr_encode(hdr, h);
    if ((id_len > 0 && zmq_send(c->sock, id, id_len, ZMQ_SNDMORE) < 0)
        || zmq_send(c->sock, hdr, HDR_LEN, ZMQ_SNDMORE) < 0
        || zmq_send(c->sock, body, body_len, 0) < 0) {
        int e = errno;
        if (e == EAGAIN)
            return err_set(err, ETIMEDOUT, "send %s: not delivered in %d ms",
                           comm_type_names[h->type], c->timeout_ms);
        return err_set(err, e, "send %s: %s", comm_type_names[h->type], zmq_strerror(e));
    }
    return 0;
}

static int send_to(wrk_comm_t *c, int to, const struct comm_hdr *h, const void *body,
                   size_t body_len, struct err *err)
{
    if (c->rank != 0)
        return send_msg(c, NULL, 0, h, body, body_len, err);
    if (send_msg(c, c->ids[to], strlen(c->ids[to]), h, body, body_len, err) != 0)
        return err_prefix(err, "rank %d", to);
    return 0;
}

static struct comm_hdr hdr_make(const wrk_comm_t *c, int type, uint32_t seq, uint64_t count)
{
    struct comm_hdr h = {(uint8_t)type, (uint16_t)c->rank, (uint16_t)c->tp, seq, count};
    return h;
}

/* Mark the handle failed with *e and tell the group (once, best effort). */
static int comm_fail(wrk_comm_t *c, struct err *e)
{
    if (c->failed.code != 0)
        return -1;
    c->failed = *e;
    const char *why = e->msg;
    struct comm_hdr h = hdr_make(c, COMM_ABORT, c->seq, strlen(why));
    int timeo = 0;  /* never block on the way out */
    zmq_setsockopt(c->sock, ZMQ_SNDTIMEO, &timeo, sizeof timeo);
    struct err ignore = {0};
    if (c->rank == 0) {
        for (int k = 1; k < c->tp; k++)
            send_to(c, k, &h, why, strlen(why), &ignore);
    } else {
        send_to(c, 0, &h, why, strlen(why), &ignore);
    }
    return -1;
}

/* ---- CURVE: keys, ZAP, handshake events ---- */

bool wrk_comm_key_valid(const char *k)
{
    uint8_t raw[32];
    return k != NULL && strlen(k) == WRK_COMM_KEY_LEN && zmq_z85_decode(raw, k) != NULL;
}

/* Rank 0: the member rank 1..tp-1 whose public key is key, or -1. */
static int member_of_key(const wrk_comm_t *c, const char *key)
{
    if (key == NULL)
        return -1;
    for (int k = 1; k < c->tp; k++)
        if (strcmp(c->keys[k], key) == 0)
            return k;
    return -1;
}

/* Rank 0's ZAP verdict (net_zap_cb): a key of ranks 1..tp-1, nothing else. */
static int zap_admit(const char *key, const char *address, void *arg)
{
    (void)address;
    return member_of_key(arg, key) > 0;
}

/* Rank k: read the DEALER's pending handshake events (the monitor's two-frame
 * messages: u16 event in host order + u32 value, then the address): the last
 * failure in c->hs_failed (a success clears it). Returns c->hs_failed. */
static int read_handshake_events(wrk_comm_t *c)
{
    for (int event; (event = net_zmq_monitor_read(c->mon)) >= 0;)
        if (event > 0)
            c->hs_failed = event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED ? 0 : event;
    return c->hs_failed;
}

/* ---- receiving ---- */

/* Receive one whole message, waiting until deadline. Returns 1 with *m (body
 * initialised: caller closes it), 0 on timeout, -1 with err (EPROTO from a
 * member; errno of zmq). Messages from strangers are answered (REFUSE to a
 * HELLO) or dropped, and the wait goes on. */
static int recv_msg(wrk_comm_t *c, int64_t deadline, struct comm_msg *m, struct err *err)
{
    /* N.B. every pass checks the deadline: ZAP requests, handshake events
     * and strangers' messages must not keep a wait going past it */
    for (bool first = true;; first = false) {
        if (!first && remaining_ms(deadline) == 0)
            return 0;
        zmq_pollitem_t it[2] = {{c->sock, 0, ZMQ_POLLIN, 0},
                                {c->rank == 0 ? c->zap : c->mon, 0, ZMQ_POLLIN, 0}};
        int rc = zmq_poll(it, it[1].socket ? 2 : 1, remaining_ms(deadline));
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            return err_set(err, errno, "poll: %s", zmq_strerror(errno));
        }
        if (rc == 0)
            return 0;
        if (it[1].revents & ZMQ_POLLIN) {
            if (c->rank == 0 && net_zmq_zap_serve(c->zap, zap_admit, c, err) < 0)
                return -1;
            /* ZAP said no, or what listens there speaks no CURVE (a
             * protocol error: a plaintext ZeroMQ peer, say): final. A
             * handshake that just broke off (NO_DETAIL: a connection lost,
             * or a peer that cannot decrypt this rank's HELLO because it
             * holds another rank 0 key) is retried by libzmq and only
             * named if the wait times out. */
            int ev = c->rank != 0 ? read_handshake_events(c) : 0;
            if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
                return err_set(err, ECONNREFUSED,
                               "rank 0 at %s refused rank %d's CURVE key (not a key of "
                               "group %s)", c->endpoint, c->rank, c->group);
            if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
                return err_set(err, ECONNREFUSED,
                               "%s is not rank 0 of group %s: its handshake is not CURVE's",
                               c->endpoint, c->group);
        }
        if (!(it[0].revents & ZMQ_POLLIN))
            continue;
        /* read every frame of the message: [id] header body, any extras counted */
        zmq_msg_t f[4];
        int nf = 0, extra = 0;
        int more = 1;
        while (more) {
            zmq_msg_t tmp;
            zmq_msg_init(&tmp);
            if (zmq_msg_recv(&tmp, c->sock, ZMQ_DONTWAIT) < 0) {
                int e = errno;
                zmq_msg_close(&tmp);
                if (e == EAGAIN && nf == 0)
                    break; /* spurious wake-up */
                if (e == EINTR)
                    continue;
                for (int i = 0; i < nf; i++)
                    zmq_msg_close(&f[i]);
                return err_set(err, e, "receive: %s", zmq_strerror(e));
            }
            more = zmq_msg_more(&tmp);
            if (nf < 4)
                f[nf++] = tmp;
            else {
                extra++;
                zmq_msg_close(&tmp);
            }
        }
        if (nf == 0)
            continue;
        int base = c->rank == 0 ? 1 : 0;
        m->from = c->rank == 0 ? -1 : 0;
        m->id_len = 0;
        int key_rank = -1; /* rank 0: whose key authenticated the connection */
        if (c->rank == 0) {
            m->id_len = zmq_msg_size(&f[0]) < ID_MAX ? zmq_msg_size(&f[0]) : ID_MAX;
            memcpy(m->id, zmq_msg_data(&f[0]), m->id_len);
            for (int k = 1; k < c->tp; k++)
                if (strlen(c->ids[k]) == m->id_len && memcmp(c->ids[k], m->id, m->id_len) == 0)
                    m->from = k;
            /* the ZAP handler's User-Id (the key) is on every frame that
             * came over the wire: not on the routing id, which ROUTER adds */
            key_rank = nf > 1 ? member_of_key(c, zmq_msg_gets(&f[1], "User-Id")) : -1;
            if (key_rank != m->from)
                m->from = -1; /* no member speaks under another's routing id */
        }
        struct err perr = {0};
        int ok = 0;
        if (nf - base + extra != 2)
            err_set(&perr, EPROTO, "%d frames, expected 2", nf - base + extra);
        else if (hdr_decode(zmq_msg_data(&f[base]), zmq_msg_size(&f[base]), &m->h, &perr) == 0) {
            if (m->from >= 0 && m->h.rank != m->from)
                err_set(&perr, EPROTO, "header says rank %u", m->h.rank);
            else if (m->from >= 0 && m->h.tp != c->tp && m->h.type != COMM_HELLO
                     && m->h.type != COMM_REFUSE && m->h.type != COMM_ABORT)
                err_set(&perr, EPROTO, "header says tp %u, group has %d", m->h.tp, c->tp);
            else
                ok = 1;
        }
        if (ok) {
            zmq_msg_init(&m->body);
            zmq_msg_move(&m->body, &f[base + 1]);
        }
        for (int i = 0; i < nf; i++)
            zmq_msg_close(&f[i]);
        if (m->from < 0) {
            /* a stranger: refuse its HELLO so that it fails fast, drop anything else */
            if (ok && m->h.type == COMM_HELLO) {
                char why[WRK_COMM_GROUP_MAX + 128];
                if (key_rank > 0)
                    snprintf(why, sizeof why,
                             "rank %d's key under another routing id: not a member of group "
                             "'%s' (tp %d)", key_rank, c->group, c->tp);
                else
                    snprintf(why, sizeof why, "not a member of group '%s' (tp %d)", c->group,
                             c->tp);
                struct comm_hdr h = hdr_make(c, COMM_REFUSE, 0, strlen(why));
                struct err ignore = {0};
                send_msg(c, m->id, m->id_len, &h, why, strlen(why), &ignore);
            }
            if (ok)
                zmq_msg_close(&m->body);
            continue;
        }
        if (!ok) {
            *err = perr;
            return err_prefix(err, "rank %d", m->from);
        }
        return 1;
    }
}

/* The body as text for REFUSE/ABORT reasons. */
static void body_text(zmq_msg_t *body, char *out, size_t cap)
{
    size_t n = zmq_msg_size(body);
    if (n >= cap)
        n = cap - 1;
    memcpy(out, zmq_msg_data(body), n);
    out[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
            out[i] = '?';
}

/* Check a member's message against what this call expects: type (ABORT ->
 * ECANCELED), seq, count, body length. 0 or -1 with err. */
static int msg_expect(const wrk_comm_t *c, struct comm_msg *m, int type, uint32_t seq,
                      uint64_t count, size_t elem, struct err *err)
{
    if (m->h.type == COMM_ABORT) {
        char why[120];
        body_text(&m->body, why, sizeof why);
        return err_set(err, ECANCELED, "rank %d aborted: %s", m->from, why);
    }
    if (m->h.type != type)
        return err_set(err, EPROTO, "rank %d: %s, expected %s", m->from,
                       comm_type_names[m->h.type], comm_type_names[type]);
    if (m->h.seq != seq)
        return err_set(err, EPROTO, "rank %d: %s seq %u, expected %u", m->from,
                       comm_type_names[type], m->h.seq, seq);
    if (m->h.count != count)
        return err_set(err, EPROTO, "rank %d: %s count %llu, expected %llu", m->from,
                       comm_type_names[type], (unsigned long long)m->h.count,
                       (unsigned long long)count);
    if (zmq_msg_size(&m->body) != count * elem)
        return err_set(err, EPROTO, "rank %d: %s body of %zu bytes, expected %llu", m->from,
                       comm_type_names[type], zmq_msg_size(&m->body),
                       (unsigned long long)(count * elem));
    (void)c;
    return 0;
}

/* "1" or "1,2,3" (up to a few): the members rank 0 still waits for. */
static void missing_list(const wrk_comm_t *c, char *out, size_t cap, int *count)
{
    size_t off = 0;
    *count = 0;
    out[0] = '\0';
    for (int k = 1; k < c->tp; k++)
        if (!c->have[k]) {
            if (off + 8 < cap)
                off += (size_t)snprintf(out + off, cap - off, "%s%d", *count ? "," : "", k);
            (*count)++;
        }
}

/* ---- rendezvous ---- */

static int rendezvous_root(wrk_comm_t *c, struct err *err)
{
    int64_t deadline = now_ms() + c->timeout_ms;
    int present = 1;
    struct err e = {0};
    while (present < c->tp) {
        struct comm_msg m;
        int rc = recv_msg(c, deadline, &m, &e);
        if (rc < 0)
            goto fail;
        if (rc == 0) {
            char miss[96];
            int nmiss;
            missing_list(c, miss, sizeof miss, &nmiss);
            err_set(&e, ETIMEDOUT, "group %s: rank%s %s missing after %.1f s", c->group,
                    nmiss > 1 ? "s" : "", miss, c->timeout_ms / 1000.0);
            goto fail;
        }
        char text[WRK_COMM_GROUP_MAX + 1];
        body_text(&m.body, text, sizeof text);
        if (m.h.type == COMM_ABORT) {
            err_set(&e, ECANCELED, "rank %d aborted: %s", m.from, text);
        } else if (m.h.type != COMM_HELLO) {
            err_set(&e, EPROTO, "rank %d: %s before the rendezvous", m.from,
                    comm_type_names[m.h.type]);
        } else if (m.h.tp != c->tp) {
            char why[96];
            snprintf(why, sizeof why, "tp %u, rank 0 has tp %d", m.h.tp, c->tp);
            struct comm_hdr h = hdr_make(c, COMM_REFUSE, 0, strlen(why));
            struct err ignore = {0};
            send_to(c, m.from, &h, why, strlen(why), &ignore);
            err_set(&e, EINVAL, "rank %d: %s", m.from, why);
        } else if (strcmp(text, c->group) != 0) {
            err_set(&e, EPROTO, "rank %d: group '%s' in HELLO", m.from, text);
        } else if (c->have[m.from]) {
            err_set(&e, EPROTO, "rank %d: second HELLO", m.from);
        } else {
            c->have[m.from] = true;
            present++;
        }
        zmq_msg_close(&m.body);
        if (e.code != 0)
            goto fail;
    }
    for (int k = 1; k < c->tp; k++) {
        struct comm_hdr h = hdr_make(c, COMM_WELCOME, 0, strlen(c->group));
        if (send_to(c, k, &h, c->group, strlen(c->group), &e) != 0)
            goto fail;
        c->have[k] = false;
    }
    return 0;
fail:
    for (int k = 1; k < c->tp; k++)
        c->have[k] = false; /* N.B. have[] means "part[k] holds a message" from here on */
    *err = e;
    comm_fail(c, &e);
    return err_prefix(err, "comm rendezvous");
}

/* Rank k: fail the rendezvous with *e without an ABORT back (rank 0 refused
 * this rank, or aborted itself: it knows already). */
static int fail_quietly(wrk_comm_t *c, const struct err *e, struct err *err)
{
    /* N.B. drop the queued HELLO too: delivered later (rank 0 bound after
     * all), it would make rank 0 count a rank that has gone */
    int zero = 0;
    zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof zero);
    c->quiet = true;
    c->failed = *e;
    *err = *e;
    return err_prefix(err, "comm rendezvous");
}

static int rendezvous_member(wrk_comm_t *c, struct err *err)
{
    struct err e = {0};
    struct comm_hdr h = hdr_make(c, COMM_HELLO, 0, strlen(c->group));
    if (send_to(c, 0, &h, c->group, strlen(c->group), &e) != 0)
        goto fail;
    struct comm_msg m;
    int rc = recv_msg(c, now_ms() + c->timeout_ms, &m, &e);
    if (rc < 0 && e.code == ECONNREFUSED)
        return fail_quietly(c, &e, err); /* at the handshake: nothing reaches rank 0 */
    if (rc < 0)
        goto fail;
    if (rc == 0) {
        err_set(&e, ETIMEDOUT, "group %s: no WELCOME from rank 0 at %s after %.1f s%s", c->group,
                c->endpoint, c->timeout_ms / 1000.0,
                c->hs_failed ? " (CURVE handshakes failed: another rank 0 key?)" : "");
        goto fail;
    }
    char text[WRK_COMM_GROUP_MAX + 1];
    body_text(&m.body, text, sizeof text);
    if (m.h.type == COMM_REFUSE)
        err_set(&e, ECONNREFUSED, "rank 0 refused rank %d of group %s: %s", c->rank, c->group,
                text);
    else if (m.h.type == COMM_ABORT)
        err_set(&e, ECANCELED, "rank 0 aborted: %s", text);
    else if (m.h.type != COMM_WELCOME)
        err_set(&e, EPROTO, "rank 0: %s, expected WELCOME", comm_type_names[m.h.type]);
    else if (strcmp(text, c->group) != 0)
        err_set(&e, EPROTO, "rank 0: group '%s' in WELCOME", text);
    zmq_msg_close(&m.body);
    if (e.code == 0)
        return 0;
    if (e.code == ECONNREFUSED || e.code == ECANCELED)
        return fail_quietly(c, &e, err);
fail:
    *err = e;
    comm_fail(c, &e);
    return err_prefix(err, "comm rendezvous");
}

/* ---- create / destroy ---- */

/* Check keys for rank of tp and write rank's CURVE pair into cv (the server
 * key: rank 0's public key). 0, or -1 with EINVAL naming the key. */
static int keys_check(const struct wrk_comm_keys *keys, int tp, int rank, struct net_curve *cv,
                      struct err *err)
{
    if (keys == NULL || keys->secret == NULL || keys->publics == NULL)
        return err_set(err, EINVAL, "comm: CURVE keys required when tp > 1");
    for (int k = 0; k < tp; k++) {
        if (!wrk_comm_key_valid(keys->publics[k]))
            return err_set(err, EINVAL, "comm: public key of rank %d: not %d Z85 characters", k,
                           WRK_COMM_KEY_LEN);
        for (int j = 0; j < k; j++)
            if (strcmp(keys->publics[j], keys->publics[k]) == 0)
                return err_set(err, EINVAL, "comm: ranks %d and %d have the same public key", j,
                               k);
    }
    struct err e = {0};
    if (!wrk_comm_key_valid(keys->secret) || net_curve_public(cv->public_key, keys->secret, &e) != 0)
        return err_set(err, EINVAL, "comm: secret key: not %d Z85 characters", WRK_COMM_KEY_LEN);
    if (strcmp(cv->public_key, keys->publics[rank]) != 0)
        return err_set(err, EINVAL, "comm: secret key is not that of rank %d's public key", rank);
    memcpy(cv->secret_key, keys->secret, WRK_COMM_KEY_LEN + 1);
    memcpy(cv->server_key, keys->publics[0], WRK_COMM_KEY_LEN + 1);
    return 0;
}

wrk_comm_t *wrk_comm_create(const char *endpoint, const char *group, int tp, int rank,
                            const struct wrk_comm_keys *keys, double timeout_s, struct err *err)
{
    if (tp < 1 || tp > WRK_COMM_TP_MAX || rank < 0 || rank >= tp) {
        err_set(err, EINVAL, "comm: rank %d of tp %d (tp in [1, %d])", rank, tp, WRK_COMM_TP_MAX);
        return NULL;
    }
    if (group == NULL || !group_valid(group)) {
        err_set(err, EINVAL, "comm: group: 1..%d bytes of [A-Za-z0-9._:-] required",
                WRK_COMM_GROUP_MAX);
        return NULL;
    }
    if (!(timeout_s > 0 && timeout_s <= 86400)) {
        err_set(err, EINVAL, "comm: timeout %g s outside (0, 86400]", timeout_s);
        return NULL;
    }
    if (tp > 1 && (endpoint == NULL || endpoint[0] == '\0' || strlen(endpoint) >= 256)) {
        err_set(err, EINVAL, "comm: endpoint required (under 256 bytes) when tp > 1");
        return NULL;
    }
    struct net_curve cv = {0};
    if (tp > 1 && keys_check(keys, tp, rank, &cv, err) != 0)
        return NULL;
    wrk_comm_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        err_set(err, ENOMEM, "comm: out of memory");
        return NULL;
    }
    c->tp = tp;
    c->rank = rank;
    c->timeout_ms = (int)(timeout_s * 1000.0 + 0.5);
    if (c->timeout_ms < 1)
        c->timeout_ms = 1;
    snprintf(c->group, sizeof c->group, "%s", group);
    if (tp == 1)
        return c;
    snprintf(c->endpoint, sizeof c->endpoint, "%s", endpoint);

    c->ctx = zmq_ctx_new();
    if (c->ctx == NULL) {
        err_set(err, ENOMEM, "comm: zmq_ctx_new: %s", zmq_strerror(errno));
        goto fail;
    }
    c->sock = zmq_socket(c->ctx, rank == 0 ? ZMQ_ROUTER : ZMQ_DEALER);
    if (c->sock == NULL) {
        err_set(err, errno, "comm: zmq_socket: %s", zmq_strerror(errno));
        goto fail;
    }
    int zero = 0, one = 1;
    int64_t maxmsg = WRK_COMM_MSG_MAX;
    zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(c->sock, ZMQ_SNDTIMEO, &c->timeout_ms, sizeof c->timeout_ms);
    zmq_setsockopt(c->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (rank == 0) {
        zmq_setsockopt(c->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
        c->part = calloc((size_t)tp, sizeof *c->part);
        c->have = calloc((size_t)tp, sizeof *c->have);
        c->ids = calloc((size_t)tp, sizeof *c->ids);
        c->keys = calloc((size_t)tp, sizeof *c->keys);
        if (c->part == NULL || c->have == NULL || c->ids == NULL || c->keys == NULL) {
            err_set(err, ENOMEM, "comm: out of memory");
            goto fail;
        }
        for (int k = 1; k < tp; k++) {
            snprintf(c->ids[k], sizeof c->ids[k], "%d/%s", k, group);
            memcpy(c->keys[k], keys->publics[k], WRK_COMM_KEY_LEN + 1);
        }
        /* N.B. the ZAP handler before the bind: the ROUTER fails closed without one */
        if ((c->zap = net_zmq_zap_bind(c->ctx, err)) == NULL
            || net_zmq_curve_server(c->sock, cv.secret_key, err) != 0) {
            err_prefix(err, "comm");
            goto fail;
        }
        if (zmq_bind(c->sock, endpoint) != 0) {
            err_set(err, errno, "comm: bind %s: %s", endpoint, zmq_strerror(errno));
            goto fail;
        }
        size_t len = sizeof c->endpoint;
        zmq_getsockopt(c->sock, ZMQ_LAST_ENDPOINT, c->endpoint, &len);
        if (rendezvous_root(c, err) != 0)
            goto fail;
    } else {
        char id[ID_MAX + 1];
        int n = snprintf(id, sizeof id, "%d/%s", rank, group);
        zmq_setsockopt(c->sock, ZMQ_ROUTING_ID, id, (size_t)n);
        if (net_zmq_curve_client(c->sock, &cv, err) != 0) {
            err_prefix(err, "comm");
            goto fail;
        }
        /* N.B. the monitor before the connect, or the first events are lost;
         * the inproc name is this handle's context's own */
        if (zmq_socket_monitor(c->sock, "inproc://moat-comm-handshakes",
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
                                   | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL
                                   | ZMQ_EVENT_HANDSHAKE_SUCCEEDED) != 0
            || (c->mon = zmq_socket(c->ctx, ZMQ_PAIR)) == NULL
            || zmq_connect(c->mon, "inproc://moat-comm-handshakes") != 0) {
            err_set(err, errno, "comm: handshake monitor: %s", zmq_strerror(errno));
            goto fail;
        }
        if (zmq_connect(c->sock, endpoint) != 0) {
            err_set(err, errno, "comm: connect %s: %s", endpoint, zmq_strerror(errno));
            goto fail;
        }
        if (rendezvous_member(c, err) != 0)
            goto fail;
    }
    sodium_memzero(cv.secret_key, sizeof cv.secret_key);
    return c;
fail:
    sodium_memzero(cv.secret_key, sizeof cv.secret_key);
    wrk_comm_destroy(c);
    return NULL;
}

void wrk_comm_destroy(wrk_comm_t *c)
{
    if (c == NULL)
        return;
    if (c->sock != NULL) {
        /* N.B. rank 0's last SUM may still be queued: let it leave; after a
         * failure only a best-effort ABORT is, so wait less for a dead peer */
        int cap = c->failed.code != 0 ? LINGER_FAILED_MS : LINGER_MAX_MS;
        int linger = c->quiet ? 0 : c->timeout_ms < cap ? c->timeout_ms : cap;
        zmq_setsockopt(c->sock, ZMQ_LINGER, &linger, sizeof linger);
        if (c->mon != NULL)
            zmq_socket_monitor(c->sock, NULL, 0);
        zmq_close(c->sock);
    }
    if (c->mon != NULL)
        zmq_close(c->mon);
    if (c->zap != NULL)
        zmq_close(c->zap);
    if (c->ctx != NULL)
        zmq_ctx_term(c->ctx);
    if (c->part != NULL)
        for (int k = 1; k < c->tp; k++)
            if (c->have[k])
                zmq_msg_close(&c->part[k]);
    free(c->part);
    free(c->have);
    free(c->ids);
    free(c->keys);
    free(c);
}

/* ---- collectives ---- */

/* Start a collective call: sticky failure, seq. */
static int call_begin(wrk_comm_t *c, struct err *err)
{
    if (c->failed.code != 0) {
        *err = c->failed;
        return -1;
    }
    if (c->seq == UINT32_MAX)
        return err_set(err, EOVERFLOW, "comm: %u collective calls", c->seq);
    c->seq++;
    return 0;
}

static int call_fail(wrk_comm_t *c, struct err *e, const char *what, struct err *err)
{
    err_prefix(e, "comm %s %u", what, c->seq);
    *err = *e;
    return comm_fail(c, e);
}

/* Sum in rank order: buf += part[1], then part[2], ... (4-byte loads through
 * memcpy: a received frame need not be aligned for float). */
static void sum_partials(wrk_comm_t *c, float *buf, size_t n)
{
    for (int k = 1; k < c->tp; k++) {
        const unsigned char *p = zmq_msg_data(&c->part[k]);
        for (size_t i = 0; i < n; i++) {
            float v;
            memcpy(&v, p + i * sizeof v, sizeof v);
            buf[i] += v;
        }
    }
}

/* Rank 0: wait for this call's message of type from every rank 1..tp-1, each
 * of count elements of elem bytes, and keep it in part[k] (have[k] set).
 * 0, or -1 with *e (part[] is then released by the caller's call_fail path). */
static int root_collect(wrk_comm_t *c, int type, uint64_t count, size_t elem, struct err *e)
{
    int64_t deadline = now_ms() + c->timeout_ms;
    int present = 1;
    while (present < c->tp) {
        struct comm_msg m;
        int rc = recv_msg(c, deadline, &m, e);
        if (rc < 0)
            return -1;
        if (rc == 0) {
            char miss[96];
            int nmiss;
            missing_list(c, miss, sizeof miss, &nmiss);
            return err_set(e, ETIMEDOUT, "no %s from rank%s %s after %.1f s",
                           type == COMM_PARTIAL ? "partial" : comm_type_names[type],
                           nmiss > 1 ? "s" : "", miss, c->timeout_ms / 1000.0);
        }
        if (msg_expect(c, &m, type, c->seq, count, elem, e) == 0 && c->have[m.from])
            err_set(e, EPROTO, "rank %d: second %s", m.from, comm_type_names[type]);
        if (e->code != 0) {
            zmq_msg_close(&m.body);
            return -1;
        }
        zmq_msg_init(&c->part[m.from]);
        zmq_msg_move(&c->part[m.from], &m.body);
        zmq_msg_close(&m.body);
        c->have[m.from] = true;
        present++;
    }
    return 0;
}

/* Rank 0: release every kept message. */
static void root_release(wrk_comm_t *c)
{
    for (int k = 1; k < c->tp; k++)
        if (c->have[k]) {
            zmq_msg_close(&c->part[k]);
            c->have[k] = false;
        }
}

/* Rank 0: send body (bytes) as this call's message of type and count to every
 * rank 1..tp-1: one copy, shared (reference-counted) by every send. */
static int root_send_all(wrk_comm_t *c, int type, const void *body, size_t bytes,
                         uint64_t count, struct err *e)
{
    zmq_msg_t one;
    if (zmq_msg_init_size(&one, bytes) != 0)
        return err_set(e, ENOMEM, "out of memory for %zu bytes", bytes);
    if (bytes > 0)
        memcpy(zmq_msg_data(&one), body, bytes);
    for (int k = 1; k < c->tp && e->code == 0; k++) {
        uint8_t hdr[HDR_LEN];
        struct comm_hdr h = hdr_make(c, type, c->seq, count);
        hdr_encode(hdr, &h);
        zmq_msg_t out;
        zmq_msg_init(&out);
        zmq_msg_copy(&out, &one);
        if (zmq_send(c->sock, c->ids[k], strlen(c->ids[k]), ZMQ_SNDMORE) < 0
            || zmq_send(c->sock, hdr, HDR_LEN, ZMQ_SNDMORE) < 0
            || zmq_msg_send(&out, c->sock, 0) < 0) {
            int en = errno;
            zmq_msg_close(&out);
            err_set(e, en == EAGAIN ? ETIMEDOUT : en, "rank %d: send %s: %s", k,
                    comm_type_names[type],
                    en == EAGAIN ? "not delivered in time" : zmq_strerror(en));
        }
    }
    zmq_msg_close(&one);
    return e->code != 0 ? -1 : 0;
}

static int allreduce_root(wrk_comm_t *c, float *buf, size_t n, struct err *err)
{
    struct err e = {0};
    if (root_collect(c, COMM_PARTIAL, n, sizeof(float), &e) != 0)
        goto fail;
    sum_partials(c, buf, n);
    root_release(c);
    if (root_send_all(c, COMM_SUM, buf, n * sizeof(float), n, &e) != 0)
        goto fail;
    return 0;
fail:
    root_release(c);
    return call_fail(c, &e, "all-reduce", err);
}

/* Rank k: wait for rank 0's message of type for this call, count elements of
 * elem bytes, and copy its body into out. */
static int member_wait(wrk_comm_t *c, int type, void *out, uint64_t count, size_t elem,
                       struct err *e)
{
    struct comm_msg m;
    int rc = recv_msg(c, now_ms() + c->timeout_ms, &m, e);
    if (rc < 0)
        return -1;
    if (rc == 0)
        return err_set(e, ETIMEDOUT, "no %s from rank 0 after %.1f s", comm_type_names[type],
                       c->timeout_ms / 1000.0);
    if (msg_expect(c, &m, type, c->seq, count, elem, e) != 0) {
        zmq_msg_close(&m.body);
        return -1;
    }
    if (count > 0)
        memcpy(out, zmq_msg_data(&m.body), count * elem);
    zmq_msg_close(&m.body);
    return 0;
}

int wrk_comm_allreduce_sum(void *ctx, float *buf, size_t n, struct err *err)
{
    wrk_comm_t *c = ctx;
    if (c == NULL || (buf == NULL && n > 0))
        return err_set(err, EINVAL, "comm all-reduce: NULL argument");
    if (n > (size_t)WRK_COMM_MSG_MAX / sizeof(float))
        return err_set(err, EINVAL, "comm all-reduce: %zu floats over the %lld-byte frame limit",
                       n, WRK_COMM_MSG_MAX);
    if (c->tp == 1)
        return 0;
    if (call_begin(c, err) != 0)
        return -1;
    if (c->rank == 0)
        return allreduce_root(c, buf, n, err);
    struct err e = {0};
    struct comm_hdr h = hdr_make(c, COMM_PARTIAL, c->seq, n);
    if (send_to(c, 0, &h, buf, n * sizeof(float), &e) != 0
        || member_wait(c, COMM_SUM, buf, n, sizeof(float), &e) != 0)
        return call_fail(c, &e, "all-reduce", err);
    return 0;
}

struct wrk_allreduce wrk_comm_allreduce(wrk_comm_t *c)
{
    struct wrk_allreduce ar = {wrk_comm_allreduce_sum, c};
    return ar;
}

int wrk_comm_bcast(wrk_comm_t *c, void *buf, size_t len, struct err *err)
{
    if (c == NULL || (buf == NULL && len > 0))
        return err_set(err, EINVAL, "comm broadcast: NULL argument");
    if (len > (size_t)WRK_COMM_MSG_MAX)
        return err_set(err, EINVAL, "comm broadcast: %zu bytes over the frame limit", len);
    if (c->tp == 1)
        return 0;
    if (call_begin(c, err) != 0)
        return -1;
    struct err e = {0};
    if (c->rank == 0) {
        for (int k = 1; k < c->tp; k++) {
            struct comm_hdr h = hdr_make(c, COMM_BCAST, c->seq, len);
            if (send_to(c, k, &h, buf, len, &e) != 0)
                return call_fail(c, &e, "broadcast", err);
        }
        return 0;
    }
    if (member_wait(c, COMM_BCAST, buf, len, 1, &e) != 0)
        return call_fail(c, &e, "broadcast", err);
    return 0;
}

int wrk_comm_allgather(wrk_comm_t *c, const void *mine, size_t len, void *all,
                       struct err *err)
{
    if (c == NULL || (len > 0 && (mine == NULL || all == NULL)))
        return err_set(err, EINVAL, "comm all-gather: NULL argument");
    if (len > (size_t)WRK_COMM_MSG_MAX / (size_t)c->tp)
        return err_set(err, EINVAL, "comm all-gather: %d x %zu bytes over the frame limit",
                       c->tp, len);
    unsigned char *out = all;
    if (len > 0)
        memmove(out + (size_t)c->rank * len, mine, len); /* mine may be that slot */
    if (c->tp == 1)
        return 0;
    if (call_begin(c, err) != 0)
        return -1;
    struct err e = {0};
    size_t total = (size_t)c->tp * len;
    if (c->rank == 0) {
        if (root_collect(c, COMM_GATHER, len, 1, &e) != 0)
            goto fail;
        for (int k = 1; k < c->tp && len > 0; k++)
            memcpy(out + (size_t)k * len, zmq_msg_data(&c->part[k]), len);
        root_release(c);
        if (root_send_all(c, COMM_GATHERED, out, total, total, &e) != 0)
            goto fail;
        return 0;
    }
    /* member_wait copies only a GATHERED that passed every check */
    struct comm_hdr h = hdr_make(c, COMM_GATHER, c->seq, len);
    if (send_to(c, 0, &h, out + (size_t)c->rank * len, len, &e) != 0
        || member_wait(c, COMM_GATHERED, out, total, 1, &e) != 0)
        goto fail;
    return 0;
fail:
    if (c->rank == 0)
        root_release(c);
    return call_fail(c, &e, "all-gather", err);
}

void wrk_comm_abort(wrk_comm_t *c, const struct err *why)
{
    if (c == NULL || c->tp == 1 || c->failed.code != 0)
        return;
    struct err e = {ECANCELED, ""};
    snprintf(e.msg, sizeof e.msg, "%s", why != NULL ? why->msg : "aborted");
    comm_fail(c, &e);
}

int wrk_comm_rank(const wrk_comm_t *c) { return c->rank; }
int wrk_comm_tp(const wrk_comm_t *c) { return c->tp; }
const char *wrk_comm_endpoint(const wrk_comm_t *c) { return c->endpoint; }

int wrk_comm_send_raw(wrk_comm_t *c, int to, const void *const *frames, const size_t *lens,
                      int n, struct err *err)
{
    if (c == NULL || c->sock == NULL || n < 1 || (c->rank == 0 && (to < 1 || to >= c->tp)))
        return err_set(err, EINVAL, "comm send_raw: bad arguments");
    if (c->rank == 0 && zmq_send(c->sock, c->ids[to], strlen(c->ids[to]), ZMQ_SNDMORE) < 0)
        return err_set(err, errno, "comm send_raw: %s", zmq_strerror(errno));
    for (int i = 0; i < n; i++)
        if (zmq_send(c->sock, frames[i], lens[i], i + 1 < n ? ZMQ_SNDMORE : 0) < 0)
            return err_set(err, errno, "comm send_raw: %s", zmq_strerror(errno));
    return 0;
}
