/* systemd notifications over $NOTIFY_SOCKET (the documented datagram protocol). */
#ifndef IPAM_DAEMON_NOTIFY_H
#define IPAM_DAEMON_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

struct notify;

/* Opens the socket named by $NOTIFY_SOCKET; NULL when it is not set. */
struct notify	*notify_open(void);

/* Closes it. */
void		 notify_close(struct notify *notify);

/* Sends one message ("READY=1", "STATUS=..."); a NULL notify does nothing. */
void		 notify_send(struct notify *notify, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));

/*
 * The watchdog interval systemd asked for ($WATCHDOG_USEC, honouring
 * $WATCHDOG_PID), in microseconds; 0 when there is none.
 */
uint64_t	 notify_watchdog_usec(void);

#endif
