"""Training on gold and silver (weakly labelled) docs together, silver
down-weighted.

spaCy's `spacy.Corpus.v1` already reads every .spacy file of a directory,
so gold (e.g. train.spacy) and silver (from `weak-label`, whose docs carry
``user_data["silver"] = True``) can sit side by side in one folder. spaCy
has no per-example loss weight, so `spacy_llm_ner.silver_corpus.v1` weights
silver the simple, honest way: each time the corpus is read it keeps every
gold doc and each silver doc with probability `silver_weight`, so silver
contributes `silver_weight` times its size to the updates in expectation.

spaCy reads the training corpus once per epoch only when it streams it
(``[training] max_epochs = -1``); with ``max_epochs >= 0`` it reads the
corpus once and reshuffles that list every epoch, so the same silver subset
is used throughout. Either way the expected share of silver is the same.
"""
import random
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Union

from spacy.tokens import Doc
from spacy.training import Corpus
from spacy.util import registry
from spacy.vocab import Vocab

from .weak import AMBIGUOUS_KEY, SILVER_KEY


def is_silver(doc: Doc) -> bool:
    """Whether a doc was weakly labelled.

    doc (Doc): A corpus doc.
    RETURNS (bool): Its ``user_data["silver"]`` flag.
    """
    return bool(doc.user_data.get(SILVER_KEY, False))


class SilverCorpus(Corpus):
    """A `spacy.training.Corpus` that keeps each silver doc with probability
    `silver_weight` per read, and can leave out silver docs with ambiguous
    matches. The choice is made per doc, before `max_length` splits it into
    sentences and before the augmenter sees it.

    path (Union[str, Path]): A .spacy file or a directory of them.
    silver_weight (float): Probability of keeping a silver doc, in [0, 1].
    drop_ambiguous (bool): Leave out silver docs with at least one ambiguous
        match (``user_data["weak_ambiguous"] > 0``).
    seed (int): Seed of the sampling.
    Other arguments: as `spacy.training.Corpus`.
    """

    def __init__(
        self,
        path: Union[str, Path],
        *,
        silver_weight: float = 1.0,
        drop_ambiguous: bool = False,
        seed: int = 0,
        limit: int = 0,
        gold_preproc: bool = False,
        max_length: int = 0,
        augmenter: Optional[Callable] = None,
        shuffle: bool = False,
    ) -> None:
        if not 0.0 <= silver_weight <= 1.0:
            raise ValueError(f"[silver_corpus] silver_weight must be within [0, 1] (got {silver_weight})")
        super().__init__(
            path, limit=limit, gold_preproc=gold_preproc, max_length=max_length, augmenter=augmenter, shuffle=shuffle
        )
        self.silver_weight = silver_weight
        self.drop_ambiguous = drop_ambiguous
        self.rng = random.Random(seed)

    def read_docbin(self, vocab: Vocab, locs: Iterable[Union[str, Path]]) -> Iterator[Doc]:
        """The corpus docs, silver ones sampled.

        vocab (Vocab): The pipeline's vocab.
        locs (Iterable[Union[str, Path]]): The .spacy files.
        YIELDS (Doc): The docs kept.
        """
        for doc in super().read_docbin(vocab, locs):
            if is_silver(doc):
                if self.drop_ambiguous and doc.user_data.get(AMBIGUOUS_KEY, 0):
                    continue
                # Drawn for every silver doc, kept or not, so that a seed
                # fixes the whole sequence of choices.
                if self.rng.random() >= self.silver_weight:
                    continue
            yield doc


@registry.readers("spacy_llm_ner.silver_corpus.v1")
def create_silver_corpus(
    path: Optional[Path],
    gold_preproc: bool = False,
    max_length: int = 0,
    limit: int = 0,
    augmenter: Optional[Callable] = None,
    *,
    silver_weight: float = 1.0,
    drop_ambiguous: bool = False,
    seed: int = 0,
) -> SilverCorpus:
    """`spacy.Corpus.v1` plus down-weighted silver docs (see the module
    docstring); drop-in for ``[corpora.train]``.

    path (Optional[Path]): A .spacy file or a directory of them (gold and
        silver together).
    gold_preproc, max_length, limit, augmenter: As in `spacy.Corpus.v1`.
    silver_weight (float): Probability of keeping each silver doc per read.
    drop_ambiguous (bool): Leave out silver docs with ambiguous matches.
    seed (int): Seed of the sampling.
    RETURNS (SilverCorpus): The reader, called with the nlp object.
    """
    if path is None:
        raise ValueError("[silver_corpus] No path given: set paths.train (or the reader's path).")
    return SilverCorpus(
        path, silver_weight=silver_weight, drop_ambiguous=drop_ambiguous, seed=seed, limit=limit,
        gold_preproc=gold_preproc, max_length=max_length, augmenter=augmenter,
    )
