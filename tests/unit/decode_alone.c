/*
 * A program linked with the decoder library alone: it decodes one
 * CloudEvents subnet and exits 0 when the change is the one sent.
 * check_decode_alone.sh then checks that it needs neither librdkafka
 * nor libpq.
 */
#include <stdio.h>
#include <string.h>

#include "consumers/decode.h"

static const char message[] =
	"{\"specversion\": \"1.0\", \"id\": \"e1\", \"source\": \"alone\","
	" \"type\": \"ipam.subnet.upserted\", \"subject\": \"7\","
	" \"entityversion\": 3, \"data\": {\"name\": \"n7\","
	" \"cidr\": \"192.0.2.0/24\","
	" \"static_ip_pools\": [\"192.0.2.10-192.0.2.20\"]}}";

/* Decodes the message and checks what came out. */
int
main(void)
{
	struct decode_limits	limits;
	struct decode_input	in;
	struct change		change;
	char			err[256];
	int			status = 1;

	decode_limits_default(&limits);
	memset(&in, 0, sizeof(in));
	in.entity = CHANGE_SUBNET;
	in.key = "7";
	in.key_len = 1;
	in.value = message;
	in.value_len = sizeof(message) - 1;
	in.limits = &limits;
	memset(&change, 0, sizeof(change));
	if (decode_message(DECODE_CLOUDEVENTS, &in, &change, err,
	    sizeof(err)) != DECODE_OK) {
		fprintf(stderr, "decode_alone: %s\n", err);
		return 1;
	}
	if (change.entity == CHANGE_SUBNET && change.op == CHANGE_UPSERT &&
	    strcmp(change.id, "7") == 0 && change.has_version &&
	    change.version == 3 && change.pool_count == 1)
		status = 0;
	else
		fprintf(stderr, "decode_alone: not the change sent\n");
	change_clear(&change);
	return status;
}
