"""Which floating-point format the engine computes in.

A CPU without native bfloat16 arithmetic (no AVX512-BF16, no AMX) runs vLLM's bfloat16 path
through conversions. On such a 2-core Xeon (benchmarks/cpu_dtype.py), SmolLM2-135M in
float32 prefilled at 3.4 ms a prompt token against 11.6 ms in bfloat16 (3.4x), and decoded
four sequences in 89 ms a step against 153 ms (1.7x); one sequence alone decoded in 86 ms
against 71 ms, as float32 streams twice the weight bytes. So `auto`
means bfloat16 where the CPU has it natively and float32 where it does not; on a GPU it is
vLLM's own `auto` (the checkpoint's dtype).
"""

from __future__ import annotations

from typing import Literal

__all__ = ["EngineDtype", "cpu_has_native_bf16", "resolve_dtype"]

EngineDtype = Literal["auto", "bfloat16", "float16", "float32"]


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX tiles)."""
    import torch

    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def _on_cpu() -> bool:
    from vllm.platforms import current_platform

    return bool(current_platform.is_cpu())


def resolve_dtype(
    requested: EngineDtype, *, on_cpu: bool | None = None, native_bf16: bool | None = None
) -> EngineDtype:
    """The dtype to give vLLM for `requested` (see the module docstring).

    `on_cpu` and `native_bf16` default to this machine's answers.
    """
    if requested != "auto":
        return requested
    if not (_on_cpu() if on_cpu is None else on_cpu):
        return "auto"
    has_bf16 = cpu_has_native_bf16() if native_bf16 is None else native_bf16
    return "bfloat16" if has_bf16 else "float32"
