/* fuzz_qcow2.c - the qcow2 header parser alone (util/qcow2.c: the holder's
 * check of member disks, the image cache's of bases): any bytes parse or are
 * refused, and a parsed backing name lies within the input and fits. */
#include "fuzz.h"
#include "util/qcow2.h"

#include <errno.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qcow2_info q;
	int r = qcow2_parse(data, size, size, &q);
	FUZZ_CHECK(r == 0 || r == -EINVAL || r == -EOPNOTSUPP || r == -EFBIG);
	if (r == 0) {
		FUZZ_CHECK(q.version == 2 || q.version == 3);
		FUZZ_CHECK(q.cluster_bits >= 9 && q.cluster_bits <= 21);
		FUZZ_CHECK(strlen(q.backing) <= q.backing_len && q.backing_len <= QCOW2_BACKING_MAX);
		FUZZ_CHECK(!q.backing_len || q.backing_off + q.backing_len <= size);
		FUZZ_CHECK(strlen(q.backing_fmt) < sizeof(q.backing_fmt));
	}
	return 0;
}
