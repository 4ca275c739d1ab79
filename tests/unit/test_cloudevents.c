/* Unit tests of the CloudEvents decoder over the fixture files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

/* Longest line of the bad fixtures' EXPECTED table. */
#define EXPECTED_LINE_MAX	1024

/*
 * Adds a case per good/NAME.json, decoded as the sidecar NAME.expect
 * says ({"entity", "key", "headers", "expect"}); returns the number of
 * fixtures that lack a sidecar.
 */
static int
add_good(struct support_cases *set, const char *fixtures)
{
	struct support_case	*c;
	json_t			*side;
	char			 dir[512], path[1024], **names;
	size_t			 count, i, len, sidecars;
	int			 missing = 0;

	snprintf(dir, sizeof(dir), "%s/cloudevents/good", fixtures);
	sidecars = support_list_dir(dir, ".expect", &names);
	for (i = 0; i < sidecars; i++)
		free(names[i]);
	free(names);
	count = support_list_dir(dir, ".json", &names);
	for (i = 0; i < count; i++) {
		len = strlen(names[i]) - strlen(".json");
		snprintf(path, sizeof(path), "%s/%.*s.expect", dir, (int)len,
		    names[i]);
		if ((side = json_load_file(path, JSON_REJECT_DUPLICATES,
		    NULL)) == NULL) {
			fprintf(stderr, "%s has no readable sidecar %s\n",
			    names[i], path);
			missing++;
			free(names[i]);
			continue;
		}
		support_cases_keep(set, side);
		c = support_cases_add(set);
		snprintf(c->name, sizeof(c->name), "good/%s", names[i]);
		c->format = DECODE_CLOUDEVENTS;
		c->entity = support_entity(json_string_value(
		    json_object_get(side, "entity")));
		c->key = json_object_get(side, "key");
		c->headers = json_object_get(side, "headers");
		c->expect = json_object_get(side, "expect");
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		c->owned = support_read_file(path, &c->value_len);
		c->value = c->owned;
		free(names[i]);
	}
	free(names);
	if (sidecars != count - (size_t)missing) {
		fprintf(stderr, "%zu sidecars for %zu good fixtures\n",
		    sidecars, count);
		missing++;
	}
	return missing;
}

/*
 * Adds a case per line of bad/EXPECTED ("file, entity, key, check,
 * expected text", tab-separated); returns the number of bad fixtures
 * the table and the folder do not agree on.
 */
static int
add_bad(struct support_cases *set, const char *fixtures)
{
	struct support_case	*c;
	FILE			*f;
	char			 dir[512], path[1024];
	char			 line[EXPECTED_LINE_MAX];
	char			*field[5], *p, **names;
	size_t			 count, i, rows = 0;
	int			 n, problems = 0;

	snprintf(dir, sizeof(dir), "%s/cloudevents/bad", fixtures);
	snprintf(path, sizeof(path), "%s/EXPECTED", dir);
	if ((f = fopen(path, "r")) == NULL) {
		fprintf(stderr, "cannot open %s\n", path);
		return 1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		for (n = 0, p = line; n < 5 && p != NULL; n++) {
			field[n] = p;
			if ((p = strchr(p, '\t')) != NULL)
				*p++ = '\0';
		}
		if (n != 5 || p != NULL) {
			fprintf(stderr, "EXPECTED: bad line for %s\n", line);
			problems++;
			continue;
		}
		c = support_cases_add(set);
		snprintf(c->name, sizeof(c->name), "bad/%s", field[0]);
		c->format = DECODE_CLOUDEVENTS;
		c->entity = support_entity(field[1]);
		if (strcmp(field[2], "-") != 0) {
			c->key = json_string(field[2]);
			support_cases_keep(set, (json_t *)c->key);
		}
		c->expect = json_pack("{s:s, s:s}", "result", "error", "error",
		    field[4]);
		support_cases_keep(set, (json_t *)c->expect);
		snprintf(path, sizeof(path), "%s/%s", dir, field[0]);
		c->owned = support_read_file(path, &c->value_len);
		c->value = c->owned;
		rows++;
	}
	fclose(f);
	/* Every bad fixture has its row, and no row lacks its file. */
	count = support_list_dir(dir, ".json", &names);
	for (i = 0; i < count; i++)
		free(names[i]);
	free(names);
	if (count != rows) {
		fprintf(stderr, "EXPECTED has %zu rows for %zu bad fixtures\n",
		    rows, count);
		problems++;
	}
	return problems;
}

/* Runs the good, bad and message fixtures found under argv[1]. */
int
main(int argc, char **argv)
{
	struct support_cases	good, bad, messages;
	char			dir[512];
	int			failed = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s fixture-folder\n", argv[0]);
		return 2;
	}
	memset(&good, 0, sizeof(good));
	memset(&bad, 0, sizeof(bad));
	memset(&messages, 0, sizeof(messages));
	failed += add_good(&good, argv[1]);
	failed += add_bad(&bad, argv[1]);
	/* Binary mode, tombstones, limits. */
	snprintf(dir, sizeof(dir), "%s/cloudevents/messages", argv[1]);
	support_add_message_dir(&messages, dir, DECODE_CLOUDEVENTS);
	failed += support_run_cases("cloudevents_good", &good);
	failed += support_run_cases("cloudevents_bad", &bad);
	failed += support_run_cases("cloudevents_messages", &messages);
	support_cases_free(&good);
	support_cases_free(&bad);
	support_cases_free(&messages);
	return failed != 0;
}
