/* text.h: text that others wrote and a terminal will show: job names, node
 * reasons, allowlist names, commands, documents.
 *
 * A control character is a C0 byte (0x00..0x1F), DEL (0x7F) or a C1 control
 * (U+0080..U+009F, UTF-8 C2 80..C2 9F): ECMA-48 (ISO 6429) gives them and the
 * escape sequences they start their meaning on a terminal (move the cursor,
 * clear the screen, set its title), so names and reasons given refuse them,
 * records read back blank the C1 ones (older versions let them in), and
 * output blanks them.
 */
#ifndef MOAT_TEXT_H
#define MOAT_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* text_has_controls: whether s[0..len) holds a control character (above). */
bool text_has_controls(const char *s, size_t len);

/* text_has_c0: whether s[0..len) holds a C0 byte or DEL (not C1): what names
 * stored before C1 was refused never held, so records read back may be
 * checked with it (and their C1 blanked) without turning old ones away. */
bool text_has_c0(const char *s, size_t len);

/* text_blank_controls: replace each control character of s (NUL-terminated,
 * changed in place; a C1 control's two bytes) by spaces. Returns s. */
char *text_blank_controls(char *s);

/* text_utf8_trim: s (NUL-terminated) cut where a UTF-8 character is whole:
 * a last character a bounded snprintf cut short is dropped, so that the text
 * stays valid UTF-8 (a JSON string: jansson refuses anything else). Returns s. */
char *text_utf8_trim(char *s);

/* text_utf8_repair: s (NUL-terminated) made valid UTF-8 in place: a last
 * character cut short is dropped (text_utf8_trim) and every other byte that
 * starts no valid sequence (a character cut inside a message, "%.40s" of a
 * non-ASCII text) becomes '?'. Returns s. Valid: RFC 3629 section 4. */
char *text_utf8_repair(char *s);

/* text_is_c1: whether p (at least one byte before the NUL) starts a C1
 * control's UTF-8 encoding (C2 80..C2 9F). */
static inline bool text_is_c1(const unsigned char *p)
{
    return p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f;
}

#endif
