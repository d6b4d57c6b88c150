import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from agentflow.models import build_tiny_model

# The suite must not depend on a step-time profile the user fitted on this machine: a profile
# from a slow day makes the planner starve prefills and every engine test crawl. Engines and
# the CLI subprocesses that tests start read their profiles from an empty folder instead.
os.environ["AGENTFLOW_PROFILES"] = tempfile.mkdtemp(prefix="agentflow-test-profiles-")
atexit.register(shutil.rmtree, os.environ["AGENTFLOW_PROFILES"], ignore_errors=True)


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama (config + tokenizer) for tests that start the real vLLM engine."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))
