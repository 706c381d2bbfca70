"""Shared pieces of the augmenters (see `augment`): the augmenter types, the
token attributes an augmented doc carries over, and the rebuilding of an
augmented example from new tokens and annotation rows."""
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy
from spacy.attrs import DEP, ENT_ID, ENT_IOB, ENT_KB_ID, ENT_TYPE, HEAD, LEMMA, MORPH, POS, SENT_START, TAG
from spacy.language import Language
from spacy.tokens import Doc, Span, SpanGroup
from spacy.training import Example
from spacy.vocab import Vocab

from ..kb.knowledge_base import LinkerKB
from .distill import SOFT_TAGS_KEY

Augmenter = Callable[[Language, Example], Iterator[Example]]
KBLoader = Callable[[Vocab], LinkerKB]

_TOKEN_ATTRS = [TAG, POS, MORPH, LEMMA, SENT_START, ENT_IOB, ENT_TYPE, ENT_KB_ID, ENT_ID]
_PARSE_ATTRS = [HEAD, DEP]
_IOB_BEGIN, _IOB_INSIDE = 3, 1  # Token.iob_strings() == ("", "I", "O", "B")
_NOT_SENT_START = numpy.array([-1]).astype("uint64")[0]  # -1 as Doc.to_array stores it


def _portable_user_data(doc: Doc) -> Dict[Any, Any]:
    """The doc's user_data without what is keyed by character offsets: token
    and span extension values and the teacher's soft tags."""
    out = {}
    for key, value in doc.user_data.items():
        if key == SOFT_TAGS_KEY:
            continue
        if isinstance(key, tuple) and len(key) == 4 and key[0] == "._." and key[2] is not None:
            continue
        out[key] = value
    return out


def _uses_gold_tokens(nlp: Language, example: Example) -> bool:
    """Whether the example's predicted doc was made from the reference's
    tokens (gold_preproc or unknown spaces) rather than the tokenizer."""
    if example.reference.has_unknown_spaces:
        return True
    words = [t.text for t in example.predicted]
    if words != [t.text for t in example.reference]:
        return False
    return words != [t.text for t in nlp.make_doc(example.reference.text)]


def _build_example(
    nlp: Language,
    example: Example,
    *,
    words: List[str],
    spaces: List[bool],
    attrs: List[int],
    rows: numpy.ndarray,
    boundaries: Dict[int, int],
    relink: Dict[Tuple[int, int, str], str],
) -> Example:
    """A new example whose reference has the given tokens and annotation rows.

    boundaries (Dict[int, int]): Old token boundary -> new one; span-group
        spans whose ends are both mapped are carried over.
    relink (Dict[Tuple[int, int, str], str]): (old start, old end, label) of
        swapped entities -> their new kb_id, applied to span-group spans
        that cover exactly such an entity.
    """
    ref = example.reference
    doc = Doc(
        nlp.vocab,
        words=words,
        spaces=None if ref.has_unknown_spaces else spaces,
        user_data=_portable_user_data(ref),
    )
    doc.from_array(attrs, rows)
    doc.cats = dict(ref.cats)
    for name, group in ref.spans.items():
        spans = []
        for span in group:
            if span.start in boundaries and span.end in boundaries:
                kb_id = relink.get((span.start, span.end, span.label_), span.kb_id_)
                spans.append(
                    Span(doc, boundaries[span.start], boundaries[span.end], span.label_, kb_id=kb_id, span_id=span.id_)
                )
        doc.spans[name] = SpanGroup(doc, name=name, attrs=dict(group.attrs), spans=spans)
    if _uses_gold_tokens(nlp, example):
        predicted = Doc(nlp.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc])
    else:
        predicted = nlp.make_doc(doc.text)
    return Example(predicted, doc)


def _with_original(
    example: Example, augmented: Optional[Example], keep_original: bool
) -> Iterator[Example]:
    if augmented is None or keep_original:
        yield example
    if augmented is not None:
        yield augmented
