"""Unsafe file modes: private keys and TSIG keys that others could read or
write stop dkimkeyd with exit 77 before any DNS write or signer change."""

import os

from harness import managed_record, read_bytes, rotate_and_verify, run


def test_unsafe_private_key_stops_rotation_with_77(env):
    s = env.config(propagation_timeout="10s")
    rotate_and_verify(env, s, "mail1")
    tables = (read_bytes(s.key_table), read_bytes(s.signing_table))
    # Crash-free way to stop between generation and activation: a run
    # with the server's port closed publishes nothing, but the key is
    # already generated and recorded.
    env.bind.stop()
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 75, r.describe()
    env.bind.start()
    newkey = [os.path.join(s.key_dir, f) for f in os.listdir(s.key_dir)
              if ".mail2." in f]
    assert len(newkey) == 1, os.listdir(s.key_dir)
    os.chmod(newkey[0], 0o664)
    before = read_bytes(s.state_file())
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 77, r.describe()
    assert newkey[0] in r.err and "unsafe" in r.err, r.describe()
    assert (read_bytes(s.key_table), read_bytes(s.signing_table)) == \
        tables, "signer tables changed although the key file is unsafe"
    assert managed_record(env.bind, s, "mail2") is None, \
        "a record was published from an unsafe key"
    assert read_bytes(s.state_file()) == before, "state changed"
    os.chmod(newkey[0], 0o600)
    rotate_and_verify(env, s, "mail2", resumed=True)


def test_group_readable_tsig_key_is_refused_with_77(env):
    s = env.config()
    os.chmod(s.tsig_key_file, 0o644)
    r = run(s, "configtest")
    assert r.code == 77, r.describe()
    assert s.tsig_key_file in r.err, r.describe()
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 77, r.describe()
    assert not os.listdir(s.key_dir), "a key was generated anyway"


def test_missing_state_and_key_dirs_are_created_private(env):
    s = env.config()
    for d in (s.key_dir, s.state_dir):
        os.rmdir(d)
    rotate_and_verify(env, s, "mail1")
    for d in (s.state_dir, s.key_dir):
        assert os.stat(d).st_mode & 0o777 == 0o700, (d, oct(os.stat(d).st_mode))


def test_world_writable_state_dir_is_refused_with_77(env):
    s = env.config()
    os.chmod(s.state_dir, 0o777)
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 77, r.describe()
    assert s.state_dir in r.err and "world-writable" in r.err, r.describe()
    assert not os.listdir(s.key_dir), "a key was generated anyway"
