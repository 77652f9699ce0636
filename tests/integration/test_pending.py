"""Keys made ahead in idle time (daemon/key_pending.c): after a rotation
the daemon makes the next rotation's key for the idle selector, saved in
key_dir and in no state, never published; it survives a crash (SIGKILL),
a restarted daemon does not make a second one, and the next rotation uses
it instead of generating.  pregenerate = no turns it off."""

import os
import re
import signal
import time

from harness import domain_status, managed_record, read_bytes, run, \
    wait_until
from test_daemon import Daemon, Notify, wait_active

PENDING = re.compile(r"event=pending selector=(\S+) key-id=([0-9a-f]+)")


def pending_files(s, selector):
    prefix = "%s.%s." % (s.domain, selector)
    return sorted(f for f in os.listdir(s.key_dir)
                  if f.startswith(prefix) and f.endswith(".pem"))


def test_next_key_made_ahead_pending_and_adopted_after_a_crash(env):
    s = env.config(extra_domain_lines=("rotate_every = 1m",))
    d = Daemon(s)
    try:
        assert wait_active(s, daemon=d) == "mail1"
        # Idle now: the next rotation's key (selector mail2) is made.
        m = wait_until(lambda: PENDING.search(d.out()), 30,
                       "a pending key on the daemon's stdout:\n" +
                       d.describe())
        assert m.group(1) == "mail2", d.describe()
        key_id = m.group(2)
        files = pending_files(s, "mail2")
        assert files == ["%s.mail2.%s.pem" % (s.domain, key_id)], files
        path = os.path.join(s.key_dir, files[0])
        assert os.stat(path).st_mode & 0o777 == 0o600
        assert b"PRIVATE KEY" in read_bytes(path)
        # Pending: in no state, not in DNS.
        state = read_bytes(s.state_file()).decode()
        assert key_id not in state and files[0] not in state, state
        assert [k["selector"] for k in domain_status(s)["keys"]] == [
            "mail1"]
        assert managed_record(env.bind, s, "mail2") is None
        # A crash (no chance to clean up) keeps it.
        os.kill(d.pid, signal.SIGKILL)
        d.proc.wait(timeout=20)
    finally:
        d.stop()
    assert pending_files(s, "mail2") == files

    # A restarted daemon finds it: no second key for the same rotation.
    note = Notify(env.tmp)
    d2 = Daemon(s, notify=note)
    try:
        note.wait_for("READY=1")
        time.sleep(3)
        assert d2.alive(), d2.describe()
        assert "event=pending" not in d2.out(), d2.describe()
        assert pending_files(s, "mail2") == files
        d2.signal(signal.SIGTERM)
        assert d2.wait_exit() == 0, d2.describe()
    finally:
        d2.stop()
        note.close()

    # The next rotation (here by hand: the same generation step) adopts
    # it instead of generating, and only now publishes it.
    r = run(s, "rotate", "--domain", s.domain, timeout=60)
    assert r.code == 0, r.describe()
    assert "adopting key %s" % key_id in r.out + r.err, r.describe()
    keys = domain_status(s)["keys"]
    assert [(k["selector"], k["key_id"]) for k in keys][-1] == (
        "mail2", key_id), keys
    rec = managed_record(env.bind, s, "mail2")
    assert rec is not None and "p=" in rec, rec
    assert pending_files(s, "mail2") == files


def test_pregenerate_no_makes_no_key_ahead(env):
    s = env.config(extra_domain_lines=("rotate_every = 1m",))
    with open(s.conf) as f:
        text = f.read()
    text = text.replace("[dkimkeyd]\n", "[dkimkeyd]\npregenerate = no\n", 1)
    assert "pregenerate = no" in text, text
    with open(s.conf, "w") as f:
        f.write(text)
    d = Daemon(s)
    try:
        assert wait_active(s, daemon=d) == "mail1"
        d.expect("event=active")
        time.sleep(3)
        assert d.alive(), d.describe()
        assert "event=pending" not in d.out(), d.describe()
        assert pending_files(s, "mail2") == []
    finally:
        d.stop()
