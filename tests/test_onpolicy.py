"""Paper-profile sampling details that a CPU can check: per-category turn limits, the engine's sampling log-probs
carried into GRPO's rollout batch (NaN on environment tokens), and the importance ratio they give TRL."""

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


def test_rollout_batch_carries_sampling_logprobs_nan_on_environment_tokens(small_tok, eval_set):
    train = [p for p in eval_set if p["category"] != "math"][:3]

    def script(ctx):
        q = next(p for p in train if p["question"] in ctx)
        if "<information>" in ctx.split("<|im_start|>assistant\n")[-1]:
            return f"<answer>{q['answer']}</answer>"
        return f"<think>go</think><search>{q['question'][:20]}</search>"

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


def test_importance_ratio_from_a_bf16_engine_is_not_identically_one(small_tok):
    """TRL's correction: ratio = exp(trainer log-prob - sampling log-prob) on model tokens, 1 where the sampling
    log-prob is NaN. With vLLM sampling in bf16 and the trainer in fp32 the ratio must carry that mismatch."""
    from transformers import AutoModelForCausalLM

    from passkt.models import tiny_config

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config(small_tok, 64, 2, 2, 1, 128, 512)).eval()
    low = AutoModelForCausalLM.from_config(model.config).to(torch.bfloat16).eval()
    low.load_state_dict({k: v.to(torch.bfloat16) for k, v in model.state_dict().items()})
    ids = torch.randint(0, len(small_tok) - 1, (4, 40))
    mask = torch.ones(4, 39)
    mask[:, 10:20] = 0  # an environment segment

    def logps(m):
        with torch.no_grad():
            lp = torch.log_softmax(m(input_ids=ids).logits[:, :-1].float(), -1)
        return lp.gather(-1, ids[:, 1:, None]).squeeze(-1)

    sampling = logps(low).masked_fill(mask == 0, float("nan"))  # what the rollout batch hands TRL
    diff = torch.nan_to_num((logps(model) - sampling) * mask, nan=0.0)  # trl 1.16 grpo_trainer, token_* modes
    ratio = torch.exp(diff)
    assert torch.all(ratio[mask == 0] == 1)
    assert (ratio[mask == 1] - 1).abs().max() > 1e-3 and torch.isfinite(ratio).all()


def test_a_model_token_without_logprob_is_an_error(small_tok, eval_set):
    from passkt.rollout import Episode

    ep = Episode("p", 0, 1, list(range(10)), [["prompt", 0, 4], ["reasoning", 4, 10]], logps={4: -0.1})
    with pytest.raises(RuntimeError, match="model tokens without a sampling log-prob"):
        grpo.completion_logprobs(ep, 4, [1] * 6)


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
