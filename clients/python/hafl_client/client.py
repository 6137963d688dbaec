"""A hafl client over ZeroMQ that trains with a user-supplied function, following the life of
a client in messages/PROTOCOL.md ("Writing a client"): a DEALER connects to the server's
ROUTER and says HELLO; WELCOME gives the layout and a session secret, and from then on a
HEARTBEAT goes out every heartbeat_ms; each ROUND becomes a RoundWork for the trainer, whose
TrainResult goes back as an UPDATE (held back straggle_ms first, as the fault model asks); any
REJECT ends the client, FULL ("federation ended") as a success.

One thread owns the socket and never blocks on training: the trainer runs in a worker thread,
so heartbeats keep the client alive through a long PyTorch round. A ROUND that arrives while
the previous one trains is kept (the newest only) and trained next; the older result is then
abandoned, as the reference client does. Everything received is decoded strictly and checked
against the layout; what fails is counted and logged, and the client goes on.

Rejoin: the session from the last WELCOME is kept (and written to session_path when given, so
that a restarted process can present it). rejoin() asks for a new connection whose HELLO says
rejoin = true with that session, which the server admits while the old connection still holds
the place (dropping what the old connection was doing, as a crash would); the client does the
same by itself when the server has been silent for server_silence_ms (the server's heartbeats
stop reaching a connection it no longer knows, one libzmq reconnected as a new peer).
"""

import concurrent.futures
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import zmq

from . import codec, errors, protocol
from .messages import Heartbeat, Hello, Reject, Round, Update, Welcome
from .work import RoundWork, TrainResult, check

log = logging.getLogger("hafl_client")

_JOINING, _IDLE, _DONE = "joining", "idle", "done"


@dataclass
class Outcome:
    """How run() ended: ended is True when the server said the federation is over (REJECT
    FULL after this client had joined); otherwise reject holds the REJECT reason that ended
    it, or None when stop() did."""
    ended: bool = False
    reject: Optional[int] = None
    text: str = ""
    uploaded: List[int] = field(default_factory=list)  # rounds whose UPDATE was sent
    malformed: int = 0                                  # messages refused by the decoder
    unexpected: int = 0                                 # well-formed but out of place


class Client:
    def __init__(self, endpoint, client_index, rank_budget, n_samples, base_digest,
                 train: Callable[[RoundWork], TrainResult], name=None, session=b"",
                 session_path=None, honour_straggle=True, server_silence_ms=None,
                 context=None, on_frames=None):
        """endpoint: the server's (server/endpoint, or tcp://HOST:base_port); client_index,
        rank_budget: the topology's; n_samples: the samples of this client's shard, at most the
        server's cap (server/max_samples, by default the largest shard the data gives); the
        base_digest of the federation's task (32 bytes). session: a session from an earlier
        WELCOME to rejoin with (read from session_path when that file exists).
        server_silence_ms: after WELCOME, rejoin when nothing has come from the server for
        this long (default 10 heartbeat periods). on_frames(direction, frames), when given,
        sees every message's frames as sent ("out") or received ("in")."""
        if len(base_digest) != protocol.DIGEST_BYTES:
            raise ValueError("base_digest must be 32 bytes")
        self.endpoint = endpoint
        self.index = client_index
        self.rank_budget = rank_budget
        self.n_samples = n_samples
        self.base_digest = bytes(base_digest)
        self.train = train
        self.name = name or f"python-{client_index}"
        self.session_path = session_path
        self.session = bytes(session or b"")
        if session_path and os.path.exists(session_path):
            with open(session_path, "rb") as f:
                self.session = f.read()
            if len(self.session) != protocol.SESSION_BYTES:
                raise ValueError(f"{session_path}: not a 32-byte session")
        self.honour_straggle = honour_straggle
        self.server_silence_ms = server_silence_ms
        self.on_frames = on_frames
        self._context = context or zmq.Context.instance()
        self._stop = threading.Event()
        self._rejoin = threading.Event()
        self._socket = None
        self._welcome = None
        self._state = _JOINING
        self._outcome = Outcome()

    # -- thread-safe controls --------------------------------------------------------------

    def stop(self):
        """End run() at its next turn (about 50 ms)."""
        self._stop.set()

    def rejoin(self):
        """Drop the connection at once (once joined), with whatever trains or is held back, and
        rejoin on a new one with the session, as a client restarted after a crash would: the
        server counts it as crashed in a round it was sent, and it sits out
        faults/rejoin_rounds rounds."""
        self._rejoin.set()

    # -- the loop --------------------------------------------------------------------------

    def run(self):
        """Join and take part until the federation ends, a REJECT arrives or stop() is called.
        Returns an Outcome."""
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1,
                                                     thread_name_prefix="hafl-train")
        self._job = None          # (future, work, started) of the round training now
        self._pending = None      # a newer ROUND that arrived while training
        self._held = None         # (due time, Update) held back by a straggle
        self._last_round = 0
        self._merged = None       # per matrix, the merged terms received so far
        try:
            self._connect(rejoin=bool(self.session))
            while not self._stop.is_set() and self._state != _DONE:
                self._turn(pool)
        finally:
            if self._socket is not None:
                self._socket.close(linger=0)
                self._socket = None
            pool.shutdown(wait=False, cancel_futures=True)
        return self._outcome

    def _turn(self, pool):
        now = time.monotonic()
        timeout = 0.05
        if self._welcome is not None:
            timeout = min(timeout, max(0.0, self._next_beat - now))
        if self._held is not None:
            timeout = min(timeout, max(0.0, self._held[0] - now))
        if self._socket.poll(int(timeout * 1000), zmq.POLLIN):
            self._receive(pool)
        now = time.monotonic()
        if self._welcome is not None and self._state != _DONE:
            if now >= self._next_beat:
                self._next_beat = now + self._welcome.heartbeat_ms / 1000.0
                self._beat_seq += 1
                self._send(Heartbeat(self.index, self._beat_seq, time.time_ns() // 1000))
            silence = self.server_silence_ms or 10 * self._welcome.heartbeat_ms
            if (now - self._heard) * 1000.0 > silence:
                log.warning("client %d: nothing from the server for %d ms: rejoining",
                            self.index, silence)
                self._reconnect()
                return
        if self._rejoin.is_set() and self._state == _IDLE:
            self._rejoin.clear()
            log.info("client %d: rejoining on a new connection", self.index)
            self._reconnect()
            return
        if self._held is not None and now >= self._held[0]:
            self._send_update(self._held[1])
            self._held = None
        if self._job is not None and self._job[0].done():
            self._finish_job(pool)

    # -- connection ------------------------------------------------------------------------

    def _connect(self, rejoin):
        sock = self._context.socket(zmq.DEALER)
        # The largest frame any legitimate layout gives (a head of 2^22 floats): libzmq drops
        # a peer that sends more before the decoder sees a byte.
        sock.setsockopt(zmq.MAXMSGSIZE, protocol.FRAME_CAP_ANY_LAYOUT)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.endpoint)
        self._socket = sock
        self._state = _JOINING
        self._welcome = None
        self._send(Hello(self.index, self.name, self.rank_budget, self.n_samples,
                         self.base_digest, rejoin, self.session))

    def _reconnect(self):
        """A new connection, as after a crash: what trains or waits is dropped (the server
        counts this client as crashed in a round it was sent) and the HELLO shows the session."""
        self._socket.close(linger=0)
        self._job = None
        self._pending = None
        self._held = None
        self._merged = None
        self._connect(rejoin=True)

    def _send(self, msg):
        frames = codec.encode(msg)
        if self.on_frames:
            self.on_frames("out", frames)
        try:
            self._socket.send_multipart(frames, flags=zmq.NOBLOCK)
            return True
        except zmq.Again:
            log.warning("client %d: %s not sent: the connection is full or not up",
                        self.index, type(msg).__name__)
            return False

    def _done(self, outcome_update):
        for key, value in outcome_update.items():
            setattr(self._outcome, key, value)
        self._state = _DONE

    # -- receiving -------------------------------------------------------------------------

    def _receive(self, pool):
        frames = self._socket.recv_multipart(copy=False)
        if self.on_frames:
            self.on_frames("in", [f.bytes for f in frames])
        try:
            msg = codec.decode(frames)
            if isinstance(msg, Round) and self._welcome is not None:
                codec.check_layout(msg, self._welcome)
        except errors.DecodeError as exc:
            self._outcome.malformed += 1
            log.warning("client %d: malformed message dropped: %s", self.index, exc)
            return
        self._heard = time.monotonic()
        if isinstance(msg, Welcome):
            self._on_welcome(msg)
        elif isinstance(msg, Reject):
            self._on_reject(msg)
        elif isinstance(msg, Round):
            self._on_round(msg, pool)
        elif isinstance(msg, Heartbeat):
            pass  # its arrival is all it says
        else:
            self._unexpected(type(msg).__name__)

    def _unexpected(self, what):
        self._outcome.unexpected += 1
        log.warning("client %d: unexpected %s dropped", self.index, what)

    def _on_welcome(self, w):
        if self._state != _JOINING or w.client_index != self.index:
            self._unexpected(f"WELCOME for index {w.client_index}")
            return
        self._welcome = w
        if w.session is not None:
            self.session = w.session
            if self.session_path:
                tmp = self.session_path + ".tmp"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(self.session)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.session_path)
        now = time.monotonic()
        self._heard = now
        self._beat_seq = 0
        self._next_beat = now + w.heartbeat_ms / 1000.0
        self._state = _IDLE
        log.info("client %d: joined run %s (rank %d, %d matrices, head %dx%d)", self.index,
                 w.run_id, w.rank, len(w.matrices), w.head_rows, w.head_cols)

    def _on_reject(self, r):
        name = protocol.REJECT_NAMES.get(r.reason, str(r.reason))
        if r.reason == protocol.REJECT_FULL:
            log.info("client %d: %s", self.index, r.text)
            self._done({"ended": self._welcome is not None or bool(self._outcome.uploaded),
                        "reject": r.reason, "text": r.text})
        else:
            log.error("client %d: rejected (%s): %s", self.index, name, r.text)
            self._done({"reject": r.reason, "text": r.text})

    def _on_round(self, r, pool):
        # Not ours to train: before WELCOME, an older round, or the round training now. The
        # round trained last may come again when nobody's upload reached the server (a failed
        # round is attempted again under its number): train it again.
        if self._welcome is None or r.round < self._last_round or \
                (r.round == self._last_round and self._job is not None):
            return
        if self._job is not None:
            self._pending = r
            return
        self._start(r, pool)

    def _start(self, r, pool):
        if self._held is not None:
            # An older round's upload is still held back: it is late now; send it anyway, so
            # the server logs it as late rather than never hearing of it.
            self._send_update(self._held[1])
            self._held = None
        self._last_round = r.round
        work = self._work(r)
        if work is None:
            return
        self._job = (pool.submit(self.train, work), work, time.monotonic())

    def _work(self, r):
        """The RoundWork of a ROUND, or None (logged) when the ROUND cannot be trained: a
        component missing for a present role, or a head other than the layout's."""
        w = self._welcome
        components = {(c.matrix, c.k): c for c in r.components}
        for m in range(len(w.matrices)):
            for k in range(w.rank):
                present = r.roles[m * w.rank + k] != protocol.ROLE_ABSENT
                if present != ((m, k) in components):
                    log.warning("client %d: round %d: component (%d, %d) is %s but its role "
                                "is %d: round not trained", self.index, r.round, m, k,
                                "sent" if (m, k) in components else "missing",
                                r.roles[m * w.rank + k])
                    return None
        if (r.head.rows, r.head.cols) != (w.head_rows, w.head_cols):
            log.warning("client %d: round %d: head %dx%d, the layout's is %dx%d: round not "
                        "trained", self.index, r.round, r.head.rows, r.head.cols, w.head_rows,
                        w.head_cols)
            return None
        if self._merged is None or r.reset_merged:
            self._merged = [[] for _ in w.matrices]
        for term in r.merged:
            self._merged[term.matrix].append(term)
        return RoundWork(round=r.round, deadline_ms=r.deadline_ms, local_epochs=r.local_epochs,
                         local_steps=r.local_steps, batch=r.batch, lr=r.lr, seed=r.seed,
                         straggle_ms=r.straggle_ms, fresh_optimizer=r.fresh_optimizer,
                         scale=w.scale, rank=w.rank, matrices=list(w.matrices), roles=r.roles,
                         components=components, merged=[list(t) for t in self._merged],
                         head=r.head)

    # -- training results ------------------------------------------------------------------

    def _finish_job(self, pool):
        future, work, started = self._job
        self._job = None
        wall_ms = int((time.monotonic() - started) * 1000)
        if self._pending is not None:
            log.info("client %d: round %d abandoned: round %d arrived", self.index, work.round,
                     self._pending.round)
            pending, self._pending = self._pending, None
            self._start(pending, pool)
            return
        try:
            result = future.result()
            components, head = check(result, work)
            update = Update(work.round, self.index, self.n_samples, float(result.train_loss),
                            result.steps, min(wall_ms, 2**32 - 1), components, head)
            codec.encode(update)  # refuse here, not at the socket, what a peer would refuse
        except errors.ProtocolError as exc:
            log.error("client %d: round %d: the trainer's result cannot be sent: %s",
                      self.index, work.round, exc)
            return
        except Exception:
            log.exception("client %d: round %d: the trainer failed", self.index, work.round)
            return
        if wall_ms > work.deadline_ms:
            log.warning("client %d: round %d trained in %d ms, past its deadline of %d ms: the "
                        "server will count it late", self.index, work.round, wall_ms,
                        work.deadline_ms)
        if self.honour_straggle and work.straggle_ms > 0:
            self._held = (time.monotonic() + work.straggle_ms / 1000.0, update)
        else:
            self._send_update(update)

    def _send_update(self, update):
        if self._send(update):
            self._outcome.uploaded.append(update.round)
