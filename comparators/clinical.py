"""Clinical-fact scorer: doses and vitals with units, negation flips (English and Malay), SOAP sections."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction

from comparators.scoring import Comparison, Finding, Result
from comparators.text import rouge_l_f1_tokens
from comparators.tokens import Token, normalize, scan, tokenize

# Findings are examples for people; the metrics count everything. A long answer that drifted
# everywhere should not make a row of hundreds of findings.
MAX_FINDINGS = 25
_EXCERPT = 60  # characters of context either side of a fact or a negated finding
_EXCERPT_MAX = 198  # a Finding's excerpt stays under ~200 characters, ellipses included

# ---------------------------------------------------------------------------------------------
# Numbers with units
# ---------------------------------------------------------------------------------------------

_WORD_NUMBERS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "twelve": 12,
    "satu": 1, "dua": 2, "tiga": 3, "empat": 4, "lima": 5, "enam": 6, "tujuh": 7, "lapan": 8,
    "sembilan": 9, "sepuluh": 10,
}  # fmt: skip

# Spelling (lowercase, spaces removed) → (unit, factor to that unit). Mass and volume are compared in
# mg and ml, so "1 g" equals "1000 mg" and "0.5 g" equals "500 mg": a candidate that writes the same
# dose another way has not changed it. A week is 7 days; months and years are not converted (their
# length varies). "biji" (Malay "pieces") counts tablets, the way clinics use it.
_UNITS: dict[str, tuple[str, Fraction]] = {}  # keys have no spaces: "mm hg" and "mmhg" are one
_SPELLINGS: set[str] = set()


def _squash(spelling: str) -> str:
    return re.sub(r"\s+", "", spelling.lower())


def _unit(unit: str, factor: Fraction | int, *spellings: str) -> None:
    for spelling in spellings:
        _UNITS[_squash(spelling)] = (unit, Fraction(factor))
        _SPELLINGS.add(spelling)


_unit("mg", 1, "mg", "milligram", "milligrams", "mgs")
_unit("mg", Fraction(1, 1000), "mcg", "μg", "ug", "microgram", "micrograms")
_unit("mg", 1000, "g", "gm", "gram", "grams", "gramme", "grammes")
_unit("kg", 1, "kg", "kilogram", "kilograms", "kgs")
_unit("ml", 1, "ml", "mls", "millilitre", "millilitres", "milliliter", "milliliters", "cc")
_unit("ml", 1000, "l", "litre", "litres", "liter", "liters")
_unit("units", 1, "units", "unit", "iu", "i.u.", "unit antarabangsa")
_unit("%", 1, "%", "percent", "per cent", "peratus")
_unit("mmhg", 1, "mmhg", "mm hg")
_unit("mmol/l", 1, "mmol/l")
_unit("mg/dl", 1, "mg/dl")
_unit("/min", 1, "bpm", "/min", "per min", "per minute", "beats per minute", "beats/min",
      "breaths per minute", "breaths/min", "kali seminit", "denyutan seminit", "seminit")  # fmt: skip
_unit("°c", 1, "°c", "ºc", "° c", "degrees celsius", "degree celsius", "deg c", "darjah celsius",
      "celsius", "c")  # fmt: skip
_unit("°f", 1, "°f", "ºf", "fahrenheit")
_unit("cm", 1, "cm")
_unit("mm", 1, "mm")
_unit("tablet", 1, "tablet", "tablets", "tab", "tabs", "biji")
_unit("capsule", 1, "capsule", "capsules", "cap", "caps", "kapsul")
_unit("puff", 1, "puff", "puffs", "sedutan")
_unit("spray", 1, "spray", "sprays", "semburan")
_unit("drop", 1, "drop", "drops", "gtt", "titis", "titisan")
_unit("sachet", 1, "sachet", "sachets", "paket", "uncang")
_unit("/day", 1, "times a day", "times daily", "times per day", "times/day", "x a day", "x daily",
      "x/day", "x per day", "x sehari", "kali sehari", "kali setiap hari", "kali sehari semalam",
      "a day", "per day", "/day", "daily", "sehari")  # fmt: skip
_unit("day", 1, "day", "days", "hari", "d")
_unit("day", 7, "week", "weeks", "wk", "wks", "minggu")
_unit("month", 1, "month", "months", "bulan")
_unit("year", 1, "year", "years", "yr", "yrs", "tahun", "year old", "years old", "year-old")
_unit("hour", 1, "hour", "hours", "hr", "hrs", "jam")
_unit("minute", 1, "minute", "minutes", "mins", "minit")

# "mg/kg", "mg/day", "units/kg/day": a per-something suffix after a dose unit makes another unit.
_PER = {"kg": "kg", "day": "day", "d": "day", "hari": "day", "dose": "dose", "h": "h", "hr": "h",
        "hour": "h", "jam": "h", "min": "min"}  # fmt: skip
_DOSE_UNITS = frozenset(("mg", "ml", "units"))


def _alternation(spellings: Iterable[str]) -> str:
    # Longest first, so "mcg" wins over "mg"'s neighbour "m", "times a day" over "a day".
    ordered = sorted(spellings, key=len, reverse=True)
    return "|".join(re.escape(s).replace(r"\ ", r"\s*") for s in ordered)


_UNIT_RE = _alternation(_SPELLINGS)
_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"
_WORDNUM = "|".join(sorted(_WORD_NUMBERS, key=len, reverse=True))
_ONE = rf"(?:{_NUM}|\b(?:{_WORDNUM})\b)"
_RANGE_SEP = r"\s*(?:-|–|—|\bto\b|\bhingga\b|\bsehingga\b|\bke\b)\s*"
# A number not glued to a word or another number before it: the 2 of "SpO2" is a name. A slash pair
# ("130/85", "1/2") is one value; after a slash a number starts afresh ("500 mg/5 ml").
_VALUE = rf"(?<![\w.,])(?P<value>\d+(?:\.\d+)?/\d+(?:\.\d+)?(?![/\d])|{_ONE}(?:{_RANGE_SEP}{_ONE})?)"
_PER_RE = "|".join(sorted(_PER, key=len, reverse=True))
_PER_SUFFIX = rf"\s*(?:/|per\s)\s*(?:{_PER_RE})(?!\w)"
_FACT = re.compile(
    rf"{_VALUE}[ \t]*-?[ \t]*(?P<unit>{_UNIT_RE})(?P<per>(?:{_PER_SUFFIX})*)(?!\w)", re.IGNORECASE
)
# "every 8 hours", "setiap 8 jam", "q8h", "8 hourly", "4-6 hourly": a per-day count of 24 / hours.
_INTERVAL = re.compile(
    rf"(?:\b(?:every|setiap|tiap-tiap|tiap)\s+(?P<a>{_ONE}(?:{_RANGE_SEP}{_ONE})?)\s*(?:hours?|hrs?|h|jam)\b"
    rf"|\bq\s*(?P<b>\d+(?:\s*-\s*\d+)?)\s*h\b"
    rf"|(?<![\w.])(?P<c>\d+(?:\s*-\s*\d+)?)\s*-?\s*hourly\b)",
    re.IGNORECASE,
)
# Blood pressure without a unit: "BP 130/85", "tekanan darah 130/85".
_BP = re.compile(
    r"\b(?:bp|blood\s+pressure|tekanan\s+darah)\b[\s:=]*(?:of|is|was|ialah|adalah)?\s*"
    r"(?P<value>\d{2,3}/\d{2,3})(?![/\d])",
    re.IGNORECASE,
)
# Schedules written without a number. "ON" (at night) is left out: it is also the English word.
_SCHEDULES: dict[str, str] = {}
for _per_day, _names in (
    ("1", ("od", "daily", "once daily", "once a day", "daily once", "sekali sehari", "sehari sekali", "nocte",
           "at night", "at bedtime", "pada waktu malam", "sebelum tidur")),
    ("2", ("bd", "bid", "b.d.", "b.i.d.", "twice daily", "twice a day")),
    ("3", ("tds", "tid", "t.d.s.", "t.i.d.", "thrice daily", "three times daily")),
    ("4", ("qid", "qds", "q.i.d.", "q.d.s.", "four times daily")),
    ("prn", ("prn", "p.r.n.", "as needed", "when needed", "when necessary", "as required",
             "apabila perlu", "bila perlu", "jika perlu", "bila-bila perlu")),
):  # fmt: skip
    _SCHEDULES.update(dict.fromkeys(_names, _per_day))
_SCHEDULE = re.compile(
    r"(?<![\w.])(?:"
    + "|".join(re.escape(s).replace(r"\ ", r"\s+") for s in sorted(_SCHEDULES, key=len, reverse=True))
    + r")(?![\w])",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Fact:
    unit: str  # normalized: "mg", "mmhg", "/day"
    value: str  # normalized: "500", "130/85", "1/2", "4-6", "prn"
    start: int  # offsets into normalize(text)
    end: int


def _number(text: str) -> Fraction:
    word = _WORD_NUMBERS.get(text.lower())
    return Fraction(word) if word is not None else Fraction(text.replace(",", ""))


def _show(x: Fraction) -> str:
    if x.denominator == 1:
        return str(x.numerator)
    decimal = f"{float(x):.6f}".rstrip("0").rstrip(".")
    return decimal if Fraction(decimal) == x else str(x)


def _ratio(value: str) -> str:
    try:
        return _show(Fraction(value))
    except ValueError:  # Fraction takes "1/2" but not "2.5/5"
        return value


def _scaled(value: str, factor: Fraction, invert: bool = False) -> str:
    """A value (one number or a range) times `factor` (or `factor` over it), as a canonical string."""
    parts = re.split(_RANGE_SEP, value.strip(), flags=re.IGNORECASE)
    numbers = sorted(factor / _number(p) if invert else _number(p) * factor for p in parts if p)
    return "-".join(_show(n) for n in numbers)


def _claim(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    if any(start < e and s < end for s, e in spans):
        return False
    spans.append((start, end))
    return True


def extract_facts(text: str) -> list[Fact]:
    """Every number with a unit in `text`, in order of appearance. Intervals ("every 8 hours") and
    schedules ("TDS", "dua kali sehari") become times per day, so "q8h" and "three times a day" agree."""
    norm = normalize(text)
    facts: list[Fact] = []
    spans: list[tuple[int, int]] = []
    for m in _INTERVAL.finditer(norm):
        hours = m["a"] or m["b"] or m["c"]
        if _claim(spans, m.start(), m.end()) and all(_number(p) for p in re.split(_RANGE_SEP, hours) if p):
            facts.append(Fact("/day", _scaled(hours, Fraction(24), invert=True), m.start(), m.end()))
    for m in _FACT.finditer(norm):
        if not _claim(spans, m.start(), m.end()):
            continue
        unit, factor = _UNITS[re.sub(r"\s+", "", m["unit"].lower())]
        value = m["value"]
        if "/" in value:  # a blood pressure or "1/2 tablet": a pair, not a quantity to convert
            facts.append(Fact(unit, value if unit == "mmhg" else _ratio(value), m.start(), m.end()))
            continue
        pers = re.findall(rf"(?:/|per\s)\s*({_PER_RE})", m["per"], flags=re.IGNORECASE)
        if pers and unit in _DOSE_UNITS:
            unit = "/".join([unit, *(_PER[p.lower()] for p in pers)])
        facts.append(Fact(unit, _scaled(value, factor), m.start(), m.end()))
    facts.extend(
        Fact("mmhg", m["value"], m.start("value"), m.end("value"))
        for m in _BP.finditer(norm)
        if _claim(spans, m.start("value"), m.end("value"))
    )
    for m in _SCHEDULE.finditer(norm):
        if _claim(spans, m.start(), m.end()):
            value = _SCHEDULES[re.sub(r"\s+", " ", m[0].lower())]
            facts.append(Fact("/day", value, m.start(), m.end()))
    facts.sort(key=lambda f: f.start)
    return facts


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


def compare_facts(primary: str, other: str) -> tuple[int, int, list[Finding]]:
    """(mismatches, facts in the primary, findings). Facts are compared as multisets per unit; a
    value only one side has is a mismatch, and one changed value (500 mg → 50 mg) counts once."""
    p_norm, o_norm = normalize(primary), normalize(other)
    p_facts, o_facts = extract_facts(primary), extract_facts(other)
    mismatches = 0
    findings: list[Finding] = []
    for unit in sorted({f.unit for f in p_facts} | {f.unit for f in o_facts}):
        p_unit = [f for f in p_facts if f.unit == unit]
        o_unit = [f for f in o_facts if f.unit == unit]
        p_only = _unmatched(p_unit, Counter(f.value for f in o_unit))
        o_only = _unmatched(o_unit, Counter(f.value for f in p_unit))
        count = max(len(p_only), len(o_only))
        mismatches += count
        findings.extend(
            Finding(
                kind="number_mismatch",
                where=unit,
                primary=_excerpt(p_norm, p_only[i].start, p_only[i].end) if i < len(p_only) else "",
                other=_excerpt(o_norm, o_only[i].start, o_only[i].end) if i < len(o_only) else "",
            )
            for i in range(count)
        )
    return mismatches, len(p_facts), findings


def _unmatched(facts: list[Fact], against: Counter[str]) -> list[Fact]:
    left = Counter(against)
    out = []
    for fact in facts:
        if left[fact.value] > 0:
            left[fact.value] -= 1
        else:
            out.append(fact)
    return out


# ---------------------------------------------------------------------------------------------
# Negation
# ---------------------------------------------------------------------------------------------

_CUES: tuple[tuple[str, ...], ...] = tuple(
    tuple(cue.split())
    for cue in (
        "negative for", "absence of", "free of", "no", "not", "denies", "denied", "deny", "denying",
        "without", "never", "don't", "doesn't", "didn't", "isn't", "wasn't", "hasn't", "haven't",
        "tidak", "tak", "bukan", "tiada", "tanpa", "belum", "menafikan", "nafi",
    )
)  # fmt: skip
# The cues by their first word, in _CUES's order, so each token is checked against its few candidates.
_CUES_BY_FIRST: dict[str, tuple[tuple[str, ...], ...]] = {
    first: tuple(cue for cue in _CUES if cue[0] == first) for first in {cue[0] for cue in _CUES}
}


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words that end a negation's scope: "no fever but has cough" says nothing negative about cough.
_SCOPE_ENDS = _words(
    "but however although though except yet whereas while which who apart aside "
    "tetapi tapi namun kecuali walaupun walau cuma sebaliknya melainkan selain sedangkan"
)
# "and"/"or" (and "/") list several negated findings; "and" followed by one of these starts a new,
# affirmed clause: "no fever and has a cough".
_SPLITTERS = frozenset(("and", "or", "nor", "dan", "atau", "serta", "/", "&"))
_AFFIRMING = _words(
    "has have had reports reported complains complained is was ada mengadu mengalami mempunyai"
)
# Leading words that carry no finding of their own: "denies any history of asthma" is about asthma.
_FILLERS = _words(
    "any a an the some have has had having been be is are was were experience experienced "
    "experiencing report reports reported complain complains complained of history hx signs sign "
    "symptoms symptom evidence known significant obvious further new recent associated "
    "ada sebarang apa-apa sejarah tanda tanda-tanda mempunyai menghidap mengidap mengalami mengadu "
    "pernah lagi terdapat simptom gejala"
)
# A finding's head ends at these: "fever since yesterday" is about fever.
_HEAD_ENDS = _words(
    "of on in at for with to from since during after before today now currently yesterday "
    "recently anymore lately tonight semasa di pada dengan untuk yang dalam ke dari daripada "
    "selama sejak sekarang hari ini lagi kini lepas selepas sebelum"
)
_WINDOW = 5  # tokens after a cue that it can reach, as in NegEx


@dataclass(frozen=True, slots=True)
class _Side:
    text: str  # normalized
    tokens: list[Token]
    negated: list[bool]  # per token: inside some negation's scope
    phrases: list[tuple[str, ...]]  # the negated findings, fillers stripped


def _cue_at(words: Sequence[str], i: int) -> int:
    for cue in _CUES_BY_FIRST.get(words[i], ()):
        if tuple(words[i : i + len(cue)]) == cue:
            return len(cue)
    return 0


def _read_negations(text: str) -> _Side:
    norm = normalize(text)
    tokens = scan(text)
    words = [t.text.replace("’", "'") for t in tokens]
    # A line break ends a sentence even without a full stop (SOAP lines, bullet lists).
    breaks = [i > 0 and "\n" in norm[tokens[i - 1].end : t.start] for i, t in enumerate(tokens)]
    negated = [False] * len(tokens)
    phrases: list[tuple[str, ...]] = []
    i = 0
    while i < len(tokens):
        size = _cue_at(words, i)
        if not size:
            i += 1
            continue
        segment: list[str] = []
        j = i + size
        while j < len(tokens) and j < i + size + _WINDOW and not breaks[j]:
            word, kind = words[j], tokens[j].kind
            if word in _SCOPE_ENDS or (kind == "punct" and word not in _SPLITTERS) or _cue_at(words, j):
                break
            if word in _SPLITTERS:
                if word in ("and", "dan") and j + 1 < len(tokens) and words[j + 1] in _AFFIRMING:
                    break
                phrases.extend(_phrase(segment))
                segment = []
            else:
                segment.append(word)
            negated[j] = True
            j += 1
        phrases.extend(_phrase(segment))
        i = j
    return _Side(norm, tokens, negated, phrases)


def _phrase(segment: list[str]) -> list[tuple[str, ...]]:
    k = 0
    while k < len(segment) and segment[k] in _FILLERS:
        k += 1
    words = segment[k:]
    if not words or not any(ch.isalpha() for ch in words[0]):
        return []
    return [tuple(words)]


def _candidates(phrase: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    """The phrase and its shorter prefixes down to its head: "chest pain on exertion" → itself and
    "chest pain" (never "chest", which would match "chest clear"); "fever since yesterday" → "fever"."""
    head = next((k for k, w in enumerate(phrase) if w in _HEAD_ENDS), len(phrase))
    for size in range(max(head, 1), len(phrase) + 1):
        if phrase[size - 1] not in _HEAD_ENDS:
            yield phrase[:size]


def _occurrences(side: _Side, concept: tuple[str, ...]) -> tuple[list[int], list[int]]:
    """Token indexes where `concept` starts, split into (negated, affirmed)."""
    negated: list[int] = []
    affirmed: list[int] = []
    words = [t.text for t in side.tokens]
    n = len(concept)
    for i in range(len(words) - n + 1):
        if words[i] == concept[0] and tuple(words[i : i + n]) == concept:
            (negated if side.negated[i] else affirmed).append(i)
    return negated, affirmed


def compare_negations(primary: str, other: str) -> list[Finding]:
    """Findings negated on one side and affirmed on the other.

    Each negated phrase of either side is a concept; each side's mentions of it are counted as
    negated or affirmed. A flip is a concept with fewer negated and more affirmed mentions on one side
    than the other: counting, not set membership, so a hypothetical both sides share ("refer if chest
    pain") neither hides a flip nor makes one, and a paraphrase that keeps polarity ("no fever",
    "denies fever") matches. When a phrase and its prefix both flip, only the longer is reported."""
    p_side, o_side = _read_negations(primary), _read_negations(other)
    concepts = {c for phrase in p_side.phrases + o_side.phrases for c in _candidates(phrase)}
    flipped: dict[tuple[str, ...], Finding] = {}
    for concept in sorted(concepts):
        p_neg, p_aff = _occurrences(p_side, concept)
        o_neg, o_aff = _occurrences(o_side, concept)
        if len(p_neg) > len(o_neg) and len(o_aff) > len(p_aff):
            excerpts = (_at(p_side, p_neg[0]), _at(o_side, o_aff[0]))
        elif len(o_neg) > len(p_neg) and len(p_aff) > len(o_aff):
            excerpts = (_at(p_side, p_aff[0]), _at(o_side, o_neg[0]))
        else:
            continue
        flipped[concept] = Finding("negation_flip", " ".join(concept), *excerpts)
    longest = [c for c in flipped if not any(d != c and d[: len(c)] == c for d in flipped)]
    return [flipped[c] for c in sorted(longest, key=lambda c: flipped[c].primary)]


def _at(side: _Side, index: int) -> str:
    token = side.tokens[index]
    return _excerpt(side.text, token.start, token.end)


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


def score_clinical(c: Comparison) -> Result:
    """fact_mismatches, facts_primary, negation_flips, clinical_ok, and the SOAP metrics when either
    side is a SOAP note. Nothing when either side has no text (the common scorer reports errors)."""
    result = Result()
    if c.primary.text is None or c.other.text is None:
        return result
    mismatches, facts_primary, fact_findings = compare_facts(c.primary.text, c.other.text)
    flips = compare_negations(c.primary.text, c.other.text)
    result.metrics["fact_mismatches"] = float(mismatches)
    result.metrics["facts_primary"] = float(facts_primary)
    result.metrics["negation_flips"] = float(len(flips))
    result.metrics["clinical_ok"] = 1.0 if mismatches == 0 and not flips else 0.0
    result.findings.extend(fact_findings)
    result.findings.extend(flips)
    result.add(compare_soap(c.primary.text, c.other.text))
    del result.findings[MAX_FINDINGS:]
    return result
