/* ctl_auth.c: the allowlist, the ZAP decision, per-request roles, ADMIN_KEY. */
#include "controller/ctl_auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "controller/ctl_audit.h"
#include "shared/log.h"
#include "shared/text.h"
#include "shared/units.h"

#define REFUSED_SLOTS 64

struct auth_key {
    struct keys_entry e;
    bool revoked;
    bool stored;   /* a STORE_DB_KEYS record decides its state */
    bool config;   /* listed by the config */
    double time;   /* of the stored change; 0 for config entries */
};

struct refusal {
    char key[KEYS_LEN + 1];
    char object[96];       /* "" when throttled per key alone */
    double last;           /* monotonic s of the last audited refusal */
    unsigned suppressed;   /* refusals since, not audited */
};

struct ctl_auth {
    struct keys_entry *config;   /* allowlist_file's entries, then the inline ones; one per key */
    int *config_line;            /* config[i]'s line in its file (-1: inline) */
    const char **config_where;   /* config[i]'s file: path or "allowlist" */
    int nconfig;
    char path[CFG_STR_MAX];      /* allowlist_file, "" for none */
    struct stat st;              /* of path when it was read */
    struct cfg_list inline_list;
    struct auth_key *keys;
    int nkeys, cap;
    struct refusal refused[REFUSED_SLOTS];
    int next_slot;
};

/* Roles that may send each message type. 0: any allowlisted key (types added
 * after this table; the handler decides). */
#define RA (1u << KEYS_ROLE_ADMIN)
#define RC (1u << KEYS_ROLE_CLIENT)
#define RW (1u << KEYS_ROLE_WORKER)
static const unsigned type_roles[PROTO_TYPE_COUNT] = {
    [PROTO_TYPE_REPLY] = RA | RC | RW,   [PROTO_TYPE_ERROR] = RA | RC | RW,
    [PROTO_TYPE_PING] = RA | RC | RW,    [PROTO_TYPE_SUBMIT] = RA | RC,
    [PROTO_TYPE_SHOW] = RA | RC,         [PROTO_TYPE_QUEUE] = RA | RC,
    [PROTO_TYPE_CANCEL] = RA | RC,       [PROTO_TYPE_RESULT] = RA | RC,
    [PROTO_TYPE_NODES] = RA | RC,        [PROTO_TYPE_REGISTER] = RW,
    [PROTO_TYPE_HEARTBEAT] = RW,         [PROTO_TYPE_TASK_END] = RW,
    [PROTO_TYPE_DISPATCH] = RA | RC | RW, [PROTO_TYPE_KILL] = RA | RC | RW,
    [PROTO_TYPE_MODEL_PUT] = RA | RC,    [PROTO_TYPE_MODEL_COMMIT] = RA | RC,
    [PROTO_TYPE_MODEL_LIST] = RA | RC,   [PROTO_TYPE_MODEL_VERIFY] = RA | RC,
    [PROTO_TYPE_SHARD_GET] = RW,         [PROTO_TYPE_ADMIN_KEY] = RA,
    [PROTO_TYPE_AUDIT] = RA,             [PROTO_TYPE_ADMIN_NODE] = RA,
    [PROTO_TYPE_HOLD] = RA | RC,
    [PROTO_TYPE_REQUEUE] = RA | RC,
    [PROTO_TYPE_DOCS] = RA | RC,
};

/* What each type asks for, in a user's words (a refusal says what may not be
 * done, then the wire name for those who speak the protocol). */
static const char *const type_actions[PROTO_TYPE_COUNT] = {
    [PROTO_TYPE_SUBMIT] = "submit jobs",
    [PROTO_TYPE_SHOW] = "show jobs",
    [PROTO_TYPE_QUEUE] = "list the queue",
    [PROTO_TYPE_CANCEL] = "cancel jobs",
    [PROTO_TYPE_RESULT] = "read results",
    [PROTO_TYPE_NODES] = "list nodes",
    [PROTO_TYPE_REGISTER] = "register as a node",
    [PROTO_TYPE_HEARTBEAT] = "send node heartbeats",
    [PROTO_TYPE_TASK_END] = "report the end of tasks",
    [PROTO_TYPE_MODEL_PUT] = "upload models",
    [PROTO_TYPE_MODEL_COMMIT] = "import models",
    [PROTO_TYPE_MODEL_LIST] = "list models",
    [PROTO_TYPE_MODEL_VERIFY] = "verify models",
    [PROTO_TYPE_SHARD_GET] = "fetch model shards",
    [PROTO_TYPE_ADMIN_KEY] = "change or list the allowlist",
    [PROTO_TYPE_AUDIT] = "read the audit log",
    [PROTO_TYPE_ADMIN_NODE] = "drain, resume or remove nodes",
    [PROTO_TYPE_HOLD] = "hold or release jobs",
    [PROTO_TYPE_REQUEUE] = "requeue jobs",
    [PROTO_TYPE_DOCS] = "send an infer job's documents",
};

/* where_text: "PATH line N" or "allowlist[N]" for config entry i. */
static const char *where_text(const struct ctl_auth *a, int i, char *buf, size_t cap)
{
    if (a->config_where[i] == NULL)
        snprintf(buf, cap, "allowlist[%d]", a->config_line[i]);
    else
        snprintf(buf, cap, "line %d", a->config_line[i]);
    return buf;
}

/* config_add: e to the config entries, from line of allowlist_file (path) or,
 * path NULL, item line of the inline list. A key listed again with the same
 * role takes the later name; with another role it is refused: which one was
 * meant? */
static int config_add(struct ctl_auth *a, const struct keys_entry *e, const char *path, int line,
                      struct err *err)
{
    for (int i = 0; i < a->nconfig; i++) {
        if (strcmp(a->config[i].key, e->key) != 0)
            continue;
        if (a->config[i].role == e->role) {
            memcpy(a->config[i].name, e->name, sizeof e->name);
            return 0;
        }
        char at[48];
        if (path)
            return err_set(err, EINVAL, "%s:%d: key %s: already listed at %s as %s", path, line,
                           e->key, where_text(a, i, at, sizeof at), keys_role_name(a->config[i].role));
        return err_set(err, EINVAL, "allowlist[%d]: key %s: already listed at %s%s%s as %s", line,
                       e->key, a->config_where[i] ? a->config_where[i] : "",
                       a->config_where[i] ? " " : "", where_text(a, i, at, sizeof at),
                       keys_role_name(a->config[i].role));
    }
    struct keys_entry *c = realloc(a->config, (size_t)(a->nconfig + 1) * sizeof *c);
    if (c != NULL)
        a->config = c;
    int *l = c ? realloc(a->config_line, (size_t)(a->nconfig + 1) * sizeof *l) : NULL;
    if (l != NULL)
        a->config_line = l;
    const char **w = l ? realloc(a->config_where, (size_t)(a->nconfig + 1) * sizeof *w) : NULL;
    if (w == NULL)
        return err_set(err, ENOMEM, "allowlist: out of memory");
    a->config_where = w;
    a->config_where[a->nconfig] = path;
    a->config_line[a->nconfig] = line;
    a->config[a->nconfig++] = *e;
    return 0;
}

static int load_file(struct ctl_auth *a, const char *path, struct err *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return err_set(err, errno, "allowlist_file %s: %s", path, strerror(errno));
    if (fstat(fileno(f), &a->st) != 0)
        memset(&a->st, 0, sizeof a->st);
    char line[512];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        struct keys_entry e;
        struct err e2 = {0};
        lineno++;
        int r = keys_line_parse(line, &e, &e2);
        if (r < 0)
            rc = err_set(err, EINVAL, "%s:%d: %s", path, lineno, e2.msg);
        else if (r > 0)
            rc = config_add(a, &e, a->path, lineno, err);
    }
    fclose(f);
    return rc;
}

/* read_config: a's config entries from its file and inline list. */
static int read_config(struct ctl_auth *a, struct err *err)
{
    a->nconfig = 0;
    if (a->path[0] && load_file(a, a->path, err) != 0)
        return -1;
    for (int i = 0; i < a->inline_list.n; i++) {
        struct keys_entry e;
        int r = keys_line_parse(a->inline_list.items[i], &e, err);
        if (r < 0 || (r > 0 && config_add(a, &e, NULL, i, err) != 0))
            return -1;
    }
    return 0;
}

struct ctl_auth *ctl_auth_create(const struct ctl_cfg *cfg, struct err *err)
{
    struct ctl_auth *a = calloc(1, sizeof *a);
    if (a == NULL) {
        err_set(err, ENOMEM, "allowlist: out of memory");
        return NULL;
    }
    snprintf(a->path, sizeof a->path, "%s", cfg->allowlist_file);
    a->inline_list = cfg->allowlist;
    if (read_config(a, err) != 0) {
        ctl_auth_destroy(a);
        return NULL;
    }
    return a;
}

/* audit_change: one audit record for a key whose allowlist_file entry came
 * (before NULL), went (after NULL) or changed role or name. */
static void audit_change(struct ctl *ctl, const struct keys_entry *before,
                         const struct keys_entry *after)
{
    const struct keys_entry *k = after ? after : before;
    const char *action = before == NULL ? "key.add" : after == NULL ? "key.remove" : "key.change";
    json_t *d = json_pack("{s:s, s:s, s:s}", "role", keys_role_name(k->role), "name", k->name,
                          "source", ctl->auth->path);
    if (d && before && after) {
        json_object_set_new(d, "old_role", json_string(keys_role_name(before->role)));
        json_object_set_new(d, "old_name", json_string(before->name));
    }
    char object[64];
    snprintf(object, sizeof object, "key %s", k->key);
    struct err e = {0};
    if (ctl_audit_append(ctl, CTL_AUDIT_ACTOR_SELF, action, object, d, &e) != 0)
        log_error("ctl", "audit: %s", e.msg);
    log_info("ctl", "allowlist %s: key %s %s (%s %s)", ctl->auth->path, k->key,
             before == NULL ? "added" : after == NULL ? "removed" : "changed", keys_role_name(k->role),
             k->name);
}

/* audit_diff: the records for what changed from old[0..nold) to a's config. */
static void audit_diff(struct ctl *ctl, const struct keys_entry *old, int nold)
{
    const struct ctl_auth *a = ctl->auth;
    for (int i = 0; i < a->nconfig; i++) {
        const struct keys_entry *was = NULL;
        for (int j = 0; j < nold && was == NULL; j++)
            if (strcmp(old[j].key, a->config[i].key) == 0)
                was = &old[j];
        if (was == NULL || was->role != a->config[i].role || strcmp(was->name, a->config[i].name) != 0)
            audit_change(ctl, was, &a->config[i]);
    }
    for (int j = 0; j < nold; j++) {
        bool kept = false;
        for (int i = 0; i < a->nconfig && !kept; i++)
            kept = strcmp(old[j].key, a->config[i].key) == 0;
        if (!kept)
            audit_change(ctl, &old[j], NULL);
    }
}

/* warn_if_empty: no key may connect, admins' included: say so and how to fix it. */
static void warn_if_empty(const struct ctl *ctl)
{
    const struct ctl_auth *a = ctl->auth;
    if (a == NULL || ctl_auth_count(ctl) > 0)
        return;
    log_warn("ctl", "allowlist: no key is allowed (allowlist_file %s and allowlist list none, none "
             "added with 'moat admin key add'): every connection is refused, an admin's too, until "
             "a key is listed in %s%s", a->path[0] ? a->path : "\"\"",
             a->path[0] ? a->path : "allowlist_file",
             a->path[0] ? " (re-read when it changes)" : " and the controller restarted");
}

void ctl_auth_warn_empty(const struct ctl *ctl)
{
    warn_if_empty(ctl);
}

void ctl_auth_refresh(struct ctl *ctl)
{
    struct ctl_auth *a = ctl->auth;
    struct stat st;
    if (a == NULL || a->path[0] == '\0' || store_in_batch(ctl->store) || stat(a->path, &st) != 0)
        return;
    if (st.st_ino == a->st.st_ino && st.st_size == a->st.st_size &&
        st.st_mtim.tv_sec == a->st.st_mtim.tv_sec && st.st_mtim.tv_nsec == a->st.st_mtim.tv_nsec)
        return;
    struct keys_entry *old = a->config;
    int *old_line = a->config_line;
    const char **old_where = a->config_where;
    int nold = a->nconfig;
    struct err e = {0};
    a->config = NULL;
    a->config_line = NULL;
    a->config_where = NULL;
    if (read_config(a, &e) != 0 || ctl_auth_load(ctl, &e) != 0) {
        log_error("ctl", "allowlist not reloaded, the previous one stays: %s", e.msg);
        free(a->config);
        free(a->config_line);
        free(a->config_where);
        a->config = old;
        a->config_line = old_line;
        a->config_where = old_where;
        a->nconfig = nold;
        a->st = st; /* do not retry until it changes again */
        struct err e2 = {0};
        ctl_auth_load(ctl, &e2);
        return;
    }
    /* N.B. the records join this pass's batch: committed with the pass */
    audit_diff(ctl, old, nold);
    free(old);
    free(old_line);
    free(old_where);
    log_info("ctl", "allowlist %s reloaded: %d keys allowed", a->path, ctl_auth_count(ctl));
    warn_if_empty(ctl);
}

void ctl_auth_destroy(struct ctl_auth *a)
{
    if (a == NULL)
        return;
    free(a->config);
    free(a->config_line);
    free(a->config_where);
    free(a->keys);
    free(a);
}

static struct auth_key *find(const struct ctl_auth *a, const char *key)
{
    for (int i = 0; i < a->nkeys; i++)
        if (strcmp(a->keys[i].e.key, key) == 0)
            return &a->keys[i];
    return NULL;
}

static struct auth_key *find_or_add(struct ctl_auth *a, const char *key, struct err *err)
{
    struct auth_key *k = find(a, key);
    if (k)
        return k;
    if (a->nkeys == a->cap) {
        int cap = a->cap ? a->cap * 2 : 16;
        struct auth_key *g = realloc(a->keys, (size_t)cap * sizeof *g);
        if (g == NULL) {
            err_set(err, ENOMEM, "allowlist: out of memory");
            return NULL;
        }
        a->keys = g;
        a->cap = cap;
    }
    k = &a->keys[a->nkeys++];
    memset(k, 0, sizeof *k);
    snprintf(k->e.key, sizeof k->e.key, "%s", key);
    return k;
}

static int load_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    struct ctl_auth *a = arg;
    char k[KEYS_LEN + 1];
    json_t *o = klen == KEYS_LEN ? json_loadb(val, vlen, 0, NULL) : NULL;
    int role = keys_role_parse(json_string_value(json_object_get(o, "role")));
    const char *state = json_string_value(json_object_get(o, "state"));
    memcpy(k, key, klen == KEYS_LEN ? KEYS_LEN : 0);
    k[klen == KEYS_LEN ? KEYS_LEN : 0] = '\0';
    if (o == NULL || role < 0 || state == NULL || !keys_z85_valid(k)) {
        log_error("ctl", "allowlist: unreadable record in the keys database skipped");
        json_decref(o);
        return 0;
    }
    struct auth_key *ak = find_or_add(a, k, NULL);
    if (ak == NULL) {
        json_decref(o);
        return ENOMEM;
    }
    ak->e.role = (enum keys_role)role;
    snprintf(ak->e.name, sizeof ak->e.name, "%s", json_string_value(json_object_get(o, "name"))
                                                       ? json_string_value(json_object_get(o, "name"))
                                                       : "");
    ak->revoked = strcmp(state, "revoked") == 0;
    ak->stored = true;
    ak->time = json_number_value(json_object_get(o, "time"));
    json_decref(o);
    return 0;
}

int ctl_auth_load(struct ctl *ctl, struct err *err)
{
    struct ctl_auth *a = ctl->auth;
    if (a == NULL)
        return 0;
    a->nkeys = 0;
    for (int i = 0; i < a->nconfig; i++) {
        struct auth_key *k = find_or_add(a, a->config[i].key, err);
        if (k == NULL)
            return -1;
        k->e = a->config[i];
        k->config = true;
    }
    int rc = store_foreach(ctl->store, STORE_DB_KEYS, load_cb, a, err);
    if (rc > 0)
        return err_set(err, rc, "allowlist: cannot load the keys database");
    return rc;
}

int ctl_auth_count(const struct ctl *ctl)
{
    int n = 0;
    for (int i = 0; ctl->auth && i < ctl->auth->nkeys; i++)
        n += !ctl->auth->keys[i].revoked;
    return n;
}

/* refuse: log and audit a refusal, at most one record per CTL_AUTH_REFUSE_EVERY
 * for the same key (per_object false: floods from unknown or revoked keys) or
 * for the same key and object (per_object: an allowlisted key, whose different
 * attempts each get a record, while one attempt repeated in a loop does not
 * fill the store); the next record counts the suppressed ones. */
static void refuse(struct ctl *ctl, const char *key, const char *object, const char *reason,
                   bool per_object)
{
    struct ctl_auth *a = ctl->auth;
    double now = units_mono();
    struct refusal *r = NULL;
    /* N.B. a slot is per key (object "") or per key and object: a key's
     * refused connections never count as repeats of its refused requests */
    for (int i = 0; i < REFUSED_SLOTS && r == NULL; i++)
        if (key[0] && strcmp(a->refused[i].key, key) == 0 &&
            strcmp(a->refused[i].object, per_object ? object : "") == 0)
            r = &a->refused[i];
    if (r && now - r->last < CTL_AUTH_REFUSE_EVERY) {
        r->suppressed++;
        return;
    }
    unsigned suppressed = r ? r->suppressed : 0;
    if (r == NULL) {
        r = &a->refused[a->next_slot];
        a->next_slot = (a->next_slot + 1) % REFUSED_SLOTS;
        snprintf(r->key, sizeof r->key, "%s", key);
    }
    snprintf(r->object, sizeof r->object, "%s", per_object ? object : "");
    r->last = now;
    r->suppressed = 0;
    log_warn("ctl", "refused %s: %s key=%s", object, reason, key[0] ? key : "none");
    if (ctl->store_err.code != 0)
        return; /* the batch is void already; the refusal stays in the log */
    struct err e = {0};
    json_t *d = json_pack("{s:s, s:i}", "reason", reason, "suppressed", (int)suppressed);
    if (ctl_audit_append(ctl, key[0] ? key : "none", "auth.refuse", object, d, &e) != 0)
        log_error("ctl", "audit: %s", e.msg);
}

int ctl_auth_zap_cb(const char *key, const char *address, void *arg)
{
    struct ctl *ctl = arg;
    ctl_auth_refresh(ctl);
    const struct auth_key *k = find(ctl->auth, key);
    if (k && !k->revoked)
        return 1;
    char object[96];
    snprintf(object, sizeof object, "connection from %s", address[0] ? address : "?");
    refuse(ctl, key, object, k ? "key revoked" : "key not in the allowlist", false);
    return 0;
}

bool ctl_auth_is_admin(const struct ctl *ctl, const char *key)
{
    if (ctl->auth == NULL)
        return true;
    const struct auth_key *k = find(ctl->auth, key);
    return k != NULL && !k->revoked && k->e.role == KEYS_ROLE_ADMIN;
}

void ctl_auth_refuse(struct ctl *ctl, const char *key, const char *object, const char *reason)
{
    if (ctl->auth != NULL)
        refuse(ctl, key, object, reason, true);
}

bool ctl_auth_key_live(const struct ctl *ctl, const char *key)
{
    if (ctl->auth == NULL)
        return true;
    const struct auth_key *k = find(ctl->auth, key);
    return k != NULL && !k->revoked;
}

int ctl_auth_check(struct ctl *ctl, const struct net_peer *peer, enum proto_type type,
                   const json_t *body, struct err *err)
{
    if (ctl->auth == NULL)
        return 0;
    const struct auth_key *k = peer->key[0] ? find(ctl->auth, peer->key) : NULL;
    const char *reason = NULL;
    char why[160];
    if (peer->key[0] == '\0')
        reason = "unauthenticated peer";
    else if (k == NULL)
        reason = "key not in the allowlist";
    else if (k->revoked)
        reason = "key revoked";
    else if (type_roles[type] && !(type_roles[type] & (1u << k->e.role))) {
        int least = 0; /* the least trusted role that may: what the sender would need */
        for (int r = 0; r < KEYS_ROLE_COUNT; r++)
            if (type_roles[type] & (1u << r))
                least = r;
        const char *action = type_actions[type] ? type_actions[type] : "send this";
        snprintf(why, sizeof why, "%s %s key may not %s (%s takes %s %s key)",
                 keys_role_article(k->e.role), keys_role_name(k->e.role), action,
                 proto_type_name(type), keys_role_article((enum keys_role)least),
                 keys_role_name((enum keys_role)least));
        reason = why;
    }
    if (reason == NULL)
        return 0;
    char object[64];
    /* with its op when it has one: "request ADMIN_KEY add" is not a "list" */
    const char *op = json_string_value(json_object_get(body, "op"));
    snprintf(object, sizeof object, "request %s%s%.8s", proto_type_name(type), op ? " " : "",
             op ? op : "");
    refuse(ctl, peer->key, object, reason, k != NULL && !k->revoked);
    if (reason == why) /* it names the type already */
        return err_set(err, EACCES, "%s", why);
    return err_set(err, EACCES, "%s: %s", proto_type_name(type), reason);
}

/* ---- ADMIN_KEY ---- */

static json_t *key_json(const struct auth_key *k)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "key", k->e.key, "role",
                     keys_role_name(k->e.role), "name", k->e.name, "state",
                     k->revoked ? "revoked" : "active", "source",
                     k->stored ? "admin" : "config", "time",
                     k->time > 0 ? json_real(k->time) : json_null());
}

int ctl_on_admin_key(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg,
                     struct err *err)
{
    struct ctl_auth *a = ctl->auth;
    const json_t *b = msg->body;
    const char *op = json_string_value(json_object_get(b, "op"));
    const char *key = json_string_value(json_object_get(b, "key"));
    if (a == NULL)
        return err_set(err, ENOTSUP, "admin key: no allowlist");
    if (strcmp(op, "list") == 0) {
        json_t *arr = json_array();
        for (int i = 0; i < a->nkeys; i++)
            json_array_append_new(arr, key_json(&a->keys[i]));
        return ctl_out_reply(ctl, peer, msg->req_id, json_pack("{s:o}", "keys", arr));
    }
    bool add = strcmp(op, "add") == 0;
    if (!add && strcmp(op, "revoke") != 0)
        return err_set(err, EINVAL, "admin key: op '%s': expected add, revoke or list", op);
    if (!keys_z85_valid(key))
        return err_set(err, EINVAL, "admin key %s: key: expected a %d-character Z85 public key", op,
                       KEYS_LEN);
    const char *rname = json_string_value(json_object_get(b, "role"));
    int role = rname ? keys_role_parse(rname) : KEYS_ROLE_CLIENT;
    if (role < 0)
        return err_set(err, EINVAL, "admin key add: role '%s': expected admin, client or worker", rname);
    const char *name = json_string_value(json_object_get(b, "name"));
    if (name && text_has_controls(name, strlen(name)))
        return err_set(err, EINVAL, "admin key add: name: control characters are not allowed");
    struct auth_key *k = find(a, key);
    if (!add && k == NULL)
        return err_set(err, ENOENT, "admin key revoke: %s is not in the allowlist", key);
    /* Revoking the key this request comes with would lock its admin out (the
     * revocation outlives restarts); another admin key may do it. */
    if (!add && strcmp(key, peer->key) == 0)
        return err_set(err, EINVAL, "admin key revoke: %s is the key of this request; revoke it "
                       "with another admin key (moat keygen, admin key add --role admin)", key);
    if ((k = find_or_add(a, key, err)) == NULL)
        return -1;
    if (add) {
        k->e.role = (enum keys_role)role;
        if (name)
            snprintf(k->e.name, sizeof k->e.name, "%s", name);
    }
    k->revoked = !add;
    k->stored = true;
    k->time = units_now();
    json_t *rec = json_pack("{s:s, s:s, s:s, s:f, s:s}", "role", keys_role_name(k->e.role), "name",
                            k->e.name, "state", add ? "active" : "revoked", "time", k->time, "by",
                            peer->key);
    char *text = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    json_decref(rec);
    int rc = text ? ctl_batch(ctl, err) : err_set(err, ENOMEM, "admin key: out of memory");
    if (rc == 0)
        rc = store_put(ctl->store, STORE_DB_KEYS, key, KEYS_LEN, text, strlen(text), 0, err);
    free(text);
    if (rc != 0) {
        if (ctl->store_err.code == 0)
            ctl->store_err = *err;
        return -1;
    }
    char object[64];
    snprintf(object, sizeof object, "key %s", key);
    if (ctl_audit_append(ctl, peer->key, add ? "key.add" : "key.revoke", object,
                         json_pack("{s:s, s:s}", "role", keys_role_name(k->e.role), "name", k->e.name),
                         err) != 0)
        return -1;
    log_info("ctl", "key %s %s (%s %s) by %s", key, add ? "added" : "revoked",
             keys_role_name(k->e.role), k->e.name, peer->key);
    return ctl_out_reply(ctl, peer, msg->req_id, key_json(k));
}
