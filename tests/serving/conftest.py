"""Each serving test module shares one real vLLM engine and one server on its event loop."""

import pytest


@pytest.fixture(scope="module")
def anyio_backend():
    return "asyncio"
