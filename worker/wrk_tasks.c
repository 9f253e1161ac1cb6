/* wrk_tasks.c: the task table, task completion, and the in-flight records. */
#include "worker/wrk_tasks.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "shared/log.h"

struct wrk_task *wrk_tasks_find(const struct wrk_tasks *ts, uint64_t job, uint32_t index,
                                uint32_t attempt)
{
    for (int i = 0; i < ts->n; i++) {
        struct wrk_task *t = ts->v[i];
        if (t->job == job && t->index == index && t->attempt == attempt)
            return t;
    }
    return NULL;
}

struct wrk_task *wrk_tasks_add(struct wrk_tasks *ts, uint64_t job, uint32_t index, uint32_t attempt)
{
    if (ts->n + 1 > ts->cap) {
        int cap = ts->cap ? ts->cap * 2 : 64;
        struct wrk_task **v = realloc(ts->v, (size_t)cap * sizeof *v);
        if (v == NULL)
            return NULL;
        ts->v = v;
        ts->cap = cap;
    }
    struct wrk_task *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->job = job;
    t->index = index;
    t->attempt = attempt;
    t->proc.out_fd = t->proc.err_fd = -1;
    t->fetch.fd = -1;
    t->exit_code = -1;
    ts->v[ts->n++] = t;
    return t;
}

static void task_free(struct wrk_task *t)
{
    wrk_exec_release(&t->proc);
    wrk_fetch_abort(&t->fetch);
    json_decref(t->dispatch);
    free(t->docs);
    free(t->res);
    free(t->out);
    free(t->err);
    free(t);
}

void wrk_tasks_remove(struct wrk_tasks *ts, int i)
{
    task_free(ts->v[i]);
    ts->v[i] = ts->v[--ts->n];
}

void wrk_tasks_free(struct wrk_tasks *ts)
{
    for (int i = 0; i < ts->n; i++)
        task_free(ts->v[i]);
    free(ts->v);
    memset(ts, 0, sizeof *ts);
}

void wrk_task_finish(struct wrk_task *t, double now)
{
    int st = t->proc.status;
    if (WIFEXITED(st)) {
        t->exit_code = WEXITSTATUS(st);
        t->signal = 0;
    } else {
        t->exit_code = -1;
        t->signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
    }
    switch (t->kill) {
    case WRK_KILL_TIMEOUT: t->state = JOB_STATE_TIMEOUT; break;
    case WRK_KILL_CANCEL:
    case WRK_KILL_STALE:
    case WRK_KILL_SHUTDOWN: t->state = JOB_STATE_CANCELLED; break;
    case WRK_KILL_MEMORY: t->state = JOB_STATE_FAILED; break;
    default: t->state = t->exit_code == 0 ? JOB_STATE_COMPLETED : JOB_STATE_FAILED; break;
    }
    t->truncated = t->proc.truncated;
    t->cpu_time = t->proc.cpu_time;
    /* sampled (the sum over its processes), or its largest process's peak
     * (not a sandboxed task's: wrk_exec_reaped) if larger */
    t->max_rss = t->proc.max_rss > t->mem_peak ? t->proc.max_rss : t->mem_peak;
    t->out = t->proc.out.data;
    t->out_len = t->proc.out.len;
    t->err = t->proc.err.data;
    t->err_len = t->proc.err.len;
    memset(&t->proc.out, 0, sizeof t->proc.out);
    memset(&t->proc.err, 0, sizeof t->proc.err);
    wrk_exec_release(&t->proc);
    if (t->infer && t->rank == 0 && t->state == JOB_STATE_COMPLETED) {
        /* rank 0's embeddings: read them before the task directory goes */
        char path[700];
        snprintf(path, sizeof path, "%s/output.f32", t->cwd);
        FILE *f = fopen(path, "rb");
        long n = -1;
        if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
            (t->res = malloc((size_t)n)) != NULL && fread(t->res, 1, (size_t)n, f) == (size_t)n) {
            t->res_len = (size_t)n;
        } else {
            free(t->res);
            t->res = NULL;
            t->state = JOB_STATE_FAILED; /* exit 0 without its output: not a success */
            log_warn("wrk", "task %llu.%u: %s missing or unreadable", (unsigned long long)t->job,
                     t->index, path);
        }
        if (f)
            fclose(f);
    }
    t->end_time = now;
    t->phase = WRK_PHASE_ENDED;
    t->need_send = true;
    struct err e = {0};
    if (t->cwd[0] && !t->cwd_shared && wrk_exec_remove_tree(t->cwd, &e) != 0)
        log_warn("wrk", "task %llu.%u: %s", (unsigned long long)t->job, t->index, e.msg);
}

json_t *wrk_task_end_body(const struct wrk_task *t)
{
    json_t *b = json_pack("{s:I, s:I, s:I, s:s, s:i, s:i, s:b, s:f, s:f}", "job", (json_int_t)t->job,
                          "task", (json_int_t)t->index, "attempt", (json_int_t)t->attempt, "state",
                          job_state_name(t->state), "exit_code", t->exit_code < -1 ? -1 : t->exit_code,
                          "signal", t->signal, "truncated", t->truncated, "start_time",
                          t->start_time, "end_time", t->end_time);
    if (b && t->launch_error[0])
        json_object_set_new(b, "launch_error", json_string(t->launch_error));
    if (b && t->end_reason[0])
        json_object_set_new(b, "reason", json_string(t->end_reason));
    if (b && t->infer)
        json_object_set_new(b, "rank", json_integer(t->rank));
    if (b && !t->launch_error[0]) {
        json_object_set_new(b, "cpu_time", json_real(t->cpu_time));
        json_object_set_new(b, "max_rss", json_integer((json_int_t)t->max_rss));
    }
    return b;
}

int wrk_task_save(store_t *st, const struct wrk_task *t, struct err *err)
{
    json_t *h = wrk_task_end_body(t);
    if (h == NULL)
        return err_set(err, ENOMEM, "inflight: out of memory");
    json_object_set_new(h, "out_len", json_integer((json_int_t)t->out_len));
    json_object_set_new(h, "err_len", json_integer((json_int_t)t->err_len));
    json_object_set_new(h, "res_len", json_integer((json_int_t)t->res_len));
    char *text = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    if (text == NULL)
        return err_set(err, ENOMEM, "inflight: out of memory");
    size_t hl = strlen(text), len = 4 + hl + t->out_len + t->err_len + t->res_len;
    uint8_t *rec = malloc(len);
    if (rec == NULL) {
        free(text);
        return err_set(err, ENOMEM, "inflight: out of memory");
    }
    rec[0] = (uint8_t)(hl >> 24);
    rec[1] = (uint8_t)(hl >> 16);
    rec[2] = (uint8_t)(hl >> 8);
    rec[3] = (uint8_t)hl;
    memcpy(rec + 4, text, hl);
    if (t->out_len)
        memcpy(rec + 4 + hl, t->out, t->out_len);
    if (t->err_len)
        memcpy(rec + 4 + hl + t->out_len, t->err, t->err_len);
    if (t->res_len)
        memcpy(rec + 4 + hl + t->out_len + t->err_len, t->res, t->res_len);
    free(text);
    uint8_t key[16];
    int rc = store_in_batch(st) ? 0 : store_begin(st, err);
    if (rc == 0)
        rc = store_put(st, STORE_DB_INFLIGHT, key, store_key_attempt(key, t->job, t->index, t->attempt),
                       rec, len, 0, err);
    free(rec);
    return rc;
}

int wrk_task_forget(store_t *st, const struct wrk_task *t, struct err *err)
{
    uint8_t key[16];
    if (!store_in_batch(st) && store_begin(st, err) != 0)
        return -1;
    int rc = store_del(st, STORE_DB_INFLIGHT, key, store_key_attempt(key, t->job, t->index, t->attempt),
                       err);
    return rc != 0 && err->code == ENOENT ? 0 : rc;
}

static int load_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    struct wrk_tasks *ts = arg;
    const uint8_t *v = val;
    if (klen != 16 || vlen < 4)
        return 0;
    size_t hl = (size_t)v[0] << 24 | (size_t)v[1] << 16 | (size_t)v[2] << 8 | v[3];
    json_t *h = hl <= vlen - 4 ? json_loadb((const char *)v + 4, hl, 0, NULL) : NULL;
    if (h == NULL) {
        log_error("wrk", "inflight: unreadable record skipped");
        return 0;
    }
    size_t ol = (size_t)json_integer_value(json_object_get(h, "out_len"));
    size_t el = (size_t)json_integer_value(json_object_get(h, "err_len"));
    size_t rl = (size_t)json_integer_value(json_object_get(h, "res_len"));
    int st = job_state_parse(json_string_value(json_object_get(h, "state")) ?: "");
    if (4 + hl + ol + el + rl != vlen || st < 0) {
        log_error("wrk", "inflight: inconsistent record skipped");
        json_decref(h);
        return 0;
    }
    struct wrk_task *t = wrk_tasks_add(ts, store_key_get64(key), store_key_get32((const uint8_t *)key + 8),
                                       store_key_get32((const uint8_t *)key + 12));
    if (t == NULL) {
        json_decref(h);
        return ENOMEM;
    }
    t->phase = WRK_PHASE_ENDED;
    t->state = (enum job_state)st;
    t->exit_code = (int)json_integer_value(json_object_get(h, "exit_code"));
    t->signal = (int)json_integer_value(json_object_get(h, "signal"));
    t->truncated = json_is_true(json_object_get(h, "truncated"));
    t->start_time = json_number_value(json_object_get(h, "start_time"));
    t->end_time = json_number_value(json_object_get(h, "end_time"));
    t->cpu_time = json_number_value(json_object_get(h, "cpu_time"));
    json_int_t rss = json_integer_value(json_object_get(h, "max_rss"));
    t->max_rss = rss > 0 ? (uint64_t)rss : 0;
    const char *le = json_string_value(json_object_get(h, "launch_error"));
    if (le)
        snprintf(t->launch_error, sizeof t->launch_error, "%s", le);
    const char *why = json_string_value(json_object_get(h, "reason"));
    if (why)
        snprintf(t->end_reason, sizeof t->end_reason, "%s", why);
    t->out = malloc(ol + 1);
    t->err = malloc(el + 1);
    if (t->out == NULL || t->err == NULL) {
        json_decref(h);
        return ENOMEM;
    }
    memcpy(t->out, v + 4 + hl, ol);
    memcpy(t->err, v + 4 + hl + ol, el);
    t->out_len = ol;
    t->err_len = el;
    const json_t *rank = json_object_get(h, "rank");
    if (rank) {
        t->infer = true;
        t->rank = (int)json_integer_value(rank);
    }
    if (rl) {
        if ((t->res = malloc(rl)) == NULL) {
            json_decref(h);
            return ENOMEM;
        }
        memcpy(t->res, v + 4 + hl + ol + el, rl);
        t->res_len = rl;
    }
    t->need_send = true;
    json_decref(h);
    return 0;
}

int wrk_tasks_load(struct wrk_tasks *ts, store_t *st, struct err *err)
{
    int rc = store_foreach(st, STORE_DB_INFLIGHT, load_cb, ts, err);
    if (rc > 0)
        return err_set(err, rc, "inflight: out of memory");
    return rc;
}

int wrk_tasks_sweep_dirs(const char *tasks_dir, struct err *err)
{
    DIR *d = opendir(tasks_dir);
    if (d == NULL)
        return errno == ENOENT ? 0 : err_set(err, errno, "%s: %s", tasks_dir, strerror(errno));
    int removed = 0, failed = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
            strcmp(de->d_name, "unconfined") == 0)
            continue;
        char path[4352];
        snprintf(path, sizeof path, "%s/%s", tasks_dir, de->d_name);
        struct err e = {0};
        if (wrk_exec_remove_tree(path, &e) == 0)
            removed++;
        else if (!failed++)
            *err = e;
    }
    closedir(d);
    return failed ? -1 : removed;
}
