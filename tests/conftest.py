from pathlib import Path

import pytest

from agentflow.models import build_tiny_model


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama (config + tokenizer) for tests that start the real vLLM engine."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))
