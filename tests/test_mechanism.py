"""Mechanism analyses: segment bookkeeping, base-model surprisal, strategy diversity, the plan/reasoning swap."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from passkt import evaluate, models
from passkt import mechanism as mech
from passkt.backends import ScriptedBackend
from passkt.protocol import NOTICE, SYSTEM_PROMPT
from passkt.rollout import Environment, SamplingConfig, run_episodes, to_record
from passkt.world import build_world, make_problems, world_paragraphs

CFG = SamplingConfig(temperature=1.0, max_turn_tokens=64, max_total_tokens=1024)


@pytest.fixture(scope="module")
def env():
    world = build_world(5, 100, 60, 60)
    ps = make_problems(world, 5, n_pretrain=6, n_train=4, n_eval_per_category=3)
    problems = ps["eval_bridge"] + ps["eval_comparison"]
    texts = (
        [t for _, t in world_paragraphs(world, "eval")] + [p["question"] for p in problems] + [SYSTEM_PROMPT]
    )
    return Environment(problems, models.build_tokenizer(texts, 400), search_k=2)


def _agent(n_searches: int, answer: str = "1932"):
    """Protocol-following script: n searches (each with some reasoning), then an answer."""

    def script(ctx: str) -> str:
        done = ctx.count("</search><information>")  # the system prompt names the tags too
        if done < n_searches and NOTICE not in ctx:
            return f"<think>I need item {done}.</think><search>The Wild Kingdom  part {done}</search>"
        return f"<think>So it is {answer}.</think><answer>{answer}</answer>"

    return script


def _records(env, budgets=(0, 1, 2, 3)):
    pid = sorted(env.problems)[0]
    recs = []
    for s, b in enumerate(budgets):
        ep = run_episodes(ScriptedBackend(env.tok, _agent(b)), env, [(pid, s, b)], CFG)[0]
        recs.append(to_record(env, ep, b, "rl", 1.0, 0))
    return evaluate.score_frame(pd.DataFrame(recs), env.problems)


@pytest.fixture(scope="module")
def tiny_model(env):
    torch.manual_seed(0)
    from transformers import Qwen2ForCausalLM

    cfg = models.tiny_config(
        env.tok, hidden=32, layers=1, heads=2, kv_heads=1, intermediate=64, max_positions=1024
    )
    return Qwen2ForCausalLM(cfg).eval()


# ----------------------------------------------------------------------------- records and segments


def test_engine_record_segments_decode_exactly(env):
    df = _records(env)
    for rec in df.to_dict("records"):
        ids = list(rec["token_ids"])
        assert rec["seg_start"][0] == 0 and rec["seg_end"][-1] == len(ids)
        assert all(
            b == a for a, b in zip(rec["seg_start"][1:], rec["seg_end"][:-1], strict=True)
        )  # contiguous
        for a, b, text in zip(rec["seg_start"], rec["seg_end"], rec["seg_text"], strict=True):
            assert env.tok.decode(ids[a:b]) == text
        assert "".join(rec["seg_text"]) == env.tok.decode(ids)
        queries = [t for k, t in zip(rec["seg_type"], rec["seg_text"], strict=True) if k == "query"]
        assert [
            " ".join(t.removeprefix("<search>").removesuffix("</search>").split()) for t in queries
        ] == rec["queries"]
        assert rec["correct"] and rec["searches"] == rec["T"]
        kinds = mech.token_kinds(rec)
        assert (kinds == 1).sum() == sum(
            b - a
            for k, a, b in zip(rec["seg_type"], rec["seg_start"], rec["seg_end"], strict=True)
            if k == "query"
        )


def test_surprisal_matches_manual_computation(env, tiny_model):
    rec = _records(env, budgets=(2,)).iloc[0]
    got = mech.segment_surprisal(tiny_model, _records(env, budgets=(2,)), batch_size=1, progress=False).iloc[
        0
    ]
    ids = torch.tensor([list(rec["token_ids"])])
    with torch.no_grad():
        logp = torch.log_softmax(tiny_model(ids).logits[0].double(), -1)
    want = {"query": [0.0, 0], "reasoning": [0.0, 0]}
    for kind, a, b in zip(rec["seg_type"], rec["seg_start"], rec["seg_end"], strict=True):
        key = {"query": "query", "reasoning": "reasoning", "answer": "reasoning"}.get(kind)
        for t in range(max(a, 1), b) if key else ():
            want[key][0] -= float(logp[t - 1, ids[0, t]])
            want[key][1] += 1
    assert got["query_tokens"] == want["query"][1] > 0 and got["reasoning_tokens"] == want["reasoning"][1] > 0
    assert got["query_nats"] == pytest.approx(want["query"][0], rel=1e-5)
    assert got["reasoning_nats"] == pytest.approx(want["reasoning"][0], rel=1e-5)
    # a random model over ~400 tokens: about log(V) nats per token
    assert 4.0 < got["reasoning_nats"] / got["reasoning_tokens"] < 8.0


def test_surprisal_batching_does_not_change_sums(env, tiny_model):
    df = _records(env, budgets=(3, 0, 2, 1, 1))
    one = mech.segment_surprisal(tiny_model, df, batch_size=1, progress=False)
    four = mech.segment_surprisal(tiny_model, df, batch_size=4, progress=False)
    assert len(set(map(len, df["token_ids"]))) > 1  # padding really happens
    for col in ("query_nats", "reasoning_nats"):
        np.testing.assert_allclose(one[col], four[col], rtol=1e-5)
    assert (one["query_tokens"] == four["query_tokens"]).all()
    assert one.loc[1, "query_tokens"] == 0 and one.loc[0, "query_tokens"] > one.loc[3, "query_tokens"]


def test_exclude_tags_drops_exactly_the_tag_tokens(env, tiny_model):
    df = _records(env, budgets=(2,))
    full = mech.segment_surprisal(tiny_model, df, batch_size=2, progress=False).iloc[0]
    bare = mech.segment_surprisal(
        tiny_model, df, batch_size=2, tokenizer=env.tok, exclude_tags=True, progress=False
    ).iloc[0]
    assert full["query_tokens"] - bare["query_tokens"] == 2 * 2  # <search> and </search> are atomic here
    assert full["reasoning_tokens"] - bare["reasoning_tokens"] == 2 * 3 + 2  # 3 think blocks, 1 answer block
    with pytest.raises(ValueError, match="tokenizer"):
        mech.segment_surprisal(tiny_model, df, batch_size=2, exclude_tags=True, progress=False)
    # the tag-free columns are there whatever exclude_tags says, and are the excluded sums
    split = mech.segment_surprisal(tiny_model, df, batch_size=2, tokenizer=env.tok, progress=False).iloc[0]
    for seg in ("query", "reasoning"):
        assert split[f"{seg}_tokens"] == full[f"{seg}_tokens"]
        assert split[f"{seg}_nats"] == pytest.approx(full[f"{seg}_nats"], rel=1e-5)
        assert split[f"{seg}_notag_tokens"] == bare[f"{seg}_tokens"]
        assert split[f"{seg}_notag_nats"] == pytest.approx(bare[f"{seg}_nats"], rel=1e-5)
    assert math.isnan(full["query_notag_nats"])  # no tokenizer: no tag split


def _did_frame(policy, rows):
    """rows: (problem_id, query nats, query tokens, reasoning nats, reasoning tokens) per episode."""
    return pd.DataFrame(
        [
            {"problem_id": pid, "category": "bridge", "policy": policy, "sample": i, "correct": True,
             "query_notag_nats": qn, "query_notag_tokens": qt, "reasoning_notag_nats": rn,
             "reasoning_notag_tokens": rt}
            for i, (pid, qn, qt, rn, rt) in enumerate(rows)
        ]
    )


def test_surprisal_did_on_known_sums():
    rl = _did_frame("rl", [("p1", 1.0, 2, 6.0, 3), ("p2", 1.0, 2, 2.0, 1)])  # gap = 8/4 - 2/4 = 1.5
    base = _did_frame("base", [("p1", 2.0, 2, 3.0, 3), ("p3", 0.0, 2, 2.0, 2)])  # gap = 5/5 - 2/4 = 0.5
    d = mech.surprisal_did(pd.concat([rl, base]), n_boot=300, seed=0, ci=0.9).set_index("category")
    row = d.loc["bridge"]
    assert row["gap_a"] == pytest.approx(1.5) and row["gap_b"] == pytest.approx(0.5)
    assert row["did"] == pytest.approx(1.0) and row["n_problems"] == 3
    assert row["did_ci_low"] <= row["did_tost_low"] <= row["did_tost_high"] <= row["did_ci_high"]
    assert d.loc["all", "did"] == pytest.approx(1.0)
    flat = mech.flat_stats(did=d.reset_index())
    assert flat["ppl_did.bridge.rl_vs_base.nats"] == pytest.approx(1.0)
    assert flat["ppl_did.bridge.base.gap.nats"] == pytest.approx(0.5)
    assert {"ppl_did.all.rl_vs_base.nats.tost_high", "ppl_did.all.rl_vs_base.nats.p"} <= set(flat)
    # identical policies: a difference in differences of exactly 0 on every resample
    same = mech.surprisal_did(pd.concat([rl, rl.assign(policy="base")]), n_boot=50).set_index("category")
    assert same.loc["bridge", ["did", "did_ci_low", "did_ci_high"]].tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="notag"):
        mech.surprisal_did(rl.drop(columns="query_notag_nats"), n_boot=10)
    assert mech.surprisal_did(rl, n_boot=10).empty  # base absent


def test_perplexity_summary_is_token_weighted():
    per = pd.DataFrame(
        {
            "problem_id": ["p1", "p1", "p2", "p3"],
            "category": ["bridge", "bridge", "bridge", "comparison"],
            "policy": "rl",
            "sample": [0, 1, 0, 0],
            "correct": True,
            "query_nats": [1.0, 1.0, 2.0, 0.0],
            "query_tokens": [2, 2, 1, 0],
            "reasoning_nats": [3.0, 0.0, 9.0, 4.0],
            "reasoning_tokens": [3, 0, 3, 4],
        }
    )
    s = mech.perplexity_summary(per, n_boot=200, seed=0).set_index(["category", "policy", "segment"])
    assert s.loc[("bridge", "rl", "query"), "nats"] == pytest.approx(4 / 5)
    assert s.loc[("all", "rl", "reasoning"), "nats"] == pytest.approx(16 / 10)
    assert s.loc[("all", "rl", "reasoning"), "ppl"] == pytest.approx(math.exp(1.6))
    assert s.loc[("all", "rl", "reasoning_minus_query"), "nats"] == pytest.approx(1.6 - 4 / 5)
    assert math.isnan(s.loc[("comparison", "rl", "query"), "nats"])  # no query tokens at all
    row = s.loc[("all", "rl", "reasoning")]
    assert (
        row["nats_ci_low"] <= row["nats"] <= row["nats_ci_high"] and row["nats_ci_low"] < row["nats_ci_high"]
    )
    assert row["ppl_ci_low"] == pytest.approx(math.exp(row["nats_ci_low"]))
    assert s.loc[("all", "rl", "reasoning"), "n_problems"] == 3


# ----------------------------------------------------------------------------- diversity


def _div_frame(policy, seqs_by_problem, category="bridge"):
    rows = [
        {"problem_id": pid, "category": category, "policy": policy, "sample": i, "queries": list(q)}
        for pid, seqs in seqs_by_problem.items()
        for i, q in enumerate(seqs)
    ]
    return pd.DataFrame(rows)


def test_diversity_and_novelty_on_known_sequences():
    A, B, C, D = ["Alpha"], ["beta", "gamma"], ["c"], ["d", "e"]
    base = _div_frame("base", {"p1": [A, A, B, []], "p2": [A, A, A, A]})
    rl = _div_frame("rl", {"p1": [["ALPHA "], C, C, D], "p2": [A, B, B, B]})  # "ALPHA " normalises to "alpha"
    d = mech.diversity({"base": base, "rl": rl}, n_boot=100, seed=1).set_index(["category", "policy"])
    assert d.loc[("bridge", "base"), "unique"] == pytest.approx((3 + 1) / 2)
    assert d.loc[("bridge", "rl"), "unique"] == pytest.approx((3 + 2) / 2)
    assert d.loc[("bridge", "rl"), "novelty"] == pytest.approx((3 + 3) / 8)  # episode-weighted
    assert d.loc[("bridge", "rl"), "overlap"] == pytest.approx(2 / 8)
    assert d.loc[("bridge", "rl"), "novelty_unique"] == pytest.approx((2 + 1) / (3 + 2))  # sequence-weighted
    assert d.loc[("bridge", "base"), "novelty"] == 0.0
    assert d.loc[("all", "rl"), "novelty"] == pytest.approx(6 / 8)
    assert d.loc[("bridge", "rl"), "n_per_problem"] == 4
    # the null: base's reference half = samples 0, 2; held-out half = samples 1, 3
    # p1: reference {A, B}, held-out [A, ()] -> 1 novel; p2: reference {A}, held-out [A, A] -> 0 novel
    assert d.loc[("bridge", "base"), "novelty_half"] == pytest.approx(1 / 4)
    # rl against the reference halves: p1 ["alpha", C, C, D] -> 3 novel; p2 [A, B, B, B] -> 3 novel
    assert d.loc[("bridge", "rl"), "novelty_half"] == pytest.approx(6 / 8)
    assert d.loc[("bridge", "rl"), "novelty_excess"] == pytest.approx(6 / 8 - 1 / 4)
    assert d.loc[("bridge", "rl"), "unique_share"] == pytest.approx((3 + 2) / 8)
    assert d.loc[("bridge", "rl"), "unique_share_diff"] == pytest.approx((3 + 2) / 8 - (3 + 1) / 8)
    row = d.loc[("bridge", "rl")]
    assert row["novelty_excess_ci_low"] <= row["novelty_excess_tost_low"] <= row["novelty_excess_tost_high"]
    assert d.loc[("bridge", "base"), "novelty_excess"] == 0.0


def test_diversity_rejects_unequal_n_and_missing_base():
    base = _div_frame("base", {"p1": [["a"], ["b"]]})
    sft = _div_frame("sft", {"p1": [["a"], ["b"], ["c"]]})
    with pytest.raises(ValueError, match="'sft' has 3 episodes for problem 'p1'"):
        mech.diversity({"base": base, "sft": sft}, n_boot=10)
    with pytest.raises(ValueError, match="reference policy 'base'"):
        mech.diversity({"sft": sft}, n_boot=10)


def test_combine_replicates_is_the_two_level_bootstrap():
    rng = np.random.default_rng(0)
    r0, r1 = (0.3, rng.normal(0.3, 0.01, 200)), (0.7, rng.normal(0.7, 0.01, 200))
    one = mech.combine_replicates([r0], mech.seed_draws(0, "t", 200, 1))
    assert one[0] == 0.3 and np.array_equal(one[1], r0[1])  # one replicate: its own bootstrap
    est, reps = mech.combine_replicates([r0, r1], mech.seed_draws(0, "t", 200, 2))
    assert est == pytest.approx(0.5)
    # the replicates disagree far beyond their problem-level spread: the interval must carry that (drawing
    # both replicates 0 or both 1 gives 0.3 or 0.7), not the ~0.01 of resampling problems alone
    lo, hi = np.quantile(reps, [0.025, 0.975])
    assert lo < 0.32 and hi > 0.68
    with pytest.raises(ValueError, match="do not match"):
        mech.combine_replicates([r0, r1], mech.seed_draws(0, "t", 100, 2))


def _three_replicates(frame_of):
    """A pooled frame of a trained policy: replicate r's episodes from frame_of(r)."""
    return pd.concat([frame_of(r).assign(replicate=r) for r in range(3)], ignore_index=True)


def test_diversity_pools_training_replicates():
    A, B, C, D = ["a"], ["b"], ["c"], ["d"]
    base = _div_frame("base", {"p1": [A, A, B, B], "p2": [A, B, A, B], "p3": [C, C, C, C]})
    rl_of = [_div_frame("rl", {"p1": [A, C, C, D], "p2": [A, A, A, A], "p3": [C, D, C, D]}),
             _div_frame("rl", {"p1": [A, A, A, A], "p2": [B, B, C, C], "p3": [D, D, D, D]}),
             _div_frame("rl", {"p1": [D, D, D, D], "p2": [A, B, A, B], "p3": [C, C, C, C]})]
    kw = dict(n_boot=400, seed=3, ci=0.95)
    single = [mech.diversity({"base": base, "rl": rl_of[r]}, **kw).set_index(["category", "policy"]) for r in range(3)]
    pooled = mech.diversity({"base": base, "rl": _three_replicates(lambda r: rl_of[r])}, **kw)
    pooled = pooled.set_index(["category", "policy"])
    row = pooled.loc[("bridge", "rl")]
    assert row["n_seeds"] == 3
    for col in ("novelty_excess", "unique_share_diff", "novelty", "unique"):  # the mean of each replicate's own
        assert row[col] == pytest.approx(np.mean([s.loc[("bridge", "rl"), col] for s in single]))
    assert [float(x) for x in row["novelty_excess_per_replicate"].split(";")] == pytest.approx(
        [s.loc[("bridge", "rl"), "novelty_excess"] for s in single])
    assert pooled.loc[("bridge", "base"), "novelty_half"] == single[0].loc[("bridge", "base"), "novelty_half"]
    # three identical replicates: exactly the one run's estimates and intervals
    same = mech.diversity({"base": base, "rl": _three_replicates(lambda r: rl_of[0])}, **kw).set_index(["category", "policy"])
    cols = ["novelty_excess", "novelty_excess_ci_low", "novelty_excess_ci_high", "novelty_excess_tost_low",
            "unique_share_diff_ci_high"]
    assert same.loc[("bridge", "rl"), cols].tolist() == pytest.approx(single[0].loc[("bridge", "rl"), cols].tolist())
    flat = mech.flat_stats(div=pooled.reset_index())
    assert flat["novelty_excess.bridge.rl.frac.n_seeds"] == 3.0
    vals = [s.loc[("bridge", "rl"), "novelty_excess"] for s in single]
    assert flat["novelty_excess.bridge.rl.frac.seed_sd"] == pytest.approx(np.std(vals, ddof=1))
    assert flat["novelty_excess.bridge.rl.frac.seed_min"] == pytest.approx(min(vals))
    with pytest.raises(ValueError, match="expected"):  # a named replicate missing from the frames
        mech.diversity({"base": base, "rl": _three_replicates(lambda r: rl_of[r])}, n_boot=10, replicates=[0, 1, 2, 3])
    sft = _three_replicates(lambda r: rl_of[r].assign(policy="sft"))
    with pytest.raises(ValueError, match="different training replicates"):
        mech.diversity({"base": base, "rl": _three_replicates(lambda r: rl_of[r]), "sft": sft[sft.replicate < 2]}, n_boot=10)


def test_surprisal_did_pools_training_replicates():
    base = _did_frame("base", [("p1", 2.0, 2, 3.0, 3), ("p3", 0.0, 2, 2.0, 2)])  # gap 0.5
    rl_of = [_did_frame("rl", [("p1", 1.0, 2, 6.0, 3), ("p2", 1.0, 2, 2.0, 1)]),  # gap 1.5
             _did_frame("rl", [("p2", 1.0, 1, 1.0, 1)]),  # gap 0
             _did_frame("rl", [("p3", 2.0, 2, 4.0, 2)])]  # gap 1
    pooled = pd.concat([_three_replicates(lambda r: rl_of[r]), base.assign(replicate=-1)], ignore_index=True)
    d = mech.surprisal_did(pooled, n_boot=300, seed=0, ci=0.9).set_index("category")
    row = d.loc["bridge"]
    assert row["n_seeds"] == 3 and row["n_problems"] == 3
    assert row["gap_a"] == pytest.approx((1.5 + 0 + 1) / 3) and row["gap_b"] == pytest.approx(0.5)
    assert row["did"] == pytest.approx((1.5 + 0 + 1) / 3 - 0.5)
    assert [float(x) for x in row["did_per_replicate"].split(";")] == pytest.approx([1.0, -0.5, 0.5])
    flat = mech.flat_stats(did=d.reset_index())
    assert flat["ppl_did.bridge.rl_vs_base.nats.n_seeds"] == 3.0
    assert flat["ppl_did.bridge.rl.gap.nats.n_seeds"] == flat["ppl_did.bridge.base.gap.nats.n_seeds"] == 3.0
    # a replicate without a scored episode is an error when the replicates are named, never a silent drop
    assert mech.surprisal_did(pooled, n_boot=20, replicates=[0, 1, 2]).set_index("category").loc["bridge", "n_seeds"] == 3
    with pytest.raises(ValueError, match=r"training replicate\(s\) \[3\]"):
        mech.surprisal_did(pooled, n_boot=20, replicates=[0, 1, 2, 3])
    # identical replicates over the same problems: the one run's interval
    same = pd.concat([_three_replicates(lambda r: rl_of[0]), base], ignore_index=True)
    one = mech.surprisal_did(pd.concat([rl_of[0], base]), n_boot=300, seed=0, ci=0.9).set_index("category")
    three = mech.surprisal_did(same, n_boot=300, seed=0, ci=0.9).set_index("category")
    cols = ["did", "did_ci_low", "did_ci_high", "did_tost_low", "did_tost_high"]
    assert three.loc["bridge", cols].tolist() == pytest.approx(one.loc["bridge", cols].tolist())


# ----------------------------------------------------------------------------- swap


def _plans(env, policy, n_queries, empty=False):
    rows = []
    for pid in sorted(env.problems):
        p = env.problems[pid]
        for s in range(3):
            qs = [f"{p['entities'][i % len(p['entities'])]} {policy}" for i in range(n_queries)]
            rows.append({"problem_id": pid, "category": p["category"], "sample": s, "queries": qs})
        if empty:
            rows.append({"problem_id": pid, "category": p["category"], "sample": 3, "queries": []})  # never searched
    return pd.DataFrame(rows)


def _reasoner(env, rule, seen):
    """Answers gold when rule(context) holds, else a wrong answer; records the contexts it saw."""

    def script(ctx):
        seen.append(ctx)
        pid = next(p for p, q in env.problems.items() if q["question"] in ctx)
        return f"<think>ok</think><answer>{env.problems[pid]['answer'] if rule(ctx) else 'nobody'}</answer>"

    return ScriptedBackend(env.tok, script)


def test_swap_grid_and_shares(env):
    plans = {"base": _plans(env, "base", 1), "rl": _plans(env, "rl", 2)}
    seen_b, seen_r = [], []
    reasoners = {
        "base": _reasoner(
            env, lambda c: c.count("</search><information>") >= 2, seen_b
        ),  # succeeds on RL's plans only
        "rl": _reasoner(env, lambda c: True, seen_r),
    }  # always right
    out = mech.swap_experiment(plans, reasoners, env, CFG, max_plans_per_problem=2, seed=0, progress=False)
    n_prob = len(env.problems)
    assert len(out) == 2 * 2 * 2 * n_prob  # reasoners x plan policies x m plans x problems
    assert (out["termination"] == "answered").all()
    # the reasoner saw the plan's queries, the environment's exact information, then the notice
    pid = sorted(env.problems)[0]
    q = f"{env.problems[pid]['entities'][0]} rl"
    ctx = next(c for c in seen_b if env.problems[pid]["question"] in c and "rl</search>" in c)
    assert f"<search>{q}</search>" + env.tok.decode(env.info_ids(pid, q)) in ctx and ctx.endswith(NOTICE)
    grid, shares = mech.swap_summary(out, n_boot=100, seed=0)
    g = grid.set_index(["category", "plan_policy", "reasoner"])["success"]
    assert g[("all", "base", "base")] == 0 and g[("all", "rl", "base")] == 1
    assert g[("all", "base", "rl")] == 1 and g[("all", "rl", "rl")] == 1
    sh = shares.set_index("category")
    # gain 1 = plan ½[(1 - 0) + (1 - 1)] + reasoning ½[(1 - 0) + (1 - 1)]: two absolute parts, no ratio
    assert sh.loc["all", "plan_effect"] == pytest.approx(0.5) and sh.loc["all", "reasoning_effect"] == pytest.approx(0.5)
    assert sh.loc["all", "gain"] == pytest.approx(sh.loc["all", "plan_effect"] + sh.loc["all", "reasoning_effect"])
    assert set(sh.index) == {"bridge", "comparison", "all"}


def test_swap_reasoning_only_and_zero_gain(env):
    plans = {"base": _plans(env, "base", 1), "rl": _plans(env, "rl", 1)}
    good = {"base": _reasoner(env, lambda c: False, []), "rl": _reasoner(env, lambda c: True, [])}
    out = mech.swap_experiment(plans, good, env, CFG, max_plans_per_problem=1, seed=0, progress=False)
    _, shares = mech.swap_summary(out, n_boot=50, seed=0)
    assert shares.set_index("category").loc["all", "plan_effect"] == 0.0
    assert shares.set_index("category").loc["all", "reasoning_effect"] == 1.0
    same = {"base": _reasoner(env, lambda c: True, []), "rl": _reasoner(env, lambda c: True, [])}
    out = mech.swap_experiment(plans, same, env, CFG, max_plans_per_problem=1, seed=0, progress=False)
    _, shares = mech.swap_summary(out, n_boot=50, seed=0)
    row = shares.set_index("category").loc["all"]  # no gain: both parts are 0, nothing divides by it
    assert (row["plan_effect"], row["reasoning_effect"], row["gain"]) == (0.0, 0.0, 0.0)


def test_select_plans_is_seeded_and_capped():
    df = pd.DataFrame(
        {"problem_id": "p", "category": "bridge", "sample": range(10), "queries": [["q"]] * 8 + [[], []]}
    )
    a = mech.select_plans(df, 3, seed=0, policy="rl")
    assert len(a) == 3 and a["sample"].is_monotonic_increasing
    assert a["sample"].tolist() == mech.select_plans(df, 3, seed=0, policy="rl")["sample"].tolist()
    every = mech.select_plans(df, 10, seed=0, policy="rl")  # episodes that never searched are plans too
    assert every["sample"].tolist() == list(range(10)) and every["queries"].tolist()[-1] == []


def test_the_empty_plan_is_kept_and_replayed_as_a_budget_0_episode(env):
    pid = sorted(env.problems)[0]
    ep = mech.replay_episode(env, pid, [], sample=0)
    assert [seg[0] for seg in ep.segments] == ["prompt", "notice"] and ep.budget == 0 and ep.queries == []
    plans = {"base": _plans(env, "base", 1, empty=True), "rl": _plans(env, "rl", 1, empty=True)}
    reasoners = {"base": _reasoner(env, lambda c: "</search><information>" in c, []), "rl": _reasoner(env, lambda c: True, [])}
    out = mech.swap_experiment(plans, reasoners, env, CFG, max_plans_per_problem=4, seed=0, progress=False)
    assert (out["n_queries"] == 0).sum() == 2 * 2 * len(env.problems)  # one empty plan per problem, policy, reasoner
    no_plan = out[(out["n_queries"] == 0) & (out["reasoner"] == "base")]
    assert (no_plan["termination"] == "answered").all() and not no_plan["correct"].any()


def _own_and_replays(broken: bool) -> tuple[dict, pd.DataFrame]:
    """rl's own rollouts (4 episodes on each of 40 problems) and replays of 2 of its plans per problem by rl and
    base. broken=False: each replay scores as the episode it replays; broken=True: every replay fails (a replay
    context the policy cannot use)."""
    rng = np.random.default_rng(3)
    own = pd.DataFrame(
        [(f"p{i:02d}", s, bool(rng.random() < (i % 5) / 4)) for i in range(40) for s in range(4)],
        columns=["problem_id", "sample", "correct"],
    )
    plans = own[own["sample"] < 2]
    rows = [
        {"problem_id": r.problem_id, "plan_policy": "rl", "reasoner": reasoner, "plan_sample": r.sample,
         "correct": r.correct and not broken and reasoner == "rl"}
        for r in plans.itertuples() for reasoner in ("rl", "base")
    ]
    return {"rl": own}, pd.DataFrame(rows)


def test_swap_diagonal_check_passes_a_consistent_replay_and_flags_an_inconsistent_one():
    dfs, good = _own_and_replays(broken=False)
    chk = mech.swap_diagonal_check(good, dfs, n_boot=500, seed=0)
    row = chk.set_index("policy").loc["rl"]
    assert list(chk["policy"]) == ["rl"] and row["n_problems"] == 40  # base is no plan policy: no diagonal
    assert row["own"] == pytest.approx(dfs["rl"]["correct"].mean())
    assert row["replay"] == pytest.approx(good[good["reasoner"] == "rl"]["correct"].mean())
    assert row["diff"] == pytest.approx(row["replay"] - row["own"])
    assert row["diff_ci_low"] <= 0 <= row["diff_ci_high"] and not row["flagged"]
    dfs, bad = _own_and_replays(broken=True)
    row = mech.swap_diagonal_check(bad, dfs, n_boot=500, seed=0).set_index("policy").loc["rl"]
    assert row["replay"] == 0 and row["diff"] == -row["own"] and row["flagged"] and row["diff_ci_high"] < 0
    flat = mech.flat_stats(swap_diagonal=mech.swap_diagonal_check(bad, dfs, n_boot=500, seed=0))
    assert set(flat) == {"swap.diagonal.rl.diff", "swap.diagonal.rl.ci_low", "swap.diagonal.rl.ci_high"}
    assert flat["swap.diagonal.rl.diff"] == pytest.approx(row["diff"])
    with pytest.raises(ValueError, match="no rollouts for policy 'rl'"):
        mech.swap_diagonal_check(good, {"base": dfs["rl"]}, n_boot=10)
    with pytest.raises(ValueError, match="no rollouts for problem 'p39'"):
        mech.swap_diagonal_check(good, {"rl": dfs["rl"][dfs["rl"]["problem_id"] != "p39"]}, n_boot=10)


# ----------------------------------------------------------------------------- flat stats


def test_flat_stats_key_names():
    per = pd.DataFrame(
        {
            "problem_id": ["p1", "p2"],
            "category": ["bridge", "comparison"],
            "policy": "rl",
            "sample": 0,
            "correct": True,
            "query_nats": [1.0, 2.0],
            "query_tokens": [2, 2],
            "reasoning_nats": [3.0, 4.0],
            "reasoning_tokens": [3, 3],
        }
    )
    ppl = mech.perplexity_summary(per, n_boot=20)
    div = mech.diversity(
        {"base": _div_frame("base", {"p1": [["a"]]}), "rl": _div_frame("rl", {"p1": [["b"]]})}, n_boot=20
    )
    grid = pd.DataFrame(
        [
            {"category": "bridge", "plan_policy": p, "reasoner": r, "success": 0.5}
            for p in ("base", "rl")
            for r in ("base", "rl")
        ]
    )
    shares = pd.DataFrame(
        [
            {
                "category": "bridge",
                **{f"{part}{s}": v for part in ("plan_effect", "reasoning_effect", "gain")
                   for s, v in (("", 0.1), ("_ci_low", 0.0), ("_ci_high", 0.2))},
            }
        ]
    )
    s = mech.flat_stats(ppl, div, grid, shares, ci=0.9)
    ci = lambda k: {k, k + ".ci_low", k + ".ci_high"}  # noqa: E731
    effect = lambda k: ci(k) | {k + ".tost_low", k + ".tost_high", k + ".p"}  # noqa: E731
    want = {"meta.mechanism_ci"}
    for cat in ("bridge", "comparison", "all"):
        for seg in ("query", "reasoning"):
            want |= ci(f"ppl.{cat}.rl.{seg}.nats") | ci(f"ppl.{cat}.rl.{seg}.ppl")
        want |= ci(f"ppl.{cat}.rl.reasoning_minus_query.nats")
    for cat in ("bridge", "all"):
        for pol in ("base", "rl"):
            want |= (
                ci(f"diversity.{cat}.{pol}.unique")
                | ci(f"novelty.{cat}.{pol}.frac")
                | ci(f"overlap.{cat}.{pol}.frac")
                | ci(f"diversity.{cat}.{pol}.unique_share")
                | ci(f"novelty_half.{cat}.{pol}.frac")
            )
        for k in (f"diversity_diff.{cat}.rl_vs_base.share", f"novelty_excess.{cat}.rl.frac"):  # + the replicates'
            want |= effect(k) | {k + s for s in (".n_seeds", ".seed_sd", ".seed_min", ".seed_max")}
    want |= ci("swap.bridge.plan_effect") | ci("swap.bridge.reasoning_effect") | ci("swap.bridge.gain")
    want |= {f"swap.bridge.plan_{p}.reason_{r}.success" for p in ("base", "rl") for r in ("base", "rl")}
    assert set(s) == want
    assert all(type(v) is float for v in s.values())
    assert s["novelty.bridge.rl.frac"] == 1.0 and s["overlap.bridge.rl.frac"] == 0.0
    assert s["ppl.all.rl.query.ppl"] == pytest.approx(math.exp(3 / 4))
