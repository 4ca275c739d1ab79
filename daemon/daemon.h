/* The daemon's lifecycle: connect, migrate, consume, reload, drain, exit. */
#ifndef IPAM_DAEMON_DAEMON_H
#define IPAM_DAEMON_DAEMON_H

#include <stdbool.h>

#include "daemon/config.h"

/*
 * Exit statuses, after sysexits.h: what systemd's RestartPreventExitStatus=
 * tells apart (docs/OPERATIONS.md, Exit statuses).
 */
#define DAEMON_EXIT_OK		0	/* stopped by SIGTERM/SIGINT */
#define DAEMON_EXIT_USAGE	64	/* EX_USAGE: bad command line */
#define DAEMON_EXIT_UNAVAILABLE	69	/* EX_UNAVAILABLE: schema folder,
					   a newer database, --migrate
					   without PostgreSQL */
#define DAEMON_EXIT_SOFTWARE	70	/* EX_SOFTWARE: a migration failed,
					   the loop broke, Kafka's client
					   hit a fatal error */
#define DAEMON_EXIT_OSERR	71	/* EX_OSERR: a socket, the listener,
					   privileges could not be had */
#define DAEMON_EXIT_NOPERM	77	/* EX_NOPERM: the role may not
					   apply a migration that is due */
#define DAEMON_EXIT_CONFIG	78	/* EX_CONFIG: the configuration,
					   a group.instance.id shared */

/* What the process is started for. */
enum daemon_mode {
	DAEMON_MODE_RUN,	/* migrate if needed, consume */
	DAEMON_MODE_REBUILD,	/* the same, rebuilding the state first */
	DAEMON_MODE_MIGRATE,	/* apply the migrations and exit */
};

struct daemon;

/*
 * Sets the daemon up from a loaded config, which it takes over (the
 * caller's pointer must not be used after).  With DAEMON_MODE_REBUILD,
 * the state is built again from the beginning of every topic and swapped
 * in first.  Returns NULL with err filled and *status set to the exit
 * status the failure deserves.
 */
struct daemon	*daemon_new(const char *config_path, struct config *config,
		    enum daemon_mode mode, char *err, size_t errlen,
		    int *status);

/* Runs the event loop until the daemon stops; returns the exit status. */
int		 daemon_run(struct daemon *daemon);

/* Frees the daemon. */
void		 daemon_free(struct daemon *daemon);

#endif
