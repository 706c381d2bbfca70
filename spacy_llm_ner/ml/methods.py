"""The names of the quantization methods and of pruning's layer strategies,
apart from the code that runs them (torch, onnxruntime): the command-line
options list them, and `--help` must not import torch to do so."""
from typing import Tuple

INT8_METHODS: Tuple[str, ...] = ("dynamic_int8", "dynamic_int8_per_channel")
# "bf16": fp32 weights, bfloat16 autocast at prediction (ml/precision.py).
QUANTIZE_METHODS: Tuple[str, ...] = (*INT8_METHODS, "bf16")
# One scale per output row keeps more of the FFN weights' range than one per
# matrix: on BC5CDR it loses 0.46 F1 where per-tensor loses 0.89, at the same
# speed.
DEFAULT_METHOD = "dynamic_int8_per_channel"

ONNX_QUANTIZE_METHODS: Tuple[str, ...] = ("dynamic_int8", "dynamic_int8_per_channel")
# As for torch: one scale per output row of each weight.
DEFAULT_ONNX_QUANTIZE = "dynamic_int8_per_channel"

# Which layers `prune --layers N` keeps (ml/prune.py choose_layers).
LAYER_STRATEGIES: Tuple[str, ...] = ("top", "even")

__all__ = ["DEFAULT_METHOD", "DEFAULT_ONNX_QUANTIZE", "INT8_METHODS", "LAYER_STRATEGIES", "ONNX_QUANTIZE_METHODS", "QUANTIZE_METHODS"]
