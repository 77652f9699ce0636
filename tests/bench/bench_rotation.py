"""Bulk rotation, daemon footprint and UPDATE economy at scale.

1. Bulk rotation of N domains (TXT mode, then CNAME mode), rotate_every
   with no key yet so that `run --once` rotates everything: `run --once`
   is repeated until every domain's key is active (it does not wait out
   cache drains itself); RSA-2048, and Ed25519 in TXT mode.  Reference:
   `openssl genpkey` of as many keys of the same algorithm, one process
   per key, as many at a time as there are cores (dkimkeyd generates on
   every core too), half of them right before the rotation it is
   compared with and half right after.  That reference counts
   openssl's process start-up with every key (for Ed25519 nearly all of
   it): as many `openssl version` runs, made the same way, are reported
   next to it, so that the table shows how much of the reference is
   start-up rather than key generation.
2. Daemon RSS per configured domain: `run` with N/10 vs N idle
   domains (the slope: what one more domain costs; 0 domains is shown
   too), VmRSS after READY=1 and a settle (target: under 1 KiB).
3. Idle CPU of the N-domain daemon.
4. UPDATE messages per record during the bulk rotation: dkimkeyd's own
   counter when it prints one, and BIND's UPDATE opcode counter.

    /usr/bin/python3 tests/bench/bench_rotation.py [--quick]
        [--domains=N] [--deadline=SECONDS] [--modes=txt,cname,ed25519]

--modes: only these bulk rotations (the daemon footprint needs txt).

A bulk rotation fails only when it has not finished within 10 times its
key generation reference (at least 180 s; --deadline overrides): that
scales with N and with the load the reference ran under.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import common
from common import harness, log

CUSTOMER = "customer.test"
OPERATOR = "operator.test"
SELECTORS = ("mail1", "mail2")
COUNTER = re.compile(r"published (\d+) records? in (\d+) UPDATE messages?")
# Activation on this host's signer, or (hosts =) on every MTA host.
ACTIVE = re.compile(r"^(\S+): (?:signer \S+ switched to it|every host "
                    r"\(\d+\) serves it) event=active", re.M)


def txt_domain(i):
    return "t%d.%s" % (i, CUSTOMER)


def cname_domain(i):
    return "c%d.%s" % (i, CUSTOMER)


def cname_target(sel, dom):
    return "%s.%s.%s" % (sel, dom, OPERATOR)


def customer_zone_text(cname_domains):
    """The customer's CNAMEs, pre-created: every selector name of every
    CNAME-mode domain points at the operator's record."""
    out = []
    for d in cname_domains:
        rel = d[:-len(CUSTOMER) - 1]
        for s in SELECTORS:
            out.append("%s._domainkey.%s\tIN\tCNAME\t%s.\n" % (
                s, rel, cname_target(s, d)))
    return "".join(out)


def keygen_reference(n, tmp, alg="rsa-2048", startup_only=False):
    """Seconds for n `openssl genpkey` runs of alg, one per core at a
    time.  startup_only: n `openssl version` runs instead, made the same
    way: the process start-up the reference counts with every key."""
    argv = ["openssl", "genpkey", "-algorithm", "ED25519"] if \
        alg == "ed25519" else ["openssl", "genpkey", "-algorithm", "RSA",
                               "-pkeyopt", "rsa_keygen_bits:2048"]
    if startup_only:
        argv = ["openssl", "version"]
    ncpu = os.cpu_count() or 1
    running = []
    t0 = time.monotonic()
    for i in range(n):
        if len(running) >= ncpu:
            running.pop(0).wait(timeout=120)
        running.append(subprocess.Popen(
            argv + ([] if startup_only else
                    ["-out", os.path.join(tmp, "ref%d.pem" % (i % ncpu))]),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL))
    for p in running:
        p.wait(timeout=120)
    dt = time.monotonic() - t0
    for i in range(0 if startup_only else min(n, ncpu)):
        os.unlink(os.path.join(tmp, "ref%d.pem" % i))
    return dt


def write_conf(tmp, bind, domains, mode, rotate_every="1m", name="conf",
               alg="rsa-2048", pregenerate=True):
    """A configuration for domains (a list of names) in mode "txt" or
    "cname"; returns its path.  Both providers are always defined so that
    the daemon with no domain differs from the full one only by the
    domains."""
    state, keys = common.private_dirs(tmp)
    tsig = os.path.join(tmp, "update.key")
    common.write_text(tsig, bind.key_text, 0o600)
    kt = os.path.join(tmp, "KeyTable")
    st = os.path.join(tmp, "SigningTable")
    for p in (kt, st):
        if not os.path.exists(p):
            common.write_text(p, "")
    lines = ["[dkimkeyd]", "state_dir = " + state, "key_dir = " + keys] + (
        [] if pregenerate else ["pregenerate = no"]) + [""]
    for prov, zone in (("customer", CUSTOMER), ("operator", OPERATOR)):
        lines += ["[provider %s]" % prov, "type = rfc2136",
                  "server = " + bind.addr(), "tsig_key_file = " + tsig,
                  "zone = " + zone, "probe_servers = " + bind.addr(),
                  "timeout = 5s", ""]
    lines += ["[signer opendkim]", "type = opendkim", "key_table = " + kt,
              "signing_table = " + st, ""]
    for d in domains:
        lines += ["[domain %s]" % d,
                  "provider = %s" % ("operator" if mode == "cname" else
                                     "customer"),
                  "signer = opendkim",
                  "selectors = " + " ".join(SELECTORS),
                  "algorithm = " + alg, "ttl = 1s",
                  "safety_margin = 0s", "propagation_timeout = 60s",
                  "rotate_every = " + rotate_every]
        if mode == "cname":
            lines += ["mode = cname",
                      "cname_target = {selector}.{domain}." + OPERATOR]
        lines.append("")
    path = os.path.join(tmp, name + ".conf")
    common.write_text(path, "\n".join(lines))
    return path


def rotation_deadline(ref, fixed=None):
    """Seconds a bulk rotation may take before it counts as failed: a
    multiple of the key generation reference measured right before it
    (the same load, the same N), so that a loaded machine or a large N
    does not turn a slow run into a failure; the ratio, not this
    deadline, says whether it was fast enough.  fixed (--deadline=S)
    overrides it."""
    if fixed is not None:
        return fixed
    return max(DEADLINE_MIN, DEADLINE_FACTOR * ref)


# The target is 1.3 x the reference: a run at 10 x is far past it, but
# still measured (and reported as MISSED) rather than cut off.
DEADLINE_FACTOR = 10
DEADLINE_MIN = 180


def rotate_all(conf, ndom, deadline):
    """Repeat `run --once` until ndom domains have an active key.  Returns
    a dict: seconds (wall, from the first run to the last), runs,
    activated, counter (records, messages) summed from dkimkeyd's output
    or None, errors (stderr text, first lines), ok."""
    t0 = time.monotonic()
    active = set()
    runs = 0
    recs = msgs = 0
    counted = False
    errors = []
    while True:
        # A single run may do all of the work: it gets what is left of
        # the deadline, and a minute more to finish its step cleanly.
        left = max(0.0, deadline - (time.monotonic() - t0))
        code, out, err, _ = common.dkimkeyd(conf, "run", "--once",
                                            timeout=left + 60)
        runs += 1
        active.update(m.group(1) for m in ACTIVE.finditer(out))
        for m in COUNTER.finditer(out):
            counted = True
            recs += int(m.group(1))
            msgs += int(m.group(2))
        if err.strip():
            errors.append("run %d (exit %d): %s" % (
                runs, code, err.strip().splitlines()[0]))
        if len(active) >= ndom:
            break
        # 75 is "temporary, safe to rerun"; anything else will not mend.
        if code not in (0, 75):
            break
        if time.monotonic() - t0 > deadline:
            break
        # Only cache drains (1s) are left: look again shortly.
        time.sleep(0.2)
    dt = time.monotonic() - t0
    return {"seconds": dt, "runs": runs, "activated": len(active),
            "counter": (recs, msgs) if counted else None,
            "errors": errors, "ok": len(active) >= ndom}


# named -g: "03-Dec-2026 12:00:43.123 client @0x7f.. 127.0.0.1#5353/key
# k (zone): updating zone 'zone/IN': adding an RR at 'owner' TXT ..."
UPDLINE = re.compile(rb"^(\d\d-\w\w\w-\d{4} \d\d:\d\d:\d\d\.\d{3}) "
                     rb"client (@\S+ \S+).*updating zone '([^']*)': "
                     rb"adding an RR at")


def update_messages_in_log(path, start):
    """The UPDATE messages BIND applied, from byte offset start of its
    log: a list of (first line's time in seconds, last line's, zone,
    records), one per message (consecutive lines of one client).  The
    times are BIND's, not this process's."""
    msgs = []
    last = None
    with open(path, "rb") as f:
        f.seek(start)
        for line in f:
            m = UPDLINE.match(line)
            if m is None:
                continue
            t = time.mktime(time.strptime(m.group(1)[:20].decode(),
                                          "%d-%b-%Y %H:%M:%S")) + \
                int(m.group(1)[21:]) / 1000.0
            key = (m.group(2), m.group(3))
            if key == last:
                a, _, z, n = msgs[-1]
                msgs[-1] = (a, t, z, n + 1)
            else:
                msgs.append((t, t, m.group(3).decode(), 1))
                last = key
    return msgs


def update_gaps(msgs):
    """(span of all messages, largest gap between one message's last
    record and the next message's first, sum of the gaps) in seconds."""
    if not msgs:
        return 0.0, 0.0, 0.0
    gaps = [max(0.0, b[0] - a[1]) for a, b in zip(msgs, msgs[1:])]
    return (msgs[-1][1] - msgs[0][0], max(gaps) if gaps else 0.0,
            sum(gaps))


def served(bind, owner):
    """True when bind serves one DKIM key record at owner, following
    CNAMEs the way a verifier's resolver does (an authoritative server
    without recursion does not follow them into another zone)."""
    for _ in range(8):
        r = bind.query(owner, "TXT")
        target = None
        for rrset in r.answer:
            if rrset.rdtype == harness.dns.rdatatype.TXT:
                v = b"".join(b"".join(rd.strings) for rd in rrset)
                return v.startswith(b"v=DKIM1") and len(rrset) == 1
            if rrset.rdtype == harness.dns.rdatatype.CNAME:
                target = rrset[0].target.to_text()
        if target is None:
            return False
        owner = target
    return False


def bulk(bind, tmp, mode, domains, deadline, alg="rsa-2048"):
    """One bulk rotation; returns (result dict, failure reason or None)."""
    os.makedirs(tmp)
    conf = write_conf(tmp, bind, domains, mode, alg=alg)
    u0 = bind.update_messages()
    a0 = bind.log_count(b": adding an RR at ")
    off0 = os.path.getsize(bind.log_path)
    log("%s mode: rotating %d domains with run --once" % (mode,
                                                          len(domains)))
    res = rotate_all(conf, len(domains), deadline)
    res["updates"] = bind.update_messages() - u0
    res["added"] = bind.log_count(b": adding an RR at ") - a0
    res["log_msgs"] = update_messages_in_log(bind.log_path, off0)
    log("%s mode: %d/%d active after %.1fs in %d runs" % (
        mode, res["activated"], len(domains), res["seconds"], res["runs"]))
    if not res["ok"]:
        return res, "%d of %d domains active after %.0fs%s" % (
            res["activated"], len(domains), res["seconds"],
            ": " + res["errors"][-1] if res["errors"] else "")
    # Independent check: the records are served where verifiers look.
    step = max(1, len(domains) // 10)
    for d in domains[::step]:
        owner = "%s._domainkey.%s" % (SELECTORS[0], d)
        if not served(bind, owner):
            return res, "no key record served at %s" % owner
        if mode == "cname" and not served(bind, cname_target(SELECTORS[0],
                                                              d)):
            return res, "no key record at the cname target of %s" % d
    with open(os.path.join(tmp, "KeyTable")) as f:
        n = sum(1 for line in f if line.strip() and not
                line.startswith("#"))
    if n != len(domains):
        return res, "KeyTable has %d entries, expected %d" % (
            n, len(domains))
    return res, None


def preflight(bind, tmp, mode, domain):
    """Rotate one domain first: a mode the build cannot do is reported
    in seconds instead of after propagation_timeout for every domain."""
    os.makedirs(tmp)
    conf = write_conf(tmp, bind, [domain], mode)
    res = rotate_all(conf, 1, 15)
    if res["ok"]:
        return None
    why = res["errors"][-1] if res["errors"] else \
        "no active key after %.0fs" % res["seconds"]
    return why


def daemon_footprint(tmp, conf, idle_s):
    """Start `dkimkeyd run` on conf; after READY=1 and a settle, VmRSS
    (KiB); then CPU ticks used over idle_s seconds (None when idle_s is
    0).  Returns (rss_kib, ticks, seconds)."""
    note = common.Notify(tmp)
    env = dict(os.environ, NOTIFY_SOCKET=note.path)
    out = open(os.path.join(tmp, "daemon.log"), "wb")
    p = subprocess.Popen([common.DKIMKEYD, "-c", conf, "run"], env=env,
                         stdin=subprocess.DEVNULL, stdout=out,
                         stderr=subprocess.STDOUT,
                         preexec_fn=harness._die_with_parent)
    try:
        note.wait_for("READY=1", 60, p)
        time.sleep(2)
        rss = common.proc_rss_kib(p.pid)
        ticks = dt = None
        if idle_s > 0:
            c0, t0 = common.proc_cpu_ticks(p.pid), time.monotonic()
            time.sleep(idle_s)
            c1, t1 = common.proc_cpu_ticks(p.pid), time.monotonic()
            if p.poll() is not None:
                raise harness.HarnessError("daemon exited while idle")
            ticks, dt = c1 - c0, t1 - t0
        return rss, ticks, dt
    finally:
        common.stop_process(p)
        out.close()
        note.close()


MODES = ("txt", "cname", "ed25519")


def run(table, quick=False, ndom=None, keygen_n=None, idle_s=None,
        deadline=None, modes=MODES):
    ndom = ndom or (200 if quick else 1000)
    # As many reference keys as the rotation makes (or a sample, scaled).
    keygen_n = keygen_n or ndom
    idle_s = idle_s if idle_s is not None else (10 if quick else 60)
    tdoms = [txt_domain(i) for i in range(ndom)]
    cdoms = [cname_domain(i) for i in range(ndom)]
    edoms = ["e%d.%s" % (i, CUSTOMER) for i in range(ndom)]
    tmp = tempfile.mkdtemp(prefix="dkimkeyd-bench-rot-")
    bind = None
    try:
        bind = common.BenchBind({
            CUSTOMER: customer_zone_text(cdoms + ["cpre." + CUSTOMER]),
            OPERATOR: ""}).start(deadline=120)

        results = {}
        for key, mode, alg, doms in (
                ("txt", "txt", "rsa-2048", tdoms),
                ("cname", "cname", "rsa-2048", cdoms),
                ("ed25519", "txt", "ed25519", edoms)):
            if key not in modes:
                results[key] = (None, "not run (--modes)")
                continue
            # A name of its own per run: a record another run's state
            # wrote is one this run did not write, and is not touched.
            pre = {"txt": "tpre.", "cname": "cpre.", "ed25519": "epre."}[
                key] + CUSTOMER
            why = preflight(bind, os.path.join(tmp, key + "-pre"), mode,
                            pre)
            label = "bulk rotation, %s mode, %s, %d domains" % (
                mode.upper(), alg, ndom)
            if why is not None:
                results[key] = (None, why)
                table.add(label, "n/a", "", "", "<=1.3", ok=False)
                table.note("%s: one domain did not rotate: %s" % (label,
                                                                   why))
                continue
            # The reference runs around the rotation it is compared
            # with, half of its keys right before and half right after:
            # on a shared machine the load drifts, and one side alone
            # gave ratios of 1.1 and 1.6 for two identical rotations.
            half = keygen_n // 2
            log("reference: %d x openssl genpkey %s, %d at a time, before"
                % (half, alg, os.cpu_count() or 1))
            before = keygen_reference(half, tmp, alg) if half else 0.0
            # Until the second half is in: the first, doubled.
            guess = before * keygen_n / max(1, half) * ndom / keygen_n
            limit = rotation_deadline(guess, deadline)
            log("reference: %.1fs for %d keys; the rotation may take up "
                "to %.0fs" % (before, half, limit))
            res, why = bulk(bind, os.path.join(tmp, key), mode, doms,
                            limit, alg)
            results[key] = (res, why)
            log("reference: %d x openssl genpkey %s, after" % (
                keygen_n - half, alg))
            ref = (before + keygen_reference(keygen_n - half, tmp, alg)) * \
                ndom / keygen_n
            refs = "%.1fs openssl genpkey x%d on %d cores" % (
                ref, ndom, os.cpu_count() or 1)
            if why is not None:
                table.add(label, "n/a", refs, "", "<=1.3", ok=False)
                table.note("%s: %s" % (label, why))
                continue
            ratio = res["seconds"] / ref
            table.add(label, "%.1fs (%d runs)" % (res["seconds"],
                                                    res["runs"]),
                      refs, "%.2f" % ratio, "<=1.3", ok=ratio <= 1.3)
            # How much of the reference is openssl's start-up: a sample
            # of `openssl version` runs right after it, scaled to ndom.
            ns = min(ndom, 200)
            up = keygen_reference(ns, tmp, alg, startup_only=True) * \
                ndom / ns
            table.add("  of the reference, openssl start-up", "%.1fs" % up,
                      "%d x openssl version, scaled to %d" % (ns, ndom),
                      "%.2f" % (up / max(ref, 1e-9)), "", ok=None)
            # (genpkey loads more of OpenSSL than version does: a
            # lower bound of its start-up.)
            table.note("%s: at least %.0f%% of the reference is process "
                       "start-up; against the rest of it the rotation is "
                       "at most %.1f x" % (
                           label, 100.0 * up / max(ref, 1e-9),
                           res["seconds"] / max(ref - up, 1e-9)))

        # 4. UPDATE messages per record.
        for mode in ("txt", "cname"):
            if mode not in modes:
                continue
            res, why = results[mode]
            label = "UPDATE msgs/record, %s mode" % mode.upper()
            if res is None or why is not None:
                table.add(label, "n/a")
                continue
            c = res["counter"]
            own = "n/a (no counter printed)" if c is None else \
                "%d msgs / %d records = %.3f" % (c[1], c[0],
                                                  c[1] / max(1, c[0]))
            recs = res["added"]
            table.add(label + " (dkimkeyd)", own)
            table.add(label + " (BIND)", "%d msgs / %d records = %.3f" % (
                res["updates"], recs, res["updates"] / max(1, recs)),
                "", "", "<1 when batched")
            # Pacing, from BIND's log: the messages of a batch should go
            # out back to back; what lies between batches is the key
            # generation and commits of the next ones.
            lm = res["log_msgs"]
            span, gmax, gsum = update_gaps(lm)
            table.add("  UPDATE pacing, %s mode (BIND's log)" %
                      mode.upper(), "%d msgs over %.2fs, largest gap "
                      "%.2fs" % (len(lm), span, gmax),
                      "rotation %.1fs" % res["seconds"],
                      "%.2f" % (span / max(res["seconds"], 1e-9)), "",
                      ok=None)
            table.note("UPDATE pacing, %s mode: the span from the first "
                       "to the last record BIND logged, as a fraction of "
                       "the whole rotation; %.2fs of it between "
                       "messages" % (mode.upper(), gsum))

        # 2 and 3: the TXT-mode domains, all rotated, now idle.  A
        # rotate_every long enough that nothing falls due while measured.
        if "txt" not in modes:
            return
        res, why = results["txt"]
        if res is None or why is not None:
            table.add("daemon RSS per domain", "n/a")
            table.add("daemon idle CPU", "n/a")
            table.note("daemon footprint needs the TXT-mode rotation")
            return
        d0 = os.path.join(tmp, "daemon0")
        ds = os.path.join(tmp, "daemonS")
        dn = os.path.join(tmp, "daemonN")
        for d in (d0, ds, dn):
            os.makedirs(d)
        # The cost of one more domain is the slope between a tenth of
        # the domains and all of them: against no domain at all, what
        # the first domain brings in once (the signer's and the key
        # code's pages, malloc arenas: about 2.5 MiB) would be divided
        # among the domains and read as a per-domain cost.
        small = max(1, ndom // 10)
        # The scheduler alone: next keys made ahead would be one
        # generation per domain in the window measured.
        c0 = write_conf(os.path.join(tmp, "txt"), bind, [], "txt",
                        "30d", "idle0", pregenerate=False)
        cs = write_conf(os.path.join(tmp, "txt"), bind, tdoms[:small],
                        "txt", "30d", "idleS", pregenerate=False)
        cn = write_conf(os.path.join(tmp, "txt"), bind, tdoms, "txt",
                        "30d", "idleN", pregenerate=False)
        log("daemon with 0 domains")
        rss0, _, _ = daemon_footprint(d0, c0, 0)
        log("daemon with %d idle domains" % small)
        rsss, _, _ = daemon_footprint(ds, cs, 0)
        log("daemon with %d idle domains (idle %ds)" % (ndom, idle_s))
        rssn, ticks, dt = daemon_footprint(dn, cn, idle_s)
        per = (rssn - rsss) / max(1, ndom - small)
        table.add("daemon RSS per domain", "%.2f KiB" % per,
                  "%d KiB at %d, %d KiB at %d (%d KiB at 0)" % (
                      rsss, small, rssn, ndom, rss0), "",
                  "<1 KiB", ok=per < 1)
        hz = os.sysconf("SC_CLK_TCK")
        pct = 100.0 * ticks / (dt * hz)
        table.add("daemon idle CPU, %d domains" % ndom, "%.3f%%" % pct,
                  "%d ticks in %.0fs (1 tick = %.3f%%)" % (
                      ticks, dt, 100.0 / (dt * hz)), "", "<0.1%",
                  ok=pct < 0.1)
    finally:
        if bind is not None:
            bind.cleanup()
        if not harness.KEEP:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv):
    harness.exit_cleanly_on_signals()
    table = common.Table()
    quick = "--quick" in argv
    ndom = deadline = None
    modes = MODES
    for a in argv[1:]:
        if a.startswith("--modes="):
            modes = tuple(a.split("=", 1)[1].split(","))
            bad = [m for m in modes if m not in MODES]
            if bad:
                sys.stderr.write("bench_rotation: unknown mode %s (%s)\n"
                                 % (bad[0], ",".join(MODES)))
                return 64
        if a.startswith("--domains="):
            ndom = int(a.split("=", 1)[1])
        if a.startswith("--deadline="):
            deadline = float(a.split("=", 1)[1])
    run(table, quick=quick, ndom=ndom, deadline=deadline, modes=modes)
    sys.stdout.write(table.render())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
