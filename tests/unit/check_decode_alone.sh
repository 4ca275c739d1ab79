#!/bin/sh
# The decoder library is pure: its archive refers to no librdkafka (rd_kafka_)
# or libpq (PQ, pg_, lo_) symbol and to no libevent (event_, evbuffer_) one,
# and a program linked with it alone needs none of those libraries at run
# time and decodes a message.
#   check_decode_alone.sh ARCHIVE PROGRAM
set -eu
archive=$1
program=$2
status=0

# Undefined symbols of the archive that belong to a library it must not use.
bad=$(nm -u "$archive" | awk '$1 == "U" { print $2 }' |
	grep -E '^(rd_kafka_|rd_|PQ|pg_|lo_|event_|evbuffer_|evutil_)' | sort -u || true)
if [ -n "$bad" ]; then
	echo "FAIL: $archive refers to symbols of librdkafka, libpq or libevent:" >&2
	echo "$bad" >&2
	status=1
fi
# The check above must see the archive's own references at all.
if ! nm -u "$archive" | grep -q 'json_'; then
	echo "FAIL: nm shows no jansson reference in $archive: the check is blind" >&2
	status=1
fi

needed=$(readelf -d "$program" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
for lib in $needed; do
	case $lib in
	librdkafka*|libpq*|libevent*)
		echo "FAIL: $program needs $lib" >&2
		status=1
		;;
	esac
done

if ! "$program"; then
	echo "FAIL: $program did not decode its message" >&2
	status=1
fi
[ $status -eq 0 ] && echo "ok: $(basename "$archive") needs neither librdkafka nor libpq ($(echo $needed))"
exit $status
