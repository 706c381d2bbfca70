"""Checks `transformer_entity_linker` runs at initialize time, so that a
pipeline that could never link (or never learn to) says so at once."""
import warnings
from typing import Iterable, Sequence

from spacy.language import Language
from spacy.training import Example

from ..kb.knowledge_base import LinkerKB
from .link_annotations import COMPONENT


def check_entity_source(nlp: Language, name: str) -> None:
    """The linker links the entities on the doc when it runs: one placed
    before a component that sets doc.ents would never see that component's
    entities.

    nlp (Language): The pipeline.
    name (str): The linker's name in it.
    RAISES (ValueError): If a component after the linker sets doc.ents.
    """
    names = nlp.pipe_names
    if name not in names:
        return
    position = names.index(name)
    setters = [n for n in names if "doc.ents" in nlp.get_pipe_meta(n).assigns]
    later = [n for n in setters if names.index(n) > position]
    if later:
        raise ValueError(
            f"[{COMPONENT}] '{name}' runs before '{later[0]}', which sets doc.ents, so it would never "
            f"link that component's entities. Put the linker after it: nlp.add_pipe('{COMPONENT}', "
            f"after='{later[-1]}'), or list '{name}' after '{later[-1]}' in [nlp] pipeline."
        )
    if not any(names.index(n) < position for n in setters):
        # Not an error: linking entities that the caller sets on the docs
        # (gold mentions, another system's output) is a supported use.
        warnings.warn(
            f"[{COMPONENT}] No component before '{name}' sets doc.ents, so it links only the entities "
            "already on the docs it is given. Add an entity source before it (transformer_ner, ner, "
            "entity_ruler) if that is not intended."
        )


def check_gold_links(
    examples: Iterable[Example], kb: LinkerKB, *, name: str, labels: Sequence[str], nil_id: str
) -> None:
    """The training data's gold links against the KB and the labels linked.

    examples (Iterable[Example]): The training data.
    kb (LinkerKB): The knowledge base.
    name (str): The linker's name.
    labels (Sequence[str]): The labels it links; empty: all.
    nil_id (str): The NIL id.
    RAISES (ValueError): If no gold link has a label the linker links.
    """
    unknown, total = 0, 0
    gold_labels = set()
    for eg in examples:
        for ent in eg.reference.ents:
            if not ent.kb_id_:
                continue
            gold_labels.add(ent.label_)
            if ent.kb_id_ != nil_id and (not labels or ent.label_ in labels):
                total += 1
                unknown += not kb.resolve_id(ent.kb_id_)
    if labels and gold_labels and not gold_labels & set(labels):
        # Nothing would be trained, and at prediction time nothing linked.
        raise ValueError(
            f"[{COMPONENT}] '{name}' links the entity labels {list(labels)}, but no gold entity with a kb_id in "
            f"the training data has one of them (they have {sorted(gold_labels)}). Fix `labels` in "
            f"[components.{name}] (empty: link every label) or the data."
        )
    if unknown:
        warnings.warn(
            f"[{COMPONENT}] {unknown} of {total} gold kb_ids in the training data are not in the "
            f"knowledge base; they are trained as '{nil_id}'."
        )


def require_kb(kb: object, name: str) -> None:
    """RAISES (ValueError): If the linker has no KB yet, saying how to give it one.

    kb (object): The linker's KB, or None.
    name (str): The linker's name.
    """
    if kb is None:
        raise ValueError(
            f"[{COMPONENT}] '{name}' has no knowledge base: set "
            f"[initialize.components.{name}.kb_loader] (e.g. spacy_llm_ner.load_kb.v1) "
            "and run nlp.initialize(), or pass kb_loader= to initialize()."
        )



def validate_options(
    *,
    top_k: int,
    threshold: float,
    nil_id: str,
    negatives_weight: float,
    entity_max_tokens: int,
    entity_batch_size: int,
    cache_size: int,
    head_lr_scale: float,
) -> None:
    """RAISES (ValueError): If an option of the component is out of range,
    naming the option and its value."""
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
