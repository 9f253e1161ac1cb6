/* ctl_auth.h: who may talk to the controller: the allowlist of CURVE public keys
 * with their roles, the ZAP handler's decision, per-request authorisation, and
 * ADMIN_KEY.
 *
 * The allowlist is the config's entries (allowlist_file, allowlist) overlaid by
 * the records of STORE_DB_KEYS (`moat admin key add|revoke`), which win: a key
 * revoked there stays revoked though the config lists it, until it is added
 * again. Every new connection is checked by the ZAP handler (ctl_auth_zap_cb)
 * and every request by ctl_auth_check against the current allowlist, so a
 * revoked key loses access at once, connected or not. Refusals are recorded in
 * the audit log (at most one record per key per CTL_AUTH_REFUSE_EVERY seconds;
 * the next one counts those left out).
 * Thread-safety: the controller's event loop only.
 */
#ifndef MOAT_CTL_AUTH_H
#define MOAT_CTL_AUTH_H

#include <stdbool.h>

#include "controller/ctl_state.h"
#include "shared/keys.h"

#define CTL_AUTH_REFUSE_EVERY 10.0 /* s */

/* ctl_auth_create: the allowlist of cfg (reads cfg->allowlist_file unless "").
 * Caller frees with ctl_auth_destroy(). EINVAL "FILE:LINE: why" (a bad line; a
 * key listed again with another role: "FILE:LINE: key K: already listed at
 * line N as ROLE"), errno of the file. */
struct ctl_auth *ctl_auth_create(const struct ctl_cfg *cfg, struct err *err);
void ctl_auth_destroy(struct ctl_auth *auth);

/* ctl_auth_load: (re)apply STORE_DB_KEYS over the config's entries (at start and
 * after a failed batch). EPROTO names an unreadable record. */
int ctl_auth_load(struct ctl *ctl, struct err *err);

/* ctl_auth_refresh: re-read allowlist_file if it changed since it was read
 * (checked on every new connection and once per loop check), then re-apply the
 * keys database; a file that no longer parses is logged and the old list kept.
 * Each key the new file adds, drops or lists with another role or name gets an
 * audit record (actor "controller"; key.add, key.remove, key.change with
 * details {role, name, source: the file[, old_role, old_name]}) in a batch
 * that the event loop commits. Does nothing while a batch is open. */
void ctl_auth_refresh(struct ctl *ctl);

/* ctl_auth_warn_empty: log a warning when no key is allowed: then every
 * connection is refused, an admin's too, until allowlist_file lists one. */
void ctl_auth_warn_empty(const struct ctl *ctl);

/* ctl_auth_count: allowlisted keys not revoked. */
int ctl_auth_count(const struct ctl *ctl);

/* ctl_auth_key_live: key (Z85) is on the allowlist and not revoked (true for
 * every key when ctl->auth is NULL, as in unit tests). */
bool ctl_auth_key_live(const struct ctl *ctl, const char *key);

/* ctl_auth_is_admin: key is allowlisted, not revoked, with the admin role
 * (true for every key when ctl->auth is NULL, as in unit tests). */
bool ctl_auth_is_admin(const struct ctl *ctl, const char *key);

/* ctl_auth_refuse: log and audit (auth.refuse) that an allowlisted key was
 * refused object for reason (not a role's refusal: ctl_auth_check does those);
 * the same key and object at most once per CTL_AUTH_REFUSE_EVERY. */
void ctl_auth_refuse(struct ctl *ctl, const char *key, const char *object, const char *reason);

/* ctl_auth_zap_cb: net_zap_cb for net_zap_serve (arg: struct ctl *). Accepts a
 * key on the allowlist and not revoked; audits a refusal. */
int ctl_auth_zap_cb(const char *key, const char *address, void *arg);

/* ctl_auth_check: may peer (its key) send a message of type (body: its body,
 * or NULL when it could not be read; an "op" in it is named in the record)? 0 if so; -1 with
 * EACCES naming the reason (unknown or revoked key, or a role that may not send
 * type), after auditing the refusal, at most once per CTL_AUTH_REFUSE_EVERY
 * with a count of the suppressed ones: per key and request type for an
 * allowlisted key (each different attempt is recorded, a loop of one is not),
 * per key for an unknown or revoked one. With ctl->auth NULL (unit tests) all
 * pass. */
int ctl_auth_check(struct ctl *ctl, const struct net_peer *peer, enum proto_type type,
                   const json_t *body, struct err *err);

/* ctl_on_admin_key: ADMIN_KEY {op: add|revoke|list, key, role, name}. add and
 * revoke are stored and audited in the batch; list answers {keys: [{key, role,
 * name, state, source, time}]}. */
int ctl_on_admin_key(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg,
                     struct err *err);

#endif
