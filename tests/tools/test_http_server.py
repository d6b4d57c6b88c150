"""The plain HTTP JSON tool server, spoken to with raw httpx."""

import httpx
import pytest

pytestmark = pytest.mark.anyio


async def test_get_tools_lists_every_tool_with_its_schema(http_url):
    async with httpx.AsyncClient(base_url=http_url) as http:
        response = await http.get("/tools")

    assert response.status_code == 200
    tools = {item["name"]: item for item in response.json()["tools"]}
    assert tools["add"] == {
        "name": "add",
        "description": "Add two integers.",
        "input_schema": {
            "type": "object",
            "properties": {
                "a": {"type": "integer", "description": "the first addend."},
                "b": {"type": "integer", "default": 0, "description": "the second addend."},
            },
            "required": ["a"],
            "additionalProperties": False,
        },
        "idempotent": True,
    }


async def test_post_calls_the_tool(http_url):
    async with httpx.AsyncClient(base_url=http_url) as http:
        response = await http.post("/tools/add", json={"a": 1, "b": 2})
        structured = await http.post("/tools/info", json={"topic": "t"})

    assert response.status_code == 200
    assert response.json() == {"ok": True, "content": 3}
    assert structured.json()["content"] == {"topic": "t", "sizes": [1, 2, 3]}


@pytest.mark.parametrize(
    ("path", "body", "status", "code", "message"),
    [
        ("/tools/nope", {}, 404, "tool-not-found", "unknown tool 'nope'"),
        ("/tools/add", {"a": "x"}, 422, "tool-invalid-arguments", "argument 'a'"),
        ("/tools/add", {"b": 1}, 422, "tool-invalid-arguments", "argument 'a': missing"),
        ("/tools/broken", {}, 500, "tool-failed", "raised Boom: always broken"),
    ],
)
async def test_failures_have_status_code_and_message(http_url, path, body, status, code, message):
    async with httpx.AsyncClient(base_url=http_url) as http:
        response = await http.post(path, json=body)

    assert response.status_code == status
    reply = response.json()
    assert reply["ok"] is False and reply["code"] == code
    assert message in reply["error"]


async def test_body_that_is_not_json_is_a_400(http_url):
    async with httpx.AsyncClient(base_url=http_url) as http:
        response = await http.post("/tools/add", content=b"{nope")

    assert response.status_code == 400
    assert "not JSON" in response.json()["error"]


async def test_health(http_url):
    async with httpx.AsyncClient(base_url=http_url) as http:
        response = await http.get("/health")

    assert response.json() == {"ok": True, "num_tools": 6}
