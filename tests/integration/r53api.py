"""A loopback stand-in for the Amazon Route 53 API (version 2013-04-01)
for the route53 provider's integration tests, written from the API
reference and strict about what the real API checks:

- every request must carry a valid AWS Signature Version 4
  (AWS4-HMAC-SHA256, region us-east-1, service route53, host and
  x-amz-date signed, x-amz-date within 5 minutes), verified here
  independently with hmac/hashlib: 403 SignatureDoesNotMatch or
  InvalidClientTokenId otherwise;
- the hosted zone id must exist (404 NoSuchHostedZone);
- a ChangeResourceRecordSetsRequest must be in the API's namespace and
  shape; at most 1,000 ResourceRecord elements and 32,000 characters of
  Value per request; TXT values are quoted strings of at most 255
  octets each; names in the zone; the batch applies whole or not at all:
  a DELETE must match the RRset exactly (TTL and every value), a CREATE
  must not meet an existing RRset, one RRset is not deleted twice
  (400 InvalidChangeBatch otherwise);
- ListResourceRecordSets lists in the API's order (names by reversed
  labels, then type) from name/type on, maxitems per page, with
  IsTruncated and NextRecordName/NextRecordType;
- GetChange answers PENDING (pending_polls times) and then INSYNC.

The API's view changes when a batch is accepted; the real BIND behind it
(harness.Bind, by RFC 2136 with its TSIG key) gets the change when the
change turns INSYNC, so that a client that publishes without waiting for
INSYNC meets a record not yet served, and the DNS gate and python3-dkim
check real DNS.

Faults (R53Api.fault): an HTTP status with an API error code, Throttling
as 400 or 429 with Retry-After, 500, a slow reply, and a truncated TXT
(accepted by the API, served by DNS with only its first string).

Served over HTTPS on 127.0.0.1 (tlsserver.py) with a certificate from a
CA made here (ca.pem; other-ca.pem is a second, unrelated CA).  Runs in a thread of
the test process and stops with the test.
"""

import datetime
import hashlib
import hmac
import http.server
import os
import re
import secrets
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.update
import dns.query
import dns.rcode

import tlsserver

NS = "https://route53.amazonaws.com/doc/2013-04-01/"
MAX_RECORDS = 1000
MAX_VALUE_CHARS = 32000
TYPES = ("A", "AAAA", "CAA", "CNAME", "MX", "NAPTR", "NS", "PTR", "SOA",
         "SPF", "SRV", "TXT", "DS")


def fqdn(name):
    return name.rstrip(".").lower() + "."


def order_key(name, rtype=""):
    """The API's listing order: labels reversed, then type."""
    return (".".join(reversed(fqdn(name).rstrip(".").split("."))), rtype)


def txt_value(strings):
    """A TXT RR's character-strings as the API shows them."""
    out = []
    for s in strings:
        t = s.decode("latin-1").replace("\\", "\\\\").replace('"', '\\"')
        out.append('"%s"' % t)
    return " ".join(out)


class ApiError(Exception):
    def __init__(self, status, code, message, kind="Sender", extra=()):
        Exception.__init__(self, message)
        self.status = status
        self.code = code
        self.message = message
        self.kind = kind
        self.extra = list(extra)

    def body(self):
        if self.code == "InvalidChangeBatch":
            msgs = "".join("<Message>%s</Message>" % escape(m)
                           for m in self.message.split("\n"))
            return ('<?xml version="1.0"?>\n<InvalidChangeBatch xmlns="%s">'
                    '<Messages>%s</Messages><RequestId>%s</RequestId>'
                    '</InvalidChangeBatch>' % (NS, msgs, secrets.token_hex(8)))
        return ('<?xml version="1.0"?>\n<ErrorResponse xmlns="%s"><Error>'
                '<Type>%s</Type><Code>%s</Code><Message>%s</Message></Error>'
                '<RequestId>%s</RequestId></ErrorResponse>' % (
                    NS, self.kind, self.code, escape(self.message),
                    secrets.token_hex(8)))


class R53Api:
    """The API for the zones of a started harness.Bind."""

    def __init__(self, bind, tmp, pending_polls=1, session_token=None):
        self.bind = bind
        self.dir = os.path.join(tmp, "r53api")
        os.makedirs(self.dir, exist_ok=True)
        self.ca_file, self.other_ca_file, self.cert, self.key = \
            tlsserver.make_certs(self.dir, "dkimkeyd r53 test")
        self.access_key = "AKIA" + secrets.token_hex(8).upper()
        self.secret_key = secrets.token_urlsafe(30)
        self.session_token = session_token
        self.pending_polls = pending_polls
        self.zones = {}         # id -> zone name (with the final dot)
        self.rrsets = {}        # zone id -> {(name, type): (ttl, [values])}
        for z in bind.zones:
            zid = "Z" + secrets.token_hex(8).upper()
            self.zones[zid] = fqdn(z)
            self.rrsets[zid] = self._read_zone(z)
        self.changes = {}       # id -> [status, polls left, zone id, final]
        self.faults = []
        self.requests = []      # (method, path, query, status)
        self.truncate_txt = False
        self.lock = threading.RLock()
        self.server = None

    def zone_id(self, zone):
        for zid, name in self.zones.items():
            if name == fqdn(zone):
                return zid
        raise KeyError(zone)

    def _read_zone(self, z):
        """The harness zone's RRsets, read from BIND over DNS."""
        out = {}
        names = [(z, "SOA"), (z, "NS"), ("ns1." + z, "A"),
                 ("other._domainkey." + z, "TXT")]
        for name, t in names:
            r = self.bind.query(name, t)
            for rrset in r.answer:
                if rrset.rdtype == dns.rdatatype.from_text(t):
                    vals = [txt_value(rd.strings) if t == "TXT"
                            else rd.to_text() for rd in rrset]
                    out[(fqdn(name), t)] = (rrset.ttl, vals)
        return out

    # -- what tests use ---------------------------------------------------

    def url(self):
        return "https://127.0.0.1:%d" % self.server.port

    def fault(self, match, status=None, code=None, message="", times=1,
              retry_after=None, delay=0):
        """The next `times` requests whose "METHOD PATH" contains match
        get this answer (after the signature is checked)."""
        with self.lock:
            self.faults.append(dict(match=match, status=status, code=code,
                                    message=message, times=times,
                                    retry_after=retry_after, delay=delay))

    def set_txt(self, name, value, ttl=2):
        """A TXT RRset written by someone else (API view and DNS)."""
        from harness import split_txt
        strings = split_txt(value)
        v = " ".join('"%s"' % s.decode() for s in strings)
        zid = self.zone_id(self.bind.zone_of(name))
        with self.lock:
            self.rrsets[zid][(fqdn(name), "TXT")] = (ttl, [v])
        self.bind.set_txt(name, value, ttl)

    def rrset(self, name, rtype="TXT"):
        zid = self.zone_id(self.bind.zone_of(name))
        with self.lock:
            return self.rrsets[zid].get((fqdn(name), rtype))

    def count(self, method, part):
        with self.lock:
            return sum(1 for m, p, q, s in self.requests
                       if m == method and part in p)

    def start(self):
        api = self

        class Handler(_Handler):
            pass
        Handler.api = api
        self.server = tlsserver.Server(Handler, self.cert, self.key).start()
        return self

    def stop(self):
        if self.server is not None:
            self.server.stop()
            self.server = None

    # -- SigV4, checked independently of the client ------------------------

    def check_signature(self, method, path, query, headers, body):
        auth = headers.get("Authorization")
        if not auth:
            raise ApiError(403, "MissingAuthenticationToken",
                           "Missing Authentication Token")
        m = re.match(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/"
                     r"([^/]+)/aws4_request, SignedHeaders=([a-z0-9;-]+), "
                     r"Signature=([0-9a-f]{64})$", auth)
        if not m:
            raise ApiError(400, "IncompleteSignature",
                           "Authorization header requires Credential, "
                           "SignedHeaders and Signature")
        akid, date, region, service, signed, sig = m.groups()
        if akid != self.access_key:
            raise ApiError(403, "InvalidClientTokenId", "The security token "
                           "included in the request is invalid.")
        if region != "us-east-1" or service != "route53":
            raise ApiError(403, "SignatureDoesNotMatch", "Credential should "
                           "be scoped to a valid region and service")
        amz = headers.get("X-Amz-Date", "")
        try:
            t = datetime.datetime.strptime(amz, "%Y%m%dT%H%M%SZ").replace(
                tzinfo=datetime.timezone.utc).timestamp()
        except ValueError:
            raise ApiError(400, "IncompleteSignature", "no valid X-Amz-Date")
        if abs(time.time() - t) > 300 or amz[:8] != date:
            raise ApiError(403, "SignatureDoesNotMatch", "Signature expired "
                           "or not scoped to its date")
        names = signed.split(";")
        if "host" not in names or "x-amz-date" not in names or \
                names != sorted(names):
            raise ApiError(403, "SignatureDoesNotMatch", "host and "
                           "x-amz-date must be signed")
        if self.session_token is not None and (
                headers.get("X-Amz-Security-Token") != self.session_token or
                "x-amz-security-token" not in names):
            raise ApiError(403, "InvalidClientTokenId", "The security token "
                           "included in the request is invalid.")
        canon_headers = ""
        for n in names:
            vals = headers.get_all(n) or []
            if not vals:
                raise ApiError(403, "SignatureDoesNotMatch",
                               "signed header %s missing" % n)
            canon_headers += "%s:%s\n" % (n, ",".join(
                re.sub(r"\s+", " ", v.strip()) for v in vals))
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        q = "&".join("%s=%s" % (urllib.parse.quote(k, safe="-_.~"),
                                urllib.parse.quote(v, safe="-_.~"))
                     for k, v in sorted(pairs))
        creq = "\n".join([method, urllib.parse.quote(
            urllib.parse.unquote(path), safe="/-_.~"), q, canon_headers,
            signed, hashlib.sha256(body).hexdigest()])
        scope = "%s/%s/%s/aws4_request" % (date, region, service)
        sts = "\n".join(["AWS4-HMAC-SHA256", amz, scope,
                         hashlib.sha256(creq.encode()).hexdigest()])
        k = ("AWS4" + self.secret_key).encode()
        for part in (date, region, service, "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        want = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, sig):
            raise ApiError(403, "SignatureDoesNotMatch", "The request "
                           "signature we calculated does not match the "
                           "signature you provided.")

    # -- the operations ---------------------------------------------------

    def list_zones(self, q):
        dnsname = fqdn(q.get("dnsname", "")) if q.get("dnsname") else None
        maxitems = int(q.get("maxitems", "100"))
        zs = sorted(self.zones.items(), key=lambda kv: order_key(kv[1]))
        if dnsname:
            zs = [z for z in zs if order_key(z[1]) >= order_key(dnsname)]
        page = zs[:maxitems]
        items = "".join(
            "<HostedZone><Id>/hostedzone/%s</Id><Name>%s</Name>"
            "<CallerReference>dkimkeyd-test</CallerReference><Config>"
            "<PrivateZone>false</PrivateZone></Config>"
            "<ResourceRecordSetCount>%d</ResourceRecordSetCount>"
            "</HostedZone>" % (zid, name, len(self.rrsets[zid]))
            for zid, name in page)
        more = len(zs) > maxitems
        return ("<ListHostedZonesByNameResponse xmlns=\"%s\"><HostedZones>%s"
                "</HostedZones>%s<IsTruncated>%s</IsTruncated>"
                "<MaxItems>%d</MaxItems></ListHostedZonesByNameResponse>" % (
                    NS, items, "<DNSName>%s</DNSName>" % dnsname
                    if dnsname else "", "true" if more else "false",
                    maxitems))

    def list_rrsets(self, zid, q):
        name, rtype = q.get("name"), q.get("type")
        if rtype and not name:
            raise ApiError(400, "InvalidInput", "type requires name")
        maxitems = int(q.get("maxitems", "300"))
        if not 1 <= maxitems <= 300:
            raise ApiError(400, "InvalidInput", "maxitems: 1 to 300")
        rs = sorted(self.rrsets[zid].items(),
                    key=lambda kv: order_key(kv[0][0], kv[0][1]))
        if name:
            start = order_key(name, rtype or "")
            rs = [r for r in rs if order_key(r[0][0], r[0][1]) >= start]
        page, rest = rs[:maxitems], rs[maxitems:]
        items = ""
        for (n, t), (ttl, vals) in page:
            items += ("<ResourceRecordSet><Name>%s</Name><Type>%s</Type>"
                      "<TTL>%d</TTL><ResourceRecords>%s</ResourceRecords>"
                      "</ResourceRecordSet>" % (n, t, ttl, "".join(
                          "<ResourceRecord><Value>%s</Value>"
                          "</ResourceRecord>" % escape(v) for v in vals)))
        nxt = ""
        if rest:
            nxt = ("<NextRecordName>%s</NextRecordName><NextRecordType>%s"
                   "</NextRecordType>" % (rest[0][0][0], rest[0][0][1]))
        return ("<ListResourceRecordSetsResponse xmlns=\"%s\">"
                "<ResourceRecordSets>%s</ResourceRecordSets><IsTruncated>%s"
                "</IsTruncated>%s<MaxItems>%d</MaxItems>"
                "</ListResourceRecordSetsResponse>" % (
                    NS, items, "true" if rest else "false", nxt, maxitems))

    def _parse_batch(self, zid, body):
        bad = lambda why: ApiError(400, "InvalidInput", why)  # noqa: E731
        try:
            root = ET.fromstring(body)
        except ET.ParseError as e:
            raise bad("Could not parse the request XML: %s" % e)
        if root.tag != "{%s}ChangeResourceRecordSetsRequest" % NS:
            raise bad("root element %s is not a "
                      "ChangeResourceRecordSetsRequest in %s" % (root.tag,
                                                                NS))
        changes = root.findall("{%s}ChangeBatch/{%s}Changes/{%s}Change" % (
            NS, NS, NS))
        if not changes:
            raise bad("a ChangeBatch needs at least one Change")
        out, nrec, nchars = [], 0, 0
        zone = self.zones[zid]
        for ch in changes:
            action = ch.findtext("{%s}Action" % NS)
            rs = ch.find("{%s}ResourceRecordSet" % NS)
            if action not in ("CREATE", "DELETE", "UPSERT") or rs is None:
                raise bad("a Change needs an Action (CREATE, DELETE, "
                          "UPSERT) and a ResourceRecordSet")
            name = rs.findtext("{%s}Name" % NS)
            rtype = rs.findtext("{%s}Type" % NS)
            ttl = rs.findtext("{%s}TTL" % NS)
            vals = [v.text or "" for v in rs.findall(
                "{%s}ResourceRecords/{%s}ResourceRecord/{%s}Value" % (
                    NS, NS, NS))]
            if not name or rtype not in TYPES or ttl is None or \
                    not re.match(r"^[0-9]{1,10}$", ttl) or not vals:
                raise bad("a ResourceRecordSet needs Name, Type, TTL and "
                          "ResourceRecords")
            nrec += len(vals) * (2 if action == "UPSERT" else 1)
            nchars += sum(len(v) for v in vals) * (
                2 if action == "UPSERT" else 1)
            n = fqdn(name)
            if not (n == zone or n.endswith("." + zone)):
                raise ApiError(400, "InvalidChangeBatch", "RRSet with DNS "
                               "name %s is not permitted in zone %s" % (
                                   n, zone))
            for v in vals:
                if len(v) > 4000:
                    raise bad("Value is longer than 4000 characters")
                if rtype == "TXT":
                    try:
                        dns.rdata.from_text("IN", "TXT", v)
                    except Exception:  # noqa: BLE001 - dnspython's many
                        raise ApiError(400, "InvalidChangeBatch",
                                       "CharacterStringTooLong (Value is "
                                       "too long) encountered with '%s'" %
                                       v[:60])
            out.append((action, n, rtype, int(ttl), vals))
        if nrec > MAX_RECORDS:
            raise bad("Number of records in the change batch exceeds the "
                      "maximum allowed (%d)" % MAX_RECORDS)
        if nchars > MAX_VALUE_CHARS:
            raise bad("Number of characters in the Value elements exceeds "
                      "the maximum allowed (%d)" % MAX_VALUE_CHARS)
        return out

    def change(self, zid, body):
        changes = self._parse_batch(zid, body)
        self._apply_pending()
        model = dict(self.rrsets[zid])
        errors, deleted, touched = [], set(), set()
        for action, n, t, ttl, vals in changes:
            key = (n, t)
            cur = model.get(key)
            desc = "[name='%s', type='%s']" % (n, t)
            if action == "DELETE":
                if key in deleted:
                    errors.append("Tried to delete resource record set %s "
                                  "more than once" % desc)
                elif cur is None:
                    errors.append("Tried to delete resource record set %s "
                                  "but it was not found" % desc)
                elif cur[0] != ttl or sorted(cur[1]) != sorted(vals):
                    errors.append("Tried to delete resource record set %s "
                                  "but the values provided do not match "
                                  "the current values" % desc)
                else:
                    del model[key]
                    deleted.add(key)
            elif action == "CREATE" and cur is not None:
                errors.append("Tried to create resource record set %s but "
                              "it already exists" % desc)
            else:
                model[key] = (ttl, list(vals))
            touched.add(key)
        if errors:
            raise ApiError(400, "InvalidChangeBatch", "\n".join(errors))
        self.rrsets[zid] = model
        cid = "C" + secrets.token_hex(10).upper()
        final = {k: model.get(k) for k in touched}
        self.changes[cid] = [None, self.pending_polls, zid, final]
        return self._change_info("ChangeResourceRecordSetsResponse", cid,
                                 "PENDING")

    def _change_info(self, root, cid, status):
        return ("<%s xmlns=\"%s\"><ChangeInfo><Id>/change/%s</Id><Status>%s"
                "</Status><SubmittedAt>%s</SubmittedAt></ChangeInfo></%s>" % (
                    root, NS, cid, status, datetime.datetime.utcnow()
                    .strftime("%Y-%m-%dT%H:%M:%S.000Z"), root))

    def get_change(self, cid):
        c = self.changes.get(cid)
        if c is None:
            raise ApiError(404, "NoSuchChange", "A change with the "
                           "specified change ID does not exist.")
        if c[0] is None and c[1] > 0:
            c[1] -= 1
            return self._change_info("GetChangeResponse", cid, "PENDING")
        self._to_dns(cid)
        return self._change_info("GetChangeResponse", cid, "INSYNC")

    def _apply_pending(self):
        for cid, c in list(self.changes.items()):
            if c[0] is None:
                self._to_dns(cid)

    def _to_dns(self, cid):
        """The change reaches the name servers: one RFC 2136 UPDATE."""
        c = self.changes[cid]
        if c[0] is not None:
            return
        zone = self.zones[c[2]]
        u = dns.update.UpdateMessage(zone, keyring=self.bind.tsig_key())
        for (n, t), rr in sorted(c[3].items()):
            name = dns.name.from_text(n)
            if rr is None:
                u.delete(name, t)
                continue
            vals = rr[1]
            if t == "TXT" and self.truncate_txt:
                vals = [re.match(r'^\s*("(?:[^"\\]|\\.)*"|\S+)', v).group(1)
                        for v in vals]
            rds = [dns.rdata.from_text("IN", t, v) for v in vals]
            u.replace(name, rr[0], *rds)
        r = dns.query.tcp(u, "127.0.0.1", port=self.bind.port, timeout=5)
        if r.rcode() != dns.rcode.NOERROR:
            raise RuntimeError("UPDATE for change %s: %s" % (
                cid, dns.rcode.to_text(r.rcode())))
        c[0] = "INSYNC"

    def dispatch(self, method, path, q, body):
        m = re.match(r"^/2013-04-01/hostedzone/([A-Z0-9]+)/rrset/?$", path)
        if m:
            zid = m.group(1)
            if zid not in self.zones:
                raise ApiError(404, "NoSuchHostedZone", "No hosted zone "
                               "found with ID: %s" % zid)
            if method == "GET":
                return self.list_rrsets(zid, q)
            if method == "POST":
                return self.change(zid, body)
        m = re.match(r"^/2013-04-01/change/([A-Za-z0-9]+)$", path)
        if m and method == "GET":
            return self.get_change(m.group(1))
        if path == "/2013-04-01/hostedzonesbyname" and method == "GET":
            return self.list_zones(q)
        raise ApiError(404, "UnknownOperationException",
                       "no such operation: %s %s" % (method, path))

    def take_fault(self, method, path):
        with self.lock:
            for f in self.faults:
                if f["times"] > 0 and f["match"] in "%s %s" % (method, path):
                    f["times"] -= 1
                    return dict(f)
        return None


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    api = None

    def log_message(self, *args):
        pass

    def reply(self, status, text, extra=()):
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", secrets.token_hex(8))
        for k, v in extra:
            self.send_header(k, v)
        try:
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True    # the client hung up

    def handle_any(self):
        api = self.api
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
        status = 200
        try:
            api.check_signature(self.command, u.path, u.query, self.headers,
                                body)
            f = api.take_fault(self.command, u.path)
            if f is not None:
                if f["delay"]:
                    time.sleep(f["delay"])
                if f["status"] is not None:
                    extra = []
                    if f["retry_after"] is not None:
                        extra.append(("Retry-After", str(f["retry_after"])))
                    raise ApiError(f["status"], f["code"], f["message"],
                                   "Sender" if f["status"] < 500 else
                                   "Receiver", extra)
            with api.lock:
                text = api.dispatch(self.command, u.path, q, body)
            self.reply(200, text)
        except ApiError as e:
            status = e.status
            self.reply(e.status, e.body(), e.extra)
        except Exception as e:  # noqa: BLE001 - reported to the client
            status = 500
            self.reply(500, ApiError(500, "InternalFailure", repr(e),
                                     "Receiver").body())
        with api.lock:
            api.requests.append((self.command, u.path, u.query, status))

    do_GET = handle_any
    do_POST = handle_any
    do_DELETE = handle_any
