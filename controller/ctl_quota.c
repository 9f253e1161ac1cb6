/* ctl_quota.c: tasks of unfinished jobs, in all and per owner (ctl_quota.h). */
#include "controller/ctl_quota.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* owner_find: the entry of key, or NULL. A linear scan: owners are the
 * allowlisted client keys that have unfinished jobs, a few dozen at most. */
static struct ctl_owner_tasks *owner_find(const struct ctl *ctl, const char *key)
{
    for (int i = 0; i < ctl->nowners; i++)
        if (strcmp(ctl->owners[i].key, key) == 0)
            return &ctl->owners[i];
    return NULL;
}

int ctl_quota_check(const struct ctl *ctl, const char *owner, uint64_t ntasks, struct err *err)
{
    const struct ctl_owner_tasks *o = owner_find(ctl, owner);
    uint64_t mine = o ? o->tasks : 0, cap = (uint64_t)ctl->cfg.max_tasks_per_key;
    /* more than a limit holds in all can never fit: waiting would not help */
    if (ntasks > cap)
        return err_set(err, EDQUOT, "%llu tasks: more than max_tasks_per_key (%llu) allows one key "
                       "in all: this can never fit", (unsigned long long)ntasks, (unsigned long long)cap);
    if (ntasks > (uint64_t)ctl->cfg.max_tasks)
        return err_set(err, EDQUOT, "%llu tasks: more than the controller's max_tasks (%llu) allows "
                       "in all: this can never fit", (unsigned long long)ntasks,
                       (unsigned long long)ctl->cfg.max_tasks);
    if (mine + ntasks > cap)
        return err_set(err, EDQUOT, "%llu tasks: this key's unfinished jobs hold %llu, and "
                       "max_tasks_per_key is %llu; submit again when some have ended",
                       (unsigned long long)ntasks, (unsigned long long)mine, (unsigned long long)cap);
    cap = (uint64_t)ctl->cfg.max_tasks;
    if (ctl->active_tasks + ntasks > cap)
        return err_set(err, EDQUOT, "%llu tasks: unfinished jobs hold %llu, and the controller's "
                       "max_tasks is %llu; submit again when some have ended",
                       (unsigned long long)ntasks, (unsigned long long)ctl->active_tasks,
                       (unsigned long long)cap);
    return 0;
}

int ctl_quota_note(struct ctl *ctl, const struct ctl_job *job, bool held, struct err *err)
{
    uint64_t n = job->ntasks;
    struct ctl_owner_tasks *o = owner_find(ctl, job->owner);
    if (o == NULL && held) {
        if (ctl->nowners == ctl->owners_cap) {
            int cap = ctl->owners_cap ? 2 * ctl->owners_cap : 8;
            struct ctl_owner_tasks *v = realloc(ctl->owners, (size_t)cap * sizeof *v);
            if (v == NULL)
                return err_set(err, ENOMEM, "quota: out of memory");
            ctl->owners = v;
            ctl->owners_cap = cap;
        }
        o = &ctl->owners[ctl->nowners++];
        snprintf(o->key, sizeof o->key, "%s", job->owner);
        o->tasks = 0;
    }
    if (held) {
        ctl->active_tasks += n;
        o->tasks += n;
    } else {
        ctl->active_tasks -= n < ctl->active_tasks ? n : ctl->active_tasks;
        if (o != NULL)
            o->tasks -= n < o->tasks ? n : o->tasks;
    }
    return 0;
}

int ctl_quota_recount(struct ctl *ctl, struct err *err)
{
    ctl->active_tasks = 0;
    ctl->nowners = 0;
    for (uint64_t id = 1; id <= ctl->njobs; id++) {
        const struct ctl_job *job = ctl->jobs[id];
        if (job != NULL && !job_state_is_terminal(job->state) && ctl_quota_note(ctl, job, true, err) != 0)
            return -1;
    }
    return 0;
}

void ctl_quota_free(struct ctl *ctl)
{
    free(ctl->owners);
    ctl->owners = NULL;
    ctl->nowners = ctl->owners_cap = 0;
    ctl->active_tasks = 0;
}
