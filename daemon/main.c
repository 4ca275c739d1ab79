/* ipam-syncd: arguments, config, setup, loop, teardown. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "common/build_info.h"
#include "common/log.h"
#include "daemon/config.h"
#include "daemon/daemon.h"

/* Prints how to call the program. */
static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: ipam-syncd [--config PATH] [--rebuild]\n"
	    "       ipam-syncd --version\n"
	    "       ipam-syncd --check-config [PATH]\n"
	    "       ipam-syncd --print-example-config\n"
	    "  --config PATH           configuration file (default %s,\n"
	    "                          or $IPAM_CONFIG)\n"
	    "  --rebuild               build the state again from the beginning\n"
	    "                          of every topic, swap it in, carry on\n"
	    "  --check-config          validate the configuration and exit\n"
	    "  --print-example-config  write the documented example config\n"
	    "  --version               print the version and exit\n",
	    IPAM_DEFAULT_CONFIG);
}

/* Reads the arguments, loads the config and runs the daemon. */
int
main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "rebuild", no_argument, NULL, 'R' },
		{ "print-example-config", no_argument, NULL, 'E' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config_path = getenv("IPAM_CONFIG");
	struct config *config;
	struct daemon *daemon;
	enum log_level level;
	bool check_only = false, rebuild = false;
	char err[2048];
	int option, status;

	if (config_path == NULL)
		config_path = IPAM_DEFAULT_CONFIG;
	while ((option = getopt_long(argc, argv, "c:h", options, NULL)) != -1) {
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
		case 'E':
			config_write_example(stdout);
			return 0;
		case 'V':
			printf("ipam-syncd %s (librdkafka %s, libpq %d, "
			    "libevent %s, jansson %s)\n", IPAM_VERSION,
			    rd_kafka_version_str(), PQlibVersion(),
			    event_get_version(), JANSSON_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	/* "--check-config FILE" reads as naturally as "--config FILE". */
	if (check_only && optind + 1 == argc)
		config_path = argv[optind++];
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	if ((config = config_load(config_path, err, sizeof(err))) == NULL) {
		if (check_only) {
			fprintf(stderr, "%s\n", err);
			return 1;
		}
		fatalx("configuration: %s", err);
	}
	if (check_only) {
		config_free(config);
		printf("%s: configuration is valid\n", config_path);
		return 0;
	}
	if (log_level_parse(config->log_level, &level) == 0)
		log_set_level(level);

	if ((daemon = daemon_new(config_path, config, rebuild, err,
	    sizeof(err))) ==
	    NULL)
		fatalx("%s", err);
	status = daemon_run(daemon);
	daemon_free(daemon);
	return status;
}
