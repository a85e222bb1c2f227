"""Does a new batch shape every step cost time on CPU? A hypothesis for GRPO's in-run gap (docs/benchmarks.md).

    python bench/explore/shape_churn.py [--threads 2] [--calls 24] [--round 32]

The step bench times the loss forward + backward on one batch, repeated; a run feeds the model a batch of new shapes
every step (8 length buckets, each cut after its longest completion). Kernels that build per-shape state (oneDNN
primitives, allocator blocks) would then pay again each step. This script times the tiny profile's architecture
(random weights: the time does not depend on them) on bf16-autocast forward + backward calls over 8 buckets of
16 rows, interleaved across three schedules:

- same: the same 8 bucket lengths every call (what the step bench measures);
- new: fresh bucket lengths every call, drawn like a run's (what a run does);
- rounded: the same draws rounded up to a multiple of ``--round`` tokens (shapes recur; more padding).

Per-token time is reported alongside, since rounding pads. Medians over calls, wall and process CPU seconds.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch
import yaml
from transformers import AutoModelForCausalLM, Qwen2Config


def model_from_params(p: dict):
    cfg = Qwen2Config(vocab_size=p["vocab_size"], hidden_size=p["hidden"], intermediate_size=p["intermediate"],
                      num_hidden_layers=p["layers"], num_attention_heads=p["heads"], num_key_value_heads=p["kv_heads"],
                      max_position_embeddings=p["max_positions"], tie_word_embeddings=True, rope_theta=10000.0)
    return AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa")


def lengths(rng: random.Random, n_buckets: int, lo: int, hi: int) -> list[int]:
    return sorted(rng.randint(lo, hi) for _ in range(n_buckets))


def call(model, opt, lens: list[int], rows: int, vocab: int, bf16: bool = True) -> tuple[float, float, int]:
    c0, w0 = time.process_time(), time.perf_counter()
    tokens = 0
    for L in lens:
        ids = torch.randint(0, vocab, (rows, L))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        tokens += rows * L
    opt.zero_grad(set_to_none=True)
    return time.process_time() - c0, time.perf_counter() - w0, tokens


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calls", type=int, default=24)
    ap.add_argument("--round", type=int, default=32)
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    ap.add_argument("--lo", type=int, default=200, help="shortest bucket (prompt + completion tokens)")
    ap.add_argument("--hi", type=int, default=600, help="longest bucket")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    p = yaml.safe_load(open("params.yaml"))["01_base_model"]
    model = model_from_params(p)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    rng = random.Random(0)
    fixed = lengths(rng, 8, args.lo, args.hi)
    res: dict[str, list[tuple[float, float, int]]] = {"same": [], "new": [], "rounded": []}
    for _ in range(2):  # warm-up
        call(model, opt, fixed, args.rows, p["vocab_size"], not args.fp32)
    for i in range(args.calls):
        draw = lengths(rng, 8, args.lo, args.hi)
        r = args.round
        plans = {"same": fixed, "new": draw, "rounded": [-(-L // r) * r for L in draw]}
        order = list(plans)
        rng.shuffle(order)
        for name in order:
            res[name].append(call(model, opt, plans[name], args.rows, p["vocab_size"], not args.fp32))
    base = statistics.median(w for _, w, _ in res["same"])
    print(f"{'fp32' if args.fp32 else 'bf16 autocast'}, threads {args.threads}, {args.calls} calls per schedule, 8 buckets x {args.rows} rows, lengths "
          f"{args.lo}-{args.hi}, round {args.round}")
    print("| schedule | wall s (median) | CPU s (median) | tokens (median) | wall us / token | wall vs same |")
    print("|---|---|---|---|---|---|")
    for name, xs in res.items():
        w = statistics.median(x[1] for x in xs)
        c = statistics.median(x[0] for x in xs)
        t = statistics.median(x[2] for x in xs)
        per = statistics.median(x[1] / x[2] * 1e6 for x in xs)
        print(f"| {name} | {w:.3f} | {c:.3f} | {t:,.0f} | {per:.2f} | {w / base:.2f}x |")


if __name__ == "__main__":
    main()
