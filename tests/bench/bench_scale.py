"""Growth from 10,000 to 100,000 domains (make bench BENCH_ARGS=--scale).

    /usr/bin/python3 tests/bench/bench_scale.py [--quick] [--sizes=N,M]
        [--serve=N]

One loopback BIND serves 100 zones; every domain has an active RSA-2048
key at mail1 (TXT mode, one OpenDKIM KeyTable for all).  The keys are
made once, for real, by rotating a few template domains with dkimkeyd;
every other domain's state file, key file (a hard link) and KeyTable
entry are copies of a template's with the domain name changed and the
state's seal recomputed, and its record is in the zone.  Nothing is due:
rotate_every is a year.

At each size: configtest, status, run --once, check, and every --domain
command (status, run --once, check, state seal, rotate --dry-run, and a
real rotate) on the last domain of the file, each the median of a few
whole-process runs with its peak RSS (the kernel's rusage of the
child).  Printed: the growth of each from the smaller to the larger size
(linear is 10x; target <= 12x), --domain commands against configtest at
the same size (target <= 2x), check's question rate against dnsperf
asking the same questions of the same server in the same run (target
>= 0.5) and check's peak RSS per domain (target <= 2 KiB).

--serve=N builds the N-domain setup, prints its configuration path and
waits (for perf record); Ctrl-C stops BIND and removes it.
"""

import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import common
from common import harness, log

NZONES = 100
NTPL = 8
SEL = ("mail1", "mail2")
YEAR = "365d"


def zone_of(i):
    return "z%02d.scale.test" % (i % NZONES)


def domain_of(i):
    return "d%d.%s" % (i, zone_of(i))


def conf_text(tmp, bind, domains, rotate_every=YEAR):
    state, keys = common.private_dirs(tmp)
    tsig = os.path.join(tmp, "update.key")
    if not os.path.exists(tsig):
        common.write_text(tsig, bind.key_text, 0o600)
    kt = os.path.join(tmp, "KeyTable")
    st = os.path.join(tmp, "SigningTable")
    for p in (kt, st):
        if not os.path.exists(p):
            common.write_text(p, "")
    zones = sorted(set(d.split(".", 1)[1] for d in domains))
    out = ["[dkimkeyd]\nstate_dir = %s\nkey_dir = %s\n\n"
           "[signer s]\ntype = opendkim\nkey_table = %s\n"
           "signing_table = %s\n" % (state, keys, kt, st)]
    # A provider per zone, as an operator with many zones has.
    for z in zones:
        out.append("\n[provider %s]\ntype = rfc2136\nserver = %s\n"
                   "tsig_key_file = %s\nzone = %s\nprobe_servers = %s\n"
                   "timeout = 5s\n" % (z.split(".")[0], bind.addr(), tsig,
                                        z, bind.addr()))
    for d in domains:
        out.append("\n[domain %s]\nprovider = %s\nsigner = s\n"
                   "selectors = %s\nalgorithm = rsa-2048\nttl = 1s\n"
                   "safety_margin = 0s\npropagation_timeout = 60s\n"
                   "rotate_every = %s\n" % (d, d.split(".")[1],
                                            " ".join(SEL), rotate_every))
    path = os.path.join(tmp, "dkimkeyd.conf")
    common.write_text(path, "".join(out))
    return path


def make_templates(tmp):
    """Rotate NTPL domains of tpl.scale.test for real.  Returns a list of
    (domain, state text, key file, KeyTable line, TXT record text)."""
    os.makedirs(tmp)
    bind = common.BenchBind({"tpl.scale.test": ""}).start(deadline=60)
    try:
        doms = ["t%d.tpl.scale.test" % i for i in range(NTPL)]
        conf = conf_text(tmp, bind, doms, "1m")
        for _ in range(60):
            code, out, err, _ = common.dkimkeyd(conf, "run", "--once")
            if out.count("switched to it event=active") >= NTPL or \
                    code not in (0, 75):
                break
            time.sleep(0.3)
        with open(os.path.join(tmp, "KeyTable")) as f:
            kt = dict((line.split()[0], line.rstrip("\n")) for line in f
                      if line.strip() and not line.startswith("#"))
        out = []
        for d in doms:
            with open(os.path.join(tmp, "state", d + ".state")) as f:
                text = f.read()
            m = re.search(r"^  file: (\S+)$", text, re.M)
            r = bind.query("mail1._domainkey." + d, "TXT")
            rec = [rd for rrset in r.answer for rd in rrset]
            if m is None or len(rec) != 1 or \
                    "mail1._domainkey." + d not in kt:
                raise harness.HarnessError(
                    "template %s did not rotate: %s %s" % (d, code, err))
            out.append((d, text, m.group(1), kt["mail1._domainkey." + d],
                        rec[0].to_text()))
        return out
    finally:
        bind.cleanup()


SEAL = "end sha256="


def reseal(text):
    body = text[:text.rindex(SEAL)]
    return body + SEAL + hashlib.sha256(body.encode()).hexdigest() + "\n"


def build(tmp, n, tpl):
    """The n-domain setup under tmp: (BIND, configuration path)."""
    os.makedirs(tmp)
    state, keys = common.private_dirs(tmp)
    zones = dict((zone_of(i), []) for i in range(min(n, NZONES)))
    kt = []
    for i in range(n):
        d = domain_of(i)
        td, text, kfile, ktline, rec = tpl[i % len(tpl)]
        name = os.path.basename(kfile).replace(td, d, 1)
        dst = os.path.join(keys, name)
        os.link(kfile, dst)
        text = text.replace(kfile, dst).replace(td, d)
        fd = os.open(os.path.join(state, d + ".state"),
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(reseal(text))
        kt.append(ktline.replace(kfile, dst).replace(td, d) + "\n")
        rel = d[:-len(zone_of(i)) - 1]
        zones[zone_of(i)].append("mail1._domainkey.%s\tIN\tTXT\t%s\n" % (
            rel, rec))
    bind = common.BenchBind(dict((z, "".join(t)) for z, t in
                                 zones.items())).start(deadline=300)
    conf = conf_text(tmp, bind, [domain_of(i) for i in range(n)])
    common.write_text(os.path.join(tmp, "KeyTable"), "".join(kt))
    common.write_text(os.path.join(tmp, "SigningTable"), "".join(
        "*@%s mail1._domainkey.%s\n" % (domain_of(i), domain_of(i))
        for i in range(n)))
    return bind, conf


TIME = "/usr/bin/time"


def child_run(argv, timeout=1800):
    """(exit code, seconds, peak RSS KiB, stdout, stderr) of one whole
    process.  The peak RSS is GNU time's report of its child: a child of
    this interpreter would count the interpreter's pages it started with
    (the kernel keeps the larger of the two across exec)."""
    with tempfile.NamedTemporaryFile() as fm:
        t0 = time.monotonic()
        p = subprocess.run([TIME, "-f", "%M", "-o", fm.name] + argv,
                           stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout)
        dt = time.monotonic() - t0
        with open(fm.name) as f:
            lines = f.read().split()
        rss = int(lines[-1]) if lines and lines[-1].isdigit() else 0
        return (p.returncode, dt, rss, p.stdout.decode(errors="replace"),
                p.stderr.decode(errors="replace"))


def median_run(argv, runs, ok_codes=(0,)):
    """Median seconds and peak RSS of runs; the last output."""
    ts, rs = [], []
    for _ in range(runs):
        code, dt, rss, out, err = child_run(argv)
        if code not in ok_codes:
            raise harness.HarnessError("%s: exit %d: %s" % (
                " ".join(argv[3:]), code, (err or out)[:300]))
        ts.append(dt)
        rs.append(rss)
    return statistics.median(ts), max(rs), out


def dnsperf_once(port, qf, n):
    """Seconds dnsperf takes to ask every question of qf once, and its
    lost count (None when dnsperf is missing)."""
    dp = shutil.which("dnsperf")
    if dp is None:
        return None, None
    out = subprocess.run([dp, "-s", "127.0.0.1", "-p", str(port), "-d",
                          qf, "-n", "1", "-t", "5"],
                         capture_output=True, text=True,
                         timeout=600).stdout
    qps = lost = None
    for line in out.splitlines():
        if "Queries per second" in line:
            qps = float(line.split()[-1])
        if "Queries lost" in line:
            lost = int(line.split()[2])
    return qps, lost


def check_questions(j):
    """The questions check --json says it asked of each server: every
    selector's owner (TXT) and the serial question below each domain's
    apex (SOA), one per server listed."""
    out = []
    for d in j["domains"]:
        for x in d["selectors"]:
            out += [(x["owner"], "TXT")] * max(1, len(x["servers"]))
        out += [("_domainkey." + d["domain"], "SOA")] * max(
            1, max((len(x["servers"]) for x in d["selectors"]), default=1))
    return out


def measure(tmp, n, tpl, runs):
    """Figures at n domains: {name: (seconds, peak KiB)} and extras."""
    log("building %d domains" % n)
    bind, conf = build(tmp, n, tpl)
    last = domain_of(n - 1)
    base = [common.DKIMKEYD, "-c", conf]
    res = {}
    try:
        for name, args, codes in (
                ("configtest", ["configtest"], (0,)),
                ("status", ["status"], (0,)),
                ("run --once", ["run", "--once"], (0,)),
                ("check", ["check", "--json"], (0, 1)),
                ("status --domain", ["status", "--domain", last], (0,)),
                ("run --once --domain", ["run", "--once", "--domain",
                                         last], (0,)),
                ("check --domain", ["check", "--domain", last], (0, 1)),
                ("state seal --domain", ["state", "seal", "--domain",
                                         last], (0,)),
                ("rotate --dry-run --domain", ["rotate", "--dry-run",
                                               "--domain", last], (0,))):
            log("%d domains: %s" % (n, name))
            res[name] = median_run(base + args, runs, codes)
        # A real rotation publishes and changes state: once.
        log("%d domains: rotate --domain" % n)
        code, dt, rss, out, err = child_run(base[:1] + ["-q"] + base[1:] + ["rotate",
                                                    "--domain", last])
        if code not in (0, 75):
            raise harness.HarnessError("rotate: exit %d: %s" % (code, err))
        res["rotate --domain"] = (dt, rss, out)
        j = json.loads(res["check"][2])
        if j["status"] not in ("OK", "WARNING"):
            bad = [d for d in j["domains"] if d["status"] not in
                   ("OK", "WARNING")][:1]
            raise harness.HarnessError("check at %d: %s %s" % (
                n, j["status"], bad))
        nq = j["probe"]["queries"]
        qf = os.path.join(tmp, "questions")
        asked = check_questions(j)
        with open(qf, "w") as f:
            f.write("".join("%s %s\n" % q for q in asked))
        # The reference runs as often as check did, right after a run of
        # check each time, and its median is taken: the load drifts.
        log("%d domains: dnsperf, %d questions (check asks %d), %d runs"
            % (n, len(asked), nq, runs))
        qpss, lost = [], 0
        for _ in range(runs):
            child_run(base + ["check", "--json"])
            qps, lo = dnsperf_once(bind.port, qf, nq)
            if qps:
                qpss.append(qps)
                lost += lo or 0
        res["_dnsperf"] = (statistics.median(qpss) if qpss else None,
                           lost, nq)
    finally:
        bind.cleanup()
    return res


def run(table, quick=False, sizes=None):
    sizes = sizes or ((1000, 10000) if quick else (10000, 100000))
    runs = 3
    tmp = tempfile.mkdtemp(prefix="dkimkeyd-bench-scale-")
    try:
        log("templates: rotating %d domains" % NTPL)
        tpl = make_templates(os.path.join(tmp, "tpl"))
        figs = {}
        for n in sizes:
            figs[n] = measure(os.path.join(tmp, "n%d" % n), n, tpl, runs)
        small, big = sizes
        grow = big / small
        for name in figs[small]:
            if name.startswith("_"):
                continue
            a, b = figs[small][name], figs[big][name]
            g = b[0] / a[0]
            table.add("%s, %dk -> %dk" % (name, small // 1000, big // 1000),
                      "%.3fs -> %.3fs" % (a[0], b[0]),
                      "peak %d -> %d KiB" % (a[1], b[1]),
                      "x%.1f" % g, "<=%gx" % (grow * 1.2), ok=g <= grow * 1.2)
        for n in sizes:
            ct = figs[n]["configtest"][0]
            for name, v in figs[n].items():
                if "--domain" in name:
                    # A real rotation generates and publishes a key: its
                    # growth says what it costs, not a ratio.
                    real = name == "rotate --domain"
                    table.add("%s / configtest, %dk" % (name, n // 1000),
                              "%.3fs" % v[0], "configtest %.3fs" % ct,
                              "%.2f" % (v[0] / ct), "" if real else "<=2",
                              ok=None if real else v[0] / ct <= 2)
            qps, lost, nq = figs[n]["_dnsperf"]
            ck = figs[n]["check"]
            rate = nq / ck[0]
            if qps:
                table.add("check rate, whole process, %dk" % (n // 1000),
                          "%.0f q/s (%.2fs)" % (rate, ck[0]),
                          "dnsperf %.0f q/s, %d lost" % (qps, lost or 0),
                          "%.2f" % (rate / qps), ">=0.5",
                          ok=rate / qps >= 0.5)
            else:
                table.add("check rate, whole process, %dk" % (n // 1000),
                          "%.0f q/s" % rate, "dnsperf not installed")
            per = ck[1] / n
            over = (ck[1] - figs[n]["configtest"][1]) / n
            table.add("check peak RSS per domain, %dk" % (n // 1000),
                      "%.2f KiB" % per, "%d KiB; %.2f KiB/domain over "
                      "configtest's %d KiB" % (ck[1], over,
                                               figs[n]["configtest"][1]),
                      "", "<=2 KiB", ok=per <= 2)
        table.note("scale: %d zones on one BIND, RSA-2048 active key per "
                   "domain (%d distinct keys), median of %d runs; dnsperf "
                   "asks the questions check --json lists (its selectors' "
                   "TXT, one SOA per domain) once each (-n 1, its default "
                   "100 in flight), median of as many runs, each right "
                   "after a check run" % (
                       NZONES, NTPL, runs))
    finally:
        if not harness.KEEP:
            shutil.rmtree(tmp, ignore_errors=True)


def serve(n):
    tmp = tempfile.mkdtemp(prefix="dkimkeyd-bench-scale-")
    tpl = make_templates(os.path.join(tmp, "tpl"))
    bind, conf = build(os.path.join(tmp, "n"), n, tpl)
    sys.stdout.write("%s\n" % conf)
    sys.stdout.flush()
    try:
        while True:
            time.sleep(3600)
    finally:
        bind.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv):
    harness.exit_cleanly_on_signals()
    sizes = None
    for a in argv[1:]:
        if a.startswith("--serve="):
            return serve(int(a.split("=", 1)[1]))
        if a.startswith("--sizes="):
            sizes = tuple(int(x) for x in a.split("=", 1)[1].split(","))
    table = common.Table()
    run(table, quick="--quick" in argv, sizes=sizes)
    sys.stdout.write(table.render())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
