/* Unit tests of ipamctl's command line: commands, options, defaults, errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipamctl/args.h"
#include "test_support.h"

#define MAX_ARGS	16

/* An argument vector, the environment, and the parse (or error) it must give. */
struct args_row {
	const char	*name;
	const char	*argv[MAX_ARGS];	/* after "ipamctl"; NULL ends */
	const char	*summary;		/* NULL: the parse fails */
	const char	*error;
};

/* The environment the rows see. */
static const char *
args_test_lookup(const char *name)
{
	if (strcmp(name, "USER") == 0)
		return "alice";
	if (strcmp(name, "IPAMCTL_TOKEN_FILE") == 0)
		return "/etc/ipamctl/token";
	return NULL;
}

/* The environment with the URL set. */
static const char *
args_test_lookup_url(const char *name)
{
	if (strcmp(name, "IPAMCTL_URL") == 0)
		return "http://ipam.example:9000";
	return args_test_lookup(name);
}

/* The parsed arguments as one line, only what is set. */
static void
args_summary(const struct args *args, char *text, size_t size)
{
	FILE	*out = fmemopen(text, size, "w");

	fprintf(out, "%s", args_command_name(args->command));
	if (strcmp(args->url, ARGS_DEFAULT_URL) != 0)
		fprintf(out, " url=%s", args->url);
	if (args->token_file != NULL &&
	    strcmp(args->token_file, "/etc/ipamctl/token") != 0)
		fprintf(out, " token=%s", args->token_file);
	if (args->requester == NULL || strcmp(args->requester, "alice") != 0)
		fprintf(out, " requester=%s", args->requester ? args->requester :
		    "(none)");
	if (args->vrf != NULL)
		fprintf(out, " vrf=%s", args->vrf);
	if (args->timeout != ARGS_DEFAULT_TIMEOUT)
		fprintf(out, " timeout=%ld", args->timeout);
	if (args->json)
		fprintf(out, " json");
	if (args->help)
		fprintf(out, " help");
	if (args->subnet != NULL)
		fprintf(out, " subnet=%s", args->subnet);
	for (size_t i = 0; i < args->status_count; i++)
		fprintf(out, " status=%s", args->statuses[i]);
	if (args->ip_type != NULL)
		fprintf(out, " type=%s", args->ip_type);
	if (args->active != ARGS_ACTIVE_ANY)
		fprintf(out, " active=%s", args->active == ARGS_ACTIVE_TRUE ?
		    "true" : "false");
	if (args->query != NULL)
		fprintf(out, " q=%s", args->query);
	if (args->changed_since != NULL)
		fprintf(out, " since=%s", args->changed_since);
	if (args->sort != NULL)
		fprintf(out, " sort=%s", args->sort);
	if (args->limit != 0)
		fprintf(out, " limit=%ld", args->limit);
	if (args->all)
		fprintf(out, " all");
	if (args->count)
		fprintf(out, " count");
	if (args->description != NULL)
		fprintf(out, " d=%s", args->description);
	if (args->reason != NULL)
		fprintf(out, " r=%s", args->reason);
	if (args->if_available)
		fprintf(out, " if-available");
	if (args->if_match != NULL)
		fprintf(out, " if-match=%s", args->if_match);
	if (args->allocate_count != 1)
		fprintf(out, " n=%ld", args->allocate_count);
	if (args->raw)
		fprintf(out, " raw");
	if (args->kind != NULL)
		fprintf(out, " kind=%s", args->kind);
	if (args->command == ARGS_COMMAND_EXPORT)
		fprintf(out, " format=%s", args->export_format ==
		    ARGS_EXPORT_JSON ? "json" : "csv");
	if (args->servers_file != NULL)
		fprintf(out, " servers=%s", args->servers_file);
	if (args->subnets_file != NULL)
		fprintf(out, " subnets=%s", args->subnets_file);
	if (args->dry_run)
		fprintf(out, " dry-run");
	for (size_t i = 0; i < args->positional_count; i++)
		fprintf(out, " [%s]", args->positionals[i]);
	fclose(out);
}

static const struct args_row args_rows[] = {
	{ "ls with defaults", { "ls" }, "ls", NULL },
	{ "list is ls", { "list" }, "ls", NULL },
	{ "ls with every filter",
	    { "ls", "--subnet", "lan", "--status", "reserved", "--status=quarantine",
	    "--type", "static", "--active", "-q", "192.168.1.", "--changed-since",
	    "2026-11-28T10:00:00Z", "--sort=-updated_at", "--limit", "50" },
	    "ls subnet=lan status=reserved status=quarantine type=static "
	    "active=true q=192.168.1. since=2026-11-28T10:00:00Z "
	    "sort=-updated_at limit=50", NULL },
	{ "ls --inactive --all --count, -qVALUE", { "ls", "--inactive", "--all",
	    "--count", "-qweb" }, "ls active=false q=web all count", NULL },
	{ "global options before and after the command",
	    { "--url", "http://h:1", "--vrf", "blue", "ls", "--json",
	    "--requester", "bob", "--token-file=/tmp/t" },
	    "ls url=http://h:1 token=/tmp/t requester=bob vrf=blue json", NULL },
	{ "a requester the daemon would refuse: non-ASCII",
	    { "ls", "--requester", "Jos\xc3\xa9" }, NULL,
	    "--requester: \"Jos\xc3\xa9\" is not a name the daemon takes (at "
	    "most 64 printable ASCII characters)" },
	{ "a requester the daemon would refuse: 65 characters",
	    { "ls", "--requester", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaa" }, NULL,
	    "--requester: \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaa\" is not a name the daemon takes (at most 64 "
	    "printable ASCII characters)" },
	{ "64 characters and spaces are a requester",
	    { "ls", "--requester", "a b aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaa" },
	    "ls requester=" "a b aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaa", NULL },
	{ "an empty requester names no one", { "ls", "--requester", "" },
	    "ls requester=(none)", NULL },
	{ "--active and --inactive", { "ls", "--active", "--inactive" }, NULL,
	    "--active and --inactive: one of them, once" },
	{ "a limit that is no number", { "ls", "--limit", "ten" }, NULL,
	    "--limit: \"ten\" is not a positive number" },
	{ "a limit of zero", { "ls", "--limit=0" }, NULL,
	    "--limit: \"0\" is not a positive number" },
	{ "a limit above a page", { "dead-letters", "--limit", "1001" }, NULL,
	    "--limit: 1001 rows is more than a page holds (1-1000; --all reads "
	    "every page)" },
	{ "the largest page", { "ls", "--limit", "1000" }, "ls limit=1000",
	    NULL },
	{ "an empty --url", { "--url", "", "ls" }, NULL,
	    "--url: empty (the daemon's API, such as http://127.0.0.1:10187)" },
	{ "a command option before the command", { "--status", "reserved", "ls" },
	    NULL, "--status is an option of a command: put it after the command" },
	{ "an option of another command", { "ls", "-d", "x" }, NULL,
	    "-d is not an option of ls" },
	{ "an unknown option", { "ls", "--frobnicate=1" }, NULL,
	    "unknown option --frobnicate" },
	{ "an unknown command", { "frob" }, NULL, "unknown command \"frob\"" },
	{ "no command", { "--json" }, NULL, "no command given" },
	{ "an option without its value", { "ls", "--subnet" }, NULL,
	    "--subnet needs a value" },
	{ "a flag with a value", { "ls", "--all=yes" }, NULL,
	    "--all=yes takes no value" },
	{ "too many statuses", { "ls", "--status", "a", "--status", "b",
	    "--status", "c", "--status", "d", "--status", "e", "--status", "f",
	    "--status", "g" }, "ls status=a status=b status=c status=d status=e "
	    "status=f status=g", NULL },
	{ "show ADDR", { "show", "10.0.0.5" }, "show [10.0.0.5]", NULL },
	{ "show without ADDR", { "show" }, NULL,
	    "show: missing argument\nusage: ipamctl show ADDR\n"
	    "Shows one address: its row, holders, mark, conflicts and history.\n" },
	{ "show with two addresses", { "show", "10.0.0.5", "10.0.0.6" }, NULL,
	    "show: unexpected argument \"10.0.0.6\"" },
	{ "reserve", { "reserve", "10.0.0.5", "-d", "office gateway",
	    "--if-available" }, "reserve d=office gateway if-available [10.0.0.5]",
	    NULL },
	{ "reserve -dTEXT and --if-match", { "reserve", "-dgw", "10.0.0.5",
	    "--if-match", "\"e1\"" }, "reserve d=gw if-match=\"e1\" [10.0.0.5]",
	    NULL },
	{ "reserve without a description", { "reserve", "10.0.0.5" }, NULL,
	    "reserve: -d TEXT is required (what the address is for)" },
	{ "quarantine", { "quarantine", "10.0.0.5", "-r", "abuse 4711" },
	    "quarantine r=abuse 4711 [10.0.0.5]", NULL },
	{ "quarantine without a reason", { "quarantine", "10.0.0.5" }, NULL,
	    "quarantine: -r REASON is required" },
	{ "release", { "release", "10.0.0.5" }, "release [10.0.0.5]", NULL },
	{ "release takes no description", { "release", "10.0.0.5", "-d", "x" },
	    NULL, "-d is not an option of release" },
	{ "allocate", { "allocate", "lan", "-n", "3", "-d", "printers" },
	    "allocate d=printers n=3 [lan]", NULL },
	{ "allocate --count=2", { "allocate", "lan", "--count=2", "-d", "p" },
	    "allocate d=p n=2 [lan]", NULL },
	{ "allocate without a description", { "allocate", "lan" }, NULL,
	    "allocate: -d TEXT is required (what the addresses are for)" },
	{ "allocate with a bad count", { "allocate", "lan", "-n", "-1", "-d",
	    "x" }, NULL, "--count: \"-1\" is not a number from 1 to 256" },
	{ "allocate of the most", { "allocate", "lan", "-n", "256", "-d",
	    "x" }, "allocate d=x n=256 [lan]", NULL },
	{ "allocate of more than the daemon gives", { "allocate", "lan", "-n",
	    "257", "-d", "x" }, NULL,
	    "--count: \"257\" is not a number from 1 to 256" },
	{ "a negative number as a value", { "ls", "--limit", "-5" }, NULL,
	    "--limit: \"-5\" is not a positive number" },
	{ "subnets and one subnet", { "subnets", "lan" }, "subnets [lan]", NULL },
	{ "dead-letters", { "dead-letters", "--raw", "--limit", "5", "--all" },
	    "dead-letters limit=5 all raw", NULL },
	{ "export defaults to CSV", { "export", "--status", "reserved" },
	    "export status=reserved format=csv", NULL },
	{ "export --json is its format", { "export", "--json" },
	    "export format=json", NULL },
	{ "export --csv", { "export", "--csv" }, "export format=csv", NULL },
	{ "--json before export is its format", { "--json", "export" },
	    "export format=json", NULL },
	{ "--csv and --json", { "--json", "export", "--csv" }, NULL,
	    "export: --csv or --json, not both" },
	{ "--csv and --json after export", { "export", "--csv", "--json" },
	    NULL, "export: --csv or --json, not both" },
	{ "import", { "import", "--servers", "s.csv", "--subnets", "n.json",
	    "--dry-run" }, "import servers=s.csv subnets=n.json dry-run", NULL },
	{ "populate is import", { "populate", "--subnets", "n.csv" },
	    "import subnets=n.csv", NULL },
	{ "import without files", { "populate" }, NULL,
	    "populate: --servers FILE, --subnets FILE or both" },
	{ "--help skips the checks", { "reserve", "--help" }, "reserve help",
	    NULL },
	{ "-h alone", { "-h" }, "ipamctl help", NULL },
	{ "help COMMAND", { "help", "ls" }, "help [ls]", NULL },
	{ "help of no command", { "help", "frob" }, NULL,
	    "help: no command \"frob\"" },
	{ "-- ends the options", { "show", "--", "-1" }, "show [-1]", NULL },
	{ "request ID", { "request", "42" }, "request [42]", NULL },
	{ "conflicts --kind", { "conflicts", "--kind", "pool_shadowed" },
	    "conflicts kind=pool_shadowed", NULL },
	{ "--kind is conflicts' only", { "ls", "--kind", "x" }, NULL,
	    "--kind is not an option of ls" },
	{ "--timeout, global", { "--timeout", "5", "stats" }, "stats timeout=5",
	    NULL },
	{ "--timeout after the command", { "stats", "--timeout=86400" },
	    "stats timeout=86400", NULL },
	{ "a timeout of zero", { "stats", "--timeout", "0" }, NULL,
	    "--timeout: \"0\" is not a number of seconds from 1 to 86400" },
	{ "a timeout over a day", { "stats", "--timeout", "86401" }, NULL,
	    "--timeout: \"86401\" is not a number of seconds from 1 to 86400" },
	{ "a timeout that is no number", { "stats", "--timeout", "1m" }, NULL,
	    "--timeout: \"1m\" is not a number of seconds from 1 to 86400" },
	{ "a description that is not UTF-8", { "reserve", "10.0.0.5", "-d",
	    "caf\xe9" }, NULL, "--description: not UTF-8 text" },
	{ "a reason that is not UTF-8", { "quarantine", "10.0.0.5", "-r",
	    "\xff" }, NULL, "--reason: not UTF-8 text" },
	{ "an allocation's description that is not UTF-8", { "allocate", "lan",
	    "-d", "\xc3" }, NULL, "--description: not UTF-8 text" },
};

/* Each row parses to its summary, or fails with its error. */
static void
test_args_row(void **state)
{
	const struct args_row	*row = *state;
	char			*argv[MAX_ARGS + 2] = { "ipamctl" };
	int			 argc = 1;
	struct args		 args;
	char			 error[512] = "", summary[512];

	for (size_t i = 0; i < MAX_ARGS && row->argv[i] != NULL; i++)
		argv[argc++] = (char *)row->argv[i];
	if (row->summary == NULL) {
		assert_int_equal(args_parse(argc, argv, args_test_lookup, &args,
		    error, sizeof(error)), -1);
		assert_string_equal(error, row->error);
		return;
	}
	assert_int_equal(args_parse(argc, argv, args_test_lookup, &args, error,
	    sizeof(error)), 0);
	args_summary(&args, summary, sizeof(summary));
	assert_string_equal(summary, row->summary);
}

/* The defaults: the URL from the environment or built in, no token, $USER. */
static void
test_args_defaults(void **state)
{
	char		*argv[] = { "ipamctl", "ls", NULL };
	struct args	 args;
	char		 error[256];

	assert_int_equal(args_parse(2, argv, args_test_lookup_url, &args, error,
	    sizeof(error)), 0);
	assert_string_equal(args.url, "http://ipam.example:9000");
	assert_string_equal(args.token_file, "/etc/ipamctl/token");
	assert_string_equal(args.requester, "alice");
	assert_int_equal(args.allocate_count, 1);
	assert_null(args.vrf);

	argv[1] = "--url=http://other:1";
	argv[2] = "ls";
	assert_int_equal(args_parse(3, argv, args_test_lookup_url, &args, error,
	    sizeof(error)), 0);
	assert_string_equal(args.url, "http://other:1");
}

/* A $USER the daemon would refuse as X-Requester. */
static const char *
args_test_lookup_wide_user(const char *name)
{
	if (strcmp(name, "USER") == 0)
		return "j\xc3\xb6rg";
	return args_test_lookup(name);
}

/* A $USER the daemon would refuse names no one: reads still work. */
static void
test_args_user_not_a_requester(void **state)
{
	char		*argv[] = { "ipamctl", "ls", NULL };
	struct args	 args;
	char		 error[256];

	(void)state;
	assert_int_equal(args_parse(2, argv, args_test_lookup_wide_user, &args,
	    error, sizeof(error)), 0);
	assert_null(args.requester);
}

/* The environment with a timeout, good or bad. */
static const char *
args_test_lookup_timeout(const char *name)
{
	if (strcmp(name, "IPAMCTL_TIMEOUT") == 0)
		return "7";
	return args_test_lookup(name);
}

static const char *
args_test_lookup_bad_timeout(const char *name)
{
	if (strcmp(name, "IPAMCTL_TIMEOUT") == 0)
		return "soon";
	return args_test_lookup(name);
}

/*
 * The timeout: 120 s, $IPAMCTL_TIMEOUT, then --timeout; a bad one refused,
 * but for --timeout given, or --help, which do not need it.
 */
static void
test_args_timeout(void **state)
{
	char		*argv[] = { "ipamctl", "stats", NULL, NULL };
	struct args	 args;
	char		 error[256];

	(void)state;
	assert_int_equal(args_parse(2, argv, args_test_lookup, &args, error,
	    sizeof(error)), 0);
	assert_int_equal(args.timeout, 120);
	assert_int_equal(args_parse(2, argv, args_test_lookup_timeout, &args,
	    error, sizeof(error)), 0);
	assert_int_equal(args.timeout, 7);
	argv[2] = "--timeout=3";
	assert_int_equal(args_parse(3, argv, args_test_lookup_timeout, &args,
	    error, sizeof(error)), 0);
	assert_int_equal(args.timeout, 3);
	assert_int_equal(args_parse(2, argv, args_test_lookup_bad_timeout,
	    &args, error, sizeof(error)), -1);
	assert_string_equal(error, "IPAMCTL_TIMEOUT: \"soon\" is not a number "
	    "of seconds from 1 to 86400 (or give --timeout)");
	assert_int_equal(args_parse(3, argv, args_test_lookup_bad_timeout,
	    &args, error, sizeof(error)), 0);
	assert_int_equal(args.timeout, 3);
	argv[2] = "--help";
	assert_int_equal(args_parse(3, argv, args_test_lookup_bad_timeout,
	    &args, error, sizeof(error)), 0);
	assert_true(args.help);
}

/* Eight statuses at most: the ninth is a usage error. */
static void
test_args_status_limit(void **state)
{
	char		*argv[2 + 2 * (ARGS_MAX_STATUSES + 1)] = { "ipamctl", "ls" };
	int		 argc = 2;
	struct args	 args;
	char		 error[256];

	for (int i = 0; i <= ARGS_MAX_STATUSES; i++) {
		argv[argc++] = "--status";
		argv[argc++] = "reserved";
	}
	assert_int_equal(args_parse(argc, argv, args_test_lookup, &args, error,
	    sizeof(error)), -1);
	assert_string_equal(error, "--status: at most 8 of them");
}

/* Every command has a usage that names it, and populate finds import's. */
static void
test_args_usages(void **state)
{
	static const char *const names[] = { "ls", "show", "reserve",
	    "quarantine", "release", "allocate", "subnets", "conflicts",
	    "dead-letters", "unplaced", "stats", "export", "import", "request",
	    "help" };
	char	prefix[64];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		enum args_command command = args_find_command(names[i]);

		assert_int_not_equal(command, ARGS_COMMAND_NONE);
		snprintf(prefix, sizeof(prefix), "usage: ipamctl %s", names[i]);
		assert_non_null(strstr(args_usage(command), prefix));
		assert_non_null(strstr(args_usage(ARGS_COMMAND_NONE), names[i]));
	}
	assert_int_equal(args_find_command("populate"), ARGS_COMMAND_IMPORT);
	assert_int_equal(args_find_command("nope"), ARGS_COMMAND_NONE);
	assert_non_null(strstr(args_global_usage(), "--token-file FILE"));
}

int
main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_args_defaults),
		cmocka_unit_test(test_args_user_not_a_requester),
		cmocka_unit_test(test_args_timeout),
		cmocka_unit_test(test_args_status_limit),
		cmocka_unit_test(test_args_usages),
	};
	int failed;

	failed = support_run_rows("args", test_args_row, args_rows,
	    sizeof(args_rows[0]), ROWS(args_rows));
	return failed + cmocka_run_group_tests(tests, NULL, NULL);
}
