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

The augmenters live in `augment_swap` and `augment_noise`, their shared
example rebuilding in `augment_common`; this module holds the registered
factories and the chaining, and re-exports the public names.
"""
from typing import Dict, Iterator, List, Optional, Sequence

from spacy.language import Language
from spacy.training import Example
from spacy.util import registry

from .augment_common import Augmenter, KBLoader
from .augment_noise import NoiseAugmenter
from .augment_swap import MAX_SEEN_NAMES, EntitySwapAugmenter

__all__ = [
    "MAX_SEEN_NAMES",
    "Augmenter",
    "EntitySwapAugmenter",
    "KBLoader",
    "NoiseAugmenter",
    "chain_augmenters",
    "create_combined_augmenter",
    "create_entity_swap_augmenter",
    "create_noise_augmenter",
]


# -- entity swap -----------------------------------------------------------------


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
