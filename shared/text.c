/* text.c: control characters in text that reaches terminals (see text.h). */
#include "shared/text.h"

#include <string.h>

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

/* utf8_len: the length of the valid UTF-8 sequence at p (n bytes left), 0
 * when none starts there: RFC 3629 section 4 (no overlong forms, no
 * surrogates, nothing past U+10FFFF). Kept here rather than utf8proc's so
 * that err.c, which every program links, needs no library. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    if (p[0] < 0x80)
        return 1;
    size_t len = p[0] >= 0xc2 && p[0] <= 0xdf ? 2 : p[0] >= 0xe0 && p[0] <= 0xef ? 3
                 : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : 0;
    if (len == 0 || len > n)
        return 0;
    /* the second byte's range narrows for E0, ED, F0, F4 (the table of RFC 3629) */
    unsigned lo = p[0] == 0xe0 ? 0xa0 : p[0] == 0xf0 ? 0x90 : 0x80;
    unsigned hi = p[0] == 0xed ? 0x9f : p[0] == 0xf4 ? 0x8f : 0xbf;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t k = 2; k < len; k++)
        if ((p[k] & 0xc0) != 0x80)
            return 0;
    return len;
}

char *text_utf8_repair(char *s)
{
    text_utf8_trim(s);
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t k = utf8_len((const unsigned char *)s + i, n - i);
        if (k > 0) {
            i += k;
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
