"""Content checks on a finished pipeline run (smoke, tiny or paper): what the claims rules need is there and sane.

Used by tests/test_pipeline_smoke.py (smoke profile, every run of the suite) and the slow full-pipeline test.
Each check returns a list of problems (empty = pass), so a test of the tests can assert that a broken run fails.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

POLICIES = ("base", "sft", "rl", "rl_bonus")


class Recording(dict):
    """A dict that remembers every key read through ``get`` / ``[]`` (what a claim's rule actually reads)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.read: set[str] = set()

    def __getitem__(self, k):
        self.read.add(k)
        return super().__getitem__(k)

    def get(self, k, default=None):
        self.read.add(k)
        return super().get(k, default)


def stats_of(repo: Path) -> dict:
    out = {}
    for f in ("data/05_pass_at_k/metrics.json", "data/06_mechanism/metrics.json"):
        out.update(json.loads((repo / f).read_text()))
    return out


def check_claims(repo: Path, allow_not_evaluated: tuple[int, ...] = ()) -> list[str]:
    """Every claim has a verdict from the committed set; every key a rule reads exists and is a finite number;
    only the claims in ``allow_not_evaluated`` may be "not evaluated"."""
    from passkt import claims

    bad = []
    stats = stats_of(repo)
    verdicts = json.loads((repo / "figures/07_claims_audit/verdicts.json").read_text())["claims"]
    for c in claims.CLAIMS:
        v = verdicts.get(str(c.id), {}).get("verdict")
        if v not in claims.VERDICTS:
            bad.append(f"claim {c.id}: verdict {v!r}")
        rec = Recording(stats)
        again = c.decide(rec).verdict
        if again != v:
            bad.append(f"claim {c.id}: verdicts.json says {v!r}, the rule on metrics.json says {again!r}")
        if v == claims.NOT_EVALUATED and c.id not in allow_not_evaluated:
            bad.append(f"claim {c.id} not evaluated: missing {claims.first_missing(stats, c.keys)}")
        if c.id in allow_not_evaluated:
            continue
        for k in sorted(rec.read | set(c.keys)):
            if claims.HIER + "." in k and k not in c.keys:
                continue  # hierarchical (seeds x problems) intervals: optional, read when a run carries them
            x = stats.get(k)
            if not isinstance(x, (int, float)) or math.isnan(float(x)):
                bad.append(f"claim {c.id} reads {k!r}: {x!r} in the metrics")
    return bad


def check_metrics(repo: Path) -> list[str]:
    """Ranges and orderings the statistics must obey whatever the models learned."""
    bad = []
    stats = stats_of(repo)
    for k, x in stats.items():
        if not isinstance(x, (int, float)):
            continue
        if k.startswith(("pass.", "boundary.")) and k.endswith((".k1", ".kmax", ".frac")) and not (0 <= x <= 1):
            bad.append(f"{k} = {x} outside [0, 1]")
        if k.endswith(".ci_low"):
            hi = stats.get(k[: -len("ci_low")] + "ci_high")
            if isinstance(hi, (int, float)) and not (math.isnan(x) or math.isnan(hi)) and x > hi + 1e-12:
                bad.append(f"{k} = {x} > its ci_high {hi}")
    for key, want in (("scorer.gold_accept", 1.0), ("scorer.wrong_reject", 1.0)):
        if stats.get(key) != want:
            bad.append(f"{key} = {stats.get(key)!r}, want {want} (the scorer fails on known answers)")
    for cat in ("math", "comparison", "bridge"):
        for pol in POLICIES:
            k1, km = stats.get(f"pass.{cat}.{pol}.k1"), stats.get(f"pass.{cat}.{pol}.kmax")
            if k1 is None or km is None or km < k1 - 1e-12:
                bad.append(f"pass.{cat}.{pol}: k1 {k1} > kmax {km} (Pass must grow with k)")
            size, frac = stats.get(f"boundary.{cat}.{pol}.frac"), km
            if size is not None and km is not None and abs(size - frac) > 1e-9:
                bad.append(f"boundary.{cat}.{pol}.frac {size} != Pass@n {km} (both are the share solved at least once)")
    return bad


def check_counts(repo: Path) -> list[str]:
    """Pass@(k,T) from the cached counts is non-decreasing in k for every (policy, category, T, temperature)."""
    import numpy as np
    import pandas as pd

    from passkt import evaluate, metrics

    bad = []
    counts = pd.read_parquet(repo / "data/05_pass_at_k/counts.parquet")
    n = int(counts.n.min())
    if (counts.n != n).any():
        bad.append(f"unequal rollout counts per problem: {sorted(counts.n.unique())}")
    ks = evaluate.k_grid(n)
    for key, g in counts.groupby(["policy", "category", "T", "temperature"]):
        curve = [float(np.mean([metrics.pass_at_k(int(r.n), int(r.c), k) for r in g.itertuples()])) for k in ks]
        if any(b < a - 1e-12 for a, b in zip(curve, curve[1:])) or not all(0 <= v <= 1 for v in curve):
            bad.append(f"{key}: Pass@k not monotone in [0, 1]: {curve}")
    return bad


def check_models(repo: Path) -> list[str]:
    """The trained policies load like hub models; SFT differs from the base model, and so does each GRPO run
    whose log shows a gradient signal (a group with mixed rewards: with none, GRPO's update is exactly zero)."""
    import pandas as pd
    import torch
    from transformers import AutoModelForCausalLM

    from passkt import models, paths

    P = paths.Paths(repo)
    base = AutoModelForCausalLM.from_pretrained(models.base_model_location(P.data("01_base_model"))).state_dict()
    bad = []
    runs = (("sft", P.sft_model, None), ("rl", P.rl_model, P.grpo_run(False)), ("rl_bonus", P.rl_bonus_model, P.grpo_run(True)))
    for name, d, run in runs:
        try:
            sd = AutoModelForCausalLM.from_pretrained(d).state_dict()
        except Exception as e:  # noqa: BLE001 - reported, not raised: a check lists every problem
            bad.append(f"{name}: does not load from {d}: {e}")
            continue
        if sd.keys() != base.keys():
            bad.append(f"{name}: other parameters than the base model")
            continue
        signal = run is None or (pd.read_csv(run / "train_log.csv")["mixed_groups"] > 0).any()
        if signal and all(torch.equal(sd[k], base[k]) for k in sd):
            bad.append(f"{name}: identical to the base model although training had a learning signal")
    return bad


def check_deep(repo: Path) -> list[str]:
    """Deep boundary sampling and the boundary mass (beyond the paper): every deep.* count is there for both pairs,
    directions and tool categories, with solved_at_depth + never = sampled <= candidates, the per-problem CSV has one
    row per candidate; every policy and category has its zibb.* fit with an ordered interval; the figure exists."""
    import pandas as pd

    bad = []
    stats = stats_of(repo)
    if not isinstance(stats.get("deep.n_deep"), int) or stats["deep.n_deep"] < 1:
        bad.append(f"deep.n_deep = {stats.get('deep.n_deep')!r}")
    total = 0
    for cat in ("comparison", "bridge"):
        for pair in ("rl_vs_base", "sft_vs_base"):
            for d in ("gained", "lost"):
                pre = f"deep.{cat}.{pair}.{d}."
                v = {k: stats.get(pre + k) for k in ("candidates", "sampled", "solved_at_depth", "never")}
                if not all(isinstance(x, int) and x >= 0 for x in v.values()):
                    bad.append(f"{pre}*: {v}")
                    continue
                total += v["candidates"]
                if v["solved_at_depth"] + v["never"] != v["sampled"] or v["sampled"] > v["candidates"]:
                    bad.append(f"{pre}*: solved_at_depth + never != sampled or sampled > candidates: {v}")
    csv = repo / "data/06_mechanism/deep_boundary.csv"
    if not csv.exists():
        bad.append(f"missing {csv}")
    elif len(pd.read_csv(csv)) != total:
        bad.append(f"{csv.name}: {len(pd.read_csv(csv))} rows, the metrics count {total} candidates")
    for cat in ("math", "comparison", "bridge"):
        for pol in POLICIES:
            pre = f"zibb.{cat}.{pol}."
            if stats.get(pre + "identified") not in (0, 1):
                bad.append(f"{pre}identified = {stats.get(pre + 'identified')!r}")
            lo, hi = stats.get(pre + "pi0_ci_low"), stats.get(pre + "pi0_ci_high")
            if not (isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and 0 <= lo <= hi <= 1):
                bad.append(f"{pre}pi0 interval [{lo}, {hi}]")
    if not (repo / "figures/06_mechanism/boundary_depth.png").exists():
        bad.append("missing figures/06_mechanism/boundary_depth.png")
    return bad
