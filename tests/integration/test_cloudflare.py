"""The cloudflare provider against the Cloudflare API v4 test server
(cfapi.py: HTTPS with the test's own CA, strict about the token, zone
id, record shape and batch limits, small pages), which applies every
accepted change to the test's real BIND: rotations, retirement,
revocation and removal; python3-dkim verifies each key against BIND; a
record dkimkeyd did not write is left alone; the API's faults (401, 403,
429 with Retry-After, 500, a slow reply, a half-applied batch, a TXT cut
short); a wrong CA; bad bodies; bad section keys; the token in no
output, argv or environment."""

import os
import subprocess
import time

import cfapi
import harness
from harness import (FOREIGN_RECORD, FOREIGN_SELECTOR, dkim_roundtrip,
                     is_revoked, key_status, managed_record, read_bytes,
                     rotate_and_verify, run, run_ok, signer_current,
                     snapshot_files, wait_until)


def _setup(env, api_kw=None, **kw):
    cf = cfapi.start(env, **(api_kw or {}))
    return cf, cfapi.write_config(env, cf, **kw)


def _check_foreign(env, cf):
    name = "%s._domainkey.%s" % (FOREIGN_SELECTOR, env.bind.zones[0])
    assert env.bind.query_txt(name) == [FOREIGN_RECORD], \
        "foreign record %s changed in BIND" % name
    assert len(cf.txt(name)) == 1, cf.txt(name)
    env.check_foreign()


def _untouched(env, s, tables):
    assert (read_bytes(s.key_table), read_bytes(s.signing_table)) == \
        tables, "signer tables changed: something was activated"
    assert not os.path.exists(s.reloaded), "signer reloaded"


def _tables(s):
    return (read_bytes(s.key_table), read_bytes(s.signing_table))


def test_cloudflare_rotation_lifecycle(env):
    cf, s = _setup(env)
    b = env.bind
    sel1, kf1 = rotate_and_verify(env, s, "mail1")
    # What the API holds: one quoted record of <= 255-octet strings.
    content = cf.txt(s.selector_name("mail1"))
    assert len(content) == 1 and content[0].startswith('"v=DKIM1'), content
    # Pages of 3 records at most: the listing was followed page by page.
    assert cf.max_per_page == 3
    rec1 = managed_record(b, s, "mail1")
    sel2, kf2 = rotate_and_verify(env, s, "mail2")
    assert kf2 != kf1
    assert managed_record(b, s, "mail1") == rec1, \
        "retired key's record changed (invariant 2)"
    assert key_status(s, "mail1")["state"] == "retired"

    def revoked():
        run_ok(s, "run", "--once")
        r = managed_record(b, s, "mail1")
        return r is not None and is_revoked(r)
    wait_until(revoked, 20, "run --once to revoke mail1 through the API",
               interval=0.5)
    assert len(cf.txt(s.selector_name("mail1"))) == 1
    assert signer_current(s) == (sel2, kf2)

    def removed():
        run_ok(s, "run", "--once")
        return managed_record(b, s, "mail1") is None
    wait_until(removed, 20, "run --once to delete mail1 through the API",
               interval=0.5)
    assert cf.txt(s.selector_name("mail1")) == []
    assert not os.path.exists(kf1), "private key %s not destroyed" % kf1
    assert key_status(s, "mail1")["state"] == "removed"
    assert dkim_roundtrip(s, b, s.domain, log=env.log)
    # Every write went through the batch endpoint.
    assert cf.count("POST", "/dns_records/batch") >= 4
    assert cf.count("POST") == cf.count("POST", "/dns_records/batch")
    _check_foreign(env, cf)
    r = run(s, "check", "--domain", s.domain)
    assert r.code == 0, r.describe()
