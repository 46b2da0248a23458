"""Twilio's published OpenAPI description (a subset, tests/fixtures/twilio_oai/) as JSON Schemas.

The description is OpenAPI 3.0: ``nullable`` becomes a ``null`` type here, and Twilio's own formats
(RFC 2822 dates, currencies, URI maps) are checked. Twilio answers every property of a resource
(``null`` when it has no value), so every documented property is required.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, FormatChecker

FIXTURE = Path(__file__).parents[1] / "fixtures" / "twilio_oai" / "api_v2010_subset.json"
ACCOUNT = "/2010-04-01/Accounts/{AccountSid}"
RFC2822 = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
    r"\d{2}:\d{2}:\d{2} \+0000$"
)


def _rfc2822(value: object) -> bool:
    return not isinstance(value, str) or bool(RFC2822.match(value))


def _currency(value: object) -> bool:
    return not isinstance(value, str) or bool(re.fullmatch(r"[A-Z]{3}", value))


def _phone_number(value: object) -> bool:
    return not isinstance(value, str) or bool(re.fullmatch(r"\+[1-9]\d{1,14}", value))


def _uri(value: object) -> bool:
    """An absolute http(s) URL, or the account-relative path Twilio gives its own resources."""
    if not isinstance(value, str):
        return True
    if value.startswith("/2010-04-01/"):
        return " " not in value
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _uri_map(value: object) -> bool:
    return not isinstance(value, dict) or all(
        isinstance(v, str) and v.startswith("/2010-04-01/") and v.endswith(".json") for v in value.values()
    )


NULL_UNTIL_SET = frozenset({"reason_conference_ended"})
"""Enum properties the description gives as a bare ``$ref`` (which OpenAPI 3.0 cannot mark nullable)
though Twilio answers ``null`` until they have a value: a conference not yet over has no reason."""

FORMATS = FormatChecker()
for _name, _check in {
    "date-time-rfc-2822": _rfc2822,
    "currency": _currency,
    "phone-number": _phone_number,
    "uri": _uri,
    "uri-map": _uri_map,
}.items():
    FORMATS.checks(_name)(_check)


def _schema(node: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema: nullable types, every property required."""
    if isinstance(node, list):
        return [_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _schema(v) for k, v in node.items() if k != "nullable"}
    if "$ref" in out:
        out["$ref"] = out["$ref"].replace("#/components/schemas/", "#/$defs/")
    if node.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    if "properties" in out and isinstance(out["properties"], dict):
        out["required"] = sorted(out["properties"])
        for name in NULL_UNTIL_SET & set(out["properties"]):
            out["properties"][name] = {"anyOf": [out["properties"][name], {"type": "null"}]}
    return out


@cache
def _description() -> dict[str, Any]:
    return dict(json.loads(FIXTURE.read_text(encoding="utf-8")))


def source() -> str:
    return str(_description()["info"]["x-source"])


def response_validator(path: str, method: str, status: int) -> Draft202012Validator:
    """A validator for the body of ``method path`` answering ``status`` (``path`` below the account)."""
    spec = _description()
    response = spec["paths"][f"{ACCOUNT}/{path}"][method.lower()]["responses"][str(status)]
    schema = _schema(response["content"]["application/json"]["schema"])
    schema["$defs"] = _schema(spec["components"]["schemas"])
    return Draft202012Validator(schema, format_checker=FORMATS)


def mismatches(body: Any, path: str, method: str, status: int) -> list[str]:
    """Where ``body`` breaks the operation's response schema, one line each (empty: it conforms)."""
    validator = response_validator(path, method, status)
    return sorted(
        f"{'/'.join(map(str, error.absolute_path)) or '<body>'}: {error.message}"
        for error in validator.iter_errors(body)
    )
