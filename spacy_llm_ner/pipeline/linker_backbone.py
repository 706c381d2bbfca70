"""Where `transformer_entity_linker` finds the backbone that encodes entity
texts: the pipeline's tokenizer and the component its tok2vec listens to.

Entities are encoded outside the pipeline's own flow (from KB text, not from
the docs being processed), so the linker runs the upstream component itself.
"""
import weakref
from typing import Any, Callable, Dict, Optional, Tuple

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


class PipelineHandle:
    """The pipeline a linker belongs to, for encoding entity texts.

    Held through a weak reference: the pipeline owns its components, and a
    component holding its pipeline would keep both alive in a cycle. A
    pickled linker (an `nlp.pipe(n_process=N)` worker) carries the tokenizer
    and the upstream component themselves instead; pickled in the same
    stream as the rest of the pipeline, they stay the same objects.
    """

    def __init__(self, nlp: Optional[Language] = None) -> None:
        self._ref = weakref.ref(nlp) if nlp is not None else None
        self._detached: Optional[BackboneParts] = None

    def attach(self, nlp: Language) -> None:
        """Belong to this pipeline from now on.

        nlp (Language): The pipeline.
        """
        self._ref = weakref.ref(nlp)

    def parts(self, tok2vec: Model, *, name: str) -> BackboneParts:
        """The tokenizer and upstream component of the linker's tok2vec.

        tok2vec (Model): The linker's tok2vec.
        name (str): The linker's name (for errors).
        RETURNS (BackboneParts): (make_doc, upstream or None).
        RAISES (ValueError): Outside a live pipeline and not unpickled with one.
        """
        nlp = self._ref() if self._ref is not None else None
        if nlp is not None:
            return backbone_parts(nlp, tok2vec, name=name)
        if self._detached is not None:
            return self._detached
        raise ValueError(
            f"[{COMPONENT}] '{name}' is not part of a live pipeline (it needs the pipeline's "
            "tokenizer and backbone to encode entity texts)."
        )

    def detached(self, tok2vec: Model, *, name: str) -> "PipelineHandle":
        """A copy that holds the tokenizer and upstream component themselves
        (what a pickled linker carries).

        tok2vec (Model): The linker's tok2vec.
        name (str): The linker's name.
        RETURNS (PipelineHandle): The copy.
        """
        handle = PipelineHandle()
        nlp = self._ref() if self._ref is not None else None
        if nlp is None:
            handle._detached = self._detached
            return handle
        try:
            upstream = backbone_parts(nlp, tok2vec, name=name)[1]
        except ValueError:
            upstream = None
        handle._detached = (nlp.tokenizer, upstream)
        return handle

    def __getstate__(self) -> Dict[str, Any]:
        # A weak reference cannot be pickled.
        return {"_ref": None, "_detached": self._detached}
