"""HTTPS on 127.0.0.1 for the tests' HTTP stand-ins (cfapi.py, r53api.py,
tests/unit/http_server.py): one way to make the certificates and one way
to serve.

make_certs(d) makes, with openssl, a test CA (ca.pem), a second and
unrelated CA (other-ca.pem, for the wrong-CA tests) and a server
certificate for 127.0.0.1 signed by the first (server.pem, server.key).
Server is a threaded HTTP server on a loopback port, TLS when given a
certificate, served from a daemon thread and stopped by shutting that
thread down.
"""

import os
import ssl
import subprocess
import threading
from http.server import ThreadingHTTPServer


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True,
                   capture_output=True, timeout=60)


def make_certs(d, label="dkimkeyd test"):
    """(ca.pem, other-ca.pem, server.pem, server.key) paths in d."""
    os.makedirs(d, exist_ok=True)
    p = lambda f: os.path.join(d, f)  # noqa: E731
    for name in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                "-subj", "/CN=%s %s" % (label, name),
                "-keyout", p(name + ".key"), "-out", p(name + ".pem"),
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", p("server.key"), "-out", p("server.csr"))
    with open(p("ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", p("server.csr"), "-CA", p("ca.pem"),
            "-CAkey", p("ca.key"), "-CAcreateserial", "-days", "2",
            "-extfile", p("ext.cnf"), "-out", p("server.pem"))
    return p("ca.pem"), p("other-ca.pem"), p("server.pem"), p("server.key")


class Server(ThreadingHTTPServer):
    """handler on 127.0.0.1:port (0: a free one), over TLS with cert and
    key when given; start() serves from a daemon thread."""

    daemon_threads = True
    quiet = False       # True: no traceback for a client that hung up

    def __init__(self, handler, cert=None, key=None, port=0):
        super().__init__(("127.0.0.1", port), handler)
        if cert is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            self.socket = ctx.wrap_socket(self.socket, server_side=True)
        self.thread = None

    @property
    def port(self):
        return self.server_address[1]

    def start(self):
        self.thread = threading.Thread(target=self.serve_forever,
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.shutdown()
        self.server_close()

    def handle_error(self, request, client_address):
        if not self.quiet:
            super().handle_error(request, client_address)
