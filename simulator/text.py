"""Deterministic generators of synthetic clinical text (SOAP notes, answers, transcripts, guidelines)."""

from __future__ import annotations

import re
from random import Random
from typing import Literal

from simulator.vocab import CONDITIONS, FREQUENCIES, Condition, Med, Pair

Lang = Literal["en", "ms"]
Kind = Literal["soap", "guideline", "chat"]

_MALAY_MARKERS = frozenset(
    (
        "pesakit",
        "sakit",
        "demam",
        "batuk",
        "ubat",
        "tidak",
        "tiada",
        "saya",
        "doktor",
        "melayu",
        "selama",
        "sejak",
        "nafas",
        "kepala",
        "perut",
        "sesak",
        "hari",
        "minggu",
        "bagaimana",
        "apakah",
        "tolong",
        "sila",
        "rawatan",
        "nota",
    )
)
_WORD = re.compile(r"[a-z]+")


def detect_language(prompt: str) -> Lang:
    words = _WORD.findall(prompt.lower())
    if "bahasa melayu" in prompt.lower() or "in malay" in prompt.lower():
        return "ms"
    hits = sum(word in _MALAY_MARKERS for word in words)
    return "ms" if hits >= 1 else "en"


def detect_kind(prompt: str) -> Kind:
    lowered = prompt.lower()
    if "soap" in lowered:
        return "soap"
    if "guideline" in lowered or "cpg" in lowered or "garis panduan" in lowered:
        return "guideline"
    return "chat"


def condition_for(prompt: str) -> Condition | None:
    """The condition a prompt talks about, so an answer about dengue mentions dengue."""
    lowered = prompt.lower()
    for condition in CONDITIONS:
        if any(keyword in lowered for keyword in condition.keywords):
            return condition
    return None


def answer_for_prompt(rng: Random, prompt: str) -> str:
    """The whole answer a chat model would give to `prompt` (every message's text joined)."""
    lang = detect_language(prompt)
    kind = detect_kind(prompt)
    condition = condition_for(prompt)
    if kind == "soap":
        return soap_note(rng, lang, condition)
    if kind == "guideline":
        return guideline_snippet(rng, lang, condition)
    return chat_answer(rng, lang, condition)


def _t(pair: Pair, lang: Lang) -> str:
    return pair[0] if lang == "en" else pair[1]


def _join(items: list[str], lang: Lang) -> str:
    if len(items) == 1:
        return items[0]
    last = " and " if lang == "en" else " dan "
    return ", ".join(items[:-1]) + last + items[-1]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _vitals(rng: Random, condition: Condition, lang: Lang) -> str:
    systolic = rng.randint(*condition.systolic)
    diastolic = rng.randint(max(60, systolic // 2), min(systolic - 30, 100))
    temp = round(rng.uniform(*condition.temp), 1)
    temp_label = "Temp" if lang == "en" else "Suhu"
    parts = [
        f"BP {systolic}/{diastolic} mmHg",
        f"HR {rng.randint(64, 104)} bpm",
        f"{temp_label} {temp} °C",
        f"SpO2 {rng.randint(95, 99)}%",
    ]
    if rng.random() < 0.5:
        parts.append(f"RR {rng.randint(14, 22)}/min")
    return ", ".join(parts)


def _prescription(rng: Random, med: Med, lang: Lang) -> str:
    dose = rng.choice(med.doses)
    frequency = _t(FREQUENCIES[rng.choice(med.frequencies)], lang)
    days = rng.choice(med.days)
    if days == 0:
        tail = "long-term" if lang == "en" else "jangka panjang"
    else:
        tail = f"for {days} days" if lang == "en" else f"selama {days} hari"
    return f"{med.name} {dose} {frequency} {tail}"


def _negations(rng: Random, condition: Condition, lang: Lang) -> list[str]:
    chosen = rng.sample(condition.negatives, k=min(len(condition.negatives), rng.randint(1, 3)))
    if lang == "en":
        forms = ("Denies {}.", "No {}.", "Patient denies {}.", "No history of {}.")
    else:
        forms = ("Tiada {}.", "Pesakit menafikan {}.", "Tidak mengalami {}.", "Tiada sejarah {}.")
    return [rng.choice(forms).format(_t(n, lang)) for n in chosen]


def soap_note(rng: Random, lang: Lang, condition: Condition | None = None) -> str:
    condition = condition or rng.choice(CONDITIONS)
    age = rng.randint(18, 80)
    days = rng.randint(1, 7)
    complaints = [_t(c, lang) for c in rng.sample(condition.complaints, k=min(2, len(condition.complaints)))]
    extra = _t(rng.choice(condition.complaints), lang)
    if lang == "en":
        opener = rng.choice(
            (
                "{age}-year-old patient presents with {c} for {d} days.",
                "Patient, {age} years old, complains of {c} for the past {d} days.",
                "{age}-year-old patient with {c} since {d} days ago.",
            )
        )
        extra_line = rng.choice(("Also reports {}.", "Reports {} as well.", "Additionally has {}."))
    else:
        opener = rng.choice(
            (
                "Pesakit berumur {age} tahun datang dengan {c} selama {d} hari.",
                "Pesakit {age} tahun mengadu {c} sejak {d} hari lepas.",
                "Pesakit berumur {age} tahun mengalami {c} sejak {d} hari.",
            )
        )
        extra_line = rng.choice(("Pesakit juga mengadu {}.", "Ada juga {}.", "Pesakit turut mengalami {}."))
    subjective = [opener.format(age=age, c=_join(complaints, lang), d=days)]
    if extra not in complaints:
        subjective.append(extra_line.format(extra))
    subjective.extend(_negations(rng, condition, lang))

    objective = [_vitals(rng, condition, lang) + "."]
    objective.extend(_t(e, lang) + "." for e in rng.sample(condition.exam, k=len(condition.exam)))

    meds = rng.sample(condition.meds, k=rng.randint(1, len(condition.meds)))
    plan = [_prescription(rng, m, lang) + "." for m in meds]
    plan.append(_t(rng.choice(condition.advice), lang) + ".")
    review = rng.randint(2, 14)
    plan.append(
        rng.choice((f"Review in {review} days.", f"Follow up in {review} days if symptoms persist."))
        if lang == "en"
        else rng.choice(
            (
                f"Datang semula dalam {review} hari.",
                f"Temujanji susulan dalam {review} hari jika simptom berterusan.",
            )
        )
    )
    return "\n".join(
        (
            "S: " + " ".join(subjective),
            "O: " + " ".join(objective),
            "A: " + _t(condition.diagnosis, lang) + ".",
            "P: " + " ".join(plan),
        )
    )


def chat_answer(rng: Random, lang: Lang, condition: Condition | None = None) -> str:
    condition = condition or rng.choice(CONDITIONS)
    diagnosis = _t(condition.diagnosis, lang)
    complaints = [_t(c, lang) for c in rng.sample(condition.complaints, k=min(2, len(condition.complaints)))]
    negatives = [_t(n, lang) for n in condition.negatives]
    med = _prescription(rng, rng.choice(condition.meds), lang)
    advice = _t(rng.choice(condition.advice), lang)
    guideline = _t(rng.choice(condition.guideline), lang)
    if lang == "en":
        sentences = [
            rng.choice(
                (
                    f"{diagnosis} is the most likely diagnosis given {_join(complaints, lang)}.",
                    f"With {_join(complaints, lang)}, the picture fits {diagnosis.lower()}.",
                    f"These symptoms ({_join(complaints, lang)}) are consistent with {diagnosis.lower()}.",
                )
            ),
            rng.choice(
                (f"Suggested treatment: {med}.", f"A reasonable plan is {med}.", f"You may prescribe {med}.")
            ),
            f"{advice}.",
            rng.choice((f"Note that {guideline[0].lower()}{guideline[1:]}.", f"{guideline}.")),
            rng.choice(
                (
                    f"Refer urgently if there is {_join(negatives, lang)}.",
                    f"Red flags to ask about: {_join(negatives, lang)}.",
                )
            ),
        ]
    else:
        sentences = [
            rng.choice(
                (
                    f"{diagnosis} ialah diagnosis yang paling mungkin berdasarkan {_join(complaints, lang)}.",
                    f"Dengan {_join(complaints, lang)}, keadaan ini sesuai dengan {diagnosis.lower()}.",
                    f"Simptom {_join(complaints, lang)} menunjukkan {diagnosis.lower()}.",
                )
            ),
            rng.choice((f"Rawatan yang dicadangkan: {med}.", f"Boleh beri {med}.", f"Pelan rawatan: {med}.")),
            f"{advice}.",
            f"{guideline}.",
            rng.choice(
                (
                    f"Rujuk segera jika ada {_join(negatives, lang)}.",
                    f"Tanda bahaya yang perlu ditanya: {_join(negatives, lang)}.",
                )
            ),
        ]
    if rng.random() < 0.4:
        sentences.insert(
            2,
            _vitals(rng, condition, lang) + " is typical."
            if lang == "en"
            else "Bacaan biasa: " + _vitals(rng, condition, lang) + ".",
        )
    return " ".join(sentences)


def guideline_snippet(rng: Random, lang: Lang, condition: Condition | None = None) -> str:
    """A retrieval document: a short excerpt in the style of a Malaysian CPG."""
    condition = condition or rng.choice(CONDITIONS)
    year = rng.randint(2015, 2024)
    number = rng.randint(1, 25)
    heading = (
        f"CPG Management of {condition.diagnosis[0]} ({year}), recommendation {number}:"
        if lang == "en"
        else f"CPG Pengurusan {condition.diagnosis[1]} ({year}), cadangan {number}:"
    )
    statements = [_t(s, lang) + "." for s in rng.sample(condition.guideline, k=len(condition.guideline))]
    med = rng.choice(condition.meds)
    dose = rng.choice(med.doses)
    frequency = _t(FREQUENCIES[rng.choice(med.frequencies)], lang)
    statements.append(
        f"{med.name} {dose} {frequency}." if lang == "en" else f"Dos biasa: {med.name} {dose} {frequency}."
    )
    return heading + " " + " ".join(statements)


def consultation(
    rng: Random, lang: Lang, min_words: int = 0, condition: Condition | None = None
) -> list[str]:
    """The utterances of a doctor-patient consultation, in speaking order (no speaker labels,
    the way a speech model returns them)."""
    condition = condition or rng.choice(CONDITIONS)
    c1, c2 = (_t(c, lang) for c in rng.sample(condition.complaints, k=2))
    days = rng.randint(1, 7)
    med = rng.choice(condition.meds)
    dose = rng.choice(med.doses)
    frequency = _t(FREQUENCIES[rng.choice(med.frequencies)], lang)
    systolic = rng.randint(*condition.systolic)
    diastolic = rng.randint(70, 95)
    temp = round(rng.uniform(*condition.temp), 1)
    review = rng.randint(2, 7)
    turns: list[str] = []
    if lang == "en":
        turns.append(
            rng.choice(
                (
                    "Good morning, please have a seat. What brings you in today?",
                    "Hello, how can I help you today?",
                    "Hi, what seems to be the problem?",
                )
            )
        )
        turns.append(f"I have had {c1} and {c2} for {days} days, doctor.")
        for negative in rng.sample(condition.negatives, k=min(2, len(condition.negatives))):
            turns.append(
                rng.choice(("Any {}?", "Do you have any {}?", "How about {}?")).format(_t(negative, lang))
            )
            turns.append(rng.choice(("No, doctor.", "No, none of that.", "No, I don't have that.")))
        turns.append("Okay, let me check your blood pressure and temperature first.")
        turns.append(f"Your blood pressure is {systolic} over {diastolic}, temperature {temp} degrees.")
        turns.append(f"This looks like {_t(condition.diagnosis, lang).lower()}.")
        turns.append(f"I will give you {med.name} {dose}, take it {frequency}.")
        turns.append("Before or after food?")
        turns.append("After food is better.")
        turns.append(_t(rng.choice(condition.advice), lang) + ".")
        turns.append(f"If it is not better in {review} days, come back and see me.")
        turns.append(rng.choice(("Okay, thank you doctor.", "Alright, thanks doctor.")))
    else:
        turns.append(
            rng.choice(
                (
                    "Selamat pagi, silakan duduk. Apa masalah hari ini?",
                    "Okay, apa yang boleh saya bantu hari ini?",
                    "Hai, ada rasa tak sihat ke?",
                )
            )
        )
        turns.append(f"Saya ada {c1} dan {c2} sejak {days} hari lepas, doktor.")
        for negative in rng.sample(condition.negatives, k=min(2, len(condition.negatives))):
            turns.append(
                rng.choice(("Ada {} tak?", "Ada rasa {}?", "Macam mana dengan {}?")).format(
                    _t(negative, lang)
                )
            )
            turns.append(rng.choice(("Tak ada, doktor.", "Tiada, doktor.", "Tidak ada rasanya.")))
        turns.append("Okay, saya check tekanan darah dan suhu dulu ya.")
        turns.append(f"Tekanan darah {systolic} over {diastolic}, suhu {temp} darjah.")
        turns.append(f"Ini mungkin {_t(condition.diagnosis, lang).lower()}.")
        turns.append(f"Saya bagi {med.name} {dose}, makan {frequency}.")
        turns.append("Ubat ni makan sebelum atau selepas makan?")
        turns.append("Selepas makan lebih baik.")
        turns.append(_t(rng.choice(condition.advice), lang) + ".")
        turns.append(f"Kalau tak baik dalam {review} hari, datang semula ya.")
        turns.append(rng.choice(("Baik, terima kasih doktor.", "Okay, terima kasih ya doktor.")))
    # Longer recordings hold more history-taking; it goes before the examination.
    history = rng.sample(_HISTORY, k=len(_HISTORY))
    asked = 0
    words = sum(len(t.split()) for t in turns)
    while words < min_words:
        question, answer = history[asked % len(history)]
        asked += 1
        fill = {"c": _t(rng.choice(condition.complaints), lang), "n": rng.randint(1, 12)}
        exchange = [_t(question, lang).format(**fill), _t(answer, lang).format(**fill)]
        turns[-9:-9] = exchange
        words += sum(len(t.split()) for t in exchange)
    return turns


_HISTORY: tuple[tuple[Pair, Pair], ...] = (
    (
        ("Are you allergic to any medicine?", "Ada alahan pada apa-apa ubat?"),
        ("No, no allergies.", "Tiada alahan ubat, doktor."),
    ),
    (
        ("Are you taking any other medicine now?", "Ada ambil ubat lain sekarang?"),
        ("Only vitamins, {n} tablets a week.", "Cuma vitamin, {n} biji seminggu."),
    ),
    (
        ("How is your sleep?", "Tidur okay tak?"),
        ("Not so good because of the {c}.", "Kurang sikit sebab {c}."),
    ),
    (
        ("How is your appetite?", "Selera makan macam mana?"),
        ("A bit less than usual.", "Kurang sedikit dari biasa."),
    ),
    (
        ("Anyone at home with the same problem?", "Ada sesiapa di rumah sakit yang sama?"),
        ("No, not that I know.", "Tidak ada rasanya."),
    ),
    (("Do you smoke?", "Merokok tak?"), ("No, I don't smoke.", "Tak, saya tak merokok.")),
    (
        ("When did the {c} get worse?", "Bila {c} jadi teruk?"),
        ("About {n} days ago.", "Lebih kurang {n} hari lepas."),
    ),
    (
        ("Have you taken anything for it?", "Ada makan apa-apa ubat untuk ni?"),
        ("Paracetamol 500 mg, {n} times.", "Paracetamol 500 mg, {n} kali."),
    ),
    (
        ("Did you travel anywhere recently?", "Ada pergi mana-mana baru-baru ni?"),
        ("No, I stayed at home.", "Tak, saya duduk rumah saja."),
    ),
)


def transcript(rng: Random, lang: Lang, min_words: int = 0) -> str:
    return " ".join(consultation(rng, lang, min_words))
