"""Identifiers out of stored clinical text: Malaysian IC numbers, Malaysian phone numbers, e-mail addresses.

Pure. One `Redactor` per pair, applied to the request and to every side, so the same value gets the
same placeholder on both sides (`[IC-1]`, `[PHONE-2]`, `[EMAIL-1]`: numbered in order of first
appearance within the pair, never derived from the value) and a difference between the sides stays a
difference. Placeholders contain no quote or backslash, so JSON stays JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any, Literal

Kind = Literal["ic", "phone", "email"]
KINDS: tuple[Kind, ...] = ("ic", "phone", "email")

# MyKad / MyKid: YYMMDD-PB-#### (birth date, place-of-birth code, serial), with dashes, spaces or none.
# The month must be 01-12, the day 01-31 and the place code not 00, which keeps doses, lab values
# and most long reference numbers out; a 12-digit run that passes is redacted (better safe than sorry).
_IC = re.compile(
    r"(?<![\w+@])(?<!\d[-./])"
    r"(\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]))"
    r"(?P<sep>[- ]?)"
    r"(0[1-9]|[1-9]\d)"
    r"(?P=sep)"
    r"(\d{4})"
    r"(?![\w@]|[-./]\d)"
)

# A Malaysian number: +60 / 60 / 0 and an area or mobile code (perhaps in parentheses), then one to
# three groups of at least three digits split by single spaces or dashes (never across lines). Single
# digits apart ("0 3 10 15") are never a phone number; `_national` checks what the digits add up to.
_PHONE = re.compile(
    r"(?<![\w+@])(?<!\d[-./])"
    r"(?:"
    r"(?:\+ ?6 ?0|\(\+?60\)|60)[ -]?(?:\(0\)[ -]?)?\(?0?\d{1,2}\)?"
    r"|\(?0\d{1,2}\)?"
    r")"
    r"(?:[ -]?\d{3,8}){1,3}"
    r"(?![\w@]|[-./:,]\d)"
)

_EMAIL = re.compile(
    r"(?<![\w.+-])"
    r"[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?"
    r"@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}"
    r"(?![\w-])"
)


def _national(digits: str, has_country_code: bool) -> str | None:
    """The national significant number of a Malaysian phone number, or None if it is not one."""
    if has_country_code:
        digits = digits.removeprefix("60")
        digits = digits.removeprefix("0")  # "+60 (0)12…" and "+6012…" both occur
    elif digits.startswith("0"):
        digits = digits[1:]
    else:
        return None
    if not digits:
        return None
    lead = digits[0]
    if lead == "1":  # mobile: 01X + 7 digits, 011/015 + 8
        return digits if len(digits) in (9, 10) else None
    if lead == "3":  # Klang Valley: 03 + 8 digits
        return digits if len(digits) == 9 else None
    if lead in "45679":  # the other Peninsular areas: 0A + 7 digits
        return digits if len(digits) == 8 else None
    if lead == "8":  # Sabah and Sarawak: 08X + 6 digits
        return digits if len(digits) == 8 else None
    return None


class Redactor:
    """Replaces the chosen kinds of identifier with numbered placeholders, the same value with the
    same placeholder for as long as this redactor lives (one pair)."""

    def __init__(self, kinds: Iterable[Kind]) -> None:
        chosen = set(kinds)
        unknown = chosen - set(KINDS)
        if unknown:
            raise ValueError(f"unknown identifier kinds: {sorted(unknown)}")
        # IC numbers first: twelve digits that are an IC must not be half-taken as a phone number.
        self._steps: list[Callable[[str], str]] = []
        if "ic" in chosen:
            self._steps.append(self._ic)
        if "phone" in chosen:
            self._steps.append(self._phone)
        if "email" in chosen:
            self._steps.append(self._email)
        self._seen: dict[tuple[str, str], str] = {}
        self._counts: dict[str, int] = {}

    def __bool__(self) -> bool:
        return bool(self._steps)

    def _placeholder(self, label: str, value: str) -> str:
        key = (label, value)
        found = self._seen.get(key)
        if found is None:
            self._counts[label] = self._counts.get(label, 0) + 1
            found = self._seen[key] = f"[{label}-{self._counts[label]}]"
        return found

    def _ic(self, text: str) -> str:
        return _IC.sub(lambda m: self._placeholder("IC", m.group(1) + m.group(3) + m.group(4)), text)

    def _phone(self, text: str) -> str:
        def one(m: re.Match[str]) -> str:
            raw = m.group(0)
            digits = re.sub(r"\D", "", raw)
            national = _national(digits, has_country_code=not raw.lstrip("(").startswith("0"))
            return raw if national is None else self._placeholder("PHONE", national)

        return _PHONE.sub(one, text)

    def _email(self, text: str) -> str:
        return _EMAIL.sub(lambda m: self._placeholder("EMAIL", m.group(0).lower()), text)

    def text(self, text: str) -> str:
        for step in self._steps:
            text = step(text)
        return text

    def maybe(self, text: str | None) -> str | None:
        return None if text is None else self.text(text)

    def bytes(self, data: bytes) -> bytes:
        """A body: JSON redacted value by value (and written anew), other UTF-8 text as text, anything
        else read as Latin-1, so the text parts of a multipart upload are redacted and every other
        byte stays as it was."""
        if not self._steps or not data:
            return data
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return self.text(data.decode("latin-1")).encode("latin-1")
        try:
            # JSON is redacted value by value: in its raw text a line break is `\n`, and the `n`
            # would hide an identifier at the start of a line from the patterns' word boundaries.
            parsed = json.loads(text)
        except ValueError:
            return self.text(text).encode("utf-8")
        return json.dumps(self.value(parsed), ensure_ascii=False).encode("utf-8")

    def value(self, value: Any) -> Any:
        """A parsed JSON value with every string in it redacted (keys too)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self.value(v) for k, v in value.items()}
        return value


def redact(text: str, kinds: Iterable[Kind] = KINDS) -> str:
    """One text on its own (a fresh numbering)."""
    return Redactor(kinds).text(text)
