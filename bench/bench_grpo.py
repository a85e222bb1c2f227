"""GRPO benchmark: the rollout engine's throughput inside GRPO training vs standalone, side by side in one run.

    python bench/bench_grpo.py [--problems 32] [--prompts-per-step 16]

Standalone: the engine samples G episodes for each of the problems at T_train with the base model. In training:
a short GRPO run on the same problems (one epoch), timing only the rollout_func calls. Reports episodes/s,
generated tokens/s, the ratio (target: at least 0.5) and seconds per GRPO step.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from passkt import grpo, models, rollout, sft
from passkt.backends import HFBackend
from passkt.paths import Paths


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--problems", type=int, default=32)
    ap.add_argument("--prompts-per-step", type=int, default=16)
    ap.add_argument("--group", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(2)
    P = Paths.at(".")
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


if __name__ == "__main__":
    main()
