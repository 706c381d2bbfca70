"""Thinc model builders for token classification with a CRF output layer."""
from typing import Callable, List, NamedTuple, Optional, Tuple

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Dropout, Linear, Model, chain, with_array, zero_init
from thinc.types import Floats1d, Floats2d


class TagScores(NamedTuple):
    """Output of the token classifier: per-doc emission scores and the CRF's
    transition parameters (ignored by the softmax decoder)."""

    emissions: List[Floats2d]
    transitions: Floats2d
    start: Floats1d
    end: Floats1d


@registry.architectures("spacy_llm_ner.TokenClassifier.v1")
def build_token_classifier(
    tok2vec: Model[List[Doc], List[Floats2d]],
    *,
    dropout: float = 0.1,
    nO: Optional[int] = None,
) -> Model[List[Doc], TagScores]:
    """Tag scores per token over any tok2vec (a spacy-transformers listener,
    spaCy's Tok2Vec, ...): a linear layer to emission scores, followed by
    learned tag-transition scores for CRF decoding.

    tok2vec (Model[List[Doc], List[Floats2d]]): One vector per token.
    dropout (float): Dropout on the token vectors before the output layer.
    nO (Optional[int]): Number of tags; inferred at initialize when None.
    RETURNS (Model[List[Doc], TagScores]): The model.
    """
    output_layer = Linear(nO=nO, init_W=zero_init)
    transitions = crf_transitions(nO=nO)
    model = chain(tok2vec, with_array(chain(Dropout(dropout), output_layer)), transitions)
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("output_layer", output_layer)
    model.set_ref("crf", transitions)
    return model


def crf_transitions(nO: Optional[int] = None) -> Model[List[Floats2d], TagScores]:
    """A layer that holds the CRF's transition, start and end scores and
    attaches them to the emissions passing through."""
    return Model(
        "crf_transitions",
        _transitions_forward,
        init=_transitions_init,
        dims={"nO": nO},
        params={"transitions": None, "start": None, "end": None},
    )


def _transitions_init(model: Model, X=None, Y=None) -> None:
    n_tags = model.get_dim("nO")
    model.set_param("transitions", model.ops.alloc2f(n_tags, n_tags))
    model.set_param("start", model.ops.alloc1f(n_tags))
    model.set_param("end", model.ops.alloc1f(n_tags))


def _transitions_forward(
    model: Model, emissions: List[Floats2d], is_train: bool
) -> Tuple[TagScores, Callable]:
    scores = TagScores(
        emissions=emissions,
        transitions=model.get_param("transitions"),
        start=model.get_param("start"),
        end=model.get_param("end"),
    )

    def backprop(d_scores: TagScores) -> List[Floats2d]:
        model.inc_grad("transitions", d_scores.transitions)
        model.inc_grad("start", d_scores.start)
        model.inc_grad("end", d_scores.end)
        return d_scores.emissions

    return scores, backprop
