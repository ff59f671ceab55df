"""Structural diff of JSON answers and tool calls, by field path ($.a.b[2].c)."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from comparators.scoring import Comparison, Finding, Result

MAX_FINDINGS = 25  # examples for people; the metrics count every difference
_EXCERPT = 200

_KINDS = {
    "json_missing": "json_missing",
    "json_extra": "json_extra",
    "json_type_change": "json_type_changes",
    "json_value_change": "json_value_changes",
    "json_order_change": "json_order_changes",
}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def json_type(value: Any) -> str:
    """The JSON type: 1 and 1.0 are both numbers, and True is a boolean, not the number 1."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 1] + "…"


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if _IDENTIFIER.fullmatch(key) else f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def _embedded(value: Any) -> Any:
    """Tool-call arguments arrive as a JSON string; compare what they say, not their whitespace."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def diff(primary: Any, other: Any, path: str = "$") -> list[Finding]:
    """Every structural difference between two JSON values, as findings keyed by field path.

    - objects: a key only the primary has is json_missing, only the other json_extra; shared keys
      are compared in turn. Key order counts (json_order_change) only when both objects have exactly
      the same keys: clients read objects as maps, so a reorder alone is reported apart from value
      changes and the gate can weigh it as it likes, and with different keys the missing or extra
      field is the news.
    - arrays: the same members in another order (as a multiset) is one json_order_change for the
      array; otherwise elements are compared by index and a longer side's tail is missing or extra.
    - strings that both hold JSON (tool-call arguments) are parsed and compared as JSON.
    - a type change (number vs string, object vs null) is reported at that path and not descended.
    """
    primary, other = _embedded(primary), _embedded(other)
    p_type, o_type = json_type(primary), json_type(other)
    if p_type != o_type:
        return [Finding("json_type_change", path, _show(primary), _show(other))]
    if p_type == "object":
        return _diff_objects(primary, other, path)
    if p_type == "array":
        return _diff_arrays(list(primary), list(other), path)
    if primary != other:
        return [Finding("json_value_change", path, _show(primary), _show(other))]
    return []


def _diff_objects(primary: dict[str, Any], other: dict[str, Any], path: str) -> list[Finding]:
    findings = [
        Finding("json_missing", _child(path, k), _show(v), "") for k, v in primary.items() if k not in other
    ]
    findings.extend(
        Finding("json_extra", _child(path, k), "", _show(v)) for k, v in other.items() if k not in primary
    )
    for key, value in primary.items():
        if key in other:
            findings.extend(diff(value, other[key], _child(path, key)))
    if primary.keys() == other.keys() and list(primary) != list(other):
        findings.append(Finding("json_order_change", path, _show(list(primary)), _show(list(other))))
    return findings


def _diff_arrays(primary: list[Any], other: list[Any], path: str) -> list[Finding]:
    if primary == other:
        return []
    p_members = [_canonical(v) for v in primary]
    o_members = [_canonical(v) for v in other]
    if p_members != o_members and Counter(p_members) == Counter(o_members):
        return [Finding("json_order_change", path, _show(primary), _show(other))]
    findings: list[Finding] = []
    for index, (p_value, o_value) in enumerate(zip(primary, other, strict=False)):
        findings.extend(diff(p_value, o_value, f"{path}[{index}]"))
    findings.extend(
        Finding("json_missing", f"{path}[{i}]", _show(v), "")
        for i, v in enumerate(primary)
        if i >= len(other)
    )
    findings.extend(
        Finding("json_extra", f"{path}[{i}]", "", _show(v)) for i, v in enumerate(other) if i >= len(primary)
    )
    return findings


def score_structured(c: Comparison) -> Result:
    """json_differences and one count per kind, when either side answered with JSON. Nothing when
    neither did, or when a side failed (the common scorer reports errors). One side without JSON
    is a missing (or extra) root, `$`."""
    result = Result()
    if c.primary.json is None and c.other.json is None:
        return result
    if c.primary.error is not None or c.other.error is not None:
        return result
    if c.other.json is None:
        findings = [Finding("json_missing", "$", _show(c.primary.json), "")]
    elif c.primary.json is None:
        findings = [Finding("json_extra", "$", "", _show(c.other.json))]
    else:
        findings = diff(c.primary.json, c.other.json)
    counts = Counter(f.kind for f in findings)
    result.metrics["json_differences"] = float(len(findings))
    for kind, metric in _KINDS.items():
        result.metrics[metric] = float(counts[kind])
    result.findings = findings[:MAX_FINDINGS]
    return result
