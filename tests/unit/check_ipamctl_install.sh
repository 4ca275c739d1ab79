#!/usr/bin/env bash
# ipamctl's install and man page: "cmake --install" puts the binary and
# ipamctl.1 where a packager expects them; the page renders without a
# warning; it has a section for every command the binary lists, and names
# every option and exit status the binary knows.
#   check_ipamctl_install.sh BUILD_DIR
set -u
build=$1
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
failed=0
checks=0

check() {	# check DESCRIPTION COMMAND...
	local what=$1
	shift
	checks=$((checks + 1))
	if "$@"; then echo "PASS $what"; else echo "FAIL $what"; failed=$((failed + 1)); fi
}

DESTDIR=$root cmake --install "$build" --prefix /usr >/dev/null || { echo "FAIL install"; exit 1; }
bin=$root/usr/bin/ipamctl
page=$root/usr/share/man/man1/ipamctl.1
check "usr/bin/ipamctl is installed and runs" bash -c "'$bin' --help | grep -q '^usage: ipamctl'"
check "usr/share/man/man1/ipamctl.1 is installed" test -f "$page"

warnings=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
check "the man page renders without warnings" test -z "$warnings"
[ -z "$warnings" ] || echo "$warnings"

commands=$("$bin" --help | sed -n '/^commands:/,/^[^ ]/s/^  \([a-z-]*\).*/\1/p')
check "the binary lists its commands" test "$(echo "$commands" | wc -w)" -ge 14
for command in $commands; do
	check "the page has a section for $command" \
		grep -q "^\.SS ${command//-/\\\\-}\b" "$page"
	for option in $("$bin" "$command" --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
		check "the page names $command's option $option" \
			grep -q -- "${option//-/\\\\-}" "$page"
	done
done
for status in 0 1 2 3 4 5; do
	check "the page documents exit status $status" \
		bash -c "sed -n '/^\.SH EXIT STATUS/,/^\.SH /p' '$page' | grep -q '^\.B $status\$'"
done
check "the page names populate" grep -q '^\.B ipamctl populate' "$page"

echo "$((checks - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
