"""BM25 ranking and the document search tool."""

import pytest

from agentflow.errors import ConfigError
from tools.builtin.bm25 import BM25Index, tokenize
from tools.builtin.search import DocumentSearch, search_tool

pytestmark = pytest.mark.anyio


def test_tokenize_lowercases_splits_and_drops_stopwords():
    assert tokenize("The KV-cache, of vLLM: 2 GiB!") == ["kv", "cache", "vllm", "2", "gib"]


def test_bm25_prefers_rare_terms_and_shorter_documents():
    passages = [
        tokenize("the cat sat on the mat"),
        tokenize("a dog chased the cat around the garden for a very long time"),
        tokenize("dogs and more dogs"),
        tokenize("the weather today is sunny"),
    ]
    index = BM25Index(passages)

    assert [hit.index for hit in index.search(tokenize("cat"), k=5)] == [0, 1]
    assert index.search(tokenize("dog cat"), k=1)[0].index == 1  # only passage with both
    assert index.search(tokenize("unicorn"), k=3) == []
    assert index.idf("sunny") > index.idf("cat") > 0


def test_bm25_saturates_term_frequency():
    index = BM25Index([["spam"] * 1, ["spam"] * 2, ["spam"] * 50, ["ham"]])
    one, two, fifty = (index.score(["spam"], i) for i in range(3))

    assert one < two  # more occurrences help...
    assert fifty < one * (index.k1 + 1)  # ...but never beyond the (k1 + 1) ceiling


def test_bm25_ties_keep_passage_order():
    index = BM25Index([["x", "y"], ["x", "y"], ["x", "y"]])

    assert [hit.index for hit in index.search(["x"], k=3)] == [0, 1, 2]


@pytest.fixture
def docs_dir(tmp_path):
    (tmp_path / "scheduling.md").write_text(
        "# Scheduling\n\nThe planner admits requests whose deadlines can be met.\n\n"
        "Requests that would miss their SLO go to the best-effort lane."
    )
    (tmp_path / "cache.txt").write_text(
        "Prefix caching reuses the KV cache of a shared prompt prefix.\n\n"
        "A cache hit makes the second prefill cheap."
    )
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "tools.md").write_text("Tool servers speak HTTP or MCP.")
    (tmp_path / "image.png").write_bytes(b"\x89PNG not text")
    return tmp_path


def test_search_returns_best_snippets_with_file_names(docs_dir):
    search = DocumentSearch(docs_dir)
    hits = search.search("KV cache prefix", k=2)

    assert [hit.file for hit in hits] == ["cache.txt", "cache.txt"]
    assert "Prefix caching" in hits[0].snippet
    assert hits[0].score > hits[1].score > 0
    assert search.search("MCP servers", k=1)[0].file == "sub/tools.md"


def test_markdown_headings_stay_with_their_paragraph(docs_dir):
    hits = DocumentSearch(docs_dir).search("scheduling", k=1)

    assert hits[0].file == "scheduling.md"
    assert hits[0].snippet.startswith("# Scheduling The planner")


def test_long_passages_are_split_and_snippets_shortened(tmp_path):
    (tmp_path / "long.md").write_text(" ".join(f"word{i}" for i in range(300)) + " needle")
    search = DocumentSearch(tmp_path, max_passage_words=100, snippet_chars=50)

    assert len(search.passages) == 4
    (hit,) = search.search("needle", k=3)
    assert hit.snippet.endswith("needle") and len(hit.snippet) <= 50


async def test_search_tool_validates_k_and_returns_json(docs_dir):
    search = search_tool(docs_dir)

    assert search.idempotent and search.input_schema["properties"]["k"]["maximum"] == 20
    hits = await search.invoke({"query": "best-effort lane", "k": 1})
    assert hits == [
        {"file": "scheduling.md", "score": hits[0]["score"], "snippet": hits[0]["snippet"]}
    ]
    with pytest.raises(Exception, match="argument 'k'"):
        await search.invoke({"query": "x", "k": 0})


def test_missing_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        DocumentSearch(tmp_path / "missing")
