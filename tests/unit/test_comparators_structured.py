"""Structured scorer: JSON differences by field path, one kind at a time."""

import json
from typing import Any

from comparators.scoring import METRICS, Comparison, Side
from comparators.structured import diff, json_type, score_structured


def side(payload: Any, error: str | None = None) -> Side:
    return Side(status=200, error=error, total_ms=100.0, ttfb_ms=None, model="m", json=payload)


def score(primary: Any, other: Any) -> tuple[dict[str, float], list[tuple[str, str, str, str]]]:
    result = score_structured(Comparison("chat", side(primary), side(other), "candidate"))
    return result.metrics, [(f.kind, f.where, f.primary, f.other) for f in result.findings]


ARGUMENTS: dict[str, Any] = {"drug": "paracetamol", "dose_mg": 500, "times_a_day": 3, "days": 3, "prn": False}
TOOL_CALL: dict[str, Any] = {"name": "prescribe", "arguments": ARGUMENTS}


def counts(**nonzero: float) -> dict[str, float]:
    base = dict.fromkeys(
        ["json_missing", "json_extra", "json_type_changes", "json_value_changes", "json_order_changes"], 0.0
    )
    base.update(nonzero)
    base["json_differences"] = sum(nonzero.values())
    return base


def test_identical_json_has_no_differences() -> None:
    metrics, findings = score(TOOL_CALL, json.loads(json.dumps(TOOL_CALL)))
    assert metrics == counts()
    assert findings == []


def test_value_change() -> None:
    other = {**TOOL_CALL, "arguments": {**ARGUMENTS, "dose_mg": 50}}
    metrics, findings = score(TOOL_CALL, other)
    assert metrics == counts(json_value_changes=1.0)
    assert findings == [("json_value_change", "$.arguments.dose_mg", "500", "50")]


def test_missing_and_extra_fields() -> None:
    arguments = dict(ARGUMENTS)
    del arguments["prn"]
    arguments["route"] = "oral"
    metrics, findings = score(TOOL_CALL, {**TOOL_CALL, "arguments": arguments})
    assert metrics == counts(json_missing=1.0, json_extra=1.0)
    assert findings == [
        ("json_missing", "$.arguments.prn", "false", ""),
        ("json_extra", "$.arguments.route", "", '"oral"'),
    ]


def test_type_change_is_not_descended() -> None:
    other = {**TOOL_CALL, "arguments": {**ARGUMENTS, "dose_mg": "500"}}
    metrics, findings = score(TOOL_CALL, other)
    assert metrics == counts(json_type_changes=1.0)
    assert findings == [("json_type_change", "$.arguments.dose_mg", "500", '"500"')]
    assert diff({"a": {"b": 1}}, {"a": None})[0].kind == "json_type_change"


def test_json_types() -> None:
    values: tuple[Any, ...] = (None, True, 1, 1.5, "x", [], {})
    assert [json_type(v) for v in values] == [
        "null", "boolean", "number", "number", "string", "array", "object",
    ]  # fmt: skip
    assert diff(1, 1.0) == []  # one JSON number
    assert diff(True, 1)[0].kind == "json_type_change"  # a boolean is not the number 1


def test_array_order_change_is_one_difference() -> None:
    metrics, findings = score({"codes": ["J06.9", "R50.9", "R05"]}, {"codes": ["R05", "J06.9", "R50.9"]})
    assert metrics == counts(json_order_changes=1.0)
    assert findings[0][:2] == ("json_order_change", "$.codes")


def test_arrays_are_compared_by_index_otherwise() -> None:
    primary = {"meds": [{"name": "paracetamol", "mg": 500}, {"name": "cetirizine", "mg": 10}]}
    other = {"meds": [{"name": "paracetamol", "mg": 1000}, {"name": "cetirizine", "mg": 10}, {"name": "ors"}]}
    metrics, findings = score(primary, other)
    assert metrics == counts(json_value_changes=1.0, json_extra=1.0)
    assert [(kind, where) for kind, where, _, _ in findings] == [
        ("json_value_change", "$.meds[0].mg"),
        ("json_extra", "$.meds[2]"),
    ]
    assert diff([1, 2, 3], [1])[0].where == "$[1]"
    assert [f.kind for f in diff([1, 2, 3], [1])] == ["json_missing", "json_missing"]


def test_object_key_order_counts_only_with_the_same_keys() -> None:
    metrics, findings = score({"a": 1, "b": 2}, {"b": 2, "a": 1})
    assert metrics == counts(json_order_changes=1.0)
    assert findings == [("json_order_change", "$", '["a", "b"]', '["b", "a"]')]
    # with a key missing, the missing key is the difference, not the order of the rest
    assert [f.kind for f in diff({"a": 1, "b": 2, "c": 3}, {"b": 2, "a": 1})] == ["json_missing"]


def test_paths_quote_keys_that_are_not_identifiers() -> None:
    assert diff({"dose mg": 1}, {"dose mg": 2})[0].where == '$["dose mg"]'
    assert diff({"ubat": {"dos": [1, 2]}}, {"ubat": {"dos": [1, 3]}})[0].where == "$.ubat.dos[1]"


def test_tool_call_arguments_as_json_strings_are_parsed() -> None:
    primary = [{"function": {"name": "prescribe", "arguments": '{"drug": "paracetamol", "dose_mg": 500}'}}]
    same = [{"function": {"name": "prescribe", "arguments": '{"drug":"paracetamol","dose_mg":500}'}}]
    changed = [{"function": {"name": "prescribe", "arguments": '{"drug":"paracetamol","dose_mg":50}'}}]
    assert diff(primary, same) == []
    assert [f.where for f in diff(primary, changed)] == ["$[0].function.arguments.dose_mg"]


def test_one_side_without_json() -> None:
    metrics, findings = score(TOOL_CALL, None)
    assert metrics == counts(json_missing=1.0)
    assert findings[0][:2] == ("json_missing", "$")
    metrics, findings = score(None, TOOL_CALL)
    assert metrics == counts(json_extra=1.0)


def test_nothing_without_json_or_when_a_side_failed() -> None:
    assert score(None, None) == ({}, [])
    failed = score_structured(Comparison("chat", side(TOOL_CALL), side(None, error="timeout"), "candidate"))
    assert failed.metrics == {}


def test_findings_are_capped_but_counted() -> None:
    metrics, findings = score({f"k{i}": i for i in range(100)}, {f"k{i}": -i for i in range(1, 101)})
    # k1..k99 change, k0 is missing, k100 is extra
    assert metrics == counts(json_value_changes=99.0, json_missing=1.0, json_extra=1.0)
    assert len(findings) == 25
    assert set(metrics) <= set(METRICS)
