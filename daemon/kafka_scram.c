/* SCRAM with a librdkafka that cannot log in to Kafka 4.0 or later. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "daemon/kafka_scram.h"

/*
 * librdkafka before 2.6.1 sends a SCRAM client-final message that Kafka
 * 4.0 and later refuse; the broker then answers "invalid credentials"
 * whatever the password.  The version is 0xMMmmrrpp (pp 0xff: a release).
 */
#define KAFKA_SCRAM_FIXED_VERSION	0x020601ff

/* Whether a [kafka] key is the daemon's own, never given to librdkafka. */
bool
kafka_scram_own_key(const char *name)
{
	return strncmp(name, "ipam.", 5) == 0;
}

/*
 * Refuses SCRAM with a librdkafka older than 2.6.1 unless the operator
 * said the brokers are older than 4.0: the client cannot learn the broker's
 * version before it logs in, and the broker's answer would mislead.
 */
int
kafka_scram_check(const char *mechanisms, const char *acknowledged,
    int version, char *err, size_t errlen)
{
	const char *p;

	if (acknowledged != NULL && strcmp(acknowledged, "true") != 0 &&
	    strcmp(acknowledged, "false") != 0) {
		snprintf(err, errlen, "kafka.%s: \"%s\" is not true or false",
		    KAFKA_SCRAM_ACK_KEY, acknowledged);
		return -2;
	}
	if (mechanisms == NULL)
		return 0;
	for (p = mechanisms; *p != '\0'; p++)
		if (strncasecmp(p, "SCRAM-", 6) == 0)
			break;
	if (*p == '\0' || version >= KAFKA_SCRAM_FIXED_VERSION ||
	    (acknowledged != NULL && strcmp(acknowledged, "true") == 0))
		return 0;
	snprintf(err, errlen, "kafka.sasl.mechanisms = %s: librdkafka "
	    "%d.%d.%d cannot log in with SCRAM to Kafka 4.0 or later (fixed "
	    "in librdkafka 2.6.1); with brokers older than Kafka 4.0 set "
	    "kafka.%s = true, else use PLAIN over TLS or mutual TLS",
	    mechanisms, (version >> 24) & 0xff, (version >> 16) & 0xff,
	    (version >> 8) & 0xff, KAFKA_SCRAM_ACK_KEY);
	return -1;
}
