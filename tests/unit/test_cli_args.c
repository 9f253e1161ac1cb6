/* test_cli_args.c: the CLI's pure argument helpers in shared/client.c: submit
 * options -> job spec, job ids, MOAT_TIMEOUT. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "shared/client.h"
#include "shared/jobspec.h"

#define NOW 1700000000.0

static void spec_option_fills_each_field(void **state)
{
    (void)state;
    struct job_spec s;
    struct err e = {0};
    memset(&s, 0, sizeof s);
    assert_int_equal(client_spec_option(&s, "name", "nightly", NOW, &e), 0);
    assert_int_equal(client_spec_option(&s, "cpus", "4", NOW, &e), 0);
    assert_int_equal(client_spec_option(&s, "gpus", "2", NOW, &e), 0);
    assert_int_equal(client_spec_option(&s, "mem", "512M", NOW, &e), 0);
    assert_int_equal(client_spec_option(&s, "priority", "-7", NOW, &e), 0);
    assert_int_equal(client_spec_option(&s, "array", "1-100%5", NOW, &e), 0);
    assert_int_equal(client_spec_option(&s, "after", "3,4", NOW, &e), 0);
    assert_int_equal(client_spec_option(&s, "after", "9", NOW, &e), 0);
    assert_int_equal(client_spec_option(&s, "begin", "now+90s", NOW, &e), 0);
    assert_int_equal(client_spec_option(&s, "time-limit", "1h30m", NOW, &e), 0);
    assert_string_equal(s.name, "nightly");
    assert_int_equal(s.cpus, 4);
    assert_int_equal(s.gpus, 2);
    assert_int_equal(s.mem, 512ull << 20);
    assert_int_equal(s.priority, -7);
    assert_true(s.is_array);
    assert_int_equal(s.array_start, 1);
    assert_int_equal(s.array_end, 100);
    assert_int_equal(s.array_max, 5);
    assert_int_equal(s.nafter, 3);
    assert_int_equal(s.after[0], 3);
    assert_int_equal(s.after[2], 9);
    assert_true(s.begin == NOW + 90);
    assert_true(s.time_limit == 5400);
    jobspec_clear(&s);
}

/* Each bad value fails with EINVAL, names its option, and leaves the spec as it was. */
static void spec_option_rejects_bad_values_naming_the_option(void **state)
{
    (void)state;
    static const struct { const char *opt, *val; } bad[] = {
        {"cpus", "0"},          {"cpus", "x"},         {"cpus", "1e3"},   {"cpus", ""},
        {"cpus", "1000001"},    {"gpus", "-1"},        {"gpus", "1025"},  {"priority", "2000000"},
        {"mem", "x"},           {"mem", "12 parsecs"}, {"mem", "-1"},     {"array", "5-2"},
        {"array", "a-b"},       {"array", "1-2%0"},    {"array", "0-1000000"},
        {"after", "0"},         {"after", "x"},        {"after", "1,,2"}, {"after", "-3"},
        {"begin", "soonish"},   {"begin", "25:00"},    {"begin", "2024-13-01"},
        {"time-limit", "0"},    {"time-limit", "x"},   {"time-limit", "1 fortnight"},
        {"name", "tab\there"},  {"bogus", "1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct job_spec s;
        struct err e = {0};
        memset(&s, 0, sizeof s);
        s.cpus = 3;
        int rc = client_spec_option(&s, bad[i].opt, bad[i].val, NOW, &e);
        if (rc != -1)
            fail_msg("--%s '%s' was accepted", bad[i].opt, bad[i].val);
        assert_int_equal(e.code, EINVAL);
        char want[32];
        snprintf(want, sizeof want, "--%s", bad[i].opt);
        if (strstr(e.msg, want) == NULL)
            fail_msg("--%s '%s': message does not name the option: %s", bad[i].opt, bad[i].val, e.msg);
        assert_int_equal(s.cpus, 3);
        assert_false(s.is_array);
        assert_int_equal(s.nafter, 0);
        jobspec_clear(&s);
    }
}

static void spec_option_mem_message_quotes_the_value(void **state)
{
    (void)state;
    struct job_spec s;
    struct err e = {0};
    memset(&s, 0, sizeof s);
    assert_int_equal(client_spec_option(&s, "mem", "x", NOW, &e), -1);
    assert_non_null(strstr(e.msg, "--mem: size 'x'"));
    /* Slurm's --mem=512 means megabytes: a bare number is refused, not taken as bytes */
    assert_int_equal(client_spec_option(&s, "mem", "512", NOW, &e), -1);
    assert_non_null(strstr(e.msg, "--mem '512': give a unit"));
    assert_int_equal(client_spec_option(&s, "mem", "0.5", NOW, &e), -1);
    assert_int_equal(client_spec_option(&s, "mem", "512 KiB", NOW, &e), -1);
    assert_non_null(strstr(e.msg, "less than 1 MiB"));
    assert_int_equal(s.mem, 0);
    assert_int_equal(client_spec_option(&s, "mem", "0", NOW, &e), 0);
    assert_int_equal(s.mem, 0);
    assert_int_equal(client_spec_option(&s, "mem", "0.0", NOW, &e), 0);
    assert_int_equal(s.mem, 0);
    assert_int_equal(client_spec_option(&s, "mem", "1MiB", NOW, &e), 0);
    assert_int_equal(s.mem, 1u << 20);
}

static void spec_finish_validates_like_the_controller(void **state)
{
    (void)state;
    struct job_spec s;
    struct err e = {0};
    json_t *obj;
    memset(&s, 0, sizeof s);
    char *argv[] = {"echo", "{index}"};
    assert_int_equal(client_spec_option(&s, "array", "0-9", NOW, &e), 0);
    assert_int_equal(client_spec_finish(&s, 2, argv, &obj, &e), 0);
    struct job_spec back;
    assert_int_equal(jobspec_from_json(&back, obj, &e), 0);
    assert_int_equal(back.argc, 2);
    assert_string_equal(back.argv[1], "{index}");
    assert_int_equal(back.cpus, 1); /* default */
    assert_int_equal(jobspec_ntasks(&back), 10);
    assert_string_equal(json_string_value(json_object_get(obj, "kind")), "exec");
    jobspec_clear(&back);
    json_decref(obj);
    jobspec_clear(&s);
}

/* An infer spec's ndocs is the client's word: its batches are bounded as an
 * array's elements are (JOBSPEC_ARRAY_MAX), before the controller allocates them. */
static void infer_batches_are_bounded(void **state)
{
    (void)state;
    struct job_spec s;
    struct err e = {0};
    json_t *o = json_pack("{s:s, s:s, s:i, s:i}", "kind", "infer", "model", "m", "ndocs", 1000000,
                          "batch", 1);
    assert_int_equal(jobspec_from_json(&s, o, &e), 0); /* 1,000,000 batches: the bound itself */
    assert_int_equal(jobspec_ntasks(&s), 1000000);
    jobspec_clear(&s);
    json_object_set_new(o, "ndocs", json_integer(1000001));
    assert_int_equal(jobspec_from_json(&s, o, &e), -1);
    assert_non_null(strstr(e.msg, "ndocs 1000001 in batches of 1: more than 1000000 batches"));
    json_object_set_new(o, "batch", json_integer(2)); /* the same documents in larger batches */
    assert_int_equal(jobspec_from_json(&s, o, &e), 0);
    assert_int_equal(jobspec_ntasks(&s), 500001);
    jobspec_clear(&s);
    json_object_set_new(o, "ndocs", json_integer(100000000));
    json_object_set_new(o, "batch", json_integer(65536));
    assert_int_equal(jobspec_from_json(&s, o, &e), 0);
    assert_int_equal(jobspec_ntasks(&s), 1526);
    jobspec_clear(&s);
    json_decref(o);
}

/* Slurm's --array lists: index <-> offset both ways, the listing start, the
 * JSON round trip, the text form, and each refusal. */
static void array_lists_and_steps(void **state)
{
    (void)state;
    struct job_spec s;
    struct err e = {0};
    memset(&s, 0, sizeof s);
    assert_int_equal(jobspec_array_parse("30-32,0-15:4,20%2", &s, &e), 0);
    static const uint32_t want[] = {0, 4, 8, 12, 20, 30, 31, 32};
    assert_int_equal(jobspec_ntasks(&s), 8);
    assert_int_equal(s.array_start, 0);
    assert_int_equal(s.array_end, 32);
    assert_int_equal(s.array_max, 2);
    for (uint32_t off = 0; off < 8; off++) {
        assert_int_equal(jobspec_index(&s, off), want[off]);
        assert_int_equal(jobspec_offset(&s, want[off]), off);
    }
    assert_int_equal(jobspec_offset(&s, 5), -1);  /* between steps */
    assert_int_equal(jobspec_offset(&s, 16), -1); /* past 12, not 15 (the range's last is 12) */
    assert_int_equal(jobspec_offset(&s, 33), -1);
    assert_int_equal(jobspec_offset_from(&s, 0), 0);
    assert_int_equal(jobspec_offset_from(&s, 5), 2);  /* 8 */
    assert_int_equal(jobspec_offset_from(&s, 13), 4); /* 20 */
    assert_int_equal(jobspec_offset_from(&s, 31), 6);
    assert_int_equal(jobspec_offset_from(&s, 33), 8);
    char text[128];
    jobspec_array_format(&s, text, sizeof text);
    assert_string_equal(text, "0-12:4,20,30-32%2");

    /* through the spec's JSON and back, as the controller stores it */
    char *argv[] = {"echo", "{index}"};
    json_t *obj;
    assert_int_equal(client_spec_finish(&s, 2, argv, &obj, &e), 0);
    struct job_spec back;
    assert_int_equal(jobspec_from_json(&back, obj, &e), 0);
    assert_int_equal(jobspec_ntasks(&back), 8);
    for (uint32_t off = 0; off < 8; off++)
        assert_int_equal(jobspec_index(&back, off), want[off]);
    jobspec_clear(&back);
    /* a stored spec whose ranges were tampered with is refused */
    json_t *r0 = json_array_get(json_object_get(json_object_get(obj, "array"), "ranges"), 0);
    json_array_set_new(r0, 1, json_integer(13)); /* 0..13 step 4: 13 is not a member */
    assert_int_equal(jobspec_from_json(&back, obj, &e), -1);
    assert_non_null(strstr(e.msg, "ranges[0]"));
    json_decref(obj);
    jobspec_clear(&s);

    /* a plain range keeps no list; re-parsing replaces the old one */
    memset(&s, 0, sizeof s);
    assert_int_equal(jobspec_array_parse("1,3", &s, &e), 0);
    assert_non_null(s.array_ranges);
    assert_int_equal(jobspec_array_parse("5-9", &s, &e), 0);
    assert_null(s.array_ranges);
    assert_int_equal(jobspec_index(&s, 4), 9);
    jobspec_array_format(&s, text, sizeof text);
    assert_string_equal(text, "5-9");
    static const char *const bad[][2] = {
        {"1-3:0", "step"},
        {"1,", "expected"},   {"1-", "after '-'"},            {"1-5:", "step after"},
        {"3-1", "before"},    {"0-999999,1000000-1000001", "more than"}, {"1;2", "unexpected"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(jobspec_array_parse(bad[i][0], &s, &e), -1);
        if (strstr(e.msg, bad[i][1]) == NULL || strstr(e.msg, "--array") == NULL)
            fail_msg("'%s': %s", bad[i][0], e.msg);
        assert_int_equal(jobspec_ntasks(&s), 5); /* unchanged */
    }
    jobspec_clear(&s);

    /* a list is a set, as Slurm reads it: repeats, overlaps, single indices
     * off a range's steps; text as it is kept */
    static const char *const sets[][2] = {
        {"3,3,3", "3"},          {"3,4,5,9", "3-5,9"},       {"1-5,3-8", "1-8"},
        {"1-10:3,2", "1-2,4-10:3"}, {"5,5-20:5", "5-20:5"}, {"0-100:10,5,15,100", "0,5,10,15,20-100:10"},
        {"9,1-3,2", "1-3,9"},    {"10-20:5,15", "10-20:5"},
        {"0-10:2,1-9:2", "0-10"}, {"1-10:3,7-19:3", "1-19:3"}, {"1,50,51,52", "1,50-52"},
    };
    static const uint32_t counts[] = {1, 4, 8, 5, 4, 13, 4, 3, 11, 7, 4};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        memset(&s, 0, sizeof s);
        if (jobspec_array_parse(sets[i][0], &s, &e) != 0)
            fail_msg("'%s': %s", sets[i][0], e.msg);
        jobspec_array_format(&s, text, sizeof text);
        if (strcmp(text, sets[i][1]) != 0 || jobspec_ntasks(&s) != counts[i])
            fail_msg("'%s': '%s' with %u tasks", sets[i][0], text, jobspec_ntasks(&s));
        for (uint32_t off = 1; off < jobspec_ntasks(&s); off++) /* ascending, no repeats */
            assert_true(jobspec_index(&s, off) > jobspec_index(&s, off - 1));
        jobspec_clear(&s);
    }
}

/* --env: one value per NAME (the last wins), kept through the spec's JSON; bad
 * names, MOAT_*, newlines and the limits refused with spec unchanged. */
static void env_variables(void **state)
{
    (void)state;
    struct job_spec s;
    struct err e = {0};
    memset(&s, 0, sizeof s);
    assert_int_equal(client_spec_option(&s, "env", "DATA=/srv/x", NOW, &e), 0);
    assert_int_equal(client_spec_option(&s, "env", "MODE=a", NOW, &e), 0);
    assert_int_equal(client_spec_option(&s, "env", "MODE=b=c", NOW, &e), 0);
    assert_int_equal(client_spec_option(&s, "env", "_EMPTY=", NOW, &e), 0);
    assert_int_equal(s.nenv, 3);
    assert_string_equal(s.env[1], "MODE=b=c");
    static const char *const bad[][2] = {
        {"MODE", "NAME=VALUE"}, {"=x", "NAME=VALUE"}, {"9A=x", "NAME=VALUE"}, {"A-B=x", "letters"},
        {"MOAT_JOB_ID=3", "set by moat"}, {"A=x\ny", "newline"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(client_spec_option(&s, "env", bad[i][0], NOW, &e), -1);
        if (strstr(e.msg, bad[i][1]) == NULL || strncmp(e.msg, "--env '", 7) != 0)
            fail_msg("'%s': %s", bad[i][0], e.msg);
    }
    assert_int_equal(s.nenv, 3);
    char big[JOBSPEC_ENV_BYTES];
    memset(big, 'v', sizeof big - 1);
    big[0] = 'B';
    big[1] = '=';
    big[sizeof big - 1] = '\0';
    assert_int_equal(client_spec_option(&s, "env", big, NOW, &e), -1);
    assert_non_null(strstr(e.msg, "bytes"));
    char *argv[] = {"true"};
    json_t *obj;
    assert_int_equal(client_spec_finish(&s, 1, argv, &obj, &e), 0);
    struct job_spec back;
    assert_int_equal(jobspec_from_json(&back, obj, &e), 0);
    assert_int_equal(back.nenv, 3);
    assert_string_equal(back.env[0], "DATA=/srv/x");
    assert_string_equal(back.env[2], "_EMPTY=");
    jobspec_clear(&back);
    /* the controller refuses what the CLI would: a crafted MOAT_ name */
    json_array_append_new(json_object_get(obj, "env"), json_string("MOAT_NODE=x"));
    assert_int_equal(jobspec_from_json(&back, obj, &e), -1);
    assert_non_null(strstr(e.msg, "spec: env"));
    json_decref(obj);
    jobspec_clear(&s);
    for (int i = 0; i < JOBSPEC_ENV_MAX; i++) {
        char kv[32];
        snprintf(kv, sizeof kv, "V%d=1", i);
        assert_int_equal(jobspec_add_env(&s, kv, &e), 0);
    }
    assert_int_equal(jobspec_add_env(&s, "ONE_MORE=1", &e), -1);
    assert_int_equal(jobspec_add_env(&s, "V7=2", &e), 0); /* a replacement still fits */
    jobspec_clear(&s);
}

static void spec_finish_rejects_missing_or_empty_command(void **state)
{
    (void)state;
    struct job_spec s;
    struct err e = {0};
    json_t *obj = (json_t *)1;
    memset(&s, 0, sizeof s);
    assert_int_equal(client_spec_finish(&s, 0, NULL, &obj, &e), -1);
    assert_int_equal(e.code, EINVAL);
    assert_null(obj);
    char *empty[] = {""};
    assert_int_equal(client_spec_finish(&s, 1, empty, &obj, &e), -1);
    assert_non_null(strstr(e.msg, "command"));
    jobspec_clear(&s);
}

static void jobid_parse_accepts_only_positive_integers(void **state)
{
    (void)state;
    uint64_t id;
    struct err e = {0};
    assert_int_equal(client_jobid_parse("17", &id, &e), 0);
    assert_int_equal(id, 17);
    assert_int_equal(client_jobid_parse("9007199254740991", &id, &e), 0);
    static const char *const bad[] = {"0", "-1", "+1", " 1", "1 ", "1x", "", "9007199254740992",
                                      "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (client_jobid_parse(bad[i], &id, &e) != -1)
            fail_msg("job id '%s' was accepted", bad[i]);
        assert_int_equal(e.code, EINVAL);
    }
    assert_int_equal(client_jobid_parse(NULL, &id, &e), -1);
}

static void jobids_parse_lists_and_bounds(void **state)
{
    (void)state;
    uint64_t ids[4];
    int n = 0;
    struct err e = {0};
    assert_int_equal(client_jobids_parse("1,2", ids, &n, 4, &e), 0);
    assert_int_equal(client_jobids_parse("3", ids, &n, 4, &e), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ids[2], 3);
    assert_int_equal(client_jobids_parse("4,5", ids, &n, 4, &e), -1); /* over cap */
    assert_int_equal(n, 3);                                          /* unchanged */
    assert_int_equal(client_jobids_parse("4,", ids, &n, 4, &e), -1);
    assert_int_equal(n, 3);
}

static void timeout_parse_default_and_errors(void **state)
{
    (void)state;
    double t;
    struct err e = {0};
    assert_int_equal(client_timeout_parse(NULL, &t, &e), 0);
    assert_true(t == CLIENT_TIMEOUT_DEFAULT);
    assert_int_equal(client_timeout_parse("250ms", &t, &e), 0);
    assert_true(t == 0.25);
    assert_int_equal(client_timeout_parse("0", &t, &e), -1);
    assert_int_equal(client_timeout_parse("soon", &t, &e), -1);
    assert_non_null(strstr(e.msg, "MOAT_TIMEOUT"));
}

static void client_create_rejects_bad_endpoint(void **state)
{
    (void)state;
    struct err e = {0};
    assert_null(client_create("", &e));
    assert_int_equal(e.code, EINVAL);
    assert_null(client_create("nonsense", &e));
    client_destroy(NULL); /* no-op */
}

static void client_call_times_out_without_a_controller(void **state)
{
    (void)state;
    struct err e = {0};
    client_t *c = client_create("tcp://127.0.0.1:1", &e);
    assert_non_null(c);
    struct proto_msg reply;
    assert_int_equal(client_call(c, PROTO_TYPE_PING, NULL, 0.2, &reply, &e), -1);
    assert_int_equal(e.code, ETIMEDOUT);
    client_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spec_option_fills_each_field),
        cmocka_unit_test(spec_option_rejects_bad_values_naming_the_option),
        cmocka_unit_test(spec_option_mem_message_quotes_the_value),
        cmocka_unit_test(spec_finish_validates_like_the_controller),
        cmocka_unit_test(array_lists_and_steps),
        cmocka_unit_test(infer_batches_are_bounded),
        cmocka_unit_test(env_variables),
        cmocka_unit_test(spec_finish_rejects_missing_or_empty_command),
        cmocka_unit_test(jobid_parse_accepts_only_positive_integers),
        cmocka_unit_test(jobids_parse_lists_and_bounds),
        cmocka_unit_test(timeout_parse_default_and_errors),
        cmocka_unit_test(client_create_rejects_bad_endpoint),
        cmocka_unit_test(client_call_times_out_without_a_controller),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
