"""Paper-profile sampling details that a CPU can check: per-category turn limits, the engine's sampling log-probs
carried into GRPO's rollout batch (NaN on environment tokens), and the importance ratio they give TRL."""

import copy
import math

import pytest
import torch

from passkt import grpo
from passkt.backends import Generation, ScriptedBackend
from passkt.rollout import Environment, SamplingConfig, run_episodes


class LogprobBackend(ScriptedBackend):
    """A scripted engine that also reports a sampling log-prob per token, as vLLM does (value: -(i+1)/100)."""

    def generate(self, contexts, max_new_tokens, temperature, top_p):
        return [Generation(g.token_ids, g.hit_limit, [-(i + 1) / 100 for i in range(len(g.token_ids))])
                for g in super().generate(contexts, max_new_tokens, temperature, top_p)]


def _by_category(problems):
    out = {}
    for p in problems:
        out.setdefault(p["category"], p)
    return out


def test_math_turns_get_their_own_limit_in_a_mixed_batch(small_tok, eval_set):
    one = _by_category(eval_set)
    assert set(one) == {"comparison", "bridge", "math"}
    env = Environment(list(one.values()), small_tok, search_k=1)
    backend = ScriptedBackend(small_tok, lambda ctx: "<think>" + "word " * 200 + "</think>")  # never stops itself
    jobs = [(p["id"], 0, 2) for p in one.values()]
    cfg = SamplingConfig(max_turn_tokens=8, math_max_turn_tokens=20, max_total_tokens=2048, search_k=1)
    eps = {e.problem_id: e for e in run_episodes(backend, env, jobs, cfg)}
    for cat, p in one.items():
        e = eps[p["id"]]
        assert e.termination == "turn_too_long" and e.generated == (20 if cat == "math" else 8), (cat, e.generated)
    same = SamplingConfig(max_turn_tokens=8, max_total_tokens=2048, search_k=1)  # 0: math shares the limit
    assert {e.generated for e in run_episodes(backend, env, jobs, same)} == {8}


def _search_then_answer(train):
    """A scripted policy: one search, then the right answer."""

    def script(ctx):
        q = next(p for p in train if p["question"] in ctx)
        if "<information>" in ctx.split("<|im_start|>assistant\n")[-1]:
            return f"<answer>{q['answer']}</answer>"
        return f"<think>go</think><search>{q['question'][:20]}</search>"

    return script


def test_rollout_batch_carries_sampling_logprobs_nan_on_environment_tokens(small_tok, eval_set):
    train = [p for p in eval_set if p["category"] != "math"][:3]
    script = _search_then_answer(train)
    env = Environment(train, small_tok, search_k=1)
    s = grpo.GRPOSettings(group_size=2, T_train=2, max_turn_tokens=48, max_total_tokens=1024)
    index = grpo.prompt_index(env)
    prompts = [t for t in index for _ in range(2)]
    out = grpo.make_rollout_func(env, s, lambda tr: LogprobBackend(small_tok, script))(prompts, None)
    assert out["logprobs"] is not None and len(out["logprobs"]) == len(prompts)
    for lps, mask, ids in zip(out["logprobs"], out["env_mask"], out["completion_ids"]):
        assert len(lps) == len(mask) == len(ids)
        assert all(math.isnan(v) for v, m in zip(lps, mask) if not m)  # retrieved text, notices, appended EOS
        assert all(not math.isnan(v) and v < 0 for v, m in zip(lps, mask) if m)
        assert 0 < sum(mask) < len(mask)
    plain = grpo.make_rollout_func(env, s, lambda tr: ScriptedBackend(small_tok, script))(prompts, None)
    assert plain["logprobs"] is None  # an engine without log-probs: TRL scores with the training model


class Bf16Engine(ScriptedBackend):
    """The scripted turns, reported with the log-probs a bf16 copy of ``model`` gives them (as vLLM in bf16 would)."""

    def __init__(self, tok, script, model):
        super().__init__(tok, script)
        self.low = copy.deepcopy(model).to(torch.bfloat16)

    def generate(self, contexts, max_new_tokens, temperature, top_p):
        out = []
        for c, g in zip(contexts, super().generate(contexts, max_new_tokens, temperature, top_p)):
            out.append(Generation(g.token_ids, g.hit_limit, _token_logps(self.low, c + g.token_ids)[len(c):]))
        return out


def _token_logps(model, ids):
    """log p(ids[i] | ids[:i]) for i >= 1 (position 0: NaN), in float32 from ``model``'s logits."""
    with torch.no_grad():
        lp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0, :-1].float(), -1)
    return [math.nan] + lp.gather(-1, torch.tensor(ids[1:])[:, None]).squeeze(-1).tolist()


def test_bf16_engine_logprobs_reach_trl_aligned_and_differ_from_the_fp32_trainer(small_tok, eval_set):
    """What TRL's correction reads: our rollout batch's ``logprobs`` are the engine's value of each model token in
    ``completion_ids`` (position by position) and NaN elsewhere; against the fp32 trainer's own log-probs of the same
    tokens, the ratio TRL forms (exp of the difference, 1 at NaN) is not identically 1."""
    from transformers import AutoModelForCausalLM

    from passkt.models import tiny_config

    train = [p for p in eval_set if p["category"] != "math"][:2]
    script = _search_then_answer(train)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config(small_tok, 64, 2, 2, 1, 128, 2048)).eval()
    env = Environment(train, small_tok, search_k=1)
    s = grpo.GRPOSettings(group_size=2, T_train=2, max_turn_tokens=48, max_total_tokens=1024)
    prompts = [t for t in grpo.prompt_index(env) for _ in range(2)]
    out = grpo.make_rollout_func(env, s, lambda tr: Bf16Engine(small_tok, script, model))(prompts, None)
    ratios = []
    for p_ids, c_ids, mask, lps in zip(out["prompt_ids"], out["completion_ids"], out["env_mask"], out["logprobs"]):
        trainer = _token_logps(model, p_ids + c_ids)[len(p_ids):]  # the fp32 policy TRL scores with
        low = _token_logps(Bf16Engine(small_tok, script, model).low, p_ids + c_ids)[len(p_ids):]
        for j, m in enumerate(mask):
            if m:
                assert lps[j] == pytest.approx(low[j], abs=1e-6)  # aligned with the token it belongs to
                ratios.append(math.exp(trainer[j] - lps[j]))
            else:
                assert math.isnan(lps[j])
    assert ratios and all(math.isfinite(r) for r in ratios)
    assert max(abs(r - 1) for r in ratios) > 1e-3  # the bf16 engine is not the fp32 trainer


def test_a_model_token_without_logprob_is_an_error_and_an_empty_completion_is_all_nan():
    from passkt.rollout import Episode

    ep = Episode("p", 0, 1, list(range(10)), [["prompt", 0, 4], ["reasoning", 4, 10]], logps={4: -0.1})
    with pytest.raises(RuntimeError, match="5 model tokens without a sampling log-prob"):
        grpo.completion_logprobs(ep, 4, [1] * 6)
    empty = Episode("q", 0, 1, list(range(6)), [["prompt", 0, 4], ["notice", 4, 6]])  # wrote nothing
    assert all(math.isnan(v) for v in grpo.completion_logprobs(empty, 4, [0, 0]))


def test_a_sampling_job_in_its_own_process_draws_what_it_draws_in_process(small_tok, eval_set, tmp_path):
    """vLLM jobs run in a spawned process each (one engine per process); the samples must not depend on that."""
    from transformers import AutoModelForCausalLM

    from passkt import rollout
    from passkt.models import tiny_config
    from passkt.sampling import SamplingSettings, sample_eval

    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(tiny_config(small_tok, 32, 1, 2, 1, 64, 1024)).save_pretrained(tmp_path / "m")
    small_tok.save_pretrained(tmp_path / "m")
    sampling = {**SamplingSettings().__dict__, "n": 2, "T_grid": [0, 1], "max_turn_tokens": 12,
                "problems_per_shard": 3}
    problems = [p for p in eval_set if p["category"] != "math"][:3]
    here = sample_eval(tmp_path / "m", "base", problems, tmp_path / "here", sampling, seed=3, isolated=False)
    there = sample_eval(tmp_path / "m", "base", problems, tmp_path / "there", sampling, seed=3, isolated=True)
    assert here["episodes"] == there["episodes"] == 3 * 2 * 2
    a, b = (rollout.load_rollouts(tmp_path / d).sort_values(["problem_id", "sample", "T"]) for d in ("here", "there"))
    assert [list(x) for x in a["token_ids"]] == [list(x) for x in b["token_ids"]]
