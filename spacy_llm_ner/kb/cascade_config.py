"""Settings of the candidate cascade (`candidates.py`), stored with the KB."""
from dataclasses import dataclass
from typing import Tuple

STAGES: Tuple[str, ...] = ("exact", "normalized", "ngram", "abbreviation")
RETRIEVALS: Tuple[str, ...] = ("words+grams", "words", "grams")


@dataclass
class CascadeConfig:
    """Settings of the cascade (stored with the KB).

    top_k (int): Candidates returned per mention.
    stages (Tuple[str, ...]): Stages to run, a subset of STAGES.
    ngram_rows (int): Normalised names fetched per query by the n-gram stage
        (several names can belong to one entity); 0: 3 * top_k.
    min_ngram_score (float): Drop n-gram matches below this cosine.
    ngram_budget (int): Posting entries a query may read to retrieve
        n-gram candidates through its rarest 3-grams (see ngrams.py);
        0: exact search over all 3-grams.
    ngram_min_grams (int): Rarest 3-grams always used for retrieval.
    rescore (int): Candidates rescored exactly per query.
    ngram_retrieval (str): Where the n-gram stage gets the candidates it
        rescores: "words" (names sharing the query's rarest words, exact or
        one edit or ending away; see words.py), "grams" (its rarest 3-grams,
        within `ngram_budget`), or "words+grams" (both). A KB saved without
        a word index uses "grams".
    word_budget (int): Posting entries a query may read through its words.
    word_rescore (int): Candidates retrieved through words rescored exactly
        per query.

    The defaults (kept with each saved KB, so a KB saved before keeps its
    own) were chosen on BC5CDR Disease mentions against CTD and on a million
    synthetic entities (``benchmarks/results/kb_candidates_bc5cdr.md``,
    ``kb_scale.md``): the union of words and 3-grams at the 3-gram settings
    of before finds at least what 3-grams alone found; a smaller 3-gram
    budget, or words alone, is several times faster on a KB of millions of
    names but misses sub-word matches ("neuroinflammation" ->
    "Inflammation") that 3-grams find on real names.
    """

    top_k: int = 10
    stages: Tuple[str, ...] = STAGES
    ngram_rows: int = 0
    min_ngram_score: float = 0.0
    ngram_budget: int = 100000
    ngram_min_grams: int = 3
    rescore: int = 1000
    ngram_retrieval: str = "words+grams"
    word_budget: int = 2000
    word_rescore: int = 200

    def __post_init__(self) -> None:
        self.stages = tuple(self.stages)
        unknown = set(self.stages) - set(STAGES)
        if unknown:
            raise ValueError(f"unknown candidate stages {sorted(unknown)}; choose from {STAGES}")
        if self.ngram_retrieval not in RETRIEVALS:
            raise ValueError(f"ngram_retrieval must be one of {RETRIEVALS} (got {self.ngram_retrieval!r})")
        if self.top_k < 1:
            raise ValueError(f"top_k must be at least 1 (got {self.top_k})")
