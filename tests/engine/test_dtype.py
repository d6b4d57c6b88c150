"""The engine computes in bfloat16 only where the CPU does so natively."""

import pytest

from agentflow.engine.vllm.dtype import resolve_dtype


@pytest.mark.parametrize(("native_bf16", "expected"), [(True, "bfloat16"), (False, "float32")])
def test_auto_on_a_cpu_follows_its_bf16_support(native_bf16, expected):
    assert resolve_dtype("auto", on_cpu=True, native_bf16=native_bf16) == expected


def test_auto_on_a_gpu_is_left_to_vllm():
    assert resolve_dtype("auto", on_cpu=False, native_bf16=False) == "auto"


@pytest.mark.parametrize("requested", ["bfloat16", "float16", "float32"])
def test_an_explicit_dtype_is_kept(requested):
    assert resolve_dtype(requested, on_cpu=True, native_bf16=False) == requested
