"""A small Cloudflare API v4 server on 127.0.0.1 for the dkimkeyd
integration tests, written from Cloudflare's API reference and strict
about what the real API checks; every accepted change is applied to the
test's real BIND by RFC 2136, so that dkimkeyd's propagation gate and
python3-dkim read real DNS.

What it serves (base URL https://127.0.0.1:PORT/client/v4):
  GET  /zones?name=N                      the zones list, name filter
  GET  /zones/ID/dns_records?type=&name=&per_page=&page=
                                          paged (result_info), at most
                                          max_per_page records a page
                                          (small, to exercise paging)
  POST /zones/ID/dns_records/batch        {"deletes":[{"id"}],
                                          "posts":[{record}]}: one
                                          transaction, deletes first,
                                          at most batch_limit operations
Every answer is the v4 envelope {"success", "errors": [{"code",
"message"}], "messages", "result"[, "result_info"]}.

Checked as the real API does: "Authorization: Bearer TOKEN" (missing:
400 code 9106; wrong: 403 code 10000, "Authentication error"); the zone
id; JSON bodies with Content-Type application/json; record shape (type,
name inside the zone, content a string, ttl 1 or min_ttl..86400, proxied
only a boolean and never for TXT, no unknown keys); TXT content as
quoted character-strings, a string over 255 octets split on its own (as
the reference says), a record's wire form at most 4,096 octets; a CNAME
never beside another record; no identical duplicate; delete ids that
exist in that zone; per_page 5..5,000,000.

Faults, queued with fault(...) and each used by the next request that
matches (method, and path part): status 401/403/429 (with Retry-After)/
500, a slow reply (delay seconds), "half" (the batch is applied, then
500 comes back), "truncate" (TXT content stored cut at N octets), and a
raw body (HTML, empty, huge, JSON of the wrong shape).  resplit=True
makes the list show TXT content re-split at other boundaries and
quoted differently from what was written.

Served over HTTPS (tlsserver.py) with a CA made for the test (ca;
other_ca is a second, unrelated CA); stopped by shutting the server
thread down.
"""

import json
import os
import re
import secrets
import ssl
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler

import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.update

import harness
import tlsserver
from harness import FOREIGN_RECORD, FOREIGN_SELECTOR, HarnessError

PREFIX = "/client/v4"


# -- TXT content: presentation format, as the API reads and shows it ------

def parse_content(content):
    """[bytes] of a TXT content: quoted strings (\\" \\\\ \\DDD escapes)
    or bare text; strings over 255 octets split, as the API does."""
    s = content.strip()
    out = []
    if not s.startswith('"'):
        raw = s.encode()
        return [raw[i:i + 255] for i in range(0, len(raw), 255)] or [b""]
    i = 0
    while i < len(s):
        if s[i] in " \t":
            i += 1
            continue
        if s[i] != '"':
            raise ValueError("text outside quotes at offset %d" % i)
        i += 1
        buf = bytearray()
        while True:
            if i >= len(s):
                raise ValueError("unterminated quoted string")
            ch = s[i]
            if ch == '"':
                i += 1
                break
            if ch == "\\":
                if re.match(r"\d{3}", s[i + 1:i + 4]):
                    buf.append(int(s[i + 1:i + 4]))
                    i += 4
                    continue
                i += 1
                ch = s[i]
            buf += ch.encode()
            i += 1
        out += [bytes(buf[k:k + 255]) for k in range(0, len(buf), 255)] \
            or [b""]
    return out or [b""]


def quote(strings):
    return " ".join('"%s"' % s.decode().replace("\\", "\\\\")
                    .replace('"', '\\"') for s in strings)


def resplit(content, size=100):
    """The same text, split at other boundaries and quoted differently."""
    joined = b"".join(parse_content(content))
    parts = [joined[i:i + size] for i in range(0, len(joined), size)]
    return "  " + "\t".join('"%s"' % p.decode().replace('"', '\\"')
                            for p in parts)


class ApiError(Exception):
    def __init__(self, status, code, message):
        Exception.__init__(self, message)
        self.status, self.code, self.message = status, code, message


RECORD_KEYS = {"type", "name", "content", "ttl", "proxied", "comment",
               "tags"}


class CfApi:
    """The API over HTTPS on 127.0.0.1, applying changes to bind."""

    def __init__(self, bind, directory, zones=None, token=None,
                 max_per_page=3, batch_limit=200, min_ttl=1):
        self.bind = bind
        self.dir = directory
        self.token = token or "cf-test-" + secrets.token_hex(20)
        self.max_per_page = max_per_page
        self.batch_limit = batch_limit
        self.min_ttl = min_ttl      # the real API: 60 (30 on Enterprise)
        self.resplit = False
        self.lock = threading.Lock()
        self.faults = []
        self.requests = []          # (method, path, query, when) of each
        self.zones = {}             # name -> id
        self.records = {}           # id -> record dict
        for z in zones or bind.zones:
            zid = secrets.token_hex(16)
            self.zones[z] = zid
            self._seed(z, zid)
        self.ca, self.other_ca, self.cert, self.key = \
            tlsserver.make_certs(os.path.join(directory, "ca"),
                                 "dkimkeyd cf test")
        self.httpd = None

    def _seed(self, zone, zid):
        """What the zone holds already, as BIND serves it."""
        self._store(zid, zone, "%s._domainkey.%s" % (FOREIGN_SELECTOR,
                    zone), "TXT", quote(harness.split_txt(FOREIGN_RECORD)),
                    2)
        self._store(zid, zone, "ns1.%s" % zone, "A", "127.0.0.1", 2)
        self._store(zid, zone, zone, "NS", "ns1.%s" % zone, 2)

    def _store(self, zid, zone, name, rtype, content, ttl):
        rid = secrets.token_hex(16)
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        self.records[rid] = {
            "id": rid, "zone_id": zid, "zone_name": zone, "name": name,
            "type": rtype, "content": content, "ttl": ttl,
            "proxiable": rtype in ("A", "AAAA", "CNAME"), "proxied": False,
            "locked": False, "created_on": now, "modified_on": now,
            "meta": {}, "comment": None, "tags": []}
        return self.records[rid]

    # -- control -----------------------------------------------------------

    def start(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                api._serve(self, "GET")

            def do_POST(self):
                api._serve(self, "POST")

            def do_PATCH(self):
                api._serve(self, "PATCH")

            def do_DELETE(self):
                api._serve(self, "DELETE")

        self.httpd = tlsserver.Server(Handler, self.cert, self.key).start()
        return self

    def stop(self):
        if self.httpd is not None:
            self.httpd.stop()
            self.httpd = None

    def url(self):
        return "https://127.0.0.1:%d%s" % (self.httpd.port, PREFIX)

    def fault(self, method=None, path="", **kw):
        """Queue one fault: status=, retry_after=, message=, delay=,
        half=True, truncate=N, body=bytes (ctype=), hook=callable (run
        first: somebody else's change racing the request), for the next
        request with this method whose path contains path."""
        with self.lock:
            self.faults.append(dict(kw, method=method, path=path))

    def count(self, method=None, path=""):
        with self.lock:
            return len([1 for m, p, _, _ in self.requests
                        if (method is None or m == method) and path in p])

    def txt(self, name):
        """The TXT contents the API holds at name."""
        with self.lock:
            return [r["content"] for r in self.records.values()
                    if r["type"] == "TXT" and r["name"] == name.lower()]

    def replace_txt(self, name, value, ttl=2):
        """Somebody else replaces the TXT records at name with one of
        theirs (deleted and created: a new id), in the API and BIND."""
        zone = self.bind.zone_of(name)
        with self.lock:
            for rid in [r["id"] for r in self.records.values()
                        if r["type"] == "TXT" and r["name"] == name]:
                del self.records[rid]
        self.add_txt(name, value, ttl)

    def add_txt(self, name, value, ttl=2):
        """A TXT record somebody else added (the dashboard): in the API
        and in BIND."""
        zone = self.bind.zone_of(name)
        with self.lock:
            self._store(self.zones[zone], zone, name.lower(), "TXT",
                        quote(harness.split_txt(value)), ttl)
            self._push(zone, {(name.lower(), "TXT")})

    # -- serving -----------------------------------------------------------

    def _take_fault(self, method, path):
        with self.lock:
            for i, f in enumerate(self.faults):
                if (f["method"] in (None, method)) and f["path"] in path:
                    return self.faults.pop(i)
        return None

    def _serve(self, h, method):
        u = urllib.parse.urlsplit(h.path)
        q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        n = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(n) if n else b""
        with self.lock:
            self.requests.append((method, u.path, u.query,
                                  time.monotonic()))
        f = self._take_fault(method, u.path)
        try:
            if f and f.get("delay"):
                time.sleep(f["delay"])
            if f and f.get("hook"):
                f["hook"]()
            if f and "body" in f:
                return self._send(h, f.get("status", 200), f["body"],
                                  f.get("ctype", "application/json"))
            if f and f.get("status"):
                hdrs = {"Retry-After": str(f["retry_after"])} \
                    if "retry_after" in f else None
                return self._send(h, f["status"], self._err(
                    f.get("code", 10000), f.get("message", "injected "
                                                "failure")), hdrs=hdrs)
            self._auth(h)
            if not u.path.startswith(PREFIX + "/"):
                raise ApiError(404, 7003, "No route for that URI")
            parts = u.path[len(PREFIX) + 1:].split("/")
            result, info = self._route(method, parts, q, h, body, f)
            out = {"success": True, "errors": [], "messages": [],
                   "result": result}
            if info is not None:
                out["result_info"] = info
            if f and f.get("half"):
                raise ApiError(500, 10001, "Internal error (the change "
                               "was applied)")
            self._send(h, 200, json.dumps(out).encode())
        except ApiError as e:
            self._send(h, e.status, self._err(e.code, e.message))
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass

    @staticmethod
    def _err(code, message):
        return json.dumps({"success": False, "errors": [
            {"code": code, "message": message}], "messages": [],
            "result": None}).encode()

    @staticmethod
    def _send(h, status, body, ctype="application/json", hdrs=None):
        try:
            h.send_response(status)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(body)))
            for k, v in (hdrs or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass

    def _auth(self, h):
        a = h.headers.get("Authorization")
        if a is None:
            raise ApiError(400, 9106, "Missing X-Auth-Key, X-Auth-Email "
                           "or Authorization headers")
        if not a.startswith("Bearer ") or \
                not secrets.compare_digest(a[7:], self.token):
            raise ApiError(403, 10000, "Authentication error")

    def _route(self, method, parts, q, h, body, f):
        if parts == ["zones"] and method == "GET":
            name = q.get("name", [None])[0]
            res = [{"id": zid, "name": z, "status": "active"}
                   for z, zid in sorted(self.zones.items())
                   if name is None or z == name.lower()]
            return res, {"page": 1, "per_page": 20, "count": len(res),
                         "total_count": len(res), "total_pages": 1}
        if len(parts) >= 3 and parts[0] == "zones" and \
                parts[2] == "dns_records":
            zone = self._zone(parts[1])
            if len(parts) == 3 and method == "GET":
                return self._list(zone, q)
            if parts[3:] == ["batch"] and method == "POST":
                if (h.headers.get("Content-Type") or "").split(";")[0] \
                        .strip() != "application/json":
                    raise ApiError(415, 10000, "Content-Type must be "
                                   "application/json")
                return self._batch(zone, body, f), None
        raise ApiError(405 if parts[:1] == ["zones"] else 404, 7000,
                       "No route for that URI")

    def _zone(self, zid):
        for z, i in self.zones.items():
            if i == zid:
                return z
        if not re.fullmatch(r"[0-9a-f]{32}", zid):
            raise ApiError(400, 7003, "Could not route to /zones/%s: "
                           "invalid zone identifier" % zid)
        raise ApiError(404, 1001, "Invalid zone identifier")

    def _list(self, zone, q):
        known = {"type", "name", "per_page", "page", "match", "order",
                 "direction"}
        for k in q:
            if k not in known:
                raise ApiError(400, 9000, "unknown filter %r" % k)
        try:
            per_page = int(q.get("per_page", ["100"])[0])
            page = int(q.get("page", ["1"])[0])
        except ValueError:
            raise ApiError(400, 1004, "per_page and page must be numbers")
        if not 5 <= per_page <= 5000000 or page < 1:
            raise ApiError(400, 1004, "per_page must be 5 to 5000000, "
                           "page at least 1")
        per_page = min(per_page, self.max_per_page)
        rtype = q.get("type", [None])[0]
        name = q.get("name", [None])[0]
        with self.lock:
            rs = sorted((r for r in self.records.values()
                         if r["zone_name"] == zone and
                         (rtype is None or r["type"] == rtype) and
                         (name is None or r["name"] == name.lower())),
                        key=lambda r: (r["name"], r["type"], r["id"]))
            rs = [dict(r) for r in rs]
        total = len(rs)
        pages = max(1, (total + per_page - 1) // per_page)
        chunk = rs[(page - 1) * per_page:page * per_page]
        if self.resplit:
            for r in chunk:
                if r["type"] == "TXT":
                    r["content"] = resplit(r["content"])
        return chunk, {"page": page, "per_page": per_page,
                       "count": len(chunk), "total_count": total,
                       "total_pages": pages}

    # -- the batch: one transaction, then RFC 2136 to BIND ----------------

    def _check_record(self, zone, rec):
        if not isinstance(rec, dict):
            raise ApiError(400, 9000, "a record must be an object")
        extra = set(rec) - RECORD_KEYS
        if extra:
            raise ApiError(400, 9000, "unknown fields %s" % sorted(extra))
        t, name, content = rec.get("type"), rec.get("name"), \
            rec.get("content")
        if t not in ("TXT", "CNAME", "A", "AAAA", "NS"):
            raise ApiError(400, 9101, "DNS record type is invalid")
        if not isinstance(name, str) or not name or name.endswith(".") \
                or not (name.lower() == zone or
                        name.lower().endswith("." + zone)):
            raise ApiError(400, 9007, "DNS record name %r is not in zone "
                           "%s" % (name, zone))
        if not isinstance(content, str) or not content:
            raise ApiError(400, 9005, "Content for %s record is invalid" %
                           t)
        ttl = rec.get("ttl", 1)
        if not isinstance(ttl, int) or isinstance(ttl, bool) or \
                not (ttl == 1 or self.min_ttl <= ttl <= 86400):
            raise ApiError(400, 9021, "Invalid TTL. Must be between %d and "
                           "86400 seconds, or 1 for Automatic" %
                           self.min_ttl)
        if "proxied" in rec and not isinstance(rec["proxied"], bool):
            raise ApiError(400, 9003, "proxied must be a boolean")
        if rec.get("proxied") and t not in ("A", "AAAA", "CNAME"):
            raise ApiError(400, 9004, "This record type cannot be proxied")
        if t == "CNAME" and rec.get("proxied"):
            raise ApiError(400, 9004, "this test server serves DNS-only "
                           "CNAMEs")
        if t == "TXT":
            try:
                strings = parse_content(content)
            except ValueError as e:
                raise ApiError(400, 9005, "Content for TXT record is "
                               "invalid: %s" % e)
            if sum(1 + len(s) for s in strings) > 4096:
                raise ApiError(400, 9005, "DNS record has a wire format "
                               "over 4096 bytes")
            content = quote(strings)
        return t, name.lower(), content, ttl

    def _batch(self, zone, body, f):
        try:
            req = json.loads(body)
        except ValueError:
            raise ApiError(400, 9207, "Request body is invalid JSON")
        if not isinstance(req, dict) or \
                set(req) - {"deletes", "patches", "puts", "posts"}:
            raise ApiError(400, 9000, "batch body must be an object of "
                           "deletes, patches, puts, posts")
        ops = {k: req.get(k) or [] for k in ("deletes", "patches", "puts",
                                              "posts")}
        if any(not isinstance(v, list) for v in ops.values()):
            raise ApiError(400, 9000, "batch members must be lists")
        if ops["patches"] or ops["puts"]:
            raise ApiError(400, 9000, "this test server takes deletes "
                           "and posts only")
        n = sum(len(v) for v in ops.values())
        if n == 0 or n > self.batch_limit:
            raise ApiError(400, 81000, "A batch holds 1 to %d record "
                           "operations, not %d" % (self.batch_limit, n))
        with self.lock:
            work = dict(self.records)
            touched, deleted, posted = set(), [], []
            for d in ops["deletes"]:
                rid = d.get("id") if isinstance(d, dict) else None
                r = work.get(rid)
                if not isinstance(rid, str) or r is None or \
                        r["zone_name"] != zone:
                    raise ApiError(404, 81044, "Record %s does not exist" %
                                   rid)
                deleted.append(work.pop(rid))
                touched.add((r["name"], r["type"]))
            for p in ops["posts"]:
                t, name, content, ttl = self._check_record(zone, p)
                if f and f.get("truncate") and t == "TXT":
                    joined = b"".join(parse_content(content))
                    content = quote(harness.split_txt(
                        joined[:f["truncate"]]))
                same = [r for r in work.values() if r["name"] == name]
                if any(r["type"] == "CNAME" for r in same) or \
                        (t == "CNAME" and same):
                    raise ApiError(400, 81053, "A CNAME record cannot "
                                   "share its name with another record")
                if any(r["type"] == t and r["content"] == content
                       for r in same):
                    raise ApiError(400, 81058, "An identical record "
                                   "already exists.")
                if t == "TXT" and sum(len(r["content"]) for r in same
                                      if r["type"] == "TXT") + \
                        len(content) > 8192:
                    raise ApiError(400, 9005, "TXT records at one name "
                                   "exceed 8192 characters")
                saved = self.records
                self.records = work
                rec = self._store(self.zones[zone], zone, name, t, content,
                                  ttl)
                self.records = saved
                posted.append(rec)
                touched.add((name, t))
            old = self.records
            self.records = work
            try:
                self._push(zone, touched)
            except Exception as e:  # noqa: BLE001 - rolled back below
                self.records = old
                self._push(zone, touched)
                raise ApiError(500, 10001, "Internal error: %s" % e)
        return {"deletes": deleted, "patches": [], "puts": [],
                "posts": posted}

    def _push(self, zone, touched):
        """Make BIND serve what the store holds at the touched
        (name, type) pairs: one UPDATE, RRsets replaced or deleted."""
        u = dns.update.UpdateMessage(zone, keyring=self.bind.tsig_key())
        for name, t in sorted(touched):
            n = dns.name.from_text(name)
            rds = []
            for r in self.records.values():
                if r["name"] == name and r["type"] == t:
                    text = r["content"]
                    if t == "CNAME":
                        text = text.rstrip(".") + "."
                    rds.append((r["ttl"] if r["ttl"] != 1 else 300,
                                dns.rdata.from_text(dns.rdataclass.IN,
                                                    dns.rdatatype.from_text(t),
                                                    text)))
            if rds:
                u.delete(n, t)
                for ttl, rd in rds:
                    u.add(n, ttl, rd)
            else:
                u.delete(n, t)
        r = dns.query.tcp(u, "127.0.0.1", port=self.bind.port, timeout=5)
        if r.rcode() != dns.rcode.NOERROR:
            raise HarnessError("UPDATE %s: %s" % (
                zone, dns.rcode.to_text(r.rcode())))


def write_config(env, cf, token=None, domain="example.test", zone=True,
                 ca=None, extra_provider_lines=(), **kw):
    """harness.write_config, then the provider section replaced by a
    cloudflare one for cf (token_file mode 0600).  Returns the Setup."""
    s = harness.write_config(env.tmp, env.bind, domain=domain, **kw)
    s.token_file = os.path.join(env.tmp, "cf.token")
    harness.Bind._write(s.token_file, (token or cf.token) + "\n", 0o600)
    with open(s.conf) as f:
        lines = f.read().splitlines()
    i = lines.index("[provider primary]")
    j = lines.index("", i)
    prov = ["[provider primary]",
            "type = cloudflare",
            "api_url = %s" % cf.url(),
            "token_file = %s" % s.token_file,
            "ca_file = %s" % (ca or cf.ca),
            "probe_servers = %s" % env.bind.addr(),
            "max_requests_per_second = 200",
            "timeout = 3s"]
    if zone:
        prov.append("zone = %s" % env.bind.zone_of(domain))
    prov += list(extra_provider_lines)
    lines[i:j] = prov
    harness.Bind._write(s.conf, "\n".join(lines) + "\n", 0o644)
    return s


def start(env, **kw):
    """A started CfApi in front of env's BIND, stopped with the env."""
    cf = CfApi(env.bind, os.path.join(env.tmp, "cfapi"), **kw).start()
    close = env.close

    def close_both():
        try:
            cf.stop()
        finally:
            close()
    env.close = close_both
    return cf
