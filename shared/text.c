/* text.c: control characters in text that reaches terminals (see text.h). */
#include "shared/text.h"

bool text_has_controls(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len; i++)
        if (p[i] < 0x20 || p[i] == 0x7f || (p[i] == 0xc2 && i + 1 < len && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f))
            return true;
    return false;
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
