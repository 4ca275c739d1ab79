/* SCRAM with a librdkafka that cannot log in to Kafka 4.0 or later. */
#ifndef DAEMON_KAFKA_SCRAM_H
#define DAEMON_KAFKA_SCRAM_H

#include <stdbool.h>
#include <stddef.h>

/* The [kafka] key that says the brokers are older than Kafka 4.0. */
#define KAFKA_SCRAM_ACK_KEY	"ipam.scram_broker_below_4"

/* Whether a [kafka] key is the daemon's own, never given to librdkafka. */
bool	kafka_scram_own_key(const char *name);

/*
 * Refuses SCRAM in mechanisms (sasl.mechanisms, or NULL) with a librdkafka
 * older than 2.6.1 (version as rd_kafka_version() gives it) unless
 * acknowledged (the value of KAFKA_SCRAM_ACK_KEY, or NULL) is "true".
 * Returns 0; -1 (SCRAM refused) or -2 (acknowledged is not true or
 * false) with the reason in err.
 */
int	kafka_scram_check(const char *mechanisms, const char *acknowledged,
	    int version, char *err, size_t errlen);

#endif
