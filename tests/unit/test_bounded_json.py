import json

import pytest

from crm_core.rules.bounded_json import JsonRefused, loads, nesting_depth


def test_ordinary_json_decodes() -> None:
    assert loads('{"a": [1, {"b": "[{\\"x"}], "名": "你好"}') == {"a": [1, {"b": '[{"x'}], "名": "你好"}
    assert loads(b'{"n": 9223372036854775807}') == {"n": 2**63 - 1}


def test_depth_counts_brackets_outside_strings_only() -> None:
    assert nesting_depth('{"a": "[[[[[[", "b": [[1]]}') == 3
    assert nesting_depth('"\\"[[["') == 0


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 20_000 + "]" * 20_000,
        '{"a":' * 5_000 + "1" + "}" * 5_000,
        "[" * 33 + "]" * 33,
    ],
)
def test_deep_nesting_is_refused_not_a_recursion_error(raw: str) -> None:
    with pytest.raises(JsonRefused, match="nested deeper"):
        loads(raw)


def test_integers_beyond_64_bits_are_refused() -> None:
    with pytest.raises(JsonRefused, match="too large"):
        loads(json.dumps({"conversation_id": 2**70}))
    with pytest.raises(JsonRefused):
        loads(str(-(2**64)))


def test_nul_and_lone_surrogates_are_refused_with_their_path() -> None:
    with pytest.raises(JsonRefused) as caught:
        loads('{"customer": {"names": ["ok", "a\\u0000b"]}}')
    assert caught.value.path == "customer.names[1]"
    with pytest.raises(JsonRefused):
        loads('{"x": "\\ud800"}')
    assert loads('{"x": "\\u00e9\\ud83d\\ude00"}') == {"x": "é😀"}


def test_invalid_json_and_bytes_are_refused() -> None:
    for raw in (b"\xff\xfe", "{", "NaN-ish", ""):
        with pytest.raises(JsonRefused):
            loads(raw)
