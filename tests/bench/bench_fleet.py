"""Several MTA hosts on the PostgreSQL backend: a rotation with agents
against the single-host rotation, and lease renewal at 10,000 domains.

    /usr/bin/python3 tests/bench/bench_fleet.py [--quick]

1. A rotation of N domains (1,000; --quick 100), RSA-2048, shared scope,
   `run --once` repeated until every domain's key is active, with
   backend = postgresql (a real PostgreSQL on loopback, started and
   stopped by PID) and BIND: once with the signer on the scheduler's own
   host, once with hosts = mx1 mx2 mx3 and three `dkimkeyd agent`
   processes (each its own OpenDKIM tables and key directory).  Both in
   this run, the single-host one first and last (half of its domains
   each, against the load's drift).  Printed: the ratio (target <= 1.5).
2. Lease renewal: a `dkimkeyd run` daemon holding 10,000 leases (1,000
   with --quick), the statements its connection sends while idle,
   counted in PostgreSQL's own log (log_statement = all for its role):
   one UPDATE per renewal extends every lease, and the window's
   statements stay under a tenth of the leases (not one per domain).
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import bench_rotation
import common
from common import harness, log

from pg import Postgres  # tests/integration, on common's path

ZONE = "fleet.test"
HOSTS = ("mx1", "mx2", "mx3")


def domain_conf(tmp, bind, pg, domains, hosts=None, key_dir=None,
                name="conf", lease_time="60s", rotate_every="1m"):
    """A configuration for domains on pg; hosts: the MTA hosts (then a
    kek_file, shared in tmp).  Returns its path."""
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    state, keys = common.private_dirs(d)
    tsig = os.path.join(d, "update.key")
    common.write_text(tsig, bind.key_text, 0o600)
    kt, st = os.path.join(d, "KeyTable"), os.path.join(d, "SigningTable")
    for p in (kt, st):
        if not os.path.exists(p):
            common.write_text(p, "")
    ci = os.path.join(tmp, "conninfo")
    if not os.path.exists(ci):
        pg.write_conninfo(ci)
    lines = ["[dkimkeyd]", "state_dir = " + state,
             "key_dir = " + (key_dir or keys), "backend = postgresql",
             "conninfo_file = " + ci, "lease_time = " + lease_time]
    if hosts:
        kek = os.path.join(tmp, "kek")
        if not os.path.exists(kek):
            r = subprocess.run(["openssl", "rand", "-base64", "32"],
                               capture_output=True, text=True, check=True)
            common.write_text(kek, r.stdout, 0o600)
        lines += ["kek_file = " + kek, "agent_timeout = 10m"]
    lines += ["", "[provider dns]", "type = rfc2136",
              "server = " + bind.addr(), "tsig_key_file = " + tsig,
              "zone = " + ZONE, "probe_servers = " + bind.addr(),
              "timeout = 5s", "", "[signer opendkim]", "type = opendkim",
              "key_table = " + kt, "signing_table = " + st, ""]
    for dom in domains:
        lines += ["[domain %s]" % dom, "provider = dns",
                  "signer = opendkim", "selectors = mail1 mail2",
                  "algorithm = rsa-2048", "ttl = 1s", "safety_margin = 0s",
                  "propagation_timeout = 60s",
                  "rotate_every = " + rotate_every]
        if hosts:
            lines.append("hosts = " + " ".join(hosts))
        lines.append("")
    path = os.path.join(d, "dkimkeyd.conf")
    common.write_text(path, "\n".join(lines))
    return path


def rotate_all(conf, ndom, deadline):
    """`run --once` until ndom domains are active: (seconds, runs, ok,
    last error)."""
    r = bench_rotation.rotate_all(conf, ndom, deadline)
    return r["seconds"], r["runs"], r["ok"], \
        r["errors"][-1] if r["errors"] else ""


def start_agent(conf, host, tmp):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("DKIMKEYD_") and k != "NOTIFY_SOCKET"}
    out = open(os.path.join(tmp, "agent-%s.log" % host), "wb")
    try:
        return subprocess.Popen([common.DKIMKEYD, "-c", conf, "agent",
                                 "--host", host], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT,
                                env=env)
    finally:
        out.close()


def rotation(table, tmp, bind, pg, n):
    half = n // 2
    single = ["s%d.%s" % (i, ZONE) for i in range(n)]
    fleet = ["f%d.%s" % (i, ZONE) for i in range(n)]
    deadline = max(300, n * 3)
    conf_a = domain_conf(tmp, bind, pg, single[:half], name="single-a")
    conf_b = domain_conf(tmp, bind, pg, single[half:], name="single-b")
    conf_f = domain_conf(tmp, bind, pg, fleet, hosts=HOSTS, name="sched")
    agents = []
    for h in HOSTS:
        hd = os.path.join(tmp, h)
        os.makedirs(hd, exist_ok=True)
        kd = os.path.join(hd, "keys")
        os.makedirs(kd, mode=0o700, exist_ok=True)
        hc = domain_conf(tmp, bind, pg, fleet, hosts=HOSTS, key_dir=kd,
                         name=h)
        agents.append((h, hc, hd))
    code, _, err, _ = common.dkimkeyd(conf_f, "db", "init")
    if code != 0:
        raise harness.HarnessError("db init: %d %s" % (code, err))
    procs = []
    try:
        for h, hc, hd in agents:
            procs.append(start_agent(hc, h, hd))
        log("single host: rotating %d domains (first half)" % half)
        s1, r1, ok1, e1 = rotate_all(conf_a, half, deadline)
        log("3 agents: rotating %d domains" % n)
        f, rf, okf, ef = rotate_all(conf_f, n, deadline * 2)
        log("single host: rotating %d domains (second half)" % (n - half))
        s2, r2, ok2, e2 = rotate_all(conf_b, n - half, deadline)
        for p in procs:
            if p.poll() is not None:
                raise harness.HarnessError("an agent exited with %s" %
                                           p.returncode)
    finally:
        for p in procs:
            common.stop_process(p)
    label = "rotation of %d domains, 3 agents / single host" % n
    if not (ok1 and ok2 and okf):
        table.add(label, "n/a", "", "", "<=1.5", ok=False)
        table.note("%s: did not finish: %s" % (label, "; ".join(
            e for e in (e1, ef, e2) if e)))
        return
    # Every host serves every domain: its KeyTable names all of them.
    for h, hc, hd in agents:
        with open(os.path.join(tmp, h, "KeyTable")) as fh:
            got = sum(1 for line in fh if line.strip() and
                      not line.startswith("#"))
        if got != n:
            table.add(label, "n/a", "", "", "<=1.5", ok=False)
            table.note("%s: %s's KeyTable has %d entries, not %d" % (
                label, h, got, n))
            return
    ref = s1 + s2
    ratio = f / ref
    table.add(label, "%.1fs (%d runs)" % (f, rf),
              "single host %.1fs (%d+%d runs)" % (ref, r1, r2),
              "%.2f" % ratio, "<=1.5", ok=ratio <= 1.5)
    table.note("fleet: rsa-2048, shared scope (keys sealed under the "
               "KEK), run --once repeated until active, PostgreSQL and "
               "BIND on loopback; the single-host rotation ran half "
               "before and half after")


STMT = re.compile(rb"\[(\d+)\] (?:\S+ )?LOG:\s+(?:statement|execute "
                  rb"[^:]*):\s*(.*)")


def renewal(table, tmp, bind, pg, n):
    """A daemon holding n leases: statements per renewal while idle."""
    doms = ["r%d.%s" % (i, ZONE) for i in range(n)]
    lease = 3
    # One domain on a host without an agent: the daemon leases it and
    # keeps the lease while the rotation waits for the host.
    conf = domain_conf(tmp, bind, pg, doms[:1], hosts=("mx9",),
                       name="renew", lease_time="%ds" % lease)
    pg.psql("ALTER ROLE dkimkeyd SET log_statement = 'all'")
    notify = common.Notify(tmp)
    env = dict(os.environ, NOTIFY_SOCKET=notify.path)
    out = open(os.path.join(tmp, "renew.log"), "wb")
    p = subprocess.Popen([common.DKIMKEYD, "-c", conf, "run"],
                         stdin=subprocess.DEVNULL, stdout=out,
                         stderr=subprocess.STDOUT, env=env)
    out.close()
    try:
        notify.wait_for("READY=1", 60, p)

        def holder():
            rows = pg.psql("SELECT holder FROM dk_lease WHERE domain = "
                           "'%s' AND expires_at > now()" % doms[0])
            return rows[0][0] if rows else None
        harness.wait_until(lambda: holder() is not None, 60,
                           "the daemon's lease on %s" % doms[0])
        h = holder()
        # The other domains' leases, as if the daemon had taken them.
        pg.psql("INSERT INTO dk_lease (domain, holder, token, acquired_at, "
                "expires_at) SELECT 'r' || i || '.%s', '%s', "
                "nextval('dk_lease_token'), now(), now() + interval "
                "'%d seconds' FROM generate_series(1, %d) i" % (
                    ZONE, h.replace("'", "''"), lease, n - 1))
        off = os.path.getsize(pg.log_path)
        window = 4 * lease
        time.sleep(window)
        held = pg.psql("SELECT count(*) FROM dk_lease WHERE holder = '%s' "
                       "AND expires_at > now()" % h.replace("'", "''"))
        held = int(held[0][0])
        if p.poll() is not None:
            raise harness.HarnessError("the daemon exited with %s" %
                                       p.returncode)
    finally:
        common.stop_process(p)
        notify.close()
        pg.psql("ALTER ROLE dkimkeyd RESET log_statement")
    # The daemon's backend: the one that sent the renewals.
    stmts = {}
    renews = {}
    with open(pg.log_path, "rb") as f:
        f.seek(off)
        for line in f:
            m = STMT.search(line)
            if m is None:
                continue
            pid = m.group(1)
            stmts[pid] = stmts.get(pid, 0) + 1
            if b"UPDATE dk_lease SET expires_at" in m.group(2):
                renews[pid] = renews.get(pid, 0) + 1
    label = "lease renewal, %dk leases: statements per renewal" % (n // 1000)
    if not renews:
        table.add(label, "n/a", "", "", "< %d in all" % (n // 10), ok=False)
        table.note("renewal: no renewal in PostgreSQL's log over %ds" %
                   window)
        return
    pid = max(renews, key=lambda k: renews[k])
    per = stmts[pid] / renews[pid]
    # Bounded: one UPDATE per renewal extends every lease, and all the
    # daemon sent in the window (its waiting domain's steps included) is
    # far below one statement per lease.
    ok = held >= n and renews[pid] >= window // lease - 1 and \
        stmts[pid] < n / 10
    table.add(label, "1 UPDATE for %d leases; %.1f in all (%d "
              "statements, %d renewals in %ds)" % (
                  held, per, stmts[pid], renews[pid], window),
              "%d leases" % n, "", "< %d in all" % (n // 10), ok=ok)
    table.note("renewal: a `run` daemon with lease_time = %ds holding %d "
               "leases; every statement of its connection counted in "
               "PostgreSQL's log (log_statement = all), including the "
               "steps of the one domain it is rotating" % (lease, n))


def run(table, quick=False):
    n_rot = 100 if quick else 1000
    n_lease = 1000 if quick else 10000
    tmp = tempfile.mkdtemp(prefix="dkimkeyd-bench-fleet-")
    pg = bind = None
    try:
        bind = common.BenchBind({ZONE: ""}).start(deadline=120)
        pg = Postgres().start().create_db()
        rotation(table, tmp, bind, pg, n_rot)
        renewal(table, tmp, bind, pg, n_lease)
    finally:
        if pg is not None:
            pg.cleanup()
        if bind is not None:
            bind.cleanup()
        if not harness.KEEP:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv):
    table = common.Table()
    run(table, quick="--quick" in argv)
    sys.stdout.write(table.render())
    return 0


if __name__ == "__main__":
    harness.exit_cleanly_on_signals()
    sys.exit(main(sys.argv))
