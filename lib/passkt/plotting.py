"""One look for every figure: seaborn style, one colour per policy, PNG + PDF + the CSV of plotted numbers.

Each figure of a stage is one function here, named for what it draws; it returns ``(fig, data)``, ``data`` being
exactly the numbers plotted (saved as the CSV). Every figure carries a caption line with its sample (rollouts per
problem, problems, seed); heatmaps write their values in, coloured for contrast with the cell, with a colour bar
and no grid lines.

Files are written with fixed metadata (no timestamps), so rerunning a stage with the same numbers gives the
same bytes and DVC sees no change.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

POLICY_COLORS = {
    "base": "#4C72B0",  # blue
    "sft": "#DD8452",  # orange
    "rl": "#C44E52",  # red
    "rl_bonus": "#8172B3",  # purple
}
POLICY_LABELS = {"base": "Base", "sft": "SFT", "rl": "RL (GRPO)", "rl_bonus": "RL + explore bonus"}
CATEGORY_LABELS = {"math": "A: math (no tool)", "comparison": "B: comparison", "bridge": "C: bridge"}


def set_style() -> None:
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight"})


def save_figure(fig, data: pd.DataFrame, out_dir: str | Path, name: str) -> list[Path]:
    """Save ``fig`` as ``name.png`` and ``name.pdf`` and ``data`` (exactly what is plotted) as ``name.csv``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [out_dir / f"{name}.png", out_dir / f"{name}.pdf", out_dir / f"{name}.csv"]
    fig.savefig(files[0], metadata={"Software": None})
    fig.savefig(files[1], metadata={"Creator": None, "Producer": None, "CreationDate": None})
    data.to_csv(files[2], index=False, float_format="%.6g")
    show_in_notebook(files[0])
    plt.close(fig)
    return files


def show_in_notebook(png: Path) -> None:
    """Show the saved PNG as the cell's output when running in a notebook kernel (so the executed notebooks in
    results/ show every figure on GitHub and in JupyterLab); a no-op in plain Python."""
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:
        return
    if get_ipython() is not None:
        display(Image(filename=str(png)))


def policy_palette(policies) -> dict:
    return {p: POLICY_COLORS.get(p, "#555555") for p in policies}


# ---- shared pieces: captions, heatmaps --------------------------------------------------------------------------

def sample_caption(n: int | None = None, problems=None, seed: int | None = None, extra: str = "",
                   base_seed: int | None = None) -> str:
    """One line stating the sample behind a figure: rollouts per problem, problems, seeds (and anything else).

    Rollout figures (``n`` given) say that the policies come from one training run each (training seeds are not
    a source of variation here)."""
    parts = []
    if n is not None:
        parts.append(f"n = {n} rollouts per problem")
    if isinstance(problems, dict):
        parts.append("problems: " + ", ".join(f"{v} {k}" for k, v in problems.items()))
    elif problems is not None:
        parts.append(f"{problems} problems")
    if base_seed is not None:
        parts.append(f"base seed {base_seed}")
    if seed is not None:
        parts.append(f"seed {seed}" + (" (one training run per policy)" if n is not None else ""))
    return " · ".join(parts + ([extra] if extra else []))


def add_caption(fig, text: str) -> None:
    """A caption line under everything drawn so far (tick labels, axis labels; kept by ``bbox_inches="tight"``)."""
    fig.canvas.draw()
    bottom = fig.get_tightbbox(fig.canvas.get_renderer()).y0 / fig.get_figheight()
    fig.text(0.5, bottom - 0.02, text, ha="center", va="top", fontsize=7, color="#333333", wrap=True)


def text_color(rgba) -> str:
    """Black or white, whichever reads better on a background of colour ``rgba`` (WCAG relative luminance)."""
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgba[:3]]
    return "black" if 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2] > 0.179 else "white"


def heatmap(ax, table: pd.DataFrame, *, cmap: str, vmin: float, vmax: float, label: str, fmt: str = "{:.2f}",
            marks=None, fontsize: float = 6.5):
    """``table`` as coloured cells with its values written in, a colour bar labelled ``label``, no grid lines.

    ``marks`` (same shape, strings) is appended to each cell's text, e.g. a significance dot. Each text's colour
    follows its cell's luminance. Rows and columns are labelled with the table's index and columns.
    """
    values = table.to_numpy(dtype=float)
    im = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.grid(False)
    ax.set_xticks(range(table.shape[1]), table.columns, fontsize=7)
    ax.set_yticks(range(table.shape[0]), table.index, fontsize=7)
    for (r, c), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(c, r, fmt.format(v) + (marks[r][c] if marks is not None else ""), ha="center", va="center",
                    fontsize=fontsize, color=text_color(im.cmap(im.norm(v))))
    bar = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    bar.set_label(label, fontsize=7)
    bar.ax.tick_params(labelsize=7)
    bar.outline.set_visible(False)
    return im


def _curves_with_band(ax, sub: pd.DataFrame, x: str = "k", ms: float | None = None) -> None:
    for pol, s in sub.groupby("policy"):
        ax.plot(s[x], s["pass"], marker="o", ms=ms if ms else plt.rcParams["lines.markersize"], color=POLICY_COLORS[pol],
                label=POLICY_LABELS[pol])
        ax.fill_between(s[x], s.ci_low, s.ci_high, color=POLICY_COLORS[pol], alpha=0.15)


def _curve(points: pd.DataFrame, category: str, T: int, temperature: float) -> pd.DataFrame:
    """Rows of a bootstrap surface (``BootstrapSurface.points``) for one category, budget and temperature."""
    sel = (points.category == category) & (points["T"] == T) & np.isclose(points.temperature, temperature)
    return points[sel].sort_values(["policy", "k"])


def _errorbars(ax, s: pd.DataFrame, x: str, n: int) -> None:
    """Pass with its interval against ``x``, one line per (policy, k): solid k = n, dashed k = 1."""
    for (pol, k), g in s.groupby(["policy", "k"]):
        g = g.sort_values(x)
        ax.errorbar(g[x], g["pass"], yerr=[g["pass"] - g.ci_low, g.ci_high - g["pass"]], marker="o", capsize=2,
                    color=POLICY_COLORS[pol], ls="-" if k == n else "--", label=f"{POLICY_LABELS[pol]}, k={k}")


# ---- 00 data prep ----------------------------------------------------------------------------------------------

def category_sizes(sizes: pd.DataFrame, caption: str):
    """Grouped bars: problems per set (x) and category (colour). ``sizes``: datastats.category_sizes."""
    sizes = sizes.reset_index()
    long = sizes.melt(id_vars="split", value_vars=["math", "comparison", "bridge"], var_name="category",
                      value_name="problems")
    fig, ax = plt.subplots(figsize=(6, 3))
    for i, cat in enumerate(["math", "comparison", "bridge"]):
        sub = long[long.category == cat]
        ax.bar([j + 0.27 * (i - 1) for j in range(len(sub))], sub["problems"], width=0.27, label=CATEGORY_LABELS[cat])
    ax.set_xticks(range(len(sizes)), sizes["split"])
    ax.set_ylabel("problems")
    ax.legend(fontsize=8)
    ax.set_title("Problems per set and category")
    add_caption(fig, caption)
    return fig, long


def length_histograms(lens: pd.DataFrame, caption: str):
    """Word-length histograms of questions and paragraphs per category. ``lens``: datastats.word_lengths."""
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    for ax, what in zip(axes, ["question", "paragraph"]):
        sub = lens[lens.what == what]
        for cat in sub.category.unique():
            ax.hist(sub[sub.category == cat].words, bins=20, alpha=0.5, label=CATEGORY_LABELS[cat])
        ax.set_xlabel(f"{what} length (words)")
    axes[0].legend(fontsize=8)
    axes[0].set_ylabel("count")
    fig.suptitle("Question and paragraph lengths", fontsize=10)
    add_caption(fig, caption)
    return fig, lens.groupby(["what", "category", "words"]).size().rename("count").reset_index()


def single_query_recall(recall: pd.DataFrame, recall_k: list[int], caption: str):
    """Share of problems whose two gold paragraphs one whole-question search retrieves, against top-k."""
    fig, ax = plt.subplots(figsize=(5, 3))
    for cat in ("comparison", "bridge"):
        sub = recall[recall.category == cat]
        ax.plot(sub.tool_k, sub.single_query, marker="o", label=CATEGORY_LABELS[cat])
    ax.set_xticks(recall_k)
    ax.set_xlabel("paragraphs returned per search (top-k)")
    ax.set_ylabel("both gold paragraphs retrieved")
    ax.set_ylim(0, 1.05)
    ax.set_title("One search with the whole question")
    ax.legend(fontsize=8)
    add_caption(fig, caption)
    return fig, recall


# ---- 01 base model, 03 SFT, 04 GRPO: training curves ----------------------------------------------------------

def loss_curve(log: pd.DataFrame, ylabel: str, title: str, caption: str, color: str | None = None):
    """Training loss against optimiser step (``log``: step, loss, ...; saved as given; may have no rows when
    training took fewer steps than the logging interval)."""
    fig, ax = plt.subplots(figsize=(5, 3))
    if len(log):
        ax.plot(log.step, log.loss, color=color)
    else:
        ax.text(0.5, 0.5, "no logged training step", ha="center", transform=ax.transAxes)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    add_caption(fig, caption)
    return fig, log


def prior_mix(transcripts: list[dict], caption: str):
    """Horizontal bars: behaviour-prior transcripts per (category, strategy)."""
    mix = pd.DataFrame(transcripts).groupby(["category", "strategy"]).size().rename("transcripts").reset_index()
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.barh(mix.category + ": " + mix.strategy, mix.transcripts)
    ax.set_xlabel("transcripts")
    ax.set_title("Behaviour-prior strategy mix")
    add_caption(fig, caption)
    return fig, mix


GRPO_CURVES = ["reward", "accuracy", "mixed_groups", "searches", "episode_tokens", "entropy", "kl", "clip_ratio"]


def grpo_training_curves(logs: dict[str, pd.DataFrame], caption: str):
    """One panel per logged GRPO quantity against step, one line per run (``logs``: run name -> train_log)."""
    fig, axes = plt.subplots(2, 4, figsize=(14, 5.5))
    for name, log in logs.items():
        for ax, c in zip(axes.ravel(), GRPO_CURVES):
            if c in log and log[c].notna().any():
                ax.plot(log.step, log[c], color=POLICY_COLORS[name], label=POLICY_LABELS[name])
            ax.set_title(c, fontsize=9)
    for ax in axes[1]:
        ax.set_xlabel("step")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("GRPO training curves", fontsize=10)
    add_caption(fig, caption)
    return fig, pd.concat([log.assign(run=name) for name, log in logs.items()])


# ---- 02 base rollouts ------------------------------------------------------------------------------------------

def searches_validity(summary: pd.DataFrame, caption: str):
    """Mean searches used and share of well-formed episodes against T, per tool category and temperature."""
    tool = summary[summary.category != "math"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3))
    for cat, sub in tool.groupby("category"):
        for temp, s2 in sub.groupby("temperature"):
            axes[0].plot(s2["T"], s2.searches, marker="o", label=f"{cat}, temp {temp}")
            axes[1].plot(s2["T"], s2.valid, marker="o", label=f"{cat}, temp {temp}")
    axes[0].set_xlabel("search budget T")
    axes[0].set_ylabel("searches used (mean)")
    axes[1].set_xlabel("search budget T")
    axes[1].set_ylabel("well-formed episodes")
    axes[1].set_ylim(0, 1.05)
    axes[0].legend(fontsize=7)
    fig.suptitle("Base policy: searches used and well-formed episodes", fontsize=10)
    add_caption(fig, caption)
    return fig, tool[["category", "temperature", "T", "searches", "valid"]]


def termination(df: pd.DataFrame, caption: str):
    """Stacked bars: how episodes end (share per termination reason) for each (category, T)."""
    term = df.groupby(["category", "T", "termination"]).size().rename("episodes").reset_index()
    pivot = term.pivot_table(index=["category", "T"], columns="termination", values="episodes", fill_value=0)
    fig, ax = plt.subplots(figsize=(9, 3.5))
    (pivot.div(pivot.sum(axis=1), axis=0)).plot.bar(stacked=True, ax=ax, width=0.8)
    ax.set_ylabel("share of episodes")
    ax.set_xlabel("(category, T)")
    ax.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    ax.set_title("How episodes end")
    add_caption(fig, caption)
    return fig, term


def sanity_bands(bands: pd.DataFrame, caption: str):
    """Each sanity-band value as a bar (green inside its band, red outside) over its allowed band (grey)."""
    fig, ax = plt.subplots(figsize=(8, 2.8))
    ax.barh(bands.band, bands.value, color=["#55A868" if ok else "#C44E52" for ok in bands.ok])
    for i, r in bands.reset_index(drop=True).iterrows():
        ax.plot([r.low, r.high], [i, i], color="black", lw=3, alpha=0.35)
    ax.set_xlabel("value (grey: allowed band; green inside, red outside)")
    ax.set_title("Base-policy sanity bands")
    add_caption(fig, caption)
    return fig, bands


# ---- 05 Pass@(k,T) ---------------------------------------------------------------------------------------------

def pass_curves(points: pd.DataFrame, T_eval: int, temperature: float, caption: str):
    """Pass@(k, T) against k with intervals, one panel per category (math at T = 0), one line per policy."""
    rows = []
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharey=False)
    for ax, cat in zip(axes, ["bridge", "comparison", "math"]):
        T = 0 if cat == "math" else T_eval
        sub = _curve(points, cat, T, temperature)
        _curves_with_band(ax, sub, ms=3)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("k (samples)")
        ax.set_title(f"{CATEGORY_LABELS[cat]}, T = {T}")
        rows.append(sub.assign(panel=cat))
    axes[0].set_ylabel(f"Pass@(k,T)  (temperature {temperature})")
    axes[0].legend(fontsize=8)
    add_caption(fig, caption)
    return fig, pd.concat(rows)


def headline_bridge(points: pd.DataFrame, T_eval: int, temperature: float, caption: str):
    """The paper's headline: Pass@(k, T_eval) on bridge questions against k, one line per policy."""
    sub = _curve(points, "bridge", T_eval, temperature)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    _curves_with_band(ax, sub)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k (samples)")
    ax.set_ylabel(f"Pass@(k, T={T_eval})")
    ax.set_title("Bridge questions: does RL expand the boundary?")
    ax.legend(fontsize=8)
    add_caption(fig, caption)
    return fig, sub


def kT_heatmaps(points: pd.DataFrame, diffs: pd.DataFrame, temperature: float, caption: str,
                a: str = "rl", b: str = "base", alpha: float = 0.05):
    """Pass@(k, T) heatmaps of base, SFT and RL per tool category, and the ``a`` − ``b`` difference (• p < alpha)."""
    policies = [p for p in ["base", "sft", "rl"] if p in points.policy.unique()]
    cats = ["bridge", "comparison"]
    fig, axes = plt.subplots(len(cats), len(policies) + 1, figsize=(3.9 * (len(policies) + 1), 3.0 * len(cats)),
                             squeeze=False, layout="constrained")
    rows = []
    for i, cat in enumerate(cats):
        for j, pol in enumerate(policies):
            s = points[(points.policy == pol) & (points.category == cat) & np.isclose(points.temperature, temperature)]
            m = s.pivot(index="T", columns="k", values="pass").sort_index(ascending=False)
            heatmap(axes[i, j], m, cmap="viridis", vmin=0, vmax=1, label="Pass@(k,T)")
            axes[i, j].set_title(f"{POLICY_LABELS[pol]} · {cat}", fontsize=9)
            rows.append(s.assign(kind="pass"))
        d = diffs[(diffs.a == a) & (diffs.b == b) & (diffs.category == cat) & np.isclose(diffs.temperature, temperature)]
        ax = axes[i, -1]
        if len(d):
            m = d.pivot(index="T", columns="k", values="diff").sort_index(ascending=False)
            pv = d.pivot(index="T", columns="k", values="p").sort_index(ascending=False)
            lim = max(0.05, float(np.nanmax(np.abs(m.values))))
            heatmap(ax, m, cmap="RdBu_r", vmin=-lim, vmax=lim, label=f"{POLICY_LABELS[a]} − {POLICY_LABELS[b]}",
                    fmt="{:+.2f}", marks=np.where(pv.values < alpha, "•", ""))
            rows.append(d.assign(kind=f"{a}_minus_{b}"))
        else:
            ax.axis("off")
        ax.set_title(f"{POLICY_LABELS[a]} − {POLICY_LABELS[b]} · {cat} (• p < {alpha:g})", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("k")
    for ax in axes[:, 0]:
        ax.set_ylabel("T")
    fig.suptitle(f"Pass@(k, T) surfaces, temperature {temperature}", fontsize=10)
    add_caption(fig, caption)
    return fig, pd.concat(rows)


def saturation(points: pd.DataFrame, n: int, T_eval: int, temperature: float, caption: str):
    """Pass against the search budget T at k = 1 (dashed) and k = n (solid), per tool category."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    rows = []
    for ax, cat in zip(axes, ["bridge", "comparison"]):
        s = points[(points.category == cat) & np.isclose(points.temperature, temperature) & points.k.isin([1, n])]
        _errorbars(ax, s, "T", n)
        ax.axvline(T_eval, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("search budget T (dotted: training depth)")
        ax.set_title(CATEGORY_LABELS[cat])
        rows.append(s)
    axes[0].set_ylabel("Pass@(k,T)")
    axes[1].legend(fontsize=7, ncol=2)
    fig.suptitle(f"Saturation: Pass against T at fixed k, temperature {temperature}", fontsize=10)
    add_caption(fig, caption)
    return fig, pd.concat(rows)


def marginal_values(mv: pd.DataFrame, caption: str):
    """Δ_T (one more search round) and Δ_k (one more sample) against T at k = 1, per tool category."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    for ax, cat in zip(axes, ["bridge", "comparison"]):
        for pol, g in mv[(mv.category == cat) & (mv.k == 1)].groupby("policy"):
            g = g.sort_values("T")
            ax.plot(g["T"], g.delta_T, marker="o", color=POLICY_COLORS[pol], label=f"{POLICY_LABELS[pol]} Δ_T")
            ax.plot(g["T"], g.delta_k, marker="x", ls="--", color=POLICY_COLORS[pol], label=f"{POLICY_LABELS[pol]} Δ_k")
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_xlabel("T")
        ax.set_title(f"{CATEGORY_LABELS[cat]} at k = 1")
    axes[0].set_ylabel("gain in Pass@(k,T)")
    axes[1].legend(fontsize=7, ncol=2)
    fig.suptitle("Marginal value of one more sample (Δ_k) vs one more round (Δ_T)", fontsize=10)
    add_caption(fig, caption)
    return fig, mv


def boundary_table(table: pd.DataFrame, T_eval: int, temperature: float, caption: str):
    """The boundary set-difference table (metrics.boundary_table) drawn as a table."""
    fig, ax = plt.subplots(figsize=(10, 0.35 * len(table) + 1))
    ax.axis("off")
    shown = table.copy()
    for c in ("net_ci_low", "net_ci_high", "mcnemar_p"):
        shown[c] = shown[c].map(lambda v: f"{v:.3g}")
    if len(shown):
        ax.table(cellText=shown.values, colLabels=shown.columns, loc="center", fontsize=8)
    ax.set_title(f"Boundary set differences at T = {T_eval} (math: T = 0), temperature {temperature}")
    add_caption(fig, caption)
    return fig, table


def temperature_sweep(points: pd.DataFrame, n: int, T_eval: int, caption: str):
    """Bridge Pass@(k, T_eval) against sampling temperature at k = 1 (dashed) and k = n (solid)."""
    s = points[(points.category == "bridge") & (points["T"] == T_eval) & points.k.isin([1, n])]
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    _errorbars(ax, s, "temperature", n)
    ax.set_xlabel("sampling temperature")
    ax.set_ylabel(f"Pass@(k, T={T_eval}), bridge")
    ax.set_xticks(sorted(points.temperature.unique()))
    ax.set_title("Temperature sweep, bridge")
    ax.legend(fontsize=7)
    add_caption(fig, caption)
    return fig, s


def beyond_training_depth(points: pd.DataFrame, T_grid, n: int, T_eval: int, temperature: float, caption: str):
    """Pass@(n, T) for every budget T ≥ T_eval, grouped bars per (tool category, policy)."""
    beyond = [T for T in T_grid if T >= T_eval]
    s = points[(points.category != "math") & points["T"].isin(beyond) & np.isclose(points.temperature, temperature)
               & (points.k == n)]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    width = 0.8 / max(1, len(beyond))
    groups = [(c, p) for c in ["comparison", "bridge"] for p in sorted(s.policy.unique())]
    for i, T in enumerate(beyond):
        g = s[s["T"] == T].set_index(["category", "policy"]).sort_index()
        vals = [g.loc[cp, "pass"] if cp in g.index else np.nan for cp in groups]
        ax.bar(np.arange(len(groups)) + i * width, vals, width, label=f"T = {T}")
    ax.set_xticks(np.arange(len(groups)) + width * (len(beyond) - 1) / 2, [f"{c}\n{p}" for c, p in groups], fontsize=7)
    ax.set_ylabel(f"Pass@({n}, T)")
    ax.set_title("Budgets at and above the training depth")
    ax.legend(fontsize=8)
    add_caption(fig, caption)
    return fig, s


# ---- 06 mechanism ----------------------------------------------------------------------------------------------

PPL_COLUMNS = ["category", "policy", "segment", "ppl", "ppl_ci_low", "ppl_ci_high"]


def perplexity_by_segment(ppl: pd.DataFrame | None, correct_only: bool, caption: str):
    """Base-model perplexity of query vs reasoning tokens per policy, with intervals (``ppl``: perplexity_summary)."""
    s = pd.DataFrame(columns=PPL_COLUMNS) if ppl is None else \
        ppl[(ppl.category == "all") & ppl.segment.isin(["query", "reasoning"])]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    if s.empty:
        ax.text(0.5, 0.5, "no successful trajectories to score", ha="center", transform=ax.transAxes)
    pols = list(s.policy.unique())
    for i, seg in enumerate(["query", "reasoning"]):
        g = s[s.segment == seg].set_index("policy").loc[pols]
        x = np.arange(len(pols)) + (i - 0.5) * 0.38
        ax.bar(x, g.ppl, 0.38, yerr=[g.ppl - g.ppl_ci_low, g.ppl_ci_high - g.ppl], capsize=3,
               label=f"{seg} tokens", color=["#8c8c8c", "#4C72B0"][i])
    ax.set_xticks(range(len(pols)), [POLICY_LABELS[p] for p in pols])
    ax.set_ylabel("base-model perplexity")
    ax.set_title("Successful trajectories scored by the base model" if correct_only
                 else "Trajectories scored by the base model")
    ax.legend(fontsize=8)
    add_caption(fig, caption)
    return fig, s


def diversity_novelty(div: pd.DataFrame, policies: list[str], caption: str):
    """Unique query sequences per problem and novelty vs base, per category and policy, with intervals."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    cats = ["comparison", "bridge", "all"]
    for ax, (col, title) in zip(axes, [("unique", "unique query sequences per problem"),
                                       ("novelty", "novel vs base (episode share)")]):
        for i, p in enumerate(policies):
            g = div[div.policy == p].set_index("category").reindex(cats)
            x = np.arange(len(cats)) + (i - 1) * 0.27
            ax.bar(x, g[col], 0.27, yerr=[g[col] - g[f"{col}_ci_low"], g[f"{col}_ci_high"] - g[col]], capsize=2,
                   color=POLICY_COLORS[p], label=POLICY_LABELS[p])
        ax.set_xticks(range(len(cats)), cats)
        ax.set_title(title, fontsize=10)
    axes[0].set_ylabel(f"n = {int(div.n_per_problem.max())} samples per problem")
    axes[0].legend(fontsize=8)
    add_caption(fig, caption)
    return fig, div


def swap_grid(grid: pd.DataFrame | None, caption: str):
    """Cross-policy swap: success rate for each (plan policy, reasoner), coloured, values written in."""
    g = pd.DataFrame([[np.nan] * 2] * 2, index=["base", "rl"], columns=["base", "rl"]) if grid is None else \
        grid[grid.category == "all"].pivot(index="plan_policy", columns="reasoner", values="success")
    values = g.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(4.6, 3.2), layout="constrained")
    shown = pd.DataFrame(values, index=[f"plan: {x}" for x in g.index], columns=[f"reason: {x}" for x in g.columns])
    heatmap(ax, shown, cmap="Greens", vmin=0, vmax=max(0.05, float(np.nan_to_num(values).max())),
            label="success rate", fmt="{:.3f}", fontsize=9)
    ax.set_title("Swap: success rate")
    add_caption(fig, caption)
    return fig, g.reset_index() if grid is None else grid
