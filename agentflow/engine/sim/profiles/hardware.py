"""Public hardware and model figures the simulator's profiles are derived from (with sources).

GPUs (dense BF16/FP16 tensor-core peak, HBM bandwidth, memory):

* A100 SXM4 80 GB: 312 TFLOP/s, 2,039 GB/s, 80 GB; NVLink 600 GB/s per GPU (both directions).
  Source: NVIDIA A100 Tensor Core GPU datasheet (nvidia.com, "nvidia-a100-datasheet-us-
  nvidia-1758950-r4-web.pdf"), table "Technical Specifications", column "A100 80GB SXM".
* H100 SXM5 80 GB: 989 TFLOP/s (1,979 with sparsity), 3,350 GB/s, 80 GB; NVLink 900 GB/s.
  Source: NVIDIA H100 Tensor Core GPU datasheet (nvidia.com, "h100-datasheet"), column
  "H100 SXM".

Models (decoder-only, FP16 weights and KV cache):

* OPT-6.7B / 13B / 30B: 32 / 40 / 48 layers, hidden 4,096 / 5,120 / 7,168, multi-head
  attention. Source: Zhang et al., "OPT: Open Pre-trained Transformer Language Models",
  arXiv 2205.01068, Table 1.
* Llama-2-7B: 32 layers, hidden 4,096, 32 KV heads (no GQA at 7B), 6.74 B parameters.
  Source: Touvron et al., "Llama 2", arXiv 2307.09288, Table 1 and the released config.json.
* SmolLM2-135M: 30 layers, 3 KV heads of 64 dims (the CPU engine's model). Source: its
  Hugging Face config.json (HuggingFaceTB/SmolLM2-135M-Instruct).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GPUS", "MODELS", "GPUSpec", "ModelSpec"]


@dataclass(frozen=True, slots=True)
class GPUSpec:
    """Roofline figures of one accelerator."""

    name: str
    peak_flops: float
    """Dense FP16/BF16 tensor-core FLOP/s."""
    hbm_bytes_per_s: float
    memory_bytes: float
    link_bytes_per_s: float
    """GPU-to-GPU (NVLink) bandwidth, one direction."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What the roofline model needs to know about a model."""

    name: str
    num_params: float
    num_layers: int
    hidden_size: int
    kv_dim: int
    """Width of K (= of V) per layer: num_kv_heads * head_dim."""
    bytes_per_value: int = 2

    @property
    def weight_bytes(self) -> float:
        """Bytes of weights."""
        return self.num_params * self.bytes_per_value

    @property
    def kv_bytes_per_token(self) -> int:
        """KV-cache bytes per token: K and V, every layer."""
        return 2 * self.num_layers * self.kv_dim * self.bytes_per_value

    @property
    def flops_per_token(self) -> float:
        """Dense matmul FLOPs per token (2 per parameter)."""
        return 2.0 * self.num_params

    @property
    def attention_flops_per_pair(self) -> float:
        """FLOPs per (query, cached key) pair: QK^T and AV, every layer."""
        return 4.0 * self.num_layers * self.hidden_size


GPUS: dict[str, GPUSpec] = {
    "a100": GPUSpec("A100-SXM4-80GB", 312e12, 2.039e12, 80e9, 300e9),
    "h100": GPUSpec("H100-SXM5-80GB", 989e12, 3.35e12, 80e9, 450e9),
}

MODELS: dict[str, ModelSpec] = {
    "opt-7b": ModelSpec("facebook/opt-6.7b", 6.7e9, 32, 4096, 4096),
    "opt-13b": ModelSpec("facebook/opt-13b", 13.0e9, 40, 5120, 5120),
    "opt-30b": ModelSpec("facebook/opt-30b", 30.0e9, 48, 7168, 7168),
    "llama2-7b": ModelSpec("meta-llama/Llama-2-7b-hf", 6.74e9, 32, 4096, 4096),
    "smollm2-135m": ModelSpec("HuggingFaceTB/SmolLM2-135M-Instruct", 0.135e9, 30, 576, 192),
}
