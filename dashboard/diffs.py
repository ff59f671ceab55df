"""One pair's differences for people to read: word diffs, transcript alignment, facts, JSON fields (pure).

The comparators decide what differs (speech.align_words, clinical.compare_clinical, structured.diff);
this module only lays their results out as escaped HTML and rows for tables.
"""

from __future__ import annotations

import difflib
import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from comparators.align import Difference
from comparators.clinical import compare_clinical
from comparators.extract import json_content
from comparators.scoring import Finding
from comparators.speech import align_words
from comparators.structured import diff as json_diff

Op = Literal["equal", "replace", "delete", "insert"]
Mark = Literal["number", "negation"]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words that open a negation, as comparators/clinical.py reads them (English and Malay): a changed
# chunk with one of these on either side is marked, because it may turn "no fever" into "fever".
NEGATION_WORDS = _words(
    "no not denies denied deny denying without never negative absence free don't doesn't didn't isn't "
    "wasn't hasn't haven't nor tidak tak bukan tiada tanpa belum menafikan nafi"
)
_NUMBER_WORDS = _words(
    "zero one two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty "
    "hundred thousand half kosong sifar satu dua tiga empat lima enam tujuh lapan sembilan sepuluh "
    "sebelas belas puluh ratus seratus ribu seribu separuh"
)
# A word with what follows it up to the next word (spaces, line breaks), or one punctuation mark.
_TOKEN = re.compile(r"[^\W_](?:[\w.,'’/%-]*[^\W_%])?%?\s*|\S\s*", re.UNICODE)

_STYLE = """<style>
.sg-diff{font-family:ui-monospace,monospace;font-size:0.85rem;line-height:1.5;white-space:pre-wrap;
  border:1px solid rgba(128,128,128,.35);border-radius:6px;padding:.6rem;max-height:32rem;overflow:auto}
.sg-diff del{background:#ffd7d5;color:#82071e;text-decoration:line-through}
.sg-diff ins{background:#ccffd8;color:#055d20;text-decoration:none}
.sg-diff .number{font-weight:700;outline:2px solid #d4a72c;border-radius:3px}
.sg-diff .negation{font-weight:700;outline:2px solid #8250df;border-radius:3px}
</style>"""


@dataclass(frozen=True)
class Chunk:
    op: Op
    primary: str  # the primary's text of this chunk, whitespace kept
    candidate: str
    marks: frozenset[Mark] = frozenset()


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _key(token: str) -> str:
    return token.strip().casefold().replace("’", "'")


def _marks(words: Sequence[str]) -> frozenset[Mark]:
    keys = {_key(w).strip(".,;:") for w in words}
    marks: set[Mark] = set()
    if any(any(ch.isdigit() for ch in k) or k in _NUMBER_WORDS for k in keys):
        marks.add("number")
    if keys & NEGATION_WORDS:
        marks.add("negation")
    return frozenset(marks)


def word_diff(primary: str, candidate: str) -> list[Chunk]:
    """The two texts word by word (case and spacing ignored when matching), changed chunks marked where
    they touch a number or a negation."""
    a, b = tokens(primary), tokens(candidate)
    matcher = difflib.SequenceMatcher(None, [_key(t) for t in a], [_key(t) for t in b], autojunk=False)
    chunks: list[Chunk] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        left, right = a[i1:i2], b[j1:j2]
        marks = frozenset() if op == "equal" else _marks([*left, *right])
        chunks.append(Chunk(op, "".join(left), "".join(right), marks))
    return chunks


def _span(tag: str, text: str, marks: frozenset[Mark]) -> str:
    if not text:
        return ""
    body = html.escape(text.rstrip())
    trail = html.escape(text[len(text.rstrip()) :])
    classes = " ".join(sorted(marks))
    titles = {"number": "a number changed", "negation": "a negation changed"}
    title = "; ".join(titles[m] for m in sorted(marks))
    attrs = f' class="{classes}" title="{title}"' if marks else ""
    return f"<{tag}{attrs}>{body}</{tag}>{trail}"


def side_by_side_html(chunks: Sequence[Chunk]) -> tuple[str, str]:
    """(primary, candidate) as HTML: what only the primary says struck through, what only the
    candidate says underlaid, changed numbers and negations outlined. Every text is escaped."""
    left: list[str] = []
    right: list[str] = []
    for c in chunks:
        if c.op == "equal":
            left.append(html.escape(c.primary))
            right.append(html.escape(c.candidate))
            continue
        left.append(_span("del", c.primary, c.marks))
        right.append(_span("ins", c.candidate, c.marks))
    return _box("".join(left)), _box("".join(right))


def _box(inner: str) -> str:
    return f'{_STYLE}<div class="sg-diff">{inner}</div>'


@dataclass(frozen=True)
class Alignment:
    html: str
    substitutions: int
    deletions: int
    insertions: int
    reference_words: int

    @property
    def wer(self) -> float | None:
        if not self.reference_words:
            return None
        return (self.substitutions + self.deletions + self.insertions) / self.reference_words


def transcript_alignment(primary: str, candidate: str) -> Alignment:
    """The word alignment WER counts (after the pinned normalization), as one line of HTML: a substituted
    word shows the primary's struck through before the candidate's."""
    parts: list[str] = []
    s = d = i = n = 0
    for op, ref, hyp in align_words(primary, candidate):
        n += len(ref)
        marks = _marks([*ref, *hyp]) if op != "equal" else frozenset()
        if op == "equal":
            parts.append(html.escape(" ".join(ref)))
        elif op == "substitute":
            s += len(ref)
            parts.append(_span("del", " ".join(ref), marks) + " " + _span("ins", " ".join(hyp), marks))
        elif op == "delete":
            d += len(ref)
            parts.append(_span("del", " ".join(ref), marks))
        else:
            i += len(hyp)
            parts.append(_span("ins", " ".join(hyp), marks))
    return Alignment(_box(" ".join(parts)), s, d, i, n)


@dataclass(frozen=True)
class Row:
    """A difference for a table: what kind, where, what each side says."""

    kind: str
    where: str
    primary: str
    candidate: str


def _rows(findings: Sequence[Finding]) -> list[Row]:
    return [Row(f.kind, f.where, f.primary, f.other) for f in findings]


@dataclass(frozen=True)
class ClinicalRow:
    """A clinical-fact difference for a table (comparators/align.py decides what it is)."""

    severity: str  # critical, major, minor
    kind: str  # contradiction, omission, addition
    slot: str  # dose, route, side, assertion ...
    entity: str  # the drug, vital, finding or body site
    primary: str  # the primary's normalized value
    candidate: str


@dataclass(frozen=True)
class ClinicalView:
    rows: list[ClinicalRow]
    primary_html: str  # the answer, each difference marked where it stands
    candidate_html: str
    unscorable: str | None  # why the texts could not be read for facts

    def table(self) -> list[dict[str, object]]:
        """The differences as table rows, numbered as they are marked in the answers."""
        return [
            {
                "#": n,
                "severity": r.severity,
                "kind": r.kind,
                "slot": r.slot,
                "about": r.entity,
                "primary": r.primary,
                "candidate": r.candidate,
            }
            for n, r in enumerate(self.rows, 1)
        ]


_SEVERITY_STYLE = """<style>
.sg-facts mark{border-radius:3px;padding:0 .1rem;color:inherit}
.sg-facts mark.critical{background:#ffd7d5;outline:2px solid #cf222e}
.sg-facts mark.major{background:#fff1c2;outline:2px solid #bf8700}
.sg-facts mark.minor{background:#ddf4ff;outline:1px dashed #0969da}
.sg-facts mark sup{font-size:.65rem;font-weight:700;margin-left:.15rem}
</style>"""


def clinical_view(primary: str, candidate: str) -> ClinicalView:
    """The clinical-fact differences (comparators/clinical.py) as table rows and as both answers with
    each difference marked in place, coloured by severity and titled with its kind and slot."""
    found = compare_clinical(primary, candidate)
    rows = [ClinicalRow(d.severity, d.kind, d.slot, d.entity, d.primary, d.other) for d in found.differences]
    return ClinicalView(
        rows,
        _marked(primary, [(d.primary_span, d, n) for n, d in enumerate(found.differences, 1)]),
        _marked(candidate, [(d.other_span, d, n) for n, d in enumerate(found.differences, 1)]),
        found.unscorable,
    )


def _marked(text: str, marks: list[tuple[tuple[int, int] | None, Difference, int]]) -> str:
    """`text` escaped, with <mark> around each span; overlapping spans keep the first (most severe)."""
    taken: list[tuple[int, int, Difference, int]] = []
    for span, d, number in marks:
        if span is None or span[0] >= span[1] or span[1] > len(text):
            continue
        if any(span[0] < e and s < span[1] for s, e, _, _ in taken):
            continue
        taken.append((span[0], span[1], d, number))
    out: list[str] = []
    position = 0
    for start, end, d, number in sorted(taken, key=lambda t: t[0]):
        title = html.escape(f"{number}: {d.severity} {d.kind} of {d.slot} ({d.entity})", quote=True)
        out.append(html.escape(text[position:start]))
        out.append(
            f'<mark class="{d.severity} {d.kind}" title="{title}">{html.escape(text[start:end])}'
            f"<sup>{number}</sup></mark>"
        )
        position = end
    out.append(html.escape(text[position:]))
    return f'{_STYLE}{_SEVERITY_STYLE}<div class="sg-diff sg-facts">{"".join(out)}</div>'


def json_rows(primary: str | None, candidate: str | None) -> list[Row] | None:
    """Field-by-field differences when both answers are JSON (comparators/structured.py); None otherwise."""
    left, right = json_content(primary), json_content(candidate)
    if left is None or right is None:
        return None
    return _rows(json_diff(left, right))


def request_text(body: bytes, limit: int = 20_000) -> tuple[str, str]:
    """(language, text) to show a request body: pretty JSON, plain text, or a note for binary bodies
    (an audio upload)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "text", f"(binary body, {len(body):,} bytes: not shown)"
    try:
        parsed = json.loads(text)
    except ValueError:
        return "text", text[:limit]
    return "json", json.dumps(parsed, indent=2, ensure_ascii=False)[:limit]
