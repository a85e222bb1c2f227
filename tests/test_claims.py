"""Claims registry: each rule on constructed stats with a known answer, the reported table, the renderers."""

from __future__ import annotations

import json
import math

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
