/* systemd notifications over $NOTIFY_SOCKET (the documented datagram protocol). */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/notify.h"

struct notify {
	int			fd;
	struct sockaddr_un	address;
	socklen_t		address_len;
};

/* Opens the socket named by $NOTIFY_SOCKET. */
struct notify *
notify_open(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct notify *notify;
	size_t len;

	if (path == NULL || *path == '\0')
		return NULL;
	len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') ||
	    len >= sizeof(notify->address.sun_path)) {
		log_warnx("notify: NOTIFY_SOCKET=%s is not a socket path", path);
		return NULL;
	}
	if ((notify = calloc(1, sizeof(*notify))) == NULL)
		fatal("notify: calloc");
	notify->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (notify->fd == -1) {
		log_warn("notify: socket");
		free(notify);
		return NULL;
	}
	notify->address.sun_family = AF_UNIX;
	memcpy(notify->address.sun_path, path, len);
	/* A leading '@' names the abstract namespace. */
	if (path[0] == '@')
		notify->address.sun_path[0] = '\0';
	notify->address_len = offsetof(struct sockaddr_un, sun_path) + len;
	return notify;
}

/* Closes it. */
void
notify_close(struct notify *notify)
{
	if (notify == NULL)
		return;
	close(notify->fd);
	free(notify);
}

/* Sends one message. */
void
notify_send(struct notify *notify, const char *fmt, ...)
{
	char message[1024];
	va_list ap;
	int len;

	if (notify == NULL)
		return;
	va_start(ap, fmt);
	len = vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	if (len < 0)
		return;
	if ((size_t)len >= sizeof(message))
		len = sizeof(message) - 1;
	if (sendto(notify->fd, message, (size_t)len, MSG_NOSIGNAL,
	    (struct sockaddr *)&notify->address, notify->address_len) == -1)
		log_debug("notify: sendto: %s", strerror(errno));
}

/* The watchdog interval systemd asked for. */
uint64_t
notify_watchdog_usec(void)
{
	const char *usec = getenv("WATCHDOG_USEC");
	const char *pid = getenv("WATCHDOG_PID");

	if (usec == NULL)
		return 0;
	if (pid != NULL && *pid != '\0' && strtol(pid, NULL, 10) != (long)getpid())
		return 0;
	return strtoull(usec, NULL, 10);
}
