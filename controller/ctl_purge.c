/* ctl_purge.c: finished jobs out of memory after inactive_age (see ctl_purge.h). */
#include "controller/ctl_purge.h"

#include <errno.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "shared/log.h"
#include "shared/store.h"
#include "shared/units.h"

void ctl_purge_note(struct ctl *ctl, struct ctl_job *job, double ago)
{
    double at = units_mono() - (ago > 0 ? ago : 0);
    job->touched = at;
    if (ctl->npurge == ctl->purge_cap) {
        /* reuse the consumed head before growing */
        if (ctl->purge_head > 0) {
            memmove(ctl->purge, ctl->purge + ctl->purge_head,
                    (ctl->npurge - ctl->purge_head) * sizeof *ctl->purge);
            ctl->npurge -= ctl->purge_head;
            ctl->purge_head = 0;
        }
        if (ctl->npurge == ctl->purge_cap) {
            size_t cap = ctl->purge_cap ? ctl->purge_cap * 2 : 1024;
            struct ctl_purge_entry *p = realloc(ctl->purge, cap * sizeof *p);
            if (p == NULL) {
                static bool told;
                if (!told)
                    log_warn("ctl", "purge: out of memory: finished jobs stay in memory");
                told = true;
                return;
            }
            ctl->purge = p;
            ctl->purge_cap = cap;
        }
    }
    ctl->purge[ctl->npurge++] = (struct ctl_purge_entry){job->id, at};
}

static int by_time(const void *a, const void *b)
{
    const struct ctl_purge_entry *x = a, *y = b;
    if (x->at != y->at)
        return x->at < y->at ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

void ctl_purge_sort(struct ctl *ctl)
{
    if (ctl->npurge <= ctl->purge_head)
        return; /* nothing (and purge may be NULL: qsort must not see it) */
    qsort(ctl->purge + ctl->purge_head, ctl->npurge - ctl->purge_head, sizeof *ctl->purge,
          by_time);
}

uint64_t ctl_purge_run(struct ctl *ctl, double now)
{
    if (ctl->store != NULL && store_in_batch(ctl->store))
        return 0;
    double age = ctl->cfg.inactive_age;
    /* N.B. a count, not an end index: ctl_purge_note() below may move the
     * FIFO down (purge_head with it); the entries it appends wait for a later run */
    size_t left = ctl->npurge - ctl->purge_head;
    uint64_t purged = 0;
    for (; left > 0; left--) {
        struct ctl_purge_entry p = ctl->purge[ctl->purge_head];
        if (p.at + age > now)
            break;
        ctl->purge_head++;
        struct ctl_job *job = ctl_job_peek(ctl, p.id);
        if (job == NULL || job->touched > p.at)
            continue; /* purged already, or read back since: a later entry stands */
        if (!job_state_is_terminal(job->state) || job->running > 0 || job->queued) {
            ctl_purge_note(ctl, job, 0);
            continue;
        }
        ctl->jobs[p.id] = NULL;
        ctl_job_free(job);
        ctl->nresident--;
        ctl_live_drop(ctl, p.id);
        purged++;
    }
    if (ctl->purge_head == ctl->npurge)
        ctl->purge_head = ctl->npurge = 0;
    if (purged > 0) {
        log_debug("ctl", "purged %llu finished jobs from memory (%llu of %llu resident)",
                  (unsigned long long)purged, (unsigned long long)ctl->nresident,
                  (unsigned long long)ctl->njobs);
        /* at most once a second: a busy controller purges every pass */
        static double last_trim;
        double mono = units_mono();
        if (mono - last_trim >= 1.0) {
            malloc_trim(0);
            last_trim = mono;
        }
    }
    return purged;
}

/* ---- the index of jobs in memory (db "live") ---- */

int ctl_live_put(struct ctl *ctl, uint64_t id, struct err *err)
{
    uint8_t key[8];
    int rc = ctl_batch(ctl, err);
    if (rc == 0)
        rc = store_put(ctl->store, STORE_DB_LIVE, key, store_key_job(key, id), "", 0, 0, err);
    if (rc != 0 && ctl->store_err.code == 0)
        ctl->store_err = *err;
    return rc;
}

void ctl_live_keep(struct ctl *ctl, uint64_t id)
{
    size_t k = 0;
    for (size_t i = 0; i < ctl->nunlive; i++)
        if (ctl->unlive[i] != id)
            ctl->unlive[k++] = ctl->unlive[i];
    ctl->nunlive = k;
}

void ctl_live_drop(struct ctl *ctl, uint64_t id)
{
    if (ctl->nunlive == ctl->unlive_cap) {
        size_t cap = ctl->unlive_cap ? ctl->unlive_cap * 2 : 1024;
        uint64_t *u = realloc(ctl->unlive, cap * sizeof *u);
        if (u == NULL) {
            static bool told;
            if (!told)
                log_warn("ctl", "purge: out of memory: purged jobs stay in the restart index");
            told = true;
            return;
        }
        ctl->unlive = u;
        ctl->unlive_cap = cap;
    }
    ctl->unlive[ctl->nunlive++] = id;
}

/* live_del: delete the dropped ids in the open transaction. */
static int live_del(struct ctl *ctl, struct err *err)
{
    for (size_t i = 0; i < ctl->nunlive; i++) {
        uint8_t key[8];
        struct err e = {0};
        if (store_del(ctl->store, STORE_DB_LIVE, key, store_key_job(key, ctl->unlive[i]), &e) != 0 &&
            e.code != ENOENT) {
            *err = e;
            return -1;
        }
    }
    /* N.B. forgotten before the commit: if it fails, the entries stay in the
     * index, which recovery tolerates (ctl_purge.h) */
    ctl->nunlive = 0;
    return 0;
}

int ctl_live_flush(struct ctl *ctl, bool force, struct err *err)
{
    if (ctl->nunlive == 0 || ctl->store == NULL)
        return 0;
    if (store_in_batch(ctl->store)) {
        if (live_del(ctl, err) == 0)
            return 0;
        if (ctl->store_err.code == 0)
            ctl->store_err = *err;
        return -1;
    }
    if (!force || ctl->nunlive < CTL_LIVE_FLUSH_MIN)
        return 0;
    if (store_begin(ctl->store, err) != 0)
        return -1;
    if (live_del(ctl, err) != 0 || store_commit(ctl->store, err) != 0) {
        store_abort(ctl->store);
        return -1;
    }
    return 0;
}
