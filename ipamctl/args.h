/* ipamctl's command line: the commands, their options, the parsed request. */
#ifndef IPAMCTL_ARGS_H
#define IPAMCTL_ARGS_H

#include <stdbool.h>
#include <stddef.h>

#define ARGS_MAX_STATUSES	8
#define ARGS_MAX_POSITIONALS	4

/* The most rows a page of the API holds (its limit, 1-1000). */
#define ARGS_MAX_LIMIT		1000
#define ARGS_MAX_ALLOCATE	256	/* addresses one allocation asks for */
#define ARGS_REQUESTER_MAX	64	/* characters of X-Requester the daemon takes */

/* Where the daemon is when neither --url nor $IPAMCTL_URL says. */
#define ARGS_DEFAULT_URL	"http://127.0.0.1:10187"

/*
 * How long the daemon may send nothing before ipamctl gives up: above the
 * daemon's own deadline for a reply with its default settings (120 s);
 * a daemon whose api.write_wait_ms is longer needs --timeout.
 */
#define ARGS_DEFAULT_TIMEOUT	120
#define ARGS_MAX_TIMEOUT	86400

/* The commands; ARGS_COMMAND_NONE before one is named. */
enum args_command {
	ARGS_COMMAND_NONE,
	ARGS_COMMAND_HELP,
	ARGS_COMMAND_LS,
	ARGS_COMMAND_SHOW,
	ARGS_COMMAND_RESERVE,
	ARGS_COMMAND_QUARANTINE,
	ARGS_COMMAND_RELEASE,
	ARGS_COMMAND_ALLOCATE,
	ARGS_COMMAND_SUBNETS,
	ARGS_COMMAND_CONFLICTS,
	ARGS_COMMAND_DEAD_LETTERS,
	ARGS_COMMAND_UNPLACED,
	ARGS_COMMAND_STATS,
	ARGS_COMMAND_REQUEST,
	ARGS_COMMAND_EXPORT,
	ARGS_COMMAND_IMPORT,
};

/* How export writes its rows. */
enum args_export_format {
	ARGS_EXPORT_CSV,
	ARGS_EXPORT_JSON,
};

/* What --active and --inactive asked for. */
enum args_active {
	ARGS_ACTIVE_ANY,
	ARGS_ACTIVE_TRUE,
	ARGS_ACTIVE_FALSE,
};

/*
 * One invocation, parsed.  The strings point into argv or into the
 * environment: nothing here is owned.
 */
struct args {
	/* Global options. */
	const char		*url;
	const char		*token_file;
	const char		*vrf;
	const char		*requester;
	long			 timeout;	/* seconds with nothing received */
	bool			 timeout_given;	/* --timeout, over the environment */
	bool			 json;
	bool			 help;

	enum args_command	 command;
	const char		*command_name;	/* as typed: "populate" stays */

	/* ls and export filters. */
	const char		*subnet;
	const char		*statuses[ARGS_MAX_STATUSES];
	size_t			 status_count;
	const char		*ip_type;
	enum args_active	 active;
	const char		*query;
	const char		*changed_since;
	const char		*sort;
	long			 limit;		/* 0: the API's default */
	bool			 all;
	bool			 count;

	/* Writes. */
	const char		*description;
	const char		*reason;
	const char		*if_match;
	bool			 if_available;
	long			 allocate_count;

	/* dead-letters and conflicts. */
	bool			 raw;
	const char		*kind;

	/* export. */
	enum args_export_format	 export_format;
	bool			 csv;		/* --csv given */

	/* import. */
	const char		*servers_file;
	const char		*subnets_file;
	bool			 dry_run;

	const char		*positionals[ARGS_MAX_POSITIONALS];
	size_t			 positional_count;
};

/* Looks an environment variable up; getenv in the program, a table in tests. */
typedef const char *(*args_lookup_fn)(const char *name);

/*
 * Parses argv (argv[0] is the program) into args, with defaults from the
 * environment through lookup.  Returns 0, or -1 with a sentence in error:
 * a usage error.  A --help anywhere sets args->help and skips the checks
 * of what the command needs.
 */
int	 args_parse(int argc, char **argv, args_lookup_fn lookup,
	    struct args *args, char *error, size_t error_size);

/* The usage of one command (or of the program for ARGS_COMMAND_NONE). */
const char *args_usage(enum args_command command);

/* The global options' usage, printed after every command's. */
const char *args_global_usage(void);

/* The canonical name of a command ("import" for populate too). */
const char *args_command_name(enum args_command command);

/* Finds a command by name or alias; ARGS_COMMAND_NONE when unknown. */
enum args_command args_find_command(const char *name);

#endif
