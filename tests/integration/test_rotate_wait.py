"""rotate says at the start how long activation will wait and why (the
SOA negative TTL for a name that held no record), on stdout only: -q
silences it and stderr stays empty on success."""

import re

from harness import run


def test_rotate_prints_expected_wait_and_reason(env):
    s = env.config()
    r = run(s, "rotate", "--domain", "example.test")
    assert r.code == 0 and r.err == "", r.describe()
    lines = r.out.splitlines()
    i = [n for n, ln in enumerate(lines) if "activation expected" in ln]
    assert len(i) == 1, "no single expected-wait line: " + r.describe()
    line = lines[i[0]]
    # The test zones' SOA negative TTL is 1s, safety_margin 1s.
    assert re.search(r"selector mail1: activation expected about 2s ", line) \
        and "SOA negative TTL" in line and " 1s plus safety_margin 1s" in \
        line, line
    # It comes before the record is checked on the servers and the switch.
    act = [n for n, ln in enumerate(lines) if "event=active" in ln]
    assert act and i[0] < act[0], r.describe()
    # -q: nothing at all; a second rotation says it again.
    r = run(s, "-q", "rotate", "--domain", "example.test")
    assert r.code == 0 and r.out == "" and r.err == "", r.describe()
