/* test_log.c: one log line per call, whatever the message holds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "shared/log.h"

/* logged: what one log_info of text wrote on stderr, without its timestamp. */
static char *logged(const char *text)
{
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
    log_info("test", "peer said: %s", text);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    static char buf[4096];
    rewind(tmp);
    size_t n = fread(buf, 1, sizeof buf - 1, tmp);
    fclose(tmp);
    buf[n] = '\0';
    char *msg = strstr(buf, " info test: ");
    assert_non_null(msg);
    return msg + strlen(" info test: ");
}

static void control_characters_cannot_forge_a_line(void **state)
{
    (void)state;
    assert_string_equal(logged("plain text, é and 日本"), "peer said: plain text, é and 日本\n");
    assert_string_equal(logged("x\n2026-11-30T23:55:11.601Z info ctl: FORGED"),
                        "peer said: x\\x0a2026-11-30T23:55:11.601Z info ctl: FORGED\n");
    assert_string_equal(logged("a\rb\x1b[31mred\x7f"), "peer said: a\\x0db\\x1b[31mred\\x7f\n");
    assert_string_equal(logged("csi \xc2\x9b" "2J end"), "peer said: csi \\x9b2J end\n"); /* U+009B */
    /* a message as long as the line: cut, and still one line */
    char big[5000];
    memset(big, '\n', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    const char *out = logged(big);
    assert_int_equal(strchr(out, '\n') - out, strlen(out) - 1);
    assert_true(strlen(out) > 1500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(control_characters_cannot_forge_a_line)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
