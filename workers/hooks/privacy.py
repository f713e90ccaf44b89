"""Personal data masked before a request leaves for the provider, and restored in the answer.

Found and replaced by placeholders such as ``[EMAIL_1]``:
- e-mail addresses;
- phone numbers: mainland China mobiles (``1[3-9]`` and nine digits, ``+86`` optional) and
  international numbers written with a leading ``+``;
- PRC resident identity numbers (18 characters, a real birth date, the ISO 7064 MOD 11-2
  check character);
- bank card numbers (13 to 19 digits, optionally grouped, passing the Luhn check);
- IPv4 and IPv6 addresses.

The same value gets the same placeholder throughout a request, and a placeholder is never one
the text already contains, so ``restore(mask(text))`` is always ``text``.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"

# Tried in this order; a span found by an earlier kind is not examined by later ones.
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "EMAIL",
        # Starts only where a run of local-part characters starts: tried from inside a long
        # run (of digits, say) too, it would scan the rest of the run each time.
        re.compile(
            r"(?<![\w.!#$%&'*+/=?^`{|}~-])[\w.!#$%&'*+/=?^`{|}~-]+@"
            r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
        ),
    ),
    ("ID", re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")),
    ("CARD", re.compile(r"(?<![\d-])\d{4}(?:[ -]?\d{3,4}){2,4}(?:[ -]?\d{1,3})?(?![\d-])")),
    ("PHONE", re.compile(r"(?<![\d+])(?:\+?86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?!\d)")),
    ("PHONE", re.compile(r"(?<![\w+])\+\d{1,3}(?:[ -]?\(?\d{1,4}\)?){2,5}(?!\d)")),
    ("IP", re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")),
    ("IP", re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")),
)
_SEPARATOR = re.compile(r"[ -]")
_PLACEHOLDER = re.compile(r"\[(EMAIL|ID|CARD|PHONE|IP)_(\d+)\]")
PLACEHOLDER_MAX_LEN = len("[EMAIL_99999]")


def valid_resident_id(text: str) -> bool:
    """A PRC resident identity number: 17 digits, a real birth date, the right check char."""
    if len(text) != 18 or not text[:17].isdigit():
        return False
    try:
        born = date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        return False
    if not date(1900, 1, 1) <= born <= date.today():
        return False
    total = sum(int(d) * w for d, w in zip(text[:17], ID_WEIGHTS, strict=True))
    return ID_CHECK[total % 11] == text[17].upper()


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        n = int(char)
        if i % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def valid_card(text: str) -> bool:
    digits = re.sub(r"[ -]", "", text)
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def valid_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


_CHECKS = {"ID": valid_resident_id, "CARD": valid_card, "IP": valid_ip}


def find_personal_data(text: str) -> list[tuple[int, int, str]]:
    """(start, end, kind) of each piece of personal data, in order, never overlapping."""
    taken: list[tuple[int, int, str]] = []  # sorted by start, never overlapping
    for kind, pattern in _PATTERNS:
        check = _CHECKS.get(kind)
        for match in pattern.finditer(text):
            start = match.start()
            end = _valid_end(match.group(), check)
            if end is None:
                continue
            end += start
            at = bisect.bisect_left(taken, (start,))
            if at > 0 and taken[at - 1][1] > start:  # the span before reaches into it
                continue
            if at < len(taken) and taken[at][0] < end:  # the span after starts inside it
                continue
            taken.insert(at, (start, end, kind))
    return taken


def _valid_end(found: str, check: Callable[[str], bool] | None) -> int | None:
    """Where the valid value in ``found`` ends: all of it, or (for grouped digits, where a
    last group may be a neighbouring number) up to an earlier separator; None if invalid."""
    if check is None or check(found):
        return len(found)
    for cut in (m.start() for m in reversed(list(_SEPARATOR.finditer(found)))):
        if check(found[:cut]):
            return cut
    return None


@dataclass
class Masker:
    """Masks the texts of one request consistently and restores its answer."""

    originals: dict[str, str] = field(default_factory=dict)  # placeholder -> value
    _by_value: dict[str, str] = field(default_factory=dict)
    _counts: dict[str, int] = field(default_factory=dict)
    _forbidden: set[str] = field(default_factory=set)

    def avoid(self, text: str) -> None:
        """Never use a placeholder that ``text`` contains already."""
        if "[" in text:  # most texts hold none: no scan
            self._forbidden.update(m.group() for m in _PLACEHOLDER.finditer(text))

    def mask(self, text: str) -> str:
        self.avoid(text)
        out, last = [], 0
        for start, end, kind in find_personal_data(text):
            out.append(text[last:start])
            out.append(self._placeholder(kind, text[start:end]))
            last = end
        out.append(text[last:])
        return "".join(out)

    def restore(self, text: str) -> str:
        return _PLACEHOLDER.sub(lambda m: self.originals.get(m.group(), m.group()), text)

    def _placeholder(self, kind: str, value: str) -> str:
        known = self._by_value.get(value)
        if known is not None:
            return known
        while True:
            self._counts[kind] = self._counts.get(kind, 0) + 1
            placeholder = f"[{kind}_{self._counts[kind]}]"
            if placeholder not in self._forbidden:
                break
        self.originals[placeholder] = value
        self._by_value[value] = placeholder
        return placeholder


class StreamRestorer:
    """Restores placeholders in streamed text, holding back a piece that may be the start of
    one until it is complete (a placeholder can arrive split across deltas)."""

    def __init__(self, masker: Masker):
        self.masker = masker
        self._held = ""

    def feed(self, text: str) -> str:
        text = self._held + text
        cut = text.rfind("[")
        if cut != -1 and "]" not in text[cut:] and len(text) - cut < PLACEHOLDER_MAX_LEN:
            self._held = text[cut:]
            text = text[:cut]
        else:
            self._held = ""
        return self.masker.restore(text)

    def flush(self) -> str:
        held, self._held = self._held, ""
        return self.masker.restore(held)
