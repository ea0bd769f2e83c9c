/* fuzz_seed.c - the seed renderer's inputs (hostname, keys, address, gateway,
 * nameservers, fixture labels and paths): whatever they hold, a rendered
 * file has exactly the lines its structure asks for, so no input can inject
 * a line (a YAML key, a cloud-config directive) of its own. */
#include "fuzz.h"
#include "client/seed.h"
#include "util/err.h"

static size_t lines(const char *s)
{
	size_t n = 0;
	for (; s && *s; s++)
		n += *s == '\n';
	return n;
}

/* Lines the private key contributes (as seed_render splits it). */
static size_t key_lines(const char *k)
{
	size_t n = 0;
	for (const char *l = k; *l;) {
		size_t m = strcspn(l, "\n");
		n += m > 0 && !(m == 1 && l[0] == '\r');
		l += m;
		if (*l == '\n')
			l++;
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	const char *f[14];
	char *buf = fuzz_fields(data + 2, size - 2, f, 14);
	struct seed_mount mounts[2] = { { f[11], f[12] }, { "FBFIX1", f[13] } };
	const char *ns[2] = { f[9], f[10] };
	bool net = data[0] & 1;
	struct seed_params p = {
		.hostname = f[0], .instance_id = f[1], .user = f[2], .authorized_key = f[3],
		.host_key_priv = f[4], .host_key_pub = f[5],
		.mac = net ? f[6] : NULL, .ip = net ? f[7] : NULL, .prefix_len = data[1] % 40 - 4,
		.gateway = f[8], .nameservers = ns, .n_nameservers = (data[0] >> 1) % 3,
		.mounts = mounts, .n_mounts = (data[0] >> 3) % 3,
	};
	char *md = NULL, *ud = NULL, *nc = NULL;
	struct err e = { 0 };
	if (seed_render(&p, &md, &ud, &nc, &e) == 0) {
		FUZZ_CHECK(lines(md) == 2);
		/* 12 fixed lines, 12 of /etc/hosts (no cluster hosts: 127.0.1.1) */
		size_t want = 24 + key_lines(p.host_key_priv) + (p.n_mounts ? 1 + p.n_mounts : 0);
		FUZZ_CHECK(lines(ud) == want);
		if (net) {
			size_t nwant = 8 + (p.gateway && *p.gateway ? 1 : 0) + (p.n_nameservers ? 1 : 0);
			FUZZ_CHECK(nc && lines(nc) == nwant);
		} else {
			FUZZ_CHECK(!nc);
		}
	}
	free(md);
	free(ud);
	free(nc);
	free(buf);
	return 0;
}
