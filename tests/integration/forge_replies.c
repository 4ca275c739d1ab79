/*
 * forge_replies: a test tool for the ping sweeper.  It watches the echo
 * requests that reach one interface (in a network namespace the test
 * made) and sends echo replies back as raw Ethernet frames:
 *
 *   -f  for every request to an address not named by -a, four forged
 *       replies, each wrong in one way: another identifier, a sequence
 *       number far from the request's, a cookie with one bit flipped, a
 *       source address other than the probed one (-s/-S);
 *   -a  true replies for the address named (repeatable), optionally only
 *       to every Nth request to it (-n N), after a delay (-w MS), and
 *       twice (-d: the second is a duplicate);
 *   with neither, it only lists the requests it saw.
 *
 * It runs for -t seconds (or until SIGTERM), then prints one JSON line:
 * {"requests": n, "forged": n, "answered": n, "to": ["address", ...]}.
 *
 *   forge_replies -i IFACE -t SECONDS [-f] [-s SRC4] [-S SRC6]
 *                 [-a ADDR]... [-n N] [-w MS] [-d]
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_ANSWERED	32
#define MAX_SEEN	1024
#define MAX_PENDING	4096
#define FRAME_MAX	2048

/* An address of either family. */
struct address {
	int	family;
	uint8_t	bytes[16];
};

/* An echo request seen on the wire. */
struct request {
	uint8_t		mac_from[6];
	uint8_t		mac_to[6];
	struct address	from;
	struct address	to;
	uint16_t	identifier;
	uint16_t	sequence;
	uint8_t		payload[1500];
	size_t		payload_len;
};

/* A reply waiting for its time (-w). */
struct pending {
	double		due;
	struct request	request;
};

/* The tool's state. */
struct forger {
	int		fd;
	int		ifindex;
	bool		forge;
	bool		duplicate;
	unsigned	every;
	double		wait;
	struct address	wrong4;
	struct address	wrong6;
	bool		have_wrong4;
	bool		have_wrong6;
	struct address	answered[MAX_ANSWERED];
	unsigned	answered_seen[MAX_ANSWERED];
	size_t		answered_count;
	struct address	seen[MAX_SEEN];
	size_t		seen_count;
	struct pending	pending[MAX_PENDING];
	size_t		pending_count;
	unsigned long	requests;
	unsigned long	forged;
	unsigned long	answers;
};

static volatile sig_atomic_t stop;

/* Notes a signal to stop. */
static void
on_signal(int signo)
{
	stop = 1;
}

/* Stops the program with a message. */
static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

/* The monotonic clock in seconds. */
static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Parses an address of either family, or stops. */
static struct address
parse_address(const char *text)
{
	struct address a;

	memset(&a, 0, sizeof(a));
	if (inet_pton(AF_INET, text, a.bytes) == 1)
		a.family = AF_INET;
	else if (inet_pton(AF_INET6, text, a.bytes) == 1)
		a.family = AF_INET6;
	else
		die("forge_replies: %s is not an address", text);
	return a;
}

/* Tells whether two addresses are the same. */
static bool
same_address(const struct address *a, const struct address *b)
{
	return a->family == b->family && memcmp(a->bytes, b->bytes,
	    a->family == AF_INET ? 4 : 16) == 0;
}

/* Adds to a one's-complement sum. */
static uint32_t
sum_bytes(uint32_t sum, const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len % 2 == 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

/* Folds a sum into a checksum. */
static uint16_t
fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* Writes 2 bytes in network order. */
static void
put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/*
 * Sends one echo reply for a request, from the given source, with the
 * given identifier, sequence and payload.
 */
static void
send_reply(struct forger *f, const struct request *rq,
    const struct address *source, uint16_t identifier, uint16_t sequence,
    const uint8_t *payload, size_t payload_len)
{
	uint8_t frame[FRAME_MAX], *ip = frame + 14, *icmp;
	struct sockaddr_ll to;
	size_t icmp_len = 8 + payload_len, len;
	uint32_t sum;

	memset(frame, 0, sizeof(frame));
	memcpy(frame, rq->mac_from, 6);
	memcpy(frame + 6, rq->mac_to, 6);
	if (rq->from.family == AF_INET) {
		put16(frame + 12, ETH_P_IP);
		ip[0] = 0x45;
		put16(ip + 2, (uint16_t)(20 + icmp_len));
		ip[8] = 64;
		ip[9] = IPPROTO_ICMP;
		memcpy(ip + 12, source->bytes, 4);
		memcpy(ip + 16, rq->from.bytes, 4);
		put16(ip + 10, fold(sum_bytes(0, ip, 20)));
		icmp = ip + 20;
		icmp[0] = 0;		/* echo reply */
		len = 14 + 20 + icmp_len;
	} else {
		put16(frame + 12, ETH_P_IPV6);
		ip[0] = 0x60;
		put16(ip + 4, (uint16_t)icmp_len);
		ip[6] = IPPROTO_ICMPV6;
		ip[7] = 64;
		memcpy(ip + 8, source->bytes, 16);
		memcpy(ip + 24, rq->from.bytes, 16);
		icmp = ip + 40;
		icmp[0] = 129;		/* echo reply */
		len = 14 + 40 + icmp_len;
	}
	put16(icmp + 4, identifier);
	put16(icmp + 6, sequence);
	memcpy(icmp + 8, payload, payload_len);
	if (rq->from.family == AF_INET)
		sum = sum_bytes(0, icmp, icmp_len);
	else {
		uint8_t pseudo[8] = { 0 };

		/* The IPv6 pseudo-header: addresses, length, next header. */
		sum = sum_bytes(0, ip + 8, 32);
		pseudo[2] = (uint8_t)(icmp_len >> 8);
		pseudo[3] = (uint8_t)icmp_len;
		pseudo[7] = IPPROTO_ICMPV6;
		sum = sum_bytes(sum, pseudo, sizeof(pseudo));
		sum = sum_bytes(sum, icmp, icmp_len);
	}
	put16(icmp + 2, fold(sum));

	memset(&to, 0, sizeof(to));
	to.sll_family = AF_PACKET;
	to.sll_ifindex = f->ifindex;
	to.sll_halen = 6;
	memcpy(to.sll_addr, rq->mac_from, 6);
	if (sendto(f->fd, frame, len, 0, (struct sockaddr *)&to,
	    sizeof(to)) == -1)
		fprintf(stderr, "forge_replies: sendto: %s\n", strerror(errno));
}

/* Sends the four replies that are each wrong in one way. */
static void
forge(struct forger *f, const struct request *rq)
{
	uint8_t cookie[1500];
	const struct address *wrong = rq->to.family == AF_INET ?
	    (f->have_wrong4 ? &f->wrong4 : NULL) :
	    (f->have_wrong6 ? &f->wrong6 : NULL);

	send_reply(f, rq, &rq->to, rq->identifier ^ 0x5a5a, rq->sequence,
	    rq->payload, rq->payload_len);
	send_reply(f, rq, &rq->to, rq->identifier,
	    (uint16_t)(rq->sequence + 32768), rq->payload, rq->payload_len);
	memcpy(cookie, rq->payload, rq->payload_len);
	if (rq->payload_len > 0)
		cookie[rq->payload_len - 1] ^= 0x01;
	send_reply(f, rq, &rq->to, rq->identifier, rq->sequence, cookie,
	    rq->payload_len);
	f->forged += 3;
	if (wrong != NULL) {
		send_reply(f, rq, wrong, rq->identifier, rq->sequence,
		    rq->payload, rq->payload_len);
		f->forged++;
	}
}

/* Sends a true reply (and its duplicate with -d). */
static void
answer(struct forger *f, const struct request *rq)
{
	send_reply(f, rq, &rq->to, rq->identifier, rq->sequence, rq->payload,
	    rq->payload_len);
	f->answers++;
	if (f->duplicate)
		send_reply(f, rq, &rq->to, rq->identifier, rq->sequence,
		    rq->payload, rq->payload_len);
}

/*
 * Parses a frame; returns true with *rq filled for an echo request
 * (IPv4, or IPv6 with ICMPv6 as the first next header).
 */
static bool
parse_request(const uint8_t *frame, size_t len, struct request *rq)
{
	const uint8_t *ip = frame + 14, *icmp;
	unsigned type = (unsigned)(frame[12] << 8 | frame[13]);
	size_t ip_len, header;

	if (len < 14)
		return false;
	memset(rq, 0, sizeof(*rq));
	memcpy(rq->mac_to, frame, 6);
	memcpy(rq->mac_from, frame + 6, 6);
	len -= 14;
	if (type == ETH_P_IP) {
		if (len < 20 || ip[9] != IPPROTO_ICMP)
			return false;
		header = (size_t)(ip[0] & 0x0f) * 4;
		ip_len = (size_t)(ip[2] << 8 | ip[3]);
		if (header < 20 || ip_len > len || ip_len < header + 8)
			return false;
		icmp = ip + header;
		if (icmp[0] != 8)
			return false;
		rq->from.family = rq->to.family = AF_INET;
		memcpy(rq->from.bytes, ip + 12, 4);
		memcpy(rq->to.bytes, ip + 16, 4);
		rq->payload_len = ip_len - header - 8;
	} else if (type == ETH_P_IPV6) {
		if (len < 48 || ip[6] != IPPROTO_ICMPV6)
			return false;
		ip_len = 40 + (size_t)(ip[4] << 8 | ip[5]);
		if (ip_len > len || ip_len < 48)
			return false;
		icmp = ip + 40;
		if (icmp[0] != 128)
			return false;
		rq->from.family = rq->to.family = AF_INET6;
		memcpy(rq->from.bytes, ip + 8, 16);
		memcpy(rq->to.bytes, ip + 24, 16);
		rq->payload_len = ip_len - 48;
	} else
		return false;
	if (rq->payload_len > sizeof(rq->payload))
		return false;
	rq->identifier = (uint16_t)(icmp[4] << 8 | icmp[5]);
	rq->sequence = (uint16_t)(icmp[6] << 8 | icmp[7]);
	memcpy(rq->payload, icmp + 8, rq->payload_len);
	return true;
}

/* Notes where a request went (once per address). */
static void
note_seen(struct forger *f, const struct address *to)
{
	size_t i;

	for (i = 0; i < f->seen_count; i++)
		if (same_address(&f->seen[i], to))
			return;
	if (f->seen_count < MAX_SEEN)
		f->seen[f->seen_count++] = *to;
}

/* Deals with one echo request. */
static void
handle(struct forger *f, const struct request *rq)
{
	size_t i;

	f->requests++;
	note_seen(f, &rq->to);
	for (i = 0; i < f->answered_count; i++) {
		if (!same_address(&f->answered[i], &rq->to))
			continue;
		/* -n N: only every Nth request to this address is answered. */
		if (++f->answered_seen[i] % f->every != 0)
			return;
		if (f->wait <= 0.0) {
			answer(f, rq);
			return;
		}
		if (f->pending_count == MAX_PENDING)
			return;
		f->pending[f->pending_count].due = now() + f->wait;
		f->pending[f->pending_count].request = *rq;
		f->pending_count++;
		return;
	}
	if (f->forge)
		forge(f, rq);
}

/* Sends the delayed answers whose time has come. */
static void
send_due(struct forger *f)
{
	double t = now();
	size_t i = 0;

	while (i < f->pending_count) {
		if (f->pending[i].due > t) {
			i++;
			continue;
		}
		answer(f, &f->pending[i].request);
		f->pending[i] = f->pending[--f->pending_count];
	}
}

/* Prints the summary line. */
static void
report(const struct forger *f)
{
	char text[INET6_ADDRSTRLEN];
	size_t i;

	printf("{\"requests\": %lu, \"forged\": %lu, \"answered\": %lu, "
	    "\"to\": [", f->requests, f->forged, f->answers);
	for (i = 0; i < f->seen_count; i++) {
		inet_ntop(f->seen[i].family, f->seen[i].bytes, text,
		    sizeof(text));
		printf("%s\"%s\"", i ? ", " : "", text);
	}
	printf("]}\n");
	fflush(stdout);
}

/* Reads the options, then watches and answers until the time is up. */
int
main(int argc, char **argv)
{
	static struct forger f;
	struct sockaddr_ll bind_to, from;
	struct request rq;
	struct pollfd pfd;
	uint8_t frame[FRAME_MAX];
	const char *iface = NULL;
	double seconds = 10.0, deadline;
	socklen_t from_len;
	ssize_t len;
	int option;

	f.every = 1;
	while ((option = getopt(argc, argv, "i:t:fs:S:a:n:w:d")) != -1) {
		switch (option) {
		case 'i':
			iface = optarg;
			break;
		case 't':
			seconds = atof(optarg);
			break;
		case 'f':
			f.forge = true;
			break;
		case 's':
			f.wrong4 = parse_address(optarg);
			f.have_wrong4 = f.wrong4.family == AF_INET;
			break;
		case 'S':
			f.wrong6 = parse_address(optarg);
			f.have_wrong6 = f.wrong6.family == AF_INET6;
			break;
		case 'a':
			if (f.answered_count == MAX_ANSWERED)
				die("forge_replies: too many -a");
			f.answered[f.answered_count++] = parse_address(optarg);
			break;
		case 'n':
			f.every = (unsigned)atoi(optarg);
			if (f.every == 0)
				die("forge_replies: -n must be at least 1");
			break;
		case 'w':
			f.wait = atof(optarg) / 1000.0;
			break;
		case 'd':
			f.duplicate = true;
			break;
		default:
			die("usage: forge_replies -i IFACE -t SECONDS [-f] "
			    "[-s SRC4] [-S SRC6] [-a ADDR]... [-n N] [-w MS] "
			    "[-d]");
		}
	}
	if (iface == NULL || (f.ifindex = (int)if_nametoindex(iface)) == 0)
		die("forge_replies: no interface %s", iface ? iface : "(-i)");

	if ((f.fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL))) == -1)
		die("forge_replies: socket: %s", strerror(errno));
	memset(&bind_to, 0, sizeof(bind_to));
	bind_to.sll_family = AF_PACKET;
	bind_to.sll_protocol = htons(ETH_P_ALL);
	bind_to.sll_ifindex = f.ifindex;
	if (bind(f.fd, (struct sockaddr *)&bind_to, sizeof(bind_to)) == -1)
		die("forge_replies: bind: %s", strerror(errno));
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	/* Ready: the test waits for this line before it starts sweeping. */
	fprintf(stderr, "forge_replies: watching %s\n", iface);

	deadline = now() + seconds;
	pfd.fd = f.fd;
	pfd.events = POLLIN;
	while (!stop && now() < deadline) {
		send_due(&f);
		if (poll(&pfd, 1, 5) <= 0)
			continue;
		from_len = sizeof(from);
		len = recvfrom(f.fd, frame, sizeof(frame), 0,
		    (struct sockaddr *)&from, &from_len);
		if (len <= 0)
			continue;
		/* Our own frames come back as outgoing: not requests. */
		if (from.sll_pkttype == PACKET_OUTGOING)
			continue;
		if (parse_request(frame, (size_t)len, &rq))
			handle(&f, &rq);
	}
	report(&f);
	close(f.fd);
	return 0;
}
