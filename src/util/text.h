/* text.h - making text from a guest (serial console, remote stderr) safe to
 * show: terminal escape sequences and control characters removed, one line
 * picked out. Pure functions, no I/O. */
#pragma once
#include <stddef.h>

/* Removes ANSI/VT escape sequences (CSI "ESC [ ... final", OSC/DCS "ESC ]
 * ... BEL|ESC \", and "ESC [intermediates] final" such as "ESC ( B"),
 * carriage returns, and every other control character except newline and
 * tab. Works in place on s[0..len); returns the new length and writes a NUL
 * there when the text got shorter. */
size_t text_sanitize(char *s, size_t len);

/* The last non-blank line of s[0..len) after text_sanitize rules, leading and
 * trailing blanks trimmed, copied (truncated) into out. "" when none. */
void text_last_line(const char *s, size_t len, char *out, size_t outlen);

/* The first line of s[0..len) containing needle (sanitized, trimmed) into
 * out; returns 1 when found, else 0 and out = "". */
int text_line_with(const char *s, size_t len, const char *needle, char *out, size_t outlen);
