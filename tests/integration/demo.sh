#!/usr/bin/env bash
# The README's demo, run on a database and topics of its own: the table it
# shows must hold the workflows' outcome.
#   demo.sh BINARY SOURCE_DIR
set -euo pipefail
binary=$1
source_dir=$2
suffix=$$_$RANDOM
run=$(mktemp -d)
trap 'rm -rf "$run"; psql -q -d postgres -c "DROP DATABASE IF EXISTS demo_$suffix WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
out=$(IPAM_RUN_DIR=$run "$source_dir/scripts/demo" --binary "$binary" \
	--database "demo_$suffix" --prefix "demo_$suffix" --stop 2>&1) || {
	echo "$out"; echo "1 failed"; exit 1; }
echo "$out"
failed=0
expect() {
	if grep -qE "$1" <<<"$out"; then echo "PASS $2"; else echo "FAIL $2"; failed=$((failed + 1)); fi
}
expect '^192\.168\.1\.11 +allocated +static +no +1 +web-01 +aa:bb:cc:00:11:22' "moved server holds .11"
expect '^192\.168\.1\.20 +reserved +static .*office gateway' "reserved mark with description"
expect '^192\.168\.1\.1 +reserved +static .*new desks' "allocate: the first free address"
expect '^192\.168\.1\.2 +reserved +static .*new desks' "allocate: the next free address"
expect '^1 +office-lan +192\.168\.1\.0/24 +50 +44 +2 +4 +0' "per-subnet counts"
expect 'write:demo' "the requester in the address's history"
expect 'is not an IPv4 or IPv6 address' "dead letter shown"
for gone in '192\.168\.1\.100' '^192\.168\.1\.10 '; do
	if grep -qE "$gone" <<<"$out"; then echo "FAIL $gone not listed"; failed=$((failed + 1)); else echo "PASS $gone not listed"; fi
done
echo "$((9 - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
