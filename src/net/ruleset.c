/* ruleset.c - nftables table per bridge via libnftables (see ruleset.h).
 *
 * Verification reads the table back in JSON and renders every chain and rule
 * into one canonical line ("rule forward: ip daddr == 10.0.0.0/24; ..."); the
 * expected lines are built from the same inputs as the ruleset text, so a
 * kernel that silently dropped or altered anything is caught. */
#include "net/ruleset.h"

#include <errno.h>
#include <stdarg.h>
#include <jansson.h>
#include <nftables/libnftables.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"

static bool name_ok(const char *s)
{
	if (!s || !*s || strlen(s) > 15)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
		      *p == '_'))
			return false;
	return true;
}

static bool cidr_ok(const char *s)
{
	if (!s || !*s || strlen(s) > 18)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= '0' && *p <= '9') || *p == '.' || *p == '/'))
			return false;
	return true;
}

char *ruleset_text(const char *table, const char *bridge, const char *cidr)
{
	if (!name_ok(table) || !name_ok(bridge) || !cidr_ok(cidr))
		return NULL;
	char *s = NULL;
	int n = asprintf(&s,
		"table ip %1$s {\n"
		"\tchain postrouting {\n"
		"\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
		"\t\tip saddr %3$s oifname != \"%2$s\" masquerade\n"
		"\t}\n"
		"\tchain forward {\n"
		"\t\ttype filter hook forward priority filter; policy accept;\n"
		"\t\tip daddr %3$s iifname != \"%2$s\" ct state established,related accept\n"
		"\t\tip daddr %3$s iifname != \"%2$s\" drop\n"
		"\t\tip saddr %3$s iifname \"%2$s\" accept\n"
		"\t}\n"
		"}\n",
		table, bridge, cidr);
	return n < 0 ? NULL : s;
}

/* Canonical lines for verification; must describe exactly ruleset_text(). */
static char *expected_lines(const char *table, const char *bridge, const char *cidr)
{
	char *s = NULL;
	int n = asprintf(&s,
		"table ip %1$s\n"
		"chain postrouting: nat postrouting prio 100 policy accept\n"
		"chain forward: filter forward prio 0 policy accept\n"
		"rule postrouting: ip saddr == %3$s; oifname != %2$s; masquerade\n"
		"rule forward: ip daddr == %3$s; iifname != %2$s; ct state in established,related; accept\n"
		"rule forward: ip daddr == %3$s; iifname != %2$s; drop\n"
		"rule forward: ip saddr == %3$s; iifname == %2$s; accept\n",
		table, bridge, cidr);
	return n < 0 ? NULL : s;
}

/* Runs cmd; *out (optional) receives the output buffer, errors go to e. */
static int run(const char *cmd, unsigned flags, char **out, const char *what, struct err *e)
{
	struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
	if (!ctx)
		return err_set(e, -ENOMEM, "%s: cannot create an nftables context", what);
	nft_ctx_output_set_flags(ctx, flags);
	if (nft_ctx_buffer_output(ctx) != 0 || nft_ctx_buffer_error(ctx) != 0) {
		nft_ctx_free(ctx);
		return err_set(e, -ENOMEM, "%s: cannot buffer nftables output", what);
	}
	int r = 0;
	if (nft_run_cmd_from_buffer(ctx, cmd) != 0) {
		const char *eb = nft_ctx_get_error_buffer(ctx);
		char line[256] = "";
		/* The first line carries the kernel's reason ("Error: ...: <strerror>"). */
		if (eb)
			snprintf(line, sizeof(line), "%.*s", (int)strcspn(eb, "\n"), eb);
		r = -EIO;
		if (strstr(eb ? eb : "", "No such file or directory"))
			r = -ENOENT;
		else if (strstr(eb ? eb : "", "not supported") || strstr(eb ? eb : "", "Not supported"))
			r = -EOPNOTSUPP;
		err_set(e, r, "%s: nf_tables rejected the request: %s", what,
			line[0] ? line : "unknown error");
	} else if (out) {
		const char *ob = nft_ctx_get_output_buffer(ctx);
		*out = strdup(ob ? ob : "");
		if (!*out)
			r = err_set(e, -ENOMEM, "%s: out of memory", what);
	}
	nft_ctx_free(ctx);
	return r;
}

int ruleset_run(const char *cmd, char **out, struct err *e)
{
	return run(cmd, 0, out, "nftables", e);
}

int ruleset_list(const char *table, bool json, char **out, struct err *e)
{
	if (!name_ok(table))
		return err_set(e, -EINVAL, "invalid table name");
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "list table ip %s", table);
	return run(cmd, json ? NFT_CTX_OUTPUT_JSON : 0, out, "list table", e);
}

int ruleset_exists(const char *table, bool *exists, struct err *e)
{
	char *out = NULL;
	struct err le = {0};
	int r = ruleset_list(table, false, &out, &le);
	free(out);
	if (r == -ENOENT) {
		*exists = false;
		return 0;
	}
	if (r < 0) {
		if (e)
			*e = le;
		return r;
	}
	*exists = true;
	return 0;
}

int ruleset_install(const char *table, const char *bridge, const char *cidr, struct err *e)
{
	char *text = ruleset_text(table, bridge, cidr);
	if (!text)
		return err_set(e, -EINVAL, "invalid table '%s', bridge '%s' or subnet '%s'",
			       table ? table : "", bridge ? bridge : "", cidr ? cidr : "");
	/* add + delete + define in one transaction: replaces a stale table atomically. */
	char *cmd = NULL;
	int r;
	if (asprintf(&cmd, "add table ip %s\ndelete table ip %s\n%s", table, table, text) < 0) {
		free(text);
		return err_set(e, -ENOMEM, "out of memory");
	}
	free(text);
	r = run(cmd, 0, NULL, "install nftables table", e);
	free(cmd);
	if (r < 0)
		return r;
	return ruleset_verify(table, bridge, cidr, e);
}

/* ---- JSON rendering ---- */

struct sb {
	char *s;
	size_t n, cap;
	bool oom;
};

__attribute__((format(printf, 2, 3)))
static void sb_add(struct sb *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *t = NULL;
	int n = vasprintf(&t, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = true;
		return;
	}
	if (b->n + (size_t)n + 1 > b->cap) {
		size_t cap = (b->cap + (size_t)n + 1) * 2;
		char *p = realloc(b->s, cap);
		if (!p) {
			free(t);
			b->oom = true;
			return;
		}
		b->s = p;
		b->cap = cap;
	}
	memcpy(b->s + b->n, t, (size_t)n + 1);
	b->n += (size_t)n;
	free(t);
}

static void render_value(struct sb *b, json_t *v)
{
	json_t *pfx = json_object_get(v, "prefix");
	if (json_is_string(v)) {
		sb_add(b, "%s", json_string_value(v));
	} else if (json_is_integer(v)) {
		sb_add(b, "%lld", (long long)json_integer_value(v));
	} else if (json_is_array(v)) {
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x) {
			if (i)
				sb_add(b, ",");
			render_value(b, x);
		}
	} else if (pfx) {
		sb_add(b, "%s/%lld", json_string_value(json_object_get(pfx, "addr")),
		       (long long)json_integer_value(json_object_get(pfx, "len")));
	} else if (json_object_get(v, "payload")) {
		json_t *p = json_object_get(v, "payload");
		sb_add(b, "%s %s", json_string_value(json_object_get(p, "protocol")),
		       json_string_value(json_object_get(p, "field")));
	} else if (json_object_get(v, "meta")) {
		sb_add(b, "%s", json_string_value(json_object_get(json_object_get(v, "meta"), "key")));
	} else if (json_object_get(v, "ct")) {
		sb_add(b, "ct %s", json_string_value(json_object_get(json_object_get(v, "ct"), "key")));
	} else {
		/* Anything we never install: render raw so the comparison fails visibly. */
		char *d = json_dumps(v, JSON_COMPACT);
		sb_add(b, "?%s", d ? d : "");
		free(d);
	}
}

static void render_expr(struct sb *b, json_t *x)
{
	json_t *m = json_object_get(x, "match");
	if (m) {
		render_value(b, json_object_get(m, "left"));
		sb_add(b, " %s ", json_string_value(json_object_get(m, "op")));
		render_value(b, json_object_get(m, "right"));
		return;
	}
	const char *key;
	json_t *val;
	json_object_foreach(x, key, val) {
		if (json_is_null(val))
			sb_add(b, "%s", key);
		else
			render_value(b, x);
		break;
	}
}

static int render_listing(const char *js, char **out)
{
	json_error_t je;
	json_t *root = json_loads(js, 0, &je);
	json_t *items = json_object_get(root, "nftables");
	if (!json_is_array(items)) {
		json_decref(root);
		return -EBADMSG;
	}
	struct sb b = {0};
	/* Three passes keep the order stable: table, chains, rules. */
	for (int pass = 0; pass < 3; pass++) {
		size_t i;
		json_t *it;
		json_array_foreach(items, i, it) {
			json_t *t = json_object_get(it, "table");
			json_t *c = json_object_get(it, "chain");
			json_t *r = json_object_get(it, "rule");
			if (pass == 0 && t) {
				sb_add(&b, "table %s %s\n", json_string_value(json_object_get(t, "family")),
				       json_string_value(json_object_get(t, "name")));
			} else if (pass == 1 && c) {
				sb_add(&b, "chain %s: %s %s prio %lld policy %s\n",
				       json_string_value(json_object_get(c, "name")),
				       json_string_value(json_object_get(c, "type")),
				       json_string_value(json_object_get(c, "hook")),
				       (long long)json_integer_value(json_object_get(c, "prio")),
				       json_string_value(json_object_get(c, "policy")));
			} else if (pass == 2 && r) {
				sb_add(&b, "rule %s: ", json_string_value(json_object_get(r, "chain")));
				size_t k;
				json_t *x;
				json_array_foreach(json_object_get(r, "expr"), k, x) {
					if (k)
						sb_add(&b, "; ");
					render_expr(&b, x);
				}
				sb_add(&b, "\n");
			}
		}
	}
	json_decref(root);
	if (b.oom || !b.s) {
		free(b.s);
		return b.oom ? -ENOMEM : -EBADMSG;
	}
	*out = b.s;
	return 0;
}

int ruleset_verify(const char *table, const char *bridge, const char *cidr, struct err *e)
{
	char *js = NULL, *got = NULL, *want = expected_lines(table, bridge, cidr);
	if (!want)
		return err_set(e, -ENOMEM, "out of memory");
	int r = ruleset_list(table, true, &js, e);
	if (r == -ENOENT)
		r = err_set(e, -ENOENT, "nftables table %s is missing after install", table);
	if (r == 0 && render_listing(js, &got) < 0)
		r = err_set(e, -EBADMSG, "cannot parse the nftables listing of table %s", table);
	if (r == 0 && strcmp(got, want) != 0) {
		/* Name the first line that differs. */
		const char *g = got, *w = want;
		while (*g && *g == *w) {
			g++;
			w++;
		}
		while (g > got && g[-1] != '\n') {
			g--;
			w--;
		}
		r = err_set(e, -EPROTO, "nftables table %s differs from the installed ruleset: "
			    "expected '%.*s', kernel has '%.*s'", table,
			    *w ? (int)strcspn(w, "\n") : 9, *w ? w : "(nothing)",
			    *g ? (int)strcspn(g, "\n") : 9, *g ? g : "(nothing)");
	}
	free(js);
	free(got);
	free(want);
	return r;
}

int ruleset_delete(const char *table, struct err *e)
{
	bool exists;
	int r = ruleset_exists(table, &exists, e);
	if (r < 0)
		return r;
	if (exists) {
		char cmd[64];
		snprintf(cmd, sizeof(cmd), "delete table ip %s", table);
		r = run(cmd, 0, NULL, "delete nftables table", e);
		if (r < 0 && r != -ENOENT)
			return r;
		r = ruleset_exists(table, &exists, e);
		if (r < 0)
			return r;
		if (exists)
			return err_set(e, -EBUSY, "nftables table %s still exists after delete", table);
	}
	return 0;
}
