"""The candidate-generation cascade: exact alias -> normalised alias ->
character 3-gram similarity -> abbreviations defined in the document.

Recall is the job: every stage adds entities, and the merged list keeps each
entity once with its best evidence. Ranking: string similarity first
(exact and normalised matches score 1.0, n-gram matches their cosine), then
the source (a document-defined abbreviation's long form beats the short form
itself, which is ambiguous: "AD" is Alzheimer disease in one abstract and
atopic dermatitis in the next; then exact, normalised, n-gram), then the
prior P(entity | alias).

The n-gram stage is skipped for a mention that already has `top_k` entities
at similarity 1.0, since nothing it finds could rank above them.
"""
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .abbreviations import find_abbreviations
from .normalize import normalize

if TYPE_CHECKING:  # pragma: no cover
    from spacy.tokens import Doc, Span

    from .ngrams import Idf
    from .segment import Segment

STAGES: Tuple[str, ...] = ("exact", "normalized", "ngram", "abbreviation")
_PRIORITY = {"abbreviation": 0, "exact": 1, "normalized": 2, "ngram": 3}
AbbreviationMaps = Union[None, Mapping[str, str], Sequence[Optional[Mapping[str, str]]]]


@dataclass(frozen=True)
class ScoredCandidate:
    """One candidate entity for a mention.

    entity_id (str): The KB id.
    alias (str): The KB name that matched.
    prior (float): P(entity | alias) for that name.
    score (float): String similarity in [0, 1] between the looked-up string
        and the name (1.0 for exact and normalised matches, TF-IDF char
        3-gram cosine otherwise).
    source (str): "exact", "normalized", "ngram", or "abbreviation" (found
        through the long form of a short form defined in the document).
    query (str): The string that was looked up (the mention, or the long
        form it abbreviates).
    """

    entity_id: str
    alias: str
    prior: float
    score: float
    source: str
    query: str


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
    """

    top_k: int = 10
    stages: Tuple[str, ...] = STAGES
    ngram_rows: int = 0
    min_ngram_score: float = 0.0
    ngram_budget: int = 100000
    ngram_min_grams: int = 3
    rescore: int = 1000

    def __post_init__(self) -> None:
        self.stages = tuple(self.stages)
        unknown = set(self.stages) - set(STAGES)
        if unknown:
            raise ValueError(f"unknown candidate stages {sorted(unknown)}; choose from {STAGES}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be at least 1 (got {self.top_k})")


def expand_abbreviation(mention: str, abbreviations: Optional[Mapping[str, str]]) -> Optional[str]:
    """The long form a mention stands for, given the document's definitions.

    mention (str): The mention text.
    abbreviations (Optional[Mapping[str, str]]): Short form -> long form.
    RETURNS (Optional[str]): The long form: for the mention itself, its
        plural ("SCCs"), or with each short-form word replaced
        ("CKD patients" -> "chronic kidney disease patients"); else None.
    """
    if not abbreviations:
        return None
    mention = mention.strip()
    if mention in abbreviations:
        return abbreviations[mention]
    if mention.endswith("s") and mention[:-1] in abbreviations:
        return abbreviations[mention[:-1]]
    words = mention.split()
    if len(words) > 1 and any(w in abbreviations for w in words):
        return " ".join(abbreviations.get(w, w) for w in words)
    return None


class DocAbbreviations:
    """The abbreviations defined in documents (short form -> long form, by
    `find_abbreviations`), cached for the last `size` documents seen: the
    mentions of one document come in several batches.

    size (int): Documents kept.
    """

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._cache: "OrderedDict[int, Tuple[str, Dict[str, str]]]" = OrderedDict()

    def __call__(self, doc: "Doc") -> Dict[str, str]:
        """The abbreviations defined in a doc.

        doc (Doc): The document.
        RETURNS (Dict[str, str]): Short form -> long form.
        """
        key = id(doc)
        hit = self._cache.get(key)
        # id() is reused once a doc is freed: the text tells the docs apart.
        if hit is not None and hit[0] == doc.text:
            self._cache.move_to_end(key)
            return hit[1]
        found = find_abbreviations(doc.text)
        self._cache[key] = (doc.text, found)
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return found

    def for_spans(self, spans: Sequence["Span"]) -> List[Dict[str, str]]:
        """The abbreviations of each span's doc.

        spans (Sequence[Span]): The mentions.
        RETURNS (List[Dict[str, str]]): One map per span.
        """
        # One look-up per doc: the cache check reads doc.text (a pass over the
        # doc), which per mention would be quadratic in a long document.
        per_doc: Dict[int, Dict[str, str]] = {}
        for s in spans:
            if id(s.doc) not in per_doc:
                per_doc[id(s.doc)] = self(s.doc)
        return [per_doc[id(s.doc)] for s in spans]


class _Segments:
    """Global-row view over the KB's segments."""

    def __init__(self, segments: Sequence["Segment"]) -> None:
        self.segments = segments
        self.starts = np.cumsum([0] + [len(s) for s in segments])

    def gather(self, kind: str, text: str) -> List[Tuple[int, float, str]]:
        """(global row, P(entity | text), matched alias) over all segments.

        kind (str): "alias" (exact surface string) or "norm" (normalised).
        text (str): The string.
        """
        rows: List[np.ndarray] = []
        p_text: List[np.ndarray] = []
        priors: List[np.ndarray] = []
        aliases: List[str] = []
        for start, seg in zip(self.starts, self.segments):
            found = seg.alias_entries(text) if kind == "alias" else seg.norm_entries(text)
            if found is None:
                continue
            local, p, alias_keys = found
            rows.append(local.astype(np.int64) + start)
            p_text.append(p)
            priors.append(seg.prior[local])
            aliases.extend(seg.alias_string(k) for k in alias_keys)
        if not rows:
            return []
        if len(rows) == 1 and len(rows[0]) == 1:  # the common case: one reading
            return [(int(rows[0][0]), 1.0, aliases[0])]
        posterior = entity_given_alias(np.concatenate(p_text), np.concatenate(priors))
        return list(zip(np.concatenate(rows).tolist(), posterior.tolist(), aliases))

    def entity_id(self, row: int) -> str:
        i = int(np.searchsorted(self.starts, row, side="right")) - 1
        return self.segments[i].entity_id(row - int(self.starts[i]))


def entity_given_alias(p_alias_given_entity: np.ndarray, entity_prior: np.ndarray) -> np.ndarray:
    """P(entity | alias) by Bayes' rule over the entities sharing an alias.

    p_alias_given_entity (np.ndarray): P(alias | entity) per entity.
    entity_prior (np.ndarray): P(entity), NaN where unknown (then the mean
        of the known ones, or uniform when none is known).
    RETURNS (np.ndarray): float probabilities summing to 1 (uniform when all
        the evidence is zero).
    """
    prior = np.asarray(entity_prior, dtype=np.float64)
    known = ~np.isnan(prior)
    fill = prior[known].mean() if known.any() else 1.0
    weight = np.where(known, prior, fill) * np.asarray(p_alias_given_entity, dtype=np.float64)
    total = weight.sum()
    if total <= 0:
        return np.full(len(weight), 1.0 / max(1, len(weight)))
    return weight / total


def generate(
    segments: Sequence["Segment"],
    idf: Optional["Idf"],
    mentions: Sequence[str],
    *,
    abbreviations: AbbreviationMaps = None,
    config: CascadeConfig,
    top_k: Optional[int] = None,
    stages: Optional[Sequence[str]] = None,
) -> List[List[ScoredCandidate]]:
    """Run the cascade for a batch of mentions.

    segments (Sequence[Segment]): The KB's segments.
    idf (Optional[Idf]): The KB's n-gram idf (None for an empty KB).
    mentions (Sequence[str]): Mention texts.
    abbreviations (AbbreviationMaps): One short->long map for all mentions,
        or one per mention.
    config (CascadeConfig): Cascade settings.
    top_k (Optional[int]): Override config.top_k.
    stages (Optional[Sequence[str]]): Override config.stages.
    RETURNS (List[List[ScoredCandidate]]): Per mention, best first, each
        entity once.
    """
    top_k = config.top_k if top_k is None else top_k
    use = set(config.stages if stages is None else stages)
    if use - set(STAGES):
        raise ValueError(f"unknown candidate stages {sorted(use - set(STAGES))}; choose from {STAGES}")
    view = _Segments(segments)
    if abbreviations is None or isinstance(abbreviations, Mapping):
        maps: Sequence[Optional[Mapping[str, str]]] = [abbreviations] * len(mentions)
    else:
        maps = abbreviations
        if len(maps) != len(mentions):
            raise ValueError(f"got {len(maps)} abbreviation maps for {len(mentions)} mentions")
    # Per mention: entity row -> (score, priority, prior, alias, source, query).
    best: List[Dict[int, Tuple[float, int, float, str, str, str]]] = [{} for _ in mentions]

    def offer(m: int, hits: List[Tuple[int, float, str]], score: float, source: str, query: str) -> None:
        prio = _PRIORITY[source]
        table = best[m]
        for row, prior, alias in hits:
            old = table.get(row)
            if old is None or (score, -prio, prior) > (old[0], -old[1], old[2]):
                table[row] = (score, prio, prior, alias, source, query)

    queries: List[Tuple[int, str, str, bool]] = []  # mention, text, normalised, via abbreviation
    for m, mention in enumerate(mentions):
        queries.append((m, mention, normalize(mention), False))
        if "abbreviation" in use:
            long_form = expand_abbreviation(mention, maps[m])
            if long_form is not None and long_form != mention:
                queries.append((m, long_form, normalize(long_form), True))
    for m, text, norm, via in queries:
        if "exact" in use:
            offer(m, view.gather("alias", text), 1.0, "abbreviation" if via else "exact", text)
        if "normalized" in use and norm:
            offer(m, view.gather("norm", norm), 1.0, "abbreviation" if via else "normalized", text)
    if "ngram" in use and idf is not None and len(segments):
        todo = [q for q in queries if q[2] and sum(1 for v in best[q[0]].values() if v[0] >= 1.0) < top_k]
        if todo:
            _ngram_stage(view, idf, todo, offer, config, top_k)
    out: List[List[ScoredCandidate]] = []
    for table in best:
        ranked = sorted(table.items(), key=lambda kv: (-kv[1][0], kv[1][1], -kv[1][2], kv[0]))[:top_k]
        out.append(
            [
                ScoredCandidate(
                    entity_id=view.entity_id(row), alias=alias, prior=prior, score=score, source=source, query=query
                )
                for row, (score, _, prior, alias, source, query) in ranked
            ]
        )
    return out


def _ngram_stage(view: _Segments, idf: "Idf", todo, offer, config: CascadeConfig, top_k: int) -> None:
    n_rows = config.ngram_rows or 3 * top_k
    vectors = None
    for seg in view.segments:
        if seg.ngrams.n_rows == 0:
            continue
        if vectors is None:
            vectors = seg.ngrams.query_vectors([q[2] for q in todo])
        results = seg.ngrams.search(
            vectors, top_n=n_rows, budget=config.ngram_budget, min_grams=config.ngram_min_grams,
            rescore=config.rescore, min_score=config.min_ngram_score,
        )
        for (m, text, _, via), rows in zip(todo, results):
            for key, score in rows:
                norm = seg.norm_string(key)
                offer(m, view.gather("norm", norm), score, "abbreviation" if via else "ngram", text)
