"""Okapi BM25 ranking over tokenized passages: small, exact, no dependencies."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["BM25Index", "ScoredPassage", "tokenize"]

_TOKEN_RE = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "were",
        "which",
        "with",
    }
)


def tokenize(text: str) -> list[str]:
    """Lowercase alphanumeric words of `text`, without the commonest English stopwords."""
    return [token for token in _TOKEN_RE.findall(text.lower()) if token not in _STOPWORDS]


@dataclass(frozen=True, slots=True)
class ScoredPassage:
    """One search hit: a passage index into the indexed sequence, and its BM25 score."""

    index: int
    score: float


class BM25Index:
    """BM25 over a fixed list of passages (each given as its tokens).

    score(q, d) = sum over query terms t of
        idf(t) * tf(t, d) * (k1 + 1) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))
    with idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5)), which is never negative.
    """

    def __init__(self, passages: Sequence[Sequence[str]], *, k1: float = 1.5, b: float = 0.75):
        self.k1 = k1
        self.b = b
        self._term_counts = [Counter(tokens) for tokens in passages]
        self._lengths = [len(tokens) for tokens in passages]
        self._avg_length = sum(self._lengths) / len(passages) if passages else 0.0
        # term -> indices of the passages containing it
        self._postings: dict[str, list[int]] = {}
        for index, counts in enumerate(self._term_counts):
            for term in counts:
                self._postings.setdefault(term, []).append(index)

    def __len__(self) -> int:
        return len(self._lengths)

    def idf(self, term: str) -> float:
        """Inverse document frequency of `term` (0 < idf; rarer terms weigh more)."""
        num_containing = len(self._postings.get(term, ()))
        return math.log(1 + (len(self) - num_containing + 0.5) / (num_containing + 0.5))

    def score(self, query_terms: Sequence[str], index: int) -> float:
        """BM25 score of passage `index` for the query terms (repeated terms count again)."""
        counts = self._term_counts[index]
        norm = self.k1 * (1 - self.b + self.b * self._lengths[index] / (self._avg_length or 1))
        total = 0.0
        for term in query_terms:
            frequency = counts.get(term, 0)
            if frequency:
                total += self.idf(term) * frequency * (self.k1 + 1) / (frequency + norm)
        return total

    def search(self, query_terms: Sequence[str], k: int) -> list[ScoredPassage]:
        """The `k` best passages containing at least one query term, best first.

        Ties keep passage order, so results are deterministic.
        """
        candidates = sorted({i for term in query_terms for i in self._postings.get(term, ())})
        scored = [ScoredPassage(i, self.score(query_terms, i)) for i in candidates]
        scored.sort(key=lambda hit: (-hit.score, hit.index))
        return scored[:k]
