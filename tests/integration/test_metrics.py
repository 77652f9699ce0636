"""metrics_file shared by `run` (daemon and --once) and `check`: rotation
and error counters that keep counting across runs and restarts, each
writer keeping the other's families, a damaged file reported and replaced,
and a file that is always valid Prometheus text format."""

import base64
import os
import re
import signal

from harness import run, wait_until
from test_daemon import ROTATE, Daemon, active_selector, wait_active

TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
SAMPLE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)'
    r'(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
    r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*)?\})?'
    r' (\S+)( -?\d+)?$')
RUN_FAMILIES = ("dkimkeyd_rotations_total", "dkimkeyd_step_errors_total",
                "dkimkeyd_last_run_timestamp_seconds",
                "dkimkeyd_start_time_seconds",
                "dkimkeyd_scheduled_step_timestamp_seconds",
                "dkimkeyd_domain_backoff_seconds")
CHECK_FAMILIES = ("dkimkeyd_check_status", "dkimkeyd_server_ok",
                  "dkimkeyd_check_timestamp_seconds")


def parse_exposition(text):
    """Check text is valid exposition format, every sample under a
    # TYPE of its family, each family's lines together; returns
    {family: (type, {labels: value})}."""
    assert text.endswith("\n"), "no final newline: %r" % text
    fams, cur, closed = {}, None, set()
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d %r in:\n%s" % (n, line, text)
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if name != cur:
                    assert name not in fams and name not in closed, \
                        "family split up: " + where
                    if cur is not None:
                        closed.add(cur)
                    cur = name
                if parts[1] == "TYPE":
                    assert name not in fams, "second TYPE: " + where
                    assert len(parts) == 4 and parts[3] in TYPES, where
                    fams[name] = (parts[3], {})
            continue
        assert line.strip() != "" or line == "", where
        if line == "":
            continue
        m = SAMPLE.match(line)
        assert m, "bad sample line: " + where
        name = m.group(1)
        fam = cur
        assert fam is not None and fam in fams, "no # TYPE: " + where
        ok = {name}
        if fams[fam][0] in ("histogram", "summary"):
            ok |= {fam + "_sum", fam + "_count"}
        if fams[fam][0] == "histogram":
            ok.add(fam + "_bucket")
        assert name == fam or name in ok and name.startswith(fam), \
            "sample outside its family: " + where
        float(m.group(3).replace("Inf", "inf"))
        fams[fam][1][m.group(2) or ""] = float(m.group(3).replace(
            "Inf", "inf"))
    return fams


def read_metrics(path):
    with open(path) as f:
        text = f.read()
    return text, parse_exposition(text)


def value(fams, family, domain="example.test"):
    assert family in fams, "%s missing: %r" % (family, sorted(fams))
    return fams[family][1].get('{domain="%s"}' % domain)


def metrics_config(env, **kw):
    s = env.config(**kw)
    mdir = os.path.join(env.tmp, "textfile")
    os.makedirs(mdir, exist_ok=True)
    path = os.path.join(mdir, "dkimkeyd.prom")
    with open(s.conf) as f:
        text = f.read()
    text = text.replace("[dkimkeyd]\n", "[dkimkeyd]\nmetrics_file = %s\n" %
                        path, 1)
    with open(s.conf, "w") as f:
        f.write(text)
    return s, path


def break_tsig(s):
    bad = base64.b64encode(os.urandom(32)).decode()
    with open(s.tsig_key_file) as f:
        text = f.read()
    with open(s.tsig_key_file, "w") as f:
        f.write(re.sub(r'secret\s+"[^"]+"', 'secret "%s"' % bad, text))
    os.chmod(s.tsig_key_file, 0o600)


def once(s, code=0):
    r = run(s, "run", "--once")
    assert r.code == code, r.describe()
    if code == 0:
        assert r.err == "", r.describe()
    return r


def rotate_with_once(s):
    once(s)
    wait_until(lambda: once(s) and active_selector(s), 30,
               "run --once to activate")


# -- tests ------------------------------------------------------------------

def test_run_once_rotation_counter_survives_runs_and_check(env):
    s, path = metrics_config(env, extra_domain_lines=(ROTATE,))
    rotate_with_once(s)
    _, fams = read_metrics(path)
    for fam in RUN_FAMILIES:
        assert fam in fams, "%s missing: %r" % (fam, sorted(fams))
    assert fams["dkimkeyd_rotations_total"][0] == "counter"
    assert value(fams, "dkimkeyd_rotations_total") == 1, fams
    assert value(fams, "dkimkeyd_step_errors_total") == 0, fams
    assert value(fams, "dkimkeyd_active_key_activated_timestamp_seconds") \
        > 0, fams
    last = fams["dkimkeyd_last_run_timestamp_seconds"][1][""]

    # A later run has nothing to rotate: the count is read back, not
    # restarted from zero.
    once(s)
    _, fams = read_metrics(path)
    assert value(fams, "dkimkeyd_rotations_total") == 1, fams
    assert fams["dkimkeyd_last_run_timestamp_seconds"][1][""] >= last

    # check adds its families and keeps the run's.
    r = run(s, "check")
    assert r.code == 0 and r.err == "", r.describe()
    _, fams = read_metrics(path)
    for fam in RUN_FAMILIES + CHECK_FAMILIES:
        assert fam in fams, "%s missing after check: %r" % (fam,
                                                            sorted(fams))
    assert value(fams, "dkimkeyd_rotations_total") == 1, fams
    # ... and the run keeps check's.
    once(s)
    _, fams = read_metrics(path)
    for fam in RUN_FAMILIES + CHECK_FAMILIES:
        assert fam in fams, "%s missing after run: %r" % (fam, sorted(fams))
    assert value(fams, "dkimkeyd_check_status") == 0, fams
    assert value(fams, "dkimkeyd_rotations_total") == 1, fams
    # Nothing else in the collector's directory: no temporary or lock
    # file left behind.
    assert os.listdir(os.path.dirname(path)) == ["dkimkeyd.prom"], \
        os.listdir(os.path.dirname(path))


def test_run_once_failed_step_counts_an_error_each_run(env):
    s, path = metrics_config(env, extra_domain_lines=(ROTATE,))
    break_tsig(s)
    r = once(s, 69)
    assert "BADSIG" in r.err, r.describe()
    _, fams = read_metrics(path)
    assert value(fams, "dkimkeyd_step_errors_total") == 1, fams
    assert value(fams, "dkimkeyd_rotations_total") == 0, fams
    once(s, 69)
    _, fams = read_metrics(path)
    assert value(fams, "dkimkeyd_step_errors_total") == 2, fams


def test_daemon_counts_rotation_keeps_check_families_across_restart(env):
    s, path = metrics_config(env, extra_domain_lines=(ROTATE,))
    d = Daemon(s)
    try:
        wait_active(s, daemon=d)

        def rotated():
            if not os.path.exists(path):
                return None
            return value(read_metrics(path)[1],
                         "dkimkeyd_rotations_total") == 1
        wait_until(rotated, 10, "rotations_total 1 in %s" % path)
        _, fams = read_metrics(path)
        started = fams["dkimkeyd_start_time_seconds"][1][""]
        assert value(fams, "dkimkeyd_domain_backoff_seconds") == 0, fams
        r = run(s, "check")
        assert r.code == 0 and r.err == "", r.describe()
        d.signal(signal.SIGTERM)
        assert d.wait_exit() == 0, d.describe()
        assert d.err() == "", d.describe()
    finally:
        d.stop()
    # The shutdown write kept check's families.
    _, fams = read_metrics(path)
    for fam in RUN_FAMILIES + CHECK_FAMILIES:
        assert fam in fams, "%s missing after shutdown: %r" % (
            fam, sorted(fams))
    # A new daemon starts from the file's counts.
    d = Daemon(s)
    try:
        wait_until(lambda: read_metrics(path)[1][
            "dkimkeyd_start_time_seconds"][1][""] != started or None, 10,
            "the new daemon's start write")
        _, fams = read_metrics(path)
        assert value(fams, "dkimkeyd_rotations_total") == 1, fams
        assert "dkimkeyd_check_status" in fams, sorted(fams)
    finally:
        d.stop()
    assert d.err() == "", d.describe()


def test_daemon_failed_step_counts_error_and_backoff(env):
    s, path = metrics_config(env, extra_domain_lines=(ROTATE,))
    break_tsig(s)
    d = Daemon(s)
    try:
        def failed():
            if not os.path.exists(path):
                return None
            fams = read_metrics(path)[1]
            return (value(fams, "dkimkeyd_step_errors_total") or 0) >= 1
        wait_until(failed, 20, "step_errors_total 1 in %s\n%s" % (
            path, d.describe()))
        _, fams = read_metrics(path)
        assert value(fams, "dkimkeyd_step_errors_total") == 1, fams
        assert value(fams, "dkimkeyd_domain_backoff_seconds") >= 30, fams
        assert value(fams, "dkimkeyd_scheduled_step_timestamp_seconds") > \
            fams["dkimkeyd_last_run_timestamp_seconds"][1][""], fams
        assert "BADSIG" in d.err(), d.describe()
    finally:
        d.stop()


def test_corrupt_metrics_file_is_reported_then_replaced(env):
    s, path = metrics_config(env)
    foreign = ("# HELP other_up Another program's family.\n"
               "# TYPE other_up gauge\n"
               "other_up 1\n")
    with open(path, "w") as f:
        f.write(foreign + "dkimkeyd_rotations_total{domain=\"example.test\""
                " 7\n\x01garbage\n")
    r = run(s, "run", "--once")
    assert r.code == 0, r.describe()
    assert "%s:4:" % path in r.err, r.describe()
    text, fams = read_metrics(path)
    assert foreign in text, text
    # The damaged counter family was dropped: it starts again at 0.
    assert value(fams, "dkimkeyd_rotations_total") == 0, fams
    once(s)
    # check too names the file, and leaves a valid one.
    with open(path, "a") as f:
        f.write("dkimkeyd_check_status{domain=} x\n")
    r = run(s, "check")
    assert path in r.err, r.describe()
    text, fams = read_metrics(path)
    assert foreign in text and "dkimkeyd_check_status" in fams, text
    assert "dkimkeyd_rotations_total" in fams, text
    r = run(s, "check")
    assert path not in r.err, r.describe()
