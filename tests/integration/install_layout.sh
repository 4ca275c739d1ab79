#!/usr/bin/env bash
# "cmake --install" puts every file where a packager expects it.
#   install_layout.sh BUILD_DIR
set -u
build=$1
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
failed=0
checks=0
DESTDIR=$root cmake --install "$build" --prefix /usr >/dev/null || { echo "FAIL install"; exit 1; }
for file in usr/sbin/ipam-syncd usr/etc/ipam-syncd/ipam-syncd.conf \
	usr/lib/systemd/system/ipam-syncd.service \
	usr/share/ipam-syncd/schema/001_state.sql usr/share/ipam-syncd/schema/002_apply.sql \
	usr/share/ipam-syncd/schema/003_rebuild.sql \
	usr/share/ipam-syncd/schema/cloudevents-server.schema.json; do
	checks=$((checks + 1))
	if [ -f "$root/$file" ]; then echo "PASS $file"; else echo "FAIL $file missing"; failed=$((failed + 1)); fi
done
checks=$((checks + 1))
if [ -x "$root/usr/sbin/ipam-syncd" ] && "$root/usr/sbin/ipam-syncd" --version | grep -q '^ipam-syncd '; then
	echo "PASS the installed binary runs"
else
	echo "FAIL the installed binary does not run"; failed=$((failed + 1))
fi
echo "$((checks - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
