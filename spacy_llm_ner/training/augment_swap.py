"""The entity-swap augmenter: gold entity mentions replaced by other names
of the same label, from the knowledge base or from the data (see `augment`)."""
import random
from typing import Dict, Iterator, List, Optional, Tuple

import numpy
from spacy.attrs import ENT_ID, ENT_IOB, ENT_KB_ID, ENT_TYPE, SENT_START
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.training import Example
from spacy.vocab import Vocab

from ..kb.knowledge_base import LinkerKB
from .augment_common import (
    _IOB_BEGIN,
    _IOB_INSIDE,
    _NOT_SENT_START,
    _TOKEN_ATTRS,
    KBLoader,
    _build_example,
    _with_original,
)

# Distinct names remembered per label from the data, so that streaming a large
# corpus through the swap augmenter does not grow memory without bound.
MAX_SEEN_NAMES = 50_000


def _name_rows(
    vocab: Vocab, ent: Span, name_tokens: Doc, kb_id: str, first: numpy.ndarray, col: Dict[int, int]
) -> List[Tuple[str, bool, numpy.ndarray]]:
    """The tokens of a replacement name, with the annotation rows that make
    them the entity (tag, POS, lemma ... missing).

    vocab (Vocab): Stores the kb_id string.
    ent (Span): The replaced entity mention.
    name_tokens (Doc): The new name, tokenized.
    kb_id (str): The new kb_id, or "" for none.
    first (numpy.ndarray): The annotation row of the mention's first token.
    col (Dict[int, int]): Attribute -> its column in the rows.
    RETURNS (List[Tuple[str, bool, numpy.ndarray]]): (text, trailing space,
        row) per token.
    """
    out = []
    for k, token in enumerate(name_tokens):
        row = numpy.zeros(len(col), dtype="uint64")  # missing tag, POS, lemma ...
        if k == 0:
            row[col[SENT_START]] = first[col[SENT_START]]
        elif first[col[SENT_START]] != 0:
            row[col[SENT_START]] = _NOT_SENT_START
        row[col[ENT_IOB]] = _IOB_BEGIN if k == 0 else _IOB_INSIDE
        row[col[ENT_TYPE]] = ent.label
        row[col[ENT_KB_ID]] = vocab.strings.add(kb_id) if kb_id else 0
        row[col[ENT_ID]] = first[col[ENT_ID]]
        last = k == len(name_tokens) - 1
        space = bool(ent.doc[ent.end - 1].whitespace_) if last else bool(token.whitespace_)
        out.append((token.text, space, row))
    return out


class EntitySwapAugmenter:
    """Replace gold entity mentions by other names of the same label.

    Names come from the knowledge base when it has entities whose `type` is
    the mention's label (an entity is drawn uniformly, then one of its names;
    its id becomes the kb_id), otherwise from `names` and the mentions of that
    label seen so far in the data (with the kb_id they had, or none for
    `names`). Within one doc, equal mentions (same label and lower-cased
    text) get the same replacement, so repeated mentions stay consistent.

    level (float): Probability that an example gets an augmented copy.
    kb_loader (Optional[Callable[[Vocab], LinkerKB]]): Loads the KB on first
        use, with the pipeline's vocab.
    names (Optional[Dict[str, List[str]]]): Extra names per label.
    seed (int): Seed of the augmenter's random generator.
    keep_original (bool): Yield the original before the copy.
    """

    def __init__(
        self,
        *,
        level: float,
        kb_loader: Optional[KBLoader] = None,
        names: Optional[Dict[str, List[str]]] = None,
        seed: int = 0,
        keep_original: bool = True,
    ) -> None:
        if not 0.0 <= level <= 1.0:
            raise ValueError(f"[entity_swap_augmenter] level must be within [0, 1] (got {level})")
        self.level = level
        self.kb_loader = kb_loader
        self.keep_original = keep_original
        self.rng = random.Random(seed)
        self.kb: Optional[LinkerKB] = None
        self._ids_by_type: Optional[Dict[str, List[str]]] = None
        # label -> {name: kb_id}; a dict keeps first-seen order, so draws are
        # reproducible (a set's order would depend on string hashing).
        self.seen: Dict[str, Dict[str, str]] = {}
        for label, label_names in (names or {}).items():
            for name in label_names:
                if name.strip():
                    self.seen.setdefault(label, {}).setdefault(name.strip(), "")

    def __call__(self, nlp: Language, example: Example) -> Iterator[Example]:
        """Yield the example and, with probability `level`, a swapped copy.

        nlp (Language): The pipeline being trained (its tokenizer and vocab).
        example (Example): A training example.
        YIELDS (Example): The original and/or the augmented example.
        """
        self._remember(example.reference)
        augmented = None
        if self.level > 0 and example.reference.ents and self.rng.random() < self.level:
            augmented = self.swap(nlp, example)
        yield from _with_original(example, augmented, self.keep_original)

    def _remember(self, doc: Doc) -> None:
        for ent in doc.ents:
            pool = self.seen.setdefault(ent.label_, {})
            if len(pool) < MAX_SEEN_NAMES:
                pool.setdefault(ent.text, ent.kb_id_)

    def _kb_ids(self, vocab: Vocab) -> Dict[str, List[str]]:
        if self._ids_by_type is None:
            self._ids_by_type = {}
            if self.kb_loader is not None:
                self.kb = self.kb_loader(vocab)
                if not hasattr(self.kb, "entity"):
                    raise ValueError(
                        "[entity_swap_augmenter] kb_loader must return a LinkerKB (names and types are "
                        f"read from its records), got {type(self.kb).__name__}"
                    )
                for entity_id in self.kb.entity_ids:
                    self._ids_by_type.setdefault(self.kb.entity(entity_id).type, []).append(entity_id)
        return self._ids_by_type

    def pick(self, vocab: Vocab, label: str, current: str) -> Optional[Tuple[str, str]]:
        """Draw a replacement name for a mention.

        vocab (Vocab): For loading the KB on first use.
        label (str): The mention's label.
        current (str): The mention's text; a different name is preferred.
        RETURNS (Optional[Tuple[str, str]]): (name, kb_id), or None when no
            other name of the label is known.
        """
        ids = self._kb_ids(vocab).get(label)
        if ids:
            assert self.kb is not None
            # A few draws, as an entity may have no name other than `current`.
            for _ in range(5):
                entity_id = self.rng.choice(ids)
                options = [n for n in self.kb.entity(entity_id).all_names() if n.lower() != current.lower()]
                if options:
                    return self.rng.choice(options), entity_id
            return None
        pool = [(n, k) for n, k in self.seen.get(label, {}).items() if n.lower() != current.lower()]
        return self.rng.choice(pool) if pool else None

    def swap(self, nlp: Language, example: Example) -> Optional[Example]:
        """A copy of the example with every entity mention replaced.

        nlp (Language): Its tokenizer splits the new names.
        example (Example): The example.
        RETURNS (Optional[Example]): The copy, or None if no mention could be
            replaced.
        """
        ref = example.reference
        attrs = list(_TOKEN_ATTRS)
        old = ref.to_array(attrs)
        col = {attr: i for i, attr in enumerate(attrs)}
        words: List[str] = []
        spaces: List[bool] = []
        rows: List[numpy.ndarray] = []
        boundaries: Dict[int, int] = {}
        relink: Dict[Tuple[int, int, str], str] = {}
        chosen: Dict[Tuple[str, str], Optional[Tuple[str, str]]] = {}

        def keep(i: int) -> None:
            boundaries[i] = len(words)
            words.append(ref[i].text)
            spaces.append(bool(ref[i].whitespace_))
            rows.append(old[i])

        position = 0
        for ent in ref.ents:
            for i in range(position, ent.start):
                keep(i)
            position = ent.end
            key = (ent.label_, ent.text.lower())
            if key not in chosen:
                chosen[key] = self.pick(nlp.vocab, ent.label_, ent.text)
            choice = chosen[key]
            name_tokens = nlp.make_doc(" ".join(choice[0].split())) if choice else None
            if not name_tokens:
                for i in range(ent.start, ent.end):
                    keep(i)
                continue
            name, kb_id = choice  # type: ignore[misc]
            relink[(ent.start, ent.end, ent.label_)] = kb_id
            boundaries[ent.start] = len(words)
            for word, space, row in _name_rows(nlp.vocab, ent, name_tokens, kb_id, old[ent.start], col):
                words.append(word)
                spaces.append(space)
                rows.append(row)
        for i in range(position, len(ref)):
            keep(i)
        boundaries[len(ref)] = len(words)
        if not relink:
            return None
        return _build_example(
            nlp, example, words=words, spaces=spaces, attrs=attrs, rows=numpy.vstack(rows),
            boundaries=boundaries, relink=relink,
        )
