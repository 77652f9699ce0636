"""Command line contract: configtest, configuration errors with file and
line, usage errors, status of a domain with no state yet."""

import os

import subprocess

from harness import DKIMKEYD, check_status_schema, run, run_ok, status_json


def _insert_after(path, anchor, new_line):
    """Insert new_line after the line equal to anchor; returns its 1-based
    line number."""
    with open(path) as f:
        lines = f.read().splitlines()
    i = lines.index(anchor)
    lines.insert(i + 1, new_line)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return i + 2


def test_configtest_valid_config(env):
    s = env.config()
    r = run(s, "configtest")
    assert r.code == 0 and r.err == "", r.describe()
    r = run(s, "-q", "configtest")
    assert r.code == 0 and r.err == "", r.describe()


def test_configtest_unknown_domain_key_names_line(env):
    s = env.config()
    line = _insert_after(s.conf, "safety_margin = 1s", "frobnicate = 1")
    r = run(s, "configtest")
    assert r.code == 78, r.describe()
    assert "dkimkeyd.conf:%d:" % line in r.err, r.describe()
    # Every command refuses a bad configuration the same way.
    for args in (["status"], ["run", "--once"],
                 ["rotate", "--domain", "example.test"]):
        r = run(s, *args)
        assert r.code == 78 and "dkimkeyd.conf:%d:" % line in r.err, \
            r.describe()
    assert not os.listdir(s.key_dir), "a key was made with a bad config"
    assert env.bind.query_txt(s.selector_name("mail1")) == []


def test_configtest_unknown_provider_key_names_line(env):
    s = env.config()
    line = _insert_after(s.conf, "type = rfc2136", "sever = 127.0.0.1")
    r = run(s, "configtest")
    assert r.code == 78, r.describe()
    assert "dkimkeyd.conf:%d:" % line in r.err, r.describe()


def test_configtest_bad_duration_names_line(env):
    s = env.config(retire_after="3 fortnights")
    with open(s.conf) as f:
        line = f.read().splitlines().index("retire_after = 3 fortnights") + 1
    r = run(s, "configtest")
    assert r.code == 78 and "dkimkeyd.conf:%d:" % line in r.err, \
        r.describe()


def test_missing_config_file_is_config_error(env):
    missing = os.path.join(env.tmp, "absent.conf")
    r = run(missing, "configtest")
    assert r.code == 78 and "absent.conf" in r.err, r.describe()


def test_usage_errors_exit_64(env):
    s = env.config()
    for args in (["frobnicate"], ["rotate"], ["rotate", "--domain"],
                 ["status", "--bogus-option"], ["check", "--json-please"]):
        r = run(s, *args)
        assert r.code == 64 and r.err != "", r.describe()


def test_status_of_new_domain(env):
    s = env.config()
    st = status_json(s)
    check_status_schema(st)
    doms = [d for d in st["domains"] if d["domain"] == "example.test"]
    assert len(doms) == 1 and doms[0]["keys"] == [], st
    assert not os.listdir(s.key_dir)


def test_help_for_the_program_and_every_command(env):
    """--help is exit 0 on stdout: the program's commands, and for each
    command its own options."""
    p = subprocess.run([DKIMKEYD, "--help"], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode == 0 and p.stderr == "", (p.returncode, p.stderr)
    for cmd, opt in (("rotate", "--dry-run"), ("revoke", "--selector"),
                     ("run", "--pidfile"), ("status", "--json"),
                     ("check", "--crit-age"), ("configtest", "-c FILE")):
        assert cmd in p.stdout, p.stdout
        q = subprocess.run([DKIMKEYD, cmd, "--help"], capture_output=True,
                           text=True, timeout=10)
        assert q.returncode == 0, (cmd, q.returncode, q.stderr)
        assert q.stdout.startswith("usage: dkimkeyd") and opt in q.stdout, \
            (cmd, q.stdout)


def test_check_c_is_the_configuration_after_the_command(env):
    s = env.config()
    run_ok(s, "rotate", "--domain", "example.test")
    p = subprocess.run([DKIMKEYD, "check", "-c", s.conf], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    p = subprocess.run([DKIMKEYD, "-c", s.conf, "check", "-c", "30d"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 64 and "--crit-age" in p.stderr, \
        (p.returncode, p.stderr)
