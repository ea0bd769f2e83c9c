/* text.c - see text.h. A small state machine over bytes: escape sequences
 * are recognised by their ECMA-48 shape, so a truncated sequence at the end
 * of a buffer is dropped rather than shown half. */
#include "util/text.h"

#include <stdbool.h>
#include <string.h>

enum { ESC = 0x1b, BEL = 0x07 };

/* Length of the escape sequence starting at s[i] (s[i] == ESC), at most the
 * rest of the buffer. */
static size_t escape_len(const char *s, size_t i, size_t len)
{
	if (i + 1 >= len)
		return len - i;
	unsigned char k = (unsigned char)s[i + 1];
	size_t j = i + 2;
	if (k == '[') {  /* CSI: parameters and intermediates, then a final byte */
		while (j < len && ((unsigned char)s[j] < 0x40 || (unsigned char)s[j] > 0x7e))
			j++;
		return (j < len ? j + 1 : len) - i;
	}
	if (k == ']' || k == 'P' || k == '_' || k == '^') {  /* OSC/DCS/APC/PM: to BEL or ST */
		while (j < len && s[j] != BEL && !(s[j] == ESC && j + 1 < len && s[j + 1] == '\\'))
			j++;
		if (j >= len)
			return len - i;
		return (s[j] == BEL ? j + 1 : j + 2) - i;
	}
	/* nF/Fp/Fe/Fs: intermediates 0x20-0x2f, then one final byte ("ESC ( B"). */
	j = i + 1;
	while (j < len && (unsigned char)s[j] >= 0x20 && (unsigned char)s[j] <= 0x2f)
		j++;
	return (j < len ? j + 1 : len) - i;
}

size_t text_sanitize(char *s, size_t len)
{
	size_t o = 0;
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)s[i];
		if (c == ESC) {
			i += escape_len(s, i, len);
			continue;
		}
		i++;
		if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
			continue;
		s[o++] = (char)c;
	}
	if (o < len)
		s[o] = '\0';
	return o;
}

static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Copies s[a..b) into out (trimmed, sanitized, truncated). */
static void copy_line(const char *s, size_t a, size_t b, char *out, size_t outlen)
{
	if (!outlen)
		return;
	size_t n = 0;
	for (size_t i = a; i < b && n + 1 < outlen;) {
		unsigned char c = (unsigned char)s[i];
		if (c == ESC) {
			i += escape_len(s, i, b);
			continue;
		}
		i++;
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			continue;
		out[n++] = (char)c;
	}
	out[n] = '\0';
	size_t st = 0;
	while (st < n && blank(out[st]))
		st++;
	while (n > st && blank(out[n - 1]))
		n--;
	memmove(out, out + st, n - st);
	out[n - st] = '\0';
}

void text_last_line(const char *s, size_t len, char *out, size_t outlen)
{
	if (outlen)
		out[0] = '\0';
	size_t end = len;
	while (end > 0) {
		size_t start = end;
		while (start > 0 && s[start - 1] != '\n')
			start--;
		copy_line(s, start, end, out, outlen);
		if (outlen && out[0])
			return;
		end = start ? start - 1 : 0;
	}
}

int text_line_with(const char *s, size_t len, const char *needle, char *out, size_t outlen)
{
	if (outlen)
		out[0] = '\0';
	size_t nl = strlen(needle);
	if (!nl || nl > len)
		return 0;
	const char *hit = memmem(s, len, needle, nl);
	if (!hit)
		return 0;
	size_t at = (size_t)(hit - s), a = at, b = at;
	while (a > 0 && s[a - 1] != '\n')
		a--;
	while (b < len && s[b] != '\n')
		b++;
	copy_line(s, a, b, out, outlen);
	return 1;
}
