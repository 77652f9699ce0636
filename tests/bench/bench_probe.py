"""Probe rate: `dkimkeyd check` over many watched selectors on two local
BIND servers, next to dnsperf against the same servers and data, and
next to opendkim-testkey over a sample of the same selectors.

    /usr/bin/python3 tests/bench/bench_probe.py [--quick]

Full size: 5,000 domains x 2 watched selectors = 10,000 selectors, each
asked of 2 servers, plus one SOA question per domain and server: 30,000
questions in all, each counted in the probe rate.  The OpenDKIM tables
hold an entry for every domain, so that the run reads back the signer
configuration of all of them too.

The probe rate is measured over check's probe round (as dnsperf's rate
is over its sending, not its start), median of 5 runs; the rate of the
TXT questions alone and of the whole process from start to exit are
reported beside it.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import common
from common import harness, log

ZONE = "bench.test"
REC = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="


def zone_text(ndom, nsel):
    return "".join('s%d._domainkey.d%d\tIN\tTXT\t"%s"\n' % (s, d, REC)
                   for d in range(ndom) for s in range(nsel))


def write_conf(tmp, servers, ndom, nsel, discovery=False, name="dkimkeyd"):
    """The configuration of ndom domains probed on servers; discovery:
    the servers are found through servers[0] as resolver (SOA, NS, A and
    AAAA of every domain) instead of listed."""
    state, keys = common.private_dirs(tmp)
    # An entry per domain, all naming one key file: check reads key
    # files only with --canary, and compares the names with its state.
    key = os.path.join(tmp, "signer.pem")
    common.write_text(key, "", 0o600)
    kt, st = [], []
    for d in range(ndom):
        dom = "d%d.%s" % (d, ZONE)
        kt.append("m1._domainkey.%s %s:m1:%s\n" % (dom, dom, key))
        st.append("*@%s m1._domainkey.%s\n" % (dom, dom))
    common.write_text(os.path.join(tmp, "KeyTable"), "".join(kt))
    common.write_text(os.path.join(tmp, "SigningTable"), "".join(st))
    sels = " ".join("s%d" % s for s in range(nsel))
    conf = ["[dkimkeyd]", "state_dir = " + state, "key_dir = " + keys, "",
            "[provider p]", "type = rfc2136",
            "server = " + servers[0].addr()] + (
                ["resolver = " + servers[0].addr(),
                 "probe_port = %d" % servers[0].port] if discovery else
                ["zone = " + ZONE,
                 "probe_servers = " + " ".join(b.addr() for b in servers)]
            ) + ["timeout = 5s", "",
            "[signer s]", "type = opendkim",
            "key_table = %s/KeyTable" % tmp,
            "signing_table = %s/SigningTable" % tmp, ""]
    for d in range(ndom):
        conf += ["[domain d%d.%s]" % (d, ZONE), "provider = p",
                 "signer = s", "selectors = m1 m2",
                 "watch_selectors = " + sels, ""]
    path = os.path.join(tmp, name + ".conf")
    common.write_text(path, "\n".join(conf))
    return path


def dnsperf_rate(dnsperf, port, qf, seconds):
    """Queries per second dnsperf reaches against 127.0.0.1:port, or
    None; also the count of lost queries."""
    out = subprocess.run([dnsperf, "-s", "127.0.0.1", "-p", str(port),
                          "-d", qf, "-l", str(seconds)],
                         capture_output=True, text=True,
                         timeout=seconds + 60).stdout
    rate = lost = None
    for line in out.splitlines():
        if "Queries per second" in line:
            rate = float(line.split()[-1])
        if "Queries lost" in line:
            lost = int(line.split()[2])
    return rate, lost


def testkey_sample(otk, tmp, bind, names):
    """Run opendkim-testkey once per (domain, selector) in names, through
    a libunbound stub zone that sends bench.test to the test server.
    Returns (seconds, runs that said the key is fine)."""
    ub = os.path.join(tmp, "unbound.conf")
    # test. is one of unbound's built-in local zones (RFC 6761): lift it.
    common.write_text(ub, (
        'server:\n'
        '\tlocal-zone: "test." nodefault\n'
        '\tdo-not-query-localhost: no\n'
        'stub-zone:\n'
        '\tname: "%s"\n'
        '\tstub-addr: 127.0.0.1@%d\n') % (ZONE, bind.port))
    oc = os.path.join(tmp, "opendkim.conf")
    common.write_text(oc, "ResolverConfiguration %s\n" % ub)
    good = 0
    t0 = time.monotonic()
    for d, s in names:
        p = subprocess.run([otk, "-x", oc, "-d", d, "-s", s],
                           capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        if p.returncode == 0:
            good += 1
    return time.monotonic() - t0, good


RUNS = 5


def judge_run(code, out, err, ndom, nq):
    """Why a check run does not count (None: it does).  Watched
    selectors only and no keys, but a signer entry for every domain: one
    CRITICAL "signer s uses selector m1 but dkimkeyd has no active key"
    per domain is expected; anything else CRITICAL or UNKNOWN, or a
    watched selector not OK on every server, is a failed probe."""
    if code != 2 or err:
        return "check exit %d: %s" % (code, err[:200].strip())
    j = json.loads(out)
    if j["probe"]["queries"] != nq:
        return "%d questions, not %d" % (j["probe"]["queries"], nq)
    for d in j["domains"]:
        probs = [p for p in d["problems"]
                 if p["severity"] in ("CRITICAL", "UNKNOWN")]
        if len(probs) != 1 or "but dkimkeyd has no active key" not in \
                probs[0]["message"]:
            return "%s: %s" % (d["domain"], probs)
        for x in d["selectors"]:
            if x["kind"] == "watch" and (x["status"] != "OK" or any(
                    v["status"] != "OK" for v in x["servers"])):
                return "%s: %s" % (d["domain"], x)
    if len(j["domains"]) != ndom:
        return "%d domains, not %d" % (len(j["domains"]), ndom)
    return None


def run(table, quick=False, ndom=None, nsel=2):
    ndom = ndom or (1000 if quick else 5000)
    dp_seconds = 3 if quick else 10
    nsample = 50 if quick else 200
    nq = ndom * nsel * 2           # TXT: every selector on both servers
    nsoa = ndom * 2                # SOA: every domain's serial on both
    tmp = tempfile.mkdtemp(prefix="dkimkeyd-bench-probe-")
    servers = []
    try:
        text = zone_text(ndom, nsel)
        for _ in range(2):
            servers.append(common.BenchBind({ZONE: text}).start(
                deadline=120))
        conf = write_conf(tmp, servers, ndom, nsel)
        log("dkimkeyd check: %d selectors x 2 servers, %d runs" % (
            ndom * nsel, RUNS))
        # A run is a fraction of a second on a shared machine: the median
        # of RUNS, for the whole process and for its probe round (the
        # questions in flight until the last is answered, which is what
        # dnsperf's own rate measures: it leaves out its start too).
        # The whole run is timed with the plugin output monitoring reads
        # (--json prints more).
        walls, rounds, bad = [], [], None
        for _ in range(RUNS):
            code, out, err, dt = common.dkimkeyd(conf, "check", "--json",
                                                 timeout=900)
            why = judge_run(code, out, err, ndom, nq + nsoa)
            if why is not None and bad is None:
                bad = why
            if why is None:
                rounds.append(json.loads(out)["probe"]["seconds"])
            code, out, err, dt = common.dkimkeyd(conf, "check", timeout=900)
            if code == 2 and not err and out.startswith("DKIM CRITICAL"):
                walls.append(dt)
            elif bad is None:
                bad = "check exit %d: %s" % (code, err[:200].strip())
        ok = bad is None
        dt = statistics.median(walls) if walls else float("nan")
        pr = statistics.median(rounds) if rounds else float("nan")
        # What does not grow with the probes: start, reading the
        # configuration of every domain, one domain's queries.
        _, _, _, fixed = common.dkimkeyd(conf, "check", "--domain",
                                         "d0.%s" % ZONE, timeout=300)
        # Every question check asks is a probe the servers answer: the
        # rates count them all, as dnsperf counts its own.
        rate = (nq + nsoa) / pr
        whole = (nq + nsoa) / dt
        label = "probe rate, %d selectors x 2 servers" % (ndom * nsel)
        if not ok:
            table.note("%s: %s" % (label, bad))

        dnsperf = shutil.which("dnsperf")
        if dnsperf is None:
            table.add(label, "%.0f q/s" % rate, "dnsperf not installed",
                      "", ">=0.5", ok=None if ok else False)
            table.note("dnsperf: not installed (sh contrib/install-deps.sh "
                       "dnsperf); no reference rate")
        else:
            qf = os.path.join(tmp, "queries")
            with open(qf, "w") as f:
                for d in range(ndom):
                    for s in range(nsel):
                        f.write("s%d._domainkey.d%d.%s TXT\n" % (s, d, ZONE))
            log("dnsperf: %ds against each server" % dp_seconds)
            rates = []
            for b in servers:
                r, lost = dnsperf_rate(dnsperf, b.port, qf, dp_seconds)
                if r is not None:
                    rates.append(r)
            if rates:
                ref = sum(rates) / len(rates)
                table.add(label, "%.0f q/s (%.3fs)" % (rate, pr),
                          "dnsperf %.0f q/s, one server" % ref,
                          "%.2f" % (rate / ref), ">=0.5",
                          ok=ok and rate / ref >= 0.5)
                table.add("  TXT (selector) questions only",
                          "%.0f q/s" % (nq / pr), "", "%.2f" % (
                              nq / pr / ref), "", ok=None)
                table.add("  whole check run, start to exit",
                          "%.0f q/s (%.3fs)" % (whole, dt), "",
                          "%.2f" % (whole / ref), "", ok=None)
                table.note("probe rate: the %d TXT and %d SOA questions "
                           "check asks over its probe round (median of "
                           "%d runs, from check --json); the whole run "
                           "adds start, reading %d domains' configuration, "
                           "state and signer tables, judging and output "
                           "(check --domain alone: %.3fs); dnsperf: UDP, "
                           "-l %d, the same TXT names, each server in "
                           "turn" % (nq, nsoa, RUNS, ndom, fixed,
                                     dp_seconds))
            else:
                table.add(label, "%.0f q/s" % rate, "dnsperf gave no rate",
                          "", ">=0.5", ok=None if ok else False)

        otk = shutil.which("opendkim-testkey") or (
            "/usr/sbin/opendkim-testkey" if os.access(
                "/usr/sbin/opendkim-testkey", os.X_OK) else None)
        per_dk = dt / nq
        if otk is None:
            table.add("per selector-query vs opendkim-testkey", "%.3f ms" % (
                1000 * per_dk), "opendkim-testkey not installed")
        else:
            step = max(1, ndom // nsample)
            names = [("d%d.%s" % (d, ZONE), "s%d" % (d % nsel))
                     for d in range(0, ndom, step)][:nsample]
            log("opendkim-testkey: %d selectors, one run each" % len(names))
            sec, good = testkey_sample(otk, tmp, servers[0], names)
            per_otk = sec / len(names)
            table.add("per selector-query, dkimkeyd check",
                      "%.3f ms" % (1000 * per_dk),
                      "opendkim-testkey %.2f ms" % (1000 * per_otk),
                      "%.0fx faster" % (per_otk / per_dk), "",
                      ok=None)
            table.note("opendkim-testkey: %d selectors, one process each, "
                       "libunbound stub zone to the test server; %d/%d "
                       "said the key is fine" % (len(names), good,
                                                  len(names)))
            if good != len(names):
                table.note("opendkim-testkey did not find every record: "
                           "its figure is not comparable")
        discovery(table, tmp, servers, ndom, nsel)
    finally:
        for b in servers:
            b.cleanup()
        if not harness.KEEP:
            shutil.rmtree(tmp, ignore_errors=True)


def discovery(table, tmp, servers, ndom, nsel):
    """check with every domain's servers found through a resolver (SOA,
    NS, A, AAAA: concurrent rounds) next to the same check with the
    server listed: the difference is the cost of discovery."""
    listed = write_conf(tmp, servers[:1], ndom, nsel, name="listed")
    found = write_conf(tmp, servers[:1], ndom, nsel, discovery=True,
                       name="discovery")
    log("dkimkeyd check: %d domains, servers listed, then discovered" %
        ndom)
    _, out_l, _, t_l = common.dkimkeyd(listed, "check", timeout=900)
    _, out_d, err_d, t_d = common.dkimkeyd(found, "check", timeout=900)
    same = out_l == out_d and not err_d
    table.add("check, %d domains, nameservers discovered" % ndom,
              "%.2fs" % t_d, "servers listed %.2fs" % t_l,
              "%.2f" % (t_d / t_l), "", ok=None if same else False)
    table.note("discovery: SOA walk, NS, A and AAAA of each of %d "
               "domains through a resolver (the test server), in "
               "concurrent rounds; output %s" % (
                   ndom, "identical to the listed run" if same else
                   "DIFFERS from the listed run"))


def main(argv):
    harness.exit_cleanly_on_signals()
    table = common.Table()
    run(table, quick="--quick" in argv)
    sys.stdout.write(table.render())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
