import gzip
import os
import re
import shutil
import subprocess

import pytest

from goruntime.cmd.pprof import (
    Sample,
    _int_field,
    _len_field,
    _parse,
    decode_profile,
    encode_contention_profile,
    write_contention_profile,
)

CACHE_SPAN = "runtime.(*mcentral).cacheSpan"
REFILL = "runtime.(*mcache).refill"
MALLOCGC = "runtime.mallocgc"
GROW = "runtime.(*mcentral).grow"
HEAP_ALLOC = "runtime.(*mheap).alloc"

SAMPLES = [
    Sample((CACHE_SPAN, REFILL, MALLOCGC), contentions=3, delay_ns=3_000_000,
           labels=(("lock", "mcentral"), ("sizeclass", 5))),
    Sample((HEAP_ALLOC, GROW, CACHE_SPAN, REFILL, MALLOCGC), contentions=2,
           delay_ns=7_000_000, labels=(("lock", "mheap"), ("p", 0))),
]
FILENAMES = {CACHE_SPAN: "runtime/mcentral.go", GROW: "runtime/mcentral.go",
             MALLOCGC: "runtime/malloc.go"}


def _raw_message(data):
    return _parse(gzip.decompress(data))


def test_roundtrip_values_stacks_labels():
    prof = decode_profile(encode_contention_profile(SAMPLES))
    assert [s["stack"] for s in prof["samples"]] == [s.stack for s in SAMPLES]
    assert [s["values"] for s in prof["samples"]] == [(3, 3_000_000), (2, 7_000_000)]
    assert prof["samples"][0]["labels"] == {"lock": "mcentral", "sizeclass": 5}
    assert prof["samples"][1]["labels"] == {"lock": "mheap", "p": 0}


def test_header_fields():
    data = encode_contention_profile(SAMPLES, duration_ns=10**9,
                                     time_ns=1_700_000_000 * 10**9,
                                     comments=("model run", "seed=1"))
    prof = decode_profile(data)
    assert prof["sample_type"] == [("contentions", "count"), ("delay", "nanoseconds")]
    assert prof["period_type"] == ("contentions", "count")
    assert prof["period"] == 1
    assert prof["duration_ns"] == 10**9
    assert prof["time_nanos"] == 1_700_000_000 * 10**9
    assert prof["comments"] == ["model run", "seed=1"]


def test_label_edge_values():
    # int labels (zero, negative, large) go to Label.num; "" stays a string.
    labels = (("zero", 0), ("neg", -7), ("big", 2**62), ("empty", ""), ("s", "x"))
    prof = decode_profile(encode_contention_profile([Sample(("f",), 1, 1, labels)]))
    assert prof["samples"][0]["labels"] == dict(labels)


def test_string_and_function_dedup():
    data = encode_contention_profile(SAMPLES, filenames=FILENAMES)
    prof = decode_profile(data)
    table = prof["string_table"]
    assert table[0] == ""
    assert len(table) == len(set(table))
    for s in ("contentions", "count", "delay", "nanoseconds", CACHE_SPAN,
              "lock", "mcentral", "runtime/mcentral.go", "runtime/malloc.go"):
        assert table.count(s) == 1
    # One Function and one Location per distinct function name.
    raw = _raw_message(data)
    names = {n for s in SAMPLES for n in s.stack}
    assert len(raw[5]) == len(names)  # Profile.function
    assert len(raw[4]) == len(names)  # Profile.location
    assert 3 not in raw  # no mappings
    files = {table[_parse(fn)[2][0]]: table[_parse(fn).get(4, [0])[0]] for fn in raw[5]}
    assert files[CACHE_SPAN] == "runtime/mcentral.go"
    assert files[MALLOCGC] == "runtime/malloc.go"
    assert files[REFILL] == ""  # not in the mapping: filename unset


def test_empty_profile_and_write(tmp_path):
    path = tmp_path / "empty.pb.gz"
    write_contention_profile(path, [])
    prof = decode_profile(path.read_bytes())
    assert prof["samples"] == [] and prof["string_table"][0] == ""
    assert encode_contention_profile(SAMPLES) == encode_contention_profile(SAMPLES)


def test_decoder_accepts_unpacked_and_uncompressed():
    # Hand-built profile: unpacked location_id/value, not gzipped.
    strings = ["", "contentions", "count", "delay", "nanoseconds", "f", "g"]
    vt = lambda t, u: _int_field(1, t) + _int_field(2, u)
    body = _len_field(1, vt(1, 2)) + _len_field(1, vt(3, 4))
    body += _len_field(2, _int_field(1, 1) + _int_field(1, 2)
                       + _int_field(2, 4) + _int_field(2, 400))
    for fid, name in ((1, 5), (2, 6)):
        body += _len_field(4, _int_field(1, fid) + _len_field(4, _int_field(1, fid)))
        body += _len_field(5, _int_field(1, fid) + _int_field(2, name))
    body += _int_field(13, 5)  # unpacked comment
    body += b"".join(_len_field(6, s.encode()) for s in strings)
    prof = decode_profile(body)
    assert prof["samples"] == [{"stack": ("f", "g"), "values": (4, 400), "labels": {}}]
    assert prof["comments"] == ["f"]


MALFORMED = {
    "empty": b"",                                               # no string table
    "not-protobuf": b"not a profile",                           # bad wire type
    "truncated-varint": gzip.compress(b"\xff\xff\xff"),
    "truncated-gzip": encode_contention_profile(SAMPLES)[:-10],
    "truncated-proto": gzip.compress(
        gzip.decompress(encode_contention_profile(SAMPLES))[:-3]),
    "string0-not-empty": _len_field(6, b"x"),
    "string-index-range": _len_field(6, b"") + _len_field(1, _int_field(1, 9)),
    "dangling-location": _len_field(6, b"") + _len_field(2, _int_field(1, 1)),
    "varint-not-message": _len_field(6, b"") + _int_field(11, 1),
    "bad-utf8": _len_field(6, b"\xff"),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_decoder_rejects_malformed(data):
    with pytest.raises(ValueError):
        decode_profile(data)


@pytest.mark.parametrize("sample", [
    Sample((), 1, 1),
    Sample(("f",), -1, 1),
    Sample(("f",), 1, 1, (("flag", True),)),
    Sample(("f",), 1, 1, (("x", 1.5),)),
])
def test_encoder_rejects_bad_samples(sample):
    with pytest.raises(ValueError):
        encode_contention_profile([sample])


def _pprof_top(path, tmp_path, *extra):
    env = dict(os.environ, HOME=str(tmp_path), GOCACHE=str(tmp_path / "gocache"),
               PPROF_TMPDIR=str(tmp_path))
    out = subprocess.run(["go", "tool", "pprof", "-top", "-symbolize=none", *extra,
                          str(path)], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    # Rows look like: "  3ms 30.00%   100%  10ms   100%  runtime.(*mcentral).cacheSpan"
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\s*(\S+)\s+\S+%\s+\S+%\s+(\S+)\s+\S+%\s+(.+?)\s*$", line)
        if m:
            rows[m.group(3)] = (m.group(1), m.group(2))
    return text, rows


@pytest.mark.skipif(shutil.which("go") is None, reason="go not on PATH")
def test_go_tool_pprof_reads_profile(tmp_path):
    path = tmp_path / "mutex.pb.gz"
    write_contention_profile(path, SAMPLES, duration_ns=10**9, filenames=FILENAMES)

    text, rows = _pprof_top(path, tmp_path)  # default: last type, delay
    assert "Type: delay" in text
    assert "Showing nodes accounting for 10ms, 100% of 10ms total" in text
    assert rows[HEAP_ALLOC] == ("7ms", "7ms")
    assert rows[CACHE_SPAN] == ("3ms", "10ms")
    assert rows[GROW] == ("0", "7ms")
    assert rows[REFILL] == rows[MALLOCGC] == ("0", "10ms")

    text, rows = _pprof_top(path, tmp_path, "-sample_index=contentions")
    assert "Type: contentions" in text
    assert "Showing nodes accounting for 5, 100% of 5 total" in text
    assert rows[CACHE_SPAN] == ("3", "5")
    assert rows[HEAP_ALLOC] == ("2", "2")
    assert rows[GROW] == ("0", "2")
    assert rows[REFILL] == rows[MALLOCGC] == ("0", "5")
