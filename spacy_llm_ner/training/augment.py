"""Data augmentation for NER and entity-linking training corpora.

Registered in spaCy's `registry.augmenters`, for the `augmenter` block of a
corpus reader (`spacy.Corpus.v1`, `spacy_llm_ner.silver_corpus.v1`)::

    [corpora.train.augmenter]
    @augmenters = "spacy_llm_ner.combined_augmenter.v1"

    [corpora.train.augmenter.*.swap]
    @augmenters = "spacy_llm_ner.entity_swap_augmenter.v1"
    level = 0.3

    [corpora.train.augmenter.*.swap.kb_loader]
    @misc = "spacy_llm_ner.load_kb.v1"
    path = "assets/CTD_diseases.tsv.gz"
    strip_prefix = "MESH:"

    [corpora.train.augmenter.*.noise]
    @augmenters = "spacy_llm_ner.noise_augmenter.v1"
    level = 0.2

An augmenter is called as ``augmenter(nlp, example)`` and yields examples.
Ours yield the original example and, with probability `level`, one augmented
copy after it (``keep_original=False``: the copy instead of the original, as
spaCy's own augmenters do). Each has its own seeded random generator, so a
run is reproducible while every call (every epoch, when spaCy streams the
corpus with ``max_epochs = -1``) draws new variants. With the default
``max_epochs >= 0`` spaCy reads the corpus once, so the variants are drawn
once per training run.

The augmented reference doc is rebuilt token by token with `Doc` and
`Doc.from_array`: entity labels, kb_ids, missing vs. outside entity
annotation, tags, POS, morphology, lemmas, sentence starts, span groups,
`doc.cats` and `doc.user_data` are carried over (what a swap replaces gets
missing token annotation; a swap drops the dependency parse, whose heads it
cannot remap). Teacher distributions (`distill.SOFT_TAGS_KEY`) and token or
span extension values are left out: they are keyed by character offsets,
which an augmentation shifts. The predicted doc is `nlp.make_doc(text)`,
or the reference's tokens where the example was made from them (gold_preproc
or unknown spaces), and `Example` aligns the two as usual.
"""
import random
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy
from spacy.attrs import DEP, ENT_ID, ENT_IOB, ENT_KB_ID, ENT_TYPE, HEAD, LEMMA, MORPH, POS, SENT_START, TAG
from spacy.language import Language
from spacy.tokens import Doc, Span, SpanGroup
from spacy.training import Example
from spacy.util import registry
from spacy.vocab import Vocab

from ..kb.knowledge_base import LinkerKB
from .distill import SOFT_TAGS_KEY

Augmenter = Callable[[Language, Example], Iterator[Example]]
KBLoader = Callable[[Vocab], LinkerKB]

_TOKEN_ATTRS = [TAG, POS, MORPH, LEMMA, SENT_START, ENT_IOB, ENT_TYPE, ENT_KB_ID, ENT_ID]
_PARSE_ATTRS = [HEAD, DEP]
_IOB_BEGIN, _IOB_INSIDE = 3, 1  # Token.iob_strings() == ("", "I", "O", "B")
_NOT_SENT_START = numpy.array([-1]).astype("uint64")[0]  # -1 as Doc.to_array stores it
# Distinct names remembered per label from the data, so that streaming a large
# corpus through the swap augmenter does not grow memory without bound.
MAX_SEEN_NAMES = 50_000


# -- shared helpers ------------------------------------------------------------


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


# -- entity swap -----------------------------------------------------------------


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
            first = old[ent.start]
            for k, token in enumerate(name_tokens):
                row = numpy.zeros(len(attrs), dtype="uint64")  # missing tag, POS, lemma ...
                if k == 0:
                    row[col[SENT_START]] = first[col[SENT_START]]
                elif first[col[SENT_START]] != 0:
                    row[col[SENT_START]] = _NOT_SENT_START
                row[col[ENT_IOB]] = _IOB_BEGIN if k == 0 else _IOB_INSIDE
                row[col[ENT_TYPE]] = ent.label
                row[col[ENT_KB_ID]] = nlp.vocab.strings.add(kb_id) if kb_id else 0
                row[col[ENT_ID]] = first[col[ENT_ID]]
                words.append(token.text)
                last = k == len(name_tokens) - 1
                spaces.append(bool(ref[ent.end - 1].whitespace_) if last else bool(token.whitespace_))
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


@registry.augmenters("spacy_llm_ner.entity_swap_augmenter.v1")
def create_entity_swap_augmenter(
    *,
    level: float,
    kb_loader: Optional[KBLoader] = None,
    names: Optional[Dict[str, List[str]]] = None,
    seed: int = 0,
    keep_original: bool = True,
) -> Augmenter:
    """Entity-swap augmentation: each gold mention of an augmented example is
    replaced by another name of its label, from the KB (records whose `type`
    is the label; the entity's id becomes the kb_id) or from `names` and the
    mentions of that label seen in the data.

    level (float): Probability that an example gets an augmented copy.
    kb_loader (Optional[Callable[[Vocab], LinkerKB]]): A registered KB loader,
        e.g. `spacy_llm_ner.load_kb.v1`; loaded once, on first use.
    names (Optional[Dict[str, List[str]]]): Extra names per label.
    seed (int): Random seed.
    keep_original (bool): Yield the original example before the copy.
    RETURNS (Callable[[Language, Example], Iterator[Example]]): The augmenter.
    """
    return EntitySwapAugmenter(level=level, kb_loader=kb_loader, names=names, seed=seed, keep_original=keep_original)


# -- character noise ---------------------------------------------------------------

_LETTERS = "abcdefghijklmnopqrstuvwxyz"


class NoiseAugmenter:
    """Random case changes, typos and dropped characters, token by token.

    Tokens keep their number and order, so every annotation stays on its
    token; a token never loses its last character. Only tokens with a letter
    are changed (punctuation and numbers are left alone), and inserted or
    substituted characters are ASCII letters, so no token gains whitespace.

    level (float): Probability that an example gets a noisy copy.
    case (float): Per-token probability of a case change (lower, upper,
        title or one flipped letter).
    typo (float): Per-token probability of a typo (swap of two adjacent
        characters, a substituted or an inserted letter).
    drop (float): Per-token probability of dropping one character.
    inside_entities (bool): Also change tokens of gold entities.
    seed (int): Seed of the augmenter's random generator.
    keep_original (bool): Yield the original before the copy.
    """

    def __init__(
        self,
        *,
        level: float,
        case: float = 0.1,
        typo: float = 0.02,
        drop: float = 0.01,
        inside_entities: bool = True,
        seed: int = 0,
        keep_original: bool = True,
    ) -> None:
        for name, value in (("level", level), ("case", case), ("typo", typo), ("drop", drop)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"[noise_augmenter] {name} must be within [0, 1] (got {value})")
        self.level = level
        self.case = case
        self.typo = typo
        self.drop = drop
        self.inside_entities = inside_entities
        self.keep_original = keep_original
        self.rng = random.Random(seed)

    def __call__(self, nlp: Language, example: Example) -> Iterator[Example]:
        """Yield the example and, with probability `level`, a noisy copy.

        nlp (Language): The pipeline being trained.
        example (Example): A training example.
        YIELDS (Example): The original and/or the augmented example.
        """
        augmented = None
        if self.level > 0 and len(example.reference) and self.rng.random() < self.level:
            augmented = self.add_noise(nlp, example)
        yield from _with_original(example, augmented, self.keep_original)

    def noisy(self, text: str) -> str:
        """Apply the per-token changes to one token's text.

        text (str): The token text.
        RETURNS (str): The changed text (never empty, never with whitespace
            it did not have).
        """
        rng = self.rng
        if self.case and rng.random() < self.case:
            kind = rng.randrange(4)
            if kind == 0:
                text = text.lower()
            elif kind == 1:
                text = text.upper()
            elif kind == 2:
                text = text[:1].upper() + text[1:].lower()
            else:
                letters = [i for i, c in enumerate(text) if c.isalpha()]
                if letters:
                    i = rng.choice(letters)
                    text = text[:i] + text[i].swapcase() + text[i + 1 :]
        if self.typo and rng.random() < self.typo:
            kind = rng.randrange(3)
            if kind == 0 and len(text) >= 2:
                i = rng.randrange(len(text) - 1)
                text = text[:i] + text[i + 1] + text[i] + text[i + 2 :]
            elif kind == 1:
                letters = [i for i, c in enumerate(text) if c.isalpha()]
                if letters:
                    i = rng.choice(letters)
                    new = rng.choice(_LETTERS)
                    text = text[:i] + (new.upper() if text[i].isupper() else new) + text[i + 1 :]
            else:
                i = rng.randrange(len(text) + 1)
                text = text[:i] + rng.choice(_LETTERS) + text[i:]
        if self.drop and len(text) > 1 and rng.random() < self.drop:
            i = rng.randrange(len(text))
            text = text[:i] + text[i + 1 :]
        return text

    def add_noise(self, nlp: Language, example: Example) -> Example:
        """A noisy copy of the example (same tokens, changed texts).

        nlp (Language): Its tokenizer makes the predicted doc.
        example (Example): The example.
        RETURNS (Example): The copy.
        """
        ref = example.reference
        words = []
        for token in ref:
            text = token.text
            eligible = (
                not token.is_space
                and any(c.isalpha() for c in text)
                and (self.inside_entities or token.ent_iob_ not in ("B", "I"))
            )
            words.append(self.noisy(text) if eligible else text)
        attrs = list(_TOKEN_ATTRS)
        if ref.has_annotation("DEP"):
            attrs += _PARSE_ATTRS
        boundaries = {i: i for i in range(len(ref) + 1)}
        return _build_example(
            nlp, example, words=words, spaces=[bool(t.whitespace_) for t in ref], attrs=attrs,
            rows=ref.to_array(attrs), boundaries=boundaries, relink={},
        )


@registry.augmenters("spacy_llm_ner.noise_augmenter.v1")
def create_noise_augmenter(
    *,
    level: float,
    case: float = 0.1,
    typo: float = 0.02,
    drop: float = 0.01,
    inside_entities: bool = True,
    seed: int = 0,
    keep_original: bool = True,
) -> Augmenter:
    """Character-noise augmentation: random case changes, typos and dropped
    characters per token, entity annotation kept on the changed tokens.

    level (float): Probability that an example gets a noisy copy.
    case (float): Per-token probability of a case change.
    typo (float): Per-token probability of a typo (swap, substitution, insertion).
    drop (float): Per-token probability of a dropped character.
    inside_entities (bool): Also change tokens inside gold entities.
    seed (int): Random seed.
    keep_original (bool): Yield the original example before the copy.
    RETURNS (Callable[[Language, Example], Iterator[Example]]): The augmenter.
    """
    return NoiseAugmenter(
        level=level, case=case, typo=typo, drop=drop, inside_entities=inside_entities, seed=seed,
        keep_original=keep_original,
    )


# -- composition -------------------------------------------------------------------


def chain_augmenters(nlp: Language, example: Example, augmenters: Sequence[Augmenter]) -> Iterator[Example]:
    """Feed every example each augmenter yields into the next one.

    nlp (Language): The pipeline.
    example (Example): The example.
    augmenters (Sequence[Callable]): Augmenters, applied in order.
    YIELDS (Example): The examples the last augmenter yields.
    """
    examples: List[Example] = [example]
    for augmenter in augmenters:
        examples = [out for eg in examples for out in augmenter(nlp, eg)]
    yield from examples


@registry.augmenters("spacy_llm_ner.combined_augmenter.v1")
def create_combined_augmenter(*augmenters: Augmenter) -> Augmenter:
    """Chain augmenters (ours or spaCy's): every example one yields goes
    through the next. In a config the augmenters are positional blocks,
    ``[corpora.train.augmenter.*.NAME]``, applied in the order written.

    *augmenters (Callable[[Language, Example], Iterator[Example]]): The augmenters.
    RETURNS (Callable[[Language, Example], Iterator[Example]]): The chain.
    """

    def combined(nlp: Language, example: Example) -> Iterator[Example]:
        return chain_augmenters(nlp, example, augmenters)

    return combined
