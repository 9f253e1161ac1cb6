/* ctl_audit.c: append, verify and list the hash-chained audit log (ctl_audit.h). */
#include "controller/ctl_audit.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "shared/log.h"
#include "shared/units.h"

#define HASH_LEN 32
#define HEAD_KEY "audit_head"
#define LIST_DEFAULT 1000

static void record_hash(uint64_t seq, const uint8_t prev[HASH_LEN], const void *text, size_t len,
                        uint8_t out[HASH_LEN])
{
    uint8_t k[8];
    crypto_hash_sha256_state h;
    store_key_job(k, seq);
    crypto_hash_sha256_init(&h);
    crypto_hash_sha256_update(&h, k, sizeof k);
    crypto_hash_sha256_update(&h, prev, HASH_LEN);
    crypto_hash_sha256_update(&h, text, len);
    crypto_hash_sha256_final(&h, out);
}

static int fail(struct ctl *ctl, struct err *err)
{
    if (ctl->store_err.code == 0)
        ctl->store_err = *err;
    return -1;
}

int ctl_audit_append(struct ctl *ctl, const char *actor, const char *action, const char *object,
                     json_t *details, struct err *err)
{
    json_t *rec = json_pack("{s:f, s:s, s:s, s:s, s:o}", "time", units_now(), "actor",
                            actor && *actor ? actor : "?", "action", action, "object", object,
                            "details", details ? details : json_object());
    char *text = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    json_decref(rec);
    if (text == NULL) {
        err_set(err, ENOMEM, "audit: out of memory");
        return fail(ctl, err);
    }
    size_t len = strlen(text);
    uint8_t *val = malloc(2 * HASH_LEN + len), key[8], head[8 + HASH_LEN];
    void *last = NULL;
    size_t klen = 0, vlen = 0;
    uint64_t seq = 1;
    int rc = val ? ctl_batch(ctl, err) : err_set(err, ENOMEM, "audit: out of memory");
    memset(val ? val : head, 0, HASH_LEN); /* prev of record 1 */
    if (rc == 0) {
        /* The chain continues from the last record actually stored. */
        rc = store_last(ctl->store, STORE_DB_AUDIT, key, sizeof key, &klen, &last, &vlen, err);
        if (rc == 0 && (klen != 8 || vlen < 2 * HASH_LEN))
            rc = err_set(err, EPROTO, "audit: last record is malformed");
        if (rc == 0) {
            seq = store_key_get64(key) + 1;
            memcpy(val, (uint8_t *)last + HASH_LEN, HASH_LEN);
        } else if (err->code == ENOENT) {
            rc = 0;
            err_clear(err);
        }
    }
    if (rc == 0) {
        record_hash(seq, val, text, len, val + HASH_LEN);
        memcpy(val + 2 * HASH_LEN, text, len);
        store_key_job(head, seq);
        memcpy(head + 8, val + HASH_LEN, HASH_LEN);
        rc = store_put(ctl->store, STORE_DB_AUDIT, key, store_key_job(key, seq), val,
                       2 * HASH_LEN + len, 1, err);
        if (rc == 0)
            rc = store_put(ctl->store, STORE_DB_META, HEAD_KEY, strlen(HEAD_KEY), head, sizeof head, 0,
                           err);
    }
    free(last);
    free(val);
    free(text);
    return rc == 0 ? 0 : fail(ctl, err);
}

/* ---- verify ---- */

struct walk {
    uint64_t expect;          /* next sequence number */
    uint8_t prev[HASH_LEN];   /* hash of the record before */
    uint64_t first_bad;
    struct err why;
    bool have_head;
    uint8_t head[8 + HASH_LEN];
};

/* head_read: the chain's recorded head into w (have_head false when absent
 * or malformed). 0, or -1 with err on a store error. N.B. a get, not a walk
 * of "meta": its "schema" value is a bare byte (store.h). */
static int head_read(store_t *st, struct walk *w, struct err *err)
{
    void *val = NULL;
    size_t vlen = 0;
    struct err ge = {0};
    if (store_get(st, STORE_DB_META, HEAD_KEY, strlen(HEAD_KEY), &val, &vlen, &ge) != 0) {
        if (ge.code == ENOENT)
            return 0;
        *err = ge;
        return -1;
    }
    w->have_head = vlen == sizeof w->head;
    if (w->have_head)
        memcpy(w->head, val, vlen);
    free(val);
    return 0;
}

static int bad(struct walk *w, uint64_t seq, const char *what)
{
    w->first_bad = seq;
    err_set(&w->why, EBADMSG, "audit record %llu: %s", (unsigned long long)seq, what);
    return 1;
}

static int verify_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    struct walk *w = arg;
    if (klen != 8)
        return bad(w, w->expect, "a record with a malformed key follows (inserted)");
    uint64_t seq = store_key_get64(key);
    if (seq != w->expect)
        return bad(w, w->expect, seq > w->expect ? "missing (deleted)" : "out of sequence");
    if (vlen < 2 * HASH_LEN)
        return bad(w, seq, "truncated");
    const uint8_t *v = val;
    uint8_t h[HASH_LEN];
    record_hash(seq, v, v + 2 * HASH_LEN, vlen - 2 * HASH_LEN, h);
    if (sodium_memcmp(h, v + HASH_LEN, HASH_LEN) != 0)
        return bad(w, seq, "contents do not match its hash (edited, or moved from elsewhere)");
    if (sodium_memcmp(v, w->prev, HASH_LEN) != 0)
        return bad(w, seq, "does not follow the record before it (records deleted, inserted or "
                           "reordered, or the one before rewritten)");
    json_t *o = json_loadb((const char *)v + 2 * HASH_LEN, vlen - 2 * HASH_LEN, 0, NULL);
    bool ok = json_is_object(o);
    json_decref(o);
    if (!ok)
        return bad(w, seq, "not a JSON object");
    memcpy(w->prev, v + HASH_LEN, HASH_LEN);
    w->expect++;
    return 0;
}

int ctl_audit_verify(store_t *st, uint64_t *records, uint64_t *first_bad, char head_hex[65],
                     struct err *why, struct err *err)
{
    struct walk w = {.expect = 1};
    *first_bad = 0;
    *records = 0;
    head_hex[0] = '\0';
    if (head_read(st, &w, err) != 0)
        return -1;
    /* in the open batch if any, as head_read read the head: records appended
     * in this very pass (a SUBMIT answered with the verify) are in both */
    int rc = store_foreach_from(st, STORE_DB_AUDIT, NULL, 0, verify_cb, &w, err);
    if (rc < 0)
        return -1;
    *records = w.expect - 1;
    if (w.first_bad == 0 && w.expect > 1) {
        sodium_bin2hex(head_hex, 65, w.prev, HASH_LEN);
        uint64_t hseq = w.have_head ? store_key_get64(w.head) : 0;
        if (!w.have_head)
            bad(&w, 1, "the chain's head record is missing");
        else if (hseq > w.expect - 1)
            bad(&w, w.expect, "missing (deleted from the end)");
        else if (hseq < w.expect - 1)
            bad(&w, hseq + 1, "follows the chain's recorded head (appended outside the controller)");
        else if (sodium_memcmp(w.head + 8, w.prev, HASH_LEN) != 0)
            bad(&w, hseq, "does not match the chain's recorded head (edited)");
    } else if (w.first_bad == 0 && w.have_head && store_key_get64(w.head) > 0) {
        bad(&w, 1, "missing (the log is empty but its head says otherwise)");
    }
    if (w.first_bad) {
        *first_bad = w.first_bad;
        *why = w.why;
        return 1;
    }
    return 0;
}

/* ---- AUDIT ---- */

struct list {
    uint64_t after;
    double since;
    size_t limit;
    json_t *out;
    uint64_t last;
    bool more;
};

static int list_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    struct list *l = arg;
    if (klen != 8 || vlen < 2 * HASH_LEN)
        return 0; /* verify names it */
    uint64_t seq = store_key_get64(key);
    if (seq <= l->after)
        return 0;
    const uint8_t *v = val;
    json_t *o = json_loadb((const char *)v + 2 * HASH_LEN, vlen - 2 * HASH_LEN, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return 0;
    }
    if (json_number_value(json_object_get(o, "time")) < l->since) {
        json_decref(o);
        return 0;
    }
    if (json_array_size(l->out) >= l->limit) {
        json_decref(o);
        l->more = true;
        return 1;
    }
    char hex[2 * HASH_LEN + 1];
    sodium_bin2hex(hex, sizeof hex, v + HASH_LEN, HASH_LEN);
    json_object_set_new(o, "seq", json_integer((json_int_t)seq));
    json_object_set_new(o, "hash", json_string(hex));
    json_array_append_new(l->out, o);
    l->last = seq;
    return 0;
}

int ctl_on_audit(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg, struct err *err)
{
    const json_t *b = msg->body;
    if (json_is_true(json_object_get(b, "verify"))) {
        uint64_t n, first;
        char head[65];
        struct err why = {0};
        int rc = ctl_audit_verify(ctl->store, &n, &first, head, &why, err);
        if (rc < 0)
            return -1;
        if (rc > 0)
            log_error("ctl", "%s", why.msg);
        return ctl_out_reply(ctl, peer, msg->req_id,
                             json_pack("{s:b, s:I, s:o, s:o, s:s}", "ok", rc == 0, "records",
                                       (json_int_t)n, "first_bad",
                                       rc ? json_integer((json_int_t)first) : json_null(), "error",
                                       rc ? json_string(why.msg) : json_null(), "head", head));
    }
    struct list l = {.limit = LIST_DEFAULT, .out = json_array()};
    if (json_object_get(b, "after"))
        l.after = (uint64_t)json_integer_value(json_object_get(b, "after"));
    if (json_object_get(b, "since"))
        l.since = json_number_value(json_object_get(b, "since"));
    if (json_object_get(b, "limit"))
        l.limit = (size_t)json_integer_value(json_object_get(b, "limit"));
    /* a page starts at its first record: O(page), not O(log) (records are
     * keyed by sequence number) */
    uint8_t from[8];
    store_key_job(from, l.after < UINT64_MAX ? l.after + 1 : l.after);
    if (store_foreach_from(ctl->store, STORE_DB_AUDIT, from, sizeof from, list_cb, &l, err) < 0) {
        json_decref(l.out);
        return -1;
    }
    return ctl_out_reply(ctl, peer, msg->req_id,
                         json_pack("{s:o, s:o}", "records", l.out, "next",
                                   l.more ? json_integer((json_int_t)l.last) : json_null()));
}
