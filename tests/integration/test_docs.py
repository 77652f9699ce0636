"""dkimkeyd.conf(5) and the code agree on provider keys: every key a
provider's open() accepts (its key table) is documented under its type,
and every key documented there is one the provider accepts."""

import glob
import os
import re

import harness

MAN = os.path.join(harness.REPO, "man", "dkimkeyd.conf.5")
PROV = os.path.join(harness.REPO, "providers", "dns")


def code_keys():
    """{type: set(keys)} from the providers' key tables."""
    with open(os.path.join(PROV, "prov_common.h")) as f:
        hdr = f.read()
    m = re.search(r'#define DK_PROV_PROBE_KEYS\s*\\\s*\n(.*?)\n\n', hdr, re.S)
    assert m, "DK_PROV_PROBE_KEYS not found in prov_common.h"
    probe = re.findall(r'"([a-z_0-9]+)"', m.group(1))
    out = {}
    for path in sorted(glob.glob(os.path.join(PROV, "*.c"))):
        with open(path) as f:
            src = f.read()
        tables = re.findall(r'static const char \*const (\w+)\[\] = \{(.*?)\};',
                            src, re.S)
        ops = re.search(r'const struct dk_dns_provider_ops \w+ = \{(.*?)\};',
                        src, re.S)
        if ops is None:
            continue
        name = re.search(r'\.name = "([a-z0-9]+)"', ops.group(1)).group(1)
        keys_ref = re.search(r'\.keys = (\w+)', ops.group(1)).group(1)
        body = dict(tables)[keys_ref]
        keys = set(re.findall(r'"([a-z_0-9]+)"', body))
        if "DK_PROV_PROBE_KEYS" in body:
            keys |= set(probe)
        out[name] = keys
    return out


def man_keys():
    """{type: set(keys)} from PROVIDER SECTIONS of dkimkeyd.conf(5)."""
    with open(MAN) as f:
        text = f.read()
    sect = re.search(r'^\.Sh PROVIDER SECTIONS\n(.*?)^\.Sh ', text,
                     re.S | re.M).group(1)
    parts = re.split(r'^\.Ss ', sect, flags=re.M)
    out = {}
    common = set()
    common_types = set()
    for part in parts[1:]:
        title, _, body = part.partition("\n")
        m = re.match(r'type = (\w+)$', title)
        if m:
            keys = set(re.findall(r'^\.It Cm ([a-z_0-9]+) No =', body,
                                  re.M))
            out[m.group(1)] = keys
        elif title.startswith("Keys every provider type takes"):
            head, _, tail = body.partition("mean for")
            common = set(re.findall(r'^\.Cm ([a-z_0-9]+)', head, re.M))
            common_types = set(re.findall(r'^\.Cm type = (\w+)',
                                          tail.split("what they mean")[0],
                                          re.M))
    assert common, "no 'Keys every provider type takes' list"
    for t in common_types:
        out.setdefault(t, set()).update(common)
    return out


def test_docs_provider_keys_match_the_code(env):
    code = code_keys()
    man = man_keys()
    assert set(code) == set(man), \
        "provider types: code %s, man page %s" % (sorted(code), sorted(man))
    problems = []
    for t in sorted(code):
        undocumented = code[t] - man[t]
        unknown = man[t] - code[t]
        if undocumented:
            problems.append("type = %s: accepted but not in dkimkeyd.conf(5)"
                            ": %s" % (t, ", ".join(sorted(undocumented))))
        if unknown:
            problems.append("type = %s: in dkimkeyd.conf(5) but refused by "
                            "the code: %s" % (t, ", ".join(sorted(unknown))))
    assert not problems, "\n".join(problems)


def test_docs_key_extraction_finds_every_provider(env):
    # The comparison above is only as good as its parsers: each must see
    # every provider and a plausible set of keys for it.
    code = code_keys()
    man = man_keys()
    for t in ("rfc2136", "powerdns", "cloudflare", "route53", "exec"):
        assert t in code and t in man, t
        assert "timeout" in code[t] and "timeout" in man[t], t
    assert "token_file" in code["powerdns"] and "command" in man["exec"]
