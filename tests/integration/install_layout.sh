#!/usr/bin/env bash
# "cmake --install" puts every file where the build says it will be, and
# what it installs starts: the installed binary, with the installed
# configuration (pointed at the test's services), finds the installed
# migrations and page and becomes ready against the real PostgreSQL and
# Kafka.
#   install_layout.sh BUILD_DIR SOURCE_DIR
set -u
build=$1
source_dir=$2
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
failed=0
checks=0
pass() { checks=$((checks + 1)); echo "PASS $*"; }
fail() { checks=$((checks + 1)); failed=$((failed + 1)); echo "FAIL $*"; }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }

DESTDIR=$root cmake --install "$build" >/dev/null || { echo "FAIL install"; exit 1; }
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
binary=$root$prefix/sbin/ipam-syncd
check "the installed binary runs" sh -c "'$binary' --version | grep -q '^ipam-syncd '"

# The paths the binary was built with are the paths installed.
help=$("$binary" --help)
config=$(grep -o '(default [^,]*' <<<"$help" | cut -c10-)
schema=$(sed -n 's/^Files: \(.*\) (migrations), .*/\1/p' <<<"$help")
web=$(sed -n 's/^Files: .* (migrations), \(.*\) (operator page)\.$/\1/p' <<<"$help")
[ -n "$config" ] && [ -n "$schema" ] && [ -n "$web" ] || fail "--help names the config, schema and web paths: $help"
check "config $config installed" test -f "$root$config"
check "schema $schema installed" test -f "$root$schema/001_state.sql" -a -f "$root$schema/functions/70_apply.sql" -a -f "$root$schema/functions/RELEASE" \
	-a -f "$root$schema/roles.sql" -a -f "$root$schema/cloudevents-server.schema.json"
check "web $web installed" test -f "$root$web/index.html"
check "the installed config's schema_dir is the installed one" grep -qx "schema_dir = $schema" "$root$config"
check "the installed config's web_dir is the installed one" grep -qx "web_dir = $web" "$root$config"
unit=$(find "$root" -name ipam-syncd.service -path '*systemd/system*')
check "unit installed" test -n "$unit"
exec_start=$(sed -n 's/^ExecStart=\([^ ]*\) --config \(.*\)$/\1 \2/p' "$unit")
check "ExecStart names the installed binary and config" test "$exec_start" = "$prefix/sbin/ipam-syncd $config"
for doc in $(grep -o 'file://[^ ]*' "$unit" | sed 's|file://||'); do
	check "Documentation $doc installed" test -f "$root$doc"
done
check "man page ipam-syncd(8) installed" test -f "$root$prefix/share/man/man8/ipam-syncd.8"
check "man page ipamctl(1) installed" test -f "$root$prefix/share/man/man1/ipamctl.1"
check "man page names the installed config" grep -q "$config" "$root$prefix/share/man/man8/ipam-syncd.8"
check "ipam-syncd.8 is well-formed roff" sh -c "! LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l '$root$prefix/share/man/man8/ipam-syncd.8' 2>&1 >/dev/null | grep ."
man5=$root$prefix/share/man/man5/ipam-syncd.conf.5
check "ipam-syncd.conf(5) is well-formed roff" sh -c "! LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l '$man5' 2>&1 >/dev/null | grep ."
for key in $("$binary" --print-example-config | sed -n 's/^\([a-z_.]*\) = .*/\1/p' | sort -u); do
	grep -q "^\.B $key\$" "$man5" || missing5="${missing5:-} $key"
done
check "every key of the example is in ipam-syncd.conf(5)${missing5:+ (missing:$missing5)}" test -z "${missing5:-}"
# The man page cannot drift from the key table and --help: every key and
# every option is in it.
man8=$root$prefix/share/man/man8/ipam-syncd.8
missing=""
for key in $("$binary" --print-example-config | sed -n '/^\[kafka\]/q; s/^\([a-z_]*\) = .*/\1/p'); do
	grep -qx ".B $key" "$man8" || missing="$missing $key"
done
for option in $(grep -o -- '--[a-z-]*' <<<"$help" | sort -u); do
	grep -qF -- "\\-\\-${option#--}" "$man8" || missing="$missing $option"
done
check "every key and option is in ipam-syncd(8)${missing:+ (missing:$missing)}" test -z "$missing"
for completion in ipam-syncd ipamctl; do
	check "bash completion $completion installed" bash -n "$root$prefix/share/bash-completion/completions/$completion"
done
check "bash completion offers ipamctl's commands" bash -c "
	source '$root$prefix/share/bash-completion/completions/ipamctl'
	COMP_WORDS=(ipamctl res); COMP_CWORD=1; _ipamctl; [ \"\${COMPREPLY[*]}\" = reserve ]"
check "bash completion offers ipam-syncd's options" bash -c "
	source '$root$prefix/share/bash-completion/completions/ipam-syncd'
	COMP_WORDS=(ipam-syncd --mig); COMP_CWORD=1; _ipam_syncd; [ \"\${COMPREPLY[*]}\" = --migrate ]"

# The installed files as they are: the daemon looks for them at their
# installed paths, so the prefix is mounted there in a mount namespace of
# the test's own.
if [ "$prefix" = /usr ] || [ "$prefix" = / ]; then
	echo "(the prefix $prefix cannot be mounted over; the run against the services is skipped)"
elif ! unshare -m true 2>/dev/null; then
	fail "unshare -m: no mount namespace (needs root)"
else
	unshare -m sh -c "mkdir -p '$prefix' && mount --bind '$root$prefix' '$prefix' &&
		env -u IPAM_SYNCD_BIN /usr/bin/python3 '$source_dir/tests/integration/install_run.py' \
		'$prefix/sbin/ipam-syncd' '$config'"
	if [ $? -eq 0 ]; then pass "the installed daemon starts with the installed config"; else fail "the installed daemon does not start"; fi
fi
echo "$((checks - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
