"""The agent protocol: prompt, tags, the environment's insertions, and the parser of one model turn.

An episode is one assistant message that grows turn by turn::

    <think> ... </think> <search> query </search>          <- model turn (stops at the closing tag)
    <information> title: text ... </information>            <- environment
    <think> ... </think> <answer> final </answer>           <- model turn, then EOS

After the T-th search the environment appends NOTICE; the next model turn must answer. The prompt never states
the numeric budget (only the rule), so a budget-T episode and the first T rounds of a budget-T_max episode are
the same policy on the same prefix — which is what lets the rollout engine fork the depth grid from one pass.
A turn that breaks the protocol ends the episode as *invalid* with a reason; parsing never raises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

THINK, SEARCH, ANSWER, INFO = "think", "search", "answer", "information"
TAGS = [f"<{t}>" for t in (THINK, SEARCH, ANSWER, INFO)] + [f"</{t}>" for t in (THINK, SEARCH, ANSWER, INFO)]
STOP_STRINGS = ("</search>", "</answer>")

SYSTEM_PROMPT = (
    "You answer questions. Think inside <think> </think>. To look something up, write one query inside "
    "<search> </search>; the results appear inside <information> </information>. The number of searches is "
    "limited: when told that no searches remain, answer at once. Give the final answer inside <answer> </answer>."
)
NOTICE = " No searches remain. Answer now."

# Termination reasons (an episode ends with exactly one).
ANSWERED = "answered"
INVALID_REASONS = (
    "no_action",  # the turn ended (EOS) without <search> or <answer>
    "unclosed_tag",  # a tag opened but never closed
    "empty_query",  # <search></search> with nothing inside
    "empty_answer",  # <answer></answer> with nothing inside
    "both_tags",  # one turn holds both a search and an answer
    "turn_too_long",  # the turn hit its token limit before a closing tag
    "search_after_budget",  # searched after the notice
    "context_overflow",  # the episode outgrew the context limit
)


def build_messages(question: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": f"Question: {question}"}]


def build_prompt(tokenizer, question: str) -> str:
    """The prompt text, through the tokenizer's own chat template (same code for the tiny model and Qwen)."""
    return tokenizer.apply_chat_template(build_messages(question), tokenize=False, add_generation_prompt=True)


def information(results_text: str) -> str:
    return f"<information>{results_text}</information>"


@dataclass(frozen=True)
class Turn:
    """What one model turn did: ``action`` is 'search', 'answer' or 'invalid' (then ``reason`` says why)."""

    action: str
    content: str = ""
    reason: str = ""


_OPEN_CLOSE = {t: (re.compile(rf"<{t}>"), re.compile(rf"</{t}>")) for t in (THINK, SEARCH, ANSWER, INFO)}
_BLOCK = {t: re.compile(rf"<{t}>(.*?)</{t}>", re.S) for t in (THINK, SEARCH, ANSWER)}


def parse_turn(text: str, hit_limit: bool = False, searches_left: bool = True) -> Turn:
    """Classify one model turn (the text it generated since the last environment insertion).

    ``hit_limit``: generation stopped at the per-turn token limit rather than at a stop string / EOS.
    Never raises: any string maps to a Turn.
    """
    if not isinstance(text, str):
        return Turn("invalid", reason="no_action")
    if hit_limit:
        return Turn("invalid", reason="turn_too_long")
    for t in (THINK, SEARCH, ANSWER, INFO):
        o, c = _OPEN_CLOSE[t]
        if len(o.findall(text)) != len(c.findall(text)):
            return Turn("invalid", reason="unclosed_tag")
    if _OPEN_CLOSE[INFO][0].search(text):  # the model may not write the environment's tag
        return Turn("invalid", reason="no_action")
    searches = _BLOCK[SEARCH].findall(text)
    answers = _BLOCK[ANSWER].findall(text)
    if searches and answers:
        return Turn("invalid", reason="both_tags")
    if len(searches) > 1 or len(answers) > 1:
        return Turn("invalid", reason="both_tags")
    if searches:
        q = " ".join(searches[0].split())
        if not q:
            return Turn("invalid", reason="empty_query")
        if not searches_left:
            return Turn("invalid", reason="search_after_budget")
        return Turn("search", q)
    if answers:
        a = " ".join(answers[0].split())
        if not a:
            return Turn("invalid", reason="empty_answer")
        return Turn("answer", a)
    return Turn("invalid", reason="no_action")


_SEGMENT_RE = re.compile(r"<think>.*?</think>|<search>.*?</search>|<answer>.*?</answer>", re.S)


def split_turn(text: str) -> list[tuple[str, int, int]]:
    """Character spans of a model turn by segment type: reasoning (think + stray text), query, answer."""
    spans: list[tuple[str, int, int]] = []
    pos = 0
    for m in _SEGMENT_RE.finditer(text):
        if m.start() > pos:
            spans.append(("reasoning", pos, m.start()))
        kind = {"<t": "reasoning", "<s": "query", "<a": "answer"}[m.group(0)[:2]]
        spans.append((kind, m.start(), m.end()))
        pos = m.end()
    if pos < len(text):
        spans.append(("reasoning", pos, len(text)))
    return spans


def encode_parts(tokenizer, prompt: str, parts: list[tuple[str, str]],
                 train_on_information: bool = False) -> tuple[list[int], list[int]]:
    """Token ids and labels for a written transcript, tokenised piece by piece exactly as the engine does.

    ``parts`` = [(kind, text)] with kind "model" (trained on) or "env" (information, notices: masked with -100,
    still attended to). The prompt is masked too. EOS must be the end of the last model part.
    ``train_on_information``: also train on retrieved paragraphs, as language-model text (base-model
    pretraining only; SFT and GRPO never train on what the environment wrote).
    """
    ids = tokenizer.encode(prompt, add_special_tokens=False)
    labels = [-100] * len(ids)
    for kind, text in parts:
        x = tokenizer.encode(text, add_special_tokens=False)
        ids += x
        keep = kind == "model" or (train_on_information and text.startswith("<information>"))
        labels += x if keep else [-100] * len(x)
    return ids, labels
