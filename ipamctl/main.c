/* ipamctl: the command line over the daemon's operator API (/api/v1). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipamctl/args.h"
#include "ipamctl/client.h"
#include "ipamctl/commands.h"

/* Whether stdout is a terminal that takes colours (and NO_COLOR is unset). */
static bool
main_colour(void)
{
	const char *term = getenv("TERM");

	return isatty(STDOUT_FILENO) && getenv("NO_COLOR") == NULL &&
	    term != NULL && strcmp(term, "dumb") != 0;
}

/* The environment, as args_parse looks it up. */
static const char *
main_lookup(const char *name)
{
	return getenv(name);
}

/* Prints the help of the command named (or of the program) on stdout. */
static int
main_help(const struct args *args)
{
	enum args_command command = args->command;

	if (command == ARGS_COMMAND_HELP && args->positional_count == 1)
		command = args_find_command(args->positionals[0]);
	if (command == ARGS_COMMAND_HELP && args->positional_count == 0)
		command = ARGS_COMMAND_NONE;
	fputs(args_usage(command), stdout);
	fputs("\n", stdout);
	fputs(args_global_usage(), stdout);
	return CLIENT_EXIT_OK;
}

/* Parses the command line, runs the command and exits with its status. */
int
main(int argc, char **argv)
{
	struct args		 args;
	struct client		 client;
	struct commands_context	 context;
	char			 error[1024];
	int			 status;

	if (args_parse(argc, argv, main_lookup, &args, error,
	    sizeof(error)) == -1) {
		fprintf(stderr, "ipamctl: %s\n", error);
		if (strchr(error, '\n') == NULL)
			fprintf(stderr, "try 'ipamctl --help' or "
			    "'ipamctl COMMAND --help'\n");
		return CLIENT_EXIT_USAGE;
	}
	if (args.help || args.command == ARGS_COMMAND_HELP)
		return main_help(&args);
	if (client_init(&client, args.url, args.token_file, args.requester,
	    args.timeout, error, sizeof(error)) == -1) {
		fprintf(stderr, "ipamctl: %s\n", error);
		return CLIENT_EXIT_USAGE;
	}
	context.args = &args;
	context.client = &client;
	context.out = stdout;
	context.err = stderr;
	context.colour = main_colour();
	status = commands_run(&context);
	client_close(&client);
	/*
	 * A write that failed before the end (a full disk, /dev/full) leaves
	 * nothing in the buffer for fflush to fail on: ferror remembers it.
	 * An export cut short must not look complete.
	 */
	if (fflush(stdout) == EOF && status == CLIENT_EXIT_OK) {
		perror("ipamctl: standard output");
		status = CLIENT_EXIT_UNREACHABLE;
	} else if (ferror(stdout) && status == CLIENT_EXIT_OK) {
		fprintf(stderr, "ipamctl: standard output: a write failed\n");
		status = CLIENT_EXIT_UNREACHABLE;
	}
	return status;
}
