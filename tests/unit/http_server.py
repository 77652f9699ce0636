#!/usr/bin/python3
"""A loopback HTTP and HTTPS server for tests/unit/test_http.c.

    http_server.py DIR

Makes a test CA, a server certificate for 127.0.0.1 signed by it and a
second, unrelated CA in DIR (ca.pem, other-ca.pem), serves HTTP and HTTPS
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
import ssl
import subprocess
import sys
import threading
import time

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


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass    # a client that hangs up early (body cap, timeout)


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True,
                   capture_output=True, timeout=60)


def make_certs(d):
    for name in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                "-subj", "/CN=dkimkeyd test %s" % name,
                "-keyout", os.path.join(d, name + ".key"),
                "-out", os.path.join(d, name + ".pem"))
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", os.path.join(d, "server.key"),
            "-out", os.path.join(d, "server.csr"))
    ext = os.path.join(d, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", os.path.join(d, "server.csr"),
            "-CA", os.path.join(d, "ca.pem"),
            "-CAkey", os.path.join(d, "ca.key"), "-CAcreateserial",
            "-days", "2", "-extfile", ext,
            "-out", os.path.join(d, "server.pem"))


def main():
    d = sys.argv[1]
    make_certs(d)
    plain = Server(("127.0.0.1", 0), Handler)
    tls = Server(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(d, "server.pem"),
                        os.path.join(d, "server.key"))
    tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
    for s in (plain, tls):
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print(plain.server_address[1], tls.server_address[1], flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
