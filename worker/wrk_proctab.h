/* wrk_proctab.h: the node's processes and their parents, read from /proc
 * (proc(5): /proc/PID/stat's fourth field, after the command in parentheses),
 * to find a task's whole process tree: for its resident memory (wrk_exec_rss)
 * and to kill all of it (wrk_exec_kill). The per-task reaper (wrk_reap_task.c)
 * has a scan of its own, for it may not allocate.
 * Thread-safety: a table is the caller's; reading one touches no shared state.
 */
#ifndef MOAT_WRK_PROCTAB_H
#define MOAT_WRK_PROCTAB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* struct wrk_proctab: every process at one moment with its parent, sorted by
 * parent pid (wrk_proctab_read; free with wrk_proctab_free). Processes that end
 * during the scan are left out. */
struct wrk_proctab {
    struct wrk_proc_link { pid_t pid, ppid; } *v;
    size_t n;
};
void wrk_proctab_read(struct wrk_proctab *tab);
void wrk_proctab_free(struct wrk_proctab *tab);

/* wrk_proctab_tree: root and all its descendants in tab, breadth first, into
 * *out (malloc'd; caller frees); their number, 0 on ENOMEM. */
size_t wrk_proctab_tree(const struct wrk_proctab *tab, pid_t root, pid_t **out);

/* wrk_proctab_kill_tree: SIGKILL root's descendants in tab, deepest first (so
 * none is left to be reparented), and root too when with_root. Each is
 * checked through a pidfd (pidfd_open, Linux >= 5.3) to still be the child of
 * a process of the tree before pidfd_send_signal, so a pid that ended and was
 * reused since the scan is not hit; plain kill() where pidfds are missing.
 * Returns how many were signalled. */
size_t wrk_proctab_kill_tree(const struct wrk_proctab *tab, pid_t root, int with_root);

/* wrk_proctab_rss: bytes resident of pid now (/proc/PID/statm's second field,
 * in pages); 0 when it is gone. */
uint64_t wrk_proctab_rss(pid_t pid);

#endif
