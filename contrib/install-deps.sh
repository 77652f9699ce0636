#!/bin/sh
# Install, on Debian, whatever dkimkeyd needs to build, test and demo that is
# not installed yet, or the packages named as arguments (`make bench` asks
# for dnsperf this way).  Idempotent: when everything is present it does
# nothing and prints nothing.  Not root: prints the apt-get command and
# stops.
set -eu

PKGS="gcc make pkg-config libldns-dev libcurl4-openssl-dev libssl-dev
libinih-dev libcmocka-dev bind9 bind9-utils bind9-dnsutils ldnsutils
python3 python3-dkim python3-nacl python3-dnspython knot knot-dnsutils opendkim
opendkim-tools openssl libpsl-dev publicsuffix rspamd exim4-daemon-heavy swaks
python3-aiosmtpd libjansson-dev pdns-server pdns-backend-sqlite3 faketime
miltertest systemd polkitd dbus-daemon util-linux libexpat1-dev postgresql libpq-dev time"
[ "$#" -gt 0 ] && PKGS="$*"

missing=
for p in $PKGS; do
	st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$st" = installed ] || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "dkimkeyd: missing Debian packages:$missing" >&2
	echo "run as root:  apt-get update && apt-get install -y --no-install-recommends$missing" >&2
	exit 1
fi

echo "dkimkeyd: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# The packaged services (named, knotd, opendkim, rspamd, exim4) are not wanted running: the
# tests and the demo start their own instances on loopback.  policy-rc.d
# keeps the maintainer scripts from starting them, only for this install.
prc=/usr/sbin/policy-rc.d
made_prc=
if [ ! -e "$prc" ]; then
	printf '#!/bin/sh\nexit 101\n' > "$prc"
	chmod 755 "$prc"
	made_prc=1
fi
trap '[ -n "$made_prc" ] && rm -f "$prc"' EXIT
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
