"""Evaluation sampling shared by stages 02 (base), 03 (SFT) and 04 (RL): one function, one settings dict.

Every policy is sampled with exactly the same ``sampling`` section of params.yaml (engine, n, depth grid,
temperatures, top-p, token limits, search top-k, seeds), so the policies are compared on identical terms.

This module is the root of the sampling path's import closure (:data:`passkt.integrity.SAMPLING_ROOTS`): rollout
shards are reused only by the same source of it and everything it imports. It must not import the scorer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

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
    math_max_turn_tokens: int = 0  # per-turn limit for math problems (0: max_turn_tokens)
    max_total_tokens: int = 1024
    search_k: int = 1
    backend: str = "hf"  # hf | vllm
    batch_size: int = 256
    problems_per_shard: int = 8
    mode: str = "fork"  # fork (depth grid from one pass) | separate (one run per T)
    device: str = "cpu"
    workers: int = 1  # sampling threads (hf backend): shards and batches in parallel; same samples as 1 worker
    dtype: str = "auto"  # vllm backend: weights and activations (auto | float16 | bfloat16 | float32)
    max_model_len: int = 0  # vllm backend: context length (0: the model's own)
    gpu_memory_utilization: float = 0.9  # vllm backend: share of GPU memory for weights and KV cache
    data_parallel_size: int = 1  # vllm backend: engine replicas (one per GPU)

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
        if s.dtype not in ("auto", "float16", "bfloat16", "float32", "half", "float"):
            raise ValueError(f"sampling.dtype must be auto, float16, bfloat16 or float32, got {s.dtype!r}")
        whole = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
        if not whole(s.max_model_len) or s.max_model_len < 0:
            raise ValueError(f"sampling.max_model_len must be an integer >= 0, got {s.max_model_len!r}")
        gmu = s.gpu_memory_utilization
        if not (isinstance(gmu, (int, float)) and not isinstance(gmu, bool) and 0 < gmu <= 1):
            raise ValueError(f"sampling.gpu_memory_utilization must be in (0, 1], got {gmu!r}")
        if not whole(s.data_parallel_size) or s.data_parallel_size < 1:
            raise ValueError(f"sampling.data_parallel_size must be an integer >= 1, got {s.data_parallel_size!r}")
        return s

    def config(self, temperature: float | None = None) -> rollout.SamplingConfig:
        return rollout.SamplingConfig(temperature=self.temperatures[-1] if temperature is None else temperature,
                                      top_p=self.top_p, max_turn_tokens=self.max_turn_tokens,
                                      max_total_tokens=self.max_total_tokens, search_k=self.search_k,
                                      math_max_turn_tokens=self.math_max_turn_tokens)


def make_backend(model, tokenizer, s: SamplingSettings, model_path: str | Path | None = None, seed: int = 0):
    if s.backend == "vllm":
        kw = {"dtype": s.dtype, "gpu_memory_utilization": s.gpu_memory_utilization}
        if s.max_model_len > 0:
            kw["max_model_len"] = s.max_model_len
        if s.data_parallel_size > 1:
            kw["data_parallel_size"] = s.data_parallel_size
        return VLLMBackend(str(model_path), tokenizer, seed=seed, batch_size=s.batch_size, **kw)
    return HFBackend(model, tokenizer, batch_size=s.batch_size)


def in_own_process(fn: Callable, *args, **kwargs):
    """``fn(*args, **kwargs)`` in a fresh (spawned) process: one vLLM engine per process, and its GPU memory is
    the operating system's again when the process ends (vLLM does not reliably free an in-process engine)."""
    import concurrent.futures
    import multiprocessing

    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as ex:
        return ex.submit(fn, *args, **kwargs).result()


def isolate(s: SamplingSettings, isolated: bool | None) -> bool:
    """Whether a sampling job runs in its own process: always for vLLM (None: decide by backend)."""
    return s.backend == "vllm" if isolated is None else isolated


def sample_eval(model_dir: str | Path, policy: str, problems: list[dict], out_dir: str | Path, sampling: dict,
                seed: int, isolated: bool | None = None) -> dict:
    """Sample ``policy`` (a saved model folder) on ``problems`` with the shared settings; returns throughput.

    ``isolated`` runs the job in its own process (:func:`in_own_process`; default: with the vLLM backend only)."""
    s = SamplingSettings.from_dict(sampling)
    if isolate(s, isolated):
        return in_own_process(sample_eval, model_dir, policy, problems, out_dir, sampling, seed, isolated=False)
    import torch

    from passkt import models

    torch.set_num_threads(max(1, torch.get_num_threads()))
    model, tok = models.load_policy(model_dir, device=s.device) if s.backend == "hf" else (None, None)
    if tok is None:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(model_dir))
    env = rollout.Environment(problems, tok, search_k=s.search_k)
    backend = make_backend(model, tok, s, model_dir, seed)
    try:
        return rollout.sample_policy(
            backend, env, problems, policy=policy, out_dir=out_dir, n=s.n, grid=list(s.T_grid),
            temperatures=list(s.temperatures), cfg=s.config(), seed=seed, math_grid=list(s.math_T_grid),
            problems_per_shard=s.problems_per_shard, mode=s.mode, desc=f"sampling {policy}",
            settings={"model": models.model_fingerprint(model_dir)}, workers=s.workers,
        )
    finally:
        close_backend(backend)


def free_accelerator_memory() -> None:
    """Hand the GPU memory of deleted models back (a vLLM engine in another process needs it free to start)."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def close_backend(backend) -> None:
    """Tear down a backend that owns an engine (vLLM); the transformers backends hold nothing to free."""
    if hasattr(backend, "close"):
        backend.close()
