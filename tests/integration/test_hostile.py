"""Hostile local data: a state file with a flipped bit, edited by hand,
naming a file outside key_dir, in another case or with absurd values; a
clock stepped back; a signer table that cannot be read; history that
grows; bytes that would drive a terminal.  None of it may reach DNS.

DNS writes are counted in BIND's own log ("updating zone" lines, one per
change an UPDATE applies), so that a write is seen even when it is undone
by a later one.
"""

import os
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from harness import (DKIMKEYD, asan_env, domain_status, key_status, managed_record,
                     read_bytes, rotate_and_verify, run, run_ok,
                     signer_current, snapshot_files, wait_until)

CRASH_BIN = os.environ.get("DKIMKEYD_CRASH_BIN", os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "build-crash", "dkimkeyd"))
FAKETIME = "/usr/bin/faketime"
WORKERS = 2           # dkimkeyd processes at a time in the flip test


def updates(bind):
    """How many changes BIND has applied from UPDATE messages so far."""
    with open(bind.log_path, "rb") as f:
        return len(re.findall(rb"updating zone '[^']*': (?:adding|deleting)",
                              f.read()))


def crash_run(setup, point, *args):
    """Run the crash-point build, killed at point (DKIMKEYD_CRASH)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("DKIMKEYD_CRASH")}
    env["DKIMKEYD_CRASH"] = point
    p = subprocess.run([CRASH_BIN, "-c", setup.conf] + list(args),
                       capture_output=True, text=True, timeout=120, env=env,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == -9, "not killed at %s: exit %s\n%s%s" % (
        point, p.returncode, p.stdout, p.stderr)


def unseal(data):
    """The file as written before files were sealed (a bare end line)."""
    text = data.decode()
    assert re.search(r"\nend sha256=[0-9a-f]{64}\n\Z", text), text[-120:]
    return re.sub(r"\nend sha256=[0-9a-f]{64}\n\Z", "\nend\n", text)


def write_state(setup, text):
    with open(setup.state_file(), "w") as f:
        f.write(text)


def flips(data, shift=None):
    """Every single-bit flip of data; with shift, one flip per byte (bit
    (offset + shift) mod 8, so that every bit position is flipped
    somewhere)."""
    for i in range(len(data)):
        for bit in range(8) if shift is None else ((i + shift) % 8,):
            b = bytearray(data)
            b[i] ^= 1 << bit
            yield bytes(b)


def test_every_bit_flip_at_every_lifecycle_point_writes_no_dns(env):
    """Invariant 4 for single-bit flips of the state file at five points
    of the lifecycle; each flipped file is refused with 65 by `run --once`
    (which would otherwise publish, probe, activate or revoke), and BIND
    applies no UPDATE throughout.  One bit of every byte at each point,
    the bit position moving with the offset and the point, so that every
    position of every byte is flipped at one point or another;
    DKIMKEYD_FLIPS=all flips every bit of every byte at every point
    (about 52,000 runs: minutes, not seconds).  The unit test flips every
    bit in-process."""
    every = os.environ.get("DKIMKEYD_FLIPS") == "all"
    s = env.config(retire_after="3s")
    b = env.bind
    points = []

    crash_run(s, "before-publish", "rotate", "--domain", s.domain)
    assert key_status(s, "mail1")["published"] is None
    points.append(("generated", read_bytes(s.state_file())))
    crash_run(s, "after-commit", "rotate", "--domain", s.domain)
    k = key_status(s, "mail1")
    assert k["published"] is not None and k["visible"] is None, k
    points.append(("published", read_bytes(s.state_file())))
    crash_run(s, "after-commit", "rotate", "--domain", s.domain)
    k = key_status(s, "mail1")
    assert k["visible"] is not None and k["active"] is None, k
    points.append(("visible", read_bytes(s.state_file())))
    rotate_and_verify(env, s, "mail1")
    rotate_and_verify(env, s, "mail2")
    assert key_status(s, "mail1")["state"] == "retired"
    points.append(("active+retired", read_bytes(s.state_file())))
    retired = key_status(s, "mail1")["retired"]
    wait_until(lambda: time.time() >= retired + 4, 15,
               "mail1's retire_after to pass")
    run_ok(s, "run", "--once")
    assert key_status(s, "mail1")["state"] == "revoked"
    points.append(("revoked", read_bytes(s.state_file())))

    names = [s.selector_name(x) for x in ("mail1", "mail2")]
    dns_before = [b.txt_rrset(n) for n in names]
    tables = (read_bytes(s.key_table), read_bytes(s.signing_table))
    keys = snapshot_files(s.key_dir)
    before = updates(b)
    assert before > 0, "BIND logged no UPDATE: the counter sees nothing"
    # Two workers, each with its own state_dir (a copy of the
    # configuration), so that flips run side by side.
    conf_text = read_bytes(s.conf).decode()
    workers = []
    for w in range(WORKERS):
        sd = os.path.join(env.tmp, "flip-state-%d" % w)
        os.makedirs(sd, mode=0o700)
        conf = os.path.join(env.tmp, "flip-%d.conf" % w)
        with open(conf, "w") as f:
            f.write(conf_text.replace("state_dir = %s" % s.state_dir,
                                      "state_dir = %s" % sd))
        workers.append((conf, os.path.join(sd, s.domain + ".state")))

    def one(w, flipped):
        conf, state = workers[w]
        with open(state, "wb") as f:
            f.write(flipped)
        p = subprocess.run([DKIMKEYD, "-c", conf, "run", "--once"],
                           capture_output=True, stdin=subprocess.DEVNULL,
                           timeout=60)
        return p.returncode, p.stderr

    def chunk(w, data, shift):
        n = 0
        for j, flipped in enumerate(flips(data, shift)):
            if j % WORKERS != w:
                continue
            code, err = one(w, flipped)
            n += 1
            if code != 65:
                where = (j // 8, j % 8) if shift is None else \
                    (j, (j + shift) % 8)
                return n, where + (code, err)
        return n, None

    total = 0
    counts = []
    t0 = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as ex:
        for k, (name, data) in enumerate(points):
            shift = None if every else k
            res = list(ex.map(lambda w: chunk(w, data, shift),
                              range(WORKERS)))
            counts.append(sum(n for n, _ in res))
            total += counts[-1]
            bad = [r for _, r in res if r is not None]
            assert not bad, "%s: flipping bit %d of byte %d gave exit " \
                "%s: %s" % (name, bad[0][1], bad[0][0], bad[0][2],
                            bad[0][3].decode(errors="replace"))
            env.log("%s: %d flips, all exit 65" % (name, counts[-1]))
    elapsed = time.monotonic() - t0
    assert updates(b) == before, "BIND applied %d UPDATE changes from " \
        "flipped state files" % (updates(b) - before)
    assert [b.txt_rrset(n) for n in names] == dns_before
    assert (read_bytes(s.key_table), read_bytes(s.signing_table)) == tables
    assert snapshot_files(s.key_dir) == keys
    print("hostile: %d single-bit flips at %d lifecycle points (%s), all "
          "exit 65, 0 UPDATEs, %.1fs" % (
              total, len(points), ", ".join(
                  "%s %d" % (p[0], c) for p, c in zip(points, counts)),
              elapsed))
    # The untouched file still works.
    run_ok(s, "status")


def test_public_key_that_is_not_the_private_keys_is_never_published(env):
    """A damaged public: line in a file without a seal (as written before
    files were sealed) is caught by deriving the public key from the
    private key: exit 65 before the UPDATE, and `state seal` refuses to
    seal it."""
    s = env.config()
    b = env.bind
    crash_run(s, "before-publish", "rotate", "--domain", s.domain)
    text = unseal(read_bytes(s.state_file()))
    m = re.search(r"  public: (\S+)\n", text)
    pub = m.group(1)
    i = len(pub) // 2
    other = "A" if pub[i] != "A" else "B"
    bad = text.replace(pub, pub[:i] + other + pub[i + 1:])
    write_state(s, bad)
    before = updates(b)
    r = run(s, "state", "seal", "--domain", s.domain)
    assert r.code == 65, r.describe()
    assert "public: line is not the public key" in r.err, r.describe()
    for args in (["rotate", "--domain", s.domain], ["run", "--once"]):
        r = run(s, *args)
        assert r.code == 65, r.describe()
        assert "not the one of this private key" in r.err, r.describe()
    assert updates(b) == before
    assert managed_record(b, s, "mail1") is None
    # The original, unsealed, is accepted once and sealed by its commit.
    write_state(s, text)
    rotate_and_verify(env, s, "mail1", resumed=True)
    assert re.search(rb"\nend sha256=[0-9a-f]{64}\n\Z",
                     read_bytes(s.state_file()))


def test_hand_edit_needs_state_seal(env):
    s = env.config()
    rotate_and_verify(env, s, "mail1")
    text = read_bytes(s.state_file()).decode()
    edited = text.replace("# Written by dkimkeyd", "# Edited by hand\n"
                          "# Written by dkimkeyd")
    write_state(s, edited)
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 65, r.describe()
    assert "does not match its seal" in r.err and "state seal" in r.err, \
        r.describe()
    out = run_ok(s, "state", "seal", "--domain", s.domain)
    assert "sealed" in out, out
    assert "# Edited by hand" not in read_bytes(s.state_file()).decode(), \
        "the comments are dkimkeyd's own again"
    rotate_and_verify(env, s, "mail2")
    # Usage errors.
    r = run(s, "state", "seal")
    assert r.code == 64, r.describe()
    r = run(s, "state", "--domain", s.domain)
    assert r.code == 64, r.describe()
    r = run(s, "state", "seal", "--domain", "nowhere.test")
    assert r.code == 78, r.describe()


def test_clock_stepped_back_writes_no_dns(env):
    """The key is made while the primary is down; a rerun with the clock
    120 s behind must refuse before the UPDATE (75, naming the skew), not
    write DNS and then fail to record it."""
    s = env.config()
    b = env.bind
    b.stop()
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 75, r.describe()
    assert key_status(s, "mail1")["created"] is not None
    b.start()
    before = updates(b)
    for args in (["rotate", "--domain", s.domain], ["run", "--once"]):
        # faketime preloads its library ahead of the ASan runtime, which
        # then refuses to start unless told the order is fine.
        p = subprocess.run([FAKETIME, "-f", "-120s", DKIMKEYD, "-c", s.conf]
                           + args, capture_output=True, text=True,
                           timeout=120, stdin=subprocess.DEVNULL,
                           env=asan_env(os.environ,
                                        verify_asan_link_order=0))
        assert p.returncode == 75, (args, p.returncode, p.stderr)
        assert re.search(r"the clock \(.*\) is 1[12]\ds behind the last "
                         r"step recorded", p.stderr), p.stderr
        assert updates(b) == before, "DNS written with the clock behind"
    assert managed_record(b, s, "mail1") is None
    rotate_and_verify(env, s, "mail1", resumed=True)


def test_removed_key_history_is_bounded(env):
    """keep_removed = 1 with two selectors: each selector's newest removed
    key stays (selector reuse needs it), every older one goes at the next
    commit; status lists what is left."""
    s = env.config(retire_after="0s", extra_domain_lines=[
        "keep_removed = 1"])
    seen = []
    for i in range(5):
        rotate_and_verify(env, s, ("mail1", "mail2")[i % 2])
        seen.append(key_status(s, ("mail1", "mail2")[i % 2])["key_id"])
        # Let the previous key go all the way to removed.
        deadline = time.time() + 30
        while time.time() < deadline:
            run_ok(s, "run", "--once")
            keys = domain_status(s)["keys"]
            if all(k["state"] in ("active", "removed") for k in keys):
                break
            time.sleep(0.5)
        # Selector reuse waits out the removed record's TTL (2s).
        time.sleep(s.ttl + 1)
    keys = domain_status(s)["keys"]
    ids = [k["key_id"] for k in keys]
    removed = [k for k in keys if k["state"] == "removed"]
    # Generations 1..4 were removed; 1 and 2 are past the bound.
    assert seen[0] not in ids and seen[1] not in ids, keys
    assert [k["key_id"] for k in removed] == seen[2:4], keys
    assert ids[-1] == seen[4]
    text = read_bytes(s.state_file()).decode()
    assert text.count("\nkey: ") == 3, text
    # The bound holds in the file itself, not only in status.
    assert seen[0] not in text and seen[1] not in text


def test_key_file_outside_key_dir_is_corrupt_and_never_unlinked(env):
    s = env.config(retire_after="0s")
    b = env.bind
    rotate_and_verify(env, s, "mail1")
    rotate_and_verify(env, s, "mail2")
    victim = os.path.join(env.tmp, "victim.pem")
    with open(victim, "w") as f:
        f.write("not yours\n")
    text = unseal(read_bytes(s.state_file()))
    old = key_status(s, "mail1")
    real = [l.split(": ", 1)[1] for l in text.splitlines()
            if l.startswith("  file: ")][0]
    cases = [victim, os.path.join(s.key_dir, "..", "victim.pem"),
             os.path.join(s.key_dir, os.path.basename(real) + ".x"),
             real.replace(old["key_id"], "0" * len(old["key_id"]))]
    before = updates(b)
    for path in cases:
        write_state(s, text.replace("  file: " + real, "  file: " + path))
        for args in (["run", "--once"], ["rotate", "--domain", s.domain],
                     ["state", "seal", "--domain", s.domain]):
            r = run(s, *args)
            assert r.code == 65, r.describe()
            assert "the name dkimkeyd gives that key in key_dir" in r.err, \
                r.describe()
        assert os.path.exists(victim)
    assert os.path.exists(real)
    assert updates(b) == before
    write_state(s, text)
    wait_until(lambda: run(s, "run", "--once").code == 0 and
               key_status(s, "mail1")["state"] == "removed", 20,
               "mail1 to be removed")
    assert not os.path.exists(real) and os.path.exists(victim)


def test_domain_line_in_another_case_stays_one_domain(env):
    s = env.config()
    crash_run(s, "before-publish", "rotate", "--domain", s.domain)
    text = unseal(read_bytes(s.state_file()))
    write_state(s, text.replace("domain: example.test",
                                "domain: EXAMPLE.Test"))
    rotate_and_verify(env, s, "mail1", resumed=True)
    assert sorted(f for f in os.listdir(s.state_dir)
                  if f.endswith(".state")) == ["example.test.state"]
    assert "domain: example.test\n" in read_bytes(s.state_file()).decode()
    write_state(s, unseal(read_bytes(s.state_file())).replace(
        "domain: example.test", "domain: example.org"))
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 65, r.describe()
    assert "state is for domain example.org, not example.test" in r.err


def test_absurd_state_values_are_corrupt(env):
    s = env.config()
    b = env.bind
    crash_run(s, "before-publish", "rotate", "--domain", s.domain)
    text = unseal(read_bytes(s.state_file()))
    before = updates(b)
    for old, new, why in (
            (r"  ttl: \d+", "  ttl: 4294967296", "ttl 4294967296 out of "
             "range"),
            (r"  drain: -?\d+", "  drain: 99999999999", "drain 99999999999 "
             "out of range"),
            (r"  created: \d+", "  created: 99999999999999", "created "
             "99999999999999 out of range"),
            (r"  generation: \d+", "  generation: 99999999999",
             "generation 99999999999 out of range")):
        write_state(s, re.sub(old, new, text, count=1))
        t0 = time.monotonic()
        r = run(s, "rotate", "--domain", s.domain)
        assert r.code == 65, r.describe()
        assert why in r.err, r.describe()
        assert time.monotonic() - t0 < 10, r.describe()
    assert updates(b) == before


def test_control_bytes_from_files_are_escaped(env):
    s = env.config()
    crash_run(s, "before-publish", "rotate", "--domain", s.domain)
    text = unseal(read_bytes(s.state_file()))
    # A key id of hostile bytes: the parser quotes it in its message.
    data = text.encode().replace(b"domain: example.test",
                                 b"domain: ex\xffample.test")
    with open(s.state_file(), "wb") as f:
        f.write(data)
    r = subprocess.run([DKIMKEYD, "-c", s.conf, "rotate", "--domain",
                        s.domain], capture_output=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 65, r
    assert b"\xff" not in r.stderr and b"ex\\xffample" in r.stderr, r.stderr
    with open(s.conf, "ab") as f:
        f.write(b"\x1b]0;owned\x07 = 1\n")
    r = subprocess.run([DKIMKEYD, "-c", s.conf, "configtest"],
                       capture_output=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 78, r
    assert b"\x1b" not in r.stderr and b"\x07" not in r.stderr, r.stderr
    assert b"\\x1b]0;owned\\x07" in r.stderr, r.stderr
    r = subprocess.run([DKIMKEYD, "-c", s.conf, "check"],
                       capture_output=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 3, r
    assert b"\x1b" not in r.stdout and b"\\x1b" in r.stdout, r.stdout


def test_unreadable_key_table_stops_before_publishing(env):
    """A KeyTable line over the signer's limit: the table is read before
    the UPDATE, and the failure is the signer's configuration (78), not
    dkimkeyd's state (65)."""
    s = env.config()
    b = env.bind
    original = read_bytes(s.key_table)
    with open(s.key_table, "a") as f:
        f.write("huge.invalid huge.invalid:s:/" + "x" * 17000 + "\n")
    before = updates(b)
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 78, r.describe()
    assert s.key_table in r.err and "line longer than" in r.err, \
        r.describe()
    assert "not publishing" in r.err, r.describe()
    assert "published" not in r.out, r.describe()
    assert updates(b) == before
    assert managed_record(b, s, "mail1") is None
    # Fixed, the rotation goes on from the key already made.
    with open(s.key_table, "wb") as f:
        f.write(original)
    rotate_and_verify(env, s, "mail1", resumed=True)


def test_configtest_refuses_world_writable_key_dir_and_config(env):
    s = env.config()
    text = read_bytes(s.conf).decode()
    with open(s.conf, "w") as f:
        f.write(text.replace("key_dir = %s" % s.key_dir, "key_dir = /tmp"))
    for args in (["configtest"], ["rotate", "--domain", s.domain]):
        r = run(s, *args)
        assert r.code == 77, r.describe()
        assert "/tmp: world-writable directory" in r.err, r.describe()
    with open(s.conf, "w") as f:
        f.write(text)
    run_ok(s, "configtest")
    os.chmod(s.conf, 0o666)
    r = run(s, "configtest")
    assert r.code == 77, r.describe()
    assert "writable by others" in r.err, r.describe()
    os.chmod(s.conf, 0o620)
    if os.stat(s.conf).st_gid != 0:
        r = run(s, "configtest")
        assert r.code == 77, r.describe()
    os.chmod(s.conf, 0o644)
    run_ok(s, "configtest")
