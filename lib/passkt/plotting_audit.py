"""Figures beyond the paper's own: the boundary at depth (stage 06) and the claims' effects against their margins
(stage 07). Same style, captions and saving as :mod:`passkt.plotting`, in a module of their own so that the base
model's stage (whose figures use plotting.py) does not depend on them.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from passkt.plotting import CATEGORY_LABELS, POLICY_COLORS, POLICY_LABELS, add_caption


def boundary_depth(data: pd.DataFrame, n_deep: int, caption: str, category: str = "bridge"):
    """Pass@k measured to n (solid, markers), extrapolated by the ZIBB fit (dashed where pi0 is identified; the
    shaded band is the range of extrapolations the data cannot reject), and deep sampling (diamond at
    k = n + n_deep: the share of problems solved at least once after the boundary candidates alone got up to
    n_deep more draws -- a lower bound on what n + n_deep draws of every problem would reach).

    data: :func:`passkt.deep.boundary_depth_data` (policy, kind = measured | zibb | deep_lower_bound, k, pass, low,
    high, identified).
    """
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for pol in [p for p in POLICY_COLORS if p in set(data.policy)]:
        col, d = POLICY_COLORS[pol], data[data.policy == pol]
        m = d[d.kind == "measured"]
        ax.plot(m.k, m["pass"], marker="o", color=col, label=POLICY_LABELS[pol])
        z = d[d.kind == "zibb"]
        if len(z):
            ax.fill_between(z.k, z.low, z.high, color=col, alpha=0.12, lw=0)
            if z.identified.all():
                ax.plot(z.k, z["pass"], ls="--", color=col)
        x = d[d.kind == "deep_lower_bound"]
        ax.plot(x.k, x["pass"], marker="D", ms=7, color=col, mec="black", ls="none")
    ax.set_xscale("log", base=2)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("k (samples)")
    ax.set_ylabel("Pass@k")
    ax.set_title(f"{CATEGORY_LABELS.get(category, category)}: the boundary at depth")
    ax.plot([], [], ls="--", color="grey", label="ZIBB extrapolation (pi0 identified)")
    ax.fill_between([], [], [], color="grey", alpha=0.2, label="ZIBB range (pi0 interval)")
    ax.plot([], [], marker="D", color="grey", mec="black", ls="none", label=f"after deep sampling (k = n + {n_deep})")
    ax.legend(fontsize=7, loc="upper left")
    add_caption(fig, caption + f" · diamond: share solved at least once after the boundary candidates alone got up "
                f"to {n_deep} more draws from that policy (a lower bound)")
    return fig, data


VERDICT_COLORS = {"supported": "#1b7837", "contradicted": "#b2182b", "inconclusive": "#e08214",
                  "not evaluated": "#888888"}


def claims_effects(rows: list[dict], caption: str):
    """One row per claim: our effect estimate with its interval, coloured by verdict (the audit at a glance).

    Effects are on each claim's own scale (most are differences of Pass or of a share; claim 6 is in nats/token):
    the label says which. rows: ``claims.evaluate`` rows.
    """
    df = pd.DataFrame([{"id": r["id"], "short": r.get("short") or r["statement"], "effect": r.get("effect", ""),
                        "value": r["value"], "ci_low": r["ci_low"], "ci_high": r["ci_high"], "verdict": r["verdict"]}
                       for r in rows])
    num = pd.to_numeric(df.value, errors="coerce")
    fig, ax = plt.subplots(figsize=(8, 0.55 * len(df) + 1.2))
    y = range(len(df))[::-1]
    for yi, (_, r), v in zip(y, df.iterrows(), num):
        col = VERDICT_COLORS.get(r.verdict, "#888888")
        if pd.notna(r.ci_low) and pd.notna(r.ci_high):
            ax.plot([r.ci_low, r.ci_high], [yi, yi], color=col, lw=2.5, solid_capstyle="butt")
        if pd.notna(v):
            ax.plot([v], [yi], "o", color=col, ms=7, mec="black", mew=0.5)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(list(y))
    ax.set_yticklabels([f"{r.id}. {r.short}\n({r.effect})" if r.effect else f"{r.id}. {r.short}"
                        for _, r in df.iterrows()], fontsize=7)
    ax.set_xlabel("our effect estimate with its interval (each claim on its own scale)")
    ax.grid(axis="y", visible=False)
    for name, col in VERDICT_COLORS.items():
        ax.plot([], [], "o", color=col, label=name.replace("_", " "))
    ax.legend(fontsize=7, loc="lower right", title="verdict", title_fontsize=7)
    ax.set_title("Claims audit: our effects and verdicts")
    add_caption(fig, caption)
    return fig, df
