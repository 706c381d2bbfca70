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

A batch runs as flat arrays, not mention by mention: every look-up of a
stage at once (`lookup.py`), each offer a row of a table, and the best offer
per (mention, entity) and the ranking by lexsort. Profiling showed that
per-mention numpy calls and trie round trips (the n-gram stage's names were
turned back into strings and looked up again) cost more than the look-ups.
The offer order of the per-mention loop is kept as a tie-breaker, so the
results are those of that loop.
"""
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, List, Mapping, Optional, Sequence, Set, Tuple, Union

import numpy as np

from .abbreviations import find_abbreviations
from .cascade_config import RETRIEVALS, STAGES, CascadeConfig  # noqa: F401  (re-exported)
from .csr import SortedProbes
from .lookup import Hits, gather, trie_keys
from .ngram_search import search_flat
from .offers import Offers, best_per_row
from .normalize_batch import normalize_batch

if TYPE_CHECKING:  # pragma: no cover
    from spacy.tokens import Doc, Span

    from .ngrams import Idf
    from .segment import Segment

_PRIORITY = {"abbreviation": 0, "exact": 1, "normalized": 2, "ngram": 3}
_SOURCES = tuple(sorted(_PRIORITY, key=_PRIORITY.__getitem__))
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
    if abbreviations is None or isinstance(abbreviations, Mapping):
        maps: Sequence[Optional[Mapping[str, str]]] = [abbreviations] * len(mentions)
    else:
        maps = abbreviations
        if len(maps) != len(mentions):
            raise ValueError(f"got {len(maps)} abbreviation maps for {len(mentions)} mentions")
    queries = _Queries.make(mentions, maps, expand="abbreviation" in use, normalise=bool(use & {"normalized", "ngram"}))
    starts = np.cumsum([0] + [len(s) for s in segments])
    table = _exact_stages(segments, starts, queries, use)
    if "ngram" in use and idf is not None and len(segments):
        full = np.bincount(table.mention[table.score >= 1.0], minlength=len(mentions))
        todo = [i for i, norm in enumerate(queries.norm) if norm and full[queries.mention[i]] < top_k]
        if todo:
            found = _ngram_stage(segments, starts, queries, np.asarray(todo, dtype=np.int64), config, top_k)
            table = best_per_row(Offers.concat([table, found]))
    return _ranked(segments, starts, queries, table, n_mentions=len(mentions), top_k=top_k)


@dataclass
class _Queries:
    """The strings looked up: each mention, and the long form it stands for
    where the document defines it as an abbreviation.

    mention (np.ndarray): int64 mention of each query.
    text (List[str]): The looked-up strings.
    norm (List[str]): Their normalisations ("" when not needed).
    via (np.ndarray): bool, found through an abbreviation.
    """

    mention: np.ndarray
    text: List[str]
    norm: List[str]
    via: np.ndarray

    @classmethod
    def make(
        cls, mentions: Sequence[str], maps: Sequence[Optional[Mapping[str, str]]], *, expand: bool, normalise: bool
    ) -> "_Queries":
        """The queries of a batch (a mention's own query, then its long form).

        mentions (Sequence[str]): Mention texts.
        maps (Sequence[Optional[Mapping[str, str]]]): Abbreviations per mention.
        expand (bool): Add the long forms.
        normalise (bool): Fill `norm`.
        RETURNS (_Queries): The queries.
        """
        index, text, via = [], [], []
        for m, mention in enumerate(mentions):
            index.append(m), text.append(mention), via.append(False)
            long_form = expand_abbreviation(mention, maps[m]) if expand else None
            if long_form is not None and long_form != mention:
                index.append(m), text.append(long_form), via.append(True)
        norm = normalize_batch(text) if normalise else [""] * len(text)
        return cls(np.asarray(index, dtype=np.int64), text, norm, np.asarray(via, dtype=bool))


def _offers(hits: Hits, queries: _Queries, query: np.ndarray, score: np.ndarray, stage: str, seq: np.ndarray) -> Offers:
    """Offers of a stage's hits (source "abbreviation" for a long form's).

    hits (Hits): The hits; query (np.ndarray): their queries; score,
    seq (np.ndarray): their similarity and offer order; stage (str): The stage.
    RETURNS (Offers): The offers.
    """
    prio = np.where(queries.via[query], _PRIORITY["abbreviation"], _PRIORITY[stage])
    return Offers.from_hits(hits, mention=queries.mention[query], query=query, score=score, prio=prio, seq=seq)


def _exact_stages(segments: Sequence["Segment"], starts: np.ndarray, queries: _Queries, use: Set[str]) -> Offers:
    """Exact and normalised matches (score 1.0), best offer per entity.

    segments (Sequence[Segment]): The KB's segments.
    starts (np.ndarray): Global row of each segment's first entity.
    queries (_Queries): The queries.
    use (Set[str]): Stages to run.
    RETURNS (Offers): One item per (mention, entity).
    """
    parts = []
    for stage, kind, strings, step in (
        ("exact", "alias", queries.text, 0), ("normalized", "norm", [n or None for n in queries.norm], 1)
    ):
        if stage not in use or not len(segments):
            continue
        hits = gather(segments, starts, kind, strings)
        # Offer order of the per-mention loop: each query's exact, then its normalised.
        seq = 2 * hits.group + step
        parts.append(_offers(hits, queries, hits.group, np.ones(len(hits)), stage, seq))
    return best_per_row(Offers.concat(parts))


def _ngram_stage(
    segments: Sequence["Segment"], starts: np.ndarray, queries: _Queries, todo: np.ndarray, config: CascadeConfig, top_k: int
) -> Offers:
    """Entities whose normalised names are nearest to the queries' by
    3-gram cosine (each name's entities with P(entity | name)), the
    segments searched as one index.

    segments (Sequence[Segment]): The KB's segments.
    starts (np.ndarray): Global row of each segment's first entity.
    queries (_Queries): The queries.
    todo (np.ndarray): Queries to search for.
    config (CascadeConfig): Settings.
    top_k (int): Candidates per mention.
    RETURNS (Offers): The offers, in the order of the per-mention loop.
    """
    searched = [s for s, seg in enumerate(segments) if seg.ngrams.n_rows > 0]
    if not searched:
        return Offers.concat([])
    texts = [queries.norm[i] for i in todo]
    words = "words" in config.ngram_retrieval
    which, q, keys, scores = search_flat(
        [segments[s].ngrams for s in searched], segments[searched[0]].ngrams.query_vectors(texts),
        top_n=config.ngram_rows or 3 * top_k, budget=config.ngram_budget, min_grams=config.ngram_min_grams,
        rescore=config.rescore, batch_size=64, min_score=config.min_ngram_score,
        words=[segments[s].words if words else None for s in searched], texts=texts,
        word_budget=config.word_budget, word_rescore=config.word_rescore, grams=config.ngram_retrieval != "words",
    )
    seg = np.asarray(searched, dtype=np.int64)[which]
    if len(segments) > 1:
        q, seg, keys, scores, known = _found_names(segments, q, seg, keys, scores)
        hits = gather(segments, starts, "norm", [None] * len(keys), keys=known)
    else:
        hits = gather(segments, starts, "norm", [None] * len(keys), keys=[keys])
    query = todo[q[hits.group]]
    return _offers(hits, queries, query, scores[hits.group], "ngram", 2 * len(queries.text) + np.arange(len(hits)))


def _found_names(
    segments: Sequence["Segment"], q: np.ndarray, seg: np.ndarray, keys: np.ndarray, scores: np.ndarray
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, List[np.ndarray]]:
    """The names the n-gram stage found in several segments, each once per
    query, with its key in every segment (-1: absent), so that a name's
    entities in all segments are offered with P(entity | name) over all.
    Names are compared and looked up by hash where every segment has its
    names' hashes (format 4), else as strings through the tries.

    segments (Sequence[Segment]): The KB's segments.
    q, seg, keys, scores (np.ndarray): Query, segment, norm key and cosine
        of each found name, by query, best first.
    RETURNS (Tuple[...]): The same columns without repeated (query, name),
        and the names' keys per segment.
    """
    hashed = all(s.norm_hashes is not None for s in segments)
    if hashed:
        names: Sequence = np.zeros(len(keys), dtype=np.uint64)
        for s, segment in enumerate(segments):
            names[seg == s] = segment.norm_hashes.of_key[keys[seg == s]]  # type: ignore[index,union-attr]
    else:
        names = [segments[s].norm_string(k) for s, k in zip(seg.tolist(), keys.tolist())]
    seen: Set[Tuple[int, object]] = set()
    first = np.array([not ((i, t) in seen or seen.add((i, t))) for i, t in zip(q.tolist(), list(names))], dtype=bool)
    q, seg, keys, scores = q[first], seg[first], keys[first], scores[first]
    names = names[first] if hashed else [t for t, f in zip(names, first) if f]  # type: ignore[call-overload]
    probes = SortedProbes(names) if hashed else None  # type: ignore[arg-type]
    known = []
    for s, segment in enumerate(segments):
        own = seg == s
        if hashed:
            found = segment.norm_hashes.keys(probes, ~own)  # type: ignore[union-attr,arg-type]
        else:
            found = trie_keys(segment.norms, [None if o else t for o, t in zip(own.tolist(), names)])
        found[own] = keys[own]
        known.append(found)
    return q, seg, keys, scores, known


def _ranked(
    segments: Sequence["Segment"], starts: np.ndarray, queries: _Queries, table: Offers, *, n_mentions: int, top_k: int
) -> List[List[ScoredCandidate]]:
    """The `top_k` best candidates of each mention.

    segments (Sequence[Segment]): The KB's segments.
    starts (np.ndarray): Global row of each segment's first entity.
    queries (_Queries): The queries.
    table (Offers): Best offer per (mention, entity).
    n_mentions (int): Mentions in the batch.
    top_k (int): Candidates per mention.
    RETURNS (List[List[ScoredCandidate]]): Per mention, best first.
    """
    out: List[List[ScoredCandidate]] = [[] for _ in range(n_mentions)]
    if len(table.row) == 0:
        return out
    order = np.lexsort((table.row, -table.prior, table.prio, -table.score, table.mention))
    m = table.mention[order]
    rank = np.arange(len(m)) - np.searchsorted(m, m)
    table = table.take(order[rank < top_k])
    ids = _entity_ids(segments, starts, table.row)
    texts = queries.text
    for m, entity_id, alias_seg, alias, q, score, prio, prior in zip(
        table.mention.tolist(), ids, table.seg.tolist(), table.alias.tolist(),
        table.query.tolist(), table.score.tolist(), table.prio.tolist(), table.prior.tolist(),
    ):
        out[m].append(
            ScoredCandidate(
                entity_id=entity_id,
                alias=texts[q] if alias < 0 else segments[alias_seg].alias_string(alias),
                prior=prior, score=min(1.0, score), source=_SOURCES[prio], query=texts[q],
            )
        )
    return out


def _entity_ids(segments: Sequence["Segment"], starts: np.ndarray, rows: np.ndarray) -> List[str]:
    """The entity ids of global rows.

    segments (Sequence[Segment]): The KB's segments.
    starts (np.ndarray): Global row of each segment's first entity.
    rows (np.ndarray): Global rows.
    RETURNS (List[str]): Their ids.
    """
    if len(segments) == 1:  # the common case: one trie, keys gathered at once
        restore = segments[0].ids.restore_key
        return [restore(k) for k in segments[0].id_key[rows].tolist()]
    seg_of = np.searchsorted(starts, rows, side="right") - 1
    local = rows - starts[seg_of]
    return [segments[s].entity_id(r) for s, r in zip(seg_of.tolist(), local.tolist())]
