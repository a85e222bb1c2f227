"""Scoring: HotpotQA EM/F1 (hand-worked cases + the official script as oracle) and MATH equivalence."""

import re
import string
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from passkt.scoring import (
    exact_match,
    extract_boxed,
    f1_score,
    math_equal,
    normalize_answer,
    normalize_math,
    score_answer,
)

# ------------------------------------------------------------------ HotpotQA normalisation / EM / F1


@pytest.mark.parametrize(
    "raw, norm",
    [
        ("The Eiffel Tower!", "eiffel tower"),
        ("  an apple   a day ", "apple day"),
        ("Theatre of the Absurd", "theatre of absurd"),  # "the" only as a whole word
        ("U.S.A.", "usa"),  # punctuation goes before articles are matched
        ("well-known", "wellknown"),
        ("A", ""),
        ("", ""),
    ],
)
def test_normalize_answer(raw, norm):
    assert normalize_answer(raw) == norm


def test_exact_match_cases():
    assert exact_match("The Eiffel Tower!", "eiffel tower")
    assert exact_match("No.", "no")
    assert not exact_match("Eiffel", "Eiffel Tower")
    assert not exact_match(None, "anything")
    assert exact_match("Bob Smith", "Robert Smith", aliases=["bob smith"])
    assert not exact_match("Bob", "Robert Smith", aliases=["bob smith"])


@pytest.mark.parametrize(
    "pred, gold, aliases, expected",
    [
        ("New York City", "New York", (), 0.8),  # P = 2/3, R = 1
        ("the eiffel tower in paris", "Eiffel Tower", (), 2 / 3),  # P = 2/4, R = 1
        ("cat cat", "the cat", (), 2 / 3),  # counts clip: 1 shared token, P = 1/2, R = 1
        ("red green blue", "blue yellow", (), 0.4),  # P = 1/3, R = 1/2
        ("London", "Paris", (), 0.0),
        ("yes", "yes sir", (), 0.0),  # a yes/no prediction must match exactly
        ("no way", "no", (), 0.0),  # a yes/no gold must be matched exactly
        ("No!", "no", (), 1.0),
        ("noanswer", "noanswer", (), 1.0),
        ("bob", "Robert Smith", ["Bob Smith"], 2 / 3),  # max over aliases
        ("", "Paris", (), 0.0),
        (None, "Paris", (), 0.0),
    ],
)
def test_f1_hand_worked(pred, gold, aliases, expected):
    assert f1_score(pred, gold, aliases) == pytest.approx(expected)


def test_aliases_must_be_a_list_not_a_str():
    with pytest.raises(TypeError, match="aliases"):
        exact_match("x", "y", aliases="xy")


# The official hotpot_evaluate_v1.py functions, transcribed as the oracle for a property test.
def _official_normalize(s):
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def _official_f1(prediction, ground_truth):
    p, g = _official_normalize(prediction), _official_normalize(ground_truth)
    if p in ["yes", "no", "noanswer"] and p != g:
        return 0
    if g in ["yes", "no", "noanswer"] and p != g:
        return 0
    common = Counter(p.split()) & Counter(g.split())
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision, recall = num_same / len(p.split()), num_same / len(g.split())
    return 2 * precision * recall / (precision + recall)


_words = st.sampled_from(
    ["a", "an", "the", "The", "yes", "no", "Paris", "paris!", "New", "york", ",", "-", "x.y"]
)
_answers = st.lists(_words, max_size=6).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(_answers, _answers)
def test_matches_official_script(pred, gold):
    assert normalize_answer(pred) == _official_normalize(pred)
    assert exact_match(pred, gold) == (_official_normalize(pred) == _official_normalize(gold))
    assert f1_score(pred, gold) == pytest.approx(_official_f1(pred, gold))


# ------------------------------------------------------------------------------------------- math

MATH_TABLE = [
    # (pred, gold, equal?)
    ("56", "56", True),
    ("\\boxed{56}", "56", True),
    ("$56$", "56", True),
    ("56.0", "56", True),
    ("56.00", "56", True),
    ("0.75", "\\frac{3}{4}", True),
    ("3/4", "\\frac{3}{4}", True),
    ("\\dfrac{3}{4}", "\\frac{3}{4}", True),
    ("\\tfrac34", "\\frac{3}{4}", True),
    ("\\frac{6}{8}", "\\frac{3}{4}", True),  # same value, unreduced
    ("-\\frac{1}{2}", "-0.5", True),
    ("\\frac{-1}{2}", "-\\frac{1}{2}", True),
    ("-1/2", "-\\frac{1}{2}", True),
    ("30240", "30,\\!240", True),
    ("30,240", "30,\\!240", True),
    ("1,000,000", "1000000", True),
    ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt3}{2}", True),  # nested braces in \boxed
    ("\\left( 2, \\frac{3 \\pi}{2} \\right)", "(2,\\frac{3\\pi}{2})", True),
    ("(2, 1.5)", "\\left(2, \\frac{3}{2}\\right)", True),  # element-wise values in a tuple
    ("2 \\sqrt{5}", "2\\sqrt{5}", True),
    ("\\sqrt 5", "\\sqrt{5}", True),
    ("x = 5", "5", True),
    ("50\\%", "50", True),
    ("90^\\circ", "90", True),
    ("\\text{(C)}", "(C)", True),
    ("\\(7\\)", "7", True),
    ("\u22127", "-7", True),
    ("55", "56", False),
    ("-56", "56", False),
    ("0.333", "\\frac{1}{3}", False),  # values compared exactly, no tolerance
    ("\\frac{3}{5}", "\\frac{3}{4}", False),
    ("3/0", "0", False),
    ("\\sqrt{5}", "\\sqrt{6}", False),
    ("2\\sqrt{5}", "5\\sqrt{2}", False),
    ("(2, 1.5)", "(1.5, 2)", False),
    ("[0, 1)", "(0, 1)", False),  # open vs half-open interval
    ("\\pi r", "\\pir", False),  # a space that separates two words is meaningful
    ("1,5", "15", False),  # not a thousands separator
    ("", "0", False),
    ("\\boxed{}", "0", False),
]


@pytest.mark.parametrize("pred, gold, equal", MATH_TABLE)
def test_math_equal_table(pred, gold, equal):
    assert math_equal(pred, gold) is equal
    assert math_equal(gold, pred) is equal  # symmetric


def test_math_equal_none_is_false():
    assert math_equal(None, "1") is False


@pytest.mark.parametrize(
    "s, inner",
    [
        ("The answer is \\boxed{42}.", "42"),
        ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}"),
        ("first \\boxed{1} then \\boxed{2}", "2"),  # last one wins
        ("\\fbox{x}", "x"),
        ("\\boxed {7}", "7"),
        ("no box here", None),
        ("\\boxed{unbalanced", None),
    ],
)
def test_extract_boxed(s, inner):
    assert extract_boxed(s) == inner


def test_normalize_math_strips_wrappers():
    assert normalize_math("$\\left( 1 , 2 \\right)$") == "(1,2)"
    assert normalize_math("\\dfrac{a}{b}") == "\\frac{a}{b}"
    assert normalize_math("\\leftarrow") == "\\leftarrow"  # \left only as a whole command


# ------------------------------------------------------------------------------------ score_answer

HOTPOT = {"category": "bridge", "answer": "Robert Smith", "aliases": ["Bob Smith"]}
MATH = {"category": "math", "answer": "\\frac{3}{4}", "aliases": []}


def test_score_answer_dispatch():
    assert score_answer("The Robert Smith.", HOTPOT) == {"correct": True, "f1": 1.0}
    assert score_answer("bob smith", HOTPOT) == {"correct": True, "f1": 1.0}
    out = score_answer("Robert", HOTPOT)
    assert out["correct"] is False and out["f1"] == pytest.approx(2 / 3)
    assert score_answer("\\boxed{0.75}", MATH) == {"correct": True, "f1": 1.0}
    assert score_answer("0.7", MATH) == {"correct": False, "f1": 0.0}
    # a math answer is not judged by token overlap
    assert score_answer("3/4", {**MATH, "category": "comparison"})["correct"] is False


def test_score_answer_none_and_bad_type():
    assert score_answer(None, HOTPOT) == {"correct": False, "f1": 0.0}
    assert score_answer(None, MATH) == {"correct": False, "f1": 0.0}
    with pytest.raises(TypeError, match="pred"):
        score_answer(0.75, MATH)
