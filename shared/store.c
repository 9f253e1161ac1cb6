/* store.c: LMDB environment, named databases, batch and nested transactions. */
#include "shared/store.h"

#include <errno.h>
#include <lmdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

static const char *const db_names[STORE_DB_COUNT] = {"meta",     "jobs",      "tasks",
                                                     "results",  "nodes",     "inflight",
                                                     "artifacts", "docs",     "keys",
                                                     "audit",    "live"};

struct store {
    MDB_env *env;
    MDB_dbi dbi[STORE_DB_COUNT];
    MDB_txn *batch; /* the write transaction of this pass, or NULL */
    uint64_t map_size, map_max;
    uint64_t batch_bytes; /* bytes put in the open batch (store_room) */
    int schema;         /* as found at store_open, or as committed since */
    bool schema_set;    /* the open batch records STORE_SCHEMA_VERSION */
    char dir[512];
};

static int mdb_err(struct err *err, int rc, const char *what)
{
    int code = rc == MDB_NOTFOUND ? ENOENT
               : rc == MDB_MAP_FULL || rc == MDB_TXN_FULL ? ENOSPC
               : rc == MDB_KEYEXIST ? EEXIST
               : rc > 0 ? rc : EIO;
    return err_set(err, code, "store: %s: %s", what, mdb_strerror(rc));
}

size_t store_key_job(uint8_t out[8], uint64_t job)
{
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(job >> (56 - 8 * i));
    return 8;
}

size_t store_key_task(uint8_t out[12], uint64_t job, uint32_t task)
{
    store_key_job(out, job);
    for (int i = 0; i < 4; i++)
        out[8 + i] = (uint8_t)(task >> (24 - 8 * i));
    return 12;
}

size_t store_key_attempt(uint8_t out[16], uint64_t job, uint32_t task, uint32_t attempt)
{
    store_key_task(out, job, task);
    for (int i = 0; i < 4; i++)
        out[12 + i] = (uint8_t)(attempt >> (24 - 8 * i));
    return 16;
}

uint64_t store_key_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

uint32_t store_key_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

store_t *store_open(const char *dir, uint64_t map_size, uint64_t map_max, struct err *err)
{
    store_t *st = calloc(1, sizeof *st);
    if (st == NULL) {
        err_set(err, ENOMEM, "store: out of memory");
        return NULL;
    }
    snprintf(st->dir, sizeof st->dir, "%s", dir);
    st->map_size = map_size;
    st->map_max = map_max < map_size ? map_size : map_max;
    char parent[sizeof st->dir];
    snprintf(parent, sizeof parent, "%s", dir);
    for (char *c = parent + 1; *c; c++) { /* mkdir -p of the parents */
        if (*c != '/')
            continue;
        *c = '\0';
        mkdir(parent, 0755);
        *c = '/';
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        err_set(err, errno, "store: mkdir %s: %s", dir, strerror(errno));
        free(st);
        return NULL;
    }
    int rc = mdb_env_create(&st->env);
    if (rc) {
        mdb_err(err, rc, "mdb_env_create");
        free(st);
        return NULL;
    }
    mdb_env_set_maxdbs(st->env, STORE_DB_COUNT + 2);
    mdb_env_set_mapsize(st->env, (size_t)map_size);
    rc = mdb_env_open(st->env, dir, MDB_NOTLS, 0600);
    if (rc) {
        mdb_err(err, rc, dir);
        goto fail;
    }
    MDB_envinfo info;
    mdb_env_info(st->env, &info);
    if (info.me_mapsize > st->map_size)
        st->map_size = info.me_mapsize;
    MDB_txn *txn;
    if ((rc = mdb_txn_begin(st->env, NULL, 0, &txn))) {
        mdb_err(err, rc, "open transaction");
        goto fail;
    }
    for (int i = 0; i < STORE_DB_COUNT; i++) {
        if ((rc = mdb_dbi_open(txn, db_names[i], MDB_CREATE, &st->dbi[i]))) {
            mdb_txn_abort(txn);
            mdb_err(err, rc, db_names[i]);
            goto fail;
        }
    }
    MDB_val k = {6, "schema"}, v;
    rc = mdb_get(txn, st->dbi[STORE_DB_META], &k, &v);
    st->schema = STORE_SCHEMA_VERSION;
    if (rc == MDB_NOTFOUND) {
        uint8_t ver = STORE_SCHEMA_VERSION;
        v.mv_size = 1;
        v.mv_data = &ver;
        rc = mdb_put(txn, st->dbi[STORE_DB_META], &k, &v, 0);
    } else if (rc == 0 && (v.mv_size != 1 || *(uint8_t *)v.mv_data < 1 ||
                           *(uint8_t *)v.mv_data > STORE_SCHEMA_VERSION)) {
        mdb_txn_abort(txn);
        err_set(err, EPROTO, "store: %s: schema version %u, this build reads 1 to %d", dir,
                v.mv_size ? *(uint8_t *)v.mv_data : 0, STORE_SCHEMA_VERSION);
        goto fail;
    } else if (rc == 0) {
        st->schema = *(uint8_t *)v.mv_data;
    }
    if (rc || (rc = mdb_txn_commit(txn))) {
        if (rc)
            mdb_err(err, rc, "schema");
        goto fail;
    }
    return st;
fail:
    mdb_env_close(st->env);
    free(st);
    return NULL;
}

int store_schema(const store_t *st) { return st->schema; }

int store_set_schema(store_t *st, struct err *err)
{
    if (st->batch == NULL)
        return err_set(err, EINVAL, "store: schema: no transaction");
    uint8_t ver = STORE_SCHEMA_VERSION;
    MDB_val k = {6, "schema"}, v = {1, &ver};
    int rc = mdb_put(st->batch, st->dbi[STORE_DB_META], &k, &v, 0);
    if (rc)
        return mdb_err(err, rc, "schema");
    st->schema_set = true;
    return 0;
}

void store_close(store_t *st)
{
    if (st == NULL)
        return;
    store_abort(st);
    mdb_env_close(st->env);
    free(st);
}

uint64_t store_map_size(const store_t *st) { return st->map_size; }

int store_grow(store_t *st, struct err *err)
{
    if (st->batch)
        return err_set(err, EBUSY, "store: cannot grow during a transaction");
    if (st->map_size >= st->map_max)
        return err_set(err, ENOSPC, "store: %s: map is at its maximum of %llu bytes (store_map_max)",
                       st->dir, (unsigned long long)st->map_max);
    uint64_t next = st->map_size * 2;
    if (next > st->map_max)
        next = st->map_max;
    int rc = mdb_env_set_mapsize(st->env, (size_t)next);
    if (rc)
        return mdb_err(err, rc, "grow map");
    st->map_size = next;
    return 0;
}

int store_begin(store_t *st, struct err *err)
{
    if (st->batch)
        return err_set(err, EBUSY, "store: a batch is already open");
    MDB_envinfo info;
    MDB_stat stat;
    mdb_env_info(st->env, &info);
    mdb_env_stat(st->env, &stat);
    uint64_t used = (uint64_t)(info.me_last_pgno + 1) * stat.ms_psize;
    if (used * 4 > st->map_size * 3 && st->map_size < st->map_max)
        store_grow(st, NULL); /* best effort; a full map surfaces as ENOSPC on put */
    int rc = mdb_txn_begin(st->env, NULL, 0, &st->batch);
    if (rc) {
        st->batch = NULL;
        return mdb_err(err, rc, "begin");
    }
    st->batch_bytes = 0;
    return 0;
}

uint64_t store_room(store_t *st)
{
    MDB_envinfo info;
    MDB_stat stat;
    mdb_env_info(st->env, &info);
    mdb_env_stat(st->env, &stat);
    uint64_t used = (uint64_t)(info.me_last_pgno + 1) * stat.ms_psize;
    /* the open batch's puts, with a page of B-tree per value and 1/8 for the rest */
    if (st->batch)
        used += st->batch_bytes + st->batch_bytes / 8;
    return used < st->map_max ? st->map_max - used : 0;
}

int store_in_batch(const store_t *st) { return st->batch != NULL; }

int store_commit(store_t *st, struct err *err)
{
    if (st->batch == NULL)
        return err_set(err, EINVAL, "store: no batch to commit");
    int rc = mdb_txn_commit(st->batch);
    st->batch = NULL;
    if (rc == 0 && st->schema_set)
        st->schema = STORE_SCHEMA_VERSION;
    st->schema_set = false;
    if (rc == 0)
        return 0;
    /* LMDB says EIO for a short write: a full disk, most of the time */
    struct statvfs vfs;
    if ((rc == EIO || rc == ENOSPC) && statvfs(st->dir, &vfs) == 0 &&
        (uint64_t)vfs.f_bavail * vfs.f_frsize < (4u << 20))
        return err_set(err, ENOSPC, "store: commit: the disk of %s is full (%llu KiB free)", st->dir,
                       (unsigned long long)vfs.f_bavail * vfs.f_frsize / 1024);
    return mdb_err(err, rc, "commit");
}

int store_commit_nosync(store_t *st, struct err *err)
{
    mdb_env_set_flags(st->env, MDB_NOSYNC, 1);
    int rc = store_commit(st, err);
    mdb_env_set_flags(st->env, MDB_NOSYNC, 0);
    return rc;
}

void store_abort(store_t *st)
{
    if (st->batch) {
        mdb_txn_abort(st->batch);
        st->batch = NULL;
    }
    st->schema_set = false;
}

static MDB_txn *cur_txn(store_t *st) { return st->batch; }

/* read_txn: the batch's transaction if one is open (a batch sees its own
 * writes), else a new read-only one in *own (the caller aborts it; NULL
 * otherwise). 0 or -1 with err. */
static int read_txn(store_t *st, MDB_txn **txn, MDB_txn **own, struct err *err)
{
    *own = NULL;
    *txn = cur_txn(st);
    if (*txn != NULL)
        return 0;
    int rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, own);
    if (rc)
        return mdb_err(err, rc, "begin read");
    *txn = *own;
    return 0;
}

/* read_cursor: a cursor on db in read_txn()'s transaction. */
static int read_cursor(store_t *st, enum store_db db, MDB_txn **own, MDB_cursor **cur,
                       struct err *err)
{
    MDB_txn *txn;
    if (read_txn(st, &txn, own, err) != 0)
        return -1;
    int rc = mdb_cursor_open(txn, st->dbi[db], cur);
    if (rc) {
        mdb_txn_abort(*own);
        return mdb_err(err, rc, "cursor");
    }
    return 0;
}

static int put(store_t *st, enum store_db db, const void *key, size_t klen, const void *val,
               size_t vlen, unsigned flags, struct err *err)
{
    MDB_txn *txn = cur_txn(st);
    if (txn == NULL)
        return err_set(err, EINVAL, "store: put outside a transaction");
    MDB_val k = {klen, (void *)key}, v = {vlen + 1, NULL};
    int rc = mdb_put(txn, st->dbi[db], &k, &v, flags | MDB_RESERVE);
    if (rc)
        return mdb_err(err, rc, db_names[db]);
    st->batch_bytes += klen + vlen + 1 + 4096;
    ((uint8_t *)v.mv_data)[0] = STORE_VALUE_VERSION;
    if (vlen)
        memcpy((uint8_t *)v.mv_data + 1, val, vlen);
    return 0;
}

int store_put(store_t *st, enum store_db db, const void *key, size_t klen, const void *val,
              size_t vlen, int append, struct err *err)
{
    return put(st, db, key, klen, val, vlen, append ? MDB_APPEND : 0, err);
}

int store_put_new(store_t *st, enum store_db db, const void *key, size_t klen, const void *val,
                  size_t vlen, struct err *err)
{
    return put(st, db, key, klen, val, vlen, MDB_NOOVERWRITE, err);
}

int store_del(store_t *st, enum store_db db, const void *key, size_t klen, struct err *err)
{
    MDB_txn *txn = cur_txn(st);
    if (txn == NULL)
        return err_set(err, EINVAL, "store: delete outside a transaction");
    MDB_val k = {klen, (void *)key};
    int rc = mdb_del(txn, st->dbi[db], &k, NULL);
    return rc ? mdb_err(err, rc, db_names[db]) : 0;
}

int store_get(store_t *st, enum store_db db, const void *key, size_t klen, void **val,
              size_t *vlen, struct err *err)
{
    MDB_txn *txn, *own;
    if (read_txn(st, &txn, &own, err) != 0)
        return -1;
    int rc;
    MDB_val k = {klen, (void *)key}, v;
    rc = mdb_get(txn, st->dbi[db], &k, &v);
    if (rc) {
        mdb_txn_abort(own);
        return mdb_err(err, rc, db_names[db]);
    }
    if (v.mv_size < 1 || *(uint8_t *)v.mv_data != STORE_VALUE_VERSION) {
        mdb_txn_abort(own);
        return err_set(err, EPROTO, "store: %s: record with unknown version", db_names[db]);
    }
    *vlen = v.mv_size - 1;
    *val = malloc(*vlen + 1);
    if (*val == NULL) {
        mdb_txn_abort(own);
        return err_set(err, ENOMEM, "store: out of memory");
    }
    memcpy(*val, (uint8_t *)v.mv_data + 1, *vlen);
    ((char *)*val)[*vlen] = '\0';
    mdb_txn_abort(own);
    return 0;
}

int store_last(store_t *st, enum store_db db, void *key, size_t cap, size_t *klen, void **val,
               size_t *vlen, struct err *err)
{
    MDB_txn *own;
    MDB_cursor *cur;
    if (read_cursor(st, db, &own, &cur, err) != 0)
        return -1;
    int rc;
    MDB_val k, v;
    int ret = 0;
    if ((rc = mdb_cursor_get(cur, &k, &v, MDB_LAST)))
        ret = mdb_err(err, rc, db_names[db]);
    else if (k.mv_size > cap)
        ret = err_set(err, ENOSPC, "store: %s: key of %zu bytes", db_names[db], k.mv_size);
    else if (v.mv_size < 1 || *(uint8_t *)v.mv_data != STORE_VALUE_VERSION)
        ret = err_set(err, EPROTO, "store: %s: record with unknown version", db_names[db]);
    else if ((*val = malloc(v.mv_size)) == NULL)
        ret = err_set(err, ENOMEM, "store: out of memory");
    if (ret == 0) {
        memcpy(key, k.mv_data, k.mv_size);
        *klen = k.mv_size;
        *vlen = v.mv_size - 1;
        memcpy(*val, (uint8_t *)v.mv_data + 1, *vlen);
        ((char *)*val)[*vlen] = '\0';
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(own);
    return ret;
}

/* walk: cb for every record from the first key >= from (from NULL: the first
 * record) to the end, or until cb returns non-zero (returned). */
static int walk(MDB_cursor *cur, enum store_db db, const void *from, size_t flen,
                store_foreach_cb cb, void *arg, struct err *err)
{
    MDB_val k = {flen, (void *)from}, v;
    int ret = 0, rc;
    for (rc = mdb_cursor_get(cur, &k, &v, from ? MDB_SET_RANGE : MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (v.mv_size < 1 || *(uint8_t *)v.mv_data != STORE_VALUE_VERSION) {
            ret = err_set(err, EPROTO, "store: %s: record with unknown version", db_names[db]);
            break;
        }
        ret = cb(k.mv_data, k.mv_size, (uint8_t *)v.mv_data + 1, v.mv_size - 1, arg);
        if (ret)
            break;
    }
    if (ret == 0 && rc != MDB_NOTFOUND)
        ret = mdb_err(err, rc, "walk");
    return ret;
}

int store_foreach(store_t *st, enum store_db db, store_foreach_cb cb, void *arg, struct err *err)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return mdb_err(err, rc, "begin read");
    if ((rc = mdb_cursor_open(txn, st->dbi[db], &cur))) {
        mdb_txn_abort(txn);
        return mdb_err(err, rc, "cursor");
    }
    int ret = walk(cur, db, NULL, 0, cb, arg, err);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return ret;
}

int store_foreach_from(store_t *st, enum store_db db, const void *from, size_t flen,
                       store_foreach_cb cb, void *arg, struct err *err)
{
    MDB_txn *own;
    MDB_cursor *cur;
    if (read_cursor(st, db, &own, &cur, err) != 0)
        return -1;
    int ret = walk(cur, db, from, flen, cb, arg, err);
    mdb_cursor_close(cur);
    mdb_txn_abort(own);
    return ret;
}
