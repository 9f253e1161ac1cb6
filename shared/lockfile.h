/* lockfile.h: one daemon per state directory, by an advisory lock on a file in it.
 *
 * The lock is flock(2) on DIR/NAME, taken without waiting and held on an open
 * file description of this process until lockfile_release() or the process
 * ends: the kernel drops it on any exit, kill -9 included, so a crash never
 * leaves a stale lock behind (the file itself stays; its content is only a
 * hint). The holder writes its pid in the file ("PID\n") for the refusal
 * message of the next one. The descriptor is close-on-exec, so programs the
 * holder runs do not inherit the lock. A second lockfile_acquire() of the same
 * file, from this process too, is refused: each takes its own description.
 * No logging. Thread-safety: reentrant; a handle belongs to its caller.
 */
#ifndef MOAT_LOCKFILE_H
#define MOAT_LOCKFILE_H

#include "shared/err.h"

typedef struct lockfile lockfile_t;

/* lockfile_acquire: create dir (and its parents: mode 0700 for dir, 0755 for
 * the parents) if missing, then create or open dir/name (mode 0600), lock it
 * exclusively and write this process's pid in it.
 * Returns the handle (caller frees with lockfile_release()) or NULL with err:
 * EWOULDBLOCK when another holds the lock (*holder, when holder is not NULL,
 * is then the pid written in the file, 0 when it cannot be read: the holder
 * may not have written it yet); else the errno of mkdir, open or flock
 * (EACCES, ENOENT, ENOLCK), err naming the path. */
lockfile_t *lockfile_acquire(const char *dir, const char *name, long *holder, struct err *err);

/* lockfile_state_dir: a daemon's lock on its state_dir: the file
 * "<daemon>.lock" in dir, as lockfile_acquire. On failure err says, in one
 * line for the daemon to print, "state_dir DIR is in use by another DAEMON
 * (pid N)" (EWOULDBLOCK), or "state_dir: why". */
lockfile_t *lockfile_state_dir(const char *dir, const char *daemon, struct err *err);

/* lockfile_release: unlock and close. The file stays. NULL is a no-op. */
void lockfile_release(lockfile_t *lock);

#endif
