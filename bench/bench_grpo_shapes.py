"""GRPO's loss forward + backward on a new batch every step, as a run feeds it, against the step bench's one batch.

    python bench/bench_grpo_shapes.py --data-root <checkout with stages 00-01> [--batches 12] [--round 32]

Why: stage 04's training part takes about a third longer a step inside a run than `bench/bench_grpo_step.py` times
on one batch repeated (docs/benchmarks.md). A run's batches differ in shape every step: the prompt width and the
8 length buckets' cuts. On CPU, bf16 matmuls (oneDNN) build a kernel per new shape.

One trainer as stage 04 builds it (params.yaml's 04_grpo settings, each group's prompt once, 8 buckets, bf16
autocast) and ``--batches`` rollouts of different training batches (the base model's: no update between them).
Then every batch once (a batch's shapes are new to each variant when it first meets them), with the weights restored
before every call, the loss forward + backward (TRL's compute_loss; the optimizer step is negligible) of:

- stage 04's path (bf16 autocast), first call on the batch: new shapes, as every step of a run;
- stage 04's path on the same batch again right after: the same shapes, as the step bench's repeated batch;
- the same path with each bucket cut and the prompt width rounded up to a multiple of ``--round`` tokens, first
  call (the extra positions are padding, masked out of the loss; prompts are left-padded further, and RoPE scores
  depend only on relative positions, so the log-probs are the same up to float rounding); rounded shapes recur
  from batch to batch;
- fp32 (no autocast), first call and the same batch again: whether bf16 autocast pays on this CPU at all.

The three groups (stage 04's pair, the rounded call, fp32's pair) take turns meeting each batch first. Reported:
medians of wall and process CPU seconds per call and of wall time per 1,000 real tokens (batches differ in size;
each pair compares like with like), and each variant's gradient on the first batch against stage 04's.
Nothing here changes stage 04; this only measures.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from passkt import grpo, models, rollout, sft, shared_prompt
from passkt.paths import Paths

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_grpo_step import tiny_settings  # noqa: E402

ORIGINAL_BUCKETS = grpo.length_buckets


def rounded_buckets(multiple: int):
    """:func:`passkt.grpo.length_buckets` with each cut rounded up to ``multiple`` (at most the completion width)."""

    def buckets(completion_mask, n_buckets):
        width = completion_mask.size(1)
        return [(rows, min(-(-n // multiple) * multiple, width))
                for rows, n in ORIGINAL_BUCKETS(completion_mask, n_buckets)]

    return buckets


def pad_prompts(inputs: dict, multiple: int, pad_id: int) -> dict:
    """The batch with its prompts left-padded to a width that is a multiple of ``multiple``."""
    ids, mask = inputs["prompt_ids"], inputs["prompt_mask"]
    extra = -(-ids.size(1) // multiple) * multiple - ids.size(1)
    if extra == 0:
        return inputs
    return dict(inputs, prompt_ids=torch.nn.functional.pad(ids, (extra, 0), value=pad_id),
                prompt_mask=torch.nn.functional.pad(mask, (extra, 0), value=0))


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", type=Path, default=Path("."), help="checkout whose data/ holds stages 00-01")
    ap.add_argument("--batches", type=int, default=12)
    ap.add_argument("--round", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    P = Paths.at(args.data_root)
    base = models.base_model_location(P.data("01_base_model"))
    s = tiny_settings(Path("."))
    _, tok = models.load_policy(base)
    env = rollout.Environment(sft.training_problems(P.problems), tok, search_k=1)
    tr = grpo.build_trainer(base, env, Path(tempfile.mkdtemp()), s)
    tr.model.train()
    tr.create_optimizer()
    tr.current_gradient_accumulation_steps = 1  # set by Trainer's loop, which this bench drives by hand
    loader = iter(tr.get_train_dataloader())
    torch.manual_seed(s.seed)
    batches = [tr._generate_and_score_completions(next(loader)) for _ in range(args.batches)]
    real = [int(b["prompt_mask"].sum() + b["completion_mask"].sum()) for b in batches]
    model = tr.model
    snapshot = {k: v.clone() for k, v in model.state_dict().items()}
    padded = [pad_prompts(b, args.round, tok.pad_token_id) for b in batches]
    r = args.round
    bf16_new, bf16_again = "stage 04 (bf16), first call on a new batch", "stage 04 (bf16), the same batch again right after"
    rounded = f"bf16, bucket cuts and prompt width rounded to {r}, new batch"
    fp32_new, fp32_again = "fp32, first call on a new batch", "fp32, the same batch again right after"
    # name -> (bf16 autocast, bucket cuts and prompt width rounded); a group's calls run back to back on each batch
    variants = {bf16_new: (True, False), bf16_again: (True, False), rounded: (True, True),
                fp32_new: (False, False), fp32_again: (False, False)}
    groups = [[bf16_new, bf16_again], [rounded], [fp32_new, fp32_again]]
    times: dict[str, list[tuple[float, float, int]]] = {v: [] for v in variants}
    grads: dict[str, torch.Tensor] = {}
    tr.__class__ = shared_prompt.trainer_class() if s.shared_prompt else grpo.trainer_class()
    print(f"{cpu_name()}, torch {torch.__version__}, {args.threads} threads; {args.batches} batches, each once; "
          f"real tokens per batch {min(real):,}-{max(real):,}; shared prompts {s.shared_prompt}, "
          f"{s.logprob_buckets} buckets", flush=True)
    for i in range(args.batches):  # every batch once: its shapes are new to each precision and rounding
        order = groups[i % 3:] + groups[: i % 3]  # rotate which group meets the batch first
        for name in (n for g in order for n in g):
            bf16, wide = variants[name]
            inputs = (padded if wide else batches)[i]
            model.load_state_dict(snapshot)
            tr.autocast_bf16 = bf16
            grpo.length_buckets = rounded_buckets(r) if wide else ORIGINAL_BUCKETS
            c0, w0 = time.process_time(), time.perf_counter()
            tr.compute_loss(model, inputs).backward()
            times[name].append((time.process_time() - c0, time.perf_counter() - w0, real[i]))
            if i == 0:
                grads[name] = torch.cat([p.grad.flatten() for p in model.parameters()]).double()
            model.zero_grad(set_to_none=True)
        print(f"batch {i + 1} done", file=sys.stderr, flush=True)
    grpo.length_buckets = ORIGINAL_BUCKETS

    ref, fp32_ref = grads[bf16_new], grads[fp32_new]
    base_w = statistics.median(t[1] for t in times[bf16_new])
    print("\n| variant | wall s per call | CPU s per call | wall ms per 1,000 real tokens | vs stage 04 (wall) "
          "| grad cos vs stage 04 | grad rel. diff vs stage 04 | vs fp32 as is |")
    print("|---|---|---|---|---|---|---|---|")
    for name, ts in times.items():
        w, c = statistics.median(t[1] for t in ts), statistics.median(t[0] for t in ts)
        per = statistics.median(t[1] / t[2] * 1e6 for t in ts)
        g = grads[name]
        cos = torch.nn.functional.cosine_similarity(g, ref, dim=0).item()
        rel = ((g - ref).norm() / ref.norm()).item()
        rel32 = ((g - fp32_ref).norm() / fp32_ref.norm()).item()
        print(f"| {name} | {w:.3f} | {c:.3f} | {per:.1f} | {w / base_w:.2f}x | {cos:.5f} | {rel:.1e} | {rel32:.1e} |")
    print()
    for first, again in (g for g in groups if len(g) == 2):  # per batch: the first call against the same shapes again
        ratios = [a[1] / b[1] for a, b in zip(times[first], times[again])]
        print(f"{first.split(',')[0]}: first call / same batch again, per batch: median {statistics.median(ratios):.2f}x "
              f"(range {min(ratios):.2f}-{max(ratios):.2f}, {len(ratios)} batches)")
    per_batch = [a[1] / b[1] for a, b in zip(times[rounded], times[bf16_new])]
    print(f"rounded / stage 04 first call, per batch: median {statistics.median(per_batch):.2f}x "
          f"(range {min(per_batch):.2f}-{max(per_batch):.2f})")

if __name__ == "__main__":
    main()
