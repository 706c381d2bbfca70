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

The scored candidates are kept on the Doc (`link_annotations.py`:
`span._.kb_candidates`, `span._.kb_score`, `doc.spans[spans_key]`).

The KB is created at initialize time from `[initialize.components.<name>.kb_loader]`
(e.g. `spacy_llm_ner.load_kb.v1`) and saved with the pipeline; entities
added later with `add_entities()` are linkable at once, without retraining.

The parts: the scorer model and its batches and loss are in `ml/linker.py`
and `ml/linker_batch.py`, the entity side (encoding KB entities, the cache,
precomputed vectors) in `ml/entity_encoder.py`, what is written on the Doc in
`link_annotations.py`, the initialize-time checks in `linker_checks.py`.
"""
from itertools import islice
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy
from spacy.kb import KnowledgeBase
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc, Span
from spacy.training import Example, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Config, Model

from ..kb.candidates import ScoredCandidate
from ..kb.knowledge_base import LinkerKB
from ..kb.records import EntityRecord
from ..ml.entity_encoder import Backbone, EntityEncoder, encode_texts, entity_text
from ..ml.linker import FEATURES, LinkerInput, LinkerScores
from ..ml.linker_batch import Candidates, LinkerBatch, layout_batch, mention_logits, softmax, with_features
from .link_annotations import COMPONENT, Link, decide, register_extensions, write_links
from .link_scoring import score_links
from .linker_backbone import PipelineHandle
from .linker_checks import check_entity_source, check_gold_links, require_kb, validate_options
from .linker_io import LinkerSerialization
from .linker_training import LinkerTraining

DEFAULT_SPANS_KEY = "transformer_entity_linker"

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


class TransformerEntityLinker(LinkerTraining, LinkerSerialization, TrainablePipe):
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
        validate_options(
            top_k=top_k, threshold=threshold, nil_id=nil_id, negatives_weight=negatives_weight,
            entity_max_tokens=entity_max_tokens, entity_batch_size=entity_batch_size, cache_size=cache_size,
            head_lr_scale=head_lr_scale,
        )
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
        self.pipeline_handle = PipelineHandle(nlp)
        self.entity_encoder = EntityEncoder()
        register_extensions()

    # -- the KB and its entities -------------------------------------------------

    def set_kb(self, kb: KnowledgeBase) -> None:
        """Use a knowledge base (normally done by initialize's kb_loader).

        kb (KnowledgeBase): A LinkerKB (the linker needs its names,
            descriptions and scored candidates).
        """
        if not isinstance(kb, LinkerKB):
            raise ValueError(
                f"[{COMPONENT}] The kb_loader returned a {type(kb).__name__}; this component needs a "
                "spacy_llm_ner LinkerKB (use spacy_llm_ner.load_kb.v1, or load_kb_disk.v1 for a saved KB)."
            )
        self.kb = kb
        self.clear_cache()

    def add_entities(self, records: Iterable[EntityRecord]) -> int:
        """Add entities to the KB of a trained pipeline; they are linkable at
        once (their text is encoded by the backbone when first needed).

        records (Iterable[EntityRecord]): New entities (ids must be new).
        RETURNS (int): The number added.
        """
        kb = self._require_kb()
        records = list(records)
        added = kb.add_entities(records)
        self.entity_encoder.forget(record.id for record in records)
        return added

    def clear_cache(self) -> None:
        """Forget the cached entity encodings (done automatically after an
        update, on loading and when entities are added; call it if you
        change the backbone's weights some other way)."""
        self.entity_encoder.clear()

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
        kb = self._require_kb()
        try:
            return self.entity_encoder.precompute(kb, self._backbone(), cache_size=self.cfg["cache_size"])
        except ValueError as e:
            raise ValueError(f"[{COMPONENT}] {e}") from e

    def _require_kb(self) -> LinkerKB:
        require_kb(self.kb, self.name)
        return self.kb  # type: ignore[return-value]

    # -- the backbone ----------------------------------------------------------

    def _backbone(self) -> Backbone:
        tok2vec = self.model.get_ref("tok2vec")
        make_doc, upstream = self.pipeline_handle.parts(tok2vec, name=self.name)
        return Backbone(make_doc, upstream, tok2vec, self.cfg["entity_max_tokens"], self.cfg["entity_batch_size"])

    def encode_entities(self, entity_ids: List[str], *, use_cache: bool = True) -> numpy.ndarray:
        """The backbone's encodings of KB entities (as the scorer sees them
        before its entity layer).

        entity_ids (List[str]): The entities.
        use_cache (bool): Use and fill the cache (prediction) or encode afresh.
        RETURNS (numpy.ndarray): (len(entity_ids), width) float32.
        """
        kb = self._require_kb()
        backbone = self._backbone()
        return self.entity_encoder.encode(kb, entity_ids, backbone, cache_size=self.cfg["cache_size"], use_cache=use_cache)

    def encode_texts(self, texts: List[str]) -> numpy.ndarray:
        """The backbone's mean vector of each text, as entities are encoded.

        texts (List[str]): The texts.
        RETURNS (numpy.ndarray): (len(texts), width) float32.
        """
        return encode_texts(texts, self._backbone())

    # -- candidates and scoring ----------------------------------------------

    def _candidates(self, spans: List[Span]) -> List[List[ScoredCandidate]]:
        return self._require_kb().candidates_for_spans(spans, top_k=self.cfg["top_k"])

    def _batch(
        self,
        docs: List[Doc],
        spans: List[List[Tuple[int, int]]],
        candidates: List[Candidates],
        extra_ids: Sequence[str] = (),
        *,
        use_cache: bool,
    ) -> LinkerBatch:
        width = int(self.model.get_ref("entity_layer").get_dim("nI"))
        encode = lambda ids: self.encode_entities(ids, use_cache=use_cache)  # noqa: E731
        return layout_batch(docs, spans, candidates, encode, ops=self.model.ops, width=width, extra_ids=extra_ids)

    def _link(self, docs: List[Doc], mentions: List[List[Span]]) -> List[List[Link]]:
        """Link the given mentions (spans of the docs)."""
        self._require_kb()
        nil_id, threshold = self.cfg["nil_id"], self.cfg["threshold"]
        flat = [span for spans in mentions for span in spans]
        scored = self._candidates(flat) if flat else []
        candidates = [with_features(cands) for cands in scored]
        links: List[Link] = [Link(nil_id, 1.0, 1.0, []) for _ in flat]  # no candidate: NIL
        if any(candidates):
            spans = [[(s.start, s.end) for s in doc_spans] for doc_spans in mentions]
            batch = self._batch(docs, spans, candidates, use_cache=True)
            scores = self.model.predict(batch.X)
            for m, cands in enumerate(candidates):
                if cands:
                    probs = softmax(mention_logits(scores, batch, m, self.model.ops))
                    links[m] = decide([e for e, _ in cands], probs, nil_id=nil_id, threshold=threshold)
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
        for doc, doc_links in zip(docs, links):
            write_links(
                doc, self._mentions(doc), doc_links, key=self.cfg["spans_key"], overwrite=self.cfg["overwrite"],
                nil_id=self.cfg["nil_id"],
            )

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
            self.pipeline_handle.attach(nlp)
            check_entity_source(nlp, self.name)
        if kb_loader is not None:
            self.set_kb(kb_loader(self.vocab))
        kb = self._require_kb()
        if len(kb) == 0:
            raise ValueError(
                f"[{COMPONENT}] The knowledge base of '{self.name}' is empty; check the file given to its kb_loader."
            )
        self.clear_cache()
        docs = [eg.predicted for eg in islice(get_examples(), 10)]
        sample = [entity_text(kb, e) for e in islice(kb.entity_ids, 8)]
        X = LinkerInput(
            docs=docs,
            mentions=[numpy.zeros((0, 2), dtype="i") for _ in docs],
            entities=self.encode_texts(sample),
            features=numpy.zeros((0, len(FEATURES)), dtype="f"),
        )
        self.model.initialize(X=X)
        self.clear_cache()
        check_gold_links(
            get_examples(), kb, name=self.name, labels=self.cfg["labels"], nil_id=self.cfg["nil_id"]
        )
