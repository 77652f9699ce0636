"""The exec provider: contrib/exec/dkimkeyd-nsupdate against the test BIND
through a whole lifecycle (two rotations, revocation, removal, each key
verified by python3-dkim); a foreign record left alone; the exit-code
protocol (0, 69, 75, anything else, a hang killed after command_timeout)
with the program's stderr in the message; no shell, a minimal
environment; bad section keys refused with file:line."""

import os
import time

import harness
from harness import (Bind, FOREIGN_RECORD, FOREIGN_SELECTOR, dkim_roundtrip,
                     is_revoked, key_status, managed_record, read_bytes,
                     rotate_and_verify, run, run_ok, signer_current,
                     wait_until)

SCRIPT = os.path.join(harness.REPO, "contrib", "exec", "dkimkeyd-nsupdate")


def _config(env, command, extra=()):
    s = env.config()
    with open(s.conf) as f:
        lines = f.read().splitlines()
    i = lines.index("[provider primary]")
    j = lines.index("", i)
    lines[i:j] = ["[provider primary]",
                  "type = exec",
                  "command = %s" % command,
                  "zone = example.test",
                  "probe_servers = %s" % env.bind.addr(),
                  "timeout = 2s"] + list(extra)
    Bind._write(s.conf, "\n".join(lines) + "\n", 0o644)
    return s


def _nsupdate_config(env):
    s = env.config()
    cmd = "%s -s 127.0.0.1 -p %d -k %s -z example.test" % (
        SCRIPT, env.bind.port, s.tsig_key_file)
    return _config(env, cmd)


def test_exec_nsupdate_lifecycle(env):
    s = _nsupdate_config(env)
    b = env.bind
    sel1, kf1 = rotate_and_verify(env, s, "mail1")
    rec1 = managed_record(b, s, "mail1")
    sel2, kf2 = rotate_and_verify(env, s, "mail2")
    assert managed_record(b, s, "mail1") == rec1, \
        "retired key's record changed (invariant 2)"

    def revoked():
        run_ok(s, "run", "--once")
        r = managed_record(b, s, "mail1")
        return r is not None and is_revoked(r)
    wait_until(revoked, 20, "mail1 revoked through the exec provider",
               interval=0.5)

    def removed():
        run_ok(s, "run", "--once")
        return managed_record(b, s, "mail1") is None
    wait_until(removed, 20, "mail1 deleted through the exec provider",
               interval=0.5)
    assert not os.path.exists(kf1)
    assert key_status(s, "mail1")["state"] == "removed"
    assert signer_current(s) == (sel2, kf2)
    assert dkim_roundtrip(s, b, s.domain, log=env.log)
    assert b.query_txt("%s._domainkey.example.test" % FOREIGN_SELECTOR) == \
        [FOREIGN_RECORD]


def test_exec_leaves_a_foreign_record_alone(env):
    s = _nsupdate_config(env)
    foreign = "v=DKIM1; k=rsa; p=MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBALzNOTOURS"
    env.bind.set_txt(s.selector_name("mail1"), foreign)
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 69, r.describe()
    assert "did not write" in r.err, r.describe()
    assert env.bind.query_txt(s.selector_name("mail1")) == [foreign]
    assert not os.path.exists(s.reloaded), "signer reloaded"


def _script(env, name, body):
    path = os.path.join(env.tmp, name)
    Bind._write(path, "#!/bin/sh\n" + body, 0o755)
    return path


def test_exec_exit_codes_and_stderr(env):
    cases = [("75", 75, "temporary failure"),
             ("69", 69, "refused"),
             ("3", 69, "exited with status 3")]
    for code, want, word in cases:
        path = _script(env, "fail%s" % code,
                       'echo "api says no: quota $1" >&2\n'
                       'echo "second line" >&2\n'
                       'exit %s\n' % code)
        s = _config(env, path)
        r = run(s, "rotate", "--domain", s.domain)
        assert r.code == want, r.describe()
        assert path in r.err and word in r.err, r.describe()
        assert "api says no: quota get" in r.err and "second line" in \
            r.err, "stderr of the program not in the message: " + \
            r.describe()
        assert managed_record(env.bind, s, "mail1") is None


def test_exec_hanging_command_is_killed(env):
    marker = os.path.join(env.tmp, "child-alive")
    path = _script(env, "hang", "(sleep 30; touch %s) &\nsleep 30\n" %
                   marker)
    s = _config(env, path, ["command_timeout = 1s"])
    t0 = time.monotonic()
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 75, r.describe()
    assert "timed out" in r.err, r.describe()
    assert time.monotonic() - t0 < 15, "not killed after command_timeout"
    time.sleep(0.5)
    # The whole process group went, the backgrounded child too.
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            assert path.encode() not in cmd, "program still running"


def test_exec_argv_environment_and_stdin(env):
    """argv is COMMAND ARGS VERB OWNER [TTL] with no shell in between,
    the environment is minimal, the record comes on stdin."""
    log = os.path.join(env.tmp, "calls")
    path = _script(env, "record",
                   'printf "%%s|" "$@" >> %s\n'
                   'echo >> %s\n'
                   'env | sort | tr "\\n" " " >> %s\n'
                   'echo >> %s\n'
                   'if [ "$3" = set ]; then cat >> %s; fi\n'
                   'exit 0\n' % ((log,) * 5))
    s = _config(env, '%s "an arg" $HOME|x*' % path)
    os.environ["DKIMKEYD_TEST_SECRET"] = "must-not-pass"
    try:
        run(s, "rotate", "--domain", s.domain, timeout=60)
    finally:
        del os.environ["DKIMKEYD_TEST_SECRET"]
    text = read_bytes(log).decode()
    lines = text.splitlines()
    assert lines[0] == "an arg|$HOME|x*|get|mail1._domainkey.example." \
        "test|", lines[0]
    assert "DKIMKEYD_TEST_SECRET" not in text, "environment passed on"
    names = set(v.split("=", 1)[0] for v in lines[1].split())
    # dash itself adds PWD (and OLDPWD); nothing else comes from us.
    assert names - {"PWD", "OLDPWD"} == {"LC_ALL", "PATH"}, lines[1]
    sets = [i for i, l in enumerate(lines) if "|set|" in l]
    assert sets, "no set call: %r" % lines
    assert lines[sets[0]].endswith("|set|mail1._domainkey.example.test|2|")
    rec = lines[sets[0] + 2]
    assert rec.startswith('"v=DKIM1; k=rsa; p=') and '" "' in rec, rec


def test_exec_bad_section_keys_exit_78(env):
    s = _config(env, "relative/path get")
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 78 and "absolute path" in r.err, r.describe()
    assert "%s:" % s.conf in r.err, r.describe()
    s = _config(env, SCRIPT, ["command_timeout = 0s"])
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 78 and "command_timeout" in r.err, r.describe()
    s = _config(env, '%s "unbalanced' % SCRIPT)
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 78 and "command" in r.err, r.describe()
