"""A strict, bounds-checked MessagePack pull reader over one frame.

Every length or count is checked against the bytes that remain before anything is sliced or
allocated, so a declared length of 4 GiB in a 10-byte frame is ETRUNCATED at once. The reader
only classifies values; the codec applies the field rules of PROTOCOL.md on top. As in the
specification, an int 8/16/32/64 holding a value >= 0 reads as an unsigned integer, and the
byte 0xc1 is not MessagePack.
"""

import struct

from . import errors
from .protocol import MAX_DEPTH

NIL, BOOL, UINT, INT, FLOAT, STR, BIN, ARRAY, MAP, EXT = (
    "nil", "bool", "uint", "int", "float", "str", "bin", "array", "map", "ext")


class Item:
    """One value: kind, tag byte, and value (ints, floats, bools), payload (str, bin, ext as a
    memoryview) or count (array and map elements, which follow in the stream)."""

    __slots__ = ("kind", "tag", "value", "payload", "count", "offset")

    def __init__(self, kind, tag, offset, value=None, payload=None, count=0):
        self.kind = kind
        self.tag = tag
        self.offset = offset
        self.value = value
        self.payload = payload
        self.count = count


class Reader:
    def __init__(self, data):
        view = memoryview(data)
        self.data = view if view.format == "B" and view.ndim == 1 else view.cast("B")
        self.pos = 0
        self.end = len(self.data)

    def remaining(self):
        return self.end - self.pos

    def _take(self, n, path):
        if n > self.end - self.pos:
            raise errors.DecodeError(errors.ETRUNCATED, path, "frame ends inside the value")
        start = self.pos
        self.pos += n
        return self.data[start:self.pos]

    def _int(self, n, path, signed=False):
        return int.from_bytes(self._take(n, path), "big", signed=signed)

    def next(self, path):
        """The next value's item; str/bin/ext payloads are consumed with it, array and map
        elements are not."""
        offset = self.pos
        if self.pos >= self.end:
            raise errors.DecodeError(errors.ETRUNCATED, path, "frame ends inside the value")
        tag = self.data[self.pos]
        self.pos += 1
        if tag <= 0x7F:
            return Item(UINT, tag, offset, value=tag)
        if tag >= 0xE0:
            return Item(INT, tag, offset, value=tag - 256)
        if tag <= 0x8F:
            return Item(MAP, tag, offset, count=tag & 0x0F)
        if tag <= 0x9F:
            return Item(ARRAY, tag, offset, count=tag & 0x0F)
        if tag <= 0xBF:
            return Item(STR, tag, offset, payload=self._take(tag & 0x1F, path))
        if tag == 0xC0:
            return Item(NIL, tag, offset)
        if tag == 0xC1:
            self.pos = offset
            raise errors.DecodeError(errors.EFIELDTYPE, path, "byte 0xc1 is not MessagePack")
        if tag in (0xC2, 0xC3):
            return Item(BOOL, tag, offset, value=tag == 0xC3)
        if tag in (0xC4, 0xC5, 0xC6):
            n = self._int(1 << (tag - 0xC4), path)
            return Item(BIN, tag, offset, payload=self._take(n, path))
        if tag in (0xC7, 0xC8, 0xC9):
            n = self._int(1 << (tag - 0xC7), path)
            self._take(1, path)
            return Item(EXT, tag, offset, payload=self._take(n, path))
        if tag == 0xCA:
            return Item(FLOAT, tag, offset, value=struct.unpack(">f", self._take(4, path))[0])
        if tag == 0xCB:
            return Item(FLOAT, tag, offset, value=struct.unpack(">d", self._take(8, path))[0])
        if 0xCC <= tag <= 0xCF:
            return Item(UINT, tag, offset, value=self._int(1 << (tag - 0xCC), path))
        if 0xD0 <= tag <= 0xD3:
            v = self._int(1 << (tag - 0xD0), path, signed=True)
            return Item(UINT if v >= 0 else INT, tag, offset, value=v)
        if 0xD4 <= tag <= 0xD8:
            self._take(1, path)
            return Item(EXT, tag, offset, payload=self._take(1 << (tag - 0xD4), path))
        if 0xD9 <= tag <= 0xDB:
            n = self._int(1 << (tag - 0xD9), path)
            return Item(STR, tag, offset, payload=self._take(n, path))
        if tag in (0xDC, 0xDD):
            return Item(ARRAY, tag, offset, count=self._int(2 if tag == 0xDC else 4, path))
        return Item(MAP, tag, offset, count=self._int(2 if tag == 0xDE else 4, path))

    def skip(self, path, depth=None):
        """Skip one whole value. An element nested more than depth levels inside it (32 by
        default) is ECAP. Each element takes at least one byte, so a huge declared count ends
        in ETRUNCATED; the walk is iterative, so no count or depth can exhaust the stack."""
        limit = MAX_DEPTH if depth is None else depth
        pending = [1]  # values still to read in each open array or map, outermost first
        while pending:
            if pending[-1] == 0:
                pending.pop()
                continue
            if limit - (len(pending) - 1) < 0:
                raise errors.DecodeError(errors.ECAP, path,
                                         f"extra element nests deeper than {limit}")
            pending[-1] -= 1
            item = self.next(path)
            if item.kind in (ARRAY, MAP):
                pending.append(item.count * (2 if item.kind == MAP else 1))
