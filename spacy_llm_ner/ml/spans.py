"""Strided windows for the shared transformer, with a separate stride for
prediction.

Overlapping windows (spacy-transformers' default 128/96) give every token
some context on both sides while the backbone learns, but at prediction they
cost a third more backbone work than windows that just tile the doc, for no
measurable accuracy (BC5CDR test F 0.8168 at 128/96, 0.8163 at 128/128:
benchmarks/results/inference_stride_bc5cdr.md). `spacy_llm_ner.strided_spans.v1`
keeps `stride` for training and uses `predict_stride` whenever the
transformer runs without gradients (nlp(), nlp.pipe, evaluation).
"""
from typing import Any, Callable, Iterable, List, Optional, Tuple

from spacy.tokens import Doc, Span
from spacy.util import registry
from spacy_transformers.span_getters import get_strided_spans


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
        return get_strided_spans(docs, window=self.window, stride=self.stride)

    def for_prediction(self, docs: Iterable[Doc]) -> List[List[Span]]:
        """The windows used when predicting.

        docs (Iterable[Doc]): The batch.
        RETURNS (List[List[Span]]): Per doc, its windows.
        """
        return get_strided_spans(docs, window=self.window, stride=self.predict_stride)


class PredictionSpans:
    """Wraps a spacy-transformers TransformerModel's forward: without
    gradients it reads the span getter's `for_prediction` windows (where the
    getter has them), in training its plain ones.

    forward (Callable): The model's own forward function.
    """

    def __init__(self, forward: Callable) -> None:
        self.forward = forward

    def __call__(self, model: Any, docs: List[Doc], is_train: bool) -> Tuple[Any, Callable]:
        getter = model.attrs["get_spans"]
        for_prediction = getattr(getter, "for_prediction", None)
        if is_train or for_prediction is None:
            return self.forward(model, docs, is_train)
        model.attrs["get_spans"] = for_prediction
        try:
            return self.forward(model, docs, is_train)
        finally:
            model.attrs["get_spans"] = getter


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
