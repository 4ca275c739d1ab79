/* The daemon's lifecycle: connect, migrate, consume, reload, drain, exit. */
#ifndef IPAM_DAEMON_DAEMON_H
#define IPAM_DAEMON_DAEMON_H

#include <stdbool.h>

#include "daemon/config.h"

struct daemon;

/*
 * Sets the daemon up from a loaded config, which it takes over (the
 * caller's pointer must not be used after).  With rebuild, the state is
 * built again from the beginning of every topic and swapped in first.
 * Returns NULL with err filled.
 */
struct daemon	*daemon_new(const char *config_path, struct config *config,
		    bool rebuild, char *err, size_t errlen);

/* Runs the event loop until the daemon stops; returns the exit status. */
int		 daemon_run(struct daemon *daemon);

/* Frees the daemon. */
void		 daemon_free(struct daemon *daemon);

#endif
