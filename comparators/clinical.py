"""Clinical-fact scorer: two answers' typed facts (comparators/facts.py) aligned and compared
(comparators/align.py), counted by kind and severity; SOAP sections compared as sections."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from comparators.align import Difference, compare
from comparators.facts import Facts, extract
from comparators.scoring import Comparison, Finding, Result, Side
from comparators.text import rouge_l_f1_tokens
from comparators.tokens import normalize, tokenize

# Findings are examples for people; the metrics count everything. A long answer that drifted
# everywhere should not make a row of hundreds of findings.
MAX_FINDINGS = 25
_EXCERPT = 60  # characters of context either side of a fact
_EXCERPT_MAX = 198  # a Finding's excerpt stays under ~200 characters, ellipses included
# Longer answers are not read for facts (no clinical answer is this long; reading stays linear anyway).
MAX_CHARS = 200_000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")


@dataclass(frozen=True, slots=True)
class Clinical:
    """What the fact comparison found: every difference, most severe first; or why it could not look."""

    differences: list[Difference]
    facts_primary: int
    unscorable: str | None = None

    def count(self, kind: str, *severities: str) -> int:
        return sum(1 for d in self.differences if d.kind == kind and d.severity in severities)


def unscorable(text: str, role: str) -> str | None:
    """Why `text` cannot be read for facts, in words; None when it can."""
    if not text.strip():
        return f"the {role}'s answer is empty"
    if len(text) > MAX_CHARS:
        return f"the {role}'s answer is longer than {MAX_CHARS:,} characters"
    controls = len(_CONTROL.findall(text[:20_000]))
    if controls > max(3, len(text[:20_000]) // 100):
        return f"the {role}'s answer is not text (control or undecodable characters)"
    return None


@lru_cache(maxsize=32)
def facts_of(text: str) -> Facts:
    """Facts of one answer, remembered: the primary is compared with the candidate and the secondary
    right after. A few are enough; hundreds kept the cyclic garbage collector walking their objects
    over and over (a tenth of the worker's preparation time)."""
    return extract(text)


def compare_clinical(primary: str, other: str, role: str = "candidate") -> Clinical:
    reason = unscorable(primary, "primary") or unscorable(other, role)
    if reason is not None:
        return Clinical([], 0, reason)
    p = facts_of(primary)
    o = facts_of(other)
    return Clinical(compare(p, o), sum(1 for f in p.facts if f.slot != "status"))


def _excerpt(text: str, start: int, end: int) -> str:
    """The fact with some context, cut at word boundaries and kept under 200 characters."""
    left = max(0, start - _EXCERPT)
    right = min(len(text), end + _EXCERPT)
    while left > 0 and not text[left - 1].isspace() and start - left < _EXCERPT + 20:
        left -= 1
    while right < len(text) and not text[right].isspace() and right - end < _EXCERPT + 20:
        right += 1
    snippet = " ".join(text[left:right].split())[:_EXCERPT_MAX]
    return ("…" if left > 0 else "") + snippet + ("…" if right < len(text) else "")


def finding(d: Difference, primary: str, other: str) -> Finding:
    """A difference as a stored finding: kind "critical_contradiction", where "dose: paracetamol"."""
    return Finding(
        kind=f"{d.severity}_{d.kind}",
        where=f"{d.slot}: {d.entity}"[:200],
        primary=_excerpt(primary, *d.primary_span) if d.primary_span else "",
        other=_excerpt(other, *d.other_span) if d.other_span else "",
    )


# ---------------------------------------------------------------------------------------------
# SOAP sections
# ---------------------------------------------------------------------------------------------

_SECTION_NAMES = {
    "s": "S", "subjective": "S", "subjektif": "S",
    "o": "O", "objective": "O", "objektif": "O",
    "a": "A", "assessment": "A", "penilaian": "A", "diagnosis": "A", "impression": "A",
    "p": "P", "plan": "P", "pelan": "P", "rancangan": "P",
}  # fmt: skip
# A label starts a line (after markdown bullets, quotes, bold or heading marks). Single letters must
# be capitals followed by a colon; the words may also stand alone as a heading ("## Plan").
_LABEL = re.compile(
    r"^[ \t>#*_\-]*(?:(?P<letter>[SOAP])[ \t*_]*[:：]"
    r"|(?P<word>(?i:subjective|objective|assessment|plan|subjektif|objektif|penilaian|pelan|"
    r"rancangan|diagnosis|impression))[ \t*_]*(?:[:：\-–]|$))[ \t*_]*",
    re.MULTILINE,
)


def soap_sections(text: str) -> dict[str, str]:
    """Section letter → its text. Fewer than two distinct sections is not a SOAP note: empty."""
    norm = normalize(text)
    labels = list(_LABEL.finditer(norm))
    sections: dict[str, str] = {}
    for k, m in enumerate(labels):
        key = _SECTION_NAMES[(m["letter"] or m["word"]).lower()]
        body = norm[m.end() : labels[k + 1].start() if k + 1 < len(labels) else len(norm)].strip()
        sections[key] = f"{sections[key]}\n{body}" if key in sections else body
    return sections if len(sections) >= 2 else {}


def compare_soap(primary: str, other: str) -> Result:
    result = Result()
    p_sections, o_sections = soap_sections(primary), soap_sections(other)
    if not p_sections and not o_sections:
        return result
    keys = [k for k in "SOAP" if k in p_sections or k in o_sections]
    missing = [k for k in keys if (k in p_sections) != (k in o_sections)]
    result.metrics["soap_sections_missing"] = float(len(missing))
    result.findings.extend(
        Finding(
            "missing_section",
            k,
            _excerpt(p_sections.get(k, ""), 0, 0),
            _excerpt(o_sections.get(k, ""), 0, 0),
        )
        for k in missing
    )
    shared = [k for k in keys if k in p_sections and k in o_sections]
    if shared:
        result.metrics["soap_min_section_similarity"] = min(
            rouge_l_f1_tokens(tokenize(p_sections[k]), tokenize(o_sections[k])) for k in shared
        )
    return result


_UNIT_KEY = re.compile(
    r"^(?P<name>.*?)[_\s-]*(?P<unit>mg|mcg|ug|g|ml|units|iu|days|hours|hrs|weeks|kg|mmhg|bpm|percent|pct)$",
    re.IGNORECASE,
)


def structured_text(value: Any) -> str:
    """A JSON answer or tool calls as lines the fact extractor reads: one line per object, its fields
    as "name: value" ("drug: amoxicillin, dose: 500 mg, frequency: TDS"); a unit in the field's name
    goes after the value ("dose_mg": 500 is "dose: 500 mg")."""
    lines: list[str] = []

    def field(key: str, leaf: Any) -> str:
        shown = "" if leaf is None else str(leaf).lower() if isinstance(leaf, bool) else str(leaf)
        m = _UNIT_KEY.match(key)
        if m and m["name"] and isinstance(leaf, int | float) and not isinstance(leaf, bool):
            return f"{m['name'].replace('_', ' ')}: {shown} {m['unit']}"
        return f"{key.replace('_', ' ')}: {shown}"

    def walk(node: Any, key: str, depth: int) -> None:
        if depth > 50:
            return
        if isinstance(node, dict):
            if {"name", "arguments"} <= node.keys() and node.get("type", "function") == "function":
                lines.append(f"{node.get('name')}:")  # a tool call: its name, then its arguments
                walk(node["arguments"], "", depth + 1)
                return
            scalars = [field(str(k), v) for k, v in node.items() if not isinstance(v, dict | list)]
            if scalars:
                lines.append(", ".join(scalars))
            for k, v in node.items():
                if isinstance(v, dict | list):
                    walk(v, str(k), depth + 1)
        elif isinstance(node, list):
            if node and all(not isinstance(v, dict | list) for v in node):
                lines.append(f"{key.replace('_', ' ')}: " + ", ".join(str(v) for v in node))
            else:
                for v in node:
                    walk(v, key, depth + 1)
        elif node is not None:
            lines.append(field(key, node) if key else str(node))

    walk(value, "", 0)
    return "\n".join(lines)


def clinical_text(side: Side) -> str | None:
    """What the facts of one answer are read from: its words; a JSON answer's fields or its tool calls'
    arguments as lines (structured_text), so a dose inside `arguments` counts."""
    if side.json is None:
        return side.text
    flat = structured_text(side.json)
    if side.text is None or side.text.strip().lstrip("`").removeprefix("json").lstrip()[:1] in ("{", "["):
        return flat  # tool calls alone, or an answer that is JSON (extract.json_content parsed it)
    return f"{side.text}\n{flat}"  # words and tool calls


def score_clinical(c: Comparison) -> Result:
    """The clinical metrics (see scoring.METRICS) and the SOAP metrics when either side is a SOAP note.
    Tool calls and JSON answers are read through `clinical_text`. Nothing when either side has neither
    text nor JSON (the common scorer reports errors); `clinical_unscorable` = 1,
    with the reason as a finding, when a text cannot be read."""
    result = Result()
    primary, other = clinical_text(c.primary), clinical_text(c.other)
    if primary is None or other is None:
        return result
    found = compare_clinical(primary, other, c.role)
    if found.unscorable is not None:
        result.metrics["clinical_unscorable"] = 1.0
        result.findings.append(Finding("clinical_unscorable", "", found.unscorable, ""))
        return result
    critical = found.count("contradiction", "critical")
    result.metrics.update(
        {
            "clinical_unscorable": 0.0,
            "clinical_critical": float(critical),
            "clinical_contradictions": float(found.count("contradiction", "critical", "major", "minor")),
            "clinical_omissions": float(found.count("omission", "critical", "major")),
            "clinical_additions": float(found.count("addition", "critical", "major")),
            "fact_mismatches": float(len(found.differences)),
            "facts_primary": float(found.facts_primary),
            "negation_flips": float(
                sum(
                    1
                    for d in found.differences
                    if d.kind == "contradiction"
                    and d.slot in ("assertion", "result")
                    and {d.primary, d.other} == {"present", "absent"}
                )
            ),
            "clinical_ok": 0.0 if critical else 1.0,
        }
    )
    result.findings.extend(finding(d, primary, other) for d in found.differences)
    result.add(compare_soap(primary, other))
    del result.findings[MAX_FINDINGS:]
    return result
