"""A throwaway Knot DNS on 127.0.0.1 for the dkimkeyd integration tests.

Knot serves the same test zone as the BIND harness (SOA TTL 2, negative
TTL 1, NS ns1 with ns1 A 127.0.0.1, the foreign record other._domainkey)
and accepts TXT updates signed with one TSIG key through an ACL.  It runs
in the foreground from a temporary directory holding its configuration,
zone file, journal, timers and control socket, and is stopped by its PID.

Knot offers the query and update helpers of harness.Bind, so that
write_config, dkim_roundtrip and rotate_and_verify work with it unchanged.
"""

import os
import re
import shutil
import subprocess
import tempfile

import dns.exception
import dns.rcode

import harness
from harness import (Bind, HarnessError, TSIG_KEYGEN, TSIG_KEYNAME,
                     free_port, wait_until)

KNOTD = os.environ.get("KNOTD", "/usr/sbin/knotd")


class Knot(Bind):
    """knotd on 127.0.0.1:port serving zones from a temp dir, with the
    TSIG key allowed to update TXT records anywhere in them."""

    def __init__(self, zones=("example.test",), keyname=TSIG_KEYNAME,
                 algorithm="hmac-sha256", port=None):
        # Bind.__init__ is not called: it writes a named.conf.
        self.zones = [z.rstrip(".").lower() for z in zones]
        self.keyname = keyname
        self.algorithm = algorithm
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="dkimkeyd-knot-")
        self.proc = None
        self.log_path = os.path.join(self.dir, "knotd.log")
        self.key_path = os.path.join(self.dir, "tsig.key")
        self.conf_path = os.path.join(self.dir, "knot.conf")
        self._log = None
        # The BIND key-file format is what dkimkeyd reads (tsig_key_file);
        # Knot gets the same secret in its own key section.
        out = subprocess.run([TSIG_KEYGEN, "-a", algorithm, keyname],
                             check=True, capture_output=True, text=True,
                             timeout=30).stdout
        m = re.search(r'secret\s+"([^"]+)"', out)
        if not m:
            raise HarnessError("cannot parse tsig-keygen output: %r" % out)
        self.secret = m.group(1)
        self.key_text = out
        self._write(self.key_path, out, 0o600)
        for z in self.zones:
            self._write(os.path.join(self.dir, z + ".zone"),
                        self._zone_text(z), 0o644)
        self._write(self.conf_path, self._conf_text(), 0o600)

    def _conf_text(self):
        d = self.dir
        zones = "".join(
            "  - domain: {z}\n"
            "    file: \"{d}/{z}.zone\"\n"
            "    acl: dkimkeyd-update\n".format(z=z, d=d)
            for z in self.zones)
        # zonefile-sync -1: updates live in the journal only, the zone
        # file written by the harness stays as it is.
        return (
            "server:\n"
            "  rundir: \"{d}\"\n"
            "  pidfile: \"{d}/knot.pid\"\n"
            "  listen: 127.0.0.1@{p}\n"
            "  udp-workers: 1\n"
            "  tcp-workers: 1\n"
            "  background-workers: 1\n"
            "\n"
            "log:\n"
            "  - target: stderr\n"
            "    any: info\n"
            "\n"
            "database:\n"
            "  storage: \"{d}\"\n"
            "  journal-db: \"{d}/journal\"\n"
            "  kasp-db: \"{d}/keys\"\n"
            "  timer-db: \"{d}/timers\"\n"
            "  catalog-db: \"{d}/catalog\"\n"
            "\n"
            "key:\n"
            "  - id: {k}\n"
            "    algorithm: {a}\n"
            "    secret: {s}\n"
            "\n"
            "acl:\n"
            "  - id: dkimkeyd-update\n"
            "    key: {k}\n"
            "    action: update\n"
            "    update-type: TXT\n"
            "\n"
            "template:\n"
            "  - id: default\n"
            "    storage: \"{d}\"\n"
            "    zonefile-sync: -1\n"
            "    zonefile-load: whole\n"
            "    journal-content: changes\n"
            "    semantic-checks: on\n"
            "\n"
            "zone:\n"
            "{zones}"
        ).format(d=d, p=self.port, k=self.keyname, a=self.algorithm,
                 s=self.secret, zones=zones)

    # -- process control ------------------------------------------------

    def start(self, deadline=20):
        if self.proc is not None:
            raise HarnessError("knotd already running")
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [KNOTD, "-c", self.conf_path],
            stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, cwd=self.dir,
            preexec_fn=harness._die_with_parent)
        harness._live.add(self)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("knotd exited with status %s:\n%s" % (
                    self.proc.returncode, self.log_tail()))
            try:
                r = self.query(self.zones[0], "SOA", tcp=False, timeout=0.5)
            except (dns.exception.Timeout, OSError):
                return False
            return r.rcode() == dns.rcode.NOERROR and len(r.answer) > 0

        try:
            wait_until(ready, deadline, "knotd to serve %s on port %d" % (
                self.zones[0], self.port))
        except HarnessError as e:
            self.stop()
            raise HarnessError("%s\n%s" % (e, self.log_tail()))
        return self

    def log_tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return "(no knotd log)"
        return "knotd log (last %d lines):\n%s" % (n, "\n".join(lines[-n:]))

    def cleanup(self):
        self.stop()
        if not harness.KEEP:
            shutil.rmtree(self.dir, ignore_errors=True)


class KnotEnv:
    """The part of harness.Env that rotate_and_verify uses, with Knot as
    the server: .bind, .tmp and .log."""

    def __init__(self, env, knot):
        self.env = env
        self.bind = knot
        self.tmp = env.tmp

    def log(self, msg):
        self.env.log(msg)

    def config(self, **kw):
        return harness.write_config(self.tmp, self.bind, **kw)


def started_knot(env, zones=("example.test",)):
    """A started Knot for one test, stopped and removed when env closes
    (wrapping env.close) and at exit in any case."""
    k = Knot(zones)
    close = env.close

    def close_both():
        try:
            k.cleanup()
        finally:
            close()
    env.close = close_both
    try:
        k.start()
    except BaseException:
        k.cleanup()
        raise
    return k
