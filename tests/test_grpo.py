"""GRPO over the agent loop: env_mask, rewards, the exploration bonus, a real CPU training step, resume, configs."""

import csv
import dataclasses
import itertools
import json
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from passkt import compat, grpo, integrity
from passkt.backends import ScriptedBackend
from passkt.grpo import GRPOSettings
from passkt.models import build_tokenizer, tiny_config
from passkt.protocol import NOTICE, SYSTEM_PROMPT, information
from passkt.rollout import Environment
from passkt.search import format_results
from passkt.world import build_world, make_problems

ROOT = Path(__file__).resolve().parents[1]
MODES = ("right", "wrong", "invalid", "eos")  # script behaviour by problem index
PAPER = yaml.safe_load((ROOT / "configs" / "paper.yaml").read_text())


@pytest.fixture(scope="module")
def problems():
    world = build_world(3, 300, 150, 150)
    return make_problems(world, 3, n_pretrain=30, n_train=8, n_eval_per_category=10)["train"]


@pytest.fixture(scope="module")
def tok(problems):
    texts = [p["question"] + " " + " ".join(p["texts"]) for p in problems] + [SYSTEM_PROMPT, NOTICE]
    return build_tokenizer(texts, 400)


def _plan(p):
    return json.loads(p["meta"])


def _turns(p, mode, eos):
    """(first turn, answer turn) the scripted model writes for problem ``p`` in ``mode``."""
    q = _plan(p)["plan"][0]
    if mode == "invalid":
        return "<think>no idea</think> nothing", None
    ans = p["answer"] if mode in ("right", "eos") else _plan(p)["wrong_answers"][0]
    return f"<think>look up {q}</think><search>{q}</search>", f"<think>so</think><answer>{ans}</answer>" + (
        eos if mode == "eos" else "")


def _script(problems, tok):
    by_q = {p["question"]: (p, MODES[i % len(MODES)]) for i, p in enumerate(problems)}

    def script(context):
        p, mode = next(v for q, v in by_q.items() if f"Question: {q}" in context)
        first, second = _turns(p, mode, tok.eos_token)
        return second if "<information>" in context.split("<|im_start|>assistant\n")[-1] else first

    return script


def _rollout(problems, tok, settings):
    env = Environment(problems, tok, search_k=1)
    backend = ScriptedBackend(tok, _script(problems, tok))
    func = grpo.make_rollout_func(env, settings, lambda trainer: backend)
    index = grpo.prompt_index(env)
    prompts = [text for text in index for _ in range(settings.group_size)]
    return env, index, prompts, func(prompts, None)


def test_env_mask_marks_exactly_the_model_written_tokens(problems, tok):
    s = GRPOSettings(group_size=2, T_train=1, max_turn_tokens=64, max_total_tokens=2048)
    env, index, prompts, out = _rollout(problems, tok, s)
    assert out["logprobs"] is None and len(out["completion_ids"]) == len(prompts) == 2 * len(problems)
    for i, prompt in enumerate(prompts):
        pid = index[prompt]
        p = env.problems[pid]
        mode = MODES[[q["id"] for q in problems].index(pid) % len(MODES)]
        first, second = _turns(p, mode, tok.eos_token)
        ids, mask = out["completion_ids"][i], out["env_mask"][i]
        assert out["prompt_ids"][i] == env.prompt_ids(pid) and len(ids) == len(mask)
        model_text = tok.decode([t for t, m in zip(ids, mask, strict=True) if m == 1])
        env_text = tok.decode([t for t, m in zip(ids, mask, strict=True) if m == 0])
        if mode == "invalid":
            assert model_text == first and env_text == "" and out["termination"][i] == "no_action"
            continue
        q = _plan(p)["plan"][0]
        info = information(format_results(env.tool.search(pid, q, 1)))
        assert model_text == first + second
        appended_eos = "" if mode == "eos" else tok.eos_token  # the engine closes the episode with EOS
        assert env_text == info + NOTICE + appended_eos
        assert ids[-1] == tok.eos_token_id and out["searches"][i] == 1
        assert out["n_model_tokens"][i] == sum(mask) < out["n_tokens"][i] == len(ids)


def test_rewards_exact_match_and_invalid(problems, tok):
    s = GRPOSettings(group_size=2, T_train=1, max_total_tokens=2048)
    env, index, prompts, out = _rollout(problems, tok, s)
    modes = [MODES[[q["id"] for q in problems].index(index[p]) % len(MODES)] for p in prompts]
    assert out["correct"] == [m in ("right", "eos") for m in modes]
    assert out["valid"] == [m != "invalid" for m in modes]
    funcs, weights = grpo.make_reward_funcs(s)
    assert weights == [1.0] and len(funcs) == 1
    logged = {}
    rewards = funcs[0](completions=[""] * len(prompts), problem_id=[index[p] for p in prompts],
                       log_metric=logged.__setitem__, **{k: v for k, v in out.items() if k != "logprobs"})
    assert rewards == [1.0 if m in ("right", "eos") else 0.0 for m in modes]
    assert logged["rollout/accuracy"] == pytest.approx(0.5)
    assert logged["rollout/invalid"] == pytest.approx(0.25)
    assert logged["rollout/mixed_groups"] == 0.0  # the script is deterministic per problem
    # a correct flag on an invalid episode never pays
    assert funcs[0]([""] * 2, correct=[True, True], valid=[True, False], problem_id=["a", "a"], searches=[0, 0],
                    n_tokens=[1, 1], n_model_tokens=[1, 1], query_key=["", ""]) == [1.0, 0.0]


def test_exploration_bonus_only_for_unique_query_sequences_in_group():
    keys = ["a", "a", "b", "", "x", "y", "x", "x"]
    assert grpo.unique_in_group(keys, [True] * 8, 4) == [0, 0, 1, 1, 0, 1, 0, 0]
    assert grpo.unique_in_group(["a", "b", "b", "c"], [True, True, False, True], 4) == [1, 1, 0, 1]
    assert grpo.query_key(["The  Red River", "Kelmora!"]) == grpo.query_key(["red river", "kelmora"])
    s = GRPOSettings(group_size=4, bonus=0.1)
    funcs, weights = grpo.make_reward_funcs(s)
    assert weights == [1.0, 0.1] and [f.__name__ for f in funcs] == ["exact_match", "exploration_bonus"]
    bonus = funcs[1]([""] * 8, valid=[True] * 8, problem_id=["p"] * 4 + ["q"] * 4, query_key=keys)
    assert bonus == [0, 0, 1, 1, 0, 1, 0, 0]
    with pytest.raises(ValueError, match="mix problems"):
        funcs[1]([""] * 4, valid=[True] * 4, problem_id=["p", "p", "q", "q"], query_key=keys[:4])
    m = grpo.rollout_metrics([True, False, True, True], [True] * 4, [1, 2, 3, 4], [10] * 4, [5] * 4,
                             ["a", "b", "c", "c"], 2)
    assert m["rollout/mixed_groups"] == 0.5 and m["rollout/searches"] == 2.5 and m["rollout/unique_query_seqs"] == 0.5


def test_settings_reject_bad_values():
    with pytest.raises(ValueError, match="group_size"):
        GRPOSettings(group_size=1)
    with pytest.raises(ValueError, match="vllm_mode"):
        GRPOSettings(vllm_mode="remote")
    with pytest.raises(ValueError, match="grad_accum"):
        GRPOSettings(prompts_per_step=1, group_size=3, grad_accum=2)
    with pytest.raises(ValueError, match="scale_rewards"):
        GRPOSettings(scale_rewards="std")


@pytest.mark.parametrize("profile", ["params.yaml", "configs/paper.yaml", "configs/smoke.yaml"])
def test_reward_scaling_is_explicit_and_keeps_the_bonus_size(tmp_path, profile):
    """Every profile names the scaling; TRL gets it for the plain and the bonus run alike. "none" (advantage =
    reward - group mean) is what keeps the bonus at its stated size; TRL's default "group" would not."""
    section = yaml.safe_load((ROOT / profile).read_text())["04_grpo"]
    assert section["grpo"]["scale_rewards"] == "none"
    for bonus in (0.0, section["bonus"]):
        # bf16 off: transformers refuses it without a bf16 device (test_bf16_config_builds_where_... covers it)
        cfg = grpo.build_config(GRPOSettings(**{**section["grpo"], "bonus": bonus, "bf16": False}), tmp_path / "ck")
        assert cfg.scale_rewards == "none"


def _save_random_model(tok, path):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    cfg = tiny_config(tok, hidden=32, layers=1, heads=2, kv_heads=1, intermediate=64, max_positions=1024)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _varied_backend(problems, tok):
    """Right or wrong answers in turn, so groups have mixed outcomes and advantages are non-zero."""
    flip = itertools.cycle([True, False, False])
    by_q = {p["question"]: p for p in problems}

    def script(context):
        p = next(v for q, v in by_q.items() if f"Question: {q}" in context)
        if "<information>" not in context.split("<|im_start|>assistant\n")[-1]:
            q = _plan(p)["plan"][0]
            return f"<think>look</think><search>{q}</search>"
        ans = p["answer"] if next(flip) else _plan(p)["wrong_answers"][0]
        return f"<answer>{ans}</answer>"

    return ScriptedBackend(tok, script)


def _read_log(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_train_two_steps_then_resume(problems, tok, tmp_path):
    from transformers import AutoModelForCausalLM

    base = _save_random_model(tok, tmp_path / "base")
    train = problems[:4]
    s = GRPOSettings(epochs=1, group_size=4, T_train=1, lr=1e-3, beta=0.04, max_turn_tokens=48,
                     max_total_tokens=1024, prompts_per_step=2, grad_accum=2, save_steps=1, logging_steps=1,
                     logprob_buckets=3, autocast_bf16=True)  # the tiny profile's loss forward, reference model too
    backend = _varied_backend(train, tok)
    out = tmp_path / "grpo"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = grpo.train_grpo(base, train, tok, out, s, search_k=1, backend_factory=lambda trainer: backend)
    assert t["steps"] == 2 and t["global_step"] == 2 and t["resumed_from"] is None and t["seconds_per_step"] > 0
    rows = _read_log(out / "train_log.csv")
    assert [int(r["step"]) for r in rows] == [1, 2]
    for r in rows:
        assert 0 <= float(r["mixed_groups"]) <= 1 and float(r["searches"]) == 1.0
        assert float(r["entropy"]) > 0 and r["kl"] != "" and r["clip_ratio"] != ""
        assert float(r["model_tokens"]) < float(r["episode_tokens"])
        assert float(r["trl_completion_length"]) == pytest.approx(float(r["model_tokens"]))  # TRL used env_mask
    assert any(float(r["mixed_groups"]) > 0 for r in rows)
    assert (out / "checkpoints" / "checkpoint-2" / "trainer_state.json").exists()
    before = AutoModelForCausalLM.from_pretrained(base).state_dict()
    after = AutoModelForCausalLM.from_pretrained(out / "model").state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), "no parameter moved"

    assert t["scorer"] == integrity.scorer_version()  # the reward log says which scorer produced it
    assert json.loads((out / "grpo_settings.json").read_text())["scorer"] == t["scorer"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = grpo.train_grpo(base, train, tok, out, s, search_k=1, backend_factory=lambda trainer: backend)
    assert again["reused"] and again["global_step"] == 2  # finished with this fingerprint: not retrained
    # (a kill mid-run resuming from its own checkpoint: tests/test_integrity.py)
    s2 = GRPOSettings(**{**s.__dict__, "epochs": 2})  # other settings: its checkpoints and log are discarded
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t2 = grpo.train_grpo(base, train, tok, out, s2, search_k=1, backend_factory=lambda trainer: backend)
    assert t2["resumed_from"] is None and t2["steps"] == 4 and t2["global_step"] == 4
    assert [int(r["step"]) for r in _read_log(out / "train_log.csv")] == [1, 2, 3, 4]


def test_lora_step_saves_a_merged_plain_model(problems, tok, tmp_path):
    from transformers import AutoModelForCausalLM

    base = _save_random_model(tok, tmp_path / "base")
    s = GRPOSettings(epochs=1, group_size=2, T_train=1, lr=1e-2, lora=True, lora_r=4, lora_alpha=8,
                     max_turn_tokens=48, prompts_per_step=2, save_steps=10)
    backend = _varied_backend(problems[:2], tok)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = grpo.train_grpo(base, problems[:2], tok, tmp_path / "lora", s, search_k=1,
                            backend_factory=lambda trainer: backend)
    assert t["steps"] == 1
    assert not (tmp_path / "lora" / "model" / "adapter_config.json").exists()
    before = AutoModelForCausalLM.from_pretrained(base).state_dict()
    after = AutoModelForCausalLM.from_pretrained(tmp_path / "lora" / "model").state_dict()
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def _paper_settings(bonus: float = 0.0, **changes) -> GRPOSettings:
    """GRPOSettings of the paper profile's plain run (bonus 0) or bonus run, as notebooks/04_grpo.ipynb builds them."""
    runs = grpo.replicate_runs({**PAPER["04_grpo"]["grpo"], **changes}, PAPER["sampling"], bonus, 1, 0, PAPER["seed"])
    return runs["rl_bonus" if bonus else "rl"]


def test_paper_settings_train_on_policy_with_the_importance_correction(tmp_path):
    s = _paper_settings()
    assert s.top_p == 1.0 and PAPER["sampling"]["top_p"] < 1.0  # evaluation may use top-p; training never does
    assert s.math_max_turn_tokens >= 4096 and s.bf16 and s.gradient_checkpointing and s.save_total_limit >= 1
    cfg = grpo.build_config(grpo.GRPOSettings(**{**s.__dict__, "bf16": False}), tmp_path, n_processes=8)  # no bf16 device
    assert cfg.vllm_importance_sampling_correction and cfg.save_total_limit == s.save_total_limit
    assert cfg.vllm_max_model_length >= s.max_total_tokens + s.math_max_turn_tokens


def test_paper_profile_accelerate_and_deepspeed_configs_parse():
    acc = yaml.safe_load((ROOT / "configs" / "accelerate_zero2.yaml").read_text())
    assert acc["distributed_type"] == "DEEPSPEED"
    ds = json.loads((ROOT / acc["deepspeed_config"]["deepspeed_config_file"]).read_text())
    assert ds["zero_optimization"]["stage"] == 2 and ds["train_micro_batch_size_per_gpu"] == "auto"


@pytest.mark.parametrize("bonus", [0.0, PAPER["04_grpo"]["bonus"]])
@pytest.mark.parametrize("n_processes", [1, 2, 4, 8])
def test_paper_settings_pass_our_batch_checks(tmp_path, monkeypatch, n_processes, bonus):
    """Our own checks and arguments only: TRL's GRPOConfig is replaced by dict, so nothing here can be TRL's."""
    import trl

    monkeypatch.setattr(trl, "GRPOConfig", dict)
    s = _paper_settings(bonus)
    kw = grpo.build_config(s, tmp_path / "ck", n_processes=n_processes)
    assert kw["num_generations"] == s.group_size == 8
    assert kw["per_device_train_batch_size"] * kw["gradient_accumulation_steps"] * n_processes == 32 * 8
    assert kw["use_vllm"] and kw["vllm_mode"] == "colocate" and kw["vllm_importance_sampling_correction"] is True
    assert kw["vllm_max_model_length"] == s.max_total_tokens + s.math_max_turn_tokens  # the longest turn: math
    assert kw["save_total_limit"] == 2 and kw["bf16"] and compat.checkpointing(True).items() <= kw.items()
    assert kw["reward_weights"] == ([1.0, bonus] if bonus else [1.0]) and kw["beta"] == 0.0


def test_build_config_rejects_batches_that_split_groups(tmp_path):
    with pytest.raises(ValueError, match="prompts_per_step=3: must be a multiple of the process count 2"):
        grpo.build_config(GRPOSettings(prompts_per_step=3), tmp_path / "ck", n_processes=2)
    with pytest.raises(ValueError, match="not divisible by grad_accum × processes = 16"):
        grpo.build_config(GRPOSettings(prompts_per_step=4, group_size=2, grad_accum=8), tmp_path / "ck", n_processes=2)


def test_paper_settings_build_a_trl_config(tmp_path):
    """TRL accepts the paper profile's GRPOConfig (use_vllm; vllm itself is not needed to build it). bf16 is off
    here only because transformers refuses it without a bf16 device (the next test covers it where there is one)."""
    cfg = grpo.build_config(_paper_settings(PAPER["04_grpo"]["bonus"], bf16=False), tmp_path / "ck")
    assert cfg.use_vllm and cfg.vllm_mode == "colocate" and cfg.vllm_importance_sampling_correction
    assert cfg.num_generations == 8 and cfg.per_device_train_batch_size == 32 and cfg.gradient_accumulation_steps == 8
    assert cfg.steps_per_generation == 8  # one generation of 32 x 8 episodes per optimiser step
    assert PAPER["04_grpo"]["grpo"]["bf16"] and PAPER["04_grpo"]["grpo"]["gradient_checkpointing"]


def test_bf16_config_builds_where_there_is_a_bf16_device(tmp_path):
    try:
        cfg = grpo.build_config(_paper_settings(bf16=True), tmp_path / "ck")
    except ValueError as e:
        if "doesn't support bf16/gpu" not in str(e) or torch.cuda.is_available():
            raise
        pytest.skip("transformers refuses bf16=True without a bf16-capable GPU (no CUDA device here)")
    assert cfg.bf16 and cfg.model_init_kwargs == {"dtype": "bfloat16"}


def test_length_buckets_sort_rows_and_keep_each_groups_longest_completion():
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0]])
    buckets = grpo.length_buckets(mask, 2)
    assert [(rows.tolist(), n) for rows, n in buckets] == [([1, 4, 0], 4), ([2, 3], 1)]  # an empty row counts as length 1
    assert [n for _, n in grpo.length_buckets(mask, 10)] == [4, 3, 2, 1, 1]  # more buckets than rows
    assert [(rows.tolist(), n) for rows, n in grpo.length_buckets(mask, 1)] == [([1, 4, 0, 2, 3], 4)]


def _loss_and_grads(trainer, inputs, buckets, bf16):
    trainer.logprob_buckets, trainer.autocast_bf16 = buckets, bf16
    trainer.model.zero_grad()
    loss = trainer.compute_loss(trainer.model, inputs)
    loss.backward()
    grads = torch.cat([p.grad.flatten() for p in trainer.model.parameters()])
    trainer.model.zero_grad()
    return loss.detach(), grads


def test_fast_logprobs_give_trl_loss_and_gradients(problems, tok, tmp_path):
    """Length buckets reproduce TRL's per-token log-probs, entropies, loss and gradients (float rounding only);
    bf16 autocast over fp32 weights gives the same loss (ratio 1 on-policy) and gradients within bf16 rounding."""
    base = _save_random_model(tok, tmp_path / "base")
    train = problems[:4]
    s = GRPOSettings(epochs=1, group_size=4, T_train=1, lr=1e-3, max_turn_tokens=48, max_total_tokens=1024,
                     prompts_per_step=4, logprob_buckets=3, autocast_bf16=True)
    backend = _varied_backend(train, tok)
    env = Environment(train, tok, search_k=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = grpo.build_trainer(base, env, tmp_path / "grpo", s, backend_factory=lambda trainer: backend)
    assert (trainer.logprob_buckets, trainer.autocast_bf16) == (3, True)
    assert type(trainer) is grpo.trainer_class()  # shared_prompt off: the buckets' own class
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer's loop, which this test does not run
    torch.manual_seed(0)
    trainer.logprob_buckets, trainer.autocast_bf16 = 1, False
    inputs = trainer._generate_and_score_completions(next(iter(trainer.get_train_dataloader())))
    lengths = inputs["completion_mask"].sum(1)
    assert lengths.min() < lengths.max() and inputs["advantages"].abs().sum() > 0  # buckets differ; a gradient

    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
    attn = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1)
    n = inputs["completion_ids"].size(1)
    mask = inputs["completion_mask"].bool()
    with torch.no_grad():
        lp_trl, ent_trl, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, attn, n, compute_entropy=True)
        trainer.logprob_buckets = 3
        lp, ent, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, attn, n, compute_entropy=True)
    assert lp.shape == lp_trl.shape and ent.shape == ent_trl.shape
    torch.testing.assert_close(lp[mask], lp_trl[mask], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ent[mask], ent_trl[mask], rtol=1e-4, atol=1e-5)
    assert not lp[~mask].any()  # padding scores 0, as in TRL's fused head

    loss_trl, g_trl = _loss_and_grads(trainer, inputs, 1, False)
    loss_b, g_b = _loss_and_grads(trainer, inputs, 3, False)
    assert g_trl.norm() > 0
    torch.testing.assert_close(loss_b, loss_trl)
    assert (g_b - g_trl).norm() <= 1e-4 * g_trl.norm()
    for buckets in (1, 3):
        loss_bf16, g_bf16 = _loss_and_grads(trainer, inputs, buckets, True)
        torch.testing.assert_close(loss_bf16, loss_trl)
        assert torch.nn.functional.cosine_similarity(g_bf16, g_trl, dim=0) > 0.99
        assert (g_bf16 - g_trl).norm() <= 0.1 * g_trl.norm()


def test_shared_prompt_forward_gives_trl_logprobs_and_gradients(problems, tok, tmp_path):
    """Encoding each group's prompt once (passkt.shared_prompt) gives TRL's per-token log-probs, entropies and
    gradients up to float rounding, with and without length buckets, in the loss's own call too; under bf16
    autocast, within bf16 rounding. (On policy the loss value does not depend on the log-probs: its importance ratio
    is exactly 1, so the gradients are what tests the loss.) It falls back to the parent's path where it cannot
    share: all prompts distinct, and gradient checkpointing (no cache)."""
    from passkt import shared_prompt

    base = _save_random_model(tok, tmp_path / "base")
    train = problems[:4]
    s = GRPOSettings(epochs=1, group_size=4, T_train=1, lr=1e-3, max_turn_tokens=48, max_total_tokens=1024,
                     prompts_per_step=4, logprob_buckets=3)
    backend = _varied_backend(train, tok)
    env = Environment(train, tok, search_k=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = grpo.build_trainer(base, env, tmp_path / "grpo", s, backend_factory=lambda trainer: backend)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    torch.manual_seed(0)
    trainer.logprob_buckets = 1
    inputs = trainer._generate_and_score_completions(next(iter(trainer.get_train_dataloader())))
    prompts = torch.cat([inputs["prompt_ids"], inputs["prompt_mask"]], 1)
    distinct = len(torch.unique(prompts, dim=0))
    assert 1 < distinct < len(prompts)  # shared prompts, and more than one
    assert inputs["prompt_mask"].sum(1).min() < inputs["prompt_mask"].sum(1).max()  # left padding is exercised
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
    attn = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1)
    n = inputs["completion_ids"].size(1)
    mask = inputs["completion_mask"].bool()

    def scores(**kw):
        with torch.no_grad():
            return trainer._get_per_token_logps_and_entropies(trainer.model, ids, attn, n, **kw)

    lp_trl, ent_trl, _ = scores(compute_entropy=True)
    _, g_trl = _loss_and_grads(trainer, inputs, 1, False)
    trainer.autocast_bf16 = True
    lp_trl16, _, _ = scores()
    trainer.autocast_bf16 = False

    shared = grpo.build_trainer(base, env, tmp_path / "grpo_shared", dataclasses.replace(s, shared_prompt=True),
                                backend_factory=lambda trainer: backend)
    assert type(shared) is shared_prompt.trainer_class()  # the setting is what switches a stage's trainer
    shared_prompt.enable(trainer)
    calls = []
    forward = trainer.model.forward
    trainer.model.forward = lambda *a, **k: calls.append(k["input_ids"].shape) or forward(*a, **k)
    for buckets in (1, 3):
        trainer.logprob_buckets, calls[:] = buckets, []
        lp, ent, _ = scores(compute_entropy=True)
        assert len(calls) == 1 + buckets and calls[0][0] == distinct  # the prompts once, then the buckets
        assert sum(c[0] for c in calls[1:]) == len(ids) and all(c[1] <= n + 1 for c in calls[1:])
        assert lp.shape == lp_trl.shape and ent.shape == ent_trl.shape
        torch.testing.assert_close(lp[mask], lp_trl[mask], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(ent[mask], ent_trl[mask], rtol=1e-4, atol=1e-5)
        assert not lp[~mask].any()
        calls[:] = []
        _, g = _loss_and_grads(trainer, inputs, buckets, False)
        assert len(calls) == 1 + buckets  # the loss's own call shares the prompts too
        assert (g - g_trl).norm() <= 1e-4 * g_trl.norm()
    lp16, no_entropy, _ = scores()
    assert no_entropy is None
    _, g_bf16 = _loss_and_grads(trainer, inputs, 3, True)
    torch.testing.assert_close(lp16[mask], lp_trl16[mask], rtol=0.05, atol=0.05)  # bf16 vs bf16: rounding only
    assert torch.nn.functional.cosine_similarity(g_bf16, g_trl, dim=0) > 0.99
    assert (g_bf16 - g_trl).norm() <= 0.1 * g_trl.norm()

    trainer.autocast_bf16 = False
    one_each = torch.unique(torch.cat([torch.nonzero((prompts == p).all(1))[:1] for p in torch.unique(prompts, dim=0)]))
    calls[:] = []
    with torch.no_grad():
        lp1, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids[one_each], attn[one_each], n)
    assert len(calls) == trainer.logprob_buckets and all(c[1] > n + 1 for c in calls)  # nothing shared: full rows
    torch.testing.assert_close(lp1[mask[one_each]], lp_trl[one_each][mask[one_each]], rtol=1e-4, atol=1e-5)
    trainer.model.gradient_checkpointing_enable()
    calls[:] = []
    _, g_ckpt = _loss_and_grads(trainer, inputs, 3, False)
    assert calls and all(c[1] > n + 1 for c in calls)  # checkpointing keeps no cache: the parent's path
    assert (g_ckpt - g_trl).norm() <= 1e-4 * g_trl.norm()


def test_plateau_callback_stops_at_an_epoch_end_once_the_reward_is_flat(tmp_path):
    from types import SimpleNamespace

    import numpy as np
    import pandas as pd

    from passkt.grpo import _make_plateau_callback

    log = tmp_path / "train_log.csv"
    cb = _make_plateau_callback(log, min_epochs=2.0)
    rng = np.random.default_rng(0)
    steps = np.arange(1, 41)

    def end_epoch(rewards, epoch):
        pd.DataFrame({"step": steps[: len(rewards)], "reward": rewards}).to_csv(log, index=False)
        control = SimpleNamespace(should_training_stop=False)
        cb.on_epoch_end(None, SimpleNamespace(epoch=epoch, global_step=len(rewards), is_world_process_zero=True), control)
        return control.should_training_stop

    flat = 0.5 + rng.normal(0, 0.005, 40)
    assert not end_epoch(flat[:12], 1.0)  # before plateau_min_epochs: never
    assert not end_epoch(np.linspace(0.1, 0.9, 25), 2.0)  # still rising
    assert not end_epoch(np.linspace(0.9, 0.1, 25), 2.0)  # falling: not a plateau either
    assert end_epoch(flat, 3.0)
    stop = json.loads((tmp_path / "plateau_stop.json").read_text())
    assert stop["step"] == 40 and stop["test"]["verdict"] == "plateau"


def test_a_launched_run_that_is_not_finished_is_an_error_not_trained_here(problems, tok, tmp_path):
    base = _save_random_model(tok, tmp_path / "base")
    with pytest.raises(RuntimeError, match="no finished GRPO run with this code"):
        grpo.train_grpo(base, problems[:2], tok, tmp_path / "run", GRPOSettings(group_size=2, prompts_per_step=2),
                        search_k=1, require_finished=True)
    assert not (tmp_path / "run" / "checkpoints").exists()
