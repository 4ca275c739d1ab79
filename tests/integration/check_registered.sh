#!/bin/sh
# Every test function of the Python end-to-end files (def test_...) is
# named in this folder's CMake files, so that ctest runs it: a test that
# is written but not registered passes nowhere while it looks done.
#   check_registered.sh INTEGRATION_DIR
set -eu
cd "$1"
status=0
for file in test_*.py; do
	for name in $(sed -n 's/^def \(test_[A-Za-z0-9_]*\)(.*/\1/p' "$file"); do
		if ! grep -qw "$name" CMakeLists.txt ./*.cmake; then
			echo "$file: $name is not registered with ctest" \
			    "(tests/integration/CMakeLists.txt)" >&2
			status=1
		fi
	done
done
exit $status
