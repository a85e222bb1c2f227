"""A whole GRPO training run as stage 04 trains it, with stage 04's loss path and with each prompt shared, timed.

    python bench/bench_grpo_run.py --data-root CHECKOUT [--replicate 2] [--seed S] [--epochs E] [--shared-first]
    python bench/bench_grpo_run.py --data-root CHECKOUT --profile [--epochs 1]   # where a stage-04 step's time goes

The step benchmark (bench_grpo_step.py) times one batch; this one trains the replicate's plain GRPO run (``rl``)
end to end, twice, one after the other in one process: with stage 04's loss path (length buckets + bf16) and with
``passkt.shared_prompt`` (in that order; ``--shared-first`` reverses it, for a check that the order does not favour
either). Settings from ./params.yaml (``04_grpo``, ``sampling``; the seed of replicate R
is the notebook's), base model and training problems from CHECKOUT's stages 00-01. Both runs start from the same
base model with the same seed, so they sample the same first batch; after the first update their weights differ by
float rounding, and with it their samples; so they may also stop at a different epoch (stage 04 stops once the
reward has plateaued), and the speed-up is per optimiser step. The run's models go to a temporary folder and are
discarded. Any replicate will do (default 2: a run without the exploration-bonus twin that replicate 0 trains).

``--profile`` instead trains the run once, with stage 04's loss path as params.yaml sets it, under cProfile
(``--epochs``, default 1) and prints where the trainer's time went: the rollout, the loss forward, the backward
(and in it TRL's chunked log-prob head), the optimizer step, and the rest of the trainer's loop.

Prints, per path: the wall time of the whole call and of the training, optimiser steps, median step seconds (the
trainer's log), the speed-up in training seconds per step, and the mean training reward over the first and the last 20 % of steps (the two runs should learn alike, not identically).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import yaml
from transformers import AutoTokenizer

from passkt import grpo, models, sft, shared_prompt
from passkt.meta import seed_everything
from passkt.paths import Paths, replicate_seed


def setup(data_root: Path, replicate: int, seed: int | None, epochs: int | None, threads: int | None):
    """What both modes train: the replicate's plain GRPO run (``rl``) as stage 04 sets it up from params.yaml, with
    ``epochs`` if given. Returns ``(settings, base model folder, tokenizer, training problems, search_k, seed)``."""
    if threads:
        torch.set_num_threads(threads)
    prm = yaml.safe_load(Path("params.yaml").read_text())
    seed = prm["seed"] if seed is None else seed
    g = dict(prm["04_grpo"]["grpo"], **({"epochs": epochs} if epochs else {}))
    train_seed = replicate_seed(seed, replicate)
    settings = grpo.replicate_runs(g, prm["sampling"], 0.0, 0, replicate, train_seed)["rl"]
    P = Paths.at(data_root)
    base = models.base_model_location(P.data("01_base_model"))
    return (settings, base, AutoTokenizer.from_pretrained(base), sft.training_problems(P.problems),
            prm["sampling"]["search_k"], train_seed)


def run(data_root: Path, replicate: int, seed: int | None, epochs: int | None, threads: int | None,
        shared_first: bool = False) -> list[dict]:
    settings, base, tok, problems, search_k, train_seed = setup(data_root, replicate, seed, epochs, threads)
    # Each arm picks its own loss path through the class swap below; with params.yaml's shared_prompt on,
    # build_trainer would otherwise switch the first arm to the shared path too and time it against itself.
    settings = dataclasses.replace(settings, shared_prompt=False)
    stage04 = grpo.trainer_class
    shared_cls = shared_prompt.trainer_class()  # built on stage 04's class now, before the swap below
    paths = [("stage 04's path (buckets + bf16)", stage04), ("each prompt once (shared_prompt)", lambda: shared_cls)]
    out = []
    try:
        for name, cls in (paths[::-1] if shared_first else paths):
            grpo.trainer_class = cls  # build_trainer looks the class up at call time
            seed_everything(train_seed)
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                res = grpo.train_grpo(base, problems, tok, Path(tmp) / "rl", settings, search_k)
                wall = time.perf_counter() - t0
                log = pd.read_csv(Path(tmp) / "rl" / "train_log.csv")
            fifth = max(1, len(log) // 5)
            out.append({"path": name, "wall_s": wall, "train_s": res["seconds"], "steps": res["steps"],
                        "median_step_s": statistics.median(log["step_seconds"]),
                        "reward_first": log["reward"].head(fifth).mean(),
                        "reward_last": log["reward"].tail(fifth).mean()})
    finally:
        grpo.trainer_class = stage04
    return sorted(out, key=lambda r: r["path"] != paths[0][0])  # stage 04's path first: the speed-up's reference


# (part, the profiled function's file suffix, its name): cumulative seconds of each part, read from cProfile
PARTS = (("rollout (passkt engine)", "passkt/grpo.py", "rollout_func"),
         ("loss forward", "trl/trainer/grpo_trainer.py", "compute_loss"),
         ("backward", "torch/autograd/__init__.py", "backward"),
         ("  of which TRL's chunked log-prob head", "trl/kernels/chunked_logprob.py", "backward"),
         ("optimizer step", "torch/optim/optimizer.py", "wrapper"))


def profile(data_root: Path, replicate: int, seed: int | None, epochs: int | None, threads: int | None) -> str:
    """Train stage 04's run once under cProfile; a table of where the trainer's wall time went."""
    import cProfile
    import pstats

    settings, base, tok, problems, search_k, train_seed = setup(data_root, replicate, seed, epochs or 1, threads)
    seed_everything(train_seed)
    prof = cProfile.Profile()
    with tempfile.TemporaryDirectory() as tmp:
        prof.enable()
        res = grpo.train_grpo(base, problems, tok, Path(tmp) / "rl", settings, search_k)
        prof.disable()
    cum = {}
    for (file, _, name), row in pstats.Stats(prof).stats.items():
        for part, suffix, fn in PARTS:
            if file.endswith(suffix) and name == fn:
                # several functions of one name may match (torch.optim's two ``wrapper``s, the step's around the
                # inner one): the largest cumulative time is the outermost, which holds the others
                cum[part] = max(cum.get(part, 0.0), row[3])
    missing = [part for part, _, _ in PARTS if part not in cum]
    if missing:
        raise SystemExit(f"bench_grpo_run --profile: no profiled function matched {missing} (PARTS names a function "
                         "that a TRL, torch or passkt upgrade renamed or moved)")
    total = res["seconds"]
    rest = total - sum(v for k, v in cum.items() if not k.startswith(" "))
    lines = [f"{res['steps']} steps, shared_prompt {settings.shared_prompt}, torch threads {torch.get_num_threads()}; "
             f"the trainer's wall time {total:.1f} s", "", "| part | seconds | per step | share |", "|---|---|---|---|"]
    for part, _, _ in PARTS:
        v = cum.get(part, 0.0)
        lines.append(f"| {part} | {v:.1f} | {v / res['steps']:.3f} | {v / total:.0%} |")
    lines.append(f"| rest of the trainer's loop (logging, callbacks, checkpoints, gradient clipping, the profiler) | {rest:.1f} | {rest / res['steps']:.3f} | {rest / total:.0%} |")
    return "\n".join(lines)


def table(rows: list[dict]) -> str:
    lines = ["| loss path | whole call (wall) | training (wall) | steps | median step | speed-up per step (training) "
             "| reward, first 20 % | reward, last 20 % |", "|---|---|---|---|---|---|---|---|"]
    per_step = rows[0]["train_s"] / rows[0]["steps"]
    for r in rows:
        lines.append(f"| {r['path']} | {r['wall_s'] / 60:.2f} min | {r['train_s'] / 60:.2f} min | {r['steps']} | "
                     f"{r['median_step_s']:.2f} s | {per_step / (r['train_s'] / r['steps']):.2f}x | "
                     f"{r['reward_first']:.3f} | {r['reward_last']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", type=Path, default=Path("."), help="checkout whose data/ holds stages 00-01")
    ap.add_argument("--replicate", type=int, default=2)
    ap.add_argument("--seed", type=int, default=None, help="training-and-sampling seed (default: params.yaml's)")
    ap.add_argument("--epochs", type=int, default=None, help="a shorter run than params.yaml's, for a quick look")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, as stage 04)")
    ap.add_argument("--shared-first", action="store_true", help="train the shared-prompt run first")
    ap.add_argument("--profile", action="store_true", help="profile one run of stage 04's path instead")
    args = ap.parse_args()
    if args.profile:
        print("\n" + profile(args.data_root, args.replicate, args.seed, args.epochs, args.threads))
        return
    print("\n" + table(run(args.data_root, args.replicate, args.seed, args.epochs, args.threads, args.shared_first)))


if __name__ == "__main__":
    main()
