#!/usr/bin/env bash
# --check-config against good and bad files: exit status (78 EX_CONFIG for
# the configuration, 69 EX_UNAVAILABLE for the schema folder) and exact
# message, naming the file and line (or the variable) and the value.
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
unset CREDENTIALS_DIRECTORY
# The files of a clean build tree: its own migrations and page.
export IPAM_DAEMON_SCHEMA_DIR="$source_dir/schema" IPAM_API_WEB_DIR="$source_dir/web"

cp "$source_dir/config/ipam-syncd.conf" "$work/example.conf"
expect example 0 "example.conf: configuration is valid"

# The shipped example is exactly what the key table generates (but for
# the folders, which follow the build's install prefix).
checks=$((checks + 1))
folders='^\(schema_dir\|web_dir\) = '
if ! cmp -s <("$binary" --print-example-config | grep -v "$folders") \
	<(grep -v "$folders" "$source_dir/config/ipam-syncd.conf"); then
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
expect unknown_key 78 'unknown_key.conf:3: unknown key "bogus" in [daemon]'

conf unknown_section <<'X'
[kafka]
bootstrap.servers = 127.0.0.1:9092
[nope]
X
expect unknown_section 78 'unknown_section.conf:3: unknown section [nope]'

conf bad_int <<'X'
[daemon]
shutdown_timeout_ms = soon
X
expect bad_int 78 'bad_int.conf:2: daemon.shutdown_timeout_ms: "soon" is not an integer'

conf out_of_range <<'X'

[consumer]
batch_max_events = 0
X
expect out_of_range 78 'out_of_range.conf:3: consumer.batch_max_events: 0 is out of range (1 to 1000000)'

conf bad_bool <<'X'
[sweeper]
enabled = perhaps
X
expect bad_bool 78 'bad_bool.conf:2: sweeper.enabled: "perhaps" is not a boolean (true or false)'

conf no_section <<'X'
# a comment
log_level = info
X
expect no_section 78 'no_section.conf:2: key "log_level" comes before any [section]'

conf no_equals <<'X'
[daemon]
log_level info
X
expect no_equals 78 'no_equals.conf:2: expected "key = value", found "log_level info"'

conf bad_level <<'X'
[daemon]
log_level = loud
[kafka]
bootstrap.servers = 127.0.0.1:9092
X
expect bad_level 78 'bad_level.conf:2: daemon.log_level: "loud" is not one of error, warning, notice, info, debug'

conf bad_topic <<'X'
[consumer]
topics = inventory.servers:router:cloudevents
[kafka]
bootstrap.servers = 127.0.0.1:9092
X
expect bad_topic 78 'bad_topic.conf:2: consumer.topics: entity "router" of topic inventory.servers is not server, subnet or mark'

conf bad_kafka <<'X'
[kafka]
bootstrap.servers = 127.0.0.1:9092
no.such.property = 1
X
expect bad_kafka 78 'bad_kafka.conf:3: kafka.no.such.property: No such configuration property: "no.such.property"'

conf no_bootstrap <<'X'
[daemon]
log_level = info
X
expect no_bootstrap 78 'no_bootstrap.conf: kafka.bootstrap.servers is not set (nor KAFKA_BOOTSTRAP_SERVERS)'

conf group_in_kafka <<'X'
[kafka]
bootstrap.servers = 127.0.0.1:9092
group.id = other
X
expect group_in_kafka 78 'group_in_kafka.conf:3: kafka.group.id: set the group with consumer.group_id'

# The settings the consumer's guarantees rest on are not the operator's.
conf eager_group <<'X'
[kafka]
bootstrap.servers = 127.0.0.1:9092
partition.assignment.strategy = range
X
expect eager_group 78 'eager_group.conf:3: kafka.partition.assignment.strategy: ipam-syncd sets it to cooperative-sticky, which its handling of rebalances needs'
conf offset_reset <<'X'
[kafka]
bootstrap.servers = 127.0.0.1:9092
auto.offset.reset = earliest
X
expect offset_reset 78 'offset_reset.conf:3: kafka.auto.offset.reset: ipam-syncd sets it to error: a start offset outside the log is reported, never skipped over'
conf uncommitted <<'X'
[kafka]
bootstrap.servers = 127.0.0.1:9092
isolation.level = read_uncommitted
X
expect uncommitted 78 'uncommitted.conf:3: kafka.isolation.level: only read_committed: the events of aborted transactions are never applied'
conf committed <<'X'
[kafka]
bootstrap.servers = 127.0.0.1:9092
isolation.level = read_committed
X
expect committed 0 'committed.conf: configuration is valid'

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
expect long_line 78 'long_line.conf:2: line is longer than 65536 bytes'

expect missing_file 78 'missing_file.conf: No such file or directory'

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
if [ "$out" != 'environment IPAM_KAFKA_NO_SUCH: kafka.no.such: No such configuration property: "no.such"' ]; then
	failures=$((failures + 1)); echo "FAIL env_kafka: $out"
else echo "PASS env_kafka"; fi

# What the daemon would refuse at start is refused here, with the line.
conf bad_conninfo <<'X'
[postgresql]
conninfo = host=127.0.0.1 prot=5432
[kafka]
bootstrap.servers = 127.0.0.1:9092
X
expect bad_conninfo 78 'bad_conninfo.conf:2: postgresql.conninfo: invalid connection option "prot"'

conf bad_api_conninfo <<'X'
[api]
read_conninfo = dbname
[kafka]
bootstrap.servers = 127.0.0.1:9092
X
expect bad_api_conninfo 78 'bad_api_conninfo.conf:2: api.read_conninfo: missing "=" after "dbname" in connection info string'

conf bad_port <<'X'
[kafka]
bootstrap.servers = 127.0.0.1:9092
[http]
listen = 127.0.0.1:99999
X
expect bad_port 78 'bad_port.conf:4: http.listen: "127.0.0.1:99999": port "99999" is not 0 to 65535'

# Host names are refused, not resolved: the listener binds one address.
conf host_name <<'X'
[kafka]
bootstrap.servers = 127.0.0.1:9092
[http]
listen = localhost:19189
X
expect host_name 78 'host_name.conf:4: http.listen: "localhost:19189": "localhost" is not a numeric address (host names are not resolved: give 127.0.0.1, [::1], 0.0.0.0 or [::])'

conf ipv6_listen <<'X'
[kafka]
bootstrap.servers = 127.0.0.1:9092
[http]
listen = [::1]:0
X
expect ipv6_listen 0 'ipv6_listen.conf: configuration is valid'

conf bad_topic_name <<'X'
[consumer]
topics = bad's topic:server:cloudevents
[kafka]
bootstrap.servers = 127.0.0.1:9092
X
expect bad_topic_name 78 "bad_topic_name.conf:2: consumer.topics: \"bad's topic\" is not a legal Kafka topic name (1 to 249 of a-z, A-Z, 0-9, '.', '_', '-'; not \".\" or \"..\")"

long_topic=$(printf 't%.0s' $(seq 1 250))
conf long_topic <<X
[consumer]
topics = $long_topic:server:cloudevents
[kafka]
bootstrap.servers = 127.0.0.1:9092
X
expect long_topic 78 "long_topic.conf:2: consumer.topics: \"$long_topic\" is not a legal Kafka topic name (1 to 249 of a-z, A-Z, 0-9, '.', '_', '-'; not \".\" or \"..\")"

conf dotdot_topic <<'X'
[consumer]
topics = ..:server:cloudevents
[kafka]
bootstrap.servers = 127.0.0.1:9092
X
expect dotdot_topic 78 "dotdot_topic.conf:2: consumer.topics: \"..\" is not a legal Kafka topic name (1 to 249 of a-z, A-Z, 0-9, '.', '_', '-'; not \".\" or \"..\")"

# Secret files: missing (with the $CREDENTIALS_DIRECTORY hint), empty,
# readable by others (refused), readable by the group (a warning).
conf password <<'X'
[kafka]
bootstrap.servers = 127.0.0.1:9092
[postgresql]
password_file = pg-password
X
expect password 78 'password.conf:4: postgresql.password_file: secret file pg-password: No such file or directory (a relative path, and $CREDENTIALS_DIRECTORY is not set: looked up in the current folder)'
checks=$((checks + 1))
mkdir -p "$work/creds"
out=$(cd "$work" && CREDENTIALS_DIRECTORY="$work/creds" "$binary" --check-config password.conf 2>&1)
if [ "$out" != "password.conf:4: postgresql.password_file: secret file $work/creds/pg-password: No such file or directory" ]; then
	failures=$((failures + 1)); echo "FAIL credentials_directory: $out"
else echo "PASS credentials_directory"; fi
: > "$work/pg-password"; chmod 600 "$work/pg-password"
expect password 78 'password.conf:4: postgresql.password_file: secret file pg-password is empty'
echo secret > "$work/pg-password"; chmod 644 "$work/pg-password"
expect password 78 'password.conf:4: postgresql.password_file: secret file pg-password: others may read it (mode 0644); refused: chmod o-rwx pg-password'
chmod 640 "$work/pg-password"
expect password 0 '<4>secret file pg-password: its group may read it (mode 0640); chmod g-rwx unless that group is the daemon'"'"'s alone
password.conf: configuration is valid'
chmod 600 "$work/pg-password"
expect password 0 'password.conf: configuration is valid'

conf token <<'X'
[kafka]
bootstrap.servers = 127.0.0.1:9092
[api]
write_token_file = /nonexistent/api-write.token
X
expect token 78 'token.conf:4: api.write_token_file: secret file /nonexistent/api-write.token: No such file or directory'

conf no_user <<'X'
[daemon]
user = no-such-user-here
[kafka]
bootstrap.servers = 127.0.0.1:9092
X
expect no_user 78 'no_user.conf:2: daemon.user: user no-such-user-here: no such user'

# A Kafka secret file named from the environment, as in the file.
checks=$((checks + 1))
out=$(cd "$work" && IPAM_KAFKA_SASL_PASSWORD_FILE=kafka-password "$binary" --check-config plain.conf 2>&1)
if [ "$out" != 'environment IPAM_KAFKA_SASL_PASSWORD_FILE: kafka.sasl.password_file: secret file kafka-password: No such file or directory (a relative path, and $CREDENTIALS_DIRECTORY is not set: looked up in the current folder)' ]; then
	failures=$((failures + 1)); echo "FAIL env_kafka_secret_missing: $out"
else echo "PASS env_kafka_secret_missing"; fi
checks=$((checks + 1))
echo kafka-secret > "$work/kafka-password"; chmod 600 "$work/kafka-password"
out=$(cd "$work" && IPAM_KAFKA_SASL_PASSWORD_FILE=kafka-password "$binary" --check-config plain.conf 2>&1)
if [ "$out" != 'plain.conf: configuration is valid' ]; then
	failures=$((failures + 1)); echo "FAIL env_kafka_secret: $out"
else echo "PASS env_kafka_secret"; fi

# The schema folder: missing, or without every migration: 69.
conf schema <<'X'
[daemon]
schema_dir = /nonexistent/schema
[kafka]
bootstrap.servers = 127.0.0.1:9092
X
checks=$((checks + 1))
out=$(cd "$work" && env -u IPAM_DAEMON_SCHEMA_DIR "$binary" --check-config schema.conf 2>&1); rc=$?
if [ "$rc" != 69 ] || [ "$out" != 'schema.conf:2: daemon.schema_dir: schema folder /nonexistent/schema: No such file or directory' ]; then
	failures=$((failures + 1)); echo "FAIL schema_missing: $rc $out"
else echo "PASS schema_missing"; fi
mkdir -p "$work/partial/functions"
cp "$source_dir/schema/001_state.sql" "$work/partial/"
checks=$((checks + 1))
out=$(cd "$work" && IPAM_DAEMON_SCHEMA_DIR="$work/partial" "$binary" --check-config plain.conf 2>&1); rc=$?
if [ "$rc" != 69 ] || [ "$out" != "environment IPAM_DAEMON_SCHEMA_DIR: daemon.schema_dir: schema folder $work/partial lacks migration 002" ]; then
	failures=$((failures + 1)); echo "FAIL schema_partial: $rc $out"
else echo "PASS schema_partial"; fi

# The page's folder: missing is said (the page answers 404), a file refused.
checks=$((checks + 1))
out=$(cd "$work" && IPAM_API_WEB_DIR=/nonexistent/web "$binary" --check-config plain.conf 2>&1); rc=$?
if [ "$rc" != 0 ] || [ "$out" != '<4>environment IPAM_API_WEB_DIR: api.web_dir /nonexistent/web: No such file or directory; the operator page is not served (404)
plain.conf: configuration is valid' ]; then
	failures=$((failures + 1)); echo "FAIL web_dir_missing: $rc $out"
else echo "PASS web_dir_missing"; fi
checks=$((checks + 1))
out=$(cd "$work" && IPAM_API_WEB_DIR="$work/plain.conf" "$binary" --check-config plain.conf 2>&1); rc=$?
if [ "$rc" != 78 ] || [ "$out" != "environment IPAM_API_WEB_DIR: api.web_dir: $work/plain.conf is not a folder" ]; then
	failures=$((failures + 1)); echo "FAIL web_dir_file: $rc $out"
else echo "PASS web_dir_file"; fi

# The command line: an unknown option is EX_USAGE; --help names the exit
# statuses and the build's own paths.
checks=$((checks + 1))
"$binary" --no-such-option >/dev/null 2>&1; rc=$?
if [ "$rc" != 64 ]; then failures=$((failures + 1)); echo "FAIL usage: $rc"; else echo "PASS usage"; fi
checks=$((checks + 1))
help=$("$binary" --help)
if ! grep -q '78 configuration error' <<<"$help" || ! grep -q -- '--migrate' <<<"$help" ||
	! grep -q "$(grep -m1 '^schema_dir = ' <("$binary" --print-example-config) | cut -d' ' -f3)" <<<"$help"; then
	failures=$((failures + 1)); echo "FAIL help: $help"
else echo "PASS help"; fi

echo "$((checks - failures)) passed, $failures failed"
[ "$failures" -eq 0 ]
