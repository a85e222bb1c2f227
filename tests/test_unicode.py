"""Non-ASCII text through a byte-level BPE: whole-text decoding with token offsets (passkt.detok), the engine's
queries and answers, BM25 and scoring. The tiny world is ASCII, so without these tests nothing would notice a
character whose UTF-8 bytes span two tokens turning into U+FFFD."""

import numpy as np
import pytest

from passkt import detok, mechanism, models, protocol, rollout
from passkt.backends import ScriptedBackend, _string_stop_cut
from passkt.detok import decode_offsets
from passkt.scoring import score_answer
from passkt.search import Searcher, tokenize

NAMES = ["Zoë Saldaña", "São Paulo", "東京"]
PARAS = {
    "Zoë Saldaña": "Zoë Saldaña is an American actress who was born in New Jersey.",
    "São Paulo": "São Paulo is the most populous city in Brazil.",
    "東京": "東京 (Tokyo) is the capital of Japan.",
    "Ottawa": "Ottawa is the capital city of Canada.",
    "Lyon": "Lyon is a city in France on the river Rhone.",
}
# distractors first: a query that matches nothing gets the first paragraphs in corpus order
TITLES = ["Ottawa", "Lyon", *NAMES]
PROBLEMS = [
    {"id": f"u{i}", "category": "bridge", "question": f"Which entry is number {i}?", "answer": name,
     "aliases": [], "titles": TITLES, "texts": [PARAS[t] for t in TITLES]}
    for i, name in enumerate(NAMES)
]
CFG = rollout.SamplingConfig(max_turn_tokens=200, max_total_tokens=4000, search_k=1)


@pytest.fixture(scope="module")
def byte_tok():
    """The tiny profile's byte-level BPE, trained on ASCII only: every non-ASCII character is split in bytes."""
    corpus = [protocol.SYSTEM_PROMPT, protocol.NOTICE, *PARAS.values(), *(p["question"] for p in PROBLEMS)]
    return models.build_tokenizer([c.encode("ascii", "ignore").decode() for c in corpus] * 20, 320)


def _splits_a_character(tok, text: str) -> bool:
    """Whether some character of ``text`` has its UTF-8 bytes in two tokens (a token alone decodes to U+FFFD)."""
    ids = tok.encode(text, add_special_tokens=False)
    return tok.decode(ids) == text and any("\ufffd" in tok.decode([t]) for t in ids)


def _byte_chars() -> dict[int, str]:
    """GPT-2's byte -> printable character map (the alphabet of a byte-level BPE vocabulary)."""
    bs = [*range(33, 127), *range(161, 173), *range(174, 256)]
    rest = [b for b in range(256) if b not in bs]
    return {**{b: chr(b) for b in bs}, **{b: chr(256 + n) for n, b in enumerate(rest)}}


def _hand_bpe(merges: list[tuple[bytes, bytes]]):
    """A byte-level BPE with exactly the given merges, e.g. one token holding the last byte of "…" and "<"."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers
    from tokenizers import models as tmodels
    from transformers import PreTrainedTokenizerFast

    m = _byte_chars()
    vocab = {c: i for i, c in enumerate(m.values())}
    pairs = [("".join(m[x] for x in a), "".join(m[x] for x in b)) for a, b in merges]
    for a, b in pairs:
        vocab[a + b] = len(vocab)
    tok = Tokenizer(tmodels.BPE(vocab, pairs))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, clean_up_tokenization_spaces=False)


def _check_offsets(tok, ids):
    """decode_offsets' contract: the whole decode; starts from 0, non-decreasing, within the text (so the spans
    between them cover every character once); the tokens before each start write exactly the text before it."""
    text, starts = decode_offsets(tok, ids, {})
    assert text == tok.decode(ids)
    assert len(starts) == len(ids)
    assert all(0 <= a <= b <= len(text) for a, b in zip(starts, starts[1:] + [len(text)]))
    assert not ids or starts[0] == 0
    for i in range(1, len(ids)):
        if starts[i] > starts[i - 1]:
            assert tok.decode(ids[:i]) == text[: starts[i]], i
    return text, starts


# ------------------------------------------------------------------------------------------- the helper


def test_byte_tokenizer_really_splits_characters(byte_tok):
    for name in NAMES:
        assert _splits_a_character(byte_tok, name), name  # otherwise these tests prove nothing


@pytest.fixture
def no_fallback(monkeypatch):
    """Byte-level tokenizers must stay on the fast path."""

    def fail(tok, ids):
        raise AssertionError("fell back to prefix decodes")

    monkeypatch.setattr(detok, "_by_prefixes", fail)


def test_offsets_of_split_characters(byte_tok, no_fallback):
    for text in [*NAMES, "<think>Zoë</think><search>São Paulo 東京</search>", "ñ", ""]:
        ids = byte_tok.encode(text, add_special_tokens=False)
        got, starts = _check_offsets(byte_tok, ids)
        assert got == text
        assert len(set(starts)) < len(ids) or not text  # the tokens of a split character share one start


def test_offsets_with_stray_bytes_at_either_end(byte_tok, no_fallback):
    ids = byte_tok.encode("ë and 東京", add_special_tokens=False)
    for part in (ids[1:], ids[:-1], ids[1:-2]):  # starts inside "ë", ends inside "京"
        text, _ = _check_offsets(byte_tok, part)
        assert "\ufffd" in text and " and " in text


def test_offsets_when_a_token_holds_parts_of_two_characters(no_fallback):
    tok = _hand_bpe([(b"\xa6", b"<")])  # the last byte of "…" (e2 80 a6) with the "<" after it
    ids = tok.encode("x…</think>", add_special_tokens=False)
    assert [tok.decode([t]) for t in ids[:4]] == ["x", "\ufffd", "\ufffd", "\ufffd<"]
    text, starts = _check_offsets(tok, ids)
    assert text == "x…</think>" and starts[:5] == [0, 1, 1, 1, 3]
    # the tag mask takes the whole group: its text "…<" overlaps the tag
    assert mechanism._tag_tokens(tok, ids, {}).tolist() == [False] + [True] * (len(ids) - 1)


def test_offsets_fall_back_when_pieces_do_not_join_to_the_decode(monkeypatch):
    """A SentencePiece-style decoder drops the leading space of a sequence's first piece, so per-token strings
    lose every space: the fast path's check fails and starts come from prefix decodes."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers
    from tokenizers import models as tmodels
    from transformers import PreTrainedTokenizerFast

    words = ["▁Zoë", "▁and", "▁東京", "[UNK]"]
    t = Tokenizer(tmodels.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    t.pre_tokenizer = pre_tokenizers.Metaspace()
    t.decoder = decoders.Metaspace()
    tok = PreTrainedTokenizerFast(tokenizer_object=t, clean_up_tokenization_spaces=False)
    ids = tok.encode("Zoë and 東京 and Zoë", add_special_tokens=False)
    assert "".join(tok.decode([i]) for i in ids) != tok.decode(ids)
    calls = []
    slow = detok._by_prefixes
    monkeypatch.setattr(detok, "_by_prefixes", lambda tok, ids: calls.append(1) or slow(tok, ids))
    text, starts = _check_offsets(tok, ids)
    assert calls
    assert text == "Zoë and 東京 and Zoë" and starts == [0, 3, 7, 10, 14]


def test_ascii_offsets_equal_the_per_token_strings(small_tok, eval_set):
    """On ASCII the fast path is the old per-token join: same text, same starts."""
    cache = {}
    for p in eval_set[:20]:
        ids = small_tok.encode(protocol.build_prompt(small_tok, p["question"]) + f"<answer>{p['answer']}</answer>",
                               add_special_tokens=False)
        strs = [small_tok.decode([t]) for t in ids]
        text, starts = decode_offsets(small_tok, ids, cache)
        assert text == "".join(strs)
        assert starts == [sum(map(len, strs[:i])) for i in range(len(strs))]


def test_string_stop_cut_on_whole_text(byte_tok):
    head = "<think>東京</think><search>São Paulo</search>"
    ids = byte_tok.encode(head + " Zoë", add_special_tokens=False)
    assert _string_stop_cut(byte_tok, ids) == len(byte_tok.encode(head, add_special_tokens=False))
    assert _string_stop_cut(byte_tok, byte_tok.encode("<search>São", add_special_tokens=False)) is None
    tok = _hand_bpe([(b"\xa6", b"<")])  # the stop string begins inside a token that ends "…"
    ids = tok.encode("…</search>ë", add_special_tokens=False)
    assert _string_stop_cut(tok, ids) == len(ids) - 2
    assert _string_stop_cut(tok, ids[2:]) == len(ids) - 4  # a window that starts inside "…"


# --------------------------------------------------------------------------- engine, BM25 and scoring


def _agent(ctx: str) -> str:
    p = next(p for p in PROBLEMS if p["question"] in ctx)
    if "</information>" in ctx.split("<|im_start|>assistant")[-1]:
        return f"<think>found {p['answer']}</think><answer>{p['answer']}</answer>"
    return f"<think>look up 東京 or São Paulo</think><search>{p['answer']}</search>"


def test_engine_keeps_non_ascii_queries_and_answers(byte_tok):
    env = rollout.Environment(PROBLEMS, byte_tok, search_k=1)
    eps = rollout.run_episodes(ScriptedBackend(byte_tok, _agent), env, [(p["id"], 0, 3) for p in PROBLEMS], CFG)
    assert len(eps) == len(PROBLEMS)
    for ep in eps:
        p = env.problems[ep.problem_id]
        name = p["answer"]
        assert ep.queries == [name]
        assert (ep.termination, ep.answer) == ("answered", name)
        assert score_answer(ep.answer, p)["correct"]
        rec = rollout.to_record(env, ep, 3, "scripted", 1.0, 0)
        assert "".join(rec["seg_text"]) == byte_tok.decode(ep.ids)
        assert not any("\ufffd" in t for t in rec["seg_text"])  # no segment boundary inside a character
        by_kind = {}
        for k, t in zip(rec["seg_type"], rec["seg_text"]):
            by_kind.setdefault(k, []).append(t)
        assert by_kind["query"] == [f"<search>{name}</search>"]
        assert by_kind["answer"] == [f"<answer>{name}</answer>"]
        assert by_kind["reasoning"] == ["<think>look up 東京 or São Paulo</think>", f"<think>found {name}</think>"]
        assert by_kind["information"] == [f"<information>{name}: {PARAS[name]}</information>"]


def test_bm25_finds_non_ascii_entities():
    assert tokenize("Zoë Saldaña in São Paulo, 東京") == ["zoë", "saldaña", "são", "paulo", "東京"]
    s = Searcher(TITLES, [PARAS[t] for t in TITLES])
    for name in NAMES:
        assert s.search(name, 1) == [(name, PARAS[name])]
        assert s.search(name.lower(), 1) == [(name, PARAS[name])]


def test_tag_mask_around_non_ascii(byte_tok):
    ids = byte_tok.encode("<think>Zoë</think><search>東京</search>", add_special_tokens=False)
    mask = mechanism._tag_tokens(byte_tok, ids, {})
    tags = {byte_tok.convert_tokens_to_ids(t) for t in protocol.TAGS}
    assert mask.tolist() == [t in tags for t in ids]
    assert np.count_nonzero(mask) == 4
