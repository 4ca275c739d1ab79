#!/usr/bin/env bash
# The Debian package: built with dpkg-buildpackage from Debian's packages
# only, in a copy of the source tree, then its contents checked: the
# binaries, man pages, unit, schema, page, completion, the configuration
# as a conffile with the packaged paths, a postinst that starts nothing.
#   deb.sh SOURCE_DIR
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
	/lib/systemd/system/ipam-syncd.service \
	/usr/share/ipam-syncd/schema/001_state.sql /usr/share/ipam-syncd/schema/functions/70_apply.sql \
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
check "the package depends on the shared libraries" sh -c "dpkg-deb -f '$deb' Depends | grep -q librdkafka"
# lintian (Debian's own checks) finds no error nor warning.
if command -v lintian >/dev/null; then
	findings=$(lintian "$deb" 2>&1 | grep -E '^[EW]: ')
	check "lintian: no error or warning${findings:+: $findings}" test -z "$findings"
else
	fail "lintian missing: apt-get install lintian"
fi
echo "$((checks - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
