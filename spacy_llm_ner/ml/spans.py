"""Strided windows for the shared transformer, with a separate stride for
prediction.

Overlapping windows (spacy-transformers' default 128/96) give every token
some context on both sides while the backbone learns. At prediction they
put up to a third more word pieces through the backbone than windows that
tile the doc, for 0.05-0.2 BC5CDR test F (benchmarks/results/ner_ablation.md,
inference_stride_bc5cdr.md). `spacy_llm_ner.strided_spans.v1`
keeps `stride` for training and uses `predict_stride` whenever the
transformer runs without gradients (nlp(), nlp.pipe, evaluation).

The mode is a context variable, not a change to the shared model, so
threads predicting and training at once each see their own windows. A copy
of the transformer (`nlp.replace_listeners`) keeps them
(`ml.transformer.WrappedTransformerModel`).
"""
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable, Iterable, Iterator, List, Optional, Tuple

from spacy.tokens import Doc, Span
from spacy.util import registry
from spacy_transformers.span_getters import get_strided_spans


_PREDICTING: ContextVar[bool] = ContextVar("spacy_llm_ner_predicting", default=False)


@contextmanager
def predicting() -> Iterator[None]:
    """Within it, `StridedSpans` give their prediction windows."""
    token = _PREDICTING.set(True)
    try:
        yield
    finally:
        _PREDICTING.reset(token)


def _check(window: int, stride: int, name: str) -> None:
    if window < 1 or not 0 < stride <= window:
        raise ValueError(
            f"[strided_spans] {name} must be within 1..window ({window}), got {stride}: "
            "a stride above the window would skip tokens."
        )


class StridedSpans:
    """Windows of `window` tokens every `stride` tokens (every
    `predict_stride` tokens when predicting). A class, not a closure, so
    pipelines pickle for multiprocessing.

    window (int): Tokens per window.
    stride (int): Tokens between window starts in training.
    predict_stride (Optional[int]): The same when predicting; None: `stride`.
    """

    def __init__(self, window: int, stride: int, predict_stride: Optional[int] = None) -> None:
        _check(window, stride, "stride")
        if predict_stride is not None:
            _check(window, predict_stride, "predict_stride")
        self.window = window
        self.stride = stride
        self.predict_stride = stride if predict_stride is None else predict_stride

    def __call__(self, docs: Iterable[Doc]) -> List[List[Span]]:
        stride = self.predict_stride if _PREDICTING.get() else self.stride
        return get_strided_spans(docs, window=self.window, stride=stride)


class PredictionSpans:
    """Wraps a spacy-transformers TransformerModel's forward so that, run
    without gradients, it reads its span getter's prediction windows.

    forward (Callable): The model's own forward function.
    """

    def __init__(self, forward: Callable) -> None:
        self.forward = forward

    def __call__(self, model: Any, docs: List[Doc], is_train: bool) -> Tuple[Any, Callable]:
        if is_train:
            return self.forward(model, docs, is_train)
        with predicting():
            return self.forward(model, docs, is_train)


@registry.span_getters("spacy_llm_ner.strided_spans.v1")
def configure_strided_spans(window: int, stride: int, predict_stride: Optional[int] = None) -> StridedSpans:
    """spacy-transformers' strided spans, with a stride of its own for
    prediction (e.g. 128/96 in training, 128/128 when predicting).

    window (int): Tokens per window.
    stride (int): Tokens between window starts in training.
    predict_stride (Optional[int]): The same when predicting; null: `stride`.
    RETURNS (StridedSpans): The span getter.
    """
    return StridedSpans(window, stride, predict_stride)
