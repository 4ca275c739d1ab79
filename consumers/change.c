/* The typed change model: freeing a change and naming its entities. */
#include <stdlib.h>
#include <string.h>

#include "consumers/change.h"

/* Entity names as they appear in config and logs, by enum value. */
static const char *const change_entity_names[] = {
	[CHANGE_SERVER] = "server",
	[CHANGE_SUBNET] = "subnet",
	[CHANGE_MARK] = "mark",
};

#define CHANGE_ENTITY_COUNT \
	(sizeof(change_entity_names) / sizeof(change_entity_names[0]))

/* Frees what a change owns and zeroes it, so it can be reused. */
void
change_clear(struct change *change)
{
	free(change->id);
	free(change->vrf);
	free(change->hostname);
	free(change->nic_mac);
	free(change->device_type);
	free(change->manufacture);
	free(change->name);
	free(change->pools);
	free(change->description);
	free(change->reason);
	free(change->request_id);
	free(change->requester);
	free(change->if_match);
	memset(change, 0, sizeof(*change));
}

/* The entity's name as it appears in config and logs: "server", ... */
const char *
change_entity_name(enum change_entity entity)
{
	if ((size_t)entity >= CHANGE_ENTITY_COUNT)
		return "unknown";
	return change_entity_names[entity];
}

/* Parses "server", "subnet" or "mark"; returns 0 or -1. */
int
change_entity_parse(const char *text, enum change_entity *out)
{
	size_t	i;

	for (i = 0; i < CHANGE_ENTITY_COUNT; i++) {
		if (strcmp(text, change_entity_names[i]) == 0) {
			*out = (enum change_entity)i;
			return 0;
		}
	}
	return -1;
}
