"""One real vLLM CPU engine (tiny random Llama) shared by the engine tests of a module."""

from pathlib import Path

import pytest

from agentflow.models import build_tiny_model


@pytest.fixture(scope="module")
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))
