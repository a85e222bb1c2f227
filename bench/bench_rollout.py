"""Rollout engine benchmark: ratios measured side by side in one run (these machines are noisy).

    python bench/bench_rollout.py [--model data/01_base_model/model] [--problems 24] [--n 16] [--repeats 5]

Workload: the first ``--problems`` evaluation problems of each category, ``--n`` samples each, at the stage-02
budgets (bridge and comparison T = 5, math T = 0), temperature 1.0.

1. engine vs a naive loop (one episode at a time, re-encoding the whole context every turn): episodes/s per
   category and over all three (total episodes / total time). The naive loop runs one sample of every problem
   (the engine all ``--n``), so both see the same mix of problems. The engine runs with one worker (one batch
   loop, torch's threads splitting each operation) and with two workers (two batch loops in threads, one torch
   thread each; the same samples, see ``rollout.parallel_map``). Also the one-worker engine vs the same batched
   loop with one transformers ``generate`` call per turn (the first engine);
2. engine (one worker) vs raw batched decoding of the same model with no tool loop: generated tokens/s;
3. depth grid by forking vs one separate run per T: generated tokens and wall time.

Every measurement is repeated ``--repeats`` times (interleaved, so drifts in machine load hit all of them alike);
the table gives medians and the range of each ratio over the rounds.
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

GRID = [0, 1, 2, 3, 5]
CATEGORIES = (("bridge", 5), ("comparison", 5), ("math", 0))  # stage 02's budgets


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--problems", type=int, default=24, help="problems per category")
    ap.add_argument("--n", type=int, default=16)  # the tiny profile's n
    ap.add_argument("--repeats", type=int, default=5, help="rounds of all measurements; medians are reported")
    args = ap.parse_args()
    torch.set_num_threads(2)
    P = Paths.at(".")
    model_dir = args.model or models.base_model_location(P.data("01_base_model"))
    model, tok = models.load_policy(model_dir)
    probs = {c: data.load_problems(P.problems, f"eval_{c}")[: args.problems] for c, _ in CATEGORIES}
    env = rollout.Environment([p for ps in probs.values() for p in ps], tok, search_k=1)
    cfg = rollout.SamplingConfig(temperature=1.0, max_turn_tokens=48, max_total_tokens=1024, search_k=1)
    jobs = {c: [(p["id"], s, T) for p in probs[c] for s in range(args.n)] for c, T in CATEGORIES}
    naive_jobs = {c: [(p["id"], 0, T) for p in probs[c]] for c, T in CATEGORIES}
    eng = HFBackend(model, tok, batch_size=256)
    naive = HFGenerateBackend(model, tok, batch_size=1)
    for w in (1, 2):  # warm-up of each, so none pays first-call costs
        rollout.run_episodes(eng, env, jobs["bridge"][:32], cfg, workers=w)
    rollout.run_episodes(naive, env, jobs["bridge"][:1], cfg)
    rounds = [measure(args, model, tok, env, probs, jobs, naive_jobs, cfg, eng, naive) for _ in range(args.repeats)]

    print(f"\nmodel {model_dir}: {args.problems} problems per category x n = {args.n} (naive loop: 1 sample each); "
          f"grid {GRID}; {args.repeats} rounds, medians (ratio range over rounds)\n")
    print("| quantity | A | value A | B | value B | A / B | range |\n|---|---|---|---|---|---|---|")
    for i, (q, a, _, b, _) in enumerate(rounds[0]):
        va = statistics.median(r[i][2] for r in rounds)
        vb = statistics.median(r[i][4] for r in rounds)
        ratios = [r[i][2] / r[i][4] for r in rounds]
        print(f"| {q} | {a} | {va:,.1f} | {b} | {vb:,.1f} | {statistics.median(ratios):.2f} | "
              f"{min(ratios):.2f}–{max(ratios):.2f} |")


def measure(args, model, tok, env, probs, jobs, naive_jobs, cfg, eng, naive) -> list[tuple]:
    """One round of every side-by-side measurement: rows (quantity, A, value A, B, value B)."""
    rows = []
    # 1. engine (1 and 2 workers) vs naive loop per category and over all; vs the batched generate-per-turn loop
    t_eng = {1: {}, 2: {}}
    t_naive, gen_eng = {}, 0
    for c, _ in CATEGORIES:
        for w in (1, 2):
            torch.manual_seed(0)
            eps, t_eng[w][c] = timed(lambda: rollout.run_episodes(eng, env, jobs[c], cfg, workers=w))  # noqa: B023
            if w == 1 and c == "bridge":
                gen_eng = sum(e.generated for e in eps)
        torch.manual_seed(0)
        _, t_naive[c] = timed(lambda: [rollout.run_episodes(naive, env, [j], cfg) for j in naive_jobs[c]])  # noqa: B023
    for c in [c for c, _ in CATEGORIES] + ["all"]:
        cats = [k for k, _ in CATEGORIES] if c == "all" else [c]
        n_eng, n_naive = sum(len(jobs[k]) for k in cats), sum(len(naive_jobs[k]) for k in cats)
        naive_rate = n_naive / sum(t_naive[k] for k in cats)
        for w in (1, 2):
            rows.append((f"episodes/s, {c}", f"engine ({w} worker{'s' * (w > 1)})",
                         n_eng / sum(t_eng[w][k] for k in cats), "naive loop", naive_rate))
    mix = [j for c, _ in CATEGORIES for j in jobs[c]]
    torch.manual_seed(0)
    _, t_gen = timed(lambda: rollout.run_episodes(HFGenerateBackend(model, tok, batch_size=256), env, mix, cfg))
    rows.append(("episodes/s, all", "engine (1 worker)", len(mix) / sum(t_eng[1].values()), "generate per turn",
                 len(mix) / t_gen))

    # 2. engine vs raw batched decoding (same bridge prompts, no tool loop, no stop strings)
    prompts = [env.prompt_ids(pid) for pid, _, _ in jobs["bridge"]]
    width = max(map(len, prompts))
    ids = torch.full((len(prompts), width), tok.pad_token_id)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p)
        mask[i, width - len(p):] = 1
    new = max(32, gen_eng // len(prompts))
    torch.manual_seed(0)
    _, t_raw = timed(lambda: [model.generate(input_ids=ids[i:i + 256], attention_mask=mask[i:i + 256], do_sample=True,
                                             top_k=0, max_new_tokens=new, min_new_tokens=new,
                                             pad_token_id=tok.pad_token_id) for i in range(0, len(prompts), 256)])
    rows.append(("generated tokens/s, bridge", "engine (1 worker)", gen_eng / t_eng[1]["bridge"],
                 "raw batched decoding", len(prompts) * new / t_raw))

    # 3. fork vs separate runs per T (bridge and comparison problems)
    stats = {}
    tool = probs["bridge"] + probs["comparison"]
    for mode in ("fork", "separate"):
        with tempfile.TemporaryDirectory() as d:
            stats[mode] = rollout.sample_policy(eng, env, tool, policy="bench", out_dir=d, n=args.n, grid=GRID,
                                                temperatures=[1.0], cfg=cfg, seed=0, mode=mode,
                                                problems_per_shard=len(tool))
    rows.append(("generated tokens (depth grid)", "fork", stats["fork"]["generated_tokens"], "separate",
                 stats["separate"]["generated_tokens"]))
    rows.append(("seconds (depth grid)", "fork", stats["fork"]["seconds"], "separate", stats["separate"]["seconds"]))
    return rows


if __name__ == "__main__":
    main()
