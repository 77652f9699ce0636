"""A throwaway PowerDNS Authoritative server on 127.0.0.1 for the dkimkeyd
integration tests.

pdns_server runs in the foreground from a temporary directory: sqlite3
backend (schema from the Debian package), DNS on a free port, the HTTP API
on another free port, an API key.  `security-poll-suffix=` is empty, so
that pdns sends no security-poll query off the machine at start.  The
packet and query caches are off, so that a change made through the API is
served at once.  Zones are created through the API with the harness's
shape: SOA TTL 2 and minimum 1 (pdns's default negative TTL is 3600), NS
ns1 with ns1 A 127.0.0.1, the foreign record other._domainkey.

Pdns offers the query helpers of harness.Bind (query, txt_rrset,
query_txt, zone_of, addr), so that dkim_roundtrip and rotate_and_verify
work with it unchanged.  Stopped by its PID.
"""

import json
import os
import secrets
import sqlite3
import subprocess
import tempfile
import urllib.error
import urllib.request

import harness
from harness import (Bind, FOREIGN_RECORD, FOREIGN_SELECTOR, HarnessError,
                     free_port, wait_until)

PDNS_SERVER = os.environ.get("PDNS_SERVER", "/usr/sbin/pdns_server")
SCHEMA = "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql"


def quote_txt(value):
    """A TXT value as pdns wants it: quoted strings of <= 255 octets."""
    return " ".join('"%s"' % value[i:i + 255].replace("\\", "\\\\")
                    .replace('"', '\\"')
                    for i in range(0, len(value), 255)) or '""'


class Pdns(Bind):
    """pdns_server on 127.0.0.1 (DNS port, API port) with a sqlite db."""

    def __init__(self, zones=("example.test",)):
        # Bind.__init__ is not called: it writes a named.conf.
        self.zones = [z.rstrip(".").lower() for z in zones]
        self.port = free_port()
        self.api_port = free_port()
        self.dir = tempfile.mkdtemp(prefix="dkimkeyd-pdns-")
        self.proc = None
        self.log_path = os.path.join(self.dir, "pdns.log")
        self._log = None
        self.api_key = "pdns-test-" + secrets.token_hex(16)
        self.db = os.path.join(self.dir, "pdns.sqlite3")
        with open(SCHEMA) as f:
            schema = f.read()
        con = sqlite3.connect(self.db)
        con.executescript(schema)
        con.close()
        self._write(os.path.join(self.dir, "pdns.conf"), self._conf_text(),
                    0o600)

    def _conf_text(self):
        return "\n".join([
            "launch=gsqlite3",
            "gsqlite3-database=%s" % self.db,
            "local-address=127.0.0.1",
            "local-port=%d" % self.port,
            "api=yes",
            "api-key=%s" % self.api_key,
            "webserver=yes",
            "webserver-address=127.0.0.1",
            "webserver-port=%d" % self.api_port,
            "webserver-allow-from=127.0.0.0/8",
            "guardian=no",
            "daemon=no",
            "security-poll-suffix=",
            "socket-dir=%s" % self.dir,
            "disable-syslog=yes",
            "loglevel=4",
            "cache-ttl=0",
            "query-cache-ttl=0",
            "negquery-cache-ttl=0",
            "zone-cache-refresh-interval=0",
            "default-soa-content=ns1.@ hostmaster.@ 0 3600 600 86400 1",
            "",
        ])

    def api_url(self):
        return "http://127.0.0.1:%d" % self.api_port

    # -- process control ------------------------------------------------

    def start(self, deadline=20):
        if self.proc is not None:
            raise HarnessError("pdns_server already running")
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [PDNS_SERVER, "--config-dir=%s" % self.dir],
            stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, cwd=self.dir,
            preexec_fn=harness._die_with_parent)
        harness._live.add(self)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("pdns_server exited with status %s:"
                                     "\n%s" % (self.proc.returncode,
                                               self.log_tail()))
            self.api("GET", "/api/v1/servers/localhost")
            return True

        try:
            wait_until(ready, deadline, "pdns API on port %d" %
                       self.api_port)
            for z in self.zones:
                if self.api("GET", "/api/v1/servers/localhost/zones/%s." %
                            z, ok=(200, 404))[0] == 404:
                    self.create_zone(z)
            wait_until(lambda: self.query(self.zones[0], "SOA").answer,
                       deadline, "pdns to serve %s" % self.zones[0])
        except HarnessError as e:
            self.stop()
            raise HarnessError("%s\n%s" % (e, self.log_tail()))
        return self

    def log_tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return "(no pdns log)"
        return "pdns log (last %d lines):\n%s" % (n, "\n".join(lines[-n:]))

    # -- the API ------------------------------------------------------------

    def api(self, method, path, body=None, ok=(200, 201, 204), key=None):
        """(status, parsed JSON or None)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.api_url() + path, data=data,
                                     method=method)
        req.add_header("X-API-Key", key or self.api_key)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}))
        try:
            with opener.open(req, timeout=5) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        if status not in ok:
            raise HarnessError("pdns API %s %s: HTTP %d: %r" % (
                method, path, status, raw[:300]))
        try:
            return status, (json.loads(raw) if raw else None)
        except ValueError:
            return status, raw

    def create_zone(self, z):
        rr = lambda name, t, ttl, *c: {  # noqa: E731
            "name": name, "type": t, "ttl": ttl,
            "records": [{"content": x, "disabled": False} for x in c]}
        self.api("POST", "/api/v1/servers/localhost/zones", {
            "name": z + ".", "kind": "Native", "nameservers": [],
            "rrsets": [
                rr(z + ".", "SOA", 2,
                   "ns1.%s. hostmaster.%s. 1 3600 600 86400 1" % (z, z)),
                rr(z + ".", "NS", 2, "ns1.%s." % z),
                rr("ns1.%s." % z, "A", 2, "127.0.0.1"),
                rr("%s._domainkey.%s." % (FOREIGN_SELECTOR, z), "TXT", 2,
                   quote_txt(FOREIGN_RECORD)),
            ]})

    def rrset(self, name, rtype="TXT"):
        """The API's view of one RRset: (ttl, [content]) or (None, [])."""
        name = name.rstrip(".") + "."
        _, zone = self.api("GET", "/api/v1/servers/localhost/zones/%s." %
                           self.zone_of(name))
        for rs in zone["rrsets"]:
            if rs["name"] == name and rs["type"] == rtype:
                return rs["ttl"], [r["content"] for r in rs["records"]]
        return None, []

    def set_txt(self, name, value, ttl=2):
        """Write a TXT record behind dkimkeyd's back (through the API)."""
        name = name.rstrip(".") + "."
        self.api("PATCH", "/api/v1/servers/localhost/zones/%s." %
                 self.zone_of(name), {"rrsets": [{
                     "name": name, "type": "TXT", "ttl": ttl,
                     "changetype": "REPLACE",
                     "records": [{"content": quote_txt(value),
                                  "disabled": False}]}]})

    def delete_txt(self, name):
        name = name.rstrip(".") + "."
        self.api("PATCH", "/api/v1/servers/localhost/zones/%s." %
                 self.zone_of(name), {"rrsets": [{
                     "name": name, "type": "TXT", "changetype": "DELETE"}]})


def write_config(env, pdns, token=None, domain="example.test", zone=True,
                 extra_provider_lines=(), **kw):
    """harness.write_config, then the provider section replaced by a
    powerdns one for pdns (token_file mode 0600).  Returns the Setup."""
    s = harness.write_config(env.tmp, env.bind, domain=domain, **kw)
    s.token_file = os.path.join(env.tmp, "pdns.token")
    Bind._write(s.token_file, (token or pdns.api_key) + "\n", 0o600)
    with open(s.conf) as f:
        lines = f.read().splitlines()
    i = lines.index("[provider primary]")
    j = lines.index("", i)
    prov = ["[provider primary]",
            "type = powerdns",
            "api_url = %s" % pdns.api_url(),
            "token_file = %s" % s.token_file,
            "probe_servers = %s" % pdns.addr(),
            "timeout = 3s"]
    if zone:
        prov.append("zone = %s" % pdns.zone_of(domain))
    prov += list(extra_provider_lines)
    lines[i:j] = prov
    Bind._write(s.conf, "\n".join(lines) + "\n", 0o644)
    return s


class PdnsEnv:
    """What rotate_and_verify needs of an Env, with pdns as the server."""

    def __init__(self, env, pdns):
        self.tmp = env.tmp
        self.bind = pdns
        self.log = env.log


def start(env, zones=("example.test",)):
    """A started Pdns serving zones, stopped with the test's env."""
    p = Pdns(zones).start()
    close = env.close

    def close_both():
        try:
            p.cleanup()
        finally:
            close()
    env.close = close_both
    return p
