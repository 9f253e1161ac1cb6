/* test_cli_idset.c: the CLI's set of JSONL ids (cli/cli_idset.c): new ids are
 * kept with their line, a repeat names the first line, "7" and 7 differ, and
 * the table keeps every id through its growth. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "cli/cli.h"

static int add(struct cli_idset *s, json_t *id, long line, long *first)
{
    int rc = cli_idset_add(s, id, line, first);
    json_decref(id);
    return rc;
}

static void repeat_names_the_first_line(void **state)
{
    (void)state;
    struct cli_idset s = {0};
    long first = 0;
    assert_int_equal(add(&s, json_string("x"), 1, &first), 0);
    assert_int_equal(add(&s, json_integer(7), 2, &first), 0);
    assert_int_equal(add(&s, json_string("7"), 3, &first), 0); /* not the integer 7 */
    assert_int_equal(add(&s, json_string("i:7"), 4, &first), 0); /* not its typed form either */
    assert_int_equal(add(&s, json_string(""), 5, &first), 0);
    assert_int_equal(add(&s, json_string("x"), 6, &first), 1);
    assert_int_equal(first, 1);
    assert_int_equal(add(&s, json_integer(7), 7, &first), 1);
    assert_int_equal(first, 2);
    assert_int_equal(add(&s, json_string(""), 8, &first), 1);
    assert_int_equal(first, 5);
    assert_int_equal(s.n, 5);
    cli_idset_free(&s);
    assert_null(s.slots);
}

static void every_id_survives_growth(void **state)
{
    (void)state;
    struct cli_idset s = {0};
    long first = 0;
    enum { N = 200000 };
    char buf[32];
    for (long i = 0; i < N; i++) {
        snprintf(buf, sizeof buf, "doc-%ld", i);
        assert_int_equal(add(&s, i % 2 ? json_string(buf) : json_integer(i), i + 1, &first), 0);
    }
    assert_int_equal(s.n, N);
    assert_true(s.cap >= N + N / 3 && (s.cap & (s.cap - 1)) == 0);
    for (long i = 0; i < N; i += 997) {
        snprintf(buf, sizeof buf, "doc-%ld", i);
        first = 0;
        assert_int_equal(add(&s, i % 2 ? json_string(buf) : json_integer(i), N + 1, &first), 1);
        assert_int_equal(first, i + 1);
    }
    /* the other type of each is new */
    assert_int_equal(add(&s, json_string("doc-0"), N + 2, &first), 0);
    assert_int_equal(add(&s, json_integer(1), N + 3, &first), 0);
    /* a line past 2^32 is kept, and said as "an earlier line" */
    assert_int_equal(add(&s, json_string("far"), 5000000000L, &first), 0);
    assert_int_equal(add(&s, json_string("far"), 5000000001L, &first), 1);
    assert_int_equal(first, -1);
    cli_idset_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(repeat_names_the_first_line),
        cmocka_unit_test(every_id_survives_growth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
