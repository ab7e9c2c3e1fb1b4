"""``reconciler.jsontext.loads``: JSON from outside, with ``ValueError`` as its only failure."""

from __future__ import annotations

import pytest

from reconciler import jsontext


def test_json_is_read_as_json_loads_reads_it() -> None:
    assert jsontext.loads(b'{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}
    assert jsontext.loads(bytearray(b"[]")) == []
    assert jsontext.loads("[" * 500 + "]" * 500) is not None  # deep, but readable


@pytest.mark.parametrize("text", ["[" * 100_000, "[" * 100_000 + "]" * 100_000,
                                  '{"a":' * 100_000])
def test_runaway_nesting_is_a_value_error(text: str) -> None:
    with pytest.raises(jsontext.TooDeep, match=r"^nested too deep to read$"):
        jsontext.loads(text)
    assert issubclass(jsontext.TooDeep, ValueError)


def test_other_garbage_is_a_value_error() -> None:
    for text in ("{", "", "nan?", b"\xff\xfe"):
        with pytest.raises(ValueError):
            jsontext.loads(text)
