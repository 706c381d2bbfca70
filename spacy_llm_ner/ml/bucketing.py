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

Chunks are chosen to minimise the backbone's work: every padded position
costs, and so does every call (Python and dispatch overhead, and smaller
matrix products). Bounding the padding alone (each chunk's longest window at
most 25% longer than its shortest, as before) cut the short tail windows into
a dozen tiny calls per batch: 70 calls for 150 BC5CDR abstracts where the
bare backbone, on the same 53k padded positions, makes 8.
"""
from typing import Any, List, Sequence

import numpy
from thinc.api import ArgsKwargs

# Padded positions per chunk at most: the bare-backbone ceiling's batch (64
# windows of 128 pieces); bounds the memory of one call.
DEFAULT_MAX_TOKENS = 8192
# What one more call costs, in padded positions (a MiniLM forward on CPU).
CALL_COST = 64


def chunks_by_cost(
    lengths: Sequence[int], *, max_cells: int = DEFAULT_MAX_TOKENS, call_cost: float = CALL_COST
) -> List[List[int]]:
    """Split sequences, sorted by length, into the chunks that minimise
    the padded positions plus `call_cost` per chunk (exact, by dynamic
    programming over the sorted order).

    lengths (Sequence[int]): Length of each sequence.
    max_cells (int): Most padded positions per chunk (a longer sequence
        gets a chunk of its own).
    call_cost (float): Cost of one chunk, in padded positions.
    RETURNS (List[List[int]]): Indices per chunk, shortest first.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    sizes = numpy.maximum(numpy.asarray([lengths[i] for i in order], dtype="f8"), 1.0)
    n = len(order)
    best = numpy.zeros(n + 1)
    cut = numpy.zeros(n + 1, dtype="i")
    for end in range(1, n + 1):
        # The chunk order[start:end] is padded to its last (longest) one.
        longest = sizes[end - 1]
        lowest = max(0, end - max(1, int(max_cells // longest)))
        starts = numpy.arange(lowest, end)
        costs = best[lowest:end] + call_cost + (end - starts) * longest
        pick = int(numpy.argmin(costs))
        best[end], cut[end] = costs[pick], lowest + pick
    chunks: List[List[int]] = []
    end = n
    while end > 0:
        chunks.append(order[cut[end] : end])
        end = cut[end]
    return chunks[::-1]


class LengthBucketedPredict:
    """Replaces a spacy-transformers HFShim's `predict` (an instance
    attribute, so the class and training are untouched; picklable, so
    pipelines still pickle for multiprocessing).

    shim (HFShim): The transformer's shim.
    max_tokens (int): Padded positions per chunk at most.
    call_cost (float): Cost of one more backbone call, in padded positions.
    """

    def __init__(self, shim: Any, *, max_tokens: int = DEFAULT_MAX_TOKENS, call_cost: float = CALL_COST) -> None:
        self.shim = shim
        self.max_tokens = max_tokens
        self.call_cost = call_cost

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
        chunks = chunks_by_cost(lengths.tolist(), max_cells=self.max_tokens, call_cost=self.call_cost)
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
