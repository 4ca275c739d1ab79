#!/usr/bin/env bash
# The Debian package: built with dpkg-buildpackage from Debian's packages
# only, in a copy of the source tree, then its contents checked: the
# binaries, man pages, unit, schema, page, completion, the configuration
# as a conffile with the packaged paths, a postinst that starts nothing;
# then the packaged daemon run with the packaged configuration against
# the real services (systemd is absent here: the unit is checked with
# systemd-analyze instead).
#   deb.sh SOURCE_DIR      (with the services' environment for the run)
set -u
source_dir=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
checks=0
pass() { checks=$((checks + 1)); echo "PASS $*"; }
fail() { checks=$((checks + 1)); failed=$((failed + 1)); echo "FAIL $*"; }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }

for tool in dpkg-buildpackage dh; do
	command -v "$tool" >/dev/null || { echo "FAIL $tool missing: apt-get install debhelper dpkg-dev"; exit 1; }
done
# The files git would have: tracked (still present) and new, not ignored.
tree=$work/ipam-syncd
mkdir -p "$tree"
(cd "$source_dir" && git ls-files -z --cached --others --exclude-standard |
	while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
	xargs -0 cp --parents -t "$tree") || { echo "FAIL copying the tree"; exit 1; }
if ! (cd "$tree" && dpkg-buildpackage -us -uc -b) > "$work/build.log" 2>&1; then
	tail -n 40 "$work/build.log"
	echo "FAIL dpkg-buildpackage"
	exit 1
fi
pass "dpkg-buildpackage -us -uc -b"
deb=$(ls "$work"/ipam-syncd_*.deb 2>/dev/null | head -n 1)
check "a .deb was made" test -n "$deb"
contents=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|')
for path in /usr/sbin/ipam-syncd /usr/bin/ipamctl \
	/usr/share/man/man8/ipam-syncd.8.gz /usr/share/man/man1/ipamctl.1.gz \
	/usr/share/man/man5/ipam-syncd.conf.5.gz \
	/lib/systemd/system/ipam-syncd.service \
	/usr/share/ipam-syncd/schema/001_state.sql /usr/share/ipam-syncd/schema/functions/70_apply.sql /usr/share/ipam-syncd/schema/functions/RELEASE \
	/usr/share/ipam-syncd/schema/roles.sql /usr/share/ipam-syncd/web/index.html \
	/etc/ipam-syncd/ipam-syncd.conf /usr/share/doc/ipam-syncd/OPERATIONS.md \
	/usr/share/bash-completion/completions/ipam-syncd /usr/share/bash-completion/completions/ipamctl; do
	check "$path in the package" grep -qx "$path" <<<"$contents"
done
mkdir "$work/control" "$work/root"
dpkg-deb -e "$deb" "$work/control"
dpkg-deb -x "$deb" "$work/root"
check "the configuration is a conffile" grep -qx /etc/ipam-syncd/ipam-syncd.conf "$work/control/conffiles"
check "the packaged config names the packaged schema" grep -qx 'schema_dir = /usr/share/ipam-syncd/schema' "$work/root/etc/ipam-syncd/ipam-syncd.conf"
check "the packaged config names the packaged page" grep -qx 'web_dir = /usr/share/ipam-syncd/web' "$work/root/etc/ipam-syncd/ipam-syncd.conf"
check "the unit runs the packaged binary with the packaged config" grep -qx \
	'ExecStart=/usr/sbin/ipam-syncd --config /etc/ipam-syncd/ipam-syncd.conf' "$work/root/lib/systemd/system/ipam-syncd.service"
check "the packaged binary runs" sh -c "'$work/root/usr/sbin/ipam-syncd' --version | grep -q '^ipam-syncd '"
check "the packaged binary's default config is /etc's" sh -c "'$work/root/usr/sbin/ipam-syncd' --help | grep -q '(default /etc/ipam-syncd/ipam-syncd.conf'"
# The postinst enables the unit for later but starts nothing.
check "postinst does not start the daemon" sh -c "! grep -Eq '_dh_action=start|deb-systemd-invoke start|invoke-rc.d' '$work/control/postinst'"
check "postinst enables the unit" grep -q 'deb-systemd-helper' "$work/control/postinst"
check "prerm stops the daemon when the package is removed" \
	grep -q 'deb-systemd-invoke stop ipam-syncd.service' "$work/control/prerm"
check "the package depends on the shared libraries" sh -c "dpkg-deb -f '$deb' Depends | grep -q librdkafka"
# The unit as systemd reads it, against the package's own tree.
if command -v systemd-analyze >/dev/null; then
	# Its commands pointed at the unpacked tree: the package is not
	# installed on this machine.
	mkdir "$work/unit"
	sed "s|/usr/sbin/ipam-syncd|$work/root/usr/sbin/ipam-syncd|g" \
		"$work/root/lib/systemd/system/ipam-syncd.service" \
		> "$work/unit/ipam-syncd.service"
	verify=$(systemd-analyze verify --man=no "$work/unit/ipam-syncd.service" 2>&1)
	check "systemd-analyze verify: the unit is sound${verify:+: $verify}" test -z "$verify"
else
	fail "systemd-analyze missing: apt-get install systemd"
fi

# The packaged binary with the packaged configuration, its paths moved
# into the unpacked tree and its services the tests' (environment
# overrides, as an operator would set them), until ready, then stopped.
if [ -n "${PGHOST:-}" ] && [ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
	run=pkg_$$_$RANDOM
	psql -q -d postgres -c "CREATE DATABASE $run" >/dev/null
	"$source_dir/scripts/services" topics-create "$run.servers" "$run.subnets" "$run.marks" >/dev/null
	IPAM_DAEMON_SCHEMA_DIR=$work/root/usr/share/ipam-syncd/schema \
	IPAM_API_WEB_DIR=$work/root/usr/share/ipam-syncd/web \
	IPAM_POSTGRESQL_CONNINFO="dbname=$run" IPAM_CONSUMER_GROUP_ID=$run \
	IPAM_CONSUMER_TOPICS="$run.servers:server:cloudevents, $run.subnets:subnet:cloudevents, $run.marks:mark:cloudevents" \
	IPAM_HTTP_LISTEN=127.0.0.1:0 IPAM_SWEEPER_ENABLED=false \
	IPAM_KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS \
		"$work/root/usr/sbin/ipam-syncd" --config "$work/root/etc/ipam-syncd/ipam-syncd.conf" \
		> "$work/daemon.log" 2>&1 &
	pid=$!
	for _ in $(seq 1 300); do
		grep -q "ready: " "$work/daemon.log" && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.2
	done
	check "the packaged daemon with the packaged config becomes ready" grep -q "ready: " "$work/daemon.log"
	port=$(sed -n 's/.*http: listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$work/daemon.log")
	check "it serves the packaged page" sh -c "curl -sf http://127.0.0.1:$port/ | grep -q '<html'"
	kill -TERM "$pid" 2>/dev/null
	wait "$pid"
	check "it stops with status 0 on SIGTERM" test "$?" -eq 0
	[ "$failed" -eq 0 ] || tail -n 30 "$work/daemon.log"
	psql -q -d postgres -c "DROP DATABASE IF EXISTS $run WITH (FORCE)" >/dev/null
else
	fail "the services' environment is missing (eval \"\$(scripts/services env)\")"
fi

# lintian (Debian's own checks) finds no error nor warning.
if command -v lintian >/dev/null; then
	findings=$(lintian "$deb" 2>&1 | grep -E '^[EW]: ')
	check "lintian: no error or warning${findings:+: $findings}" test -z "$findings"
else
	fail "lintian missing: apt-get install lintian"
fi
echo "$((checks - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
