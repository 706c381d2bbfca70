"""Helpers of the `transformer_ner` component: option checks, the inference
settings a load keeps from the config, the tags a weakly labelled token may
take, the gazetteer initialisation and the `Span._.ner_confidence`
extension."""
import warnings
from contextlib import contextmanager
from typing import Callable, Iterator, List, Optional, Sequence, Set

import numpy
from spacy.kb import KnowledgeBase
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Span
from spacy.training import Example
from spacy.vocab import Vocab
from thinc.api import Model

from ..kb.knowledge_base import LinkerKB
from ..ml.features import GAZETTEER, fill_gazetteer
from ..ml.tags import TagSet
from ..training.weak import LABELS_KEY, OPEN_SPAN_KEYS

CONFIDENCE_ATTR = "ner_confidence"
# Settings that shape inference only: a config override wins over the saved cfg.
INFERENCE_SETTINGS = ("threshold", "confidence", "ents_mode", "spans_key", "abbreviations")


def check_choice(option: str, value: str, choices: Sequence[str]) -> None:
    """Raise if a setting has a value outside its choices.

    option (str): The setting's name, for the message.
    value (str): The configured value.
    choices (Sequence[str]): The allowed values.
    """
    if value not in choices:
        raise ValueError(
            f"[transformer_ner] Unknown {option} {value!r}: expected one of "
            f"{', '.join(repr(c) for c in choices)}."
        )


def choose_labels(data_labels: Set[str], labels: Optional[Sequence[str]], name: str) -> List[str]:
    """The component's labels: the configured ones, which must cover the
    data's, or else the data's, sorted.

    data_labels (Set[str]): The entity labels of the training data.
    labels (Optional[Sequence[str]]): The configured labels, if any.
    name (str): The component's name, for the message.
    RETURNS (List[str]): The labels, in order.
    """
    if labels is None:
        return sorted(data_labels)
    unknown = sorted(data_labels - set(labels))
    if unknown:
        raise ValueError(
            f"[transformer_ner] The training data has entity labels {unknown} "
            f"that are not in the configured labels {list(labels)} of '{name}'. Add them to "
            f"[initialize.components.{name}] labels, or leave labels out to take them from the data."
        )
    return list(labels)


@contextmanager
def configured_settings(pipe: TrainablePipe) -> Iterator[None]:
    """Keep the component's inference settings across a load: the saved cfg
    restores the labels; settings that only shape inference come from the
    config, so `spacy.load(path, config=...)` can change them (spaCy writes
    the same values to config.cfg, so a plain load is as saved).

    pipe (TrainablePipe): The component being loaded.
    YIELDS (None): While the component loads.
    """
    settings = {key: pipe.cfg[key] for key in INFERENCE_SETTINGS if key in pipe.cfg}
    try:
        yield
    finally:
        pipe.cfg.update(settings)


def open_tag_mask(example: Example, tagset: TagSet) -> Optional[numpy.ndarray]:
    """The tags a missing token of the example may take: on a doc weakly
    labelled with partial labels, none of the labeller's labels (its matches
    are all it would have labelled) except on its stop-listed hits and open
    words, which stay fully open; else any (None).

    example (Example): The training example.
    tagset (TagSet): The component's tag set.
    RETURNS (Optional[ndarray]): None, or (n_tokens, n_tags) booleans over
        the predicted doc's tokens.
    """
    reference = example.reference
    weak_labels = reference.user_data.get(LABELS_KEY)
    if not weak_labels:
        return None
    rows = numpy.tile(tagset.tags_without(weak_labels), (len(example.predicted), 1))
    for key in OPEN_SPAN_KEYS:
        if key in reference.spans and len(reference.spans[key]):
            for span in example.get_aligned_spans_y2x(reference.spans[key], allow_overlap=True):
                rows[span.start : span.end] = True
    return rows


def init_gazetteer(
    model: Model,
    vocab: Vocab,
    name: str,
    loader: Optional[Callable[[Vocab], KnowledgeBase]],
    nlp: Optional[Language],
) -> None:
    """Fill the model's gazetteer layers with the names of a KB, by entity
    type; warn when the model has such layers but no KB was given.

    model (Model): The component's model.
    vocab (Vocab): The component's vocab, passed to the loader.
    name (str): The component's name, for the messages.
    loader (Optional[Callable[[Vocab], KnowledgeBase]]): The KB loader, which
        must give a LinkerKB (its records carry the types).
    nlp (Optional[Language]): The pipeline, whose tokenizer splits the names.
    """
    layers = [node for node in model.walk() if node.name == GAZETTEER]
    if loader is None:
        if layers:
            warnings.warn(
                f"[transformer_ner] '{name}' has gazetteer features but no gazetteer KB: set "
                f"[initialize.components.{name}.gazetteer] (e.g. spacy_llm_ner.load_kb.v1); "
                "the features stay zero."
            )
        return
    if not layers:
        raise ValueError(
            f"[transformer_ner] A gazetteer KB was given to '{name}', but its model has no gazetteer "
            "layer: use spacy_llm_ner.FeatureTok2Vec.v1 with gazetteer = true as its tok2vec."
        )
    kb = loader(vocab)
    if not isinstance(kb, LinkerKB):
        raise ValueError(
            f"[transformer_ner] The gazetteer loader returned a {type(kb).__name__}; it needs a "
            "spacy_llm_ner LinkerKB (spacy_llm_ner.load_kb.v1, for a KB file or a LinkerKB folder)."
        )
    make_doc = nlp.make_doc if nlp is not None else Language(vocab).make_doc
    names = [(alias, rec.type) for rec in map(kb.entity, kb.entity_ids) for alias in rec.all_names()]
    for layer in layers:
        counts = fill_gazetteer(layer, names, make_doc=make_doc)
        if not counts:
            raise ValueError(
                f"[transformer_ner] The gazetteer KB has no names of the types {layer.attrs['types']} "
                "(records need a `type`)."
            )


def span_confidence(span: Span) -> Optional[float]:
    """The getter of `Span._.ner_confidence`: the score a transformer_ner
    component gave the span, read from its scored doc.spans group.

    span (Span): An entity span.
    RETURNS (Optional[float]): The score, or None if no component predicted
        the span.
    """
    for group in span.doc.spans.values():
        if group.attrs.get("component") != "transformer_ner":
            continue
        for candidate, score in zip(group, group.attrs.get("scores", [])):
            if (candidate.start, candidate.end, candidate.label) == (span.start, span.end, span.label):
                return score
    return None


def register_confidence_extension() -> None:
    """Register `Span._.ner_confidence` (see `span_confidence`), once."""
    if not Span.has_extension(CONFIDENCE_ATTR):
        Span.set_extension(CONFIDENCE_ATTR, getter=span_confidence)
