/* The typed change model: what one Kafka message means for one entity. */
#ifndef IPAM_CONSUMERS_CHANGE_H
#define IPAM_CONSUMERS_CHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"

enum change_entity {
	CHANGE_SERVER,
	CHANGE_SUBNET,
	CHANGE_MARK,
};

enum change_op {
	CHANGE_UPSERT,
	CHANGE_DELETE,
	CHANGE_TRUNCATE,	/* Debezium op t: every entity of the topic */
};

enum mark_status {
	MARK_RESERVED,
	MARK_QUARANTINE,
};

/* One static pool range, already normalized: first <= last, both inside. */
struct pool_range {
	struct ip_addr	first;
	struct ip_addr	last;
};

/*
 * The addresses an IPv4 subnet's pools (of a subnet of /30 or shorter)
 * held as sent but not as clamped: its network and its broadcast address.
 * A subnet keeps its pools as sent, so that pools kept under a changed
 * cidr (a TOAST placeholder) are held to the new cidr as sent whole.
 * Bits of struct change's pool_edges.
 */
#define CHANGE_POOL_NETWORK	0x01u
#define CHANGE_POOL_BROADCAST	0x02u

/*
 * Fields a change leaves as they are stored (a Debezium TOAST placeholder,
 * "__debezium_unavailable_value": the column did not change and its value
 * was not sent).  Bits of struct change's keep.
 */
#define CHANGE_KEEP_HOSTNAME	0x01u
#define CHANGE_KEEP_NIC_MAC	0x02u
#define CHANGE_KEEP_DEVICE_TYPE	0x04u
#define CHANGE_KEEP_MANUFACTURE	0x08u
#define CHANGE_KEEP_NAME	0x10u
#define CHANGE_KEEP_POOLS	0x20u

/*
 * A decoded change.  Every string is owned by the change (malloc'd) and
 * freed by change_clear(); absent optional strings are NULL, except vrf,
 * which is always set ("" is the default routing domain).
 */
struct change {
	enum change_entity	entity;
	enum change_op		op;
	char			*id;		/* server/subnet id; mark: "addr" or "vrf/addr" */
	char			*vrf;		/* routing domain, "" by default */
	/*
	 * Order (docs/EVENTS.md): a change with a version applies only if
	 * it is newer than the stored version; one without applies in Kafka
	 * order, whatever is stored.  Debezium: a streamed change carries
	 * its source.lsn as version; a snapshot record (op r) carries none
	 * (it must never beat a streamed change that follows it), only its
	 * lsn.  A truncate carries its lsn and no id.
	 */
	bool			has_version;	/* producer gave a version */
	int64_t			version;	/* entityversion, Debezium LSN */
	bool			has_lsn;	/* Debezium: source.lsn is known */
	int64_t			lsn;		/* Debezium: source.lsn */
	bool			snapshot;	/* Debezium: a snapshot record */
	/* Debezium: a snapshot's (or one table's) first record */
	bool			snapshot_begins;
	bool			unconditional;	/* a Kafka tombstone: forgets the entity */
	unsigned		keep;		/* CHANGE_KEEP_* bits */

	/* server */
	char			*hostname;
	bool			has_ip;
	struct ip_addr		ip;		/* server's ip_address, mark's address */
	char			*nic_mac;	/* normalized "aa:bb:cc:dd:ee:ff" or NULL */
	char			*device_type;
	char			*manufacture;

	/* subnet */
	char			*name;
	struct ip_prefix	cidr;
	struct pool_range	*pools;		/* clamped, sorted, merged */
	size_t			pool_count;
	unsigned		pool_edges;	/* CHANGE_POOL_* */
	bool			ping;		/* default true */

	/* mark (the address is in ip, has_ip is true) */
	enum mark_status	mark_status;
	char			*description;	/* reserved only */
	char			*reason;	/* quarantine only */

	/*
	 * An operator's request (docs/API.md): a mark event that names its
	 * requester.  Its preconditions are checked when it is applied, and
	 * the outcome is kept under request_id (the CloudEvent id).
	 */
	char			*request_id;	/* NULL: not a request */
	/*
	 * What the request asks, hashed (its source, type, address, vrf,
	 * fields, requester and preconditions): the same id with another
	 * digest is another request, not a replay.
	 */
	uint64_t		 request_digest;
	char			*requester;
	bool			 if_available;	/* only while nothing holds it */
	char			*if_match;	/* only while its etag is this */
};

/* Frees what a change owns and zeroes it, so it can be reused. */
void	change_clear(struct change *change);

/* The entity's name as it appears in config and logs: "server", ... */
const char *change_entity_name(enum change_entity entity);

/* Parses "server", "subnet" or "mark"; returns 0 or -1. */
int	change_entity_parse(const char *text, enum change_entity *out);

#endif
