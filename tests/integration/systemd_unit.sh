#!/usr/bin/env bash
# The unit file generated for this build passes "systemd-analyze verify",
# its offline security exposure is 1.5 or better (--threshold is the
# exposure times ten), and a configuration error stops its restart loop.
#   systemd_unit.sh BINARY UNIT_FILE
set -u
binary=$1
unit=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
checks=0
# verify checks that ExecStart= exists: point it at the built binary.
sed "s|^\(Exec[A-Za-z]*=\)[^ ]*/ipam-syncd |\1$binary |" "$unit" > "$work/ipam-syncd.service"
checks=$((checks + 1))
# The man page is not installed here: install_layout.sh checks it.
if systemd-analyze verify --man=no "$work/ipam-syncd.service"; then
	echo "PASS systemd-analyze verify"
else
	echo "FAIL systemd-analyze verify"; failed=$((failed + 1))
fi
checks=$((checks + 1))
if out=$(systemd-analyze security --offline=yes --threshold=15 "$work/ipam-syncd.service" 2>&1); then
	echo "PASS exposure: $(grep -o 'exposure level.*' <<<"$out")"
else
	echo "$out" | tail -n 20
	echo "FAIL exposure above 1.5"; failed=$((failed + 1))
fi
# The directives the operator relies on are there.
for directive in Type=notify WatchdogSec= ExecReload= Restart=on-failure \
	'RestartPreventExitStatus=64 69 77 78' 'Documentation=man:ipam-syncd(8)' \
	DynamicUser=yes AmbientCapabilities=CAP_NET_RAW CapabilityBoundingSet=CAP_NET_RAW \
	'ExecStart=[^ ]*/sbin/ipam-syncd --config [^ ]*/ipam-syncd.conf$'; do
	checks=$((checks + 1))
	if grep -q "^$directive" "$unit"; then
		echo "PASS $directive"
	else
		echo "FAIL $directive missing"; failed=$((failed + 1))
	fi
done
# What the unit's RestartPreventExitStatus= names is what the daemon exits
# with on a configuration error: 78, from the start itself, not a check.
checks=$((checks + 1))
printf '[http]\nlisten = localhost:1\n[kafka]\nbootstrap.servers = 127.0.0.1:9092\n' > "$work/bad.conf"
env -u IPAM_CONFIG "$binary" --config "$work/bad.conf" >/dev/null 2>&1
rc=$?
if [ "$rc" = 78 ] && grep -q "^RestartPreventExitStatus=.*\b$rc\b" "$unit"; then
	echo "PASS a bad configuration exits $rc, which stops the restart loop"
else
	echo "FAIL a bad configuration exits $rc"; failed=$((failed + 1))
fi
echo "$((checks - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
