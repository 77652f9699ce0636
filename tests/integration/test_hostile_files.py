"""Files that are not what they seem: a FIFO at a state file, at an
include or given as -c is refused at once (it would block open(2)
forever), and one domain's bad file never holds up another domain."""

import os

import stat

from harness import domain_status, managed_record, run, wait_until

ROTATE = "rotate_every = 1h"


def _add_domain(s, domain):
    with open(s.conf, "a") as f:
        f.write("\n[domain %s]\nprovider = primary\nsigner = opendkim\n"
                "selectors = mail1 mail2\nttl = 2s\nretire_after = 3s\n"
                "propagation_timeout = 10s\nsafety_margin = 1s\n%s\n" %
                (domain, ROTATE))


def test_fifo_state_file_fails_fast_and_other_domains_advance(env):
    s = env.config(extra_domain_lines=(ROTATE,))
    # A second domain in the same zone, whose state file is a FIFO.
    bad = "bad.example.test"
    _add_domain(s, bad)
    fifo = s.state_file(bad)
    os.mkfifo(fifo, 0o600)

    # Every command that reads it: an error naming it, never a hang
    # (run() fails the test when its timeout passes).
    for args in (["status", "--domain", bad], ["rotate", "--domain", bad]):
        r = run(s, *args, timeout=20)
        assert r.code == 65, r.describe()
        assert fifo in r.err and "not a regular file" in r.err, \
            r.describe()
        assert r.elapsed < 10, r.describe()

    # run --once: the healthy domain is published and switched although
    # the other domain's state cannot be read, run after run.
    def done():
        r = run(s, "run", "--once", timeout=60)
        assert r.code == 65, r.describe()
        assert fifo in r.err and "not a regular file" in r.err, \
            r.describe()
        assert r.elapsed < 30, r.describe()
        for k in domain_status(s)["keys"]:
            if k["state"] == "active":
                return k["selector"]
        return None
    assert wait_until(done, 60, "run --once to activate") == "mail1"
    assert managed_record(env.bind, s, "mail1").startswith("v=DKIM1")
    # The FIFO is left as it was: never replaced, never written.
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_fifo_include_or_main_file_is_a_config_error(env):
    s = env.config()
    fifo = os.path.join(env.tmp, "more.conf")
    os.mkfifo(fifo, 0o600)
    with open(s.conf) as f:
        lines = f.read().splitlines()
    # include goes in [dkimkeyd], the second line.
    lines.insert(2, "include = %s" % fifo)
    with open(s.conf, "w") as f:
        f.write("\n".join(lines) + "\n")
    for args in (["configtest"], ["status"], ["run", "--once"]):
        r = run(s, *args, timeout=20)
        assert r.code == 78, r.describe()
        assert ("%s:3: include %s: not a regular file" % (s.conf, fifo)) \
            in r.err, r.describe()

    r = run(fifo, "configtest", timeout=20)
    assert r.code == 78, r.describe()
    assert fifo in r.err and "not a regular file" in r.err, r.describe()


def test_huge_comment_line_is_refused_naming_the_line(env):
    s = env.config()
    with open(s.conf, "a") as f:
        f.write("# " + "x" * (4 * 1024 * 1024) + "\n")
    n = sum(1 for _ in open(s.conf))
    r = run(s, "configtest", timeout=20)
    assert r.code == 78, r.describe()
    assert "%s:%d: line too long" % (s.conf, n) in r.err, r.describe()


def test_daemon_with_a_fifo_state_file_serves_the_others_and_stops(env):
    """The daemon: the domain whose state file is a FIFO fails alone, the
    healthy one is rotated, and SIGTERM ends the daemon."""
    import signal
    from test_daemon import Daemon
    s = env.config(extra_domain_lines=(ROTATE,))
    bad = "bad.example.test"
    _add_domain(s, bad)
    fifo = s.state_file(bad)
    os.mkfifo(fifo, 0o600)
    d = Daemon(s)
    try:
        def active():
            assert d.alive(), d.describe()
            for k in domain_status(s)["keys"]:
                if k["state"] == "active":
                    return k["selector"]
            return None
        assert wait_until(active, 60, "the daemon to activate") == "mail1"
        assert fifo in d.err() and "not a regular file" in d.err(), \
            d.describe()
        d.signal(signal.SIGTERM)
        d.wait_exit(20)
    finally:
        d.stop()
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
