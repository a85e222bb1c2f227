"""Evaluation helpers shared by stages 02–06: scored rollouts, counts, summaries, sanity bands, training checks.

Sampling itself lives in :mod:`passkt.sampling` (re-exported here); scores are derived here, from what the policy
wrote, by the current :mod:`passkt.scoring` — never read back from a cache.
"""

from __future__ import annotations

from pathlib import Path

from passkt import rollout
from passkt.sampling import SamplingSettings, free_accelerator_memory, make_backend, sample_eval  # noqa: F401  (re-exported)
from passkt.scoring import score_answer


def summary_table(df):
    """Per (category, temperature, T): episodes, Pass@1 (= mean correct), validity, mean searches."""
    g = df.groupby(["category", "temperature", "T"])
    return g.agg(episodes=("correct", "size"), pass1=("correct", "mean"), valid=("valid", "mean"),
                 searches=("searches", "mean"), tokens=("n_tokens", "mean")).reset_index()


def _pass_n(sub) -> float:
    return float(sub.groupby("problem_id")["correct"].max().mean()) if len(sub) else float("nan")


def sanity_bands(df, temperature: float, T_eval: int = 5) -> list[dict]:
    """The tiny base model's sanity bands (issue: stage 01), measured on base rollouts at one temperature."""
    d = df[abs(df.temperature - temperature) < 1e-9]
    rows = []

    def band(name, value, low, high):
        rows.append({"band": name, "value": value, "low": low, "high": high,
                     "ok": bool(low <= value <= high) if value == value else False})

    tool = d[d.category.isin(["comparison", "bridge"]) & (d["T"] == T_eval)]
    for cat in ("comparison", "bridge"):
        sub = tool[tool.category == cat]
        band(f"{cat} Pass@1 (T={T_eval})", float(sub.correct.mean()), 0.05, 0.6)
        band(f"{cat} Pass@n (T={T_eval})", _pass_n(sub), 0.4, 0.95)
    band(f"episodes using search (T={T_eval})", float((tool.searches > 0).mean()), 0.5, 1.0)
    band(f"well-formed episodes (T={T_eval})", float(tool.valid.mean()), 0.9, 1.0)
    br = d[d.category == "bridge"]
    p1, p2 = _pass_n(br[br["T"] == 1]), _pass_n(br[br["T"] == 2])
    band("bridge Pass@n(T=2) - Pass@n(T=1)", p2 - p1, 0.05, 1.0)
    m = d[(d.category == "math") & (d["T"] == 0)]
    band("math Pass@1 (T=0)", float(m.correct.mean()), 0.1, 0.8)
    return rows


def score_frame(df, problems: list[dict] | dict):
    """``df`` with ``correct`` and ``f1`` derived from its ``answer`` / ``termination`` by the current scorer.

    An episode that did not end with an answer (invalid) is incorrect with f1 0. Each distinct (problem, answer)
    pair is scored once.
    """
    import pandas as pd

    by_id = problems if isinstance(problems, dict) else {p["id"]: p for p in problems}
    missing = sorted(set(df["problem_id"]) - set(by_id))
    if missing:
        raise KeyError(f"rollouts name {len(missing)} problems not in the problem set, e.g. {missing[0]!r}")
    answered = df["termination"].to_numpy() == rollout.ANSWERED
    pairs = df.loc[answered, ["problem_id", "answer"]].drop_duplicates()
    scores = {(pid, a): score_answer(a, by_id[pid]) for pid, a in zip(pairs["problem_id"], pairs["answer"])}
    keys = list(zip(df["problem_id"], df["answer"]))
    out = df.copy()
    out["correct"] = pd.array([bool(ok and scores[k]["correct"]) for k, ok in zip(keys, answered)], dtype=bool)
    out["f1"] = [float(scores[k]["f1"]) if ok else 0.0 for k, ok in zip(keys, answered)]
    return out


def load_scored(out_dir: str | Path, problems: list[dict] | dict, columns: list[str] | None = None):
    """A finished sampling run's rollouts with ``correct`` and ``f1`` scored now (see :func:`score_frame`).

    ``columns`` may name ``correct``/``f1`` like any stored column; what scoring needs is read in addition.
    """
    stored = None
    if columns is not None:
        want = [c for c in columns if c not in rollout.SCORE_COLUMNS]
        stored = list(dict.fromkeys(want + ["problem_id", "answer", "termination"]))
    df = score_frame(rollout.load_rollouts(out_dir, columns=stored), problems)
    return df if columns is None else df[list(columns)]


def scorer_check(problems: list[dict]) -> dict:
    """The scorer on known answers, for the metrics: the share of problems whose gold answer it accepts and the
    share for which it rejects another problem's answer (same category, a different normalised answer).

    Both are 1.0 for a working scorer; a broken one shows here even where no policy solves anything.
    """
    from passkt.scoring import normalize_answer, normalize_math

    norm = {"math": normalize_math}
    accept, reject = [], []
    by_cat: dict[str, list[dict]] = {}
    for p in problems:
        by_cat.setdefault(p["category"], []).append(p)
    for cat, ps in by_cat.items():
        f = norm.get(cat, normalize_answer)
        for i, p in enumerate(ps):
            accept.append(bool(score_answer(p["answer"], p)["correct"]))
            golds = {f(a) for a in (p["answer"], *p.get("aliases", ()))}
            other = next((q["answer"] for q in ps[i + 1:] + ps[:i] if f(q["answer"]) not in golds), None)
            if other is not None:
                reject.append(not score_answer(other, p)["correct"])
    return {"scorer.gold_accept": sum(accept) / max(len(accept), 1),
            "scorer.wrong_reject": sum(reject) / max(len(reject), 1), "scorer.n_problems": len(accept)}


def train_pass1(model_dir: str | Path, problems: list[dict], sampling: dict, n: int, T: int, seed: int,
                isolated: bool | None = None) -> dict:
    """Pass@1 (mean exact match) of a saved policy on ``problems`` at budget T, n samples each, per category.

    Used to check that SFT learned its demonstrations and that GRPO improved on its training problems. Runs in its
    own process with the vLLM backend (``sampling.isolate``).
    """
    import torch

    from passkt.models import load_policy
    from passkt.sampling import close_backend, in_own_process, isolate

    s = SamplingSettings.from_dict(sampling)
    if isolate(s, isolated):
        return in_own_process(train_pass1, model_dir, problems, sampling, n, T, seed, isolated=False)
    if s.backend == "hf":
        model, tok = load_policy(model_dir, device=s.device)
    else:  # the engine loads the weights itself
        from transformers import AutoTokenizer

        model, tok = None, AutoTokenizer.from_pretrained(str(model_dir))
    env = rollout.Environment(problems, tok, search_k=s.search_k)
    torch.manual_seed(seed)
    backend = make_backend(model, tok, s, model_dir, seed)
    try:
        eps = rollout.run_episodes(backend, env, [(p["id"], i, T) for p in problems for i in range(n)], s.config(),
                                   workers=s.workers)
    finally:
        close_backend(backend)
    out: dict[str, list] = {}
    for e in eps:
        p = env.problems[e.problem_id]
        ok = e.termination == rollout.ANSWERED and bool(score_answer(e.answer, p)["correct"])
        out.setdefault(p["category"], []).append(ok)
        out.setdefault("all", []).append(ok)
    return {k: float(sum(v) / len(v)) for k, v in out.items()}


def load_counts(paths, policies: list[str], replicates: list[int] | None = None):
    """Per (policy, category, problem, temperature, T): n rollouts and c successes, scored now from the rollouts.

    With ``replicates``, the counts frame gets a ``replicate`` column: a policy sampled by a replicated stage
    (SFT, GRPO) is loaded from every listed replicate that has its rollouts (the exploration-bonus run may
    exist in the first replicates only; a plain SFT or RL replicate missing raises), the base model once with
    replicate -1 (shared by every replicate: it is not retrained).
    """
    import pandas as pd

    from passkt import prep
    from passkt.paths import POLICY_ROLLOUTS, REPLICATED

    problems = prep.eval_problems(paths.problems)

    def one(p, pol):
        d = p.rollouts(pol)
        if not any(d.glob("shard-*.parquet")):
            raise FileNotFoundError(f"no rollouts for policy {pol!r} in {d}")
        return counts_of({pol: load_scored(d, problems, columns=["problem_id", "category", "T", "temperature", "correct"])})

    if replicates is None:
        return pd.concat([one(paths, pol) for pol in policies], ignore_index=True)
    frames = []
    for pol in policies:
        if POLICY_ROLLOUTS[pol][0] not in REPLICATED:
            frames.append(one(paths, pol).assign(replicate=-1))
            continue
        have = [r for r in replicates if any(paths.with_replicate(r).rollouts(pol).glob("shard-*.parquet"))]
        if not have or (pol in ("sft", "rl") and have != list(replicates)):
            lack = sorted(set(replicates) - set(have))
            raise FileNotFoundError(f"no rollouts for policy {pol!r} in replicate(s) {lack} "
                                    f"({paths.with_replicate(lack[0]).rollouts(pol)})")
        frames += [one(paths.with_replicate(r), pol).assign(replicate=r) for r in have]
    return pd.concat(frames, ignore_index=True)


def counts_of(episodes: dict):
    """The counts frame (policy, category, problem_id, temperature, T, n, c) of scored episode frames per policy."""
    import pandas as pd

    frames = []
    for pol, df in episodes.items():
        g = df.groupby(["category", "problem_id", "temperature", "T"])["correct"].agg(n="size", c="sum").reset_index()
        g.insert(0, "policy", pol)
        frames.append(g)
    out = pd.concat(frames, ignore_index=True)
    out["c"] = out["c"].astype("int64")
    return out


def k_grid(n: int) -> list[int]:
    """1, 2, 4, ... up to n (n itself always included)."""
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    return ks + [n]


def reward_rise(log, seed: int = 0, frac: float = 0.1, n_boot: int = 2000) -> dict:
    """Mean training reward over the first and last ``frac`` of steps, their difference, bootstrap CI over steps."""
    import numpy as np

    r = log["reward"].to_numpy(dtype=float)
    m = max(1, int(round(len(r) * frac)))
    first, last = r[:m], r[-m:]
    rng = np.random.default_rng(seed)
    diffs = [rng.choice(last, m).mean() - rng.choice(first, m).mean() for _ in range(n_boot)]
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return {"steps": int(len(r)), "window": m, "first": float(first.mean()), "last": float(last.mean()),
            "rise": float(last.mean() - first.mean()), "ci_low": float(lo), "ci_high": float(hi)}


def reward_plateau(log, tail: float = 0.2, margin: float = 0.05, alpha: float = 0.05) -> dict:
    """Has the training reward stopped rising? A test of the stated effect, not of a p-value's absence.

    Ordinary least squares of the per-step mean reward on the step over the last ``tail`` of the steps (at least
    3); ``rise`` = slope x the window's length in steps. Verdict: ``plateau`` when the rise is shown within
    ±``margin`` (reward units, fixed in advance) by two one-sided tests at ``alpha`` (an equivalence test: a reward
    that falls significantly has not plateaued), ``rising`` when the one-sided lower bound is above 0, ``falling``
    when the upper bound is below 0, else ``undetermined`` (too few or too noisy steps to tell). Steps are treated
    as independent (each is a mean over its own fresh groups).
    """
    import numpy as np
    from scipy import stats as st

    y = log["reward"].to_numpy(dtype=float)
    x = log["step"].to_numpy(dtype=float) if "step" in log else np.arange(1, len(y) + 1, dtype=float)
    m = max(3, int(np.ceil(len(y) * tail)))
    out = {"steps": int(len(y)), "window": int(min(m, len(y))), "tail": tail, "margin": margin, "alpha": alpha}
    if len(y) < m:
        return {**out, "verdict": "undetermined", "note": "fewer than 3 steps"}
    x, y = x[-m:], y[-m:]
    fit = st.linregress(x, y)
    span, q = float(x[-1] - x[0]), float(st.t.ppf(1 - alpha, m - 2))
    lo, hi = (fit.slope - q * fit.stderr) * span, (fit.slope + q * fit.stderr) * span
    verdict = ("plateau" if -margin < lo and hi < margin else "rising" if lo > 0 else "falling" if hi < 0
               else "undetermined")
    return {**out, "rise": float(fit.slope * span), "rise_low": float(lo), "rise_high": float(hi), "verdict": verdict}


def problems_per_category(df) -> dict[str, int]:
    """Distinct problems per category of an episode or counts table (for figure captions)."""
    return {str(c): int(k) for c, k in df.groupby("category")["problem_id"].nunique().items()}


def rollouts_per_problem(df) -> int:
    """Most episodes any problem has at one (T, temperature) in an episode table (the n of a figure caption)."""
    keys = [c for c in ("problem_id", "T", "temperature") if c in df]
    return int(df.groupby(keys).size().max()) if len(df) else 0
