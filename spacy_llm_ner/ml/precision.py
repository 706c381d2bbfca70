"""bfloat16 prediction for the shared transformer (`quantize = "bf16"`).

The backbone keeps its fp32 weights (saved and loaded as they are); only its
forward at prediction time runs under `torch.autocast` in bfloat16, so the
matrix products run in bf16 while LayerNorm and softmax stay in fp32, and the
hidden states handed to the rest of the pipeline are fp32 again. On CPUs that
multiply bf16 in hardware (Intel AMX, Xeon 4th generation and later) this is
the fastest CPU path; on CPUs without it, bf16 is emulated and several times
slower than fp32, so there the transformer predicts in fp32 and says so once.
Training is untouched: a pipeline with `quantize = "bf16"` still trains in
fp32 (and its dev-set evaluation predicts in bf16).
"""
import os
import warnings
from pathlib import Path
from typing import Any

from thinc.api import Model

BF16 = "bf16"
# oneDNN's ISA cap (an environment variable): below AMX, bf16 is emulated.
ISA_VARIABLE = "ONEDNN_MAX_CPU_ISA"
_WARNED = {"cpu": False}


def _cpu_flags() -> str:
    path = Path("/proc/cpuinfo")
    try:
        return path.read_text() if path.exists() else ""
    except OSError:
        return ""


def native_bf16_cpu() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AMX), as torch's
    oneDNN kernels need it to beat fp32.

    RETURNS (bool): True where bf16 prediction is faster than fp32.
    """
    import torch

    cap = os.environ.get(ISA_VARIABLE, "")
    if cap and "AMX" not in cap.upper() and cap.upper() not in ("ALL", "DEFAULT"):
        return False
    init_amx = getattr(getattr(torch._C, "_cpu", None), "_init_amx", None)
    if init_amx is not None:
        # Asks the kernel for the AMX tile state: False where the CPU or the
        # OS lacks it.
        try:
            return bool(init_amx()) and "amx_bf16" in _cpu_flags()
        except RuntimeError:
            return False
    return "amx_bf16" in _cpu_flags()


def _to_float(output: Any) -> Any:
    # numpy has no bfloat16: the pipeline reads the outputs as fp32 arrays.
    import torch

    for key in list(output.keys()):
        value = output[key]
        if torch.is_tensor(value) and value.dtype == torch.bfloat16:
            output[key] = value.float()
    return output


class Bf16Predict:
    """Wraps a spacy-transformers shim's `predict`: runs it under bf16
    autocast where the device does bf16 natively, in fp32 elsewhere. A class,
    so that pipelines pickle (`nlp.pipe(n_process=N)`, Ray, Dask); whether
    the CPU qualifies is decided in each process, on first use.

    predict (Callable): The shim's predict (e.g. the length-bucketed one).
    """

    def __init__(self, predict: Any) -> None:
        self.predict = predict

    def _device_type(self) -> str:
        shim = getattr(self.predict, "shim", None) or getattr(self.predict, "__self__", None)
        device = getattr(shim, "device", None)
        return getattr(device, "type", "cpu")

    def __call__(self, inputs: Any) -> Any:
        import torch

        device = self._device_type()
        if device == "cpu" and not native_bf16_cpu():
            if not _WARNED["cpu"]:
                _WARNED["cpu"] = True
                warnings.warn(
                    "quantize = 'bf16': this CPU has no native bfloat16 (Intel AMX), where bf16 is slower than "
                    "fp32; the transformer predicts in fp32. Use quantize = 'dynamic_int8_per_channel' here."
                )
            return self.predict(inputs)
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
            return _to_float(self.predict(inputs))


def add_bf16_prediction(model: Model) -> Model:
    """Make a spacy-transformers TransformerModel predict in bfloat16
    (weights unchanged; see the module docstring).

    model (Model): A TransformerModel (TransformerModel.v1/.v2 output).
    RETURNS (Model): The same model.
    """
    if model.attrs.get("quantize") == BF16:
        return model
    shim = model.layers[0].shims[0]
    shim.predict = Bf16Predict(shim.predict)
    model.attrs["quantize"] = BF16
    return model
