"""Whether each finding is asserted present, absent, possible, historical, in the family or hypothetical
(English and Malay), in the manner of NegEx/ConText: cue phrases with a direction and a scope.

- Forward cues ("no", "denies", "tiada", "?", "history of", "family history of", "if") reach over the
  words after them: up to `_WINDOW` words, or a list of short items joined by commas, "or", "and", "atau"
  ("denies chest pain, fever or cough"), and stop at punctuation, a terminator ("but", "tetapi") or
  another cue.
- Backward cues follow the finding ("fever: negative", "Demam: tiada", "batuk (-)", "chest pain - nil",
  "pneumonia ruled out") and reach back over the words since the clause began.
- Pseudo-cues look like a cue but assert nothing ("no change", "not only", "gram negative").
Every token gets one state; a finding's state is its first token's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import accumulate
from operator import add, sub
from typing import Literal

from comparators.lexicon import TOKEN, words

State = Literal["present", "absent", "possible", "historical", "family", "hypothetical"]


def _phrases(*groups: str) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(TOKEN.findall(p)) for g in groups for p in g.split(",") if p.strip())


_FORWARD: dict[State, tuple[tuple[str, ...], ...]] = {
    "absent": _phrases(
        "no,not,denies,denied,deny,denying,without,never,negative for,absence of,absent,free of,"
        "tiada sejarah,tidak ada sejarah,tiada sebarang sejarah,tak ada sejarah,tidak pernah,tak pernah,"
        "no evidence of,no signs of,no sign of,no history of,no hx of,no complaints of,no c/o,"
        "don't,doesn't,didn't,isn't,wasn't,hasn't,haven't,hadn't,do not,does not,did not,is not,"
        "was not,has not,have not,had not,neither,nor,nil,non,resolved,"
        "tidak,tak,bukan,tiada,tanpa,belum,menafikan,nafi,tidak ada,tak ada,takde,tiada sebarang,"
        "tidak mengalami,tidak mempunyai,jangan,elakkan,elak,negatif untuk,bebas daripada",
    ),
    "possible": _phrases(
        "possible,possibly,probable,probably,likely,suspected,suspect,suspicious for,suspicion of,"
        "query,?,r/o,rule out,to rule out,cannot exclude,cannot rule out,could be,may be,might be,"
        "consider,differential,ddx,impression of possible,"
        "kemungkinan,mungkin,disyaki,syak,berkemungkinan,dikhuatiri",
    ),
    "historical": _phrases(
        "history of,hx of,h/o,past history of,past medical history of,previous,previously,prior,"
        "sejarah,pernah,pernah mengalami,dahulu"
    ),
    "family": _phrases(
        "family history of,family hx of,fhx of,fhx,f/h,fh of,family history,"
        "mother has,mother had,father has,father had,brother has,sister has,mother with,father with,"
        "sejarah keluarga,ibu ada,ibu menghidap,bapa ada,bapa menghidap,ayah ada,ayah menghidap,"
        "ibunya,bapanya,ayahnya"
    ),
    "hypothetical": _phrases(
        "if,should,in case,unless,return if,come back if,watch for,look out for,warning signs,"
        "red flags,jika,kalau,sekiranya,jikalau,apabila,bila,datang semula jika,"
        # what a drug is taken for when needed: "PRN vomiting", "bila perlu untuk demam"
        "prn,p.r.n.,as needed for,when needed for,as required for,if needed for,bila perlu untuk,"
        "bila perlu jika,jika perlu untuk,apabila perlu untuk"
    ),
}
_BACKWARD: dict[State, tuple[tuple[str, ...], ...]] = {
    "present": _phrases(
        "positive,+ve,pos,reactive,detected,present,seen,noted,yes,positif,reaktif,dikesan,ada,+,++,+++"
    ),
    "absent": _phrases(
        "negative,neg,-ve,nil,none,no,absent,not seen,not present,not found,not detected,ruled out,"
        "not noted,not observed,not indicated,not required,not needed,not necessary,not warranted,"
        "not given,not prescribed,not started,tidak diperlukan,tidak perlu,tidak diberi,tidak diberikan,"
        "excluded,not elicited,not palpable,resolved,non-reactive,nonreactive,not reactive,"
        "tiada,tidak,tidak ada,tak ada,takde,negatif,tidak reaktif,tidak dikesan,hilang",
    ),
    "possible": _phrases("query,suspected,possible,not excluded,kemungkinan,disyaki"),
}
# Parenthesised signs after a finding: "batuk (-)", "cough (+)".
_SIGNS = {("(", "-", ")"): "absent", ("(", "+", ")"): "present", ("(", "+", "+", ")"): "present"}
_PSEUDO = _phrases(
    "no change,no changes,no increase,no decrease,no significant change,not only,no further,"
    "not certain,not sure,no longer than,gram negative,gram-negative,not necessarily,no need,"
    "tidak berubah,tiada perubahan,tidak pasti,if needed,if necessary,if required,bila perlu,"
    "jika perlu,apabila perlu,kalau perlu,no more than,not more than,not exceed,"
    "grateful if,appreciate if,if you could,if you would,if possible,if you can,as if,even if,"
    "not to exceed,tidak melebihi,jangan melebihi"
)
_TERMINATORS = words(
    "but however although though except yet whereas while which who apart aside still now patient pt "
    "he she they we i pesakit dia beliau mereka advised given plan start continue take presents "
    "presented complains complained c/o reports reported has have had with tetapi tapi namun kecuali "
    "walaupun walau cuma sebaliknya melainkan selain sedangkan masih mengadu ada mempunyai mengalami "
    "dengan"
)
_CONTRASTS = words("but however otherwise else then tetapi tapi namun kecuali jadi maka")
_JOINERS = frozenset((",", "or", "and", "nor", "/", "&", "atau", "dan", "serta", "mahupun"))
_PUNCT_STOPS = frozenset(".;:!()[]\n")
# What may follow a backward cue: "DVT ruled out on Doppler", "Demam: tiada sejak semalam".
_AFTER_BACKWARD = words(
    ", on by with in at for pada melalui dengan sejak since per after following today now"
)
_LINKS = words(": - = is was are were adalah ialah been being has have had telah sudah")
_WINDOW = 6  # words a forward cue reaches without a list
_CONDITION = 8  # words a condition ("if ...") reaches
_REPEAT = re.compile(r"x\d+$")  # "AFB smear x2: negative"
_BACK = 4  # words a backward cue reaches
# Words a backward cue reaches over without counting them: "HIV screen negative", "protein level normal".
_BACK_NOISE = words("screen screens screening test tests result results level levels ujian keputusan")
# A list item that judges rather than names ("chest clear", "luka baik") starts a new clause.
_EVALUATIVE = words(
    "clear normal good well ok okay stable intact unremarkable healthy fine satisfactory baik elok "
    "sembuh stabil normal biasa sihat"
)
_ITEM = 4  # words one list item may have
_LIST = 14  # words a list may reach in all


@dataclass(frozen=True, slots=True)
class Tokens:
    words: list[str]
    starts: list[int]
    ends: list[int]
    breaks: list[bool]  # a line break (or a sentence end) comes before this token
    positions: dict[str, list[int]]  # word -> the indexes of its tokens, in order

    def where(self, vocabulary: Iterable[str]) -> list[int]:
        """The indexes of the tokens whose word is in `vocabulary` (a set or a dict's keys), in order."""
        positions = self.positions
        found = [i for word in positions.keys() & vocabulary for i in positions[word]]
        found.sort()
        return found


_SPACED_TOKEN = re.compile(rf"(\s*)({TOKEN.pattern})")


_ANSWERED = re.compile(r"\s*(?:no|nil|none|nope|tiada|tidak|tak|takde|yes|ya|ada)\b(?=\s*(?:[.!,;\n]|$))")


def _queries(norm: str, start: int, end: int) -> bool:
    """A "?" that marks a possible diagnosis: glued to it ("?PTB"), or opening a clause ("A: ? L leg DVT"),
    not ending a question ("Any fever? No.")."""
    if norm[end : end + 1].isalpha():
        return True
    before = norm[:start].rstrip()
    return (not before or not before[-1].isalnum()) and norm[end : end + 2].strip()[:1].isalpha()


def tokens(norm: str) -> Tokens:
    """Word tokens of a normalized text. A "?" before a diagnosis is a cue ("?pneumonia", "A: ? DVT"); any
    other "?" or "!" ends a sentence, as "." does."""
    # Split on the tokens: ["", spaces, token, "", spaces, token, ..., trailing spaces]. Tokens follow
    # one another, so each starts where the spaces after the one before end.
    parts = _SPACED_TOKEN.split(norm)
    spaces, words = parts[1::3], parts[2::3]
    ends = list(accumulate(map(add, map(len, spaces), map(len, words))))
    starts = list(map(sub, ends, map(len, words)))
    breaks = ["\n" in space for space in spaces]
    if "?" in norm or "!" in norm or "’" in norm:
        for i in [k for k, word in enumerate(words) if word in ("?", "!") or "’" in word]:
            word = words[i]
            if word == "?" and _ANSWERED.match(norm, ends[i]):
                words[i] = ":"  # "Any fever? No." reads as "fever: no"
            elif word in ("?", "!") and not (word == "?" and _queries(norm, starts[i], ends[i])):
                words[i] = "."
            elif "’" in word:
                words[i] = word.replace("’", "'")
    positions: dict[str, list[int]] = {}
    for i, word in enumerate(words):
        positions.setdefault(word, []).append(i)
    return Tokens(words, starts, ends, breaks, positions)


def _index(
    groups: dict[State, tuple[tuple[str, ...], ...]],
) -> dict[str, list[tuple[tuple[str, ...], State]]]:
    index: dict[str, list[tuple[tuple[str, ...], State]]] = {}
    for state, phrases in groups.items():
        for phrase in phrases:
            index.setdefault(phrase[0], []).append((phrase, state))
    for entries in index.values():
        entries.sort(key=lambda e: -len(e[0]))
    return index


_FORWARD_INDEX = _index(_FORWARD)
_BACKWARD_INDEX = _index(_BACKWARD)
_PSEUDO_INDEX = _index({"present": _PSEUDO})
_CUE_STARTS = frozenset(_FORWARD_INDEX) | frozenset(_PSEUDO_INDEX)
_BACKWARD_STARTS = frozenset(_BACKWARD_INDEX) | {"("}  # a backward cue, or a sign: "(-)"


def _match(
    index: dict[str, list[tuple[tuple[str, ...], State]]], words: list[str], i: int
) -> tuple[int, State]:
    for phrase, state in index.get(words[i], ()):
        if tuple(words[i : i + len(phrase)]) == phrase:
            return len(phrase), state
    return 0, "present"


def _ends_scope(t: Tokens, j: int) -> bool:
    w = t.words[j]
    return t.breaks[j] or w in _TERMINATORS or (w in _PUNCT_STOPS)


def states(t: Tokens, term_ends: set[int] | None = None) -> tuple[list[State], list[tuple[int, int, State]]]:
    """A state per token, and the scopes (first, last token, state) that cues opened, for phrases.
    `term_ends`: indexes of the last tokens of listed findings and tests (see `_backward`)."""
    n = len(t.words)
    state: list[State] = ["present"] * n
    cue = [False] * n
    scopes: list[tuple[int, int, State]] = []
    words = t.words
    i = 0
    # Only where a cue can start (the loop below moves on by one word, or past a cue or its scope).
    for at in t.where(_CUE_STARTS):
        if at < i:
            continue
        i = at
        size, _ = _match(_PSEUDO_INDEX, t.words, i)
        if size:
            cue[i : i + size] = [True] * min(size, n - i)
            i += size
            continue
        size, kind = _match(_FORWARD_INDEX, t.words, i)
        if not size:
            i += 1
            continue
        # "antibiotics not indicated", "meningism was not observed": a backward cue, for _backward.
        back = next(
            (
                k + b
                for k in range(i, i + size)
                if words[k] in _BACKWARD_INDEX
                and (b := _match(_BACKWARD_INDEX, words, k)[0])
                and k + b > i + size
                and _clause_ends(t, k + b)
            ),
            0,
        )
        if back:
            i = back
            continue
        j = _forward_scope(t, i + size, kind)
        if j > i + size:  # a cue with nothing after it may be a backward one: "Cough: no."
            cue[i : i + size] = [True] * size
            state[i + size : j] = [kind] * (j - i - size)
            scopes.append((i + size, j, kind))
            i = j
        else:
            i += size
    _backward(t, state, cue, scopes, term_ends or set())
    return state, scopes


def _forward_scope(t: Tokens, first: int, kind: State) -> int:
    """The token after a forward cue's scope that starts at `first` (past a ":" or "-" right after the
    cue, as in "FHx: HPT")."""
    n = len(t.words)
    if first < n and t.words[first] in (":", "-") and first + 1 < n and not t.breaks[first + 1]:
        first += 1
    j, item, total, listed = first, 0, 0, False
    while j < n and total < _LIST:
        w = t.words[j]
        if kind == "hypothetical":
            # A condition has a subject and a verb of its own ("if she gets any bleeding", "jika ada
            # demam"): only punctuation, a line break, a contrast or its length ends it.
            if t.breaks[j] or w in _PUNCT_STOPS or w in _CONTRASTS or total >= _CONDITION:
                break
            total += 1
            j += 1
            continue
        if (
            _ends_scope(t, j)
            or (w in _FORWARD_INDEX and _match(_FORWARD_INDEX, t.words, j)[0])
            or (w in _PSEUDO_INDEX and _match(_PSEUDO_INDEX, t.words, j)[0])
        ):
            break
        if _has_digit(w) or (w in _BACKWARD_INDEX and _match(_BACKWARD_INDEX, t.words, j)[0]):
            break  # a measurement is no finding ("tidak teratur, RR 18"); a result word ends the scope
        if w in _JOINERS:
            # A scope never starts with a joiner, and "no fever and has a cough" ends the list, as
            # does an item that judges ("no fever, chest clear").
            if j == first or _new_clause(t, j + 1):
                break
            item, listed = 0, True
        else:
            item += 1
            if item > _ITEM or (total >= _WINDOW and not listed):
                break
        total += 1
        j += 1
    while j > first and t.words[j - 1] in _JOINERS:  # a trailing comma is not in the scope
        j -= 1
    return j


def _has_digit(word: str) -> bool:
    """A number or a measurement ("18", "98%"), not a name with a digit ("NS1", "SpO2", "HbA1c")."""
    return word[:1].isdigit()


def _new_clause(t: Tokens, start: int) -> bool:
    """Whether the list item starting at `start` opens a clause of its own."""
    for k in range(start, min(start + _ITEM + 1, len(t.words))):
        w = t.words[k]
        if w in _JOINERS or w in _PUNCT_STOPS or (t.breaks[k] and k > start):
            return False
        if w in _EVALUATIVE or (w in _TERMINATORS and k == start):
            return True
        if w in _TERMINATORS:
            return False
    return False


def _clause_ends(t: Tokens, after: int) -> bool:
    return after >= len(t.words) or (
        t.breaks[after] or t.words[after] in _PUNCT_STOPS or t.words[after] in _AFTER_BACKWARD
    )


def _backward(
    t: Tokens, state: list[State], cue: list[bool], scopes: list[tuple[int, int, State]], term_ends: set[int]
) -> None:
    """Cues after the finding: "fever: negative", "Demam: tiada", "cough (-)", "pneumonia ruled out".
    A cue ends its clause ("fever: negative.", unlike "no fever", a forward cue), or follows a listed
    finding or test directly ("neck stiffness negative photophobia negative", said without stops)."""
    n = len(t.words)
    i = 0
    # Only where a backward cue or a sign can start (the loop moves on by one word, or past a cue).
    for at in t.where(_BACKWARD_STARTS):
        if at < i:
            continue
        i = at
        if cue[i]:
            i += 1
            continue
        kind: State
        sign = _SIGNS.get(tuple(t.words[i : i + 3])) or _SIGNS.get(tuple(t.words[i : i + 4]))
        if sign is not None:
            kind, size = sign, 3  # type: ignore[assignment]
        else:
            size, kind = _match(_BACKWARD_INDEX, t.words, i)
            if not size:
                i += 1
                continue
            j = i - 1
            while j >= 0 and t.words[j] in _LINKS:
                j -= 1
            if not (_clause_ends(t, i + size) or j in term_ends):
                i += 1
                continue
        cue[i : i + size] = [True] * min(size, n - i)
        first, last = _reach_back(t, cue, i)
        # "no malaria parasites seen": a forward negation right before a short phrase keeps it absent.
        overridden = (
            kind == "present"
            and first > 0
            and cue[first - 1]
            and state[first] != "present"
            and last - first < 3
        )
        if last >= first and not overridden:
            state[first : last + 1] = [kind] * (last + 1 - first)
            scopes.append((first, last + 1, kind))
        i += size


def _reach_back(t: Tokens, cue: list[bool], i: int) -> tuple[int, int]:
    """The tokens a backward cue at `i` governs: back to the clause's start, at most `_BACK` words."""
    j = i - 1
    while j >= 0 and t.words[j] in _LINKS:
        j -= 1
    last = j
    count = 0
    while j >= 0 and count < _BACK:
        w = t.words[j]
        if w in ("(", ")") or w in _BACK_NOISE or _REPEAT.match(w):  # "syphilis (VDRL) screens negative"
            j -= 1
            continue
        if w in _PUNCT_STOPS or w == "," or cue[j] or w in _TERMINATORS or _has_digit(w):
            break
        if w not in _JOINERS:
            count += 1
        j -= 1
        if t.breaks[j + 1]:
            break
    return j + 1, last


def scope_phrases(t: Tokens, scopes: Iterable[tuple[int, int, State]]) -> list[tuple[tuple[str, ...], State]]:
    """The findings inside each scope, one per list item, leading filler words dropped."""
    out: list[tuple[tuple[str, ...], State]] = []
    for first, last, kind in scopes:
        item: list[str] = []
        for j in range(first, last):
            w = t.words[j]
            if w in _JOINERS:
                out.extend((p, kind) for p in _phrase(item))
                item = []
            else:
                item.append(w)
        out.extend((p, kind) for p in _phrase(item))
    return out


_FILLERS = words(
    "any a an the some have has had having been be is are was were experience experienced "
    "experiencing report reports reported complain complains complained of history hx signs sign "
    "symptoms symptom evidence known significant obvious further new recent associated on for ada "
    "sebarang apa-apa sejarah tanda tanda-tanda mempunyai menghidap mengidap mengalami mengadu pernah "
    "lagi terdapat simptom gejala yang"
)
_HEAD_ENDS = words(
    "of on in at for with to from since during after before today now currently yesterday recently "
    "anymore lately tonight semasa di pada dengan untuk dalam ke dari daripada selama sejak sekarang "
    "hari ini lagi kini lepas selepas sebelum"
)
# Words that head no finding of their own: "possible, day 3", "tidak, dia".
_NOT_FINDINGS = words(
    "day days week weeks month months time times hari minggu bulan kali x patient pt he she it this "
    "that there they we i you pesakit dia beliau ini itu sana ia"
)
_WORDLIKE = re.compile(r"[a-z\u00c0-\uffff]")


def _phrase(item: list[str]) -> list[tuple[str, ...]]:
    k = 0
    while k < len(item) and item[k] in _FILLERS:
        k += 1
    words = item[k:]
    head = next((i for i, w in enumerate(words) if w in _HEAD_ENDS or not _WORDLIKE.match(w)), len(words))
    words = words[:head]
    if not words or not _WORDLIKE.match(words[0]) or words[0] in _NOT_FINDINGS:
        return []
    return [tuple(words)]
