/* cli/cli.h - the fleetbox command line. Only the files in cli/ print. */
#pragma once

int cli_main(int argc, char **argv);
/* Implemented in cli/ssh.c */
int cli_ssh(const char *root, int argc, char **argv);
int cli_cp(const char *root, int argc, char **argv);
int cli_ssh_config(const char *root, int argc, char **argv);
/* Prints "error: <msg>" to stderr and returns 1. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
