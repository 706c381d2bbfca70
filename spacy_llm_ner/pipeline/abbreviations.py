"""Abbreviation consistency for predicted entities.

Biomedical abstracts define a short form once ("puromycin aminonucleoside
(PAN)") and use it many times after. A windowed transformer sees the
definition only in the window that holds it, so later uses of "PAN" are
tagged from their local context alone, and often missed. When the long form
of a definition (Schwartz & Hearst, `kb.abbreviations`) ends with a
predicted entity, every use of its short form in the document gets that
entity's label and confidence; in "consistent" mode, uses of a short form
whose long form is no entity also lose their predictions.
"""
from typing import Dict, Iterable, List, Set, Tuple

from spacy.tokens import Doc

from ..kb.abbreviations import short_form_uses

# ((start token, end token, label index), confidence), as the decoders give them.
Scored = Tuple[Tuple[int, int, int], float]
ABBREVIATION_MODES = ("none", "propagate", "consistent")


def propagate_abbreviations(
    doc: Doc, spans: Iterable[Scored], *, remove_unsupported: bool = False, blocked: Set[int] = frozenset()
) -> List[Scored]:
    """Make the uses of each abbreviation defined in the doc agree with the
    entity that ends its long form.

    doc (Doc): The document (its text and tokens).
    spans (Iterable[Tuple[Tuple[int, int, int], float]]): Predicted (start,
        end, label index) spans with confidences; non-overlapping.
    remove_unsupported (bool): Also drop predicted spans that are exactly a
        use of a short form whose long form ends with no entity.
    blocked (Set[int]): Tokens not to label (e.g. entities already set).
    RETURNS (List[Tuple[Tuple[int, int, int], float]]): The spans, sorted and
        non-overlapping.
    """
    result = dict(spans)
    uses = short_form_uses(doc)
    if not uses:
        return sorted(result.items())
    taken: Dict[int, Tuple[int, int, int]] = {i: key for key in result for i in range(key[0], key[1])}
    # The long forms' entities as predicted, before any change made here.
    by_end_char = {doc[key[1] - 1].idx + len(doc[key[1] - 1]): (key, score) for key, score in result.items()}
    for abbr, occurrences in uses:
        chars = (abbr.long_start, abbr.long_start + len(abbr.long))
        source, score = by_end_char.get(chars[1], (None, 0.0))
        if source is not None and doc[source[0]].idx < chars[0]:
            source = None  # the entity reaches before the long form
        for start, end in occurrences:
            if any(i in blocked for i in range(start, end)):
                continue
            overlapping = {taken[i] for i in range(start, end) if i in taken}
            if any((s, e) != (start, end) for s, e, _ in overlapping):
                continue  # inside a longer entity: leave it
            if source is None and not remove_unsupported:
                continue
            for key in overlapping:
                del result[key]
            for i in range(start, end):
                taken.pop(i, None)
            if source is not None:
                key = (start, end, source[2])
                result[key] = score
                taken.update((i, key) for i in range(start, end))
    return sorted(result.items())
