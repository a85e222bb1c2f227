"""The rollout engine with scripted policies: budgets, notices, forks, the depth grid, resume, determinism."""

import json

import pandas as pd
import pytest
import torch

from passkt import evaluate, rollout
from passkt.backends import ScriptedBackend
from passkt.protocol import NOTICE
from passkt.scoring import score_answer

CFG = rollout.SamplingConfig(temperature=1.0, max_turn_tokens=64, max_total_tokens=2000, search_k=1)


def gold_agent(problems):
    """Follows each problem's gold plan, answers after the notice or when the plan is done."""
    by_q = {p["question"]: p for p in problems}

    def script(ctx: str) -> str:
        p = next(v for q, v in by_q.items() if q in ctx)
        plan = json.loads(p["meta"])["plan"]
        done = ctx.split("<|im_start|>assistant")[-1].count("</information>")
        if NOTICE in ctx or done >= len(plan):
            return f"<think>ok</think><answer>{p['answer']}</answer>"
        return f"<think>look</think><search>{plan[done]}</search>"

    return script


def random_agent(p_search=0.6, p_correct=0.5):
    """Searches with probability p_search (torch RNG, so per-shard seeding applies), else answers."""

    def script(ctx: str) -> str:
        if NOTICE not in ctx and torch.rand(()) < p_search:
            return f"<search>query {int(torch.randint(0, 3, ()))}</search>"
        return "<answer>yes</answer>" if torch.rand(()) < p_correct else "<answer>no</answer>"

    return script


def test_gold_agent_solves_and_segments_are_exact(small_tok, eval_set):
    env = rollout.Environment(eval_set, small_tok, search_k=1)
    eps = rollout.run_episodes(ScriptedBackend(small_tok, gold_agent(eval_set)), env,
                               [(p["id"], 0, 5) for p in eval_set], CFG)
    assert len(eps) == len(eval_set)
    for ep in eps:
        rec = rollout.to_record(env, ep, 5, "gold", 1.0, 0)
        p = env.problems[ep.problem_id]
        assert "correct" not in rec  # shards hold what the policy wrote; scores are derived when read
        assert score_answer(rec["answer"], p)["correct"], (p["question"], rec["answer"])
        assert rec["searches"] == (0 if p["category"] == "math" else 2)
        assert "".join(rec["seg_text"]) == small_tok.decode(rec["token_ids"])
        for a, b, t in zip(rec["seg_start"], rec["seg_end"], rec["seg_text"]):
            assert small_tok.decode(rec["token_ids"][a:b]) == t
        kinds = rec["seg_type"]
        assert kinds[0] == "prompt" and kinds[-1] == "eos"
        if p["category"] != "math":
            q = [t for k, t in zip(kinds, rec["seg_text"]) if k == "query"]
            assert q == [f"<search>{x}</search>" for x in json.loads(p["meta"])["plan"]]
            info = [t for k, t in zip(kinds, rec["seg_text"]) if k == "information"]
            assert len(info) == 2 and all(t.startswith("<information>") for t in info)


def test_budget_zero_and_search_after_budget(small_tok, eval_set):
    env = rollout.Environment(eval_set, small_tok, search_k=1)
    always_search = ScriptedBackend(small_tok, lambda ctx: "<search>anything</search>")
    eps = rollout.run_episodes(always_search, env, [(eval_set[0]["id"], 0, 0), (eval_set[0]["id"], 1, 2)], CFG)
    by_budget = {e.budget: e for e in eps}
    assert by_budget[0].termination == "search_after_budget" and by_budget[0].queries == []
    assert by_budget[2].termination == "search_after_budget" and len(by_budget[2].queries) == 2
    text = small_tok.decode(by_budget[2].ids)
    assert text.count(NOTICE) == 1 and text.index(NOTICE) > text.rindex("</information>")


def test_turn_limit_and_context_overflow(small_tok, eval_set):
    env = rollout.Environment(eval_set, small_tok, search_k=1)
    chatter = ScriptedBackend(small_tok, lambda ctx: "<think>" + "la " * 200)
    ep = rollout.run_episodes(chatter, env, [(eval_set[0]["id"], 0, 3)], CFG)[0]
    assert ep.termination == "turn_too_long"
    tight = rollout.SamplingConfig(max_turn_tokens=64, max_total_tokens=150)
    ep = rollout.run_episodes(ScriptedBackend(small_tok, lambda c: "<search>x</search>"), env,
                              [(eval_set[0]["id"], 0, 50)], tight)[0]
    assert ep.termination == "context_overflow"


def test_fork_equals_separate_for_deterministic_policy(small_tok, eval_set):
    env = rollout.Environment(eval_set, small_tok, search_k=1)
    tool = [p for p in eval_set if p["category"] != "math"]
    grid = [0, 1, 2, 3]
    be = ScriptedBackend(small_tok, gold_agent(tool))
    forked = rollout.grid_records(rollout.run_episodes(be, env, [(p["id"], 0, 3) for p in tool], CFG, grid=grid), grid)
    for T in grid:
        sep = rollout.run_episodes(be, env, [(p["id"], 0, T) for p in tool], CFG)
        for e in sep:
            f = forked[(e.problem_id, 0, T)]
            assert f.ids == e.ids and f.termination == e.termination, (e.problem_id, T)


def test_fork_saves_generation(small_tok, eval_set):
    env = rollout.Environment(eval_set, small_tok, search_k=1)
    tool = [p for p in eval_set if p["category"] != "math"]
    grid = [0, 1, 2, 3, 5]
    a = ScriptedBackend(small_tok, random_agent(p_search=0.8))
    torch.manual_seed(0)
    eps = rollout.run_episodes(a, env, [(p["id"], s, 5) for p in tool for s in range(8)], CFG, grid=grid)
    b = ScriptedBackend(small_tok, random_agent(p_search=0.8))
    torch.manual_seed(0)
    for T in grid:
        rollout.run_episodes(b, env, [(p["id"], s, T) for p in tool for s in range(8)], CFG)
    assert sum(e.generated - e.inherited for e in eps) == a.generated_tokens
    assert a.generated_tokens < 0.75 * b.generated_tokens


def _distribution(records, T):
    sub = records[records["T"] == T]
    return sub.searches.value_counts(normalize=True).sort_index(), sub.correct.mean()


def test_fork_and_separate_same_distribution(tmp_path, small_tok, eval_set):
    tool = [p for p in eval_set if p["category"] != "math"]
    env = rollout.Environment(tool, small_tok, search_k=1)
    kw = dict(policy="rand", n=120, grid=[0, 1, 2, 5], temperatures=[1.0], cfg=CFG, seed=3, problems_per_shard=8)
    be = ScriptedBackend(small_tok, random_agent())
    rollout.sample_policy(be, env, tool, out_dir=tmp_path / "fork", mode="fork", **kw)
    rollout.sample_policy(be, env, tool, out_dir=tmp_path / "sep", mode="separate", **kw)
    f, s = evaluate.load_scored(tmp_path / "fork", tool), evaluate.load_scored(tmp_path / "sep", tool)
    for T in kw["grid"]:
        (fd, fc), (sd, sc) = _distribution(f, T), _distribution(s, T)
        assert set(fd.index) == set(sd.index), T
        assert (fd - sd).abs().max() < 0.06, T  # 960 episodes each: sampling noise is ~0.016
        assert abs(fc - sc) < 0.06, T


def test_resume_after_interruption_matches_uninterrupted(tmp_path, small_tok, eval_set, monkeypatch):
    env = rollout.Environment(eval_set, small_tok, search_k=1)
    kw = dict(policy="rand", n=6, grid=[0, 1, 2], temperatures=[0.6, 1.0], cfg=CFG, seed=7, problems_per_shard=2)
    be = ScriptedBackend(small_tok, random_agent())
    rollout.sample_policy(be, env, eval_set, out_dir=tmp_path / "full", **kw)

    real, calls = rollout.write_atomic_parquet, {"n": 0}

    def crash_after_three(rows, path, meta=None):
        if calls["n"] == 3:
            raise KeyboardInterrupt
        calls["n"] += 1
        real(rows, path, meta)

    monkeypatch.setattr(rollout, "write_atomic_parquet", crash_after_three)
    with pytest.raises(KeyboardInterrupt):
        rollout.sample_policy(be, env, eval_set, out_dir=tmp_path / "resumed", **kw)
    assert len(list((tmp_path / "resumed").glob("shard-*.parquet"))) == 3
    monkeypatch.setattr(rollout, "write_atomic_parquet", real)
    stats = rollout.sample_policy(be, env, eval_set, out_dir=tmp_path / "resumed", **kw)
    assert stats["resumed_shards"] == 3
    a = rollout.load_rollouts(tmp_path / "full").drop(columns=[])
    b = rollout.load_rollouts(tmp_path / "resumed")
    pd.testing.assert_frame_equal(a, b)
    # changed settings invalidate old shards instead of mixing them in
    stats = rollout.sample_policy(be, env, eval_set, out_dir=tmp_path / "resumed", **{**kw, "n": 5})
    assert stats["resumed_shards"] == 0
    assert len(rollout.load_rollouts(tmp_path / "resumed")) == len(eval_set) * 5 * 2 * 3 - 5 * 2 * 2 * 4
    # so does a change of the engine's code (the same seed draws other samples through another loop)
    assert rollout.sample_policy(be, env, eval_set, out_dir=tmp_path / "full", **kw)["resumed_shards"] > 0
    monkeypatch.setattr(rollout, "engine_version", lambda: {"hash": "another-engine", "modules": []})
    assert rollout.sample_policy(be, env, eval_set, out_dir=tmp_path / "full", **kw)["resumed_shards"] == 0


def test_math_is_evaluated_at_T0_only(tmp_path, small_tok, eval_set):
    env = rollout.Environment(eval_set, small_tok, search_k=1)
    be = ScriptedBackend(small_tok, gold_agent(eval_set))
    rollout.sample_policy(be, env, eval_set, policy="gold", out_dir=tmp_path, n=2, grid=[0, 1, 2],
                          temperatures=[1.0], cfg=CFG, seed=0)
    df = evaluate.load_scored(tmp_path, eval_set)
    assert set(df[df.category == "math"]["T"]) == {0}
    assert set(df[df.category == "bridge"]["T"]) == {0, 1, 2}
    assert df[(df.category != "math") & (df["T"] == 2)].correct.all()
