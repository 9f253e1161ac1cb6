/* wrk_egress.c: routes beyond the fabric, from /proc/net/route and /proc/net/ipv6_route. */
#include "worker/wrk_egress.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RTF_UP_ 0x0001u
#define RTF_GATEWAY_ 0x0002u
#define RTF_REJECT_ 0x0200u
#define RTF_CACHE_ 0x01000000u
#define RTF_LOCAL_ 0x80000000u

int wrk_egress_subnets_parse(const struct cfg_list *list, struct wrk_subnet *out, int *n,
                             struct err *err)
{
    *n = 0;
    for (int i = 0; i < list->n && i < CFG_LIST_MAX; i++) {
        const char *item = list->items[i];
        char addr[INET6_ADDRSTRLEN + 1];
        const char *slash = strchr(item, '/');
        size_t alen = slash ? (size_t)(slash - item) : strlen(item);
        if (alen == 0 || alen >= sizeof addr)
            return err_set(err, EINVAL, "fabric_subnets: '%.64s': expected ADDRESS/PREFIX", item);
        memcpy(addr, item, alen);
        addr[alen] = '\0';
        struct wrk_subnet *s = &out[*n];
        memset(s, 0, sizeof *s);
        s->family = strchr(addr, ':') ? AF_INET6 : AF_INET;
        int bits = s->family == AF_INET ? 32 : 128;
        if (inet_pton(s->family, addr, s->addr) != 1)
            return err_set(err, EINVAL, "fabric_subnets: '%.64s': not an IP address", item);
        s->prefix = bits;
        if (slash) {
            char *end;
            long p = strtol(slash + 1, &end, 10);
            if (slash[1] == '\0' || *end != '\0' || p < 0 || p > bits)
                return err_set(err, EINVAL, "fabric_subnets: '%.64s': prefix must be 0..%d", item, bits);
            s->prefix = (int)p;
        }
        for (int b = s->prefix; b < bits; b++)
            s->addr[b / 8] &= (uint8_t)~(0x80u >> (b % 8));
        (*n)++;
    }
    return 0;
}

/* within: prefix (addr, plen) of family lies inside subnet s. */
static bool within(int family, const uint8_t *addr, int plen, const struct wrk_subnet *s)
{
    if (family != s->family || plen < s->prefix)
        return false;
    for (int b = 0; b < s->prefix; b++) {
        uint8_t m = (uint8_t)(0x80u >> (b % 8));
        if ((addr[b / 8] & m) != (s->addr[b / 8] & m))
            return false;
    }
    return true;
}

static bool inside_any(int family, const uint8_t *addr, int plen, const struct wrk_subnet *s, int n)
{
    for (int i = 0; i < n; i++)
        if (within(family, addr, plen, &s[i]))
            return true;
    return false;
}

static void describe(char *why, size_t cap, int family, const uint8_t *dst, int plen,
                     const uint8_t *gw, bool has_gw, const char *dev)
{
    char d[INET6_ADDRSTRLEN], g[INET6_ADDRSTRLEN];
    inet_ntop(family, dst, d, sizeof d);
    inet_ntop(family, gw, g, sizeof g);
    char prefix[INET6_ADDRSTRLEN + 8];
    if (plen == 0)
        snprintf(prefix, sizeof prefix, "default");
    else
        snprintf(prefix, sizeof prefix, "%s/%d", d, plen);
    if (has_gw)
        snprintf(why, cap, "%s via %s dev %s", prefix, g, dev);
    else
        snprintf(why, cap, "%s dev %s", prefix, dev);
}

static bool hex_bytes(const char *hex, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return false;
        out[i] = (uint8_t)v;
    }
    return true;
}

static bool find4(const char *text, const struct wrk_subnet *s, int n, char *why, size_t cap)
{
    const char *line = strchr(text, '\n'); /* header */
    while (line && *++line) {
        char dev[32];
        unsigned dst, gw, flags, mask;
        int k = sscanf(line, "%31s %x %x %x %*d %*d %*d %x", dev, &dst, &gw, &flags, &mask);
        const char *next = strchr(line, '\n');
        if (k == 5 && (flags & RTF_UP_) && !(flags & RTF_REJECT_) && strcmp(dev, "lo") != 0) {
            /* the fields are the kernel's __be32 printed as a host integer */
            uint8_t a[4], g[4];
            memcpy(a, &dst, 4);
            memcpy(g, &gw, 4);
            int plen = __builtin_popcount(mask);
            if (!inside_any(AF_INET, a, plen, s, n)) {
                describe(why, cap, AF_INET, a, plen, g, (flags & RTF_GATEWAY_) != 0, dev);
                return true;
            }
        }
        line = next;
    }
    return false;
}

static bool find6(const char *text, const struct wrk_subnet *s, int n, char *why, size_t cap)
{
    for (const char *line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        char dst_hex[33], src_hex[33], gw_hex[33], dev[32];
        unsigned plen, slen, metric, ref, use, flags;
        if (sscanf(line, "%32s %x %32s %x %32s %x %x %x %x %31s", dst_hex, &plen, src_hex, &slen, gw_hex,
                   &metric, &ref, &use, &flags, dev) != 10)
            continue;
        uint8_t a[16], g[16];
        if (!hex_bytes(dst_hex, a, 16) || !hex_bytes(gw_hex, g, 16) || plen > 128)
            continue;
        if (!(flags & RTF_UP_) || (flags & (RTF_REJECT_ | RTF_LOCAL_ | RTF_CACHE_)) ||
            strcmp(dev, "lo") == 0)
            continue;
        if ((a[0] == 0xfe && (a[1] & 0xc0) == 0x80 && plen >= 10) || (a[0] == 0xff && plen >= 8))
            continue; /* link-local, multicast */
        if (!inside_any(AF_INET6, a, (int)plen, s, n)) {
            describe(why, cap, AF_INET6, a, (int)plen, g, (flags & RTF_GATEWAY_) != 0, dev);
            return true;
        }
    }
    return false;
}

bool wrk_egress_find(const char *route4, const char *route6, const struct wrk_subnet *subnets, int n,
                     char *why, size_t cap)
{
    if (cap)
        why[0] = '\0';
    return (route4 && find4(route4, subnets, n, why, cap)) ||
           (route6 && find6(route6, subnets, n, why, cap));
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return NULL;
    size_t cap = 8192, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0)
            break;
        if (len + 1 == cap) {
            char *b = cap < (64u << 20) ? realloc(buf, cap * 2) : NULL;
            if (b == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf)
        buf[len] = '\0';
    return buf;
}

bool wrk_egress_detect(const struct wrk_subnet *subnets, int n, char *why, size_t cap)
{
    char *r4 = slurp("/proc/net/route"), *r6 = slurp("/proc/net/ipv6_route");
    bool found = wrk_egress_find(r4, r6, subnets, n, why, cap);
    free(r4);
    free(r6);
    return found;
}
