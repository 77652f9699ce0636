#!/bin/sh
# contrib/setup.sh — the one-time steps after "make install", as root:
#   the dkimkeyd system user (in the signer's group), the TSIG key,
#   and the owners and modes the units expect.
#
#   sh contrib/setup.sh [SIGNER_GROUP]      (default: opendkim)
#
# Safe to rerun: nothing that exists is replaced.
set -eu
GROUP=${1:-opendkim}
ETC=${SYSCONFDIR:-/etc}/dkimkeyd
STATE=${STATEDIR:-/var/lib/dkimkeyd}

if ! getent passwd dkimkeyd >/dev/null; then
	useradd --system --home-dir "$STATE" --no-create-home \
	    --shell /usr/sbin/nologin dkimkeyd
fi
if getent group "$GROUP" >/dev/null; then
	usermod -a -G "$GROUP" dkimkeyd
else
	echo "setup.sh: group $GROUP does not exist (install the signer first" \
	    "or name its group)" >&2
fi
install -d -o root -g dkimkeyd -m 0750 "$ETC" "$ETC/conf.d"
install -d -o dkimkeyd -g dkimkeyd -m 0750 "$STATE"
install -d -o dkimkeyd -g "$(getent group "$GROUP" >/dev/null && echo "$GROUP" || echo dkimkeyd)" \
    -m 0750 "$STATE/keys"
if [ ! -e "$ETC/update.key" ]; then
	umask 077
	tsig-keygen -a hmac-sha256 dkimkeyd >"$ETC/update.key"
	echo "setup.sh: add this key to your primary's allow-update:" >&2
	cat "$ETC/update.key" >&2
fi
chown root:dkimkeyd "$ETC/update.key" "$ETC/dkimkeyd.conf" 2>/dev/null || :
chmod 0640 "$ETC/update.key" "$ETC/dkimkeyd.conf" 2>/dev/null || :
if [ "$GROUP" = opendkim ] && [ -d /etc/opendkim ]; then
	# dkimkeyd rewrites the KeyTable and SigningTable there.
	chgrp opendkim /etc/opendkim && chmod g+w /etc/opendkim
fi
echo "setup.sh: done; edit $ETC/dkimkeyd.conf, then: dkimkeyd configtest" >&2
