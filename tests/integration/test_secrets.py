"""Secrets stay where they belong: `check` and `status` run as a user who
cannot read the TSIG key file, the API token file or the AWS credentials
file, and create no directories; a secret file of a loose mode still
stops `rotate` at once (exit 77); a crashed daemon
leaves no core dump (it is not dumpable, RLIMIT_CORE 0) unless
DKIMKEYD_CORE_DUMPS=1 asks for one."""

import os
import resource
import signal
import subprocess
import tempfile
import time

import cfapi
import harness
from harness import (DKIMKEYD, asan_env, rotate_and_verify, run, run_ok,
                     wait_until)
from test_route53 import start_api as start_r53, \
    write_config as write_r53_config

NOBODY = 65534


def as_nobody(setup, *args):
    argv = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
            "--clear-groups", DKIMKEYD, "-c", setup.conf] + list(args)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def give_to_nobody(setup, secret=None):
    """What check and status read becomes nobody's; the secret file (the
    TSIG key file unless named) stays root's, mode 0600."""
    secret = secret or setup.tsig_key_file
    os.chmod(setup.tmp, 0o711)
    paths = [setup.conf, setup.key_table, setup.signing_table]
    for d in (setup.state_dir, setup.key_dir):
        paths.append(d)
        paths += [os.path.join(d, f) for f in os.listdir(d)]
    for p in paths:
        os.lchown(p, NOBODY, NOBODY)
    os.chown(secret, 0, 0)
    os.chmod(secret, 0o600)
    r = subprocess.run(["setpriv", "--reuid=%d" % NOBODY,
                        "--regid=%d" % NOBODY, "--clear-groups", "cat",
                        secret], capture_output=True)
    assert r.returncode != 0, "nobody can read %s" % secret


def test_check_and_status_work_without_reading_the_tsig_key(env):
    s = env.config()
    rotate_and_verify(env, s, "mail1")
    give_to_nobody(s)
    r = as_nobody(s, "check")
    assert r.returncode == 0 and r.stdout.startswith("DKIM OK"), \
        (r.returncode, r.stdout, r.stderr)
    r = as_nobody(s, "status")
    assert r.returncode == 0 and "mail1" in r.stdout, \
        (r.returncode, r.stdout, r.stderr)
    assert r.stderr == "", r.stderr
    # The publisher still reads it, at its first update.
    r = as_nobody(s, "rotate", "--domain", s.domain)
    assert r.returncode == 77 and s.tsig_key_file in r.stderr, \
        (r.returncode, r.stdout, r.stderr)


def check_without_the_api_secret(env, s, secret, requests, words):
    """check and status as nobody, who cannot read secret; then rotate,
    which needs it at its first request: 77, nothing sent."""
    rotate_and_verify(env, s, "mail1")
    give_to_nobody(s, secret)
    r = as_nobody(s, "check")
    assert r.returncode == 0 and r.stdout.startswith("DKIM OK"), \
        (r.returncode, r.stdout, r.stderr)
    r = as_nobody(s, "status")
    assert r.returncode == 0 and "mail1" in r.stdout and r.stderr == "", \
        (r.returncode, r.stdout, r.stderr)
    n = len(requests())
    r = as_nobody(s, "rotate", "--domain", s.domain)
    assert r.returncode == 77 and secret in r.stderr, \
        (r.returncode, r.stdout, r.stderr)
    assert len(requests()) == n, "a request went out without the secret"
    for w in words:
        assert w not in r.stdout + r.stderr, "a secret in the output"


def test_check_works_without_reading_the_api_token(env):
    cf = cfapi.start(env)
    s = cfapi.write_config(env, cf)
    check_without_the_api_secret(env, s, s.token_file, lambda: cf.requests,
                                 [cf.token])


def test_check_works_without_reading_the_aws_credentials(env):
    api = start_r53(env)
    s = write_r53_config(env, api)
    check_without_the_api_secret(env, s, s.cred_file,
                                 lambda: api.requests, [api.secret_key])


def test_a_loose_token_file_still_stops_rotate_before_any_key(env):
    """Read late, judged early: the mode is checked when the provider is
    opened, so rotate exits 77 before it generates a key or sends a
    request; configtest reads the file and refuses what is in it."""
    cf = cfapi.start(env)
    s = cfapi.write_config(env, cf)
    for mode in (0o644, 0o604):
        os.chmod(s.token_file, mode)
        r = run(s, "rotate", "--domain", s.domain)
        assert r.code == 77, r.describe()
        assert s.token_file in r.err and "chmod" in r.err, r.describe()
        assert cf.token not in r.err + r.out
        assert not os.listdir(s.key_dir), "a key was generated anyway"
        assert cf.requests == [], "a request was sent"
    harness.Bind._write(s.token_file, "\n", 0o600)
    r = run(s, "configtest")
    assert r.code == 78 and s.token_file in r.err and "empty" in r.err, \
        r.describe()
    api = start_r53(env)
    s = write_r53_config(env, api)
    harness.Bind._write(s.cred_file, "[nodefault]\n", 0o600)
    r = run(s, "configtest")
    assert r.code == 78 and "no [default] profile" in r.err, r.describe()
    os.chmod(s.cred_file, 0o644)
    r = run(s, "rotate", "--domain", s.domain)
    assert r.code == 77 and s.cred_file in r.err, r.describe()
    assert api.requests == [], "a request was sent"


def test_configtest_still_reads_the_tsig_key(env):
    s = env.config()
    with open(s.tsig_key_file, "w") as f:
        f.write('key "k" { algorithm hmac-sha256; secret "not base64!"; };\n')
    os.chmod(s.tsig_key_file, 0o600)
    r = run(s, "configtest")
    assert r.code == 78, r.describe()
    assert s.tsig_key_file in r.err and "base64" in r.err, r.describe()


def test_a_fifo_or_symlink_as_tsig_key_file_is_refused_at_once(env):
    s = env.config()
    os.unlink(s.tsig_key_file)
    os.mkfifo(s.tsig_key_file, 0o600)
    for args in (("configtest",), ("rotate", "--domain", s.domain)):
        # Refused by type, never opened: no command waits for a writer.
        r = run(s, *args, timeout=20)
        assert r.code == 78, r.describe()
        assert s.tsig_key_file in r.err and "not a regular file" in r.err, \
            r.describe()
    os.unlink(s.tsig_key_file)
    real = os.path.join(s.tmp, "real.key")
    with open(real, "w") as f:
        f.write(env.bind.key_text)
    os.chmod(real, 0o600)
    os.symlink(real, s.tsig_key_file)
    r = run(s, "configtest")
    assert r.code == 77 and "symbolic link" in r.err, r.describe()
    assert not os.listdir(s.key_dir), "a key was generated anyway"


def test_status_opens_no_provider_and_reads_no_secret_file(env):
    s = env.config()
    rotate_and_verify(env, s, "mail1")
    want = run_ok(s, "status")
    # Absent, then a FIFO (opening it would wait for a writer), then
    # garbage nobody may read: status says the same, and nothing of it.
    os.unlink(s.tsig_key_file)
    for make in (lambda p: None, lambda p: os.mkfifo(p, 0o600),
                 lambda p: (open(p, "w").write("not a key"),
                            os.chmod(p, 0o000))):
        if os.path.lexists(s.tsig_key_file):
            os.unlink(s.tsig_key_file)
        make(s.tsig_key_file)
        r = run(s, "status", timeout=20)
        assert r.code == 0 and r.err == "", r.describe()
        assert "mail1" in r.out and s.tsig_key_file not in r.out, \
            r.describe()
        assert r.out.split("next:")[0] == want.split("next:")[0], \
            r.describe()
        r = run(s, "status", "--json", timeout=20)
        assert r.code == 0 and r.err == "" and '"mail1"' in r.out, \
            r.describe()
    # The publisher still needs it.
    r = run(s, "rotate", "--domain", s.domain, timeout=20)
    assert r.code != 0 and s.tsig_key_file in r.err, r.describe()


def test_check_and_status_create_no_directories(env):
    s = env.config()
    for d in (s.key_dir, s.state_dir):
        os.rmdir(d)
    run(s, "check")
    run(s, "status")
    for d in (s.key_dir, s.state_dir):
        assert not os.path.exists(d), "%s was created" % d


def core_files(d):
    return [f for f in os.listdir(d) if f == "core" or f.startswith("core.")]


def crash_daemon(env, s, extra_env):
    """Run the daemon until it has published and activated (the TSIG key
    was used), read its core limit, then SIGABRT it.  Returns (limit line,
    core files in its cwd)."""
    cwd = tempfile.mkdtemp(prefix="core-", dir=env.tmp)
    os.chmod(cwd, 0o777)
    out = os.path.join(cwd, "out")
    environ = dict(os.environ)
    environ.pop("NOTIFY_SOCKET", None)
    environ.pop("DKIMKEYD_CORE_DUMPS", None)
    environ.update(extra_env)
    # Under SANITIZE=1 the ASan runtime sets RLIMIT_CORE to 0 before main()
    # unless asked not to; the daemon's own policy is what is under test.
    environ = asan_env(environ, disable_coredump=0)

    def unlimited():
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY,
                                                  resource.RLIM_INFINITY))

    with open(out, "wb") as o:
        p = subprocess.Popen([DKIMKEYD, "-c", s.conf, "run"], cwd=cwd,
                             stdin=subprocess.DEVNULL, stdout=o,
                             stderr=subprocess.STDOUT, env=environ,
                             preexec_fn=unlimited)
    try:
        wait_until(lambda: b"event=active" in open(out, "rb").read(), 60,
                   "the daemon's first activation")
        with open("/proc/%d/limits" % p.pid) as f:
            limit = [ln for ln in f if ln.startswith("Max core file size")]
        os.kill(p.pid, signal.SIGABRT)
        p.wait(timeout=30)
        # The kernel writes the core before the parent sees the exit.
        time.sleep(0.5)
        return limit[0].split()[4], core_files(cwd), cwd
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()


def test_a_crashed_daemon_leaves_no_core_dump(env):
    s = env.config(extra_domain_lines=("rotate_every = 1h",))
    limit, cores, _ = crash_daemon(env, s, {})
    assert limit == "0", "RLIMIT_CORE soft limit is %s" % limit
    assert cores == [], "core dump written: %r" % cores


def test_core_dumps_on_request_hold_no_tsig_secret_after_use(env):
    with open("/proc/sys/kernel/core_pattern") as f:
        pattern = f.read().strip()
    s = env.config(extra_domain_lines=("rotate_every = 1h",))
    limit, cores, cwd = crash_daemon(env, s, {"DKIMKEYD_CORE_DUMPS": "1"})
    assert limit == "unlimited", limit
    if pattern.startswith("|") or "/" in pattern:
        return      # cores go elsewhere on this system: nothing to read
    assert cores, "no core dump although DKIMKEYD_CORE_DUMPS=1"
    for c in cores:
        with open(os.path.join(cwd, c), "rb") as f:
            data = f.read()
        os.unlink(os.path.join(cwd, c))
        assert env.bind.secret.encode() not in data, \
            "the TSIG secret is still in memory after the update"
