"""The agent's one tool: deterministic BM25 search over a problem's own paragraphs (HotpotQA distractor setting).

Each paragraph is indexed as "title text", lower-cased, with English stopwords removed (``bm25s``'s
tokenizer: words of two or more characters). Ranking is by BM25 score, ties broken by paragraph index,
so the same (corpus, query, k) always gives the same list. Two documented edge cases:

* an empty or whitespace-only query returns ``[]`` (the agent searched for nothing);
* a query whose tokens are all out of the corpus vocabulary returns the first ``k`` paragraphs in
  corpus order (every score is 0, so the tie-break decides).

``SearchTool`` builds one ``Searcher`` per problem lazily and memoises (problem, query, k) results,
because rollouts repeat the same searches tens of thousands of times.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterable

import bm25s
import numpy as np

Result = tuple[str, str]  # (title, text)


def tokenize(text: str) -> list[str]:
    """Lower-cased, stopword-free word tokens, exactly as the index sees them."""
    return bm25s.tokenize([text], lower=True, stopwords="en", return_ids=False, show_progress=False)[0]


class Searcher:
    """BM25 over one corpus of (title, text) paragraphs."""

    def __init__(self, titles: list[str], texts: list[str]):
        if len(titles) != len(texts):
            raise ValueError(f"{len(titles)} titles but {len(texts)} texts")
        self.titles, self.texts = list(titles), list(texts)
        self.bm25 = None
        if self.texts:
            docs = [f"{t} {x}" for t, x in zip(self.titles, self.texts, strict=True)]
            tokens = bm25s.tokenize(docs, lower=True, stopwords="en", show_progress=False)
            self.bm25 = bm25s.BM25()
            self.bm25.index(tokens, show_progress=False)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every paragraph for ``query`` (all zeros when no query token is in the corpus)."""
        ids = self.bm25.get_tokens_ids(tokenize(query)) if self.bm25 is not None else []
        if not ids:
            return np.zeros(len(self.texts), dtype=np.float32)
        return self.bm25.get_scores_from_ids(ids)

    def search(self, query: str, k: int) -> list[Result]:
        """Top-``k`` paragraphs by score, ties by index; ``k`` beyond the corpus returns all of it."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if not query.strip() or not self.texts:
            return []
        s = self.scores(query)
        order = np.lexsort((np.arange(len(s)), -s))[:k]
        return [(self.titles[i], self.texts[i]) for i in order]


class SearchTool:
    """Search for many problems by id: one lazily built ``Searcher`` each, plus an LRU cache of results."""

    def __init__(self, problems: Iterable[dict], cache_size: int = 200_000):
        self.corpora = {p["id"]: (p["titles"], p["texts"]) for p in problems}
        self.searchers: dict[str, Searcher] = {}
        self.cache: OrderedDict[tuple[str, str, int], list[Result]] = OrderedDict()
        self.cache_size = cache_size

    def searcher(self, problem_id: str) -> Searcher:
        if problem_id not in self.searchers:
            if problem_id not in self.corpora:
                raise KeyError(f"unknown problem id {problem_id!r}")
            self.searchers[problem_id] = Searcher(*self.corpora[problem_id])
        return self.searchers[problem_id]

    def search(self, problem_id: str, query: str, k: int) -> list[Result]:
        key = (problem_id, query, k)
        hit = self.cache.get(key)
        if hit is not None:
            self.cache.move_to_end(key)
            return list(hit)
        res = self.searcher(problem_id).search(query, k)
        self.cache[key] = res
        if len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        return list(res)


def format_results(results: list[Result]) -> str:
    """One "title: text" line per paragraph (the environment wraps this in <information> tags)."""
    return "\n".join(f"{title}: {text}" for title, text in results)
