"""Bulk rotation through the HTTP API providers, in one run:

1. N domains over rfc2136 against BIND (the reference, run again last:
   the mean of both runs is the reference),
2. the same N through the powerdns provider against a real pdns_server,
3. the same N through the cloudflare provider against the Cloudflare API
   test server (tests/integration/cfapi.py, HTTPS), which applies every
   change to BIND.

Each: `run --once` repeated until every domain's key is active (see
bench_rotation.rotate_all); wall time as a ratio to the rfc2136 run
(target <= 1.3), API requests per published record (target <= 0.02:
the records go in batches), counted by the Cloudflare test server itself
and, for PowerDNS, by dkimkeyd's own counter.  A sample of the records is
checked where verifiers look (BIND, or pdns).  The keys are Ed25519:
RSA key generation would take most of the time, the same in every run,
and hide what differs (the publication path).

    /usr/bin/python3 tests/bench/bench_providers.py [--quick] [--domains=N]
"""

import os
import shutil
import sys
import tempfile

import common
from common import harness, log

import bench_rotation

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "integration"))
import cfapi  # noqa: E402
import pdns  # noqa: E402

ZONES = {"rfc": "rfc.test", "rfc2": "rfc2.test", "cloudflare": "cf.test",
         "powerdns": "pd.test"}


def write_conf(tmp, provider_lines, zone, ndom):
    state, keys = common.private_dirs(tmp)
    kt = os.path.join(tmp, "KeyTable")
    st = os.path.join(tmp, "SigningTable")
    for p in (kt, st):
        common.write_text(p, "")
    lines = ["[dkimkeyd]", "state_dir = " + state, "key_dir = " + keys, "",
             "[provider p]"] + provider_lines + [
             "zone = " + zone, "timeout = 10s", "",
             "[signer opendkim]", "type = opendkim", "key_table = " + kt,
             "signing_table = " + st, ""]
    for i in range(ndom):
        lines += ["[domain d%d.%s]" % (i, zone), "provider = p",
                  "signer = opendkim", "selectors = mail1 mail2",
                  "algorithm = ed25519", "ttl = 1s", "safety_margin = 0s",
                  "propagation_timeout = 60s", "rotate_every = 1m", ""]
    path = os.path.join(tmp, "conf")
    common.write_text(path, "\n".join(lines))
    return path


def one(label, tmp, prov_lines, zone, server, ndom, deadline):
    """One bulk rotation: (result dict, failure or None)."""
    os.makedirs(tmp)
    conf = write_conf(tmp, prov_lines, zone, ndom)
    log("%s: rotating %d domains with run --once" % (label, ndom))
    res = bench_rotation.rotate_all(conf, ndom, deadline)
    log("%s: %d/%d active after %.1fs in %d runs" % (
        label, res["activated"], ndom, res["seconds"], res["runs"]))
    if not res["ok"]:
        return res, "%d of %d active%s" % (
            res["activated"], ndom,
            ": " + res["errors"][-1] if res["errors"] else "")
    for i in range(0, ndom, max(1, ndom // 10)):
        owner = "mail1._domainkey.d%d.%s" % (i, zone)
        if not bench_rotation.served(server, owner):
            return res, "no key record served at %s" % owner
    return res, None


def run(table, quick=False, ndom=None):
    ndom = ndom or (100 if quick else 1000)
    deadline = 900 if not quick else 240
    tmp = tempfile.mkdtemp(prefix="dkimkeyd-bench-prov-")
    bind = pd = cf = None
    try:
        bind = common.BenchBind({ZONES["rfc"]: "", ZONES["rfc2"]: "",
                                 ZONES["cloudflare"]: ""}).start(deadline=120)
        tsig = os.path.join(tmp, "update.key")
        common.write_text(tsig, bind.key_text, 0o600)
        pd = pdns.Pdns(zones=(ZONES["powerdns"],)).start()
        pd_token = os.path.join(tmp, "pdns.token")
        common.write_text(pd_token, pd.api_key + "\n", 0o600)
        cf = cfapi.CfApi(bind, os.path.join(tmp, "cfapi"),
                         zones=(ZONES["cloudflare"],), max_per_page=1000
                         ).start()
        cf_token = os.path.join(tmp, "cf.token")
        common.write_text(cf_token, cf.token + "\n", 0o600)
        runs = [
            ("rfc2136", ZONES["rfc"], bind,
             ["type = rfc2136", "server = " + bind.addr(),
              "tsig_key_file = " + tsig, "probe_servers = " + bind.addr()]),
            ("powerdns", ZONES["powerdns"], pd,
             ["type = powerdns", "api_url = " + pd.api_url(),
              "token_file = " + pd_token, "probe_servers = " + pd.addr()]),
            # The default max_requests_per_second (the API's 4/s).
            ("cloudflare", ZONES["cloudflare"], bind,
             ["type = cloudflare", "api_url = " + cf.url(),
              "token_file = " + cf_token, "ca_file = " + cf.ca,
              "probe_servers = " + bind.addr()]),
        ]
        # The reference runs before and after the API runs (the load on
        # a shared machine drifts): their mean is the reference.
        runs.append(("rfc2136-again", ZONES["rfc2"], bind,
                     runs[0][3]))
        refs, done = [], []
        for name, zone, server, lines in runs:
            r0 = cf.count()
            res, why = one(name, os.path.join(tmp, name), lines, zone,
                           server, ndom, deadline)
            label = "bulk rotation, %s, %d domains" % (name, ndom)
            if why is not None:
                table.add(label, "n/a", ok=False)
                table.note("%s: %s" % (label, why))
                continue
            if name.startswith("rfc2136"):
                refs.append(res["seconds"])
                table.add(label, "%.1fs (%d runs)" % (res["seconds"],
                                                        res["runs"]),
                          "reference")
                continue
            done.append((name, res, cf.count() - r0))
        ref = sum(refs) / len(refs) if refs else None
        for name, res, nreq in done:
            label = "bulk rotation, %s, %d domains" % (name, ndom)
            if ref is None:
                table.add(label, "%.1fs" % res["seconds"], "no reference")
            else:
                ratio = res["seconds"] / ref
                table.add(label, "%.1fs (%d runs)" % (res["seconds"],
                                                        res["runs"]),
                          "%.1fs rfc2136 (mean)" % ref, "%.2f" % ratio,
                          "<=1.3",
                          ok=ratio <= 1.3)
            c = res["counter"]
            if name == "cloudflare":
                n = nreq
                table.add("API requests/record, cloudflare (server)",
                          "%d / %d = %.3f" % (n, ndom, n / ndom), "", "",
                          "<=0.02", ok=n / ndom <= 0.02)
            if c is not None:
                table.add("API requests/record, %s (dkimkeyd)" % name,
                          "%d / %d = %.3f" % (c[1], c[0],
                                              c[1] / max(1, c[0])),
                          "", "", "<=0.02", ok=c[1] / max(1, c[0]) <= 0.02)
        if quick:
            table.note("providers: --quick rotates %d domains; one batch "
                       "then carries all, and the fixed requests (zone "
                       "lookup, listing) weigh more per record than at "
                       "1,000" % ndom)
    finally:
        if cf is not None:
            cf.stop()
        if pd is not None:
            pd.cleanup()
        if bind is not None:
            bind.cleanup()
        if not harness.KEEP:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv):
    harness.exit_cleanly_on_signals()
    table = common.Table()
    ndom = None
    for a in argv[1:]:
        if a.startswith("--domains="):
            ndom = int(a.split("=", 1)[1])
    run(table, quick="--quick" in argv, ndom=ndom)
    sys.stdout.write(table.render())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
