"""Length-bucketed inference for the shared transformer.

spacy-transformers pads every window of a batch of docs to the longest
window's word pieces and runs them as one tensor. Biomedical abstracts cut
into strided windows give windows of very different piece counts (the last
window of each doc is short), so on BC5CDR 43% of the positions the backbone
computes are padding. At prediction time we sort the windows by length and
run them in chunks trimmed to each chunk's longest window, then scatter the
outputs back into the padded layout spacy-transformers expects. Padding
positions are masked in attention, so the real positions' outputs are the
same (to float rounding); training is left as it is.
"""
from typing import Any

from thinc.api import ArgsKwargs

from .crf import chunks_by_length

# Padded positions per chunk: large enough to keep the matrix products
# efficient on CPU, small enough that one long window does not pad many.
DEFAULT_MAX_TOKENS = 4096
# Longest row of a chunk at most this much longer than its shortest: bounds
# the padding, at the price of more (smaller) calls.
MAX_PADDING = 0.25


class LengthBucketedPredict:
    """Replaces a spacy-transformers HFShim's `predict` (an instance
    attribute, so the class and training are untouched; picklable, so
    pipelines still pickle for multiprocessing).

    shim (HFShim): The transformer's shim.
    max_tokens (int): Padded positions per chunk.
    """

    def __init__(self, shim: Any, *, max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        self.shim = shim
        self.max_tokens = max_tokens

    def _plain(self, inputs: ArgsKwargs) -> Any:
        return type(self.shim).predict(self.shim, inputs)

    def __call__(self, inputs: ArgsKwargs) -> Any:
        import torch

        kwargs = inputs.kwargs
        mask = kwargs.get("attention_mask")
        if inputs.args or mask is None or mask.dim() != 2 or mask.shape[0] < 2:
            return self._plain(inputs)
        lengths = mask.sum(dim=1)
        width = mask.shape[1]
        right_padded = bool((mask == (torch.arange(width, device=mask.device)[None, :] < lengths[:, None])).all())
        if not right_padded or int(lengths.min()) == width:
            return self._plain(inputs)
        chunks = chunks_by_length(lengths.tolist(), self.max_tokens, max_padding=MAX_PADDING)
        outputs = []
        for rows in chunks:
            index = torch.as_tensor(rows, device=mask.device)
            n = int(lengths[index].max())
            sub = {k: v.index_select(0, index)[:, :n] if torch.is_tensor(v) and v.dim() == 2 else v
                   for k, v in kwargs.items()}
            outputs.append((index, n, self._plain(ArgsKwargs(args=(), kwargs=sub))))
        first = outputs[0][2]
        if any(getattr(first, key, None) is not None for key in ("hidden_states", "attentions")):
            # Per-layer outputs would need the same scatter; not worth it.
            return self._plain(inputs)
        hidden = first.last_hidden_state
        merged = hidden.new_zeros((mask.shape[0], width, hidden.shape[-1]))
        pooled = None
        if getattr(first, "pooler_output", None) is not None:
            pooled = first.pooler_output.new_zeros((mask.shape[0], first.pooler_output.shape[-1]))
        for index, n, out in outputs:
            merged[index, :n] = out.last_hidden_state
            if pooled is not None:
                pooled[index] = out.pooler_output
        result = type(first)(last_hidden_state=merged)
        if pooled is not None:
            result["pooler_output"] = pooled
        return result


def bucket_predictions(model: Any, *, max_tokens: int = DEFAULT_MAX_TOKENS) -> Any:
    """Make a spacy-transformers TransformerModel predict in length buckets.

    model (Model): A TransformerModel.
    max_tokens (int): Padded positions per chunk.
    RETURNS (Model): The same model.
    """
    shim = model.layers[0].shims[0]
    shim.predict = LengthBucketedPredict(shim, max_tokens=max_tokens)
    return model
