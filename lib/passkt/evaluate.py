"""Evaluation sampling shared by stages 02 (base), 03 (SFT) and 04 (RL): one function, one settings dict.

Every policy is sampled with exactly the same ``sampling`` section of params.yaml (engine, n, depth grid,
temperatures, top-p, token limits, search top-k, seeds), so the policies are compared on identical terms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from passkt import rollout
from passkt.backends import HFBackend, VLLMBackend


@dataclass(frozen=True)
class SamplingSettings:
    n: int = 16  # rollouts per (problem, temperature, T)
    T_grid: list = field(default_factory=lambda: [0, 1, 2, 3, 5])
    math_T_grid: list = field(default_factory=lambda: [0])
    temperatures: list = field(default_factory=lambda: [1.0])
    top_p: float = 1.0
    max_turn_tokens: int = 48
    max_total_tokens: int = 1024
    search_k: int = 1
    backend: str = "hf"  # hf | vllm
    batch_size: int = 256
    problems_per_shard: int = 8
    mode: str = "fork"  # fork (depth grid from one pass) | separate (one run per T)
    device: str = "cpu"
    workers: int = 1  # sampling threads (hf backend): shards and batches in parallel; same samples as 1 worker

    @classmethod
    def from_dict(cls, d: dict) -> "SamplingSettings":
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"sampling: unknown key {unknown[0]!r}; known: {sorted(cls.__dataclass_fields__)}")
        s = cls(**d)
        if s.backend not in ("hf", "vllm"):
            raise ValueError(f"sampling.backend must be 'hf' or 'vllm', got {s.backend!r}")
        if not isinstance(s.workers, int) or s.workers < 1:
            raise ValueError(f"sampling.workers must be an integer >= 1, got {s.workers!r}")
        if s.mode not in ("fork", "separate"):
            raise ValueError(f"sampling.mode must be 'fork' or 'separate', got {s.mode!r}")
        return s

    def config(self, temperature: float | None = None) -> rollout.SamplingConfig:
        return rollout.SamplingConfig(temperature=self.temperatures[-1] if temperature is None else temperature,
                                      top_p=self.top_p, max_turn_tokens=self.max_turn_tokens,
                                      max_total_tokens=self.max_total_tokens, search_k=self.search_k)


def make_backend(model, tokenizer, s: SamplingSettings, model_path: str | Path | None = None, seed: int = 0):
    if s.backend == "vllm":
        return VLLMBackend(str(model_path), tokenizer, seed=seed)
    return HFBackend(model, tokenizer, batch_size=s.batch_size)


def sample_eval(model_dir: str | Path, policy: str, problems: list[dict], out_dir: str | Path, sampling: dict,
                seed: int) -> dict:
    """Sample ``policy`` (a saved model folder) on ``problems`` with the shared settings; returns throughput."""
    import torch

    from passkt import models

    s = SamplingSettings.from_dict(sampling)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model, tok = models.load_policy(model_dir, device=s.device) if s.backend == "hf" else (None, None)
    if tok is None:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(model_dir))
    env = rollout.Environment(problems, tok, search_k=s.search_k)
    backend = make_backend(model, tok, s, model_dir, seed)
    return rollout.sample_policy(
        backend, env, problems, policy=policy, out_dir=out_dir, n=s.n, grid=list(s.T_grid),
        temperatures=list(s.temperatures), cfg=s.config(), seed=seed, math_grid=list(s.math_T_grid),
        problems_per_shard=s.problems_per_shard, mode=s.mode, desc=f"sampling {policy}",
        settings={"model": models.model_fingerprint(model_dir)}, workers=s.workers,
    )


def summary_table(df):
    """Per (category, temperature, T): episodes, Pass@1 (= mean correct), validity, mean searches."""
    g = df.groupby(["category", "temperature", "T"])
    return g.agg(episodes=("correct", "size"), pass1=("correct", "mean"), valid=("valid", "mean"),
                 searches=("searches", "mean"), tokens=("n_tokens", "mean")).reset_index()


def _pass_n(sub) -> float:
    return float(sub.groupby("problem_id")["correct"].max().mean()) if len(sub) else float("nan")


def sanity_bands(df, temperature: float, T_eval: int = 5) -> list[dict]:
    """The tiny base model's sanity bands (issue: stage 01), measured on base rollouts at one temperature."""
    d = df[abs(df.temperature - temperature) < 1e-9]
    rows = []

    def band(name, value, low, high):
        rows.append({"band": name, "value": value, "low": low, "high": high,
                     "ok": bool(low <= value <= high) if value == value else False})

    tool = d[d.category.isin(["comparison", "bridge"]) & (d["T"] == T_eval)]
    for cat in ("comparison", "bridge"):
        sub = tool[tool.category == cat]
        band(f"{cat} Pass@1 (T={T_eval})", float(sub.correct.mean()), 0.05, 0.6)
        band(f"{cat} Pass@n (T={T_eval})", _pass_n(sub), 0.4, 0.95)
    band(f"episodes using search (T={T_eval})", float((tool.searches > 0).mean()), 0.5, 1.0)
    band(f"well-formed episodes (T={T_eval})", float(tool.valid.mean()), 0.9, 1.0)
    br = d[d.category == "bridge"]
    p1, p2 = _pass_n(br[br["T"] == 1]), _pass_n(br[br["T"] == 2])
    band("bridge Pass@n(T=2) - Pass@n(T=1)", p2 - p1, 0.05, 1.0)
    m = d[(d.category == "math") & (d["T"] == 0)]
    band("math Pass@1 (T=0)", float(m.correct.mean()), 0.1, 0.8)
    return rows


def train_pass1(model_dir: str | Path, problems: list[dict], sampling: dict, n: int, T: int, seed: int) -> dict:
    """Pass@1 (mean exact match) of a saved policy on ``problems`` at budget T, n samples each, per category.

    Used to check that SFT learned its demonstrations and that GRPO improved on its training problems.
    """
    import torch

    from passkt.models import load_policy

    s = SamplingSettings.from_dict(sampling)
    model, tok = load_policy(model_dir, device=s.device)
    env = rollout.Environment(problems, tok, search_k=s.search_k)
    torch.manual_seed(seed)
    eps = rollout.run_episodes(make_backend(model, tok, s, model_dir, seed), env,
                               [(p["id"], i, T) for p in problems for i in range(n)], s.config(), workers=s.workers)
    out: dict[str, list] = {}
    for e in eps:
        rec = rollout.to_record(env, e, T, "x", s.temperatures[-1], seed)
        out.setdefault(rec["category"], []).append(rec["correct"])
        out.setdefault("all", []).append(rec["correct"])
    return {k: float(sum(v) / len(v)) for k, v in out.items()}


def load_counts(paths, policies: list[str]):
    """Per (policy, category, problem, temperature, T): n rollouts and c successes, from cached rollouts."""
    import pandas as pd

    frames = []
    for pol in policies:
        d = paths.rollouts(pol)
        if not any(d.glob("shard-*.parquet")):
            raise FileNotFoundError(f"no rollouts for policy {pol!r} in {d}")
        df = rollout.load_rollouts(d, columns=["problem_id", "category", "T", "temperature", "correct"])
        g = df.groupby(["category", "problem_id", "temperature", "T"])["correct"].agg(n="size", c="sum").reset_index()
        g.insert(0, "policy", pol)
        frames.append(g)
    out = pd.concat(frames, ignore_index=True)
    out["c"] = out["c"].astype("int64")
    return out


def k_grid(n: int) -> list[int]:
    """1, 2, 4, ... up to n (n itself always included)."""
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    return ks + [n]


def reward_rise(log, seed: int = 0, frac: float = 0.1, n_boot: int = 2000) -> dict:
    """Mean training reward over the first and last ``frac`` of steps, their difference, bootstrap CI over steps."""
    import numpy as np

    r = log["reward"].to_numpy(dtype=float)
    m = max(1, int(round(len(r) * frac)))
    first, last = r[:m], r[-m:]
    rng = np.random.default_rng(seed)
    diffs = [rng.choice(last, m).mean() - rng.choice(first, m).mean() for _ in range(n_boot)]
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return {"steps": int(len(r)), "window": m, "first": float(first.mean()), "last": float(last.mean()),
            "rise": float(last.mean() - first.mean()), "ci_low": float(lo), "ci_high": float(hi)}
