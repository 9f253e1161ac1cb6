/* wrk_egress.h: the egress posture of a node: does its network namespace route
 * anywhere beyond the fabric?
 *
 * A route counts when it is up, not a reject (blackhole/unreachable/prohibit)
 * route, not on the loopback device, not a local, link-local (fe80::/10) or
 * multicast (ff00::/8) route, and its destination prefix lies outside every
 * configured fabric subnet (worker config fabric_subnets). A default route is
 * the plainest case. Sources: /proc/net/route (IPv4: hex fields in the kernel's
 * byte order) and /proc/net/ipv6_route (see proc(5) and
 * net/ipv4/fib_trie.c, net/ipv6/route.c for the formats).
 * Thread-safety: reentrant.
 */
#ifndef MOAT_WRK_EGRESS_H
#define MOAT_WRK_EGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/cfg.h"
#include "shared/err.h"

struct wrk_subnet {
    int family;         /* AF_INET or AF_INET6 */
    uint8_t addr[16];   /* network byte order; host bits cleared */
    int prefix;         /* bits */
};

/* wrk_egress_subnets_parse: "A.B.C.D/N" or "X:...:Y/N" items of list into
 * out[CFG_LIST_MAX]; *n gets the count. EINVAL naming the item. */
int wrk_egress_subnets_parse(const struct cfg_list *list, struct wrk_subnet *out, int *n,
                             struct err *err);

/* wrk_egress_find: true when the route tables (the text of /proc/net/route and
 * /proc/net/ipv6_route; either may be NULL) hold a route beyond the n subnets;
 * then why gets the first such route ("default via 192.0.2.1 dev eth0",
 * "10.1.0.0/16 dev eth1"). Lines that do not parse are skipped. */
bool wrk_egress_find(const char *route4, const char *route6, const struct wrk_subnet *subnets, int n,
                     char *why, size_t cap);

/* wrk_egress_detect: wrk_egress_find() on this process's /proc/net files. A
 * table that cannot be read counts as no route. */
bool wrk_egress_detect(const struct wrk_subnet *subnets, int n, char *why, size_t cap);

#endif
