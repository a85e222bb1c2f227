"""Benchmark: the vectorised Pass@(k,T) surface + paired bootstrap vs a per-problem Python loop.

Paper-sized synthetic counts: 3 categories x 100 problems, n = 64 rollouts, 6 depths, 2 temperatures,
3 policies, ks = 1, 2, 4, ..., 64, 1,000 paired bootstrap resamples, 3 policy pairs.
The loop version runs the estimator on every row but only LOOP_REPS bootstrap replicates; its
bootstrap time is extrapolated linearly to N_BOOT (the output says so).

Run: PYTHONPATH=lib python bench/bench_metrics.py
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from passkt.metrics import bootstrap_surface, pass_surface

N, N_PROBLEMS, DEPTHS, TEMPS = 64, 100, (0, 1, 2, 3, 5, 8), (0.6, 1.0)
POLICIES, CATEGORIES = ("base", "sft", "rl"), ("math", "comparison", "bridge")
KS = 2 ** np.arange(7)
PAIRS = [("rl", "base"), ("sft", "base"), ("rl", "sft")]
N_BOOT, LOOP_REPS, SEED = 1000, 10, 0


def synthetic_counts(seed: int = SEED) -> pd.DataFrame:
    """Counts with a per-problem difficulty, a policy skill and a depth effect that saturates at T=2."""
    rng = np.random.default_rng(seed)
    rows = []
    for cat in CATEGORIES:
        difficulty = rng.normal(0, 2, N_PROBLEMS)
        for pi, pol in enumerate(POLICIES):
            for temp in TEMPS:
                for T in DEPTHS:
                    logit = -difficulty + 0.2 * pi + 0.8 * min(T, 2) - 0.5 * (temp - 0.6)
                    c = rng.binomial(N, 1 / (1 + np.exp(-logit)))
                    for j in range(N_PROBLEMS):
                        rows.append((pol, cat, f"{cat}-{j:03d}", temp, T, N, int(c[j])))
    return pd.DataFrame(rows, columns=["policy", "category", "problem_id", "temperature", "T", "n", "c"])


def loop_pass_at_k(n: int, c: int, k: int) -> float:
    """Codex human-eval estimator, one problem and one k at a time."""
    if n - c < k:
        return 1.0
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def loop_bootstrap(counts: pd.DataFrame, ks, pairs, n_reps: int, seed: int):
    """Straightforward version: dicts of per-problem lists, Python loops over replicates and problems."""
    per = {}  # (policy, category, temperature, T) -> list over problems of [pass@k for k in ks]
    for row in counts.sort_values("problem_id").itertuples(index=False):
        key = (row.policy, row.category, row.temperature, row.T)
        per.setdefault(key, []).append([loop_pass_at_k(row.n, row.c, int(k)) for k in ks])
    t_est = time.perf_counter()
    rng = np.random.default_rng(seed)
    points = {key: [] for key in per}
    diffs = {(a, b) + key[1:]: [] for a, b in pairs for key in per if key[0] == a and (b,) + key[1:] in per}
    for _ in range(n_reps):
        idx = {cat: rng.integers(0, N_PROBLEMS, N_PROBLEMS) for cat in CATEGORIES}
        for key, rows in per.items():
            ii = idx[key[1]]
            points[key].append([sum(rows[i][j] for i in ii) / len(ii) for j in range(len(ks))])
        for a, b, cat, temp, T in diffs:
            ra, rb, ii = per[(a, cat, temp, T)], per[(b, cat, temp, T)], idx[cat]
            diffs[(a, b, cat, temp, T)].append(
                [sum(ra[i][j] - rb[i][j] for i in ii) / len(ii) for j in range(len(ks))]
            )
    for reps in list(points.values()) + list(diffs.values()):
        np.percentile(np.array(reps), [2.5, 97.5], axis=0)
    return per, t_est


def main() -> None:
    counts = synthetic_counts()
    print(
        f"rows={len(counts)}  problems={N_PROBLEMS * len(CATEGORIES)}  n={N}  depths={len(DEPTHS)}  "
        f"temperatures={len(TEMPS)}  policies={len(POLICIES)}  ks={KS.tolist()}  n_boot={N_BOOT}"
    )

    t0 = time.perf_counter()
    surface = pass_surface(counts, KS)
    t_surface = time.perf_counter() - t0
    t0 = time.perf_counter()
    boot = bootstrap_surface(counts, KS, PAIRS, n_boot=N_BOOT, seed=SEED)
    t_vec = time.perf_counter() - t0

    t0 = time.perf_counter()
    per, t_est = loop_bootstrap(counts, KS, PAIRS, LOOP_REPS, SEED)
    t_end = time.perf_counter()
    est_time, rep_time = t_est - t0, t_end - t_est
    t_loop = est_time + rep_time * N_BOOT / LOOP_REPS

    # sanity: the loop's full-sample means equal the vectorised surface
    got = surface.set_index(["policy", "category", "temperature", "T", "k"])["pass"]
    for key, rows in list(per.items())[:20]:
        mean = np.mean(rows, axis=0)
        assert np.allclose(mean, got.loc[key].to_numpy(), atol=1e-12), key

    print(
        f"\npass_surface alone: {t_surface:.3f} s   points: {len(boot.points)}   pair diffs: {len(boot.diffs)}"
    )
    print(f"{'implementation':<44}{'time [s]':>12}")
    print(f"{'vectorised (surface + 1000 paired resamples)':<44}{t_vec:>12.3f}")
    print(f"{'Python loop (EXTRAPOLATED, see note)':<44}{t_loop:>12.1f}")
    print(f"{'ratio loop / vectorised':<44}{t_loop / t_vec:>12.0f}x")
    print(
        f"note: loop ran the estimator on all rows ({est_time:.2f} s) and {LOOP_REPS} of {N_BOOT} replicates "
        f"({rep_time:.2f} s); replicate time scaled by {N_BOOT // LOOP_REPS}x."
    )
    print(f"target < 5 s: {'met' if t_vec < 5 else 'MISSED'}")


if __name__ == "__main__":
    main()
