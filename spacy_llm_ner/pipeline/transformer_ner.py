"""The `transformer_ner` component: token classification over a shared
backbone with softmax or BIO-constrained CRF decoding and per-entity
confidences."""
from itertools import islice
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy
from spacy.kb import KnowledgeBase
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc, Span, SpanGroup
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Config, Model, Optimizer

from ..ml.optim import finish_update_with_head_scale
from ..ml.decoders import CONFIDENCES, DECODERS, Decoded, Decoder, make_decoder
from ..ml.models import TagScores
from ..ml.tags import SCHEMES, TagSet
from ..training.distill import soft_targets
from .abbreviations import ABBREVIATION_MODES, propagate_abbreviations
from .language_checks import check_training_language
from .ner_labels import allowed_tags, grow_label, is_initialized, mark_seen, mask_unseen
from .ner_support import (
    CONFIDENCE_ATTR,
    INFERENCE_SETTINGS,
    check_choice,
    choose_labels,
    configured_settings,
    init_gazetteer,
    open_tag_mask,
    register_confidence_extension,
)

__all__ = [
    "CONFIDENCE_ATTR",
    "DEFAULT_SPANS_KEY",
    "ENTS_MODES",
    "INFERENCE_SETTINGS",
    "TransformerNER",
    "make_transformer_ner",
]

ENTS_MODES = ("respect", "overwrite")
DEFAULT_SPANS_KEY = "transformer_ner"

DEFAULT_MODEL_CONFIG = """
[model]
@architectures = "spacy_llm_ner.TokenClassifier.v1"
dropout = 0.1
nO = null

[model.tok2vec]
@architectures = "spacy-transformers.TransformerListener.v1"
grad_factor = 1.0
upstream = "*"

[model.tok2vec.pooling]
@layers = "reduce_mean.v1"
"""
DEFAULT_MODEL = Config().from_str(DEFAULT_MODEL_CONFIG)["model"]


@Language.factory(
    "transformer_ner",
    assigns=["doc.ents", "token.ent_iob", "token.ent_type", "doc.spans"],
    requires=[],
    default_config={
        "model": DEFAULT_MODEL,
        "decoder": "crf",
        "scheme": "BILUO",
        "threshold": 0.0,
        "confidence": "mean",
        "ents_mode": "respect",
        "spans_key": DEFAULT_SPANS_KEY,
        "head_lr_scale": 1.0,
        "distill_weight": 1.0,
        "abbreviations": "none",
        "scorer": {"@scorers": "spacy.ner_scorer.v1"},
    },
    default_score_weights={
        "ents_f": 1.0,
        "ents_p": 0.0,
        "ents_r": 0.0,
        "ents_per_type": None,
    },
)
def make_transformer_ner(
    nlp: Language,
    name: str,
    model: Model[List[Doc], TagScores],
    *,
    decoder: str,
    scheme: str,
    threshold: float,
    confidence: str,
    ents_mode: str,
    spans_key: str,
    head_lr_scale: float,
    distill_weight: float,
    abbreviations: str,
    scorer: Optional[Callable],
) -> "TransformerNER":
    """Create a transformer_ner component.

    model (Model[List[Doc], TagScores]): Token classifier over a tok2vec.
    decoder (str): "crf" (learned transitions, Viterbi, span marginals) or
        "softmax" (independent tags, argmax repaired to valid spans).
    scheme (str): Tag scheme, "BILUO" or "IOB".
    threshold (float): Entities whose confidence is below it are not set on
        doc.ents (they stay, scored, in doc.spans[spans_key]).
    confidence (str): Softmax span confidence: "mean" or "min" token
        probability. The CRF always uses the span's marginal probability.
    ents_mode (str): "respect" keeps entities already on the doc (as spaCy's
        `ner` does) and predicts around them; "overwrite" replaces them.
    spans_key (str): doc.spans key for all predicted entities with scores.
    head_lr_scale (float): Learning-rate multiplier for the layers above the
        tok2vec (output layer and CRF). A fresh head under a pretrained
        backbone needs larger steps than the backbone's fine-tuning rate.
    distill_weight (float): Weight of the distillation term (KL from a
        teacher's tag distributions, see `spacy_llm_ner distill-corpus`) for
        training docs that carry them; other docs train on gold alone.
    abbreviations (str): Document-level abbreviation consistency: "none";
        "propagate": every use of a short form defined in the doc ("long
        form (LF)") gets the label of the entity that ends its long form;
        "consistent": also drop predictions on short forms whose long form
        ends with no entity.
    scorer (Optional[Callable]): Scoring function, spaCy's NER scorer.
    RETURNS (TransformerNER): The component.
    """
    return TransformerNER(
        nlp.vocab,
        model,
        name,
        decoder=decoder,
        scheme=scheme,
        threshold=threshold,
        confidence=confidence,
        ents_mode=ents_mode,
        spans_key=spans_key,
        head_lr_scale=head_lr_scale,
        distill_weight=distill_weight,
        abbreviations=abbreviations,
        scorer=scorer,
    )


class TransformerNER(TrainablePipe):
    """Named-entity recognition as constrained token classification."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model[List[Doc], TagScores],
        name: str = "transformer_ner",
        *,
        decoder: str = "crf",
        scheme: str = "BILUO",
        threshold: float = 0.0,
        confidence: str = "mean",
        ents_mode: str = "respect",
        spans_key: str = DEFAULT_SPANS_KEY,
        head_lr_scale: float = 1.0,
        distill_weight: float = 1.0,
        abbreviations: str = "none",
        scorer: Optional[Callable] = None,
    ) -> None:
        check_choice("decoder", decoder, DECODERS)
        check_choice("scheme", scheme, SCHEMES)
        check_choice("confidence", confidence, CONFIDENCES)
        check_choice("ents_mode", ents_mode, ENTS_MODES)
        check_choice("abbreviations", abbreviations, ABBREVIATION_MODES)
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"[transformer_ner] threshold must be in [0, 1], got {threshold}.")
        if head_lr_scale <= 0:
            raise ValueError(f"[transformer_ner] head_lr_scale must be > 0, got {head_lr_scale}.")
        if distill_weight < 0:
            raise ValueError(f"[transformer_ner] distill_weight must be >= 0, got {distill_weight}.")
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        self.cfg: Dict = {
            "labels": [],
            "decoder": decoder,
            "scheme": scheme,
            "threshold": threshold,
            "confidence": confidence,
            "ents_mode": ents_mode,
            "spans_key": spans_key,
            "head_lr_scale": head_lr_scale,
            "distill_weight": distill_weight,
            "abbreviations": abbreviations,
        }
        register_confidence_extension()

    @property
    def labels(self) -> Tuple[str, ...]:
        return tuple(self.cfg["labels"])

    @property
    def tagset(self) -> TagSet:
        return self.decoder.tagset

    @property
    def decoder(self) -> Decoder:
        # Built once per setting, not per batch: the tag set's constraint
        # masks are needed by every predict and update.
        key = (self.labels, self.cfg["decoder"], self.cfg["scheme"], self.cfg["confidence"])
        if getattr(self, "_decoder_key", None) != key:
            tagset = TagSet(self.labels, self.cfg["scheme"])
            self._decoder = make_decoder(self.cfg["decoder"], tagset, confidence=self.cfg["confidence"])
            self._decoder_key = key
        return self._decoder

    def add_label(self, label: str) -> int:
        """Add an entity label. On a trained component the head grows with
        the old tags' weights kept, and the label is not predicted until
        the component is updated on gold of it (pipeline/ner_labels.py).

        label (str): The label.
        RETURNS (int): 1 if it was added, 0 if the component had it.
        """
        if label in self.cfg["labels"]:
            return 0
        if is_initialized(self):
            grow_label(self, label)
        else:
            self.cfg["labels"].append(label)
        return 1

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[Sequence[str]] = None,
        gazetteer: Optional[Callable[[Vocab], KnowledgeBase]] = None,
    ) -> None:
        """Set the labels (given, or read from the examples), fill the
        gazetteer features from a KB, and initialize the model's shapes;
        warn if the tokenizer or the backbone does not fit the training
        text's language (pipeline/language_checks.py).

        get_examples (Callable[[], Iterable[Example]]): The training data.
        nlp (Language): The pipeline.
        labels (Optional[Sequence[str]]): Entity labels, e.g. from
            [initialize.components.<name>.labels]. Gold entities with any
            other label are an error rather than silently ignored.
        gazetteer (Optional[Callable[[Vocab], KnowledgeBase]]): A KB loader
            (e.g. spacy_llm_ner.load_kb.v1, from
            [initialize.components.<name>.gazetteer]) whose names, by entity
            type, fill the model's gazetteer features
            (spacy_llm_ner.FeatureTok2Vec.v1 with gazetteer = true). The table
            is saved with the pipeline.
        """
        validate_get_examples(get_examples, "TransformerNER.initialize")
        init_gazetteer(self.model, self.vocab, self.name, gazetteer, nlp)
        data_labels = set()
        for example in get_examples():
            data_labels.update(ent.label_ for ent in example.reference.ents)
        self.cfg["labels"] = []
        for label in choose_labels(data_labels, labels, self.name):
            self.add_label(label)
        if not self.labels:
            raise ValueError(
                "[transformer_ner] No entity labels: the training examples have no "
                "entities and no labels were given in [initialize.components]."
            )
        n_tags = len(self.tagset)
        for ref in ("output_layer", "crf"):
            self.model.get_ref(ref).set_dim("nO", n_tags)
        doc_sample = [eg.reference for eg in islice(get_examples(), 10)]
        self.model.initialize(X=doc_sample)
        check_training_language(get_examples, nlp=nlp, model=self.model, name=self.name)

    def predict(self, docs: Iterable[Doc]) -> List[Decoded]:
        """Decode entity spans and confidences for a batch.

        docs (Iterable[Doc]): The documents.
        RETURNS (List[Tuple[ndarray, ndarray]]): Per doc, spans (n, 3) of
            (start, end, label id) and their confidences.
        """
        docs = list(docs)
        if not any(len(doc) for doc in docs):
            return [(numpy.zeros((0, 3), "i"), numpy.zeros(0)) for _ in docs]
        scores = mask_unseen(self, self.model.predict(docs))
        return self.decoder.decode(scores, [allowed_tags(self, doc) for doc in docs])

    def set_annotations(self, docs: Iterable[Doc], decoded: List[Decoded]) -> None:
        """Write entities to doc.ents and all scored spans to doc.spans.

        docs (Iterable[Doc]): The documents.
        decoded (List[Tuple[ndarray, ndarray]]): Output of predict.
        """
        labels = self.labels
        threshold = self.cfg["threshold"]
        abbreviations = self.cfg.get("abbreviations", "none")
        respect = self.cfg["ents_mode"] == "respect"
        for doc, (spans, confidences) in zip(docs, decoded):
            scored = [((int(s), int(e), int(label)), float(c)) for (s, e, label), c in zip(spans, confidences)]
            if abbreviations != "none":
                blocked = {i for ent in doc.ents for i in range(ent.start, ent.end)} if respect else set()
                scored = propagate_abbreviations(
                    doc, scored, remove_unsupported=abbreviations == "consistent", blocked=blocked
                )
            predicted = [Span(doc, start, end, label=labels[label]) for (start, end, label), _ in scored]
            scores = [score for _, score in scored]
            doc.spans[self.cfg["spans_key"]] = SpanGroup(
                doc,
                name=self.cfg["spans_key"],
                attrs={"scores": scores, "component": "transformer_ner"},
                spans=predicted,
            )
            kept = [span for span, score in zip(predicted, scores) if score >= threshold]
            if respect:
                kept = list(doc.ents) + kept
            doc.set_ents(kept, default="outside")

    def get_loss(self, examples: Iterable[Example], scores: TagScores) -> Tuple[float, TagScores]:
        """CRF negative log-likelihood or softmax cross-entropy per token,
        with missing gold tags left open (on docs weakly labelled with
        partial labels, open to every tag but those of the labeller's
        labels), plus distill_weight x KL from the teacher's tag
        distributions on docs that carry them.

        examples (Iterable[Example]): The batch.
        scores (TagScores): Model output for the batch.
        RETURNS (Tuple[float, TagScores]): Loss and its gradient.
        """
        validate_examples(examples, "TransformerNER.get_loss")
        tagset = self.tagset
        gold = [tagset.from_biluo(eg.get_aligned_ner()) for eg in examples]
        mark_seen(self, gold)
        open_tags = [open_tag_mask(eg, tagset) for eg in examples]
        loss, d_scores = self.decoder.get_loss(scores, gold, open_tags=open_tags)
        weight = self.cfg.get("distill_weight", 1.0)
        targets = [soft_targets(eg, tagset.tags) for eg in examples] if weight > 0 else []
        if any(t is not None for t in targets):
            soft_loss, d_soft = self.decoder.get_soft_loss(scores, targets)
            ops = self.model.ops
            emissions = [d + ops.asarray(weight * s, dtype="f") for d, s in zip(d_scores.emissions, d_soft)]
            d_scores = d_scores._replace(emissions=emissions)
            loss += weight * soft_loss
        return loss, d_scores

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """Learn from a batch of examples.

        examples (Iterable[Example]): The batch.
        drop (float): Dropout rate (unused: the model's own dropout applies).
        sgd (Optional[Optimizer]): Optimizer to step with.
        losses (Optional[Dict[str, float]]): Running losses, updated.
        RETURNS (Dict[str, float]): The losses.
        """
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "TransformerNER.update")
        if not any(len(eg.predicted) for eg in examples):
            return losses
        scores, backprop = self.model.begin_update([eg.predicted for eg in examples])
        loss, d_scores = self.get_loss(examples, scores)
        backprop(d_scores)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "TransformerNER":
        """Load the model and labels; the inference settings stay as configured.

        bytes_data (bytes): The serialized component.
        exclude (Iterable[str]): Fields to leave out.
        RETURNS (TransformerNER): The component.
        """
        with configured_settings(self):
            super().from_bytes(bytes_data, exclude=exclude)
        return self

    def from_disk(self, path, *, exclude: Iterable[str] = tuple()) -> "TransformerNER":
        """Load the model and labels; the inference settings stay as configured.

        path (Union[str, Path]): The component's folder.
        exclude (Iterable[str]): Fields to leave out.
        RETURNS (TransformerNER): The component.
        """
        with configured_settings(self):
            super().from_disk(path, exclude=exclude)
        return self

    def finish_update(self, sgd: Optimizer) -> None:
        """Step the optimizer, scaling the learning rate of the head's
        parameters by head_lr_scale (the tok2vec's own layers, if any, and
        its shims keep the optimizer's rate).

        sgd (Optimizer): The optimizer.
        """
        finish_update_with_head_scale(self.model, sgd, head_lr_scale=self.cfg.get("head_lr_scale", 1.0))
