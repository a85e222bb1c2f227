"""Engine batch size: one stage-02 shard sampled with each batch size, side by side in one run.

    python bench/bench_engine_batch.py [--model DIR] [--problems 10] [--n 64] [--sizes 128 256 640] [--repeats 2]
                                       [--threads 1]

Workload: the first ``--problems`` evaluation bridge problems (stage 02's shard size), ``--n`` samples each, the
whole depth grid of params.yaml (``sampling.T_grid``) by forking, temperature 1.0: what stage 02 samples per shard,
here with one batch loop (stage 02 runs ``sampling.workers`` of them in threads).
Every batch size (``sampling.batch_size``; 256 in params.yaml) samples it once per round, interleaved over
``--repeats`` rounds. Prints, per size, the median process CPU seconds and wall seconds over the rounds, generated
tokens, and the CPU time relative to params.yaml's batch size. The samples differ between sizes (each batch draws
from its own generator), so their token counts differ a little.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml

from passkt import data, models, rollout
from passkt.backends import HFBackend
from passkt.paths import Paths


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="policy folder (default: the stage 01 base model)")
    ap.add_argument("--problems", type=int, default=10)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 640])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (CPU seconds count the work at 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    smp = yaml.safe_load(Path("params.yaml").read_text())["sampling"]
    P = Paths.at(".")
    model_dir = args.model or models.base_model_location(P.data("01_base_model"))
    model, tok = models.load_policy(model_dir)
    probs = data.load_problems(P.problems, "eval_bridge")[: args.problems]
    env = rollout.Environment(probs, tok, search_k=smp["search_k"])
    cfg = rollout.SamplingConfig(temperature=1.0, max_turn_tokens=smp["max_turn_tokens"],
                                 max_total_tokens=smp["max_total_tokens"], search_k=smp["search_k"])
    runs: dict[int, list[tuple[float, float, int]]] = {b: [] for b in args.sizes}
    for _ in range(args.repeats):
        for b in args.sizes:
            eng = HFBackend(model, tok, batch_size=b)
            with tempfile.TemporaryDirectory() as d:
                c0, w0 = time.process_time(), time.perf_counter()
                st = rollout.sample_policy(eng, env, probs, policy="bench", out_dir=d, n=args.n, grid=smp["T_grid"],
                                           temperatures=[1.0], cfg=cfg, seed=0, mode="fork",
                                           problems_per_shard=args.problems)
                runs[b].append((time.process_time() - c0, time.perf_counter() - w0, st["generated_tokens"]))
    ref = smp["batch_size"] if smp["batch_size"] in runs else args.sizes[0]
    cpu = {b: statistics.median(r[0] for r in v) for b, v in runs.items()}
    print(f"\n{model_dir}: {args.problems} bridge problems x n = {args.n}, grid {smp['T_grid']} by forking; "
          f"{args.repeats} interleaved rounds, torch threads {args.threads}; medians\n")
    print(f"| batch size | CPU s | wall s | generated tokens | CPU time / batch {ref} |\n|---|---|---|---|---|")
    for b, v in runs.items():
        print(f"| {b} | {cpu[b]:.2f} | {statistics.median(r[1] for r in v):.2f} | {v[0][2]:,} | "
              f"{cpu[b] / cpu[ref]:.2f} |")


if __name__ == "__main__":
    main()
