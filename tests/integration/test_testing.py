"""testing = (t=y period) end to end against BIND: the first key goes out
with t=y, status shows the period and its end, check calls the flag
intended (OK, with a note); once the period after the first activation
has passed, `run --once` republishes the same key without t=y, status
says the period ended and check is plain OK.  A key rotated in after the
period never carries t=y.  (An unintended t=y stays a WARNING:
test_check.check_testing_flag_is_warning.)"""

import json
import time

from harness import key_status, run, run_ok

PERIOD = 6


def _record(env, s, selector):
    txt = env.bind.query_txt(s.selector_name(selector))
    assert len(txt) == 1, txt
    return txt[0]


def _status(s):
    return json.loads(run_ok(s, "status", "--json"))["domains"][0]


def test_testing_period_t_y_then_republished_without(env):
    s = env.config(extra_domain_lines=("testing = %ds" % PERIOD,))
    r = run(s, "configtest")
    assert r.code == 0, r.describe()
    run_ok(s, "rotate", "--domain", s.domain)
    rec = _record(env, s, "mail1")
    assert "t=y" in rec.replace(" ", ""), rec
    st = _status(s)
    assert st["testing"] == PERIOD, st
    active = key_status(s, "mail1")["active"]
    assert st["testing_until"] == active + PERIOD, st
    assert [k["testing"] for k in st["keys"]] == [True], st
    r = run(s, "status")
    assert "testing (t=y) 6s: until" in r.out, r.describe()
    r = run(s, "check", "--domain", s.domain)
    assert r.code == 0, r.describe()
    assert "note: " in r.out and "t=y (testing period" in r.out, \
        r.describe()
    # Nothing changes before the end.
    if time.time() < active + PERIOD - 1:
        r = run(s, "run", "--once")
        assert r.code == 0, r.describe()
        assert "t=y" in _record(env, s, "mail1").replace(" ", "")
    while time.time() < active + PERIOD + 1:
        time.sleep(0.5)
    r = run(s, "run", "--once")
    assert r.code == 0, r.describe()
    assert "event=untested" in r.err + r.out, r.describe()
    rec = _record(env, s, "mail1")
    assert "t=" not in rec.replace(" ", ""), rec
    assert "p=" in rec, rec
    st = _status(s)
    assert [k["testing"] for k in st["keys"]] == [False], st
    assert key_status(s, "mail1")["state"] == "active"
    r = run(s, "status")
    assert "testing (t=y) 6s: ended" in r.out, r.describe()
    r = run(s, "check", "--domain", s.domain)
    assert r.code == 0 and "t=y" not in r.out, r.describe()
    # After the period, a new key goes out without t=y.
    run_ok(s, "rotate", "--domain", s.domain)
    rec = _record(env, s, "mail2")
    assert "t=" not in rec.replace(" ", ""), rec



def test_untest_killed_before_and_after_the_update_resumes(env):
    """Killed at before-untest and after-untest (the UPDATE made, the
    state not yet committed), the next run finishes the change: the
    record without t=y, the flag cleared, the key still active."""
    import os
    import subprocess
    from test_crash import CRASH_BIN
    if not os.access(CRASH_BIN, os.X_OK):
        raise AssertionError("%s missing: run `make crash`" % CRASH_BIN)
    s = env.config(extra_domain_lines=("testing = %ds" % PERIOD,))
    run_ok(s, "rotate", "--domain", s.domain)
    active = key_status(s, "mail1")["active"]
    while time.time() < active + PERIOD + 1:
        time.sleep(0.5)
    for point, served_ty in (("before-untest", True),
                             ("after-untest", False)):
        e = {k: v for k, v in os.environ.items()
             if not k.startswith("DKIMKEYD_CRASH")}
        e["DKIMKEYD_CRASH"] = point
        p = subprocess.run([CRASH_BIN, "-c", s.conf, "run", "--once"],
                           capture_output=True, text=True, timeout=120,
                           env=e)
        assert p.returncode != 0, (point, p.returncode, p.stderr)
        rec = _record(env, s, "mail1").replace(" ", "")
        assert ("t=y" in rec) == served_ty, (point, rec)
        assert _status(s)["keys"][0]["testing"] is True, point
    r = run(s, "run", "--once")
    assert r.code == 0, r.describe()
    rec = _record(env, s, "mail1").replace(" ", "")
    assert "t=" not in rec, rec
    st = _status(s)
    assert [k["testing"] for k in st["keys"]] == [False], st
    assert key_status(s, "mail1")["state"] == "active"
    r = run(s, "check", "--domain", s.domain)
    assert r.code == 0, r.describe()
