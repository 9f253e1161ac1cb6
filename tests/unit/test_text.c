/* test_text.c: control characters in text that reaches terminals
 * (shared/text.c): C0, DEL and C1 (U+0080..U+009F) are found and blanked;
 * other UTF-8 (é, U+00A0, CJK) is left alone; a lone 0xC2 at the end reads
 * nothing past it; a character cut at the end is dropped. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "shared/err.h"
#include "shared/jobspec.h"
#include "shared/keys.h"
#include "shared/text.h"

static bool has(const char *s) { return text_has_controls(s, strlen(s)); }

static void controls_are_found(void **state)
{
    (void)state;
    assert_false(has("plain name-1_2.x"));
    assert_false(has("caf\xc3\xa9 \xc2\xa0 \xe6\x97\xa5\xe6\x9c\xac")); /* é, NBSP, 日本 */
    assert_true(has("a\tb"));
    assert_true(has("\x1b[2J"));
    assert_true(has("del\x7f"));
    assert_true(has("csi\xc2\x9b" "2J")); /* U+009B */
    assert_true(has("\xc2\x80"));
    assert_false(has("\xc2")); /* a lone lead byte at the end: not a C1 */
    assert_false(text_has_controls("ab\xc2\x9b", 3)); /* the C1 is past len */
}

static void controls_are_blanked(void **state)
{
    (void)state;
    char s[] = "a\x1b]0;t\x07 caf\xc3\xa9 \xc2\x9b" "b\x7f\xc2";
    assert_string_equal(text_blank_controls(s), "a ]0;t  caf\xc3\xa9   b \xc2");
}

static void a_cut_character_is_dropped(void **state)
{
    (void)state;
    char a[] = "caf\xc3\xa9", b[] = "caf\xc3", c[] = "\xe6\x97\xa5\xe6\x97", d[] = "x\xf0\x9f\x98",
         e[] = "\xf0\x9f\x98\x80", f[] = "", g[] = "\x80\x80";
    assert_string_equal(text_utf8_trim(a), "caf\xc3\xa9"); /* whole: kept */
    assert_string_equal(text_utf8_trim(b), "caf");
    assert_string_equal(text_utf8_trim(c), "\xe6\x97\xa5");
    assert_string_equal(text_utf8_trim(d), "x");
    assert_string_equal(text_utf8_trim(e), "\xf0\x9f\x98\x80");
    assert_string_equal(text_utf8_trim(f), "");
    assert_string_equal(text_utf8_trim(g), "\x80\x80"); /* no lead byte: left as is */
}

/* Messages cut inside a character, at their end or inside (a "%.40s" of a
 * non-ASCII text), stay valid UTF-8: they go into JSON, which refuses
 * anything else (the reply or the record was lost). */
static void cut_messages_stay_utf8(void **state)
{
    (void)state;
    char a[] = "x\xc3 y\xe6\x97", b[] = "ok \xe6\x97\xa5", c[] = "\xff\xfe";
    assert_string_equal(text_utf8_repair(a), "x? y");
    assert_string_equal(text_utf8_repair(b), "ok \xe6\x97\xa5");
    assert_string_equal(text_utf8_repair(c), "??");
    /* RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF */
    char d[] = "\xc0\xaf.\xe0\x80\xaf.\xed\xa0\x80.\xf4\x90\x80\x80.\xf4\x8f\xbf\xbf.\xef\xbb\xbf";
    assert_string_equal(text_utf8_repair(d), "??.???.???.????.\xf4\x8f\xbf\xbf.\xef\xbb\xbf");
    struct err e = {0};
    err_set(&e, EINVAL, "env '%.4s': a newline", "XY=\xc3\xa9");  /* cut after the \xc3 */
    assert_string_equal(e.msg, "env 'XY=?': a newline");
    char head[600];
    memset(head, 'a', sizeof head);
    memcpy(head + 396, "\xc3\xa9", 2); /* a character across the prefix's cut */
    head[sizeof head - 1] = '\0';
    err_set(&e, EIO, "why");
    err_prefix(&e, "%s", head);
    assert_int_equal(strlen(e.msg), 399); /* 396 + ": " + the "w" of why that fits */
    assert_memory_equal(e.msg + 396, ": ", 2);
}

/* Records written before C1 was refused (a job's name, an allowlist name)
 * are read back with their C1 blanked, not turned away: a job of an older
 * version would become an unreadable placeholder, an allowlist would stop
 * the controller. C0 was always refused and still is. */
static void stored_names_with_c1_are_blanked_not_refused(void **state)
{
    (void)state;
    struct job_spec spec;
    struct err e = {0};
    json_t *o = json_loads("{\"kind\":\"exec\",\"argv\":[\"true\"],\"name\":\"x\\u0085y\"}", 0, NULL);
    assert_non_null(o);
    assert_int_equal(jobspec_from_json(&spec, o, &e), 0);
    assert_string_equal(spec.name, "x  y");
    jobspec_clear(&spec);
    json_decref(o);
    o = json_loads("{\"kind\":\"exec\",\"argv\":[\"true\"],\"name\":\"x\\u001by\"}", 0, NULL);
    assert_int_equal(jobspec_from_json(&spec, o, &e), -1);
    json_decref(o);
    struct keys_entry ke;
    assert_int_equal(keys_line_parse("client rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7 a\xc2\x9b" "b\n", &ke, &e), 1);
    assert_string_equal(ke.name, "a  b");
    assert_int_equal(keys_line_parse("client rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7 a\x1b" "b\n", &ke, &e), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(controls_are_found),
        cmocka_unit_test(controls_are_blanked),
        cmocka_unit_test(a_cut_character_is_dropped),
        cmocka_unit_test(stored_names_with_c1_are_blanked_not_refused),
        cmocka_unit_test(cut_messages_stay_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
