/* fuzz_frame.c - request framing and decoding: frame_scan's contract on raw
 * bytes, the stream framer fed in chunks the input chooses, and every line
 * through rpc_request_decode / rpc_reply_decode; what decodes must encode
 * and decode again to the same command. */
#include "fuzz.h"
#include "rpc/frame.h"
#include "rpc/msg.h"
#include "util/err.h"

#include <errno.h>

static void scan_contract(const uint8_t *data, size_t size)
{
	size_t limit = size ? (size_t)(data[0] % 64) + 1 : 1;
	size_t ll = 0;
	ssize_t r = frame_scan((const char *)data, size, limit, &ll);
	if (r > 0) {
		FUZZ_CHECK((size_t)r == ll + 1 && ll <= limit && data[ll] == '\n');
		FUZZ_CHECK(!memchr(data, '\n', ll));
	} else if (r == 0) {
		FUZZ_CHECK(size <= limit && !memchr(data, '\n', size));
	} else {
		FUZZ_CHECK(r == -E2BIG && size > limit);
	}
}

static void decode_line(const char *line, size_t len)
{
	struct rpc_request rq;
	struct err e = { 0 };
	int r = rpc_request_decode(line, len, &rq, &e);
	FUZZ_CHECK(r == 0 || r == -EINVAL || r == -EBADMSG || r == -ENOMEM);
	if (r == 0) {
		char *out = NULL;
		size_t ol;
		FUZZ_CHECK(rpc_request_encode(&rq, &out, &ol) == 0 && out[ol - 1] == '\n');
		struct rpc_request again;
		FUZZ_CHECK(rpc_request_decode(out, ol, &again, &e) == 0);
		FUZZ_CHECK((!rq.cmd && !again.cmd) || (rq.cmd && !*rq.cmd && !again.cmd) ||
			   (rq.cmd && again.cmd && !strcmp(rq.cmd, again.cmd)));
		FUZZ_CHECK(!rq.spec == !again.spec);
		rpc_request_fini(&again);
		free(out);
		rpc_request_fini(&rq);
	}
	struct rpc_reply rp;
	if (rpc_reply_decode(line, len, &rp, &e) == 0) {
		char *out = NULL;
		size_t ol;
		FUZZ_CHECK(rpc_reply_encode(&rp, &out, &ol) == 0);
		free(out);
		rpc_reply_fini(&rp);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	scan_contract(data, size);
	struct frame f;
	frame_init(&f, 4096); /* small enough that over-long lines are reachable */
	size_t off = 0;
	int lines = 0;
	while (off < size) {
		size_t chunk = (size_t)(data[off] % 97) + 1;
		if (chunk > size - off)
			chunk = size - off;
		if (frame_feed(&f, (const char *)data + off, chunk) < 0)
			break;
		off += chunk;
		char *line;
		size_t len;
		int r;
		while ((r = frame_next(&f, &line, &len)) == 1 && lines++ < 64) {
			FUZZ_CHECK(len <= 4096 && strlen(line) <= len);
			decode_line(line, len);
		}
		if (r < 0)
			break;
	}
	frame_fini(&f);
	return 0;
}
