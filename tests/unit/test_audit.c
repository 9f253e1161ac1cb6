/* test_audit.c: the audit log's hash chain (controller/ctl_audit.h) on a real
 * LMDB store: records append in the batch, and an edited, deleted or reordered
 * record, written straight into the store as an attacker with the file would,
 * is found by ctl_audit_verify, which names the first bad record. Also the
 * allowlist's text forms (shared/keys.h). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "controller/ctl_audit.h"
#include "controller/ctl_state.h"
#include "shared/keys.h"

#define NREC 5

struct fx {
    char dir[64];
    struct ctl ctl;
    store_t *store;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/moat-test-audit-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    struct err e = {0};
    f->store = store_open(f->dir, 1 << 20, 1 << 26, &e);
    assert_non_null(f->store);
    struct ctl_cfg cfg;
    assert_int_equal(ctl_cfg_load(NULL, &cfg, &e), 0);
    ctl_state_init(&f->ctl, &cfg, f->store, NULL);
    /* NREC records over two batches, like two passes of the event loop */
    for (int i = 1; i <= NREC; i++) {
        char object[32];
        snprintf(object, sizeof object, "job %d", i);
        assert_int_equal(ctl_audit_append(&f->ctl, "controller", "submit", object,
                                          json_pack("{s:i}", "tasks", i), &e), 0);
        if (i == 2 || i == NREC)
            assert_int_equal(store_commit(f->store, &e), 0);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    ctl_state_free(&f->ctl);
    store_close(f->store);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* verify: ctl_audit_verify's first bad record (0: intact); why gets the message. */
static uint64_t verify(struct fx *f, struct err *why)
{
    uint64_t n, first;
    char head[65];
    struct err e = {0};
    int rc = ctl_audit_verify(f->store, &n, &first, head, why, &e);
    assert_true(rc >= 0);
    assert_int_equal(rc != 0, first != 0);
    return first;
}

static void *get(struct fx *f, uint64_t seq, size_t *len)
{
    uint8_t k[8];
    void *v = NULL;
    struct err e = {0};
    assert_int_equal(store_get(f->store, STORE_DB_AUDIT, k, store_key_job(k, seq), &v, len, &e), 0);
    return v;
}

static void put(struct fx *f, uint64_t seq, const void *v, size_t len)
{
    uint8_t k[8];
    struct err e = {0};
    assert_int_equal(store_begin(f->store, &e), 0);
    assert_int_equal(store_put(f->store, STORE_DB_AUDIT, k, store_key_job(k, seq), v, len, 0, &e), 0);
    assert_int_equal(store_commit(f->store, &e), 0);
}

static void intact_log_verifies(void **state)
{
    struct fx *f = *state;
    struct err why = {0};
    uint64_t n, first;
    char head[65];
    struct err e = {0};
    assert_int_equal(ctl_audit_verify(f->store, &n, &first, head, &why, &e), 0);
    assert_int_equal(n, NREC);
    assert_int_equal(strlen(head), 64);
}

static void empty_log_verifies(void **state)
{
    (void)state;
    char dir[64] = "/tmp/moat-test-audit-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct err e = {0}, why = {0};
    store_t *st = store_open(dir, 1 << 20, 1 << 26, &e);
    assert_non_null(st);
    uint64_t n = 9, first = 9;
    char head[65];
    assert_int_equal(ctl_audit_verify(st, &n, &first, head, &why, &e), 0);
    assert_int_equal(n, 0);
    assert_int_equal(first, 0);
    store_close(st);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void edited_record_is_named(void **state)
{
    struct fx *f = *state;
    size_t len;
    char *v = get(f, 3, &len);
    char *p = strstr(v + 64, "job 3"); /* after prev and hash */
    assert_non_null(p);
    p[4] = '9'; /* "job 9" */
    put(f, 3, v, len);
    free(v);
    struct err why = {0};
    assert_int_equal(verify(f, &why), 3);
    assert_non_null(strstr(why.msg, "audit record 3:"));
    assert_non_null(strstr(why.msg, "edited"));
}

static void deleted_record_is_named(void **state)
{
    struct fx *f = *state;
    uint8_t k[8];
    struct err e = {0}, why = {0};
    assert_int_equal(store_begin(f->store, &e), 0);
    assert_int_equal(store_del(f->store, STORE_DB_AUDIT, k, store_key_job(k, 2), &e), 0);
    assert_int_equal(store_commit(f->store, &e), 0);
    assert_int_equal(verify(f, &why), 2);
    assert_non_null(strstr(why.msg, "audit record 2: missing"));
}

static void deleted_last_record_is_named(void **state)
{
    struct fx *f = *state;
    uint8_t k[8];
    struct err e = {0}, why = {0};
    assert_int_equal(store_begin(f->store, &e), 0);
    assert_int_equal(store_del(f->store, STORE_DB_AUDIT, k, store_key_job(k, NREC), &e), 0);
    assert_int_equal(store_commit(f->store, &e), 0);
    assert_int_equal(verify(f, &why), NREC);
}

static void reordered_records_are_named(void **state)
{
    struct fx *f = *state;
    size_t l2, l4;
    void *v2 = get(f, 2, &l2), *v4 = get(f, 4, &l4);
    put(f, 2, v4, l4);
    put(f, 4, v2, l2);
    free(v2);
    free(v4);
    struct err why = {0};
    assert_int_equal(verify(f, &why), 2);
}

static void overwritten_hash_is_named(void **state)
{
    /* A record whose stored hash was overwritten is named itself. */
    struct fx *f = *state;
    size_t len;
    uint8_t *v = get(f, 3, &len);
    memset(v + 32, 0xab, 32); /* a different hash, as if recomputed */
    put(f, 3, v, len);
    free(v);
    struct err why = {0};
    uint64_t bad = verify(f, &why);
    assert_int_equal(bad, 3); /* its hash no longer matches its content */
}

static void appends_continue_the_chain_after_restart(void **state)
{
    struct fx *f = *state;
    struct err e = {0}, why = {0};
    store_close(f->store);
    f->store = store_open(f->dir, 1 << 20, 1 << 26, &e);
    assert_non_null(f->store);
    f->ctl.store = f->store;
    assert_int_equal(ctl_audit_append(&f->ctl, "k", "cancel", "job 1", NULL, &e), 0);
    assert_int_equal(store_commit(f->store, &e), 0);
    assert_int_equal(verify(f, &why), 0);
}

static void aborted_batch_leaves_no_record(void **state)
{
    struct fx *f = *state;
    struct err e = {0}, why = {0};
    assert_int_equal(ctl_audit_append(&f->ctl, "k", "cancel", "job 1", NULL, &e), 0);
    store_abort(f->store); /* the change it recorded failed: neither is kept */
    uint64_t n, first;
    char head[65];
    assert_int_equal(ctl_audit_verify(f->store, &n, &first, head, &why, &e), 0);
    assert_int_equal(n, NREC);
}

/* ---- keys.h ---- */

#define K1 "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"

/* audit_page: ctl_on_audit's reply to {after, limit}: the records' seqs into
 * seqs (returns how many) and "next" into *next (-1 when null). */
static int audit_page(struct fx *f, long long after, int limit, uint64_t *seqs, long long *next)
{
    struct proto_msg msg = {.type = PROTO_TYPE_AUDIT, .req_id = 1};
    msg.body = json_pack("{s:I, s:i}", "after", (json_int_t)after, "limit", limit);
    struct net_peer peer = {0};
    struct err e = {0};
    assert_int_equal(ctl_on_audit(&f->ctl, &peer, &msg, &e), 0);
    json_decref(msg.body);
    const json_t *reply = f->ctl.outbox[f->ctl.nout - 1].msg.body;
    const json_t *recs = json_object_get(reply, "records");
    for (size_t i = 0; i < json_array_size(recs); i++)
        seqs[i] = (uint64_t)json_integer_value(json_object_get(json_array_get(recs, i), "seq"));
    const json_t *n = json_object_get(reply, "next");
    *next = json_is_integer(n) ? json_integer_value(n) : -1;
    return (int)json_array_size(recs);
}

/* Pages of the log start where the last one ended and say where the next
 * starts; the last page says none. */
static void pages_follow_each_other(void **state)
{
    struct fx *f = *state;
    uint64_t seqs[NREC];
    long long next;
    assert_int_equal(audit_page(f, 0, 2, seqs, &next), 2);
    assert_true(seqs[0] == 1 && seqs[1] == 2 && next == 2);
    assert_int_equal(audit_page(f, next, 2, seqs, &next), 2);
    assert_true(seqs[0] == 3 && seqs[1] == 4 && next == 4);
    assert_int_equal(audit_page(f, next, 2, seqs, &next), 1);
    assert_true(seqs[0] == 5 && next == -1);
    assert_int_equal(audit_page(f, 5, 2, seqs, &next), 0);
    assert_int_equal(next, -1);
    assert_int_equal(audit_page(f, 3, 10, seqs, &next), 2);
    assert_true(seqs[0] == 4 && seqs[1] == 5 && next == -1);
}

static void allowlist_lines_parse(void **state)
{
    (void)state;
    struct keys_entry ke;
    struct err e = {0};
    assert_int_equal(keys_line_parse("worker " K1 " node 7\n", &ke, &e), 1);
    assert_int_equal(ke.role, KEYS_ROLE_WORKER);
    assert_string_equal(ke.key, K1);
    assert_string_equal(ke.name, "node 7");
    assert_int_equal(keys_line_parse("  # comment\n", &ke, &e), 0);
    assert_int_equal(keys_line_parse("\n", &ke, &e), 0);
}

static void bad_allowlist_lines_are_refused(void **state)
{
    (void)state;
    struct keys_entry ke;
    struct err e = {0};
    assert_int_equal(keys_line_parse("root " K1, &ke, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_non_null(strstr(e.msg, "role"));
    assert_int_equal(keys_line_parse("client short", &ke, &e), -1);
    assert_non_null(strstr(e.msg, "Z85"));
    assert_int_equal(keys_line_parse("client " K1 "x", &ke, &e), -1);
    assert_int_equal(keys_line_parse("client " K1 " a\x01", &ke, &e), -1);
    assert_false(keys_z85_valid(NULL));
    assert_false(keys_z85_valid("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf\""));
}

static void secret_key_files_must_be_private(void **state)
{
    (void)state;
    char dir[64] = "/tmp/moat-test-keys-XXXXXX", path[96], key[KEYS_LEN + 1];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/a.key", dir);
    struct err e = {0};
    assert_int_equal(keys_file_write(path, K1, true, &e), 0);
    assert_int_equal(keys_file_write(path, K1, true, &e), -1); /* never overwritten */
    assert_int_equal(e.code, EEXIST);
    assert_int_equal(keys_file_read(path, true, key, &e), 0);
    assert_string_equal(key, K1);
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(keys_file_read(path, true, key, &e), -1);
    assert_int_equal(e.code, EACCES);
    assert_int_equal(keys_file_read(path, false, key, &e), 0); /* a public key may be read */
    snprintf(path, sizeof path, "%s/missing.key", dir);
    assert_int_equal(keys_file_read(path, true, key, &e), -1);
    assert_int_equal(e.code, ENOENT);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(intact_log_verifies, setup, teardown),
        cmocka_unit_test(empty_log_verifies),
        cmocka_unit_test_setup_teardown(edited_record_is_named, setup, teardown),
        cmocka_unit_test_setup_teardown(deleted_record_is_named, setup, teardown),
        cmocka_unit_test_setup_teardown(deleted_last_record_is_named, setup, teardown),
        cmocka_unit_test_setup_teardown(reordered_records_are_named, setup, teardown),
        cmocka_unit_test_setup_teardown(overwritten_hash_is_named, setup, teardown),
        cmocka_unit_test_setup_teardown(appends_continue_the_chain_after_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(aborted_batch_leaves_no_record, setup, teardown),
        cmocka_unit_test_setup_teardown(pages_follow_each_other, setup, teardown),
        cmocka_unit_test(allowlist_lines_parse),
        cmocka_unit_test(bad_allowlist_lines_are_refused),
        cmocka_unit_test(secret_key_files_must_be_private),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
