/* test_text.c: control characters in text that reaches terminals
 * (shared/text.c): C0, DEL and C1 (U+0080..U+009F) are found and blanked;
 * other UTF-8 (é, U+00A0, CJK) is left alone; a lone 0xC2 at the end reads
 * nothing past it; a character cut at the end is dropped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(controls_are_found),
        cmocka_unit_test(controls_are_blanked),
        cmocka_unit_test(a_cut_character_is_dropped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
