"""The `transformer_entity_linker` component: links `doc.ents` to a `LinkerKB`
with a bi-encoder over the pipeline's shared backbone, an explicit NIL
option, and per-entity candidate scores.

For every entity in `doc.ents` the KB cascade proposes up to `top_k`
candidates (exact, normalised, character 3-gram and document-abbreviation
matches). Each candidate is scored from the mention in context, the
candidate's `name: description` encoded by the same backbone, and the
cascade's evidence (prior, string score, source); a softmax runs over the
candidates plus a NIL option. The entity gets the best candidate's id in
`ent.kb_id_`, or `nil_id` ("NIL") when there is no candidate, NIL wins, or
the best probability is below `threshold`. A lone candidate is scored
against NIL like any other.

All scored candidates are kept in `doc.spans[spans_key]` (attrs survive
`DocBin`) and read back with `span._.kb_candidates` (list of
`(entity_id, probability)`, best first) and `span._.kb_score` (probability
of the assigned id, NIL's probability for a NIL).

Showing links with displaCy::

    from spacy import displacy
    displacy.render(doc, style="ent", options={"kb_url_template": "https://www.wikidata.org/wiki/{}"})

or, with the probability in each label, `spacy_llm_ner.display.render_links(doc,
kb_url_template=...)`.

The KB is created at initialize time from `[initialize.components.<name>.kb_loader]`
(e.g. `spacy_llm_ner.load_kb_jsonl.v1`) and saved with the pipeline; entities
added later with `add_entities()` are linkable at once, without retraining.
"""
import shutil
import warnings
import weakref
from collections import OrderedDict
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy
import srsly
from spacy import util
from spacy.kb import KnowledgeBase
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc, Span, SpanGroup
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.util import SimpleFrozenList
from spacy.vocab import Vocab
from thinc.api import Config, Model, Optimizer

from ..kb.knowledge_base import LinkerKB
from ..kb.records import EntityRecord
from ..ml.optim import finish_update_with_head_scale
from ..ml.linker import FEATURES, LinkerInput, LinkerScores, candidate_features
from .link_scoring import score_links

COMPONENT = "transformer_entity_linker"
DEFAULT_SPANS_KEY = "transformer_entity_linker"
CANDIDATES_ATTR = "kb_candidates"
SCORE_ATTR = "kb_score"
# Probabilities are never exactly 1 (NIL always keeps some mass); clip the
# float rounding so that threshold = 1.0 reliably links nothing.
_MAX_PROB = float(numpy.nextafter(1.0, 0.0))

DEFAULT_MODEL_CONFIG = """
[model]
@architectures = "spacy_llm_ner.EntityLinkerModel.v1"
hidden_width = 128
context_window = 32
dropout = 0.1
init_scale = 10.0

[model.tok2vec]
@architectures = "spacy-transformers.TransformerListener.v1"
grad_factor = 1.0
upstream = "*"

[model.tok2vec.pooling]
@layers = "reduce_mean.v1"
"""
DEFAULT_MODEL = Config().from_str(DEFAULT_MODEL_CONFIG)["model"]


@Language.factory(
    COMPONENT,
    assigns=["token.ent_kb_id", "doc.spans"],
    requires=["doc.ents"],
    default_config={
        "model": DEFAULT_MODEL,
        "labels": [],
        "top_k": 10,
        "threshold": 0.0,
        "nil_id": "NIL",
        "spans_key": DEFAULT_SPANS_KEY,
        "overwrite": True,
        "negatives_weight": 0.5,
        "entity_max_tokens": 64,
        "entity_batch_size": 64,
        "cache_size": 100000,
        "head_lr_scale": 1.0,
        "scorer": {"@scorers": "spacy_llm_ner.entity_linker_scorer.v1"},
    },
    default_score_weights={"nel_micro_f": 1.0, "nel_micro_r": None, "nel_micro_p": None},
)
def make_entity_linker(
    nlp: Language,
    name: str,
    model: Model[LinkerInput, LinkerScores],
    *,
    labels: List[str],
    top_k: int,
    threshold: float,
    nil_id: str,
    spans_key: str,
    overwrite: bool,
    negatives_weight: float,
    entity_max_tokens: int,
    entity_batch_size: int,
    cache_size: int,
    head_lr_scale: float,
    scorer: Optional[Callable],
) -> "TransformerEntityLinker":
    """Create a transformer_entity_linker component.

    model (Model[LinkerInput, LinkerScores]): Mention/entity scorer over a
        tok2vec (spacy_llm_ner.EntityLinkerModel.v1).
    labels (List[str]): Entity labels to link (e.g. ["Disease"] when the KB
        holds diseases only); entities of other labels are left as they are
        and not scored. Empty: link every entity.
    top_k (int): Candidates taken from the KB cascade per mention (and kept,
        scored, in doc.spans[spans_key]).
    threshold (float): Links whose probability (softmax over the candidates
        and NIL) is below it become nil_id. NIL also wins when it is the most
        probable option. 1.0 links nothing.
    nil_id (str): The id set for a mention with no acceptable candidate.
    spans_key (str): doc.spans key for the linked entities with candidates
        and scores in the group's attrs.
    overwrite (bool): Replace kb ids already set on the entities.
    negatives_weight (float): Weight of the in-batch-negatives loss (each
        gold mention against every entity of the batch, similarity only);
        0 trains on the candidate softmax alone.
    entity_max_tokens (int): Entity texts are cut to this many tokens before
        encoding.
    entity_batch_size (int): Entity texts encoded per backbone call.
    cache_size (int): Entity encodings kept in memory at prediction time
        (least recently used evicted).
    head_lr_scale (float): Learning-rate multiplier for the scorer's layers
        (not the tok2vec's), as in transformer_ner.
    scorer (Optional[Callable]): Link scorer; the component adds
        nel_candidate_recall and nel_inkb_accuracy on gold mentions.
    RETURNS (TransformerEntityLinker): The component.
    """
    return TransformerEntityLinker(
        nlp.vocab,
        model,
        name,
        nlp=nlp,
        labels=labels,
        top_k=top_k,
        threshold=threshold,
        nil_id=nil_id,
        spans_key=spans_key,
        overwrite=overwrite,
        negatives_weight=negatives_weight,
        entity_max_tokens=entity_max_tokens,
        entity_batch_size=entity_batch_size,
        cache_size=cache_size,
        head_lr_scale=head_lr_scale,
        scorer=scorer,
    )


class Link(NamedTuple):
    """The linker's decision for one mention.

    kb_id (str): The chosen entity id, or the NIL id.
    score (float): Probability of the choice (NIL's probability for NIL).
    nil_score (float): Probability of NIL.
    candidates (List[Tuple[str, float]]): Candidates with probabilities, best
        first.
    """

    kb_id: str
    score: float
    nil_score: float
    candidates: List[Tuple[str, float]]


class _Batch(NamedTuple):
    """Candidates of a batch of mentions, laid out for the model."""

    X: LinkerInput
    entity_ids: List[str]
    rows: List[numpy.ndarray]  # per mention: candidate -> entity row
    offsets: numpy.ndarray  # per mention: first candidate's feature row


class TransformerEntityLinker(TrainablePipe):
    """Entity linking against a LinkerKB with an explicit NIL option."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model[LinkerInput, LinkerScores],
        name: str = COMPONENT,
        *,
        nlp: Optional[Language] = None,
        labels: Sequence[str] = (),
        top_k: int = 10,
        threshold: float = 0.0,
        nil_id: str = "NIL",
        spans_key: str = DEFAULT_SPANS_KEY,
        overwrite: bool = True,
        negatives_weight: float = 0.5,
        entity_max_tokens: int = 64,
        entity_batch_size: int = 64,
        cache_size: int = 100000,
        head_lr_scale: float = 1.0,
        scorer: Optional[Callable] = score_links,
    ) -> None:
        if top_k < 1:
            raise ValueError(f"[{COMPONENT}] top_k must be >= 1, got {top_k}.")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"[{COMPONENT}] threshold must be in [0, 1], got {threshold}.")
        if not nil_id:
            raise ValueError(f"[{COMPONENT}] nil_id must be a non-empty string.")
        if negatives_weight < 0:
            raise ValueError(f"[{COMPONENT}] negatives_weight must be >= 0, got {negatives_weight}.")
        for option, value in (("entity_max_tokens", entity_max_tokens), ("entity_batch_size", entity_batch_size)):
            if value < 1:
                raise ValueError(f"[{COMPONENT}] {option} must be >= 1, got {value}.")
        if cache_size < 0:
            raise ValueError(f"[{COMPONENT}] cache_size must be >= 0, got {cache_size}.")
        if head_lr_scale <= 0:
            raise ValueError(f"[{COMPONENT}] head_lr_scale must be > 0, got {head_lr_scale}.")
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        self.kb: Optional[LinkerKB] = None
        self.cfg: Dict[str, Any] = {
            "labels": sorted(set(labels)),
            "top_k": top_k,
            "threshold": threshold,
            "nil_id": nil_id,
            "spans_key": spans_key,
            "overwrite": overwrite,
            "negatives_weight": negatives_weight,
            "entity_max_tokens": entity_max_tokens,
            "entity_batch_size": entity_batch_size,
            "cache_size": cache_size,
            "head_lr_scale": head_lr_scale,
        }
        self._nlp_ref = weakref.ref(nlp) if nlp is not None else None
        self._detached: Optional[Tuple[Any, Any]] = None  # (tokenizer, upstream) after unpickling
        self._cache: "OrderedDict[str, numpy.ndarray]" = OrderedDict()
        # True once precompute_entities filled the cache: it is then part of
        # the pipe (saved, loaded, pickled) until the backbone changes.
        self._precomputed = False
        _register_extensions()

    # -- the KB ---------------------------------------------------------------

    def set_kb(self, kb: KnowledgeBase) -> None:
        """Use a knowledge base (normally done by initialize's kb_loader).

        kb (KnowledgeBase): A LinkerKB (the linker needs its names,
            descriptions and scored candidates).
        """
        if not isinstance(kb, LinkerKB):
            raise ValueError(
                f"[{COMPONENT}] The kb_loader returned a {type(kb).__name__}; this component needs a "
                "spacy_llm_ner LinkerKB (use spacy_llm_ner.load_kb_jsonl.v1, load_kb_csv.v1, "
                "load_kb_ctd.v1 or load_kb_disk.v1)."
            )
        self.kb = kb
        self.clear_cache()

    def add_entities(self, records: Iterable[EntityRecord]) -> int:
        """Add entities to the KB of a trained pipeline; they are linkable at
        once (their text is encoded by the backbone when first needed).

        records (Iterable[EntityRecord]): New entities (ids must be new).
        RETURNS (int): The number added.
        """
        self._require_kb()
        records = list(records)
        added = self.kb.add_entities(records)  # type: ignore[union-attr]
        for record in records:
            self._cache.pop(record.id, None)
        return added

    def clear_cache(self) -> None:
        """Forget the cached entity encodings (done automatically after an
        update, on loading and when entities are added; call it if you
        change the backbone's weights some other way)."""
        self._cache.clear()
        self._precomputed = False

    def precompute_entities(self) -> int:
        """Encode every KB entity now and keep the vectors with the pipe, so
        that prediction encodes no entity, from the first doc on (and in
        `nlp.pipe(n_process=N)` workers). Saved by `to_disk` (entity_vectors/,
        4 bytes x width per entity); dropped by anything that changes the
        backbone (`update`, `initialize`, `clear_cache`).

        RETURNS (int): The number of entities encoded.
        RAISES (ValueError): Without a KB, or if the KB has more entities
            than `cache_size`.
        """
        self._require_kb()
        ids = list(self.kb.entity_ids)  # type: ignore[union-attr]
        if len(ids) > self.cfg["cache_size"]:
            raise ValueError(
                f"[{COMPONENT}] The KB has {len(ids):,} entities, more than cache_size "
                f"({self.cfg['cache_size']:,}): raise the component's cache_size to precompute them."
            )
        self.clear_cache()
        self._cache.update(zip(ids, self._encode_texts([self._entity_text(e) for e in ids])))
        self._precomputed = True
        return len(ids)

    def _save_entity_vectors(self, path: Path) -> None:
        path = Path(path)
        if not self._precomputed or not self._cache:
            # Saved over a pipeline that had them: they belong to old weights.
            shutil.rmtree(path, ignore_errors=True)
            return
        path.mkdir(parents=True, exist_ok=True)
        srsly.write_json(path / "ids.json", list(self._cache))
        numpy.save(path / "vectors.npy", numpy.stack(list(self._cache.values())).astype("f"))

    def _load_entity_vectors(self, path: Path) -> None:
        ids_path, vectors_path = path / "ids.json", path / "vectors.npy"
        if not ids_path.exists() or not vectors_path.exists():
            raise ValueError(f"[{COMPONENT}] {path} needs ids.json and vectors.npy (written by to_disk).")
        ids = srsly.read_json(ids_path)
        vectors = numpy.load(vectors_path)
        if vectors.ndim != 2 or len(vectors) != len(ids):
            raise ValueError(
                f"[{COMPONENT}] {vectors_path}: expected {len(ids)} rows (one per id in ids.json), "
                f"got an array of shape {vectors.shape}"
            )
        self._cache = OrderedDict(zip(ids, vectors))
        self._precomputed = True

    def _require_kb(self) -> None:
        if self.kb is None:
            raise ValueError(
                f"[{COMPONENT}] '{self.name}' has no knowledge base: set "
                f"[initialize.components.{self.name}.kb_loader] (e.g. spacy_llm_ner.load_kb_jsonl.v1) "
                "and run nlp.initialize(), or pass kb_loader= to initialize()."
            )

    # -- the backbone ----------------------------------------------------------

    def _listener(self) -> Optional[Model]:
        for node in self.model.get_ref("tok2vec").walk():
            if hasattr(node, "upstream_name") and hasattr(node, "receive"):
                return node
        return None

    def _encoder(self) -> Tuple[Callable[[str], Doc], Any]:
        """(make_doc, upstream component or None) for encoding entity texts."""
        listener = self._listener()
        nlp = self._nlp_ref() if self._nlp_ref is not None else None
        if nlp is None:
            if self._detached is not None:
                return self._detached
            raise ValueError(
                f"[{COMPONENT}] '{self.name}' is not part of a live pipeline (it needs the pipeline's "
                "tokenizer and backbone to encode entity texts)."
            )
        if listener is None:
            return nlp.make_doc, None
        for _, proc in nlp.pipeline:
            for listeners in getattr(proc, "listener_map", {}).values():
                if any(other is listener for other in listeners):
                    return nlp.make_doc, proc
        upstream = getattr(listener, "upstream_name", "*")
        if upstream != "*" and upstream in nlp.component_names:
            return nlp.make_doc, nlp.get_pipe(upstream)
        raise ValueError(
            f"[{COMPONENT}] Cannot find the component that '{self.name}' listens to "
            f"(upstream {upstream!r}); add a transformer or tok2vec before it."
        )

    def _entity_text(self, entity_id: str) -> str:
        record = self.kb.entity(entity_id)  # type: ignore[union-attr]
        return f"{record.name}: {record.description}" if record.description else record.name

    def _encode_texts(self, texts: List[str]) -> numpy.ndarray:
        """Mean backbone vector of each text (backbone in predict mode)."""
        make_doc, upstream = self._encoder()
        tok2vec = self.model.get_ref("tok2vec")
        max_tokens = self.cfg["entity_max_tokens"]
        out: List[numpy.ndarray] = []
        size = self.cfg["entity_batch_size"]
        for i in range(0, len(texts), size):
            docs = []
            for text in texts[i : i + size]:
                doc = make_doc(text)
                docs.append(doc[:max_tokens].as_doc() if len(doc) > max_tokens else doc)
            if upstream is not None:
                upstream.set_annotations(docs, upstream.predict(docs))
            for vectors in tok2vec.predict(docs):
                vectors = self.model.ops.to_numpy(vectors)
                if len(vectors):
                    out.append(vectors.mean(axis=0))
                else:
                    out.append(numpy.zeros(vectors.shape[1], dtype="f"))
        return numpy.asarray(out, dtype="f")

    def _encode_entities(self, entity_ids: List[str], *, use_cache: bool) -> numpy.ndarray:
        if not use_cache or self.cfg["cache_size"] == 0:
            return self._encode_texts([self._entity_text(e) for e in entity_ids])
        missing = [e for e in dict.fromkeys(entity_ids) if e not in self._cache]
        if missing:
            for entity_id, vector in zip(missing, self._encode_texts([self._entity_text(e) for e in missing])):
                self._cache[entity_id] = vector
        rows = []
        for entity_id in entity_ids:
            self._cache.move_to_end(entity_id)
            rows.append(self._cache[entity_id])
        out = numpy.asarray(rows, dtype="f")
        while len(self._cache) > self.cfg["cache_size"]:
            self._cache.popitem(last=False)
        return out

    # -- candidates and scoring ----------------------------------------------

    def _candidates(self, spans: List[Span]) -> List[List]:
        kb = self.kb
        maps: List[Optional[Dict[str, str]]] = [None] * len(spans)
        if kb.use_doc_abbreviations:  # type: ignore[union-attr]
            # Once per doc, not per mention: the KB's cache compares doc.text,
            # which costs a pass over the doc, and a long document has
            # thousands of mentions.
            per_doc: Dict[int, Dict[str, str]] = {}
            for i, span in enumerate(spans):
                if id(span.doc) not in per_doc:
                    per_doc[id(span.doc)] = kb.doc_abbreviations(span.doc)  # type: ignore[union-attr]
                maps[i] = per_doc[id(span.doc)]
        return kb.candidates_batch([s.text for s in spans], abbreviations=maps, top_k=self.cfg["top_k"])  # type: ignore[union-attr]

    def _batch(
        self,
        docs: List[Doc],
        spans: List[List[Tuple[int, int]]],
        candidates: List[List[Tuple[str, numpy.ndarray]]],
        extra_ids: Sequence[str] = (),
        *,
        use_cache: bool,
    ) -> _Batch:
        """Lay out mentions and their (entity id, feature row) candidates."""
        entity_ids: Dict[str, int] = {}
        rows, features, offsets = [], [], []
        n_features = 0
        for cands in candidates:
            offsets.append(n_features)
            rows.append(numpy.asarray([entity_ids.setdefault(e, len(entity_ids)) for e, _ in cands], dtype="i"))
            features.extend(f for _, f in cands)
            n_features += len(cands)
        for e in extra_ids:
            entity_ids.setdefault(e, len(entity_ids))
        ids = list(entity_ids)
        vectors = self._encode_entities(ids, use_cache=use_cache) if ids else None
        if vectors is None:
            vectors = numpy.zeros((0, self._width()), dtype="f")
        ops = self.model.ops
        X = LinkerInput(
            docs=docs,
            mentions=[numpy.asarray(s, dtype="i").reshape((-1, 2)) for s in spans],
            entities=ops.asarray2f(vectors),
            features=ops.asarray2f(
                numpy.asarray(features, dtype="f").reshape((-1, len(FEATURES)))
            ),
        )
        return _Batch(X, ids, rows, numpy.asarray(offsets, dtype="i"))

    def _width(self) -> int:
        return int(self.model.get_ref("entity_layer").get_dim("nI"))

    @staticmethod
    def _logits(scores: LinkerScores, batch: _Batch, m: int, ops) -> numpy.ndarray:
        """[candidate logits..., NIL logit] of mention m, float64."""
        rows = batch.rows[m]
        start = int(batch.offsets[m])
        sim = ops.to_numpy(scores.similarity[m])[rows] if len(rows) else numpy.zeros(0)
        feat = ops.to_numpy(scores.features[start : start + len(rows)])
        nil = float(ops.to_numpy(scores.nil[m : m + 1])[0])
        return numpy.concatenate([numpy.asarray(sim + feat, dtype="f8"), [nil]])

    def _link(self, docs: List[Doc], mentions: List[List[Span]]) -> List[List[Link]]:
        """Link the given mentions (spans of the docs)."""
        self._require_kb()
        nil_id, threshold = self.cfg["nil_id"], self.cfg["threshold"]
        flat = [span for spans in mentions for span in spans]
        if not flat:
            return [[] for _ in docs]
        scored = self._candidates(flat)
        candidates = [[(c.entity_id, f) for c, f in zip(cands, candidate_features(cands))] for cands in scored]
        links: List[Link] = []
        if not any(candidates):
            links = [Link(nil_id, 1.0, 1.0, []) for _ in flat]
        else:
            spans = [[(s.start, s.end) for s in doc_spans] for doc_spans in mentions]
            batch = self._batch(docs, spans, candidates, use_cache=True)
            scores = self.model.predict(batch.X)
            ops = self.model.ops
            for m, cands in enumerate(candidates):
                if not cands:
                    links.append(Link(nil_id, 1.0, 1.0, []))
                    continue
                probs = _softmax(self._logits(scores, batch, m, ops))
                probs = numpy.minimum(probs, _MAX_PROB)
                p_nil = float(probs[-1])
                order = numpy.argsort(-probs[:-1], kind="stable")
                ranked = [(cands[i][0], float(probs[i])) for i in order]
                best_id, p_best = ranked[0]
                if p_best <= p_nil or p_best < threshold:
                    links.append(Link(nil_id, p_nil, p_nil, ranked))
                else:
                    links.append(Link(best_id, p_best, p_nil, ranked))
        out, i = [], 0
        for doc_spans in mentions:
            out.append(links[i : i + len(doc_spans)])
            i += len(doc_spans)
        return out

    # -- the pipe API ------------------------------------------------------------

    def _links_label(self, label: str) -> bool:
        labels = self.cfg.get("labels")
        return not labels or label in labels

    def _mentions(self, doc: Doc) -> List[Span]:
        return [ent for ent in doc.ents if self._links_label(ent.label_)]

    def predict(self, docs: Iterable[Doc]) -> List[List[Link]]:
        """Link the entities in doc.ents (those with one of `labels`, if set).

        docs (Iterable[Doc]): The documents.
        RETURNS (List[List[Link]]): Per doc, one Link per linked entity.
        """
        docs = list(docs)
        return self._link(docs, [self._mentions(doc) for doc in docs])

    def set_annotations(self, docs: Iterable[Doc], links: List[List[Link]]) -> None:
        """Set token.ent_kb_id on the entities and store the scored
        candidates in doc.spans[spans_key].

        docs (Iterable[Doc]): The documents.
        links (List[List[Link]]): Output of predict.
        """
        key = self.cfg["spans_key"]
        for doc, doc_links in zip(docs, links):
            ents = self._mentions(doc)
            if len(ents) != len(doc_links):
                raise ValueError(f"[{COMPONENT}] Got {len(doc_links)} links for {len(ents)} entities.")
            spans, scores = [], []
            for ent, link in zip(ents, doc_links):
                if self.cfg["overwrite"] or not ent.kb_id:
                    for token in ent:
                        token.ent_kb_id_ = link.kb_id
                    scores.append(link.score)
                else:
                    scores.append(self._kept_score(link, ent.kb_id_))
                spans.append(Span(doc, ent.start, ent.end, label=ent.label, kb_id=doc[ent.start].ent_kb_id))
            doc.spans[key] = SpanGroup(
                doc,
                name=key,
                attrs={
                    "component": COMPONENT,
                    "scores": scores,
                    "nil_scores": [link.nil_score for link in doc_links],
                    "candidates": [[[e, p] for e, p in link.candidates] for link in doc_links],
                },
                spans=spans,
            )

    def _kept_score(self, link: Link, kb_id: str) -> float:
        """The probability the linker gives an id already on the entity (kept
        with overwrite = false): kb_score must describe the id the entity
        carries, not the linker's own choice. 0.0 for an id that is not
        among the candidates.

        link (Link): The linker's decision for the entity.
        kb_id (str): The kept id.
        RETURNS (float): Its probability.
        """
        if kb_id == link.kb_id:
            return link.score
        if kb_id == self.cfg["nil_id"]:
            return link.nil_score
        return dict(link.candidates).get(kb_id, 0.0)

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        kb_loader: Optional[Callable[[Vocab], KnowledgeBase]] = None,
    ) -> None:
        """Load the KB and initialize the model's shapes.

        get_examples (Callable[[], Iterable[Example]]): The training data.
        nlp (Language): The pipeline.
        kb_loader (Optional[Callable[[Vocab], KnowledgeBase]]): Builds the KB,
            e.g. from [initialize.components.<name>.kb_loader]. Without it the
            component keeps the KB it has (set_kb, or loaded from disk).
        """
        validate_get_examples(get_examples, "TransformerEntityLinker.initialize")
        if nlp is not None:
            self._nlp_ref = weakref.ref(nlp)
            self._check_entity_source(nlp)
        if kb_loader is not None:
            self.set_kb(kb_loader(self.vocab))
        self._require_kb()
        if len(self.kb) == 0:  # type: ignore[arg-type]
            raise ValueError(
                f"[{COMPONENT}] The knowledge base of '{self.name}' is empty; check the file given to its kb_loader."
            )
        self.clear_cache()
        docs = [eg.predicted for eg in islice(get_examples(), 10)]
        sample_ids = list(islice(self.kb.entity_ids, 8))  # type: ignore[union-attr]
        vectors = self._encode_texts([self._entity_text(e) for e in sample_ids])
        X = LinkerInput(
            docs=docs,
            mentions=[numpy.zeros((0, 2), dtype="i") for _ in docs],
            entities=vectors,
            features=numpy.zeros((0, len(FEATURES)), dtype="f"),
        )
        self.model.initialize(X=X)
        self.clear_cache()
        unknown, total = 0, 0
        gold_labels = set()
        for eg in get_examples():
            for ent in eg.reference.ents:
                if ent.kb_id_:
                    gold_labels.add(ent.label_)
                if ent.kb_id_ and ent.kb_id_ != self.cfg["nil_id"] and self._links_label(ent.label_):
                    total += 1
                    unknown += not self.kb.resolve_id(ent.kb_id_)  # type: ignore[union-attr]
        labels = self.cfg["labels"]
        if labels and gold_labels and not gold_labels & set(labels):
            # Nothing would be trained, and at prediction time nothing linked.
            raise ValueError(
                f"[{COMPONENT}] '{self.name}' links the entity labels {labels}, but no gold entity with a kb_id in "
                f"the training data has one of them (they have {sorted(gold_labels)}). Fix `labels` in "
                f"[components.{self.name}] (empty: link every label) or the data."
            )
        if unknown:
            warnings.warn(
                f"[{COMPONENT}] {unknown} of {total} gold kb_ids in the training data are not in the "
                f"knowledge base; they are trained as '{self.cfg['nil_id']}'."
            )

    def _check_entity_source(self, nlp: Language) -> None:
        """The linker links the entities on the doc when it runs: one placed
        before a component that sets doc.ents would never see that
        component's entities.

        nlp (Language): The pipeline.
        RAISES (ValueError): If a component after the linker sets doc.ents.
        """
        names = nlp.pipe_names
        if self.name not in names:
            return
        position = names.index(self.name)
        setters = [n for n in names if "doc.ents" in nlp.get_pipe_meta(n).assigns]
        later = [n for n in setters if names.index(n) > position]
        if later:
            raise ValueError(
                f"[{COMPONENT}] '{self.name}' runs before '{later[0]}', which sets doc.ents, so it would never "
                f"link that component's entities. Put the linker after it: nlp.add_pipe('{COMPONENT}', "
                f"after='{later[-1]}'), or list '{self.name}' after '{later[-1]}' in [nlp] pipeline."
            )
        if not any(names.index(n) < position for n in setters):
            # Not an error: linking entities that the caller sets on the docs
            # (gold mentions, another system's output) is a supported use.
            warnings.warn(
                f"[{COMPONENT}] No component before '{self.name}' sets doc.ents, so it links only the entities "
                "already on the docs it is given. Add an entity source before it (transformer_ner, ner, "
                "entity_ruler) if that is not intended."
            )

    def _gold_mentions(self, eg: Example) -> List[Tuple[Span, str]]:
        """Gold entities with a kb_id, aligned to the predicted tokens."""
        out = []
        for ent in eg.reference.ents:
            if not ent.kb_id_ or not self._links_label(ent.label_):
                continue
            aligned = eg.get_aligned_spans_y2x([ent], allow_overlap=True)
            if aligned:
                out.append((aligned[0], ent.kb_id_))
        return out

    def _target(self, gold: str) -> Optional[str]:
        if gold == self.cfg["nil_id"]:
            return None
        found = self.kb.resolve_id(gold)  # type: ignore[union-attr]
        return found[0] if found else None

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """Learn from the gold links (ent.kb_id_ of the reference docs): a
        softmax over each mention's candidates plus NIL (the gold entity is
        added when the cascade missed it), and, weighted by negatives_weight,
        a softmax of each in-KB gold mention over all entities of the batch.

        examples (Iterable[Example]): The batch.
        drop (float): Unused (the model's own dropout applies).
        sgd (Optional[Optimizer]): Optimizer to step with.
        losses (Optional[Dict[str, float]]): Running losses, updated.
        RETURNS (Dict[str, float]): The losses.
        """
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "TransformerEntityLinker.update")
        self._require_kb()
        self.clear_cache()
        gold = [self._gold_mentions(eg) for eg in examples]
        flat = [(span, self._target(kb_id)) for mentions in gold for span, kb_id in mentions]
        if not flat:
            return losses
        scored = self._candidates([span for span, _ in flat])
        candidates, targets = [], []
        for (span, target), cands in zip(flat, scored):
            feats = candidate_features(cands)
            ids = [c.entity_id for c in cands]
            if target is not None and target not in ids:
                # The cascade missed the gold entity: add it, and let this
                # mention teach the similarity only (no string evidence).
                ids.append(target)
                feats = numpy.zeros((len(ids), len(FEATURES)), dtype="f")
            candidates.append(list(zip(ids, feats)))
            targets.append(len(ids) if target is None else ids.index(target))
        in_kb = [t for _, t in flat if t is not None]
        spans = [[(s.start, s.end) for s, _ in mentions] for mentions in gold]
        batch = self._batch([eg.predicted for eg in examples], spans, candidates, in_kb, use_cache=False)
        scores, backprop = self.model.begin_update(batch.X)
        loss, d_scores = self._loss(scores, batch, candidates, targets, flat)
        backprop(d_scores)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def _loss(self, scores: LinkerScores, batch: _Batch, candidates, targets, flat) -> Tuple[float, LinkerScores]:
        ops = self.model.ops
        sim = ops.to_numpy(scores.similarity).astype("f8")
        d_sim = numpy.zeros(sim.shape, dtype="f")
        d_nil = numpy.zeros(len(targets), dtype="f")
        d_feat = numpy.zeros(len(ops.to_numpy(scores.features)), dtype="f")
        weight = self.cfg["negatives_weight"]
        rows_of = {e: i for i, e in enumerate(batch.entity_ids)}
        loss = 0.0
        for m, (cands, target) in enumerate(zip(candidates, targets)):
            probs = _softmax(self._logits(scores, batch, m, ops))
            loss -= float(numpy.log(max(probs[target], 1e-12)))
            d = probs.copy()
            d[target] -= 1.0
            rows, start = batch.rows[m], int(batch.offsets[m])
            numpy.add.at(d_sim[m], rows, d[:-1])
            d_feat[start : start + len(rows)] += d[:-1]
            d_nil[m] += d[-1]
            gold_id = flat[m][1]
            if weight > 0 and gold_id is not None and sim.shape[1] > 1:
                row = rows_of[gold_id]
                p_all = _softmax(sim[m])
                loss -= weight * float(numpy.log(max(p_all[row], 1e-12)))
                p_all[row] -= 1.0
                d_sim[m] += weight * p_all
        d_scores = LinkerScores(ops.asarray2f(d_sim), ops.asarray1f(d_nil), ops.asarray1f(d_feat))
        return loss, d_scores

    def get_loss(self, examples: Iterable[Example], scores: LinkerScores):
        raise NotImplementedError(f"[{COMPONENT}] The loss is computed inside update().")

    def rehearse(self, examples, *, sgd=None, losses=None, **config):
        raise NotImplementedError

    def add_label(self, label: str) -> int:
        raise NotImplementedError

    def finish_update(self, sgd: Optimizer) -> None:
        """Step the optimizer, scaling the learning rate of the scorer's own
        parameters by head_lr_scale (the tok2vec keeps the optimizer's rate),
        and drop the cached entity encodings (the backbone has changed).

        sgd (Optimizer): The optimizer.
        """
        finish_update_with_head_scale(self.model, sgd, head_lr_scale=self.cfg.get("head_lr_scale", 1.0))
        self.clear_cache()

    # -- evaluation ---------------------------------------------------------------

    def score(self, examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
        """nel_micro_p/r/f (spaCy's Scorer.score_links, on predicted entities
        that match a gold entity) plus, on the gold mentions themselves:
        nel_candidate_recall (gold entity among the top_k candidates) and
        nel_inkb_accuracy (the linker's output on the gold mention equals
        the gold entity), both over gold mentions whose entity is in the KB.

        examples (Iterable[Example]): Examples processed by the pipeline.
        RETURNS (Dict[str, Any]): The scores.
        """
        examples = list(examples)
        validate_examples(examples, "TransformerEntityLinker.score")
        scores: Dict[str, Any] = {}
        if self.scorer is not None:
            scores.update(self.scorer(examples, nil_id=self.cfg["nil_id"], labels=self.cfg["labels"], **kwargs))
        if self.kb is None:
            return scores
        docs, mentions, targets = [], [], []
        for eg in examples:
            pairs = [(s, self._target(k)) for s, k in self._gold_mentions(eg)]
            pairs = [(s, t) for s, t in pairs if t is not None]
            docs.append(eg.predicted)
            mentions.append([s for s, _ in pairs])
            targets.extend(t for _, t in pairs)
        found = correct = 0
        links: List[Link] = []
        for i in range(0, len(docs), 32):  # bounded similarity matrices
            for doc_links in self._link(docs[i : i + 32], mentions[i : i + 32]):
                links.extend(doc_links)
        for link, target in zip(links, targets):
            found += any(e == target for e, _ in link.candidates)
            correct += link.kb_id == target
        scores["nel_candidate_recall"] = found / len(targets) if targets else None
        scores["nel_inkb_accuracy"] = correct / len(targets) if targets else None
        return scores

    # -- serialisation ---------------------------------------------------------------

    def to_bytes(self, *, exclude: Iterable[str] = SimpleFrozenList()) -> bytes:
        """Serialise the component, its KB included.

        RETURNS (bytes): The data.
        """
        serialize: Dict[str, Callable[[], bytes]] = {
            "cfg": lambda: srsly.json_dumps(self.cfg),
            "vocab": lambda: self.vocab.to_bytes(exclude=exclude),
            "kb": lambda: (self.kb if self.kb is not None else LinkerKB(self.vocab)).to_bytes(),
            "model": self.model.to_bytes,
        }
        return util.to_bytes(serialize, exclude)

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = SimpleFrozenList()) -> "TransformerEntityLinker":
        """Load what to_bytes wrote.

        bytes_data (bytes): The data.
        RETURNS (TransformerEntityLinker): self.
        """

        def load_kb(b: bytes) -> None:
            try:
                self.kb = LinkerKB(self.vocab).from_bytes(b)
            except Exception as e:
                raise ValueError(f"[{COMPONENT}] Could not read the knowledge base from bytes: {e}") from e

        deserialize: Dict[str, Callable[[bytes], Any]] = {
            "cfg": lambda b: self.cfg.update(srsly.json_loads(b)),
            "vocab": lambda b: self.vocab.from_bytes(b, exclude=exclude),
            "kb": load_kb,
            "model": lambda b: self.model.from_bytes(b),
        }
        util.from_bytes(bytes_data, deserialize, exclude)
        self.clear_cache()
        return self

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = SimpleFrozenList()) -> None:
        """Save the component to a folder: cfg, model, and the KB (in kb/).

        path (Union[str, Path]): The folder.
        """
        serialize: Dict[str, Callable[[Path], None]] = {
            "vocab": lambda p: self.vocab.to_disk(p, exclude=exclude),
            "cfg": lambda p: srsly.write_json(p, self.cfg),
            "kb": lambda p: (self.kb if self.kb is not None else LinkerKB(self.vocab)).to_disk(p),
            "model": lambda p: self.model.to_disk(p),
            "entity_vectors": self._save_entity_vectors,
        }
        util.to_disk(path, serialize, exclude)

    def from_disk(
        self, path: Union[str, Path], *, exclude: Iterable[str] = SimpleFrozenList()
    ) -> "TransformerEntityLinker":
        """Load a folder written by to_disk (the KB is memory-mapped).

        path (Union[str, Path]): The folder.
        RETURNS (TransformerEntityLinker): self.
        RAISES (ValueError): If the KB folder is missing or unreadable.
        """

        def load_kb(p: Path) -> None:
            if not p.is_dir() or not (p / "meta.json").exists():
                raise ValueError(
                    f"[{COMPONENT}] The knowledge base of '{self.name}' is missing: expected a LinkerKB "
                    f"folder at {p}. Copy the whole pipeline folder, or rebuild the KB and save it there."
                )
            try:
                self.kb = LinkerKB.load(p, self.vocab)
            except Exception as e:
                raise ValueError(
                    f"[{COMPONENT}] Could not load the knowledge base of '{self.name}' from {p}: {e}"
                ) from e

        def load_model(p: Path) -> None:
            with Path(p).open("rb") as f:
                self.model.from_bytes(f.read())

        deserialize: Dict[str, Callable[[Path], Any]] = {
            "cfg": lambda p: self.cfg.update(srsly.read_json(p)),
            "vocab": lambda p: self.vocab.from_disk(p, exclude=exclude),
            "kb": load_kb,
            "model": load_model,
        }
        util.from_disk(path, deserialize, exclude)
        self.clear_cache()
        vectors = Path(path) / "entity_vectors"
        if "entity_vectors" not in exclude and vectors.exists():
            self._load_entity_vectors(vectors)
        return self

    def __reduce__(self) -> Tuple[Any, ...]:
        # spaCy's pipes are Cython classes whose fields live outside
        # __dict__, and a weak reference cannot be pickled: keep the
        # tokenizer and the upstream component themselves (pickled in the
        # same stream as the rest of the pipeline, they stay the same objects).
        # The cache travels only when precomputed (then it is part of the pipe).
        skip = ("_nlp_ref",) if self._precomputed else ("_nlp_ref", "_cache")
        extra = {k: v for k, v in self.__dict__.items() if k not in skip}
        nlp = self._nlp_ref() if self._nlp_ref is not None else None
        if nlp is not None:
            try:
                upstream = self._encoder()[1]
            except ValueError:
                upstream = None
            extra["_detached"] = (nlp.tokenizer, upstream)
        fields = (self.vocab, self.model, self.name, self.cfg, self.scorer, self.kb)
        return (_unpickle_linker, (type(self), fields, extra))


def _unpickle_linker(cls: type, fields: Tuple[Any, ...], extra: Dict[str, Any]) -> TransformerEntityLinker:
    vocab, model, name, cfg, scorer, kb = fields
    linker = cls(vocab, model, name, scorer=scorer)
    linker.cfg = cfg
    linker.__dict__.update(extra)
    linker.kb = kb
    return linker


def _softmax(x: numpy.ndarray) -> numpy.ndarray:
    x = numpy.asarray(x, dtype="f8")
    e = numpy.exp(x - x.max())
    return e / e.sum()


def _find(span: Span, attr: str) -> Optional[Any]:
    for group in span.doc.spans.values():
        if group.attrs.get("component") != COMPONENT:
            continue
        for other, value in zip(group, group.attrs.get(attr, [])):
            if (other.start, other.end) == (span.start, span.end):
                return value
    return None


def _span_candidates(span: Span) -> Optional[List[Tuple[str, float]]]:
    found = _find(span, "candidates")
    return None if found is None else [(str(e), float(p)) for e, p in found]


def _span_score(span: Span) -> Optional[float]:
    found = _find(span, "scores")
    return None if found is None else float(found)


def _register_extensions() -> None:
    if not Span.has_extension(CANDIDATES_ATTR):
        Span.set_extension(CANDIDATES_ATTR, getter=_span_candidates)
    if not Span.has_extension(SCORE_ATTR):
        Span.set_extension(SCORE_ATTR, getter=_span_score)
