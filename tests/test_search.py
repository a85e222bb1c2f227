"""BM25 search tool: ranking, determinism, edge cases, caching; and the data-prep statistics."""

import pytest

from passkt.datastats import category_sizes, length_table, single_query_recall
from passkt.search import Searcher, SearchTool, format_results
from passkt.world import build_world, make_problems

TITLES = ["Alpha", "Gamma", "Delta", "Kappa"]
TEXTS = [
    "The red river runs past the old mill.",
    "The red river runs past the old mill.",  # same text and same-length title as Alpha: a tie
    "Mira Tolen was born in 1950 in Kelmora.",
    "Kelmora is a city founded in 1420.",
]


@pytest.fixture(scope="module")
def problems():
    world = build_world(5, 300, 150, 150)
    return make_problems(world, 5, n_pretrain=30, n_train=20, n_eval_per_category=40)


def test_ranking_puts_the_matching_paragraph_first():
    s = Searcher(TITLES, TEXTS)
    assert s.search("Where was Mira Tolen born?", 1) == [("Delta", TEXTS[2])]
    assert [t for t, _ in s.search("When was Kelmora founded", 2)] == ["Kappa", "Delta"]


def test_ties_break_by_paragraph_index_and_are_deterministic():
    s = Searcher(TITLES, TEXTS)
    assert [t for t, _ in s.search("red river", 2)] == ["Alpha", "Gamma"]
    flipped = Searcher(TITLES[:2][::-1] + TITLES[2:], TEXTS)
    assert [t for t, _ in flipped.search("red river", 2)] == ["Gamma", "Alpha"]
    assert all(
        s.search("old mill Kelmora", 3) == Searcher(TITLES, TEXTS).search("old mill Kelmora", 3)
        for _ in range(3)
    )


def test_edge_cases():
    s = Searcher(TITLES, TEXTS)
    assert s.search("", 3) == [] and s.search("   \n", 3) == []
    assert [t for t, _ in s.search("zebra quokka", 2)] == ["Alpha", "Gamma"]  # all out of vocabulary
    assert [t for t, _ in s.search("the of a", 2)] == ["Alpha", "Gamma"]  # stopwords only
    assert len(s.search("river", 99)) == 4
    assert s.search("KELMORA", 1) == s.search("kelmora", 1)  # lower-cased
    with pytest.raises(ValueError, match="k must be"):
        s.search("river", 0)
    assert Searcher([], []).search("river", 3) == []
    with pytest.raises(ValueError, match="titles"):
        Searcher(["a"], [])


def test_title_is_indexed():
    s = Searcher(["Zorblat", "Other"], ["a quiet town by the sea", "a quiet town by the sea"])
    assert s.search("zorblat", 1)[0][0] == "Zorblat"


def test_search_tool_builds_lazily_and_caches(problems):
    ps = problems["eval_bridge"]
    tool = SearchTool(ps)
    assert tool.searchers == {}
    pid, q = ps[0]["id"], ps[0]["question"]
    first = tool.search(pid, q, 3)
    assert len(tool.searchers) == 1 and len(tool.cache) == 1
    first.clear()  # callers may mutate what they get back
    again = tool.search(pid, q, 3)
    assert again == Searcher(ps[0]["titles"], ps[0]["texts"]).search(q, 3) and len(again) == 3
    assert len(tool.cache) == 1
    with pytest.raises(KeyError, match="unknown problem id"):
        tool.search("nope", q, 3)
    small = SearchTool(ps, cache_size=2)
    for p in ps[:4]:
        small.search(p["id"], p["question"], 2)
    assert len(small.cache) == 2


def test_format_results():
    assert format_results([("A", "x y."), ("B", "z.")]) == "A: x y.\nB: z."
    assert format_results([]) == ""


def test_single_query_recall_separates_bridge_from_comparison(problems):
    ps = problems["eval_comparison"] + problems["eval_bridge"] + problems["eval_math"]
    table = single_query_recall(ps, tool_k=3)
    assert list(table.index) == ["comparison", "bridge"]
    assert table.loc["comparison", "single_query"] >= 0.8
    assert table.loc["comparison", "single_query"] - table.loc["bridge", "single_query"] >= 0.3
    assert (table["plan"] >= 0.9).all()  # but the gold two-query plan works for both


def test_category_sizes_and_lengths(problems):
    sizes = category_sizes({"train": problems["train"], "eval_math": problems["eval_math"]})
    assert sizes.loc["train", "comparison"] == 10 and sizes.loc["train", "bridge"] == 10
    assert sizes.loc["train", "math"] == 0 and sizes.loc["eval_math", "total"] == 40
    lengths = length_table(problems["pretrain"])
    assert set(lengths.index) == {"math", "comparison", "bridge"}
    assert 25 <= lengths.loc["bridge", "paragraph_mean"] <= 50
    assert lengths.loc["bridge", "paragraphs_per_problem"] == 10
