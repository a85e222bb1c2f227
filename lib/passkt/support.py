"""What the support sweep measures, and the eighth rule (docs/support_sweep.md, fixed before any point ran).

- **Support**: the share of the base model's bridge episodes whose search plan follows the gold chain (its
  queries, HotpotQA-normalised and with immediate repeats removed, start with the first gold title followed by the
  bridge entity), with a Wilson interval over episodes and a bootstrap interval over problems. Measured from
  rollouts, never read from the prior weight.
- **Prior support**: the same share in the point's pretraining transcripts (what the knob set, as written).
- **Gained chains**: for each problem RL solves and base never does (n = 64, one replicate), whether the search
  chain (first two distinct queries) of one of RL's successful episodes is one the base model also wrote there.
- **The effect** E = Pass@64(RL) - Pass@64(base) on bridge at T_eval, with the two-level (replicates, then problems)
  interval and TOST bound of stage 05, read from each point's ``metrics.json``.
- :func:`rule8` turns the points into the eighth verdict.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

NOTEBOOK = "08_support_sweep"  # the summary: `python -m passkt.run 08_support_sweep --params sweep/params.yaml`
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
    lo, hi = (0.0 if x == 0 else lo), (1.0 if x == n else hi)  # exact at the ends (the formula leaves ~1e-20)
    per = pd.DataFrame({"pid": df["problem_id"].to_numpy(), "hit": hit}).groupby("pid")["hit"].agg(["sum", "size"])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(per), size=(n_boot, len(per)))
    s, m = per["sum"].to_numpy()[idx].sum(1), per["size"].to_numpy()[idx].sum(1)
    q = (1 - ci) / 2
    return {"support": x / n, "chains": x, "episodes": n, "wilson_low": lo, "wilson_high": hi,
            "boot_low": float(np.quantile(s / m, q)), "boot_high": float(np.quantile(s / m, 1 - q)),
            "problems_with_chain": int((per["sum"] > 0).sum()), "problems": int(len(per))}


def transcript_queries(text: str) -> list[str]:
    """The queries of one pretraining transcript (its assistant message; the system prompt names the tags too)."""
    import re

    return re.findall(r"<search>(.*?)</search>", text.rsplit("<|im_start|>assistant", 1)[-1], flags=re.S)


def prior_support(transcripts: pd.DataFrame, problems: list[dict]) -> dict:
    """The share of bridge pretraining transcripts whose plan follows the gold chain (as the knob wrote them)."""
    gold = {p["id"]: gold_plan(p) for p in problems if p["category"] == "bridge"}
    t = transcripts[transcripts["category"] == "bridge"]
    hit = [follows_gold_chain(transcript_queries(x), gold[pid]) for pid, x in zip(t["problem_id"], t["text"])]
    return {"prior_support": float(np.mean(hit)) if hit else float("nan"), "prior_chains": int(np.sum(hit)),
            "prior_transcripts": len(hit)}


def gained_plans(solver: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    """For each problem the solver solves and the other never does (one replicate, same episodes per problem):
    whether the search chain (first two distinct normalised queries) of one of the solver's successful episodes
    is a chain the other policy also wrote on that problem."""
    rows = []
    chain = lambda q: plan_of(q)[:2]  # noqa: E731
    o_chains = other.groupby("problem_id")["queries"].agg(lambda qs: {chain(q) for q in qs})
    o_solved = other.groupby("problem_id")["correct"].any()
    for pid, g in solver.groupby("problem_id"):
        if not g["correct"].any() or o_solved.get(pid, True):
            continue
        wins = {chain(q) for q in g.loc[g["correct"], "queries"]}
        rows.append({"problem_id": pid, "winning_chains": len(wins),
                     "other_wrote_a_winning_chain": bool(wins & o_chains.get(pid, set()))})
    return pd.DataFrame(rows, columns=["problem_id", "winning_chains", "other_wrote_a_winning_chain"])


# ----------------------------------------------------------------------------------------- the eighth rule


def rule8(points: pd.DataFrame, margin: float = MARGIN) -> dict:
    """docs/support_sweep.md's rule. ``points``: one row per sweep point with ``chain`` (the prior share),
    ``chains`` (the base model's gold-chain episodes), and the RL - base Pass@64 effect ``E`` with its two-level
    interval ``E_ci_low``/``E_ci_high`` and ``E_tost_high`` (the upper bound of its TOST interval, i.e. the
    one-sided bound at the audit's alpha).

    Zero-support: no gold-chain episode; supported: one or more (the Wilson lower bound of x/n is above 0 exactly
    when x > 0). A zero-support point with E shown positive contradicts the claim, whatever else holds there (an
    expansion without support is what the claim rules out; PRECEDENCE of passkt.claims)."""
    if points[["E", "E_ci_low", "E_ci_high", "E_tost_high"]].isna().any().any():
        bad = points.loc[points[["E", "E_ci_low", "E_ci_high", "E_tost_high"]].isna().any(axis=1), "chain"]
        return {"verdict": "not evaluated", "why": "E or its interval is missing at chain = "
                + ", ".join(f"{c:g}" for c in bad)}
    zero, supp = points[points["chains"] == 0], points[points["chains"] > 0]
    pos = lambda d: d[d["E_ci_low"] > 0]  # noqa: E731
    names = lambda d: ", ".join(f"{c:g}" for c in d["chain"])  # noqa: E731
    if len(pos(zero)):
        return {"verdict": "contradicted",
                "why": f"RL expanded the boundary (interval above 0) at zero-support point(s) chain = {names(pos(zero))}"}
    missing = []
    if zero.empty:
        missing.append("no sweep point has zero support (the base model wrote the gold chain at every point), so "
                       "'only where' cannot be tested")
    not_eq = zero[~(zero["E_tost_high"] < margin)]
    if len(not_eq):
        missing.append(f"at zero-support point(s) chain = {names(not_eq)} E is not shown below +{margin} "
                       "(one-sided TOST bound)")
    if pos(supp).empty:
        missing.append("no supported point shows an expansion (interval above 0)")
    if missing:
        return {"verdict": "inconclusive", "why": "; ".join(missing)}
    return {"verdict": "supported",
            "why": f"E shown below +{margin} at every zero-support point (chain = {names(zero)}); expansion shown at "
                   f"supported point(s) chain = {names(pos(supp))}"}


# ----------------------------------------------------------------------------------------- reading points


def point_row(ws: Path, problems_dir: Path, T: int, temperature: float, n_boot: int, ci: float,
              seed: int) -> tuple[dict, pd.DataFrame]:
    """What the sweep reads from one finished point: its workspace, or the repository root for the default study.

    The chain share is the one its base model was trained with (``data/01_base_model/run_meta.json``), the training
    replicates those stage 05 analysed (``per_replicate.csv``), the problems the default study's. Returns the
    point's row and the table of RL's gained problems with whether base wrote a winning chain there."""
    from passkt import data, evaluate, mechanism, prep
    from passkt.paths import Paths

    P = Paths(Path(ws))
    probs = prep.eval_problems(problems_dir)
    bridge = [p for p in probs if p["category"] == "bridge"]
    stats = json.loads(P.pass_metrics.read_text())
    mech = json.loads(P.mechanism_metrics.read_text())
    for key, want in (("meta.T_eval", T), ("meta.temperature", temperature), ("meta.ci", ci)):
        if not np.isclose(float(stats[key]), float(want)):
            raise SupportError(f"{P.pass_metrics}: {key} = {stats[key]}, but the sweep reads {want}")
    prior = json.loads((P.data("01_base_model") / "run_meta.json").read_text())["params"]["prior_weights"]["bridge"]
    chain = round(float(prior["chain"]) / float(sum(prior.values())), 12)
    reps = sorted(int(r) for r in pd.read_csv(P.data("05_pass_at_k") / "per_replicate.csv")["replicate"].unique())
    cols = ["problem_id", "category", "T", "temperature", "queries", "correct"]

    def eps(policy: str, r: int) -> pd.DataFrame:
        d = evaluate.load_scored(P.with_replicate(r).rollouts(policy), probs, columns=cols)
        return mechanism.episodes_at(d[d["category"] == "bridge"], T, temperature)

    base = eps("base", 0)
    row = {"chain": chain, **support(base, bridge, n_boot=n_boot, seed=seed, ci=ci)}
    pre = data.load_problems(problems_dir, "pretrain")
    row.update(prior_support(pd.read_parquet(P.data("01_base_model") / "transcripts.parquet",
                                             columns=["problem_id", "category", "text"]), pre))
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
    for pol in ("base", "sft", "rl"):
        row[f"pass64_{pol}"] = stats[f"pass.bridge.{pol}.kmax"]
    row["n_replicates"] = len(reps)
    mass = pd.read_csv(P.data("05_pass_at_k") / "boundary_mass.csv")
    for _, m in mass[mass["category"] == "bridge"].iterrows():
        if m["policy"] in ("base", "sft", "rl"):
            row[f"pi0_{m['policy']}_high"] = m["pi0_ci_high"]
    plans = []
    for r in reps:
        g = gained_plans(eps("rl", r), base)
        g.insert(0, "replicate", r)
        plans.append(g)
    plans = pd.concat(plans, ignore_index=True)
    row["rl_gained_total"] = int(len(plans))
    row["rl_gained_with_base_chain"] = int(plans["other_wrote_a_winning_chain"].sum()) if len(plans) else 0
    plans.insert(0, "chain", chain)
    return row, plans


# ----------------------------------------------------------------------------------------- the figure


def sweep_figure(points: pd.DataFrame, margin: float, caption: str, n: int):
    """Left: boundary expansion (Pass@n minus base's, RL and SFT, two-level intervals) against the base model's
    measured support for the gold chain (symlog x: the zero-support point sits at 0). Right: measured support
    against the prior's chain share (does the knob move the behaviour?)."""
    import matplotlib.pyplot as plt

    from passkt.plotting import POLICY_COLORS, POLICY_LABELS

    p = points.sort_values("chain")
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.5, 1]})
    ax.axhspan(-margin, margin, color="0.85", zorder=0, label=f"±{margin} (equivalence margin)")
    ax.axhline(0, color="0.3", lw=0.8)
    xs = p["support"].to_numpy()
    xerr = np.clip(np.vstack([xs - p["wilson_low"].to_numpy(), p["wilson_high"].to_numpy() - xs]), 0, None)
    for tag, pol, dx in (("E", "rl", 1.0), ("E_sft", "sft", 1.08)):
        y = p[tag].to_numpy()
        yerr = np.clip(np.vstack([y - p[f"{tag}_ci_low"].to_numpy(), p[f"{tag}_ci_high"].to_numpy() - y]), 0, None)
        ax.errorbar(xs * dx, y, yerr=yerr, xerr=xerr if pol == "rl" else None, fmt="o-" if pol == "rl" else "s--",
                    color=POLICY_COLORS[pol], capsize=3, label=f"{POLICY_LABELS[pol]} − base")
    for x, y, c in zip(xs, p["E"], p["chain"]):
        ax.annotate(f"prior {c:g}", (x, y), textcoords="offset points", xytext=(4, 6), fontsize=8, color="0.35")
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlim(left=-1e-4)
    ax.set_xlabel("base model's measured support for the gold chain (share of bridge episodes)")
    ax.set_ylabel(f"Pass@{n} − base's Pass@{n} (bridge)")
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


# ----------------------------------------------------------------------------------------- publish


def publish(root: Path) -> Path:
    """Copy the summary's figure, tables, verdict and executed notebook to sweep/results/ (git-tracked)."""
    import shutil

    from passkt.paths import Paths

    P = Paths(root)
    out = Path(root) / "sweep" / "results"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for f in sorted(P.figures(NOTEBOOK).iterdir()):
        shutil.copy2(f, out / f.name)
    for name in ("verdict.json", "points.csv", "gained_chains.csv", f"{NOTEBOOK}.executed.ipynb", "run_meta.json"):
        shutil.copy2(P.data(NOTEBOOK) / name, out / name)
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    from passkt.paths import find_root

    ap = argparse.ArgumentParser(prog="python -m passkt.support", description="the support sweep's summary")
    ap.add_argument("cmd", choices=["publish"])
    ap.parse_args(argv)
    try:
        print(f"passkt.support: published {publish(find_root('.'))}")
    except FileNotFoundError as e:
        print(f"passkt.support: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
