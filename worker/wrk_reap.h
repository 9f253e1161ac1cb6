/* wrk_reap.h: the reaper that stands between the worker and an unsandboxed
 * exec task (exec_sandbox = "off"), so that the task's processes die with the
 * worker as a sandboxed task's die with its PID namespace.
 *
 * The worker runs `moat-reap --reap -- CMD ARG...` (bin/moat-reap, beside
 * moat-worker; worker/reap/moat_reap.c) as the task's first process (its
 * process group leader). The reaper makes itself a child
 * subreaper (prctl PR_SET_CHILD_SUBREAPER, Linux >= 3.4: orphaned descendants
 * become its children rather than init's), asks for SIGUSR1 when the worker
 * dies (PR_SET_PDEATHSIG), starts CMD in the same process group
 * (posix_spawnp, PATH searched), and waits:
 *  - CMD ends: every process still left of the task (its process tree, which
 *    as a subreaper holds CMD's orphans) is killed, and the reaper ends as CMD did
 *    (the same exit code, or the same signal), so the worker sees CMD's status;
 *  - the worker dies: the reaper kills the whole task the same way and exits.
 * Signals sent to the group (SIGTERM on cancel or time limit, or any the task
 * sends its own group) reach CMD directly; the reaper takes every catchable
 * one with sigwaitinfo and stays to collect CMD's status (SIGUSR1 counts as
 * the worker's death only when its parent changed). The worker's SIGKILL
 * after kill_grace goes to the task's whole tree (wrk_exec_kill).
 * A CMD that is not a binary (a script without #!) runs with /bin/sh, as
 * execvp does. A CMD that cannot be executed: "moat: cannot execute CMD: why"
 * on stderr, exit 127, as a shell says it.
 */
#ifndef MOAT_WRK_REAP_H
#define MOAT_WRK_REAP_H

/* wrk_reap_main: argv as main's from "--reap" on: {"--reap", "--", CMD, ARG...,
 * NULL}. Does not return when CMD ends by a signal (it raises the same);
 * returns CMD's exit code otherwise, 127 when CMD cannot be run, 2 on bad
 * arguments. */
int wrk_reap_main(int argc, char **argv);

#endif
