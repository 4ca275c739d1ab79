/* Leaving root once what needs it is open, keeping CAP_NET_RAW. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/capability.h>

#include "daemon/privileges.h"

/* Reads this thread's capability sets (version 3: two 32-bit words). */
static int
privileges_get(struct __user_cap_data_struct data[2])
{
	struct __user_cap_header_struct header = {
		.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };

	memset(data, 0, 2 * sizeof(*data));
	return (int)syscall(SYS_capget, &header, data);
}

/* Sets this thread's capability sets. */
static int
privileges_set(struct __user_cap_data_struct data[2])
{
	struct __user_cap_header_struct header = {
		.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };

	return (int)syscall(SYS_capset, &header, data);
}

/* Finds a user by name or number. */
int
privileges_lookup(const char *user, uid_t *uid, gid_t *gid, char *err,
    size_t errlen)
{
	struct passwd *pw;
	unsigned long number;
	char *end;

	errno = 0;
	if ((pw = getpwnam(user)) != NULL) {
		*uid = pw->pw_uid;
		*gid = pw->pw_gid;
		return 0;
	}
	number = strtoul(user, &end, 10);
	if (*user == '\0' || *end != '\0') {
		snprintf(err, errlen, "user %s: %s", user, errno ?
		    strerror(errno) : "no such user");
		return -1;
	}
	*uid = (uid_t)number;
	*gid = (gid_t)number;
	return 0;
}

/* Becomes user, keeping CAP_NET_RAW when it was held. */
int
privileges_drop(const char *user, char *err, size_t errlen)
{
	struct __user_cap_data_struct caps[2];
	const uint32_t raw = 1u << CAP_NET_RAW;
	bool had_raw;
	uid_t uid;
	gid_t gid;

	if (privileges_lookup(user, &uid, &gid, err, errlen) == -1)
		return -1;
	if (uid == 0) {
		snprintf(err, errlen, "user %s is root: name another user",
		    user);
		return -1;
	}
	if (privileges_get(caps) == -1) {
		snprintf(err, errlen, "capget: %s", strerror(errno));
		return -1;
	}
	had_raw = (caps[0].permitted & raw) != 0;
	/* Keep the permitted set across the change of user. */
	if (prctl(PR_SET_KEEPCAPS, 1L, 0L, 0L, 0L) == -1) {
		snprintf(err, errlen, "prctl(PR_SET_KEEPCAPS): %s",
		    strerror(errno));
		return -1;
	}
	if (setgroups(0, NULL) == -1 || setresgid(gid, gid, gid) == -1 ||
	    setresuid(uid, uid, uid) == -1) {
		snprintf(err, errlen, "becoming user %s (uid %u, gid %u): %s",
		    user, (unsigned)uid, (unsigned)gid, strerror(errno));
		return -1;
	}
	memset(caps, 0, sizeof(caps));
	if (had_raw)
		caps[0].permitted = caps[0].effective = raw;
	if (privileges_set(caps) == -1) {
		snprintf(err, errlen, "capset: %s", strerror(errno));
		return -1;
	}
	(void)prctl(PR_SET_KEEPCAPS, 0L, 0L, 0L, 0L);
	/* Never back: a process that could regain root has not left it. */
	if (setuid(0) == 0) {
		snprintf(err, errlen, "still able to become root after "
		    "becoming %s", user);
		return -1;
	}
	return 0;
}
