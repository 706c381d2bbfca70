"""Abbreviations defined in a text, by Schwartz & Hearst's algorithm.

A. Schwartz and M. Hearst (2003), "A simple algorithm for identifying
abbreviation definitions in biomedical text", PSB 2003. This follows their
reference (Java) implementation: candidates are "long form (short form)" and
"short form (long form)"; the short form has at most two words, 2-10
characters, a letter, and starts with a letter or digit; its characters are
matched right to left inside the long form, the first one at the start of a
word; the long form has at most min(|SF| + 5, 2 |SF|) words. The first
definition of a short form in a text wins in `find_abbreviations` and
`short_form_uses`; `short_form_definitions` keeps every definition and gives
each use of a short form to the nearest definition before it.

Detokenised text with spaces inside the parentheses ("PT Telekomunikasi
Indonesia ( Telkom )") is read like "(Telkom)": the short form is stripped.

Other scripts: full-width parentheses ("Chronic kidney disease（CKD）", as
typed in Chinese and Japanese text) are read like " (...)". Definitions whose
short or long form holds characters of a script written without spaces
between words (Han, kana, Thai, Lao, Khmer, Myanmar) are not reported: the
algorithm's word rules (the short form's first character starts a word of
the long form, the long form's length in words) need those spaces, so the
long form runs back to the last space ("北方的北京大学 (北大)" would define
北大 as 北方的北京大学), and on one token per character a short form's uses
match inside other words (北大 in 北大西洋, the North Atlantic).
"""
from bisect import bisect_right
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

import numpy

from .normalize import UNSPACED_SCRIPT

if TYPE_CHECKING:  # spaCy only where a Doc is given: the KB builds without it
    from spacy.tokens import Doc

_SEPARATORS = " \t\n\r\f-"
_FULL_WIDTH = str.maketrans({"\uff08": "(", "\uff09": ")"})


@dataclass(frozen=True)
class Abbreviation:
    """One definition found in a text.

    short (str): The short form, e.g. "CKD".
    long (str): The long form, e.g. "chronic kidney disease".
    start (int): Character offset of the short form in the text.
    long_start (int): Character offset of the long form in the text.
    """

    short: str
    long: str
    start: int
    long_start: int


def _has_letter(text: str) -> bool:
    return any(c.isalpha() for c in text)


def _has_capital(text: str) -> bool:
    return any(c.isupper() for c in text)


def _is_valid_short_form(text: str) -> bool:
    return bool(text) and _has_letter(text) and (text[0].isalnum() or text[0] == "(")


def _next_open(text: str, norm: str, start: int) -> int:
    """Where the next candidate's opening parenthesis is, from `start`: a
    "(" after a space, or a full-width one (no space before it in CJK text).

    text (str): The text.
    norm (str): The text with full-width parentheses made ASCII.
    start (int): Where to search from.
    RETURNS (int): The parenthesis' offset, or -1.
    """
    spaced = norm.find(" (", start)
    found = [i for i in (spaced + 1 if spaced > -1 else -1, text.find("\uff08", start)) if i > -1]
    return min(found) if found else -1


def _count_words(text: str) -> int:
    words = text
    for sep in _SEPARATORS:
        words = words.replace(sep, " ")
    return len(words.split())


def best_long_form(short: str, long: str) -> Optional[str]:
    """The shortest suffix of `long` that contains the characters of `short`
    in order, its first character starting a word.

    short (str): The short form.
    long (str): The long-form candidate (words before the parenthesis).
    RETURNS (Optional[str]): The long form, or None when there is none.
    """
    s_index = len(short) - 1
    l_index = len(long) - 1
    while s_index >= 0:
        char = short[s_index].lower()
        if not char.isalnum():
            s_index -= 1
            continue
        while (l_index >= 0 and long[l_index].lower() != char) or (
            s_index == 0 and l_index > 0 and long[l_index - 1].isalnum()
        ):
            l_index -= 1
        if l_index < 0:
            return None
        l_index -= 1
        s_index -= 1
    l_index = long.rfind(" ", 0, l_index + 1) + 1
    return long[l_index:]


def _accept(short: str, long: str) -> Optional[str]:
    if len(short) < 2:
        return None
    found = best_long_form(short, long)
    if found is None:
        return None
    long_words = _count_words(found)
    short_len = sum(1 for c in short if c.isalnum())
    if (
        len(found) < len(short)
        or found.find(short + " ") > -1
        or found.endswith(short)
        or long_words > short_len * 2
        or long_words > short_len + 5
        or short_len > 10
    ):
        return None
    return found


def find_abbreviation_definitions(text: str) -> List[Abbreviation]:
    """Every abbreviation definition in the text, in order.

    text (str): Plain text (e.g. a title and abstract).
    RETURNS (List[Abbreviation]): The definitions, with the offsets of the
        short and the long form.
    """
    found: List[Abbreviation] = []
    lower_bound = 0  # the reference code searches after the previous "(" only
    original, text = text, text.translate(_FULL_WIDTH)  # same offsets
    open_paren = _next_open(original, text, 0)
    while open_paren > -1:
        before_paren = open_paren - 1 if open_paren > 0 and text[open_paren - 1] == " " else open_paren
        close_paren = text.find(")", open_paren)
        if close_paren == -1:
            break
        boundary = max(text.rfind(". ", lower_bound, open_paren), text.rfind(", ", lower_bound, open_paren))
        long_start = boundary + 2 if boundary > -1 else lower_bound
        long = text[long_start:open_paren]
        short = text[open_paren + 1 : close_paren]
        short_start = open_paren + 1
        long_offset = long_start
        for sep in (", ", "; "):
            cut = short.find(sep)
            if cut > -1:
                short = short[:cut]
        if len(short.split()) > 2 or len(short) > len(long):
            # "long form (short form)" did not fit: try "short form (long form)".
            word_start = text.rfind(" ", lower_bound, max(lower_bound, before_paren)) + 1
            word_start = max(word_start, lower_bound)
            long, short = short, text[word_start:before_paren]
            short_start, long_offset = word_start, open_paren + 1
            if not _has_capital(short):
                short = ""
        # The accepted long form is a suffix of the stripped candidate, so
        # its offset follows from where the stripped candidate ends.
        long_end = long_offset + len(long.rstrip())
        short_start += len(short) - len(short.lstrip())  # "( CKD )"
        short, long = short.strip(), long.strip()
        if _is_valid_short_form(short):
            accepted = _accept(short, long)
            if accepted is not None and not UNSPACED_SCRIPT.search(short + accepted):
                accepted = accepted.strip()
                found.append(
                    Abbreviation(short=short, long=accepted, start=short_start, long_start=long_end - len(accepted))
                )
        lower_bound = open_paren
        open_paren = _next_open(original, text, open_paren + 1)
    return found


def find_abbreviations(text: str) -> Dict[str, str]:
    """Map each short form defined in the text to its long form (the first
    definition wins).

    text (str): Plain text.
    RETURNS (Dict[str, str]): Short form to long form, e.g.
        {"CKD": "chronic kidney disease"}.
    """
    out: Dict[str, str] = {}
    for abbr in find_abbreviation_definitions(text):
        out.setdefault(abbr.short, abbr.long)
    return out


def short_form_uses(doc: "Doc") -> List[Tuple[Abbreviation, List[Tuple[int, int]]]]:
    """The first definition of each short form defined in a doc, with every
    use of that short form (its own place in the definition included).

    A use is the same tokens as the short form where it is defined, found on
    the doc's ORTH ids (no Token objects: this runs on every doc of a fast
    CNN pipeline), so "BUN" is not found inside "BUNs". A short form that is
    not whole tokens where it is defined has no uses.

    doc (Doc): A tokenized doc.
    RETURNS (List[Tuple[Abbreviation, List[Tuple[int, int]]]]): Each
        definition with the (start, end) token spans of the uses.
    """
    definitions = find_abbreviation_definitions(doc.text) if len(doc) else []
    if not definitions:
        return []
    uses = _uses_by_short_form(doc, definitions)
    found = []
    for abbr in definitions:
        if abbr.short in uses:
            found.append((abbr, uses.pop(abbr.short)))
    return found


def short_form_definitions(doc: "Doc") -> List[Tuple[Abbreviation, List[Tuple[int, int]]]]:
    """Every definition in a doc, each with the uses of its short form that
    belong to it: a use belongs to the nearest definition of the same short
    form that starts at or before it (its own place in a definition belongs
    to that definition), and the uses before a short form's first definition
    belong to the first. Uses are found as in `short_form_uses` (the tokens
    of the short form where it is first defined), so with one definition per
    short form both give the same uses.

    doc (Doc): A tokenized doc.
    RETURNS (List[Tuple[Abbreviation, List[Tuple[int, int]]]]): Each
        definition, in text order, with the (start, end) token spans of its
        uses.
    """
    definitions = find_abbreviation_definitions(doc.text) if len(doc) else []
    if not definitions:
        return []
    uses = _uses_by_short_form(doc, definitions)
    places: Dict[str, List[int]] = {}
    for i, abbr in enumerate(definitions):
        places.setdefault(abbr.short, []).append(i)
    mine: List[List[Tuple[int, int]]] = [[] for _ in definitions]
    token_starts: Optional[List[int]] = None
    for short, indices in places.items():
        if len(indices) == 1:
            mine[indices[0]] = uses[short]
            continue
        # The token where each definition's short form starts, on the tokens'
        # character offsets (char_span(alignment_mode="expand") would make a
        # Token object per token of the doc).
        if token_starts is None:
            from spacy.attrs import IDX

            token_starts = doc.to_array(IDX).tolist()
        bounds = sorted((bisect_right(token_starts, definitions[i].start) - 1, i) for i in indices)
        for use in uses[short]:
            nearest = max(bisect_right(bounds, (use[0], len(definitions))) - 1, 0)
            mine[bounds[nearest][1]].append(use)
    return list(zip(definitions, mine))


def _uses_by_short_form(doc: "Doc", definitions: Sequence[Abbreviation]) -> Dict[str, List[Tuple[int, int]]]:
    """Every use of each short form: its tokens where first defined, on the
    doc's ORTH ids."""
    from spacy.attrs import ORTH

    orths = doc.to_array(ORTH)
    found: Dict[str, List[Tuple[int, int]]] = {}
    for abbr in definitions:
        if abbr.short in found:
            continue
        short = doc.char_span(abbr.start, abbr.start + len(abbr.short))
        found[abbr.short] = _occurrences(orths, [token.orth for token in short]) if short is not None else []
    return found


def _occurrences(orths: numpy.ndarray, sequence: Sequence[int]) -> List[Tuple[int, int]]:
    n = len(sequence)
    if not n or n > len(orths):
        return []
    starts = numpy.flatnonzero(orths[: len(orths) - n + 1] == sequence[0])
    return [(int(i), int(i) + n) for i in starts if orths[i : i + n].tolist() == list(sequence)]
