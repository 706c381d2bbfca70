"""Growing a trained token classifier's tag inventory in place: the output
layer and the CRF transitions get rows (and columns) for new tags, every
old tag keeps its weights bit for bit.

Thinc cannot resize a layer that has parameters, so, as spaCy does when it
resizes its own output layers, the two parameterised layers are replaced by
fresh ones of the new width that carry the old weights. The fresh layers
also have fresh ids, so an optimizer starts new moments for them instead
of applying moments of the old shape.
"""
from typing import Dict, Sequence

import numpy
from thinc.api import Linear, Model, zero_init

from .models import crf_transitions


def tag_positions(old_tags: Sequence[str], new_tags: Sequence[str]) -> numpy.ndarray:
    """Where each old tag sits in the new tag list.

    old_tags (Sequence[str]): The trained model's tags, in column order.
    new_tags (Sequence[str]): The grown tag list.
    RETURNS (numpy.ndarray): int array, new index of each old tag.
    RAISES (ValueError): If an old tag is missing from the new list.
    """
    index: Dict[str, int] = {tag: i for i, tag in enumerate(new_tags)}
    missing = [tag for tag in old_tags if tag not in index]
    if missing:
        raise ValueError(f"Cannot grow the tag set: the new tags lack the trained tags {missing}.")
    return numpy.asarray([index[tag] for tag in old_tags], dtype="i")


def grow_token_classifier(model: Model, old_tags: Sequence[str], new_tags: Sequence[str]) -> None:
    """Give an initialized `spacy_llm_ner.TokenClassifier.v1` model the new
    tag inventory. Rows of new tags are zero, as a fresh model's are (its
    output layer is zero-initialised); the old rows, biases, transitions
    and start/end scores are copied unchanged to their new positions.

    model (Model): The classifier, with "output_layer" and "crf" refs.
    old_tags (Sequence[str]): Its current tags, in column order.
    new_tags (Sequence[str]): The tags it should have (a superset).
    """
    positions = tag_positions(old_tags, new_tags)
    n_old, n_new = len(old_tags), len(new_tags)
    output, crf = model.get_ref("output_layer"), model.get_ref("crf")
    if output.get_dim("nO") != n_old or crf.get_dim("nO") != n_old:
        raise ValueError(
            f"Cannot grow the tag set: the model is trained for {output.get_dim('nO')} tags, the labels "
            f"give {n_old}. A trained model cannot be initialized again; add labels to it as it is."
        )
    # The layers between the top and the output layer have no parameters of
    # their own, so their nO can be changed in place; the backbone's cannot
    # be touched even if its width happens to equal the tag count.
    backbone = {node.id for node in model.get_ref("tok2vec").walk()}
    wrappers = [
        node for node in model.walk()
        if node.id not in backbone and node not in (output, crf)
        and node.has_dim("nO") and node.get_dim("nO") == n_old
    ]
    new_output = Linear(nO=n_new, nI=output.get_dim("nI"), init_W=zero_init)
    new_output.initialize()
    W, b = new_output.get_param("W").copy(), new_output.get_param("b").copy()
    W[positions] = output.get_param("W")
    b[positions] = output.get_param("b")
    new_output.set_param("W", W)
    new_output.set_param("b", b)
    new_crf = crf_transitions(nO=n_new)
    new_crf.initialize()
    transitions = new_crf.get_param("transitions").copy()
    transitions[numpy.ix_(positions, positions)] = crf.get_param("transitions")
    new_crf.set_param("transitions", transitions)
    for name in ("start", "end"):
        values = new_crf.get_param(name).copy()
        values[positions] = crf.get_param(name)
        new_crf.set_param(name, values)
    _replace(model, output, new_output)
    _replace(model, crf, new_crf)
    for node in wrappers:
        node.set_dim("nO", n_new, force=True)
    model.set_ref("output_layer", new_output)
    model.set_ref("crf", new_crf)


def _replace(root: Model, old: Model, new: Model) -> None:
    """Put `new` wherever `old` is a sublayer under root."""
    found = False
    for node in root.walk():
        for i, layer in enumerate(node.layers):
            if layer is old:
                node.layers[i] = new
                found = True
    if not found:
        raise ValueError(f"Cannot grow the tag set: layer {old.name!r} is not in the model.")
