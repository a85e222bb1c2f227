"""Tables for the data-preparation figures: split sizes, text lengths, and how much one search can do.

``single_query_recall`` is the check that the bridge category is compositional: one search with the
whole question should retrieve both gold paragraphs far more often for comparison questions (both
names are in the question) than for bridge questions (the second name is only in the first paragraph).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from passkt.data import CATEGORIES
from passkt.search import Searcher


def category_sizes(problems_by_split: dict[str, list[dict]]) -> pd.DataFrame:
    """Problem counts, one row per split name, one column per category (plus ``total``)."""
    rows = {
        name: {c: sum(p["category"] == c for p in ps) for c in CATEGORIES}
        for name, ps in problems_by_split.items()
    }
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(CATEGORIES)).fillna(0).astype(int)
    table["total"] = table.sum(axis=1)
    table.index.name = "split"
    return table


def length_table(problems: list[dict]) -> pd.DataFrame:
    """Mean / median / max word counts of questions and of corpus paragraphs, one row per category."""
    rows = []
    for c in CATEGORIES:
        ps = [p for p in problems if p["category"] == c]
        if not ps:
            continue
        q = np.array([len(p["question"].split()) for p in ps])
        par = np.array([len(t.split()) for p in ps for t in p["texts"]] or [np.nan])  # NaN: no corpus (math)
        rows.append(
            {
                "category": c,
                "n": len(ps),
                "question_mean": q.mean(),
                "question_median": np.median(q),
                "question_max": q.max(),
                "paragraph_mean": par.mean(),
                "paragraph_median": np.median(par),
                "paragraph_max": par.max(),
                "paragraphs_per_problem": np.mean([len(p["texts"]) for p in ps]),
            }
        )
    return pd.DataFrame(rows).set_index("category")


def _retrieved(searcher: Searcher, query: str, k: int) -> set[str]:
    return {title for title, _ in searcher.search(query, k)}


def single_query_recall(problems: list[dict], tool_k: int) -> pd.DataFrame:
    """Per category with a corpus: fraction of problems whose whole question, searched once with top-``tool_k``,
    returns both gold paragraphs (``single_query``), and, for reference, the fraction where the gold plan's
    two queries from ``meta["plan"]`` each return their gold paragraph (``plan``; problems without a plan
    count as misses)."""
    rows = []
    for c in CATEGORIES:
        ps = [p for p in problems if p["category"] == c and p["texts"]]
        if not ps:
            continue
        single = plan = 0
        for p in ps:
            s = Searcher(p["titles"], p["texts"])
            single += set(p["supporting_titles"]) <= _retrieved(s, p["question"], tool_k)
            queries = json.loads(p["meta"]).get("plan") or []
            plan += bool(queries) and all(
                g in _retrieved(s, q, tool_k) for q, g in zip(queries, p["supporting_titles"], strict=False)
            )
        rows.append(
            {
                "category": c,
                "n": len(ps),
                "tool_k": tool_k,
                "single_query": single / len(ps),
                "plan": plan / len(ps),
            }
        )
    return pd.DataFrame(rows).set_index("category")


def word_lengths(problems: list[dict]) -> pd.DataFrame:
    """One row per question and per corpus paragraph: category, what (question | paragraph), words."""
    rows = []
    for p in problems:
        rows.append({"category": p["category"], "what": "question", "words": len(p["question"].split())})
        rows += [{"category": p["category"], "what": "paragraph", "words": len(t.split())} for t in p["texts"]]
    return pd.DataFrame(rows)
