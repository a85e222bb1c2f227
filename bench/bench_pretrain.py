"""Pretraining step time (stage 01, tiny profile): where a step goes, and one lever measured side by side.

    python bench/bench_pretrain.py [--batches 8] [--repeats 3] [--threads 1] [--profile] [--data-root .]

Builds stage 01's corpus as the notebook does (params.yaml's 01_base_model settings, the pretraining pool of a
checkout whose stage 00 has run), packs it, and times a training step on its first batches: forward, backward and
AdamW step, under bf16 autocast with fp32 weights as stage 01 trains. Variants, interleaved within each repeat, on
the same batches and the same initial weights:

- "as stage 01": the model's own causal-LM loss, which projects every position through the output layer and takes
  the log-softmax over the vocabulary, although the loss reads only the agent's own tokens (labels -100 elsewhere:
  prompt, retrieved paragraphs, notices);
- "labelled positions only" (``passkt.fast_pretrain``, not adopted): the decoder, then the output layer and the
  cross-entropy on the positions whose next token is labelled. Same loss; gradients equal up to float rounding
  (printed).

Times are medians over repeats of process CPU seconds (with one torch thread they count the work, not the wait for
other jobs on the machine) and wall seconds, per step.
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import yaml

from passkt import data, fast_pretrain, models, prep, pretrain
from passkt.paths import Paths


@contextmanager
def timed(store: dict, name: str):
    t = (time.process_time(), time.perf_counter())
    yield
    store.setdefault(name, []).append((time.process_time() - t[0], time.perf_counter() - t[1]))


def full_loss(model, batch):
    return model(**batch).loss


VARIANTS = [("as stage 01 (all positions through the output layer)", full_loss),
            ("labelled positions only (not adopted)", fast_pretrain.labelled_loss)]


def run(batches: int, repeats: int, threads: int, data_root: Path, profile: bool = False) -> dict:
    torch.set_num_threads(threads)
    prm = yaml.safe_load(Path("params.yaml").read_text())
    b = prm["01_base_model"]
    P = Paths.at(data_root)
    pool = data.load_problems(P.problems, "pretrain")
    tok, _, examples = pretrain.build_corpus(pool, prep.lm_texts(P.data("00_data_prep")), b["vocab_size"],
                                             b["prior_weights"], b["prior_budgets"], b["transcripts_per_problem"],
                                             b["search_k"], prm["base_seed"], b["lm_on_information"])
    ids = [{"input_ids": e["input_ids"][: b["max_len"]], "labels": e["labels"][: b["max_len"]]} for e in examples]
    rows = pretrain.pack(ids, b["pack_len"], prm["base_seed"])
    collate = pretrain.pad_collate(tok.pad_token_id)
    bs = b["batch_size"]
    work = [collate(rows[i * bs: (i + 1) * bs]) for i in range(batches)]
    torch.manual_seed(0)
    cfg = models.tiny_config(tok, b["hidden"], b["layers"], b["heads"], b["kv_heads"], b["intermediate"],
                             b["max_positions"])
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(cfg)
    model.train()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    times, grads = {}, {}
    for rep in range(repeats):
        for name, loss_fn in VARIANTS:
            model.load_state_dict(start)
            opt = torch.optim.AdamW(model.parameters(), lr=b["lr"])  # fresh state: each variant starts alike
            for i, batch in enumerate(work):
                with timed(times, f"{name}|forward"), torch.autocast("cpu", dtype=torch.bfloat16):
                    loss = loss_fn(model, batch)
                with timed(times, f"{name}|backward"):
                    loss.backward()
                if rep == 0 and i == 0:
                    grads[name] = torch.cat([p.grad.flatten() for p in model.parameters()]).double()
                with timed(times, f"{name}|optimizer"):
                    opt.step()
                    opt.zero_grad(set_to_none=True)
    if profile:  # torch.profiler's top operators over the batches, as stage 01 computes the loss
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        model.load_state_dict(start)
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            for batch in work:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    loss = full_loss(model, batch)
                loss.backward()
                model.zero_grad(set_to_none=True)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    labels = torch.cat([w["labels"][:, 1:].flatten() for w in work])
    return {"times": times, "grads": grads, "labelled": (labels != -100).float().mean().item(),
            "tokens": int(sum(w["attention_mask"].sum() for w in work)), "batches": batches, "repeats": repeats,
            "threads": threads, "params": models.n_params(model), "rows": len(rows), "batch_size": bs,
            "vocab": len(tok)}


def table(res: dict) -> str:
    t, g = res["times"], res["grads"]
    ref = g[VARIANTS[0][0]]
    lines = [f"{res['batches']} batches of {res['batch_size']} packed rows ({res['tokens']:,} tokens), "
             f"{res['repeats']} repeats, torch threads {res['threads']}; {res['params']:,} parameters, vocabulary "
             f"{res['vocab']}; share of positions with a label (the loss's): {res['labelled']:.3f}; "
             f"per step, medians, CPU s (wall s)", "",
             "| variant | forward | backward | optimizer | step | speed-up | grad cos | grad rel. err |",
             "|---|---|---|---|---|---|---|---|"]
    base = None
    for name, _ in VARIANTS:
        med = {ph: tuple(statistics.median(x[i] for x in t[f"{name}|{ph}"]) for i in (0, 1))
               for ph in ("forward", "backward", "optimizer")}
        step = tuple(sum(med[ph][i] for ph in med) for i in (0, 1))
        base = base or step
        cos = torch.nn.functional.cosine_similarity(g[name], ref, dim=0).item()
        rel = ((g[name] - ref).norm() / ref.norm()).item()
        f = lambda v: f"{v[0]:.3f} ({v[1]:.3f})"  # noqa: E731
        lines.append(f"| {name} | {f(med['forward'])} | {f(med['backward'])} | {f(med['optimizer'])} | {f(step)} | "
                     f"{base[0] / step[0]:.2f}x | {cos:.5f} | {rel:.1e} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--profile", action="store_true", help="torch.profiler top operators of stage 01's step")
    ap.add_argument("--data-root", type=Path, default=Path("."), help="checkout whose data/ holds stage 00")
    args = ap.parse_args()
    print("\n" + table(run(args.batches, args.repeats, args.threads, args.data_root, args.profile)))


if __name__ == "__main__":
    main()
