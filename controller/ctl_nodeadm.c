/* ctl_nodeadm.c: ADMIN_NODE: drain, resume, remove (see ctl_nodeadm.h). */
#include "controller/ctl_nodeadm.h"

#include <errno.h>
#include <string.h>

#include "controller/ctl_audit.h"
#include "shared/log.h"
#include "shared/text.h"

int ctl_on_admin_node(struct ctl *ctl, const struct net_peer *peer, struct proto_msg *msg,
                      struct err *err)
{
    const json_t *b = msg->body;
    const char *op = json_string_value(json_object_get(b, "op"));
    const char *name = json_string_value(json_object_get(b, "name"));
    const char *reason = json_string_value(json_object_get(b, "reason"));
    bool drain = strcmp(op, "drain") == 0, resume = strcmp(op, "resume") == 0;
    if (!drain && !resume && strcmp(op, "remove") != 0)
        return err_set(err, EINVAL, "admin node: op '%s': expected drain, resume or remove", op);
    if (reason && !drain)
        return err_set(err, EINVAL, "admin node %s: reason: only a drain takes one", op);
    if (reason && text_has_controls(reason, strlen(reason)))
        return err_set(err, EINVAL, "admin node drain: reason: control characters are not allowed");
    int n = ctl_node_find(ctl, name);
    if (n < 0 || ctl->nodes[n].removed)
        return err_set(err, ENOENT, "admin node %s: no node '%.64s' (see moat nodes)", op, name);
    struct ctl_node *node = &ctl->nodes[n];
    if (drain) {
        node->drained = true;
        snprintf(node->reason, sizeof node->reason, "%s",
                 reason && reason[0] ? reason : "drained by an admin");
        if (node->state == NODE_STATE_UP)
            node->state = NODE_STATE_DRAINING;
    } else if (resume) {
        node->drained = false;
        node->reason[0] = '\0';
        node->launch_failures = 0;
        if (node->state == NODE_STATE_DRAINING)
            node->state = NODE_STATE_UP;
        ctl->need_sched = true;
    } else {
        if (node->state != NODE_STATE_DOWN || node->running > 0)
            return err_set(err, EBUSY, "admin node remove: node %s is %s%s; stop its worker first "
                           "(drain it to let its tasks end)", name, node_state_name(node->state),
                           node->running > 0 ? " with tasks" : "");
        for (uint32_t q = 0; q < ctl->nqueue; q++) { /* a bench task waits for this very node */
            const struct ctl_job *job = ctl->queue[q];
            for (int k = 0; job->spec.kind == JOB_KIND_BENCH && k < job->spec.nnodes; k++)
                if (strcmp(job->spec.nodes[k], name) == 0 && !job_state_is_terminal(job->state))
                    return err_set(err, EBUSY, "admin node remove: bench job %llu waits for node "
                                   "%s; cancel it first", (unsigned long long)job->id, name);
        }
        node->removed = true;
        node->drained = false;
        node->reason[0] = '\0';
        node->key[0] = '\0'; /* its key may register under another name now */
    }
    if (ctl_node_save(ctl, node, err) != 0)
        return -1;
    char object[80];
    snprintf(object, sizeof object, "node %s", name);
    char action[16];
    snprintf(action, sizeof action, "node.%s", op);
    if (ctl_audit_append(ctl, peer->key, action, object,
                         drain ? json_pack("{s:s}", "reason", node->reason) : NULL, err) != 0)
        return -1;
    log_info("ctl", "node %s: %s by %s%s%s", name, drain ? "drained" : resume ? "resumed" : "removed",
             peer->key[0] ? peer->key : "a local peer", drain ? ": " : "", drain ? node->reason : "");
    json_t *reply = ctl_node_json(node);
    if (reply == NULL)
        return err_set(err, ENOMEM, "admin node: out of memory");
    return ctl_out_reply(ctl, peer, msg->req_id, reply);
}
