/* ipam-syncd: arguments, config, setup, loop, teardown. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "common/build_info.h"
#include "common/log.h"
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/migrate.h"
#include "daemon/privileges.h"

/* Prints how to call the program. */
static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: ipam-syncd [--config PATH] [--user NAME] [--rebuild]\n"
	    "       ipam-syncd --migrate [--config PATH]\n"
	    "       ipam-syncd --check-config [PATH]\n"
	    "       ipam-syncd --print-example-config | --print-config-man |\n"
	    "                  --version | --help\n"
	    "  --config PATH           configuration file (default %s,\n"
	    "                          or $IPAM_CONFIG)\n"
	    "  --user NAME             started as root: become NAME once the\n"
	    "                          sockets and secret files are open,\n"
	    "                          keeping CAP_NET_RAW ([daemon] user)\n"
	    "  --rebuild               build the state again from the beginning\n"
	    "                          of every topic, swap it in, carry on\n"
	    "  --migrate               apply the schema migrations (as the\n"
	    "                          schema's owner role) and exit\n"
	    "  --check-config          check the configuration as a start would\n"
	    "                          (file, environment, secret files, schema\n"
	    "                          folder) and exit\n"
	    "  --print-example-config  write the documented example config\n"
	    "  --print-config-man      write ipam-syncd.conf(5), from the same keys\n"
	    "  --version               print the version and exit\n"
	    "Files: %s (migrations), %s (operator page).\n"
	    "Exit statuses: 0 stopped by SIGTERM/SIGINT (or done); 1 a second\n"
	    "signal, a fatal error, or --migrate stopped by a signal; 64 bad\n"
	    "command line; 69 unavailable\n"
	    "(schema folder, a newer or non-UTF8 database, --migrate without\n"
	    "PostgreSQL);\n"
	    "70 software error (a migration failed, Kafka's client is dead);\n"
	    "71 a socket or the user could not be had; 77 the database role\n"
	    "may not apply a due migration; 78 configuration error (also two\n"
	    "instances with one group.instance.id). See ipam-syncd(8).\n",
	    IPAM_DEFAULT_CONFIG, IPAM_SCHEMA_DIR, IPAM_WEB_DIR);
}

/*
 * --check-config's checks beyond the file: the schema folder holds the
 * migrations this binary applies.  Returns the exit status.
 */
static int
check_start(const struct config *config, char *err, size_t errlen)
{
	struct migrate *migrate;
	char where[2048], reason[1024];

	if ((migrate = migrate_new(config->schema_dir, reason,
	    sizeof(reason))) == NULL) {
		config_key_where(config, "daemon", "schema_dir", where,
		    sizeof(where));
		snprintf(err, errlen, "%s: daemon.schema_dir: %s", where,
		    reason);
		return DAEMON_EXIT_UNAVAILABLE;
	}
	migrate_free(migrate);
	return DAEMON_EXIT_OK;
}

/* Reads the arguments, loads the config and runs the daemon. */
int
main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "rebuild", no_argument, NULL, 'R' },
		{ "migrate", no_argument, NULL, 'M' },
		{ "user", required_argument, NULL, 'u' },
		{ "print-example-config", no_argument, NULL, 'E' },
		{ "print-config-man", no_argument, NULL, 'P' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config_path = getenv("IPAM_CONFIG");
	const char *user = NULL;
	enum daemon_mode mode = DAEMON_MODE_RUN;
	struct config *config;
	struct daemon *daemon;
	enum log_level level;
	bool check_only = false, rebuild = false, migrate_only = false;
	char err[4096];
	int option, status;

	if (config_path == NULL)
		config_path = IPAM_DEFAULT_CONFIG;
	while ((option = getopt_long(argc, argv, "c:u:h", options, NULL)) !=
	    -1) {
		switch (option) {
		case 'c':
			config_path = optarg;
			break;
		case 'C':
			check_only = true;
			break;
		case 'R':
			rebuild = true;
			break;
		case 'M':
			migrate_only = true;
			break;
		case 'u':
			user = optarg;
			break;
		case 'E':
			config_write_example(stdout);
			return DAEMON_EXIT_OK;
		case 'P':
			config_write_man(stdout);
			return DAEMON_EXIT_OK;
		case 'V':
			printf("ipam-syncd %s (librdkafka %s, libpq %d, "
			    "libevent %s, jansson %s)\n", IPAM_VERSION,
			    rd_kafka_version_str(), PQlibVersion(),
			    event_get_version(), JANSSON_VERSION);
			return DAEMON_EXIT_OK;
		case 'h':
			usage(stdout);
			return DAEMON_EXIT_OK;
		default:
			usage(stderr);
			return DAEMON_EXIT_USAGE;
		}
	}
	/* "--check-config FILE" reads as naturally as "--config FILE". */
	if (check_only && optind + 1 == argc)
		config_path = argv[optind++];
	if (optind != argc || (rebuild && migrate_only)) {
		usage(stderr);
		return DAEMON_EXIT_USAGE;
	}
	if (migrate_only)
		mode = DAEMON_MODE_MIGRATE;
	else if (rebuild)
		mode = DAEMON_MODE_REBUILD;

	if ((config = config_load(config_path, err, sizeof(err))) == NULL) {
		if (check_only) {
			fprintf(stderr, "%s\n", err);
			return DAEMON_EXIT_CONFIG;
		}
		log_errx("configuration: %s", err);
		return DAEMON_EXIT_CONFIG;
	}
	if (check_only) {
		status = check_start(config, err, sizeof(err));
		config_free(config);
		if (status != DAEMON_EXIT_OK) {
			fprintf(stderr, "%s\n", err);
			return status;
		}
		printf("%s: configuration is valid\n", config_path);
		return DAEMON_EXIT_OK;
	}
	if (log_level_parse(config->log_level, &level) == 0)
		log_set_level(level);
	if (user == NULL && *config->user != '\0')
		user = config->user;
	if (user != NULL) {
		uid_t uid;
		gid_t gid;

		/* An unknown user is a mistake of the configuration: 78. */
		if (privileges_lookup(user, &uid, &gid, err, sizeof(err)) == -1) {
			log_errx("--user: %s", err);
			config_free(config);
			return DAEMON_EXIT_CONFIG;
		}
	}

	if ((daemon = daemon_new(config_path, config, mode, err, sizeof(err),
	    &status)) == NULL) {
		log_errx("%s", err);
		return status;
	}
	/*
	 * Not root (the systemd unit's DynamicUser=, or started by a user):
	 * there is no user to change to.  Already that user is fine; another
	 * is a configuration the process cannot follow (and under the unit's
	 * system call filter, trying would kill it).
	 */
	if (user != NULL && geteuid() != 0) {
		uid_t uid;
		gid_t gid;

		if (privileges_lookup(user, &uid, &gid, err, sizeof(err)) == 0 &&
		    uid == geteuid())
			user = NULL;
		else {
			log_errx("--user / [daemon] user %s: the daemon runs as "
			    "uid %u, not as root, and cannot change user (under "
			    "the systemd unit leave it unset: the unit runs the "
			    "daemon as a DynamicUser=)", user,
			    (unsigned)geteuid());
			daemon_free(daemon);
			return DAEMON_EXIT_CONFIG;
		}
	}
	/* Everything that needs root is open now: leave it. */
	if (user != NULL) {
		if (privileges_drop(user, err, sizeof(err)) == -1) {
			log_errx("--user: %s", err);
			daemon_free(daemon);
			return DAEMON_EXIT_OSERR;
		}
		log_info("running as user %s (uid %u)", user,
		    (unsigned)getuid());
	} else if (geteuid() == 0)
		log_warnx("running as root: name an unprivileged user with "
		    "--user or [daemon] user (the systemd unit runs it as a "
		    "DynamicUser= instead)");
	status = daemon_run(daemon);
	daemon_free(daemon);
	return status;
}
