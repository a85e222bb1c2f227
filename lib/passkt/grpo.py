"""GRPO over the same agent loop as evaluation (stage 04): TRL's GRPOTrainer with a multi-turn ``rollout_func``.

The paper trains GRPO on the 200 training problems with a binary exact-match reward, group size G = 8, depth
budget T_train = 5 and 10 epochs; everything else is undisclosed and chosen here (see :class:`GRPOSettings`).

How one optimisation step works::

    TRL samples P problems, repeats each G times  ──►  rollout_func(prompts, trainer)
        prompt text → problem id → rollout.run_episodes(budget T_train) with the trainer's *current* model
        returns prompt_ids, completion_ids (model turns + <information> + notices + EOS), env_mask, extras
    reward = exact match of the final answer (+ bonus × [query sequence unique in its group], ablation)
    TRL: group-normalised advantages, clipped policy loss on env_mask = 1 tokens only, optional KL to the base

Training and evaluation episodes come from the one engine (``rollout.py``), so they cannot drift apart.
TRL's ``env_mask`` convention (trl 1.16, ``GRPOTrainer._generate``): 1 = token the model wrote (in the loss),
0 = token the environment inserted (attended to, excluded from the loss). Retrieved text and notices are 0; so is
the closing EOS the engine appends after ``</answer>`` (generation stops at the closing tag, so the model never
chose that token); an EOS the model sampled itself is 1.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from passkt import compat
from passkt.backends import HFBackend, VLLMBackend
from passkt.protocol import ANSWERED, build_prompt
from passkt.rollout import Environment, Episode, SamplingConfig, run_episodes
from passkt.scoring import normalize_answer, score_answer

ENV_SEGMENTS = ("information", "notice")  # token segments the environment wrote (env_mask 0)
VLLM_MODES = ("colocate",)  # TRL's server mode needs its own rollout wiring: not built (docs/gpu.md)
SCALE_REWARDS = ("none", "group", "batch")  # TRL 1.16 also accepts True / False for "group" / "none"


@dataclass(frozen=True)
class GRPOSettings:
    """Every GRPO choice in one place. Paper values: group_size 8, T_train 5, epochs 10; the rest is ours.

    ``max_total_tokens`` caps the whole episode context (prompt + model turns + retrieved text), checked by the
    engine before each model turn, exactly as in evaluation; it is also TRL's ``max_completion_length``
    (an upper bound on the completion, which includes retrieved text). ``prompts_per_step`` distinct problems
    × ``group_size`` episodes make one optimiser step, split into ``grad_accum`` micro-batches; one generation
    per step (on-policy, TRL's ``num_iterations`` = 1). ``bonus`` > 0 is the exploration-bonus ablation.

    ``scale_rewards`` is TRL's reward scaling when it forms advantages (trl 1.16 ``GRPOConfig.scale_rewards``):
    "none" = reward minus its group mean, so the bonus keeps its stated size (an advantage of at most ``bonus``
    next to correctness's 1); "group" (TRL's default) divides by the group's standard deviation, which turns a
    0.1 bonus in an all-wrong group into full-size advantages (e.g. +0.72 / -1.2 with 5 of 8 plans unique);
    "batch" divides by the batch's standard deviation (one scale for both reward terms). Plain and bonus runs
    use the same value, so the ablation changes the reward only.

    ``logprob_buckets`` and ``autocast_bf16`` change how the loss forward/backward is computed, not what is
    optimised (:class:`_FastLogprobs`, ``docs/benchmarks.md``): episodes sorted by length into that many
    micro-batches, each cut to its own longest completion (1 = TRL's single batch padded to the longest episode);
    bfloat16 autocast over the fp32 weights in that forward only (rollouts stay fp32, like pretraining's ``bf16``).
    ``shared_prompt`` runs each group's prompt through the model once in that forward and gathers its keys and values
    to the group's rows (:mod:`passkt.shared_prompt`; same loss and gradients up to float rounding).

    ``stop_at_plateau``: train up to ``epochs``, but stop at the end of an epoch (from ``plateau_min_epochs`` on) once
    the training reward has plateaued by :func:`passkt.evaluate.reward_plateau` (its rise over the last 20% of the
    steps shown within ±its fixed margin by an equivalence test; a falling reward does not stop it); the stop is recorded in ``plateau_stop.json``. The learning-rate
    schedule is the one for ``epochs`` (a stop leaves it mid-way).
    """

    epochs: int = 10
    group_size: int = 8
    T_train: int = 5
    lr: float = 1e-6
    beta: float = 0.0  # KL coefficient to the base model (0: no reference model is loaded)
    epsilon: float = 0.2  # PPO-style clip range of the importance ratio
    temperature: float = 1.0  # sampling temperature; TRL also divides logits by it when scoring tokens
    top_p: float = 1.0  # on-policy: TRL scores tokens without top-p, so training rollouts sample the full softmax
    max_turn_tokens: int = 64
    math_max_turn_tokens: int = 0  # per-turn limit of math episodes (0: max_turn_tokens), as in evaluation
    max_total_tokens: int = 1024
    prompts_per_step: int = 8
    grad_accum: int = 1
    bonus: float = 0.0  # exploration bonus weight (0 = plain GRPO)
    seed: int = 0
    save_steps: int = 25
    save_total_limit: int = 2  # checkpoints kept (each holds the optimiser state: ~100 GB for a 7B full fine-tune)
    logging_steps: int = 1
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    use_vllm: bool = False  # paper profile: TRL's vLLM engine samples the rollouts (GPU only)
    vllm_mode: str = "colocate"  # vLLM shares the training GPUs (the only mode wired up)
    importance_sampling: bool = True  # with use_vllm: TRL's truncated IS correction (vLLM bf16 vs trainer)
    bf16: bool = False  # CPU: False
    gradient_checkpointing: bool = False
    loss_type: str = "dapo"  # TRL's default: token-level loss normalised by active tokens in the batch
    scale_rewards: str = "none"  # "none" | "group" | "batch": advantage = reward - group mean [/ std]
    gen_batch_size: int = 256  # episodes per engine batch (HF backend)
    logprob_buckets: int = 1  # loss forward in this many length-sorted micro-batches, each cut to its longest
    autocast_bf16: bool = False  # bfloat16 autocast (fp32 master weights) in the loss forward/backward only
    shared_prompt: bool = False  # the loss forward encodes each group's prompt once (passkt.shared_prompt)
    stop_at_plateau: bool = False  # stop at an epoch's end once the training reward has plateaued
    plateau_min_epochs: float = 2.0  # ... but not before this many epochs

    def __post_init__(self):
        positive = ("epochs", "group_size", "prompts_per_step", "grad_accum", "save_steps", "save_total_limit",
                    "logging_steps",
                    "max_turn_tokens", "max_total_tokens", "lora_r", "lora_alpha", "gen_batch_size",
                    "logprob_buckets")
        for name in positive:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"GRPOSettings.{name}={v!r}: must be a positive integer")
        if self.group_size < 2:
            raise ValueError(f"GRPOSettings.group_size={self.group_size}: GRPO needs at least 2 episodes per group")
        if not isinstance(self.T_train, int) or self.T_train < 0:
            raise ValueError(f"GRPOSettings.T_train={self.T_train!r}: must be an integer >= 0")
        if (self.prompts_per_step * self.group_size) % self.grad_accum:
            raise ValueError(f"GRPOSettings.grad_accum={self.grad_accum}: must divide prompts_per_step × group_size "
                             f"= {self.prompts_per_step * self.group_size}")
        if self.max_total_tokens <= self.max_turn_tokens:
            raise ValueError(f"GRPOSettings.max_total_tokens={self.max_total_tokens}: must exceed max_turn_tokens")
        if not self.temperature > 0:
            raise ValueError(f"GRPOSettings.temperature={self.temperature}: must be > 0 (TRL divides logits by it)")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"GRPOSettings.top_p={self.top_p}: must be in (0, 1]")
        for name in ("lr", "beta", "epsilon", "bonus"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"GRPOSettings.{name}={getattr(self, name)}: must be >= 0")
        if self.scale_rewards not in SCALE_REWARDS:
            raise ValueError(f"GRPOSettings.scale_rewards={self.scale_rewards!r}: must be one of {SCALE_REWARDS}")
        if not isinstance(self.math_max_turn_tokens, int) or self.math_max_turn_tokens < 0:
            raise ValueError(f"GRPOSettings.math_max_turn_tokens={self.math_max_turn_tokens!r}: must be an integer >= 0")
        if self.vllm_mode not in VLLM_MODES:
            raise ValueError(f"GRPOSettings.vllm_mode={self.vllm_mode!r}: must be one of {VLLM_MODES}")


def sampling_config(settings: GRPOSettings, search_k: int) -> SamplingConfig:
    """The engine's sampling settings for training episodes (same fields as evaluation's)."""
    return SamplingConfig(temperature=settings.temperature, top_p=settings.top_p,
                          max_turn_tokens=settings.max_turn_tokens, max_total_tokens=settings.max_total_tokens,
                          search_k=search_k, math_max_turn_tokens=settings.math_max_turn_tokens)


# ---------------------------------------------------------------------------------------------------------
# Rollouts: TRL prompts -> episodes -> token ids + env_mask + extras
# ---------------------------------------------------------------------------------------------------------

def prompt_index(env: Environment) -> dict[str, str]:
    """Prompt text -> problem id. TRL hands the rollout_func prompt texts only, so they must be unique."""
    out: dict[str, str] = {}
    for pid, p in env.problems.items():
        text = build_prompt(env.tok, p["question"])
        if text in out:
            raise ValueError(f"problems {out[text]!r} and {pid!r} have the same question: GRPO cannot tell them apart")
        out[text] = pid
    return out


def query_key(queries: list[str]) -> str:
    """An episode's search plan as one string: each query HotpotQA-normalised, in order."""
    return " || ".join(normalize_answer(q) for q in queries)


def episode_tensors(ep: Episode) -> tuple[list[int], list[int], list[int]]:
    """(prompt_ids, completion_ids, env_mask) of one finished episode from its typed segments.

    env_mask is 1 on model-written tokens and 0 on environment insertions (information, notices, and the
    closing EOS the engine appends after an answer the model did not end with EOS itself).
    """
    if not ep.segments or ep.segments[0][0] != "prompt":
        raise ValueError(f"episode {ep.problem_id}/{ep.sample}: first segment should be the prompt")
    n_prompt = ep.segments[0][2]
    mask = [1] * (len(ep.ids) - n_prompt)
    for kind, a, b in ep.segments[1:]:
        if kind in ENV_SEGMENTS:
            mask[a - n_prompt : b - n_prompt] = [0] * (b - a)
    written = sum(mask)
    appended = written - ep.generated  # Episode.generated counts what the backend returned (forks included)
    if appended not in (0, 1):
        raise RuntimeError(f"episode {ep.problem_id}/{ep.sample}: {written} model-segment tokens but "
                           f"{ep.generated} generated")
    if appended == 1:
        if ep.segments[-1][0] != "eos":
            raise RuntimeError(f"episode {ep.problem_id}/{ep.sample}: extra token is not a closing EOS")
        mask[-1] = 0
    return ep.ids[:n_prompt], ep.ids[n_prompt:], mask


def rollout_batch(env: Environment, episodes: list[Episode], max_completion_tokens: int) -> dict:
    """The rollout_func return value for ``episodes`` (already in TRL's prompt order).

    Completions longer than ``max_completion_tokens`` are cut (they end without EOS, so TRL counts them as
    truncated). The engine checks its context cap before each turn, so this needs a last turn + retrieved text
    longer than the prompt: a safety net, not a normal path.
    """
    out = {k: [] for k in ("prompt_ids", "completion_ids", "env_mask", "correct", "valid", "searches", "queries",
                           "query_key", "termination", "n_tokens", "n_model_tokens")}
    logprobs = []
    reported = any(ep.logps for ep in episodes)  # the engine reports sampling log-probs (vLLM)
    for ep in episodes:
        p_ids, c_ids, mask = episode_tensors(ep)
        c_ids, mask = c_ids[:max_completion_tokens], mask[:max_completion_tokens]
        logprobs.append(completion_logprobs(ep, len(p_ids), mask) if reported else None)
        valid = ep.termination == ANSWERED
        correct = valid and bool(score_answer(ep.answer, env.problems[ep.problem_id])["correct"])
        out["prompt_ids"].append(p_ids)
        out["completion_ids"].append(c_ids)
        out["env_mask"].append(mask)
        out["correct"].append(correct)
        out["valid"].append(valid)
        out["searches"].append(len(ep.queries))
        out["queries"].append(list(ep.queries))
        out["query_key"].append(query_key(ep.queries))
        out["termination"].append(ep.termination)
        out["n_tokens"].append(len(c_ids))
        out["n_model_tokens"].append(sum(mask))
    # the engine's sampling log-probs (vLLM) feed TRL's importance-sampling correction; without them TRL scores
    # the tokens with the training model itself (the HF engine samples from that very model)
    out["logprobs"] = logprobs if reported else None
    return out


def completion_logprobs(ep: Episode, n_prompt: int, mask: list[int]) -> list[float]:
    """Sampling log-probs aligned with the completion: the engine's value on model tokens, NaN on environment
    tokens (TRL 1.16 gives a NaN position an importance ratio of exactly 1); all NaN for an episode that wrote
    nothing (e.g. its prompt already filled the context). Raises if a model token has none."""
    out = [ep.logps.get(n_prompt + j, math.nan) if m else math.nan for j, m in enumerate(mask)]
    missing = sum(1 for v, m in zip(out, mask) if m and math.isnan(v))
    if missing:
        raise RuntimeError(f"episode {ep.problem_id}/{ep.sample}: {missing} model tokens without a sampling log-prob")
    return out


def make_rollout_func(env: Environment, settings: GRPOSettings, backend_factory: Callable) -> Callable:
    """``rollout_func(prompts, trainer)`` for GRPOTrainer: one budget-T_train episode per prompt it receives.

    TRL (1.16) passes this process's slice of the generation batch: each problem's prompt text repeated G times
    in a row. ``backend_factory(trainer)`` returns a sampling backend over the trainer's current weights.
    """
    index = prompt_index(env)
    cfg = sampling_config(settings, env.search_k)
    stats = {"calls": 0, "episodes": 0, "generated_tokens": 0, "seconds": 0.0}

    def rollout_func(prompts: list, trainer) -> dict:
        pids = []
        for p in prompts:
            if p not in index:
                raise KeyError(f"rollout_func: prompt not in the training problems: {str(p)[:80]!r}")
            pids.append(index[p])
        jobs = [(pid, i, settings.T_train) for i, pid in enumerate(pids)]
        t0 = time.time()
        episodes = sorted(run_episodes(backend_factory(trainer), env, jobs, cfg), key=lambda e: e.sample)
        stats["seconds"] += time.time() - t0
        stats["calls"] += 1
        stats["episodes"] += len(episodes)
        stats["generated_tokens"] += sum(e.generated for e in episodes)
        return rollout_batch(env, episodes, settings.max_total_tokens)

    rollout_func.stats = stats  # engine throughput inside training (bench/bench_grpo.py, run metadata)
    return rollout_func


def default_backend_factory(tokenizer, settings: GRPOSettings) -> Callable:
    """trainer -> backend: our cached transformers engine on the live model, or TRL's colocated vLLM engine.

    With ``use_vllm`` TRL syncs the training weights into its own vLLM engine before calling the rollout_func,
    so the engine is reused rather than a second copy loaded. Untested here (no GPU / vLLM on this machine).
    """

    def factory(trainer):
        if settings.use_vllm:
            # wrap TRL's engine (it holds the synced training weights) instead of loading another copy
            # a fresh backend per rollout call: its seed stream comes from (seed, rank, step), so steps and ranks
            # draw independently and a resumed run redraws what the same step drew
            be = VLLMBackend.wrap(trainer.vllm_generation.llm, tokenizer, batch_size=settings.gen_batch_size)
            be.reseed(VLLMBackend.request_seed(settings.seed, trainer.accelerator.process_index,
                                               trainer.state.global_step))
            return be
        model = trainer.accelerator.unwrap_model(trainer.model)
        return HFBackend(model, tokenizer, batch_size=settings.gen_batch_size)

    return factory


# ---------------------------------------------------------------------------------------------------------
# Rewards and rollout-side metrics
# ---------------------------------------------------------------------------------------------------------

def check_groups(problem_id: list[str], group_size: int) -> None:
    """TRL lays out each group as ``group_size`` consecutive rows of one problem; fail loudly if not."""
    if len(problem_id) % group_size:
        raise ValueError(f"{len(problem_id)} episodes is not a multiple of group_size={group_size}")
    for g in range(0, len(problem_id), group_size):
        if len(set(problem_id[g : g + group_size])) != 1:
            raise ValueError(f"episodes {g}..{g + group_size - 1} mix problems {sorted(set(problem_id[g:g + group_size]))}: "
                             "groups are split across processes (make prompts_per_step a multiple of the process count)")


def unique_in_group(keys: list[str], valid: list[bool], group_size: int) -> list[float]:
    """1.0 where a valid episode's query sequence occurs exactly once among the valid episodes of its group."""
    if len(keys) != len(valid):
        raise ValueError(f"unique_in_group: {len(keys)} keys but {len(valid)} valid flags")
    out = []
    for g in range(0, len(keys), group_size):
        pairs = list(zip(keys[g : g + group_size], valid[g : g + group_size], strict=True))
        ks = [k for k, v in pairs if v]
        out += [float(v and ks.count(k) == 1) for k, v in pairs]
    return out


def rollout_metrics(correct: list[bool], valid: list[bool], searches: list[int], n_tokens: list[int],
                    n_model_tokens: list[int], keys: list[str], group_size: int) -> dict[str, float]:
    """Per-step rollout statistics that TRL does not log itself."""
    n = len(correct)
    groups = [correct[g : g + group_size] for g in range(0, n, group_size)]
    return {
        "rollout/accuracy": sum(correct) / n,
        "rollout/mixed_groups": sum(0 < sum(g) < len(g) for g in groups) / len(groups),
        "rollout/searches": sum(searches) / n,
        "rollout/episode_tokens": sum(n_tokens) / n,
        "rollout/model_tokens": sum(n_model_tokens) / n,
        "rollout/invalid": 1 - sum(valid) / n,
        "rollout/unique_query_seqs": sum(unique_in_group(keys, [True] * n, group_size)) / n,
    }


def make_reward_funcs(settings: GRPOSettings) -> tuple[list[Callable], list[float]]:
    """(reward functions, weights) for GRPOTrainer; total reward = correct + bonus × unique.

    Exploration bonus (ablation; the paper does not give its form): an episode earns ``bonus`` when it is valid
    and its normalised query sequence (:func:`query_key`) appears exactly once among the valid episodes of its
    group of G. It rewards trying a search plan the other samples did not, independent of correctness; an
    episode with no search counts as the empty plan; protocol-breaking episodes never earn it.
    """
    G = settings.group_size

    def exact_match(completions, correct, valid, problem_id, searches, n_tokens, n_model_tokens, query_key,
                    log_metric=None, **kwargs):
        check_groups(problem_id, G)
        if log_metric is not None:
            for name, value in rollout_metrics(correct, valid, searches, n_tokens, n_model_tokens, query_key, G).items():
                log_metric(name, value)
        return [float(bool(c) and bool(v)) for c, v in zip(correct, valid, strict=True)]

    def exploration_bonus(completions, valid, problem_id, query_key, **kwargs):
        check_groups(problem_id, G)
        return unique_in_group(query_key, valid, G)

    if settings.bonus > 0:
        return [exact_match, exploration_bonus], [1.0, settings.bonus]
    return [exact_match], [1.0]


# ---------------------------------------------------------------------------------------------------------
# Logging
# ---------------------------------------------------------------------------------------------------------

# CSV column -> key in TRL's logs (None: computed by the callback). trl_completion_length is TRL's own count of
# env_mask = 1 tokens: equal to model_tokens when TRL honours our mask.
LOG_COLUMNS = {
    "step": None, "epoch": "epoch", "reward": "reward", "accuracy": "rollout/accuracy",
    "mixed_groups": "rollout/mixed_groups", "searches": "rollout/searches",
    "episode_tokens": "rollout/episode_tokens", "model_tokens": "rollout/model_tokens", "invalid": "rollout/invalid",
    "unique_query_seqs": "rollout/unique_query_seqs", "entropy": "entropy", "kl": "kl",
    "clip_ratio": "clip_ratio/region_mean", "loss": "loss", "grad_norm": "grad_norm",
    "learning_rate": "learning_rate", "trl_completion_length": "completions/mean_length", "step_seconds": None,
}


def _make_csv_callback(path: Path):
    from transformers import TrainerCallback

    class CSVLogCallback(TrainerCallback):
        """Appends one row per TRL log event (every ``logging_steps`` steps) to ``path``."""

        def __init__(self):
            self.path, self.t_last, self.step_last = path, None, 0

        def on_train_begin(self, args, state, control, **kwargs):
            self.t_last, self.step_last = time.time(), state.global_step

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs or "loss" not in logs or "train_runtime" in logs:
                return
            now, steps = time.time(), max(state.global_step - self.step_last, 1)
            row = {c: logs.get(k, "") for c, k in LOG_COLUMNS.items() if k is not None}
            row.update(step=state.global_step, step_seconds=round((now - self.t_last) / steps, 4))
            self.t_last, self.step_last = now, state.global_step
            new = not self.path.exists() or self.path.stat().st_size == 0
            with self.path.open("a", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(LOG_COLUMNS))
                if new:
                    w.writeheader()
                w.writerow(row)

    return CSVLogCallback()


def _make_plateau_callback(log_path: Path, min_epochs: float):
    """Stops training at the end of an epoch (from ``min_epochs`` on) once ``reward_plateau`` of the CSV log says
    "plateau"; writes ``plateau_stop.json`` beside the log with the step, epoch and the test."""
    from transformers import TrainerCallback

    from passkt.evaluate import reward_plateau

    class PlateauStop(TrainerCallback):
        def on_epoch_end(self, args, state, control, **kwargs):
            if (state.epoch or 0) + 1e-9 < min_epochs:
                return
            import pandas as pd
            from accelerate.utils import broadcast_object_list

            # only the main process writes the log: it decides, and every process stops at the same step
            test = [reward_plateau(pd.read_csv(log_path)) if state.is_world_process_zero and log_path.exists()
                    else None]
            if process_state().num_processes > 1:
                broadcast_object_list(test, from_process=0)
            test = test[0]
            if test is not None and test["verdict"] == "plateau":
                control.should_training_stop = True
                if state.is_world_process_zero:
                    (log_path.parent / "plateau_stop.json").write_text(json.dumps(
                        {"step": state.global_step, "epoch": state.epoch, "test": test}, indent=2) + "\n")

    return PlateauStop()


def trim_log(path: Path, last_step: int) -> None:
    """Drop log rows after ``last_step`` (written after the checkpoint we resume from), so rows stay unique."""
    if not path.exists():
        return
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(LOG_COLUMNS))
        w.writeheader()
        w.writerows(r for r in rows if int(r["step"]) <= last_step)


# ---------------------------------------------------------------------------------------------------------
# Trainer
# ---------------------------------------------------------------------------------------------------------

def build_dataset(env: Environment):
    """One row per training problem: the prompt text (TRL's ``prompt`` column) and the problem id."""
    from datasets import Dataset

    rows = [{"prompt": text, "problem_id": pid} for text, pid in prompt_index(env).items()]
    return Dataset.from_list(rows)


def build_config(settings: GRPOSettings, output_dir: str | Path, n_processes: int = 1):
    """TRL GRPOConfig: one generation of prompts_per_step × G episodes per optimiser step."""
    from trl import GRPOConfig

    G, P = settings.group_size, settings.prompts_per_step
    if P % n_processes:
        raise ValueError(f"prompts_per_step={P}: must be a multiple of the process count {n_processes} "
                         "(every process must hold whole groups)")
    if (P * G) % (settings.grad_accum * n_processes):
        raise ValueError(f"prompts_per_step × group_size = {P * G} is not divisible by grad_accum × processes "
                         f"= {settings.grad_accum * n_processes}")
    kw = dict(
        output_dir=str(output_dir), num_train_epochs=settings.epochs, learning_rate=settings.lr,
        lr_scheduler_type="constant", per_device_train_batch_size=P * G // (settings.grad_accum * n_processes),
        gradient_accumulation_steps=settings.grad_accum, num_generations=G,
        max_completion_length=settings.max_total_tokens, temperature=settings.temperature, top_p=settings.top_p,
        beta=settings.beta, epsilon=settings.epsilon, loss_type=settings.loss_type,
        scale_rewards=settings.scale_rewards,
        reward_weights=make_reward_funcs(settings)[1], seed=settings.seed, data_seed=settings.seed,
        save_strategy="steps", save_steps=settings.save_steps, save_total_limit=settings.save_total_limit,
        logging_steps=settings.logging_steps, report_to=[], bf16=settings.bf16, **compat.checkpointing(settings.gradient_checkpointing),
        model_init_kwargs={"dtype": "bfloat16" if settings.bf16 else "float32"}, log_completions=False,
        use_vllm=settings.use_vllm,
    )
    if settings.use_vllm:
        # the rollout_func returns vLLM's sampling log-probs (NaN on retrieved text), so TRL corrects the
        # bf16-engine vs trainer mismatch with a truncated importance ratio
        kw.update(vllm_mode=settings.vllm_mode, vllm_importance_sampling_correction=settings.importance_sampling,
                  vllm_max_model_length=settings.max_total_tokens
                  + max(settings.max_turn_tokens, settings.math_max_turn_tokens))
    return GRPOConfig(**kw)


def lora_config(settings: GRPOSettings):
    from peft import LoraConfig

    return LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, target_modules="all-linear",
                      task_type="CAUSAL_LM", lora_dropout=0.0)


def length_buckets(completion_mask, n_buckets: int) -> list[tuple[object, int]]:
    """(row indices, longest completion among them) for ``n_buckets`` groups of rows sorted by completion length.

    A completion's length is the position of its last unmasked token (TRL pads completions on the right), at least 1.
    Rows are sorted longest first and split into groups of nearly equal size; empty groups are dropped.
    """
    import torch

    n = completion_mask.size(1)
    ends = (completion_mask * torch.arange(1, n + 1, device=completion_mask.device)).amax(1).clamp(min=1)
    order = torch.argsort(ends, descending=True, stable=True)
    return [(rows, int(ends[rows].max())) for rows in torch.tensor_split(order, n_buckets) if len(rows)]


class _FastLogprobs:
    """Mixin over TRL's GRPOTrainer: the same per-token log-probabilities and entropies, computed faster on CPU.

    TRL (1.16) scores the whole batch padded to its longest episode; the loss only reads completion tokens, and a
    causal model's log-probabilities at a position do not depend on what follows it. So rows are sorted by
    completion length into ``logprob_buckets`` micro-batches, each cut after its longest completion and scored by
    TRL's own method, and the results are padded back (zeros: masked out of the loss, as TRL's padding is) in the
    original row order. ``autocast_bf16`` runs that forward (hence its backward) under bfloat16 autocast with the
    fp32 weights. Same loss and gradients up to float rounding (tests/test_grpo.py checks both against TRL's path).
    """

    logprob_buckets: int = 1
    autocast_bf16: bool = False

    def _loss_dtype(self, device_type: str):
        """The loss forward's precision context: bfloat16 autocast when ``autocast_bf16``, else none."""
        import contextlib

        import torch

        return torch.autocast(device_type, dtype=torch.bfloat16) if self.autocast_bf16 else contextlib.nullcontext()

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, batch_size=None,
                                           compute_entropy=False, compute_aux_loss=False, **kwargs):
        import torch

        score = super()._get_per_token_logps_and_entropies
        with self._loss_dtype(input_ids.device.type):
            if self.logprob_buckets == 1 or compute_aux_loss or any(v is not None for v in kwargs.values()):
                return score(model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy,
                             compute_aux_loss, **kwargs)  # TRL's path (also for MoE aux losses and images)
            n_prompt = input_ids.size(1) - logits_to_keep
            rows_all, logps, entropies = [], [], []
            for rows, n in length_buckets(attention_mask[:, n_prompt:], self.logprob_buckets):
                lp, ent, _ = score(model, input_ids[rows, : n_prompt + n], attention_mask[rows, : n_prompt + n], n,
                                   batch_size, compute_entropy)
                rows_all.append(rows)
                logps.append(torch.nn.functional.pad(lp, (0, logits_to_keep - n)))
                if compute_entropy:
                    entropies.append(torch.nn.functional.pad(ent, (0, logits_to_keep - n)))
        back = torch.argsort(torch.cat(rows_all))  # sorted position -> original row
        return torch.cat(logps)[back], (torch.cat(entropies)[back] if compute_entropy else None), None


@functools.cache
def trainer_class():
    """TRL's GRPOTrainer with :class:`_FastLogprobs` (built on first use: importing TRL is slow)."""
    from trl import GRPOTrainer

    return type("PassktGRPOTrainer", (_FastLogprobs, GRPOTrainer), {"__module__": __name__})


def build_trainer(base_model_dir: str | Path, env: Environment, out_dir: Path, settings: GRPOSettings,
                  backend_factory: Callable | None = None):
    """GRPOTrainer over ``env``'s problems; the model is loaded from ``base_model_dir`` (a path: TRL reloads the
    reference model by name when beta > 0)."""
    args = build_config(settings, out_dir / "checkpoints", process_state().num_processes)
    factory = backend_factory or default_backend_factory(env.tok, settings)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*rollout_func.*experimental.*")
        trainer = trainer_class()(
            model=str(base_model_dir), reward_funcs=make_reward_funcs(settings)[0], args=args,
            train_dataset=build_dataset(env), processing_class=env.tok,
            peft_config=lora_config(settings) if settings.lora else None,
            rollout_func=make_rollout_func(env, settings, factory),
            callbacks=[_make_csv_callback(out_dir / "train_log.csv")]
            + ([_make_plateau_callback(out_dir / "train_log.csv", settings.plateau_min_epochs)]
               if settings.stop_at_plateau else []),
        )
    trainer.logprob_buckets, trainer.autocast_bf16 = settings.logprob_buckets, settings.autocast_bf16
    if settings.shared_prompt:
        from passkt import shared_prompt  # imports this module

        shared_prompt.enable(trainer)
    return trainer


def process_state():
    """accelerate's process state, initialised as the launcher asked: on CPUs ``ACCELERATE_USE_CPU=true`` (set by
    ``accelerate launch --cpu``, or by hand around ``accelerate launch --multi_gpu`` / torchrun) gives one gloo
    process per launched rank; a plain ``PartialState()`` created first would pin every rank to a lone process."""
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))


def replicate_runs(grpo: dict, sampling: dict, bonus: float, bonus_replicates: int, replicate: int,
                   train_seed: int) -> dict[str, GRPOSettings]:
    """The GRPO runs of one training replicate, by policy name: ``rl`` always, ``rl_bonus`` in the first
    ``bonus_replicates`` replicates. The stage's notebook and the training entry point (``passkt.train``) both build
    their settings here, so a run the launcher trained is the very run the notebook would train (same fingerprint).
    Episode limits come from the shared ``sampling`` section; training samples at top-p 1 (on-policy)."""
    bonuses = {"rl": 0.0, **({"rl_bonus": bonus} if replicate < bonus_replicates else {})}
    return {name: GRPOSettings(**grpo, bonus=b, seed=train_seed, max_turn_tokens=sampling["max_turn_tokens"],
                               math_max_turn_tokens=sampling.get("math_max_turn_tokens", 0),
                               max_total_tokens=sampling["max_total_tokens"], gen_batch_size=sampling["batch_size"])
            for name, b in bonuses.items()}


def last_checkpoint(ckpt_dir: Path) -> Path | None:
    """The newest ``checkpoint-N`` folder with a trainer state, or None."""
    cks = [p for p in ckpt_dir.glob("checkpoint-*") if (p / "trainer_state.json").exists()]
    return max(cks, key=lambda p: int(p.name.split("-")[-1]), default=None)


def save_final(trainer, tokenizer, model_dir: Path, lora: bool) -> None:
    """The trained policy as a plain save_pretrained folder (LoRA merged), loadable like the base model."""
    if lora:
        if trainer.accelerator.is_main_process:
            model = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
            model.save_pretrained(model_dir)
            tokenizer.save_pretrained(model_dir)
    else:
        trainer.save_model(str(model_dir))
        if trainer.accelerator.is_main_process:
            tokenizer.save_pretrained(model_dir)


def train_grpo(base_model_dir: str | Path, problems: list[dict], tokenizer, out_dir: str | Path,
               settings: GRPOSettings, search_k: int, backend_factory: Callable | None = None,
               require_finished: bool = False) -> dict:
    """Train GRPO on ``problems``; resume from the newest checkpoint in ``out_dir/checkpoints`` if there is one.

    ``require_finished``: the run must already be finished by this code, model, data and settings (a launcher
    trained it: ``passkt.train``); raise rather than train it in this process.

    Writes ``out_dir/train_log.csv`` (one row per logging step), ``out_dir/checkpoints/checkpoint-N`` every
    ``save_steps`` steps and the final model + tokenizer in ``out_dir/model``. Returns timings and step counts.
    """
    from passkt import integrity
    from passkt.models import model_fingerprint

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not problems:
        raise ValueError("train_grpo: no training problems")
    scorer = integrity.scorer_version()  # the reward is a score: the log records which scorer produced it
    fp = integrity.fingerprint({"code": integrity.code_version(["passkt.grpo"])["hash"],
                                "base": model_fingerprint(base_model_dir), "settings": asdict(settings),
                                "problems": integrity.fingerprint(problems), "search_k": search_k,
                                "backend_factory": getattr(backend_factory, "__qualname__", None)})
    if (done := integrity.finished_result(out, fp)) is not None:  # finished by this code, model, data, settings
        return done
    if require_finished:
        raise RuntimeError(f"{out}: no finished GRPO run with this code, base model, data and settings (the launched "
                           "trainer failed, or trained other settings); not training it here")
    state = process_state()
    if state.is_main_process:  # one process clears stale state; the others wait for it
        integrity.clear_done(out)
        if integrity.claim_checkpoints(out / "checkpoints", fp):
            (out / "train_log.csv").unlink(missing_ok=True)  # the log of the discarded run
            (out / "plateau_stop.json").unlink(missing_ok=True)
    state.wait_for_everyone()
    env = Environment(problems, tokenizer, search_k)
    trainer = build_trainer(base_model_dir, env, out, settings, backend_factory)
    resume = last_checkpoint(out / "checkpoints")
    start = int(resume.name.split("-")[-1]) if resume else 0
    if state.is_main_process:
        trim_log(out / "train_log.csv", start)
        if resume is None:  # a fresh start: a stop record of an earlier, unfinished run does not describe this one
            (out / "plateau_stop.json").unlink(missing_ok=True)
    state.wait_for_everyone()
    t0 = time.time()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    seconds = time.time() - t0
    save_final(trainer, tokenizer, out / "model", settings.lora)
    steps = trainer.state.global_step - start
    if state.is_main_process:
        (out / "grpo_settings.json").write_text(json.dumps({**asdict(settings), "scorer": scorer}, indent=2) + "\n")
    ro = getattr(trainer.rollout_func, "stats", {})
    result = {"seconds": round(seconds, 3), "steps": steps, "global_step": trainer.state.global_step,
            "seconds_per_step": round(seconds / steps, 3) if steps else math.nan,
            "resumed_from": str(resume) if resume else None,
            "rollout_seconds": round(ro.get("seconds", 0.0), 3), "rollout_episodes": ro.get("episodes", 0),
            "rollout_generated_tokens": ro.get("generated_tokens", 0), "scorer": scorer, "fingerprint": fp,
            "stopped_at_plateau": (out / "plateau_stop.json").exists(), "processes": state.num_processes}
    if trainer.accelerator.is_main_process:
        integrity.mark_done(out, fp, result=result)
    return result
