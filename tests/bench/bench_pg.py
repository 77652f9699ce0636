"""backend = postgresql against the state directory at 10,000 domains.

    /usr/bin/python3 tests/bench/bench_pg.py [--quick]

The 10,000-domain setup of bench_scale (every domain with an active
RSA-2048 key, nothing due: rotate_every is a year), timed once over the
state directory, then moved into a real PostgreSQL (initdb in a temp dir,
on loopback, started and stopped by PID) with `db import` and timed again
with backend = postgresql: `run --once` with nothing due, the median of
a few whole-process runs each.  Printed: the ratio (target <= 3x).
"""

import os
import shutil
import sys
import tempfile

import bench_scale
import common
from common import harness, log

from pg import Postgres  # tests/integration, on common's path


def use_pg(conf, pg, tmp):
    ci = pg.write_conninfo(os.path.join(tmp, "conninfo"))
    with open(conf) as f:
        text = f.read()
    text = text.replace("[dkimkeyd]\n", "[dkimkeyd]\nbackend = postgresql\n"
                        "conninfo_file = %s\n" % ci, 1)
    path = conf + ".pg"
    common.write_text(path, text)
    return path


def run(table, quick=False):
    n = 1000 if quick else 10000
    runs = 3
    tmp = tempfile.mkdtemp(prefix="dkimkeyd-bench-pg-")
    pg = None
    try:
        log("templates: rotating %d domains" % bench_scale.NTPL)
        tpl = bench_scale.make_templates(os.path.join(tmp, "tpl"))
        log("building %d domains" % n)
        bind, conf = bench_scale.build(os.path.join(tmp, "n"), n, tpl)
        try:
            argv = [common.DKIMKEYD, "-c", conf, "run", "--once"]
            log("%d domains, state directory: run --once" % n)
            d_dir, rss_dir, _ = bench_scale.median_run(argv, runs)
            pg = Postgres().start().create_db()
            pconf = use_pg(conf, pg, tmp)
            code, out, err, _ = common.dkimkeyd(pconf, "db", "init")
            if code != 0:
                raise harness.HarnessError("db init: %d %s" % (code, err))
            log("%d domains: db import" % n)
            code, out, err, _ = common.dkimkeyd(pconf, "db", "import")
            if code != 0:
                raise harness.HarnessError("db import: %d %s" % (code, err))
            rows = pg.psql("SELECT count(*) FROM dk_state")
            if rows != [[str(n)]]:
                raise harness.HarnessError("db import: %r rows" % rows)
            argv = [common.DKIMKEYD, "-c", pconf, "run", "--once"]
            log("%d domains, postgresql: run --once" % n)
            d_pg, rss_pg, out = bench_scale.median_run(argv, runs)
        finally:
            bind.cleanup()
        ratio = d_pg / d_dir
        table.add("run --once, nothing due, %dk domains: postgresql / "
                  "state directory" % (n // 1000),
                  "%.3fs (peak %d KiB)" % (d_pg, rss_pg),
                  "state_dir %.3fs (peak %d KiB)" % (d_dir, rss_dir),
                  "%.2f" % ratio, "<=3", ok=ratio <= 3)
        table.note("pg: PostgreSQL on loopback in a temp dir (initdb by "
                   "the harness), state moved in with db import; median "
                   "of %d whole-process runs each" % runs)
    finally:
        if pg is not None:
            pg.cleanup()
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
