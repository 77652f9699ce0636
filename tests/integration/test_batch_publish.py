"""run --once publishes a batch of records held by several provider
sections: every section's UPDATE goes out before any domain's publication
is committed, so that state commits never space the messages out."""

import os
import subprocess

from harness import HarnessError, read_bytes, zones
from test_crash import CRASH_BIN

N = 6


@zones("example.test")
def test_batch_updates_back_to_back_across_sections(env):
    if not os.access(CRASH_BIN, os.X_OK):
        raise HarnessError("crash-point binary %s not found: build it with "
                           "`make crash`" % CRASH_BIN)
    s = env.config(algorithm="ed25519")
    with open(s.conf) as f:
        text = f.read()
    at = text.index("[domain ")
    head, dom = text[:at], text[at:]
    prim = head[head.index("[provider primary]"):]
    prim = prim[:prim.index("\n\n") + 2]
    head += prim.replace("[provider primary]", "[provider second]")
    doms = ["b%d.example.test" % i for i in range(N)]
    for i, d in enumerate(doms):
        sec = dom.replace("[domain example.test]", "[domain %s]" % d)
        if i % 2:
            sec = sec.replace("provider = primary", "provider = second")
        head += sec + "rotate_every = 1m\n\n"
    with open(s.conf, "w") as f:
        f.write(head)
    trace = os.path.join(env.tmp, "trace")
    e = dict(os.environ, DKIMKEYD_CRASH_TRACE=trace)
    p = subprocess.run([CRASH_BIN, "-c", s.conf, "run", "--once"],
                       capture_output=True, text=True, timeout=300, env=e,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0 and p.stderr == "", p.stdout + p.stderr
    assert "published %d records in 2 UPDATE messages" % N in p.stdout, \
        p.stdout
    pts = read_bytes(trace).decode().split()
    first = pts.index("before-publish")
    last = len(pts) - 1 - pts[::-1].index("after-publish")
    between = pts[first:last + 1]
    assert between.count("before-publish") == 2, between
    assert "before-commit" not in between, \
        "a state commit between the sections' UPDATEs: %s" % between
