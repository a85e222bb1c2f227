"""One look for every figure: seaborn style, one colour per policy, PNG + PDF + the CSV of plotted numbers.

Files are written with fixed metadata (no timestamps), so rerunning a stage with the same numbers gives the
same bytes and DVC sees no change.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
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
    plt.close(fig)
    return files


def policy_palette(policies) -> dict:
    return {p: POLICY_COLORS.get(p, "#555555") for p in policies}
