/* keys.h: CURVE key files and the controller's allowlist in text form.
 *
 * A key file holds one Z85 key (ZeroMQ RFC 32: 40 characters for 32 bytes) on a
 * line; blank lines and lines starting with '#' are ignored. `moat keygen`
 * writes NAME.key (the secret key, mode 0600) and NAME.pub (the public key).
 * An allowlist line is "ROLE KEY [NAME]": ROLE admin, client or worker, KEY a
 * public key, NAME the rest of the line, up to 64 printable characters but '#'
 * (a label for logs and audit; a trailing "# comment" would otherwise be
 * taken into it, so it is refused).
 * No I/O beyond the files named; no zmq.h (key pairs come from net.h).
 * Thread-safety: reentrant.
 */
#ifndef MOAT_KEYS_H
#define MOAT_KEYS_H

#include <stdbool.h>

#include "shared/err.h"

#define KEYS_LEN 40
#define KEYS_NAME_MAX 64

/* Roles, from most to least trusted: admin (client requests, key and audit
 * administration), client (jobs, results, models), worker (REGISTER, HEARTBEAT,
 * TASK_END, SHARD_GET). */
enum keys_role { KEYS_ROLE_ADMIN, KEYS_ROLE_CLIENT, KEYS_ROLE_WORKER, KEYS_ROLE_COUNT };

const char *keys_role_name(enum keys_role role);
/* keys_role_article: "an" for admin, "a" for the others ("an admin key"). */
const char *keys_role_article(enum keys_role role);
/* keys_role_parse: "admin" -> KEYS_ROLE_ADMIN, ...; -1 for anything else. */
int keys_role_parse(const char *text);

/* keys_z85_valid: text is exactly KEYS_LEN characters of the Z85 alphabet. */
bool keys_z85_valid(const char *text);

struct keys_entry {
    char key[KEYS_LEN + 1];
    enum keys_role role;
    char name[KEYS_NAME_MAX + 1];
};

/* keys_line_parse: one allowlist line into *e. Returns 1 with *e filled, 0 for a
 * blank or comment line, -1 with EINVAL naming what is wrong. */
int keys_line_parse(const char *line, struct keys_entry *e, struct err *err);

/* keys_file_read: the key in path into key (KEYS_LEN + 1 bytes). errno of the
 * open (ENOENT, EACCES), EISDIR for a directory, EINVAL for another file that
 * is not a regular one or holds no key ("PATH: not a Z85 key"), naming path. A secret
 * key file readable by others than its owner is refused with EACCES when
 * secret is true. */
int keys_file_read(const char *path, bool secret, char key[KEYS_LEN + 1], struct err *err);

/* keys_file_write: create path holding key and a newline, mode 0600 when secret
 * else 0644. EEXIST when path exists (keys are never overwritten silently). */
int keys_file_write(const char *path, const char *key, bool secret, struct err *err);

/* keys_process_guard: make this process non-dumpable (prctl(2) PR_SET_DUMPABLE
 * 0) before it reads a secret key, so that the key stays out of core files and
 * out of reach of other processes of the same user: ptrace(2) and
 * /proc/PID/{mem,environ,fd} then need CAP_SYS_PTRACE, and the kernel gives
 * the files under /proc/PID to root (status, stat, statm and cmdline stay
 * readable to all, as `moat local status` and the --mem scan need). An exec task run unsandboxed runs as the daemon's user;
 * without this it could read the daemon's keys where Yama allows (ptrace_scope
 * 0, Debian's default). Cores of the daemon are still written when the
 * administrator sets fs.suid_dumpable = 2 (root-owned, see proc(5)). The flag
 * is per process, inherited by fork and reset by execve of an ordinary
 * program (so tasks are unaffected). 0, or -1 with err naming prctl and
 * its errno. */
int keys_process_guard(struct err *err);

#endif
