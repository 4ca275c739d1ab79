/* The sweeper's ICMP sockets: raw or ping sockets, batched send and receive. */
#ifndef IPAM_SWEEPER_SWEEP_SOCKET_H
#define IPAM_SWEEPER_SWEEP_SOCKET_H

#include <sys/socket.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Most datagrams one send or receive call handles. */
#define SWEEP_SOCKET_BATCH	64

/* Longest datagram read whole; a longer one is marked truncated. */
#define SWEEP_DATAGRAM_MAX	256

/* What kind of socket the kernel allowed. */
enum sweep_socket_kind {
	SWEEP_SOCKET_NONE,
	SWEEP_SOCKET_RAW,	/* SOCK_RAW: needs CAP_NET_RAW */
	SWEEP_SOCKET_PING,	/* SOCK_DGRAM: needs net.ipv4.ping_group_range */
};

/* One ICMP or ICMPv6 socket. */
struct sweep_socket {
	int			fd;
	int			family;
	enum sweep_socket_kind	kind;
	uint16_t		identifier;	/* of its echo requests */
	int			rcvbuf;		/* bytes, as the kernel has it */
	uint32_t		drops;		/* the kernel's count, last seen */
};

/* One echo request to send; error is set when it could not be. */
struct sweep_send {
	const uint8_t		*data;
	size_t			 len;
	struct sockaddr_storage	 to;
	socklen_t		 to_len;
	int			 error;		/* errno, or 0 once sent */
};

/* One datagram read. */
struct sweep_datagram {
	uint8_t			data[SWEEP_DATAGRAM_MAX];
	size_t			len;
	bool			truncated;
	struct sockaddr_storage	from;
	/*
	 * When the kernel took it in, on the wall clock (SO_TIMESTAMPNS),
	 * in nanoseconds; 0 when the kernel did not say.
	 */
	int64_t			arrived_ns;
};

/*
 * Opens a non-blocking socket of the family: a raw socket, or a ping
 * socket when the kernel refuses a raw one.  A raw socket takes the
 * identifier given and is filtered in the kernel to echo replies that
 * carry it (it reads IPv4 headers); a ping socket is bound, and its
 * identifier is the one the kernel chose.  Its receive buffer is asked
 * to be rcvbuf bytes (rcvbuf says what the kernel made of it), and the
 * kernel counts the replies it drops for lack of room.  Returns 0, or -1
 * with err saying why each kind was refused (errno is that of the last
 * attempt).
 */
int	sweep_socket_open(struct sweep_socket *sock, int family,
	    uint16_t identifier, int rcvbuf, char *err, size_t errlen);

/* Closes a socket (or does nothing if it is not open). */
void	sweep_socket_close(struct sweep_socket *sock);

/* "raw" or "ping". */
const char *sweep_socket_kind_name(enum sweep_socket_kind kind);

/*
 * Sends up to SWEEP_SOCKET_BATCH requests.  Returns how many were
 * handled: sent (error 0) or refused (error set, e.g. ENETUNREACH).
 * When the socket's buffer is full it stops early and sets *blocked; the
 * requests from the returned index on were not tried.
 */
unsigned sweep_socket_send(struct sweep_socket *sock, struct sweep_send *msgs,
	    unsigned count, bool *blocked);

/*
 * Reads up to max datagrams (at most SWEEP_SOCKET_BATCH) without waiting.
 * Returns how many, 0 when there is nothing to read, -1 on error; drops
 * then holds the kernel's count of replies it dropped (it wraps).
 */
int	sweep_socket_receive(struct sweep_socket *sock,
	    struct sweep_datagram *datagrams, unsigned max);

#endif
