"""python_client_codec: the Python client's codec (clients/python/hafl_client) against the
specification and against the C codec.

1. The worked examples of messages/PROTOCOL.md section 10, read from the document itself:
   the Python encoder writes exactly those bytes, and decodes them back to the values.
2. Round trips of every message type, and encoder refusals.
3. A table of malformed and hostile messages, each with the error code (and field) the
   specification gives; the Python decoder must report exactly that.
4. The Python client (hafl_client.Client) against a fake server: WELCOME, every message of
   the table (the malformed ones counted and dropped, the out-of-place ones counted as
   unexpected, none of them fatal), a ROUND it trains with a trainer here and answers with
   an UPDATE of the trainable components, then REJECT FULL, on which run() returns.
5. Against the C client: a C client node (`hafl node ... --host solo`) joins a fake server
   played here (a ROUTER, and a PULL for its events). Its HELLO must carry the base digest
   hafl_client.synthetic computes from the topology, and its HELLO, HEARTBEATs, UPDATE and
   LOG_EVENTs must decode and re-encode to the very bytes the C encoder wrote. Every message
   of the table meant for a client is then sent to it: the C decoder must log the same code
   as `malformed` (or `unexpected`, `bad-round`, or nothing for a valid one). It trains the
   ROUND encoded here and answers with an UPDATE of exactly its trainable components, and it
   ends with status 0 on the REJECT FULL sent last.
"""

import math
import os
import re
import shutil
import struct
import tempfile
import time
from array import array

import python_client_harness as H

import msgpack
import zmq
from hafl_client import codec, errors, protocol
from hafl_client.messages import (Control, ControlReply, EvalRequest, EvalResult, Head,
                                  Heartbeat, Hello, LogEvent, MatrixInfo, Rank1, Reject, Round,
                                  Update, Welcome)

T = H.Failures("python_client_codec")
NAN = float("nan")
INF = float("inf")


def pack(value, single=True):
    return msgpack.packb(value, use_bin_type=True, use_single_float=single)


def floats(n, start=0.0, step=0.01):
    return array("f", (start + step * i for i in range(n)))


def same(a, b):
    """Equality of decoded messages, arrays compared by value (NaN never appears here)."""
    return a == b


# ---------------------------------------------------------------------------------------------
# 1. The worked examples of PROTOCOL.md

def protocol_examples():
    with open(os.path.join(H.SOURCE, "messages", "PROTOCOL.md")) as f:
        text = f.read()
    section = text[text.index("## 10. Worked examples"):text.index("## 11.")]
    # Each example: a bold title, then code blocks of `frame N (B bytes): hex` lines (the
    # rank-1 example is an annotated block: hex before the first run of two spaces).
    examples = {}
    for part in re.split(r"\n\*\*", section)[1:]:
        title = part[:part.index("**")]
        frames = {}
        for n, size, hexes in re.findall(r"^frame (\d+) \((\d+) bytes\): ([0-9a-f ]+)$", part,
                                         re.M):
            data = bytes.fromhex(hexes)
            T.check(len(data) == int(size), f"PROTOCOL.md '{title}' frame {n}: {size} bytes "
                    f"as stated ({len(data)})")
            frames.setdefault(title, []).append(data)
        if title == "One rank-1 frame":
            block = part[part.index("```") + 3:]
            block = block[:block.index("```")]
            hexes = [line.split("  ")[0] for line in block.strip().splitlines()]
            frames[title] = [bytes.fromhex(" ".join(hexes))]
        if title in frames:
            examples[title] = frames[title]
    return examples


def check_examples():
    ex = protocol_examples()
    term = Rank1(2, 1, 0.75, array("f", [1.0, -2.0]), array("f", [0.5, 0.25, -0.125]))
    session = bytes(0xA0 + i % 16 for i in range(32))
    expected = {
        "One rank-1 frame": ("rank1", term),
        "An UPDATE": ("msg", Update(1, 3, 500, 0.5, 10, 1200, [term],
                                    Head(1, 2, array("f", [1.0, 0.0])))),
        "A HEARTBEAT": ("msgs", [Heartbeat(3, 42, 1700000000000000),
                                 Heartbeat(protocol.SERVER_INDEX, 42, 1700000000000000)]),
        "A first HELLO": ("msg", Hello(3, "client-3", 8, 256, bytes(range(32)), False, b"")),
        "The WELCOME": ("msg", Welcome(3, "demo", 1000, 8, 2.0, 4, 33,
                                       [MatrixInfo("W0", 32, 32)], session)),
        "The REJECT": ("msg", Reject(protocol.REJECT_FULL, "federation ended")),
    }
    for title, (kind, value) in expected.items():
        key = next((k for k in ex if k.startswith(title)), None)
        if not T.check(key is not None, f"PROTOCOL.md has the example '{title}'"):
            continue
        doc = ex[key]
        if kind == "rank1":
            T.check(codec.encode_rank1(value) == doc[0], f"'{title}': encoded bytes as in "
                    "PROTOCOL.md")
            continue
        if kind == "msg":
            mine = codec.encode(value)
            if title == "An UPDATE":
                # The example shows frame 1 as "the rank-1 frame above".
                doc = [doc[0], codec.encode_rank1(term), doc[1]]
            T.check(mine == doc, f"'{title}': encoded frames as in PROTOCOL.md")
            T.check(same(codec.decode(doc), value), f"'{title}': decodes to its values")
        else:
            for i, v in enumerate(value):
                T.check(codec.encode(v) == [doc[i]], f"'{title}' #{i}: encoded as in "
                        "PROTOCOL.md")
                T.check(same(codec.decode([doc[i]]), v), f"'{title}' #{i}: decodes back")
    # The 87-byte rejoin HELLO the text describes.
    rejoin = codec.encode(Hello(3, "client-3", 8, 256, bytes(range(32)), True, session))[0]
    T.check(len(rejoin) == 87, "the rejoin HELLO of PROTOCOL.md section 10 is 87 bytes")


# ---------------------------------------------------------------------------------------------
# 2. Round trips and encoder refusals

LAYOUT = Welcome(3, "codec-test", 100, 8, 2.0, 4, 33, [MatrixInfo("W0", 32, 32)],
                 bytes(range(100, 132)))
ROLES = bytes([2, 2, 1, 1, 0, 0, 2, 1])


def components(roles=ROLES, d_out=32, d_in=32):
    return [Rank1(0, k, 0.5 + k, floats(d_out, 0.001 * k), floats(d_in, -0.002 * k, 0.003))
            for k in range(len(roles)) if roles[k]]


def a_round(round_no=1, roles=ROLES, comps=None, merged=None, head=None, **kw):
    fields = dict(round=round_no, deadline_ms=5000, local_epochs=0, local_steps=5, batch=8,
                  lr=0.01, seed=42, straggle_ms=30, fresh_optimizer=True, n_matrices=1,
                  rank=8, roles=roles, reset_merged=True)
    fields.update(kw)
    return Round(**fields, components=components(roles) if comps is None else comps,
                 merged=[Rank1(0, 0, 0.0, floats(32, 0.0001), floats(32, 0.0002))]
                 if merged is None else merged,
                 head=Head(4, 33, floats(4 * 33, -0.1, 0.001)) if head is None else head)


def check_round_trips():
    msgs = [
        Hello(3, "client-3", 8, 256, bytes(range(32)), True, bytes(32)),
        Hello(2**32 - 2, "évaluateur ✓", 256, 2**64 - 1, bytes(32), False, b""),
        LAYOUT,
        Reject(protocol.REJECT_REPLACED, "x" * 1023),
        a_round(lr=0.25),
        Update(7, 3, 256, -1.5, 2**32 - 1, 0, components(), Head(4, 33, floats(132))),
        Update(1, 0, 1, 0.0, 0, 0, [], Head()),
        EvalRequest(0, 4, components(), [], Head(4, 33, floats(132))),
        EvalResult(3, 0, 1.0, 0.0, 2**64 - 1, 5),
        LogEvent(2**64 - 1, "", -1, "client-3", "joined",
                 [("run", "r"), ("n", -2**63), ("big", 2**63 - 1), ("f", 0.1), ("nan", NAN),
                  ("ok", True), ("s", "é" * 512)]),
        Control("fault", ["straggle", "3", "2500"]),
        ControlReply(True, '{"a":1}'),
        Heartbeat(protocol.SERVER_INDEX, 2**64 - 1, 0),
    ]
    for m in msgs:
        name = type(m).__name__
        back = codec.decode(codec.encode(m))
        if isinstance(m, LogEvent):
            ok = back.fields[:4] == m.fields[:4] and math.isnan(back.fields[4][1]) and \
                back.fields[5:] == m.fields[5:] and (back.time_us, back.round, back.event) == \
                (m.time_us, m.round, m.event)
        else:
            ok = same(back, m)
        T.check(ok, f"{name}: decode(encode(m)) == m")
    refusals = [
        ("HELLO digest of 31 bytes", Hello(1, "x", 2, 1, bytes(31)), errors.ELENGTH),
        ("HELLO name of 64 bytes", Hello(1, "x" * 64, 2, 1, bytes(32)), errors.ECAP),
        ("HELLO session of 5 bytes", Hello(1, "x", 2, 1, bytes(32), True, bytes(5)),
         errors.ELENGTH),
        ("HELLO rank budget 0", Hello(1, "x", 0, 1, bytes(32)), errors.ERANGE),
        ("HELLO evaluator index + 1", Hello(2**32 - 1, "x", 1, 1, bytes(32)), errors.ERANGE),
        ("UPDATE with NaN in b", Update(1, 0, 1, 0.0, 0, 0,
                                        [Rank1(0, 0, 0.0, array("f", [NAN]), array("f", [1]))],
                                        Head()), errors.ENONFINITE),
        ("UPDATE with a loss of 1e39", Update(1, 0, 1, 1e39, 0, 0, [], Head()), errors.ERANGE),
        ("UPDATE with a component twice",
         Update(1, 0, 1, 0.0, 0, 0, components()[:1] * 2, Head()), errors.ERANGE),
        ("UPDATE with two shapes of one matrix",
         Update(1, 0, 1, 0.0, 0, 0, components()[:1] + components(d_out=3)[1:2], Head()),
         errors.ELENGTH),
        ("ROUND with a component of an absent role",
         a_round(comps=components(bytes([2] * 8))), errors.ERANGE),
        ("ROUND with no epochs and no steps", a_round(local_steps=0), errors.ERANGE),
        ("head 2 x 0", Update(1, 0, 1, 0.0, 0, 0, [], Head(2, 0)), errors.ERANGE),
        ("LOG_EVENT with a key twice", LogEvent(0, "", -1, "a", "e", [("k", 1), ("k", 2)]),
         errors.ERANGE),
        ("LOG_EVENT round -2", LogEvent(0, "", -2, "a", "e"), errors.ERANGE),
        ("string with a lone surrogate", Reject(3, "\udc80"), errors.ESTRING),
        ("string with NUL", Reject(3, "a\0b"), errors.ESTRING),
        ("REJECT reason 9", Reject(9, "x"), errors.ERANGE),
        ("CONTROL with 17 arguments", Control("fault", ["x"] * 17), errors.ECAP),
    ]
    for what, m, code in refusals:
        try:
            codec.encode(m)
            T.check(False, f"encoder refuses {what} ({code})")
        except errors.EncodeError as exc:
            T.check(exc.code == code, f"encoder refuses {what}: {exc}")


# ---------------------------------------------------------------------------------------------
# 3. Malformed messages and the code the specification gives each

def nested(depth):
    value = 0
    for _ in range(depth):
        value = [value]
    return value


def frames_of(msg):
    return codec.encode(msg)


def rank1_raw(elements):
    return pack(elements)


def round_frames(**kw):
    return frames_of(a_round(**kw))


def patched_round(header_patch=None, frame_patch=None, drop_head=False, single=True):
    """A valid ROUND's frames with its header array edited (header_patch(list); floats packed
    as float 32 unless single is false) or one frame replaced (frame_patch(frames))."""
    fr = round_frames()
    if header_patch:
        header = msgpack.unpackb(fr[0], raw=False)
        header_patch(header)
        fr[0] = pack(header, single)
    if frame_patch:
        frame_patch(fr)
    if drop_head:
        fr = fr[:-1]
    return fr


def set_item(i, v):
    def patch(header):
        header[i] = v
    return patch


def comp_frame(matrix=0, k=0, score=0.5, pad_b=b"\0", b=None, pad_a=b"\0", a=None, extra=()):
    b = struct.pack("<32f", *floats(32)) if b is None else b
    a = struct.pack("<32f", *floats(32)) if a is None else a
    return rank1_raw([matrix, k, score, pad_b, b, pad_a, a, *extra])


HB = [2, 1, 11, 3, 42, 100]
HELLO_OK = codec.encode(Hello(3, "client-3", 8, 256, bytes(32)))[0]


# (name, frames, code or None for a valid message, field or None, what the C client logs:
#  "malformed" (the default for an error), "unexpected", "bad-round" or None)
CASES = [
    ("heartbeat: negative seq", [pack(HB[:4] + [-1, 100])], errors.ERANGE, "heartbeat.seq"),
    ("heartbeat: seq as str", [pack(HB[:4] + ["x", 100])], errors.EFIELDTYPE, "heartbeat.seq"),
    ("heartbeat: major 3", [pack([3] + HB[1:])], errors.EVERSION, "header.major"),
    ("header [1]", [pack([1])], errors.EVERSION, "header.major"),
    ("header []", [pack([])], errors.EARITY, "header"),
    ("header not an array", [pack(5)], errors.EFIELDTYPE, "header"),
    ("header [2, 1]", [pack([2, 1])], errors.EARITY, "header"),
    ("minor 70000", [pack([2, 70000] + HB[2:])], errors.ERANGE, "header.minor"),
    ("type 0", [pack([2, 1, 0])], errors.EUNKNOWN, "header.type"),
    ("type -1", [pack([2, 1, -1])], errors.EUNKNOWN, "header.type"),
    ("type 12", [pack([2, 1, 12])], errors.EUNKNOWN, "header.type"),
    ("type as str", [pack([2, 1, "x"])], errors.EFIELDTYPE, "header.type"),
    ("heartbeat: a field missing", [pack(HB[:-1])], errors.EARITY, "heartbeat"),
    ("heartbeat: an extra field in 2.1", [pack(HB + [7])], errors.EARITY, "heartbeat"),
    ("heartbeat: an extra field from 2.2", [pack([2, 2] + HB[2:] + [{"x": [1]}])], None, None),
    ("heartbeat: extra nesting 32 deep from 2.2", [pack([2, 2] + HB[2:] + [nested(32)])], None,
     None),
    ("heartbeat: extra nesting 33 deep from 2.2", [pack([2, 2] + HB[2:] + [nested(33)])],
     errors.ECAP, "heartbeat"),
    ("heartbeat: a trailing byte", [pack(HB) + b"\0"], errors.ETRAILING, "heartbeat"),
    ("heartbeat: cut short", [pack(HB)[:-1]], errors.ETRUNCATED, "heartbeat.time_us"),
    ("byte 0xc1", [b"\x96\x02\x01\x0b\xc1\x2a\x00"], errors.EFIELDTYPE,
     "heartbeat.client_index"),
    ("nil index", [pack([2, 1, 11, None, 42, 100])], errors.EFIELDTYPE,
     "heartbeat.client_index"),
    ("ext seq", [pack([2, 1, 11, 3, msgpack.ExtType(1, b"x"), 100])], errors.EFIELDTYPE,
     "heartbeat.seq"),
    ("bool index", [pack([2, 1, 11, True, 42, 100])], errors.EFIELDTYPE,
     "heartbeat.client_index"),
    ("float index", [pack([2, 1, 11, 3.0, 42, 100])], errors.EFIELDTYPE,
     "heartbeat.client_index"),
    ("int64 holding a positive seq", [b"\x96\x02\x01\x0b\x03\xd3" + struct.pack(">q", 42) +
                                      b"\x64"], None, None),
    ("heartbeat: two frames", [pack(HB), b""], errors.ENOFRAMES, "heartbeat"),
    ("an empty frame", [b""], errors.ETRUNCATED, "header"),
    ("frame 0 above 2^22 bytes", [pack(HB + ["x" * (2**22)])], errors.ECAP, "header"),
    ("reject: reason 9 from 2.1", [pack([2, 1, 3, 9, "x"])], errors.ERANGE, "reject.reason"),
    ("reject: reason 0", [pack([2, 1, 3, 0, "x"])], errors.ERANGE, "reject.reason"),
    ("reject: text with NUL", [pack([2, 1, 3, 5, "a\0b"])], errors.ESTRING, "reject.text"),
    ("reject: overlong UTF-8", [b"\x95\x02\x01\x03\x05\xa2\xc0\xaf"], errors.ESTRING,
     "reject.text"),
    ("reject: a surrogate", [b"\x95\x02\x01\x03\x05\xa3\xed\xa0\x80"], errors.ESTRING,
     "reject.text"),
    ("reject: above U+10FFFF", [b"\x95\x02\x01\x03\x05\xa4\xf4\x90\x80\x80"], errors.ESTRING,
     "reject.text"),
    ("reject: text of 1024 bytes", [pack([2, 1, 3, 5, "x" * 1024])], errors.ECAP,
     "reject.text"),
    ("reject: str 32 declaring 4 GiB", [b"\x95\x02\x01\x03\x05\xdb\xff\xff\xff\xf0abc"],
     errors.ETRUNCATED, "reject.text"),
    ("welcome: session of 31 bytes",
     [pack([2, 1, 2, 3, "r", 100, 8, 2.0, 4, 33, [["W0", 32, 32]], bytes(31)])],
     errors.ELENGTH, "welcome.session"),
    ("welcome: scale 0", [pack([2, 1, 2, 3, "r", 100, 8, 0.0, 4, 33, [["W0", 32, 32]],
                                bytes(32)])], errors.ERANGE, "welcome.scale"),
    ("welcome: scale NaN", [pack([2, 1, 2, 3, "r", 100, 8, NAN, 4, 33, [["W0", 32, 32]],
                                  bytes(32)])], errors.ENONFINITE, "welcome.scale"),
    ("welcome: head 4 x 0", [pack([2, 1, 2, 3, "r", 100, 8, 2.0, 4, 0, [["W0", 32, 32]],
                                   bytes(32)])], errors.ERANGE, "welcome.head"),
    ("welcome: 5000 matrices", [b"\x9c\x02\x01\x02\x03\xa1r\x64\x08\xca\x40\x00\x00\x00\x04\x21"
                                b"\xdc\x13\x88"], errors.ECAP, "welcome.matrices"),
    ("welcome: 100 matrices in 2 bytes", [b"\x9c\x02\x01\x02\x03\xa1r\x64\x08\xca\x40\x00\x00"
                                          b"\x00\x04\x21\xdc\x00\x64\x00\x00"],
     errors.ETRUNCATED, "welcome.matrices"),
    ("welcome: matrix name of 32 bytes",
     [pack([2, 1, 2, 3, "r", 100, 8, 2.0, 4, 33, [["W" * 32, 32, 32]], bytes(32)])],
     errors.ECAP, "welcome.matrices[0].name"),
    ("round: NaN in a", patched_round(frame_patch=lambda fr: fr.__setitem__(
        1, comp_frame(a=struct.pack("<f", NAN) + bytes(124)))), errors.ENONFINITE,
     "round.component[0].a"),
    ("round: a role byte 3", patched_round(set_item(14, bytes([3] + list(ROLES[1:])))),
     errors.ERANGE, "round.roles"),
    ("round: 7 role bytes", patched_round(set_item(14, ROLES[:7])), errors.ELENGTH,
     "round.roles"),
    ("round: a component of an absent role", patched_round(frame_patch=lambda fr: fr.__setitem__(
        1, comp_frame(k=4))), errors.ERANGE, "round.component[0].k"),
    ("round: components of 31 x 32 (layout)",
     frames_of(a_round(roles=bytes([2, 0, 0, 0, 0, 0, 0, 0]), merged=[],
                       comps=[Rank1(0, 0, 0.0, floats(31), floats(32))])),
     errors.ELENGTH, "round.component[0]"),
    ("round: 2 matrices (layout)",
     frames_of(a_round(n_matrices=2, roles=ROLES + bytes(8))), errors.ERANGE, "round.n_matrices"),
    ("round: no head frame", patched_round(drop_head=True), errors.ENOFRAMES, "round"),
    ("round: lr float 64 of 1e39", patched_round(set_item(8, 1e39), single=False),
     errors.ERANGE, "round.lr"),
    ("round: lr -0.5", patched_round(set_item(8, -0.5)), errors.ERANGE, "round.lr"),
    ("round: no epochs, no steps", patched_round(set_item(6, 0)), errors.ERANGE,
     "round.local_steps"),
    ("round: a component twice", patched_round(frame_patch=lambda fr: fr.__setitem__(
        2, fr[1])), errors.ERANGE, "round.component[1]"),
    ("round: a pad of 8 bytes", patched_round(frame_patch=lambda fr: fr.__setitem__(
        1, comp_frame(pad_b=bytes(8)))), errors.ECAP, "round.component[0].pad_b"),
    ("round: b of 6 bytes", patched_round(frame_patch=lambda fr: fr.__setitem__(
        1, comp_frame(b=bytes(6)))), errors.ELENGTH, "round.component[0].b"),
    ("round: empty b", patched_round(frame_patch=lambda fr: fr.__setitem__(
        1, comp_frame(b=b""))), errors.ERANGE, "round.component[0].b"),
    ("round: a rank-1 frame with a trailing byte", patched_round(
        frame_patch=lambda fr: fr.__setitem__(1, fr[1] + b"\0")), errors.ETRAILING,
     "round.component[0]"),
    ("round: a rank-1 frame of 8 elements in 2.1", patched_round(
        frame_patch=lambda fr: fr.__setitem__(1, comp_frame(extra=[0]))), errors.EARITY,
     "round.component[0]"),
    ("round: k 300", patched_round(frame_patch=lambda fr: fr.__setitem__(1, comp_frame(k=300))),
     errors.ECAP, "round.component[0].k"),
    ("round: matrix 5000", patched_round(frame_patch=lambda fr: fr.__setitem__(
        1, comp_frame(matrix=5000))), errors.ECAP, "round.component[0].matrix"),
    ("round: a score of NaN", patched_round(frame_patch=lambda fr: fr.__setitem__(
        1, comp_frame(score=NAN))), errors.ENONFINITE, "round.component[0].score"),
    ("round: 300000 components declared", patched_round(set_item(15, 300000)), errors.ECAP,
     "round.n_components"),
    ("round: head data 4 bytes short", patched_round(frame_patch=lambda fr: fr.__setitem__(
        -1, fr[-1][:-4].replace(b"\xc6\x00\x00\x02\x10", b"\xc6\x00\x00\x02\x0c", 1))),
     errors.ELENGTH, "round.head.data"),
    ("round: inf in the head", patched_round(frame_patch=lambda fr: fr.__setitem__(
        -1, fr[-1][:16] + struct.pack("<f", INF) + fr[-1][20:])), errors.ENONFINITE,
     "round.head.data"),
    ("round: a merged term of matrix 1", patched_round(frame_patch=lambda fr: fr.__setitem__(
        -2, comp_frame(matrix=1))), errors.ERANGE, "round.merged[0].matrix"),
    ("round: round 0", patched_round(set_item(3, 0)), errors.ERANGE, "round.round"),
    ("round: batch 0", patched_round(set_item(7, 0)), errors.ERANGE, "round.batch"),
    ("round: fresh_optimizer 1", patched_round(set_item(11, 1)), errors.EFIELDTYPE,
     "round.fresh_optimizer"),
    ("round: no head (0 x 0), valid on the wire", frames_of(a_round(5, head=Head())), None, None,
     "bad-round"),
    ("an UPDATE, valid but not for a client", frames_of(
        Update(1, 3, 256, 0.5, 1, 1, [], Head(4, 33, floats(132)))), None, None, "unexpected"),
    ("a HELLO, valid but not for a client", [HELLO_OK], None, None, "unexpected"),
]

# Client-to-server messages the Python decoder must refuse too (the hostile test sends some of
# them to the server).
SERVER_CASES = [
    ("hello: digest of 31 bytes", [pack([2, 1, 1, 3, "x", 8, 256, bytes(31), False, b""])],
     errors.ELENGTH, "hello.base_digest"),
    ("hello: session of 16 bytes", [pack([2, 1, 1, 3, "x", 8, 256, bytes(32), True, bytes(16)])],
     errors.ELENGTH, "hello.session"),
    ("hello: rank budget 300", [pack([2, 1, 1, 3, "x", 300, 256, bytes(32), False, b""])],
     errors.ECAP, "hello.rank_budget"),
    ("hello: index 2^32 - 1", [pack([2, 1, 1, 2**32 - 1, "x", 8, 256, bytes(32), False, b""])],
     errors.ERANGE, "hello.client_index"),
    ("hello from 2.0 (no session)", [pack([2, 0, 1, 3, "x", 8, 256, bytes(32), False])], None,
     None),
    ("hello from 2.0 with a session", [pack([2, 0, 1, 3, "x", 8, 256, bytes(32), False, b""])],
     errors.EARITY, "hello"),
    ("update: loss inf", [pack([2, 1, 5, 1, 3, 256, INF, 1, 1, 0]), codec.encode_head(Head())],
     errors.ENONFINITE, "update.train_loss"),
    ("log_event: a key twice", [pack([2, 1, 8, 0, "", -1, "a", "e", {"k": 1}])[:-4] +
                                b"\x82\xa1k\x01\xa1k\x02"], errors.ERANGE,
     "log_event.fields[1].key"),
    ("log_event: nil value", [pack([2, 1, 8, 0, "", -1, "a", "e", {"k": None}])],
     errors.EFIELDTYPE, "log_event.fields[0].value"),
    ("log_event: round -2", [pack([2, 1, 8, 0, "", -2, "a", "e", {}])], errors.ERANGE,
     "log_event.round"),
    ("log_event: 2^63 as a value", [pack([2, 1, 8, 0, "", -1, "a", "e", {"k": 2**63}])],
     errors.ERANGE, "log_event.fields[0].value"),
    ("log_event: NaN as a value", [pack([2, 1, 8, 0, "", -1, "a", "e", {"k": NAN}],
                                        single=False)], None, None),
    ("control: 17 arguments", [pack([2, 1, 9, "fault", ["x"] * 17])], errors.ECAP,
     "control.argv"),
]


def expect(frames):
    """(code, field) the Python decoder (and layout check against LAYOUT) gives frames, or
    (None, None) for a valid message."""
    try:
        msg = codec.decode(frames)
        codec.check_layout(msg, LAYOUT)
        return None, None
    except errors.DecodeError as exc:
        return exc.code, exc.field


def check_cases():
    for case in CASES + SERVER_CASES:
        name, frames, code, field = case[:4]
        got = expect(frames)
        T.check(got == (code, field), f"decoder: {name}: {got[0]} at {got[1]} "
                f"(expected {code} at {field})")


# ---------------------------------------------------------------------------------------------
# 4. Against the C client

class FakeServer:
    """The server's side of one client: a ROUTER for its messages and a PULL for its events."""

    def __init__(self, base):
        self.ctx = zmq.Context()
        try:
            self._bind(base)
        except zmq.ZMQError:
            self.ctx.destroy(linger=0)
            raise

    def _bind(self, base):
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.bind(f"tcp://127.0.0.1:{base}")
        self.pull = self.ctx.socket(zmq.PULL)
        # Emitters off inproc present the run's log credentials by ZeroMQ's PLAIN mechanism
        # (actors/hafl_log_auth.h), which needs a ZAP handler on the server side: this one
        # admits them, noting the user name.
        self.zap = self.ctx.socket(zmq.REP)
        self.zap.bind("inproc://zeromq.zap.01")
        self.zap_users = []
        self.pull.plain_server = True
        self.pull.bind(f"tcp://127.0.0.1:{base + 2}")
        self.peer = None
        self.events = []  # (frames, LogEvent) of every event received, in order
        self.taken = 0    # events handed out by next_event
        self.stray = []   # messages other than HEARTBEAT that came while waiting for events

    def _poll(self, timeout_ms, want_message):
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.pull, zmq.POLLIN)
        poller.register(self.zap, zmq.POLLIN)
        deadline = time.monotonic() + timeout_ms / 1000
        while time.monotonic() < deadline:
            ready = dict(poller.poll(50))
            if self.zap in ready:
                # [version, request id, domain, address, routing id, mechanism, user, password]
                request = self.zap.recv_multipart()
                self.zap_users.append((request[5], request[6]))
                self.zap.send_multipart([b"1.0", request[1], b"200", b"OK", b"", b""])
            if self.pull in ready:
                frames = self.pull.recv_multipart()
                self.events.append((frames, codec.decode(frames)))
                if not want_message:
                    return None
            if self.router in ready:
                frames = self.router.recv_multipart()
                self.peer = frames[0]
                msg = codec.decode(frames[1:])
                if want_message:
                    return frames[1:], msg
                if not isinstance(msg, Heartbeat):
                    self.stray.append(msg)
        return None

    def recv(self, timeout_ms=10000, skip_heartbeats=False):
        """The next message from the client as (frames, decoded), or (None, None); HEARTBEATs
        passed over when skip_heartbeats."""
        deadline = time.monotonic() + timeout_ms / 1000
        while time.monotonic() < deadline:
            got = self._poll(max(1, int((deadline - time.monotonic()) * 1000)), True)
            if got is None or not (skip_heartbeats and isinstance(got[1], Heartbeat)):
                return got or (None, None)
        return None, None

    def next_event(self, timeout_ms=5000):
        """The next (frames, LogEvent) not handed out yet, or None after timeout_ms."""
        deadline = time.monotonic() + timeout_ms / 1000
        while len(self.events) <= self.taken and time.monotonic() < deadline:
            self._poll(50, False)
        if len(self.events) <= self.taken:
            return None
        self.taken += 1
        return self.events[self.taken - 1]

    def send(self, frames):
        self.router.send_multipart([self.peer] + list(frames))


def check_c_client():
    work = tempfile.mkdtemp(prefix="hafl-pyclient-codec-")
    for attempt in range(5):
        # Another process may take the ports between their check and the bind.
        base = H.free_base_port()
        try:
            fake = FakeServer(base)
            break
        except zmq.ZMQError as exc:
            print(f"ports {base}..{base + 3}: {exc}; trying others")
    node = H.Node("solo", base, work)
    try:
        frames, hello = fake.recv()
        if not T.check(isinstance(hello, Hello), f"the C client says HELLO ({hello})"):
            return
        digest = H.base_digest()
        T.check(hello.base_digest == digest, "the C client's base digest is the one "
                f"hafl_client.synthetic computes ({digest.hex()[:16]}...)")
        T.check((hello.client_index, hello.name, hello.rank_budget, hello.n_samples,
                 hello.rejoin, hello.session) == (3, "client-3", 8, H.shard_size(3), False, b""),
                f"the C client's HELLO: {hello.client_index}, {hello.name}, budget "
                f"{hello.rank_budget}, {hello.n_samples} samples (its shard), first join")
        T.check(codec.encode(hello) == frames, "HELLO: Python re-encodes the C bytes exactly")

        fake.send(codec.encode(LAYOUT))
        frames, beat = fake.recv()
        T.check(isinstance(beat, Heartbeat) and beat.client_index == 3,
                f"after WELCOME the C client sends HEARTBEATs ({beat})")
        T.check(beat is not None and codec.encode(beat) == frames,
                "HEARTBEAT: Python re-encodes the C bytes exactly")
        joined = fake.next_event()
        T.check(joined is not None and joined[1].event == "joined" and joined[1].round == -1,
                f"the C client logs joined with round -1 ({joined and joined[1]})")

        for case in CASES:
            name, frames, code = case[0], case[1], case[2]
            logged = case[4] if len(case) > 4 else ("malformed" if code else None)
            fake.send(frames)
            if logged is None:
                continue
            ev = fake.next_event()
            if ev is None:
                T.check(False, f"C client: {name}: no event (expected {logged} {code or ''})")
                continue
            ev = ev[1]
            fields = dict(ev.fields)
            if logged == "malformed":
                # The C client logs the reference decoder's "CODE: field: text".
                reason = fields.get("reason", "")
                field = case[3]
                # The reference decoder names a head frame's elements `round.data` rather
                # than `round.head.data` (its s_decode_head replaces the `head` leaf); the
                # code is what matters here, and the path up to that.
                reason = re.sub(r"^(\w+: \w+)\.(rows|cols|data): ", r"\1.head.\2: ", reason)
                T.check(ev.event == "malformed" and reason.split(": ")[:2] == [code, field],
                        f"C client: {name}: {ev.event} {reason!r} (expected {code} at {field})")
            else:
                T.check(ev.event == logged, f"C client: {name}: {ev.event} {fields} "
                        f"(expected {logged})")
        # Valid messages above log nothing: the next event must be the straggle of round 7.
        fake.send(codec.encode(a_round(7)))
        frames, update = fake.recv(20000, skip_heartbeats=True)
        if T.check(isinstance(update, Update), f"the C client trains round 7 and answers "
                   f"UPDATE ({type(update).__name__})"):
            trainable = [(0, k) for k in range(8) if ROLES[k] == protocol.ROLE_TRAINABLE]
            T.check([(c.matrix, c.k) for c in update.components] == trainable,
                    f"UPDATE carries exactly the trainable components {trainable}")
            T.check((update.round, update.client_index, update.n_samples,
                     update.head.rows, update.head.cols) == (7, 3, H.shard_size(3), 4, 33),
                    "UPDATE: round 7, client 3, its HELLO's n_samples, the 4 x 33 head")
            T.check(codec.encode(update) == frames,
                    "UPDATE: Python re-encodes the C bytes exactly")
        straggle = fake.next_event()
        T.check(straggle is not None and straggle[1].event == "straggle" and
                dict(straggle[1].fields).get("delay_ms") == 30,
                f"the C client held its upload for straggle_ms 30 ({straggle and straggle[1]})")
        fake.send(codec.encode(Reject(protocol.REJECT_FULL, "federation ended")))
        status = node.wait(30)
        T.check(status == 0, f"the C client node ends with status 0 on REJECT FULL ({status})")
        time.sleep(0.2)
        fake._poll(300, False)
        ok = all(codec.encode(msg) == frames for frames, msg in fake.events)
        T.check(ok and len(fake.events) > 3, f"{len(fake.events)} LOG_EVENTs of the C client: "
                "Python re-encodes each to the C bytes exactly")
        T.check(not fake.stray, f"nothing but HEARTBEATs came unasked ({fake.stray})")
        T.check(fake.zap_users and all(u == (b"PLAIN", b"hafl-log") for u in fake.zap_users),
                f"the C client's events authenticate as PLAIN user hafl-log ({fake.zap_users})")
    finally:
        node.stop()
        fake.ctx.destroy(linger=0)
    if not T.failed:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"files kept in {work}")


def check_python_client():
    """The Client's loop under the table's messages, then a ROUND and the end."""
    import threading
    from hafl_client import Client, TrainResult
    for attempt in range(5):
        base = H.free_base_port()
        try:
            fake = FakeServer(base)
            break
        except zmq.ZMQError as exc:
            print(f"ports {base}..{base + 3}: {exc}; trying others")
    seen = []

    def train(work):
        seen.append(work)
        comps = [Rank1(m, k, 2.0, work.components[(m, k)].b, work.components[(m, k)].a)
                 for m, k in work.trainable()]
        return TrainResult(comps, work.head, 0.25, 3)

    client = Client(f"tcp://127.0.0.1:{base}", 3, 8, 256, bytes(32), train,
                    honour_straggle=False)
    result = {}
    thread = threading.Thread(target=lambda: result.update(out=client.run()), daemon=True)
    thread.start()
    try:
        frames, hello = fake.recv()
        T.check(isinstance(hello, Hello) and not hello.rejoin and hello.session == b"",
                f"the Python client says HELLO, first join ({hello})")
        fake.send(codec.encode(LAYOUT))
        for case in CASES:
            fake.send(case[1])
        fake.send(codec.encode(a_round(7)))
        frames, update = fake.recv(10000, skip_heartbeats=True)
        trainable = [(0, k) for k in range(8) if ROLES[k] == protocol.ROLE_TRAINABLE]
        T.check(isinstance(update, Update) and
                [(c.matrix, c.k) for c in update.components] == trainable and
                (update.round, update.steps, update.n_samples) == (7, 3, 256),
                "the Python client trains round 7 after every message of the table and "
                f"uploads its trainable components ({update})")
        T.check([w.round for w in seen] == [7] and seen[0].merged == [a_round(7).merged] and
                sorted(seen[0].components) == [(0, k) for k in range(8) if ROLES[k]],
                "its trainer ran once, for round 7 (the headless round 5 refused), with every "
                f"present component and the merged term ({[w.round for w in seen]})")
        fake.send(codec.encode(Reject(protocol.REJECT_FULL, "federation ended")))
        thread.join(10)
    finally:
        client.stop()
        thread.join(5)
        fake.ctx.destroy(linger=0)
    out = result.get("out")
    malformed = sum(1 for case in CASES if case[2] is not None)
    T.check(out is not None and out.ended and out.reject == protocol.REJECT_FULL and
            out.uploaded == [7], f"run() returns on REJECT FULL, the federation ended ({out})")
    T.check(out is not None and (out.malformed, out.unexpected) == (malformed, 2),
            f"it counted {malformed} malformed and 2 unexpected messages "
            f"({out and (out.malformed, out.unexpected)})")


def main():
    check_examples()
    check_round_trips()
    check_cases()
    check_python_client()
    check_c_client()
    T.finish()


if __name__ == "__main__":
    main()
