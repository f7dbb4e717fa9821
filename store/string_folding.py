"""How string search normalises text: by case and by accent, as FHIR R4 asks.

FHIR R4 (search.html, string): a field matches "if the value of the field equals or starts
with the supplied parameter value, after both have been normalized by case and accent". The
index keeps `fold_string(text)` next to the text as written, and a query value is folded by
the same function, so "MULLER", "müll" and "Müller" (composed or not) all fold to "muller".

The fold is Unicode compatibility decomposition (NFKD: "é" becomes "e" and a combining acute,
the ligature "ﬁ" becomes "fi", full-width "Ｍ" becomes "M"), then dropping the combining
diacritical marks, then case folding ("ß" becomes "ss"). Only the diacritical mark blocks
are dropped, not every combining character: the vowel signs of Devanagari or Thai are
letters of their words, not accents. Letters with no decomposition stay themselves ("ø",
"æ", "ł"), as in Java's Normalizer-based folding HAPI FHIR uses.

It runs for every indexed string, so ASCII text (most of it) takes a fast path: its NFKD
is itself, it has no marks, and its case fold is `lower()`.
"""

from __future__ import annotations

import unicodedata
from itertools import chain

# The blocks of combining diacritical marks: Combining Diacritical Marks, its Extended and
# Supplement blocks, the marks for symbols, and the half marks.
_DIACRITICS: dict[int, None] = dict.fromkeys(
    chain(
        range(0x0300, 0x0370),
        range(0x1AB0, 0x1B00),
        range(0x1DC0, 0x1E00),
        range(0x20D0, 0x2100),
        range(0xFE20, 0xFE30),
    )
)


def fold_string(text: str) -> str:
    """The text as string search compares it: case and accents folded away."""
    if text.isascii():
        return text.lower()
    return unicodedata.normalize("NFKD", text).translate(_DIACRITICS).casefold()
