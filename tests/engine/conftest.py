"""One real vLLM CPU engine (tiny random Llama) shared by the engine tests of a module."""

import pytest


@pytest.fixture(scope="module")
def anyio_backend():
    return "asyncio"
