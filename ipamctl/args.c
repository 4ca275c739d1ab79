/* ipamctl's command line: a table of commands and a table of options. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ipamctl/args.h"

/* A command: its names, what it takes and its usage text. */
struct args_command_spec {
	enum args_command	 command;
	const char		*name;
	const char		*alias;
	size_t			 min_positionals;
	size_t			 max_positionals;
	const char		*usage;
};

/* The help names the bound of a requester in words. */
_Static_assert(ARGS_REQUESTER_MAX == 64, "GLOBAL_USAGE says 64");

#define GLOBAL_USAGE \
	"global options (before or after the command):\n" \
	"  --url URL          the daemon's API (default $IPAMCTL_URL, else " \
	    ARGS_DEFAULT_URL ")\n" \
	"  --token-file FILE  a file holding the bearer token on one line\n" \
	"                     (default $IPAMCTL_TOKEN_FILE)\n" \
	"  --vrf VRF          the routing domain (default: the default vrf)\n" \
	"  --json             the API's JSON as it came, for scripts\n" \
	"  --requester NAME   who asks, recorded with a write (default $USER\n" \
	"                     when it is at most 64 printable ASCII characters)\n" \
	"  --timeout SECONDS  give up when the daemon sends nothing for this\n" \
	"                     long (default $IPAMCTL_TIMEOUT, else 120)\n" \
	"  -h, --help         this help\n"

#define FILTER_USAGE \
	"  --subnet ID        addresses of one subnet\n" \
	"  --status STATUS    available, allocated, reserved or quarantine\n" \
	"                     (repeat for several)\n" \
	"  --type TYPE        static or dhcp\n" \
	"  --active, --inactive  answering pings or not\n" \
	"  -q, --query TEXT   an address prefix (192.168.1.), or part of a\n" \
	"                     hostname, MAC address or description\n" \
	"  --changed-since T  changed at or after an RFC 3339 time\n" \
	"  --sort KEY         address (default), -address, updated_at, -updated_at\n"

static const struct args_command_spec args_commands[] = {
	{ ARGS_COMMAND_HELP, "help", NULL, 0, 1,
	    "usage: ipamctl help [COMMAND]\n"
	    "Shows the usage of ipamctl or of one command.\n" },
	{ ARGS_COMMAND_LS, "ls", "list", 0, 0,
	    "usage: ipamctl ls [filters] [--limit N] [--all] [--count]\n"
	    "Lists addresses, one page (--limit, default 100) or all of them.\n"
	    FILTER_USAGE
	    "  --limit N          rows per page, 1-1000\n"
	    "  --all              follow next_cursor to the last page\n"
	    "  --count            also print the total number of matching rows\n" },
	{ ARGS_COMMAND_SHOW, "show", NULL, 1, 1,
	    "usage: ipamctl show ADDR\n"
	    "Shows one address: its row, holders, mark, conflicts and history.\n" },
	{ ARGS_COMMAND_RESERVE, "reserve", NULL, 1, 1,
	    "usage: ipamctl reserve ADDR -d TEXT [--if-available] [--if-match ETAG]\n"
	    "Reserves an address with a description.\n"
	    "  -d, --description TEXT  why it is reserved (required)\n"
	    "  --if-available     only while no server and no mark hold it\n"
	    "  --if-match ETAG    only while the address is as shown with this etag\n" },
	{ ARGS_COMMAND_QUARANTINE, "quarantine", NULL, 1, 1,
	    "usage: ipamctl quarantine ADDR -r REASON [--if-available] [--if-match ETAG]\n"
	    "Quarantines an address, with the reason.\n"
	    "  -r, --reason REASON  why (required)\n"
	    "  --if-available     only while no server and no mark hold it\n"
	    "  --if-match ETAG    only while the address is as shown with this etag\n" },
	{ ARGS_COMMAND_RELEASE, "release", NULL, 1, 1,
	    "usage: ipamctl release ADDR [--if-match ETAG]\n"
	    "Clears the mark (reservation or quarantine) of an address.\n"
	    "  --if-match ETAG    only while the address is as shown with this etag\n" },
	{ ARGS_COMMAND_ALLOCATE, "allocate", NULL, 1, 1,
	    "usage: ipamctl allocate SUBNET [-n N] -d TEXT\n"
	    "Reserves the next free static address(es) of a subnet.\n"
	    "  -n, --count N      how many addresses, 1-256 (default 1)\n"
	    "  -d, --description TEXT  what they are for (required)\n" },
	{ ARGS_COMMAND_SUBNETS, "subnets", NULL, 0, 1,
	    "usage: ipamctl subnets [ID]\n"
	    "Lists the subnets with their pool statistics, or shows one.\n" },
	{ ARGS_COMMAND_CONFLICTS, "conflicts", NULL, 0, 0,
	    "usage: ipamctl conflicts [--kind KIND]\n"
	    "Lists the conflicts: several servers on one address, a server on a\n"
	    "reserved or quarantined address, shadowed pools, duplicate subnets.\n"
	    "  --kind KIND        several_servers, server_on_reserved,\n"
	    "                     server_on_quarantine, pool_shadowed or\n"
	    "                     duplicate_subnet\n" },
	{ ARGS_COMMAND_DEAD_LETTERS, "dead-letters", NULL, 0, 0,
	    "usage: ipamctl dead-letters [--limit N] [--all] [--raw]\n"
	    "Lists the messages the daemon could not apply, newest first.\n"
	    "  --limit N          rows per page, 1-1000\n"
	    "  --all              follow next_cursor to the last page\n"
	    "  --raw              ask for the key and value as base64 (with --json)\n" },
	{ ARGS_COMMAND_UNPLACED, "unplaced", NULL, 0, 0,
	    "usage: ipamctl unplaced\n"
	    "Lists servers and marks whose address is in no subnet of their vrf.\n" },
	{ ARGS_COMMAND_STATS, "stats", NULL, 0, 0,
	    "usage: ipamctl stats\n"
	    "Prints the counts per status and type, and the consumer's view.\n" },
	{ ARGS_COMMAND_REQUEST, "request", NULL, 1, 1,
	    "usage: ipamctl request ID\n"
	    "Shows the outcome of a write that was accepted but not yet applied\n"
	    "(exit status 5): applied (exit 0) or refused (exit 3), and the row,\n"
	    "or not decided yet (exit 5); for an import (ID\n"
	    "topic:partition:offset,...), applied (0) or pending (5).\n" },
	{ ARGS_COMMAND_EXPORT, "export", NULL, 0, 0,
	    "usage: ipamctl export [--csv | --json] [filters]\n"
	    "Writes every matching address row to standard output.\n"
	    "  --csv              CSV with the header of the ipam view (default)\n"
	    "  --json             a JSON array of rows\n"
	    FILTER_USAGE },
	{ ARGS_COMMAND_IMPORT, "import", "populate", 0, 0,
	    "usage: ipamctl import [--servers FILE] [--subnets FILE] [--dry-run]\n"
	    "       ipamctl populate ...  (the same)\n"
	    "Imports an inventory: servers (id,hostname,ip_address,nic_mac,\n"
	    "device_type,manufacture[,vrf]) and subnets (id,name,cidr,\n"
	    "static_ip_pools[,vrf,ping]), each file CSV or JSON.\n"
	    "  --servers FILE     the servers' table\n"
	    "  --subnets FILE     the subnets' table\n"
	    "  --dry-run          print what would change; publish nothing\n" },
};

#define COMMAND_COUNT	(sizeof(args_commands) / sizeof(args_commands[0]))

/* The options, each with the commands it belongs to (0: global). */
enum args_option_id {
	OPT_URL, OPT_TOKEN_FILE, OPT_VRF, OPT_JSON, OPT_REQUESTER, OPT_TIMEOUT,
	OPT_HELP,
	OPT_SUBNET, OPT_STATUS, OPT_TYPE, OPT_ACTIVE, OPT_INACTIVE, OPT_QUERY,
	OPT_CHANGED_SINCE, OPT_SORT, OPT_LIMIT, OPT_ALL, OPT_LIST_COUNT,
	OPT_DESCRIPTION, OPT_REASON, OPT_IF_AVAILABLE, OPT_IF_MATCH,
	OPT_ALLOCATE_COUNT, OPT_RAW, OPT_CSV, OPT_SERVERS, OPT_SUBNETS,
	OPT_DRY_RUN, OPT_KIND,
};

#define ON(c)		(1u << (c))
#define FILTERS		(ON(ARGS_COMMAND_LS) | ON(ARGS_COMMAND_EXPORT))
#define MARKS		(ON(ARGS_COMMAND_RESERVE) | ON(ARGS_COMMAND_QUARANTINE))
#define PAGED		(ON(ARGS_COMMAND_LS) | ON(ARGS_COMMAND_DEAD_LETTERS))

struct args_option_spec {
	enum args_option_id	 id;
	const char		*long_name;
	char			 short_name;
	bool			 takes_value;
	unsigned		 commands;	/* 0: every command */
};

static const struct args_option_spec args_options[] = {
	{ OPT_URL, "url", 0, true, 0 },
	{ OPT_TOKEN_FILE, "token-file", 0, true, 0 },
	{ OPT_VRF, "vrf", 0, true, 0 },
	{ OPT_JSON, "json", 0, false, 0 },
	{ OPT_REQUESTER, "requester", 0, true, 0 },
	{ OPT_TIMEOUT, "timeout", 0, true, 0 },
	{ OPT_HELP, "help", 'h', false, 0 },
	{ OPT_SUBNET, "subnet", 0, true, FILTERS },
	{ OPT_STATUS, "status", 0, true, FILTERS },
	{ OPT_TYPE, "type", 0, true, FILTERS },
	{ OPT_ACTIVE, "active", 0, false, FILTERS },
	{ OPT_INACTIVE, "inactive", 0, false, FILTERS },
	{ OPT_QUERY, "query", 'q', true, FILTERS },
	{ OPT_CHANGED_SINCE, "changed-since", 0, true, FILTERS },
	{ OPT_SORT, "sort", 0, true, FILTERS },
	{ OPT_LIMIT, "limit", 0, true, PAGED },
	{ OPT_ALL, "all", 0, false, PAGED },
	{ OPT_LIST_COUNT, "count", 0, false, ON(ARGS_COMMAND_LS) },
	{ OPT_DESCRIPTION, "description", 'd', true,
	    ON(ARGS_COMMAND_RESERVE) | ON(ARGS_COMMAND_ALLOCATE) },
	{ OPT_REASON, "reason", 'r', true, ON(ARGS_COMMAND_QUARANTINE) },
	{ OPT_IF_AVAILABLE, "if-available", 0, false, MARKS },
	{ OPT_IF_MATCH, "if-match", 0, true, MARKS | ON(ARGS_COMMAND_RELEASE) },
	{ OPT_ALLOCATE_COUNT, "count", 'n', true, ON(ARGS_COMMAND_ALLOCATE) },
	{ OPT_RAW, "raw", 0, false, ON(ARGS_COMMAND_DEAD_LETTERS) },
	{ OPT_CSV, "csv", 0, false, ON(ARGS_COMMAND_EXPORT) },
	{ OPT_SERVERS, "servers", 0, true, ON(ARGS_COMMAND_IMPORT) },
	{ OPT_SUBNETS, "subnets", 0, true, ON(ARGS_COMMAND_IMPORT) },
	{ OPT_DRY_RUN, "dry-run", 0, false, ON(ARGS_COMMAND_IMPORT) },
	{ OPT_KIND, "kind", 0, true, ON(ARGS_COMMAND_CONFLICTS) },
};

#define OPTION_COUNT	(sizeof(args_options) / sizeof(args_options[0]))

/* Formats a usage error into the caller's buffer; returns -1. */
static int __attribute__((format(printf, 3, 4)))
args_fail(char *error, size_t error_size, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(error, error_size, fmt, ap);
	va_end(ap);
	return -1;
}

/* The spec of a command, or NULL. */
static const struct args_command_spec *
args_command_spec(enum args_command command)
{
	for (size_t i = 0; i < COMMAND_COUNT; i++)
		if (args_commands[i].command == command)
			return &args_commands[i];
	return NULL;
}

/* Finds a command by its name or alias. */
enum args_command
args_find_command(const char *name)
{
	for (size_t i = 0; i < COMMAND_COUNT; i++) {
		if (strcmp(args_commands[i].name, name) == 0 ||
		    (args_commands[i].alias != NULL &&
		    strcmp(args_commands[i].alias, name) == 0))
			return args_commands[i].command;
	}
	return ARGS_COMMAND_NONE;
}

/* The canonical name of a command. */
const char *
args_command_name(enum args_command command)
{
	const struct args_command_spec *spec = args_command_spec(command);

	return spec != NULL ? spec->name : "ipamctl";
}

/* The usage text of a command, or of the program. */
const char *
args_usage(enum args_command command)
{
	const struct args_command_spec *spec = args_command_spec(command);

	if (spec != NULL)
		return spec->usage;
	return "usage: ipamctl [global options] COMMAND [options]\n"
	    "commands:\n"
	    "  ls           list addresses (filters, pages)\n"
	    "  show ADDR    one address: row, holders, mark, conflicts, history\n"
	    "  reserve ADDR -d TEXT      reserve an address\n"
	    "  quarantine ADDR -r REASON quarantine an address\n"
	    "  release ADDR clear a reservation or quarantine\n"
	    "  allocate SUBNET [-n N] -d TEXT  reserve the next free address(es)\n"
	    "  subnets      subnets with their pool statistics\n"
	    "  conflicts    address conflicts (--kind KIND)\n"
	    "  dead-letters messages the daemon could not apply\n"
	    "  unplaced     servers and marks in no subnet\n"
	    "  stats        counts and the consumer's view\n"
	    "  export       every address row, CSV or JSON\n"
	    "  import       an inventory of servers and subnets (alias: populate)\n"
	    "  request ID   the outcome of a write accepted but not yet applied\n"
	    "  help [COMMAND]\n"
	    "'ipamctl COMMAND --help' shows a command's options; see ipamctl(1).\n"
	    "exit status: 0 ok, 1 refused by the API, 2 usage error, 3 conflict,\n"
	    "4 daemon unreachable or failing, 5 accepted but not yet applied.\n";
}

/*
 * Finds an option by long name (short_name 0) or short name, among the
 * global ones and those of the command.  An option of another command is
 * told apart from an unknown one, for a better message.
 */
static const struct args_option_spec *
args_find_option(const char *long_name, size_t long_len, char short_name,
    enum args_command command, bool *elsewhere)
{
	*elsewhere = false;
	for (size_t i = 0; i < OPTION_COUNT; i++) {
		const struct args_option_spec *option = &args_options[i];
		bool named = long_name != NULL ?
		    strlen(option->long_name) == long_len &&
		    strncmp(option->long_name, long_name, long_len) == 0 :
		    option->short_name != 0 && option->short_name == short_name;

		if (!named)
			continue;
		if (option->commands == 0 || (option->commands & ON(command)))
			return option;
		*elsewhere = true;
	}
	return NULL;
}

/* Parses a whole decimal number; returns false when text is not one. */
static bool
args_number(const char *text, long *value)
{
	char	*end;

	errno = 0;
	*value = strtol(text, &end, 10);
	return errno == 0 && end != text && *end == '\0';
}

/*
 * Whether the daemon takes name as X-Requester: at most
 * ARGS_REQUESTER_MAX printable ASCII characters (empty: none is sent).
 */
static bool
args_requester_ok(const char *name)
{
	size_t i;

	for (i = 0; name[i] != '\0'; i++)
		if (i >= ARGS_REQUESTER_MAX ||
		    (unsigned char)name[i] < 0x20 ||
		    (unsigned char)name[i] > 0x7e)
			return false;
	return true;
}

/* A timeout in seconds: 1 to ARGS_MAX_TIMEOUT.  Returns -1 when not. */
static int
args_timeout(const char *text, long *seconds)
{
	return args_number(text, seconds) && *seconds >= 1 &&
	    *seconds <= ARGS_MAX_TIMEOUT ? 0 : -1;
}

/* Tells whether text is UTF-8 (as every text the API takes must be). */
static bool
args_utf8(const char *text)
{
	json_t *string = json_string(text);

	json_decref(string);
	return string != NULL;
}

/* Applies one option and its value to args. */
static int
args_apply(struct args *args, const struct args_option_spec *option,
    const char *value, char *error, size_t error_size)
{
	switch (option->id) {
	case OPT_URL:
		if (value[0] == '\0')
			return args_fail(error, error_size, "--url: empty (the "
			    "daemon's API, such as %s)", ARGS_DEFAULT_URL);
		args->url = value;
		break;
	case OPT_TOKEN_FILE:
		args->token_file = value;
		break;
	case OPT_VRF:
		args->vrf = value;
		break;
	case OPT_JSON:
		/*
		 * Export's --json is its format (args_check decides, as the
		 * command may come after it); elsewhere, raw output.
		 */
		args->json = true;
		break;
	case OPT_REQUESTER:
		if (!args_requester_ok(value))
			return args_fail(error, error_size, "--requester: \"%s\" "
			    "is not a name the daemon takes (at most %d printable "
			    "ASCII characters)", value, ARGS_REQUESTER_MAX);
		args->requester = value[0] != '\0' ? value : NULL;
		break;
	case OPT_TIMEOUT:
		if (args_timeout(value, &args->timeout) == -1)
			return args_fail(error, error_size, "--timeout: \"%s\" is "
			    "not a number of seconds from 1 to %d", value,
			    ARGS_MAX_TIMEOUT);
		args->timeout_given = true;
		break;
	case OPT_HELP:
		args->help = true;
		break;
	case OPT_SUBNET:
		args->subnet = value;
		break;
	case OPT_STATUS:
		if (args->status_count == ARGS_MAX_STATUSES)
			return args_fail(error, error_size,
			    "--status: at most %d of them", ARGS_MAX_STATUSES);
		args->statuses[args->status_count++] = value;
		break;
	case OPT_TYPE:
		args->ip_type = value;
		break;
	case OPT_ACTIVE:
	case OPT_INACTIVE:
		if (args->active != ARGS_ACTIVE_ANY)
			return args_fail(error, error_size,
			    "--active and --inactive: one of them, once");
		args->active = option->id == OPT_ACTIVE ? ARGS_ACTIVE_TRUE :
		    ARGS_ACTIVE_FALSE;
		break;
	case OPT_QUERY:
		args->query = value;
		break;
	case OPT_CHANGED_SINCE:
		args->changed_since = value;
		break;
	case OPT_SORT:
		args->sort = value;
		break;
	case OPT_LIMIT:
		if (!args_number(value, &args->limit) || args->limit < 1)
			return args_fail(error, error_size,
			    "--limit: \"%s\" is not a positive number", value);
		if (args->limit > ARGS_MAX_LIMIT)
			return args_fail(error, error_size, "--limit: %ld rows "
			    "is more than a page holds (1-%d; --all reads every "
			    "page)", args->limit, ARGS_MAX_LIMIT);
		break;
	case OPT_ALL:
		args->all = true;
		break;
	case OPT_LIST_COUNT:
		args->count = true;
		break;
	case OPT_DESCRIPTION:
		if (!args_utf8(value))
			return args_fail(error, error_size, "--description: not "
			    "UTF-8 text");
		args->description = value;
		break;
	case OPT_REASON:
		if (!args_utf8(value))
			return args_fail(error, error_size, "--reason: not UTF-8 "
			    "text");
		args->reason = value;
		break;
	case OPT_IF_AVAILABLE:
		args->if_available = true;
		break;
	case OPT_IF_MATCH:
		args->if_match = value;
		break;
	case OPT_ALLOCATE_COUNT:
		if (!args_number(value, &args->allocate_count) ||
		    args->allocate_count < 1 ||
		    args->allocate_count > ARGS_MAX_ALLOCATE)
			return args_fail(error, error_size,
			    "--count: \"%s\" is not a number from 1 to %d",
			    value, ARGS_MAX_ALLOCATE);
		break;
	case OPT_RAW:
		args->raw = true;
		break;
	case OPT_CSV:
		args->csv = true;
		break;
	case OPT_SERVERS:
		args->servers_file = value;
		break;
	case OPT_SUBNETS:
		args->subnets_file = value;
		break;
	case OPT_DRY_RUN:
		args->dry_run = true;
		break;
	case OPT_KIND:
		args->kind = value;
		break;
	}
	return 0;
}

/*
 * Handles the option at argv[*index] ("--name", "--name=value", "-x",
 * "-xvalue"), taking its value from the next argument when it needs one.
 */
static int
args_option(int argc, char **argv, int *index, struct args *args,
    char *error, size_t error_size)
{
	const struct args_option_spec	*option;
	const char			*arg = argv[*index], *value = NULL;
	const char			*name, *equals;
	size_t				 name_len;
	bool				 elsewhere;

	if (arg[1] == '-') {
		name = arg + 2;
		equals = strchr(name, '=');
		name_len = equals != NULL ? (size_t)(equals - name) : strlen(name);
		option = args_find_option(name, name_len, 0, args->command,
		    &elsewhere);
		if (equals != NULL)
			value = equals + 1;
	} else {
		name = arg + 1;
		name_len = 1;
		option = args_find_option(NULL, 0, arg[1], args->command,
		    &elsewhere);
		if (arg[2] != '\0')
			value = arg + 2;
	}
	if (option == NULL && elsewhere && args->command == ARGS_COMMAND_NONE)
		return args_fail(error, error_size,
		    "%s is an option of a command: put it after the command",
		    arg);
	if (option == NULL && elsewhere)
		return args_fail(error, error_size, "%s is not an option of %s",
		    arg, args->command_name);
	if (option == NULL)
		return args_fail(error, error_size, "unknown option %.*s%.*s",
		    arg[1] == '-' ? 2 : 1, arg, (int)name_len, name);
	if (!option->takes_value && value != NULL)
		return args_fail(error, error_size, "%s takes no value", arg);
	if (option->takes_value && value == NULL) {
		if (*index + 1 >= argc)
			return args_fail(error, error_size, "%s needs a value",
			    arg);
		value = argv[++*index];
	}
	return args_apply(args, option, value, error, error_size);
}

/* Checks what the command needs once every argument is read. */
static int
args_check(struct args *args, char *error, size_t error_size)
{
	const struct args_command_spec *spec = args_command_spec(args->command);

	if (spec == NULL)
		return args_fail(error, error_size, "no command given");
	if (args->positional_count < spec->min_positionals)
		return args_fail(error, error_size, "%s: missing argument\n%s",
		    args->command_name, spec->usage);
	if (args->positional_count > spec->max_positionals)
		return args_fail(error, error_size,
		    "%s: unexpected argument \"%s\"", args->command_name,
		    args->positionals[spec->max_positionals]);
	if (args->command == ARGS_COMMAND_HELP && args->positional_count == 1 &&
	    args_find_command(args->positionals[0]) == ARGS_COMMAND_NONE)
		return args_fail(error, error_size, "help: no command \"%s\"",
		    args->positionals[0]);
	if (args->command == ARGS_COMMAND_RESERVE && args->description == NULL)
		return args_fail(error, error_size,
		    "reserve: -d TEXT is required (what the address is for)");
	if (args->command == ARGS_COMMAND_ALLOCATE && args->description == NULL)
		return args_fail(error, error_size,
		    "allocate: -d TEXT is required (what the addresses are for)");
	if (args->command == ARGS_COMMAND_QUARANTINE && args->reason == NULL)
		return args_fail(error, error_size,
		    "quarantine: -r REASON is required");
	if (args->command == ARGS_COMMAND_IMPORT &&
	    args->servers_file == NULL && args->subnets_file == NULL)
		return args_fail(error, error_size,
		    "%s: --servers FILE, --subnets FILE or both",
		    args->command_name);
	if (args->command == ARGS_COMMAND_EXPORT) {
		if (args->json && args->csv)
			return args_fail(error, error_size,
			    "export: --csv or --json, not both");
		args->export_format = args->json ? ARGS_EXPORT_JSON :
		    ARGS_EXPORT_CSV;
		args->json = false;
	}
	return 0;
}

/* Parses the command line with defaults from the environment. */
int
args_parse(int argc, char **argv, args_lookup_fn lookup, struct args *args,
    char *error, size_t error_size)
{
	const char	*value;
	bool		 options_done = false;

	memset(args, 0, sizeof(*args));
	args->allocate_count = 1;
	value = lookup("IPAMCTL_URL");
	args->url = value != NULL && value[0] != '\0' ? value : ARGS_DEFAULT_URL;
	args->timeout = ARGS_DEFAULT_TIMEOUT;
	value = lookup("IPAMCTL_TOKEN_FILE");
	args->token_file = value != NULL && value[0] != '\0' ? value : NULL;
	/* A $USER the daemon would refuse (400 for every call) names no one. */
	value = lookup("USER");
	args->requester = value != NULL && value[0] != '\0' &&
	    args_requester_ok(value) ? value : NULL;

	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];

		if (!options_done && strcmp(arg, "--") == 0) {
			options_done = true;
			continue;
		}
		if (!options_done && arg[0] == '-' && arg[1] != '\0') {
			if (args_option(argc, argv, &i, args, error,
			    error_size) == -1)
				return -1;
			continue;
		}
		if (args->command == ARGS_COMMAND_NONE) {
			args->command = args_find_command(arg);
			if (args->command == ARGS_COMMAND_NONE)
				return args_fail(error, error_size,
				    "unknown command \"%s\"",
				    arg);
			args->command_name = arg;
			continue;
		}
		if (args->positional_count == ARGS_MAX_POSITIONALS)
			return args_fail(error, error_size,
			    "%s: unexpected argument \"%s\"", args->command_name,
			    arg);
		args->positionals[args->positional_count++] = arg;
	}
	if (args->help)
		return 0;
	/* The default of --timeout: looked at only when it is not given. */
	value = lookup("IPAMCTL_TIMEOUT");
	if (!args->timeout_given && value != NULL && value[0] != '\0' &&
	    args_timeout(value, &args->timeout) == -1)
		return args_fail(error, error_size, "IPAMCTL_TIMEOUT: \"%s\" is "
		    "not a number of seconds from 1 to %d (or give --timeout)",
		    value, ARGS_MAX_TIMEOUT);
	return args_check(args, error, error_size);
}

/* The usage text of the global options. */
const char *
args_global_usage(void)
{
	return GLOBAL_USAGE;
}
