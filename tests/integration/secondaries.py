"""A BIND primary with two BIND secondaries on 127.0.0.1 for the dkimkeyd
integration tests.

The primary serves the harness test zone with the TSIG update policy of
harness.Bind, sends NOTIFY at once (notify-delay 0) to both secondaries
only, and allows zone transfers.  Each secondary runs on its own port with
its own temporary directory, transfers the zone from the primary (IXFR
after the first AXFR) and keeps its copy in that directory, so that it can
be stopped and started again on the same port and come back with the zone
it had.  Secondaries learn of changes by NOTIFY and, after a restart, by
the SOA check BIND makes when it loads a secondary zone: nothing here asks
them to refresh.

Every server is stopped by its PID (harness.Bind.stop) in the test's
cleanup and at exit.
"""

import os

import harness
from harness import Bind, free_port


class Primary(Bind):
    """harness.Bind with NOTIFY to the given secondary ports and zone
    transfers allowed."""

    def __init__(self, notify_ports, zones=("example.test",), port=None):
        self.notify_ports = list(notify_ports)
        super().__init__(zones, port=port)

    def _conf_text(self):
        d = self.dir
        also = "".join("127.0.0.1 port %d; " % p for p in self.notify_ports)
        zones = "".join(
            'zone "{z}" {{\n'
            '\ttype primary;\n'
            '\tfile "{d}/{z}.zone";\n'
            '\tupdate-policy {{ grant {k} zonesub TXT; }};\n'
            '\tnotify explicit;\n'
            '\talso-notify {{ {also}}};\n'
            '\tallow-transfer {{ any; }};\n'
            '}};\n'.format(z=z, d=d, k=self.keyname, also=also)
            for z in self.zones)
        return (
            'options {{\n'
            '\tdirectory "{d}";\n'
            '\tpid-file "{d}/named.pid";\n'
            '\tlisten-on port {p} {{ 127.0.0.1; }};\n'
            '\tlisten-on-v6 {{ none; }};\n'
            '\trecursion no;\n'
            '\tnotify-delay 0;\n'
            '\tixfr-from-differences yes;\n'
            '\tdnssec-validation no;\n'
            '\tsession-keyfile "{d}/session.key";\n'
            '\tkey-directory "{d}";\n'
            '\tmanaged-keys-directory "{d}";\n'
            '}};\n'
            'controls {{ }};\n'
            'include "{d}/tsig.key";\n'
            '{zones}'
        ).format(d=d, p=self.port, zones=zones)


class Secondary(Bind):
    """A BIND secondary of primary's zones on its own port.  Updates
    through it are not possible (no key, no update policy); its query
    helpers (query_txt, txt_rrset) read its own copy of the zone."""

    def __init__(self, primary, port=None):
        self.primary_port = primary.port
        super().__init__(primary.zones, port=port)
        # The zone comes from the primary by transfer, never from a file
        # written here.
        for z in self.zones:
            os.unlink(os.path.join(self.dir, z + ".zone"))

    def _conf_text(self):
        d = self.dir
        zones = "".join(
            'zone "{z}" {{\n'
            '\ttype secondary;\n'
            '\tprimaries {{ 127.0.0.1 port {pp}; }};\n'
            '\tfile "{d}/{z}.sec";\n'
            '\tmasterfile-format text;\n'
            '}};\n'.format(z=z, d=d, pp=self.primary_port)
            for z in self.zones)
        return (
            'options {{\n'
            '\tdirectory "{d}";\n'
            '\tpid-file "{d}/named.pid";\n'
            '\tlisten-on port {p} {{ 127.0.0.1; }};\n'
            '\tlisten-on-v6 {{ none; }};\n'
            '\trecursion no;\n'
            '\tnotify no;\n'
            '\trequest-ixfr yes;\n'
            # After a restart BIND checks a secondary zone's SOA within
            # its retry interval (600s in the test zone), scaled down to
            # at most 2s here: that check, not anyone asking, is what
            # brings a stopped secondary up to date again.
            '\tmin-retry-time 1;\n'
            '\tmax-retry-time 2;\n'
            '\tallow-transfer {{ none; }};\n'
            '\tdnssec-validation no;\n'
            '\tsession-keyfile "{d}/session.key";\n'
            '\tkey-directory "{d}";\n'
            '\tmanaged-keys-directory "{d}";\n'
            '}};\n'
            'controls {{ }};\n'
            '{zones}'
        ).format(d=d, p=self.port, zones=zones)

    def serial(self, zone=None):
        r = self.query(zone or self.zones[0], "SOA", timeout=2)
        return r.answer[0][0].serial if r.answer else None


class Cluster:
    """A started primary and two started secondaries (self.secondaries
    [0] and [1]); all three stop when env closes, and at exit.

    notify_both=False leaves the second secondary out of the primary's
    also-notify list: like a secondary whose NOTIFY was lost, it keeps
    serving the zone it has (its SOA refresh, 3600s, does not come during
    a test) until it is restarted."""

    def __init__(self, env, zones=("example.test",), notify_both=True):
        self.env = env
        self.tmp = env.tmp
        self.primary = None
        self.secondaries = []
        close = env.close

        def close_all():
            try:
                self.cleanup()
            finally:
                close()
        env.close = close_all
        ports = [free_port(), free_port()]
        while ports[0] == ports[1]:
            ports[1] = free_port()
        self.primary = Primary(ports if notify_both else ports[:1],
                               zones).start()
        for p in ports:
            self.secondaries.append(Secondary(self.primary, port=p))
        for s in self.secondaries:
            s.start()
        # rotate_and_verify reads the record from the primary.
        self.bind = self.primary

    def servers(self):
        return [self.primary] + self.secondaries

    def log(self, msg):
        self.env.log(msg)

    def cleanup(self):
        for s in self.secondaries:
            s.cleanup()
        if self.primary is not None:
            self.primary.cleanup()

    def config(self, probe=None, **kw):
        """write_config for the primary, then probe_servers = the servers
        in probe, all three by default (write_config names only the
        update server)."""
        s = harness.write_config(self.tmp, self.primary, **kw)
        self.set_probe(s, probe)
        return s

    def set_probe(self, s, probe=None):
        """Rewrite the probe_servers line of s's configuration: the
        servers in probe, all three by default."""
        with open(s.conf) as f:
            lines = f.read().splitlines()
        want = "probe_servers = " + " ".join(
            b.addr() for b in (probe or self.servers()))
        out = []
        for line in lines:
            if line.startswith("probe_servers ="):
                line = want
            out.append(line)
        if want not in out:
            raise harness.HarnessError("write_config wrote no "
                                       "probe_servers line to replace")
        Bind._write(s.conf, "\n".join(out) + "\n", 0o644)
