"""Minimal pprof ``profile.proto`` writer/reader for lock-contention profiles.

Stdlib only, so the model has no protobuf/protoc build step.  The layout
mirrors what Go's runtime/pprof writes for ``/debug/pprof/mutex``
(``printCountCycleProfile``): sample types ("contentions","count") and
("delay","nanoseconds"), period type ("contentions","count"), period 1.

Schema: https://github.com/google/pprof/blob/main/proto/profile.proto
(package perftools.profiles).  Only the fields used here are named below.
"""
from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from typing import Iterable, Mapping

# profile.proto field numbers.
_P_SAMPLE_TYPE, _P_SAMPLE, _P_LOCATION, _P_FUNCTION, _P_STRINGS = 1, 2, 4, 5, 6
_P_TIME, _P_DURATION, _P_PERIOD_TYPE, _P_PERIOD, _P_COMMENT = 9, 10, 11, 12, 13
_P_DEFAULT_TYPE = 14
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5  # protobuf wire types
_U64 = (1 << 64) - 1


@dataclass(frozen=True)
class Sample:
    stack: tuple[str, ...]  # function names, leaf (innermost) first
    contentions: int
    delay_ns: int
    labels: tuple[tuple[str, str | int], ...] = ()


# --------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------

def _varint(n: int) -> bytes:
    # int64 fields use two's complement, so negatives become 10-byte varints.
    n &= _U64
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _int_field(field: int, n: int) -> bytes:
    return _varint(field << 3 | _VARINT) + _varint(n)


def _len_field(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | _LEN) + _varint(len(payload)) + payload


def _packed(field: int, values: Iterable[int]) -> bytes:
    # proto3 packs repeated scalars by default; pprof reads both forms.
    return _len_field(field, b"".join(_varint(v) for v in values))


class _Strings:
    """Deduplicating string table; index 0 must be the empty string."""

    def __init__(self) -> None:
        self.table: list[str] = [""]
        self._index: dict[str, int] = {"": 0}

    def __call__(self, s: str) -> int:
        if s not in self._index:
            self._index[s] = len(self.table)
            self.table.append(s)
        return self._index[s]


def encode_contention_profile(samples: Iterable[Sample], *, duration_ns: int = 0,
                              time_ns: int = 0,
                              filenames: Mapping[str, str] | None = None,
                              comments: Iterable[str] = ()) -> bytes:
    """Return a gzipped profile.proto contention profile for ``samples``."""
    filenames = filenames or {}
    strs = _Strings()
    func_ids: dict[str, int] = {}  # one Function and one Location per name,
    funcs: list[bytes] = []        # so location id == function id.
    body = bytearray()

    def value_type(typ: str, unit: str) -> bytes:
        return _int_field(1, strs(typ)) + _int_field(2, strs(unit))

    body += _len_field(_P_SAMPLE_TYPE, value_type("contentions", "count"))
    body += _len_field(_P_SAMPLE_TYPE, value_type("delay", "nanoseconds"))

    for s in samples:
        if not s.stack:
            raise ValueError("sample has an empty stack")
        if s.contentions < 0 or s.delay_ns < 0:
            raise ValueError(f"negative value in sample {s!r}")
        loc_ids = []
        for name in s.stack:
            if name not in func_ids:
                fid = func_ids[name] = len(func_ids) + 1  # ids must be nonzero
                n = strs(name)
                fn = _int_field(1, fid) + _int_field(2, n) + _int_field(3, n)
                if name in filenames:
                    fn += _int_field(4, strs(filenames[name]))
                funcs.append(fn)
            loc_ids.append(func_ids[name])
        msg = _packed(1, loc_ids) + _packed(2, (s.contentions, s.delay_ns))
        for key, val in s.labels:
            # Label: key=1, str=2, num=3.  The value field is always written
            # (even when 0) so the decoder can tell "" from 0 by presence.
            if isinstance(val, str):
                lab = _int_field(1, strs(key)) + _int_field(2, strs(val))
            elif isinstance(val, int) and not isinstance(val, bool):
                lab = _int_field(1, strs(key)) + _int_field(3, val)
            else:
                raise ValueError(f"label {key!r} must be str or int, got {val!r}")
            msg += _len_field(3, lab)
        body += _len_field(_P_SAMPLE, msg)

    for fid, fn in enumerate(funcs, start=1):
        line = _int_field(1, fid)  # Line.function_id; no line numbers known
        body += _len_field(_P_LOCATION, _int_field(1, fid) + _len_field(4, line))
        body += _len_field(_P_FUNCTION, fn)

    comment_ids = [strs(c) for c in comments]
    if time_ns:
        body += _int_field(_P_TIME, time_ns)
    if duration_ns:
        body += _int_field(_P_DURATION, duration_ns)
    body += _len_field(_P_PERIOD_TYPE, value_type("contentions", "count"))
    body += _int_field(_P_PERIOD, 1)  # values are already unsampled/scaled
    if comment_ids:
        body += _packed(_P_COMMENT, comment_ids)
    # The string table goes last because every field above adds to it.
    for text in strs.table:
        body += _len_field(_P_STRINGS, text.encode("utf-8"))
    # mtime=0 keeps the output byte-for-byte reproducible.
    return gzip.compress(bytes(body), mtime=0)


def write_contention_profile(path, samples: Iterable[Sample], **kw) -> None:
    with open(path, "wb") as f:
        f.write(encode_contention_profile(samples, **kw))


# --------------------------------------------------------------------------
# Decoding (generic wire-format parse, then interpret the fields we know)
# --------------------------------------------------------------------------

def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated or overlong varint")
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return n & _U64, pos


def _parse(buf: bytes) -> dict[int, list]:
    """Split a message into {field: [value, ...]}; varints as ints, LEN as bytes."""
    fields: dict[int, list] = {}
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ValueError("invalid field number 0")
        if wire == _VARINT:
            val, pos = _read_varint(buf, pos)
        elif wire == _LEN:
            size, pos = _read_varint(buf, pos)
            if pos + size > len(buf):
                raise ValueError("truncated length-delimited field")
            val, pos = buf[pos:pos + size], pos + size
        elif wire in (_I64, _I32):  # not used by profile.proto; skip safely
            width = 8 if wire == _I64 else 4
            if pos + width > len(buf):
                raise ValueError("truncated fixed-width field")
            val, pos = buf[pos:pos + width], pos + width
        else:
            raise ValueError(f"unsupported wire type {wire}")
        fields.setdefault(field, []).append(val)
    return fields


def _ints(fields: dict, field: int) -> list[int]:
    """Repeated int64: accept packed (bytes) and unpacked (int) entries."""
    out = []
    for v in fields.get(field, []):
        if isinstance(v, bytes):
            pos = 0
            while pos < len(v):
                n, pos = _read_varint(v, pos)
                out.append(n)
        else:
            out.append(v)
    return [n - (1 << 64) if n >> 63 else n for n in out]  # int64 sign


def _int(fields: dict, field: int) -> int:
    vals = _ints(fields, field)
    return vals[-1] if vals else 0  # proto3: last one wins, absent == 0


def decode_profile(data: bytes) -> dict:
    """Parse a (gzipped or raw) profile.proto; raise ValueError if malformed."""
    try:
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        p = _parse(data)
        strings = [b.decode("utf-8") for b in p.get(_P_STRINGS, [])]
        if not strings or strings[0] != "":
            raise ValueError('string_table[0] must be ""')

        def s(i: int) -> str:
            if not 0 <= i < len(strings):  # also stops negative indexing
                raise ValueError(f"string index {i} out of range")
            return strings[i]

        def ref(table: dict, kind: str, i: int):
            if i not in table:
                raise ValueError(f"reference to unknown {kind} id {i}")
            return table[i]

        def vt(raw: bytes) -> tuple[str, str]:
            f = _parse(raw)
            return s(_int(f, 1)), s(_int(f, 2))

        funcs = {}
        for raw in p.get(_P_FUNCTION, []):
            f = _parse(raw)
            funcs[_int(f, 1)] = s(_int(f, 2))
        locs = {}
        for raw in p.get(_P_LOCATION, []):
            f = _parse(raw)
            # Several Lines mean inlining; they are already leaf first.
            locs[_int(f, 1)] = [ref(funcs, "function", _int(_parse(ln), 1))
                                for ln in f.get(4, [])]

        samples = []
        for raw in p.get(_P_SAMPLE, []):
            f = _parse(raw)
            stack = tuple(n for lid in _ints(f, 1) for n in ref(locs, "location", lid))
            labels = {}
            for lraw in f.get(3, []):
                lab = _parse(lraw)
                key = s(_int(lab, 1))
                labels[key] = s(_int(lab, 2)) if 2 in lab else _int(lab, 3)
            samples.append({"stack": stack, "values": tuple(_ints(f, 2)),
                            "labels": labels})

        period_type = p.get(_P_PERIOD_TYPE)
        return {
            "sample_type": [vt(raw) for raw in p.get(_P_SAMPLE_TYPE, [])],
            "period_type": vt(period_type[-1]) if period_type else ("", ""),
            "period": _int(p, _P_PERIOD),
            "samples": samples,
            "string_table": strings,
            "comments": [s(i) for i in _ints(p, _P_COMMENT)],
            "duration_ns": _int(p, _P_DURATION),
            "time_nanos": _int(p, _P_TIME),
        }
    except (OSError, EOFError, zlib.error, UnicodeDecodeError,
            TypeError) as e:
        # Bad gzip, bad UTF-8, or a varint where a message was expected: all
        # mean "not a valid profile" to callers, so expose one exception type.
        raise ValueError(f"malformed profile: {e}") from e
