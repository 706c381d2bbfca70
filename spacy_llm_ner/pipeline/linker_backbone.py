"""Where `transformer_entity_linker` finds the backbone that encodes entity
texts: the pipeline's tokenizer and the component its tok2vec listens to.

Entities are encoded outside the pipeline's own flow (from KB text, not from
the docs being processed), so the linker runs the upstream component itself.
"""
from typing import Any, Callable, Optional, Tuple

from spacy.language import Language
from spacy.tokens import Doc
from thinc.api import Model

from .link_annotations import COMPONENT

# (make_doc, upstream component or None for an inline tok2vec)
BackboneParts = Tuple[Callable[[str], Doc], Optional[Any]]


def find_listener(tok2vec: Model) -> Optional[Model]:
    """The listener node inside a tok2vec, if any.

    tok2vec (Model): The linker's tok2vec.
    RETURNS (Optional[Model]): A spacy-transformers or spaCy listener, or None.
    """
    for node in tok2vec.walk():
        if hasattr(node, "upstream_name") and hasattr(node, "receive"):
            return node
    return None


def backbone_parts(nlp: Language, tok2vec: Model, *, name: str) -> BackboneParts:
    """The tokenizer and the upstream component of a linker's tok2vec.

    nlp (Language): The pipeline the linker belongs to.
    tok2vec (Model): The linker's tok2vec.
    name (str): The linker's name (for the error).
    RETURNS (BackboneParts): (make_doc, upstream or None).
    RAISES (ValueError): If the listener's upstream component is not there.
    """
    listener = find_listener(tok2vec)
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
        f"[{COMPONENT}] Cannot find the component that '{name}' listens to "
        f"(upstream {upstream!r}); add a transformer or tok2vec before it."
    )
