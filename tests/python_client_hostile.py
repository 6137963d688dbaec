"""python_client_hostile: a federation keeps its result while a hostile peer written from
messages/PROTOCOL.md (with the Python client's codec) attacks it over tcp.

tests/topologies/python-client.zpl runs twice as `hafl node` processes for its three hosts,
every client a C client, with stragglers slowed so that a run lasts a few seconds: once
undisturbed, recording the final adapter digest, and once while this script, as soon as the
logger's PUB stream announces the federation's start, sends the server:
- malformed frames (random bytes, a cut HELLO, trailing bytes, nil, bad UTF-8, an unknown
  type, a wrong frame count, huge declared lengths, a frame 0 above 2^22 bytes) and NaN or
  inf tensors: never answered, each logged as `malformed` with the code this codec gives;
- a frame above the server's ZMQ_MAXMSGSIZE: the connection is dropped, nothing answered;
- HELLOs of majors 1 and 3 (REJECT VERSION), an UPDATE of major 3 (nothing), a HELLO of a
  newer minor with extra elements (read: REJECT BASE_DIGEST for its digest);
- bursts: 200 HELLOs with a wrong digest on one connection, 50 connections claiming an index
  out of range: every one answered (BASE_DIGEST, INDEX);
- takeovers of a live client's place: no session (INDEX), `rejoin` without a session
  (SESSION), a wrong session (SESSION); a second evaluator without and with a wrong session
  (SESSION); a rank budget that is not the topology's (RANK, which wins over the held place);
- `n_samples` above the cap (AUTH, naming the cap) and 0 (INDEX);
- an UPDATE for a client it is not, a HEARTBEAT and an EVAL_RESULT claiming accuracy 0.999
  from a connection that holds no place (nothing answered; `unexpected`);
- a forged LOG_EVENT pushed at the logger's PULL endpoint claiming the run's `final` event.
The disturbed run must end with the undisturbed digest, each REJECT must carry the reason the
specification gives, events.jsonl must hold exactly one `"event":"final"` line (the server's,
with that digest), and rounds.csv no accuracy of 0.999.

With --routing-id-takeover (ctest python_client_hijack) it instead plays one more attack: it
reads client 0's ROUTER routing id from the PUB stream, connects with that ZMQ_ROUTING_ID
(which would take client 0's connection over were ZMQ_ROUTER_HANDOVER set on the server's
ROUTER; actors/hafl_server.c leaves it off), keeps the place alive with HEARTBEATs and
answers client 0's ROUNDs with UPDATEs of its own, without ever saying HELLO; the run must
still end with the undisturbed digest.

With --curve (ctest python_client_hostile_curve) both runs are CURVE runs: `hafl keygen
WORK/keys --clients 6` writes one certificate per client bound to its index and one for the
evaluator, the topology gets 6 clients (client 5 must exist: its certificate is the stolen one
below; clients 3-5 on host `solo`) and the security section keygen prints, and the attacker,
with certificates read from those files, plays:
- client 3's own (stolen) certificate on a new connection for its live place: no session
  (INDEX), `rejoin` without a session and a wrong session (SESSION, `takeover-refused`);
  the evaluator's certificate for the live evaluator's place likewise (SESSION);
- client 5's certificate claiming client 3's place, also with `rejoin` and a session (AUTH,
  "is bound to client 5, not client 3", `binding-refused`: the binding is checked before the
  session), and claiming the evaluator's place (AUTH); the evaluator's certificate claiming
  client 3's (AUTH); client 5's certificate with a wrong base digest (BASE_DIGEST, checked
  before the binding);
- a certificate outside the allow-list (zmq.curve_keypair()) and a peer without CURVE: the
  handshake is refused (the socket monitor says so, nothing is answered, the server logs
  `peer-refused`);
- a forged LOG_EVENT `final` pushed at the logger's PULL with a key outside the allow-list and
  without CURVE: refused (`log-refused`).
The attacked run must end with the clean CURVE run's digest and events.jsonl hold exactly one
`final` line, the server's.
"""

import faulthandler
import glob
import json
import os
import random
import re
import shutil
import struct
import sys
import tempfile
import time
from array import array

import python_client_harness as H

import msgpack
import zmq
from hafl_client import codec, errors, protocol
from hafl_client.messages import (EvalResult, Head, Heartbeat, Hello, LogEvent, Rank1, Round,
                                  Update)

T = H.Failures("python_client_hostile")
# Slow rounds (every client straggles 400-500 ms, a run lasts about 4 s) so the attacks land
# while rounds run; the same settings in both runs, so the digests compare.
SLOW = ["faults/stragglers/share=1", "faults/stragglers/min_ms=400",
        "faults/stragglers/max_ms=500"]
# The CURVE runs (--curve): six clients, so that client 5's certificate exists to be stolen;
# host `solo` runs clients 3-5.
CURVE_CLIENTS = 6
CURVE_RANKS = H.RANKS + [2, 4]
CURVE_TOPOLOGY = [f"clients/count={CURVE_CLIENTS}",
                  "clients/ranks=" + ",".join(str(r) for r in CURVE_RANKS),
                  "placement/hosts/solo/clients=3-5", "security/insecure=false"]
# libzmq's socket monitor events that end a handshake.
HANDSHAKE_EVENTS = {zmq.EVENT_HANDSHAKE_SUCCEEDED: "succeeded",
                    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "failed",
                    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "failed (protocol)",
                    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "failed (authentication)"}


def pack(value, single=True):
    return msgpack.packb(value, use_bin_type=True, use_single_float=single)


def run_nodes(base, work, hostile=None, sets=()):
    """Run the three hosts; hostile(base) runs meanwhile. (digest, run folder)."""
    nodes = [H.Node(host, base, work, SLOW + list(sets)) for host in ("server", "fleet", "solo")]
    try:
        if hostile:
            hostile(base)
        # The client hosts end once the server has told their clients the run is over.
        statuses = [nodes[0].wait(45)] + [n.wait(10) for n in nodes[1:]]
    finally:
        for n in nodes:
            n.stop()
    for n, status in zip(nodes, statuses):
        T.check(status == 0, f"{'attacked' if hostile else 'clean'} run: node {n.host} ends "
                f"with status 0 ({status})")
    return nodes[0].digest(), nodes[0].run_folder()


class Attacker:
    def __init__(self, base, clients=H.CLIENTS, keys=None):
        self.base = base
        self.clients = clients
        self.keys = keys  # the certificates' directory (--curve)
        self.ctx = zmq.Context()
        self.digest = H.base_digest(clients)
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.setsockopt(zmq.RECONNECT_IVL, 10)  # the logger binds as its node starts
        self.sub.connect(f"tcp://127.0.0.1:{base + 3}")
        self.seen = []        # every event of the PUB stream, decoded
        self.malformed = []   # (case, code, field) the codec expects the server to log
        self.silent = []      # (case, socket) of messages that must go unanswered
        self.ended = False

    def close(self):
        self.ctx.destroy(linger=0)

    def dealer(self, routing_id=None, cert=None, monitor=False):
        """A DEALER connected to the server; with cert ({"public", "secret"}, Z85) a CURVE
        client of the server's public key; with monitor, (socket, its monitor socket)."""
        s = self.ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        if routing_id is not None:
            s.setsockopt(zmq.ROUTING_ID, routing_id)
        return self.connect(s, self.base, cert, monitor)

    def connect(self, s, port, cert, monitor):
        if cert is not None:
            s.curve_publickey = cert["public"]
            s.curve_secretkey = cert["secret"]
            s.curve_serverkey = H.read_cert(os.path.join(self.keys, "server.cert"))["public"]
        mon = s.get_monitor_socket(zmq.EVENT_ALL) if monitor else None
        s.connect(f"tcp://127.0.0.1:{port}")
        return (s, mon) if monitor else s

    def cert(self, name):
        """A secret certificate `hafl keygen` wrote: client-K or evaluator."""
        return H.read_cert(os.path.join(self.keys, f"{name}.cert_secret"))

    @staticmethod
    def handshake(s, mon, timeout_s=10):
        """The first handshake outcome s's monitor reports, as (event name, value), or None
        when none comes within timeout_s. Ends the monitor (pyzmq names its endpoint after
        the socket's file descriptor, which a later socket may reuse)."""
        from zmq.utils.monitor import recv_monitor_message
        deadline = time.monotonic() + timeout_s
        outcome = None
        while outcome is None and time.monotonic() < deadline:
            if not mon.poll(max(1, int((deadline - time.monotonic()) * 1000))):
                break
            ev = recv_monitor_message(mon)
            if ev["event"] in HANDSHAKE_EVENTS:
                outcome = HANDSHAKE_EVENTS[ev["event"]], int(ev["value"])
        s.disable_monitor()
        mon.close()
        return outcome

    def pump(self, timeout_ms=0):
        """Read the PUB stream; checks its topic frame against each event."""
        while self.sub.poll(timeout_ms):
            timeout_ms = 0
            frames = self.sub.recv_multipart()
            ev = codec.decode(frames[1:])
            if frames[0] != f"{ev.event} {ev.actor} ".encode():
                T.check(False, f"PUB topic {frames[0]!r} for {ev.event} of {ev.actor}")
            self.seen.append(ev)
            if ev.event == "final" and ev.actor == "server":
                self.ended = True

    def wait_event(self, name, timeout_s=30):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for ev in self.seen:
                if ev.event == name:
                    return ev
            self.pump(100)
        return None

    def replies(self, sock, count=1, timeout_ms=3000):
        """Up to count decoded replies (fewer when timeout_ms passes without one)."""
        out = []
        while len(out) < count and sock.poll(timeout_ms):
            out.append(codec.decode(sock.recv_multipart()))
        return out

    def expect_reject(self, case, frames, reason, text=None, cert=None):
        s = self.dealer(cert=cert)
        s.send_multipart(frames)
        got = self.replies(s, 1, 5000 if cert else 2000)
        s.close()
        r = got[0] if got else None
        ok = r is not None and r.TYPE == protocol.REJECT and r.reason == reason and \
            (text is None or text in r.text)
        T.check(ok, f"{case}: REJECT {protocol.REJECT_NAMES[reason]}"
                f"{' naming ' + text if text else ''} ({r})")
        return r

    def send_silent(self, case, frames, malformed=True):
        """Send on a connection of its own a message the server must not answer; a malformed
        one is also noted with the code and field the codec gives, for the server's
        `malformed` events. check_silence() then checks that none was answered."""
        s = self.dealer()
        s.send_multipart(frames)
        self.silent.append((case, s))
        if malformed:
            try:
                codec.decode(frames)
                T.check(False, f"{case}: the codec refuses it too")
            except errors.DecodeError as exc:
                self.malformed.append((case, exc.code, exc.field))

    def check_silence(self):
        time.sleep(0.3)
        for case, s in self.silent:
            got = self.replies(s, 1, 0)
            T.check(not got, f"{case}: no answer ({got})")
            s.close()
        self.silent = []

    def hello(self, index, rank, n_samples=None, digest=None, rejoin=False, session=b"",
              major=None, minor=None, extra=()):
        if n_samples is None:
            n_samples = H.shard_size(index, self.clients) if index < self.clients else 1
        msg = Hello(index, "hostile", rank, n_samples, digest or self.digest, rejoin, session)
        frame = codec.encode(msg)[0]
        if major is not None or minor is not None or extra:
            header = msgpack.unpackb(frame, raw=False)
            header[0] = header[0] if major is None else major
            header[1] = header[1] if minor is None else minor
            frame = pack(header + list(extra))
        return [frame]


def run_cases(a):
    # The PUB stream may start after the federation does: any round's start will do (the
    # evaluator and every client have joined by then).
    start = a.wait_event("round-start")
    if not T.check(start is not None, f"the PUB stream shows rounds running (round "
                   f"{start and start.round})"):
        return
    run_id = start.run_id
    wrong = bytes(32)
    hello_ok = a.hello(3, 8)[0]
    update = Update(1, 2, H.shard_size(2), 0.5, 1, 1,
                    [Rank1(0, 0, 1.0, array("f", [0.1] * 32), array("f", [0.1] * 32))],
                    Head(4, 33, array("f", [0.0] * 132)))
    update_frames = codec.encode(update)
    rng = random.Random(13)

    # Malformed frames: never answered, logged with the codec's code.
    a.send_silent("random bytes", [bytes(rng.randrange(256) for _ in range(200))])
    a.send_silent("a HELLO cut short", [hello_ok[:30]])
    a.send_silent("a HELLO with a trailing byte", [hello_ok + b"\0"])
    a.send_silent("a HELLO with nil for its name",
                     [pack([2, 1, 1, 3, None, 8, 256, a.digest, False, b""])])
    a.send_silent("a HELLO with invalid UTF-8", [hello_ok.replace(b"hostile", b"h\xffstile")])
    a.send_silent("an unknown type", [pack([2, 1, 99, 1, 2, 3])])
    a.send_silent("an empty frame", [b""])
    a.send_silent("an UPDATE declaring 2 components with none",
                     [pack([2, 1, 5, 1, 2, 256, 0.5, 1, 1, 2])] + update_frames[-1:])
    # Huge lengths.
    a.send_silent("a str 32 declaring 4 GiB", [b"\x9a\x02\x01\x01\x03\xdb\xff\xff\xff\xf0ab"])
    a.send_silent("an array 32 of 2^32 - 1 elements", [b"\xdd\xff\xff\xff\xff\x02\x01\x01"])
    a.send_silent("an UPDATE declaring 300000 components",
                     [pack([2, 1, 5, 1, 2, 256, 0.5, 1, 1, 300000])])
    a.send_silent("a frame 0 above 2^22 bytes", [pack([2, 1, 11, 3, 1, 1, "x" * 2**22])])
    # NaN and inf.
    nan = struct.pack("<f", float("nan"))
    bad = update_frames[1][:24] + nan + update_frames[1][28:]
    a.send_silent("an UPDATE with NaN in b", [update_frames[0], bad, update_frames[2]])
    bad_head = update_frames[2][:16] + struct.pack("<f", float("inf")) + update_frames[2][20:]
    a.send_silent("an UPDATE with inf in the head", [update_frames[0], update_frames[1],
                                                      bad_head])
    a.send_silent("an EVAL_RESULT with a NaN loss",
                     [pack([2, 1, 7, 1, 0, 0.5, float("nan"), 10, 1])])
    # A frame above the server's ZMQ_MAXMSGSIZE (the header cap + 4096 bytes for this
    # layout): libzmq drops the connection before the decoder sees it.
    a.send_silent("a frame of 5 MiB", [bytes(5 << 20)], malformed=False)
    # Versions.
    a.expect_reject("a HELLO of major 1", a.hello(3, 8, major=1), protocol.REJECT_VERSION)
    a.expect_reject("a HELLO of major 3", a.hello(3, 8, major=3), protocol.REJECT_VERSION)
    a.send_silent("an UPDATE of major 3", [pack([3, 1, 5])] + update_frames[1:])
    a.expect_reject("a HELLO of minor 7 with extra elements and a wrong digest",
                    a.hello(3, 8, digest=wrong, minor=7, extra=[{"new": [1, [2]]}, b"x"]),
                    protocol.REJECT_BASE_DIGEST)
    # Bursts.
    s = a.dealer()
    for _ in range(200):
        s.send_multipart(a.hello(3, 8, digest=wrong))
    got = a.replies(s, 200)
    s.close()
    T.check(len(got) == 200 and all(r.reason == protocol.REJECT_BASE_DIGEST for r in got),
            f"200 HELLOs with a wrong digest on one connection: 200 REJECT BASE_DIGEST "
            f"({len(got)})")
    socks = [a.dealer() for _ in range(50)]
    for s in socks:
        s.send_multipart(a.hello(99, 8, n_samples=1))
    deadline = time.monotonic() + 3
    got = [a.replies(s, 1, max(0, int((deadline - time.monotonic()) * 1000))) for s in socks]
    for s in socks:
        s.close()
    T.check(all(len(r) == 1 and r[0].reason == protocol.REJECT_INDEX for r in got),
            "50 connections claiming index 99: each REJECT INDEX")
    # Takeovers of a live client's place and of the evaluator's.
    a.expect_reject("client 0's place, no session", a.hello(0, 2), protocol.REJECT_INDEX,
                    "already taken")
    a.expect_reject("client 0's place, rejoin without a session", a.hello(0, 2, rejoin=True),
                    protocol.REJECT_SESSION)
    a.expect_reject("client 0's place, a wrong session",
                    a.hello(0, 2, rejoin=True, session=bytes(range(32))),
                    protocol.REJECT_SESSION)
    a.expect_reject("client 1's place with rank budget 8 (not 4)", a.hello(1, 8),
                    protocol.REJECT_RANK)
    a.expect_reject("a second evaluator", a.hello(protocol.EVALUATOR_INDEX, 1, n_samples=1),
                    protocol.REJECT_SESSION)
    a.expect_reject("a second evaluator with a wrong session",
                    a.hello(protocol.EVALUATOR_INDEX, 1, n_samples=1, rejoin=True,
                            session=bytes(range(32))), protocol.REJECT_SESSION)
    # Sample counts.
    a.expect_reject("n_samples 10^6", a.hello(3, 8, n_samples=10**6), protocol.REJECT_AUTH,
                    str(H.shard_size(0)))
    a.expect_reject("n_samples 0", a.hello(3, 8, n_samples=0), protocol.REJECT_INDEX,
                    "no training samples")
    # Well-formed messages from a connection that holds no place.
    current = max([e.round for e in a.seen if e.event == "round-start"] or [1])
    forged = Update(current, 2, H.shard_size(2), 0.1, 1, 1, [], Head(4, 33,
                    array("f", [5.0] * 132)))
    a.send_silent("an UPDATE for client 2 from a stranger", codec.encode(forged), False)
    a.send_silent("a HEARTBEAT from a stranger",
                     codec.encode(Heartbeat(2, 1, time.time_ns() // 1000)), False)
    a.send_silent("an EVAL_RESULT of accuracy 0.999 from a stranger",
                     codec.encode(EvalResult(current, 0, 0.999, 0.01, 256, 1)), False)
    a.check_silence()
    a.pump()
    T.check(not a.ended, "every attack on the server was made while rounds still ran")
    # A forged `final` event at the logger (its echo on the PUB stream is not the run's end).
    forged = forged_final(run_id)
    # Each is closed once its monitor has seen the handshake fail (no linger needed).
    for password in (None, b"guessed"):  # no credentials; a wrong PLAIN password
        push = a.ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 0)
        if password:
            push.plain_username = b"hafl-log"
            push.plain_password = password
        push, mon = a.connect(push, a.base + 2, None, True)
        push.send_multipart(forged)  # queued: connect made the pipe
        outcome = a.handshake(push, mon)
        T.check(outcome is not None and outcome[0] != "succeeded",
                f"a forged final event at the logger, "
                f"{'a wrong password' if password else 'no credentials'}: the handshake is "
                f"refused ({outcome})")
        push.close()


def forged_final(run_id):
    return codec.encode(LogEvent(time.time_ns() // 1000, run_id, 8, "server", "final",
                                 [("sha256", "0" * 64), ("reason", "all rounds done"),
                                  ("ok", True)]))


def run_curve_cases(a):
    """The takeovers of a CURVE federation (--curve), each with the certificate it names."""
    start = a.wait_event("round-start")
    if not T.check(start is not None, f"the PUB stream shows rounds running (round "
                   f"{start and start.round})"):
        return
    ev = protocol.EVALUATOR_INDEX
    c3, c5, evaluator = a.cert("client-3"), a.cert("client-5"), a.cert("evaluator")
    T.check(c3["meta"].get("index") == "3" and c5["meta"].get("index") == "5" and
            evaluator["meta"].get("role") == "evaluator",
            f"keygen bound client-3, client-5 and the evaluator's certificates "
            f"({c3['meta']}, {c5['meta']}, {evaluator['meta']})")
    wrong = bytes(range(32))
    # Client 3's own certificate, stolen: it passes the handshake and its binding, and then
    # meets the session rules of the live place.
    a.expect_reject("client 3's certificate, client 3's place, no session", a.hello(3, 8),
                    protocol.REJECT_INDEX, "already taken", cert=c3)
    a.expect_reject("client 3's certificate, client 3's place, rejoin without a session",
                    a.hello(3, 8, rejoin=True), protocol.REJECT_SESSION, cert=c3)
    a.expect_reject("client 3's certificate, client 3's place, a wrong session",
                    a.hello(3, 8, rejoin=True, session=wrong), protocol.REJECT_SESSION,
                    cert=c3)
    # The evaluator's certificate, stolen, for the live evaluator's place.
    a.expect_reject("the evaluator's certificate, a second evaluator without a session",
                    a.hello(ev, 1, n_samples=1), protocol.REJECT_SESSION, cert=evaluator)
    a.expect_reject("the evaluator's certificate, a second evaluator with a wrong session",
                    a.hello(ev, 1, n_samples=1, rejoin=True, session=wrong),
                    protocol.REJECT_SESSION, cert=evaluator)
    # A certificate bound to another place: refused whatever else the HELLO says.
    a.expect_reject("client 5's certificate claiming client 3's place", a.hello(3, 8),
                    protocol.REJECT_AUTH, "is bound to client 5, not client 3", cert=c5)
    a.expect_reject("client 5's certificate claiming client 3's place with a session",
                    a.hello(3, 8, rejoin=True, session=wrong), protocol.REJECT_AUTH,
                    "is bound to client 5, not client 3", cert=c5)
    a.expect_reject("client 5's certificate claiming the evaluator's place",
                    a.hello(ev, 1, n_samples=1), protocol.REJECT_AUTH,
                    "is bound to client 5, not the evaluator", cert=c5)
    a.expect_reject("the evaluator's certificate claiming client 3's place", a.hello(3, 8),
                    protocol.REJECT_AUTH, "is bound to the evaluator, not client 3",
                    cert=evaluator)
    a.expect_reject("client 5's certificate claiming client 3's place, a wrong digest",
                    a.hello(3, 8, digest=bytes(32)), protocol.REJECT_BASE_DIGEST, cert=c5)
    # No certificate of the allow-list, or no CURVE at all: no handshake, so no answer.
    public, secret = zmq.curve_keypair()
    rogue = {"public": public, "secret": secret}
    for case, cert in (("a certificate outside the allow-list", rogue),
                       ("a peer without CURVE", None)):
        s, mon = a.dealer(cert=cert, monitor=True)
        s.send_multipart(a.hello(3, 8, rejoin=True, session=wrong))
        outcome = a.handshake(s, mon)
        want = ("failed (authentication)", 400) if cert else None
        T.check(outcome is not None and outcome[0] != "succeeded" and
                (want is None or outcome == want),
                f"{case}: the handshake is refused ({outcome})")
        a.silent.append((f"{case}: a HELLO for client 3's place", s))
    a.check_silence()
    a.pump()
    T.check(not a.ended, "every attack on the server was made while rounds still ran")
    # A forged `final` at the logger: with a key outside the allow-list, and without CURVE.
    forged = forged_final(start.run_id)
    for case, cert in (("a key outside the allow-list", rogue), ("no CURVE", None)):
        push = a.ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 0)
        push, mon = a.connect(push, a.base + 2, cert, True)
        push.send_multipart(forged)  # queued: connect made the pipe
        outcome = a.handshake(push, mon)
        T.check(outcome is not None and outcome[0] != "succeeded",
                f"a forged final event at the logger, {case}: the handshake is refused "
                f"({outcome})")
        push.close()


def hijack(a):
    """Take client 0's routing id (from its client-joined event, on the PUB stream or, when the
    subscription came too late for it, in the run's events.jsonl) and act as client 0 without a
    HELLO: heartbeats, and an UPDATE for every ROUND it receives."""
    fields = None
    deadline = time.monotonic() + 30
    while fields is None and time.monotonic() < deadline:
        a.pump(100)
        joined = next((e for e in a.seen if e.event == "client-joined" and
                       dict(e.fields).get("client") == 0), None)
        if joined is not None:
            fields = dict(joined.fields)
        for path in glob.glob(os.path.join(a.runs, "*", "events.jsonl")):
            with open(path) as f:
                for line in f:
                    if fields is None and '"event":"client-joined"' in line:
                        try:
                            e = json.loads(line)
                        except ValueError:  # a line still being written
                            continue
                        if e.get("client") == 0:
                            fields = e
    if not T.check(fields is not None, "the run names client 0's peer"):
        return
    s = a.dealer(bytes.fromhex(fields["peer"]))
    rounds = 0
    end = time.monotonic() + 20
    while time.monotonic() < end and not a.ended:
        s.send_multipart(codec.encode(Heartbeat(0, 1, time.time_ns() // 1000)))
        if s.poll(100):
            msg = codec.decode(s.recv_multipart())
            if isinstance(msg, Round):
                rounds += 1
                comps = [Rank1(c.matrix, c.k, c.score, array("f", (100 * x for x in c.b)),
                               c.a) for c in msg.components if
                         msg.roles[c.matrix * msg.rank + c.k] == protocol.ROLE_TRAINABLE]
                s.send_multipart(codec.encode(Update(msg.round, 0, fields["n_samples"], 0.1, 1,
                                                     1, comps, msg.head)))
        a.pump()
    s.close()
    T.check(rounds == 0, f"a connection that never said HELLO received {rounds} of client 0's "
            "ROUNDs through its routing id")


def main():
    takeover = "--routing-id-takeover" in sys.argv[1:]
    curve = "--curve" in sys.argv[1:]
    # Should the script itself hang, show where before ctest's timeout (120 s) kills it.
    faulthandler.dump_traceback_later(100)
    if curve:
        T.name = "python_client_hostile_curve"
    work = tempfile.mkdtemp(prefix="hafl-pyclient-hostile-")
    sets, clients, keys = [], H.CLIENTS, None
    if curve:
        keys = os.path.join(work, "keys")
        clients = CURVE_CLIENTS
        security = H.keygen(keys, clients)
        T.check(f"security/client_cert={keys}/client-{{index}}.cert_secret" in security and
                f"security/evaluator_cert={keys}/evaluator.cert_secret" in security,
                f"keygen --clients {clients} prints one certificate per client and the "
                f"evaluator's ({security})")
        sets = CURVE_TOPOLOGY + security
    clean, _ = run_nodes(H.free_base_port(), os.path.join(work, "clean"), sets=sets)
    T.check(clean is not None, f"the clean{' CURVE' if curve else ''} run's digest: {clean}")
    attacker = {}

    def attack(base):
        a = Attacker(base, clients, keys)
        a.runs = os.path.join(work, "attacked", "runs")
        attacker["a"] = a
        try:
            (hijack if takeover else run_curve_cases if curve else run_cases)(a)
        finally:
            a.close()

    digest, folder = run_nodes(H.free_base_port(), os.path.join(work, "attacked"), attack,
                               sets)
    T.check(digest is not None and digest == clean,
            f"the attacked run ends with the clean run's digest ({digest})")
    if folder and not takeover:
        lines = H.raw_lines(folder)
        finals = [line for line in lines if '"event":"final"' in line]
        T.check(len(finals) == 1 and clean in finals[0] and '"actor":"server"' in finals[0],
                f"events.jsonl holds exactly one final event, the server's "
                f"({len(finals)}: {[f[:160] for f in finals]})")
        evs = H.events(folder)
        if curve:
            check_curve_events(evs)
        else:
            check_events(evs, attacker["a"], folder)
    if not T.failed:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"files kept in {work}")
    T.finish()


def check_events(evs, a, folder):
    """The server's events of the attacked run without CURVE."""
    logged = [(e.get("code"), e.get("field")) for e in evs
              if e["event"] == "malformed" and e["actor"] == "server"]
    for case, code, field in a.malformed:
        # The reference decoder names a head frame's elements `update.data` (see the codec
        # test); the code must agree.
        alt = re.sub(r"\.head\.", ".", field)
        hit = (code, field) in logged or (code, alt) in logged
        T.check(hit, f"server logged {case} as malformed {code} at {field}")
        for key in ((code, field), (code, alt)):
            if key in logged:
                logged.remove(key)
                break
    refused = [e for e in evs if e["event"] == "takeover-refused"]
    T.check(len(refused) == 4, f"4 takeover-refused events ({len(refused)})")
    unexpected = [e for e in evs if e["event"] == "unexpected"]
    T.check(len(unexpected) >= 3, f"the stranger's messages logged as unexpected "
            f"({len(unexpected)})")
    with open(os.path.join(folder, "rounds.csv")) as f:
        T.check("0.999000" not in f.read(), "no forged accuracy in rounds.csv")


def check_curve_events(evs):
    """The server's and the logger's events of the attacked CURVE run."""
    def of(name, actor):
        return [e for e in evs if e["event"] == name and e["actor"] == actor]
    refused = of("takeover-refused", "server")
    places = sorted(e.get("place", "?") for e in refused)
    T.check(places == ["client 3", "client 3", "the evaluator", "the evaluator"],
            f"4 takeover-refused events, two for client 3's place and two for the "
            f"evaluator's ({places})")
    binding = of("binding-refused", "server")
    reasons = sorted(re.sub(r"certificate \S+\.\.\. ", "certificate ... ", e.get("reason", ""))
                     for e in binding)
    T.check(reasons == ["the certificate ... is bound to client 5, not client 3"] * 2 +
            ["the certificate ... is bound to client 5, not the evaluator",
             "the certificate ... is bound to the evaluator, not client 3"],
            f"4 binding-refused events with their reasons ({reasons})")
    # The refusals' reasons (actors/hafl_security.c): the authenticator's for the key outside
    # the allow-list; for the peer without CURVE "security mechanisms differ", or "connection
    # lost" when that peer closed first (and it reconnects, so it may be refused more than once).
    for event, actor, who in (("peer-refused", "server", "the server"),
                              ("log-refused", "logger", "the logger")):
        reasons = [e.get("reason", "") for e in of(event, actor)]
        rogue = [r for r in reasons if "not in the allow-list" in r]
        T.check(rogue and len(reasons) > len(rogue),
                f"{who} logged {event} for the key outside the allow-list and for the peer "
                f"without CURVE ({reasons})")
    joined = sorted(e.get("client") for e in of("client-joined", "server"))
    T.check(joined == list(range(CURVE_CLIENTS)), f"each client joined once, with its own "
            f"certificate ({joined})")


if __name__ == "__main__":
    main()
