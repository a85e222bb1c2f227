"""The support sweep (issue #21): the knob, the workspaces, the measurements, the eighth rule, and the sweep run end
to end through `dvc repro sweep/dvc.yaml` on a copy of the smoke pipeline (one point), then again as a no-op."""

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from smoke_pipeline import BIN, ROOT, env, load_tool

from passkt import support, sweep
from passkt.config import parameters_cell, stage_params
from passkt.prior import DEFAULT_WEIGHTS

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


# ----------------------------------------------------------------------------------------- the knob


def test_the_knob_at_the_committed_share_is_the_committed_prior():
    w = PARAMS["01_base_model"]["prior_weights"]["bridge"]
    total = sum(w.values())
    ref = w["chain"] / total
    assert ref == pytest.approx(0.35)
    assert sweep.bridge_weights(w, ref) == pytest.approx({k: v / total for k, v in w.items()})


@pytest.mark.parametrize("chain", [0.0, 0.01, 0.1, 0.5])
def test_the_knob_scales_the_chain_capable_strategies_and_keeps_the_rest_in_proportion(chain):
    w = DEFAULT_WEIGHTS["bridge"]
    out = sweep.bridge_weights(w, chain)
    assert sum(out.values()) == pytest.approx(1.0)
    assert out["chain"] == pytest.approx(chain)
    assert set(sweep.WINNING) == {"chain", "redundant", "wrong_bridge"}
    for k in sweep.WINNING:  # redundant: the chain with repeats; wrong_bridge: falls back to the bridge entity
        assert out[k] == pytest.approx(chain * w[k] / w["chain"])
    rest = [k for k in w if k not in sweep.WINNING]
    assert [out[k] / out[rest[0]] for k in rest] == pytest.approx([w[k] / w[rest[0]] for k in rest])
    if chain == 0:
        assert all(out[k] == 0 for k in sweep.WINNING)


def _bridge_gold_share(weights, small_sets, small_tok):
    from passkt.prior import DEFAULT_BUDGETS, write_transcripts

    sets, _ = small_sets
    probs = [p for p in sets["pretrain"] if p["category"] == "bridge"] * 20
    tr = pd.DataFrame(write_transcripts(small_tok, probs, {"bridge": weights}, DEFAULT_BUDGETS, 1, 1, seed=0))
    return support.prior_support(tr, probs)


def test_at_share_zero_no_pretraining_transcript_writes_the_gold_chain(small_sets, small_tok):
    """The knob's point: every strategy that can write the gold chain is scaled to 0 (docs/support_sweep.md)."""
    committed = _bridge_gold_share(DEFAULT_WEIGHTS["bridge"], small_sets, small_tok)
    assert committed["prior_chains"] > 0 and committed["prior_transcripts"] > 100
    zero = _bridge_gold_share(sweep.bridge_weights(DEFAULT_WEIGHTS["bridge"], 0.0), small_sets, small_tok)
    assert zero["prior_chains"] == 0 and zero["prior_transcripts"] == committed["prior_transcripts"]
    # and each chain-capable strategy alone does write it (so leaving one in would have left support)
    for strat in sweep.WINNING:
        alone = _bridge_gold_share({k: float(k == strat) for k in DEFAULT_WEIGHTS["bridge"]}, small_sets, small_tok)
        assert alone["prior_chains"] > 0, strat


@pytest.mark.parametrize("bad", [-0.1, 1.5, 0.9])  # 0.9: chain + redundant scaled alike exceed 1
def test_the_knob_rejects_impossible_shares(bad):
    with pytest.raises(sweep.SweepError, match="chain weight"):
        sweep.bridge_weights(DEFAULT_WEIGHTS["bridge"], bad)


def test_a_point_changes_only_the_bridge_prior_and_drops_the_bonus_run():
    p = sweep.point_params(PARAMS, 0.01)
    assert p["01_base_model"]["prior_weights"]["bridge"]["chain"] == pytest.approx(0.01)
    assert p["04_grpo"]["bonus_replicates"] == 0
    assert "rl_bonus" not in p["05_pass_at_k"]["policies"]
    assert not any("rl_bonus" in pair for pair in p["05_pass_at_k"]["pairs"])
    for key in PARAMS:
        if key not in ("01_base_model", "04_grpo", "05_pass_at_k"):
            assert p[key] == PARAMS[key], key
    assert {k: v for k, v in p["01_base_model"].items() if k != "prior_weights"} == \
        {k: v for k, v in PARAMS["01_base_model"].items() if k != "prior_weights"}
    assert PARAMS["01_base_model"]["prior_weights"]["bridge"]["chain"] == 0.35  # the input is not modified


@pytest.mark.parametrize("text", ["abc", "-1", "2", "nan"])
def test_a_bad_chain_on_the_command_line_is_one_line_naming_it(text, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    r = subprocess.run([sys.executable, "-m", "passkt.sweep", "run", "--chain", text, "01_base_model"], cwd=ROOT,
                       capture_output=True, text=True, env=env(ROOT, ROOT / "lib"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and repr(text) in r.stderr, r.stderr


# ----------------------------------------------------------------------------------------- measurements


def test_the_gold_chain_allows_repeats_and_normalisation_but_not_another_order():
    gold = support.gold_plan(_problem("p", "A Mountain for the Lantern", "Rosfen Nanezo"))
    assert gold == ("mountain for lantern", "rosfen nanezo")  # HotpotQA normalisation (articles, case, punctuation)
    assert support.follows_gold_chain(["A Mountain for the Lantern", "Rosfen Nanezo"], gold)
    assert support.follows_gold_chain(["a mountain  for the lantern.", "A Mountain for the Lantern", "Rosfen Nanezo",
                                       "Rosfen Nanezo", "Dotiber"], gold)  # the redundant strategy, then more
    assert not support.follows_gold_chain(["Rosfen Nanezo", "A Mountain for the Lantern"], gold)
    assert not support.follows_gold_chain(["A Mountain for the Lantern", "Zepelse House", "Rosfen Nanezo"], gold)
    assert not support.follows_gold_chain(["A Mountain for the Lantern"], gold)
    assert not support.follows_gold_chain(None, gold)


def _problem(pid, first, bridge):
    return {"id": pid, "category": "bridge", "meta": json.dumps({"plan": [first, bridge]})}


def test_support_counts_gold_chains_with_a_wilson_and_a_problem_bootstrap_interval():
    probs = [_problem("p1", "X Film", "Ann Bo"), _problem("p2", "Y Film", "Cid Do")]
    gold_p1, other = ["X Film", "Ann Bo"], ["Y Film", "Someone"]
    df = pd.DataFrame({"problem_id": ["p1"] * 4 + ["p2"] * 4, "category": "bridge",
                       "queries": [gold_p1, gold_p1, other, []] + [other] * 4})
    s = support.support(df, probs, n_boot=200)
    assert (s["chains"], s["episodes"], s["support"]) == (2, 8, 0.25)
    assert 0 < s["wilson_low"] < 0.25 < s["wilson_high"] < 1
    assert 0 <= s["boot_low"] <= 0.25 <= s["boot_high"] <= 0.5  # problem resamples: 0/8, 2/8 or 4/8
    assert s["problems_with_chain"] == 1
    zero = support.support(df.assign(queries=[other] * 8), probs)
    assert zero["chains"] == 0 and zero["wilson_low"] == 0 and zero["wilson_high"] > 0
    big = pd.DataFrame({"problem_id": ["p2"] * 6400, "category": "bridge", "queries": [other] * 6400})
    assert support.support(big, probs, n_boot=10)["wilson_low"] == 0.0  # the design's size: exactly 0, not ~1e-20


def test_gained_plans_flags_whether_base_wrote_the_winning_chain():
    rl = pd.DataFrame({"problem_id": ["a", "a", "b", "c", "d", "e", "f", "f"],
                       "correct": [True, False, True, True, True, True, True, True],
                       "queries": [["X", "Y"], ["Z"], ["P", "Q"], ["M"], ["R", "S", "T"], [], ["G"], ["G", "G"]]})
    base = pd.DataFrame({"problem_id": ["a", "a", "b", "c", "d", "e", "f", "f"],
                         "correct": [False, False, False, True, False, False, False, False],
                         "queries": [["x", "y", "y"], ["W"], ["P"], ["M"], ["R", "S"], [], ["G"], ["H"]]})
    g = support.gained_plans(rl, base).set_index("problem_id")
    assert list(g.index) == ["a", "b", "d", "e", "f"]  # c: base solved it too
    assert g.loc["a", "other_wrote_a_winning_chain"]  # the same chain after normalising and dropping the repeat
    assert not g.loc["b", "other_wrote_a_winning_chain"]  # base stopped after the first hop
    assert g.loc["d", "other_wrote_a_winning_chain"]  # the chain is the first two queries; RL searched once more
    # wins with no search, or one distinct query however repeated, have no chain: never "base wrote it too",
    # even where base wrote the same (empty or one-query) plan; they are counted apart
    assert not g.loc["e", "other_wrote_a_winning_chain"] and not g.loc["f", "other_wrote_a_winning_chain"]
    assert list(g["won_without_two_hop_chain"]) == [False, False, False, True, True]
    assert list(g["winning_chains"]) == [1, 1, 1, 0, 0]


def _points(rows, episodes=6400):
    cols = ["chain", "chains", "wilson_low", "E", "E_ci_low", "E_ci_high", "E_tost_high"]
    return pd.DataFrame(rows, columns=cols).assign(episodes=episodes)


@pytest.mark.parametrize("rows, verdict, phrase", [
    # zero support: E shown inside the margin; supported point: E shown positive
    ([(0, 0, 0.0, 0.0, -0.03, 0.03, 0.02), (0.35, 900, 0.1, 0.1, 0.02, 0.18, 0.16)], "supported", "expansion shown"),
    # an expansion at a zero-support point
    ([(0, 0, 0.0, 0.1, 0.02, 0.18, 0.16), (0.35, 900, 0.1, 0.1, 0.02, 0.18, 0.16)], "contradicted", "zero-support"),
    # no zero-support point: "only where" untestable
    ([(0, 3, 1e-4, 0.0, -0.03, 0.03, 0.02), (0.35, 900, 0.1, 0.1, 0.02, 0.18, 0.16)], "inconclusive", "no sweep point"),
    # a zero-support point both shown positive and (one-sided) below the margin: contradicted wins
    ([(0, 0, 0.0, 0.03, 0.01, 0.06, 0.045), (0.35, 900, 0.1, 0.1, 0.02, 0.18, 0.16)], "contradicted", "zero-support"),
    # every part missing at once: each is named
    ([(0, 3, 1e-4, 0.0, -0.03, 0.03, 0.02), (0.35, 900, 0.1, 0.02, -0.02, 0.06, 0.05)], "inconclusive",
     "no supported point"),
    # a missing effect: not evaluated, never a verdict
    ([(0, 0, 0.0, float("nan"), -0.03, 0.03, 0.02), (0.35, 900, 0.1, 0.1, 0.02, 0.18, 0.16)], "not evaluated",
     "missing"),
    # zero support, but E not shown below the margin (interval contains 0 and reaches beyond 0.05)
    ([(0, 0, 0.0, 0.02, -0.05, 0.09, 0.08), (0.35, 900, 0.1, 0.1, 0.02, 0.18, 0.16)], "inconclusive", "not shown below"),
    # zero support fine, but no supported point shows an expansion
    ([(0, 0, 0.0, 0.0, -0.03, 0.03, 0.02), (0.35, 900, 0.1, 0.02, -0.02, 0.06, 0.05)], "inconclusive", "no supported"),
])
def test_rule8_each_branch(rows, verdict, phrase):
    out = support.rule8(_points(rows))
    assert out["verdict"] == verdict and phrase in out["why"], out


def test_rule8_says_how_much_data_would_bound_an_open_zero_support_point():
    rows = [(0, 0, 0.0, 0.02, -0.05, 0.09, 0.08), _GOOD[1]]  # one-sided bound 0.08: half-width 0.06 vs 0.03 needed
    why = support.rule8(_points(rows))["why"]
    assert "at chain = 0, its one-sided bound: interval half-width 0.06" in why and "below 0.03" in why, why
    assert "4.0x the problems" in why, why
    # a negative estimate has more room below the margin: -0.04 with bound 0.07 needs 0.11 > 0.09 (0.7x: narrow)
    neg = support.rule8(_points([(0, 0, 0.0, -0.04, -0.15, 0.08, 0.07), _GOOD[1]]))["why"]
    assert "half-width 0.11 against the margin 0.05 (estimate -0.04)" in neg and "below 0.09" in neg, neg


_GOOD = [(0, 0, 0.0, 0.0, -0.03, 0.03, 0.02), (0.35, 900, 0.1, 0.1, 0.02, 0.18, 0.16)]


def test_rule8_zero_support_needs_enough_episodes_for_the_documented_bound():
    assert support.zero_support_bound(6400) < support.ZERO_BOUND < support.zero_support_bound(5000)
    assert abs(support.zero_support_bound(6400) - 0.000468) < 1e-6
    assert support.rule8(_points(_GOOD))["verdict"] == "supported"
    out = support.rule8(_points(_GOOD, episodes=[5000, 6400]))  # none in 5,000: not enough to call it zero
    assert out["verdict"] == "not evaluated" and "too few" in out["why"] and "5000" in out["why"], out
    # a supported point needs no such bound: one chain in few episodes is support
    assert support.rule8(_points(_GOOD, episodes=[6400, 100]))["verdict"] == "supported"


@pytest.mark.parametrize("column, values", [("n", [64, 32]), ("bridge_problems", [100, 90]),
                                            ("n_replicates", [3, 1]), ("n", [64, float("nan")])])
def test_rule8_is_not_evaluated_where_the_points_are_not_comparable(column, values):
    out = support.rule8(_points(_GOOD).assign(**{column: values}))
    assert out["verdict"] == "not evaluated" and column in out["why"], out
    assert support.rule8(_points(_GOOD).assign(**{column: values[:1] * 2}))["verdict"] == "supported"


def test_the_sweep_figure_sets_points_of_equal_support_apart(tmp_path):
    """Several prior shares can leave zero measured support: their markers must not sit on one another."""
    import matplotlib

    matplotlib.use("Agg")
    rows = [(c, 0, 0.0, -0.05, -0.12, 0.02, 0.01) for c in (0, 0.01, 0.03)] + [_GOOD[1]]
    p = _points(rows).assign(support=lambda d: d["chains"] / d["episodes"], wilson_high=0.0006,
                             E_sft=-0.1, E_sft_ci_low=-0.2, E_sft_ci_high=0.0, prior_support=0.0)
    fig, data = support.sweep_figure(p, support.MARGIN, "caption", 64)
    ax = fig.axes[0]
    fig.canvas.draw()
    rl = [c for c in ax.get_children() if isinstance(c, matplotlib.lines.Line2D) and c.get_marker() == "o"]
    xs = [ln.get_transform().transform(ln.get_xydata())[0, 0] for ln in rl]  # display x of each RL marker
    assert len(xs) == 4 and len({round(x) for x in xs[:3]}) == 3, xs  # the three zero-support points apart
    assert list(data["chain"]) == [0, 0.01, 0.03, 0.35]


def test_rule8_margin_is_the_audits_boundary_margin():
    from passkt.claims import MARGIN_BOUNDARY

    assert support.MARGIN == MARGIN_BOUNDARY


# ----------------------------------------------------------------------------------------- contracts


def test_sweep_dvc_yaml_is_what_the_generator_writes():
    r = subprocess.run([sys.executable, str(ROOT / "tools/sweep_dvc.py")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_the_summary_notebook_defaults_are_sweep_params():
    params = yaml.safe_load((ROOT / "sweep/params.yaml").read_text())
    cell = parameters_cell(ROOT / "notebooks" / f"{support.NOTEBOOK}.ipynb")
    assert cell == stage_params(params, support.NOTEBOOK, cell)


def test_a_workspace_links_the_shared_inputs_and_carries_its_own_params(tmp_path):
    (tmp_path / "sweep").mkdir()
    for d in ("notebooks", "references", "data/00_data_prep"):
        (tmp_path / d).mkdir(parents=True)
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    ws = sweep.prepare(tmp_path, "0.01")
    assert ws == tmp_path / "sweep/points/chain_0.01"
    assert (ws / "notebooks").resolve() == (tmp_path / "notebooks").resolve()
    assert (ws / "data/00_data_prep").resolve() == (tmp_path / "data/00_data_prep").resolve()
    assert yaml.safe_load((ws / "dvc.yaml").read_text()) == {"stages": {}}
    p = yaml.safe_load((ws / "params.yaml").read_text())
    assert p == sweep.point_params(PARAMS, 0.01)
    assert sweep.prepare(tmp_path, "0.01") == ws  # idempotent


# ----------------------------------------------------------------------------------------- end to end


def _dvc(repo, *args):
    return subprocess.run([str(BIN / "dvc"), *args], cwd=repo, capture_output=True, text=True,
                          env=env(repo, repo / "lib"), timeout=1800)


def test_the_sweep_runs_end_to_end_and_a_second_run_is_a_noop(smoke_repo, tmp_path):
    """Two points (chain shares 0 and 0.01) on the smoke profile, plus the smoke pipeline as the reference point."""
    repo = tmp_path / "repo"
    shutil.copytree(smoke_repo, repo, symlinks=True)
    sp = yaml.safe_load((repo / "sweep/params.yaml").read_text())
    sp["points"] = [0, 0.01]
    (repo / "sweep/params.yaml").write_text(yaml.safe_dump(sp, sort_keys=False))
    r = subprocess.run([sys.executable, "tools/sweep_dvc.py", "--write"], cwd=repo, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = _dvc(repo, "repro", "sweep/dvc.yaml")
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    ran = re.findall(r"^Running stage '([^']+)'", r.stdout, flags=re.M)
    assert ran and all(u.startswith("sweep/dvc.yaml:") for u in ran), ran  # the default study is read, not rerun
    assert "sweep/dvc.yaml:03_sft@0.01-2" in ran and "sweep/dvc.yaml:06_mechanism@0" in ran, ran

    ws = repo / "sweep/points/chain_0"
    prior = yaml.safe_load((ws / "params.yaml").read_text())["01_base_model"]["prior_weights"]["bridge"]
    assert prior["chain"] == prior["redundant"] == 0
    a = (ws / "data/01_base_model/model/model.safetensors").read_bytes()
    b = (repo / "data/01_base_model/model/model.safetensors").read_bytes()
    assert a != b  # its own base model, trained on other transcripts

    res = repo / "sweep/results"
    v = json.loads((res / "verdict.json").read_text())
    # the smoke profile's few episodes per point cannot bound a zero support below the rule's 0.0005: the rule
    # then says "not evaluated" (tiny profile: 6,400 episodes per point); any other outcome is a verdict
    assert v["verdict"] in ("supported", "contradicted", "inconclusive", "not evaluated") and v["why"]
    assert v["verdict"] != "not evaluated" or "too few episodes" in v["why"], v["why"]
    pts = pd.read_csv(res / "points.csv")
    assert list(pts["chain"]) == [0.0, 0.01, 0.35] and list(pts["default_study"]) == [False, False, True]
    assert pts.loc[0, "prior_chains"] == 0 and pts.loc[2, "prior_chains"] > 0  # the knob, in the transcripts
    assert (pts["episodes"] > 0).all() and pts["support"].between(0, 1).all()
    assert np.all(pts["E_ci_low"] <= pts["E"]) and np.all(pts["E"] <= pts["E_ci_high"])
    for f in ("support_sweep.png", "support_sweep.csv", "08_support_sweep.executed.ipynb"):
        assert (res / f).exists(), f

    st = _dvc(repo, "status", "sweep/dvc.yaml")
    assert st.returncode == 0 and "changed" not in st.stdout, st.stdout
    again = _dvc(repo, "repro", "sweep/dvc.yaml")
    assert again.returncode == 0 and "Running stage" not in again.stdout, again.stdout
    main = _dvc(repo, "status", "dvc.yaml")
    assert main.returncode == 0 and "changed" not in main.stdout, main.stdout  # the sweep leaves the default pipeline as it was


def _fake_sweep_root(tmp_path, finished: bool):
    (tmp_path / "sweep/results").mkdir(parents=True)
    shutil.copy(ROOT / "sweep/params.yaml", tmp_path / "sweep/params.yaml")
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    if finished:
        (tmp_path / "sweep/results/verdict.json").write_text(json.dumps(
            {"statement": support.STATEMENT, "verdict": "supported", "why": "E shown below +0.05 at chain = 0",
             "margin": 0.05}))
        row = {"chain": 0, "support": 0.0, "chains": 0, "episodes": 6400, "pass64_base": 0.3, "pass64_sft": 0.14,
               "E_tost_high": 0.027,
               "pass64_rl": 0.25, "E": -0.05, "E_ci_low": -0.14, "E_ci_high": 0.04, "E_sft": -0.16,
               "E_sft_ci_low": -0.22, "E_sft_ci_high": -0.1, "rl_gained_with_base_chain": 0,
               "rl_gained_without_chain": 28, "rl_gained_total": 28, "n_replicates": 3, "default_study": False}
        pd.DataFrame([row, {**row, "chain": 0.35, "support": 0.11, "chains": 707, "default_study": True}]).to_csv(
            tmp_path / "sweep/results/points.csv", index=False)
        pd.DataFrame({"wall_s": [1800.0, 1800.0]}).to_csv(tmp_path / "sweep/results/wall_times.csv", index=False)
    return tmp_path


def test_the_readme_sweep_block_is_a_table_once_the_summary_is_current(tmp_path, monkeypatch):
    rr = load_tool("readme_results", "readme_results_sweep")
    monkeypatch.setattr(rr, "ROOT", _fake_sweep_root(tmp_path, finished=True))
    monkeypatch.setattr(rr, "_current_units", lambda lock: {"summary"})
    text = rr.sweep_block()
    assert "Verdict: **supported**" in text and "| 0.35 (default study) | 0.1100 (707 of 6,400) |" in text, text
    assert "| -0.050 [-0.140, +0.040] |" in text and "| 0 / 28 / 28 |" in text, text
    assert "2 units took 1.0 h" in text and "support_sweep.png" in text
    row = rr.claim8_row()  # the audit table's eighth row
    assert row.startswith("| 8 | (ours) ") and row.endswith("| **supported**: E shown below +0.05 at chain = 0 |"), row
    assert "largest one-sided bound of RL − base +0.027 (prior 0; margin 0.05)" in row, row
    assert "supported: RL − base -0.050 [-0.140, +0.040] (prior 0.35)" in row, row
    monkeypatch.setattr(rr, "_current_units", lambda lock: set())  # a stale summary never shows as the verdict
    assert "not decided yet" in rr.sweep_block() and rr.claim8_row() == ""


def test_committed_sweep_results_are_what_sweep_dvc_lock_records():
    """Like tests/test_results.py for results/: the git-tracked summary is the output its lock entry records."""
    from test_results import dvc_dir_md5

    lock = ROOT / "sweep/dvc.lock"
    entry = yaml.safe_load(lock.read_text())["stages"].get("summary") if lock.exists() else None
    if entry is None:
        assert not (ROOT / "sweep/results").exists(), "sweep/results/ without a summary entry in sweep/dvc.lock"
        pytest.skip("the sweep has not finished (no summary in sweep/dvc.lock)")
    out = next(o for o in entry["outs"] if o["path"] == "sweep/results")
    assert dvc_dir_md5(ROOT / "sweep/results") == out["md5"], "sweep/results/ differs from sweep/dvc.lock: make sweep"
