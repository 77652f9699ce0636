#!/usr/bin/python3
"""make bench: probe many selectors on two local BIND servers with
`dkimkeyd check` and report the query rate, next to dnsperf against the
same servers and data when dnsperf is installed.

    /usr/bin/python3 tests/bench/run.py [DOMAINS [SELECTORS_PER_DOMAIN]]

Default: 5,000 domains x 2 watched selectors = 10,000 selectors, each
asked of 2 servers (plus one SOA question per domain and server).  Only
127.0.0.1 is used; every server started here is stopped by its PID.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

import harness  # noqa: E402

ZONE = "bench.test"
REC = ("v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")


class BenchBind(harness.Bind):
    def __init__(self, ndom, nsel):
        self.ndom, self.nsel = ndom, nsel
        super().__init__((ZONE,))

    def _zone_text(self, z):
        lines = [harness.Bind._zone_text(z)]
        for d in range(self.ndom):
            for s in range(self.nsel):
                lines.append('s%d._domainkey.d%d\tIN\tTXT\t"%s"\n' % (
                    s, d, REC))
        return "".join(lines)


def main(argv):
    ndom = int(argv[1]) if len(argv) > 1 else 5000
    nsel = int(argv[2]) if len(argv) > 2 else 2
    harness.exit_cleanly_on_signals()
    tmp = tempfile.mkdtemp(prefix="dkimkeyd-bench-")
    servers = []
    try:
        for _ in range(2):
            servers.append(BenchBind(ndom, nsel).start(deadline=120))
        addrs = " ".join(b.addr() for b in servers)
        for d in ("state", "keys"):
            os.makedirs(os.path.join(tmp, d), mode=0o700)
        for f in ("KeyTable", "SigningTable"):
            open(os.path.join(tmp, f), "w").close()
        sels = " ".join("s%d" % s for s in range(nsel))
        conf = ["[dkimkeyd]", "state_dir = %s/state" % tmp,
                "key_dir = %s/keys" % tmp, "",
                "[provider p]", "type = rfc2136",
                "server = %s" % servers[0].addr(), "zone = " + ZONE,
                "probe_servers = " + addrs, "timeout = 5s", "",
                "[signer s]", "type = opendkim",
                "key_table = %s/KeyTable" % tmp,
                "signing_table = %s/SigningTable" % tmp, ""]
        for d in range(ndom):
            conf += ["[domain d%d.%s]" % (d, ZONE), "provider = p",
                     "signer = s", "selectors = m1 m2",
                     "watch_selectors = " + sels, ""]
        path = os.path.join(tmp, "dkimkeyd.conf")
        with open(path, "w") as f:
            f.write("\n".join(conf))
        nq = ndom * nsel * 2
        t0 = time.monotonic()
        p = subprocess.run([harness.DKIMKEYD, "-c", path, "check"],
                           capture_output=True, text=True, timeout=600)
        dt = time.monotonic() - t0
        first = p.stdout.splitlines()[0] if p.stdout else ""
        # Watched selectors only and no keys: WARNING "no active key yet"
        # is expected; anything CRITICAL or UNKNOWN is a failed probe.
        ok = p.returncode in (0, 1) and "has no key record" not in \
            p.stdout and "no answer" not in p.stdout
        print("dkimkeyd check: %d selectors x 2 servers = %d TXT queries "
              "(+%d SOA) in %.2fs: %.0f selector-queries/s%s" % (
                  ndom * nsel, nq, ndom * 2, dt, nq / dt,
                  "" if ok else " (SOME FAILED)"))
        if not ok:
            print(first[:300], p.stderr[:300])
        dnsperf = shutil.which("dnsperf")
        if dnsperf is None:
            print("dnsperf: not installed (apt-get install dnsperf); no "
                  "reference rate")
        else:
            qf = os.path.join(tmp, "queries")
            with open(qf, "w") as f:
                for d in range(ndom):
                    for s in range(nsel):
                        f.write("s%d._domainkey.d%d.%s TXT\n" % (s, d, ZONE))
            rates = []
            for b in servers:
                out = subprocess.run(
                    [dnsperf, "-s", "127.0.0.1", "-p", str(b.port), "-d",
                     qf, "-n", "1"], capture_output=True, text=True,
                    timeout=600).stdout
                for line in out.splitlines():
                    if "Queries per second" in line:
                        rates.append(float(line.split()[-1]))
            if rates:
                print("dnsperf: %.0f queries/s per server (%s)" % (
                    sum(rates) / len(rates), ", ".join(
                        "%.0f" % r for r in rates)))
        otk = shutil.which("opendkim-testkey")
        if otk is not None:
            print("opendkim-testkey: asks the system resolver on port 53 "
                  "only, one selector per run; not pointed at the test "
                  "servers (high ports)")
        return 0 if ok else 1
    finally:
        for b in servers:
            b.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
