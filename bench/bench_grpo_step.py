"""GRPO step time, split into its parts, before and after the faster loss forward, next to a plain forward+backward.

    python bench/bench_grpo_step.py [--repeats 3] [--threads 1] [--profile] [--data-root .]

One trainer as stage 04 builds it (tiny profile: params.yaml's 04_grpo settings, the stage 01 base model, the 200
training problems). The rollout (our engine), the rewards and TRL's batch preparation are timed on one fixed batch of
prompts_per_step x G prompts; the loss forward, backward and optimizer step are then timed on the tokens of that
first rollout for each variant, interleaved within each repeat, with the weights restored before every variant.
The lower limit is a plain causal-LM forward + backward (the model's own cross-entropy) on exactly the batch shapes
each variant feeds the model. Gradients of each variant are compared with TRL's fp32 path on the same batch.

Times are medians over the repeats of process CPU seconds (robust on a shared machine: with one torch thread
they count the work, not the wait) and wall seconds.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import yaml

from passkt import grpo, models, rollout, sft, shared_prompt
from passkt.paths import Paths

# (name, logprob_buckets, autocast_bf16, shared prompts); the first is TRL's own path, the baseline
VARIANTS = [("TRL as is (fp32, one padded batch)", 1, False, False), ("bf16 autocast", 1, True, False),
            ("8 length buckets (fp32)", 8, False, False), ("8 buckets + bf16 autocast", 8, True, False),
            ("8 buckets + bf16 + prompts shared (not adopted)", 8, True, True)]


class Clock:
    """Accumulates (cpu, wall) seconds under named phases; ``times[name]`` lists one (cpu, wall) per call."""

    def __init__(self):
        self.times: dict[str, list[tuple[float, float]]] = {}

    def __call__(self, name):
        clock = self

        class _Phase:
            def __enter__(self):
                self.t = (time.process_time(), time.perf_counter())

            def __exit__(self, *exc):
                c, w = time.process_time() - self.t[0], time.perf_counter() - self.t[1]
                clock.times.setdefault(name, []).append((c, w))

        return _Phase()

    def median(self, name, which=0):
        return statistics.median(t[which] for t in self.times[name])


def timed(clock: Clock, name: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with clock(name):
            return fn(*args, **kwargs)

    return wrapper


def tiny_settings(root: Path) -> grpo.GRPOSettings:
    """GRPOSettings of stage 04's plain run in the tiny profile, as notebooks/04_grpo.ipynb builds them."""
    prm = yaml.safe_load((root / "params.yaml").read_text())
    smp = prm["sampling"]
    return grpo.GRPOSettings(**prm["04_grpo"]["grpo"], seed=prm.get("seed", 0), top_p=smp["top_p"],
                             max_turn_tokens=smp["max_turn_tokens"], max_total_tokens=smp["max_total_tokens"],
                             gen_batch_size=smp["batch_size"])


def _parts(attn, n_completion, buckets):
    n_prompt = attn.size(1) - n_completion
    return ([(torch.arange(attn.size(0)), n_completion)] if buckets == 1
            else grpo.length_buckets(attn[:, n_prompt:], buckets))


def plain_forward_backward(model, ids, attn, n_completion, buckets, bf16, shared=False):
    """The lower limit: the model's own LM loss forward + backward on the batch shapes a variant uses (with
    ``shared``: the distinct prompts once, then each bucket's last prompt token and completions on their cache)."""
    from transformers import DynamicCache

    n_prompt = ids.size(1) - n_completion
    with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext():
        if not shared:
            for rows, n in _parts(attn, n_completion, buckets):
                x, m = ids[rows, : n_prompt + n], attn[rows, : n_prompt + n]
                model(input_ids=x, attention_mask=m, labels=x.masked_fill(m == 0, -100)).loss.backward()
        else:
            distinct, owner = torch.unique(torch.cat([ids[:, :n_prompt], attn[:, :n_prompt]], 1), dim=0,
                                           return_inverse=True)
            kv = [(la.keys, la.values) for la in model(input_ids=distinct[:, : n_prompt - 1], use_cache=True,
                                                       attention_mask=distinct[:, n_prompt: 2 * n_prompt - 1],
                                                       logits_to_keep=1).past_key_values.layers]
            loss = 0
            for rows, n in _parts(attn, n_completion, buckets):
                x, m = ids[rows, n_prompt - 1: n_prompt + n], attn[rows, : n_prompt + n]
                cache = DynamicCache(ddp_cache_data=[(k[owner[rows]], v[owner[rows]]) for k, v in kv])
                loss = loss + model(input_ids=x, attention_mask=m, past_key_values=cache,
                                    labels=x.masked_fill(m[:, n_prompt - 1:] == 0, -100)).loss
            loss.backward()
    model.zero_grad(set_to_none=True)


def batch_shapes(ids, attn, n_completion, buckets, shared=False):
    """Token positions the model runs over: one padded batch, length buckets, or buckets with shared prompts."""
    n_prompt = ids.size(1) - n_completion
    if buckets == 1:
        return ids.numel()
    parts = grpo.length_buckets(attn[:, n_prompt:], buckets)
    if not shared:
        return sum(len(rows) * (n_prompt + n) for rows, n in parts)
    distinct = len(torch.unique(torch.cat([ids[:, :n_prompt], attn[:, :n_prompt]], 1), dim=0))
    return distinct * (n_prompt - 1) + sum(len(rows) * (n + 1) for rows, n in parts)


def run(repeats: int = 3, threads: int = 1, profile: bool = False, data_root: Path = Path(".")) -> dict:
    """Settings from ./params.yaml; base model and problems under ``data_root`` (a checkout with stages 00-01 run)."""
    torch.set_num_threads(threads)
    P = Paths.at(data_root)
    base = models.base_model_location(P.data("01_base_model"))
    s = tiny_settings(Path("."))
    _, tok = models.load_policy(base)
    env = rollout.Environment(sft.training_problems(P.problems), tok, search_k=1)
    clock = Clock()
    tr = grpo.build_trainer(base, env, Path(tempfile.mkdtemp()), s)
    tr.model.train()
    tr.create_optimizer()
    tr.current_gradient_accumulation_steps = 1  # set by Trainer's loop, which this bench drives by hand
    tr.rollout_func = timed(clock, "rollout", tr.rollout_func)
    tr.reward_funcs = [timed(clock, "reward", f) for f in tr.reward_funcs]
    scorer = tr._get_per_token_logps_and_entropies
    calls = {"n": 0}

    def counted(*a, **k):
        calls["n"] += 1
        return scorer(*a, **k)

    batch = next(iter(tr.get_train_dataloader()))
    inputs = None
    tr.logprob_buckets, tr.autocast_bf16 = 1, False
    tr._get_per_token_logps_and_entropies = counted  # counts extra logprob forwards (old / reference policy)
    for _ in range(repeats):
        torch.manual_seed(s.seed)
        with clock("generate+score"):
            out = tr._generate_and_score_completions(batch)
        inputs = inputs or out
    extra_forwards = calls["n"] / repeats
    del tr._get_per_token_logps_and_entropies

    model = tr.model
    snapshot = {k: v.clone() for k, v in model.state_dict().items()}
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
    attn = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1)
    n_completion = inputs["completion_ids"].size(1)
    ref_grad, agree = None, {}
    for rep in range(repeats):
        for name, buckets, bf16, shared in VARIANTS:
            model.load_state_dict(snapshot)
            tr.logprob_buckets, tr.autocast_bf16 = buckets, bf16
            tr.__class__ = shared_prompt.trainer_class() if shared else grpo.trainer_class()
            with clock(f"{name}|forward"):
                loss = tr.compute_loss(model, inputs)
            with clock(f"{name}|backward"):
                loss.backward()
            if rep == 0:
                g = torch.cat([p.grad.flatten() for p in model.parameters()]).double()
                ref_grad = g if ref_grad is None else ref_grad
                agree[name] = (torch.nn.functional.cosine_similarity(g, ref_grad, dim=0).item(),
                               ((g - ref_grad).norm() / ref_grad.norm()).item())
            with clock(f"{name}|optimizer"):
                tr.optimizer.step()
                tr.optimizer.zero_grad(set_to_none=True)
            model.load_state_dict(snapshot)
            with clock(f"{name}|plain"):
                plain_forward_backward(model, ids, attn, n_completion, buckets, bf16, shared)
    model.load_state_dict(snapshot)
    tr.__class__ = grpo.trainer_class()

    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        for name, buckets, bf16, shared in (VARIANTS[0], VARIANTS[3], VARIANTS[-1]):  # TRL, stage 04, shared
            tr.logprob_buckets, tr.autocast_bf16 = buckets, bf16
            tr.__class__ = shared_prompt.trainer_class() if shared else grpo.trainer_class()
            with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
                tr.compute_loss(model, inputs).backward()
            model.zero_grad(set_to_none=True)
            print(f"\nprofile, loss forward + backward: {name}")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))

    mask = inputs["completion_mask"] * inputs.get("tool_mask", 1)
    tokens = {"episodes": ids.size(0), "padded": ids.numel(), "real": int(attn.sum()), "model_written": int(mask.sum()),
              "bucketed": batch_shapes(ids, attn, n_completion, 8),
              "shared": batch_shapes(ids, attn, n_completion, 8, shared=True)}
    return {"clock": clock, "agree": agree, "extra_forwards": extra_forwards, "tokens": tokens, "settings": s,
            "repeats": repeats, "threads": threads}


def table(res: dict) -> str:
    c, s, tk = res["clock"], res["settings"], res["tokens"]
    rollout_cpu, rollout_wall = c.median("rollout"), c.median("rollout", 1)
    prep_cpu, prep_wall = c.median("generate+score"), c.median("generate+score", 1)
    lines = [
        f"{s.prompts_per_step} prompts x G={s.group_size} = {tk['episodes']} episodes per step; "
        f"{res['repeats']} repeats, torch threads {res['threads']}; medians, CPU s (wall s)",
        f"tokens in the loss batch: {tk['padded']:,} padded (one batch), {tk['bucketed']:,} in 8 length buckets, "
        f"{tk['shared']:,} in 8 buckets with each distinct prompt once, {tk['real']:,} real, {tk['model_written']:,} model-written (in the loss)",
        f"rollout {rollout_cpu:.2f} ({rollout_wall:.2f}); rewards {c.median('reward'):.3f}; "
        f"TRL batch preparation around them {prep_cpu - rollout_cpu - c.median('reward'):.2f}; "
        f"extra logprob forwards per step (old/ref policy): {res['extra_forwards']:g} "
        f"(num_iterations 1, beta {s.beta:g})", "",
        "| variant | loss forward | backward | optimizer | train part | plain fwd+bwd, same shapes "
        "| train / plain (CPU s) | step incl. rollout | speed-up (CPU s) | grad cos vs TRL | grad rel. err |",
        "|---|---|---|---|---|---|---|---|---|---|---|"]
    base_step = None
    for name, *_ in VARIANTS:
        med = {ph: (c.median(f"{name}|{ph}"), c.median(f"{name}|{ph}", 1))
               for ph in ("forward", "backward", "optimizer", "plain")}
        train = tuple(sum(med[ph][i] for ph in ("forward", "backward", "optimizer")) for i in (0, 1))
        step = (prep_cpu + train[0], prep_wall + train[1])
        base_step = base_step or step
        cos, rel = res["agree"][name]
        f = lambda v: f"{v[0]:.2f} ({v[1]:.2f})"  # noqa: E731
        lines.append(f"| {name} | {f(med['forward'])} | {f(med['backward'])} | {f(med['optimizer'])} | {f(train)} | "
                     f"{f(med['plain'])} | {train[0] / med['plain'][0]:.2f} | {f(step)} | "
                     f"{base_step[0] / step[0]:.2f}x | {cos:.5f} | {rel:.1e} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--profile", action="store_true",
                    help="torch.profiler top ops of TRL's path, stage 04's and the shared-prompt variant")
    ap.add_argument("--data-root", type=Path, default=Path("."), help="checkout whose data/ holds stages 00-01")
    args = ap.parse_args()
    print("\n" + table(run(args.repeats, args.threads, args.profile, args.data_root)))


if __name__ == "__main__":
    main()
