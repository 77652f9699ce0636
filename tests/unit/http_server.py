#!/usr/bin/python3
"""A loopback HTTP and HTTPS server for tests/unit/test_http.c.

    http_server.py DIR

Makes a test CA, a server certificate for 127.0.0.1 signed by it and a
second, unrelated CA in DIR (ca.pem, other-ca.pem; tests/integration/
tlsserver.py, shared with the API stand-ins), serves HTTP and HTTPS
on free ports of 127.0.0.1, prints "HTTP_PORT HTTPS_PORT" and serves
until stdin closes.  Paths:

  /echo         200, JSON of the method, body and X-API-Key received
  /401          401 {"error": "Not authorized: bad key"}
  /403-html     403, an HTML page
  /429-once/ID  429 with Retry-After: 1 the first time, then 200
  /429-long     429 with Retry-After: 120
  /500          500 "Internal trouble" every time
  /slow         200 after 3 seconds
  /big          200 with 9 MiB of body
  /redirect     302 to /echo
  /hits/PATH    how many requests PATH had, as text
"""

import http.server
import os
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "integration"))
import tlsserver  # noqa: E402

hits = {}
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, body, ctype="application/json", extra=()):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        p = self.path
        with lock:
            hits[p] = hits.get(p, 0) + 1
            count = hits[p]
        if p == "/echo":
            import json
            self.reply(200, json.dumps({
                "method": self.command, "body": body.decode(),
                "key": self.headers.get("X-API-Key")}))
        elif p == "/401":
            self.reply(401, '{"error": "Not authorized: bad key"}')
        elif p == "/403-html":
            self.reply(403, "<html><body>Forbidden</body></html>",
                       "text/html")
        elif p.startswith("/429-once/"):
            if count == 1:
                self.reply(429, '{"error": "slow down"}',
                           extra=[("Retry-After", "1")])
            else:
                self.reply(200, '{"ok": true}')
        elif p == "/429-long":
            self.reply(429, '{"error": "slow down"}',
                       extra=[("Retry-After", "120")])
        elif p == "/500":
            self.reply(500, "Internal trouble", "text/plain")
        elif p == "/slow":
            time.sleep(3)
            self.reply(200, '{"ok": true}')
        elif p == "/big":
            self.reply(200, b"x" * (9 << 20), "text/plain")
        elif p == "/redirect":
            self.reply(302, "", extra=[("Location", "/echo")])
        elif p.startswith("/hits/"):
            with lock:
                self.reply(200, str(hits.get(p[5:], 0)), "text/plain")
        else:
            self.reply(404, '{"error": "Not Found"}')

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = handle_any


def main():
    _, _, cert, key = tlsserver.make_certs(sys.argv[1])
    plain = tlsserver.Server(Handler)
    tls = tlsserver.Server(Handler, cert, key)
    for s in (plain, tls):
        # A client that hangs up early (body cap, timeout): no traceback.
        s.quiet = True
        s.start()
    print(plain.port, tls.port, flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
