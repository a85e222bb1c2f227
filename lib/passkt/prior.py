"""The behaviour prior: scripted agent transcripts that teach the tiny base model the protocol *and* its mistakes.

A real base model (Qwen2.5-7B-Instruct) follows the protocol, searches, sometimes composes two lookups correctly
and often does not. The tiny model learns that spread from transcripts written here by running the real
environment (real BM25 results over each problem's own paragraphs) with a mixture of strategies and error modes.
Every transcript is honest about what was retrieved: a step that needs a fact only uses it if the fact is in
the retrieved text; otherwise the strategy falls back to a guess.

The strategy weights are parameters (params.yaml ``01_base_model.prior``), fixed once against the sanity bands
of the tiny-model issue, never tuned toward the paper's results.
"""

from __future__ import annotations

import json
import random
import re

from passkt.protocol import NOTICE, build_prompt, information
from passkt.search import SearchTool, format_results

RELATION_WORDS = {"director": "director", "studio": "studio", "founder": "founder",
                  "headquarters": "home city", "birth_city": "birth city"}
ATTRIBUTE_WORDS = {"birth_year": "born", "founded": "founded", "country": "country",
                   "birth_city": "birth city", "headquarters": "based in", "release_year": "released"}
DEFAULT_WEIGHTS = {
    "bridge": {"chain": 0.35, "whole_question": 0.15, "no_search": 0.10, "wrong_bridge": 0.15,
               "one_hop": 0.15, "redundant": 0.10},
    "comparison": {"both": 0.45, "one_side": 0.20, "whole_question": 0.15, "no_search": 0.10,
                   "wrong_compare": 0.10},
    "math": {"correct": 0.50, "slip": 0.35, "no_think": 0.15},
}
DEFAULT_BUDGETS = {0: 0.15, 1: 0.2, 2: 0.2, 3: 0.15, 5: 0.3}
_YEAR = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})\b")


class _Budget(Exception):
    """Raised inside a strategy when it wants to search but the budget is spent."""


class Transcript:
    """Builds one assistant message against the real tool, enforcing the budget like the environment does."""

    def __init__(self, tool: SearchTool, problem: dict, budget: int, k: int, eos: str):
        self.tool, self.p, self.budget, self.k, self.eos = tool, problem, budget, k, eos
        self.parts: list[tuple[str, str]] = []  # (kind, text): kind "model" or "env"
        self.searches = 0
        if budget == 0:
            self.env(NOTICE)

    def model(self, text: str) -> None:
        if self.parts and self.parts[-1][0] == "model":
            self.parts[-1] = ("model", self.parts[-1][1] + text)
        else:
            self.parts.append(("model", text))

    def env(self, text: str) -> None:
        self.parts.append(("env", text))

    def think(self, text: str) -> None:
        self.model(f"<think>{text}</think>")

    def search(self, query: str) -> str:
        if self.searches >= self.budget:
            raise _Budget
        self.model(f"<search>{query}</search>")
        info = format_results(self.tool.search(self.p["id"], query, self.k))
        self.env(information(info))
        self.searches += 1
        if self.searches == self.budget:
            self.env(NOTICE)
        return info

    def answer(self, text: str) -> None:
        self.model(f"<answer>{text}</answer>{self.eos}")

    def text(self) -> str:
        return "".join(t for _, t in self.parts)


def _guess(meta: dict, rng: random.Random, info: str = "") -> str:
    pool = list(meta.get("wrong_answers") or [])
    years = _YEAR.findall(info)
    if years and rng.random() < 0.5:
        pool = years
    return rng.choice(pool) if pool else "unknown"


def _bridge(t: Transcript, meta: dict, strategy: str, rng: random.Random) -> None:
    first, bridge = meta["plan"]
    rel = RELATION_WORDS.get(meta["relation"], meta["relation"])
    attr = ATTRIBUTE_WORDS.get(meta["attribute"], meta["attribute"])
    value = meta["values"][bridge]
    state = {"guess": None}

    def finish(info: str = "") -> None:
        t.answer(state["guess"] or _guess(meta, rng, info))

    try:
        if strategy == "no_search":
            t.think(f"I think I know the {attr} answer.")
            finish()
            return
        if strategy == "whole_question":
            info = t.search(t.p["question"])
            if bridge in info and value in info and rng.random() < 0.5:
                state["guess"] = value
            else:
                state["guess"] = _guess(meta, rng, info)
            t.think(f"The answer may be {state['guess']}.")
            finish(info)
            return
        t.think(f"I need the {rel} of {first}.")
        info = t.search(first)
        if strategy == "redundant" and rng.random() < 0.5:
            info = t.search(first)
        if bridge not in info:
            t.think(f"No {rel} of {first} found.")
            finish(info)
            return
        if strategy == "one_hop":
            state["guess"] = _guess(meta, rng, info)
            t.think(f"{first} gives {state['guess']}.")
            finish(info)
            return
        name = bridge
        if strategy == "wrong_bridge":
            others = [x.split(": ", 1)[0] for x in info.split("\n")]
            others += [w for w in re.findall(r"[A-Z][a-z]+ [A-Z][a-z]+", info) if w not in (first, bridge)]
            others = [o for o in others if o not in (first, bridge)]
            name = rng.choice(others) if others else bridge
        t.think(f"The {rel} of {first} is {name}.")
        info2 = t.search(name)
        if strategy == "redundant" and rng.random() < 0.5:
            info2 = t.search(name)
        if name == bridge and value in info2:
            t.think(f"{name}: {attr} {value}.")
            t.answer(value)
            return
        state["guess"] = _guess(meta, rng, info2)
        t.think(f"{name}: {attr} {state['guess']}.")
        finish(info2)
    except _Budget:
        finish()


def _comparison(t: Transcript, meta: dict, strategy: str, rng: random.Random) -> None:
    x, y = meta["plan"]
    attr = ATTRIBUTE_WORDS.get(meta["attribute"], meta["attribute"])
    correct = t.p["answer"]
    other = y if correct == x else x
    try:
        if strategy == "no_search":
            t.think(f"I guess between {x} and {y}.")
            t.answer(rng.choice([x, y]))
            return
        if strategy == "whole_question":
            info = t.search(t.p["question"])
            seen = [e for e in (x, y) if e in info]
            t.think(f"I found {seen[0] if seen else 'nothing'}.")
            t.answer(rng.choice(seen or [x, y]))
            return
        first, second = (x, y) if rng.random() < 0.5 else (y, x)
        t.think(f"I need the {attr} year of {first} and {second}.")
        info1 = t.search(first)
        if strategy == "one_side":
            t.think(f"{first} is enough.")
            t.answer(rng.choice([x, y]))
            return
        info2 = t.search(second)
        v1, v2 = meta["values"][first], meta["values"][second]
        if v1 in info1 and v2 in info2:
            t.think(f"{first}: {attr} {v1}. {second}: {attr} {v2}.")
            t.answer(other if strategy == "wrong_compare" else correct)
        else:
            t.think("One of them is missing.")
            t.answer(rng.choice([x, y]))
    except _Budget:
        t.answer(rng.choice([x, y]))


def _math(t: Transcript, meta: dict, strategy: str, rng: random.Random) -> None:
    ops, nums = meta["math"]["ops"], meta["math"]["operands"]
    answer = t.p["answer"]
    if strategy == "no_think":
        t.answer(answer if rng.random() < 0.3 else _guess(meta, rng))
        return
    steps, acc = [], nums[0]
    for op, b in zip(ops, nums[1:]):
        new = {"+": acc + b, "-": acc - b, "*": acc * b, "/": acc // b if b else 0}[op]
        steps.append(f"{acc} {op} {b} = {new}")
        acc = new
    if strategy == "slip":
        wrong = _guess(meta, rng)
        steps[-1] = steps[-1].rsplit("= ", 1)[0] + f"= {wrong}"
        t.think(". ".join(steps) + ".")
        t.answer(wrong)
        return
    t.think(". ".join(steps) + ".")
    t.answer(answer)


def write_transcript(tokenizer, tool: SearchTool, problem: dict, strategy: str, budget: int, k: int,
                     rng: random.Random) -> dict:
    """One transcript: the chat prompt and the assistant message as (kind, text) parts ending in EOS."""
    meta = json.loads(problem["meta"])
    t = Transcript(tool, problem, 0 if problem["category"] == "math" else budget, k, tokenizer.eos_token)
    {"bridge": _bridge, "comparison": _comparison, "math": _math}[problem["category"]](t, meta, strategy, rng)
    return {"prompt": build_prompt(tokenizer, problem["question"]), "parts": t.parts}


def write_transcripts(tokenizer, problems: list[dict], weights: dict, budgets: dict, per_problem: int, k: int,
                      seed: int) -> list[dict]:
    """``per_problem`` transcripts for every problem; strategy and budget drawn from the prior's weights."""
    for cat, w in weights.items():
        bad = set(w) - set(DEFAULT_WEIGHTS.get(cat, {}))
        if bad:
            raise ValueError(f"prior weights: unknown strategy {sorted(bad)[0]!r} for category {cat!r}")
    rng = random.Random(seed)
    tool = SearchTool(problems)
    bud_vals = [int(b) for b in budgets]
    bud_w = [float(budgets[b]) for b in budgets]
    out = []
    for p in problems:
        w = weights[p["category"]]
        names, ws = list(w), list(w.values())
        for _ in range(per_problem):
            strat = rng.choices(names, ws)[0]
            budget = rng.choices(bud_vals, bud_w)[0]
            tr = write_transcript(tokenizer, tool, p, strat, budget, k, rng)
            out.append({"problem_id": p["id"], "category": p["category"], "strategy": strat,
                        "budget": budget if p["category"] != "math" else 0, **tr,
                        "text": tr["prompt"] + "".join(x for _, x in tr["parts"])})
    return out
