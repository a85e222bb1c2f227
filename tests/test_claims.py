"""Claims registry: each rule on constructed stats with a known answer, the reported table, the renderers."""

from __future__ import annotations

import dis
import json
import math
import sys

import pytest

from passkt import claims as C

DROP = object()  # mutation sentinel: delete the key


def _ci(d: dict, key: str, v: float, lo: float, hi: float) -> None:
    d[key], d[key + ".ci_low"], d[key + ".ci_high"] = v, lo, hi


def _setdiff(d: dict, prefix: str, gain: int, loss: int, p: float, ci: tuple[float, float]) -> None:
    d.update(
        {
            f"{prefix}.gained": gain,
            f"{prefix}.lost": loss,
            f"{prefix}.net": gain - loss,
            f"{prefix}.both": 70,
            f"{prefix}.neither": 30 - gain - loss,
            f"{prefix}.net_ci_low": ci[0],
            f"{prefix}.net_ci_high": ci[1],
            f"{prefix}.mcnemar_p": p,
        }
    )


def stats_all_supported() -> dict:
    """Synthetic stats built so that every claim's rule says 'supported' (bridge flips from sig. - at k=1)."""
    d: dict = {"meta.n": 16, "meta.T_eval": 5, "meta.temperature": 1.0}
    for cat, (k1, kmax, gap) in {
        "math": ((0.0, -0.02, 0.02), (0.0, -0.03, 0.03), (0.0, -0.01, 0.01)),
        "comparison": ((0.01, -0.01, 0.03), (0.02, -0.01, 0.05), (-0.01, -0.03, 0.01)),
        "bridge": ((-0.028, -0.05, -0.005), (0.04, 0.01, 0.07), (0.01, 0.0, 0.02)),
    }.items():
        _ci(d, f"passdiff.{cat}.rl_vs_base.k1", *k1)
        _ci(d, f"passdiff.{cat}.rl_vs_base.kmax", *kmax)
        _ci(d, f"gapwiden.{cat}.rl_vs_base", *gap)
        d[f"meta.n_problems.{cat}"] = 100
    _setdiff(d, "setdiff.bridge.sft_vs_base", 3, 17, 0.001, (-20, -6))
    _setdiff(d, "setdiff.bridge.rl_vs_sft", 19, 1, 1e-4, (10, 26))
    _setdiff(d, "setdiff.bridge.rl_vs_base", 12, 2, 0.01, (3, 17))
    _setdiff(d, "setdiff.bridge.rl_bonus_vs_base", 5, 2, 0.3, (-2, 8))
    _setdiff(d, "setdiff.math.rl_vs_base", 3, 3, 1.0, (-4, 4))
    _setdiff(d, "setdiff.comparison.rl_vs_base", 5, 1, 0.22, (-1, 9))
    _ci(d, "novelty.bridge.rl.frac", 0.5, 0.45, 0.55)
    _ci(d, "novelty.bridge.sft.frac", 0.95, 0.93, 0.97)
    _ci(d, "overlap.bridge.rl.frac", 0.5, 0.45, 0.55)
    _ci(d, "overlap.bridge.sft.frac", 0.05, 0.03, 0.07)
    _ci(d, "diversity.bridge.base.unique", 10.0, 9.0, 11.0)
    _ci(d, "diversity.bridge.rl.unique", 11.0, 10.0, 12.0)
    _ci(d, "diversity.bridge.sft.unique", 4.0, 3.0, 5.0)
    _ci(d, "ppl.all.rl.reasoning_minus_query.nats", 0.39, 0.3, 0.5)
    _ci(d, "ppl.all.rl.query.nats", 0.73, 0.7, 0.76)
    _ci(d, "ppl.all.rl.reasoning.nats", 1.12, 1.05, 1.2)
    for cat, sizes in {
        "math": {"base": 84, "rl": 84},
        "comparison": {"base": 82, "rl": 86, "sft": 85},
        "bridge": {"base": 77, "rl": 81, "sft": 73, "rl_bonus": 78},
    }.items():
        for pol, size in sizes.items():
            d[f"boundary.{cat}.{pol}.size"], d[f"boundary.{cat}.{pol}.n_problems"] = size, 100
            _ci(d, f"boundary.{cat}.{pol}.frac", size / 100, size / 100 - 0.08, size / 100 + 0.06)
            d[f"boundary.{cat}.{pol}.ci_low"], d[f"boundary.{cat}.{pol}.ci_high"] = (
                size / 100 - 0.08,
                size / 100 + 0.06,
            )
            _ci(d, f"pass.{cat}.{pol}.kmax", size / 100, size / 100 - 0.05, size / 100 + 0.05)
            _ci(d, f"pass.{cat}.{pol}.k1", 0.35, 0.3, 0.4)
            d[f"saturation.{cat}.{pol}.T_star"], d[f"saturation.{cat}.{pol}.T_star_k1"] = 2, 3
    _ci(d, "crossover.bridge.rl_vs_base.k", 4.0, 2.0, 8.0)
    d["crossover.bridge.rl_vs_base.nan_frac"] = 0.1
    _ci(d, "swap.bridge.share_plan", 0.5, 0.3, 0.7)
    _ci(d, "swap.bridge.share_reasoning", 0.5, 0.3, 0.7)
    return d


def mutate(d: dict, changes: dict) -> dict:
    out = dict(d)
    for k, v in changes.items():
        if v is DROP:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def claim(i: int) -> C.Claim:
    return next(c for c in C.CLAIMS if c.id == i)


def ci3(key: str, v: float, lo: float, hi: float) -> dict:
    return {key: v, key + ".ci_low": lo, key + ".ci_high": hi}


S, X, INC, N = C.SUPPORTED, C.CONTRADICTED, C.INCONCLUSIVE, C.NOT_EVALUATED
BK, BG = "passdiff.bridge.rl_vs_base.kmax", "gapwiden.bridge.rl_vs_base"
CASES = [
    # claim 1: k-axis separates expansion from efficiency
    (1, {}, S),
    (1, ci3("passdiff.bridge.rl_vs_base.k1", 0.03, 0.01, 0.05), X),  # bridge sig.+ at both k, others n.s.
    (1, ci3("passdiff.bridge.rl_vs_base.k1", 0.0, -0.02, 0.02) | ci3(BK, 0.01, -0.02, 0.04), INC),
    (1, {"passdiff.math.rl_vs_base.k1.ci_low": float("nan")}, N),
    # claim 2: bridge expansion with widening gap
    (2, {}, S),
    (2, ci3(BK, -0.04, -0.07, -0.01), X),
    (2, ci3(BG, -0.03, -0.05, -0.01), X),  # gap significantly closing
    (2, ci3(BK, 0.03, -0.01, 0.07), INC),
    (2, ci3(BG, -0.01, -0.03, 0.01), INC),  # RL ahead, gap shrinking but not significantly
    (2, {BG: DROP}, N),
    # claim 3: specific to compositional tasks
    (3, {}, S),
    (3, ci3("passdiff.math.rl_vs_base.kmax", 0.03, 0.01, 0.05), X),
    (
        3,
        ci3("passdiff.comparison.rl_vs_base.kmax", 0.04, 0.01, 0.07)
        | ci3("gapwiden.comparison.rl_vs_base", 0.01, -0.01, 0.03),
        X,
    ),
    (3, ci3(BK, -0.04, -0.07, -0.01), X),
    (3, ci3(BK, 0.03, -0.01, 0.07), INC),
    (3, {"passdiff.comparison.rl_vs_base.kmax": DROP}, N),
    # claim 4: SFT shrinks, RL vs SFT lopsided
    (4, {}, S),
    (4, {"setdiff.bridge.sft_vs_base.net": 5, "setdiff.bridge.sft_vs_base.mcnemar_p": 0.01}, X),
    (4, {"setdiff.bridge.rl_vs_sft.gained": 1, "setdiff.bridge.rl_vs_sft.lost": 12}, X),
    (4, {"setdiff.bridge.sft_vs_base.mcnemar_p": 0.2}, INC),
    (4, {"setdiff.bridge.rl_vs_sft.mcnemar_p": float("nan")}, N),
    # claim 5: RL reweights, SFT replaces
    (5, {}, S),
    (5, ci3("diversity.bridge.rl.unique", 5.0, 4.0, 6.0), X),
    (5, ci3("novelty.bridge.rl.frac", 0.99, 0.98, 1.0), X),
    (5, ci3("novelty.bridge.rl.frac", 0.9, 0.85, 0.94), INC),
    (5, {"diversity.bridge.sft.unique.ci_high": DROP}, N),
    # claim 6: reasoning nats > query nats
    (6, {}, S),
    (6, ci3("ppl.all.rl.reasoning_minus_query.nats", -0.2, -0.3, -0.1), X),
    (6, ci3("ppl.all.rl.reasoning_minus_query.nats", 0.05, -0.05, 0.15), INC),
    (6, {"ppl.all.rl.query.nats": DROP}, N),
    # claim 7: the bonus is not needed
    (7, {}, S),
    (
        7,
        {
            "setdiff.bridge.rl_vs_base.mcnemar_p": 0.4,
            "setdiff.bridge.rl_bonus_vs_base.net": 10,
            "setdiff.bridge.rl_bonus_vs_base.mcnemar_p": 0.001,
        },
        X,
    ),
    (7, {"setdiff.bridge.rl_bonus_vs_base.net": 15}, INC),  # plain expands, bonus adds more
    (7, {"setdiff.bridge.rl_vs_base.mcnemar_p": 0.22}, INC),  # the paper's own +5/-1 is not significant
    (7, {"setdiff.bridge.rl_bonus_vs_base.net": DROP}, N),
]


@pytest.mark.parametrize("cid,changes,expected", CASES)
def test_rule_verdicts(cid, changes, expected):
    v = claim(cid).decide(mutate(stats_all_supported(), changes))
    assert v.verdict == expected, v.explanation
    if expected == N:
        assert next(iter(changes)) in v.explanation and v.value is None
    else:
        assert v.explanation and v.value is not None


def test_every_verdict_reached_for_every_claim():
    reached = {(cid, exp) for cid, _, exp in CASES}
    for c in C.CLAIMS:
        for verdict in C.VERDICTS:
            assert (c.id, verdict) in reached, (c.id, verdict)


@pytest.mark.parametrize("c", C.CLAIMS, ids=lambda c: f"claim{c.id}")
def test_keys_are_exactly_what_decide_needs(c):
    full = stats_all_supported()
    only = {k: full[k] for k in c.keys}
    assert c.decide(only).verdict == S  # nothing outside keys is read
    for k in c.keys:  # and every listed key is checked
        v = c.decide(mutate(only, {k: DROP}))
        assert v.verdict == N and k in v.explanation


def test_claim_texts_and_ids():
    assert [c.id for c in C.CLAIMS] == list(range(1, 8))
    for c in C.CLAIMS:
        assert c.statement and c.paper_evidence and c.statistic and c.rule and c.keys
    assert C.ALPHA == 0.05


def test_values_and_intervals_come_from_stats():
    v = claim(2).decide(stats_all_supported())
    assert v.value == pytest.approx(0.04) and v.interval == (0.01, 0.07)
    assert "+0.040" in v.explanation
    v4 = claim(4).decide(stats_all_supported())
    assert v4.value == -14 and v4.interval == (-20, -6) and "19/1" in v4.explanation
    assert claim(7).decide(stats_all_supported()).value == 10 - 3


def test_evaluate_rows():
    rows = C.evaluate(stats_all_supported())
    assert [r["id"] for r in rows] == list(range(1, 8))
    assert all(r["verdict"] == S for r in rows)
    assert rows[1]["ci_low"] == 0.01 and rows[0]["ci_low"] is None
    rows = C.evaluate({})
    assert all(r["verdict"] == N for r in rows)


# ----------------------------------------------------------------------------- decision thresholds

# Every comparison in every rule, with the statistic it reads exactly on the boundary and just either side of it
# (EPS; one for counts). Cases are changes to stats_all_supported(); claim 1's start from NS1 (nothing significant).
EPS = 1e-9
A = C.ALPHA
NS1 = {
    k: v
    for cat in C.CATEGORIES
    for at in ("k1", "kmax")
    for k, v in ci3(f"passdiff.{cat}.rl_vs_base.{at}", 0.0, -0.02, 0.02).items()
}
P_UP, G_NS = (0.04, 0.01, 0.07), (0.01, -0.01, 0.02)  # dPass@kmax significantly above 0; gap change n.s.
EXPANSION = [  # (name, value, expansion_sign below / on / above, (dPass@kmax, gap change) as (value, ci_low, ci_high))
    ("dpass.ci_low", 0.0, (0, 0, 1), lambda x: ((0.04, x, 0.07), G_NS)),
    ("dpass.ci_high", 0.0, (-1, 0, 0), lambda x: ((-0.04, -0.07, x), G_NS)),
    ("gap", 0.0, (0, 1, 1), lambda x: (P_UP, (x, -0.01, 0.02))),
    ("gap.ci_high", 0.0, (-1, 0, 0), lambda x: (P_UP, (-0.02, -0.03, x))),
]
SFT, RVS = "setdiff.bridge.sft_vs_base", "setdiff.bridge.rl_vs_sft"
NRL, DRL, DSFT = "novelty.bridge.rl.frac", "diversity.bridge.rl.unique", "diversity.bridge.sft.unique"
PPL = "ppl.all.rl.reasoning_minus_query.nats"
PLAIN, BONUS = "setdiff.bridge.rl_vs_base", "setdiff.bridge.rl_bonus_vs_base"


def _around(cid: int, name: str, at: float, verdicts: tuple, changes, step: float = EPS) -> list:
    """Three cases: the value ``at`` - step, ``at``, ``at`` + step; ``changes(value)`` the stats they change."""
    return [
        pytest.param(cid, changes(x), v, id=f"claim{cid}-{name}-{where}")
        for x, v, where in zip((at - step, at, at + step), verdicts, ("below", "on", "above"))
    ]


def _low(key: str, base: dict | None = None):
    """Changes that put ``key``'s CI low end at x (a positive estimate), on top of ``base``."""
    return lambda x: (base or {}) | ci3(key, 0.01, x, 0.02)


def _high(key: str, base: dict | None = None):
    """Changes that put ``key``'s CI high end at x (a negative estimate), on top of ``base``."""
    return lambda x: (base or {}) | ci3(key, -0.01, -0.02, x)


def _expansion(cat: str, pair):
    """Changes that set ``cat``'s dPass@kmax and gap change to ``pair(x)``."""
    return lambda x: ci3(f"passdiff.{cat}.rl_vs_base.kmax", *pair(x)[0]) | ci3(f"gapwiden.{cat}.rl_vs_base", *pair(x)[1])


def _claim1() -> list:
    """Each category's k=1 and kmax intervals against 0: alone (a change: supported), and with the other k already
    significant in the same direction (no change anywhere: contradicted)."""
    out = []
    for cat in C.CATEGORIES:
        for at, other in (("k1", "kmax"), ("kmax", "k1")):
            key, oth = f"passdiff.{cat}.rl_vs_base.{at}", f"passdiff.{cat}.rl_vs_base.{other}"
            up, down = NS1 | ci3(oth, 0.01, 0.005, 0.02), NS1 | ci3(oth, -0.01, -0.02, -0.005)
            out += _around(1, f"{key}.ci_low", 0.0, (INC, INC, S), _low(key, NS1))
            out += _around(1, f"{key}.ci_high", 0.0, (S, INC, INC), _high(key, NS1))
            out += _around(1, f"{key}.ci_low.{other}+", 0.0, (S, S, X), _low(key, up))
            out += _around(1, f"{key}.ci_high.{other}-", 0.0, (X, S, S), _high(key, down))
    return out


def _claims23() -> list:
    """Claim 2's expansion test on bridge (claims 2 and 3) and on comparison (claim 3), and claim 3's math CI."""
    out = []
    for name, at, signs, pair in EXPANSION:
        bridge = [{1: S, -1: X, 0: INC}[s] for s in signs]
        out += _around(2, f"bridge.{name}", at, bridge, _expansion("bridge", pair))
        out += _around(3, f"bridge.{name}", at, bridge, _expansion("bridge", pair))
        # comparison expanding too contradicts claim 3; not expanding (either way) leaves bridge's verdict
        comparison = [{1: X, -1: S, 0: S}[s] for s in signs]
        out += _around(3, f"comparison.{name}", at, comparison, _expansion("comparison", pair))
    out += _around(3, "math.ci_low", 0.0, (S, S, X), _low("passdiff.math.rl_vs_base.kmax"))
    out += _around(3, "math.ci_high", 0.0, (X, S, S), _high("passdiff.math.rl_vs_base.kmax"))
    return out


THRESHOLDS = [
    *_claim1(),
    *_claims23(),
    # claim 4 (SFT vs base net -14, p 0.001; RL vs SFT 19/1, p 1e-4)
    *_around(4, "sft.net", 0, (S, INC, X), lambda x: {f"{SFT}.net": x}, step=1),
    *_around(4, "sft.p", A, (S, INC, INC), lambda x: {f"{SFT}.mcnemar_p": x}),
    *_around(4, "sft.p.net+", A, (X, INC, INC), lambda x: {f"{SFT}.net": 5, f"{SFT}.mcnemar_p": x}),
    *_around(4, "rvs.gained-lost", 0, (X, INC, S), lambda x: {f"{RVS}.gained": 5 + x, f"{RVS}.lost": 5}, step=1),
    *_around(4, "rvs.p", A, (S, INC, INC), lambda x: {f"{RVS}.mcnemar_p": x}),
    *_around(4, "rvs.p.lost", A, (X, INC, INC), lambda x: {f"{RVS}.gained": 1, f"{RVS}.lost": 12, f"{RVS}.mcnemar_p": x}),
    # claim 5 (novelty RL [0.45, 0.55], SFT [0.93, 0.97]; unique per problem base [9, 11], RL [10, 12], SFT [3, 5])
    *_around(5, "novelty.rl.ci_high", 0.93, (S, INC, INC), lambda x: {f"{NRL}.ci_high": x}),
    *_around(5, "novelty.rl.ci_low", 0.97, (INC, INC, X), lambda x: ci3(NRL, 0.985, x, 1.0)),
    *_around(5, "diversity.rl.ci_high", 9.0, (X, S, S), lambda x: ci3(DRL, 8.0, 7.0, x)),
    *_around(5, "diversity.sft.ci_high", 9.0, (S, INC, INC), lambda x: {f"{DSFT}.ci_high": x}),
    *_around(5, "diversity.sft.ci_low", 11.0, (INC, INC, X), lambda x: ci3(DSFT, 12.0, x, 13.0)),
    # claim 6
    *_around(6, "ci_low", 0.0, (INC, INC, S), _low(PPL)),
    *_around(6, "ci_high", 0.0, (X, INC, INC), _high(PPL)),
    # claim 7 (plain RL net 10, p 0.01; RL + bonus net 3, p 0.3)
    *_around(7, "plain.net", 0, (INC, INC, S), lambda x: {f"{PLAIN}.net": x, f"{BONUS}.net": -5}, step=1),
    *_around(7, "plain.p", A, (S, INC, INC), lambda x: {f"{PLAIN}.mcnemar_p": x}),
    *_around(7, "bonus.net-plain.net", 10, (S, S, INC), lambda x: {f"{BONUS}.net": x}, step=1),
    *_around(7, "bonus.net.alone", 0, (INC, INC, X),
             lambda x: {f"{PLAIN}.mcnemar_p": 0.4, f"{BONUS}.net": x, f"{BONUS}.mcnemar_p": 0.01}, step=1),
    *_around(7, "bonus.p.alone", A, (X, INC, INC), lambda x: {f"{PLAIN}.mcnemar_p": 0.4, f"{BONUS}.mcnemar_p": x}),
    *_around(7, "plain.net.bonus-expands", 0, (X, X, INC),
             lambda x: {f"{PLAIN}.net": x, f"{BONUS}.net": 3, f"{BONUS}.mcnemar_p": 0.01}, step=1),
]


@pytest.mark.parametrize("cid,changes,expected", THRESHOLDS)
def test_rule_thresholds(cid, changes, expected):
    v = claim(cid).decide(mutate(stats_all_supported(), changes))
    assert v.verdict == expected, v.explanation


def _branches(func) -> set[tuple]:
    """Both outcomes of every conditional jump in ``func``'s bytecode: (code, jump offset, next offset)."""
    ins = list(dis.get_instructions(func))
    return {
        (func.__code__, a.offset, to)
        for a, b in zip(ins, ins[1:])
        if "IF" in a.opname or a.opname == "FOR_ITER"
        for to in (a.argval, b.offset)
    }


def test_every_branch_of_every_rule_is_taken():
    """Each comparison, each part of an ``and`` / ``or`` and each loop in the rules (and the helpers they decide
    with) goes both ways in CASES and THRESHOLDS: no verdict is reached by one route only."""
    funcs = [getattr(C, f"_rule{c.id}") for c in C.CLAIMS] + [C.expansion_sign, C.sig_sign, C._expands]
    want = set().union(*map(_branches, funcs))
    codes, taken = {f.__code__ for f in funcs}, set()

    def call(frame, event, arg):
        if frame.f_code not in codes:
            return None
        frame.f_trace_opcodes, last = True, [None]

        def step(frame, event, arg):
            if event == "opcode":
                taken.add((frame.f_code, last[0], frame.f_lasti))
                last[0] = frame.f_lasti
            return step

        return step

    before = sys.gettrace()
    sys.settrace(call)
    try:
        for cid, changes, _ in CASES + [p.values for p in THRESHOLDS]:
            claim(cid).decide(mutate(stats_all_supported(), changes))
    finally:
        sys.settrace(before)
    missing = want - taken
    assert want and not missing, sorted(f"{code.co_name} offset {a} -> {b}" for code, a, b in missing)
# ----------------------------------------------------------------------------- reported numbers

PAPER_NUMBERS = [
    # boundary sizes
    "84/100",
    "84/100",
    "82/100",
    "86/100",
    "85/100",
    "77/100",
    "81/100",
    "73/100",
    # set differences
    "+3 / -3",
    "+5 / -1",
    "+5 / -1",
    "+3 / -7",
    "9 / 1",
    # Pass@(64,5)
    "0.82",
    "0.86",
    "0.85",
    "0.77",
    "0.81",
    "0.73",
    # C curve at k=1, crossover, saturation
    "0.363",
    "0.335",
    "≈4",
    "2",
    # perplexity
    "2.07",
    "3.08",
    "0.73",
    "1.12",
    # diversity and novelty
    "40.1",
    "45.5",
    "14.7",
    "97.7%",
    "83.9% (novelty or overlap?)",
    # swap, ablation
    "~half",
    "~half",
    "0.78",
    "0.81",
    "+1",
    "+4",
]


def test_reported_covers_every_paper_number():
    papers = [r.paper for r in C.REPORTED]
    for p in set(PAPER_NUMBERS):
        assert papers.count(p) >= PAPER_NUMBERS.count(p), p
    assert {r.kind for r in C.REPORTED} <= {"boundary", "setdiff", "value", "exp", "ratio"}


def test_compare_reported_values():
    s = stats_all_supported()
    s["boundary.bridge.rl.size"], s["boundary.bridge.rl.n_problems"] = 40, 50
    rows = {r["quantity"]: r for r in C.compare_reported(s)}
    assert len(rows) == len(C.REPORTED)
    b = rows["boundary size, bridge, rl"]
    assert b["ours"] == pytest.approx(0.8) and b["raw"] == "40/50" and b["paper_value"] == 0.81
    assert rows["boundary size, math, base"]["at"] == "n=16, T=0"
    p = rows["Pass@(64,5), bridge, rl"]
    assert p["at"] == "k=16, T=5" and p["ci_low"] == pytest.approx(0.76)
    assert p["paper_in_ci"] is True
    sd = rows["set difference, bridge, sft_vs_base"]
    assert sd["ours_text"] == "+3 / -17" and sd["ours"] == -14 and "p=0.001" in sd["raw"]
    e = rows["perplexity, RL successes, query tokens"]
    assert e["ours"] == pytest.approx(math.exp(0.73)) and e["ci_high"] == pytest.approx(math.exp(0.76))
    assert rows["diversity ratio base / SFT"]["ours"] == pytest.approx(2.5)
    assert "overlap = 0.050" in rows["novelty of query sequences vs base, SFT"]["raw"]
    assert rows["crossover k, bridge, RL vs base"]["raw"] == "nan_frac = 0.100"


def test_compare_reported_missing_and_outside_ci():
    s = mutate(
        stats_all_supported(),
        {
            "swap.bridge.share_plan": DROP,
            "meta.n": DROP,
            "pass.bridge.base.k1": 0.2,
            "pass.bridge.base.k1.ci_high": 0.25,
        },
    )
    rows = {r["quantity"]: r for r in C.compare_reported(s)}
    miss = rows["swap: share of RL's gain from the search plan"]
    assert miss["ours"] is None and "swap.bridge.share_plan" in miss["ours_text"]
    assert rows["Pass@(1,5), bridge, base"]["paper_in_ci"] is False
    assert rows["Pass@(64,5), bridge, rl"]["at"] == "k=?, T=5"


# ----------------------------------------------------------------------------- rendering

FIGS = [("Pass@(k,5) on bridge", "figures/05_curves/bridge.png")]


def _report(claim_rows=None):
    s = mutate(
        stats_all_supported(),
        ci3("ppl.all.rl.reasoning_minus_query.nats", 0.05, -0.05, 0.15)
        | {BG: DROP, "setdiff.bridge.sft_vs_base.net": 5, "setdiff.bridge.sft_vs_base.mcnemar_p": 0.01},
    )
    claim_rows = claim_rows or C.evaluate(s)
    md = C.render_markdown(claim_rows, C.compare_reported(s), "tiny", {"n": 16, "T_eval": 5}, FIGS)
    return claim_rows, md, C.render_html(md)


def test_markdown_and_html_contain_all_claims_and_verdicts():
    rows, md, page = _report()
    assert {r["verdict"] for r in rows} == set(C.VERDICTS)  # all four verdicts appear in this report
    assert "tiny" in md and "| n | 16 |" in md
    assert "![Pass@(k,5) on bridge](figures/05_curves/bridge.png)" in md
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert '<img src="figures/05_curves/bridge.png"' in page
    for r in rows:
        assert f"| {r['id']} |" in md and f"**{r['verdict']}**" in md
        assert f"<td>{r['id']}</td>" in page and f"<strong>{r['verdict']}</strong>" in page
    assert "<h1>" in page and "<h2>Claims</h2>" in page and "<table>" in page
    # tables keep their shape: every body row has as many cells as the header
    for table in page.split("<table>")[1:]:
        head = table.split("</thead>")[0].count("<th>")
        for tr in table.split("<tbody>")[1].split("</tbody>")[0].split("</tr>")[:-1]:
            assert tr.count("<td>") == head


def test_html_escapes_and_pipes():
    rows = C.evaluate(stats_all_supported())
    rows[0] = dict(rows[0], value="<b>x|y</b> & **z**", explanation="a < b")
    _, md, page = _report(rows)
    assert "<b>x" not in page and "&lt;b&gt;x|y&lt;/b&gt; &amp; **z**" in page
    assert "a &lt; b" in page
    assert "<td>" in page and page.count("<table>") == 3


def test_verdicts_json():
    rows = C.evaluate(stats_all_supported())
    rows[1] = dict(rows[1], verdict=C.NOT_EVALUATED, value=float("nan"))
    out = C.verdicts_json(rows)
    json.dumps(out, allow_nan=False)
    assert out["claims"]["2"] == {"verdict": C.NOT_EVALUATED, "value": None}
    assert out["claims"]["1"]["verdict"] == S and out["claims"]["4"]["value"] == -14
    assert out["counts"] == {"supported": 6, "contradicted": 0, "inconclusive": 0, "not_evaluated": 1}
