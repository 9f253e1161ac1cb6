/* text.c: control characters in text that reaches terminals (see text.h). */
#include "shared/text.h"

#include <string.h>

#include <utf8proc.h>

bool text_has_controls(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len; i++)
        if (p[i] < 0x20 || p[i] == 0x7f || (i + 1 < len && text_is_c1(p + i)))
            return true;
    return false;
}

bool text_has_c0(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len; i++)
        if (p[i] < 0x20 || p[i] == 0x7f)
            return true;
    return false;
}

char *text_utf8_trim(char *s)
{
    size_t n = strlen(s), i = n;
    /* back over continuation bytes (10xxxxxx) to the lead byte, at most 3 */
    while (i > 0 && n - i < 3 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
        i--;
    if (i == 0)
        return s;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t want = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
    if (lead >= 0xc2 && lead <= 0xf4 && n - (i - 1) < want) /* a lead byte whose sequence was cut */
        s[i - 1] = '\0';
    return s;
}

char *text_utf8_repair(char *s)
{
    text_utf8_trim(s);
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k =
            utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k > 0) {
            i += (size_t)k;
        } else {
            s[i] = '?';
            i++;
        }
    }
    return s;
}

char *text_blank_controls(char *s)
{
    for (unsigned char *p = (unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            *p = ' ';
        } else if (text_is_c1(p)) {
            p[0] = p[1] = ' ';
            p++;
        }
    }
    return s;
}
