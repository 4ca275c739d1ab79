/* The sweeper's ICMP sockets: raw or ping sockets, batched send and receive. */
#include <sys/socket.h>
#include <sys/uio.h>

#include <netinet/in.h>
#include <netinet/icmp6.h>
#include <linux/filter.h>
#include <linux/icmp.h>

#include <errno.h>
#include <time.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sweeper/sweep_socket.h"

/* Lets a raw socket read only echo replies; everything else stays out. */
static int
sweep_socket_filter(struct sweep_socket *sock)
{
	if (sock->family == AF_INET) {
		struct icmp_filter filter;

		/* A set bit drops that type. */
		filter.data = ~(1U << ICMP_ECHOREPLY);
		return setsockopt(sock->fd, SOL_RAW, ICMP_FILTER, &filter,
		    sizeof(filter));
	} else {
		struct icmp6_filter filter;

		ICMP6_FILTER_SETBLOCKALL(&filter);
		ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &filter);
		return setsockopt(sock->fd, IPPROTO_ICMPV6, ICMP6_FILTER,
		    &filter, sizeof(filter));
	}
}

/*
 * Lets a raw socket read only replies with our identifier, as iputils'
 * ping does: a raw socket gets every echo reply of the host, and another
 * program's (fping's, say) would wake the loop for nothing.  The sweeper
 * checks the identifier again when it reads a reply.
 */
static int
sweep_socket_bpf(struct sweep_socket *sock)
{
	struct sock_filter ipv4[] = {
		/* X = the IPv4 header's length; A = the ICMP identifier. */
		BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 0),
		BPF_STMT(BPF_LD | BPF_H | BPF_IND, 4),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, sock->identifier, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, 0xffffffff),
		BPF_STMT(BPF_RET | BPF_K, 0),
	};
	struct sock_filter ipv6[] = {
		/* An ICMPv6 raw socket reads no IP header. */
		BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 4),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, sock->identifier, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, 0xffffffff),
		BPF_STMT(BPF_RET | BPF_K, 0),
	};
	struct sock_fprog program;

	if (sock->family == AF_INET) {
		program.filter = ipv4;
		program.len = sizeof(ipv4) / sizeof(ipv4[0]);
	} else {
		program.filter = ipv6;
		program.len = sizeof(ipv6) / sizeof(ipv6[0]);
	}
	return setsockopt(sock->fd, SOL_SOCKET, SO_ATTACH_FILTER, &program,
	    sizeof(program));
}

/* Binds a ping socket to a port of the kernel's choice: its identifier. */
static int
sweep_socket_bind(struct sweep_socket *sock)
{
	struct sockaddr_storage ss;
	socklen_t len;

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = (sa_family_t)sock->family;
	len = sock->family == AF_INET ? sizeof(struct sockaddr_in) :
	    sizeof(struct sockaddr_in6);
	if (bind(sock->fd, (struct sockaddr *)&ss, len) == -1 ||
	    getsockname(sock->fd, (struct sockaddr *)&ss, &len) == -1)
		return -1;
	sock->identifier = ntohs(sock->family == AF_INET ?
	    ((struct sockaddr_in *)&ss)->sin_port :
	    ((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

/* Opens a raw socket, else a ping socket. */
int
sweep_socket_open(struct sweep_socket *sock, int family, uint16_t identifier,
    int rcvbuf, char *err, size_t errlen)
{
	int protocol = family == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6;
	int size = rcvbuf, raw_errno, on = 1;
	socklen_t len = sizeof(sock->rcvbuf);
	const char *step;

	memset(sock, 0, sizeof(*sock));
	sock->family = family;
	sock->fd = socket(family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    protocol);
	if (sock->fd != -1) {
		sock->kind = SWEEP_SOCKET_RAW;
		sock->identifier = identifier;
		step = "ICMP filter";
		if (sweep_socket_filter(sock) == -1)
			goto fail;
		step = "identifier filter";
		if (sweep_socket_bpf(sock) == -1)
			goto fail;
	} else {
		raw_errno = errno;
		sock->fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, protocol);
		if (sock->fd == -1) {
			snprintf(err, errlen, "raw socket: %s; ping socket: %s",
			    strerror(raw_errno), strerror(errno));
			return -1;
		}
		sock->kind = SWEEP_SOCKET_PING;
		step = "bind";
		if (sweep_socket_bind(sock) == -1)
			goto fail;
	}
	/* Past net.core.rmem_max only with CAP_NET_ADMIN, else up to it. */
	if (setsockopt(sock->fd, SOL_SOCKET, SO_RCVBUFFORCE, &size,
	    sizeof(size)) == -1)
		(void)setsockopt(sock->fd, SOL_SOCKET, SO_RCVBUF, &size,
		    sizeof(size));
	if (getsockopt(sock->fd, SOL_SOCKET, SO_RCVBUF, &sock->rcvbuf,
	    &len) == -1)
		sock->rcvbuf = 0;
	/*
	 * Each read then says how many replies the kernel dropped so far
	 * (raw sockets; ping sockets never say).  Without it, none counted.
	 */
	(void)setsockopt(sock->fd, SOL_SOCKET, SO_RXQ_OVFL, &on, sizeof(on));
	/*
	 * And when each reply arrived: a reply that came in time is in time,
	 * however long the loop took to read it.
	 */
	(void)setsockopt(sock->fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on));
	return 0;
fail:
	snprintf(err, errlen, "%s socket: %s: %s",
	    sweep_socket_kind_name(sock->kind), step, strerror(errno));
	sweep_socket_close(sock);
	return -1;
}

/* Closes a socket. */
void
sweep_socket_close(struct sweep_socket *sock)
{
	int saved = errno;

	if (sock->kind != SWEEP_SOCKET_NONE && sock->fd != -1)
		close(sock->fd);
	sock->fd = -1;
	sock->kind = SWEEP_SOCKET_NONE;
	errno = saved;
}

/* Names a kind of socket. */
const char *
sweep_socket_kind_name(enum sweep_socket_kind kind)
{
	switch (kind) {
	case SWEEP_SOCKET_RAW:
		return "raw";
	case SWEEP_SOCKET_PING:
		return "ping";
	default:
		return "no";
	}
}

/* Sends a batch of requests. */
unsigned
sweep_socket_send(struct sweep_socket *sock, struct sweep_send *msgs,
    unsigned count, bool *blocked)
{
	struct mmsghdr headers[SWEEP_SOCKET_BATCH];
	struct iovec iov[SWEEP_SOCKET_BATCH];
	unsigned i, done = 0;
	int sent;

	*blocked = false;
	if (count > SWEEP_SOCKET_BATCH)
		count = SWEEP_SOCKET_BATCH;
	memset(headers, 0, sizeof(headers[0]) * count);
	for (i = 0; i < count; i++) {
		iov[i].iov_base = (void *)msgs[i].data;
		iov[i].iov_len = msgs[i].len;
		headers[i].msg_hdr.msg_name = &msgs[i].to;
		headers[i].msg_hdr.msg_namelen = msgs[i].to_len;
		headers[i].msg_hdr.msg_iov = &iov[i];
		headers[i].msg_hdr.msg_iovlen = 1;
	}
	while (done < count) {
		sent = sendmmsg(sock->fd, headers + done, count - done, 0);
		if (sent > 0) {
			for (i = done; i < done + (unsigned)sent; i++)
				msgs[i].error = 0;
			done += (unsigned)sent;
			continue;
		}
		/*
		 * sendmmsg() reports the error of the first message it could
		 * not send; a full buffer stops the batch, anything else
		 * (no route, refused by a firewall) belongs to that one
		 * message, and the rest are tried.
		 */
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == ENOBUFS) {
			*blocked = true;
			break;
		}
		msgs[done++].error = errno != 0 ? errno : EIO;
	}
	return done;
}

/* Reads a batch of datagrams. */
int
sweep_socket_receive(struct sweep_socket *sock,
    struct sweep_datagram *datagrams, unsigned max)
{
	struct mmsghdr headers[SWEEP_SOCKET_BATCH];
	struct iovec iov[SWEEP_SOCKET_BATCH];
	union {
		char		buf[CMSG_SPACE(sizeof(uint32_t)) +
		    CMSG_SPACE(sizeof(struct timespec))];
		struct cmsghdr	align;
	} control[SWEEP_SOCKET_BATCH];
	struct timespec arrived;
	struct cmsghdr *cmsg;
	unsigned i;
	int got;

	if (max > SWEEP_SOCKET_BATCH)
		max = SWEEP_SOCKET_BATCH;
	memset(headers, 0, sizeof(headers[0]) * max);
	for (i = 0; i < max; i++) {
		iov[i].iov_base = datagrams[i].data;
		iov[i].iov_len = sizeof(datagrams[i].data);
		headers[i].msg_hdr.msg_name = &datagrams[i].from;
		headers[i].msg_hdr.msg_namelen = sizeof(datagrams[i].from);
		headers[i].msg_hdr.msg_iov = &iov[i];
		headers[i].msg_hdr.msg_iovlen = 1;
		headers[i].msg_hdr.msg_control = control[i].buf;
		headers[i].msg_hdr.msg_controllen = sizeof(control[i].buf);
	}
	do
		got = recvmmsg(sock->fd, headers, max, MSG_DONTWAIT, NULL);
	while (got == -1 && errno == EINTR);
	if (got == -1)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
	for (i = 0; i < (unsigned)got; i++) {
		datagrams[i].len = headers[i].msg_len;
		datagrams[i].truncated =
		    (headers[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
		if (headers[i].msg_hdr.msg_namelen == 0)
			datagrams[i].from.ss_family = AF_UNSPEC;
		datagrams[i].arrived_ns = 0;
		for (cmsg = CMSG_FIRSTHDR(&headers[i].msg_hdr); cmsg != NULL;
		    cmsg = CMSG_NXTHDR(&headers[i].msg_hdr, cmsg)) {
			if (cmsg->cmsg_level != SOL_SOCKET)
				continue;
			if (cmsg->cmsg_type == SO_RXQ_OVFL &&
			    cmsg->cmsg_len >= CMSG_LEN(sizeof(uint32_t)))
				memcpy(&sock->drops, CMSG_DATA(cmsg),
				    sizeof(uint32_t));
			if (cmsg->cmsg_type == SCM_TIMESTAMPNS &&
			    cmsg->cmsg_len >= CMSG_LEN(sizeof(arrived))) {
				memcpy(&arrived, CMSG_DATA(cmsg),
				    sizeof(arrived));
				datagrams[i].arrived_ns =
				    (int64_t)arrived.tv_sec * 1000000000LL +
				    arrived.tv_nsec;
			}
		}
	}
	return got;
}
