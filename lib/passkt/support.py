"""What the support sweep measures, and the eighth rule (docs/support_sweep.md, fixed before any point ran).

- **Support**: the share of the base model's bridge episodes whose search plan follows the gold chain (its
  queries, HotpotQA-normalised and with immediate repeats removed, start with the first gold title followed by the
  bridge entity), with a Wilson interval over episodes and a bootstrap interval over problems. Measured from
  rollouts, never read from the prior weight.
- **Prior support**: the same share in the point's pretraining transcripts (what the knob set, as written).
- **Gained chains**: for each problem RL solves and base never does (n = 64, one replicate), whether the two-hop
  search chain (first two distinct queries) of one of RL's successful episodes is one the base model also wrote
  there. A win with fewer than two distinct queries has no chain (a guess, or one hop): it is counted apart.
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
ALPHA = 0.05  # one-sided level of the zero-support bound (docs/support_sweep.md: "one-sided 95% upper bound")
ZERO_BOUND = 0.0005  # zero support: no gold chain, and that bound below this (0 of 6,400 episodes gives 0.00047)
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
    how many distinct two-hop chains (first two distinct normalised queries) the solver won with, whether one of
    them is a chain the other policy also wrote on that problem, and whether the solver won there only without a
    two-hop chain (no search or one distinct query: a guess or a lucky first hop, which no chain explains)."""
    rows = []
    chain = lambda q: plan_of(q)[:2]  # noqa: E731
    o_chains = other.groupby("problem_id")["queries"].agg(lambda qs: {c for q in qs if len(c := chain(q)) == 2})
    o_solved = other.groupby("problem_id")["correct"].any()
    for pid, g in solver.groupby("problem_id"):
        if not g["correct"].any() or o_solved.get(pid, True):
            continue
        wins = {c for q in g.loc[g["correct"], "queries"] if len(c := chain(q)) == 2}
        rows.append({"problem_id": pid, "winning_chains": len(wins),
                     "other_wrote_a_winning_chain": bool(wins & o_chains.get(pid, set())),
                     "won_without_two_hop_chain": not wins})
    return pd.DataFrame(rows, columns=["problem_id", "winning_chains", "other_wrote_a_winning_chain",
                                       "won_without_two_hop_chain"])


# ----------------------------------------------------------------------------------------- the eighth rule


def zero_support_bound(episodes, alpha: float = ALPHA):
    """The exact one-sided (1 - alpha) upper bound of a share seen 0 times in ``episodes``: 1 - alpha^(1/n)."""
    return 1.0 - alpha ** (1.0 / np.asarray(episodes, dtype=float))


COMPARABLE = ("n", "bridge_problems", "n_replicates")  # must be one value across the points (docs/support_sweep.md)


def rule8(points: pd.DataFrame, margin: float = MARGIN) -> dict:
    """docs/support_sweep.md's rule. ``points``: one row per sweep point with ``chain`` (the prior share),
    ``chains`` and ``episodes`` (the base model's gold-chain episodes of all its bridge episodes), and the RL - base
    Pass@64 effect ``E`` with its two-level interval ``E_ci_low``/``E_ci_high`` and ``E_tost_high`` (the upper
    bound of its TOST interval, i.e. the one-sided bound at the audit's alpha); where present, the columns of
    ``COMPARABLE`` must hold one value across the points (the same evaluation and replicates everywhere).

    Zero-support: no gold-chain episode, in enough episodes that the one-sided 95% upper bound of the support is
    below ``ZERO_BOUND``; supported: one or more (the Wilson lower bound of x/n is above 0 exactly when x > 0). A
    point with none in too few episodes is neither, and the rule is not evaluated. A zero-support point with E
    shown positive contradicts the claim, whatever else holds there (an expansion without support is what the
    claim rules out; PRECEDENCE of passkt.claims)."""
    names = lambda d: ", ".join(f"{c:g}" for c in d["chain"])  # noqa: E731
    if points[["E", "E_ci_low", "E_ci_high", "E_tost_high"]].isna().any().any():
        bad = points[points[["E", "E_ci_low", "E_ci_high", "E_tost_high"]].isna().any(axis=1)]
        return {"verdict": "not evaluated", "why": f"E or its interval is missing at chain = {names(bad)}"}
    differ = [c for c in COMPARABLE if c in points and (points[c].nunique() > 1 or points[c].isna().any())]
    if differ:
        return {"verdict": "not evaluated", "why": "the points differ in " + ", ".join(
            f"{c} ({', '.join(f'{v:g}' for v in points[c])})" for c in differ)}
    none = points["chains"] == 0
    short = points[none & ~(zero_support_bound(points["episodes"]) < ZERO_BOUND)]
    if len(short):
        return {"verdict": "not evaluated", "why": f"no gold chain at chain = {names(short)}, but in too few "
                f"episodes ({', '.join(str(int(e)) for e in short['episodes'])}) to bound the support below "
                f"{ZERO_BOUND}"}
    zero, supp = points[none], points[points["chains"] > 0]
    pos = lambda d: d[d["E_ci_low"] > 0]  # noqa: E731
    if len(pos(zero)):
        return {"verdict": "contradicted",
                "why": f"RL expanded the boundary (interval above 0) at zero-support point(s) chain = {names(pos(zero))}"}
    missing = []
    if zero.empty:
        missing.append("no sweep point has zero support (the base model wrote the gold chain at every point), so "
                       "'only where' cannot be tested")
    not_eq = zero[~(zero["E_tost_high"] < margin)]
    if len(not_eq):
        from passkt.claims import decision_gap

        gaps = "; ".join(
            decision_gap(r["E"], r["E"], r["E_tost_high"], margin,
                         part=f"at chain = {r['chain']:g}, its one-sided bound", goal="below")
            for _, r in not_eq.iterrows())
        missing.append(f"at zero-support point(s) chain = {names(not_eq)} E is not shown below +{margin} "
                       f"(one-sided TOST bound; {gaps})")
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
    row["zero_support_bound"] = float(zero_support_bound(row["episodes"])) if row["chains"] == 0 else float("nan")
    row["n"] = float(stats["meta.n"])  # NaN where the policies' n differ (metrics.pass_metrics)
    row["bridge_problems"] = float(stats["meta.n_problems.bridge"])
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
    row["rl_gained_total"] = int(len(plans))  # summed over replicates (rl_gained: stage 05's mean per replicate)
    row["rl_gained_with_base_chain"] = int(plans["other_wrote_a_winning_chain"].sum()) if len(plans) else 0
    row["rl_gained_without_chain"] = int(plans["won_without_two_hop_chain"].sum()) if len(plans) else 0
    plans.insert(0, "chain", chain)
    return row, plans


# ----------------------------------------------------------------------------------------- the figure


def sweep_figure(points: pd.DataFrame, margin: float, caption: str, n: int):
    """Left: boundary expansion (Pass@n minus base's, RL and SFT, two-level intervals) against the base model's
    measured support for the gold chain (symlog x, so zero support sits at 0). Points with the same measured
    support (several prior shares can leave none) are set side by side, a few points apart, in order of prior
    share, each labelled with it; zero-support points are drawn open. Right: measured support against the prior's
    chain share (does the knob move the behaviour?)."""
    import matplotlib.pyplot as plt
    from matplotlib.transforms import ScaledTranslation

    from passkt.plotting import POLICY_COLORS, POLICY_LABELS

    p = points.sort_values("chain").reset_index(drop=True)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [1.6, 1], "wspace": 0.3})
    ax.axhspan(-margin, margin, color="0.88", zorder=0, label=f"±{margin} (equivalence margin)")
    ax.axhline(0, color="0.3", lw=0.8)
    xs = p["support"].to_numpy()
    zero = (p["chains"] == 0).to_numpy()
    xerr = np.clip(np.vstack([xs - p["wilson_low"].to_numpy(), p["wilson_high"].to_numpy() - xs]), 0, None)
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlim(-4e-4, max(float(p["wilson_high"].max()), 1e-2) * 2)
    rank = p.groupby("support").cumcount().to_numpy()
    size = p.groupby("support")["chain"].transform("size").to_numpy()
    dodge = (rank - (size - 1) / 2) * 16.0  # points (1/72 in) between tied points
    for tag, pol, dx, marker in (("E", "rl", -3.0, "o"), ("E_sft", "sft", 3.0, "s")):
        y = p[tag].to_numpy()
        yerr = np.clip(np.vstack([y - p[f"{tag}_ci_low"].to_numpy(), p[f"{tag}_ci_high"].to_numpy() - y]), 0, None)
        for i in range(len(p)):
            shift = ax.transData + ScaledTranslation((dodge[i] + dx) / 72, 0, fig.dpi_scale_trans)
            ax.errorbar(xs[i], y[i], yerr=yerr[:, [i]], xerr=xerr[:, [i]] if pol == "rl" else None, fmt=marker,
                        color=POLICY_COLORS[pol], mfc="white" if zero[i] else POLICY_COLORS[pol], capsize=3,
                        transform=shift, label=f"{POLICY_LABELS[pol]} − base" if i == 0 else None)
    lows = np.concatenate([p["E_ci_low"].to_numpy(), p["E_sft_ci_low"].to_numpy(), [-margin]])
    highs = np.concatenate([p["E_ci_high"].to_numpy(), p["E_sft_ci_high"].to_numpy(), [margin]])
    lo, hi = float(np.nanmin(lows)), float(np.nanmax(highs))
    ax.set_ylim(lo - 0.08 * (hi - lo), hi + 0.6 * (hi - lo))  # room at the top for the labels
    default = p["default_study"].to_numpy() if "default_study" in p else np.zeros(len(p), bool)
    for i, c in enumerate(p["chain"]):
        where = ScaledTranslation(dodge[i] / 72, 0, fig.dpi_scale_trans)
        ax.text(xs[i], 0.98, f"prior {c:g}" + (" (default)" if default[i] else ""), fontsize=7, color="0.3",
                ha="center", va="top", rotation=90, transform=ax.get_xaxis_transform() + where)
    ax.set_xlabel("base model's measured gold-chain share (bridge episodes; open marker: zero support)")
    ax.set_ylabel(f"Pass@{n} − base's Pass@{n} (bridge)")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, frameon=False)
    ax.set_title("Boundary expansion against base support")
    bx.errorbar(p["chain"], xs, yerr=xerr, fmt="o-", color=POLICY_COLORS["base"], capsize=3, label="measured")
    if "prior_support" in p:
        bx.plot(p["chain"], p["prior_support"], "x:", color="0.45", label="in the pretraining transcripts")
    lim = max(float(p["chain"].max()), float(p["wilson_high"].max())) * 1.1
    bx.plot([0, lim], [0, lim], ls=":", color="0.7", lw=0.8, label="support = prior share")
    bx.set_xscale("symlog", linthresh=1e-2)
    bx.set_yscale("symlog", linthresh=1e-3)
    bx.set_xlabel("prior's chain share (pretraining transcripts)")
    bx.set_ylabel("gold-chain share")
    bx.legend(fontsize=8)
    bx.set_title("The knob: prior share vs measured support")
    fig.text(0.01, -0.1, caption, fontsize=8, ha="left", va="top", wrap=True)
    cols = ["chain", "support", "wilson_low", "wilson_high", "chains", "episodes", "E", "E_ci_low", "E_ci_high",
            "E_sft", "E_sft_ci_low", "E_sft_ci_high"]
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
    unit_wall_times(root).to_csv(out / "wall_times.csv", index=False)
    return out


def unit_wall_times(root: Path) -> pd.DataFrame:
    """Each sweep unit's last run (``run_meta.json`` of every point's stages and replicates): what the sweep costs."""
    from passkt.sweep import POINT_STAGES, SWEEP

    rows = []
    for meta in sorted((Path(root) / SWEEP / "points").glob("chain_*/data/*/**/run_meta.json")):
        m = json.loads(meta.read_text())
        if m.get("stage") not in POINT_STAGES:  # data/00_data_prep is the default study's, linked
            continue
        rep = meta.parent.name[1:] if meta.parent.name.startswith("r") and meta.parent.name[1:].isdigit() else ""
        rows.append({"chain": meta.relative_to(Path(root) / SWEEP / "points").parts[0].removeprefix("chain_"),
                     "stage": m.get("stage"), "replicate": rep, "wall_s": m.get("wall_s"), "start": m.get("start"),
                     "end": m.get("end")})
    return pd.DataFrame(rows, columns=["chain", "stage", "replicate", "wall_s", "start", "end"])


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
