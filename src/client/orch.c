/* orch.c - `up`, `down`, `rm`: the client prepares everything (store, keys,
 * image, disk, seed, fixtures) and the holder boots what it is told.
 *
 * `up` is all-or-nothing. The invariants of rollback:
 *   - a member created by this call (no config.json before) is stopped and its
 *     directory deleted, including the disk this call created;
 *   - a member that existed but was stopped is only stopped again: its disk
 *     and config are never touched;
 *   - a member that was already running is never touched. */
#include "client/orch.h"
#include "client/ctl.h"
#include "client/fixture.h"
#include "client/image/image.h"
#include "client/ssh/keys.h"
#include "client/seed.h"
#include "client/store.h"
#include "client/ssh/target.h"
#include "rpc/msg.h"
#include "util/err.h"
#include "util/fileio.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_CPUS 2
#define DEFAULT_MEM_MB 4096
#define DEFAULT_MINI_MEM_MB 1024
#define DEFAULT_DISK_MB 20480

struct fb_cluster {
	size_t n;
	char (*names)[FB_NAME_MAX + 1];
	char (*ips)[FB_IP_STRLEN];
	struct ctl_holder holder;
	char root[PATH_MAX];
};

void orch_err_export(const struct err *e, fb_error *out)
{
	if (!out)
		return;
	out->code = e ? e->code : 0;
	snprintf(out->message, sizeof(out->message), "%s", e ? e->msg : "");
}

int orch_root(const char *root, char *buf, size_t len, struct err *e)
{
	if (root && *root) {
		if ((size_t)snprintf(buf, len, "%s", root) >= len)
			return err_set(e, -ENAMETOOLONG, "store root too long");
		return 0;
	}
	if (store_root_resolve(buf, len) < 0)
		return err_set(e, -ENOENT, "cannot determine the store root (set FLEETBOX_HOME)");
	return 0;
}

enum plan_kind { PLAN_RUNNING, PLAN_STOPPED, PLAN_NEW };

struct plan {
	char name[FB_NAME_MAX + 1];
	enum plan_kind kind;
	struct member_config cfg;
	bool booted;
	bool disk_created;  /* this call created the disk (rollback may delete it) */
	char ip[FB_IP_STRLEN];
	int boot_status;
	struct err boot_err;
	char *boot_line;    /* request line for boot-member */
};

static void progress(const fb_up_options *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void progress(const fb_up_options *o, const char *fmt, ...)
{
	if (!o->progress)
		return;
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	o->progress(o->progress_data, line);
}

static void image_progress(void *data, const char *line)
{
	const fb_up_options *o = data;
	if (o->progress)
		o->progress(o->progress_data, line);
}

/* --- concurrent boot-member on a private loop --- */

static void boot_cb(void *data, int status, const char *reply, const struct err *e)
{
	struct plan *p = data;
	if (status < 0) {
		p->boot_status = status;
		if (e)
			p->boot_err = *e;
		return;
	}
	struct rpc_reply rep;
	struct err de = { 0 };
	if (rpc_reply_decode(reply, strlen(reply), &rep, &de) < 0) {
		p->boot_status = de.code;
		p->boot_err = de;
		return;
	}
	if (rep.error && *rep.error) {
		p->boot_status = -EIO;
		err_set(&p->boot_err, -EIO, "%s", rep.error);
	} else {
		p->boot_status = 0;
		p->booted = true;
	}
	rpc_reply_fini(&rep);
}

static int boot_all(const char *root, const char *via, struct plan *plans, size_t n,
		    struct err *e)
{
	uv_loop_t loop;
	int r = uv_loop_init(&loop);
	if (r < 0)
		return err_set(e, r, "uv_loop_init: %s", uv_strerror(r));
	for (size_t i = 0; i < n; i++) {
		struct plan *p = &plans[i];
		if (!p->boot_line)
			continue;
		/* Boot through the holder-wide socket we know answers. */
		r = ctl_request_async(&loop, root, via, p->boot_line, CTL_DIAL_MS, CTL_BOOT_MS, boot_cb, p);
		if (r < 0) {
			p->boot_status = r;
			err_set(&p->boot_err, r, "boot %s: %s", p->name, strerror(-r));
		}
	}
	ctl_run_loop(&loop);
	if (uv_loop_close(&loop) != 0)
		return err_set(e, -EBUSY, "internal error: boot loop left handles open");
	return 0;
}

/* --- helpers --- */

static void nameservers_from_host(char ns[][FB_IP_STRLEN], size_t *n)
{
	*n = 0;
	char *s;
	if (file_read_all("/etc/resolv.conf", 1 << 16, &s, NULL) < 0)
		return;
	char *save = NULL;
	for (char *l = strtok_r(s, "\n", &save); l && *n < 3; l = strtok_r(NULL, "\n", &save)) {
		char ip[64];
		if (sscanf(l, "nameserver %63s", ip) == 1 && strncmp(ip, "127.", 4) != 0 &&
		    strchr(ip, ':') == NULL && strlen(ip) < FB_IP_STRLEN)
			snprintf(ns[(*n)++], FB_IP_STRLEN, "%s", ip);
	}
	free(s);
}

static int write_seed(const char *root, struct plan *p, const char *mac, const char *ip,
		      const char *gateway, int prefix, struct err *e)
{
	char dir[PATH_MAX], seed[PATH_MAX], key[PATH_MAX], pub[PATH_MAX], ipub[PATH_MAX];
	store_member_dir(root, p->name, dir, sizeof(dir));
	snprintf(seed, sizeof(seed), "%s/seed.iso", dir);
	snprintf(key, sizeof(key), "%s/ssh_host_ed25519_key", dir);
	snprintf(pub, sizeof(pub), "%s/ssh_host_ed25519_key.pub", dir);
	snprintf(ipub, sizeof(ipub), "%s/id_ed25519.pub", root);
	char *priv = NULL, *hpub = NULL, *auth = NULL;
	int r;
	if ((r = file_read_trimmed(key, 1 << 16, &priv, NULL)) < 0 ||
	    (r = file_read_trimmed(pub, 1 << 16, &hpub, NULL)) < 0 ||
	    (r = file_read_trimmed(ipub, 1 << 16, &auth, NULL)) < 0) {
		free(priv);
		free(hpub);
		free(auth);
		return err_set(e, r, "read keys for %s: %s", p->name, strerror(-r));
	}
	struct seed_mount mounts[64];
	size_t nm = 0;
	for (size_t i = 0; i < p->cfg.n_fixtures && nm < 64; i++, nm++) {
		mounts[nm].label = p->cfg.fixtures[i].label;
		mounts[nm].guest_path = p->cfg.fixtures[i].guest_path;
	}
	char ns[3][FB_IP_STRLEN];
	size_t nns;
	nameservers_from_host(ns, &nns);
	const char *nsp[3] = { ns[0], ns[1], ns[2] };
	char iid[128];
	snprintf(iid, sizeof(iid), "fleetbox-%s-%s", p->name, p->cfg.created_at);
	struct seed_params sp = {
		.hostname = p->name,
		.instance_id = iid,
		.user = "fleetbox",
		.authorized_key = auth,
		.host_key_priv = priv,
		.host_key_pub = hpub,
		.mac = ip && *ip ? mac : NULL,
		.ip = ip && *ip ? ip : NULL,
		.prefix_len = prefix,
		.gateway = gateway,
		.nameservers = nsp,
		.n_nameservers = nns,
		.mounts = mounts,
		.n_mounts = nm,
	};
	r = seed_write(seed, &sp, e);
	free(priv);
	free(hpub);
	free(auth);
	return r;
}

static int prepare_new(const char *root, const fb_up_options *o, const struct image_info *img,
		       const struct fixture *fx, size_t nfx, struct plan *p, struct err *e)
{
	struct member_config *c = &p->cfg;
	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "%s", p->name);
	wire_mac(p->name, c->mac);
	c->cpus = o->cpus > 0 ? o->cpus : DEFAULT_CPUS;
	bool mini = !o->image || !*o->image || !strcmp(o->image, "mini");
	c->memory_mb = o->memory_mb > 0 ? o->memory_mb : (mini ? DEFAULT_MINI_MEM_MB : DEFAULT_MEM_MB);
	c->disk_mb = o->disk_mb > 0 ? o->disk_mb : DEFAULT_DISK_MB;
	snprintf(c->image, sizeof(c->image), "%s", mini ? "mini" : o->image);
	store_now_rfc3339(c->created_at);
	if (nfx) {
		c->fixtures = calloc(nfx, sizeof(*c->fixtures));
		if (!c->fixtures)
			return err_set(e, -ENOMEM, "out of memory");
		memcpy(c->fixtures, fx, nfx * sizeof(*fx));
		c->n_fixtures = nfx;
	}
	char dir[PATH_MAX], disk[PATH_MAX];
	store_member_dir(root, p->name, dir, sizeof(dir));
	int r = mkdir_p(dir, 0700);
	if (r < 0)
		return err_set(e, r, "create %s: %s", dir, strerror(-r));
	if ((r = keys_ensure_host(dir, p->name, e)) < 0)
		return r;
	snprintf(disk, sizeof(disk), "%s/disk", dir);
	if ((r = disk_create(img, disk, (uint64_t)c->disk_mb, e)) < 0)
		return r;
	p->disk_created = true;
	return store_config_write(root, c, e);
}

static char *boot_request_line(const char *root, const struct image_info *img, struct plan *p)
{
	char dir[PATH_MAX];
	store_member_dir(root, p->name, dir, sizeof(dir));
	struct rpc_spec s = { 0 };
	char disk[PATH_MAX], seed[PATH_MAX], serial[PATH_MAX];
	snprintf(disk, sizeof(disk), "%s/disk", dir);
	snprintf(seed, sizeof(seed), "%s/seed.iso", dir);
	snprintf(serial, sizeof(serial), "%s/serial.log", dir);
	char *fx[64];
	char fxbuf[64][PATH_MAX];
	size_t nfx = p->cfg.n_fixtures < 64 ? p->cfg.n_fixtures : 64;
	for (size_t i = 0; i < nfx; i++) {
		snprintf(fxbuf[i], PATH_MAX, "%s/fixture-%zu.img", dir, i);
		fx[i] = fxbuf[i];
	}
	s.name = p->name;
	s.disk_path = disk;
	s.seed_path = seed;
	s.fixture_paths = fx;
	s.n_fixtures = nfx;
	s.cpus = p->cfg.cpus;
	s.memory_bytes = (uint64_t)p->cfg.memory_mb << 20;
	s.serial_log_path = serial;
	s.kernel_path = img->kernel[0] ? (char *)img->kernel : NULL;
	s.initrd_path = img->initrd[0] ? (char *)img->initrd : NULL;
	s.cmdline = img->cmdline[0] ? (char *)img->cmdline : NULL;
	struct rpc_request req = { .cmd = (char *)"boot-member", .spec = &s };
	char *line = NULL;
	size_t len;
	if (rpc_request_encode(&req, &line, &len) < 0)
		return NULL;
	return line;
}

static void rollback(const char *root, struct plan *plans, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct plan *p = &plans[i];
		if (p->kind == PLAN_RUNNING)
			continue;
		struct err e = { 0 };
		if (store_member_running(root, p->name, NULL))
			ctl_stop(root, p->name, &e);
		if (p->kind != PLAN_NEW)
			continue;
		char disk[PATH_MAX], cfg[PATH_MAX];
		store_member_file(root, p->name, "disk", disk, sizeof(disk));
		if (p->disk_created || !path_exists(disk)) {
			store_member_delete(root, p->name, &e);
		} else {
			/* A disk we did not create was found there: never delete it. */
			store_member_file(root, p->name, "config.json", cfg, sizeof(cfg));
			unlink(cfg);
		}
	}
}

static bool fake_vmm(void)
{
	const char *v = getenv("FLEETBOX_VMM");
	return v && !strcmp(v, "fake");
}

/* Confirms each booted VM accepts an authenticated SSH session with its pinned
 * host key (the holder only saw port 22 open). */
static int confirm_ssh(const char *root, struct plan *p, struct err *e)
{
	struct ssh_target t;
	int r = target_resolve(root, p->name, &t, e);
	if (r < 0)
		return r;
	return target_wait_ssh(&t, 120000, e);
}

int fb_up(const fb_up_options *o, fb_cluster **out, fb_error *ferr)
{
	struct err e = { 0 };
	char root[PATH_MAX];
	struct plan *plans = NULL;
	struct fixture *fx = NULL;
	fb_cluster *cl = NULL;
	size_t n = o->n_names;
	int *locks = NULL;
	size_t nlocks = 0;
	int r;
	*out = NULL;
	if ((r = orch_root(o->root, root, sizeof(root), &e)) < 0)
		goto fail;
	if (n == 0) {
		r = err_set(&e, -EINVAL, "no member names given");
		goto fail;
	}
	plans = calloc(n, sizeof(*plans));
	cl = calloc(1, sizeof(*cl));
	if (!plans || !cl) {
		r = err_set(&e, -ENOMEM, "out of memory");
		goto fail;
	}
	cl->holder.ctl_fd = -1;
	snprintf(cl->root, sizeof(cl->root), "%s", root);
	for (size_t i = 0; i < n; i++) {
		/* New members need a hostname (no trailing '-'); older ones still boot. */
		bool known = wire_name_valid(o->names[i]) && store_member_exists(root, o->names[i]);
		if (!known && (r = store_name_check(o->names[i], &e)) < 0)
			goto fail;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(o->names[i], o->names[j])) {
				r = err_set(&e, -EINVAL, "duplicate name \"%s\"", o->names[i]);
				goto fail;
			}
		snprintf(plans[i].name, sizeof(plans[i].name), "%s", o->names[i]);
	}
	/* Fixtures are validated before anything is created. */
	if (o->n_fixtures) {
		fx = calloc(o->n_fixtures, sizeof(*fx));
		if (!fx) {
			r = err_set(&e, -ENOMEM, "out of memory");
			goto fail;
		}
		for (size_t i = 0; i < o->n_fixtures; i++) {
			char arg[2 * PATH_MAX + 2];
			snprintf(arg, sizeof(arg), "%s:%s", o->fixtures[i].host_path, o->fixtures[i].guest_path);
			if ((r = fixture_parse(arg, &fx[i], &e)) < 0)
				goto fail;
		}
		if ((r = fixture_check_set(fx, o->n_fixtures, &e)) < 0)
			goto fail;
	}
	if ((r = store_init(root, &e)) < 0)
		goto fail;
	/* One up/down/rm per cluster at a time: classification, creation and
	 * rollback must see a store nobody else is changing. */
	if ((r = store_lock_clusters(root, o->names, n, &locks, &nlocks, &e)) < 0)
		goto fail;

	/* Classify, and find a live holder to join: one of ours, else one serving
	 * a member of the same cluster. */
	const char *via = NULL;
	char via_buf[FB_NAME_MAX + 1];
	pid_t via_pid = 0;
	size_t to_boot = 0;
	for (size_t i = 0; i < n; i++) {
		struct plan *p = &plans[i];
		pid_t pid;
		if (store_member_running(root, p->name, &pid)) {
			if (via_pid && pid != via_pid) {
				r = err_set(&e, -EINVAL, "%s and %s are running in different holders", via, p->name);
				goto fail;
			}
			via_pid = pid;
			snprintf(via_buf, sizeof(via_buf), "%s", p->name);
			via = via_buf;
			/* Served by a live holder, but is its VM up? A member left stopped
			 * or in error (VM died, interrupted up) is booted again there. */
			struct rpc_status *st = NULL;
			if ((r = ctl_status(root, p->name, &st, &e)) < 0)
				goto fail;
			enum wire_state state = st->state;
			rpc_status_free(st);
			if (state == FB_STATE_RUNNING) {
				p->kind = PLAN_RUNNING;
				continue;
			}
			if (state != FB_STATE_STOPPED && state != FB_STATE_ERROR) {
				r = err_set(&e, -EBUSY, "%s is %s in another fleetbox run; try again when it is up",
					    p->name, wire_state_name(state));
				goto fail;
			}
			p->kind = store_member_exists(root, p->name) ? PLAN_STOPPED : PLAN_NEW;
			to_boot++;
		} else if (store_member_exists(root, p->name)) {
			p->kind = PLAN_STOPPED;
			to_boot++;
		} else {
			p->kind = PLAN_NEW;
			to_boot++;
		}
	}
	if (!via) {
		char **all;
		size_t na;
		if (store_list_members(root, &all, &na) == 0) {
			for (size_t i = 0; i < na && !via; i++) {
				char c1[FB_NAME_MAX + 1], c2[FB_NAME_MAX + 1];
				wire_cluster_name(all[i], c1);
				for (size_t j = 0; j < n && !via; j++) {
					wire_cluster_name(plans[j].name, c2);
					if (!strcmp(c1, c2) && store_member_running(root, all[i], &via_pid)) {
						snprintf(via_buf, sizeof(via_buf), "%s", all[i]);
						via = via_buf;
					}
				}
			}
			store_names_free(all, na);
		}
	}

	if (to_boot > 0) {
		if (!via) {
			const char **bn = calloc(to_boot, sizeof(char *));
			if (!bn) {
				r = err_set(&e, -ENOMEM, "out of memory");
				goto fail;
			}
			size_t k = 0;
			for (size_t i = 0; i < n; i++)
				if (plans[i].kind != PLAN_RUNNING)
					bn[k++] = plans[i].name;
			r = ctl_spawn(root, bn, k, o->bound != 0, &cl->holder, &e);
			free(bn);
			if (r < 0)
				goto fail_rollback;
			for (size_t i = 0; i < n; i++)
				if (plans[i].kind != PLAN_RUNNING) {
					snprintf(via_buf, sizeof(via_buf), "%s", plans[i].name);
					via = via_buf;
					break;
				}
		}
		/* Network first: it fails fast (no root, no nf_tables) before any
		 * download or disk work. */
		struct rpc_request req = { .cmd = (char *)"createnetwork" };
		struct rpc_reply rep;
		r = ctl_request(root, via, &req, CTL_DIAL_MS, 60000, &rep, &e);
		char subnet[32] = "";
		if (rep.subnet)
			snprintf(subnet, sizeof(subnet), "%s", rep.subnet);
		rpc_reply_fini(&rep);
		if (r < 0)
			goto fail_rollback;
		char gateway[FB_IP_STRLEN] = "";
		int prefix = 24;
		if (subnet[0]) {
			unsigned a, b, c, d;
			if (sscanf(subnet, "%u.%u.%u.%u/%d", &a, &b, &c, &d, &prefix) == 5)
				snprintf(gateway, sizeof(gateway), "%u.%u.%u.%u", a, b, c, d + 1);
		}

		/* The image: one per call for new members; stopped members use theirs. */
		struct image_info img;
		const char *want = o->image && *o->image ? o->image : "mini";
		bool need_new = false;
		for (size_t i = 0; i < n; i++)
			need_new |= plans[i].kind == PLAN_NEW;
		if ((r = keys_ensure_installation(root, &e)) < 0)
			goto fail_rollback;
		for (size_t i = 0; i < n; i++) {
			struct plan *p = &plans[i];
			if (p->kind == PLAN_STOPPED) {
				if ((r = store_config_read(root, p->name, &p->cfg, &e)) < 0)
					goto fail_rollback;
				if (o->cpus || o->memory_mb || o->disk_mb || (o->image && *o->image) || o->n_fixtures)
					progress(o, "note: %s exists; create options are ignored", p->name);
			}
		}
		if (need_new) {
			if ((r = image_resolve(root, want, image_progress, (void *)o, &img, &e)) < 0)
				goto fail_rollback;
			for (size_t i = 0; i < n; i++)
				if (plans[i].kind == PLAN_NEW &&
				    (r = prepare_new(root, o, &img, fx, o->n_fixtures, &plans[i], &e)) < 0) {
					err_prefix(&e, "create %s: ", plans[i].name);
					goto fail_rollback;
				}
		}
		for (size_t i = 0; i < n; i++) {
			struct plan *p = &plans[i];
			if (p->kind == PLAN_RUNNING)
				continue;
			struct image_info mimg;
			if (p->kind == PLAN_STOPPED || strcmp(p->cfg.image, want) != 0) {
				/* the image the member's disk is an overlay of, so kernel and disk match */
				char disk[PATH_MAX];
				store_member_file(root, p->name, "disk", disk, sizeof(disk));
				if ((r = image_resolve_member(root, p->cfg.image, disk, image_progress, (void *)o,
							      &mimg, &e)) < 0)
					goto fail_rollback;
			} else {
				mimg = img;
			}
			struct rpc_request rq = { .cmd = (char *)"reserve", .name = p->name,
						  .ip_hint = p->cfg.ip[0] ? p->cfg.ip : NULL };
			if ((r = ctl_request(root, via, &rq, CTL_DIAL_MS, 60000, &rep, &e)) < 0) {
				rpc_reply_fini(&rep);
				goto fail_rollback;
			}
			char mac[FB_MAC_STRLEN];
			snprintf(mac, sizeof(mac), "%s", rep.res_mac[0] ? rep.res_mac : p->cfg.mac);
			snprintf(p->ip, sizeof(p->ip), "%s", rep.res_ip);
			rpc_reply_fini(&rep);
			/* Fixture content refreshes at every boot; the set is frozen. */
			char dir[PATH_MAX];
			store_member_dir(root, p->name, dir, sizeof(dir));
			for (size_t k = 0; k < p->cfg.n_fixtures; k++) {
				char imgp[PATH_MAX];
				snprintf(imgp, sizeof(imgp), "%s/fixture-%zu.img", dir, k);
				if ((r = fixture_build_image(&p->cfg.fixtures[k], imgp, &e)) < 0) {
					err_prefix(&e, "fixture %s: ", p->cfg.fixtures[k].host_path);
					goto fail_rollback;
				}
			}
			if ((r = write_seed(root, p, mac, p->ip, gateway[0] ? gateway : NULL, prefix, &e)) < 0)
				goto fail_rollback;
			p->boot_line = boot_request_line(root, &mimg, p);
			if (!p->boot_line) {
				r = err_set(&e, -ENOMEM, "out of memory");
				goto fail_rollback;
			}
		}
		progress(o, "booting %zu member%s", to_boot, to_boot == 1 ? "" : "s");
		if ((r = boot_all(root, via, plans, n, &e)) < 0)
			goto fail_rollback;
		for (size_t i = 0; i < n; i++)
			if (plans[i].boot_line && plans[i].boot_status < 0) {
				e = plans[i].boot_err;
				r = plans[i].boot_status;
				goto fail_rollback;
			}
	}

	/* IPs: the reservation (bridge), else the holder's status (fake VMM). */
	cl->n = n;
	cl->names = calloc(n, sizeof(*cl->names));
	cl->ips = calloc(n, sizeof(*cl->ips));
	if (!cl->names || !cl->ips) {
		r = err_set(&e, -ENOMEM, "out of memory");
		goto fail_rollback;
	}
	for (size_t i = 0; i < n; i++) {
		struct plan *p = &plans[i];
		snprintf(cl->names[i], sizeof(cl->names[i]), "%s", p->name);
		struct rpc_status *st = NULL;
		if ((r = ctl_status(root, p->name, &st, &e)) < 0)
			goto fail_rollback;
		if (st->state != FB_STATE_RUNNING) {
			r = err_set(&e, -EIO, "%s is %s%s%s", p->name, wire_state_name(st->state),
				    st->error && *st->error ? ": " : "", st->error ? st->error : "");
			rpc_status_free(st);
			goto fail_rollback;
		}
		snprintf(cl->ips[i], sizeof(cl->ips[i]), "%s", st->ip ? st->ip : p->ip);
		if (!cl->holder.pid)
			cl->holder.pid = (pid_t)st->pid;
		rpc_status_free(st);
		if (p->kind != PLAN_RUNNING && strcmp(p->cfg.ip, cl->ips[i]) != 0) {
			snprintf(p->cfg.ip, sizeof(p->cfg.ip), "%s", cl->ips[i]);
			if ((r = store_config_write(root, &p->cfg, &e)) < 0)
				goto fail_rollback;
		}
	}
	if (!fake_vmm()) {
		for (size_t i = 0; i < n; i++)
			if (plans[i].kind != PLAN_RUNNING && (r = confirm_ssh(root, &plans[i], &e)) < 0) {
				err_prefix(&e, "wait for ssh %s: ", plans[i].name);
				goto fail_rollback;
			}
	}
	for (size_t i = 0; i < n; i++) {
		store_config_fini(&plans[i].cfg);
		free(plans[i].boot_line);
	}
	free(plans);
	free(fx);
	store_unlock_clusters(locks, nlocks);
	*out = cl;
	return 0;

fail_rollback:
	rollback(root, plans, n);
fail:
	store_unlock_clusters(locks, nlocks);
	if (plans)
		for (size_t i = 0; i < n; i++) {
			store_config_fini(&plans[i].cfg);
			free(plans[i].boot_line);
		}
	free(plans);
	free(fx);
	if (cl) {
		struct err e2 = { 0 };
		ctl_holder_release(&cl->holder, CTL_STOP_WAIT_MS, &e2);
		free(cl->names);
		free(cl->ips);
		free(cl);
	}
	orch_err_export(&e, ferr);
	return r < 0 ? r : -EIO;
}

size_t fb_cluster_size(const fb_cluster *c)
{
	return c ? c->n : 0;
}

const char *fb_cluster_name(const fb_cluster *c, size_t i)
{
	return c && i < c->n ? c->names[i] : NULL;
}

const char *fb_cluster_ip(const fb_cluster *c, size_t i)
{
	return c && i < c->n ? c->ips[i] : NULL;
}

pid_t fb_cluster_holder_pid(const fb_cluster *c)
{
	return c ? c->holder.pid : 0;
}

int fb_cluster_close(fb_cluster *c, fb_error *ferr)
{
	if (!c)
		return 0;
	struct err e = { 0 };
	int r = ctl_holder_release(&c->holder, CTL_STOP_WAIT_MS, &e);
	free(c->names);
	free(c->ips);
	free(c);
	if (r < 0)
		orch_err_export(&e, ferr);
	return r;
}

/* --- down / rm --- */

static int expand(const char *root, const char *const *patterns, size_t n, bool all,
		  bool missing_ok, char ***names, size_t *count, struct err *e)
{
	*names = NULL;
	*count = 0;
	if (all)
		return store_list_members(root, names, count) < 0
			       ? err_set(e, -EIO, "cannot list the store at %s", root)
			       : 0;
	size_t cap = 0;
	for (size_t i = 0; i < n; i++) {
		char **m;
		size_t nm;
		int r = store_match(root, patterns[i], &m, &nm);
		if (r == -EINVAL) {
			store_names_free(*names, *count);
			return err_set(e, r, "invalid name \"%s\"", patterns[i]);
		}
		if (r == -ENOENT) {
			if (missing_ok)
				continue;
			store_names_free(*names, *count);
			return err_set(e, r, "no such member: %s", patterns[i]);
		}
		for (size_t j = 0; j < nm; j++) {
			bool dup = false;
			for (size_t k = 0; k < *count; k++)
				dup |= !strcmp((*names)[k], m[j]);
			if (dup)
				continue;
			if (*count == cap) {
				cap = cap ? cap * 2 : 8;
				char **nv = realloc(*names, cap * sizeof(char *));
				if (!nv) {
					store_names_free(m, nm);
					return err_set(e, -ENOMEM, "out of memory");
				}
				*names = nv;
			}
			if (!((*names)[*count] = strdup(m[j]))) {
				store_names_free(m, nm);
				return err_set(e, -ENOMEM, "out of memory");
			}
			(*count)++;
		}
		store_names_free(m, nm);
	}
	return 0;
}

static int do_down(const char *rootopt, const char *const *patterns, size_t n, bool all,
		   bool remove, fb_error *ferr)
{
	struct err e = { 0 };
	char root[PATH_MAX];
	char **names = NULL;
	size_t count = 0;
	int *locks = NULL;
	size_t nlocks = 0;
	int r = orch_root(rootopt, root, sizeof(root), &e);
	if (r == 0)
		r = expand(root, patterns, n, all, remove, &names, &count, &e);
	if (r == 0)
		r = store_lock_clusters(root, (const char *const *)names, count, &locks, &nlocks, &e);
	/* Stop everything first (members of one holder stop in any order). */
	for (size_t i = 0; r == 0 && i < count; i++)
		if (store_member_running(root, names[i], NULL) && ctl_stop(root, names[i], &e) < 0 &&
		    store_member_running(root, names[i], NULL))
			r = e.code;
	for (size_t i = 0; r == 0 && remove && i < count; i++)
		r = store_member_delete(root, names[i], &e);
	store_unlock_clusters(locks, nlocks);
	store_names_free(names, count);
	if (r < 0)
		orch_err_export(&e, ferr);
	return r;
}

int fb_down(const char *root, const char *const *patterns, size_t n, fb_error *err)
{
	return do_down(root, patterns, n, false, false, err);
}

int fb_down_all(const char *root, fb_error *err)
{
	return do_down(root, NULL, 0, true, false, err);
}

int fb_rm(const char *root, const char *const *patterns, size_t n, fb_error *err)
{
	return do_down(root, patterns, n, false, true, err);
}

int fb_rm_all(const char *root, fb_error *err)
{
	return do_down(root, NULL, 0, true, true, err);
}
