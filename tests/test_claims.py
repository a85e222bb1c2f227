"""Claims rules on constructed statistics with a known answer (each verdict, the issue's counter-examples, every
margin and level on both sides), the paper's numbers as data, the calibration, and the report."""

from __future__ import annotations

import json
import math
import re

import pytest

from passkt import claims as C
from passkt import paper_numbers as PN
from passkt import report as R
from passkt.paths import Paths

DROP = object()  # mutation sentinel: delete the key
NUMBERS = PN.load(Paths.at(".").paper_numbers)


def eff(key: str, est: float, half: float, tost: float | None = None, p: float | None = None) -> dict:
    """An effect with interval est ± half and TOST interval est ± tost (default 0.8 half)."""
    tost = 0.8 * half if tost is None else tost
    d = {key: est, key + ".ci_low": est - half, key + ".ci_high": est + half}
    d |= {key + ".tost_low": est - tost, key + ".tost_high": est + tost}
    return d | ({} if p is None else {key + ".p": p})


def setdiff(prefix: str, gained: int, lost: int, p: float, seeds: int = 1, ci: tuple | None = None) -> dict:
    """A set difference: one training replicate (the net's exact McNemar p decides; ``mcnemar_p`` the same value),
    or ``seeds`` replicates with the net's two-level interval ``ci`` (which then decides; p only descriptive)."""
    net = gained - lost
    lo, hi = ci if ci is not None else (net - 1, net + 1)
    return {f"{prefix}.gained": gained, f"{prefix}.lost": lost, f"{prefix}.net": net, f"{prefix}.mcnemar_p": p,
            f"{prefix}.net_p": p, f"{prefix}.n_seeds": float(seeds), f"{prefix}.net_ci_low": lo,
            f"{prefix}.net_ci_high": hi}


def stats_all_supported() -> dict:
    """Synthetic stats built so that every claim's rule says 'supported'."""
    d: dict = {"meta.ci": 0.95, "meta.mechanism_ci": 0.95, "meta.k_gap": 8, "meta.n": 16, "meta.T_eval": 5}
    d |= eff("split.math.rl_vs_base", 0.0, 0.02, p=1.0) | eff("split.comparison.rl_vs_base", 0.0, 0.02, p=1.0)
    d |= eff("split.bridge.rl_vs_base", 0.10, 0.05, p=0.001)
    d |= eff("passdiff.bridge.rl_vs_base.kmax", 0.08, 0.05) | eff("gapwiden.bridge.rl_vs_base", 0.02, 0.03, 0.025)
    d |= eff("interaction.rl_vs_base.bridge_minus_comparison", 0.08, 0.06)
    d |= eff("passdiff.math.rl_vs_base.kmax", 0.0, 0.03) | eff("passdiff.comparison.rl_vs_base.kmax", 0.0, 0.05)
    d |= setdiff("setdiff.bridge.sft_vs_base", 3, 17, 0.001) | setdiff("setdiff.bridge.rl_vs_sft", 19, 1, 1e-4)
    d |= eff("passdiff.bridge.sft_vs_base.kmax", -0.14, 0.07) | eff("passdiff.bridge.rl_vs_sft.kmax", 0.18, 0.07)
    d |= eff("novelty_excess.bridge.rl.frac", 0.0, 0.03) | eff("novelty_excess.bridge.sft.frac", 0.6, 0.05)
    d |= eff("diversity_diff.bridge.rl_vs_base.share", 0.02, 0.03)
    d |= eff("diversity_diff.bridge.sft_vs_base.share", -0.3, 0.05)
    d |= eff("ppl_did.all.rl_vs_base.nats", 0.2, 0.1)
    d |= {"ppl_did.all.rl.gap.nats": 0.4, "ppl_did.all.base.gap.nats": 0.2}
    d |= setdiff("setdiff.bridge.rl_vs_base", 12, 2, 0.01) | setdiff("setdiff.bridge.rl_vs_rl_bonus", 6, 4, 0.75)
    d |= eff("passdiff.bridge.rl_vs_rl_bonus.kmax", 0.02, 0.04)
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


def decide(cid: int, changes: dict | None = None) -> C.Verdict:
    return claim(cid).decide(mutate(stats_all_supported(), changes or {}))


S, X, INC, N = C.SUPPORTED, C.CONTRADICTED, C.INCONCLUSIVE, C.NOT_EVALUATED
SPLIT_B, SPLIT_C, SPLIT_M = (f"split.{c}.rl_vs_base" for c in ("bridge", "comparison", "math"))
D_KMAX, GAP = "passdiff.bridge.rl_vs_base.kmax", "gapwiden.bridge.rl_vs_base"
INTER, MATH = "interaction.rl_vs_base.bridge_minus_comparison", "passdiff.math.rl_vs_base.kmax"
SFT, RVS = "setdiff.bridge.sft_vs_base", "setdiff.bridge.rl_vs_sft"
NOV_RL, NOV_SFT = "novelty_excess.bridge.rl.frac", "novelty_excess.bridge.sft.frac"
DIV_RL, DIV_SFT = "diversity_diff.bridge.rl_vs_base.share", "diversity_diff.bridge.sft_vs_base.share"
DID = "ppl_did.all.rl_vs_base.nats"
PLAIN, VS_BONUS, D_BONUS = "setdiff.bridge.rl_vs_base", "setdiff.bridge.rl_vs_rl_bonus", "passdiff.bridge.rl_vs_rl_bonus.kmax"
ALL_EQUIV = eff(SPLIT_B, 0.0, 0.02, p=1.0)  # with math and comparison: the split equivalent to 0 everywhere

CASES = [
    # claim 1: expansion (dPass@kmax) separates from efficiency (dPass@1 on the problems both solve)
    (1, {}, S),
    (1, ALL_EQUIV, X),
    (1, eff(SPLIT_B, 0.04, 0.05, p=0.1), INC),
    (1, {SPLIT_M + ".p": DROP}, N),
    # claim 2: RL above base at kmax on bridge, the gap not closing
    (2, {}, S),
    (2, eff(D_KMAX, -0.08, 0.05), X),
    (2, eff(GAP, -0.05, 0.03), X),  # the gap significantly closing: Yue et al.'s pattern
    (2, eff(D_KMAX, 0.0, 0.03), X),  # RL equivalent to base at kmax
    (2, eff(D_KMAX, 0.04, 0.05), INC),
    (2, eff(GAP, -0.01, 0.03), INC),  # RL ahead, the gap may close by more than the margin
    (2, {"meta.k_gap": DROP}, N),
    # claim 3: bridge-specific gain, math inert
    (3, {}, S),
    (3, eff(INTER, -0.1, 0.05), X),
    (3, eff(INTER, 0.0, 0.03), X),  # bridge and comparison gain the same
    (3, eff(MATH, 0.09, 0.03), X),  # RL moves math by more than the margin
    (3, eff(MATH, 0.04, 0.03), INC),  # math significantly moved, but not shown beyond the margin, nor inert
    (3, eff(INTER, 0.04, 0.06), INC),
    (3, {INTER + ".tost_low": float("nan")}, N),
    # claim 4: SFT shrinks, RL vs SFT lopsided
    (4, {}, S),
    (4, setdiff(SFT, 17, 3, 0.001), X),
    (4, setdiff(RVS, 1, 19, 1e-4), X),
    (4, setdiff(SFT, 8, 10, 0.8) | eff("passdiff.bridge.sft_vs_base.kmax", -0.02, 0.03), X),  # equivalent sizes
    (4, setdiff(SFT, 8, 12, 0.5) | eff("passdiff.bridge.sft_vs_base.kmax", -0.04, 0.07), INC),
    (4, {RVS + ".mcnemar_p": float("nan")}, N),
    # claim 5: RL reweights, SFT replaces
    (5, {}, S),
    (5, eff(NOV_RL, 0.3, 0.05), X),  # RL novel beyond sampling noise and the margin
    (5, eff(DIV_RL, -0.3, 0.05), X),  # RL collapses
    (5, eff(NOV_SFT, 0.0, 0.02), X),  # SFT shown not novel
    (5, eff(DIV_SFT, 0.0, 0.02), X),  # SFT keeps diversity
    (5, eff(NOV_RL, 0.05, 0.04), INC),
    (5, {DIV_SFT + ".ci_high": DROP}, N),
    (5, {"meta.mechanism_ci": 0.9}, N),  # intervals at another level than the pass statistics
    # claim 6: difference in differences of surprisal, tags excluded
    (6, {}, S),
    (6, eff(DID, -0.2, 0.1), X),
    (6, eff(DID, 0.0, 0.03), X),  # equivalent within the margin
    (6, eff(DID, 0.03, 0.05), INC),
    (6, {"ppl_did.all.base.gap.nats": DROP}, N),
    # claim 7: the bonus is not needed
    (7, {}, S),
    (7, setdiff(PLAIN, 5, 3, 0.7) | setdiff(VS_BONUS, 1, 9, 0.02), X),
    (7, setdiff(PLAIN, 5, 3, 0.7) | eff(D_BONUS, -0.1, 0.05), X),
    (7, setdiff(VS_BONUS, 1, 9, 0.02), INC),  # plain expands, the bonus adds more
    (7, setdiff(PLAIN, 5, 1, 0.22), INC),  # the paper's own +5/-1 is not significant
    (7, {VS_BONUS + ".lost": DROP}, N),
]


@pytest.mark.parametrize("cid,changes,expected", CASES)
def test_rule_verdicts(cid, changes, expected):
    v = decide(cid, changes)
    assert v.verdict == expected, v.explanation


def test_every_verdict_reached_for_every_claim():
    reached = {(cid, exp) for cid, _, exp in CASES}
    for c in C.CLAIMS:
        assert {v for cid, v in reached if cid == c.id} == set(C.VERDICTS), c.id


# ----------------------------------------------------------------------------- the issue's counter-examples


def test_claim1_significance_classes_are_not_effects():
    """+0.03 (significant) at k = 1 and +0.05 (not significant) at kmax is a split of +0.02 with an interval
    through 0: not a separation (was 'supported')."""
    v = decide(1, eff(SPLIT_B, 0.02, 0.05, p=0.45))
    assert v.verdict == INC, v.explanation


def test_claim1_rl_ahead_at_both_k_is_not_a_contradiction():
    """RL ahead at k = 1 (+0.03) and further ahead at kmax (+0.15): the metric separates them (was 'contradicted')."""
    v = decide(1, eff(SPLIT_B, 0.12, 0.04, p=0.001))
    assert v.verdict == S and v.value == pytest.approx(0.12)


def test_claim3_an_interval_containing_zero_is_not_task_specificity():
    """Comparison +0.15 (not significant) next to bridge +0.18 (significant): the interaction +0.03 has an interval
    through 0, so task specificity is not shown (was 'supported')."""
    changes = eff("passdiff.comparison.rl_vs_base.kmax", 0.15, 0.16) | eff(D_KMAX, 0.18, 0.1)
    v = decide(3, changes | eff(INTER, 0.03, 0.19))
    assert v.verdict == INC, v.explanation


def test_claim7_a_one_problem_swing_decides_nothing():
    """Bonus net +9 vs plain +10 (a one-problem swing) with the paired difference's interval reaching past the
    margin: inconclusive, not 'supported' from point estimates."""
    v = decide(7, setdiff(VS_BONUS, 4, 3, 1.0) | eff(D_BONUS, 0.01, 0.08))
    assert v.verdict == INC, v.explanation


def test_alpha_is_read_from_the_interval_level():
    """McNemar p = 0.07: significant at ci = 0.90 (alpha 0.10), not at ci = 0.95."""
    changes = setdiff(SFT, 4, 12, 0.07)
    assert decide(4, changes).verdict == INC
    assert decide(4, changes | {"meta.ci": 0.90, "meta.mechanism_ci": 0.90}).verdict == S
    assert not hasattr(C, "ALPHA")


def test_hierarchical_interval_replaces_the_per_run_one():
    """A seeds x problems interval under .hier is what the rule reads, and the row says so."""
    hier = {D_KMAX + ".hier" + p: v for p, v in zip(C.EFFECT_PARTS, (-0.02, 0.18, 0.0, 0.16))}
    stats = mutate(stats_all_supported(), hier)
    assert claim(2).decide(stats).verdict == INC  # per run it would be supported
    row = next(r for r in C.evaluate(stats) if r["id"] == 2)
    assert row["uncertainty"] == "training seeds, problems and rollouts"
    assert next(r for r in C.evaluate(stats) if r["id"] == 4)["uncertainty"].startswith("problems and rollouts")


# ----------------------------------------------------------------------------- margins and levels, both sides

EPS = 1e-9


def _around(cid: int, name: str, at: float, verdicts: tuple, changes) -> list:
    """Three cases: the statistic at ``at`` - EPS, ``at``, ``at`` + EPS; ``changes(x)`` the stats they change."""
    return [
        pytest.param(cid, changes(x), v, id=f"claim{cid}-{name}-{where}")
        for x, v, where in zip((at - EPS, at, at + EPS), verdicts, ("below", "on", "above"))
    ]


def _set(key: str, part: str, others: dict | None = None):
    return lambda x: (others or {}) | {key + part: x}


M1, M2, M3 = C.MARGIN_SPLIT, C.MARGIN_GAP, C.MARGIN_TASK
THRESHOLDS = [
    # claim 1: p against alpha / 3 and |split| against the margin; equivalence at the margin
    *_around(1, "p", 0.05 / 3, (S, INC, INC), _set(SPLIT_B, ".p")),
    *_around(1, "estimate", M1, (INC, INC, S), _set(SPLIT_B, "")),
    *_around(1, "estimate.negative", -M1, (S, INC, INC), _set(SPLIT_B, "")),
    *_around(1, "tost_high", M1, (X, INC, INC), _set(SPLIT_B, ".tost_high", ALL_EQUIV)),
    # claim 2
    *_around(2, "dpass.ci_low", 0.0, (INC, INC, S), _set(D_KMAX, ".ci_low")),
    *_around(2, "gap.tost_low", -M2, (INC, INC, S), _set(GAP, ".tost_low")),
    *_around(2, "gap.ci_high", -M2, (X, INC, INC), _set(GAP, ".ci_high", eff(GAP, -0.04, 0.03))),
    # claim 3
    *_around(3, "interaction.ci_low", 0.0, (INC, INC, S), _set(INTER, ".ci_low")),
    *_around(3, "math.tost_high", M3, (S, INC, INC), _set(MATH, ".tost_high")),
    *_around(3, "math.ci_low", M3, (INC, INC, X), _set(MATH, ".ci_low", eff(MATH, 0.09, 0.03))),
    # claim 4
    *_around(4, "sft.p", 0.05, (S, INC, INC), _set(SFT, ".net_p")),
    *_around(4, "rvs.p", 0.05, (S, INC, INC), _set(RVS, ".net_p")),
    *_around(4, "sft.tost_low", -C.MARGIN_BOUNDARY, (INC, INC, X),
             _set("passdiff.bridge.sft_vs_base.kmax", ".tost_low", setdiff(SFT, 8, 12, 0.5) | eff("passdiff.bridge.sft_vs_base.kmax", -0.02, 0.1, 0.03))),
    # ... with several training replicates the net's two-level interval decides, not the sign-flip p
    *_around(4, "sft.net_ci_high.3seeds", 0.0, (S, INC, INC),
             lambda x: setdiff(SFT, 3, 17, 0.9, seeds=3, ci=(-20.0, x))),
    *_around(4, "rvs.net_ci_low.3seeds", 0.0, (INC, INC, S),
             lambda x: setdiff(RVS, 19, 1, 1e-6, seeds=3, ci=(x, 25.0))),
    # claim 5
    *_around(5, "nov_rl.tost_high", C.MARGIN_STRATEGY, (S, INC, INC), _set(NOV_RL, ".tost_high")),
    *_around(5, "div_rl.tost_low", -C.MARGIN_STRATEGY, (INC, INC, S), _set(DIV_RL, ".tost_low")),
    *_around(5, "nov_sft.ci_low", 0.0, (INC, INC, S), _set(NOV_SFT, ".ci_low")),
    # claim 6
    *_around(6, "ci_low", 0.0, (INC, INC, S), _set(DID, ".ci_low", eff(DID, 0.03, 0.05))),
    *_around(6, "tost_high", C.MARGIN_SURPRISAL, (X, INC, INC), _set(DID, ".tost_high", eff(DID, 0.0, 0.1, 0.03))),
    # claim 7
    *_around(7, "bonus.tost_low", -C.MARGIN_BONUS, (INC, INC, S), _set(D_BONUS, ".tost_low")),
    *_around(7, "plain.p", 0.05, (S, INC, INC), _set(PLAIN, ".net_p")),
    *_around(7, "plain.net_ci_low.3seeds", 0.0, (INC, INC, S),
             lambda x: setdiff(PLAIN, 12, 2, 1e-6, seeds=3, ci=(x, 20.0))),
    *_around(7, "bonus.net_ci_high.3seeds", 0.0, (INC, S, S),
             lambda x: setdiff(VS_BONUS, 1, 9, 1e-6, seeds=3, ci=(-15.0, x)) | eff(D_BONUS, 0.02, 0.04)),
]


# Where a support and a contradiction condition both hold, the rule says contradicted (claims.PRECEDENCE): an
# effect significantly away from 0 but shown smaller than its margin is not the effect the claim states.
OVERLAPS = [
    pytest.param(2, eff(GAP, -0.03, 0.005, 0.004), id="claim2-gap-closes-beyond-its-margin"),
    pytest.param(3, eff(INTER, 0.025, 0.015, 0.012), id="claim3-interaction-significant-but-within-margin"),
    pytest.param(5, eff(NOV_SFT, 0.025, 0.015, 0.012), id="claim5-sft-novelty-significant-but-within-margin"),
    pytest.param(6, eff(DID, 0.02, 0.015, 0.012), id="claim6-significant-but-within-margin"),
]


@pytest.mark.parametrize("cid,changes", OVERLAPS)
def test_contradiction_takes_precedence_over_support(cid, changes):
    v = decide(cid, changes)
    assert v.verdict == X, v.explanation
    assert C.PRECEDENCE in next(c for c in C.CLAIMS if c.id == cid).rule


@pytest.mark.parametrize("cid,changes,expected", THRESHOLDS)
def test_rule_thresholds(cid, changes, expected):
    v = decide(cid, changes)
    assert v.verdict == expected, v.explanation


@pytest.mark.parametrize("c", C.CLAIMS, ids=lambda c: f"claim{c.id}")
def test_keys_are_exactly_what_decide_needs(c):
    """Dropping any listed key makes the rule 'not evaluated' naming it; the rule reads no unlisted key."""
    stats = stats_all_supported()
    for k in c.keys:
        v = c.decide(mutate(stats, {k: DROP}))
        assert v.verdict == N and k in v.explanation, k
    assert c.decide({k: stats[k] for k in c.keys}).verdict == S


def test_evaluate_rows_and_texts():
    rows = C.evaluate(stats_all_supported(), paper=PN.display(NUMBERS))
    assert [r["id"] for r in rows] == list(range(1, 8))
    assert all(r["verdict"] == S for r in rows)
    assert rows[1]["value"] == 0.08 and rows[1]["ci_low"] == pytest.approx(0.03)
    assert "0.363" in rows[0]["paper_evidence"] and "{" not in "".join(r["paper_evidence"] for r in rows)
    assert all(r["uncertainty"] == "problems and rollouts (one training run)" for r in rows)
    assert all(r["verdict"] == N for r in C.evaluate({}))
    for c in C.CLAIMS:  # every margin is written into the rule's text
        assert "Margin" in c.rule


# ----------------------------------------------------------------------------- the paper's numbers


def test_paper_numbers_file():
    ids = {n.id for n in NUMBERS}
    assert len(ids) == len(NUMBERS)
    by = {n.id: n for n in NUMBERS}
    assert by["setdiff.bridge.rl_vs_sft"].counts == {"gained": 9, "lost": 1, "n_problems": 100}
    assert by["boundary.bridge.sft"].compared_value == pytest.approx(0.73)
    assert by["pass1.bridge.base"].value == 0.363
    # the three rows the issue named: no SFT T*, the diversity collapse as the range written, perplexity pooling ours
    assert not any(i.startswith("tstar.") and i.endswith(".sft") for i in ids)
    ratio = by["diversity_ratio.base_over_sft"]
    assert ratio.text == "~2.7–3×" and ratio.value is None and ratio.ours_kind == "none"
    assert "our choice" in by["ppl.rl.query"].ours_at and "not stated" in by["ppl.rl.query"].certainty
    assert all(n.source and n.certainty and n.unit and n.where for n in NUMBERS)


def test_paper_numbers_validation(tmp_path):
    bad = tmp_path / "n.yaml"
    bad.write_text("numbers:\n- {id: a, quantity: q, text: '1', value: 1, unit: u, where: w, source: s, certainty: c,"
                   " ours: {kind: setdiff, keys: [x]}}\n")
    with pytest.raises(ValueError, match="gained, lost and n_problems"):
        PN.load(bad)
    bad.write_text("numbers:\n- {id: a, quantity: q}\n")
    with pytest.raises(ValueError, match="missing field"):
        PN.load(bad)


def test_compare_reported_values():
    s = stats_all_supported() | {"boundary.bridge.rl.size": 40, "boundary.bridge.rl.n_problems": 50}
    s |= {"boundary.bridge.rl.ci_low": 0.7, "boundary.bridge.rl.ci_high": 0.9}
    s |= {"pass.bridge.rl.kmax": 0.8, "pass.bridge.rl.kmax.ci_low": 0.76, "pass.bridge.rl.kmax.ci_high": 0.86}
    s |= {"ppl.all.rl.query.nats": 0.73, "ppl.all.rl.query.nats.ci_low": 0.7, "ppl.all.rl.query.nats.ci_high": 0.76}
    rows = {r["id"]: r for r in PN.compare_reported(s, NUMBERS)}
    assert len(rows) == len(NUMBERS)
    b = rows["boundary.bridge.rl"]
    assert b["ours"] == pytest.approx(0.8) and b["raw"] == "40/50" and b["paper_value"] == 0.81 and b["paper_in_ci"]
    assert rows["boundary.math.base"]["at"] == "n=16, T=0"
    assert rows["pass64.bridge.rl"]["at"] == "k=16, T=5" and rows["pass64.bridge.rl"]["paper_in_ci"] is True
    sd = rows["setdiff.bridge.sft_vs_base"]
    assert sd["ours_text"] == "+3 / -17" and sd["ours"] == -14 and "p=0.001" in sd["raw"]
    assert rows["ppl.rl.query"]["ours"] == pytest.approx(math.exp(0.73))
    assert rows["diversity_ratio.base_over_sft"]["ours_text"] == "not compared"
    assert "missing swap.bridge.plan_effect" in rows["swap.plan"]["ours_text"]
    assert rows["swap.plan"]["paper_value"] is None  # a share next to an absolute part: shown, not compared
    s |= {"saturation.bridge.rl.T_star": 8.0, "saturation.bridge.rl.T_star.censored": 1.0}
    s |= {"saturation.bridge.rl.T_star.ci_low": 3.0, "saturation.bridge.rl.T_star.ci_high": 8.0}
    t = next(r for r in PN.compare_reported(s, NUMBERS) if r["id"] == "tstar.bridge.rl")
    assert t["ours_text"].startswith("≥ 8") and (t["ci_low"], t["ci_high"]) == (3.0, 8.0) and "censored = 1" in t["raw"]


# ----------------------------------------------------------------------------- calibration


def test_paper_stats_follow_from_the_counts():
    s = PN.paper_stats(NUMBERS, n_boot=500, seed=0, ci=0.95)
    assert s["setdiff.bridge.rl_vs_sft.mcnemar_p"] == pytest.approx(2 * 11 / 1024)  # 2 P(X <= 1), X ~ Bin(10, 1/2)
    assert s["passdiff.bridge.sft_vs_base.kmax"] == pytest.approx(-0.04)
    assert s["interaction.rl_vs_base.bridge_minus_comparison"] == 0.0
    lo, hi = s["passdiff.math.rl_vs_base.kmax.ci_low"], s["passdiff.math.rl_vs_base.kmax.ci_high"]
    assert lo < 0 < hi and s["passdiff.math.rl_vs_base.kmax.tost_low"] >= lo


def test_calibration_verdicts_on_the_papers_evidence():
    cal = PN.calibrate(NUMBERS, n_boot=1000, seed=0, ci=0.95)
    assert set(cal) == set(range(1, 8))
    for cid, missing in ((1, "split."), (2, "gapwiden."), (5, "novelty_excess."), (6, "ppl_did."), (7, "rl_vs_rl_bonus")):
        assert cal[cid]["verdict"] == "not computable" and missing in cal[cid]["explanation"], cid
    # claim 4: SFT vs base +3/-7 is not significant (McNemar p = 0.34), so not both parts hold
    assert cal[4]["verdict"] == INC and "p=0.344" in cal[4]["explanation"]
    assert cal[3]["verdict"] in C.VERDICTS


# ----------------------------------------------------------------------------- rendering

FIGS = ["05_pass_at_k/headline_bridge.png", "05_pass_at_k/boundary_table.png", "06_mechanism/swap_grid.png"]
STAGES = ("05_pass_at_k", "06_mechanism")


def _audit(claim_rows=None) -> R.Audit:
    s = mutate(stats_all_supported(), eff(DID, 0.03, 0.05) | {GAP: DROP} | setdiff(SFT, 17, 3, 0.001))
    claim_rows = claim_rows or C.evaluate(s, paper=PN.display(NUMBERS))
    cal = PN.calibrate(NUMBERS, n_boot=200, seed=0, ci=0.95)
    return R.Audit(profile="tiny", claims=claim_rows, reported=PN.compare_reported(s, NUMBERS), settings={"n": 16.0},
                   calibration=cal, notes=["Reward scale: none."], figures=FIGS)


def _report(claim_rows=None, links=R.STAGE_LINKS):
    audit = _audit(claim_rows)
    md, page = R.render(audit, links)
    return audit.claims, md, page


def _layout(root, results: bool) -> None:
    """Empty files where the pipeline (or the publish step, ``results``) puts the figures and notebooks."""
    for rel in FIGS + ["05_pass_at_k/pass_curves.png", "06_mechanism/diversity_novelty.png"]:
        f = root / ("results/figures" if results else "figures") / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        for ext in (".png", ".pdf", ".csv"):
            f.with_suffix(ext).write_text("x")
    for stage in STAGES:
        nb = root / "results/notebooks" / f"{stage}.ipynb" if results else Paths(root).notebook(stage)  # the source
        nb.parent.mkdir(parents=True, exist_ok=True)
        nb.write_text("{}")


def test_markdown_and_html_contain_all_claims_verdicts_and_calibration():
    rows, md, page = _report()
    assert {r["verdict"] for r in rows} == set(C.VERDICTS)  # all four verdicts appear in this report
    assert "tiny" in md and "| n | 16 |" in md and "Reward scale: none." in md
    assert "not computable: the paper's reports do not give" in md
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for r in rows:
        assert f"## Claim {r['id']}: {r['short']}" in md and f"**{r['verdict']}**" in md
    for table in page.split("<table")[1:]:  # every body row has as many cells as the header
        head = table.split("</thead>")[0].count("<th>")
        for tr in table.split("<tbody>")[1].split("</tbody>")[0].split("</tr>")[:-1]:
            assert tr.count("<td>") == head


def test_summary_table_opens_the_report_with_every_claim():
    rows, md, _ = _report()
    summary = md.split("## Summary")[1].split("\n## ")[0]
    assert md.index("## Summary") < md.index("## Contents") < md.index("## Claim 1:")
    lines = [ln for ln in summary.splitlines() if ln.startswith("| [")]
    assert len(lines) == len(rows) == len(C.CLAIMS)
    for r, line in zip(rows, lines):
        assert line.startswith(f"| [{r['id']}](#{R.slug(R._claim_heading(r))}) | {r['short']} | **{r['verdict']}** |")
        if r["verdict"] == N:
            assert "| – |" in line
        else:  # our effect with its interval, signed
            assert C.fmt_number(r["value"], True) in line and C.fmt_number(r["ci_low"], True) in line
        assert R._cell(r["paper_evidence"]) in line and r["effect"] and R._cell(r["effect"]) in line


def test_verdicts_are_coloured_classes_with_their_words():
    rows, _, page = _report()
    for r in rows:
        cls = R.VERDICT_CLASS[r["verdict"]]
        assert f'<strong class="verdict {cls}">{r["verdict"]}</strong>' in page
        assert f".{cls}{{" in page and f".{cls}::before{{content:" in page  # a colour and a mark, besides the word


def test_contents_links_reach_the_headings():
    _, md, page = _report()
    anchors = re.findall(r"\]\(#([^)]+)\)", md)
    assert len(set(anchors)) == len(C.CLAIMS) + 4
    for a in anchors:
        assert f'id="{a}"' in page, a


@pytest.mark.parametrize("results", [False, True])
def test_links_resolve_where_the_report_is_written(tmp_path, results):
    _layout(tmp_path, results)
    links, where = (R.RESULTS_LINKS, tmp_path / "results") if results else (R.STAGE_LINKS, tmp_path / "figures/07_claims_audit")
    _, md, page = _report(links=links)
    targets = R.link_targets(md)
    assert R.missing_links(md, where) == []
    for rel in FIGS:  # each key figure inline exactly once, with its PDF and CSV linked
        assert md.count(f"]({links.figure(rel)})") >= 1 and md.count("![") == len(FIGS)
        assert links.figure(rel)[:-4] + ".csv" in targets and links.figure(rel)[:-4] + ".pdf" in targets
        assert f'<img src="{links.figure(rel)}"' in page
    assert {links.notebook(s) for s in STAGES} <= set(targets)
    other = R.RESULTS_LINKS if not results else R.STAGE_LINKS  # the other layout's links do not resolve here
    assert R.missing_links(R.render_markdown(_audit(), other), where)


def test_figures_under_their_claims_and_the_rest_under_other_figures():
    _, md, _ = _report()
    sections = {h.split(":")[0]: body for h, body in (s.split("\n", 1) for s in md.split("\n## ")[1:])}
    assert "![" in sections["Claim 1"] and "headline_bridge.png)" in sections["Claim 1"]
    assert "![" in sections["Claim 3"] and "boundary_table.png)" in sections["Claim 3"]
    assert "![" not in sections["Claim 2"] and "(shown under claim 1)" in sections["Claim 2"]
    assert "![" not in sections["Claim 7"] and "(shown under claim 3)" in sections["Claim 7"]
    assert "pass_curves" not in md  # not a key figure here: not shown
    assert "swap_grid.png" in sections["Other figures"] and "headline_bridge" not in sections["Other figures"]


def test_html_is_markdown_it_not_a_hand_converter():
    import inspect

    from markdown_it import MarkdownIt

    assert isinstance(R.markdown_parser(), MarkdownIt)
    assert not hasattr(R, "render_html") and "<td>" not in inspect.getsource(R)
    _, md, page = _report()
    assert R.markdown_parser().render(md) in page


def test_html_escapes_and_pipes():
    rows = C.evaluate(stats_all_supported())
    rows[0] = dict(rows[0], value="<b>x|y</b> & **z**", explanation="a < b, [a](b), &amp; _c_ d_e")
    _, md, page = _report(rows)
    assert "<b>x" not in page and "&lt;b&gt;x|y&lt;/b&gt; &amp; **z**" in page
    assert "a &lt; b, [a](b), &amp;amp; _c_ d_e" in page and "<em>c</em>" not in page and 'href="b"' not in page
    assert page.count("<table") == 3


def test_audit_round_trip(tmp_path):
    audit = _audit()
    R.save_audit(audit, tmp_path / "audit.json")
    again = R.load_audit(tmp_path / "audit.json")
    assert again.calibration.keys() == audit.calibration.keys() and list(again.settings) == list(audit.settings)
    assert R.render(again) == R.render(audit)


HEADLINE_KEYS = (
    [f"claim.{i}.effect" for i in range(1, 8)]
    + [f"verdicts.{v}" for v in ("supported", "contradicted", "inconclusive", "not_evaluated")]
    + [f"bridge.{p}.{m}" for p in ("base", "sft", "rl") for m in ("pass1", "pass_kmax")]
    + [f"bridge.{p}.{m}" for p in ("rl_vs_base", "sft_vs_base") for m in ("gained", "lost")]
    + [f"bridge.rl_vs_base.dpass_kmax{x}" for x in ("", ".ci_low", ".ci_high", ".seed_sd")]
    + ["meta.T_eval", "meta.n", "meta.n_replicates"]
)


def test_headline_metrics_keys_are_stable_and_numeric():
    s = stats_all_supported() | {f"pass.bridge.{p}.{k}": 0.5 for p in ("base", "sft", "rl") for k in ("k1", "kmax")}
    s |= {"passdiff.bridge.rl_vs_base.kmax.seed_sd": 0.02, "meta.n_replicates": 3.0}
    audit = R.Audit(profile="tiny", claims=C.evaluate(s), reported=[], settings={})
    h = R.headline_metrics(audit, s)
    assert list(h) == HEADLINE_KEYS
    assert all(isinstance(v, float) and math.isfinite(v) for v in h.values())
    assert h["claim.2.effect"] == 0.08 and h["verdicts.supported"] == 7 and h["bridge.sft_vs_base.lost"] == 17
    json.dumps(h, allow_nan=False)
    empty = R.headline_metrics(R.Audit(profile="tiny", claims=C.evaluate({}), reported=[], settings={}), {})
    assert list(empty) == HEADLINE_KEYS and empty["verdicts.not_evaluated"] == 7
    assert all(v is None or isinstance(v, float) for v in empty.values())
    json.dumps(empty, allow_nan=False)


def test_verdicts_json():
    rows = C.evaluate(stats_all_supported())
    rows[1] = dict(rows[1], verdict=C.NOT_EVALUATED, value=float("nan"))
    out = R.verdicts_json(rows)
    json.dumps(out, allow_nan=False)
    assert out["claims"]["2"] == {"verdict": C.NOT_EVALUATED, "value": None}
    assert out["claims"]["4"]["value"] == -0.14
    assert out["counts"] == {"supported": 6, "contradicted": 0, "inconclusive": 0, "not_evaluated": 1}


def test_reward_scale_note():
    note = R.reward_scale_note({"rl": {"scale_rewards": "none", "bonus": 0.0},
                                "rl_bonus": {"scale_rewards": "none", "bonus": 0.1}})
    assert "rl_bonus: scale_rewards = 'none', bonus 0.1: the bonus enters the advantages at its stated size 0.1" in note
    assert "differ" not in note
    old = R.reward_scale_note({"rl": {"bonus": 0.0}, "rl_bonus": {"scale_rewards": "none", "bonus": 0.1}})
    assert "'group'" in old and "The runs differ in scaling" in old
    assert "not kept at its size" in R.reward_scale_note({"rl_bonus": {"scale_rewards": "group", "bonus": 0.1}})


def test_decision_gap_names_the_target_and_the_data_factor():
    # estimate 0.02, margin 0.05: equivalence needs a half-width below 0.03; the interval's is 0.06 -> 4x the data
    text = C.decision_gap(0.02, -0.04, 0.08, 0.05)
    assert "half-width 0.06" in text and "below 0.03" in text and "4.0x" in text
    # estimate 0.1 beyond the margin: showing the effect needs a half-width below 0.1 (0.15 now: 2.2x)
    assert "below 0.1:" in C.decision_gap(0.1, -0.05, 0.25, 0.05) and "2.2x" in C.decision_gap(0.1, -0.05, 0.25, 0.05)
    assert "already narrow enough" in C.decision_gap(0.127, 0.03, 0.227, 0.05)  # another part of the rule decides
    assert "on the margin" in C.decision_gap(0.0, -0.1, 0.1, 0.0) and "no width" in C.decision_gap(0.0, 0.0, 0.0, 0.05)
    assert C.decision_gap(float("nan"), 0, 1, 0.05) == "" and C.decision_gap("n/a", None, None, 0.05) == ""
    rows = C.evaluate(stats_all_supported())
    assert all(r["decision_gap"] == "" for r in rows)  # only inconclusive verdicts get one
    # an equivalence-only target: showing the effect differs from 0 would not decide, so it never sets the target
    eq = C.decision_gap(-0.027, -0.069, 0.015, 0.05, part="math", goal="equivalence")
    assert eq.startswith("math: interval half-width 0.042") and "below 0.023" in eq and "3.3x" in eq, eq
    # the binding side of a lopsided TOST interval: a negative estimate is held by its lower end
    assert "half-width 0.03 " in C.decision_gap(-0.02, -0.05, 0.09, 0.05, goal="equivalence")
    # a one-sided bound: half-width = bound - estimate, target = margin - estimate (signed; a negative estimate
    # has more room): -0.01 with bound 0.06: 0.07 against 0.06, (0.07 / 0.06)^2 = 1.4x; +0.02 with 0.08: 4.0x
    low = C.decision_gap(-0.01, -0.01, 0.06, 0.05, goal="below")
    assert "half-width 0.07" in low and "below 0.06" in low and "1.4x" in low, low
    below = C.decision_gap(0.02, 0.02, 0.08, 0.05, goal="below")
    assert "half-width 0.06" in below and "below 0.03" in below and "4.0x" in below, below
    # the mirror (claim 7): bound over -margin; -0.017 with one-sided bound -0.07: 0.053 against 0.033 -> 2.6x
    above = C.decision_gap(-0.017, -0.07, 0.03, 0.05, goal="above")
    assert "half-width 0.053" in above and "below 0.033" in above and "2.6x" in above, above
    # an estimate at or beyond the margin: more data cannot bound it inside (it could decide the other way)
    for goal in ("below", "equivalence"):
        assert "could instead show the effect beyond the margin" in C.decision_gap(0.07, 0.0, 0.12, 0.05, goal=goal)
    assert "could instead show the effect beyond the margin" in C.decision_gap(-0.07, -0.12, 0.0, 0.05, goal="above")


def test_claim7_names_its_one_sided_bound_when_only_it_is_open():
    """Plain RL expands, the bonus run is not ahead, plain - bonus not yet shown above -margin: the decision gap is
    that one-sided bound's (TOST low), not the 95 % interval's half-width against max(|est|, margin - |est|)."""
    stats = mutate(stats_all_supported(), eff(D_BONUS, -0.017, 0.063, 0.053))
    row = next(r for r in C.evaluate(stats) if r["id"] == 7)
    assert row["verdict"] == INC
    assert row["decision_gap"].startswith("plain - bonus (its one-sided bound): interval half-width 0.053"), row
    assert "2.6x" in row["decision_gap"], row["decision_gap"]


def test_claim3_names_the_open_part_when_only_math_is_undecided():
    """Interaction shown above 0, math neither inert nor moved: what would decide it is math's equivalence, not the
    interaction's interval (which is already narrow enough)."""
    m = {MATH: -0.027, **{MATH + p: v for p, v in zip(C.EFFECT_PARTS, (-0.077, 0.023, -0.069, 0.015))}}
    stats = mutate(stats_all_supported(), eff(INTER, 0.127, 0.1) | m)
    row = next(r for r in C.evaluate(stats) if r["id"] == 3)
    assert row["verdict"] == INC and row["decision_gap"].startswith("math, RL - base"), row["decision_gap"]
    assert "already narrow" not in row["decision_gap"] and "3.3x" in row["decision_gap"], row["decision_gap"]
    # the interaction not yet above 0: the headline effect is what is open, and the gap reads it
    open_i = mutate(stats, eff(INTER, 0.05, 0.07))
    row = next(r for r in C.evaluate(open_i) if r["id"] == 3)
    assert row["verdict"] == INC and row["decision_gap"].startswith("interval half-width 0.07"), row["decision_gap"]
