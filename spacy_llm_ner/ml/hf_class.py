"""The model-class stand-in through which LoRA and quantization change the
Hugging Face model that spacy-transformers builds. In a module of its own so
that `ml/lora.py` and `ml/quantize.py` need not import `ml/transformer.py`,
which builds the TransformerModel architectures on top of them."""
from typing import Any, Callable


class TransformedModelClass:
    """Stands in for the HF model class of a TransformerModel's shim: every
    model it builds, from pretrained weights at initialize or from the saved
    config when a pipeline is loaded, goes through `transform` before any
    saved state is read into it. This is how LoRA adapters and quantization
    survive `nlp.to_disk` / `spacy.load`. Stand-ins nest (quantize over LoRA).

    model_cls (Any): The wrapped class (transformers' AutoModel or another
        stand-in).
    transform (Callable): Changes a freshly built HF model and returns it; a
        module-level function or functools.partial, so pipelines pickle.
    """

    def __init__(self, model_cls: Any, transform: Callable[[Any], Any]) -> None:
        self.model_cls = model_cls
        self.transform = transform

    def from_config(self, config: Any, **kwargs: Any) -> Any:
        """Build a model from a HF config and transform it.

        config (Any): A transformers PretrainedConfig.
        **kwargs: Passed to the wrapped class's `from_config`.
        RETURNS (Any): The transformed model.
        """
        return self.transform(self.model_cls.from_config(config, **kwargs))

    def from_pretrained(self, *args: Any, **kwargs: Any) -> Any:
        """Load pretrained weights and transform the model.

        *args, **kwargs: Passed to the wrapped class's `from_pretrained`.
        RETURNS (Any): The transformed model.
        """
        return self.transform(self.model_cls.from_pretrained(*args, **kwargs))
