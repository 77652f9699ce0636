#!/usr/bin/python3
"""make bench: every benchmark, one table.

    /usr/bin/python3 tests/bench/run.py [--quick] [--only rotation|providers|probe|pg|fleet]
    /usr/bin/python3 tests/bench/run.py --scale [--quick]

bench_rotation.py  bulk rotation of 1,000 domains (TXT and CNAME mode)
                   against sequential openssl key generation; daemon RSS
                   per domain and idle CPU; UPDATE messages per record
bench_providers.py bulk rotation through powerdns (a real pdns_server)
                   and cloudflare (the API test server) against rfc2136,
                   and API requests per published record
bench_probe.py     `check` over 10,000 selectors x 2 servers against
                   dnsperf and opendkim-testkey
bench_pg.py        `run --once` with nothing due at 10,000 domains with
                   backend = postgresql (a real PostgreSQL) against the
                   state directory
bench_fleet.py     a rotation of 1,000 domains with 3 agents (hosts =)
                   against the single-host rotation, both on PostgreSQL;
                   statements of a daemon renewing 10,000 leases
bench_scale.py     (--scale only) configtest, status, run --once, check
                   and every --domain command at 10,000 and 100,000
                   domains: growth factors, --domain against configtest,
                   check against dnsperf, check's peak RSS per domain

--quick: 200 domains and 2,000 selectors, shorter reference runs: a
smoke run in about a minute (with --scale: 1,000 and 10,000 domains).  Every figure is a ratio against a
reference measured in this run, or a per-unit figure; nothing is
compared with a fixed wall-clock time.  The table also goes to
build/bench-results.txt (BENCH_RESULTS overrides).  Exit status 0 when
every benchmark ran (a target missed is reported, not an error), 1 when
one could not run.
"""

import argparse
import os
import platform
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench_fleet  # noqa: E402
import bench_pg  # noqa: E402
import bench_probe  # noqa: E402
import bench_providers  # noqa: E402
import bench_rotation  # noqa: E402
import bench_scale  # noqa: E402
import common  # noqa: E402
from common import harness  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
RESULTS = os.environ.get("BENCH_RESULTS",
                         os.path.join(REPO, "build", "bench-results.txt"))


def main(argv):
    ap = argparse.ArgumentParser(prog="tests/bench/run.py")
    ap.add_argument("--quick", action="store_true",
                    help="small sizes: a smoke run")
    ap.add_argument("--only", choices=("rotation", "providers", "probe",
                                         "pg", "fleet"))
    ap.add_argument("--scale", action="store_true",
                    help="growth from 10k to 100k domains (bench_scale)")
    args = ap.parse_args(argv[1:])
    harness.exit_cleanly_on_signals()
    if not os.access(common.DKIMKEYD, os.X_OK):
        sys.stderr.write("bench: dkimkeyd binary not found: %s (set "
                         "DKIMKEYD)\n" % common.DKIMKEYD)
        return 1
    table = common.Table()
    load0 = os.getloadavg()[0]
    failed = 0
    t0 = time.monotonic()
    mods = (("scale", bench_scale),) if args.scale else (
        ("rotation", bench_rotation), ("providers", bench_providers),
        ("probe", bench_probe), ("pg", bench_pg),
        ("fleet", bench_fleet))
    for name, mod in mods:
        if args.only is not None and args.only != name:
            continue
        try:
            mod.run(table, quick=args.quick)
        except Exception as e:  # noqa: BLE001 - reported in the table
            failed += 1
            table.add("%s benchmark" % name, "did not run", ok=False)
            table.note("%s: %s" % (name, e))
            traceback.print_exc()
    elapsed = time.monotonic() - t0
    # Other work on the machine skews the ratios: say how busy it was.
    head = ("dkimkeyd benchmarks (%s), %s, %d CPUs, %s\n"
            "binary %s; %.0fs in all; load average %.2f at start, %.2f "
            "at end\n\n" % (
                "quick" if args.quick else "full",
                time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                os.cpu_count() or 0, platform.machine(), common.DKIMKEYD,
                elapsed, load0, os.getloadavg()[0]))
    text = head + table.render()
    sys.stdout.write("\n" + text)
    try:
        os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
        with open(RESULTS, "w") as f:
            f.write(text)
        sys.stdout.write("(also in %s)\n" % RESULTS)
    except OSError as e:
        sys.stderr.write("bench: %s: %s\n" % (RESULTS, e))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
