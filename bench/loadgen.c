/*
 * loadgen: fills the three topics of ipam-syncd with realistic CloudEvents,
 * deterministically from a seed, or produces server moves at a steady rate
 * with each event's produce time, for the benchmarks in bench/run.
 *
 * The inventory it describes (every address is a formula, so that the
 * baselines can make the same rows without reading the events):
 *
 *   subnet s (id s+1, s = 0 .. M-1), k = s / 2
 *     s even: 10.(k / 128).((k % 128) * 2).0/23
 *             pools ["<net>+1-<net>+120", "<net>+128/27"]        (152 addresses)
 *     s odd:  2001:db8:<k hex>::/64
 *             pools ["<net>::1-<net>::78", "<net>::80/123"]       (152 addresses)
 *   host h of subnet s: the network address plus h (h = 1 .. 509)
 *
 *   server i (id i+1, i = 0 .. N-1) at version v (1 .. V):
 *     subnet (i + (v-1) * 7919) % M,
 *     host   (i / M) % 115 + 1 + (v even ? 115 : 0)
 *   so that no two servers ever hold one address at the same version, and
 *   a move from an odd to an even version never lands on an address that a
 *   server still at the previous version holds (one partition per topic
 *   keeps that true at every instant; with several partitions a partition
 *   may run ahead and transient conflicts appear, as they would in life).
 *   Then D% of the servers (chosen by the seed) are deleted at version V+1.
 *
 *   mark j (j = 0 .. K-1): host 240 + (j / M) % 10 of subnet j % M; 70%
 *   reserved with a description, 30% quarantine; every tenth is cleared
 *   again at version 2.
 *
 *   --format debezium: the server events as the Debezium PostgreSQL
 *   connector (3.6) writes them for an inventory table "servers" (id
 *   bigint, hostname, ip_address inet, nic_mac, device_type, manufacture,
 *   created_at and updated_at timestamptz) with the JSON converter's
 *   schemas.enable=true: key {"schema":...,"payload":{"id":N}}, value
 *   {"schema":<the envelope's schema>,"payload":{"before":null,"after":
 *   {...},"source":{...,"lsn":L},"op":"c"|"u",...}}, about 3.5 KB each.
 *   The first version is op c, later ones op u; source.lsn grows with
 *   every event (it is the daemon's version).  A delete is op d (before
 *   holding the id only, as without REPLICA IDENTITY FULL) followed by a
 *   Kafka tombstone.  Subnets and marks stay CloudEvents.
 *
 *   steady mode: server i (i = 0 .. rate*duration-1; those past N are new
 *   servers) moves to host
 *   256 + (i / M) % 115 of subnet (i + 3 * 7919) % M at version V+2, one
 *   event every 1/rate s; the CloudEvent id is "lat-<produce time in us
 *   since the epoch>" and the --stamp-file gets "<server id> <us>".
 *
 * Usage: loadgen --bootstrap HOST:PORT --prefix P [options]; see usage().
 * Prints one JSON line: the counts produced per topic and the time taken.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "bench_util.h"

const char *const bench_tool = "loadgen";

#define SERVER_BAND	115
#define HOSTS_MARK	240
#define HOSTS_STEADY	256
#define MOVE_STRIDE	7919

struct options {
	const char	*bootstrap;
	const char	*prefix;
	int		 partitions;
	bool		 create_topics;
	long		 servers;
	long		 subnets;
	long		 versions;
	double		 delete_pct;
	long		 marks;
	uint64_t	 seed;
	double		 rate;
	double		 duration;
	const char	*stamp_file;
	const char	*compression;
	bool		 debezium;
	bool		 no_fill;
	bool		 final_only;
	bool		 servers_only;
	char		**subnet_events;	/* "ID=CIDR=POOL[,POOL...]" */
	size_t		 subnet_event_count;
	long		 event_version;
};

static rd_kafka_t *producer;
static uint64_t delivered, failed;
static char last_error[256];

/* xorshift64*: small, fast and the same on every machine. */
static uint64_t rng_state;

static uint64_t
rng_next(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

static double
rng_unit(void)
{
	return (double)(rng_next() >> 11) / 9007199254740992.0;
}

/* The address of host h of subnet s, as text. */
static void
host_address(long s, long h, char *out, size_t len)
{
	long k = s / 2;

	if (s % 2 == 0) {
		long base = (k % 128) * 2 * 256 + h;	/* offset in the /16 */

		snprintf(out, len, "10.%ld.%ld.%ld", k / 128, base / 256,
		    base % 256);
	} else {
		char raw[64];
		unsigned char bin[16];

		/* Canonical text, as a producer's address library writes it. */
		snprintf(raw, sizeof(raw), "2001:db8:%lx::%lx", k, h);
		if (inet_pton(AF_INET6, raw, bin) != 1 ||
		    inet_ntop(AF_INET6, bin, out, (socklen_t)len) == NULL)
			die("bad address %s", raw);
	}
}

/* The subnet's cidr and pools, as JSON members. */
static void
subnet_json(long s, char *cidr, size_t cidr_len, char *pools, size_t pools_len)
{
	long k = s / 2;

	if (s % 2 == 0) {
		long a = k / 128, b = (k % 128) * 2;

		snprintf(cidr, cidr_len, "10.%ld.%ld.0/23", a, b);
		snprintf(pools, pools_len, "[\"10.%ld.%ld.1-10.%ld.%ld.120\","
		    "\"10.%ld.%ld.128/27\"]", a, b, a, b, a, b);
	} else {
		char net[64], first[64], last[64], block[64];

		host_address(s, 0, net, sizeof(net));
		host_address(s, 1, first, sizeof(first));
		host_address(s, 0x78, last, sizeof(last));
		host_address(s, 0x80, block, sizeof(block));
		snprintf(cidr, cidr_len, "%s/64", net);
		snprintf(pools, pools_len, "[\"%s-%s\",\"%s/123\"]", first, last,
		    block);
	}
}

static void
delivery_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	if (m->err) {
		failed++;
		snprintf(last_error, sizeof(last_error), "%s",
		    rd_kafka_err2str(m->err));
	} else
		delivered++;
}

static void
conf_set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
	char err[512];

	if (rd_kafka_conf_set(conf, name, value, err, sizeof(err)) !=
	    RD_KAFKA_CONF_OK)
		die("%s: %s", name, err);
}

/* Produces one message, waiting while the local queue is full. */
static void
produce(const char *topic, const char *key, const char *value, size_t len)
{
	rd_kafka_resp_err_t err;

	for (;;) {
		err = rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(topic),
		    RD_KAFKA_V_KEY(key, strlen(key)),
		    RD_KAFKA_V_VALUE((void *)value, len),
		    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
		if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
			break;
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			die("produce to %s: %s", topic, rd_kafka_err2str(err));
		rd_kafka_poll(producer, 10);
	}
	rd_kafka_poll(producer, 0);
}

static void
create_topics(const struct options *o, char names[3][256])
{
	rd_kafka_NewTopic_t *topics[3];
	rd_kafka_queue_t *queue = rd_kafka_queue_new(producer);
	rd_kafka_event_t *event;
	const rd_kafka_CreateTopics_result_t *result;
	const rd_kafka_topic_result_t **results;
	char err[512];
	size_t i, n;

	for (i = 0; i < 3; i++) {
		topics[i] = rd_kafka_NewTopic_new(names[i], o->partitions, 1, err,
		    sizeof(err));
		if (topics[i] == NULL)
			die("topic %s: %s", names[i], err);
	}
	rd_kafka_CreateTopics(producer, topics, 3, NULL, queue);
	event = rd_kafka_queue_poll(queue, 60000);
	if (event == NULL)
		die("create topics: no answer within 60 s");
	if (rd_kafka_event_error(event))
		die("create topics: %s", rd_kafka_event_error_string(event));
	result = rd_kafka_event_CreateTopics_result(event);
	results = rd_kafka_CreateTopics_result_topics(result, &n);
	for (i = 0; i < n; i++) {
		rd_kafka_resp_err_t e = rd_kafka_topic_result_error(results[i]);

		if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
			die("create %s: %s", rd_kafka_topic_result_name(results[i]),
			    rd_kafka_err2str(e));
	}
	rd_kafka_event_destroy(event);
	for (i = 0; i < 3; i++)
		rd_kafka_NewTopic_destroy(topics[i]);
	rd_kafka_queue_destroy(queue);
}

static const char *const device_types[] = { "PowerEdge R640",
    "PowerEdge R750", "ProLiant DL360 Gen10", "ThinkSystem SR650",
    "UCS C220 M5", "Virtual Machine" };
static const char *const manufacturers[] = { "Dell", "Dell", "HPE",
    "Lenovo", "Cisco", "VMware" };

/* One server upsert: server i placed at (subnet, host). */
static int
server_event(char *buf, size_t len, long i, long version, long subnet,
    long host, const char *event_id)
{
	char addr[64];
	uint64_t r = (uint64_t)i * 0x9E3779B97F4A7C15ULL;
	int d = (int)((r >> 32) % 6);

	host_address(subnet, host, addr, sizeof(addr));
	return snprintf(buf, len, "{\"specversion\":\"1.0\",\"id\":\"%s\","
	    "\"source\":\"/bench/inventory\",\"type\":\"ipam.server.upserted\","
	    "\"subject\":\"%ld\",\"entityversion\":%ld,\"data\":{"
	    "\"hostname\":\"srv-%07ld-v%ld.dc1.example.net\",\"ip_address\":\"%s\","
	    "\"nic_mac\":\"02:%02x:%02x:%02x:%02x:%02x\",\"device_type\":\"%s\","
	    "\"manufacture\":\"%s\"}}", event_id, i + 1, version, i + 1,
	    version, addr, (unsigned)(r >> 8 & 0xff), (unsigned)(r >> 16 & 0xff),
	    (unsigned)(i >> 16 & 0xff), (unsigned)(i >> 8 & 0xff),
	    (unsigned)(i & 0xff), device_types[d], manufacturers[d]);
}

/*
 * The schema block of a Debezium server event: the envelope the Debezium
 * PostgreSQL connector 3.6 declares for the inventory's servers table,
 * with its source block, as the JSON converter writes it with
 * schemas.enable=true.
 */
#define DBZ_TABLE	"inventory.public.servers"
#define DBZ_ROW_FIELDS							\
	"{\"type\":\"int64\",\"optional\":false,\"field\":\"id\"},"	\
	"{\"type\":\"string\",\"optional\":false,\"field\":\"hostname\"},"	\
	"{\"type\":\"string\",\"optional\":true,\"field\":\"ip_address\"},"	\
	"{\"type\":\"string\",\"optional\":true,\"field\":\"nic_mac\"},"	\
	"{\"type\":\"string\",\"optional\":true,\"field\":\"device_type\"},"	\
	"{\"type\":\"string\",\"optional\":true,\"field\":\"manufacture\"},"	\
	"{\"type\":\"string\",\"optional\":false,"			\
	"\"name\":\"io.debezium.time.ZonedTimestamp\",\"version\":1,"	\
	"\"field\":\"created_at\"},"					\
	"{\"type\":\"string\",\"optional\":false,"			\
	"\"name\":\"io.debezium.time.ZonedTimestamp\",\"version\":1,"	\
	"\"field\":\"updated_at\"}"
static const char dbz_value_schema[] =
    "{\"type\":\"struct\",\"fields\":["
    "{\"type\":\"struct\",\"fields\":[" DBZ_ROW_FIELDS "],\"optional\":true,"
    "\"name\":\"" DBZ_TABLE ".Value\",\"field\":\"before\"},"
    "{\"type\":\"struct\",\"fields\":[" DBZ_ROW_FIELDS "],\"optional\":true,"
    "\"name\":\"" DBZ_TABLE ".Value\",\"field\":\"after\"},"
    "{\"type\":\"struct\",\"fields\":["
    "{\"type\":\"string\",\"optional\":false,\"field\":\"version\"},"
    "{\"type\":\"string\",\"optional\":false,\"field\":\"connector\"},"
    "{\"type\":\"string\",\"optional\":false,\"field\":\"name\"},"
    "{\"type\":\"int64\",\"optional\":false,\"field\":\"ts_ms\"},"
    "{\"type\":\"string\",\"optional\":true,\"name\":\"io.debezium.data.Enum\","
    "\"version\":1,\"parameters\":{\"allowed\":\"true,first,"
    "first_in_data_collection,last_in_data_collection,last,false,"
    "incremental\"},\"default\":\"false\",\"field\":\"snapshot\"},"
    "{\"type\":\"string\",\"optional\":false,\"field\":\"db\"},"
    "{\"type\":\"string\",\"optional\":true,\"field\":\"sequence\"},"
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_us\"},"
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_ns\"},"
    "{\"type\":\"string\",\"optional\":false,\"field\":\"schema\"},"
    "{\"type\":\"string\",\"optional\":false,\"field\":\"table\"},"
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"txId\"},"
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"lsn\"},"
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"xmin\"}],"
    "\"optional\":false,\"name\":\"io.debezium.connector.postgresql.Source\","
    "\"version\":1,\"field\":\"source\"},"
    "{\"type\":\"struct\",\"fields\":["
    "{\"type\":\"string\",\"optional\":false,\"field\":\"id\"},"
    "{\"type\":\"int64\",\"optional\":false,\"field\":\"total_order\"},"
    "{\"type\":\"int64\",\"optional\":false,"
    "\"field\":\"data_collection_order\"}],\"optional\":true,"
    "\"name\":\"event.block\",\"version\":1,\"field\":\"transaction\"},"
    "{\"type\":\"string\",\"optional\":false,\"field\":\"op\"},"
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_ms\"},"
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_us\"},"
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_ns\"}],"
    "\"optional\":false,\"name\":\"" DBZ_TABLE ".Envelope\",\"version\":2}";

/* The key of a Debezium server event, schema included. */
static void
debezium_key(char *buf, size_t len, long i)
{
	snprintf(buf, len, "{\"schema\":{\"type\":\"struct\",\"fields\":["
	    "{\"type\":\"int64\",\"optional\":false,\"field\":\"id\"}],\"optional\":false,\"name\":\"" DBZ_TABLE
	    ".Key\"},\"payload\":{\"id\":%ld}}", i + 1);
}

/*
 * One Debezium server event: op c or u with the row of server i at
 * (subnet, host), or op d (host < 0: the row's id only in before).  The
 * event's position in the source's log is lsn; its commit time is ts_us.
 */
static int
debezium_server_event(char *buf, size_t len, long i, long version,
    long subnet, long host, int64_t lsn, int64_t ts_us)
{
	char row[768], addr[64];
	uint64_t r = (uint64_t)i * 0x9E3779B97F4A7C15ULL;
	int d = (int)((r >> 32) % 6);
	const char *op = host < 0 ? "d" : version == 1 ? "c" : "u";

	if (host >= 0) {
		host_address(subnet, host, addr, sizeof(addr));
		snprintf(row, sizeof(row), "{\"id\":%ld,\"hostname\":"
		    "\"srv-%07ld-v%ld.dc1.example.net\",\"ip_address\":\"%s\","
		    "\"nic_mac\":\"02:%02x:%02x:%02x:%02x:%02x\","
		    "\"device_type\":\"%s\",\"manufacture\":\"%s\","
		    "\"created_at\":\"2025-11-20T09:%02ld:%02ld.%06ldZ\","
		    "\"updated_at\":\"2026-11-20T10:%02ld:%02ld.%06ldZ\"}", i + 1,
		    i + 1, version, addr, (unsigned)(r >> 8 & 0xff),
		    (unsigned)(r >> 16 & 0xff), (unsigned)(i >> 16 & 0xff),
		    (unsigned)(i >> 8 & 0xff), (unsigned)(i & 0xff),
		    device_types[d], manufacturers[d], i / 60 % 60, i % 60,
		    i % 1000000, version % 60, i % 60, i % 1000000);
	} else
		snprintf(row, sizeof(row), "{\"id\":%ld,\"hostname\":\"\","
		    "\"ip_address\":null,\"nic_mac\":null,\"device_type\":null,"
		    "\"manufacture\":null,\"created_at\":\"1970-01-01T00:00:00Z\","
		    "\"updated_at\":\"1970-01-01T00:00:00Z\"}", i + 1);
	return snprintf(buf, len, "{\"schema\":%s,\"payload\":{\"before\":%s,"
	    "\"after\":%s,\"source\":{\"version\":\"3.6.1.Final\","
	    "\"connector\":\"postgresql\",\"name\":\"inventory\",\"ts_ms\":%"
	    PRId64 ",\"snapshot\":\"false\",\"db\":\"inventory\",\"sequence\":"
	    "\"[\\\"%" PRId64 "\\\",\\\"%" PRId64 "\\\"]\",\"ts_us\":%" PRId64
	    ",\"ts_ns\":%" PRId64 ",\"schema\":\"public\",\"table\":\"servers\","
	    "\"txId\":%" PRId64 ",\"lsn\":%" PRId64 ",\"xmin\":null},"
	    "\"transaction\":null,\"op\":\"%s\",\"ts_ms\":%" PRId64 ",\"ts_us\":%"
	    PRId64 ",\"ts_ns\":%" PRId64 "}}", dbz_value_schema,
	    host < 0 ? row : "null", host < 0 ? "null" : row, ts_us / 1000,
	    lsn - 56, lsn, ts_us, ts_us * 1000, 700 + lsn / 208, lsn, op,
	    ts_us / 1000 + 12, ts_us + 12345, (ts_us + 12345) * 1000);
}

static void
usage(FILE *out)
{
	fputs("usage: loadgen --bootstrap HOST:PORT --prefix P [options]\n"
	    "  --partitions N      partitions per topic (with --create-topics; 1)\n"
	    "  --create-topics     create P.servers, P.subnets, P.marks\n"
	    "  --servers N         servers (100000)\n"
	    "  --subnets M         subnets, half IPv4 /23, half IPv6 /64 (1000)\n"
	    "  --versions V        versions per server, each moves it (2)\n"
	    "  --delete-pct D      percent of servers deleted at the end (5)\n"
	    "  --marks K           marks (= subnets)\n"
	    "  --seed S            seed (1)\n"
	    "  --compression C     producer compression.codec (lz4)\n"
	    "  --format F          cloudevents (default) or debezium: the server\n"
	    "                      events as Debezium's with the schema block\n"
	    "  --no-fill           produce no fill (with --rate or --subnet-event)\n"
	    "  --final-only        the fill as compaction leaves it: the last\n"
	    "                      version of each server only (same state)\n"
	    "  --servers-only      the fill without its subnets and marks\n"
	    "  --rate R --duration S  then server moves at R events/s for S s\n"
	    "  --stamp-file F      steady mode: write \"<server id> <produce us>\"\n"
	    "  --subnet-event ID=CIDR=POOL[,POOL...]  one subnet upsert (repeatable)\n"
	    "  --event-version V   entityversion of --subnet-event (1)\n", out);
}

static void
parse(int argc, char **argv, struct options *o)
{
	static const struct option longs[] = {
		{ "bootstrap", required_argument, NULL, 'b' },
		{ "prefix", required_argument, NULL, 'p' },
		{ "partitions", required_argument, NULL, 'P' },
		{ "create-topics", no_argument, NULL, 'C' },
		{ "servers", required_argument, NULL, 'n' },
		{ "subnets", required_argument, NULL, 'm' },
		{ "versions", required_argument, NULL, 'v' },
		{ "delete-pct", required_argument, NULL, 'd' },
		{ "marks", required_argument, NULL, 'k' },
		{ "seed", required_argument, NULL, 's' },
		{ "rate", required_argument, NULL, 'r' },
		{ "duration", required_argument, NULL, 't' },
		{ "stamp-file", required_argument, NULL, 'f' },
		{ "compression", required_argument, NULL, 'z' },
		{ "format", required_argument, NULL, 'D' },
		{ "no-fill", no_argument, NULL, 'N' },
		{ "final-only", no_argument, NULL, 'F' },
		{ "servers-only", no_argument, NULL, 'O' },
		{ "subnet-event", required_argument, NULL, 'S' },
		{ "event-version", required_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->partitions = 1;
	o->servers = 100000;
	o->subnets = 1000;
	o->versions = 2;
	o->delete_pct = 5;
	o->marks = -1;
	o->seed = 1;
	o->compression = "lz4";
	o->event_version = 1;
	o->subnet_events = calloc((size_t)argc, sizeof(char *));
	while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		switch (c) {
		case 'b': o->bootstrap = optarg; break;
		case 'p': o->prefix = optarg; break;
		case 'P': o->partitions = atoi(optarg); break;
		case 'C': o->create_topics = true; break;
		case 'n': o->servers = atol(optarg); break;
		case 'm': o->subnets = atol(optarg); break;
		case 'v': o->versions = atol(optarg); break;
		case 'd': o->delete_pct = atof(optarg); break;
		case 'k': o->marks = atol(optarg); break;
		case 's': o->seed = strtoull(optarg, NULL, 10); break;
		case 'r': o->rate = atof(optarg); break;
		case 't': o->duration = atof(optarg); break;
		case 'f': o->stamp_file = optarg; break;
		case 'z': o->compression = optarg; break;
		case 'D':
			if (strcmp(optarg, "debezium") == 0)
				o->debezium = true;
			else if (strcmp(optarg, "cloudevents") != 0)
				die("--format is cloudevents or debezium");
			break;
		case 'N': o->no_fill = true; break;
		case 'F': o->final_only = true; break;
		case 'O': o->servers_only = true; break;
		case 'S': o->subnet_events[o->subnet_event_count++] = optarg; break;
		case 'V': o->event_version = atol(optarg); break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (o->bootstrap == NULL)
		o->bootstrap = getenv("KAFKA_BOOTSTRAP_SERVERS");
	if (o->bootstrap == NULL || o->prefix == NULL) {
		usage(stderr);
		exit(2);
	}
	if (o->marks < 0)
		o->marks = o->subnets;
	if (o->subnets < 2 || o->subnets > 51200 || o->servers < 0 ||
	    o->versions < 1 || o->partitions < 1)
		die("bad counts (2 <= subnets <= 51200, versions >= 1)");
	if (o->servers > SERVER_BAND * o->subnets)
		die("at most %ld servers fit %ld subnets", SERVER_BAND * o->subnets,
		    o->subnets);
	if (o->marks > 10 * o->subnets)
		die("at most %ld marks fit %ld subnets", 10 * o->subnets,
		    o->subnets);
	if ((o->rate > 0) != (o->duration > 0))
		die("--rate and --duration go together");
	if (o->debezium && o->rate > 0)
		die("--format debezium makes a fill, not steady moves");
}

int
main(int argc, char **argv)
{
	struct options o;
	rd_kafka_conf_t *conf;
	char names[3][256], err[512], buf[8192], key[512], id[96];
	char cidr[96], pools[512];
	uint64_t counts[3] = { 0, 0, 0 }, server_events = 0;
	double began, fill_s = 0, steady_s = 0;
	/* Debezium: each event's position in the source's log, its time. */
	int64_t lsn = 24000000, dbz_ts = 1763630000000000;
	long i, v, deleted = 0;
	int len;
	FILE *stamps = NULL;

	parse(argc, argv, &o);
	rng_state = o.seed * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL;
	if (rng_state == 0)
		rng_state = 1;
	snprintf(names[0], sizeof(names[0]), "%s.servers", o.prefix);
	snprintf(names[1], sizeof(names[1]), "%s.subnets", o.prefix);
	snprintf(names[2], sizeof(names[2]), "%s.marks", o.prefix);

	conf = rd_kafka_conf_new();
	conf_set(conf, "bootstrap.servers", o.bootstrap);
	conf_set(conf, "client.id", "ipam-bench-loadgen");
	conf_set(conf, "log_level", "4");
	conf_set(conf, "queue.buffering.max.messages", "1000000");
	conf_set(conf, "queue.buffering.max.kbytes", "1048576");
	conf_set(conf, "batch.num.messages", "10000");
	conf_set(conf, "compression.codec", o.compression);
	/* Steady mode measures latency: no producer-side lingering. */
	conf_set(conf, "linger.ms", o.rate > 0 ? "0" : "50");
	rd_kafka_conf_set_dr_msg_cb(conf, delivery_cb);
	producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (producer == NULL)
		die("%s", err);
	if (o.create_topics)
		create_topics(&o, names);

	began = now_s();
	if (!o.no_fill) {
		/* Subnets first, as an inventory is usually built. */
		for (i = 0; i < (o.servers_only ? 0 : o.subnets); i++) {
			subnet_json(i, cidr, sizeof(cidr), pools, sizeof(pools));
			snprintf(key, sizeof(key), "%ld", i + 1);
			len = snprintf(buf, sizeof(buf), "{\"specversion\":\"1.0\","
			    "\"id\":\"net-%ld-1\",\"source\":\"/bench/inventory\","
			    "\"type\":\"ipam.subnet.upserted\",\"subject\":\"%ld\","
			    "\"entityversion\":1,\"data\":{\"name\":\"%s-%ld\","
			    "\"cidr\":\"%s\",\"static_ip_pools\":%s}}", i + 1, i + 1,
			    i % 2 ? "v6net" : "v4net", i + 1, cidr, pools);
			produce(names[1], key, buf, (size_t)len);
			counts[1]++;
		}
		/* Marks: reserved or quarantined, a tenth cleared again. */
		for (i = 0; i < (o.servers_only ? 0 : o.marks); i++) {
			char addr[64];
			bool reserved = rng_unit() < 0.7;

			host_address(i % o.subnets, HOSTS_MARK + (i / o.subnets) % 10,
			    addr, sizeof(addr));
			if (reserved)
				len = snprintf(buf, sizeof(buf), "{\"specversion\":\"1.0\","
				    "\"id\":\"mark-%ld-1\",\"source\":\"/bench/ops\","
				    "\"type\":\"ipam.mark.set\",\"subject\":\"%s\","
				    "\"entityversion\":1,\"data\":{\"address\":\"%s\","
				    "\"status\":\"reserved\",\"description\":"
				    "\"kept for the load balancer pair %ld\"}}", i, addr,
				    addr, i);
			else
				len = snprintf(buf, sizeof(buf), "{\"specversion\":\"1.0\","
				    "\"id\":\"mark-%ld-1\",\"source\":\"/bench/ops\","
				    "\"type\":\"ipam.mark.set\",\"subject\":\"%s\","
				    "\"entityversion\":1,\"data\":{\"address\":\"%s\","
				    "\"status\":\"quarantine\"}}", i, addr, addr);
			produce(names[2], addr, buf, (size_t)len);
			counts[2]++;
		}
		for (i = 0; i < (o.servers_only ? 0 : o.marks); i += 10) {
			char addr[64];

			host_address(i % o.subnets, HOSTS_MARK + (i / o.subnets) % 10,
			    addr, sizeof(addr));
			len = snprintf(buf, sizeof(buf), "{\"specversion\":\"1.0\","
			    "\"id\":\"mark-%ld-2\",\"source\":\"/bench/ops\","
			    "\"type\":\"ipam.mark.cleared\",\"subject\":\"%s\","
			    "\"entityversion\":2}", i, addr);
			produce(names[2], addr, buf, (size_t)len);
			counts[2]++;
		}
		/* Servers: every version of every server, version by version. */
		for (v = o.final_only ? o.versions : 1; v <= o.versions; v++) {
			for (i = 0; i < o.servers; i++) {
				long s = (i + (v - 1) * MOVE_STRIDE) % o.subnets;
				long h = (i / o.subnets) % SERVER_BAND + 1 +
				    (v % 2 == 0 ? SERVER_BAND : 0);

				if (o.debezium) {
					lsn += 208;
					dbz_ts += 40;
					debezium_key(key, sizeof(key), i);
					len = debezium_server_event(buf, sizeof(buf), i,
					    v, s, h, lsn, dbz_ts);
				} else {
					snprintf(id, sizeof(id), "srv-%ld-%ld", i + 1, v);
					snprintf(key, sizeof(key), "%ld", i + 1);
					len = server_event(buf, sizeof(buf), i, v, s, h,
					    id);
				}
				if (len >= (int)sizeof(buf))
					die("a server event is longer than %zu bytes",
					    sizeof(buf));
				produce(names[0], key, buf, (size_t)len);
				counts[0]++;
			}
		}
		for (i = 0; i < o.servers; i++) {
			if (rng_unit() * 100 >= o.delete_pct)
				continue;
			if (o.debezium) {
				/* The delete, then the tombstone Debezium sends. */
				lsn += 208;
				dbz_ts += 40;
				debezium_key(key, sizeof(key), i);
				len = debezium_server_event(buf, sizeof(buf), i,
				    o.versions + 1, 0, -1, lsn, dbz_ts);
				produce(names[0], key, buf, (size_t)len);
				produce(names[0], key, NULL, 0);
				counts[0] += 2;
				deleted++;
				continue;
			}
			snprintf(key, sizeof(key), "%ld", i + 1);
			len = snprintf(buf, sizeof(buf), "{\"specversion\":\"1.0\","
			    "\"id\":\"srv-%ld-del\",\"source\":\"/bench/inventory\","
			    "\"type\":\"ipam.server.deleted\",\"subject\":\"%ld\","
			    "\"entityversion\":%ld}", i + 1, i + 1, o.versions + 1);
			produce(names[0], key, buf, (size_t)len);
			counts[0]++;
			deleted++;
		}
		server_events = counts[0];
		while (rd_kafka_outq_len(producer) > 0)
			rd_kafka_poll(producer, 50);
		fill_s = now_s() - began;
	}

	/* One subnet event each, stamped like the steady events. */
	for (size_t e = 0; e < o.subnet_event_count; e++) {
		char *spec = strdup(o.subnet_events[e]), *sid, *scidr, *spool, *p;
		size_t off;

		sid = strtok(spec, "=");
		scidr = strtok(NULL, "=");
		spool = strtok(NULL, "");
		if (sid == NULL || scidr == NULL || spool == NULL)
			die("--subnet-event wants ID=CIDR=POOL[,POOL...]");
		off = (size_t)snprintf(pools, sizeof(pools), "[");
		for (p = strtok(spool, ","); p != NULL; p = strtok(NULL, ","))
			off += (size_t)snprintf(pools + off, sizeof(pools) - off,
			    "%s\"%s\"", off > 1 ? "," : "", p);
		snprintf(pools + off, sizeof(pools) - off, "]");
		if (stamps == NULL && o.stamp_file != NULL &&
		    (stamps = fopen(o.stamp_file, "w")) == NULL)
			die("%s: %s", o.stamp_file, strerror(errno));
		int64_t t = wall_us();
		len = snprintf(buf, sizeof(buf), "{\"specversion\":\"1.0\","
		    "\"id\":\"lat-%" PRId64 "\",\"source\":\"/bench/ops\","
		    "\"type\":\"ipam.subnet.upserted\",\"subject\":\"%s\","
		    "\"entityversion\":%ld,\"data\":{\"name\":\"big-%s\","
		    "\"cidr\":\"%s\",\"static_ip_pools\":%s}}", t, sid,
		    o.event_version, sid, scidr, pools);
		produce(names[1], sid, buf, (size_t)len);
		counts[1]++;
		if (stamps != NULL)
			fprintf(stamps, "subnet:%s %" PRId64 "\n", sid, t);
		free(spec);
	}

	/* Steady mode: moves at a fixed rate, each stamped. */
	if (o.rate > 0) {
		long total = (long)(o.rate * o.duration + 0.5);
		struct timespec start, due;

		if (total > SERVER_BAND * o.subnets)
			die("steady mode: %ld events need more subnets", total);
		if (o.stamp_file != NULL && stamps == NULL &&
		    (stamps = fopen(o.stamp_file, "w")) == NULL)
			die("%s: %s", o.stamp_file, strerror(errno));
		clock_gettime(CLOCK_MONOTONIC, &start);
		double steady_began = now_s();
		for (i = 0; i < total; i++) {
			double at = (double)i / o.rate;
			long s = (i + 3 * MOVE_STRIDE) % o.subnets;
			long h = HOSTS_STEADY + (i / o.subnets) % SERVER_BAND;
			int64_t t;

			due.tv_sec = start.tv_sec + (time_t)at;
			due.tv_nsec = start.tv_nsec +
			    (long)((at - (double)(long)at) * 1e9);
			if (due.tv_nsec >= 1000000000) {
				due.tv_sec++;
				due.tv_nsec -= 1000000000;
			}
			while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due,
			    NULL) == EINTR)
				;
			t = wall_us();
			snprintf(id, sizeof(id), "lat-%" PRId64, t);
			snprintf(key, sizeof(key), "%ld", i + 1);
			len = server_event(buf, sizeof(buf), i, o.versions + 2, s, h,
			    id);
			produce(names[0], key, buf, (size_t)len);
			counts[0]++;
			if (stamps != NULL)
				fprintf(stamps, "%ld %" PRId64 "\n", i + 1, t);
		}
		steady_s = now_s() - steady_began;
	}

	while (rd_kafka_outq_len(producer) > 0)
		rd_kafka_poll(producer, 50);
	if (stamps != NULL)
		fclose(stamps);
	rd_kafka_destroy(producer);
	if (failed)
		die("%" PRIu64 " messages failed (%s)", failed, last_error);
	printf("{\"servers\":%" PRIu64 ",\"subnets\":%" PRIu64 ",\"marks\":%"
	    PRIu64 ",\"total\":%" PRIu64 ",\"server_events\":%" PRIu64
	    ",\"deleted_servers\":%ld,\"fill_seconds\":%.3f,"
	    "\"steady_seconds\":%.3f,\"seconds\":%.3f}\n", counts[0], counts[1],
	    counts[2], counts[0] + counts[1] + counts[2], server_events, deleted,
	    fill_s, steady_s, now_s() - began);
	return 0;
}
