"""GRPO benchmarks, side by side in one run: the step time (bench_grpo_step.py) and the engine's throughput inside
GRPO training vs standalone.

    python bench/bench_grpo.py [--repeats 3] [--threads 1] [--skip-throughput] [--problems 32] [--prompts-per-step 16]

Step time: one GRPO step of the tiny profile split into rollout, rewards, loss forward, backward and optimizer, for
TRL's own loss forward and for our faster one (GRPOSettings.logprob_buckets / autocast_bf16), next to a plain
forward + backward of the same batch shapes (docs/benchmarks.md).

Throughput: the engine samples G episodes for each of the problems at T_train with the base model. In training: a
short GRPO run on the same problems (one epoch), timing only the rollout_func calls. Reports episodes/s, generated
tokens/s, the ratio (target: at least 0.5) and seconds per GRPO step.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import bench_grpo_step
import torch

from passkt import grpo, models, rollout, sft
from passkt.backends import HFBackend
from passkt.paths import Paths


def throughput(args) -> None:
    torch.set_num_threads(2)
    P = Paths.at(args.data_root)
    base = models.base_model_location(P.data("01_base_model"))
    model, tok = models.load_policy(base)
    train = sft.training_problems(P.problems)[: args.problems]
    s = grpo.GRPOSettings(epochs=1, group_size=args.group, T_train=5, lr=1e-5, prompts_per_step=args.prompts_per_step,
                          save_steps=1000, max_turn_tokens=48, max_total_tokens=1024)
    env = rollout.Environment(train, tok, search_k=1)
    jobs = [(p["id"], g, s.T_train) for p in train for g in range(args.group)]
    torch.manual_seed(0)
    t0 = time.perf_counter()
    eps = rollout.run_episodes(HFBackend(model, tok, batch_size=256), env, jobs, grpo.sampling_config(s, 1))
    alone_s = time.perf_counter() - t0
    alone_tok = sum(e.generated for e in eps)
    with tempfile.TemporaryDirectory() as d:
        r = grpo.train_grpo(base, train, tok, d, s, 1)
    rows = [("episodes/s", len(eps) / alone_s, r["rollout_episodes"] / r["rollout_seconds"]),
            ("generated tokens/s", alone_tok / alone_s, r["rollout_generated_tokens"] / r["rollout_seconds"])]
    print(f"\n{len(train)} problems x G={args.group}, {args.prompts_per_step} prompts/step, {r['steps']} GRPO steps, "
          f"{r['seconds_per_step']:.1f} s/step ({r['rollout_seconds'] / r['seconds']:.0%} of it sampling)\n")
    print("| quantity | standalone engine | engine inside GRPO | inside / standalone |\n|---|---|---|---|")
    for q, a, b in rows:
        print(f"| {q} | {a:,.1f} | {b:,.1f} | {b / a:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3, help="step time: interleaved repeats (medians reported)")
    ap.add_argument("--threads", type=int, default=1, help="step time: torch threads (1: CPU seconds count work)")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--problems", type=int, default=32)
    ap.add_argument("--prompts-per-step", type=int, default=16)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--data-root", type=Path, default=Path("."), help="checkout whose data/ holds stages 00-01")
    args = ap.parse_args()
    print("\nGRPO step time\n\n" + bench_grpo_step.table(bench_grpo_step.run(args.repeats, args.threads,
                                                                          data_root=args.data_root)))
    if not args.skip_throughput:
        throughput(args)


if __name__ == "__main__":
    main()
