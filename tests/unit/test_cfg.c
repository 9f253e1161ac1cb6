/* test_cfg.c: configuration files: shipped defaults, units, and one-line errors. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "controller/ctl_cfg.h"
#include "shared/cfg.h"
#include "shared/units.h"
#include "worker/wrk_cfg.h"

static char path[64];

static const char *write_conf(const char *text)
{
    snprintf(path, sizeof path, "/tmp/moat-test-cfg-%d.conf", (int)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* expect_load_error: loading text as the worker's (worker) or the controller's
 * config fails with an error that names the file, the line and needle. */
static void expect_load_error(bool worker, const char *text, const char *needle)
{
    struct ctl_cfg ccfg;
    struct wrk_cfg wcfg;
    struct err e = {0};
    const char *p = write_conf(text);
    assert_int_equal(worker ? wrk_cfg_load(p, &wcfg, &e) : ctl_cfg_load(p, &ccfg, &e), -1);
    char want[256];
    snprintf(want, sizeof want, "%s:%s", p, needle);
    if (strstr(e.msg, want) == NULL)
        fail_msg("error '%s' lacks '%s'", e.msg, want);
}

static void expect_error(const char *text, const char *needle) { expect_load_error(false, text, needle); }
static void expect_wrk_error(const char *text, const char *needle) { expect_load_error(true, text, needle); }

/* The shipped files document every key with its default: loading them must give
 * exactly the built-in defaults. */
static void shipped_conf_equals_defaults(void **state)
{
    (void)state;
    struct ctl_cfg a, b;
    struct err e = {0};
    assert_int_equal(ctl_cfg_load("conf/controller.conf", &a, &e), 0);
    assert_int_equal(ctl_cfg_load(NULL, &b, &e), 0);
    assert_memory_equal(&a, &b, sizeof a);
    struct wrk_cfg c, d;
    assert_int_equal(wrk_cfg_load("conf/worker.conf", &c, &e), 0);
    assert_int_equal(wrk_cfg_load(NULL, &d, &e), 0);
    assert_memory_equal(&c, &d, sizeof c);
    assert_true(a.heartbeat_interval == 1.0);
    assert_true(a.output_cap == 1048576);
}

static void values_with_units(void **state)
{
    (void)state;
    struct ctl_cfg cfg;
    struct err e = {0};
    const char *p = write_conf("heartbeat_interval = \"250 ms\";\nstore_map_size = \"2 GiB\";\n"
                               "output_cap = \"4 KiB\";\nlisten = \"tcp://127.0.0.1:1\";\n");
    assert_int_equal(ctl_cfg_load(p, &cfg, &e), 0);
    assert_true(cfg.heartbeat_interval == 0.25);
    assert_true(cfg.store_map_size == 2ull << 30);
    assert_true(cfg.output_cap == 4096);
    assert_int_equal(cfg.listen.n, 1);
    assert_string_equal(cfg.listen.items[0], "tcp://127.0.0.1:1");
}

static void bad_files_name_line_and_key(void **state)
{
    (void)state;
    expect_error("log_level = \"info\";\nbogus = 1;\n", "2: bogus: unknown key");
    /* text a generated file copied (after CFG_FROM_MARK) is named by that file's line;
     * a comment of the user's that starts "# from" is no such mark */
    struct ctl_cfg gen;
    struct err ge = {0};
    const char *gp = write_conf("log_level = \"info\";\n\n" CFG_FROM_MARK "/srv/x.extra.conf\n"
                               "store_map_size = \"1 GiB\";\nnope = 1;\n");
    assert_int_equal(ctl_cfg_load(gp, &gen, &ge), -1);
    assert_string_equal(ge.msg, "/srv/x.extra.conf:2: nope: unknown key");
    gp = write_conf(CFG_FROM_MARK "/srv/y.extra.conf\nlog_level = = 1;\n"); /* a syntax error */
    assert_int_equal(ctl_cfg_load(gp, &gen, &ge), -1);
    assert_non_null(strstr(ge.msg, "/srv/y.extra.conf:1: "));
    expect_error("# from the old cluster, kept\ncpus = 1;\n", "2: cpus: unknown key");
    expect_error("\n\nheartbeat_interval = 5;\n", "3: heartbeat_interval: expected a string with a unit");
    expect_error("heartbeat_interval = \"5 parsecs\";\n", "1: heartbeat_interval: duration '5 parsecs': unknown unit");
    expect_error("store_map_size = \"lots\";\n", "1: store_map_size: size 'lots'");
    expect_error("max_attempts = 0;\n", "1: max_attempts: 0 is out of range");
    expect_error("max_attempts = \"3\";\n", "1: max_attempts: expected an integer");
    expect_error("listen = [1, 2];\n", "1: listen: item 0: expected a string");
    expect_error("log_level = \"info\";\nmax_attempts = = 3;\n", "2: syntax error");
    struct ctl_cfg cfg;
    struct err e = {0};
    assert_int_equal(ctl_cfg_load("/nonexistent/moat.conf", &cfg, &e), -1);
    assert_int_equal(e.code, ENOENT);
    assert_non_null(strstr(e.msg, "/nonexistent/moat.conf"));
    const char *p = write_conf("log_level = \"loud\";\n");
    assert_int_equal(ctl_cfg_load(p, &cfg, &e), -1);
    assert_non_null(strstr(e.msg, "log_level"));
    struct wrk_cfg w;
    p = write_conf("name = \"bad name!\";\n");
    assert_int_equal(wrk_cfg_load(p, &w, &e), -1);
    assert_non_null(strstr(e.msg, "name"));
}

/* Checks made after the file is read (a value no table check covers, one key
 * against another) name the line that set the key, in the file the user
 * edits; a cross-key error names the key the file set. */
static void later_checks_name_the_line(void **state)
{
    (void)state;
    expect_error("\n\nlog_level = \"verbose\";\n", "3: log_level: expected debug");
    expect_error("egress_policy = \"maybe\";\n", "1: egress_policy: expected");
    expect_error("\noutput_cap = \"100 MiB\";\n", "2: output_cap: 2 x output_cap + 64 KiB must fit");
    expect_error("output_cap = \"100 MiB\";\nmax_message = \"1 MiB\";\n", "2: max_message: must be at least");
    expect_error("\nstore_map_size = \"1 TiB\";\n", "2: store_map_size: larger than store_map_max");
    expect_error("store_map_max = \"2 MiB\";\n", "1: store_map_max: smaller than store_map_size");
    expect_wrk_error("\nexec_sandbox = \"maybe\";\n", "2: exec_sandbox: expected");
    /* through a generated file's mark: the extra file and its line */
    struct ctl_cfg gen;
    struct err ge = {0};
    const char *gp = write_conf("listen = [\"tcp://127.0.0.1:1\"];\n" CFG_FROM_MARK "/srv/x.extra.conf\n"
                                "\nlog_level = \"verbose\";\n");
    assert_int_equal(ctl_cfg_load(gp, &gen, &ge), -1);
    assert_string_equal(ge.msg, "/srv/x.extra.conf:2: log_level: expected debug, info, warn or error");
    /* a default that no line set: the file */
    struct err de = {0};
    char where[64];
    assert_false(cfg_where(gp, "output_cap", where, sizeof where));
    assert_string_equal(where, gp);
    assert_int_equal(cfg_key_error(&de, NULL, "k", "v %d", 1), -1);
    assert_string_equal(de.msg, "defaults: k: v 1");
}

/* libconfig 1.5 keeps the low 32 bits of an integer without L: the value
 * written is what counts, in range checks and in their messages. */
static void integers_are_read_as_written(void **state)
{
    (void)state;
    expect_error("heartbeat_tolerance = 4294967299;\n", "1: heartbeat_tolerance: 4294967299 is out of range [1, 1000]");
    expect_error("\nmax_attempts = 4294967297;\n", "2: max_attempts: 4294967297 is out of range");
    expect_error("heartbeat_tolerance = 99999999999;\n", "1: heartbeat_tolerance: 99999999999 is out of range");
    expect_error("max_attempts=4294967299L;\n", "1: max_attempts: 4294967299L is out of range");
    expect_error("max_attempts = 99999999999999999999;\n", "1: max_attempts: 99999999999999999999 is out of range");
    expect_wrk_error("mem = 17179869184;\n", "1: mem: give a unit, e.g. \"8 GiB\"");
    expect_wrk_error("mem = 6442450944;\n", "1: mem: give a unit, e.g. \"8 GiB\"");
    expect_wrk_error("cpus = 4294967297;\n", "1: cpus: 4294967297 is out of range");
    struct ctl_cfg cfg;
    struct err e = {0};
    /* comments and strings that look like settings are not read as them */
    const char *p = write_conf("# max_attempts = 99999999999;\nlog_level = \"info\"; /* max_attempts = 9 */\n"
                               "egress_policy = \"warn\"; // max_attempts = 4294967299\n"
                               "max_attempts = 7; heartbeat_tolerance : 0x10;\ndrain_after_launch_failures = 5L;\n");
    if (ctl_cfg_load(p, &cfg, &e) != 0)
        fail_msg("%s", e.msg);
    assert_int_equal(cfg.max_attempts, 7);
    assert_int_equal(cfg.heartbeat_tolerance, 16);
    assert_int_equal(cfg.drain_after_launch_failures, 5);
    struct wrk_cfg w;
    p = write_conf("gpus = -1;\nmem = 0;\nexec_mem_limit = \"0\";\ncpus = 4;\n");
    if (wrk_cfg_load(p, &w, &e) != 0)
        fail_msg("%s", e.msg);
    assert_int_equal(w.gpus, -1);
    assert_int_equal(w.cpus, 4);
    assert_true(w.mem == 0 && w.exec_mem_limit == 0);
}

/* Sizes and durations say their unit, as on the command line: is 4096 bytes
 * or Slurm's megabytes? Zero and HH:MM:SS need none. */
static void sizes_and_durations_need_a_unit(void **state)
{
    (void)state;
    expect_wrk_error("mem = 4096;\n", "1: mem: give a unit, e.g. \"8 GiB\"");
    expect_wrk_error("\nexec_tmp_size = \"1048576\";\n", "2: exec_tmp_size: give a unit, e.g. \"8 GiB\"");
    expect_error("output_cap = \"4096\";\n", "1: output_cap: give a unit, e.g. \"8 GiB\"");
    expect_error("heartbeat_interval = \"5\";\n", "1: heartbeat_interval: give a unit, e.g. \"30 s\"");
    expect_error("heartbeat_interval = 5;\n", "1: heartbeat_interval: expected a string with a unit");
    expect_error("kill_grace = \"-1 s\";\n", "1: kill_grace: duration '-1 s': must not be negative");
    expect_error("output_cap = \"-1 KiB\";\n", "1: output_cap: size '-1 KiB': must not be negative");
    struct ctl_cfg cfg;
    struct err e = {0};
    const char *p = write_conf("kill_grace = \"0\";\ninactive_age = \"01:30\";\noutput_cap = 0;\n");
    if (ctl_cfg_load(p, &cfg, &e) != 0)
        fail_msg("%s", e.msg);
    assert_true(cfg.kill_grace == 0 && cfg.inactive_age == 90 && cfg.output_cap == 0);
}

/* libzmq reads a port modulo 65536 (99999 binds 34463): endpoints are checked. */
static void endpoints_are_checked(void **state)
{
    (void)state;
    expect_error("listen = [ \"tcp://127.0.0.1:99999\" ];\n",
                 "1: listen: 'tcp://127.0.0.1:99999': port out of range 1-65535");
    expect_error("listen = [ \"tcp://127.0.0.1:7700\", \"tcp://127.0.0.1:0\" ];\n",
                 "1: listen: 'tcp://127.0.0.1:0': port out of range 1-65535");
    expect_error("listen = \"tcp://127.0.0.1:http\";\n", "1: listen: 'tcp://127.0.0.1:http': port 'http' is not a number");
    expect_error("listen = \"tcp://127.0.0.1\";\n", "1: listen: 'tcp://127.0.0.1': expected tcp://HOST:PORT");
    expect_error("listen = \"bogus://x\";\n", "1: listen: 'bogus://x': expected tcp://HOST:PORT or ipc://PATH");
    expect_wrk_error("controller = \"tcp://127.0.0.1:70000\";\n",
                     "1: controller: 'tcp://127.0.0.1:70000': port out of range 1-65535");
    expect_wrk_error("controller = \"tcp://*:7700\";\n", "1: controller: 'tcp://*:7700': '*' is for listening");
    expect_wrk_error("controller = \"tcp://127.0.0.1:*\";\n", "1: controller: 'tcp://127.0.0.1:*': port '*' is not a number");
    struct ctl_cfg cfg;
    struct err e = {0};
    const char *p = write_conf("listen = [ \"tcp://127.0.0.1:*\", \"tcp://*:7700\", \"tcp://[::1]:65535\", "
                               "\"ipc:///tmp/moat.sock\" ];\n");
    if (ctl_cfg_load(p, &cfg, &e) != 0)
        fail_msg("%s", e.msg);
    assert_int_equal(cfg.listen.n, 4);
    struct wrk_cfg w;
    p = write_conf("controller = \"tcp://ctl.example:1\";\n");
    if (wrk_cfg_load(p, &w, &e) != 0)
        fail_msg("%s", e.msg);
}

/* Messages name the line, the key and what is wrong with it. */
static void messages_say_what_is_wrong(void **state)
{
    (void)state;
    expect_wrk_error("\ncomm_ports = \"27503-27501\";\n",
                     "2: comm_ports: '27503-27501': MIN 27503 is greater than MAX 27501");
    expect_wrk_error("comm_ports = \"0-10\";\n", "1: comm_ports: '0-10': ports are 1-65535");
    expect_wrk_error("comm_ports = \"29500\";\n", "1: comm_ports: '29500': expected \"MIN-MAX\"");
    expect_wrk_error("state_dir = \"\";\n", "1: state_dir: empty");
    expect_error("\nstate_dir = \"\";\n", "2: state_dir: empty");
}

static void units(void **state)
{
    (void)state;
    uint64_t b;
    double d;
    struct err e = {0};
    assert_int_equal(units_size_parse("64 GiB", &b, &e), 0);
    assert_true(b == 64ull << 30);
    assert_int_equal(units_size_parse("512M", &b, &e), 0);
    assert_true(b == 512ull << 20);
    assert_int_equal(units_size_parse("1.5KB", &b, &e), 0);
    assert_true(b == 1500);
    assert_int_equal(units_size_parse("-1", &b, &e), -1);
    assert_non_null(strstr(e.msg, "must not be negative"));
    assert_int_equal(units_duration_parse("-1 s", &d, &e), -1);
    assert_non_null(strstr(e.msg, "must not be negative"));
    assert_int_equal(units_size_parse("12 bananas", &b, &e), -1);
    assert_int_equal(units_duration_parse("1h30m", &d, &e), 0);
    assert_true(d == 5400);
    assert_int_equal(units_duration_parse("250ms", &d, &e), 0);
    assert_true(d == 0.25);
    assert_int_equal(units_duration_parse("1-02:00:00", &d, &e), 0);
    assert_true(d == 93600);
    assert_int_equal(units_duration_parse("05:30", &d, &e), 0);
    assert_true(d == 330);
    assert_int_equal(units_duration_parse("10", &d, &e), 0);
    assert_true(d == 10);
    assert_int_equal(units_duration_parse("1hour", &d, &e), 0); /* Slurm's now+1hour */
    assert_true(d == 3600);
    assert_int_equal(units_duration_parse("2 weeks 1 minute", &d, &e), 0);
    assert_true(d == 14 * 86400 + 60);
    assert_int_equal(units_duration_parse("1 fortnight", &d, &e), -1);
    assert_int_equal(units_duration_parse("5 3", &d, &e), -1);
    double now = 1800000000.0; /* 2027-01-15T08:00:00Z */
    assert_int_equal(units_begin_parse("now+90s", now, &d, &e), 0);
    assert_true(d == now + 90);
    assert_int_equal(units_begin_parse("2027-01-15T09:00:00Z", now, &d, &e), 0);
    assert_true(d == now + 3600);
    assert_int_equal(units_begin_parse("HH:MM", now, &d, &e), -1);
    assert_int_equal(units_begin_parse("2027-13-01", now, &d, &e), -1);
    /* what strtod and mktime would quietly turn into something else is refused */
    assert_int_equal(units_size_parse("0x10G", &b, &e), -1);
    assert_int_equal(units_duration_parse("0x10s", &d, &e), -1);
    assert_int_equal(units_duration_parse("inf", &d, &e), -1);
    assert_int_equal(units_duration_parse("1:99:00", &d, &e), -1);
    assert_int_equal(units_duration_parse("0:0:61", &d, &e), -1);
    assert_int_equal(units_duration_parse("1-25:00:00", &d, &e), -1);
    assert_int_equal(units_duration_parse("36:00:00", &d, &e), 0); /* hours may run on */
    assert_true(d == 129600);
    assert_int_equal(units_begin_parse("2024-02-30", now, &d, &e), -1);
    assert_non_null(strstr(e.msg, "no day 30"));
    assert_int_equal(units_begin_parse("2024-04-31T10:00Z", now, &d, &e), -1);
    assert_int_equal(units_begin_parse("2024-02-29T10:00Z", now, &d, &e), 0); /* a leap year */
    /* HH:MM means the next such local time: within a day, strictly later */
    assert_int_equal(units_begin_parse("03:00", now, &d, &e), 0);
    assert_true(d > now && d <= now + 86400 + 3600);
    /* sbatch's words, the next such local time: here in UTC, at 08:00 */
    char *tz = getenv("TZ") ? strdup(getenv("TZ")) : NULL;
    setenv("TZ", "UTC", 1);
    tzset();
    static const struct { const char *word; double after; } words[] = {
        {"today", 0}, {"noon", 4 * 3600}, {"fika", 7 * 3600}, {"TeaTime", 8 * 3600},
        {"midnight", 16 * 3600}, {"tomorrow", 16 * 3600}};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++) {
        assert_int_equal(units_begin_parse(words[i].word, now, &d, &e), 0);
        assert_true(d == now + words[i].after);
    }
    assert_int_equal(units_begin_parse("tomorrowish", now, &d, &e), -1);
    assert_non_null(strstr(e.msg, "teatime"));
    if (tz)
        setenv("TZ", tz, 1);
    else
        unsetenv("TZ");
    tzset();
    free(tz);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shipped_conf_equals_defaults),
        cmocka_unit_test(values_with_units),
        cmocka_unit_test(bad_files_name_line_and_key),
        cmocka_unit_test(later_checks_name_the_line),
        cmocka_unit_test(integers_are_read_as_written),
        cmocka_unit_test(sizes_and_durations_need_a_unit),
        cmocka_unit_test(endpoints_are_checked),
        cmocka_unit_test(messages_say_what_is_wrong),
        cmocka_unit_test(units),
    };
    int rc = cmocka_run_group_tests_name("cfg", tests, NULL, NULL);
    unlink(path);
    return rc;
}
