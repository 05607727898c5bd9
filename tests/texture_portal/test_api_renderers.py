"""The API's renderer (texture_portal/api/renderers.py): data marked PlainJSON is rendered by orjson, byte for byte
what DRF's own JSONRenderer writes; everything that would be spelled differently is kept out of it, and the
rules that decide it are checked against DRF here."""

import datetime
import math
import random
import struct
import zoneinfo

import pytest
from rest_framework import renderers

from texture_portal.api import renderers as api_renderers
from texture_portal.api.renderers import JSONRenderer, PlainJSON, plain_float

DRF = renderers.JSONRenderer()


@pytest.fixture
def orjson_calls(monkeypatch):
    calls = []
    dumps = api_renderers.orjson.dumps

    def counting_dumps(*args, **kwargs):
        calls.append(args[0])
        return dumps(*args, **kwargs)

    monkeypatch.setattr(api_renderers.orjson, "dumps", counting_dumps)
    return calls


def _both(data, accepted_media_type=None):
    return JSONRenderer().render(PlainJSON(data), accepted_media_type), DRF.render(data, accepted_media_type)


def test_every_code_point_is_escaped_as_drf_escapes_it(orjson_calls):
    code_points = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    for start in range(0, len(code_points), 4096):
        text = "".join(code_points[start : start + 4096])
        fast, drf = _both({"name": text, text[:50]: [text[-50:]]})
        assert fast == drf, f"code points from {ord(code_points[start]):#x}"
    assert orjson_calls, "the fast path was not taken"
    assert b"\\u2028" in _both({"s": "a\u2028b\u2029c"})[0]


def test_every_float_it_calls_plain_is_spelled_as_drf_spells_it():
    rng = random.Random(20261205)
    values = [0.0, -0.0, 1e-4, -1e-4, 9.999999999999999e-05, 1e16, 1e22, 1.7976931348623157e308, 5e-324, 0.1, 100.0]
    values += [struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0] for _ in range(100_000)]
    values += [rng.uniform(1, 10) * 10.0**exponent for exponent in range(-30, 30) for _ in range(300)]
    checked = unplain = 0
    for value in values:
        if not math.isfinite(value):
            assert not plain_float(value)
            continue
        if plain_float(value):
            checked += 1
            fast, drf = _both({"v": value})
            assert fast == drf, value
        else:
            unplain += 1
    assert checked > 50_000 and unplain > 1_000
    # and the rule is needed: orjson spells some of the others differently
    assert api_renderers.orjson.dumps(1e-05) == b"0.00001" and DRF.render(1e-05) == b"1e-05"


def test_times_in_utc_integers_booleans_and_nesting_are_the_same_bytes():
    for tz in (datetime.UTC, zoneinfo.ZoneInfo("UTC")):
        for microsecond in (0, 1, 100000, 345678):
            moment = datetime.datetime(2026, 7, 15, 16, 30, 12, microsecond, tzinfo=tz)
            data = {"at": moment, "n": [2**63 - 1, -(2**63), 0, True, False, None], "nested": {"a": [{"b": []}]}}
            fast, drf = _both(data)
            assert fast == drf


def test_indent_and_unmarked_data_go_to_drf(orjson_calls):
    fast, drf = _both({"a": [1, 2]}, "application/json; indent=2")
    assert fast == drf and b"\n" in fast
    assert JSONRenderer().render({"a": 1.5e-05}) == DRF.render({"a": 1.5e-05})
    assert orjson_calls == []
