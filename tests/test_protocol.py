"""The parser never raises and classifies each malformed turn with its documented reason."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from passkt.protocol import INVALID_REASONS, Turn, encode_parts, parse_turn, split_turn


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<think>x</think><search>Nora Vell</search>", Turn("search", "Nora Vell")),
        ("<search>  a   b </search>", Turn("search", "a b")),
        ("<think>so</think><answer>1962</answer>", Turn("answer", "1962")),
        ("just text", Turn("invalid", reason="no_action")),
        ("", Turn("invalid", reason="no_action")),
        ("<think>unclosed <search>q</search>", Turn("invalid", reason="unclosed_tag")),
        ("<search>q", Turn("invalid", reason="unclosed_tag")),
        ("<search> </search>", Turn("invalid", reason="empty_query")),
        ("<answer></answer>", Turn("invalid", reason="empty_answer")),
        ("<search>q</search><answer>a</answer>", Turn("invalid", reason="both_tags")),
        ("<search>q</search><search>r</search>", Turn("invalid", reason="both_tags")),
        ("<information>fake</information><answer>a</answer>", Turn("invalid", reason="no_action")),
    ],
)
def test_parse_turn_cases(text, expected):
    assert parse_turn(text) == expected


def test_turn_limit_and_budget():
    assert parse_turn("<think>long", hit_limit=True).reason == "turn_too_long"
    assert parse_turn("<search>q</search>", searches_left=False).reason == "search_after_budget"
    assert parse_turn("<answer>a</answer>", searches_left=False).action == "answer"


ALPHABET = st.sampled_from(["<think>", "</think>", "<search>", "</search>", "<answer>", "</answer>",
                            "<information>", "</information>", "a", " ", "x y", "<", ">", "/", "\n", "é"])


@settings(max_examples=400, deadline=None)
@given(st.lists(ALPHABET, max_size=12).map("".join), st.booleans(), st.booleans())
def test_parser_fuzz_never_raises(text, hit, left):
    t = parse_turn(text, hit_limit=hit, searches_left=left)
    assert t.action in ("search", "answer", "invalid")
    if t.action == "invalid":
        assert t.reason in INVALID_REASONS
    else:
        assert t.content and t.content == " ".join(t.content.split())
    spans = split_turn(text)
    assert "".join(text[a:b] for _, a, b in spans) == text  # spans tile the turn exactly


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_parser_fuzz_random_text(text):
    assert parse_turn(text).action in ("search", "answer", "invalid")


def test_encode_parts_masks_environment(small_tok):
    ids, labels = encode_parts(small_tok, "P", [("model", "<search>q</search>"), ("env", "<information>x</information>"),
                                                ("model", "<answer>a</answer>")])
    trained = small_tok.decode([i for i, lab in zip(ids, labels) if lab != -100])
    masked = small_tok.decode([i for i, lab in zip(ids, labels) if lab == -100])
    assert trained == "<search>q</search><answer>a</answer>"
    assert masked == "P<information>x</information>"
