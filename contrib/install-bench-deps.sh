#!/bin/sh
# Install, on Debian, what `make bench` needs beyond contrib/install-deps.sh:
# dnsperf, the reference for the probe rate.  Idempotent: when everything
# is present it does nothing and prints nothing.  Not root: prints the
# apt-get command and stops.
set -eu

PKGS="dnsperf"

missing=
for p in $PKGS; do
	st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$st" = installed ] || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "dkimkeyd: missing Debian packages for make bench:$missing" >&2
	echo "run as root:  apt-get update && apt-get install -y --no-install-recommends$missing" >&2
	exit 1
fi

echo "dkimkeyd: installing for make bench:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt_ok=
for try in 1 2; do
	if apt-get install -y --no-install-recommends $missing >/dev/null 2>&1; then
		apt_ok=1; break
	fi
	apt-get update >/dev/null 2>&1 || true
done
if [ -z "$apt_ok" ]; then
	echo "dkimkeyd: apt-get install failed:$missing" >&2
	exit 1
fi
