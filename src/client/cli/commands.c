/* cli/commands.c - the one description of every command: synopsis, options,
 * help text, examples, exit codes and the function that runs it. `--help`,
 * `help CMD`, the man page and the shell completions are rendered from this
 * table (help.c, completion.c) and the parsers read the option tables, so
 * what is documented is what is accepted. */
#include "client/cli/cli.h"

#include <string.h>

/* ---- options ---- */

const struct cli_opt cli_up_opts[] = {
	{ 'n', 'n', "count", CLI_VALUE, "N", "create NAME-1..NAME-N (one NAME, or \"default\")", NULL },
	{ 'c', 0, "cpus", CLI_VALUE, "N", "virtual CPUs per new member (default 2)", NULL },
	{ 'm', 0, "mem", CLI_VALUE, "GB", "memory per new member (default 1 for mini, else 4)", NULL },
	{ 'd', 0, "disk", CLI_VALUE, "GB", "disk size per new member (default 20)", NULL },
	{ 'i', 0, "image", CLI_VALUE, "IMAGE", "mini (default), a catalog alias, a URL or a path",
	  "mini|debian-11|debian-12|debian-13|ubuntu-22.04|ubuntu-24.04|ubuntu-26.04" },
	{ 'f', 0, "fixture", CLI_VALUE, "HOST:GUEST",
	  "mount host directory HOST read-only at GUEST (repeatable)", "files" },
	{ 0 },
};

static const struct cli_opt down_opts[] = {
	{ 'a', 'a', "all", CLI_FLAG, NULL, "every member in the store", NULL },
	{ 0 },
};

static const struct cli_opt rm_opts[] = {
	{ 'a', 'a', "all", CLI_FLAG, NULL, "every member in the store", NULL },
	{ 'f', 'f', "force", CLI_FLAG, NULL, "do not ask for confirmation", NULL },
	{ 0 },
};

static const struct cli_opt ls_opts[] = {
	{ 'q', 'q', "quiet", CLI_FLAG, NULL, "names only, one per line", NULL },
	{ 'o', 'o', "output", CLI_VALUE, "FORMAT", "table (default) or json", "table|json" },
	{ 'F', 0, "format", CLI_VALUE, "FORMAT", "the same as --output", "table|json" },
	{ 'j', 0, "json", CLI_FLAG, NULL, "the same as --output json", NULL },
	{ 0 },
};

static const struct cli_opt none_opts[] = { { 0 } };

const struct cli_opt cli_prune_opts[] = {
	{ 'I', 0, "images", CLI_FLAG, NULL,
	  "instead: remove cached images no member disk backs onto, and stale temporaries", NULL },
	{ 'O', 0, "older-than", CLI_VALUE, "DAYS", "with --images: only images unused for DAYS days",
	  NULL },
	{ 0 },
};

const struct cli_opt cli_image_opts[] = {
	{ 'o', 'o', "output", CLI_VALUE, "FORMAT", "ls: table (default) or json", "table|json" },
	{ 'N', 0, "name", CLI_VALUE, "NAME", "build: cache it as NAME (default debian-N-local)", NULL },
	{ 0 },
};

static const struct cli_opt ssh_opts[] = {
	{ 't', 't', NULL, CLI_FLAG, NULL, "allocate a terminal even for a command", NULL },
	{ 'T', 'T', NULL, CLI_FLAG, NULL, "never allocate a terminal", NULL },
	{ 'r', 0, "root", CLI_FLAG, NULL, "act as root in the guest (passwordless sudo)", NULL },
	{ 'u', 'u', "user", CLI_VALUE, "USER", "act as USER in the guest (through sudo)", "root|fleetbox" },
	{ 0 },
};

static const struct cli_opt cp_opts[] = {
	{ 'r', 0, "root", CLI_FLAG, NULL, "read and write guest files as root (passwordless sudo)", NULL },
	{ 'u', 'u', "user", CLI_VALUE, "USER", "read and write guest files as USER (through sudo)",
	  "root|fleetbox" },
	{ 'q', 'q', "quiet", CLI_FLAG, NULL, "no progress display", NULL },
	{ 0 },
};

static const struct cli_opt logs_opts[] = {
	{ 'f', 'f', "follow", CLI_FLAG, NULL, "keep printing new lines until the member stops (or Ctrl-C)", NULL },
	{ 'n', 'n', "lines", CLI_VALUE, "N", "only the last N lines of each log (default: all)", NULL },
	{ 'c', 0, "console", CLI_FLAG, NULL, "only the serial console", NULL },
	{ 'H', 0, "holder", CLI_FLAG, NULL, "only the holder's lines", NULL },
	{ 0 },
};

/* ---- examples and exit codes ---- */

#define EXITS_PLAIN(ok, bad) \
	{ { 0, ok }, { 1, bad }, { -1, NULL } }

static const struct cli_example up_ex[] = {
	{ "fleetbox up web -n 3", "three members web-1, web-2, web-3 on one private network" },
	{ "fleetbox up db --cpus 4 --mem 8 --image debian-12", "one Debian 12 member with 4 CPUs and 8 GB" },
	{ "fleetbox up web", "after `down web`: boot web-1..web-3 again from their stored config" },
	{ "fleetbox up dev --fixture ./src:/src", "mount ./src read-only at /src in the guest" },
	{ NULL, NULL },
};
static const struct cli_exit up_exits[] = {
	{ 0, "every member is running and answers SSH" },
	{ 1, "bad arguments, or a failure (members this call created are deleted, others stopped)" },
	{ 130, "interrupted by Ctrl-C (rolled back the same way)" },
	{ 143, "terminated by SIGTERM (rolled back the same way)" },
	{ -1, NULL },
};
static const struct cli_example down_ex[] = {
	{ "fleetbox down web", "stop web-1, web-2, ... (every member of cluster web)" },
	{ "fleetbox down web-2", "stop one member" },
	{ "fleetbox down --all", "stop everything in the store" },
	{ NULL, NULL },
};
static const struct cli_exit down_exits[] = EXITS_PLAIN(
	"the members are stopped (also when they already were)",
	"bad arguments, no such member, or a stop failed");
static const struct cli_example rm_ex[] = {
	{ "fleetbox rm web", "asks, then deletes web-1, web-2, ... and their disks" },
	{ "fleetbox rm -f web-3", "deletes one member without asking (scripts)" },
	{ "fleetbox rm -f --all", "deletes everything in the store" },
	{ NULL, NULL },
};
static const struct cli_exit rm_exits[] = EXITS_PLAIN(
	"deleted (also when nothing matched: rm is idempotent)",
	"refused (no -f and stdin is not a terminal), aborted at the prompt, or something "
	"could not be deleted");
static const struct cli_example ls_ex[] = {
	{ "fleetbox ls", "a table of every member" },
	{ "fleetbox ls web", "only the members of cluster web" },
	{ "fleetbox ls --json | jq -r '.[].ip'", "machine-readable" },
	{ "fleetbox ls -q", "names only" },
	{ NULL, NULL },
};
static const struct cli_exit ls_exits[] = EXITS_PLAIN("listed (warnings name entries that could not be read)",
						      "bad arguments or an unreadable store");
static const struct cli_example status_ex[] = {
	{ "fleetbox status web-1", "{\"name\": \"web-1\", \"state\": \"running\", ...}" },
	{ NULL, NULL },
};
static const struct cli_exit status_exits[] = EXITS_PLAIN("printed", "bad arguments or no such member");
static const struct cli_example ssh_ex[] = {
	{ "fleetbox ssh web-1", "an interactive shell" },
	{ "fleetbox ssh web-1 -- uname -a", "run a command, exit with its status" },
	{ "fleetbox ssh --root web-1 -- systemctl restart nginx", "as root" },
	{ "fleetbox ssh web-1 -- 'ls / | wc -l'", "one word: a shell command line" },
	{ "fleetbox ssh -t web-1 -- top", "a terminal for a full-screen program" },
	{ NULL, NULL },
};
static const struct cli_exit ssh_exits[] = {
	{ 0, "the remote command (or shell) exited 0" },
	{ -2, "the remote command's exit status N (128+N when it was killed by signal N)" },
	{ 255, "a fleetbox or connection error (no such member, not running, host key, network, "
	       "the member was stopped)" },
	{ -1, NULL },
};
static const struct cli_example cp_ex[] = {
	{ "fleetbox cp ./app.conf web-1:/home/fleetbox/", "a file into the guest user's home" },
	{ "fleetbox cp --root ./conf web-2:/etc/app/", "a tree into /etc (as root in the guest)" },
	{ "fleetbox cp web-1:/var/log ./logs", "a directory out of the guest" },
	{ NULL, NULL },
};
static const struct cli_exit cp_exits[] = EXITS_PLAIN("copied", "bad arguments or the copy failed "
							       "(the message says why)");
static const struct cli_example sshconfig_ex[] = {
	{ "fleetbox ssh-config", "print Host blocks for every member, write <store>/ssh_config" },
	{ "echo \"Include $HOME/.fleetbox/ssh_config\" >> ~/.ssh/config",
	  "once; then `ssh web-1` works with plain OpenSSH" },
	{ "fleetbox ssh-config web", "only the members of cluster web" },
	{ NULL, NULL },
};
static const struct cli_exit plain_exits[] = EXITS_PLAIN("done", "bad arguments or a failure");
static const struct cli_example logs_ex[] = {
	{ "fleetbox logs web-1", "the serial console and the holder's lines about web-1" },
	{ "fleetbox logs -f web-1", "follow while it boots" },
	{ "fleetbox logs --console -n 50 web-1", "the last 50 console lines" },
	{ NULL, NULL },
};
static const struct cli_exit logs_exits[] = {
	{ 0, "printed (with -f: the member stopped)" },
	{ 1, "bad arguments, no such member, or no readable log" },
	{ 130, "-f ended by Ctrl-C" },
	{ -1, NULL },
};
static const struct cli_example prune_ex[] = {
	{ "fleetbox prune", "after a crash: remove leftover taps, bridges, firewall tables, VMMs" },
	{ "fleetbox prune --images --older-than 30", "free the image cache of images unused for a month" },
	{ NULL, NULL },
};
static const struct cli_exit prune_exits[] = EXITS_PLAIN(
	"everything left by dead holders was reclaimed",
	"some network state could not be reclaimed (the message says what)");
static const struct cli_example image_ex[] = {
	{ "fleetbox image prepare", "build the mini image now (before going offline)" },
	{ "fleetbox image prepare debian-12", "download and verify a catalog image" },
	{ "fleetbox image build debian-12", "build Debian 12 from the archive: --image debian-12-local" },
	{ "fleetbox image ls", "what the cache holds, and which images member disks use" },
	{ "fleetbox image rm debian-12", "remove an image no member disk backs onto" },
	{ NULL, NULL },
};
static const struct cli_example completion_ex[] = {
	{ "fleetbox completion bash > ~/.local/share/bash-completion/completions/fleetbox",
	  "bash-completion loads it when needed (meson install puts it in place system-wide)" },
	{ "source <(fleetbox completion bash)", "or this in ~/.bashrc" },
	{ "fleetbox completion zsh > ~/.zfunc/_fleetbox", "with ~/.zfunc in $fpath" },
	{ NULL, NULL },
};
static const struct cli_example help_ex[] = {
	{ "fleetbox help up", "help for one command" },
	{ "fleetbox help environment", "every environment variable" },
	{ NULL, NULL },
};

/* ---- the table ---- */

const struct cli_command cli_commands[] = {
	{ "up", "up [NAME...] [-n N] [--cpus N] [--mem GB] [--disk GB] [--image IMAGE] "
		"[--fixture HOST:GUEST]...",
	  "create missing members and boot stopped ones, on one network",
	  "Creates the members that do not exist and boots the stopped ones, all on one\n"
	  "private network in one detached holder, and waits until each answers SSH.\n"
	  "Members of a cluster that is already running join its network. -n N with one\n"
	  "NAME gives NAME-1..NAME-N (N at most 253, what one /24 network holds); no NAME\n"
	  "gives \"default\". Create options are ignored for members that exist (with a\n"
	  "note).\n"
	  "\n"
	  "A NAME is resolved as down and rm resolve it: an existing member of that name,\n"
	  "else every member of the cluster of that name (after `down web`, `up web` boots\n"
	  "web-1, web-2, ... again), else a new member. A NAME that is both a\n"
	  "member and a cluster (a solo `web` next to web-1) means the member.\n"
	  "Members a test harness holds (a bound cluster) are neither joined nor returned.\n"
	  "\n"
	  "Progress: on a terminal, a line per member updated in place (phase, seconds,\n"
	  "the guest console's last line); otherwise a line per change. Each member's IP\n"
	  "line is printed as soon as that member answers SSH.\n"
	  "\n"
	  "All-or-nothing: on failure, or on Ctrl-C / SIGTERM, members created by this\n"
	  "call are deleted, pre-existing ones stopped again, running ones left alone;\n"
	  "what was rolled back is printed. A second Ctrl-C stops waiting for VMs to\n"
	  "power off (the holder this up started is killed); a third kills fleetbox.\n"
	  "\n"
	  "Networking (bridges, taps, nftables) needs root: when run by another user,\n"
	  "fleetbox re-runs the command through sudo (FLEETBOX_NO_SUDO=1 disables that);\n"
	  "the store stays the invoking user's.",
	  cli_up_opts, "members", up_ex, up_exits, cli_up, CLI_NET_ROOT },
	{ "down", "down NAME...|--all", "stop members, keep their disks",
	  "Stops members gracefully (an ACPI power-off, then escalation); disks and\n"
	  "configuration are kept, `up` boots them again. A NAME is an exact member, else\n"
	  "every member of that cluster (web matches web-1 and web-2, never web-prod).\n"
	  "An open `fleetbox ssh` session to a stopped member ends with exit status 255.",
	  down_opts, "members", down_ex, down_exits, cmd_down, 0 },
	{ "rm", "rm NAME...|--all [-f]", "stop and delete members and their disks",
	  "Stops members and deletes them with their disks. Shows what will be deleted\n"
	  "and asks \"Continue? [y/N]\" unless -f; without -f it refuses when stdin is not\n"
	  "a terminal. A NAME that matches nothing is reported and skipped. Prints one\n"
	  "\"removed NAME\" line per member that is really gone.",
	  rm_opts, "members", rm_ex, rm_exits, cmd_rm, 0 },
	{ "ls", "ls [NAME...] [-q] [-o table|json] [--json]", "list members",
	  "Lists members (all, or those matching the NAME patterns) with their live state.\n"
	  "Columns: NAME CLUSTER IP STATE CPUS MEM DISK AGE; the IP of a member that is\n"
	  "not running is \"-\". JSON: an array of {name, cluster, ip, state, cpus,\n"
	  "memory_mb, disk_mb, image, created_at}. Store entries that cannot be read are\n"
	  "named in a warning on stderr.",
	  ls_opts, "members", ls_ex, ls_exits, cmd_ls, 0 },
	{ "status", "status NAME", "live status of one member as JSON",
	  "Prints the member's stored configuration and its holder's live status as JSON\n"
	  "(state, ip, holder pid, error).",
	  none_opts, "members", status_ex, status_exits, cmd_status, 0 },
	{ "ssh", "ssh [-t|-T] [--root|-u USER] NAME [--] [CMD...]", "a shell, or run a command",
	  "Without CMD: an interactive login shell on a terminal. With CMD: runs it and\n"
	  "exits with its status. One word is a shell command line (-- 'ls | wc -l');\n"
	  "several words are passed as an exact argv (-- sh -c 'exit 7' exits 7).\n"
	  "\n"
	  "A terminal is allocated when stdin and stdout are terminals (-t forces it,\n"
	  "-T prevents it), so sudo -i, top and vim work and Ctrl-C reaches the remote\n"
	  "command. The guest user is fleetbox; --root (or -u root) acts as root through\n"
	  "the guest's passwordless sudo. Every connection pins the member's host key.\n"
	  "The session ends (exit 255) when the member is stopped or stops answering.",
	  ssh_opts, "members", ssh_ex, ssh_exits, cli_ssh, 0 },
	{ "cp", "cp [--root|-u USER] [-q] SRC DST", "copy files and trees to or from a member",
	  "Exactly one of SRC and DST is NAME:/absolute/path. Copies files and directory\n"
	  "trees like cp -r (an existing directory DST receives SRC under its name),\n"
	  "keeping modes and symlinks; ownership is that of the guest user (fleetbox), or\n"
	  "root with --root. Large copies show bytes and rate on a terminal.",
	  cp_opts, "files", cp_ex, cp_exits, cli_cp, 0 },
	{ "ssh-config", "ssh-config [NAME...]", "OpenSSH configuration for the members",
	  "Prints Host blocks so plain OpenSSH (ssh, scp, rsync, ansible) connects with\n"
	  "host key checking on, and writes the same for every member to\n"
	  "<store>/ssh_config. Include that file from ~/.ssh/config rather than appending\n"
	  "the output: addresses change across restarts, and `up` rewrites the file.",
	  none_opts, "members", sshconfig_ex, plain_exits, cli_ssh_config, 0 },
	{ "logs", "logs [-f] [-n N] [--console|--holder] NAME", "a member's console and holder log",
	  "Prints the member's serial console (<member dir>/serial.log) and the lines of\n"
	  "its holder's log (<store>/runner-*.log) that are about it. With -f, keeps\n"
	  "printing as they grow until the member stops or Ctrl-C.",
	  logs_opts, "members", logs_ex, logs_exits, cmd_logs, 0 },
	{ "prune", "prune [--images [--older-than DAYS]]", "reclaim state left by crashed holders",
	  "Kills VMM processes, removes taps, bridges, firewall tables and stale sockets\n"
	  "left by holders that died (their crash records say what). Needs root when\n"
	  "networking is on, like up.\n"
	  "With --images it instead prunes the image cache: every cached image that no\n"
	  "member disk backs onto (with --older-than, only those also unused for DAYS\n"
	  "days), and temporaries of writers that died.",
	  cli_prune_opts, NULL, prune_ex, prune_exits, cmd_prune, CLI_NET_ROOT },
	{ "image", "image ls [-o json] | rm NAME|DIGEST... | prepare [IMAGE] | "
		   "build mini|debian-N [--name NAME]", "the image cache: list, remove, prepare, build",
	  "Images live in one cache per user (FLEETBOX_CACHE, else ~/.cache/fleetbox),\n"
	  "shared by all of that user's stores.\n"
	  "ls lists each cached image: names, source, digest, size on disk, last use,\n"
	  "and the member disks backed by it. rm removes images by name, digest or\n"
	  "digest prefix; it refuses an image a member disk still backs onto.\n"
	  "prepare builds, downloads or imports IMAGE (mini, a catalog alias, a URL, a\n"
	  "path) now, e.g. before going offline. build rebuilds mini, or builds a Debian\n"
	  "image (debian-11, debian-12, debian-13) from the Debian archive, usable as\n"
	  "--image debian-N-local (or NAME) afterwards. A Debian build runs mmdebstrap,\n"
	  "mke2fs and sfdisk as root (2-5 min, one progress line per phase) and makes a\n"
	  "disk shaped like Debian's cloud images: GPT, ext4 root, cloud kernel, systemd,\n"
	  "cloud-init (NoCloud), openssh-server, sudo, ifupdown; no root password, host\n"
	  "keys and machine-id made on first boot.",
	  cli_image_opts, "ls|rm|prepare|build", image_ex, plain_exits, cmd_image, 0 },
	{ "completion", "completion bash|zsh", "shell completion script",
	  "Prints a completion script for bash or zsh: commands, options, member names\n"
	  "(from `fleetbox ls -q`) and files.",
	  none_opts, "bash|zsh", completion_ex, plain_exits, cmd_completion, CLI_NO_STORE },
	{ "help", "help [COMMAND|environment]", "help for a command",
	  "Prints help for a command (the same as fleetbox COMMAND --help), or the list\n"
	  "of environment variables.",
	  none_opts, "commands", help_ex, plain_exits, NULL, CLI_NO_STORE },
	{ NULL },
};

const struct cli_command *cli_command_find(const char *name)
{
	for (const struct cli_command *c = cli_commands; c->name; c++)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

const char *cli_command_nearest(const char *name)
{
	const char *names[64];
	size_t n = 0;
	for (const struct cli_command *c = cli_commands; c->name && n < 62; c++)
		names[n++] = c->name;
	names[n++] = "version";
	names[n] = NULL;
	return cli_nearest(name, names);
}
