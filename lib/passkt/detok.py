"""Token ids -> the decoded text and where each token starts in it.

Text must be decoded as a whole: a byte-level BPE (Qwen2's, the tiny model's) splits a character such as "ë"
or "東" over several byte tokens, and each of them decoded alone is U+FFFD, so joining per-token strings
corrupts every non-ASCII name. :func:`decode_offsets` returns ``tok.decode(ids)`` with per-token character
offsets, so callers parse the true text and map character spans back to tokens (a token belongs to the span
holding its first character).
"""

from __future__ import annotations

import os
from itertools import accumulate

_BAD = "\ufffd"  # what a lossy UTF-8 decode writes for an incomplete character


def decode_offsets(tok, ids, cache: dict | None = None) -> tuple[str, list[int]]:
    """``(text, starts)``: ``text == tok.decode(ids)``; ``starts[i]`` is the offset of the first character
    token ``i`` contributes to (non-decreasing). Tokens that write one character together share its start, so
    of the spans ``text[starts[i]:starts[i + 1]]`` theirs is empty but for the last.

    Fast path: tokens decoded one by one (memoised per id in ``cache``); a piece that ends in an incomplete
    character takes the following tokens while they complete it. It is kept only if the pieces join to the
    whole decode; otherwise (a decoder that is not byte-level, clean-up of spaces) starts come from decoding
    every prefix, which is quadratic but exact.
    """
    ids = list(ids)
    cache = {} if cache is None else cache
    dec, get = tok.decode, cache.get
    strs = []
    for t in ids:
        s = get(t)
        if s is None:
            s = cache[t] = dec([t])
        strs.append(s)
    text = "".join(strs)
    if _BAD in text:
        text, starts = _grouped(dec, ids, strs)
    else:
        starts = list(accumulate(map(len, strs), initial=0))
        starts.pop()
    if ids and text != dec(ids):
        return _by_prefixes(tok, ids)
    return text, starts


def _grouped(dec, ids: list[int], strs: list[str]) -> tuple[str, list[int]]:
    """Join per-token strings, a piece that ends in an incomplete character taking the tokens that finish it."""
    n, i, pos = len(ids), 0, 0
    pieces, starts = [], []
    while i < n:
        s, j = strs[i], i + 1
        while j < n and s.endswith(_BAD):
            joint = dec(ids[i : j + 1])
            if joint == s + strs[j]:  # the next token finishes nothing: a stray byte or a real U+FFFD
                break
            s, j = joint, j + 1
        starts += [pos] * (j - i)
        pieces.append(s)
        pos += len(s)
        i = j
    return "".join(pieces), starts


def _by_prefixes(tok, ids: list[int]) -> tuple[str, list[int]]:
    """Token i starts at the first character of the whole decode that ``ids[:i]`` does not already write."""
    text = tok.decode(ids)
    starts, pos = [], 0
    for i in range(len(ids)):
        p = tok.decode(ids[:i]) if i else ""
        k = len(p) if text.startswith(p) else len(os.path.commonprefix([p, text]))
        pos = min(max(pos, k), len(text))
        starts.append(pos)
    return text, starts
