#!/usr/bin/env bash
# --check-config against good and bad files: exit status and exact message.
#   check_config.sh BINARY SOURCE_DIR
set -u
binary=$1
source_dir=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
checks=0

# expect NAME STATUS EXPECTED_OUTPUT -- runs the binary on $work/NAME.conf.
expect() {
	local name=$1 status=$2 expected=$3 output rc
	checks=$((checks + 1))
	output=$(cd "$work" && "$binary" --check-config "$name.conf" 2>&1)
	rc=$?
	if [ "$rc" != "$status" ] || [ "$output" != "$expected" ]; then
		failures=$((failures + 1))
		printf 'FAIL %s: status %s (want %s)\n  got:  %s\n  want: %s\n' \
			"$name" "$rc" "$status" "$output" "$expected"
	else
		printf 'PASS %s\n' "$name"
	fi
}

# conf NAME -- writes standard input to $work/NAME.conf.
conf() { cat > "$work/$1.conf"; }

unset KAFKA_BOOTSTRAP_SERVERS
for var in $(env | grep -o '^IPAM_[A-Z_]*'); do unset "$var"; done

cp "$source_dir/config/ipam-syncd.conf" "$work/example.conf"
expect example 0 "example.conf: configuration is valid"

# The shipped example is exactly what the key table generates.
checks=$((checks + 1))
if ! "$binary" --print-example-config | cmp -s - "$source_dir/config/ipam-syncd.conf"; then
	failures=$((failures + 1))
	echo "FAIL config/ipam-syncd.conf differs from --print-example-config"
else
	echo "PASS example is generated"
fi

conf unknown_key <<'X'
[daemon]
log_level = info
bogus = 1
X
expect unknown_key 1 'unknown_key.conf:3: unknown key "bogus" in [daemon]'

conf unknown_section <<'X'
[kafka]
bootstrap.servers = 127.0.0.1:9092
[nope]
X
expect unknown_section 1 'unknown_section.conf:3: unknown section [nope]'

conf bad_int <<'X'
[daemon]
shutdown_timeout_ms = soon
X
expect bad_int 1 'bad_int.conf:2: daemon.shutdown_timeout_ms: "soon" is not an integer'

conf out_of_range <<'X'

[consumer]
batch_max_events = 0
X
expect out_of_range 1 'out_of_range.conf:3: consumer.batch_max_events: 0 is out of range (1 to 1000000)'

conf bad_bool <<'X'
[sweeper]
enabled = perhaps
X
expect bad_bool 1 'bad_bool.conf:2: sweeper.enabled: "perhaps" is not a boolean (true or false)'

conf no_section <<'X'
# a comment
log_level = info
X
expect no_section 1 'no_section.conf:2: key "log_level" comes before any [section]'

conf no_equals <<'X'
[daemon]
log_level info
X
expect no_equals 1 'no_equals.conf:2: expected "key = value", found "log_level info"'

conf bad_level <<'X'
[daemon]
log_level = loud
[kafka]
bootstrap.servers = 127.0.0.1:9092
X
expect bad_level 1 'bad_level.conf: daemon.log_level: "loud" is not one of error, warning, notice, info, debug'

conf bad_topic <<'X'
[consumer]
topics = inventory.servers:router:cloudevents
[kafka]
bootstrap.servers = 127.0.0.1:9092
X
expect bad_topic 1 'bad_topic.conf: consumer.topics: entity "router" of topic inventory.servers is not server, subnet or mark'

conf bad_kafka <<'X'
[kafka]
bootstrap.servers = 127.0.0.1:9092
no.such.property = 1
X
expect bad_kafka 1 'bad_kafka.conf: kafka.no.such.property: No such configuration property: "no.such.property"'

conf no_bootstrap <<'X'
[daemon]
log_level = info
X
expect no_bootstrap 1 'no_bootstrap.conf: kafka.bootstrap.servers is not set (nor KAFKA_BOOTSTRAP_SERVERS)'

conf group_in_kafka <<'X'
[kafka]
bootstrap.servers = 127.0.0.1:9092
group.id = other
X
expect group_in_kafka 1 'group_in_kafka.conf: kafka.group.id: set the group with consumer.group_id'

# A value far longer than libinih's 200 bytes works.
long=$(printf 'x%.0s' $(seq 1 3000))
conf long_value <<X
[postgresql]
conninfo = host=127.0.0.1 application_name=$long
[kafka]
bootstrap.servers = 127.0.0.1:9092
X
expect long_value 0 "long_value.conf: configuration is valid"

# A line past 64 KiB is refused with its number, never cut silently.
huge=$(head -c 70000 /dev/zero | tr '\0' 'y')
conf long_line <<X
[postgresql]
conninfo = $huge
X
expect long_line 1 'long_line.conf:2: line is longer than 65536 bytes'

expect missing_file 1 'missing_file.conf: No such file or directory'

# The environment overrides the file, and its errors name the variable.
conf plain <<'X'
[kafka]
bootstrap.servers = 127.0.0.1:9092
X
checks=$((checks + 1))
out=$(cd "$work" && IPAM_CONSUMER_BATCH_MAX_EVENTS=0 "$binary" --check-config plain.conf 2>&1)
if [ "$out" != 'environment IPAM_CONSUMER_BATCH_MAX_EVENTS: consumer.batch_max_events: 0 is out of range (1 to 1000000)' ]; then
	failures=$((failures + 1)); echo "FAIL env_range: $out"
else echo "PASS env_range"; fi

checks=$((checks + 1))
out=$(cd "$work" && IPAM_DAEMON_NOPE=1 "$binary" --check-config plain.conf 2>&1)
if [ "$out" != 'environment IPAM_DAEMON_NOPE: no such configuration key' ]; then
	failures=$((failures + 1)); echo "FAIL env_unknown: $out"
else echo "PASS env_unknown"; fi

checks=$((checks + 1))
out=$(cd "$work" && KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1 "$binary" --check-config no_bootstrap.conf 2>&1)
if [ "$out" != 'no_bootstrap.conf: configuration is valid' ]; then
	failures=$((failures + 1)); echo "FAIL env_bootstrap: $out"
else echo "PASS env_bootstrap"; fi

checks=$((checks + 1))
out=$(cd "$work" && IPAM_KAFKA_NO_SUCH=1 "$binary" --check-config plain.conf 2>&1)
if [ "$out" != 'plain.conf: kafka.no.such: No such configuration property: "no.such"' ]; then
	failures=$((failures + 1)); echo "FAIL env_kafka: $out"
else echo "PASS env_kafka"; fi

echo "$((checks - failures)) passed, $failures failed"
[ "$failures" -eq 0 ]
