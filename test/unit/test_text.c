/* Console text made safe to show: escapes, control characters, line picking. */
#include "check.h"
#include "util/text.h"

#include <string.h>

static void sanitize(const char *in, const char *want)
{
	char buf[256];
	size_t n = strlen(in);
	memcpy(buf, in, n + 1);
	size_t m = text_sanitize(buf, n);
	buf[m] = '\0';
	CHECK_STR(buf, want);
}

static void test_sanitize(void)
{
	sanitize("plain\n", "plain\n");
	sanitize("\x1b[0;32m  OK  \x1b[0m Started ssh\r\n", "  OK   Started ssh\n");
	sanitize("a\x1b]0;title\x07" "b", "ab");
	sanitize("a\x1b]2;t\x1b\\b", "ab");
	sanitize("x\x1b(By", "xy");
	sanitize("bell\x07 bs\x08 del\x7f tab\tend", "bell bs del tab\tend");
	sanitize("cut\x1b[1;3", "cut");     /* truncated CSI at the end */
	sanitize("cut\x1b", "cut");
	sanitize("cut\x1b]0;never ends", "cut");
	sanitize("", "");
}

static void test_lines(void)
{
	char out[64];
	const char *log = "first\r\n\x1b[1mBegin: Mounting root\x1b[0m\r\n  \r\n\r\n";
	text_last_line(log, strlen(log), out, sizeof(out));
	CHECK_STR(out, "Begin: Mounting root");
	text_last_line("", 0, out, sizeof(out));
	CHECK_STR(out, "");
	text_last_line("\n\n \t\n", 5, out, sizeof(out));
	CHECK_STR(out, "");
	text_last_line("no newline at all", 17, out, 8);
	CHECK_STR(out, "no newl");
	const char *sh = "[ 3.1] x\nALERT!  /dev/vda1 does not exist.  Dropping to a shell!\n(initramfs) ";
	CHECK_INT(text_line_with(sh, strlen(sh), "ALERT!", out, sizeof(out)), 1);
	CHECK_STR(out, "ALERT!  /dev/vda1 does not exist.  Dropping to a shell!");
	CHECK_INT(text_line_with(sh, strlen(sh), "panic", out, sizeof(out)), 0);
	CHECK_STR(out, "");
	CHECK_INT(text_line_with("ab", 2, "abc", out, sizeof(out)), 0);
}

int main(void)
{
	test_sanitize();
	test_lines();
	printf("text: ok\n");
	return 0;
}
