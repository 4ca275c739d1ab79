/* Leaving root once what needs it is open, keeping CAP_NET_RAW. */
#ifndef IPAM_DAEMON_PRIVILEGES_H
#define IPAM_DAEMON_PRIVILEGES_H

#include <stddef.h>

#include <sys/types.h>

/*
 * Finds a user by name or number: its uid and primary group.  Returns 0,
 * or -1 with err filled ("user NAME: no such user").
 */
int	privileges_lookup(const char *user, uid_t *uid, gid_t *gid, char *err,
	    size_t errlen);

/*
 * Becomes user (name or number) and its primary group, with no other
 * groups; keeps CAP_NET_RAW in the permitted and effective sets when it
 * was there, so the sweeper can open its ICMP sockets again.  Every
 * thread of the process follows (glibc applies set*id to all threads).
 * Returns 0, or -1 with err filled.
 */
int	privileges_drop(const char *user, char *err, size_t errlen);

#endif
