/* fake_holder.c - an impostor holder for the version-mismatch test: it
 * serves the .ctl handshake but answers protocol "1". It records its PID so
 * the test can check the client killed and reaped it. */
#include "rpc/wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	const char *root = getenv("FLEETBOX_HOME");
	if (argc < 3 || !root)
		return 2;
	char first[64];
	snprintf(first, sizeof(first), "%s", argv[2]);
	char *comma = strchr(first, ',');
	if (comma)
		*comma = '\0';
	char pidpath[512];
	snprintf(pidpath, sizeof(pidpath), "%s/fake-holder.pid", root);
	FILE *f = fopen(pidpath, "w");
	if (!f)
		return 1;
	fprintf(f, "%d", (int)getpid());
	fclose(f);
	char ctl[128];
	if (wire_ctl_path(root, first, ctl, sizeof(ctl)) < 0)
		return 1;
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", ctl);
	unlink(ctl);
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 4) < 0)
		return 1;
	for (;;) {
		int c = accept(s, NULL, NULL);
		if (c < 0)
			continue;
		char buf[8];
		if (read(c, buf, 4) == 4 && write(c, "1", 1) == 1)
			pause(); /* wait to be killed */
		close(c);
	}
}
