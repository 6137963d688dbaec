"""The strict codec of the hafl protocol, written from messages/PROTOCOL.md: encode(message)
gives the list of frames to send, decode(frames) gives the message or raises DecodeError with
the first violation, in the order the bytes arrive (header prefix, header fields in table
order, frame count, component frames, merged frames, head frame, then the checks that relate
parts of the message to each other), which is the order the reference decoder reports.

Encoding writes exactly what the reference encoder writes: the shortest encoding of every
header value, float 32 for `float` fields (float 64 for LOG_EVENT field values), and rank-1
and head frames in their fixed layout (uint 32 ids, one-byte pads, bin 32 tensors, so `b`
starts at byte 24 of a rank-1 frame and the head data at byte 16). A message is checked with
the decoder's rules before it is encoded, so this library never sends what a peer must refuse.

check_layout(message, welcome) is the second check a receiver applies to ROUND, UPDATE and
EVAL_REQUEST: matrix ids, component indices and shapes against the layout WELCOME gave.
"""

import copy
import math
import struct

import msgpack

from . import errors, protocol, tensors
from .messages import CLASSES, Head, MatrixInfo, Rank1
from .reader import ARRAY, BIN, BOOL, FLOAT, INT, MAP, STR, UINT, Reader

U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
I64_MAX = 2**63 - 1
I32_MAX = 2**31 - 1

# One header field: (name, kind, lo, hi, cap, since). For integers, a value above hi is ECAP
# when cap is set, ERANGE otherwise; `since` is the minor that appended the field.
def _u32(name, lo=0, hi=U32_MAX):
    return (name, "u32", lo, hi, False, 0)


def _u32cap(name, lo, hi):
    return (name, "u32", lo, hi, True, 0)


def _u64(name):
    return (name, "u64", 0, U64_MAX, False, 0)


def _f32(name, lo, hi):
    return (name, "f32", lo, hi, False, 0)


def _bool(name):
    return (name, "bool", 0, 1, False, 0)


def _str(name, lo, hi):
    return (name, "str", lo, hi, True, 0)


def _special(name, kind, lo=0, hi=0, since=0):
    return (name, kind, lo, hi, True, since)


F = protocol
FIELDS = {
    F.HELLO: ("hello", [
        _u32("client_index", 0, U32_MAX - 1), _str("name", 0, 63),
        _u32cap("rank_budget", 1, F.MAX_RANK), _u64("n_samples"),
        _special("base_digest", "digest"), _bool("rejoin"),
        _special("session", "session", 0, 32, since=1)]),
    F.WELCOME: ("welcome", [
        _u32("client_index", 0, U32_MAX - 1), _str("run_id", 1, 63),
        _u32("heartbeat_ms", 1, 3600000), _u32cap("rank", 1, F.MAX_RANK),
        _f32("scale", F.FLT_MIN, F.FLT_MAX), _u32cap("head_rows", 0, F.MAX_HEAD),
        _u32cap("head_cols", 0, F.MAX_HEAD), _special("matrices", "matrices", 0, F.MAX_MATRICES),
        _special("session", "session", 32, 32, since=1)]),
    F.REJECT: ("reject", [_u32("reason", 1, 255), _str("text", 0, F.MAX_TEXT - 1)]),
    F.ROUND: ("round", [
        _u32("round", 1), _u32("deadline_ms", 1), _u32("local_epochs"), _u32("local_steps"),
        _u32("batch", 1), _f32("lr", 0.0, F.FLT_MAX), _u64("seed"), _u32("straggle_ms"),
        _bool("fresh_optimizer"), _u32cap("n_matrices", 0, F.MAX_MATRICES),
        _u32cap("rank", 1, F.MAX_RANK), _special("roles", "roles"),
        _special("n_components", "count", 0, F.MAX_COMPONENTS),
        _special("n_merged", "count", 0, F.MAX_COMPONENTS), _bool("reset_merged")]),
    F.UPDATE: ("update", [
        _u32("round", 1), _u32("client_index", 0, U32_MAX - 1), _u64("n_samples"),
        _f32("train_loss", -F.FLT_MAX, F.FLT_MAX), _u32("steps"), _u32("wall_ms"),
        _special("n_components", "count", 0, F.MAX_COMPONENTS)]),
    F.EVAL_REQUEST: ("eval_request", [
        _u32("round"), _u32("tag"), _special("n_components", "count", 0, F.MAX_COMPONENTS),
        _special("n_merged", "count", 0, F.MAX_COMPONENTS)]),
    F.EVAL_RESULT: ("eval_result", [
        _u32("round"), _u32("tag"), _f32("accuracy", 0.0, 1.0), _f32("loss", 0.0, F.FLT_MAX),
        _u64("n_examples"), _u32("wall_ms")]),
    F.LOG_EVENT: ("log_event", [
        _u64("time_us"), _str("run_id", 0, 63), ("round", "i32", -1, I32_MAX, False, 0),
        _str("actor", 1, 63), _str("event", 1, 63), _special("fields", "fields", 0, F.MAX_FIELDS)]),
    F.CONTROL: ("control", [_str("command", 1, 63), _special("argv", "args", 0, F.MAX_ARGS)]),
    F.CONTROL_REPLY: ("control_reply", [_bool("ok"), _special("json", "text", 0, F.MAX_JSON)]),
    F.HEARTBEAT: ("heartbeat", [_u32("client_index"), _u64("seq"), _u64("time_us")]),
}
BULK = {F.ROUND: (True, True), F.UPDATE: (True, False), F.EVAL_REQUEST: (True, True)}
RANK1_ELEMENTS = 7
_PAD = b"\xc4\x01\x00"


def _fail(code, path, text, cls=errors.DecodeError):
    raise cls(code, path, text)


def f32(value):
    """value rounded to float32, as a Python float."""
    return struct.unpack("<f", struct.pack("<f", value))[0]


# ---------------------------------------------------------------------------------------------
# Shared checks (the decoder raises DecodeError, the encoder EncodeError)

def _check_uint(v, lo, hi, cap, path, cls):
    if v > hi:
        _fail(errors.ECAP if cap else errors.ERANGE, path,
              f"{v} exceeds the {'cap' if cap else 'maximum'} {hi}", cls)
    if v < lo:
        _fail(errors.ERANGE, path, f"{v} is below the minimum {lo}", cls)


def _check_float(v, lo, hi, path, cls):
    if not math.isfinite(v):
        _fail(errors.ENONFINITE, path, f"{v} is not finite", cls)
    if v < lo or v > hi:
        _fail(errors.ERANGE, path, f"{v} is outside [{lo}, {hi}]", cls)


def _check_text(raw, lo, hi, path, cls):
    """raw: the UTF-8 bytes of a string. Returns the str."""
    if len(raw) > hi:
        _fail(errors.ECAP, path, f"{len(raw)} bytes exceed the cap of {hi}", cls)
    if len(raw) < lo:
        _fail(errors.ERANGE, path, f"{len(raw)} bytes, at least {lo} required", cls)
    if 0 in raw:
        _fail(errors.ESTRING, path, f"NUL byte at offset {bytes(raw).index(0)}", cls)
    try:
        # Python's strict UTF-8 refuses overlong forms, surrogates and code points above
        # U+10FFFF, exactly the rule of section 2.
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        _fail(errors.ESTRING, path, f"invalid UTF-8 at offset {exc.start}", cls)


def _check_head_shape(rows, cols, path, cls):
    if rows > F.MAX_HEAD or cols > F.MAX_HEAD or rows * cols > F.MAX_HEAD:
        _fail(errors.ECAP, path, f"{rows} x {cols} exceeds the cap of {F.MAX_HEAD} floats", cls)
    if (rows == 0) != (cols == 0):
        _fail(errors.ERANGE, path, f"{rows} x {cols}: both or neither must be 0", cls)


def _check_message(msg, minor, cls):
    """The checks that relate parts of a message: WELCOME head shape, REJECT reasons of the
    sender's minor, ROUND epochs/steps, component counts, ROUND components within its roles,
    one shape per matrix, no component twice."""
    t = msg.TYPE
    name = FIELDS[t][0]
    if t == F.WELCOME:
        _check_head_shape(msg.head_rows, msg.head_cols, "welcome.head", cls)
        return
    if t == F.REJECT and minor <= F.MINOR and msg.reason > F.REJECT_LAST[min(minor, F.MINOR)]:
        _fail(errors.ERANGE, "reject.reason", f"{msg.reason} is not a reason of 2.{minor}", cls)
    if t == F.ROUND and msg.local_epochs == 0 and msg.local_steps == 0:
        _fail(errors.ERANGE, "round.local_steps", "local_epochs and local_steps are both 0", cls)
    if t not in BULK:
        return
    comp = msg.components
    merged = msg.merged if BULK[t][1] else []
    if len(comp) + len(merged) > F.MAX_COMPONENTS:
        _fail(errors.ECAP, name, f"{len(comp)} components + {len(merged)} merged exceed "
              f"{F.MAX_COMPONENTS}", cls)
    terms = [(x, False, i) for i, x in enumerate(comp)] + [(x, True, i) for i, x in
                                                          enumerate(merged)]
    if t == F.ROUND:
        for x, is_merged, i in terms:
            where = f"round.{'merged' if is_merged else 'component'}[{i}]"
            if x.matrix >= msg.n_matrices:
                _fail(errors.ERANGE, where + ".matrix",
                      f"{x.matrix} >= n_matrices {msg.n_matrices}", cls)
            if is_merged:
                continue
            if x.k >= msg.rank:
                _fail(errors.ERANGE, where + ".k", f"{x.k} >= rank {msg.rank}", cls)
            if msg.roles[x.matrix * msg.rank + x.k] == F.ROLE_ABSENT:
                _fail(errors.ERANGE, where + ".k",
                      f"component ({x.matrix}, {x.k}) is sent but its role is absent", cls)
    if len(terms) < 2:
        return
    keys = sorted(terms, key=lambda e: (e[0].matrix, e[1], e[0].k, e[2]))
    for p, q in zip(keys, keys[1:]):
        if p[0].matrix != q[0].matrix:
            continue
        where = f"{name}.{'merged' if q[1] else 'component'}[{q[2]}]"
        if (len(p[0].b), len(p[0].a)) != (len(q[0].b), len(q[0].a)):
            _fail(errors.ELENGTH, where,
                  f"matrix {q[0].matrix} is {len(q[0].b)} x {len(q[0].a)} here but "
                  f"{len(p[0].b)} x {len(p[0].a)} in {'merged' if p[1] else 'component'}"
                  f"[{p[2]}]", cls)
        if not p[1] and not q[1] and p[0].k == q[0].k:
            _fail(errors.ERANGE, where, f"component ({q[0].matrix}, {q[0].k}) also in "
                  f"component[{p[2]}]", cls)


# ---------------------------------------------------------------------------------------------
# Decoding

def _next(r, path, kind=None):
    item = r.next(path)
    if kind is not None and item.kind != kind:
        _fail(errors.EFIELDTYPE, path,
              f"expected {kind}, got {item.kind} (0x{item.tag:02x})")
    return item


def _read_uint(r, path, lo, hi, cap):
    item = r.next(path)
    if item.kind == INT:
        _fail(errors.ERANGE, path, f"{item.value} is negative")
    if item.kind != UINT:
        _fail(errors.EFIELDTYPE, path, f"expected uint, got {item.kind} (0x{item.tag:02x})")
    _check_uint(item.value, lo, hi, cap, path, errors.DecodeError)
    return item.value


def _read_float(r, path, lo, hi):
    item = _next(r, path, FLOAT)
    _check_float(item.value, lo, hi, path, errors.DecodeError)
    return f32(item.value)


def _read_str(r, path, lo, hi):
    return _check_text(_next(r, path, STR).payload, lo, hi, path, errors.DecodeError)


def _read_tuple(r, path, need, minor):
    n = _next(r, path, ARRAY).count
    if n < need:
        _fail(errors.EARITY, path, f"{n} elements, {need} required")
    if n > need and minor <= F.MINOR:
        _fail(errors.EARITY, path, f"{n} elements, exactly {need} in 2.{minor}")
    return n


def _skip_extra(r, path, extra):
    for _ in range(extra):
        r.skip(path)


def _expect_end(r, path):
    if r.remaining():
        _fail(errors.ETRAILING, path, f"{r.remaining()} bytes after the last value")


def _dim_of(item, path):
    if item.payload.nbytes % 4:
        _fail(errors.ELENGTH, path, f"{item.payload.nbytes} bytes is not a multiple of 4")
    dim = item.payload.nbytes // 4
    _check_uint(dim, 1, F.MAX_DIM, True, path, errors.DecodeError)
    return dim


def _read_pad(r, path):
    item = _next(r, path, BIN)
    if item.payload.nbytes > F.MAX_PAD:
        _fail(errors.ECAP, path, f"{item.payload.nbytes} bytes exceed the cap of {F.MAX_PAD}")


def _decode_rank1(frame, minor, merged, path):
    r = Reader(frame)
    n = _read_tuple(r, path, RANK1_ELEMENTS, minor)
    matrix = _read_uint(r, path + ".matrix", 0, F.MAX_MATRICES - 1, True)
    k = _read_uint(r, path + ".k", 0, U32_MAX if merged else F.MAX_RANK - 1, True)
    score = _read_float(r, path + ".score", -F.FLT_MAX, F.FLT_MAX)
    _read_pad(r, path + ".pad_b")
    b = _next(r, path + ".b", BIN)
    _dim_of(b, path + ".b")
    _read_pad(r, path + ".pad_a")
    a = _next(r, path + ".a", BIN)
    _dim_of(a, path + ".a")
    _skip_extra(r, path, n - RANK1_ELEMENTS)
    _expect_end(r, path)
    return Rank1(matrix, k, score, tensors.decode(b.payload, path + ".b"),
                 tensors.decode(a.payload, path + ".a"))


def _decode_head(frame, minor, path):
    r = Reader(frame)
    n = _read_tuple(r, path, 3, minor)
    rows = _read_uint(r, path + ".rows", 0, F.MAX_HEAD, True)
    cols = _read_uint(r, path + ".cols", 0, F.MAX_HEAD, True)
    _check_head_shape(rows, cols, path, errors.DecodeError)
    data = _next(r, path + ".data", BIN)
    if data.payload.nbytes != 4 * rows * cols:
        _fail(errors.ELENGTH, path + ".data",
              f"{data.payload.nbytes} bytes, 4 x {rows} x {cols} expected")
    _skip_extra(r, path, n - 3)
    _expect_end(r, path)
    return Head(rows, cols, tensors.decode(data.payload, path + ".data"))


def _decode_matrices(r, minor, hi):
    path = "welcome.matrices"
    item = _next(r, path, ARRAY)
    _check_uint(item.count, 0, hi, True, path, errors.DecodeError)
    # Each entry takes at least 5 bytes: a count the frame cannot hold is refused before
    # anything is built for it.
    if item.count * 5 > r.remaining():
        _fail(errors.ETRUNCATED, path,
              f"{item.count} entries cannot fit in {r.remaining()} bytes")
    matrices = []
    for i in range(item.count):
        where = f"{path}[{i}]"
        n = _read_tuple(r, where, 3, minor)
        name = _read_str(r, where + ".name", 1, 31)
        d_out = _read_uint(r, where + ".d_out", 1, F.MAX_DIM, True)
        d_in = _read_uint(r, where + ".d_in", 1, F.MAX_DIM, True)
        _skip_extra(r, where, n - 3)
        matrices.append(MatrixInfo(name, d_out, d_in))
    return matrices


def _decode_fields(r, hi):
    path = "log_event.fields"
    item = _next(r, path, MAP)
    _check_uint(item.count, 0, hi, True, path, errors.DecodeError)
    fields, seen = [], {}
    for i in range(item.count):
        where = f"{path}[{i}]"
        key = _read_str(r, where + ".key", 1, 63)
        if key in seen:
            _fail(errors.ERANGE, where + ".key", f"key repeats fields[{seen[key]}]")
        seen[key] = i
        v = r.next(where + ".value")
        if v.kind == UINT:
            if v.value > I64_MAX:
                _fail(errors.ERANGE, where + ".value", f"{v.value} exceeds int64")
            value = v.value
        elif v.kind in (INT, FLOAT, BOOL):
            value = v.value
        elif v.kind == STR:
            value = _check_text(v.payload, 0, F.MAX_TEXT, where + ".value", errors.DecodeError)
        else:
            _fail(errors.EFIELDTYPE, where + ".value",
                  f"expected int, float, str or bool, got {v.kind} (0x{v.tag:02x})")
        fields.append((key, value))
    return fields


def _decode_args(r, hi):
    path = "control.argv"
    item = _next(r, path, ARRAY)
    _check_uint(item.count, 0, hi, True, path, errors.DecodeError)
    return [_read_str(r, f"{path}[{i}]", 0, F.MAX_TEXT) for i in range(item.count)]


def _decode_field(r, name, spec, values, minor):
    fname, kind, lo, hi, cap, _ = spec
    path = f"{name}.{fname}"
    if kind in ("u32", "count"):
        return _read_uint(r, path, lo, hi, cap)
    if kind == "u64":
        return _read_uint(r, path, 0, U64_MAX, False)
    if kind == "i32":
        item = r.next(path)
        if item.kind == UINT:
            _check_uint(item.value, 0, hi, False, path, errors.DecodeError)
            return item.value
        if item.kind != INT:
            _fail(errors.EFIELDTYPE, path, f"expected int, got {item.kind} (0x{item.tag:02x})")
        if item.value < lo:
            _fail(errors.ERANGE, path, f"{item.value} is below the minimum {lo}")
        return item.value
    if kind == "f32":
        return _read_float(r, path, lo, hi)
    if kind == "bool":
        return _next(r, path, BOOL).value
    if kind == "str":
        return _read_str(r, path, lo, hi)
    if kind == "text":
        return _read_str(r, path, 0, hi)
    if kind == "digest":
        payload = _next(r, path, BIN).payload
        if payload.nbytes != F.DIGEST_BYTES:
            _fail(errors.ELENGTH, path, f"{payload.nbytes} bytes, 32 required")
        return bytes(payload)
    if kind == "session":
        payload = _next(r, path, BIN).payload
        if payload.nbytes == 0 and lo == 0:
            return b""
        if payload.nbytes != F.SESSION_BYTES:
            _fail(errors.ELENGTH, path,
                  f"{payload.nbytes} bytes, {'0 or ' if lo == 0 else ''}32 required")
        return bytes(payload)
    if kind == "roles":
        payload = _next(r, path, BIN).payload
        n = values["n_matrices"] * values["rank"]
        if payload.nbytes != n:
            _fail(errors.ELENGTH, path, f"{payload.nbytes} bytes, n_matrices x rank = {n}")
        roles = bytes(payload)
        for i, role in enumerate(roles):
            if role > F.ROLE_TRAINABLE:
                _fail(errors.ERANGE, path, f"byte {i} is {role}, not a role")
        return roles
    if kind == "matrices":
        return _decode_matrices(r, minor, hi)
    if kind == "fields":
        return _decode_fields(r, hi)
    if kind == "args":
        return _decode_args(r, hi)
    raise AssertionError(kind)


def _decode_prefix(r):
    item = _next(r, "header", ARRAY)
    if item.count < 1:
        _fail(errors.EARITY, "header", "empty header array")
    major = _read_uint(r, "header.major", 0, U64_MAX, False)
    if major != F.MAJOR:
        # [major, minor, type] keep their meaning in every major: the type tells a HELLO
        # (answered REJECT VERSION by a server) from any other message (dropped).
        msg_type = None
        try:
            if item.count >= 3:
                r.next("header.minor")
                t = r.next("header.type")
                msg_type = t.value if t.kind == UINT else None
        except errors.DecodeError:
            msg_type = None
        raise errors.DecodeError(errors.EVERSION, "header.major",
                                 f"protocol {major}, this peer speaks {F.MAJOR}.{F.MINOR}",
                                 type=msg_type)
    if item.count < 3:
        _fail(errors.EARITY, "header", f"{item.count} elements, at least 3 required")
    minor = _read_uint(r, "header.minor", 0, 65535, False)
    t = r.next("header.type")
    if t.kind == INT or (t.kind == UINT and t.value not in FIELDS):
        _fail(errors.EUNKNOWN, "header.type", f"unknown message type {t.value}")
    if t.kind != UINT:
        _fail(errors.EFIELDTYPE, "header.type", f"expected uint, got {t.kind} (0x{t.tag:02x})")
    return item.count, minor, t.value


def decode(frames):
    """frames: the hafl frames of one message (routing frames already stripped), each bytes,
    bytearray, memoryview or zmq.Frame. Returns the message or raises DecodeError."""
    frames = [memoryview(f.buffer if hasattr(f, "buffer") else f) for f in frames]
    if not frames:
        _fail(errors.ENOFRAMES, "message", "no frames")
    total = sum(f.nbytes for f in frames)
    if total > F.MAX_BYTES:
        _fail(errors.ECAP, "message", f"{total} bytes exceed the cap of {F.MAX_BYTES}")
    if frames[0].nbytes > F.MAX_HEADER:
        _fail(errors.ECAP, "header", f"{frames[0].nbytes} bytes exceed the cap of {F.MAX_HEADER}")
    r = Reader(frames[0])
    n, minor, msg_type = _decode_prefix(r)
    name, specs = FIELDS[msg_type]
    known = [s for s in specs if s[5] <= minor]
    need = 3 + len(known)
    if n < need or (n > need and minor <= F.MINOR):
        _fail(errors.EARITY, name, f"header has {n} elements, "
              f"{'at least ' if n < need else 'exactly '}{need} in 2.{minor}")
    values = {}
    for spec in known:
        values[spec[0]] = _decode_field(r, name, spec, values, minor)
    _skip_extra(r, name, n - need)
    _expect_end(r, name)
    has_comp, has_merged = BULK.get(msg_type, (False, False))
    nc = values.pop("n_components", 0)
    nm = values.pop("n_merged", 0) if has_merged else 0
    expect = 1 + nc + nm + (1 if has_comp else 0)
    if len(frames) != expect:
        _fail(errors.ENOFRAMES, name, f"{len(frames)} frames, header declares {expect}")
    if has_comp:
        values["components"] = [_decode_rank1(frames[1 + i], minor, False,
                                              f"{name}.component[{i}]") for i in range(nc)]
        if has_merged:
            values["merged"] = [_decode_rank1(frames[1 + nc + i], minor, True,
                                              f"{name}.merged[{i}]") for i in range(nm)]
        values["head"] = _decode_head(frames[-1], minor, f"{name}.head")
    if msg_type == F.WELCOME and "session" not in values:
        values["session"] = None
    msg = CLASSES[msg_type](minor=minor, **values)
    _check_message(msg, minor, errors.DecodeError)
    return msg


def peek(frame):
    """(major, minor, type) of a frame 0 that starts with an array of three unsigned integers,
    else None: what a server reads to answer a HELLO of another major."""
    try:
        r = Reader(frame)
        if r.next("header").kind != ARRAY:
            return None
        out = []
        for part in ("major", "minor", "type"):
            item = r.next("header." + part)
            if item.kind != UINT:
                return None
            out.append(item.value)
        return tuple(out)
    except errors.DecodeError:
        return None


def check_layout(msg, welcome):
    """Raise DecodeError when a decoded ROUND, UPDATE or EVAL_REQUEST does not fit the layout
    of welcome (matrix ids, component indices, tensor shapes, head shape or 0 x 0)."""
    if msg.TYPE not in BULK:
        return
    name = FIELDS[msg.TYPE][0]
    layout = welcome.matrices
    if msg.TYPE == F.ROUND and (msg.n_matrices != len(layout) or msg.rank != welcome.rank):
        _fail(errors.ERANGE, "round.n_matrices",
              f"{msg.n_matrices} matrices of rank {msg.rank}, the layout has {len(layout)} of "
              f"rank {welcome.rank}")
    merged = msg.merged if BULK[msg.TYPE][1] else []
    for i, x in enumerate(list(msg.components) + list(merged)):
        is_merged = i >= len(msg.components)
        where = f"{name}.{'merged' if is_merged else 'component'}[" \
                f"{i - len(msg.components) if is_merged else i}]"
        if x.matrix >= len(layout):
            _fail(errors.ERANGE, where, f"matrix {x.matrix} >= n_matrices {len(layout)}")
        if not is_merged and x.k >= welcome.rank:
            _fail(errors.ERANGE, where, f"k {x.k} >= rank {welcome.rank}")
        info = layout[x.matrix]
        if len(x.b) != info.d_out or len(x.a) != info.d_in:
            _fail(errors.ELENGTH, where, f"{len(x.b)} x {len(x.a)}, matrix {info.name} is "
                  f"{info.d_out} x {info.d_in}")
    h = msg.head
    if (h.rows or h.cols) and (h.rows, h.cols) != (welcome.head_rows, welcome.head_cols):
        _fail(errors.ELENGTH, f"{name}.head", f"{h.rows} x {h.cols}, the layout's head is "
              f"{welcome.head_rows} x {welcome.head_cols}")


# ---------------------------------------------------------------------------------------------
# Encoding

def _int_value(msg, fname, path):
    v = getattr(msg, fname)
    if type(v) is bool or not isinstance(v, int):
        _fail(errors.EFIELDTYPE, path, f"{v!r} is not an integer", errors.EncodeError)
    return v


def _utf8(value, path):
    if not isinstance(value, str):
        _fail(errors.EFIELDTYPE, path, f"{value!r} is not a str", errors.EncodeError)
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:
        _fail(errors.ESTRING, path, f"not encodable as UTF-8 at offset {exc.start}",
              errors.EncodeError)


def _header_value(msg, name, spec):
    """The validated value of one header field, ready for MessagePack."""
    fname, kind, lo, hi, cap, _ = spec
    path = f"{name}.{fname}"
    E = errors.EncodeError
    if kind == "count":
        attr = "components" if fname == "n_components" else "merged"
        n = len(getattr(msg, attr))
        _check_uint(n, lo, hi, cap, path, E)
        return n
    if kind in ("u32", "u64"):
        v = _int_value(msg, fname, path)
        _check_uint(v, lo if kind == "u32" else 0, hi, cap, path, E)
        return v
    if kind == "i32":
        v = _int_value(msg, fname, path)
        if v < lo or v > hi:
            _fail(errors.ERANGE, path, f"{v} is outside [{lo}, {hi}]", E)
        return v
    if kind == "f32":
        v = getattr(msg, fname)
        if type(v) is bool or not isinstance(v, (int, float)):
            _fail(errors.EFIELDTYPE, path, f"{v!r} is not a number", E)
        _check_float(float(v), lo, hi, path, E)
        return f32(v)
    if kind == "bool":
        v = getattr(msg, fname)
        if type(v) is not bool:
            _fail(errors.EFIELDTYPE, path, f"{v!r} is not a bool", E)
        return v
    if kind in ("str", "text"):
        raw = _utf8(getattr(msg, fname), path)
        _check_text(raw, lo if kind == "str" else 0, hi, path, E)
        return getattr(msg, fname)
    if kind in ("digest", "session"):
        v = getattr(msg, fname)
        if v is None and kind == "session" and lo == 0:
            v = b""
        if not isinstance(v, (bytes, bytearray)):
            _fail(errors.EFIELDTYPE, path, f"{v!r} is not bytes", E)
        ok = (len(v) == 32) or (kind == "session" and lo == 0 and len(v) == 0)
        if not ok:
            _fail(errors.ELENGTH, path, f"{len(v)} bytes, {'0 or ' if kind == 'session' and lo == 0 else ''}32 required", E)
        return bytes(v)
    if kind == "roles":
        roles = bytes(msg.roles)
        if len(roles) != msg.n_matrices * msg.rank:
            _fail(errors.ELENGTH, path, f"{len(roles)} bytes, n_matrices x rank = "
                  f"{msg.n_matrices * msg.rank}", E)
        for i, role in enumerate(roles):
            if role > F.ROLE_TRAINABLE:
                _fail(errors.ERANGE, path, f"byte {i} is {role}, not a role", E)
        return roles
    if kind == "matrices":
        _check_uint(len(msg.matrices), 0, hi, True, path, E)
        out = []
        for i, m in enumerate(msg.matrices):
            where = f"{path}[{i}]"
            _check_text(_utf8(m.name, where + ".name"), 1, 31, where + ".name", E)
            for part in ("d_out", "d_in"):
                v = getattr(m, part)
                if type(v) is bool or not isinstance(v, int):
                    _fail(errors.EFIELDTYPE, f"{where}.{part}", f"{v!r} is not an integer", E)
                _check_uint(v, 1, F.MAX_DIM, True, f"{where}.{part}", E)
            out.append([m.name, m.d_out, m.d_in])
        return out
    if kind == "fields":
        _check_uint(len(msg.fields), 0, hi, True, path, E)
        out, seen = {}, {}
        for i, (key, value) in enumerate(msg.fields):
            where = f"{path}[{i}]"
            _check_text(_utf8(key, where + ".key"), 1, 63, where + ".key", E)
            if key in seen:
                _fail(errors.ERANGE, where + ".key", f"key repeats fields[{seen[key]}]", E)
            seen[key] = i
            if isinstance(value, str):
                _check_text(_utf8(value, where + ".value"), 0, F.MAX_TEXT, where + ".value", E)
            elif type(value) is bool or isinstance(value, float):
                pass
            elif isinstance(value, int):
                if not -2**63 <= value <= I64_MAX:
                    _fail(errors.ERANGE, where + ".value", f"{value} is outside int64", E)
            else:
                _fail(errors.EFIELDTYPE, where + ".value", f"{value!r}: not int, float, str "
                      "or bool", E)
            out[key] = value
        return out
    if kind == "args":
        _check_uint(len(msg.argv), 0, hi, True, path, E)
        for i, a in enumerate(msg.argv):
            _check_text(_utf8(a, f"{path}[{i}]"), 0, F.MAX_TEXT, f"{path}[{i}]", E)
        return list(msg.argv)
    raise AssertionError(kind)


def encode_rank1(term, merged=False, path="rank1"):
    """One rank-1 frame in the reference layout: 32 bytes + 4 (d_out + d_in)."""
    E = errors.EncodeError
    for part, hi in (("matrix", F.MAX_MATRICES - 1), ("k", U32_MAX if merged else F.MAX_RANK - 1)):
        v = getattr(term, part)
        if type(v) is bool or not isinstance(v, int):
            _fail(errors.EFIELDTYPE, f"{path}.{part}", f"{v!r} is not an integer", E)
        _check_uint(v, 0, hi, True, f"{path}.{part}", E)
    _check_float(float(term.score), -F.FLT_MAX, F.FLT_MAX, path + ".score", E)
    b = tensors.as_floats(term.b, path + ".b")
    a = tensors.as_floats(term.a, path + ".a")
    _check_uint(len(b), 1, F.MAX_DIM, True, path + ".b", E)
    _check_uint(len(a), 1, F.MAX_DIM, True, path + ".a", E)
    return b"".join((b"\x97\xce", struct.pack(">I", term.matrix), b"\xce",
                     struct.pack(">I", term.k), b"\xca", struct.pack(">f", f32(term.score)),
                     _PAD, b"\xc6", struct.pack(">I", 4 * len(b)), tensors.encode(b),
                     _PAD, b"\xc6", struct.pack(">I", 4 * len(a)), tensors.encode(a)))


def encode_head(head, path="head"):
    """The head frame in the reference layout: 16 bytes + 4 rows cols."""
    E = errors.EncodeError
    for part in ("rows", "cols"):
        v = getattr(head, part)
        if type(v) is bool or not isinstance(v, int) or v < 0:
            _fail(errors.EFIELDTYPE, f"{path}.{part}", f"{v!r} is not a count", E)
    _check_head_shape(head.rows, head.cols, path, E)
    data = tensors.as_floats(head.data, path + ".data")
    if len(data) != head.rows * head.cols:
        _fail(errors.ELENGTH, path + ".data",
              f"{len(data)} floats, {head.rows} x {head.cols} expected", E)
    return b"".join((b"\x93\xce", struct.pack(">I", head.rows), b"\xce",
                     struct.pack(">I", head.cols), b"\xc6", struct.pack(">I", 4 * len(data)),
                     tensors.encode(data)))


def _as_terms(terms, path):
    out = []
    for i, t in enumerate(terms):
        if not isinstance(t, Rank1):
            _fail(errors.EFIELDTYPE, f"{path}[{i}]", f"{t!r} is not a Rank1", errors.EncodeError)
        out.append(Rank1(t.matrix, t.k, t.score, tensors.as_floats(t.b, f"{path}[{i}].b"),
                         tensors.as_floats(t.a, f"{path}[{i}].a")))
    return out


def encode(msg):
    """The frames (a list of bytes) of msg, written as this library's minor (2.1), or
    EncodeError when a peer would refuse the message."""
    if type(msg) not in CLASSES.values():
        _fail(errors.EUNKNOWN, "header.type", f"cannot encode {type(msg).__name__}",
              errors.EncodeError)
    name, specs = FIELDS[msg.TYPE]
    if msg.TYPE in BULK:
        # Floats as float32 arrays once, so checks and frames see the same values.
        msg = _copy_bulk(msg, name)
    header = [F.MAJOR, F.MINOR, msg.TYPE] + [_header_value(msg, name, s) for s in specs]
    _check_message(msg, F.MINOR, errors.EncodeError)
    # LOG_EVENT field values are float 64; every other float of a header is float 32.
    packer = msgpack.Packer(use_bin_type=True, use_single_float=msg.TYPE != F.LOG_EVENT)
    frame0 = packer.pack(header)
    if len(frame0) > F.MAX_HEADER:
        _fail(errors.ECAP, name, f"header of {len(frame0)} bytes exceeds the cap of "
              f"{F.MAX_HEADER}", errors.EncodeError)
    frames = [frame0]
    if msg.TYPE in BULK:
        frames += [encode_rank1(t, False, f"{name}.component[{i}]")
                   for i, t in enumerate(msg.components)]
        if BULK[msg.TYPE][1]:
            frames += [encode_rank1(t, True, f"{name}.merged[{i}]")
                       for i, t in enumerate(msg.merged)]
        frames.append(encode_head(msg.head, f"{name}.head"))
        total = sum(len(f) for f in frames)
        if total > F.MAX_BYTES:
            _fail(errors.ECAP, name, f"message of {total} bytes exceeds {F.MAX_BYTES}",
                  errors.EncodeError)
    return frames


def _copy_bulk(msg, name):
    out = copy.copy(msg)
    out.components = _as_terms(msg.components, f"{name}.component")
    if BULK[msg.TYPE][1]:
        out.merged = _as_terms(msg.merged, f"{name}.merged")
    if not isinstance(msg.head, Head):
        _fail(errors.EFIELDTYPE, f"{name}.head", f"{msg.head!r} is not a Head", errors.EncodeError)
    return out
