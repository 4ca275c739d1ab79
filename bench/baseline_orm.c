/*
 * baseline_orm: baseline (a) of the benchmarks, the way the earlier system
 * kept its IPAM table: an ORM's save/delete signal handler per event, one
 * transaction per event, a few round trips each, one connection.
 *
 * It reads the same topics the daemon reads (subnets first, then marks,
 * then servers, each from the beginning, as the earlier system needed
 * subnets to exist before servers) and applies each event to tables of its
 * own in schema "orm", shaped like the earlier IPAM table:
 *
 *   server event:  BEGIN; SELECT the server FOR UPDATE; INSERT or UPDATE
 *                  it; if its address changed, SELECT the old IPAM row and
 *                  UPDATE it back to available (static) or DELETE it
 *                  (dhcp); SELECT the new IPAM row and UPDATE it to
 *                  allocated, or SELECT its subnet and INSERT a dhcp row;
 *                  COMMIT
 *   server delete: BEGIN; SELECT the server; DELETE it; free its row; COMMIT
 *   subnet event:  BEGIN; SELECT; INSERT the subnet; INSERT its pool rows
 *                  (multi-row, as bulk_create does); COMMIT
 *   mark event:    BEGIN; SELECT the row; UPDATE it (or SELECT the subnet
 *                  and INSERT it); COMMIT
 *
 * Versions are not checked (the earlier system had none).  Statements are
 * prepared once (kinder to the baseline than an ORM is).
 *
 * Usage: baseline_orm --prefix P [--bootstrap B] [--conninfo C]
 *            [--max-server-seconds S]
 * Prints one JSON line with the counts and the times of each phase.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "bench_util.h"

const char *const bench_tool = "baseline_orm";

static PGconn *db;

/* Runs a statement that returns no rows. */
static void
exec_sql(const char *sql)
{
	PGresult *r = PQexec(db, sql);

	if (PQresultStatus(r) != PGRES_COMMAND_OK &&
	    PQresultStatus(r) != PGRES_TUPLES_OK)
		die("%s: %s", sql, PQerrorMessage(db));
	PQclear(r);
}

/* Runs a prepared statement; the caller clears the result. */
static PGresult *
run(const char *name, int n, const char *const *params)
{
	PGresult *r = PQexecPrepared(db, name, n, params, NULL, NULL, 0);

	if (PQresultStatus(r) != PGRES_COMMAND_OK &&
	    PQresultStatus(r) != PGRES_TUPLES_OK)
		die("%s: %s", name, PQerrorMessage(db));
	return r;
}

static void
run_clear(const char *name, int n, const char *const *params)
{
	PQclear(run(name, n, params));
}

static void
prepare(const char *name, const char *sql)
{
	PGresult *r = PQprepare(db, name, sql, 0, NULL);

	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		die("prepare %s: %s", name, PQerrorMessage(db));
	PQclear(r);
}

static void
setup(void)
{
	exec_sql("SET client_min_messages = warning");
	exec_sql("DROP SCHEMA IF EXISTS orm CASCADE");
	exec_sql("CREATE SCHEMA orm");
	exec_sql("CREATE TABLE orm.subnet (id bigint PRIMARY KEY, name text, "
	    "cidr cidr NOT NULL, static_ip_pools jsonb)");
	exec_sql("CREATE INDEX ON orm.subnet USING gist (cidr inet_ops)");
	exec_sql("CREATE TABLE orm.server (id bigint PRIMARY KEY, hostname text, "
	    "ip_address inet, nic_mac text, device_type text, manufacture text)");
	exec_sql("CREATE TABLE orm.ipam (id bigserial PRIMARY KEY, "
	    "ip_address inet NOT NULL UNIQUE, subnet_id bigint NOT NULL, "
	    "status text NOT NULL, ip_type text NOT NULL, "
	    "active boolean NOT NULL DEFAULT false, server_id bigint, "
	    "hostname text, mac_address text, platform text, manufacturer text, "
	    "description text, created_at timestamptz NOT NULL DEFAULT now(), "
	    "updated_at timestamptz NOT NULL DEFAULT now())");
	exec_sql("CREATE INDEX ON orm.ipam (subnet_id)");
	exec_sql("CREATE INDEX ON orm.ipam (server_id)");

	prepare("server_get", "SELECT id, host(ip_address) FROM orm.server "
	    "WHERE id = $1 FOR UPDATE");
	prepare("server_insert", "INSERT INTO orm.server (id, hostname, "
	    "ip_address, nic_mac, device_type, manufacture) "
	    "VALUES ($1, $2, $3, $4, $5, $6)");
	prepare("server_update", "UPDATE orm.server SET hostname = $2, "
	    "ip_address = $3, nic_mac = $4, device_type = $5, manufacture = $6 "
	    "WHERE id = $1");
	prepare("server_delete", "DELETE FROM orm.server WHERE id = $1");
	prepare("ipam_get", "SELECT id, ip_type, status FROM orm.ipam "
	    "WHERE ip_address = $1");
	prepare("ipam_allocate", "UPDATE orm.ipam SET status = 'allocated', "
	    "server_id = $2, hostname = $3, mac_address = $4, platform = $5, "
	    "manufacturer = $6, description = NULL, updated_at = now() "
	    "WHERE id = $1");
	prepare("ipam_free", "UPDATE orm.ipam SET status = 'available', "
	    "server_id = NULL, hostname = NULL, mac_address = NULL, "
	    "platform = NULL, manufacturer = NULL, updated_at = now() "
	    "WHERE id = $1");
	prepare("ipam_delete", "DELETE FROM orm.ipam WHERE id = $1");
	prepare("subnet_of", "SELECT id FROM orm.subnet WHERE cidr >>= $1 "
	    "ORDER BY masklen(cidr) DESC LIMIT 1");
	prepare("ipam_insert", "INSERT INTO orm.ipam (ip_address, subnet_id, "
	    "status, ip_type, server_id, hostname, mac_address, platform, "
	    "manufacturer, description) VALUES ($1, $2, $3, 'dhcp', $4, $5, $6, "
	    "$7, $8, $9)");
	prepare("ipam_mark", "UPDATE orm.ipam SET status = $2, description = $3, "
	    "updated_at = now() WHERE id = $1");
	prepare("subnet_get", "SELECT id FROM orm.subnet WHERE id = $1 FOR UPDATE");
	prepare("subnet_insert", "INSERT INTO orm.subnet (id, name, cidr, "
	    "static_ip_pools) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE "
	    "SET name = excluded.name, cidr = excluded.cidr, "
	    "static_ip_pools = excluded.static_ip_pools");
}

static const char *
str(json_t *obj, const char *name)
{
	return json_string_value(json_object_get(obj, name));
}

/* The subnet's pool rows, as bulk_create would write them (1,000 a time). */
static void
insert_pool(const char *subnet_id, json_t *pools)
{
	char *sql = NULL;
	size_t cap = 0, len = 0, rows = 0, i;
	json_t *pool;

	json_array_foreach(pools, i, pool) {
		const char *text = json_string_value(pool), *dash, *slash;
		char first[64], last[64];
		unsigned char a[16], b[16];
		int family;

		if (text == NULL)
			continue;
		dash = strchr(text, '-');
		slash = strchr(text, '/');
		if (dash != NULL) {
			snprintf(first, sizeof(first), "%.*s", (int)(dash - text),
			    text);
			snprintf(last, sizeof(last), "%s", dash + 1);
		} else if (slash != NULL) {
			/* A CIDR block: every address of it. */
			int bits = atoi(slash + 1), k;

			snprintf(first, sizeof(first), "%.*s", (int)(slash - text),
			    text);
			family = strchr(first, ':') ? AF_INET6 : AF_INET;
			inet_pton(family, first, a);
			memcpy(b, a, 16);
			for (k = bits; k < (family == AF_INET ? 32 : 128); k++)
				b[k / 8] |= (unsigned char)(0x80 >> (k % 8));
			inet_ntop(family, b, last, sizeof(last));
		} else {
			snprintf(first, sizeof(first), "%s", text);
			snprintf(last, sizeof(last), "%s", text);
		}
		family = strchr(first, ':') ? AF_INET6 : AF_INET;
		if (inet_pton(family, first, a) != 1 ||
		    inet_pton(family, last, b) != 1)
			die("pool %s", text);
		for (;;) {
			char addr[64];
			int k;

			inet_ntop(family, a, addr, sizeof(addr));
			if (len + 200 > cap) {
				cap = cap ? cap * 2 : 65536;
				if ((sql = realloc(sql, cap)) == NULL)
					die("realloc");
			}
			if (rows == 0)
				len = (size_t)snprintf(sql, cap, "INSERT INTO orm.ipam "
				    "(ip_address, subnet_id, status, ip_type) VALUES ");
			len += (size_t)snprintf(sql + len, cap - len,
			    "%s('%s', %s, 'available', 'static')", rows ? "," : "",
			    addr, subnet_id);
			if (++rows == 1000) {
				snprintf(sql + len, cap - len, " ON CONFLICT DO NOTHING");
				exec_sql(sql);
				rows = 0;
			}
			if (memcmp(a, b, family == AF_INET ? 4 : 16) == 0)
				break;
			for (k = (family == AF_INET ? 3 : 15); k >= 0; k--)
				if (++a[k] != 0)
					break;
		}
	}
	if (rows > 0) {
		snprintf(sql + len, cap - len, " ON CONFLICT DO NOTHING");
		exec_sql(sql);
	}
	free(sql);
}

static void
apply_subnet(json_t *ev)
{
	json_t *data = json_object_get(ev, "data");
	const char *id = str(ev, "subject");
	char *pools;
	const char *params[4];

	if (data == NULL || id == NULL)
		return;		/* deletes do not occur in the benchmark */
	exec_sql("BEGIN");
	params[0] = id;
	run_clear("subnet_get", 1, params);
	pools = json_dumps(json_object_get(data, "static_ip_pools"),
	    JSON_COMPACT);
	params[1] = str(data, "name");
	params[2] = str(data, "cidr");
	params[3] = pools;
	run_clear("subnet_insert", 4, params);
	insert_pool(id, json_object_get(data, "static_ip_pools"));
	free(pools);
	exec_sql("COMMIT");
}

/* Frees an address the server held: static back to available, dhcp gone. */
static void
free_address(const char *ip)
{
	const char *params[1] = { ip };
	PGresult *r = run("ipam_get", 1, params);

	if (PQntuples(r) == 1) {
		params[0] = PQgetvalue(r, 0, 0);
		if (strcmp(PQgetvalue(r, 0, 1), "static") == 0)
			run_clear("ipam_free", 1, params);
		else
			run_clear("ipam_delete", 1, params);
	}
	PQclear(r);
}

static void
apply_server(json_t *ev)
{
	const char *type = str(ev, "type"), *id = str(ev, "subject");
	json_t *data = json_object_get(ev, "data");
	const char *params[9];
	char old_ip[64] = "";
	bool exists;
	PGresult *r;

	exec_sql("BEGIN");
	params[0] = id;
	r = run("server_get", 1, params);
	exists = PQntuples(r) == 1;
	if (exists && !PQgetisnull(r, 0, 1))
		snprintf(old_ip, sizeof(old_ip), "%s", PQgetvalue(r, 0, 1));
	PQclear(r);

	if (strcmp(type, "ipam.server.deleted") == 0) {
		if (exists) {
			run_clear("server_delete", 1, params);
			if (old_ip[0])
				free_address(old_ip);
		}
		exec_sql("COMMIT");
		return;
	}
	const char *ip = str(data, "ip_address");
	params[1] = str(data, "hostname");
	params[2] = ip;
	params[3] = str(data, "nic_mac");
	params[4] = str(data, "device_type");
	params[5] = str(data, "manufacture");
	run_clear(exists ? "server_update" : "server_insert", 6, params);
	if (old_ip[0] && (ip == NULL || strcmp(old_ip, ip) != 0))
		free_address(old_ip);
	if (ip != NULL) {
		params[0] = ip;
		r = run("ipam_get", 1, params);
		if (PQntuples(r) == 1) {
			const char *p[6] = { PQgetvalue(r, 0, 0), id,
			    str(data, "hostname"), str(data, "nic_mac"),
			    str(data, "device_type"), str(data, "manufacture") };

			run_clear("ipam_allocate", 6, p);
		} else {
			PGresult *s = run("subnet_of", 1, params);

			if (PQntuples(s) == 1) {
				const char *p[9] = { ip, PQgetvalue(s, 0, 0),
				    "allocated", id, str(data, "hostname"),
				    str(data, "nic_mac"), str(data, "device_type"),
				    str(data, "manufacture"), NULL };

				run_clear("ipam_insert", 9, p);
			}
			PQclear(s);
		}
		PQclear(r);
	}
	exec_sql("COMMIT");
}

static void
apply_mark(json_t *ev)
{
	const char *type = str(ev, "type"), *subject = str(ev, "subject");
	json_t *data = json_object_get(ev, "data");
	const char *addr = data ? str(data, "address") : subject;
	const char *params[3] = { addr, NULL, NULL };
	PGresult *r;

	exec_sql("BEGIN");
	r = run("ipam_get", 1, params);
	if (strcmp(type, "ipam.mark.cleared") == 0) {
		if (PQntuples(r) == 1) {
			params[0] = PQgetvalue(r, 0, 0);
			if (strcmp(PQgetvalue(r, 0, 1), "static") == 0) {
				params[1] = "available";
				run_clear("ipam_mark", 3, params);
			} else
				run_clear("ipam_delete", 1, params);
		}
	} else if (PQntuples(r) == 1) {
		params[0] = PQgetvalue(r, 0, 0);
		params[1] = str(data, "status");
		params[2] = str(data, "description");
		run_clear("ipam_mark", 3, params);
	} else {
		PGresult *s = run("subnet_of", 1, params);

		if (PQntuples(s) == 1) {
			const char *p[9] = { addr, PQgetvalue(s, 0, 0),
			    str(data, "status"), NULL, NULL, NULL, NULL, NULL,
			    str(data, "description") };

			run_clear("ipam_insert", 9, p);
		}
		PQclear(s);
	}
	PQclear(r);
	exec_sql("COMMIT");
}

struct phase {
	const char	*name;
	void		(*apply)(json_t *);
	uint64_t	 events;
	double		 seconds;
	bool		 complete;
};

/* Consumes one topic from the beginning to its end (or the time limit). */
static void
consume_topic(const char *bootstrap, const char *topic, struct phase *phase,
    double max_seconds)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;
	rd_kafka_topic_partition_list_t *list;
	const struct rd_kafka_metadata *md;
	rd_kafka_topic_t *rkt;
	char err[512];
	int partitions, eofs = 0, i;
	double began;

	rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err));
	rd_kafka_conf_set(conf, "group.id", "ipam-bench-orm", err, sizeof(err));
	rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err));
	rd_kafka_conf_set(conf, "enable.partition.eof", "true", err, sizeof(err));
	rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
	if (rk == NULL)
		die("%s", err);
	rkt = rd_kafka_topic_new(rk, topic, NULL);
	if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) != 0 ||
	    md->topic_cnt != 1 || md->topics[0].err)
		die("no metadata for %s", topic);
	partitions = md->topics[0].partition_cnt;
	rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	list = rd_kafka_topic_partition_list_new(partitions);
	for (i = 0; i < partitions; i++)
		rd_kafka_topic_partition_list_add(list, topic, i)->offset =
		    RD_KAFKA_OFFSET_BEGINNING;
	rd_kafka_assign(rk, list);
	rd_kafka_topic_partition_list_destroy(list);

	/* The clock starts at the first message: not at the fetch warm-up. */
	began = 0;
	phase->complete = false;
	while (eofs < partitions) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 1000);
		json_t *ev;

		if (m == NULL)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			eofs++;
			rd_kafka_message_destroy(m);
			continue;
		}
		if (m->err)
			die("%s: %s", topic, rd_kafka_message_errstr(m));
		if (began == 0)
			began = now_s();
		ev = json_loadb(m->payload, m->len, 0, NULL);
		if (ev != NULL) {
			phase->apply(ev);
			json_decref(ev);
		}
		phase->events++;
		rd_kafka_message_destroy(m);
		if (max_seconds > 0 && now_s() - began >= max_seconds)
			break;
	}
	phase->complete = eofs >= partitions;
	phase->seconds = began > 0 ? now_s() - began : 0;
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
}

int
main(int argc, char **argv)
{
	static const struct option longs[] = {
		{ "bootstrap", required_argument, NULL, 'b' },
		{ "prefix", required_argument, NULL, 'p' },
		{ "conninfo", required_argument, NULL, 'c' },
		{ "max-server-seconds", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 }
	};
	const char *bootstrap = getenv("KAFKA_BOOTSTRAP_SERVERS"), *prefix = NULL;
	const char *conninfo = "";
	double max_seconds = 0;
	struct phase phases[3] = {
		{ "subnets", apply_subnet, 0, 0, false },
		{ "marks", apply_mark, 0, 0, false },
		{ "servers", apply_server, 0, 0, false },
	};
	char topic[300];
	uint64_t events = 0;
	double seconds = 0;
	int c, i;

	while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		switch (c) {
		case 'b': bootstrap = optarg; break;
		case 'p': prefix = optarg; break;
		case 'c': conninfo = optarg; break;
		case 't': max_seconds = atof(optarg); break;
		default:
			fprintf(stderr, "usage: baseline_orm --prefix P [--bootstrap B] "
			    "[--conninfo C] [--max-server-seconds S]\n");
			return 2;
		}
	}
	if (prefix == NULL || bootstrap == NULL)
		die("--prefix and a bootstrap (or $KAFKA_BOOTSTRAP_SERVERS) needed");
	db = PQconnectdb(conninfo);
	if (PQstatus(db) != CONNECTION_OK)
		die("connect: %s", PQerrorMessage(db));
	setup();
	for (i = 0; i < 3; i++) {
		snprintf(topic, sizeof(topic), "%s.%s", prefix, phases[i].name);
		consume_topic(bootstrap, topic, &phases[i], i == 2 ? max_seconds : 0);
		events += phases[i].events;
		seconds += phases[i].seconds;
	}
	printf("{\"events\":%llu,\"seconds\":%.3f,\"rate\":%.1f",
	    (unsigned long long)events, seconds, events / seconds);
	for (i = 0; i < 3; i++)
		printf(",\"%s\":{\"events\":%llu,\"seconds\":%.3f,\"rate\":%.1f,"
		    "\"complete\":%s}", phases[i].name,
		    (unsigned long long)phases[i].events, phases[i].seconds,
		    phases[i].seconds > 0 ? phases[i].events / phases[i].seconds : 0,
		    phases[i].complete ? "true" : "false");
	printf("}\n");
	PQfinish(db);
	return 0;
}
