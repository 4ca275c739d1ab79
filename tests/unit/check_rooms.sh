#!/bin/sh
# Dependencies run one way, downward (README, "The source, in reading
# order"): each file's #include "..." lines name only its own room and the
# rooms below.
#   sweeper/              sweeper/, common/
#   consumers/ decoders   consumers/change.h, consumers/decode*.h,
#                         common/addr.h, common/fnv.h, common/log.h (no
#                         libpq, no librdkafka)
#   consumers/ the rest   consumers/, common/
#   common/               common/
# daemon/ wires them all and may include anything.
#   check_rooms.sh SOURCE_DIR
set -eu
cd "$1"
status=0

# check FILE PATTERN: every quoted include of FILE matches PATTERN.
check() {
	bad=$(sed -n 's/^#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$1" |
		grep -Ev "^($2)\$" || true)
	if [ -n "$bad" ]; then
		echo "FAIL: $1 includes $(echo $bad) against the layout" >&2
		status=1
	fi
}

count=0
for f in sweeper/*.[ch]; do
	check "$f" 'sweeper/[a-z_]+\.h|common/[a-z_]+\.h'
	count=$((count + 1))
done
for f in consumers/*.[ch]; do
	case ${f#consumers/} in
	change.*|decode*)
		check "$f" 'consumers/change\.h|consumers/decode[a-z_]*\.h|common/addr\.h|common/fnv\.h|common/log\.h'
		;;
	*)
		check "$f" 'consumers/[a-z_]+\.h|common/[a-z_]+\.h'
		;;
	esac
	count=$((count + 1))
done
for f in common/*.[ch]; do
	check "$f" 'common/[a-z_]+\.h'
	count=$((count + 1))
done
[ $status -eq 0 ] && echo "ok: $count files of sweeper/, consumers/ and common/ include only downward"
exit $status
