/* cli.h — the subcommands of the longctx binary. Each lives with its part of the code:
 *   suite  -> suites/cli.c      sweep, bench -> bench/       info -> model/longctx.c
 * Each takes argv after the subcommand name (argv[0] is the subcommand), prints --help, and
 * returns the process exit status (0 ok, 1 failure, 2 bad usage). */
#ifndef LONGCTX_CLI_H
#define LONGCTX_CLI_H

int cmd_info(int argc, char **argv);
int cmd_suite(int argc, char **argv);
int cmd_sweep(int argc, char **argv);
int cmd_bench(int argc, char **argv);

#endif
