/* ipamctl's commands: each builds its request, sends it, shows the answer. */
#ifndef IPAMCTL_COMMANDS_H
#define IPAMCTL_COMMANDS_H

#include <stdbool.h>
#include <stdio.h>

#include "ipamctl/args.h"
#include "ipamctl/client.h"

/* What a command runs with. */
struct commands_context {
	const struct args	*args;
	struct client		*client;
	FILE			*out;		/* results */
	FILE			*err;		/* errors, hints, warnings */
	bool			 colour;	/* out is a colour terminal */
};

/* Runs the command args name; returns ipamctl's exit status. */
enum client_exit commands_run(struct commands_context *context);

#endif
