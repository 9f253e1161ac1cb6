/* test_egress.c: routes beyond the fabric, from /proc/net/route and ipv6_route text. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "worker/wrk_egress.h"

#define HDR4 "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
/* default via 192.0.2.1 dev eth0; 192.0.2.0/24 dev eth0 (fields as the kernel prints them) */
#define DEFAULT4 "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
#define LINK4 "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
#define LO6 "00000000000000000000000000000001 80 00000000000000000000000000000000 00 " \
            "00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo\n"
#define LL6 "fe800000000000000000000000000000 40 00000000000000000000000000000000 00 " \
            "00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0\n"
#define REJ6 "00000000000000000000000000000000 00 00000000000000000000000000000000 00 " \
             "00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n"
#define DEF6 "00000000000000000000000000000000 00 00000000000000000000000000000000 00 " \
             "fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0\n"

static int subnets(const char *const *items, int n, struct wrk_subnet *out)
{
    struct cfg_list l = {0};
    for (int i = 0; i < n; i++)
        strcpy(l.items[l.n++], items[i]);
    int count;
    struct err e = {0};
    assert_int_equal(wrk_egress_subnets_parse(&l, out, &count, &e), 0);
    return count;
}

static void default_route_counts_and_is_named(void **state)
{
    (void)state;
    struct wrk_subnet s[CFG_LIST_MAX];
    const char *lo[] = {"127.0.0.0/8", "::1/128"};
    int n = subnets(lo, 2, s);
    char why[128];
    assert_true(wrk_egress_find(HDR4 DEFAULT4, NULL, s, n, why, sizeof why));
    assert_string_equal(why, "default via 192.0.2.1 dev eth0");
    assert_true(wrk_egress_find(HDR4 LINK4, NULL, s, n, why, sizeof why));
    assert_string_equal(why, "192.0.2.0/24 dev eth0");
    assert_true(wrk_egress_find(HDR4, DEF6, s, n, why, sizeof why));
    assert_string_equal(why, "default via fd00::1 dev eth0");
}

static void fabric_loopback_local_and_reject_routes_do_not(void **state)
{
    (void)state;
    struct wrk_subnet s[CFG_LIST_MAX];
    const char *fabric[] = {"192.0.2.0/24"};
    int n = subnets(fabric, 1, s);
    char why[128];
    assert_false(wrk_egress_find(HDR4 LINK4, LO6 LL6 REJ6, s, n, why, sizeof why));
    assert_true(wrk_egress_find(HDR4 LINK4 DEFAULT4, NULL, s, n, why, sizeof why));
    const char *all[] = {"0.0.0.0/0", "::/0"};
    n = subnets(all, 2, s);
    assert_false(wrk_egress_find(HDR4 DEFAULT4 LINK4, DEF6, s, n, why, sizeof why));
    assert_false(wrk_egress_find("", "", s, n, why, sizeof why));
    assert_false(wrk_egress_find("garbage\nmore garbage", "x y z", s, n, why, sizeof why));
}

static void bad_subnets_are_named(void **state)
{
    (void)state;
    const char *bad[] = {"10.0.0.0/33", "nonsense/8", "/8", "fd00::/129", "10.0.0.0/x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct cfg_list l = {.n = 1};
        strcpy(l.items[0], bad[i]);
        struct wrk_subnet s[CFG_LIST_MAX];
        int n;
        struct err e = {0};
        assert_int_equal(wrk_egress_subnets_parse(&l, s, &n, &e), -1);
        assert_int_equal(e.code, EINVAL);
        assert_non_null(strstr(e.msg, "fabric_subnets"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(default_route_counts_and_is_named),
        cmocka_unit_test(fabric_loopback_local_and_reject_routes_do_not),
        cmocka_unit_test(bad_subnets_are_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
