/* wrk_proctab.c: the node's process table from /proc (see wrk_proctab.h). */
#include "worker/wrk_proctab.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* proc_stat_ppid: the parent pid of pid from /proc/PID/stat (field 4, after
 * the command in parentheses, which may itself hold ')'); -1 if gone. */
static pid_t proc_stat_ppid(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *close_paren = strrchr(buf, ')');
    char state;
    int ppid;
    if (close_paren == NULL || sscanf(close_paren + 1, " %c %d", &state, &ppid) != 2)
        return -1;
    return (pid_t)ppid;
}

uint64_t wrk_proctab_rss(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    unsigned long long size = 0, resident = 0;
    int got = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    return got == 2 ? (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
}

static int by_ppid(const void *a, const void *b)
{
    const struct wrk_proc_link *x = a, *y = b;
    return (x->ppid > y->ppid) - (x->ppid < y->ppid);
}

void wrk_proctab_read(struct wrk_proctab *tab)
{
    memset(tab, 0, sizeof *tab);
    DIR *d = opendir("/proc");
    if (d == NULL)
        return;
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end != '\0' || pid <= 0)
            continue;
        pid_t pp = proc_stat_ppid((pid_t)pid);
        if (pp < 0)
            continue; /* gone meanwhile */
        if (tab->n == cap) {
            size_t nc = cap ? cap * 2 : 512;
            struct wrk_proc_link *nv = realloc(tab->v, nc * sizeof *nv);
            if (nv == NULL)
                break;
            tab->v = nv;
            cap = nc;
        }
        tab->v[tab->n++] = (struct wrk_proc_link){(pid_t)pid, pp};
    }
    closedir(d);
    if (tab->n > 1)
        qsort(tab->v, tab->n, sizeof *tab->v, by_ppid);
}

void wrk_proctab_free(struct wrk_proctab *tab)
{
    free(tab->v);
    memset(tab, 0, sizeof *tab);
}

size_t wrk_proctab_tree(const struct wrk_proctab *tab, pid_t root, pid_t **out)
{
    /* each pid's children are one run of tab (sorted by ppid) */
    size_t cap = 64, head = 0, tail = 0;
    pid_t *queue = malloc(cap * sizeof *queue);
    *out = queue;
    if (queue == NULL)
        return 0;
    queue[tail++] = root;
    while (head < tail) {
        pid_t pid = queue[head++];
        size_t lo = 0, hi = tab->n; /* first link with ppid >= pid */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (tab->v[mid].ppid < pid)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (size_t k = lo; k < tab->n && tab->v[k].ppid == pid; k++) {
            if (tail == cap) {
                pid_t *nq = realloc(queue, cap * 2 * sizeof *nq);
                if (nq == NULL)
                    return tail;
                *out = queue = nq;
                cap *= 2;
            }
            queue[tail++] = tab->v[k].pid;
        }
    }
    return tail;
}


static int by_pid(const void *a, const void *b)
{
    pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
    return (x > y) - (x < y);
}

size_t wrk_proctab_kill_tree(const struct wrk_proctab *tab, pid_t root, int with_root)
{
    pid_t *tree;
    size_t n = wrk_proctab_tree(tab, root, &tree);
    if (n == 0)
        return 0;
    pid_t *sorted = malloc(n * sizeof *sorted); /* membership, for the parent check */
    if (sorted != NULL) {
        memcpy(sorted, tree, n * sizeof *sorted);
        qsort(sorted, n, sizeof *sorted, by_pid);
    }
    size_t killed = 0;
    for (size_t i = n; i-- > (with_root ? 0 : 1);) {
        pid_t pid = tree[i];
        int fd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (fd < 0 && errno != ENOSYS)
            continue; /* gone */
        if (fd >= 0 && i > 0 && sorted != NULL) {
            /* the process the pidfd holds: still the child of one of the tree? */
            pid_t pp = proc_stat_ppid(pid);
            if (pp < 0 || bsearch(&pp, sorted, n, sizeof *sorted, by_pid) == NULL) {
                close(fd);
                continue;
            }
        }
        int rc = fd >= 0 ? (int)syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0)
                         : kill(pid, SIGKILL);
        killed += rc == 0;
        if (fd >= 0)
            close(fd);
    }
    free(sorted);
    free(tree);
    return killed;
}
