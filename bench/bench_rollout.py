"""Rollout engine benchmark: ratios measured side by side in one run (these machines are noisy).

    python bench/bench_rollout.py [--model data/01_base_model/model] [--problems 24] [--n 16]

1. engine vs a naive loop (one episode at a time, re-encoding the whole context every turn): episodes/s; the naive
   loop runs a subset spread evenly over the jobs (one sample of each problem by default), so both see the same mix;
   also vs the same batched loop with one transformers ``generate`` call per turn (the previous engine);
2. engine vs raw batched decoding of the same model with no tool loop: generated tokens/s;
3. depth grid by forking vs one separate run per T: generated tokens and wall time.

Every measurement is repeated ``--repeats`` times (interleaved, so drifts in machine load hit all of them alike);
the table gives medians and the range of each ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from passkt import data, models, rollout
from passkt.backends import HFBackend, HFGenerateBackend
from passkt.paths import Paths


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--problems", type=int, default=24)
    ap.add_argument("--n", type=int, default=16)  # the tiny profile's n
    ap.add_argument("--naive-episodes", type=int, default=24)
    ap.add_argument("--T", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3, help="rounds of all measurements; medians are reported")
    args = ap.parse_args()
    torch.set_num_threads(2)
    P = Paths.at(".")
    model_dir = args.model or models.base_model_location(P.data("01_base_model"))
    model, tok = models.load_policy(model_dir)
    probs = (data.load_problems(P.problems, "eval_bridge") + data.load_problems(P.problems, "eval_comparison"))
    probs = probs[: args.problems]
    env = rollout.Environment(probs, tok, search_k=1)
    cfg = rollout.SamplingConfig(temperature=1.0, max_turn_tokens=48, max_total_tokens=1024, search_k=1)
    jobs = [(p["id"], s, args.T) for p in probs for s in range(args.n)]
    eng = HFBackend(model, tok, batch_size=256)
    naive = HFGenerateBackend(model, tok, batch_size=1)
    rollout.run_episodes(eng, env, jobs[:16], cfg)  # warm-up of each, so neither pays first-call costs
    rollout.run_episodes(naive, env, jobs[:1], cfg)
    sub = jobs[:: max(1, len(jobs) // args.naive_episodes)][: args.naive_episodes]  # spread over the problems
    rounds = [measure(args, model, tok, env, probs, jobs, sub, cfg, eng, naive) for _ in range(args.repeats)]

    print(f"\nmodel {model_dir}: {len(jobs)} episodes (T={args.T}), naive on {len(sub)}; grid {GRID}; "
          f"{args.repeats} rounds, medians (ratio range over rounds)\n")
    print("| quantity | A | value A | B | value B | A / B | range |\n|---|---|---|---|---|---|---|")
    for i, (q, a, _, b, _) in enumerate(rounds[0]):
        va = statistics.median(r[i][2] for r in rounds)
        vb = statistics.median(r[i][4] for r in rounds)
        ratios = [r[i][2] / r[i][4] for r in rounds]
        print(f"| {q} | {a} | {va:,.1f} | {b} | {vb:,.1f} | {statistics.median(ratios):.2f} | "
              f"{min(ratios):.2f}–{max(ratios):.2f} |")


GRID = [0, 1, 2, 3, 5]


def measure(args, model, tok, env, probs, jobs, sub, cfg, eng, naive) -> list[tuple]:
    """One round of every side-by-side measurement: rows (quantity, A, value A, B, value B)."""
    rows = []
    # 1. engine vs naive loop, and vs the same batched loop with generate per turn
    torch.manual_seed(0)
    eps, t_eng = timed(lambda: rollout.run_episodes(eng, env, jobs, cfg))
    gen_eng = sum(e.generated for e in eps)
    torch.manual_seed(0)
    _, t_naive = timed(lambda: [rollout.run_episodes(naive, env, [j], cfg) for j in sub])
    rows.append(("episodes/s", "engine (batched)", len(jobs) / t_eng, "naive loop", len(sub) / t_naive))
    torch.manual_seed(0)
    _, t_gen = timed(lambda: rollout.run_episodes(HFGenerateBackend(model, tok, batch_size=256), env, jobs, cfg))
    rows.append(("episodes/s", "engine (batched)", len(jobs) / t_eng, "generate per turn", len(jobs) / t_gen))

    # 2. engine vs raw batched decoding (same prompts, no tool loop, no stop strings)
    prompts = [env.prompt_ids(pid) for pid, _, _ in jobs]
    width = max(map(len, prompts))
    ids = torch.full((len(prompts), width), tok.pad_token_id)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p)
        mask[i, width - len(p):] = 1
    new = max(32, gen_eng // len(jobs))
    torch.manual_seed(0)
    _, t_raw = timed(lambda: [model.generate(input_ids=ids[i:i + 256], attention_mask=mask[i:i + 256], do_sample=True,
                                             top_k=0, max_new_tokens=new, min_new_tokens=new,
                                             pad_token_id=tok.pad_token_id) for i in range(0, len(prompts), 256)])
    rows.append(("generated tokens/s", "engine (batched)", gen_eng / t_eng, "raw batched decoding", len(prompts) * new / t_raw))

    # 3. fork vs separate runs per T
    stats = {}
    for mode in ("fork", "separate"):
        with tempfile.TemporaryDirectory() as d:
            stats[mode] = rollout.sample_policy(eng, env, probs, policy="bench", out_dir=d, n=args.n, grid=GRID,
                                                temperatures=[1.0], cfg=cfg, seed=0, mode=mode, problems_per_shard=len(probs))
    rows.append(("generated tokens (depth grid)", "fork", stats["fork"]["generated_tokens"], "separate",
                 stats["separate"]["generated_tokens"]))
    rows.append(("seconds (depth grid)", "fork", stats["fork"]["seconds"], "separate", stats["separate"]["seconds"]))
    return rows


if __name__ == "__main__":
    main()
