"""Two answers' clinical facts aligned entity by entity (drug with drug, vital with vital, finding with
finding, body site with body site) and their differences as records with a kind, a slot and a severity.

Severity says what a difference can do to a patient (docs/CLINICAL.md has the table and the reasons):
- critical: another drug, dose, route or frequency; an allergy changed; another side or body site; a
  finding present on one side and absent on the other (or the family's instead of the patient's); a test
  result or a measured value changed; a medication stopped on one side only;
- major: duration, timing, dispensed quantity, follow-up, allergy reaction, present vs possible, a
  condition vs present ("return if chest pain" / "has chest pain"); a prescribed drug or an allergy left
  out or added;
- minor: what one side says and the other leaves unsaid where it rarely matters (a route not written, a
  vital not repeated), a past condition written as current.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import lru_cache
from typing import Literal

from comparators.facts import Fact, Facts, span_mask
from comparators.lexicon import load

DiffKind = Literal["contradiction", "omission", "addition"]
Severity = Literal["critical", "major", "minor"]
SEVERITIES: tuple[Severity, ...] = ("critical", "major", "minor")


@dataclass(frozen=True, slots=True)
class Difference:
    kind: DiffKind
    slot: str  # drug, dose, route, frequency, timing, duration, quantity, status, allergy, reaction,
    #          assertion, result, value, side, site, followup
    severity: Severity
    entity: str  # what it is about: a drug, a vital, a finding, a body site, "allergy"
    primary: str  # the primary's normalized value(s), "" for an addition
    other: str  # the other side's, "" for an omission
    primary_span: tuple[int, int] | None  # characters of the original text
    other_span: tuple[int, int] | None


_MEDICATION_SLOTS: dict[str, Severity] = {
    "status": "critical", "dose": "critical", "route": "critical", "frequency": "critical",
    "duration": "major", "timing": "major", "quantity": "major", "max dose": "major",
}  # fmt: skip


def compare(p: Facts, o: Facts) -> list[Difference]:
    """Every difference between the primary's facts and the other side's, most severe first."""
    by_kind_p = _by_kind(p.facts)
    by_kind_o = _by_kind(o.facts)
    out: list[Difference] = []
    out += _medications(by_kind_p["medication"], by_kind_o["medication"])
    out += _allergies(by_kind_p["allergy"], by_kind_o["allergy"])
    out += _simple(by_kind_p["measure"], by_kind_o["measure"], "critical", "minor")
    out += _simple(by_kind_p["followup"], by_kind_o["followup"], "major", "minor")
    out += _simple(by_kind_p["quantity"], by_kind_o["quantity"], "major", "minor")
    out += _laterality(by_kind_p["laterality"], by_kind_o["laterality"])
    out += _findings(p, o)
    unique: dict[tuple[str, str, tuple[int, int] | None, tuple[int, int] | None], Difference] = {}
    for d in out:
        unique.setdefault((d.kind, d.slot, d.primary_span, d.other_span), d)
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    return sorted(unique.values(), key=lambda d: (rank[d.severity], d.kind != "contradiction"))


def _by_kind(facts: Iterable[Fact]) -> defaultdict[str, list[Fact]]:
    out: defaultdict[str, list[Fact]] = defaultdict(list)
    for f in facts:
        out[f.kind].append(f)
    return out


def _by_entity(facts: Iterable[Fact]) -> dict[str, list[Fact]]:
    out: dict[str, list[Fact]] = {}
    for f in facts:
        out.setdefault(f.entity, []).append(f)
    return out


def _by_slot(facts: Iterable[Fact]) -> dict[str, list[Fact]]:
    out: dict[str, list[Fact]] = {}
    for f in facts:
        out.setdefault(f.slot, []).append(f)
    return out


def _span(f: Fact | None) -> tuple[int, int] | None:
    return None if f is None or f.start < 0 else (f.start, f.end)


def _values(facts: list[Fact]) -> str:
    return ", ".join(sorted({f"{f.value} {f.unit}".strip() for f in facts}))


def _contrast(slot: str, severity: Severity, entity: str, p: list[Fact], o: list[Fact]) -> Difference | None:
    """A contradiction when both sides say something of this slot and not the same thing."""
    p_values = {(f.value, f.unit) for f in p}
    o_values = {(f.value, f.unit) for f in o}
    if p_values == o_values:
        return None
    p_first = next((f for f in p if (f.value, f.unit) not in o_values), p[0])
    o_first = next((f for f in o if (f.value, f.unit) not in p_values), o[0])
    return Difference(
        "contradiction", slot, severity, entity, _values(p), _values(o), _span(p_first), _span(o_first)
    )


def _one_sided(slot: str, severity: Severity, entity: str, p: list[Fact], o: list[Fact]) -> Difference:
    if p:
        return Difference("omission", slot, severity, entity, _values(p), "", _span(p[0]), None)
    return Difference("addition", slot, severity, entity, "", _values(o), None, _span(o[0]))


_MASS_UNITS = frozenset(("mg", "ml", "units", "mmol", "meq"))


@lru_cache(maxsize=4096)
def _parse(value: str) -> Fraction | None:
    """A value as a number; None when it is none ("1-2", "3/day"). Remembered: the same few values recur."""
    try:
        return Fraction(value)
    except (ValueError, ZeroDivisionError):
        return None


def _amounts(facts: list[Fact], unit: str) -> set[Fraction]:
    """What one administration gives in `unit`: the strength times the count when both are written
    ("500 mg, 2 tablets" is 1000 mg), or as written ("1 g")."""
    masses = {v for f in facts if f.unit == unit and (v := _parse(f.value)) is not None}
    counts = {v for f in facts if f.unit not in _MASS_UNITS and "/" not in f.unit and (v := _parse(f.value))}
    if len(counts) > 1:
        counts.discard(Fraction(1))  # "6 biji (5 mg sebiji)": the one names the strength's unit
    if not counts:
        return masses
    products = {m * c for m in masses for c in counts}
    return (products & masses) or products


def _doses(entity: str, p: list[Fact], o: list[Fact]) -> list[Difference]:
    """Doses compared within a unit (mass with mass, tablets with tablets). Two ways of writing one
    administered amount agree: "500 mg, 2 tablets" = "1 g"; "100 mg, 1/2 tablet" = "50 mg"."""
    out: list[Difference] = []
    agreed = False
    for unit in sorted({f.unit for f in p} & {f.unit for f in o}):
        pu = [f for f in p if f.unit == unit]
        ou = [f for f in o if f.unit == unit]
        if unit in _MASS_UNITS:
            p_masses, o_masses = {_parse(f.value) for f in pu}, {_parse(f.value) for f in ou}
            p_amounts, o_amounts = _amounts(p, unit), _amounts(o, unit)
            # "200 mcg (2 puffs)" = "2 puffs of 100 mcg": a total on one side, a strength on the other.
            same = p_masses == o_masses or p_amounts in (o_amounts, o_masses) or o_amounts == p_masses
            agreed = agreed or (same and p_masses != o_masses)
            if not same:
                d = _contrast("dose", "critical", entity, pu, ou)
                if d is not None:
                    out.append(d)
        elif "/" in unit:  # per kg, per day: compared as written
            d = _contrast("dose", "critical", entity, pu, ou)
            if d is not None:
                out.append(d)
    for unit in sorted({f.unit for f in p} & {f.unit for f in o}):
        if unit not in _MASS_UNITS and "/" not in unit and not agreed:
            d = _contrast(
                "dose", "critical", entity, [f for f in p if f.unit == unit], [f for f in o if f.unit == unit]
            )
            if d is not None:
                out.append(d)
    p_mass = {f.unit for f in p if f.unit in _MASS_UNITS}
    o_mass = {f.unit for f in o if f.unit in _MASS_UNITS}
    if p_mass and o_mass and not p_mass & o_mass:  # "10 units" → "10 ml": the unit changed the amount
        pu = [f for f in p if f.unit in p_mass]
        ou = [f for f in o if f.unit in o_mass]
        out.append(
            Difference(
                "contradiction",
                "dose",
                "critical",
                entity,
                _values(pu),
                _values(ou),
                _span(pu[0]),
                _span(ou[0]),
            )
        )
    p_only = [f for f in p if f.unit not in {g.unit for g in o}]
    o_only = [f for f in o if f.unit not in {g.unit for g in p}]
    if (p_only or o_only) and not out and not (p and o):
        out.append(_one_sided("dose", "minor", entity, p_only, o_only))
    return out


def _slots(
    entity: str, p: list[Fact], o: list[Fact], severities: dict[str, Severity], missing: Severity
) -> list[Difference]:
    """Slot by slot for one entity both sides name. Doses are compared within a dimension (mass with
    mass, tablets with tablets): "1 g" against "2 tablets" is unsaid on each side, not a contradiction."""
    out: list[Difference] = []
    p_slots, o_slots = _by_slot(p), _by_slot(o)
    for slot, severity in severities.items():
        ps = p_slots.get(slot, [])
        os_ = o_slots.get(slot, [])
        if slot == "dose":
            out += _doses(entity, ps, os_)
        elif ps and os_:
            d = _contrast_some(slot, severity, entity, ps, os_)
            if d is not None:
                out.append(d)
        elif ps or os_:
            out.append(_one_sided(slot, missing if slot == "status" else "minor", entity, ps, os_))
    return out


# Slots a text may state more than once for other reasons (a symptom's duration near a drug's, two
# follow-ups): as many on each side are compared in order; otherwise values in common mean agreement
# on the one that matters, and the rest is minor ("next review 3/12" and "review at 6 weeks ... 3 months").
_SUBSET_SLOTS = frozenset(("duration", "followup", "timing", "route", "value"))


def _contrast_some(
    slot: str, severity: Severity, entity: str, p: list[Fact], o: list[Fact]
) -> Difference | None:
    d = _contrast(slot, severity, entity, p, o)
    if d is None or slot not in _SUBSET_SLOTS:
        return d
    if len(p) == len(o):
        a, b = next((a, b) for a, b in zip(p, o, strict=True) if (a.value, a.unit) != (b.value, b.unit))
        return replace(d, primary_span=_span(a), other_span=_span(b))
    if {f.value for f in p} & {f.value for f in o}:
        return replace(d, severity="minor")
    return d


def _medications(p: list[Fact], o: list[Fact]) -> list[Difference]:
    pe, oe = _by_entity(p), _by_entity(o)
    out: list[Difference] = []
    for entity in sorted(pe.keys() & oe.keys()):
        found = _slots(entity, pe[entity], oe[entity], _MEDICATION_SLOTS, "critical")
        status_p = {f.value for f in pe[entity] if f.slot == "status"}
        status_o = {f.value for f in oe[entity] if f.slot == "status"}
        if status_p & status_o:  # stopped in one place and given in another, on both sides
            found = [d for d in found if d.slot != "status"]
        out += found
    only_p = [e for e in pe if e not in oe]
    only_o = [e for e in oe if e not in pe]
    # A drug one side names where the other names another, with the same dose, frequency or place in
    # the list, was replaced: a contradiction of the drug, not an omission and an addition.
    order_p = {e: i for i, e in enumerate(dict.fromkeys(f.entity for f in p))}
    order_o = {e: i for i, e in enumerate(dict.fromkeys(f.entity for f in o))}
    pairs: list[tuple[int, str, str]] = []
    one_for_one = len(only_p) == len(only_o)
    for a in only_p:
        for b in only_o:
            shared = {(f.slot, f.value, f.unit) for f in pe[a] if f.slot not in ("drug", "status")} & {
                (f.slot, f.value, f.unit) for f in oe[b] if f.slot not in ("drug", "status")
            }
            same_dose = any(slot == "dose" for slot, _, _ in shared)
            same_place = one_for_one and order_p[a] == order_o[b]
            if same_dose or same_place:
                pairs.append((len(shared) + same_place, a, b))
    used_p: set[str] = set()
    used_o: set[str] = set()
    for _, a, b in sorted(pairs, reverse=True):
        if a in used_p or b in used_o:
            continue
        used_p.add(a)
        used_o.add(b)
        pd = next(f for f in pe[a] if f.slot == "drug")
        od = next(f for f in oe[b] if f.slot == "drug")
        out.append(Difference("contradiction", "drug", "critical", a, a, b, _span(pd), _span(od)))
    for a in only_p:
        if a not in used_p:
            pd = next(f for f in pe[a] if f.slot == "drug")
            out.append(Difference("omission", "drug", "major", a, a, "", _span(pd), None))
    for b in only_o:
        if b not in used_o:
            od = next(f for f in oe[b] if f.slot == "drug")
            out.append(Difference("addition", "drug", "major", b, "", b, None, _span(od)))
    return out


def _allergies(p: list[Fact], o: list[Fact]) -> list[Difference]:
    out: list[Difference] = []
    for slot, severity, missing in (("allergy", "critical", "major"), ("reaction", "major", "minor")):
        ps = [f for f in p if f.slot == slot]
        os_ = [f for f in o if f.slot == slot]
        if ps and os_:
            d = _contrast(slot, severity, "allergy", ps, os_)  # type: ignore[arg-type]
            if d is not None:
                out.append(d)
        elif ps or os_:
            out.append(_one_sided(slot, missing, "allergy", ps, os_))  # type: ignore[arg-type]
    return out


def _simple(p: list[Fact], o: list[Fact], severity: Severity, missing: Severity) -> list[Difference]:
    pe, oe = _by_entity(p), _by_entity(o)
    out: list[Difference] = []
    for entity in sorted(pe.keys() | oe.keys()):
        ps, os_ = pe.get(entity, []), oe.get(entity, [])
        slot = (ps or os_)[0].slot
        if ps and os_:
            d = _contrast_some(slot, severity, entity, ps, os_)
            if d is not None:
                out.append(d)
        else:
            out.append(_one_sided(slot, missing, entity, ps, os_))
    return out


def _laterality(p: list[Fact], o: list[Fact]) -> list[Difference]:
    """Sides compared per site. A side written without a site ("on the left", "right side") matches
    the same side anywhere; two listed sites left over, one a side, are another site (or side)."""
    pe, oe = _by_entity(p), _by_entity(o)
    out: list[Difference] = []
    for site in sorted(pe.keys() & oe.keys() - _ANY_SITE):  # sorted: the same order in every process
        d = _contrast("side", "critical", site or "side", pe[site], oe[site])
        if d is not None:
            out.append(d)
    # A site named more often on one side: its extra mentions may be another site on the other
    # ("NSAID gel to R heel" → "to R knee").
    rest_p = [f for e, fs in pe.items() for f in (fs if e not in oe or e in _ANY_SITE else fs[len(oe[e]) :])]
    rest_o = [f for e, fs in oe.items() for f in (fs if e not in pe or e in _ANY_SITE else fs[len(pe[e]) :])]
    for facts, others in ((rest_p, rest_o), (rest_o, rest_p)):
        unplaced = [f for f in facts if f.entity in _ANY_SITE]
        facts[:] = [f for f in facts if f.entity not in _ANY_SITE]
        wanted = Counter(f.value for f in unplaced)
        kept = []
        for g in others:  # each unplaced side takes one mention of the same side elsewhere
            if wanted[g.value] > 0 and g.entity not in _ANY_SITE:
                wanted[g.value] -= 1
            else:
                kept.append(g)
        others[:] = kept
    sites = load().keys("sites")
    listed_p = [f for f in rest_p if f.entity in sites]
    listed_o = [f for f in rest_o if f.entity in sites]
    for a, b in zip(listed_p, listed_o, strict=False):
        slot = "site" if a.value == b.value else "side"
        entity = f"{a.entity} → {b.entity}" if slot == "site" else a.entity
        out.append(
            Difference(
                "contradiction",
                slot,
                "critical",
                entity,
                f"{a.value} {a.entity}",
                f"{b.value} {b.entity}",
                _span(a),
                _span(b),
            )
        )
    return out


_ANY_SITE = frozenset(("", "side"))


def _overlaps(span: tuple[int, int], mask: bytearray) -> bool:
    return mask.find(1, span[0], span[1]) != -1


def assertion_severity(a: str, b: str) -> Severity:
    pair = {a, b}
    if pair in ({"present", "absent"}, {"historical", "absent"}):
        return "critical"
    # "return if chest pain" against "has chest pain": major, as the scope of a condition is read less
    # surely than a negation's.
    if pair == {"hypothetical", "present"}:
        return "major"
    if "family" in pair and pair & {"present", "historical"}:
        return "critical"
    if "possible" in pair and pair & {"present", "absent"}:
        return "major"
    return "minor"


def _findings(p: Facts, o: Facts) -> list[Difference]:
    """A finding changes when a state one side gives it more often is given less often by the other
    and another state the other way round: counting mentions, so a finding repeated in another state
    on both sides ("no fever ... return if fever") neither hides a change nor makes one."""
    out: list[Difference] = []
    p_mentions = p.mentions()
    o_mentions = o.mentions()
    listed = p_mentions.keys() | o_mentions.keys()  # before phrases: a listed finding keeps its name
    p_spans = span_mask(len(p.text.original), [span for ms in p_mentions.values() for _, span, _ in ms])
    o_spans = span_mask(len(o.text.original), [span for ms in o_mentions.values() for _, span, _ in ms])
    for phrase in dict.fromkeys(ph for ph, _ in [*p.phrases, *o.phrases]):
        concept = " ".join(phrase)
        if concept not in p_mentions and concept not in o_mentions:
            # Where a listed finding or test stands, it speaks for itself ("Dengue NS1" is NS1).
            p_mentions[concept] = [m for m in p.occurrences(phrase) if not _overlaps(m[1], p_spans)]
            o_mentions[concept] = [m for m in o.occurrences(phrase) if not _overlaps(m[1], o_spans)]
    ordered = sorted(k for k in p_mentions.keys() & o_mentions.keys() if p_mentions[k] and o_mentions[k])
    for concept in sorted(ordered, key=lambda k: k not in listed):
        pm, om = p_mentions[concept], o_mentions[concept]
        p_states = [s for s, _, _ in pm]
        o_states = [s for s, _, _ in om]
        more_p = [s for s in dict.fromkeys(p_states) if p_states.count(s) > o_states.count(s)]
        more_o = [s for s in dict.fromkeys(o_states) if o_states.count(s) > p_states.count(s)]
        if not more_p or not more_o:
            continue
        a, b = max(
            ((x, y) for x in more_p for y in more_o),
            key=lambda xy: -SEVERITIES.index(assertion_severity(*xy)),
        )
        slot = pm[0][2]
        pa = next(span for s, span, _ in pm if s == a)
        ob = next(span for s, span, _ in om if s == b)
        out.append(Difference("contradiction", slot, assertion_severity(a, b), concept, a, b, pa, ob))
    return out
