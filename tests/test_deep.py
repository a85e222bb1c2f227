"""Deep boundary sampling (stops at the first success, resumes, discards stale rounds, deterministic) and the
boundary-mass metrics and report section."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from passkt import deep, integrity, report, rollout
from passkt.backends import ScriptedBackend

CFG = rollout.SamplingConfig(temperature=1.0, max_turn_tokens=64, max_total_tokens=2000, search_k=1)


def odds_agent(problems, p_by_id):
    """Answers at once: the gold answer with probability p_by_id[problem] (torch RNG, so round seeding applies)."""
    by_q = {p["question"]: p for p in problems}

    def script(ctx: str) -> str:
        p = next(v for q, v in by_q.items() if q in ctx)
        ok = torch.rand(()) < p_by_id[p["id"]]
        return f"<answer>{p['answer'] if ok else 'certainly not this'}</answer>"

    return script


@pytest.fixture()
def setup(small_tok, eval_set):
    probs = [p for p in eval_set if p["category"] == "bridge"][:3]
    odds = {probs[0]["id"]: 1.0, probs[1]["id"]: 0.0, probs[2]["id"]: 0.05}
    env = rollout.Environment(probs, small_tok, search_k=1)
    be = ScriptedBackend(small_tok, odds_agent(probs, odds))
    return env, be, [p["id"] for p in probs]


KW = dict(policy="base", T=2, cfg=CFG, seed=5, n_deep=40, chunk=8)


def test_stops_at_first_success_and_records_its_draw(tmp_path, setup):
    env, be, ids = setup
    res = deep.deep_sample(be, env, ids, out_dir=tmp_path, **KW)
    assert res["first"][ids[0]] == 1 and res["draws"][ids[0]] == 1  # always solves: draw 1
    assert res["first"][ids[1]] is None and res["draws"][ids[1]] == 40  # never solves: every draw used
    rounds = [json.loads(f.read_text()) for f in sorted(tmp_path.glob("round-*.json"))]
    assert rounds[0]["open"] == ids and rounds[0]["draws"] == [0, 8]
    assert all(ids[0] not in r["open"] for r in rounds[1:])  # a solved problem is never sampled again
    assert rounds[-1]["draws"][1] == 40 and len(rounds) < 40 // 8  # later rounds give the open problems more
    f2 = res["first"][ids[2]]
    assert f2 is None or 1 <= f2 <= 40
    solved_in = [r["round"] for r in rounds if ids[2] in r["first"]]
    assert all(ids[2] not in r["open"] for r in rounds if solved_in and r["round"] > solved_in[0])
    # episodes: every open problem gets the round's draws
    assert res["episodes"] == sum(len(r["open"]) * (r["draws"][1] - r["draws"][0]) for r in rounds)


def test_deterministic_for_a_seed_and_fresh_for_another(tmp_path, setup):
    env, be, ids = setup
    kw = {**KW, "n_deep": 400, "chunk": 16}
    a = deep.deep_sample(be, env, ids, out_dir=tmp_path / "a", **kw)
    b = deep.deep_sample(be, env, ids, out_dir=tmp_path / "b", **kw)
    assert a["first"] == b["first"]
    others = [deep.deep_sample(be, env, ids, out_dir=tmp_path / f"s{s}", **{**kw, "seed": s})["first"][ids[2]]
              for s in (6, 7, 8)]
    assert len(set(others + [a["first"][ids[2]]])) > 1  # another seed, another stream
    assert deep.round_seed(5, "base", 0) != deep.round_seed(5, "base", 1) != deep.round_seed(5, "rl", 1)
    assert deep.round_seed(5, "base", 0) != rollout.shard_seed(5, "base", 1.0, 0)


def test_resumes_after_interruption(tmp_path, setup, monkeypatch):
    env, be, ids = setup
    kw = {**KW, "n_deep": 64, "chunk": 4}
    full = deep.deep_sample(be, env, ids, out_dir=tmp_path / "full", **kw)
    real, calls = integrity.write_json_atomic, {"n": 0}

    def crash_after_two(obj, path):
        if calls["n"] == 2:
            raise KeyboardInterrupt
        calls["n"] += 1
        real(obj, path)

    monkeypatch.setattr(integrity, "write_json_atomic", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        deep.deep_sample(be, env, ids, out_dir=tmp_path / "r", **kw)
    monkeypatch.setattr(integrity, "write_json_atomic", real)
    again = deep.deep_sample(be, env, ids, out_dir=tmp_path / "r", **kw)
    assert again["resumed_rounds"] == 2
    assert again["first"] == full["first"] and again["draws"] == full["draws"]
    # a finished run resumes every round and samples nothing
    done = deep.deep_sample(be, env, ids, out_dir=tmp_path / "r", **kw)
    assert done["episodes"] == 0 and done["first"] == full["first"]


def test_stale_rounds_are_discarded(tmp_path, setup, capsys):
    env, be, ids = setup
    deep.deep_sample(be, env, ids, out_dir=tmp_path, **KW)
    n_files = len(list(tmp_path.glob("round-*.json")))
    # other settings (seed, chunk, model weights, problems): nothing is reused
    for change in ({"seed": 6}, {"chunk": 4}, {"settings": {"model": "other-weights"}}):
        res = deep.deep_sample(be, env, ids, out_dir=tmp_path, **{**KW, **change})
        assert res["resumed_rounds"] == 0, change
        assert "discarding" in capsys.readouterr().out
    res = deep.deep_sample(be, env, ids[:2], out_dir=tmp_path, **KW)
    assert res["resumed_rounds"] == 0
    # other code: a changed engine fingerprint discards too
    deep.deep_sample(be, env, ids, out_dir=tmp_path, **KW)
    assert deep.deep_sample(be, env, ids, out_dir=tmp_path, **KW)["resumed_rounds"] == n_files
    import passkt.deep as mod
    real = mod.rollout.engine_version
    try:
        mod.rollout.engine_version = lambda: {"hash": "another-engine", "modules": []}
        assert deep.deep_sample(be, env, ids, out_dir=tmp_path, **KW)["resumed_rounds"] == 0
    finally:
        mod.rollout.engine_version = real
    # a file tampered with (or from another writer) is dropped with everything after it
    deep.deep_sample(be, env, ids, out_dir=tmp_path, **KW)
    f = sorted(tmp_path.glob("round-*.json"))[0]
    rec = json.loads(f.read_text())
    f.write_text(json.dumps({**rec, "fingerprint": "stale"}))
    assert deep.deep_sample(be, env, ids, out_dir=tmp_path, **KW)["resumed_rounds"] == 0


def test_round_draws_fill_the_batch():
    assert deep.round_draws(10, 10, 0, 1024, 64) == 64
    assert deep.round_draws(10, 2, 128, 1024, 64) == 320
    assert deep.round_draws(10, 1, 1000, 1024, 64) == 24  # never beyond n_deep


def _counts():
    rows = []
    for pid, (ca, cb) in {"p0": (3, 0), "p1": (0, 2), "p2": (1, 1), "p3": (0, 0), "p4": (5, 0)}.items():
        rows += [{"policy": "rl", "category": "bridge", "problem_id": pid, "temperature": 1.0, "T": 5, "n": 16, "c": ca},
                 {"policy": "base", "category": "bridge", "problem_id": pid, "temperature": 1.0, "T": 5, "n": 16,
                  "c": cb}]
    return pd.DataFrame(rows)


def test_summary_and_flat_keys_are_consistent():
    cands = deep.candidates(_counts(), [("rl", "base")], 5, 1.0)
    assert set(cands.direction) == {"gained", "lost"} and set(cands.other) == {"base", "rl"}
    results = {"base": {"first": {"p0": 7, "p4": None}}, "rl": {"first": {"p1": None}}}
    per, summ = deep.deep_summary(cands, results, n_deep=32, ci=0.95)
    flat = deep.deep_flat(summ, [("rl", "base"), ("sft", "base")], 32)
    g = "deep.bridge.rl_vs_base.gained."
    assert (flat[g + "candidates"], flat[g + "sampled"], flat[g + "solved_at_depth"], flat[g + "never"]) == (2, 2, 1, 1)
    assert flat["deep.bridge.rl_vs_base.lost.never"] == 1 and flat["deep.n_deep"] == 32
    assert flat["deep.comparison.sft_vs_base.lost.candidates"] == 0  # present, 0, where a cell has no candidate
    for k, v in flat.items():
        if k.endswith(".candidates"):
            pre = k[: -len("candidates")]
            assert flat[pre + "solved_at_depth"] + flat[pre + "never"] == flat[pre + "sampled"] <= v


def test_zibb_metrics_and_report_section():
    rng = np.random.default_rng(0)
    p = np.where(rng.random(60) < 0.3, 0.0, rng.beta(2, 3, 60))
    c = rng.binomial(16, p)
    counts = pd.DataFrame({"policy": "rl", "category": "bridge", "problem_id": [f"p{i}" for i in range(60)],
                           "temperature": 1.0, "T": 5, "n": 16, "c": c})
    tab = deep.zibb_table(deep.zibb_fits(counts, ["rl"], 5, 1.0, 0.95), 5)
    flat = deep.zibb_flat(tab)
    pre = "zibb.bridge.rl."
    for k in ("pi0_mle", "pi0_ci_low", "pi0_ci_high", "identified", "excludes_zero", "pass1024_low", "pass1024_high"):
        assert k in {x[len(pre):] for x in flat}, k
    assert flat[pre + "pi0_ci_low"] <= flat[pre + "pi0_ci_high"]
    assert flat[pre + "pass1024_low"] <= flat[pre + "pass1024_high"] <= 1
    assert (pre + "pi0" in flat) == bool(flat[pre + "identified"])
    curves = deep.zibb_curves(deep.zibb_fits(counts, ["rl"], 5, 1.0, 0.95), "bridge", [16, 1024])
    assert (curves["low"] <= curves["high"] + 1e-12).all()
    stats = {**flat, "deep.n_deep": 32, "deep.bridge.rl_vs_base.gained.candidates": 2,
             "deep.bridge.rl_vs_base.gained.sampled": 2, "deep.bridge.rl_vs_base.gained.solved_at_depth": 1,
             "deep.bridge.rl_vs_base.gained.never": 1, "deep.bridge.rl_vs_base.gained.solved_share": 0.5,
             "deep.bridge.rl_vs_base.gained.ci_low": 0.1, "deep.bridge.rl_vs_base.gained.ci_high": 0.9}
    rows = report.depth_rows(stats)
    assert len(rows["deep"]) == 1 and len(rows["mass"]) == 1 and rows["mass"][0]["k_far"] == "1024"
    audit = report.Audit(profile="tiny", claims=[], reported=[], settings={}, depth=rows)
    md = report.render_markdown(audit)
    assert f"## {report.DEPTH_TITLE}" in md and "1 of 2" in md
    assert report.depth_rows({"pass.bridge.rl.k1": 0.1}) == {}
    assert report.DEPTH_TITLE not in report.render_markdown(report.Audit("tiny", [], [], {}))
