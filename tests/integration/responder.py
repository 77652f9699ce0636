"""A scriptable hostile DNS responder for the dkimkeyd integration tests.

It listens on 127.0.0.1 (UDP only: a truncated reply cannot be retried
over TCP) and answers each query by asking an upstream server (the test
BIND) and then spoiling the reply the way the test asks:

    good            the upstream reply unchanged (the control case)
    wrong_id        the reply with another message ID
    wrong_question  the reply to a question about another name
    wrong_type      the reply with the question's type changed
    truncated       TC=1 and no records; no TCP listener behind it
    oversized       the reply padded past the EDNS size the query offered
    garbage         random octets
    short           a few octets, less than a DNS header
    not_response    the reply with QR=0
    other_port      the right reply, sent from another port
    other_address   the right reply, sent from 127.0.0.2
    silent          nothing at all
    wrong_id_then_good
                    first a reply with a wrong ID, then the right one
                    (a client must keep waiting past a forged reply)

Only 127.0.0.1 (and 127.0.0.2 as a source) is used.  Runs in a daemon
thread of the test process; stop() ends it.
"""

import os
import socket
import struct
import threading

import dns.message
import dns.name
import dns.query
import dns.rdatatype

from harness import free_port

MODES = ("good", "wrong_id", "wrong_question", "wrong_type", "truncated",
         "oversized", "garbage", "short", "not_response", "other_port",
         "other_address", "silent", "wrong_id_then_good")


class Responder:
    def __init__(self, upstream_port, mode="good", port=None):
        if mode not in MODES:
            raise ValueError("unknown mode %r" % mode)
        self.mode = mode
        self.upstream_port = upstream_port
        self.port = port or free_port()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.settimeout(0.2)
        self.queries = 0
        self.errors = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def addr(self):
        return "127.0.0.1:%d" % self.port

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- the spoilers ----------------------------------------------------

    def _upstream(self, wire):
        q = dns.message.from_wire(wire)
        r = dns.query.udp(q, "127.0.0.1", port=self.upstream_port,
                          timeout=2, ignore_unexpected=True)
        return q, r

    @staticmethod
    def _flip_id(wire):
        (qid,) = struct.unpack("!H", wire[:2])
        return struct.pack("!H", qid ^ 0x5a5a) + wire[2:]

    def _replies(self, wire):
        """[(bytes, source)] to send for one query; source None means the
        listening socket, else (address, port) to bind a new socket."""
        m = self.mode
        if m == "silent":
            return []
        if m == "garbage":
            return [(os.urandom(64), None)]
        if m == "short":
            return [(wire[:2] + b"\x81", None)]
        q, r = self._upstream(wire)
        good = r.to_wire()
        if m == "good":
            return [(good, None)]
        if m == "wrong_id":
            return [(self._flip_id(good), None)]
        if m == "wrong_id_then_good":
            return [(self._flip_id(good), None), (good, None)]
        if m == "not_response":
            return [(good[:2] + bytes([good[2] & 0x7f]) + good[3:], None)]
        if m == "wrong_question":
            other = dns.message.make_query(
                dns.name.from_text("forged." + str(q.question[0].name)),
                q.question[0].rdtype)
            other.id = q.id
            r2 = dns.message.make_response(other)
            r2.flags |= 0x0400  # AA
            r2.answer = list(r.answer)
            return [(r2.to_wire(), None)]
        if m == "wrong_type":
            r.question[0].rdtype = (dns.rdatatype.A if
                                    q.question[0].rdtype !=
                                    dns.rdatatype.A else
                                    dns.rdatatype.MX)
            return [(r.to_wire(), None)]
        if m == "truncated":
            t = dns.message.make_response(q)
            t.flags |= 0x0200 | 0x0400  # TC, AA
            return [(t.to_wire(), None)]
        if m == "oversized":
            # A reply bigger than the 1232 octets the query offered: a
            # real server would have truncated it.
            return [(good + b"\x00" * (1400 - len(good) if len(good) <
                                       1400 else 64), None)]
        if m == "other_port":
            return [(good, ("127.0.0.1", 0))]
        if m == "other_address":
            return [(good, ("127.0.0.2", self.port))]
        raise AssertionError(m)

    def _loop(self):
        while not self._stop.is_set():
            try:
                wire, peer = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            self.queries += 1
            try:
                for data, src in self._replies(wire):
                    if src is None:
                        self.sock.sendto(data, peer)
                        continue
                    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    try:
                        s.bind(src)
                        s.sendto(data, peer)
                    finally:
                        s.close()
            except Exception as e:  # noqa: BLE001 - reported by the test
                self.errors.append(repr(e))

