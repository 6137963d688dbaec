"""Tensors on the wire: little-endian IEEE-754 float32, 4 bytes a value, no padding, every
value finite (PROTOCOL.md section 2, `tensor`).

Values live in `array('f')` objects, which any numeric library can wrap without a copy
(`numpy.frombuffer(values, numpy.float32)`, `torch.frombuffer(values, dtype=torch.float32)`).
Finiteness is checked with one float64 sum, which is finite exactly when every float32 term is
(2^28 terms of at most 3.4e38 cannot overflow a double), so large heads cost no Python loop.
"""

import math
import sys
from array import array

from . import errors

_BIG_ENDIAN = sys.byteorder == "big"


def _first_nonfinite(values):
    for i, v in enumerate(values):
        if not math.isfinite(v):
            return i, v
    return -1, 0.0


def decode(payload, path):
    """The floats of a bin payload (bytes or memoryview) whose length is a multiple of 4, or
    DecodeError ENONFINITE naming the first bad element."""
    values = array("f")
    values.frombytes(payload)
    if _BIG_ENDIAN:
        values.byteswap()
    if not math.isfinite(sum(values)):
        i, v = _first_nonfinite(values)
        raise errors.DecodeError(errors.ENONFINITE, path, f"element {i} is {v}")
    return values


def as_floats(values, path):
    """Any sequence of numbers (or a float32 buffer) as a new array('f'), or EncodeError when a
    value is not finite in float32 (a double too large for float32 becomes inf and is caught)."""
    try:
        view = memoryview(values)
    except TypeError:
        view = None
    try:
        if view is not None and view.format in ("f", "<f", "=f") and view.itemsize == 4 \
                and not (_BIG_ENDIAN and view.format == "<f"):
            out = array("f")
            out.frombytes(view.tobytes())
        else:
            out = array("f", (float(v) for v in values))
    except (TypeError, ValueError, OverflowError) as exc:
        raise errors.EncodeError(errors.EFIELDTYPE, path, f"not a sequence of numbers: {exc}")
    if not math.isfinite(sum(out)):
        i, v = _first_nonfinite(out)
        raise errors.EncodeError(errors.ENONFINITE, path, f"element {i} is {v}")
    return out


def encode(values):
    """Little-endian bytes of an array('f') already checked by as_floats."""
    if _BIG_ENDIAN:
        values = array("f", values)
        values.byteswap()
    return values.tobytes()
