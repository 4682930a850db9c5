"""Mixed precision for attacks and training (config `precision`), and the fp32 island for what is recorded.

bf16 autocast only changes how fast the forward/backward passes of attacks and training run. Every
success flag, norm and prediction that reaches the manifest is computed by `exact_fp32` code
(attacks.base.finish / predict, metrics.probabilities, stimuli.stimulus_norms), which switches autocast
off and casts its inputs to float32, so those numbers come from an fp32 pass on the final 8-bit image.
bf16 has fp32's exponent range, so no loss scaling (GradScaler) is needed.
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator

import torch

PRECISIONS = ("fp32", "bf16", "auto")


def bf16_fast(device: torch.device) -> bool:
    """Whether this device runs bf16 natively: a CUDA GPU that supports it, or a CPU with AVX-512
    (oneDNN's bf16 kernels; on AVX2 bf16 is emulated and slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return (torch.backends.cpu.get_cpu_capability() == "AVX512"
                and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()))
    return False


def resolve(precision: str, device: torch.device | str) -> str:
    """"fp32" or "bf16": what `precision` means on this device ("auto": bf16 where it is native)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bf16" if bf16_fast(torch.device(device)) else "fp32"
    return precision


@contextlib.contextmanager
def compute(resolved: str, device: torch.device | str) -> Iterator[None]:
    """Autocast for the forward/backward work of attacks and training; a no-op for fp32."""
    if resolved == "bf16":
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
            yield
    else:
        yield


def exact_fp32(fn: Callable) -> Callable:
    """Run `fn` with autocast off (on every device type) and half-precision tensor arguments cast to float32:
    for whatever is written to the manifest or the metrics."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        args = tuple(_fp32(a) for a in args)
        kwargs = {k: _fp32(v) for k, v in kwargs.items()}
        with torch.autocast("cpu", enabled=False), _cuda_off():
            return fn(*args, **kwargs)
    return wrapper


def _fp32(value):
    """Half-precision tensors up to float32; float32 and float64 stay as they are."""
    return value.float() if torch.is_tensor(value) and value.dtype in (torch.bfloat16, torch.float16) else value


def _cuda_off():
    return torch.autocast("cuda", enabled=False) if torch.cuda.is_available() else contextlib.nullcontext()


@contextlib.contextmanager
def fp32_outputs(*models: torch.nn.Module) -> Iterator[None]:
    """While active, these models' outputs (logits) are cast up to float32: under bf16 autocast the
    layers run in bf16, but losses, margins, softmaxes and the gradients that flow back from them
    (double backprop, IG-NORM, CW's margin, DeepFool's logit differences) are taken in fp32."""
    def up(_module, _inputs, output):
        return output.float() if torch.is_tensor(output) and output.is_floating_point() else output

    handles = [m.register_forward_hook(up) for m in models]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def attacking(resolved: str, device: torch.device | str, *models: torch.nn.Module) -> Iterator[None]:
    """Autocast plus fp32 logits: the context that attacks and training steps run in."""
    with compute(resolved, device), (fp32_outputs(*models) if resolved == "bf16" else contextlib.nullcontext()):
        yield
