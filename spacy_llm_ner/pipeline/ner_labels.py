"""New entity labels for a trained `transformer_ner` (continual learning).

`TransformerNER.add_label` on an initialized component grows its output
layer and CRF (ml/grow.py): the old tags keep their weights, the new tags
start at zero. Until the component has been updated on gold of a new
label, that label's tags get no probability at prediction (as spaCy's
parser masks its unseen actions), so right after the label is added the pipeline
predicts exactly what it did before; its first update with such gold lifts
the mask. The still-unseen labels are kept in the component's cfg, so the
mask survives `to_disk` / `spacy.load`.

In `spacy train`, a component sourced from a trained pipeline is not
initialized again (so `[initialize.components]` labels never reach it) and
its factory settings are the source's, so its new labels are added by a
callback that runs after initialization, before the first update, while
the optimizer has no state for the head yet:

    [initialize.after_init]
    @callbacks = "spacy_llm_ner.add_ner_labels.v1"
    component = "transformer_ner"
    labels = ["Disease"]
"""
from typing import Callable, Iterable, Optional, Sequence

import numpy
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc
from spacy.util import registry

from ..ml.crf import NEG
from ..ml.grow import grow_token_classifier
from ..ml.models import TagScores
from ..ml.tags import TagSet

UNSEEN_KEY = "unseen_labels"


def is_initialized(ner: TrainablePipe) -> bool:
    """Whether the component's head has weights (labels are then fixed
    unless grown).

    ner (TrainablePipe): The transformer_ner component.
    RETURNS (bool): Whether its output layer has parameters.
    """
    return bool(ner.model.has_dim("nO")) and bool(ner.model.get_ref("output_layer").has_param("W"))


def grow_label(ner: TrainablePipe, label: str) -> None:
    """Add a label to an initialized component: grow the head for its tags,
    keeping every old tag's weights, and mask it until it is trained.

    ner (TrainablePipe): The trained transformer_ner component.
    label (str): The new label (not yet among ner.labels).
    """
    old_tags = ner.tagset.tags
    ner.cfg["labels"].append(label)
    try:
        grow_token_classifier(ner.model, old_tags, ner.tagset.tags)
    except Exception:
        ner.cfg["labels"].pop()
        raise
    ner.cfg[UNSEEN_KEY] = [*ner.cfg.get(UNSEEN_KEY, []), label]


def allowed_tags(ner: TrainablePipe, doc: Doc) -> Optional[numpy.ndarray]:
    """The tags the decoder may choose on a doc: only "O" inside entities
    already on it when ents_mode is "respect".

    ner (TrainablePipe): The transformer_ner component.
    doc (Doc): The doc to predict on.
    RETURNS (Optional[ndarray]): (len(doc), n_tags) booleans, or None for
        no constraint.
    """
    if ner.cfg["ents_mode"] != "respect" or not doc.ents:
        return None
    allowed = numpy.ones((len(doc), len(ner.tagset)), dtype=bool)
    for ent in doc.ents:
        allowed[ent.start : ent.end, 1:] = False  # tag 0 is "O"
    return allowed


def mask_unseen(ner: TrainablePipe, scores: TagScores) -> TagScores:
    """Emission scores with the tags of labels added but not trained yet at
    the CRF's NEG. exp(NEG) is exactly 0, so the old tags' probabilities,
    paths and confidences are bit-identical to the model's before the label
    was added, for both decoders (a decoding mask would leave the softmax
    normalising over the new tags too).

    ner (TrainablePipe): The transformer_ner component.
    scores (TagScores): Its model's output.
    RETURNS (TagScores): The scores, masked if it has unseen labels.
    """
    unseen = ner.cfg.get(UNSEEN_KEY)
    if not unseen:
        return scores
    columns = numpy.flatnonzero(~ner.tagset.tags_without(unseen))
    emissions = []
    for emission in scores.emissions:
        emission = ner.model.ops.xp.array(emission, copy=True)
        emission[:, columns] = NEG
        emissions.append(emission)
    return scores._replace(emissions=emissions)


def mark_seen(ner: TrainablePipe, gold: Sequence[numpy.ndarray]) -> None:
    """Lift the prediction mask of new labels that occur in a training
    batch's gold tags.

    ner (TrainablePipe): The transformer_ner being updated.
    gold (Sequence[ndarray]): Per doc, gold tag ids (-1 where missing).
    """
    unseen = ner.cfg.get(UNSEEN_KEY)
    if not unseen:
        return
    tagset: TagSet = ner.tagset
    ids = numpy.concatenate([numpy.asarray(g) for g in gold]) if gold else numpy.zeros(0, "i")
    seen_ids = {int(i) for i in tagset.label_ids[ids[ids >= 0]] if i >= 0}
    ner.cfg[UNSEEN_KEY] = [label for label in unseen if tagset.labels.index(label) not in seen_ids]


@registry.callbacks("spacy_llm_ner.add_ner_labels.v1")
def make_label_adder(
    component: str = "transformer_ner", labels: Iterable[str] = (), distill_weight: Optional[float] = None
) -> Callable[[Language], Language]:
    """An `[initialize.after_init]` callback that adds labels to a
    transformer_ner, trained (sourced) or not, before training starts.

    component (str): The transformer_ner's name in the pipeline.
    labels (Iterable[str]): Labels to add; those it has are skipped.
    distill_weight (Optional[float]): If given, the component's new weight
        of the soft-target term (rehearsal: see training/rehearsal.py);
        None keeps its own.
    RETURNS (Callable[[Language], Language]): The callback.
    """
    labels = list(labels)

    def add_labels(nlp: Language) -> Language:
        ner = nlp.get_pipe(component)
        if not hasattr(ner, "tagset"):
            raise ValueError(f"[add_ner_labels] '{component}' is a {type(ner).__name__}, not a transformer_ner.")
        for label in labels:
            ner.add_label(label)
        if distill_weight is not None:
            if distill_weight < 0:
                raise ValueError(f"[add_ner_labels] distill_weight must be >= 0, got {distill_weight}.")
            ner.cfg["distill_weight"] = float(distill_weight)
        return nlp

    return add_labels

