"""Abbreviation consistency for predicted entities.

Abstracts and news define a short form once ("puromycin aminonucleoside
(PAN)", "PT Telekomunikasi Indonesia ( Telkom )") and use it many times after.
A windowed transformer sees the definition only in the window that holds it,
so later uses are tagged from their local context alone, and often missed.

The rule, for each definition found by Schwartz & Hearst
(`kb.abbreviations.short_form_definitions`), judged on the entities as
predicted (before any change made here):

- The long form's last content word is its last token that holds a letter or
  digit and is not the possessive "'s" / "’s": trailing punctuation, closing
  quotes and brackets, a bare apostrophe and the possessive are skipped
  ("Restoration Council 's" -> "Council", '"Blue River Alliance "' ->
  "Alliance").
- Source: the predicted entity that covers that word, wherever it starts or
  ends ("PT Telekomunikasi Indonesia" covers "Indonesia" of the long form
  "Telekomunikasi Indonesia"). Every use of the short form gets its label and
  confidence ("propagate" and "consistent").
- No source, but a predicted entity (or a blocked token, e.g. an entity set
  before) overlaps the long form: the boundaries differ, which is no evidence
  either way, so the uses are left alone ("Ministry of Health" predicted in
  "Ministry of Health Services (MHS)").
- No predicted entity overlaps the long form at all: the long form is no
  entity, and "consistent" mode drops the predictions that are exactly a use
  of the short form ("the control group (CG)").

Uses are whole tokens, the short form's own place in its definition included.
A use inside (or crossing) a longer predicted entity, or on a blocked token, is
never changed. A short form defined more than once: each use follows the
nearest definition at or before it (the uses before the first definition
follow the first); definitions of one short form with the same long form
(its words up to the last content word, case aside) share their evidence: the
first of them with a source gives the label, and removal needs all of them
to overlap no entity.

Other scripts: `short_form_definitions` reports no definition in a script
written without spaces between words (Chinese, Japanese, Thai: the reasons
are in kb/abbreviations.py), so on such text the rule changes only the uses
of Latin-script short forms, which may be defined in full-width parentheses
("慢性肾病 chronic kidney disease（CKD）").
"""
from bisect import bisect_left, bisect_right
from collections import Counter
from typing import Dict, Iterable, List, Set, Tuple, Union

from spacy.attrs import IDX, LOWER, ORTH
from spacy.tokens import Doc

from ..kb.abbreviations import short_form_definitions

# ((start token, end token, label index), confidence), as the decoders give them.
Scored = Tuple[Tuple[int, int, int], float]
ABBREVIATION_MODES = ("none", "propagate", "consistent")
_POSSESSIVES = frozenset({"'s", "’s"})
# A definition's verdict: a source entity, "leave" (an entity overlaps the
# long form, none covers its last content word) or "unsupported" (none overlaps).
_LEAVE, _UNSUPPORTED = "leave", "unsupported"
_Verdict = Union[Scored, str]


def propagate_abbreviations(
    doc: Doc, spans: Iterable[Scored], *, remove_unsupported: bool = False, blocked: Set[int] = frozenset()
) -> List[Scored]:
    """Make the uses of each abbreviation defined in the doc agree with the
    entity that covers the last content word of its long form (the rule is
    in the module docstring).

    doc (Doc): The document (its text and tokens).
    spans (Iterable[Tuple[Tuple[int, int, int], float]]): Predicted (start,
        end, label index) spans with confidences; non-overlapping.
    remove_unsupported (bool): Also drop predicted spans that are exactly a
        use of a short form whose long form no predicted entity overlaps.
    blocked (Set[int]): Tokens not to label (e.g. entities already set).
    RETURNS (List[Tuple[Tuple[int, int, int], float]]): The spans, sorted and
        non-overlapping.
    """
    result = dict(spans)
    definitions = short_form_definitions(doc)
    if not definitions:
        return sorted(result.items())
    taken: Dict[int, Tuple[int, int, int]] = {i: key for key in result for i in range(key[0], key[1])}
    # The tokens that hold a character of each long form, found on the
    # tokens' offsets (char_span(alignment_mode="expand") would make a Token
    # object per token of the doc).
    token_starts, orths = doc.to_array([IDX, ORTH]).T.tolist()
    strings = doc.vocab.strings
    times = Counter(abbr.short for abbr, _ in definitions)
    lower = doc.to_array(LOWER).tolist() if len(times) < len(definitions) else []
    # Verdicts on the long forms' entities as predicted, before any change;
    # definitions of one short form with the same long form share one.
    groups: List[Tuple[str, Tuple[int, ...]]] = []
    shared: Dict[Tuple[str, Tuple[int, ...]], _Verdict] = {}
    for abbr, _ in definitions:
        first = max(bisect_right(token_starts, abbr.long_start) - 1, 0)
        stop = bisect_left(token_starts, abbr.long_start + len(abbr.long))
        last = stop - 1
        while last >= first and not _is_content(strings[orths[last]]):
            last -= 1
        verdict: _Verdict = _UNSUPPORTED
        if last >= first and last in taken and last not in blocked:
            verdict = (taken[last], result[taken[last]])
        elif any(i in taken or i in blocked for i in range(first, stop)):
            verdict = _LEAVE
        words = tuple(lower[first : last + 1]) if times[abbr.short] > 1 else ()
        group = (abbr.short, words)
        before = shared.get(group, _UNSUPPORTED)
        if isinstance(before, tuple) or (before == _LEAVE and verdict == _UNSUPPORTED):
            verdict = before
        shared[group] = verdict
        groups.append(group)
    for (_, occurrences), group in zip(definitions, groups):
        verdict = shared[group]
        if verdict == _LEAVE or (verdict == _UNSUPPORTED and not remove_unsupported):
            continue
        source = verdict if isinstance(verdict, tuple) else None
        for start, end in occurrences:
            if any(i in blocked for i in range(start, end)):
                continue
            overlapping = {taken[i] for i in range(start, end) if i in taken}
            if any((s, e) != (start, end) for s, e, _ in overlapping):
                continue  # inside a longer entity: leave it
            for key in overlapping:
                del result[key]
            for i in range(start, end):
                taken.pop(i, None)
            if source is not None:
                key = (start, end, source[0][2])
                result[key] = source[1]
                taken.update((i, key) for i in range(start, end))
    return sorted(result.items())


def _is_content(text: str) -> bool:
    return text.lower() not in _POSSESSIVES and any(c.isalnum() for c in text)
