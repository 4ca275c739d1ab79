#!/usr/bin/env bash
# The unit file passes "systemd-analyze verify" and its offline security
# exposure is 1.5 or better (--threshold is the exposure times ten).
#   systemd_unit.sh BINARY SOURCE_DIR
set -u
binary=$1
source_dir=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
# verify checks that ExecStart= exists: point it at the built binary.
sed "s|/usr/sbin/ipam-syncd|$binary|g" "$source_dir/systemd/ipam-syncd.service" \
	> "$work/ipam-syncd.service"
if systemd-analyze verify "$work/ipam-syncd.service"; then
	echo "PASS systemd-analyze verify"
else
	echo "FAIL systemd-analyze verify"; failed=$((failed + 1))
fi
if out=$(systemd-analyze security --offline=yes --threshold=15 "$work/ipam-syncd.service" 2>&1); then
	echo "PASS exposure: $(grep -o 'exposure level.*' <<<"$out")"
else
	echo "$out" | tail -n 20
	echo "FAIL exposure above 1.5"; failed=$((failed + 1))
fi
# The directives the operator relies on are there.
for directive in Type=notify WatchdogSec= ExecReload= Restart=on-failure \
	DynamicUser=yes AmbientCapabilities=CAP_NET_RAW CapabilityBoundingSet=CAP_NET_RAW \
	'ExecStartPre=/usr/sbin/ipam-syncd --check-config'; do
	if grep -q "^$directive" "$source_dir/systemd/ipam-syncd.service"; then
		echo "PASS $directive"
	else
		echo "FAIL $directive missing"; failed=$((failed + 1))
	fi
done
echo "$((10 - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
