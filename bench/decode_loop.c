/*
 * decode_loop: the decoders' CPU per message outside the daemon
 * (decode_message() of each message, and change_clear()), with no Kafka
 * and no PostgreSQL in the way.  The messages share one decode_memo, as
 * a topic's do in intake, when the decoders measured have one.
 *
 *   decode_loop [--format debezium|cloudevents] [--entity E]
 *               [--rounds N] [--passes P] [--keys KEYS] FILE
 *
 * FILE holds one message value a line (kcat -C -f '%s\n' of a topic that
 * loadgen filled), KEYS the messages' keys, one a line in the same order
 * (kcat -C -f '%k\n'); without it the messages have no key.  Empty
 * lines are skipped in both: a topic of keyless messages or tombstones
 * pairs keys and values wrongly, or is refused when the counts differ.  Each pass decodes every message N times over; the
 * best pass is printed as microseconds a message, the noise of a shared
 * machine only ever adding to a pass.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "consumers/decode.h"

/* The messages of the file: the whole text and where each line starts. */
struct loop_messages {
	char	*text;
	size_t	*starts;
	size_t	*lens;
	size_t	 count;
};

/* Stops the program with a message. */
static void
die(const char *what)
{
	fprintf(stderr, "decode_loop: %s\n", what);
	exit(1);
}

/* Reads FILE into messages, one a line; empty lines are skipped. */
static void
loop_read(const char *path, const char *what, struct loop_messages *m)
{
	FILE	*f;
	long	 size;
	size_t	 i, start = 0;

	if ((f = fopen(path, "rb")) == NULL || fseek(f, 0, SEEK_END) != 0 ||
	    (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
		die(what);
	m->text = malloc((size_t)size + 1);
	m->starts = calloc((size_t)size + 1, sizeof(*m->starts));
	m->lens = calloc((size_t)size + 1, sizeof(*m->lens));
	if (m->text == NULL || m->starts == NULL || m->lens == NULL ||
	    fread(m->text, 1, (size_t)size, f) != (size_t)size)
		die(what);
	fclose(f);
	m->text[size] = '\n';
	m->count = 0;
	for (i = 0; i <= (size_t)size; i++) {
		if (m->text[i] != '\n')
			continue;
		if (i > start) {
			m->starts[m->count] = start;
			m->lens[m->count++] = i - start;
		}
		start = i + 1;
	}
	if (m->count == 0)
		die("a file holds no line");
}

/* Seconds of the monotonic clock. */
static double
loop_now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Decodes every message rounds times; returns the seconds it took. */
static double
loop_pass(const struct loop_messages *m, const struct loop_messages *keys,
    enum decode_format format, enum change_entity entity, long rounds)
{
	struct decode_input	in;
	struct change		change;
	char			err[1024];
	double			began;
	long			r;
	size_t			i;
#ifdef DECODE_MEMO_MAX
	static struct decode_memo memo;
#endif

	began = loop_now();

	for (r = 0; r < rounds; r++) {
		for (i = 0; i < m->count; i++) {
			memset(&in, 0, sizeof(in));
			in.entity = entity;
			in.value = m->text + m->starts[i];
			in.value_len = m->lens[i];
			if (keys != NULL) {
				in.key = keys->text + keys->starts[i];
				in.key_len = keys->lens[i];
			}
#ifdef DECODE_MEMO_MAX
			in.memo = &memo;
#endif
			if (decode_message(format, &in, &change, err,
			    sizeof(err)) != DECODE_OK) {
				fprintf(stderr, "decode_loop: message %zu: "
				    "%s\n", i + 1, err);
				exit(1);
			}
			change_clear(&change);
		}
	}
	return loop_now() - began;
}

/* Runs the passes and prints the best. */
int
main(int argc, char **argv)
{
	static const struct option	 options[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "entity", required_argument, NULL, 'e' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "passes", required_argument, NULL, 'p' },
		{ "keys", required_argument, NULL, 'k' },
		{ NULL, 0, NULL, 0 },
	};
	struct loop_messages		 m, keys;
	const char			*keys_path = NULL;
	enum decode_format		 format = DECODE_DEBEZIUM;
	enum change_entity		 entity = CHANGE_SERVER;
	long				 rounds = 200, passes = 5, p;
	double				 best = 0, seconds;
	int				 c;

	while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (strcmp(optarg, "cloudevents") == 0)
				format = DECODE_CLOUDEVENTS;
			else if (strcmp(optarg, "debezium") != 0)
				die("--format is debezium or cloudevents");
			break;
		case 'e':
			if (change_entity_parse(optarg, &entity) == -1)
				die("--entity is server, subnet or mark");
			break;
		case 'r':
			rounds = strtol(optarg, NULL, 10);
			break;
		case 'p':
			passes = strtol(optarg, NULL, 10);
			break;
		case 'k':
			keys_path = optarg;
			break;
		default:
			die("usage: decode_loop [--format F] [--entity E] "
			    "[--rounds N] [--passes P] [--keys KEYS] FILE");
		}
	}
	if (optind != argc - 1 || rounds < 1 || passes < 1)
		die("usage: decode_loop [--format F] [--entity E] [--rounds N] "
		    "[--passes P] [--keys KEYS] FILE");
	loop_read(argv[optind], "cannot read the message file", &m);
	if (keys_path != NULL) {
		loop_read(keys_path, "cannot read the key file", &keys);
		if (keys.count != m.count)
			die("the key file holds another number of lines than "
			    "the message file");
	}
	for (p = 0; p < passes; p++) {
		seconds = loop_pass(&m, keys_path != NULL ? &keys : NULL,
		    format, entity, rounds);
		if (p == 0 || seconds < best)
			best = seconds;
	}
	printf("%.2f us a message (best of %ld passes of %zu messages x %ld)\n",
	    best / ((double)m.count * (double)rounds) * 1e6, passes, m.count,
	    rounds);
	return 0;
}
