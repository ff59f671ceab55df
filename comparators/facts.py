"""What a clinical answer states, as typed facts: medications (drug, dose, route, frequency, timing,
duration, quantity, status), allergies, findings with their assertion, test results, vital signs and
labs, laterality with body site, follow-up, and any other number with a unit. Pure; English and Malay.

A fact is (kind, entity, slot, value, unit) with the span of original text it was read from. The entity
is what facts are aligned on (a drug's ingredients, a vital's name, a finding, a body site); the slot is
what is said about it. `comparators/align.py` compares two answers' facts.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from fractions import Fraction
from functools import lru_cache

from comparators import assertion
from comparators.anchors import Anchored, Anchors, first_words
from comparators.lexicon import Lexicon, Term, alternation, load, words
from comparators.numbers import Text, read_words

Kind = str  # "medication", "allergy", "finding", "measure", "laterality", "followup", "quantity"


@dataclass(frozen=True, slots=True)
class Fact:
    kind: Kind
    entity: str  # what it is aligned on: "paracetamol", "bp", "chest pain", "knee", "allergy"
    slot: str  # drug, dose, route, frequency, timing, duration, quantity, status, allergy, reaction,
    #          assertion, result, value, side, site, followup
    value: str  # normalized: "1000", "oral", "3/day", "absent", "left", "penicillin", "14"
    unit: str  # "mg", "ml", "tablet", "mmhg", "day" ... ("" when the value has none)
    start: int  # span in the original text
    end: int


def _fact_maker() -> Callable[[str, str, str, str, str, int, int], Fact]:
    """`Fact(...)` at half the cost, for the many facts of a text: a frozen dataclass sets each field
    through `object.__setattr__`; its slots' own descriptors set them directly. The same object."""
    new = object.__new__
    kind, entity, slot, value, unit, start, end = (getattr(Fact, f.name).__set__ for f in fields(Fact))

    def make(k: str, n: str, s: str, v: str, u: str, a: int, b: int) -> Fact:
        fact = new(Fact)
        kind(fact, k)
        entity(fact, n)
        slot(fact, s)
        value(fact, v)
        unit(fact, u)
        start(fact, a)
        end(fact, b)
        return fact

    return make


_fact = _fact_maker()


@dataclass(frozen=True, slots=True)
class Facts:
    text: Text
    facts: list[Fact]
    tokens: assertion.Tokens
    states: list[assertion.State]  # per token
    phrases: list[tuple[tuple[str, ...], assertion.State]]  # what each cue governs, for unlisted findings
    positions: dict[str, list[int]]  # word -> its token indexes

    def occurrences(self, phrase: tuple[str, ...]) -> list[tuple[str, tuple[int, int], str]]:
        """(state, span, slot) of each place `phrase` is written, hypotheticals left out."""
        words = self.tokens.words
        n = len(phrase)
        out: list[tuple[str, tuple[int, int], str]] = []
        for i in self.positions.get(phrase[0], ()):
            if tuple(words[i : i + n]) == phrase and self.states[i] != "hypothetical":
                span = self.text.span(self.tokens.starts[i], self.tokens.ends[i + n - 1])
                out.append((self.states[i], span, "assertion"))
        return out

    def mentions(self) -> dict[str, list[tuple[str, tuple[int, int], str]]]:
        """Listed findings and tests: concept -> (state, span, slot) per mention."""
        out: dict[str, list[tuple[str, tuple[int, int], str]]] = {}
        for f in self.facts:
            if f.kind == "finding":
                out.setdefault(f.entity, []).append((f.value, (f.start, f.end), f.slot))
        return out


# ---------------------------------------------------------------------------------------------
# Numbers, units, durations
# ---------------------------------------------------------------------------------------------

NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"  # "1,000" is a thousand (Malaysian usage)
RANGE = rf"{NUM}(?:\s*(?:-|–|to|hingga|ke)\s*{NUM})?"

# spelling -> (unit, factor to it). Mass in mg, volume in ml, so "1 g" is "1000 mg".
DOSE_UNITS: dict[str, tuple[str, Fraction]] = {}


def _units(unit: str, factor: Fraction | int, spellings: str) -> None:
    for s in spellings.split(","):
        DOSE_UNITS[s.strip()] = (unit, Fraction(factor))


_units("mg", 1, "mg,mgs,milligram,milligrams,miligram,milligramme,milligrammes")
_units("mg", Fraction(1, 1000), "mcg,µg,μg,ug,microgram,micrograms,mikrogram")
_units("mg", Fraction(1, 1_000_000), "ng,nanogram,nanograms")
_units("mg", 1000, "g,gm,gms,gram,grams,gramme,grammes,gram")
_units("ml", 1, "ml,mls,millilitre,millilitres,milliliter,milliliters,mililiter,cc")
_units("ml", 1000, "l,litre,litres,liter,liters,liter")
_units("units", 1, "units,unit,iu,i.u.,u,unit antarabangsa")
_units("mmol", 1, "mmol,millimole,millimoles")
_units("meq", 1, "meq")
_units("tablet", 1, "tablet,tablets,tab,tabs,tabl,biji,pil,pill,pills,tablet-tablet")
_units("capsule", 1, "capsule,capsules,cap,caps,kapsul")
_units("puff", 1, "puff,puffs,sedutan,semburan,spray,sprays,actuation,actuations")
_units("drop", 1, "drop,drops,gtt,titis,titisan,titik")
_units("sachet", 1, "sachet,sachets,paket,uncang")
_units("spoon", 1, "teaspoon,teaspoons,tsp,sudu teh,sudu kecil")
_units("suppository", 1, "suppository,suppositories")
_units("patch", 1, "patch,patches,tampalan")
_units("vial", 1, "vial,vials,ampoule,ampoules,amp")
_DOSE_UNIT = alternation(DOSE_UNITS)
_PER = r"(?:\s*/\s*(?P<per>kg|day|hari|dose|hr|h|hour|jam|min|m2))?"
# "sebiji", "sekapsul": Malay "one" joined to the unit.
_SE_UNIT = r"se(?=(?:biji|kapsul|titik|titis|paket|uncang|sudu)\b)"
# A lab's unit is no dose: "uACR 45 mg/mmol", "glucose 126 mg/dL".
DOSE = re.compile(
    rf"(?<![\w.,/])(?P<value>{RANGE}|\d+/\d+|{_SE_UNIT})\s*(?:-\s*)?(?:a\s+)?(?P<unit>{_DOSE_UNIT})(?![a-z])"
    rf"(?!\s*/\s*(?:mmol|dl|l)\b){_PER}(?![a-z])"
)
# Where a dose can start (comparators/anchors.py): a number, or "sebiji", "sekapsul".
_DOSES = Anchored(
    DOSE, numbers=True, words=("sebiji", "sekapsul", "setitik", "setitis", "sepaket", "seuncang", "sesudu")
)

DAYS = {
    "d": 1, "day": 1, "days": 1, "hari": 1, "/7": 1,
    "w": 7, "wk": 7, "wks": 7, "week": 7, "weeks": 7, "minggu": 7, "/52": 7,
    "m": 30, "mo": 30, "mth": 30, "mths": 30, "month": 30, "months": 30, "bulan": 30, "/12": 30,
    "y": 365, "yr": 365, "yrs": 365, "year": 365, "years": 365, "tahun": 365,
}  # fmt: skip
_HOURS = {"h": 1, "hr": 1, "hrs": 1, "hour": 1, "hours": 1, "jam": 1}
_SPAN_WORD = r"days?|d|hari|weeks?|wks?|wk|minggu|months?|mths?|mth|bulan|years?|yrs?|tahun|hours?|hrs?|jam"
# "5/7", "2/52", "1/12": days, weeks, months in clinic shorthand (not a date: no third part).
_SLASH = rf"(?P<n1>{NUM})\s*/\s*(?P<d1>7|52|12)(?![\d/])"
_WORDED = rf"(?P<n2>{RANGE})\s*(?P<d2>{_SPAN_WORD})(?![a-z])"
_SE = r"(?P<se>seminggu|sebulan|setahun|a\s+week|a\s+month|a\s+year|one\s+week|fortnight|two\s+weeks)"
_DAY_N = r"(?:hari\s+ke-?\s*|day\s+)(?P<n3>\d+)(?![\d/])"  # "pada hari ke-5", "on day 5"
INTERVAL = rf"(?:{_SLASH}|{_WORDED}|{_SE}|{_DAY_N})"
_SE_DAYS = {"seminggu": 7, "sebulan": 30, "setahun": 365, "sehari": 1, "a week": 7, "a month": 30,
            "a year": 365, "one week": 7, "fortnight": 14, "two weeks": 14}  # fmt: skip


def number(text: str) -> Fraction:
    plain = text.replace(",", "")
    whole, point, decimals = plain.partition(".")
    if plain.isascii() and whole.isdigit() and (decimals.isdigit() or not point):
        return Fraction(int(whole + decimals), 10 ** len(decimals))  # "37.8" without parsing it twice
    return Fraction(plain)


def show(x: Fraction | int) -> str:
    if isinstance(x, int) or x.denominator == 1:
        return str(x.numerator)
    # Six decimals or fewer, below a billion: the digits themselves (what the float below would give).
    if 1_000_000 % x.denominator == 0 and 0 <= x.numerator < 1_000_000_000 * x.denominator:
        whole, millionths = divmod(x.numerator * (1_000_000 // x.denominator), 1_000_000)
        return f"{whole}.{millionths:06d}".rstrip("0")
    decimal = f"{float(x):.6f}".rstrip("0").rstrip(".")
    return decimal if Fraction(decimal) == x else str(x)


def shown(text: str) -> str:
    """`show(number(text))`, without fractions where the number is plain: "1,000" is "1000", "37.80"
    "37.8" (a decimal of up to 15 digits is exact as a float, so `show` would write it so too)."""
    plain = text.replace(",", "")
    if plain.isascii():
        if plain.isdigit():
            return str(int(plain))
        whole, _, decimals = plain.partition(".")
        if whole.isdigit() and decimals.isdigit() and len(whole) <= 9 and len(decimals) <= 6:
            decimals = decimals.rstrip("0")
            return f"{int(whole)}.{decimals}" if decimals else str(int(whole))
    return show(number(text))


_RANGE_PARTS = re.compile(r"\s*(?:-|–|to|hingga|ke)\s*")


def _scaled(value: str, factor: Fraction | int) -> str:
    if value == "se":
        value = "1"
    if factor.denominator == 1 and value.isdecimal():
        return str(int(value) * factor.numerator)  # the common case, without fractions
    parts = _RANGE_PARTS.split(value)
    try:
        return "-".join(show(number(p) * factor) for p in parts if p)
    except (ValueError, ZeroDivisionError):
        return value


def _snap(days: str) -> str:
    """A month is 28 to 31 days and a year 12 months, however written: 4 weeks = 1 month = 1/12, 12/12 =
    a year, 12 weeks = 3 months. From 28 days on, intervals are counted in months of 30 days."""
    parts = []
    for part in days.split("-"):
        if part.isdecimal():  # the common case, without fractions
            days_ = int(part)
            parts.append(str(days_) if days_ < 28 else str(_round_half_even(days_ * 100, 3044) * 30))
            continue
        value = number(part)
        parts.append(show(Fraction(round(value / Fraction(3044, 100)) * 30)) if value >= 28 else show(value))
    return "-".join(parts)


def _round_half_even(numerator: int, denominator: int) -> int:
    """`round(Fraction(numerator, denominator))` in integers (a tie goes to the even neighbour)."""
    floor, remainder = divmod(numerator, denominator)
    if remainder * 2 < denominator or (remainder * 2 == denominator and floor % 2 == 0):
        return floor
    return floor + 1


def interval_days(m: re.Match[str]) -> str:
    return _snap(_interval_days(m))


def _interval_days(m: re.Match[str]) -> str:
    g = m.groupdict()
    if g.get("n1"):
        return _scaled(g["n1"], DAYS["/" + g["d1"]])
    if g.get("n2"):
        unit = g["d2"]
        if unit in _HOURS or unit.rstrip("s") in _HOURS:
            return _scaled(g["n2"], Fraction(1, 24))
        return _scaled(g["n2"], DAYS.get(unit, DAYS.get(unit.rstrip("s"), 1)))
    if g.get("n3"):
        return str(g["n3"])
    return str(_SE_DAYS[re.sub(r"\s+", " ", g["se"])])


# ---------------------------------------------------------------------------------------------
# Medication attributes
# ---------------------------------------------------------------------------------------------

_ROUTES = {
    "oral": "po,p.o.,p/o,oral,orally,by mouth,per oral,per os,per-oral,secara oral,melalui mulut,ditelan,"
    "telan,ubat makan,secara makan",
    "iv": "iv,i.v.,i/v,intravenous,intravenously,iv infusion,iv drip,ivi,intravena,secara intravena,"
    "melalui salur darah,ke dalam salur darah,ke dalam vena,melalui drip,infusion,drip,iv bolus,bolus",
    "im": "im,i.m.,i/m,intramuscular,intramuscularly,intramuskular,suntikan ke otot,ke dalam otot,"
    "suntikan otot,secara intramuskular",
    "sc": "sc,s.c.,s/c,subcut,subcutaneous,subcutaneously,sq,s.q.,subkutaneus,bawah kulit,di bawah kulit,"
    "subkutan",
    "sl": "sl,s.l.,sublingual,sublingually,bawah lidah,di bawah lidah",
    "topical": "topical,topically,apply,applied,sapu,sapukan,disapu,cream,krim,ointment,salap,gel,lotion,"
    "losyen",
    "inhaled": "inh,inhaled,inhalation,inhaler,via inhaler,mdi,neb,nebulised,nebulized,nebuliser,"
    "nebulizer,nebulisation,nebulization,sedut,disedut,via spacer,spacer",
    "rectal": "pr,p.r.,per rectum,per rectal,rectal,rectally,suppository,suppositori,supp,dubur,"
    "melalui dubur,ikut dubur,rektal,secara rektal",
    "ophthalmic": "eye drop,eye drops,eye drops,ophthalmic,titis mata,ubat titis mata,eye ointment",
    "otic": "ear drop,ear drops,otic,titis telinga,ubat titis telinga",
    "nasal": "intranasal,nasal spray,nasal,semburan hidung,spray hidung,ke dalam hidung",
    "vaginal": "pv,per vaginal,vaginal,vaginally,pessary,faraj",
    "transdermal": "transdermal,patch,tampalan",
}
_FREQUENCIES = {
    "1/day": "od,o.d.,once daily,once a day,once per day,daily,every day,each day,sekali sehari,"
    "sehari sekali,1 kali sehari,1x sehari,setiap hari,tiap hari,q24h,qd,om,o.m.,mane,nocte,o.n.,"
    "every morning,every night,each morning,each night,at night,at bedtime,hs,24 hourly",
    "2/day": "bd,b.d.,bid,b.i.d.,twice daily,twice a day,twice per day,dua kali sehari,2 kali sehari,"
    "12 hourly,12-hourly,q12h,every 12 hours,setiap 12 jam,12 jam sekali",
    "3/day": "tds,t.d.s.,tid,t.i.d.,thrice daily,thrice a day,tiga kali sehari,3 kali sehari,8 hourly,"
    "8-hourly,q8h,every 8 hours,setiap 8 jam,8 jam sekali",
    "4/day": "qid,q.i.d.,qds,q.d.s.,empat kali sehari,4 kali sehari,6 hourly,6-hourly,q6h,every 6 hours,"
    "setiap 6 jam,6 jam sekali",
    "1/week": "weekly,once weekly,once a week,every week,seminggu sekali,sekali seminggu,setiap minggu",
    "1/2day": "eod,alternate day,alternate days,every other day,selang sehari,every second day",
    "stat": "stat,statim,single dose,one dose only,once only,dos tunggal,sekali sahaja,satu dos sahaja",
    "prn": "prn,p.r.n.,as needed,when needed,as required,when required,if needed,if required,"
    "when necessary,if necessary,as necessary,bila perlu,apabila perlu,jika perlu,kalau perlu,"
    "bila-bila perlu,sos,s.o.s.,on demand,when in pain,bila sakit,apabila sakit,jika sakit,kalau sakit,"
    "when necessary,if in pain",
}
_TIMINGS = {
    "before food": "ac,a.c.,before food,before meals,before meal,before eating,before breakfast,"
    "before each meal,sebelum makan,sebelum sarapan,on an empty stomach,perut kosong,semasa perut kosong",
    "after food": "pc,p.c.,after food,after meals,after meal,after eating,after breakfast,after each meal,"
    "selepas makan,lepas makan,sesudah makan,selepas sarapan",
    "morning": "om,o.m.,mane,in the morning,every morning,each morning,morning,pagi,waktu pagi,setiap pagi,"
    "pada waktu pagi",
    "night": "on,o.n.,nocte,at night,every night,each night,at bedtime,bedtime,before bed,before sleep,"
    "hs,malam,waktu malam,setiap malam,pada waktu malam,sebelum tidur,night",
    "noon": "tengahari,tengah hari,at noon,midday,afternoon,petang",
}
_STATUS_STOP = (
    "stop,stopped,discontinue,discontinued,withhold,withheld,hold,omit,omitted,cease,ceased,avoid,"
    "no longer,not on,not taking,not to take,do not take,don't take,do not give,off,hentikan,henti,"
    "berhenti,berhentikan,dihentikan,jangan ambil,jangan makan,jangan guna,tidak perlu ambil,elakkan,"
    "tidak lagi,tak payah"
)


def _lookup(table: dict[str, str]) -> tuple[str, dict[str, str]]:
    """A regex alternation of every spelling (longest first) and spelling -> key."""
    lookup: dict[str, str] = {}
    for key, spellings in table.items():
        for s in spellings.split(","):
            lookup.setdefault(re.sub(r"\s+", " ", s.strip()), key)
    return alternation(lookup), lookup


def _alternation(table: dict[str, str]) -> tuple[re.Pattern[str], dict[str, str]]:
    body, lookup = _lookup(table)
    return re.compile(rf"(?<![\w.])(?:{body})(?![\w])"), lookup


ROUTE, _ROUTE_OF = _alternation(_ROUTES)
FREQUENCY, _FREQUENCY_OF = _alternation(_FREQUENCIES)
TIMING, _TIMING_OF = _alternation(_TIMINGS)
STATUS, _STATUS_OF = _alternation({"stopped": _STATUS_STOP})
# Each starts where one of its spellings' first words is written.
_ROUTE_AT = Anchored(ROUTE, words=first_words(_ROUTE_OF))
_FREQUENCY_AT = Anchored(FREQUENCY, words=first_words(_FREQUENCY_OF))
_TIMING_AT = Anchored(TIMING, words=first_words(_TIMING_OF))
_STATUS_AT = Anchored(STATUS, words=first_words(_STATUS_OF))
# "3 times a day", "2x/day", "3 kali sehari", "every 4 hours", "q4h", "4-6 hourly", "8 jam sekali"
_TIMES = Anchored(
    re.compile(
        rf"(?<![\w.])(?:(?P<times>{RANGE})\s*(?:x|times|kali|×)\s*(?:a|per|/|in\s+a|setiap)?\s*"
        rf"(?:day|daily|sehari|hari)\b|(?P<hourly>{RANGE})\s*-?\s*(?:hourly|jam\s+sekali)\b)"
        rf"|\b(?:every|setiap|tiap|q)\s*(?P<hours>{RANGE})\s*(?:hours?|hrs?|h|jam|hourly)\b"
    ),
    numbers=True,
    finder=r"(?:every|setiap|tiap|q)\s*\d",
)
# Dispensed amounts: "dispense 20 tabs", "bekalan 10 biji", "qty: 30", "#20", "x 20 tabs".
_QUANTITY = Anchored(
    re.compile(
        rf"(?:\b(?:dispense|dispensed|supply|supplied|qty|quantity|bekalan|jumlah|sebanyak|total of|"
        rf"beri sebanyak|bagi sebanyak)\b\s*[:=]?\s*|#\s*|\bx\s*)(?P<q>{NUM})\s*"
        rf"(?P<u>tabs?|tablets?|biji|caps?|capsules?|sachets?|bottles?|botol|pens?|vials?|tubes?|tiub|"
        rf"inhalers?|boxes|box|kotak|strips?|papan)?(?![a-z/])"
    ),
    words=words("dispense dispensed supply supplied qty quantity bekalan jumlah sebanyak total beri bagi"),
    finder=r"#|x\s*\d",
)


_WEEKDAY = re.compile(
    r"\s+(?:isnin|selasa|rabu|khamis|jumaat|sabtu|ahad|minggu|monday|tuesday|wednesday|thursday|"
    r"friday|saturday|sunday)"
)


def _frequency_of(m: re.Match[str]) -> str:
    if m["times"]:
        return f"{_scaled(m['times'], Fraction(1))}/day"
    hours = m["hours"] or m["hourly"]
    try:
        values = [number(p) for p in _RANGE_PARTS.split(hours) if p]
        return "-".join(show(Fraction(24) / v) for v in sorted(values, reverse=True)) + "/day"
    except (ValueError, ZeroDivisionError):
        return hours


# ---------------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Atom:
    slot: str
    value: str
    unit: str
    start: int  # in norm
    end: int


@dataclass(slots=True)
class _Reader:
    text: Text
    anchors: Anchors  # where in norm the patterns can start
    lex: Lexicon
    tokens: assertion.Tokens
    terms: list[Term]
    claimed: bytearray  # 1 for each character of norm already read as a typed fact
    facts: list[Fact]
    durations: list[re.Match[str]]  # read once, used by medications and what is left over

    @property
    def norm(self) -> str:
        return self.text.norm

    def add(self, kind: str, entity: str, slot: str, value: str, unit: str, start: int, end: int) -> None:
        offsets = self.text.offsets  # Text.span, inline: facts are many
        if offsets is not None:
            start, end = offsets[start], offsets[end] if end > start else offsets[start]
        self.facts.append(_fact(kind, entity, slot, value, unit, start, end))

    def claim(self, start: int, end: int) -> None:
        self.claimed[start:end] = b"\x01" * (end - start)

    def free(self, start: int, end: int) -> bool:
        return self.claimed.find(1, start, end) == -1

    def char(self, first: int, last: int) -> tuple[int, int]:
        """Norm span of tokens first..last-1."""
        return self.tokens.starts[first], self.tokens.ends[last - 1]


_SENTENCE = re.compile(r"[.;!?](?:\s|$)|\n")


def span_mask(size: int, spans: list[tuple[int, int]]) -> bytearray:
    """1 for each position inside one of `spans`: a membership test in constant time."""
    mask = bytearray(size + 1)
    for start, end in spans:
        mask[start:end] = b"\x01" * (end - start)
    return mask


def extract(original: str) -> Facts:
    text, words_of_norm = read_words(original)
    lex = load()
    toks = assertion.tokens(text.norm)
    anchors = Anchors(text.norm, words_of_norm)
    reader = _Reader(
        text,
        anchors,
        lex,
        toks,
        lex.terms(toks.words, toks.positions),
        bytearray(len(text.norm)),
        [],
        durations(anchors),
    )
    _measures(reader)
    allergic = span_mask(len(text.norm), _allergies(reader))  # where drug names are allergens
    _followups(reader)
    _medications(reader, allergic)
    _laterality(reader)
    states, phrases = _findings(reader, allergic)
    _leftover_quantities(reader)
    return Facts(text, reader.facts, toks, states, phrases, toks.positions)


# --- vital signs and labs ----------------------------------------------------------------------

_MEASURE_LINK = words(
    ": = - – ( of is was at reading ialah adalah level paras bacaan on arrival today now currently "
    "latest repeat hari ini semasa terkini"
)
_BP_VALUE = re.compile(r"\s*(?P<a>\d{2,3})\s*(?:/|over|per|\\)\s*(?P<b>\d{2,3})(?![\d/])")
# A reading, not "glucose four times daily" (how often it is measured).
_MEASURE_VALUE = re.compile(
    rf"\s*(?P<v>{NUM})(?:\s*/\s*(?P<of>10|15)\b)?(?![\d]|/\d)(?!\s*(?:x|times|kali|×|hourly)\b)"
)
# A second reading of the same measure after a comma: "BP 150/95 (L arm), 148/92 (R arm)".
_BP_AGAIN = re.compile(
    r"\s*(?:\([^()\n]{0,30}\))?\s*(?:,|and|dan|;)\s*(?P<a>\d{2,3})\s*/\s*(?P<b>\d{2,3})(?![\d/])"
)
_AGE = Anchored(
    re.compile(
        rf"(?<![\w.,/])(?P<v>{NUM})\s*(?:-\s*)?(?:years?[\s-]*old|year-old|yrs?[\s-]*old|yo|y/o|y\.o\.|"
        r"tahun|thn)(?![a-z])"
    ),
    numbers=True,
)
_TEMPERATURE = Anchored(
    re.compile(
        r"(?<![\w.,/])(?P<v>3[4-9](?:[.,]\d+)?|4[0-2](?:[.,]\d+)?)\s*(?:°\s*c|º\s*c|degrees?\s*(?:celsius|c)?|darjah(?:\s+celsius)?|celsius|c)(?![a-z])"
    ),
    numbers=True,
)


# "selama 2 tahun", "for 3 years": a duration, not an age.
_DURATION_BEFORE = re.compile(r"\b(?:for|selama|since|sejak|over|dalam|x|past|last|lepas|ago)\s*$")


_CELL_COUNTS = frozenset(("platelet", "wbc"))


def _measures(r: _Reader) -> None:
    words = r.tokens.words
    for term in r.terms:
        if term.category != "measures":
            continue
        j = term.last
        while j < len(words) and words[j] in _MEASURE_LINK and j - term.last < 3:
            j += 1
        if j >= len(words):
            continue
        at = r.tokens.starts[j]
        if term.key == "bp":
            m = _BP_VALUE.match(r.norm, at)
            if m is None:
                continue
            value = f"{m['a']}/{m['b']}"
        else:
            m = _MEASURE_VALUE.match(r.norm, at)
            if m is None:
                continue
            value = shown(m["v"])
            if term.key in _CELL_COUNTS and number(m["v"]) >= 1000:
                value = show(number(m["v"]) / 1000)  # 150,000/µL is 150 x 10^9/L
        start = r.tokens.starts[term.first]
        r.add("measure", term.key, "value", value, "", start, m.end())
        r.claim(start, m.end())
        if term.key == "bp":
            again = _BP_AGAIN.match(r.norm, m.end())
            if again is not None:
                r.add(
                    "measure", "bp", "value", f"{again['a']}/{again['b']}", "", again.start("a"), again.end()
                )
                r.claim(again.start("a"), again.end())
    for m in _AGE.matches(r.anchors):
        if r.free(m.start(), m.end()) and not _DURATION_BEFORE.search(
            r.norm, max(0, m.start() - 12), m.start()
        ):
            r.add("measure", "age", "value", shown(m["v"]), "", m.start(), m.end())
            r.claim(m.start(), m.end())
    for m in _TEMPERATURE.matches(r.anchors):
        if r.free(m.start(), m.end()):
            r.add("measure", "temperature", "value", shown(m["v"]), "", m.start(), m.end())
            r.claim(m.start(), m.end())


# --- allergies -----------------------------------------------------------------------------------

_NO_ALLERGY_RX = re.compile(
    r"\b(?:allerg\w*|alahan|alergi)\s*[:=\-]?\s*(?:none\s+known|not\s+known|nil\s+known|tiada\s+diketahui)\b|"
    r"\b(?:nkda|nka|nkfa|nkma|nkfda)\b"
    r"|\bno\s+(?:known\s+)?(?:drug\s+|food\s+|medication\s+|medicine\s+)?(?:allerg\w*|alahan|alergi)"
    r"(?:\s+to\s+(?:any\s+)?(?:drugs?|medications?|medicines?))?"
    r"|\b(?:denies|denied|deny|tiada|tidak\s+ada|tak\s+ada|takde|tiada\s+sebarang|tidak\s+mempunyai|"
    r"tidak\s+mengalami|bukan)\s+(?:any\s+|sebarang\s+|apa-apa\s+)?(?:known\s+)?"
    r"(?:drug\s+|medication\s+|food\s+)?(?:sejarah\s+)?(?:allerg\w*|alahan|alergi|alah)(?:\s+(?:ubat|makanan))?"
    r"|\b(?:allerg\w*|alahan|alergi)(?:\s+(?:ubat|makanan|to\s+drugs?|history))?\s*[:=\-]\s*"
    r"(?:nil|none|no|tiada|tidak\s+ada|nkda|negative|negatif|not\s+known|unknown|tak\s+ada)\b"
    r"|\bnot\s+allergic\s+to\s+any"
    r"|\btidak\s+alah\s+(?:kepada|pada|dengan)?\s*(?:sebarang|apa-apa)\s+ubat"
)
_NO_ALLERGY = Anchored(
    _NO_ALLERGY_RX,
    words=words("nkda nka nkfa nkma nkfda no denies denied deny tiada tidak tak takde bukan not"),
    finder="al(?:lerg|ahan|ergi)",  # "allergies:none", glued
)
_ALLERGY_CUE = Anchored(
    re.compile(
        r"\b(?:allergic\s+to|allergy\s+to|allergies\s+to|allergy|allergies|allergic|alahan|alergi|alergik|"
        r"alah|sensitive\s+to|hypersensitivity\s+to|intolerance\s+to)\b"
        r"(?:\s+(?:ubat|makanan|kepada|terhadap|pada|dengan|to|is|are|:|=|-))*"
    ),
    words=words(
        "allergic allergy allergies alahan alergi alergik alah sensitive hypersensitivity intolerance"
    ),
)
_REACTIONS = {
    "rash": "rash,rashes,ruam,kemerahan", "urticaria": "hives,urticaria,biduran,bintat",
    "angioedema": "angioedema,swelling,bengkak,facial swelling,lip swelling,bengkak muka,bengkak bibir",
    "anaphylaxis": "anaphylaxis,anaphylactic,anafilaksis,renjatan",
    "itch": "itch,itchy,itching,itchiness,gatal,gatal-gatal",
    "breathless": "sob,shortness of breath,sesak nafas,wheeze,bronchospasm",
    "gi": "vomiting,muntah,diarrhoea,cirit-birit,nausea,loya",
}  # fmt: skip
REACTION, _REACTION_OF = _alternation(_REACTIONS)


def _allergies(r: _Reader) -> list[tuple[int, int]]:
    """Allergy statements: "none known" or the agents (drug or allergen) and reactions. Returns the
    norm spans they cover, so their drug names are not read as medications."""
    spans: list[tuple[int, int]] = []
    for m in _NO_ALLERGY.matches(r.anchors):
        r.add("allergy", "allergy", "allergy", "none known", "", m.start(), m.end())
        spans.append((m.start(), m.end()))
    agent_terms = [t for t in r.terms if t.category in ("drugs", "allergens")]
    starts = r.tokens.starts
    agent_starts = [starts[t.first] for t in agent_terms]
    none_known = span_mask(len(r.norm), spans)
    for m in _ALLERGY_CUE.matches(r.anchors):
        if none_known[m.start()]:
            continue
        # Agents after the cue up to the clause's end; or the agent just before it ("penicillin allergy").
        stop = _SENTENCE.search(r.norm, m.end())
        end = stop.start() if stop else len(r.norm)
        clause_end = min(end, m.end() + 120)
        lo = bisect_left(agent_starts, m.start())
        after = agent_terms[lo : bisect_left(agent_starts, clause_end)]
        before = [
            t for t in agent_terms[max(0, lo - 1) : lo] if 0 <= m.start() - r.tokens.ends[t.last - 1] <= 2
        ]
        agents = after or before
        if not agents:
            continue
        first = min(m.start(), *(starts[t.first] for t in agents))
        last = max(m.end(), *(r.tokens.ends[t.last - 1] for t in agents))
        for t in agents:
            r.add("allergy", "allergy", "allergy", t.key, "", starts[t.first], r.tokens.ends[t.last - 1])
        for rm in REACTION.finditer(r.norm, m.end(), clause_end):
            r.add("allergy", "allergy", "reaction", _REACTION_OF[_squash(rm[0])], "", rm.start(), rm.end())
            last = max(last, rm.end())
        spans.append((first, max(last, clause_end if after else last)))
    return spans


@lru_cache(maxsize=4096)
def _squash(s: str) -> str:
    """A spelling as the lookup tables write it: any run of spaces as one."""
    return re.sub(r"\s+", " ", s)


# --- follow-up -----------------------------------------------------------------------------------

_FOLLOWUP_CUE = Anchored(
    re.compile(
        r"\b(?:review|reviewed|follow[\s-]*up|f/u|fu|tca|rv|r/v|see\s+(?:you\s+)?again|see\s+you\s+back|"
        r"return|come\s+back|come\s+again|recheck|re-check|repeat|temujanji|datang\s+semula|datang\s+balik|"
        r"datang\s+lagi|kembali|ulang\s+semula|jumpa\s+semula|jumpa\s+lagi|rawatan\s+susulan|susulan|"
        r"appointment|appt|next\s+visit|lawatan\s+seterusnya|lawatan\s+susulan|ulangan|refer|referred|"
        r"referral|rujuk|dirujuk|rujukan)\b"
    ),
    words=words(
        "review reviewed follow followup f fu tca rv r see return come recheck re repeat temujanji datang "
        "kembali ulang jumpa rawatan susulan appointment appt next lawatan ulangan refer referred referral "
        "rujuk dirujuk rujukan"
    ),
)
# The interval follows the cue within a few words ("F/u in diabetic clinic in 3 months"); more
# intervals may follow in the same sentence ("F/u: HF clinic 2/52, RP in 1/52").
_FOLLOWUP_WORDS = 7
_INTERVAL = re.compile(INTERVAL)


def _followups(r: _Reader) -> None:
    norm = r.norm
    for cue in _FOLLOWUP_CUE.matches(r.anchors):
        if not r.free(cue.start(), cue.end()):
            continue
        stop = _SENTENCE.search(norm, cue.end())
        end = stop.start() if stop else len(norm)
        near = _INTERVAL.search(norm, cue.end(), end)
        if near is None or len(norm[cue.end() : near.start()].split()) > _FOLLOWUP_WORDS:
            continue
        position = near.start()
        first = True
        while position < end:
            m = _INTERVAL.search(norm, position, end)
            if m is None or not r.free(m.start(), m.end()):
                break
            if not first and _DURATION_PREFIX.search(norm, max(0, m.start() - 10), m.start()):
                break  # "review in 2 weeks, continue for 5 days": a duration, no follow-up
            start = cue.start() if first else m.start()
            r.add("followup", "followup", "followup", interval_days(m), "day", start, m.end())
            r.claim(start, m.end())
            position, first = m.end(), False


_DURATION_PREFIX = re.compile(r"\b(?:x|for|selama|untuk)\s*$")


# --- medications ---------------------------------------------------------------------------------

_NOT_DRUGS = words(
    "exceed than over under upto titrate titrated gave received receive weighing weighs dosed kepada "
    "sebanyak bersamaan equivalent equals containing contains strength kekuatan sebiji each per take "
    "takes taking taken give given giving start started continue continued prescribe prescribed ambil "
    "makan bagi beri berikan mulakan teruskan dose dos dosage total daily max maximum up then and dan "
    "or atau increase increased reduce reduced naikkan kurangkan from dari daripada loading each "
    "every setiap with plus also juga tablet tablets biji kapsul capsule syrup sirap ubat medication "
    "medicine about approximately around only sahaja weight berat temp suhu glucose sugar level paras "
    "reading bacaan drink minum water air fluids cecair oral stat urine output intake"
)
_UNKNOWN_DRUG = Anchored(
    re.compile(
        rf"\b(?P<name>[a-z][a-z\-]{{3,}})\s+(?={RANGE}\s*(?:mg|mcg|g|ml|units|iu)\b(?!\s*/\s*(?:mmol|dl|l)\b))"
    ),
    before_numbers=True,
)


@dataclass(slots=True)
class _Mention:
    key: str
    start: int  # norm
    end: int
    stopped: bool = False


_JUST_BEFORE = re.compile(r"[\s:(\-,]*$")


def _medications(r: _Reader, allergic: bytearray) -> None:
    norm = r.norm
    starts, ends = r.tokens.starts, r.tokens.ends

    mentions = [
        _Mention(t.key, starts[t.first], ends[_name_end(r, t) - 1])
        for t in r.terms
        if t.category == "drugs" and not allergic[starts[t.first]]
    ]
    known = r.lex.keys("drugs")
    other_terms = {(starts[t.first]) for t in r.terms}
    named = span_mask(len(norm), [(x.start, x.end) for x in mentions])
    for m in _UNKNOWN_DRUG.matches(r.anchors):
        name = m["name"]
        if (
            name in _NOT_DRUGS
            or name in _ROUTE_OF
            or name in _FREQUENCY_OF
            or name in _TIMING_OF
            or name in known
            or m.start() in other_terms
            or allergic[m.start()]
            or named[m.start()] == 1
            or not r.free(m.start(), m.end())
        ):
            continue
        mentions.append(_Mention(name, m.start("name"), m.end("name")))
    mentions.sort(key=lambda x: x.start)
    # "Insulin: Actrapid", "insulin (Mixtard)": a class named right before its kind is that one medicine.
    mentions = [
        x
        for x, after in zip(mentions, [*mentions[1:], None][: len(mentions)], strict=True)
        if after is None
        or not (x.key != after.key and x.key in after.key and _JUST_BEFORE.match(norm, x.end, after.start))
    ]
    if not mentions:
        return
    mention_starts = [x.start for x in mentions]
    for sm in _STATUS_AT.matches(r.anchors):
        k = bisect_left(mention_starts, sm.end())
        after = mentions[k] if k < len(mentions) and mentions[k].start - sm.end() <= 12 else None
        if after is not None and not _BREAK.search(norm, sm.end(), after.start):
            after.stopped = True
    for sm in _STOPPED_AFTER.matches(r.anchors):
        k = bisect_right(mention_starts, sm.start()) - 1  # the last drug named before the cue
        if (
            k >= 0
            and 0 <= sm.start() - mentions[k].end <= 30
            and not _SENTENCE.search(norm, mentions[k].end, sm.start())
        ):
            mentions[k].stopped = True
    atoms = list(_atoms(r, _windows(norm, mentions)))
    assigned: dict[int, list[_Atom]] = {i: [] for i in range(len(mentions))}
    for atom in atoms:
        owner = _owner(norm, mentions, mention_starts, atom, assigned)
        if owner is not None:
            assigned[owner].append(atom)
            r.claim(atom.start, atom.end)
    for i, mention in enumerate(mentions):
        r.add("medication", mention.key, "drug", mention.key, "", mention.start, mention.end)
        r.add(
            "medication",
            mention.key,
            "status",
            "stopped" if mention.stopped else "active",
            "",
            mention.start,
            mention.end,
        )
        r.claim(mention.start, mention.end)
        times = {
            a.value for a in assigned[i] if a.slot == "timing" and a.value in ("morning", "noon", "night")
        }
        has_frequency = any(a.slot == "frequency" and a.value not in ("prn", "stat") for a in assigned[i])
        explicit = any(a.slot == "route" for a in assigned[i])
        for atom in assigned[i]:
            if atom.slot == "implied route":
                if explicit:
                    continue  # "GTN S/L tablet": what is written wins over what the form implies
                atom.slot = "route"
            r.add("medication", mention.key, atom.slot, atom.value, atom.unit, atom.start, atom.end)
        for atom in assigned[i]:
            if atom.slot == "dose" and atom.unit in _FORM_ROUTES and not explicit:
                r.add("medication", mention.key, "route", _FORM_ROUTES[atom.unit], "", atom.start, atom.end)
                explicit = True
        if times and not has_frequency and len(times) > 1:
            first = min(a.start for a in assigned[i] if a.slot == "timing")
            last = max(a.end for a in assigned[i] if a.slot == "timing")
            r.add("medication", mention.key, "frequency", f"{len(times)}/day", "", first, last)


# What a dosage form implies when no route is written: "T. Maxolon", "2 puffs", "1 suppository".
_FORM_ROUTES = {"tablet": "oral", "capsule": "oral", "sachet": "oral", "spoon": "oral", "puff": "inhaled",
                "suppository": "rectal", "patch": "transdermal"}  # fmt: skip
_FORMS = Anchored(
    re.compile(
        r"(?<![\w.])(?<!\d\s)(?:t\.|tab\.?|tabs\.?|tablet|cap\.?|caps\.?|capsule|kapsul|syr\.?|syrup|sirap|"
        r"mixture|susp\.?|suspension)(?=\s*[a-z])"
    ),
    words=("t",),  # "t."
    finder=r"tab|cap|kapsul|syr|sirap|mixture|susp",  # glued to what follows: "tablets", "caps"
)
# A drug stopped or not given, said after it: "GTN tidak diberi", "aspirin withheld".
_STOPPED_AFTER = Anchored(
    re.compile(
        r"\b(?:not\s+given|withheld|held|omitted|stopped|discontinued|ceased|tidak\s+diberi(?:kan)?|ditahan|"
        r"dihentikan|diberhentikan|tidak\s+diteruskan|not\s+continued|not\s+to\s+be\s+given)\b"
    ),
    words=words(
        "not withheld held omitted stopped discontinued ceased tidak ditahan dihentikan diberhentikan"
    ),
)
# Malay "makan" (take by mouth), not "sebelum/selepas makan" (meals).
_MAKAN = Anchored(re.compile(r"\bmakan\b(?!\s+(?:makanan|nasi|minum))"), words=("makan",))
_MEAL_BEFORE = re.compile(
    r"(?:sebelum|selepas|lepas|sesudah|semasa|bersama|waktu|jangan|tidak|boleh|selera)\s+$"
)
# "oral intake", "oral fluids": no drug's route.
_NOT_A_ROUTE = re.compile(
    r"\s*(?:intake|fluids?|feeding|feeds?|diet|hygiene|cavity|mucosa|ulcers?|thrush|lesions?)\b"
)


def _name_end(r: _Reader, term: Term) -> int:
    """A drug name's last token, less a number that is the dose ("Mixtard 30" is a brand, but in
    "mixtard thirty units" the thirty is the dose)."""
    words = r.tokens.words
    last = term.last
    if (
        last - term.first > 1
        and words[last - 1][:1].isdigit()
        and last < len(words)
        and _squash(words[last]) in DOSE_UNITS
    ):
        return last - 1
    return last


def _windows(norm: str, mentions: list[_Mention]) -> list[tuple[int, int]]:
    """Where a medication's attributes can stand: from a little before each drug's name to the end of
    the sentence after its own ("Dispense 15 caps."), merged. Attributes are only looked for there."""
    spans: list[tuple[int, int]] = []
    for x in mentions:
        end = x.end
        for _ in range(2):
            stop = _SENTENCE.search(norm, end)
            end = stop.end() if stop else len(norm)
        end = min(end, x.end + 300)
        while end < len(norm) and not norm[end - 1].isspace():
            end += 1
        start = max(0, x.start - 40)
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, end))
    return spans


def _atoms(r: _Reader, windows: list[tuple[int, int]]) -> Iterator[_Atom]:
    norm = r.norm

    def scan(rx: Anchored) -> list[re.Match[str]]:
        return rx.matches_in(r.anchors, windows)

    taken = bytearray(len(norm))

    def fresh(s: int, e: int) -> bool:
        if not r.free(s, e) or taken.find(1, s, e) != -1:
            return False
        taken[s:e] = b"\x01" * (e - s)
        return True

    for m in scan(_QUANTITY):
        if m[0].lstrip().startswith("x") and (m["u"] is None or _is_duration_at(norm, m.start("q"))):
            continue
        if fresh(m.start(), m.end()):
            yield _Atom("quantity", shown(m["q"]), "", m.start(), m.end())
    for m in scan(_TIMES):
        if fresh(m.start(), m.end()):
            yield _Atom("frequency", _frequency_of(m), "", m.start(), m.end())
    for m in scan(_FREQUENCY_AT):
        spelled = _squash(m[0])
        if spelled in _SHOUTED and not _shouted(r, m):
            continue
        if _WEEKDAY.match(norm, m.end()) or not fresh(m.start(), m.end()):
            continue  # "setiap hari Isnin" is every Monday, not every day
        yield _Atom("frequency", _FREQUENCY_OF[spelled], "", m.start(), m.end())
        timing = _TIMING_OF.get(spelled)
        if timing:
            yield _Atom("timing", timing, "", m.start(), m.end())
    for m in (m for m in r.durations if any(s <= m.start() < e for s, e in windows)):
        if fresh(m.start(), m.end()):
            yield _Atom("duration", interval_days(m), "day", m.start(), m.end())
    for m in scan(_TIMING_AT):
        spelled = _squash(m[0])
        if spelled in _SHOUTED and not _shouted(r, m):
            continue
        if fresh(m.start(), m.end()):
            yield _Atom("timing", _TIMING_OF[spelled], "", m.start(), m.end())
    for m in scan(_MAKAN):
        if not _MEAL_BEFORE.search(norm, max(0, m.start() - 10), m.start()) and fresh(m.start(), m.end()):
            yield _Atom("route", "oral", "", m.start(), m.end())
    for m in scan(_FORMS):
        if fresh(m.start(), m.end()):
            yield _Atom("implied route", "oral", "", m.start(), m.end())
    for m in scan(_ROUTE_AT):
        spelled = _squash(m[0])
        if spelled in ("pr", "p.r.") and _PULSE_AFTER.match(norm, m.end()):
            continue  # "PR 88" is a pulse rate
        if _ROUTE_OF[spelled] == "oral" and _NOT_A_ROUTE.match(norm, m.end()):
            continue
        if fresh(m.start(), m.end()):
            yield _Atom("route", _ROUTE_OF[spelled], "", m.start(), m.end())
    for m in scan(_MAX_DOSE):
        d = DOSE.match(norm, m.start("dose"))
        if d is not None and fresh(m.start(), m.end()):
            unit, factor = DOSE_UNITS[_squash(d["unit"])]
            yield _Atom("max dose", _scaled(d["value"], factor), unit, m.start(), m.end())
    for m in scan(_DOSES):
        if not fresh(m.start(), m.end()):
            continue
        unit, factor = DOSE_UNITS[_squash(m["unit"])]
        value = m["value"]
        if "/" in value:
            value = _ratio(value)
        else:
            part = _PART_OF.search(norm, max(0, m.start() - 16), m.start())
            value = _scaled(value, factor * number(part["part"]) if part else factor)
        per = m["per"]
        if per:
            unit = f"{unit}/{ {'hari': 'day', 'hr': 'h', 'hour': 'h', 'jam': 'h'}.get(per, per) }"
        yield _Atom("dose", value, unit, m.start(), m.end())


# Abbreviations that are also ordinary words count only in capitals: "ON" (at night), not "on".
_SHOUTED = frozenset(("on", "om", "hs", "ac", "pc", "o.n.", "o.m."))


def _shouted(r: _Reader, m: re.Match[str]) -> bool:
    start, end = r.text.span(m.start(), m.end())
    return r.text.original[start:end].isupper()


_MAX_DOSE = Anchored(
    re.compile(
        r"\b(?:max|max\.|maximum|not\s+(?:to\s+)?exceed|do\s+not\s+exceed|up\s+to|no\s+more\s+than|"
        r"not\s+more\s+than|tidak\s+melebihi|jangan\s+melebihi|jangan\s+lebih(?:\s+daripada)?|"
        r"tidak\s+lebih(?:\s+daripada)?|maksimum|had)\s*(?:of\s+|dose\s+|daily\s+dose\s+|"
        rf"dos\s+)?[:=]?\s*(?P<dose>{RANGE})\s*(?:{_DOSE_UNIT})(?![a-z])(?:\s*(?:/\s*(?:day|hari|24\s*h(?:ours?)?)|a\s+day|"
        r"per\s+day|in\s+24\s+hours|in\s+a\s+day|sehari|dalam\s+sehari|dalam\s+24\s+jam|daily))?"
    ),
    words=words("max maximum not do up no tidak jangan maksimum had"),
    finder=r"(?:max|maksimum|had)\w",  # glued to what follows: "max500mg", "maxdose 4 g"
)
# "half of a 10 mg tablet", "0.5 x 10 mg", "2 x 500 mg": a part or a multiple of the strength named.
_PART_OF = re.compile(
    r"(?<![\d./])(?P<part>0?\.\d+|1/2|1/4|[1-9](?=\s*[x×]))\s*(?:of\s+)?(?:a\s+|an\s+|[x×]\s*)?$"
)
# Prefixed ("x 5 hari", "for a week"), or in the clinic shorthand that needs none ("5/7", "2/52").
_DURATION_PREFIXED = Anchored(
    re.compile(
        rf"(?P<prefix>\b(?:x|for|selama|untuk|over|dalam\s+tempoh|during|diteruskan|sehingga|until)\s*){INTERVAL}"
    ),
    finder="x|for|selama|untuk|over|dalam|during|diteruskan|sehingga|until",  # "x5/7", glued
)
_DURATION_SHORTHAND = Anchored(re.compile(rf"(?<![\w.]){_SLASH}"), numbers=True)


def durations(at: Anchors) -> list[re.Match[str]]:
    """Every duration, in order, none overlapping another: prefixed ("x 5 hari", "for a week"), or in
    the clinic shorthand that needs none ("5/7", "2/52")."""
    found = sorted(
        [*_DURATION_PREFIXED.matches(at), *_DURATION_SHORTHAND.matches(at)], key=lambda m: m.start()
    )
    out: list[re.Match[str]] = []
    for m in found:
        if not out or m.start() >= out[-1].end():
            out.append(m)
    return out


def _ratio(value: str) -> str:
    """ "1/2" as "0.5"; a pair that is no fraction ("49/51", a combination's two strengths) as written."""
    try:
        return show(Fraction(value)) if value.startswith("1/") else value
    except (ValueError, ZeroDivisionError):
        return value


_DURATION_AT = re.compile(rf"{_SLASH}|{_WORDED}")
_BREAK = re.compile(r"[.;,\n]")
_PULSE_AFTER = re.compile(r"\s*[:=]?\s*\d")  # "PR 88"


def _is_duration_at(norm: str, pos: int) -> bool:
    return _DURATION_AT.match(norm, pos) is not None


_GLUE = re.compile(r"^[\s(]*(?:of|of the|daripada|ubat|dose of|dos)?\s*$")
_CLAUSE = re.compile(r"[;\n]|[.,](?!\d)|\band\b|\bdan\b|\bthen\b|\bkemudian\b")


def _owner(
    norm: str,
    mentions: list[_Mention],
    mention_starts: list[int],
    atom: _Atom,
    assigned: dict[int, list[_Atom]],
) -> int | None:
    """Which medication an attribute belongs to: the one before it in the same stretch of text, or the one
    right after it when it stands just before a drug ("500 mg parasetamol", "IV ceftriaxone")."""
    after = bisect_left(mention_starts, atom.end)
    before = bisect_right(mention_starts, atom.start) - 1
    if before >= 0 and mentions[before].end > atom.start:
        # Inside a drug's name: a route the vocabulary wrote into it ("IV omeprazole") is the drug's.
        return before if atom.slot == "route" else None
    forward_ok = after < len(mentions) and _GLUE.match(norm[atom.end : mentions[after].start]) is not None
    back = before if before >= 0 else None
    if back is not None:
        gap = norm[mentions[back].end : atom.start]
        # An attribute stays in its drug's sentence; "Dispense 15 caps." may follow it.
        if len(gap) > 160 or (_SENTENCE.search(gap) and atom.slot != "quantity"):
            back = None
    if forward_ok and (
        back is None
        or _CLAUSE.search(norm[mentions[back].end : atom.start])
        or any(a.slot == atom.slot for a in assigned[back])
    ):
        return after
    if back is not None:
        return back
    return None


# --- laterality ----------------------------------------------------------------------------------

_SIDES = {
    "left": "left", "lt": "left", "kiri": "left", "right": "right", "rt": "right", "kanan": "right",
    "bilateral": "both", "bilaterally": "both", "both": "both", "b/l": "both", "kedua-dua": "both",
    "kedua": "both", "l": "left", "r": "right",
}  # fmt: skip
_SIDE_LINK = words(
    "- sided side sebelah belah bahagian of the upper lower atas bawah iliac lateral medial anterior "
    "posterior"
)


# Words after "left"/"right" that are no part of the body: "right away", "left the clinic".
_NOT_SITES = words(
    "away now here there the a an to after before over behind alone out off at it them him her and or "
    "lah this that is was be been for with from of by in on dose one time answer thing hand-side click "
    "turn ok okay sebelah belah dan atau"
)


def _laterality(r: _Reader) -> None:
    """A side with what it is the side of: a listed site or finding next to it ("left knee", "lutut kiri",
    "R pleural effusion"), else the word it qualifies ("R base", "bilateral pitting oedema"), else
    nothing ("on the left")."""
    words = r.tokens.words
    n = len(words)
    anchors = [t for t in r.terms if t.category in ("sites", "findings")]
    by_first = {t.first: t for t in anchors}
    by_last = {t.last - 1: t for t in anchors}
    skip = -1
    for i in r.tokens.where(_SIDES.keys()):
        w = words[i]
        side = _SIDES[w]
        if i <= skip:
            continue
        if w in ("l", "r", "lt", "rt") and not _shouted_token(r, i):
            continue
        # "left and right", "kiri dan kanan": both sides.
        if (
            side in ("left", "right")
            and i + 2 < n
            and words[i + 1] in ("and", "dan", "&", "/", "or", "atau")
            and _SIDES.get(words[i + 2]) in ("left", "right")
            and _SIDES.get(words[i + 2]) != side
        ):
            side, skip = "both", i + 2
        after = i + 1
        while after < n and after - i <= 3 and words[after] in _SIDE_LINK and after not in by_first:
            after += 1
        before = i - 1
        while before >= 0 and i - before <= 3 and words[before] in _SIDE_LINK and before not in by_last:
            before -= 1
        # English puts the side before the site, Malay after it ("lutut kiri").
        after = max(after, skip + 1) if skip > i else after
        order = ((before, by_last), (after, by_first))
        if w not in ("kiri", "kanan"):
            order = (order[1], order[0])
        term = next((index[j] for j, index in order if j in index), None)
        if term is not None:
            key = term.key
            first, last = min(i, term.first), max(i + 1, term.last)
        else:
            j = order[0][0]
            word = words[j] if 0 <= j < n else ""
            if word.isalpha() and len(word) > 1 and word not in _NOT_SITES and word not in _SIDES:
                key = word[:-1] if len(word) > 4 and word.endswith("s") else word
                first, last = min(i, j), max(i, j) + 1
            elif (i > 0 and words[i - 1] in ("the", "on", "sebelah", "belah", "bahagian")) or (
                i + 1 < n and words[i + 1] in ("sided", "side")
            ):
                key, first, last = "", i, i + 1
            else:
                continue
        if w == "both" and not key:
            continue
        start, end = r.char(first, last)
        r.add("laterality", key, "side", side, "", start, end)


def _shouted_token(r: _Reader, i: int) -> bool:
    start, end = r.text.span(r.tokens.starts[i], r.tokens.ends[i])
    return r.text.original[start:end][:1].isupper()


# --- findings and test results ---------------------------------------------------------------------

_INHERENTLY = {
    "afebrile": ("fever", "absent"),
    "apyrexial": ("fever", "absent"),
    "febrile": ("fever", "present"),
}


def _findings(
    r: _Reader, allergic: bytearray
) -> tuple[list[assertion.State], list[tuple[tuple[str, ...], assertion.State]]]:
    t = r.tokens
    known: dict[int, Term] = {x.first: x for x in r.terms if x.category in ("findings", "tests")}
    states, scopes = assertion.states(t, {x.last - 1 for x in known.values()})

    seen: set[int] = set()
    for first, term in known.items():
        if allergic[t.starts[first]]:
            continue
        # A cue may reach only part of a term ("kahak AFB ... negatif" reaches "AFB").
        if term.last - term.first == 1:  # most terms are one word
            state = states[term.first]
        else:
            inside = range(term.first, term.last)
            state = next((states[k] for k in inside if states[k] != "present"), "present")
        if term.category == "tests" and state == "present":
            state = _result_after(t, term, set(known)) or state
        slot = "result" if term.category == "tests" else "assertion"
        start, end = r.char(term.first, term.last)
        r.add("finding", term.key, slot, state, "", start, end)
        seen.update(range(term.first, term.last))
    for i in t.where(_INHERENTLY.keys()):
        if i not in seen:
            concept, inherent = _INHERENTLY[t.words[i]]
            start, end = r.char(i, i + 1)
            r.add("finding", concept, "assertion", inherent, "", start, end)
    # Findings no vocabulary lists: each phrase a cue governs is looked up on both sides by its words.
    phrases: list[tuple[tuple[str, ...], assertion.State]] = [
        (p, s) for p, s in assertion.scope_phrases(t, scopes) if s != "hypothetical"
    ]
    return states, phrases


_RESULTS: dict[str, assertion.State] = {
    "positive": "present", "+ve": "present", "reactive": "present", "detected": "present",
    "positif": "present", "reaktif": "present", "dikesan": "present",
    "negative": "absent", "-ve": "absent", "non-reactive": "absent", "nonreactive": "absent",
    "negatif": "absent", "undetected": "absent",
}  # fmt: skip
_RESULT_STOPS = frozenset((".", ";", "\n", ",", "but", "tetapi", "and", "dan"))


def _result_after(t: assertion.Tokens, term: Term, term_starts: set[int]) -> assertion.State | None:
    """A test's result said a few words later, as dictated: "the covid antigen came back negative",
    "ujian denggi keputusannya positif". Stops at punctuation and at the next listed test or finding."""
    for k in range(term.last, min(term.last + 8, len(t.words))):
        w = t.words[k]
        if w in _RESULT_STOPS or k in term_starts or t.breaks[k]:
            return None
        if w in ("not", "tidak", "tak") and k + 1 < len(t.words) and t.words[k + 1] in _RESULTS:
            return "absent" if _RESULTS[t.words[k + 1]] == "present" else "present"
        if w in _RESULTS:
            return _RESULTS[w]
    return None


# --- any other number with a unit ---------------------------------------------------------------------

_OTHER_UNITS = {
    "mmhg": "mmhg,mm hg", "%": "%,percent,per cent,peratus", "/min": "bpm,/min,per min,per minute,x/min",
    "mmol/l": "mmol/l,mmol", "mg/dl": "mg/dl", "kg": "kg,kilogram,kilograms,kgs", "cm": "cm", "mm": "mm",
    "year": "year old,years old,year-old,tahun", "l/day": "l/day,litres a day,liter sehari",
}  # fmt: skip
_OTHER_BODY, _OTHER_OF = _lookup(_OTHER_UNITS)
_OTHER = Anchored(
    re.compile(rf"(?<![\w.,/])(?P<v>{RANGE}|\d+/\d+)\s*(?P<u>{_OTHER_BODY})(?![a-z])"), numbers=True
)


# Routes said in words no other sense shares ("ditelan", "disapu", "intravenously"), for a medicine left
# unnamed; abbreviations and dosage forms ("IM", "cream") count only beside a named drug.
_PLAIN_ROUTE = Anchored(
    re.compile(
        r"\b(?:orally|by\s+mouth|ditelan|telan|melalui\s+mulut|intravenously|intravenous|intramuscularly|"
        r"intramuscular|subcutaneously|subcutaneous|sublingually|disapu|sapukan|sapu|topically|"
        r"rectally|per\s+rectum|melalui\s+dubur|ke\s+dalam\s+salur\s+darah|suntikan\s+ke\s+otot|"
        r"bawah\s+kulit|bawah\s+lidah|inhaled|nebulised|nebulized)\b"
    ),
    words=words(
        "orally by ditelan telan melalui intravenously intravenous intramuscularly intramuscular "
        "subcutaneously subcutaneous sublingually disapu sapukan sapu topically rectally per ke suntikan "
        "bawah inhaled nebulised nebulized"
    ),
)
# "daily weight", "setiap hari": said of anything, not only of a medicine.
_LOOSE_DAILY = frozenset(("daily", "every day", "each day", "setiap hari", "tiap hari"))


def _leftover_quantities(r: _Reader) -> None:
    """Durations no drug owns ("sijil cuti sakit selama 2 hari", "backslab for 3 weeks"), doses no drug
    name stands before, and other numbers with a unit, aligned by their unit."""
    for m in r.durations:
        if r.free(m.start(), m.end()):
            r.add("quantity", "duration", "duration", interval_days(m), "day", m.start(), m.end())
            r.claim(m.start(), m.end())
    # Instructions for a medicine left unnamed ("ambil ubat ini selepas makan", "take 2 tablets three
    # times a day"): how often, and before or after food. Times of day alone are left out (history
    # speaks of mornings too).
    for m in _TIMES.matches(r.anchors):
        if r.free(m.start(), m.end()):
            r.add("quantity", "instruction", "frequency", _frequency_of(m), "", m.start(), m.end())
            r.claim(m.start(), m.end())
    for m in _FREQUENCY_AT.matches(r.anchors):
        spelled = _squash(m[0])
        value = _FREQUENCY_OF[spelled]
        if value.endswith("/day") and spelled not in _LOOSE_DAILY and _instruction_at(r, m, spelled):
            r.add("quantity", "instruction", "frequency", value, "", m.start(), m.end())
            r.claim(m.start(), m.end())
    for m in _TIMING_AT.matches(r.anchors):
        spelled = _squash(m[0])
        value = _TIMING_OF[spelled]
        if value in ("before food", "after food") and _instruction_at(r, m, spelled):
            r.add("quantity", "instruction", "timing", value, "", m.start(), m.end())
            r.claim(m.start(), m.end())
    for m in _PLAIN_ROUTE.matches(r.anchors):
        if r.free(m.start(), m.end()) and not _NOT_A_ROUTE.match(r.norm, m.end()):
            r.add("quantity", "instruction", "route", _ROUTE_OF[_squash(m[0])], "", m.start(), m.end())
            r.claim(m.start(), m.end())
    for m in _DOSES.matches(r.anchors):
        if r.free(m.start(), m.end()):
            unit, factor = DOSE_UNITS[_squash(m["unit"])]
            r.add("quantity", unit, "value", _scaled(m["value"], factor), unit, m.start(), m.end())
            r.claim(m.start(), m.end())
    for m in _OTHER.matches(r.anchors):
        if r.free(m.start(), m.end()):
            unit = _OTHER_OF.get(_squash(m["u"]), m["u"])
            r.add("quantity", unit, "value", _scaled(m["v"], Fraction(1)), unit, m.start(), m.end())
            r.claim(m.start(), m.end())


def _instruction_at(r: _Reader, m: re.Match[str], spelled: str) -> bool:
    return (spelled not in _SHOUTED or _shouted(r, m)) and r.free(m.start(), m.end())
