/* Offsets in PostgreSQL: where each partition resumes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "consumers/offsets.h"

/* A load in flight: what was asked, and whom to tell. */
struct offsets_request {
	struct kafka_partition	*parts;
	struct offsets_stored	*stored;
	size_t			 count;
	const char *const	*topic_names;
	offsets_loaded_cb	*cb;
	void			*arg;
};

/* Appends text to a growing buffer. */
static void
offsets_append(char **buf, size_t *len, size_t *capacity, const char *text,
    size_t n)
{
	char *grown;

	if (*len + n + 1 > *capacity) {
		while (*len + n + 1 > *capacity)
			*capacity = *capacity ? *capacity * 2 : 256;
		if ((grown = realloc(*buf, *capacity)) == NULL)
			fatal("offsets: realloc");
		*buf = grown;
	}
	memcpy(*buf + *len, text, n);
	*len += n;
	(*buf)[*len] = '\0';
}

/*
 * Writes the topics and the partitions asked for as two PostgreSQL array
 * literals, {"a","b"} and {0,1}; the caller frees both.
 */
static void
offsets_arrays(const struct offsets_request *request, char **topics,
    char **parts)
{
	size_t tlen = 0, tcap = 0, plen = 0, pcap = 0, i;
	const char *p;
	char number[16];

	*topics = *parts = NULL;
	offsets_append(topics, &tlen, &tcap, "{", 1);
	offsets_append(parts, &plen, &pcap, "{", 1);
	for (i = 0; i < request->count; i++) {
		if (i > 0) {
			offsets_append(topics, &tlen, &tcap, ",", 1);
			offsets_append(parts, &plen, &pcap, ",", 1);
		}
		offsets_append(topics, &tlen, &tcap, "\"", 1);
		for (p = request->topic_names[request->parts[i].topic]; *p; p++) {
			if (*p == '"' || *p == '\\')
				offsets_append(topics, &tlen, &tcap, "\\", 1);
			offsets_append(topics, &tlen, &tcap, p, 1);
		}
		offsets_append(topics, &tlen, &tcap, "\"", 1);
		snprintf(number, sizeof(number), "%d",
		    (int)request->parts[i].partition);
		offsets_append(parts, &plen, &pcap, number, strlen(number));
	}
	offsets_append(topics, &tlen, &tcap, "}", 1);
	offsets_append(parts, &plen, &pcap, "}", 1);
}

/* Frees a request. */
static void
offsets_request_free(struct offsets_request *request)
{
	free(request->parts);
	free(request->stored);
	free(request);
}

/* Matches the rows to the partitions asked for, then tells the caller. */
static void
offsets_result_cb(struct pgconn *pg, PGresult *result, const char *error,
    void *arg)
{
	struct offsets_request *request = arg;
	char message[512];
	size_t i;
	int row;

	if (result == NULL || PQresultStatus(result) != PGRES_TUPLES_OK) {
		if (result != NULL) {
			pgconn_result_error(pg, result, message, sizeof(message));
			log_errx("consumer: reading offsets: %s", message);
		}
		request->cb(request->arg, false, request->parts,
		    request->stored, request->count);
		offsets_request_free(request);
		return;
	}
	for (row = 0; row < PQntuples(result); row++) {
		const char *topic = PQgetvalue(result, row, 0);
		int32_t partition = (int32_t)atoi(PQgetvalue(result, row, 1));

		for (i = 0; i < request->count; i++) {
			struct offsets_stored *stored = &request->stored[i];

			if (request->parts[i].partition != partition ||
			    strcmp(request->topic_names[request->parts[i].topic],
			    topic) != 0)
				continue;
			stored->next = strtoll(PQgetvalue(result, row, 2),
			    NULL, 10);
			stored->known = !PQgetisnull(result, row, 3);
			if (stored->known)
				stored->fingerprint = strtoll(PQgetvalue(result,
				    row, 3), NULL, 10);
		}
	}
	request->cb(request->arg, true, request->parts, request->stored,
	    request->count);
	offsets_request_free(request);
}

/* Reads the stored offsets of some partitions. */
int
offsets_load(struct pgconn *pg, const char *group_id, const char *schema,
    const char *const *topic_names, const struct kafka_partition *parts,
    size_t count, offsets_loaded_cb *cb, void *arg)
{
	static const char sql[] = "SELECT topic, part, next_offset, "
	    "last_fingerprint FROM "
	    "ipamd.stored_offsets($1, $2, $3::text[], $4::integer[])";
	struct offsets_request *request;
	const char *params[4];
	char *topics, *partitions;
	size_t i;
	int rc;

	if (!pgconn_is_up(pg) || pgconn_is_busy(pg))
		return -1;
	if ((request = calloc(1, sizeof(*request))) == NULL ||
	    (request->parts = calloc(count ? count : 1,
	    sizeof(*request->parts))) == NULL ||
	    (request->stored = calloc(count ? count : 1,
	    sizeof(*request->stored))) == NULL)
		fatal("offsets: calloc");
	memcpy(request->parts, parts, count * sizeof(*parts));
	for (i = 0; i < count; i++)
		request->stored[i].next = -1;
	request->count = count;
	request->topic_names = topic_names;
	request->cb = cb;
	request->arg = arg;
	offsets_arrays(request, &topics, &partitions);
	params[0] = group_id;
	params[1] = schema;
	params[2] = topics;
	params[3] = partitions;
	rc = pgconn_query(pg, sql, 4, params, offsets_result_cb, request);
	free(topics);
	free(partitions);
	if (rc == -1)
		offsets_request_free(request);
	return rc;
}
