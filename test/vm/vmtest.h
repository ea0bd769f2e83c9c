/* vmtest.h - shared scaffolding for the real-VM tests and the boot bench:
 * a private network namespace with a bridge and a tap (made with iproute2:
 * tests may use it, the product does not), a mini image in a temp
 * FLEETBOX_HOME, one member's disk + seed + keys, and a loop-driven boot. */
#pragma once
#include "client/image/image.h"
#include "client/ssh/target.h"
#include "util/timeouts.h"
#include "vmm/vmm.h"

#include <limits.h>
#include <stddef.h>

struct seed_host;
#include <stdbool.h>

#define VT_CHECK(cond, ...) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(1); } } while (0)

struct vt_env {
	char root[PATH_MAX];       /* temp FLEETBOX_HOME */
	struct image_info img;
	char key_path[PATH_MAX];   /* installation private key (OpenSSH PEM) */
	char *auth_pub;            /* installation public key line */
	const struct seed_host *hosts; /* the cluster's /etc/hosts for every seed (optional) */
	size_t n_hosts;
};

struct vt_member {
	char name[64];
	char dir[PATH_MAX];
	char disk[PATH_MAX], seed[PATH_MAX], serial[PATH_MAX];
	char ip[16], mac[18], tap[16];
	char hostkey_pub[256];
	const char *fixtures[4];
	size_t n_fixtures;
};

/* Call after vt_env_init (apt needs the host network). Enters a new network namespace with lo up and bridge fbtbr0 192.168.77.1/24. */
void vt_netns_setup(void);
/* Adds tap `tap` to the bridge. */
void vt_tap_add(const char *tap);
/* Temp root, mini image built into (or found in) the image cache
 * ($FLEETBOX_CACHE, else FLEETBOX_TEST_IMAGE_DIR, else a private one under the
 * root), installation key. */
void vt_env_init(struct vt_env *env);
void vt_env_fini(struct vt_env *env);
/* Member dir, disk overlay, host key, seed (with optional fixture mounts:
 * labels FBFIX<i>, guest paths given). */
void vt_member_init(struct vt_env *env, struct vt_member *m, const char *name, int host,
		    const char *const *guest_paths, const char *const *fixture_imgs, size_t n);
void vt_spec(const struct vt_env *env, const struct vt_member *m, struct vmm_boot_spec *s);
void vt_target(const struct vt_env *env, const struct vt_member *m, struct ssh_target *t);
/* Runs cmd over SSH; returns its stdout (caller frees) and exit status. */
char *vt_ssh(const struct ssh_target *t, const char *cmd, int *status);
double vt_now(void);
/* Runs the loop until *cond or the (bounded) deadline; fails the test then. */
void vt_run_until(uv_loop_t *loop, bool *cond, double seconds);
