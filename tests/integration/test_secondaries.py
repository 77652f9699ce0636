"""A BIND primary with two secondaries (NOTIFY + IXFR) where the second
secondary is stopped: the signer is not switched while that secondary does
not serve the new record, and the rotation completes without operator
action once it is back, in one `rotate` that keeps waiting and through
`run --once`."""

import os
import signal
import subprocess
import time

import harness
from harness import (DKIMKEYD, dkim_roundtrip, key_status, managed_record,
                     public_p, read_bytes, record_tags, rotate_and_verify,
                     run, signer_current, wait_until)
from secondaries import Cluster


def _tables(s):
    return read_bytes(s.key_table), read_bytes(s.signing_table)


def _serves(b, s, selector, kf):
    """b serves the one record of selector, with kf's public key."""
    rec = managed_record(b, s, selector)
    return rec is not None and record_tags(rec).get("p") == public_p(kf)


def _assert_switched(c, s, kf_old, restarted_at):
    sel, kf = signer_current(s)
    assert sel == "mail2" and kf != kf_old, (sel, kf)
    for b in c.servers():
        assert _serves(b, s, "mail2", kf), \
            "signer switched to mail2 but %s does not serve its key" % \
            b.addr()
    ks = key_status(s, "mail2")
    assert ks["state"] == "active", ks
    # Invariant 1: visible only once the stopped secondary was back.
    assert ks["visible"] >= int(restarted_at), \
        "mail2 visible at %d, before the stopped secondary came back at " \
        "%d: %r" % (ks["visible"], int(restarted_at), ks)
    assert ks["active"] - ks["visible"] >= 2, ks
    assert key_status(s, "mail1")["state"] == "retired"
    for b in c.servers():
        assert dkim_roundtrip(s, b, s.domain, log=c.log), \
            "message signed with mail2 does not verify against %s" % \
            b.addr()


def _assert_not_switched(c, s, sel1, kf1, tables, proc=None):
    if proc is not None:
        assert proc.poll() is None, \
            "rotate exited %s while %s did not serve the record:\n%s" % (
                proc.returncode, c.secondaries[1].addr(), _output(proc))
    assert _tables(s) == tables, \
        "signer tables changed while %s did not serve the record" % \
        c.secondaries[1].addr()
    assert signer_current(s) == (sel1, kf1)


def _hold(c, s, sel1, kf1, tables, seconds, proc=None):
    """For `seconds`: the signer stays on mail1; then mail2 is still
    published and not visible, mail1 still active."""
    end = time.monotonic() + seconds
    while True:
        _assert_not_switched(c, s, sel1, kf1, tables, proc)
        if time.monotonic() >= end:
            break
        time.sleep(0.25)
    ks = key_status(s, "mail2")
    assert ks is not None and ks["state"] == "published", ks
    assert ks["visible"] is None and ks["active"] is None, ks
    assert key_status(s, "mail1")["state"] == "active"


def _output(proc):
    """What a finished rotate printed."""
    if proc.poll() is None:
        return "(still running)"
    out, err = proc.communicate(timeout=10)
    return "--- stdout:\n%s--- stderr:\n%s" % (out, err)


def _published_upstream(c, s, proc=None):
    """mail2 reached the primary and, by NOTIFY, the first secondary; the
    second secondary (stopped, or not notified) does not serve it."""
    def on_primary():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(
                "rotate exited %s before publishing mail2 (the stopped "
                "secondary %s should delay activation, not publication):"
                "\n%s" % (proc.returncode, c.secondaries[1].addr(),
                          _output(proc)))
        return managed_record(c.primary, s, "mail2") is not None
    wait_until(on_primary, 30, "mail2 on the primary", interval=0.1)
    rec = managed_record(c.primary, s, "mail2")
    wait_until(lambda: managed_record(c.secondaries[0], s, "mail2") == rec,
               10, "mail2 on %s by NOTIFY" % c.secondaries[0].addr(),
               interval=0.1)
    lag = c.secondaries[1]
    if lag.running():
        assert managed_record(lag, s, "mail2") is None, \
            "%s was meant to miss the NOTIFY" % lag.addr()


def _popen_rotate(s):
    return subprocess.Popen(
        [DKIMKEYD, "-c", s.conf, "rotate", "--domain", s.domain],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
        preexec_fn=harness._die_with_parent)


def _finish(proc, lag):
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError("rotate still running 60s after %s came back"
                             % lag.addr())
    assert proc.returncode == 0 and err == "", \
        "rotate exit %s\n--- stdout:\n%s--- stderr:\n%s" % (
            proc.returncode, out, err)


def _kill(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    for f in (proc.stdout, proc.stderr):
        if f is not None and not f.closed:
            f.close()


def _first_rotation_without_notify(c, **kw):
    """mail1 active and served by all three servers when the second
    secondary gets no NOTIFY: rotate with the first two probed only,
    bring the second up to date by restarting it, then probe all three.
    Returns (setup, keyfile of mail1)."""
    lag = c.secondaries[1]
    s = c.config(probe=[c.primary, c.secondaries[0]], **kw)
    sel1, kf1 = rotate_and_verify(c, s, "mail1")
    assert managed_record(lag, s, "mail1") is None, \
        "%s was meant to miss the NOTIFY" % lag.addr()
    lag.stop()
    lag.start()
    wait_until(lambda: _serves(lag, s, "mail1", kf1), 10,
               "mail1 on %s after its restart" % lag.addr(), interval=0.2)
    c.set_probe(s)
    assert signer_current(s) == (sel1, kf1)
    return s, kf1


def test_secondaries_rotate_waits_for_stopped_secondary(env):
    c = Cluster(env)
    lag = c.secondaries[1]
    s = c.config(propagation_timeout="60s")
    sel1, kf1 = rotate_and_verify(c, s, "mail1")
    for b in c.servers():
        assert _serves(b, s, "mail1", kf1), b.addr()

    lag.stop()
    tables = _tables(s)
    proc = _popen_rotate(s)
    try:
        _published_upstream(c, s, proc)
        _hold(c, s, sel1, kf1, tables, 4, proc)
        restarted_at = time.time()
        lag.start()
        _finish(proc, lag)
    finally:
        _kill(proc)
    _assert_switched(c, s, kf1, restarted_at)


def test_secondaries_rotate_waits_for_secondary_that_missed_notify(env):
    # The second secondary misses the NOTIFY, then is stopped while the
    # rotation waits for it, and catches up by itself when started again.
    c = Cluster(env, notify_both=False)
    lag = c.secondaries[1]
    s, kf1 = _first_rotation_without_notify(c, propagation_timeout="60s")
    sel1 = "mail1"

    tables = _tables(s)
    proc = _popen_rotate(s)
    try:
        _published_upstream(c, s, proc)
        _hold(c, s, sel1, kf1, tables, 2, proc)
        lag.stop()
        _hold(c, s, sel1, kf1, tables, 3, proc)
        restarted_at = time.time()
        lag.start()
        _finish(proc, lag)
    finally:
        _kill(proc)
    _assert_switched(c, s, kf1, restarted_at)


def test_secondaries_run_once_completes_after_restart(env):
    c = Cluster(env)
    lag = c.secondaries[1]
    s = c.config(propagation_timeout="3s")
    sel1, kf1 = rotate_and_verify(c, s, "mail1")

    lag.stop()
    tables = _tables(s)
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 75, r.describe()
    assert lag.addr() in r.err, \
        "message does not name the stopped server %s: %s" % (
            lag.addr(), r.describe())
    assert os.path.isfile(s.state_file()), "state file gone"
    _assert_not_switched(c, s, sel1, kf1, tables)

    # Still down: run --once has nothing it may finish.
    r = run(s, "run", "--once")
    assert r.code in (0, 75), r.describe()
    if r.code == 75:
        assert lag.addr() in r.err, r.describe()
    _assert_not_switched(c, s, sel1, kf1, tables)
    assert key_status(s, "mail1")["state"] == "active"

    restarted_at = time.time()
    lag.start()

    def activated():
        r = run(s, "run", "--once")
        assert r.code in (0, 75), r.describe()
        return signer_current(s)[0] == "mail2"
    wait_until(activated, 30, "run --once to activate mail2 after %s came "
               "back" % lag.addr(), interval=0.5)
    _assert_switched(c, s, kf1, restarted_at)
    r = run(s, "run", "--once")
    assert r.code == 0 and r.err == "", r.describe()


def test_secondaries_run_once_after_propagation_timeout(env):
    # rotate gives up after propagation_timeout (3s) naming the secondary
    # that lacks the record; that secondary is then stopped; run --once
    # keeps the state and finishes once the secondary is back.
    c = Cluster(env, notify_both=False)
    lag = c.secondaries[1]
    s, kf1 = _first_rotation_without_notify(c, propagation_timeout="3s")
    sel1 = "mail1"

    tables = _tables(s)
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 75, r.describe()
    # Timestamps are whole seconds: the deadline (published_at + 3) may
    # come up to a second short of 3s after the UPDATE.
    assert r.elapsed >= 2, "gave up before propagation_timeout: " + \
        r.describe()
    assert "propagation_timeout" in r.err, r.describe()
    assert lag.addr() in r.err, \
        "message does not name the lagging server %s: %s" % (
            lag.addr(), r.describe())
    for b in (c.primary, c.secondaries[0]):
        assert b.addr() + ":" not in r.err, \
            "message names %s, which serves the record: %s" % (
                b.addr(), r.describe())
    _published_upstream(c, s)
    _hold(c, s, sel1, kf1, tables, 0)

    lag.stop()
    r = run(s, "run", "--once")
    assert r.code in (0, 75), r.describe()
    if r.code == 75:
        assert lag.addr() in r.err, r.describe()
    _hold(c, s, sel1, kf1, tables, 0)

    restarted_at = time.time()
    lag.start()

    def activated():
        r = run(s, "run", "--once")
        assert r.code in (0, 75), r.describe()
        return signer_current(s)[0] == "mail2"
    wait_until(activated, 30, "run --once to activate mail2 after %s came "
               "back" % lag.addr(), interval=0.5)
    _assert_switched(c, s, kf1, restarted_at)
    r = run(s, "run", "--once")
    assert r.code == 0 and r.err == "", r.describe()
