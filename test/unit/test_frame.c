/* Framing: partial lines, several lines per read, the limit, CR LF. */
#include "check.h"
#include "rpc/frame.h"

#include <errno.h>

static void test_scan(void)
{
	size_t ll;
	CHECK_INT(frame_scan("abc", 3, 10, &ll), 0);
	CHECK_INT(frame_scan("abc\nxy", 6, 10, &ll), 4);
	CHECK_INT(ll, 3);
	CHECK_INT(frame_scan("\n", 1, 10, &ll), 1);
	CHECK_INT(ll, 0);
	/* Exactly at the limit is fine, one more is not. */
	CHECK_INT(frame_scan("aaaa\n", 5, 4, &ll), 5);
	CHECK_INT(frame_scan("aaaaa\n", 6, 4, &ll), -E2BIG);
	CHECK_INT(frame_scan("aaaaa", 5, 4, &ll), -E2BIG);
	CHECK_INT(frame_scan("aaaa", 4, 4, &ll), 0);
}

static void test_partial_and_multi(void)
{
	struct frame f;
	char *line;
	size_t len;
	frame_init(&f, 64);
	CHECK_INT(frame_feed(&f, "{\"cmd\":", 7), 0);
	CHECK_INT(frame_next(&f, &line, &len), 0);
	const char *chunk = "\"status\"}\n{\"a\":1}\r\n{\"b\"";
	CHECK_INT(frame_feed(&f, chunk, strlen(chunk)), 0);
	CHECK_INT(frame_next(&f, &line, &len), 1);
	CHECK_STR(line, "{\"cmd\":\"status\"}");
	CHECK_INT(len, 16);
	CHECK_INT(frame_next(&f, &line, &len), 1);
	CHECK_STR(line, "{\"a\":1}"); /* CR stripped */
	CHECK_INT(frame_next(&f, &line, &len), 0);
	CHECK_INT(frame_pending(&f), 4);
	CHECK_INT(frame_feed(&f, ":2}\n", 4), 0);
	CHECK_INT(frame_next(&f, &line, &len), 1);
	CHECK_STR(line, "{\"b\":2}");
	CHECK_INT(frame_pending(&f), 0);
	frame_fini(&f);
}

static void test_limit(void)
{
	struct frame f;
	frame_init(&f, 16);
	char big[40];
	memset(big, 'x', sizeof(big));
	CHECK_INT(frame_feed(&f, big, 10), 0);
	CHECK_INT(frame_feed(&f, big, 10), -E2BIG);
	frame_fini(&f);

	/* Byte-by-byte feeding of a long stream never holds more than the limit. */
	frame_init(&f, 1024);
	int r = 0;
	size_t fed = 0;
	while (r == 0 && fed < 100000) {
		r = frame_feed(&f, "y", 1);
		fed++;
	}
	CHECK_INT(r, -E2BIG);
	CHECK(fed <= 1026);
	frame_fini(&f);
}

static void test_many_small_lines(void)
{
	struct frame f;
	frame_init(&f, 32);
	int got = 0;
	for (int i = 0; i < 1000; i++) {
		CHECK_INT(frame_feed(&f, "ab\ncd\n", 6), 0);
		char *line;
		size_t len;
		while (frame_next(&f, &line, &len) == 1) {
			CHECK_INT(len, 2);
			got++;
		}
	}
	CHECK_INT(got, 2000);
	CHECK(f.cap <= 4096); /* consumed lines are compacted away */
	frame_fini(&f);
}

int main(void)
{
	test_scan();
	test_partial_and_multi();
	test_limit();
	test_many_small_lines();
	printf("frame: ok\n");
	return 0;
}
