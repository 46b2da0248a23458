from crm_core.rules.storable_text import (
    first_unstorable_path,
    has_unstorable,
    storable,
    storable_json,
    storable_or_none,
)


def test_nul_is_dropped_and_lone_surrogates_replaced() -> None:
    assert storable("nul\x00subject") == "nulsubject"
    assert storable("a\udcff b") == "a\ufffd b"
    assert storable("你好 plain") == "你好 plain"
    assert storable_or_none(None) is None


def test_the_result_encodes_as_utf8_without_nul() -> None:
    cleaned = storable("x\x00\ud800y\udfff")
    assert "\x00" not in cleaned
    cleaned.encode("utf-8")  # would raise on a surrogate


def test_json_values_and_keys_are_cleaned() -> None:
    value = {"Caller\x00Name": ["a\x00", {"b": "\ud800"}], "n": 3, "ok": None}
    assert storable_json(value) == {"CallerName": ["a", {"b": "\ufffd"}], "n": 3, "ok": None}


def test_first_unstorable_path_names_the_field() -> None:
    assert first_unstorable_path({"a": [1, {"b": "x\x00"}]}) == "a[1].b"
    assert first_unstorable_path({"a\x00": 1}) == "a\x00"
    assert first_unstorable_path("\x00") == "$"
    assert first_unstorable_path({"a": "fine"}) is None
    assert has_unstorable("\x00") and not has_unstorable("fine")
