"""What the support sweep measures, and the eighth rule (docs/support_sweep.md, fixed before any point ran).

- **Support**: the share of the base model's bridge episodes whose search plan follows the gold chain (its
  queries, HotpotQA-normalised and with immediate repeats removed, start with the first gold title followed by the
  bridge entity), with a Wilson interval over episodes and a bootstrap interval over problems. Measured from
  rollouts, never read from the prior weight.
- **Gained plans**: for each problem RL solves and base never does (n = 64, one replicate), whether one of RL's
  winning plans is a plan the base model also wrote on that problem.
- **The effect** E = Pass@64(RL) - Pass@64(base) on bridge at T_eval, with the two-level (replicates, then problems)
  interval and TOST bound of stage 05, read from each point's ``metrics.json``.
- :func:`rule8` turns the points into the eighth verdict.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

MARGIN = 0.05  # = claims.MARGIN_BOUNDARY, fixed in docs/support_sweep.md
STATEMENT = "RL expands the boundary only where the base model's support for the needed strategy is non-zero."


class SupportError(ValueError):
    """A bad input to the sweep's measurements (one line naming it)."""


# ----------------------------------------------------------------------------------------- measurements


def _norm(q) -> str:
    from passkt.scoring import normalize_answer

    return normalize_answer(str(q))


def plan_of(queries) -> tuple[str, ...]:
    """An episode's search plan: its normalised queries with immediate repeats removed."""
    out: list[str] = []
    for q in (queries if queries is not None else ()):
        q = _norm(q)
        if not out or out[-1] != q:
            out.append(q)
    return tuple(out)


def gold_plan(problem: dict) -> tuple[str, str]:
    meta = problem["meta"]
    meta = json.loads(meta) if isinstance(meta, str) else meta
    first, bridge = meta["plan"]
    return _norm(first), _norm(bridge)


def follows_gold_chain(queries, gold: tuple[str, str]) -> bool:
    """The plan starts with the first gold title followed by the bridge entity (docs/support_sweep.md)."""
    return plan_of(queries)[:2] == tuple(gold)


def support(df: pd.DataFrame, problems: list[dict], n_boot: int = 1000, seed: int = 0, ci: float = 0.95) -> dict:
    """The share of bridge episodes that follow the gold chain, with a Wilson interval over episodes and a
    bootstrap interval over problems. ``df``: one policy's bridge episodes at one (T, temperature)."""
    from passkt.metrics import wilson_interval

    gold = {p["id"]: gold_plan(p) for p in problems if p["category"] == "bridge"}
    df = df[df["category"] == "bridge"]
    if df.empty:
        raise SupportError("support: no bridge episodes")
    hit = np.array([follows_gold_chain(q, gold[pid]) for pid, q in zip(df["problem_id"], df["queries"])])
    x, n = int(hit.sum()), int(hit.size)
    lo, hi = wilson_interval(x, n, ci)
    per = pd.DataFrame({"pid": df["problem_id"].to_numpy(), "hit": hit}).groupby("pid")["hit"].agg(["sum", "size"])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(per), size=(n_boot, len(per)))
    s, m = per["sum"].to_numpy()[idx].sum(1), per["size"].to_numpy()[idx].sum(1)
    q = (1 - ci) / 2
    return {"support": x / n, "chains": x, "episodes": n, "wilson_low": lo, "wilson_high": hi,
            "boot_low": float(np.quantile(s / m, q)), "boot_high": float(np.quantile(s / m, 1 - q)),
            "problems_with_chain": int((per["sum"] > 0).sum()), "problems": int(len(per))}


def gained_plans(solver: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    """For each problem the solver solves and the other never does (one replicate, same episodes per problem):
    whether a plan of the solver's correct episodes is one the other policy also wrote on that problem."""
    rows = []
    o_plans = other.groupby("problem_id")["queries"].agg(lambda qs: {plan_of(q) for q in qs})
    o_solved = other.groupby("problem_id")["correct"].any()
    for pid, g in solver.groupby("problem_id"):
        if not g["correct"].any() or o_solved.get(pid, True):
            continue
        wins = {plan_of(q) for q in g.loc[g["correct"], "queries"]}
        rows.append({"problem_id": pid, "winning_plans": len(wins),
                     "other_wrote_a_winning_plan": bool(wins & o_plans.get(pid, set()))})
    return pd.DataFrame(rows, columns=["problem_id", "winning_plans", "other_wrote_a_winning_plan"])


# ----------------------------------------------------------------------------------------- the eighth rule


def rule8(points: pd.DataFrame, margin: float = MARGIN) -> dict:
    """docs/support_sweep.md's rule. ``points``: one row per sweep point with ``chains`` (gold-chain episodes of
    the base model), ``wilson_low``, and the RL - base Pass@64 effect ``E``, ``E_ci_low``/``E_ci_high`` (two-level
    interval) and ``E_tost_high`` (upper bound of the TOST interval at the audit's alpha)."""
    zero = points[points["chains"] == 0]
    supp = points[points["wilson_low"] > 0]
    shown_pos = lambda d: d[d["E_ci_low"] > 0]  # noqa: E731
    if len(shown_pos(zero)):
        w = ", ".join(f"{c:g}" for c in shown_pos(zero)["chain"])
        return {"verdict": "contradicted", "why": f"RL expanded the boundary at zero-support point(s) chain = {w}"}
    if zero.empty:
        return {"verdict": "inconclusive",
                "why": "no sweep point has zero support (the base model wrote the gold chain at every point), "
                       "so 'only where' cannot be tested"}
    not_eq = zero[~(zero["E_tost_high"] < margin)]
    if len(not_eq):
        w = ", ".join(f"{c:g}" for c in not_eq["chain"])
        return {"verdict": "inconclusive",
                "why": f"at zero-support point(s) chain = {w} E is not shown below the margin {margin} (TOST)"}
    if shown_pos(supp).empty:
        return {"verdict": "inconclusive", "why": "no supported point shows an expansion (interval above 0)"}
    w = ", ".join(f"{c:g}" for c in shown_pos(supp)["chain"])
    return {"verdict": "supported",
            "why": f"no expansion beyond ±{margin} where support is zero; expansion shown at chain = {w}"}


# ----------------------------------------------------------------------------------------- reading points


def point_row(ws: Path, chain: float, replicates: list[int], T: int, temperature: float, n_boot: int, ci: float,
              seed: int) -> tuple[dict, pd.DataFrame]:
    """What the sweep reads from one finished point: its workspace, or the repository root for the default study.

    Returns the point's row (support, effects with intervals, gained/lost, deep sampling, boundary mass) and its
    per-problem table of RL's gained problems with whether base wrote a winning plan there."""
    from passkt import evaluate, mechanism, prep
    from passkt.paths import Paths

    P = Paths(Path(ws))
    probs = prep.eval_problems(P.problems)
    bridge = [p for p in probs if p["category"] == "bridge"]
    stats = json.loads(P.pass_metrics.read_text())
    mech = json.loads(P.mechanism_metrics.read_text())
    cols = ["problem_id", "category", "T", "temperature", "queries", "correct"]

    def eps(policy: str, r: int) -> pd.DataFrame:
        d = evaluate.load_scored(P.with_replicate(r).rollouts(policy), probs, columns=cols)
        return mechanism.episodes_at(d[d["category"] == "bridge"], T, temperature)

    base = eps("base", 0)
    row = {"chain": chain, **support(base, bridge, n_boot=n_boot, seed=seed, ci=ci)}
    for pol in ("rl", "sft"):
        key = f"passdiff.bridge.{pol}_vs_base.kmax"
        tag = "E" if pol == "rl" else "E_sft"
        row.update({tag: stats[key], f"{tag}_ci_low": stats[f"{key}.ci_low"], f"{tag}_ci_high": stats[f"{key}.ci_high"],
                    f"{tag}_tost_high": stats.get(f"{key}.tost_high", float("nan")),
                    f"{tag}_seed_sd": stats.get(f"{key}.seed_sd", float("nan"))})
        sd = f"setdiff.bridge.{pol}_vs_base"
        row.update({f"{pol}_gained": stats[f"{sd}.gained"], f"{pol}_lost": stats[f"{sd}.lost"],
                    f"{pol}_net_p": stats.get(f"{sd}.net_p", float("nan"))})
        dp = f"deep.bridge.{pol}_vs_base.gained"
        row.update({f"{pol}_gained_candidates": mech.get(f"{dp}.candidates", float("nan")),
                    f"{pol}_gained_base_solves_at_depth": mech.get(f"{dp}.solved_at_depth", float("nan"))})
    row["pass64_base"] = stats["pass.bridge.base.kmax"]
    row["pass64_rl"] = stats["pass.bridge.rl.kmax"]
    row["pass64_sft"] = stats["pass.bridge.sft.kmax"]
    row["n_replicates"] = int(stats["meta.n_replicates"])
    mass = pd.read_csv(P.data("05_pass_at_k") / "boundary_mass.csv")
    for _, m in mass[mass["category"] == "bridge"].iterrows():
        if m["policy"] in ("base", "sft", "rl"):
            row[f"pi0_{m['policy']}_high"] = m["pi0_ci_high"]
    plans = []
    for r in replicates:
        g = gained_plans(eps("rl", r), base)
        g.insert(0, "replicate", r)
        plans.append(g)
    plans = pd.concat(plans, ignore_index=True)
    row["rl_gained_total"] = int(len(plans))
    row["rl_gained_with_base_plan"] = int(plans["other_wrote_a_winning_plan"].sum()) if len(plans) else 0
    plans.insert(0, "chain", chain)
    return row, plans




# ----------------------------------------------------------------------------------------- the figure


def sweep_figure(points: pd.DataFrame, margin: float, caption: str):
    """Left: boundary expansion (Pass@64 minus base's, RL and SFT, two-level intervals) against the base model's
    measured support for the gold chain (symlog x: the zero-support point sits at 0). Right: measured support
    against the prior's chain share (does the knob move the behaviour?)."""
    import matplotlib.pyplot as plt

    from passkt.plotting import POLICY_COLORS, POLICY_LABELS

    p = points.sort_values("chain")
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.5, 1]})
    ax.axhspan(-margin, margin, color="0.85", zorder=0, label=f"±{margin} (equivalence margin)")
    ax.axhline(0, color="0.3", lw=0.8)
    xs = p["support"].to_numpy()
    xerr = np.vstack([xs - p["wilson_low"].to_numpy(), p["wilson_high"].to_numpy() - xs])
    for tag, pol, dx in (("E", "rl", 1.0), ("E_sft", "sft", 1.08)):
        y = p[tag].to_numpy()
        yerr = np.vstack([y - p[f"{tag}_ci_low"].to_numpy(), p[f"{tag}_ci_high"].to_numpy() - y])
        ax.errorbar(xs * dx, y, yerr=yerr, xerr=xerr if pol == "rl" else None, fmt="o-" if pol == "rl" else "s--",
                    color=POLICY_COLORS[pol], capsize=3, label=f"{POLICY_LABELS[pol]} − base")
    for x, y, c in zip(xs, p["E"], p["chain"]):
        ax.annotate(f"prior {c:g}", (x, y), textcoords="offset points", xytext=(4, 6), fontsize=8, color="0.35")
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlim(left=-1e-4)
    ax.set_xlabel("base model's measured support for the gold chain (share of bridge episodes)")
    ax.set_ylabel("Pass@64 − base's Pass@64 (bridge)")
    ax.legend(fontsize=8, loc="best")
    ax.set_title("Boundary expansion against base support")
    bx.errorbar(p["chain"], xs, yerr=xerr, fmt="o-", color=POLICY_COLORS["base"], capsize=3)
    lim = max(float(p["chain"].max()), float(p["wilson_high"].max())) * 1.1
    bx.plot([0, lim], [0, lim], ls=":", color="0.5", lw=0.8, label="support = prior share")
    bx.set_xscale("symlog", linthresh=1e-2)
    bx.set_yscale("symlog", linthresh=1e-3)
    bx.set_xlabel("prior's chain share (pretraining transcripts)")
    bx.set_ylabel("measured support (base rollouts)")
    bx.legend(fontsize=8)
    bx.set_title("The knob: prior share vs measured support")
    fig.text(0.01, -0.03, caption, fontsize=8, ha="left", va="top")
    cols = ["chain", "support", "wilson_low", "wilson_high", "E", "E_ci_low", "E_ci_high", "E_sft", "E_sft_ci_low",
            "E_sft_ci_high"]
    return fig, p[cols]
