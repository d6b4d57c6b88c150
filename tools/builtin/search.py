"""search tool: BM25 keyword search over a folder of text and markdown documents."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field

from agentflow.errors import ConfigError
from tools.builtin.bm25 import BM25Index, tokenize
from tools.registry import Tool

__all__ = ["DOCUMENT_SUFFIXES", "DocumentSearch", "Passage", "SearchHit", "search_tool"]

DOCUMENT_SUFFIXES = frozenset({".md", ".markdown", ".txt", ".rst"})
_MAX_FILE_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Passage:
    """A searchable piece of one document: a paragraph, or a window of a long one."""

    file: str
    """Path relative to the documents folder."""
    text: str


class SearchHit(BaseModel):
    """One result as the model sees it."""

    file: str
    """Path relative to the documents folder."""
    score: float
    """BM25 score (higher is better; comparable only within one query)."""
    snippet: str


class DocumentSearch:
    """Index every text/markdown file under a folder once; answer queries with BM25."""

    def __init__(self, docs_dir: Path, *, max_passage_words: int = 120, snippet_chars: int = 400):
        """Read and index the folder.

        Raises:
            ConfigError: the folder does not exist.
        """
        if not docs_dir.is_dir():
            raise ConfigError(f"search: documents folder {docs_dir} does not exist")
        self.docs_dir = docs_dir
        self.snippet_chars = snippet_chars
        self.passages = list(_load_passages(docs_dir, max_passage_words))
        self._index = BM25Index([tokenize(passage.text) for passage in self.passages])

    def search(self, query: str, k: int = 3) -> list[SearchHit]:
        """The `k` passages that best match the query's keywords, best first."""
        hits = self._index.search(tokenize(query), k)
        return [
            SearchHit(
                file=self.passages[hit.index].file,
                score=round(hit.score, 4),
                snippet=_snippet(self.passages[hit.index].text, self.snippet_chars),
            )
            for hit in hits
        ]


def _load_passages(docs_dir: Path, max_words: int) -> Iterator[Passage]:
    for path in sorted(docs_dir.rglob("*")):
        if path.suffix.lower() not in DOCUMENT_SUFFIXES or not path.is_file():
            continue
        if path.stat().st_size > _MAX_FILE_BYTES:
            continue
        name = path.relative_to(docs_dir).as_posix()
        text = path.read_text(encoding="utf-8", errors="replace")
        for paragraph in _paragraphs(text):
            words = paragraph.split()
            for start in range(0, len(words), max_words):
                yield Passage(file=name, text=" ".join(words[start : start + max_words]))


def _paragraphs(text: str) -> Iterator[str]:
    """Blank-line separated blocks; a markdown heading stays with the block after it."""
    heading = ""
    for block in text.replace("\r\n", "\n").split("\n\n"):
        block = block.strip()
        if not block:
            continue
        if block.startswith("#") and "\n" not in block:
            heading = f"{heading} {block}".strip()
            continue
        yield f"{heading}\n{block}" if heading else block
        heading = ""
    if heading:
        yield heading


def _snippet(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[: max_chars - 3].rstrip() + "..."


def search_tool(docs_dir: Path) -> Tool[[str, int], list[SearchHit]]:
    """The ``search`` tool (idempotent) over the documents in `docs_dir`."""
    index = DocumentSearch(docs_dir)

    def search(query: str, k: Annotated[int, Field(ge=1, le=20)] = 3) -> list[SearchHit]:
        """Keyword search (BM25) over the local documents; returns the best snippets.

        Args:
            query: keywords to look for.
            k: how many snippets to return.
        """
        return index.search(query, k)

    return Tool.from_function(search, idempotent=True)
